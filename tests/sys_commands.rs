//! The system commands every psvc service serves through
//! `ServiceContext::commander` (`/sys/ping`, `/sys/help`, `/sys/children`,
//! `/sys/restart`, `/sys/reload`, `/sys/stats`), behind the server's own
//! authentication, admin-only or off as `[PSVC] sys_commands` says; and the
//! same figures on the Prometheus endpoint (`[PSVC] metrics_listen`),
//! scraped over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::prelude::*;
use common::{call, connect};
use psvc::config::ConfigLoader;
use psvc::frame::Status;
use psvc::prelude::*;
use psvc::service::BoxError;
use psvc::socket::Auth;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counter;
impl Actor for Counter {
    type Context = Context<Self>;
}

/// The test, run inside the service once it is up.
type Check = Box<dyn FnOnce(Ctx) -> futures::future::LocalBoxFuture<'static, ()>>;

/// What a check gets: the server's port, the config file, the context's
/// view of the configuration.
struct Ctx {
    port: u16,
    file: PathBuf,
    level: Box<dyn Fn() -> i64>,
}

struct Svc {
    file: PathBuf,
    check: Option<Check>,
}

impl Service for Svc {
    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        ctx.spawn(ChildSpec::new("counter", || Counter)).await?;
        let group = ctx.spawn_supervisor(SupervisorSpec::new("group")).await?;
        group
            .start_child(ChildSpec::new("inner", || Counter))
            .await?;
        let commands = ctx
            .commander()
            .route("/hello", |_| async { Ok(psvc::commander::Response::ok()) })
            .describe("/hello", "says hello");
        let server = ctx
            .server(Auth::password("pw"))
            .commands(commands.commands())
            .start("127.0.0.1:0")
            .await?;
        let config = ctx.config_updates();
        let check = self.check.take().unwrap();
        check(Ctx {
            port: server.local_addr().port(),
            file: self.file.clone(),
            level: Box::new(move || config.borrow().get::<i64>("app.level").unwrap()),
        })
        .await;
        server.stop();
        Ok(())
    }
}

fn write_config(file: &Path, psvc_extra: &str, level: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("[PSVC]\nversion = 1.4.2\nlog_console = false\nlog_file = false\n{psvc_extra}\n[app]\nlevel = {level}\n"),
    )
    .unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

async fn run(psvc_extra: &str, check: Check) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("psvc.conf");
    write_config(&file, psvc_extra, "1");
    let status = ServiceSystem::new("sys")
        .config(
            ConfigLoader::new("sys")
                .file(&file)
                .env_vars(Vec::<(String, String)>::new()),
        )
        .without_signals()
        .without_logging()
        .run_local(Svc {
            file,
            check: Some(check),
        })
        .await;
    assert_eq!(status, ExitStatus::Success);
}

#[actix_rt::test]
async fn system_commands_serve_the_tree_the_figures_and_reloads_behind_the_password() {
    run(
        "",
        Box::new(|ctx: Ctx| {
            Box::pin(async move {
                assert!(
                    connect(ctx.port, "wrong").await.is_err(),
                    "the server's password guards /sys too"
                );
                let client = connect(ctx.port, "pw").await.unwrap();

                let (status, pong) = call(&client, "/sys/ping", serde_json::json!({})).await;
                assert_eq!(status, Status::OK);
                let peer: std::net::SocketAddr = pong["peer"].as_str().unwrap().parse().unwrap();
                assert!(peer.ip().is_loopback() && peer.port() != ctx.port);

                let (_, help) = call(&client, "/sys/help", serde_json::json!({})).await;
                let help = help.as_array().unwrap();
                let described = |route: &str| {
                    help.iter()
                        .find(|e| e["route"] == route)
                        .and_then(|e| e["description"].as_str().map(str::to_owned))
                };
                assert_eq!(described("/hello").as_deref(), Some("says hello"));
                for route in [
                    "/sys/ping",
                    "/sys/help",
                    "/sys/children",
                    "/sys/restart",
                    "/sys/reload",
                    "/sys/stats",
                ] {
                    assert!(
                        described(route).is_some(),
                        "{route} is listed with a description"
                    );
                }

                let (_, children) = call(&client, "/sys/children", serde_json::json!({})).await;
                let counter = &children.as_array().unwrap()[0];
                assert_eq!(counter["id"], "counter");
                assert_eq!(counter["kind"], "worker");
                assert_eq!(counter["state"], "running");
                assert_eq!(counter["restarts"], 0);
                assert!(counter["uptime_ms"].is_u64());
                // The tree: a nested supervisor shows its own children.
                let group = &children[1];
                assert_eq!(
                    (&group["id"], &group["kind"]),
                    (&"group".into(), &"supervisor".into())
                );
                assert_eq!(group["children"][0]["id"], "inner");
                assert_eq!(group["children"][0]["state"], "running");

                let (status, _) = call(
                    &client,
                    "/sys/restart",
                    serde_json::json!({"id": "counter"}),
                )
                .await;
                assert_eq!(status, Status::OK);
                let (_, children) = call(&client, "/sys/children", serde_json::json!({})).await;
                assert_eq!(children[0]["restarts"], 1);
                assert_eq!(children[0]["state"], "running");
                let (status, reply) =
                    call(&client, "/sys/restart", serde_json::json!({"id": "nobody"})).await;
                assert_eq!(status, Status::INVALID_URL, "{reply}");
                let (status, _) = call(&client, "/sys/restart", serde_json::json!({})).await;
                assert_eq!(status, Status::ARGUMENTS, "an id is required");

                // A reload replies once the new configuration is applied.
                write_config(&ctx.file, "", "2");
                let (status, reply) = call(&client, "/sys/reload", serde_json::json!({})).await;
                assert_eq!(status, Status::OK, "{reply}");
                assert_eq!((ctx.level)(), 2);
                // A bad one is refused with the reason; the running one stays.
                write_config(&ctx.file, "shutdown_timeout = soon", "3");
                let (status, reply) = call(&client, "/sys/reload", serde_json::json!({})).await;
                assert_ne!(status, Status::OK);
                assert!(
                    reply["error"]
                        .as_str()
                        .unwrap()
                        .contains("shutdown_timeout"),
                    "{reply}"
                );
                assert_eq!((ctx.level)(), 2);

                let (status, stats) = call(&client, "/sys/stats", serde_json::json!({})).await;
                assert_eq!(status, Status::OK);
                assert_eq!(stats["name"], "sys");
                assert_eq!(stats["version"], "1.4.2");
                assert_eq!(stats["connections"], 1, "{stats}");
                assert_eq!(stats["accepted"], 2, "the refused one counts as accepted");
                // ping, help, children, restart, children, 2 bad restarts,
                // 2 reloads, and this one; the 2 bad restarts and the
                // refused reload are errors.
                assert_eq!(stats["calls"], 10, "{stats}");
                assert_eq!(stats["errors"], 3, "{stats}");
                assert_eq!(stats["restarts"], 1);
                assert_eq!(stats["children"], 2, "the root's children");
                client.close();
            })
        }),
    )
    .await;
}

