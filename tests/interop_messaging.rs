//! Messaging interop with the real VSOA libraries: the Python `vsoa` 1.0.4
//! and Node `vsoa` 1.5.1 clients run every check of tests/peers against the
//! `echo_server` example (RPC GET/SET, user status, prefix routes,
//! subscribe + publish single and list, datagrams over TCP and quick,
//! streams both ways), and the psvc client uses a real Python VSOA server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::net::Inbox;
use common::peers::{node, python, run_json, script, start_with_line};
use psvc::client::{CallError, Client, ClientOptions, Rpc};
use psvc::frame::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server process that prints `{"port":N}` first; killed on drop.
struct Peer(Child, u16);

impl Peer {
    fn start(cmd: Command) -> Peer {
        let (child, line) = start_with_line(cmd, "server");
        let json: serde_json::Value =
            serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("server printed {line:?}"));
        let port = json["port"].as_u64().expect("no port") as u16;
        Peer(child, port)
    }

    fn echo_server(password: Option<&str>) -> Peer {
        let mut cmd = Command::new(common::example("echo_server"));
        cmd.args(["--listen", "127.0.0.1:0"]).stdin(Stdio::null());
        if let Some(pw) = password {
            cmd.args(["--password", pw]);
        }
        Peer::start(cmd)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn all_checks_pass(mut cmd: Command, port: u16, password: Option<&str>) {
    cmd.arg("127.0.0.1").arg(port.to_string());
    if let Some(pw) = password {
        cmd.args(["--password", pw]);
    }
    let (out, json) = run_json(cmd).await;
    let checks = json["checks"].as_object().expect("no checks");
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c["ok"] != true)
        .map(|(name, c)| format!("{name}: {c}"))
        .collect();
    assert!(
        out.status.success() && json["ok"] == true && failed.is_empty(),
        "failed checks: {failed:#?}\nall: {json}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every check ran (none skipped).
    assert_eq!(checks.len(), 14, "{json}");
    assert!(json.get("skipped").is_none(), "{json}");
}

fn py_interop() -> Command {
    let mut cmd = python();
    cmd.arg(script("py_interop.py"));
    cmd
}

fn node_interop() -> Command {
    let mut cmd = node();
    cmd.arg(script("node_interop.js"));
    cmd
}

#[actix_rt::test]
async fn python_vsoa_client_runs_every_check_on_echo_server() {
    let server = Peer::echo_server(None);
    all_checks_pass(py_interop(), server.1, None).await;
}

#[actix_rt::test]
async fn node_vsoa_client_runs_every_check_on_echo_server() {
    let server = Peer::echo_server(None);
    all_checks_pass(node_interop(), server.1, None).await;
}

#[actix_rt::test]
async fn both_clients_run_every_check_with_a_password() {
    let server = Peer::echo_server(Some("s3cret"));
    all_checks_pass(py_interop(), server.1, Some("s3cret")).await;
    all_checks_pass(node_interop(), server.1, Some("s3cret")).await;
}

/// The psvc client against a real Python VSOA server with the same routes.
#[actix_rt::test]
async fn psvc_client_uses_a_python_vsoa_server() {
    let mut cmd = python();
    cmd.arg(script("py_echo_server.py"))
        .args(["--lifetime", "60"])
        .stdin(Stdio::null());
    let server = Peer::start(cmd);
    let client = Client::connect(ClientOptions::new(format!("127.0.0.1:{}", server.1)))
        .await
        .unwrap();
    let inbox = Inbox::listen(&client).await;

    // RPC, GET and SET, typed JSON.
    let echoed: serde_json::Value = client
        .call("/echo", &serde_json::json!({"a": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(echoed, serde_json::json!({"a": [1, 2]}));
    let set = client.rpc(Rpc::set("/method")).await.unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&set.param).unwrap()["method"],
        "SET"
    );
    let files: serde_json::Value = client.call("/files/a/b", &()).await.unwrap();
    assert_eq!(files["url"], "/files/a/b");
    // A user status comes back as an error with that status.
    match client
        .call::<_, serde_json::Value>("/status", &serde_json::json!({"status": 201}))
        .await
    {
        Err(CallError::Status { status, .. }) => assert_eq!(status, Status(201)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client.rpc(Rpc::get("/nope")).await.unwrap().status,
        Status::INVALID_URL
    );

    // Subscribe with the prefix rule; the server publishes on request.
    client.subscribe(["/a/"]).await.unwrap();
    for url in ["/a/b", "/ab", "/a"] {
        let reply = client
            .rpc(
                Rpc::get("/publish")
                    .json(&serde_json::json!({"url": url, "param": {"k": 1}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(reply.status.is_ok());
    }
    common::until(|| inbox.published().len() >= 2).await;
    client.ping().await.unwrap();
    let urls: Vec<String> = inbox.published().into_iter().map(|(u, _)| u).collect();
    assert_eq!(urls, ["/a/b", "/a"]);

    // Datagrams: server → client over the quick channel, and the client's
    // quick datagram echoed back.
    client
        .rpc(
            Rpc::get("/datagram")
                .json(&serde_json::json!({"url": "/d", "param": {"x": 1}, "quick": true}))
                .unwrap(),
        )
        .await
        .unwrap();
    // UDP may drop a packet: the echo datagram is sent again each round
    // until both quick datagrams are in (a bounded number of rounds).
    let quick_from = |url: &[u8]| {
        inbox
            .datagrams()
            .into_iter()
            .find(|(f, q)| *q && &f.url[..] == url)
    };
    for _ in 0..100 {
        if quick_from(b"/d").is_some() && quick_from(b"/dg/echo").is_some() {
            break;
        }
        client
            .datagram("/dg/echo", r#"{"n":7}"#, "payload", true)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let datagrams = inbox.datagrams();
    let (pushed, _) = quick_from(b"/d").unwrap_or_else(|| panic!("no quick /d: {datagrams:?}"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&pushed.param).unwrap(),
        serde_json::json!({"x": 1})
    );
    let (echoed, _) = quick_from(b"/dg/echo")
        .unwrap_or_else(|| panic!("quick datagram not echoed: {datagrams:?}"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&echoed.param).unwrap(),
        serde_json::json!({"n": 7})
    );
    assert_eq!(&echoed.data[..], b"payload");

    // Streams both ways.
    let reply = client
        .rpc(
            Rpc::get("/stream/download")
                .json(&serde_json::json!({"size": 1_000_000}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(reply.flags.contains(psvc::frame::Flags::TUNNEL));
    let mut stream = client.stream(reply.tunid).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 1_000_000);
    assert!(got.iter().enumerate().all(|(i, b)| *b as usize == i % 251));
    let reply = client.rpc(Rpc::get("/stream/echo")).await.unwrap();
    let mut stream = client.stream(reply.tunid).await.unwrap();
    stream.write_all(b"there and back").await.unwrap();
    let mut back = [0u8; 14];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&back, b"there and back");
}
