//! The Commander over the wire: VSOA routing order and status codes, typed
//! JSON and postcard payloads, method and caller, handler errors and
//! panics, worker-bound commands, pipelining and timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use common::net::{Raw, connect, serve};
use psvc::client::{CallError, ClientOptions, RequestError, Rpc, fetch};
use psvc::commander::{CommandError, Commander, Method, Request, Response};
use psvc::frame::{Frame, Kind, Status};
use serde::{Deserialize, Serialize};

/// Each route answers with its own name, so a reply shows which one served.
fn named(
    route: &'static str,
) -> impl Fn(Request) -> std::future::Ready<Result<Response, CommandError>> + Send + Sync + 'static
{
    move |req: Request| {
        std::future::ready(Response::json(&serde_json::json!({
            "route": route,
            "url": req.url,
        })))
    }
}

fn routes() -> Commander {
    Commander::new()
        .route("/a", named("/a"))
        .route("/a/", named("/a/"))
        .route("/a/b/", named("/a/b/"))
        .route("/a/b/c", named("/a/b/c"))
        .route("/x/", named("/x/"))
}

async fn route_of(client: &psvc::client::Client, url: &str) -> (Status, Option<String>) {
    let reply = client.rpc(Rpc::get(url)).await.unwrap();
    let route = serde_json::from_slice::<serde_json::Value>(&reply.param)
        .ok()
        .and_then(|v| v.get("route")?.as_str().map(str::to_owned));
    (reply.status, route)
}

#[actix_rt::test]
async fn exact_then_longest_prefix_then_status_3() {
    let (srv, _) = serve(routes()).await;
    let client = connect(&srv).await;
    let cases = [
        ("/a", Some("/a")),          // exact beats the /a/ prefix
        ("/a/", Some("/a/")),        // the prefix route itself
        ("/a/z", Some("/a/")),       // under /a/
        ("/a/b", Some("/a/b/")),     // /a/b/ serves /a/b too
        ("/a/b/z/y", Some("/a/b/")), // longest prefix wins
        ("/a/b/c", Some("/a/b/c")),  // exact
        ("/x", Some("/x/")),
        ("/xy", None), // /x/ does not cover /xy
        ("/ab", None), // nor /a/ /ab
        ("/nothing", None),
    ];
    for (url, want) in cases {
        let (status, route) = route_of(&client, url).await;
        match want {
            Some(w) => {
                assert_eq!(status, Status::OK, "{url}");
                assert_eq!(route.as_deref(), Some(w), "{url}");
            }
            None => assert_eq!(status, Status::INVALID_URL, "{url}"),
        }
    }
}

#[actix_rt::test]
async fn default_route_serves_what_nothing_else_does() {
    let (srv, _) = serve(routes().route("/", named("/"))).await;
    let client = connect(&srv).await;
    assert_eq!(route_of(&client, "/nothing").await.1.as_deref(), Some("/"));
    assert_eq!(route_of(&client, "/").await.1.as_deref(), Some("/"));
    assert_eq!(
        route_of(&client, "/a/b/c").await.1.as_deref(),
        Some("/a/b/c")
    );
    assert_eq!(route_of(&client, "/xy").await.1.as_deref(), Some("/"));
}

