//! The interop reference server: every messaging feature on one fixed set of
//! routes, for VSOA clients in any language (and psvc's own tests).
//!
//! ```sh
//! cargo run --release --example echo_server -- --listen 127.0.0.1:3001 [--password PW] [--info TEXT]
//! ```
//!
//! Prints one JSON line `{"port":N,"addr":"IP:N"}` once listening (TCP and
//! the quick UDP channel share the port), then serves until Ctrl-C.
//!
//! | route | what it does |
//! |---|---|
//! | `/echo` | replies with the request's param and data, status 0 |
//! | `/method` | replies `{"method":"GET"}` or `{"method":"SET"}` |
//! | `/status` | param `{"status": n}` → an empty reply with status n |
//! | `/files/` | prefix route: replies `{"url": <requested url>}` |
//! | `/sleep` | param `{"ms": n}` → replies after n ms; other requests go on |
//! | `/publish` | param `{"url","param","quick"}` → publishes, then replies |
//! | `/datagram` | param `{"url","param","quick"}` → a datagram to the caller |
//! | `/stream/echo` | a stream that echoes what it receives |
//! | `/stream/download` | param `{"size": n}` → a stream of n bytes (byte i = i % 251), then closed |
//! | datagram `/dg/echo` | sent back to the sender unchanged (same url, payload, quick flag) |
//!
//! There is no default `/` route: other URLs get status 3.

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use clap::Parser;
use psvc::broker::{Broker, Publish};
use psvc::commander::{CommandError, Commander, Request, Response};
use psvc::frame::{Frame, Kind};
use psvc::socket::{Auth, Server};
use psvc::stream::Tunnel;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "psvc interop reference server")]
struct Args {
    /// Address to listen on (TCP and UDP).
    #[arg(long, default_value = "127.0.0.1:3001")]
    listen: String,
    /// Require this password.
    #[arg(long)]
    password: Option<String>,
    /// Server info (JSON if it parses, else sent as a JSON string).
    #[arg(long)]
    info: Option<String>,
}

#[derive(Deserialize)]
struct StatusArgs {
    status: u8,
}

#[derive(Deserialize)]
struct SleepArgs {
    ms: u64,
}

#[derive(Deserialize)]
struct SendArgs {
    url: String,
    #[serde(default)]
    param: Option<serde_json::Value>,
    #[serde(default)]
    quick: bool,
}

#[derive(Deserialize)]
struct SizeArgs {
    size: u64,
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// The param of a publish or datagram: the JSON value as text, or nothing.
fn param_bytes(param: Option<serde_json::Value>) -> Bytes {
    param.map_or_else(Bytes::new, |p| Bytes::from(p.to_string()))
}

fn commander(broker: Addr<Broker>) -> Commander {
    Commander::new()
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param).data(req.data))
        })
        .route("/method", |req: Request| async move {
            let method = match req.method {
                psvc::commander::Method::Get => "GET",
                psvc::commander::Method::Set => "SET",
            };
            Response::json(&serde_json::json!({ "method": method }))
        })
        .route("/status", |req: Request| async move {
            let args: StatusArgs = req.json()?;
            Ok(Response::with_status(args.status))
        })
        .route("/files/", |req: Request| async move {
            Response::json(&serde_json::json!({ "url": req.url }))
        })
        .typed("/sleep", |args: SleepArgs, _| async move {
            tokio::time::sleep(Duration::from_millis(args.ms.min(60_000))).await;
            Ok::<_, CommandError>(())
        })
        .typed("/publish", move |args: SendArgs, _| {
            let broker = broker.clone();
            async move {
                let publish = Publish::new(args.url)
                    .param(param_bytes(args.param))
                    .quick(args.quick);
                let delivered = broker.send(publish).await.map_err(failed)?;
                match delivered.error {
                    Some(e) => Err(CommandError::Arguments(e)),
                    None => Ok(serde_json::json!({ "delivered": delivered.sessions.len() })),
                }
            }
        })
        .typed("/datagram", |args: SendArgs, req: Request| async move {
            let caller = req
                .caller()
                .ok_or_else(|| CommandError::Arguments("no caller".into()))?;
            let frame = Frame::new(Kind::Datagram)
                .url(Bytes::from(args.url))
                .param(param_bytes(args.param));
            if !(args.quick && caller.send_quick(&frame)) {
                caller.push(frame);
            }
            Ok::<_, CommandError>(())
        })
        .route("/stream/echo", |req: Request| async move {
            let tunnel = Tunnel::open(&req)?;
            let port = tunnel.port();
            actix::spawn(async move {
                let Ok(stream) = tunnel.accept().await else {
                    return;
                };
                let (mut rx, mut tx) = stream.into_split();
                let _ = tokio::io::copy(&mut rx, &mut tx).await;
                let _ = tx.shutdown().await;
            });
            Ok(Response::ok().tunnel(port))
        })
        .route("/stream/download", |req: Request| async move {
            let args: SizeArgs = req.json()?;
            let tunnel = Tunnel::open(&req)?;
            let port = tunnel.port();
            actix::spawn(async move {
                let Ok(mut stream) = tunnel.accept().await else {
                    return;
                };
                // 251 × 261 bytes: the pattern repeats exactly every chunk.
                let chunk: Vec<u8> = (0..251 * 261).map(|i| (i % 251) as u8).collect();
                let mut left = args.size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n as u64;
                }
                let _ = stream.shutdown().await;
                // Wait for the client to close before dropping the socket.
                let mut rest = [0u8; 1];
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await;
            });
            Ok(Response::ok().tunnel(port))
        })
        .datagram("/dg/echo", |req: Request| async move {
            let Some(caller) = req.caller() else { return };
            let frame = Frame::new(Kind::Datagram)
                .url(Bytes::from(req.url.clone()))
                .param(req.param.clone())
                .data(req.data.clone());
            if !(req.quick && caller.send_quick(&frame)) {
                caller.push(frame);
            }
        })
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let system = actix::System::new();
    let result: std::io::Result<()> = system.block_on(async move {
        let broker = Broker::new().start();
        let commander = commander(broker.clone());
        let auth = match &args.password {
            Some(pw) => Auth::password(pw),
            None => Auth::anonymous(),
        };
        let info = match &args.info {
            Some(text) => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
            None => serde_json::json!({ "name": "psvc echo_server" }),
        };
        let server = Server::new(auth)
            .info(info)
            .commands(commander.commands())
            .broker(broker.recipient())
            .start(args.listen.clone())
            .await
            .map_err(std::io::Error::other)?;
        let addr = server.local_addr();
        println!(
            "{}",
            serde_json::json!({ "port": addr.port(), "addr": addr.to_string() })
        );
        tokio::signal::ctrl_c().await?;
        server.stop();
        Ok(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // A port in use and the like: say it and exit with EX_UNAVAILABLE.
            eprintln!("echo_server: {e}");
            std::process::ExitCode::from(69)
        }
    }
}
