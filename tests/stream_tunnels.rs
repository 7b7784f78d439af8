//! Who gets a stream, and for how long: a connection from another address,
//! or without the tunnel's token (or with a wrong one, or over plain TCP to
//! a TLS tunnel), is closed
//! and the caller still gets its transfer; a stream that makes no progress
//! fails after the idle timeout; under TLS the stream is TLS, with the
//! SHA-256 checked on both ends; plain VSOA-style clients keep working on
//! tunnels that ask for no token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::net::{connect, serve, serve_with};
use common::pki::Pki;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::{Commander, Request};
use psvc::frame::{Flags, Frame, Kind, Status};
use psvc::socket::{Auth, ClientTls, Server, ServerTls};
use psvc::stream::{
    StreamError, TOKEN_KEY, Transfer, Tunnel, copy, recv_file, reply_token, send_file,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_file(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut rng = fastrand::Rng::with_seed(11);
    let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
    let path = dir.join("source.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// What the server side of each tunnel ended with.
type Outcomes = Arc<Mutex<Vec<Result<Transfer, String>>>>;

/// `/download` sends `source`, `/upload` receives into `target`, each
/// through a tunnel made by `open` (token, TLS); outcomes are recorded.
fn file_routes(
    source: std::path::PathBuf,
    target: std::path::PathBuf,
    outcomes: Outcomes,
    open: fn(&Request) -> Result<Tunnel, StreamError>,
) -> Commander {
    let (out1, out2) = (outcomes.clone(), outcomes);
    Commander::new()
        .route("/download", move |req: Request| {
            let (source, outcomes) = (source.clone(), out1.clone());
            async move {
                let tunnel = open(&req)?;
                let reply = tunnel.response();
                actix::spawn(async move {
                    let result = match tunnel.accept().await {
                        Ok(mut stream) => send_file(&source, &mut stream, |_| {})
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    outcomes.lock().unwrap().push(result);
                });
                Ok(reply)
            }
        })
        .route("/upload", move |req: Request| {
            let (target, outcomes) = (target.clone(), out2.clone());
            async move {
                let tunnel = open(&req)?;
                let reply = tunnel.response();
                actix::spawn(async move {
                    let result = match tunnel.accept().await {
                        Ok(mut stream) => recv_file(&mut stream, &target, |_| {})
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    outcomes.lock().unwrap().push(result);
                });
                Ok(reply)
            }
        })
}

fn with_token(req: &Request) -> Result<Tunnel, StreamError> {
    Tunnel::open(req)?.require_token()
}

fn plain(req: &Request) -> Result<Tunnel, StreamError> {
    Tunnel::open(req)
}

/// Waits until the server closes `stream` (EOF or reset), bounded; it
/// may say a few bytes first (a TLS alert), never the stream's data.
async fn closed_by_server(stream: &mut TcpStream) {
    let mut said = Vec::new();
    let end = tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut said))
        .await
        .expect("the server kept a refused connection open");
    assert!(
        said.len() < 64,
        "the server sent {} bytes ({end:?})",
        said.len()
    );
}

/// A spawned server side's result, or a failure if it never ends.
async fn bounded<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(common::TIMEOUT, task)
        .await
        .expect("the server side never ended")
        .unwrap()
}

fn tunnel_addr(srv: &psvc::socket::ServerHandle, reply: &Frame) -> SocketAddr {
    SocketAddr::new(srv.local_addr().ip(), reply.tunid)
}

#[actix_rt::test]
async fn connections_without_the_token_are_closed_and_the_caller_still_gets_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (source, bytes) = random_file(dir.path(), 3 * 1024 * 1024 + 5);
    let outcomes = Outcomes::default();
    let (srv, _) = serve(file_routes(
        source,
        dir.path().join("up.bin"),
        outcomes.clone(),
        with_token,
    ))
    .await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/download")).await.unwrap();
    assert!(reply.flags.contains(Flags::TUNNEL));
    let param: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    let token = param[TOKEN_KEY].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    let addr = tunnel_addr(&srv, &reply);

    // A peer that sends 32 wrong bytes: closed.
    let mut wrong = TcpStream::connect(addr).await.unwrap();
    wrong.write_all(&[0x5a; 32]).await.unwrap();
    closed_by_server(&mut wrong).await;
    // The right token but one byte flipped: closed.
    let mut flipped = reply_token(&reply).unwrap().unwrap();
    flipped[31] ^= 1;
    let mut near = TcpStream::connect(addr).await.unwrap();
    near.write_all(&flipped).await.unwrap();
    closed_by_server(&mut near).await;
    // A peer that connects and leaves before the token: refused too.
    drop(TcpStream::connect(addr).await.unwrap());
    // A VSOA-style peer that sends its own bytes first: they are not the token.
    let mut vsoa = TcpStream::connect(addr).await.unwrap();
    vsoa.write_all(&[b'x'; 100]).await.unwrap();
    closed_by_server(&mut vsoa).await;
    // A peer that connects and stays silent does not hold up the caller.
    let _silent = TcpStream::connect(addr).await.unwrap();

    // The caller, with the token, gets the whole file.
    let mut stream = client.open_stream(&reply).await.unwrap();
    let got = dir.path().join("down.bin");
    let transfer = recv_file(&mut stream, &got, |_| {}).await.unwrap();
    assert_eq!(transfer.sha256_hex(), sha256_hex(&bytes));
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    common::until(|| !outcomes.lock().unwrap().is_empty()).await;
    let sent = outcomes.lock().unwrap()[0].clone().unwrap();
    assert_eq!(sent, transfer, "same bytes and SHA-256 on both ends");
}

#[actix_rt::test]
async fn a_connection_from_another_address_is_closed_and_the_caller_still_connects() {
    // Loopback is all of 127/8 on Linux: a socket bound to 127.0.0.2 is a
    // peer at another address than the caller's 127.0.0.1.
    let dir = tempfile::tempdir().unwrap();
    let (source, bytes) = random_file(dir.path(), 256 * 1024 + 9);
    let outcomes = Outcomes::default();
    let (srv, _) = serve(file_routes(
        source,
        dir.path().join("up.bin"),
        outcomes.clone(),
        plain,
    ))
    .await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/download")).await.unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stranger = socket.connect(tunnel_addr(&srv, &reply)).await.unwrap();
    closed_by_server(&mut stranger).await;
    let mut stream = client.open_stream(&reply).await.unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).await.unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&bytes));
    common::until(|| !outcomes.lock().unwrap().is_empty()).await;
    assert!(outcomes.lock().unwrap()[0].is_ok());
}

