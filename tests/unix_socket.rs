//! psvc on a Unix-domain socket (`unix:/path`): a server and a client speak
//! the same protocol as over TCP, behind the same authentication; a stale
//! socket file is replaced, a live one or another file refused, the file
//! removed when the server stops; and a front door forwards to a worker
//! that serves on one.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::{Commander, Request, Response};
use psvc::frame::Status;
use psvc::socket::{Auth, Server, ServerHandle};
use psvc_actors::forward::Forward;

async fn echo_server(addr: &str, auth: Auth) -> Result<ServerHandle, psvc::socket::ServerError> {
    let commands = Commander::new()
        .route("/echo", |req: Request| async move {
            let peer = req.caller().map(|s| s.peer().to_string());
            Ok(Response::ok()
                .param(req.param)
                .data(peer.unwrap_or_default().into_bytes()))
        })
        .commands();
    Server::new(auth).commands(commands).start(addr).await
}

fn options(path: &std::path::Path) -> ClientOptions {
    ClientOptions::new(format!("unix:{}", path.display())).request_timeout(Duration::from_secs(10))
}

#[actix_rt::test]
async fn a_server_and_a_client_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc.sock");
    let server = echo_server(&format!("unix:{}", path.display()), Auth::password("pw"))
        .await
        .unwrap();
    assert_eq!(server.local_addr().to_string(), "127.0.0.1:0");

    assert!(
        Client::connect(options(&path).password("wrong"))
            .await
            .is_err(),
        "the password is checked as over TCP"
    );
    let client = Client::connect(options(&path).password("pw"))
        .await
        .unwrap();
    let reply = client
        .rpc(Rpc::get("/echo").param(r#"{"x":1}"#))
        .await
        .unwrap();
    assert_eq!(reply.status, Status::OK);
    assert_eq!(&reply.param[..], br#"{"x":1}"#);
    assert_eq!(
        &reply.data[..],
        b"127.0.0.1:0",
        "a Unix peer reads as 127.0.0.1:0"
    );
    let infos = server.session_infos().await.unwrap();
    assert_eq!(infos.len(), 1);
    assert!(!infos[0].tls);
    assert_eq!(
        infos[0].quick_port, None,
        "no quick channel on a Unix socket"
    );
    client.close();

    // A second server on the live socket is refused.
    let err = echo_server(&format!("unix:{}", path.display()), Auth::anonymous())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already listens"), "{err}");

    // Stopping removes the file.
    server.stop();
    common::until(|| !path.exists()).await;
}

#[actix_rt::test]
async fn a_stale_socket_file_is_replaced_and_other_files_are_not_touched() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists(), "a crash leaves the file");
    let server = echo_server(&format!("unix:{}", stale.display()), Auth::anonymous())
        .await
        .unwrap();
    let client = Client::connect(options(&stale)).await.unwrap();
    assert_eq!(
        client.rpc(Rpc::get("/echo")).await.unwrap().status,
        Status::OK
    );
    client.close();
    server.stop();

    let file = dir.path().join("data.txt");
    std::fs::write(&file, "keep me").unwrap();
    let err = echo_server(&format!("unix:{}", file.display()), Auth::anonymous())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    let missing = dir.path().join("nobody.sock");
    let err = Client::connect(options(&missing)).await.unwrap_err();
    assert!(err.to_string().contains("nobody.sock"), "{err}");
}

#[actix_rt::test]
async fn a_front_door_forwards_to_a_worker_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("worker.sock");
    let worker = echo_server(&format!("unix:{}", path.display()), Auth::anonymous())
        .await
        .unwrap();
    let front = Server::new(Auth::anonymous())
        .commands(
            Forward::new("w", format!("unix:{}", path.display()))
                .strip_prefix(true)
                .routes(Commander::new(), "/w/")
                .commands(),
        )
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let client = common::connect(front.local_addr().port(), "")
        .await
        .unwrap();
    // The Forward connects in the background: wait for the first answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.rpc(Rpc::get("/w/echo").param("hi")).await.unwrap();
        if reply.status == Status::OK {
            assert_eq!(&reply.param[..], b"hi");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never forwarded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The worker goes: a clear status, not a hang.
    worker.stop();
    common::until(|| !path.exists()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = client.rpc(Rpc::get("/w/echo")).await.unwrap();
        if reply.status == Status::NO_RESPONDING {
            let text = String::from_utf8_lossy(&reply.param).into_owned();
            assert!(text.contains("worker w is not reachable"), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reported down");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    client.close();
    front.stop();
}
