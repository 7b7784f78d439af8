//! Bad input ends only the connection that sent it: every case below closes
//! its sender with a logged reason while a healthy client keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use common::net::{Raw, anonymous, until_event};
use psvc::frame::{self, Flags, Frame, Kind, MAX_TCP_PACKET};
use psvc::socket::ClientEvent;

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut b = BytesMut::new();
    frame::encode(frame, &mut b, MAX_TCP_PACKET).unwrap();
    b.to_vec()
}

/// Byte strings that are not acceptable after a good handshake, and the
/// reason the server should give.
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let rpc = encoded(&Frame::new(Kind::Rpc).seqno(5).url("/a/b").param("{}"));
    let mut bad_magic = rpc.clone();
    bad_magic[0] = 0x19;
    let mut bad_kind = rpc.clone();
    bad_kind[1] = 0x07;
    let mut oversize = rpc.clone();
    oversize[16..20].copy_from_slice(&(300u32 * 1024).to_be_bytes());
    let mut huge = rpc.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut bad_pad = rpc.clone();
    bad_pad[2] = (bad_pad[2] & 0x3f) | (1 << 6);
    let mut disagree = rpc.clone();
    // url length says 9 but the padded body only holds 4 + 2 (+2 pad)
    disagree[10..12].copy_from_slice(&9u16.to_be_bytes());
    let truncated = rpc[..rpc.len() - 3].to_vec();
    let reply = encoded(&Frame::new(Kind::Rpc).flags(Flags::REPLY).seqno(1).url("/x"));
    let ping_reply = encoded(&Frame::new(Kind::PingEcho).flags(Flags::REPLY));
    vec![
        ("bad magic", bad_magic, "bad magic"),
        ("unknown type", bad_kind, "unknown packet type"),
        ("oversize data length", oversize, "exceeds"),
        ("4 GiB param length", huge, "exceeds"),
        ("pad count wrong", bad_pad, "pad count"),
        ("lengths disagree", disagree, "pad count"),
        ("truncated then closed", truncated, "inside a packet"),
        (
            "RPC reply sent to the server",
            reply,
            "REPLY sent to a server",
        ),
        (
            "PINGECHO reply sent to the server",
            ping_reply,
            "REPLY sent to a server",
        ),
    ]
}

#[actix_rt::test]
async fn each_malformed_packet_closes_only_its_connection() {
    let (srv, events) = anonymous().await;
    let mut healthy = Raw::connect(srv.local_addr()).await;
    healthy.hello(None).await;
    for (i, (name, bytes, reason)) in cases().into_iter().enumerate() {
        let mut bad = Raw::connect(srv.local_addr()).await;
        let id = bad.hello_id().await;
        bad.send_bytes(&bytes).await;
        if name.starts_with("truncated") {
            bad.stream.shutdown().await.unwrap();
        }
        assert!(
            bad.expect_closed().await.is_empty(),
            "{name}: nothing answered"
        );
        until_event(&events, |e| {
            e.iter().any(|e| {
                matches!(e, ClientEvent::Disconnected { info, reason: r }
                if info.id == id && r.contains(reason))
            })
        })
        .await;
        // The healthy client is unaffected.
        assert_eq!(
            healthy.ping(100 + i as u32).await.seqno,
            100 + i as u32,
            "{name}"
        );
    }
    assert_eq!(srv.sessions().await.unwrap().len(), 1);
}

#[actix_rt::test]
async fn garbage_before_the_handshake_closes_the_connection() {
    let (srv, _) = anonymous().await;
    let mut c = Raw::connect(srv.local_addr()).await;
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.expect_closed().await.is_empty());
}

#[actix_rt::test]
async fn ping_is_echoed_noop_ignored_and_padding_accepted() {
    let (srv, _) = anonymous().await;
    let mut c = Raw::connect(srv.local_addr()).await;
    c.hello(None).await;
    c.send(&Frame::new(Kind::Noop).seqno(1 << 16)).await;
    let pong = c.ping(0xdead_beef).await;
    assert_eq!(pong.kind, Kind::PingEcho);
    assert!(pong.is_reply());
    assert_eq!(pong.seqno, 0xdead_beef);
    assert_eq!(pong.status.0, 0);
    // Peers pad with leftover bytes, not zeros: accept any pad content.
    let mut b = encoded(&Frame::new(Kind::PingEcho).seqno(7).url("/p"));
    let n = b.len();
    b[n - 2..].copy_from_slice(&[0xaa, 0x55]);
    c.send_bytes(&b).await;
    assert_eq!(c.recv().await.unwrap().seqno, 7);
    // Several packets in one write, and one packet split over many writes.
    let mut burst = Vec::new();
    for s in 0..5u32 {
        burst.extend(encoded(&Frame::new(Kind::PingEcho).seqno(s)));
    }
    c.send_bytes(&burst).await;
    for s in 0..5u32 {
        assert_eq!(c.recv().await.unwrap().seqno, s);
    }
    let one = encoded(&Frame::new(Kind::PingEcho).seqno(42));
    for byte in one {
        c.send_bytes(&[byte]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(c.recv().await.unwrap().seqno, 42);
}

use tokio::io::AsyncWriteExt;
