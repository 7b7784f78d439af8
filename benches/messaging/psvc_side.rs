//! The psvc side: the server role (Commander routes, Broker publisher, stream tunnels) and the
//! roles that use psvc's own client.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix::Actor;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use psvc::broker::{Broker, Delivered, Publish};
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::{CommandError, Commander, Request, Response};
use psvc::socket::{Auth, Server};
use psvc::stream::Tunnel;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc};

use super::Res;
use super::role::{self, Timed, io};
use super::wire;

/// M6's argument: a small struct.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
    label: String,
}

/// M6's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sum {
    sum: i64,
    label: String,
}

/// `/stream/download` argument.
#[derive(Debug, Deserialize)]
struct Download {
    size: u64,
    #[serde(default)]
    sha: bool,
}

/// The stream pattern as an `AsyncRead` of `left` bytes (what `psvc::stream::copy` reads,
/// like a file).
struct PatternReader {
    pat: Bytes,
    off: u64,
    left: u64,
}

impl AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64)
            .min(self.left)
            .min(role::STREAM_CHUNK as u64) as usize;
        let at = (self.off % wire::PATTERN_MOD as u64) as usize;
        buf.put_slice(&self.pat[at..at + n]);
        self.off += n as u64;
        self.left -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// The psvc server: Commander with `/echo`, `/add` (typed), `/stream/download` and the
/// `/bench/ack` datagram; a Broker; on `go N SIZE MAXSECS` a publisher loop.
pub(crate) fn server(
    tx: mpsc::UnboundedSender<String>,
    mut ctl: mpsc::UnboundedReceiver<String>,
) -> Res<()> {
    let sys = actix::System::new();
    sys.block_on(async move {
        let acked = Arc::new(AtomicU64::new(0));
        let acked_notify = Arc::new(Notify::new());
        let pat = Bytes::from(wire::pattern(role::STREAM_CHUNK + wire::PATTERN_MOD));
        let (a, n) = (acked.clone(), acked_notify.clone());
        let commander = Commander::new()
            .route(wire::ECHO_URL, |req: Request| async move {
                Ok(Response::ok()
                    .param(req.param.clone())
                    .data(req.data.clone()))
            })
            .typed("/add", |args: Add, _req| async move {
                Ok::<_, CommandError>(Sum {
                    sum: args.a + args.b,
                    label: args.label,
                })
            })
            .route(wire::STREAM_URL, move |req: Request| {
                let pat = pat.clone();
                async move {
                    let arg: Download = req.json()?;
                    let tunnel = Tunnel::open(&req).map_err(failed)?;
                    let port = tunnel.port();
                    actix::spawn(async move {
                        let Ok(mut stream) = tunnel.accept().await else {
                            return;
                        };
                        if arg.sha {
                            let mut src = PatternReader {
                                pat,
                                off: 0,
                                left: arg.size,
                            };
                            let _ = psvc::stream::copy(&mut src, &mut stream, |_| {}).await;
                        } else {
                            let _ = role::send_pattern(&mut stream, &pat, arg.size, None).await;
                        }
                        let _ = stream.shutdown().await;
                    });
                    Ok(Response::ok().tunnel(port))
                }
            })
            .datagram(wire::ACK_URL, move |req: Request| {
                let (acked, notify) = (a.clone(), n.clone());
                async move {
                    if let Ok(b) = <[u8; 8]>::try_from(&req.data[..]) {
                        acked.fetch_max(u64::from_be_bytes(b), Ordering::Relaxed);
                        notify.notify_one();
                    }
                }
            });
        let broker = Broker::new().start();
        let handle = Server::new(Auth::anonymous())
            .commands(commander.commands())
            .broker(broker.clone().recipient())
            .start("127.0.0.1:0")
            .await
            .map_err(io("psvc server"))?;
        role::control_thread(tx);
        println!("addr {}", handle.local_addr());
        while let Some(line) = ctl.recv().await {
            if let Some((n, size, max, depth)) = role::parse_go(&line) {
                let max = Duration::from_secs_f64(max);
                match publish(&broker, n, size, max, depth, &acked, &acked_notify).await {
                    Ok(seq) => println!("published {seq}"),
                    Err(e) => println!("error {e}"),
                }
            }
        }
        Ok(())
    })
}