#[actix_rt::test]
async fn bad_urls_get_status_2_and_the_service_lives() {
    let (srv, _) = serve(routes().route("/", named("/"))).await;
    let mut raw = Raw::connect(srv.local_addr()).await;
    raw.hello(None).await;
    let bad: [&[u8]; 4] = [b"", b"a/b", b"\xff\xfe/", b"nothing"];
    for (i, url) in bad.iter().enumerate() {
        let seqno = i as u32 + 1;
        raw.send(
            &Frame::new(Kind::Rpc)
                .seqno(seqno)
                .url(Bytes::copy_from_slice(url)),
        )
        .await;
        let reply = raw.recv().await.unwrap();
        assert_eq!(reply.seqno, seqno);
        assert_eq!(reply.status, Status::ARGUMENTS, "url {url:?}");
    }
    // Same connection, still served.
    raw.send(&Frame::new(Kind::Rpc).seqno(9).url("/a")).await;
    assert_eq!(raw.recv().await.unwrap().status, Status::OK);
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Add {
    a: i64,
    b: i64,
    label: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Sum {
    sum: i64,
    label: String,
}

fn adder() -> Commander {
    Commander::new().typed("/add", |args: Add, _| async move {
        if args.label.is_empty() {
            return Err(CommandError::status(200, "label required"));
        }
        Ok(Sum {
            sum: args.a + args.b,
            label: args.label,
        })
    })
}

#[actix_rt::test]
async fn typed_commands_speak_json_and_postcard() {
    let (srv, _) = serve(adder()).await;
    let client = connect(&srv).await;
    let args = Add {
        a: 40,
        b: 2,
        label: "x".into(),
    };
    let want = Sum {
        sum: 42,
        label: "x".into(),
    };
    let json: Sum = client.call("/add", &args).await.unwrap();
    assert_eq!(json, want);
    let fast: Sum = client.call_postcard("/add", &args).await.unwrap();
    assert_eq!(fast, want);
    // On the wire: JSON in param for JSON callers, postcard in data for
    // postcard callers.
    let reply = client
        .rpc(Rpc::get("/add").json(&args).unwrap())
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&reply.param).unwrap(),
        serde_json::json!({"sum": 42, "label": "x"})
    );
    assert!(reply.data.is_empty());
    let reply = client
        .rpc(Rpc::get("/add").postcard(&args).unwrap())
        .await
        .unwrap();
    assert!(reply.param.is_empty());
    assert_eq!(postcard::from_bytes::<Sum>(&reply.data).unwrap(), want);
}

#[actix_rt::test]
async fn handler_errors_become_error_replies() {
    let (srv, _) = serve(adder()).await;
    let client = connect(&srv).await;
    // A user status with its message.
    let err = client
        .call::<_, Sum>(
            "/add",
            &Add {
                a: 1,
                b: 1,
                label: String::new(),
            },
        )
        .await
        .unwrap_err();
    match err {
        CallError::Status {
            status, message, ..
        } => {
            assert_eq!(status, Status(200));
            assert_eq!(message, "label required");
        }
        other => panic!("{other:?}"),
    }
    // Arguments that do not decode: status 2, serde's message.
    let reply = client
        .rpc(Rpc::get("/add").param(r#"{"a": "one"}"#))
        .await
        .unwrap();
    assert_eq!(reply.status, Status::ARGUMENTS);
    let message = String::from_utf8_lossy(&reply.param);
    assert!(message.contains("invalid type"), "{message}");
    // Invalid JSON text is refused the same way.
    let reply = client
        .rpc(Rpc::get("/add").param("{not json"))
        .await
        .unwrap();
    assert_eq!(reply.status, Status::ARGUMENTS);
}

#[actix_rt::test]
async fn a_panicking_handler_fails_that_call_only() {
    common::quiet_panics();
    let commander = Commander::new()
        .route("/boom", |_req: Request| async move {
            panic!("expected: boom");
        })
        .route("/later", |_req: Request| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            panic!("expected: later");
        })
        .route("/ok", |_req: Request| async move { Ok(Response::ok()) })
        // Panics before its future even exists.
        .route("/eager", |_req: Request| -> std::future::Ready<_> {
            panic!("expected: eager");
        })
        .datagram("/dg", |_req: Request| -> std::future::Ready<()> {
            panic!("expected: datagram");
        });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    client.datagram("/dg", "", "", false).await.unwrap();
    for url in ["/boom", "/later", "/eager"] {
        let reply = client.rpc(Rpc::get(url)).await.unwrap();
        assert_eq!(reply.status, Status::NO_RESPONDING, "{url}");
        assert!(String::from_utf8_lossy(&reply.param).contains("expected:"));
    }
    assert_eq!(
        client.rpc(Rpc::get("/ok")).await.unwrap().status,
        Status::OK
    );
}

#[actix_rt::test]
async fn handlers_see_method_payload_and_caller() {
    let commander = Commander::new().route("/who", |req: Request| async move {
        let caller = req.caller().unwrap();
        Response::json(&serde_json::json!({
            "set": req.method == Method::Set,
            "id": caller.id(),
            "peer": caller.peer().to_string(),
            "authed": caller.authed(),
            "priority": caller.priority(),
            "param": String::from_utf8_lossy(&req.param),
            "data": req.data.len(),
        }))
        .map(|r| r.data(req.data.clone()).status(129))
    });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let info = client.info().await.unwrap();
    let reply = client
        .rpc(Rpc::set("/who").param("raw text").data(vec![7u8; 1000]))
        .await
        .unwrap();
    assert_eq!(reply.status, Status(129));
    assert_eq!(&reply.data[..], &[7u8; 1000][..]);
    let v: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    assert_eq!(v["set"], true);
    assert_eq!(v["id"], info.client_id);
    assert_eq!(v["authed"], true);
    assert_eq!(v["priority"], 0);
    assert_eq!(v["param"], "raw text");
    let sessions = srv.sessions().await.unwrap();
    assert_eq!(v["peer"], sessions[0].peer().to_string());
    let get = client.rpc(Rpc::get("/who")).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&get.param).unwrap();
    assert_eq!(v["set"], false);
}

