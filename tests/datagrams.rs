//! Datagrams in both directions, over TCP and over the quick UDP channel
//! (server UDP socket on the TCP port, client id in the seqno).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::net::{Inbox, Raw, connect, serve};
use psvc::client::{Client, ClientOptions, RequestError};
use psvc::commander::{Commander, Request};
use psvc::frame::{self, Flags, Frame, Kind};

type Seen = Arc<Mutex<Vec<(String, Bytes, bool, u32)>>>;

/// Records datagrams under `/dg/` with the caller's id.
fn recorder(seen: Seen) -> Commander {
    Commander::new().datagram("/dg/", move |req: Request| {
        let seen = seen.clone();
        async move {
            let id = req.caller().map_or(0, |c| c.id());
            seen.lock()
                .unwrap()
                .push((req.url, req.data, req.quick, id));
        }
    })
}

#[actix_rt::test]
async fn client_to_server_over_tcp_and_udp() {
    let seen = Seen::default();
    let (srv, _) = serve(recorder(seen.clone())).await;
    let client = connect(&srv).await;
    let id = client.info().await.unwrap().client_id;
    client.datagram("/dg/tcp", "", "t", false).await.unwrap();
    common::until(|| seen.lock().unwrap().len() == 1).await;
    // UDP may drop: send until one arrives (bounded).
    for _ in 0..50 {
        client.datagram("/dg/udp", "", "u", true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        if seen.lock().unwrap().iter().any(|d| d.2) {
            break;
        }
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], ("/dg/tcp".into(), Bytes::from("t"), false, id));
    let quick = seen
        .iter()
        .find(|d| d.2)
        .expect("no quick datagram arrived");
    assert_eq!(quick, &("/dg/udp".into(), Bytes::from("u"), true, id));
}

#[actix_rt::test]
async fn server_to_one_client_over_tcp_and_udp() {
    let (srv, _) = serve(Commander::new()).await;
    let a = connect(&srv).await;
    let b = connect(&srv).await;
    let a_inbox = Inbox::listen(&a).await;
    let b_inbox = Inbox::listen(&b).await;
    let a_id = a.info().await.unwrap().client_id;
    let session = common::net::session(&srv, a_id).await;
    assert!(session.quick_addr().is_some());
    session.push(Frame::new(Kind::Datagram).url("/d").data("tcp"));
    common::until(|| a_inbox.datagrams().len() == 1).await;
    for _ in 0..50 {
        assert!(session.send_quick(&Frame::new(Kind::Datagram).url("/d").data("udp")));
        tokio::time::sleep(Duration::from_millis(10)).await;
        if a_inbox.datagrams().iter().any(|d| d.1) {
            break;
        }
    }
    let got = a_inbox.datagrams();
    assert_eq!((&got[0].0.data[..], got[0].1), (&b"tcp"[..], false));
    assert!(got.iter().any(|(f, q)| *q && &f.data[..] == b"udp"));
    b.ping().await.unwrap();
    assert!(
        b_inbox.datagrams().is_empty(),
        "a datagram went to the wrong client"
    );
}

#[actix_rt::test]
async fn quick_packets_with_a_wrong_id_or_garbage_are_dropped() {
    let seen = Seen::default();
    let (srv, _) = serve(recorder(seen.clone())).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(srv.local_addr()).await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let mut raw = Raw::connect(srv.local_addr()).await;
    let id = common::net::client_id(
        &raw.hello_frame(Frame::new(Kind::ServInfo).flags(Flags::TUNNEL).tunid(port))
            .await,
    );
    // Another socket on the same host, sending with the victim's id.
    let spoof = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    spoof.connect(srv.local_addr()).await.unwrap();
    let packet = |seqno: u32, data: &'static str| {
        let mut buf = bytes::BytesMut::new();
        frame::encode(
            &Frame::new(Kind::Datagram)
                .seqno(seqno)
                .url("/dg/raw")
                .data(data),
            &mut buf,
            frame::MAX_UDP_PACKET,
        )
        .unwrap();
        buf
    };
    udp.send(&packet(id.wrapping_add(1000), "wrong id"))
        .await
        .unwrap();
    spoof.send(&packet(id, "spoofed")).await.unwrap();
    udp.send(b"\x29garbage").await.unwrap();
    udp.send(&[0u8; 3]).await.unwrap();
    let mut rpc = bytes::BytesMut::new();
    frame::encode(
        &Frame::new(Kind::Rpc).seqno(id).url("/dg/raw"),
        &mut rpc,
        frame::MAX_UDP_PACKET,
    )
    .unwrap();
    udp.send(&rpc).await.unwrap();
    for _ in 0..50 {
        udp.send(&packet(id, "right")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !seen.lock().unwrap().is_empty() {
            break;
        }
    }
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the valid quick datagram never arrived");
    assert!(
        seen.iter()
            .all(|d| &d.1[..] == b"right" && d.2 && d.3 == id),
        "{seen:?}"
    );
    // The TCP side is untouched.
    assert_eq!(raw.ping(7).await.seqno, 7);
    // The wrong id and the spoofed packet were counted, not delivered.
    assert!(srv.stats().quick_rejected >= 2, "{:?}", srv.stats());
}

#[actix_rt::test]
async fn the_handshake_announces_the_quick_port() {
    let (srv, _) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let id = client.info().await.unwrap().client_id;
    let session = common::net::session(&srv, id).await;
    let quick = session
        .info()
        .quick_port
        .expect("client announced no quick port");
    assert_ne!(quick, 0);
    // Without the quick channel: no port, and quick datagrams are refused.
    let plain = Client::connect(ClientOptions::new(srv.local_addr().to_string()).quick(false))
        .await
        .unwrap();
    assert_eq!(
        plain.datagram("/x", "", "", true).await.unwrap_err(),
        RequestError::NoQuickChannel
    );
    let mut raw = Raw::connect(srv.local_addr()).await;
    let reply = raw
        .hello_frame(Frame::new(Kind::ServInfo).flags(Flags::TUNNEL).tunid(4242))
        .await;
    let id = common::net::client_id(&reply);
    let session = common::net::session(&srv, id).await;
    assert_eq!(session.info().quick_port, Some(4242));
}