/// Publishes `size`-byte messages to `/bench/x` through the Broker with `depth` sends in
/// flight (1: each awaited before the next), every `Delivered` checked (each subscriber
/// must be a target), at most [`wire::pub_window`] ahead of what the slowest subscriber
/// acknowledged.
async fn publish(
    broker: &actix::Addr<Broker>,
    n: usize,
    size: usize,
    max: Duration,
    depth: usize,
    acked: &AtomicU64,
    acked_notify: &Notify,
) -> Res<u64> {
    // Subscriptions reach the Broker after the SUBSCRIBE replies: wait for all of them.
    let ready = Instant::now() + Duration::from_secs(10);
    loop {
        let d = broker
            .send(Publish::new(wire::PROBE_URL))
            .await
            .map_err(io("broker"))?;
        if d.sessions.len() >= n {
            break;
        }
        if Instant::now() >= ready {
            return Err(format!(
                "only {} of {n} subscribers after 10 s",
                d.sessions.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let payload = wire::payload(size);
    let window = wire::pub_window(size);
    let end = Instant::now() + max;
    let mut seq = 0u64;
    let mut inflight = FuturesOrdered::new();
    let check = |d: Result<Delivered, actix::MailboxError>| -> Res<()> {
        let d = d.map_err(io("broker"))?;
        if d.sessions.len() != n {
            return Err(format!(
                "a publish reached {} of {n} subscribers",
                d.sessions.len()
            ));
        }
        Ok(())
    };
    loop {
        if seq.is_multiple_of(64) && Instant::now() >= end {
            break;
        }
        while inflight.len() >= depth.max(1) {
            if let Some(d) = inflight.next().await {
                check(d)?;
            }
        }
        while seq >= acked.load(Ordering::Relaxed) + window {
            if tokio::time::timeout(Duration::from_secs(5), acked_notify.notified())
                .await
                .is_err()
            {
                return Err(format!(
                    "no acknowledgement for 5 s (published {seq}, acknowledged {})",
                    acked.load(Ordering::Relaxed)
                ));
            }
            if Instant::now() >= end {
                return Ok(seq);
            }
        }
        let mut p = BytesMut::from(&payload[..]);
        p[..8].copy_from_slice(&seq.to_be_bytes());
        inflight.push_back(broker.send(Publish::new(wire::VSOA_TOPIC).data(p.freeze())));
        seq += 1;
    }
    while let Some(d) = inflight.next().await {
        check(d)?;
    }
    Ok(seq)
}

fn options(addr: &str) -> ClientOptions {
    ClientOptions::new(addr)
        .quick(false)
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5))
}

/// Runs `call` in a closed loop on psvc's client, timed like the raw clients.
fn closed_loop<F, Fut>(addr: &str, warmup: Duration, secs: Duration, call: F) -> Res<()>
where
    F: Fn(Client) -> Fut + 'static,
    Fut: std::future::Future<Output = Res<()>>,
{
    role::watchdog(warmup + secs + Duration::from_secs(60));
    let options = options(addr);
    let sys = actix::System::new();
    sys.block_on(async move {
        let client = Client::connect(options).await.map_err(io("connect"))?;
        let timed = Timed::new()?;
        let t = timed.clone();
        let c = client.clone();
        let task = actix::spawn(async move {
            while !t.stop.get() {
                let t0 = Instant::now();
                if let Err(e) = call(c.clone()).await {
                    t.fail(e);
                    break;
                }
                t.record((Instant::now() - t0).as_nanos() as u64);
            }
        });
        let r = timed.window(warmup, secs).await;
        task.abort();
        client.close();
        r
    })?;
    role::linger();
    Ok(())
}

/// M1's psvc client line: `Client::rpc` of `/echo` with `data` bytes.
pub(crate) fn rpc_client(addr: &str, data: usize, warmup: Duration, secs: Duration) -> Res<()> {
    let data = Bytes::from(vec![0xa5u8; data]);
    closed_loop(addr, warmup, secs, move |c| {
        let data = data.clone();
        async move {
            let reply = c
                .rpc(Rpc::get(wire::ECHO_URL).data(data.clone()))
                .await
                .map_err(io("rpc"))?;
            if !reply.status.is_ok() || reply.data.len() != data.len() {
                return Err(format!("bad /echo reply {reply:?}"));
            }
            Ok(())
        }
    })
}

/// M6: typed `/add` calls, JSON or postcard.
pub(crate) fn typed(enc: &str, addr: &str, warmup: Duration, secs: Duration) -> Res<()> {
    let postcard = match enc {
        "json" => false,
        "postcard" => true,
        other => return Err(format!("unknown encoding {other:?}")),
    };
    let n = Rc::new(RefCell::new(0i64));
    closed_loop(addr, warmup, secs, move |c| {
        let n = n.clone();
        async move {
            let a = {
                let mut n = n.borrow_mut();
                *n += 1;
                *n
            };
            let args = Add {
                a,
                b: 2,
                label: "sensor-7".to_string(),
            };
            let r: Sum = if postcard {
                c.call_postcard("/add", &args).await
            } else {
                c.call("/add", &args).await
            }
            .map_err(io("call"))?;
            if r.sum != a + 2 || r.label != args.label {
                return Err(format!("wrong result {r:?} for {args:?}"));
            }
            Ok(())
        }
    })
}

/// M5 with SHA-256: `Client::rpc` `/stream/download` `{"size":n,"sha":server_sha}` (with
/// `server_sha` the server sends with `psvc::stream::copy`, hashing too), `Client::stream`,
/// then `psvc::stream::copy` into a sink; the receiver's digest must match.
pub(crate) fn get(addr: &str, size: usize, expected: &str, server_sha: bool) -> Res<()> {
    role::watchdog(Duration::from_secs(120));
    let options = options(addr);
    let sys = actix::System::new();
    let (secs, bytes, digest) = sys.block_on(async move {
        let client = Client::connect(options).await.map_err(io("connect"))?;
        println!("warm");
        let t0 = Instant::now();
        let reply = client
            .rpc(
                Rpc::get(wire::STREAM_URL)
                    .param(format!("{{\"size\":{size},\"sha\":{server_sha}}}")),
            )
            .await
            .map_err(io("rpc"))?;
        if !reply.status.is_ok() || reply.tunid == 0 {
            return Err(format!("bad {} reply {reply:?}", wire::STREAM_URL));
        }
        let mut stream = client.stream(reply.tunid).await.map_err(io("stream"))?;
        let t = psvc::stream::copy(&mut stream, &mut tokio::io::sink(), |_| {})
            .await
            .map_err(io("copy"))?;
        let secs = t0.elapsed().as_secs_f64();
        client.close();
        Ok::<_, String>((secs, t.bytes, t.sha256_hex()))
    })?;
    if bytes != size as u64 {
        return Err(format!("received {bytes} bytes, expected {size}"));
    }
    if digest != expected {
        return Err(format!("SHA-256 {digest} != expected {expected}"));
    }
    println!("result bytes={size} secs={secs:.4}");
    role::linger();
    Ok(())
}
