//! The `psvc` client verbs (call, sub, pub, datagram, ping, stream) against
//! a psvc server in the test process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use psvc::broker::{Broker, IsSubscribed, Publish};
use psvc::commander::{CommandError, Commander, Request, Response};
use psvc::socket::{Auth, Server, ServerHandle};
use psvc::stream::{Tunnel, recv_file, send_file};

type Datagrams = Arc<Mutex<Vec<(String, Bytes, bool)>>>;

struct Fixture {
    server: ServerHandle,
    broker: Addr<Broker>,
    datagrams: Datagrams,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("vsoa://{}{path}", self.server.local_addr())
    }
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served.bin");
    let uploaded = dir.path().join("uploaded.bin");
    let bytes: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    std::fs::write(&served, bytes).unwrap();
    let broker = Broker::new().start();
    let datagrams = Datagrams::default();
    let seen = datagrams.clone();
    let publisher = broker.clone();
    let commander = Commander::new()
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param).data(req.data))
        })
        .route("/status", |req: Request| async move {
            let v: serde_json::Value = req.json()?;
            Ok(Response::with_status(
                v["status"].as_u64().unwrap_or(0) as u8
            ))
        })
        .route("/publish", move |req: Request| {
            let broker = publisher.clone();
            async move {
                let v: serde_json::Value = req.json()?;
                let url = v["url"].as_str().unwrap_or_default().to_owned();
                broker
                    .send(Publish::new(url).param(v["param"].to_string()))
                    .await
                    .map_err(failed)?;
                Ok(Response::ok())
            }
        })
        .route("/download", move |req: Request| {
            let served = served.clone();
            async move {
                let tunnel = Tunnel::open(&req)?;
                let port = tunnel.port();
                actix::spawn(async move {
                    let mut s = tunnel.accept().await.unwrap();
                    send_file(&served, &mut s, |_| {}).await.unwrap();
                });
                Ok(Response::ok().tunnel(port))
            }
        })
        .route("/upload", move |req: Request| {
            let uploaded = uploaded.clone();
            async move {
                let tunnel = Tunnel::open(&req)?;
                let port = tunnel.port();
                actix::spawn(async move {
                    let mut s = tunnel.accept().await.unwrap();
                    recv_file(&mut s, &uploaded, |_| {}).await.unwrap();
                });
                Ok(Response::ok().tunnel(port))
            }
        })
        .datagram("/dg/", move |req: Request| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((req.url, req.data, req.quick));
            }
        });
    let server = Server::new(Auth::password("pw"))
        .commands(commander.commands())
        .broker(broker.clone().recipient())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    Fixture {
        server,
        broker,
        datagrams,
        dir,
    }
}

fn psvc(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_psvc"));
    cmd.args(args)
        .args(["--password", "pw", "--timeout", "10"])
        .stdin(Stdio::null());
    cmd
}

/// Runs the tool off the actix thread (the server lives on it).
async fn run(cmd: Command) -> (i32, Vec<serde_json::Value>, String) {
    let mut cmd = cmd;
    let out: Output = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        out.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_rt::test]
async fn call_prints_the_reply_and_exits_by_status() {
    let f = fixture().await;
    let (code, out, err) = run(psvc(&[
        "call",
        &f.url("/echo"),
        "--param",
        r#"{"a":1}"#,
        "--data",
        "hello",
        "--set",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["status"], 0);
    assert_eq!(out[0]["param"], serde_json::json!({"a": 1}));
    assert_eq!(out[0]["data_hex"], "68656c6c6f");

    let file = f.dir.path().join("data.bin");
    std::fs::write(&file, [1u8, 2, 255]).unwrap();
    let at = format!("@{}", file.display());
    let (code, out, _) = run(psvc(&["call", &f.url("/echo"), "--data", &at, "--json"])).await;
    assert_eq!((code, out[0]["data_hex"].as_str()), (0, Some("0102ff")));

    let (code, out, _) = run(psvc(&[
        "call",
        &f.url("/status"),
        "--param",
        r#"{"status":200}"#,
        "--json",
    ]))
    .await;
    assert_eq!((code, out[0]["status"].as_u64()), (1, Some(200)));

    let (code, _, err) = run(psvc(&["call", &f.url("/echo"), "--param", "{bad"])).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not JSON"), "{err}");
}

#[actix_rt::test]
async fn connection_failures_have_their_own_exit_code() {
    let f = fixture().await;
    // Wrong password.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_psvc"));
    cmd.args(["call", &f.url("/echo"), "--password", "nope"]);
    let (code, _, err) = run(cmd).await;
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("code 6"), "{err}");
    // Nobody listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, _, _) = run(psvc(&["ping", &format!("vsoa://127.0.0.1:{port}")])).await;
    assert_eq!(code, 69);
}

#[actix_rt::test]
async fn sub_prints_what_pub_publishes() {
    let f = fixture().await;
    let mut sub = psvc(&[
        "sub",
        &f.url("/a/"),
        "--count",
        "2",
        "--duration",
        "20",
        "--json",
    ]);
    sub.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = sub.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f.broker.send(IsSubscribed("/a/x".into())).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "psvc sub never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (url, n) in [("/a/1", 1), ("/ab", 2), ("/a", 3)] {
        let (code, _, err) = run(psvc(&[
            "pub",
            &f.url(url),
            "--param",
            &format!(r#"{{"n":{n}}}"#),
        ]))
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["url"].as_str(), lines[0]["param"]["n"].as_u64()),
        (Some("/a/1"), Some(1))
    );
    assert_eq!(
        (lines[1]["url"].as_str(), lines[1]["param"]["n"].as_u64()),
        (Some("/a"), Some(3))
    );
}

