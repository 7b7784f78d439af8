//! The psvc client against a psvc server: VSOA connect result codes,
//! requests matched by seqno, timeouts, and pending requests failed when
//! the connection drops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::net::Inbox;

use std::time::Duration;

use actix::prelude::*;
use common::net::{anonymous, server};
use psvc::client::{Client, ClientMessage, ClientOptions, ConnectError, RequestError};
use psvc::frame::{Frame, Kind, Status};
use psvc::socket::{Auth, Inbound, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[actix_rt::test]
async fn connects_pings_and_reads_server_info() {
    let (srv, _) =
        server(Server::new(Auth::password("pw")).info(serde_json::json!({"v": 1}))).await;
    let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()).password("pw"))
        .await
        .unwrap();
    let info = client.info().await.unwrap();
    assert_eq!(info.info, r#"{"v":1}"#);
    let sessions = srv.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id(), info.client_id);
    client.ping().await.unwrap();
    client.subscribe(["/a/", "/b"]).await.unwrap();
    assert_eq!(sessions[0].info().subscriptions, vec!["/a/", "/b"]);
    client.unsubscribe(["/a/"]).await.unwrap();
    assert_eq!(sessions[0].info().subscriptions, vec!["/b"]);
    // Without an inbound recipient the server has no routes: status 3.
    let reply = client
        .request(Frame::new(Kind::Rpc).url("/nothing"))
        .await
        .unwrap();
    assert_eq!(reply.status, Status::INVALID_URL);
}

#[actix_rt::test]
async fn each_failure_maps_to_its_vsoa_connect_code() {
    // 6: wrong password (the right code, not "invalid responding").
    let (srv, _) = server(Server::new(Auth::password("pw"))).await;
    let err = Client::connect(ClientOptions::new(srv.local_addr().to_string()).password("nope"))
        .await
        .unwrap_err();
    assert_eq!(err, ConnectError::InvalidPassword);
    assert_eq!(err.code(), 6);

    // 2: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = Client::connect(ClientOptions::new(format!("127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 2, "{err}");

    // 3: a name that does not resolve.
    let err = Client::connect(ClientOptions::new("no-such-host.invalid:3000"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 3, "{err}");

    // 4: accepts but never answers.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (s, _) = mute.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    });
    let err = Client::connect(
        ClientOptions::new(mute_addr.to_string()).connect_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), 4, "{err}");
    hold.abort();

    // 5: answers with something that is not a SERVINFO reply.
    let liar = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr = liar.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = liar.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\0\0\0\0\0\0\0\0\0\0\0\0")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let err = Client::connect(ClientOptions::new(liar_addr.to_string()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 5, "{err}");
}

/// Swallows RPCs without answering.
struct BlackHole(std::sync::Arc<std::sync::Mutex<Vec<Frame>>>);
impl Actor for BlackHole {
    type Context = Context<Self>;
}
impl Handler<Inbound> for BlackHole {
    type Result = ();
    fn handle(&mut self, msg: Inbound, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg.frame);
    }
}

#[actix_rt::test]
async fn requests_time_out_and_fail_clearly_when_the_link_drops() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hole = BlackHole(seen.clone()).start();
    let (srv, _) = server(Server::new(Auth::anonymous()).inbound(hole.recipient())).await;
    let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
        .await
        .unwrap();

    let err = client
        .request_timeout(
            Frame::new(Kind::Rpc).url("/slow"),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert_eq!(err, RequestError::Timeout(Duration::from_millis(200)));

    // Many requests in flight on one connection, then the server goes away.
    let pending: Vec<_> = (0..8)
        .map(|i| {
            let c = client.clone();
            actix::spawn(async move {
                c.request(Frame::new(Kind::Rpc).url(format!("/p/{i}")))
                    .await
            })
        })
        .collect();
    common::until(|| seen.lock().unwrap().len() == 9).await;
    let seqnos: std::collections::HashSet<u32> =
        seen.lock().unwrap().iter().map(|f| f.seqno).collect();
    assert_eq!(seqnos.len(), 9, "every request has its own seqno");
    for s in srv.sessions().await.unwrap() {
        s.close();
    }
    for p in pending {
        let err = p.await.unwrap().unwrap_err();
        assert!(matches!(err, RequestError::Disconnected(_)), "{err}");
    }
    assert!(!client.is_connected().await);
    assert_eq!(client.ping().await.unwrap_err(), RequestError::NotConnected);
}