#[actix_rt::test]
async fn admin_only_system_commands_need_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "t0ken\n").unwrap();
    run(
        &format!(
            "sys_commands = admin\nadmin_token_file = {}",
            token.display()
        ),
        Box::new(|ctx: Ctx| {
            Box::pin(async move {
                let client = connect(ctx.port, "pw").await.unwrap();
                for route in ["/sys/ping", "/sys/children", "/sys/restart", "/sys/stats"] {
                    let (status, reply) =
                        call(&client, route, serde_json::json!({"id": "counter"})).await;
                    assert_eq!(
                        status,
                        Status::NO_PERMISSIONS,
                        "{route} without the token: {reply}"
                    );
                    let (status, _) = call(
                        &client,
                        route,
                        serde_json::json!({"id": "counter", "token": "guess"}),
                    )
                    .await;
                    assert_eq!(status, Status::NO_PERMISSIONS, "{route} with a wrong token");
                }
                let (status, _) =
                    call(&client, "/sys/stats", serde_json::json!({"token": "t0ken"})).await;
                assert_eq!(status, Status::OK);
                let (status, _) = call(&client, "/hello", serde_json::json!({})).await;
                assert_eq!(status, Status::OK, "the service's own routes are not gated");
                client.close();
            })
        }),
    )
    .await;
}

#[actix_rt::test]
async fn admin_only_without_a_token_file_refuses_every_system_command() {
    run(
        "sys_commands = admin",
        Box::new(|ctx: Ctx| {
            Box::pin(async move {
                let client = connect(ctx.port, "pw").await.unwrap();
                let (status, reply) =
                    call(&client, "/sys/stats", serde_json::json!({"token": ""})).await;
                assert_eq!(status, Status::NO_PERMISSIONS, "{reply}");
                client.close();
            })
        }),
    )
    .await;
}

#[actix_rt::test]
async fn system_commands_can_be_turned_off() {
    run(
        "sys_commands = off",
        Box::new(|ctx: Ctx| {
            Box::pin(async move {
                let client = connect(ctx.port, "pw").await.unwrap();
                let (status, _) = call(&client, "/sys/ping", serde_json::json!({})).await;
                assert_eq!(status, Status::INVALID_URL);
                let (status, _) = call(&client, "/hello", serde_json::json!({})).await;
                assert_eq!(status, Status::OK);
                client.close();
            })
        }),
    )
    .await;
}

/// One HTTP GET of /metrics on `port`, the whole response as text.
async fn scrape(port: u16) -> Option<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    Some(body)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[actix_rt::test]
async fn the_prometheus_endpoint_serves_the_same_figures() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    run(
        &format!("metrics_listen = 127.0.0.1:{port}"),
        Box::new(move |ctx: Ctx| {
            Box::pin(async move {
                let client = connect(ctx.port, "pw").await.unwrap();
                for _ in 0..5 {
                    call(&client, "/hello", serde_json::json!({})).await;
                }
                call(&client, "/nowhere", serde_json::json!({})).await;
                // The figures refresh every second: scrape until they show
                // the six calls (at most 100 tries, 100 ms apart).
                let mut last = String::new();
                for _ in 0..100 {
                    if let Some(text) = scrape(port).await {
                        last = text;
                        if metric(&last, "psvc_calls_total") == Some(6.0) {
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                assert!(last.starts_with("HTTP/1.1 200"), "{last}");
                assert_eq!(metric(&last, "psvc_calls_total"), Some(6.0), "{last}");
                assert_eq!(metric(&last, "psvc_errors_total"), Some(1.0), "{last}");
                assert_eq!(metric(&last, "psvc_connections"), Some(1.0), "{last}");
                assert_eq!(metric(&last, "psvc_children"), Some(2.0), "{last}");
                assert!(last.contains("service=\"sys\""), "{last}");
                assert!(last.contains("version=\"1.4.2\""), "{last}");
                client.close();
            })
        }),
    )
    .await;
}