#[actix_rt::test]
async fn datagrams_and_pings() {
    let f = fixture().await;
    let (code, _, err) = run(psvc(&["datagram", &f.url("/dg/tcp"), "--data", "t"])).await;
    assert_eq!(code, 0, "{err}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while f.datagrams.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no datagram");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.datagrams.lock().unwrap()[0],
        ("/dg/tcp".to_owned(), Bytes::from("t"), false)
    );
    // Quick datagrams may be lost: try a few times (bounded).
    for _ in 0..10 {
        let (code, _, err) = run(psvc(&[
            "datagram",
            &f.url("/dg/udp"),
            "--data",
            "u",
            "--quick",
        ]))
        .await;
        assert_eq!(code, 0, "{err}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        if f.datagrams.lock().unwrap().iter().any(|d| d.2) {
            break;
        }
    }
    assert!(
        f.datagrams
            .lock()
            .unwrap()
            .iter()
            .any(|d| d.0 == "/dg/udp" && d.2)
    );

    let (code, out, err) = run(psvc(&["ping", &f.url(""), "--count", "2", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|l| l["rtt_us"].as_u64().is_some()));
}

#[actix_rt::test]
async fn stream_get_and_put_move_files_with_their_sha256() {
    let f = fixture().await;
    let served = std::fs::read(f.dir.path().join("served.bin")).unwrap();
    let want: String =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&served))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    let got = f.dir.path().join("got.bin");
    let (code, out, err) = run(psvc(&[
        "stream",
        "get",
        &f.url("/download"),
        got.to_str().unwrap(),
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out[0]["bytes"], served.len());
    assert_eq!(out[0]["sha256"], want.as_str());
    assert_eq!(std::fs::read(&got).unwrap(), served);

    let (code, out, err) = run(psvc(&[
        "stream",
        "put",
        &f.url("/upload"),
        got.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    let uploaded = f.dir.path().join("uploaded.bin");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read(&uploaded)
        .map(|b| b != served)
        .unwrap_or(true)
    {
        assert!(tokio::time::Instant::now() < deadline, "upload incomplete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A psvc service for `psvc sys`: one child, the system commands, and the
/// CLI checks run while it serves.
struct SysService(Option<tempfile::TempDir>);

impl psvc::Service for SysService {
    async fn run(&mut self, ctx: &mut psvc::ServiceContext) -> Result<(), psvc::service::BoxError> {
        struct Idle;
        impl Actor for Idle {
            type Context = Context<Self>;
        }
        ctx.spawn(psvc::ChildSpec::new("idle", || Idle)).await?;
        let server = ctx
            .server(Auth::password("pw"))
            .commands(ctx.commander().commands())
            .start("127.0.0.1:0")
            .await?;
        let addr = format!("vsoa://{}", server.local_addr());
        let dir = self.0.take().unwrap();
        let token = dir.path().join("admin.token");

        let (code, _, err) = run(psvc(&["sys", "children", &addr])).await;
        assert_eq!(code, 1, "admin-only: refused without the token: {err}");
        assert!(err.contains("admin token"), "{err}");

        let sys = |verb: &[&str]| {
            let mut cmd = psvc(&["sys"]);
            cmd.args(verb)
                .args([&addr, "--admin-token-file"])
                .arg(&token);
            cmd
        };
        let out = tokio::task::spawn_blocking({
            let mut cmd = sys(&["children"]);
            move || cmd.output().unwrap()
        })
        .await
        .unwrap();
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(table.starts_with("ID"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("idle") && l.contains("running")),
            "{table}"
        );

        let (code, out, err) = run({
            let mut cmd = sys(&["restart"]);
            cmd.args(["idle", "--json"]);
            cmd
        })
        .await;
        assert_eq!(
            (code, &out[0]["restarted"]),
            (0, &serde_json::json!("idle")),
            "{err}"
        );
        let (code, out, _) = run({
            let mut cmd = sys(&["stats"]);
            cmd.arg("--json");
            cmd
        })
        .await;
        assert_eq!(code, 0);
        assert_eq!(out[0]["restarts"], 1);
        assert_eq!(out[0]["connections"], 1, "the tool's own connection");
        let (code, _, err) = run({
            let mut cmd = sys(&["restart"]);
            cmd.arg("ghost");
            cmd
        })
        .await;
        assert_eq!(code, 1);
        assert!(err.contains("ghost"), "{err}");
        server.stop();
        Ok(())
    }
}

#[actix_rt::test]
async fn sys_verbs_drive_a_service_with_its_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "adm1n\n").unwrap();
    let loader = psvc::config::ConfigLoader::new("svc")
        .no_file()
        .env_vars(Vec::<(String, String)>::new())
        .set("PSVC.sys_commands", "admin")
        .set(
            "PSVC.admin_token_file",
            dir.path().join("admin.token").display().to_string(),
        );
    let status = psvc::ServiceSystem::new("svc")
        .config(loader)
        .without_signals()
        .without_logging()
        .run_local(SysService(Some(dir)))
        .await;
    assert_eq!(status, psvc::ExitStatus::Success);
}
