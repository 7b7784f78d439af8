//! One hostile peer floods the server with RPCs, datagrams and
//! subscriptions: every bound holds, the server keeps serving another
//! client, and its memory stays bounded. Alone in its file so that the RSS
//! it measures is this test's only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::net::{Raw, connect, serve_with};
use psvc::commander::{CommandError, Commander, Request, Response};
use psvc::frame::{self, Frame, Kind, MAX_TCP_PACKET, Status};
use psvc::socket::{Auth, Server, ServerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn encoded(frames: impl Iterator<Item = Frame>) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    for f in frames {
        frame::encode(&f, &mut out, MAX_TCP_PACKET).unwrap();
    }
    out.to_vec()
}

/// Writes `bytes` while reading (and discarding) whatever comes back;
/// returns the statuses of the RPC and SUBSCRIBE replies read.
async fn flood(raw: Raw, bytes: Vec<u8>, replies: usize) -> Vec<Status> {
    let (mut rx, mut tx) = raw.stream.into_split();
    let writer = actix::spawn(async move {
        tx.write_all(&bytes).await.unwrap();
        tx
    });
    let mut statuses = Vec::new();
    let mut buf = bytes::BytesMut::new();
    let read = async {
        while statuses.len() < replies {
            match frame::decode(&mut buf, MAX_TCP_PACKET) {
                Ok(f) => statuses.push(f.status),
                Err(frame::Error::Incomplete(_)) => {
                    if rx.read_buf(&mut buf).await.unwrap() == 0 {
                        break;
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("replies within 120 s");
    drop(writer.await.unwrap());
    statuses
}

#[actix_rt::test]
async fn a_flooding_peer_is_bounded_and_others_are_served() {
    const RPCS: usize = 200_000;
    const DATAGRAMS: usize = 100_000;
    let mut options = ServerOptions::default();
    options.max_inflight = 64;
    options.max_subscriptions = 5_000;
    options.send_buffer = 64 * 1024 * 1024;
    let commander = Commander::new()
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        })
        .route("/sleep", |_| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok::<_, CommandError>(Response::ok())
        })
        .datagram("/dg/sleep", |_| async {
            tokio::time::sleep(Duration::from_secs(600)).await;
        });
    let (srv, _) = serve_with(Server::new(Auth::anonymous()).options(options), commander).await;
    let good = connect(&srv).await;
    let before = rss();

    // 200,000 RPCs that never finish, written without waiting.
    let mut raw = Raw::connect(srv.local_addr()).await;
    raw.hello(None).await;
    let rpcs = (0..RPCS as u32).map(|n| Frame::new(Kind::Rpc).seqno(n).url("/sleep"));
    let statuses = flood(raw, encoded(rpcs), RPCS - 64).await;
    assert!(statuses.iter().all(|s| *s == Status::NO_MEMORY));
    assert_eq!(srv.stats().rpc_refused as usize, RPCS - 64);
    let v: serde_json::Value = good.call("/echo", &serde_json::json!(1)).await.unwrap();
    assert_eq!(v, serde_json::json!(1), "another client is served");

    // 100,000 datagrams whose handlers never finish.
    let mut raw = Raw::connect(srv.local_addr()).await;
    raw.hello(None).await;
    let datagrams = (0..DATAGRAMS).map(|_| Frame::new(Kind::Datagram).url("/dg/sleep"));
    let mut bytes = encoded(datagrams);
    bytes.extend(encoded(std::iter::once(
        Frame::new(Kind::PingEcho).seqno(9),
    )));
    flood(raw, bytes, 1).await;
    assert_eq!(srv.stats().datagrams_dropped as usize, DATAGRAMS - 64);

    // 20 SUBSCRIBE packets of 1,000 URLs each: 5 fit under the cap.
    let mut raw = Raw::connect(srv.local_addr()).await;
    raw.hello(None).await;
    let subscribes = (0..20).map(|batch| {
        let urls: Vec<String> = (0..1000).map(|i| format!("/s/{batch}/{i}")).collect();
        Frame::new(Kind::Subscribe)
            .seqno(batch)
            .param(serde_json::to_vec(&urls).unwrap())
    });
    let statuses = flood(raw, encoded(subscribes), 20).await;
    assert_eq!(statuses.iter().filter(|s| **s == Status::OK).count(), 5);
    assert_eq!(
        statuses.iter().filter(|s| **s == Status::NO_MEMORY).count(),
        15
    );
    assert_eq!(srv.stats().subscriptions_refused, 15);
    let v: serde_json::Value = good.call("/echo", &serde_json::json!(2)).await.unwrap();
    assert_eq!(v, serde_json::json!(2));

    // Unbounded, the RPCs alone held ~345 MiB at 500,000 (measured before
    // the bound); bounded, what stays is a few MiB of buffers.
    let grown = rss().saturating_sub(before);
    assert!(grown < 48 * 1024 * 1024, "RSS grew by {} MiB", grown >> 20);
}
