//! Streams: an RPC reply with a tunid opens a one-shot TCP tunnel; bytes
//! flow both ways; files move with their SHA-256; nobody connecting in time
//! closes the tunnel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::net::{connect, serve};
use psvc::client::Rpc;
use psvc::commander::{Commander, Request, Response};
use psvc::stream::{StreamError, Transfer, Tunnel, recv_file, send_file};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A file of `len` pseudo-random bytes.
fn random_file(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(7);
    let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    let path = dir.join("source.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

type Uploads = Arc<Mutex<Vec<Transfer>>>;

fn file_server(
    source: std::path::PathBuf,
    upload_to: std::path::PathBuf,
    uploads: Uploads,
) -> Commander {
    Commander::new()
        .route("/download", move |req: Request| {
            let source = source.clone();
            async move {
                let tunnel = Tunnel::open(&req)?;
                let port = tunnel.port();
                actix::spawn(async move {
                    let mut stream = tunnel.accept().await.unwrap();
                    send_file(&source, &mut stream, |_| {}).await.unwrap();
                });
                Ok(Response::ok().tunnel(port))
            }
        })
        .route("/upload", move |req: Request| {
            let target = upload_to.clone();
            let uploads = uploads.clone();
            async move {
                let tunnel = Tunnel::open(&req)?;
                let port = tunnel.port();
                actix::spawn(async move {
                    let mut stream = tunnel.accept().await.unwrap();
                    let transfer = recv_file(&mut stream, &target, |_| {}).await.unwrap();
                    uploads.lock().unwrap().push(transfer);
                });
                Ok(Response::ok().tunnel(port))
            }
        })
        .route("/echo", |req: Request| async move {
            let tunnel = Tunnel::open(&req)?;
            let port = tunnel.port();
            actix::spawn(async move {
                let stream = tunnel.accept().await.unwrap();
                let (mut rx, mut tx) = stream.into_split();
                tokio::io::copy(&mut rx, &mut tx).await.unwrap();
                tx.shutdown().await.unwrap();
            });
            Ok(Response::ok().tunnel(port))
        })
}

#[actix_rt::test]
async fn files_go_both_ways_with_their_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let (source, bytes) = random_file(dir.path(), 8 * 1024 * 1024 + 13);
    let uploaded = dir.path().join("uploaded.bin");
    let uploads = Uploads::default();
    let (srv, _) = serve(file_server(
        source.clone(),
        uploaded.clone(),
        uploads.clone(),
    ))
    .await;
    let client = connect(&srv).await;
    let want = sha256_hex(&bytes);

    // Download.
    let reply = client.rpc(Rpc::get("/download")).await.unwrap();
    assert!(reply.flags.contains(psvc::frame::Flags::TUNNEL));
    let mut stream = client.stream(reply.tunid).await.unwrap();
    let downloaded = dir.path().join("downloaded.bin");
    let mut seen = 0;
    let transfer = recv_file(&mut stream, &downloaded, |n| seen = n)
        .await
        .unwrap();
    assert_eq!(transfer.bytes, bytes.len() as u64);
    assert_eq!(seen, transfer.bytes);
    assert_eq!(transfer.sha256_hex(), want);
    assert_eq!(std::fs::read(&downloaded).unwrap(), bytes);
    assert!(!dir.path().join("downloaded.bin.part").exists());

    // Upload.
    let reply = client.rpc(Rpc::set("/upload")).await.unwrap();
    let mut stream = client.stream(reply.tunid).await.unwrap();
    let sent = send_file(&source, &mut stream, |_| {}).await.unwrap();
    assert_eq!(sent.sha256_hex(), want);
    common::until(|| !uploads.lock().unwrap().is_empty()).await;
    assert_eq!(uploads.lock().unwrap()[0], sent);
    assert_eq!(std::fs::read(&uploaded).unwrap(), bytes);
}

#[actix_rt::test]
async fn a_stream_carries_bytes_in_both_directions_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (srv, _) = serve(file_server(
        dir.path().join("x"),
        dir.path().join("y"),
        Uploads::default(),
    ))
    .await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/echo")).await.unwrap();
    let stream = client.stream(reply.tunid).await.unwrap();
    let (mut rx, mut tx) = stream.into_split();
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let expected = data.clone();
    let writer = async move {
        tx.write_all(&data).await.unwrap();
        tx.shutdown().await.unwrap();
    };
    let reader = async move {
        let mut back = Vec::new();
        rx.read_to_end(&mut back).await.unwrap();
        back
    };
    let ((), back) = futures::join!(writer, reader);
    assert_eq!(back.len(), expected.len());
    assert!(back == expected);
    // The tunnel was one-shot: its port no longer accepts.
    assert!(client.stream(reply.tunid).await.is_err());
}

#[actix_rt::test]
async fn a_tunnel_nobody_uses_closes_after_its_timeout() {
    let tunnel = Tunnel::bind("127.0.0.1".parse().unwrap())
        .unwrap()
        .timeout(Duration::from_millis(200));
    let port = tunnel.port();
    let started = std::time::Instant::now();
    match tunnel.accept().await {
        Err(StreamError::Timeout(d)) => assert_eq!(d, Duration::from_millis(200)),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}