#[actix_rt::test]
async fn a_token_tunnel_nobody_presents_the_token_to_is_refused_at_its_timeout() {
    let tunnel = Tunnel::bind("127.0.0.1".parse().unwrap())
        .unwrap()
        .timeout(Duration::from_millis(400))
        .require_token()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], tunnel.port()));
    let started = Instant::now();
    let accept = actix::spawn(tunnel.accept());
    let mut wrong = TcpStream::connect(addr).await.unwrap();
    wrong.write_all(&[0u8; 32]).await.unwrap();
    closed_by_server(&mut wrong).await;
    match accept.await.unwrap() {
        Err(StreamError::Refused { refused, timeout }) => {
            assert_eq!(refused, 1);
            assert_eq!(timeout, Duration::from_millis(400));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[actix_rt::test]
async fn tunnels_without_a_token_serve_plain_vsoa_style_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (source, bytes) = random_file(dir.path(), 1024 * 1024 + 1);
    let outcomes = Outcomes::default();
    let (srv, _) = serve(file_routes(
        source.clone(),
        dir.path().join("up.bin"),
        outcomes.clone(),
        plain,
    ))
    .await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/download")).await.unwrap();
    assert!(reply.param.is_empty(), "no token offered");
    assert_eq!(reply_token(&reply).unwrap(), None);
    // A raw TCP connection, as vsoa-python or vsoa-node make.
    let mut raw = TcpStream::connect(tunnel_addr(&srv, &reply)).await.unwrap();
    let mut got = Vec::new();
    raw.read_to_end(&mut got).await.unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&bytes));

    // Upload with the psvc client's `open_stream`: no token to send.
    let reply = client.rpc(Rpc::set("/upload")).await.unwrap();
    let mut stream = client.open_stream(&reply).await.unwrap();
    assert!(!stream.is_tls());
    let sent = send_file(&source, &mut stream, |_| {}).await.unwrap();
    common::until(|| outcomes.lock().unwrap().len() == 2).await;
    assert_eq!(outcomes.lock().unwrap()[1].clone().unwrap(), sent);
}

