//! A peer that stops reading never stalls the others: its output is bounded
//! and the slow-peer policy ends (or trims) only its session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::net::{Raw, server, until_event};
use psvc::frame::{Frame, Kind};
use psvc::socket::{Auth, ClientEvent, Server, ServerOptions, SlowPeer};

fn options(policy: SlowPeer) -> ServerOptions {
    let mut o = ServerOptions::default();
    o.send_buffer = 512 * 1024;
    o.send_timeout = Duration::from_millis(300);
    o.slow_peer = policy;
    o
}

fn big(n: u32) -> Frame {
    Frame::new(Kind::Publish)
        .url("/bulk")
        .seqno(n)
        .data(vec![7u8; 200 * 1024])
}

#[actix_rt::test]
async fn a_slow_reader_is_disconnected_while_a_fast_one_gets_everything() {
    let (srv, events) =
        server(Server::new(Auth::anonymous()).options(options(SlowPeer::Disconnect))).await;
    let mut slow = Raw::connect(srv.local_addr()).await;
    let slow_id = slow.hello_id().await;
    let mut fast = Raw::connect(srv.local_addr()).await;
    let fast_id = fast.hello_id().await;
    let sessions = srv.sessions().await.unwrap();
    let to = |id| sessions.iter().find(|s| s.id() == id).unwrap().clone();
    let (to_slow, to_fast) = (to(slow_id), to(fast_id));

    // 200 × 200 KiB = 40 MiB to each; the slow peer reads nothing.
    let n = 200u32;
    let reader = actix::spawn(async move {
        let mut got = 0;
        while got < n {
            let f = fast.recv().await.expect("fast peer cut off");
            assert_eq!(f.seqno, got);
            got += 1;
        }
        fast
    });
    let start = Instant::now();
    let mut refused_slow = 0;
    for i in 0..n {
        assert!(
            to_fast.send_wait(big(i)).await.unwrap(),
            "fast peer refused at {i}"
        );
        // `push` does not wait for room: the bound is hit at once, before
        // the send timeout could end the session another way.
        if to_slow.connected() && !to_slow.push(big(i)) {
            refused_slow += 1;
        }
    }
    let mut fast = reader.await.unwrap();
    assert!(refused_slow > 0, "the slow peer's queue must have filled");
    until_event(&events, |e| {
        e.iter().any(|e| {
            matches!(e, ClientEvent::Disconnected { info, reason }
            if info.id == slow_id && reason.contains("slow peer"))
        })
    })
    .await;
    assert_eq!(fast.ping(1).await.seqno, 1, "the fast peer is still served");
    assert!(start.elapsed() < Duration::from_secs(20));
    drop(slow);
}

#[actix_rt::test]
async fn output_that_does_not_move_within_the_send_timeout_ends_the_session() {
    // A queue limit far away, so only the send timeout can end it.
    let mut o = options(SlowPeer::Disconnect);
    o.send_buffer = 256 * 1024 * 1024;
    let (srv, events) = server(Server::new(Auth::anonymous()).options(o)).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = Raw::from_stream(socket.connect(srv.local_addr()).await.unwrap());
    let id = stuck.hello_id().await;
    let s = common::net::session(&srv, id).await;
    let start = Instant::now();
    while s.connected() && start.elapsed() < Duration::from_secs(10) {
        let _ = s
            .send_wait(
                Frame::new(Kind::Publish)
                    .url("/x")
                    .data(vec![1u8; 64 * 1024]),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until_event(&events, |e| {
        e.iter().any(|e| {
            matches!(e, ClientEvent::Disconnected { info, reason }
            if info.id == id && reason.contains("send timeout"))
        })
    })
    .await;
    drop(stuck);
}

#[actix_rt::test]
async fn drop_newest_keeps_the_slow_peer_and_counts_what_it_lost() {
    let (srv, _) =
        server(Server::new(Auth::anonymous()).options(options(SlowPeer::DropNewest))).await;
    let mut slow = Raw::connect(srv.local_addr()).await;
    slow.hello(None).await;
    let s = srv.sessions().await.unwrap().remove(0);
    let mut accepted = 0u32;
    for i in 0..100 {
        if s.push(big(i)) {
            accepted += 1;
        }
    }
    let dropped = s.info().dropped;
    assert!(dropped > 0);
    assert_eq!(u64::from(accepted) + dropped, 100);
    // Now the peer reads: it gets exactly the accepted packets, in order,
    // and the session is still alive.
    for i in 0..accepted {
        let f = slow.recv().await.unwrap();
        assert_eq!(f.seqno, i);
    }
    assert_eq!(slow.ping(77).await.seqno, 77);
    assert!(s.connected());
}