#[actix_rt::test]
async fn an_oversize_reply_is_refused_with_status_6() {
    let commander = Commander::new().route("/huge", |_req: Request| async move {
        Ok(Response::ok().data(vec![0u8; 300 * 1024]))
    });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let reply = client.rpc(Rpc::get("/huge")).await.unwrap();
    assert_eq!(reply.status, Status::NO_MEMORY);
    assert!(String::from_utf8_lossy(&reply.param).contains("stream"));
    client.ping().await.unwrap();
}

/// A one-way latch a blocking thread can wait on (bounded) and an async
/// task can open.
#[derive(Default)]
struct Latch {
    open: std::sync::Mutex<bool>,
    changed: std::sync::Condvar,
}

impl Latch {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }

    fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }

    /// Blocks until open or `limit` passes; whether it opened.
    fn wait(&self, limit: Duration) -> bool {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .changed
            .wait_timeout_while(open, limit, |open| !*open)
            .unwrap();
        *open
    }
}

#[actix_rt::test]
async fn blocking_and_arbiter_commands_run_off_the_network_thread() {
    let net = std::thread::current().id();
    let worker = Arbiter::new();
    // The blocking command says it has started, then blocks its thread
    // until the fast command has been answered (or TIMEOUT passes): on the
    // network thread, that answer could not come while it blocks.
    let entered = std::sync::Arc::new(Latch::default());
    let fast_answered = std::sync::Arc::new(Latch::default());
    let (entered_in, answered_in) = (entered.clone(), fast_answered.clone());
    let commander = Commander::new()
        .blocking("/blocking", move |_req| {
            entered_in.open();
            let answered = answered_in.wait(common::TIMEOUT);
            Response::json(&(answered, std::thread::current().id() != net))
        })
        .on_arbiter("/arbiter", worker.handle(), move |_req| async move {
            Response::json(&(std::thread::current().id() != net))
        })
        .route("/fast", |_req: Request| async move { Ok(Response::ok()) });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    // While the blocking command blocks its thread, the fast one is answered.
    let slow = async {
        let result = client.call::<_, (bool, bool)>("/blocking", &()).await;
        (result, std::time::Instant::now())
    };
    let fast = async {
        common::until(|| entered.is_open()).await;
        client.rpc(Rpc::get("/fast")).await.unwrap();
        let done = std::time::Instant::now();
        fast_answered.open();
        done
    };
    let ((slow, slow_done), fast_done) = futures::join!(slow, fast);
    assert!(
        fast_done < slow_done,
        "the fast command was answered {:?} after the blocking one",
        fast_done.duration_since(slow_done)
    );
    let (answered, off_thread) = slow.unwrap();
    assert!(answered, "the blocking command never saw the fast reply");
    assert!(off_thread, "the blocking command ran on the network thread");
    assert!(client.call::<_, bool>("/arbiter", &()).await.unwrap());
    worker.stop();
}

#[actix_rt::test]
async fn pipelined_calls_are_matched_by_seqno() {
    // Replies come back in a different order than the requests went out.
    let commander = Commander::new().typed("/delay", |n: u64, _| async move {
        tokio::time::sleep(Duration::from_millis((50 - n % 50) * 2)).await;
        Ok::<_, CommandError>(n * 10)
    });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let calls = (0..200u64).map(|n| {
        let client = client.clone();
        async move { (n, client.call::<_, u64>("/delay", &n).await.unwrap()) }
    });
    let results = futures::future::join_all(calls).await;
    for (n, got) in results {
        assert_eq!(got, n * 10);
    }
}

