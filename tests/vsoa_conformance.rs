//! What a VSOA server does with packets that come before SERVINFO: with a
//! password, each is answered with a reply of its type and status 1
//! (PASSWORD) and the connection waits for SERVINFO until the handshake
//! timer; without one, the first packet of any type activates the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::net::{Raw, anonymous, server, until_connected};
use psvc::frame::{Frame, Kind, Status};
use psvc::socket::{Auth, Server, ServerOptions};

#[actix_rt::test]
async fn with_a_password_early_packets_get_status_1_and_the_connection_waits() {
    let (srv, log) = server(Server::new(Auth::password("pw"))).await;
    let mut c = Raw::connect(srv.local_addr()).await;
    for (seqno, kind) in [Kind::Rpc, Kind::PingEcho, Kind::Subscribe, Kind::Datagram]
        .into_iter()
        .enumerate()
    {
        let seqno = seqno as u32 + 10;
        c.send(&Frame::new(kind).seqno(seqno).url("/x")).await;
        let reply = c.recv().await.expect("an answer, not a close");
        assert_eq!(reply.kind, kind);
        assert!(reply.is_reply());
        assert_eq!(reply.status, Status::PASSWORD, "{kind:?}");
        assert_eq!(reply.seqno, seqno);
    }
    assert!(srv.sessions().await.unwrap().is_empty(), "not activated");
    // The right SERVINFO still gets in on the same connection.
    let reply = c.hello(Some("pw")).await;
    assert_eq!(reply.status, Status::OK);
    until_connected(&log, 1).await;
    assert_eq!(c.ping(3).await.status, Status::OK);
}

#[actix_rt::test]
async fn with_a_password_the_handshake_timer_still_closes_a_talker() {
    let mut options = ServerOptions::default();
    options.handshake_timeout = Duration::from_millis(400);
    let (srv, _) = server(Server::new(Auth::password("pw")).options(options)).await;
    let mut c = Raw::connect(srv.local_addr()).await;
    let start = Instant::now();
    c.send(&Frame::new(Kind::PingEcho).seqno(1)).await;
    assert_eq!(c.recv().await.unwrap().status, Status::PASSWORD);
    assert!(c.expect_closed().await.is_empty());
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(390), "closed early: {took:?}");
    assert!(took < Duration::from_secs(5), "closed late: {took:?}");
}

#[actix_rt::test]
async fn without_a_password_any_first_packet_activates_the_client() {
    let (srv, log) = anonymous().await;
    // A ping first: answered, and the client is in.
    let mut c = Raw::connect(srv.local_addr()).await;
    let pong = c.ping(7).await;
    assert_eq!(
        (pong.kind, pong.status, pong.seqno),
        (Kind::PingEcho, Status::OK, 7)
    );
    until_connected(&log, 1).await;
    // A SUBSCRIBE first: recorded and acknowledged.
    let mut s = Raw::connect(srv.local_addr()).await;
    s.send(&Frame::new(Kind::Subscribe).seqno(2).url("/a/"))
        .await;
    let ack = s.recv().await.unwrap();
    assert_eq!((ack.kind, ack.status), (Kind::Subscribe, Status::OK));
    until_connected(&log, 2).await;
    let subscribed = srv
        .session_infos()
        .await
        .unwrap()
        .into_iter()
        .any(|i| i.subscriptions == vec!["/a/".to_owned()]);
    assert!(subscribed);
    // An RPC first: routed (no routes here: status 3), not refused.
    let mut r = Raw::connect(srv.local_addr()).await;
    r.send(&Frame::new(Kind::Rpc).seqno(5).url("/nothing"))
        .await;
    let reply = r.recv().await.unwrap();
    assert_eq!((reply.kind, reply.status), (Kind::Rpc, Status::INVALID_URL));
    assert_eq!(srv.sessions().await.unwrap().len(), 3);
}
