//! 1 GiB through a stream with SHA-256 on both ends, in constant memory:
//! the process's peak RSS grows by a few MiB, not by the size moved.
//! (Its own test binary, so no other test shares the peak.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::net::{connect, serve};
use psvc::client::Rpc;
use psvc::commander::{Commander, Request, Response};
use psvc::stream::{Transfer, Tunnel, copy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

const SIZE: u64 = 1 << 30;
/// Peak RSS growth allowed for moving SIZE bytes: buffers, not data.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[actix_rt::test]
async fn one_gibibyte_in_constant_memory() {
    // The sending end reports what it sent (or why it failed) through this
    // channel: an assertion inside its spawned task could not fail the test.
    let (sent_tx, sent_rx) = oneshot::channel::<Result<Transfer, String>>();
    let sent_tx = Arc::new(Mutex::new(Some(sent_tx)));
    let commander = Commander::new().route("/big", move |req: Request| {
        let report = sent_tx.lock().unwrap().take();
        async move {
            let report = report.ok_or_else(|| {
                psvc::commander::CommandError::Failed("/big is served once".into())
            })?;
            let tunnel = Tunnel::open(&req)?;
            let port = tunnel.port();
            actix::spawn(async move {
                let sent = async {
                    let mut stream = tunnel.accept().await.map_err(|e| e.to_string())?;
                    let mut source = tokio::io::repeat(0x5a).take(SIZE);
                    let sent = copy(&mut source, &mut stream, |_| {})
                        .await
                        .map_err(|e| e.to_string())?;
                    stream.shutdown().await.map_err(|e| e.to_string())?;
                    Ok(sent)
                };
                let _ = report.send(sent.await);
            });
            Ok(Response::ok().tunnel(port))
        }
    });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    // Warm up allocator and runtime, then take the baseline.
    client.ping().await.unwrap();
    let before = status_kib("VmHWM:");
    let reply = client.rpc(Rpc::get("/big")).await.unwrap();
    let mut stream = client.stream(reply.tunid).await.unwrap();
    let mut sink = tokio::io::sink();
    let got = copy(&mut stream, &mut sink, |_| {}).await.unwrap();
    let after = status_kib("VmHWM:");
    assert_eq!(got.bytes, SIZE);
    // The digest of 1 GiB of 0x5a, computed here in 1 MiB blocks.
    let mut expected = sha2::Sha256::default();
    let block = vec![0x5au8; 1 << 20];
    for _ in 0..1024 {
        sha2::Digest::update(&mut expected, &block);
    }
    let expected: [u8; 32] = sha2::Digest::finalize(expected).into();
    assert_eq!(got.sha256, expected, "receiving end's digest");
    let sent = tokio::time::timeout(common::TIMEOUT, sent_rx)
        .await
        .expect("the sending end did not report")
        .expect("the sending end dropped its report")
        .expect("the sending end failed");
    assert_eq!(sent.bytes, SIZE);
    assert_eq!(sent.sha256, expected, "sending end's digest");
    let growth = after.saturating_sub(before);
    eprintln!("peak RSS {before} KiB -> {after} KiB (+{growth} KiB) for 1 GiB");
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB while streaming 1 GiB"
    );
}