#[actix_rt::test]
async fn a_timed_out_call_fails_alone_and_a_late_reply_is_ignored() {
    // `/late` answers only once the test has seen its caller time out, so
    // its reply is late by construction; `answered` counts the late replies
    // sent.
    let timed_out = std::sync::Arc::new(tokio::sync::watch::Sender::new(0u32));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (gate, sent) = (timed_out.clone(), answered.clone());
    let commander = Commander::new()
        .typed("/late", move |n: u32, _| {
            let (gate, sent) = (gate.clone(), sent.clone());
            async move {
                let mut seen = gate.subscribe();
                tokio::time::timeout(common::TIMEOUT, seen.wait_for(|t| *t >= n))
                    .await
                    .map_err(|_| CommandError::Failed("the caller never timed out".into()))?
                    .map_err(|_| CommandError::Unavailable)?;
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, CommandError>(n)
            }
        })
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let limit = Duration::from_millis(100);
    let err = client
        .rpc(Rpc::get("/late").json(&1u32).unwrap().timeout(limit))
        .await
        .unwrap_err();
    assert_eq!(err, RequestError::Timeout(limit));
    timed_out.send_replace(1);
    // The typed form takes the same per-call timeout.
    let typed = client
        .call_rpc::<u32>(Rpc::set("/late").json(&2u32).unwrap().timeout(limit))
        .await
        .unwrap_err();
    assert_eq!(typed, CallError::Request(RequestError::Timeout(limit)));
    timed_out.send_replace(2);
    // The connection carries on, and the late replies (sent before the
    // next request is made, so read before its reply) do not confuse the
    // next call.
    common::until(|| answered.load(std::sync::atomic::Ordering::SeqCst) == 2).await;
    let reply = client
        .rpc(Rpc::get("/echo").param("\"after\""))
        .await
        .unwrap();
    assert_eq!(&reply.param[..], b"\"after\"");
}

#[actix_rt::test]
async fn fetch_is_a_one_shot_call() {
    let (srv, _) = serve(adder()).await;
    let reply = fetch(
        ClientOptions::new(srv.local_addr().to_string()),
        Rpc::get("/add")
            .json(&Add {
                a: 2,
                b: 3,
                label: "f".into(),
            })
            .unwrap(),
    )
    .await
    .unwrap();
    let sum: Sum = psvc::client::decode_reply(&reply).unwrap();
    assert_eq!(sum.sum, 5);
    // The connection is closed afterwards.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !srv.sessions().await.unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fetch left its connection open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn local_calls_reach_the_same_routes() {
    let commands = adder().commands();
    let sum: Sum = commands
        .call_json(
            "/add",
            &Add {
                a: 1,
                b: 2,
                label: "l".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(sum.sum, 3);
    let missing = commands.call(Request::new("/missing")).await.unwrap_err();
    assert_eq!(missing.code(), Status::INVALID_URL);
    let bad = commands.call(Request::new("missing")).await.unwrap_err();
    assert_eq!(bad.code(), Status::ARGUMENTS);
}

#[actix_rt::test]
async fn unrouted_datagrams_and_kinds_are_ignored() {
    let (srv, _) = serve(routes()).await;
    let mut raw = Raw::connect(srv.local_addr()).await;
    raw.hello(None).await;
    raw.send(&Frame::new(Kind::Datagram).url("/nowhere").data("x"))
        .await;
    raw.send(&Frame::new(Kind::Datagram).url(&b"\xff"[..]))
        .await;
    raw.send(&Frame::new(Kind::Rpc).seqno(5).url("/a")).await;
    let reply = raw.recv().await.unwrap();
    assert_eq!((reply.seqno, reply.status), (5, Status::OK));
}

#[actix_rt::test]
async fn the_commander_actor_serves_the_same_routes() {
    // Through the actor's mailbox (Server::commander) instead of the
    // sessions' inline dispatch (Server::commands).
    let commander = routes()
        .route("/", named("/"))
        .typed("/slow", |ms: u64, _| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, CommandError>(ms)
        })
        .start();
    let srv = psvc::socket::Server::new(psvc::socket::Auth::anonymous())
        .commander(commander.clone().recipient())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let client = connect(&srv).await;
    assert_eq!(
        route_of(&client, "/a/b/z").await.1.as_deref(),
        Some("/a/b/")
    );
    assert_eq!(route_of(&client, "/xy").await.1.as_deref(), Some("/"));
    assert_eq!(client.call::<_, u64>("/slow", &20u64).await.unwrap(), 20);
    // Local calls as messages.
    let reply = commander
        .send(psvc::commander::Call(Request::new("/a")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, Status::OK);
}