#[actix_rt::test]
async fn server_pushes_reach_the_client_and_priority_is_applied() {
    let (srv, _) = anonymous().await;
    let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
        .await
        .unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    client
        .on_message(Inbox(got.clone()).start().recipient())
        .await
        .unwrap();
    let session = srv.sessions().await.unwrap().remove(0);
    session.set_priority(5).unwrap();
    assert!(
        session
            .send_wait(Frame::new(Kind::Publish).url("/t").param("{\"n\":1}"))
            .await
            .unwrap()
    );
    assert!(
        session
            .send_wait(Frame::new(Kind::Datagram).url("/d").data(&b"raw"[..]))
            .await
            .unwrap()
    );
    common::until(|| got.lock().unwrap().len() == 3).await;
    {
        let got = got.lock().unwrap();
        assert!(matches!(got[0], ClientMessage::Priority(5)));
        assert!(
            matches!(&got[1], ClientMessage::Published { frame: f, .. } if &f.url[..] == b"/t")
        );
        assert!(
            matches!(&got[2], ClientMessage::Datagram { frame: f, .. } if &f.data[..] == b"raw")
        );
    }
    assert_eq!(session.priority(), 5);
    // A packet over the 256 KiB limit is refused, not sent.
    assert!(
        !session
            .send_wait(
                Frame::new(Kind::Publish)
                    .url("/big")
                    .data(vec![0u8; 300 * 1024])
            )
            .await
            .unwrap()
    );
    assert!(client.is_connected().await);
}

#[actix_rt::test]
async fn dropping_the_last_client_handle_closes_the_connection() {
    let (srv, events) = anonymous().await;
    let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
        .await
        .unwrap();
    let second = client.clone();
    drop(client);
    second.ping().await.unwrap();
    assert_eq!(
        srv.sessions().await.unwrap().len(),
        1,
        "a clone keeps it open"
    );
    drop(second);
    common::net::until_event(&events, |e| {
        e.iter()
            .any(|e| matches!(e, psvc::socket::ClientEvent::Disconnected { .. }))
    })
    .await;
    assert!(srv.sessions().await.unwrap().is_empty());
}

/// A listener that takes 20 ms per message, with room for one.
struct Slow;

impl Actor for Slow {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1);
    }
}

impl Handler<ClientMessage> for Slow {
    type Result = ();
    fn handle(&mut self, _: ClientMessage, _: &mut Self::Context) {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[actix_rt::test]
async fn a_listener_that_cannot_keep_up_misses_messages_and_they_are_counted() {
    let (srv, _) = anonymous().await;
    let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
        .await
        .unwrap();
    // On its own arbiter: its slowness does not stall the client.
    let arbiter = actix::Arbiter::new();
    let slow = Slow::start_in_arbiter(&arbiter.handle(), |_| Slow);
    client.on_message(slow.recipient()).await.unwrap();
    let session = srv.sessions().await.unwrap().remove(0);
    for n in 0..50 {
        assert!(session.push(Frame::new(Kind::Datagram).url("/d").seqno(n)));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let missed = loop {
        let missed = client.missed_messages().await;
        if missed > 0 || std::time::Instant::now() > deadline {
            break missed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        missed > 0,
        "50 messages into a mailbox of 1 and none missed"
    );
    assert!(missed < 50, "the listener got none: {missed}");
    assert!(client.is_connected().await, "the client itself kept going");
    arbiter.stop();
}
