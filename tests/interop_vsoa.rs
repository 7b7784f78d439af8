//! Interop with the real VSOA libraries: the Python (PyPI 1.0.4) and Node
//! (npm 1.5.1) clients against a psvc server, with and without a password,
//! and the psvc client against a real Python VSOA server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::net::Inbox;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::net::server;
use common::peers::{self, node, python, run_json, script};
use psvc::client::{Client, ClientMessage, ClientOptions, ConnectError};
use psvc::frame::{Frame, Kind, Status};
use psvc::socket::{Auth, ClientEvent, Server};

async fn psvc_server(
    auth: Auth,
) -> (
    std::net::SocketAddr,
    common::net::EventLog,
    psvc::socket::ServerHandle,
) {
    let (srv, log) = server(auth_server(auth)).await;
    (srv.local_addr(), log, srv)
}

fn auth_server(auth: Auth) -> Server {
    Server::new(auth).info(serde_json::json!({"name": "psvc-interop"}))
}

fn client_cmd(lang: &str, port: u16, password: Option<&str>) -> std::process::Command {
    let (mut cmd, file) = match lang {
        "python" => (python(), "py_client.py"),
        _ => (node(), "node_client.js"),
    };
    cmd.arg(script(file)).arg("127.0.0.1").arg(port.to_string());
    if let Some(pw) = password {
        cmd.arg("--password").arg(pw);
    }
    cmd
}

async fn real_clients_connect(lang: &str) {
    // No password.
    let (addr, log, _srv) = psvc_server(Auth::anonymous()).await;
    let (out, json) = run_json(client_cmd(lang, addr.port(), None)).await;
    assert!(out.status.success(), "{lang}: {json}");
    assert_eq!(json["ok"], true, "{lang}: {json}");
    assert_eq!(json["info"]["name"], "psvc-interop", "{lang}: {json}");
    assert_eq!(json["ping"], true, "{lang} ping: {json}");
    common::net::until_event(&log, |e| {
        e.iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { .. }))
    })
    .await;

    // Password: right, then wrong.
    let (addr, log, _srv) = psvc_server(Auth::password("s3cret")).await;
    let (out, json) = run_json(client_cmd(lang, addr.port(), Some("s3cret"))).await;
    assert!(out.status.success(), "{lang}: {json}");
    assert_eq!(json["ok"], true, "{lang}: {json}");
    assert_eq!(json["ping"], true, "{lang}: {json}");
    let (out, json) = run_json(client_cmd(lang, addr.port(), Some("wrong"))).await;
    assert!(!out.status.success(), "{lang}: {json}");
    assert_eq!(json["ok"], false, "{lang}: {json}");
    match lang {
        // vsoa-python reports any non-zero SERVINFO status as INVALID_RESPONDING.
        "python" => assert_eq!(json["code"], 5, "{json}"),
        // vsoa-node reports Error('status') carrying the status: 1 = password.
        _ => assert_eq!(json["status"], 1, "{json}"),
    }
    let connected = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, ClientEvent::Connected(_)))
        .count();
    assert_eq!(connected, 1, "only the right password connected");
}

#[actix_rt::test]
async fn python_vsoa_client_connects_to_psvc() {
    real_clients_connect("python").await;
}

#[actix_rt::test]
async fn node_vsoa_client_connects_to_psvc() {
    real_clients_connect("node").await;
}

#[actix_rt::test]
async fn python_vsoa_client_subscribes_on_psvc() {
    let (addr, log, srv) = psvc_server(Auth::anonymous()).await;
    let mut cmd = client_cmd("python", addr.port(), None);
    cmd.args(["--subscribe", "/sensors/", "--count", "2"]);
    let run = actix::spawn(run_json(cmd));
    common::net::until_event(&log, |e| {
        e.iter()
            .any(|e| matches!(e, ClientEvent::Subscribed { url, .. } if url == "/sensors/"))
    })
    .await;
    let session = srv.sessions().await.unwrap().remove(0);
    for n in 1..=2 {
        session
            .send_wait(
                Frame::new(Kind::Publish)
                    .url("/sensors/t1")
                    .param(format!("{{\"n\":{n}}}")),
            )
            .await
            .unwrap();
    }
    let (_, json) = run.await.unwrap();
    assert_eq!(json["subscribed"], true, "{json}");
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{json}");
    assert_eq!(messages[0]["url"], "/sensors/t1");
    assert_eq!(messages[1]["param"]["n"], 2);
}

/// A real Python VSOA server; killed on drop.
struct PyServer(std::process::Child, u16);

impl PyServer {
    fn start(password: Option<&str>) -> PyServer {
        let mut cmd = python();
        cmd.arg(script("py_server.py")).args(["--lifetime", "60"]);
        if let Some(pw) = password {
            cmd.arg("--password").arg(pw);
        }
        let (child, line) = peers::start_with_line(cmd, "python server");
        let json: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|_| panic!("python server printed {line:?}"));
        let port = json["port"].as_u64().expect("no port") as u16;
        PyServer(child, port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn psvc_client_talks_to_a_python_vsoa_server() {
    peers::ensure();
    let py = tokio::task::spawn_blocking(|| PyServer::start(Some("pw")))
        .await
        .unwrap();
    let addr = format!("127.0.0.1:{}", py.1);

    let err = Client::connect(ClientOptions::new(addr.clone()).password("nope"))
        .await
        .unwrap_err();
    assert_eq!(err, ConnectError::InvalidPassword);

    let client = Client::connect(ClientOptions::new(addr.clone()).password("pw"))
        .await
        .unwrap();
    let info = client.info().await.unwrap();
    assert!(info.info.contains("py_server"), "{info:?}");
    client.ping().await.unwrap();

    let reply = client
        .request(
            Frame::new(Kind::Rpc)
                .url("/echo")
                .param(r#"{"x":1}"#)
                .data(&b"\x00\x01bin"[..]),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, Status::OK);
    assert_eq!(&reply.data[..], b"\x00\x01bin");
    let param: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    assert_eq!(param["x"], 1);
    let missing = client
        .request(Frame::new(Kind::Rpc).url("/nope"))
        .await
        .unwrap();
    assert_eq!(missing.status, Status::INVALID_URL);

    let inbox = Arc::new(Mutex::new(Vec::new()));
    client
        .on_message(Inbox(inbox.clone()).start().recipient())
        .await
        .unwrap();
    client.subscribe(["/tick"]).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while inbox.lock().unwrap().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no publishes from the python server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let inbox = inbox.lock().unwrap();
    let ns: Vec<i64> = inbox
        .iter()
        .map(|m| match m {
            ClientMessage::Published { frame: f, .. } => {
                assert_eq!(&f.url[..], b"/tick");
                serde_json::from_slice::<serde_json::Value>(&f.param).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ns.windows(2).all(|w| w[1] == w[0] + 1), "in order: {ns:?}");
    client.close();
}
