//! The listener's connection limit, and a panicking authenticator that takes
//! down only the session it ran in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::net::{Raw, server, until_connected, until_event};
use psvc::frame::{Frame, Kind, Status};
use psvc::socket::{Auth, ClientEvent, Hello, Server, ServerOptions, Verdict};

#[actix_rt::test]
async fn connections_over_the_limit_wait_until_a_slot_frees() {
    let mut options = ServerOptions::default();
    options.max_connections = 2;
    let (srv, events) = server(Server::new(Auth::anonymous()).options(options)).await;
    let mut a = Raw::connect(srv.local_addr()).await;
    a.hello(None).await;
    let mut b = Raw::connect(srv.local_addr()).await;
    b.hello(None).await;
    // The third connects at the TCP level (kernel backlog) but is not served.
    let mut c = Raw::connect(srv.local_addr()).await;
    c.send(&Frame::new(Kind::ServInfo).seqno(3)).await;
    let waited = tokio::time::timeout(Duration::from_millis(300), c.recv()).await;
    assert!(waited.is_err(), "third client served over the limit");
    assert_eq!(srv.sessions().await.unwrap().len(), 2);
    drop(a);
    until_event(&events, |e| {
        e.iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. }))
    })
    .await;
    let reply = c.recv().await.expect("served once a slot freed");
    assert_eq!(
        (reply.kind, reply.seqno, reply.status),
        (Kind::ServInfo, 3, Status::OK)
    );
    assert_eq!(b.ping(1).await.seqno, 1);
}

#[actix_rt::test]
async fn a_panicking_authenticator_ends_only_that_connection() {
    common::quiet_panics();
    let auth = Auth::custom(|hello: &Hello<'_>| {
        if hello.password == Some("boom") {
            panic!("expected: authenticator bug");
        }
        Verdict::Accept { authed: true }
    });
    let (srv, events) = server(Server::new(auth)).await;
    let mut good = Raw::connect(srv.local_addr()).await;
    good.hello(None).await;
    let mut bad = Raw::connect(srv.local_addr()).await;
    bad.send(&Frame::new(Kind::ServInfo).param(r#"{"passwd":"boom"}"#))
        .await;
    assert!(bad.expect_closed().await.is_empty());
    assert_eq!(good.ping(5).await.seqno, 5, "other sessions unaffected");
    let mut again = Raw::connect(srv.local_addr()).await;
    assert_eq!(
        again.hello(None).await.status,
        Status::OK,
        "still accepting"
    );
    until_connected(&events, 2).await;
}