#[actix_rt::test]
async fn a_peer_that_connects_and_sends_nothing_ends_the_upload_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("never.bin");
    let tunnel = Tunnel::bind("127.0.0.1".parse().unwrap())
        .unwrap()
        .idle_timeout(Some(IDLE));
    let addr = SocketAddr::from(([127, 0, 0, 1], tunnel.port()));
    let t = target.clone();
    let server = actix::spawn(async move {
        let mut stream = tunnel.accept().await.unwrap();
        assert_eq!(stream.idle_timeout(), Some(IDLE));
        // Measured where the event happens: from the accept to the error.
        let accepted = Instant::now();
        let err = recv_file(&mut stream, &t, |_| {}).await.unwrap_err();
        (err, accepted.elapsed())
    });
    let silent = TcpStream::connect(addr).await.unwrap();
    let (err, waited) = bounded(server).await;
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(waited >= IDLE, "gave up after {waited:?}");
    assert!(waited < IDLE + Duration::from_secs(3), "took {waited:?}");
    assert!(!target.exists());
    assert!(!dir.path().join("never.bin.part").exists());
    drop(silent);
}

#[actix_rt::test]
async fn a_peer_that_stops_reading_ends_the_download_after_the_idle_timeout() {
    const IDLE: Duration = Duration::from_millis(300);
    let tunnel = Tunnel::bind("127.0.0.1".parse().unwrap())
        .unwrap()
        .idle_timeout(Some(IDLE));
    let addr = SocketAddr::from(([127, 0, 0, 1], tunnel.port()));
    let last = Arc::new(Mutex::new(None::<Instant>));
    let seen = last.clone();
    let server = actix::spawn(async move {
        let mut stream = tunnel.accept().await.unwrap();
        // Far more than the socket buffers hold.
        let mut source = tokio::io::repeat(7).take(1 << 30);
        let err = copy(&mut source, &mut stream, |_| {
            *seen.lock().unwrap() = Some(Instant::now());
        })
        .await
        .unwrap_err();
        (err, Instant::now())
    });
    let stalled = TcpStream::connect(addr).await.unwrap();
    let (err, failed_at) = bounded(server).await;
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    let last = last.lock().unwrap().expect("some bytes went out first");
    let idle = failed_at - last;
    assert!(idle >= IDLE, "gave up {idle:?} after the last progress");
    assert!(idle < IDLE + Duration::from_secs(3), "took {idle:?}");
    drop(stalled);
}

#[actix_rt::test]
async fn a_slow_transfer_that_keeps_moving_is_not_idle() {
    const IDLE: Duration = Duration::from_millis(250);
    let tunnel = Tunnel::bind("127.0.0.1".parse().unwrap())
        .unwrap()
        .idle_timeout(Some(IDLE));
    let addr = SocketAddr::from(([127, 0, 0, 1], tunnel.port()));
    let server = actix::spawn(async move {
        let mut stream = tunnel.accept().await.unwrap();
        copy(&mut stream, &mut tokio::io::sink(), |_| {}).await
    });
    let mut peer = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // Ten pieces, one every 100 ms: 1 s in all, never 250 ms without bytes.
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..10 {
        interval.tick().await;
        peer.write_all(&[1u8; 1000]).await.unwrap();
    }
    peer.shutdown().await.unwrap();
    let transfer = server.await.unwrap().unwrap();
    assert_eq!(transfer.bytes, 10_000);
    assert!(
        started.elapsed() > IDLE * 3,
        "the transfer outlasted the idle timeout"
    );
}

#[actix_rt::test]
async fn the_client_end_times_out_when_the_server_goes_quiet() {
    let commander = Commander::new().route("/quiet", |req: Request| async move {
        let tunnel = Tunnel::open(&req)?.require_token()?;
        let reply = tunnel.response();
        actix::spawn(async move {
            // Accept, then hold the stream without a byte until the peer leaves.
            if let Ok(mut stream) = tunnel.accept().await {
                stream.set_idle_timeout(None);
                let mut buf = [0u8; 1];
                let _ = stream.read(&mut buf).await;
            }
        });
        Ok(reply)
    });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/quiet")).await.unwrap();
    let mut stream = client.open_stream(&reply).await.unwrap();
    stream.set_idle_timeout(Some(Duration::from_millis(200)));
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let err = tokio::time::timeout(common::TIMEOUT, stream.read(&mut buf))
        .await
        .expect("no idle timeout")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[actix_rt::test]
async fn replies_with_a_malformed_token_or_no_tunnel_are_clear_errors() {
    let (srv, _) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let offer = |param: &str| {
        Frame::new(Kind::Rpc)
            .flags(Flags::REPLY.with(Flags::TUNNEL))
            .tunid(1)
            .param(param.to_owned())
    };
    for bad in [
        r#"{"stream_token": 7}"#,
        r#"{"stream_token": "abc"}"#,
        r#"{"stream_token": "zz00000000000000000000000000000000000000000000000000000000000000"}"#,
        r#"{"stream_token": "éé000000000000000000000000000000000000000000000000000000000000"}"#,
    ] {
        match client.open_stream(&offer(bad)).await {
            Err(StreamError::BadToken(_)) => {}
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Params that are not a JSON object, or have no token, carry none.
    for none in ["", "[1,2]", "\"text\"", r#"{"size": 5}"#, "not json"] {
        assert_eq!(reply_token(&offer(none)).unwrap(), None, "{none}");
    }
    let no_tunnel = Frame::new(Kind::Rpc).flags(Flags::REPLY);
    assert!(matches!(
        client.open_stream(&no_tunnel).await,
        Err(StreamError::NoTunnel)
    ));
}

fn tls_download(req: &Request) -> Result<Tunnel, StreamError> {
    Tunnel::open_tls(req, TLS.get().unwrap())?.require_token()
}

/// The server's TLS settings, for the route functions (one test uses them).
static TLS: std::sync::OnceLock<ServerTls> = std::sync::OnceLock::new();

#[actix_rt::test]
async fn under_tls_the_stream_is_tls_with_the_sha256_checked_on_both_ends() {
    let pki = Pki::new("streams");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let tls = ServerTls::from_pem(&cert, &key).unwrap();
    assert!(TLS.set(tls.clone()).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let (source, bytes) = random_file(dir.path(), 4 * 1024 * 1024 + 3);
    let uploaded = dir.path().join("up.bin");
    let outcomes = Outcomes::default();
    let commander = file_routes(
        source.clone(),
        uploaded.clone(),
        outcomes.clone(),
        tls_download,
    )
    // Tunnel::open on a TLS caller refuses to offer plaintext.
    .route("/plain", |req: Request| async move {
        let tunnel = Tunnel::open(&req)?;
        Ok(tunnel.response())
    });
    let (srv, _) = serve_with(Server::new(Auth::anonymous()).tls(tls), commander).await;
    let client = Client::connect(
        ClientOptions::new(srv.local_addr().to_string())
            .tls(ClientTls::new(pki.ca(), "localhost").unwrap()),
    )
    .await
    .unwrap();
    let want = sha256_hex(&bytes);

    // Download: a plain-TCP peer sending the right token in clear is still
    // refused (no TLS handshake), then the client gets the file over TLS.
    let reply = client.rpc(Rpc::get("/download")).await.unwrap();
    let mut clear = TcpStream::connect(tunnel_addr(&srv, &reply)).await.unwrap();
    clear
        .write_all(&reply_token(&reply).unwrap().unwrap())
        .await
        .unwrap();
    closed_by_server(&mut clear).await;
    let mut stream = client.open_stream(&reply).await.unwrap();
    assert!(stream.is_tls());
    let got = dir.path().join("down.bin");
    let received = recv_file(&mut stream, &got, |_| {}).await.unwrap();
    assert_eq!(received.sha256_hex(), want);
    assert_eq!(std::fs::read(&got).unwrap(), bytes);
    common::until(|| !outcomes.lock().unwrap().is_empty()).await;
    assert_eq!(outcomes.lock().unwrap()[0].clone().unwrap(), received);

    // Upload over TLS.
    let reply = client.rpc(Rpc::set("/upload")).await.unwrap();
    let mut stream = client.open_stream(&reply).await.unwrap();
    let sent = send_file(&source, &mut stream, |_| {}).await.unwrap();
    assert_eq!(sent.sha256_hex(), want);
    common::until(|| outcomes.lock().unwrap().len() == 2).await;
    assert_eq!(outcomes.lock().unwrap()[1].clone().unwrap(), sent);
    assert_eq!(std::fs::read(&uploaded).unwrap(), bytes);

    let reply = client.rpc(Rpc::get("/plain")).await.unwrap();
    assert_eq!(reply.status, Status::NO_RESPONDING);
    let message = String::from_utf8_lossy(&reply.param).into_owned();
    assert!(message.contains("open_tls"), "{message}");
}
