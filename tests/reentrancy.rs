//! Reentrancy without deadlock: a command calls other commands on its own
//! service and on a remote service that calls back, 50 levels deep, while
//! other requests keep flowing.
//!
//! The innermost call holds the chain open until the other requests have
//! been answered (or `TIMEOUT` passes): if those requests waited behind the
//! chain, they would never be answered, the innermost call would give up and
//! the chain would fail. Each completion time is taken inside its own
//! future, so the order asserted is the order things finished in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use common::TIMEOUT;
use common::net::{connect, serve};
use psvc::client::{Client, Rpc};
use psvc::commander::{CommandError, Commander, Request, Response};
use tokio::sync::watch;

const DEPTH: u32 = 50;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// What the innermost call and the test tell each other.
#[derive(Default)]
struct Gates {
    /// Set by the innermost call: the chain is open all the way down.
    bottom: watch::Sender<bool>,
    /// Set by the test once the other requests were answered.
    others_done: watch::Sender<bool>,
}

impl Gates {
    /// The innermost call: says it is there, then holds the chain open
    /// until the other requests are done (bounded by `TIMEOUT`).
    async fn hold(&self) -> Result<(), CommandError> {
        self.bottom.send_replace(true);
        let mut done = self.others_done.subscribe();
        match tokio::time::timeout(TIMEOUT, done.wait_for(|d| *d)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(failed(
                "the other requests were not answered while the chain was open",
            )),
        }
    }

    /// Waits (bounded) until the innermost call is running.
    async fn until_bottom(&self) {
        let mut bottom = self.bottom.subscribe();
        tokio::time::timeout(TIMEOUT, bottom.wait_for(|b| *b))
            .await
            .expect("the chain never reached its innermost call")
            .unwrap();
    }
}

/// `/down` with n > 0 calls `/down` with n - 1 through `next` (a remote
/// peer) and adds its own name; at 0 it holds the chain open and answers.
fn bouncer(name: &'static str, next: Arc<OnceLock<Client>>, gates: Arc<Gates>) -> Commander {
    Commander::new()
        .typed("/down", move |n: u32, _req: Request| {
            let next = next.clone();
            let gates = gates.clone();
            async move {
                if n == 0 {
                    gates.hold().await?;
                    return Ok(vec![name.to_owned()]);
                }
                let peer = next.get().ok_or_else(|| failed("no peer"))?;
                let mut path: Vec<String> = peer.call("/down", &(n - 1)).await.map_err(failed)?;
                path.push(name.to_owned());
                Ok::<_, CommandError>(path)
            }
        })
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        })
}

#[actix_rt::test]
async fn two_services_call_each_other_50_deep_while_others_are_served() {
    let gates = Arc::new(Gates::default());
    let to_b = Arc::new(OnceLock::new());
    let to_a = Arc::new(OnceLock::new());
    let (a, _) = serve(bouncer("a", to_b.clone(), gates.clone())).await;
    let (b, _) = serve(bouncer("b", to_a.clone(), gates.clone())).await;
    to_b.set(connect(&b).await).unwrap();
    to_a.set(connect(&a).await).unwrap();

    let caller = connect(&a).await;
    let other = connect(&b).await;
    let chain = async {
        let path = caller.call::<_, Vec<String>>("/down", &DEPTH).await;
        (path, Instant::now())
    };
    let others = async {
        // Use both services while the chain is open on both.
        gates.until_bottom().await;
        let mut done = Vec::new();
        for i in 0..20 {
            let reply = caller
                .rpc(Rpc::get("/echo").param(format!("{i}")))
                .await
                .unwrap();
            assert_eq!(reply.param, format!("{i}").as_bytes());
            let reply = other.rpc(Rpc::get("/echo").param("1")).await.unwrap();
            assert!(reply.status.is_ok());
            done.push(Instant::now());
        }
        gates.others_done.send_replace(true);
        done
    };
    let ((path, chain_done), others) = futures::join!(chain, others);
    let path = path.unwrap();
    assert_eq!(path.len(), DEPTH as usize + 1);
    // Innermost first. a serves the levels DEPTH, DEPTH - 2, …, so the
    // bottom (level 0) is on a when DEPTH is even.
    let bottom = if DEPTH.is_multiple_of(2) { "a" } else { "b" };
    assert_eq!(path[0], bottom);
    for pair in path.windows(2) {
        assert_ne!(pair[0], pair[1], "calls must alternate between services");
    }
    // Every other call finished while the chain was still open.
    assert_eq!(others.len(), 20);
    assert!(
        others.iter().all(|t| *t < chain_done),
        "other requests finished after the chain: {:?}",
        others
            .iter()
            .map(|t| t.duration_since(chain_done))
            .collect::<Vec<_>>()
    );
}

#[actix_rt::test]
async fn a_command_calls_its_own_service_50_deep() {
    let gates = Arc::new(Gates::default());
    let held = gates.clone();
    let commander = Commander::new()
        .typed("/count", move |n: u32, req: Request| {
            let gates = held.clone();
            async move {
                if n == 0 {
                    gates.hold().await?;
                    return Ok(0u32);
                }
                let commands = req.commands().ok_or_else(|| failed("no commands"))?;
                let below: u32 = commands.call_json("/count", &(n - 1)).await?;
                Ok::<_, CommandError>(below + 1)
            }
        })
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let chain = async {
        let count = client.call::<_, u32>("/count", &DEPTH).await;
        (count, Instant::now())
    };
    let other = async {
        gates.until_bottom().await;
        let reply = client.rpc(Rpc::get("/echo").param("1")).await.unwrap();
        assert_eq!(&reply.param[..], b"1");
        let done = Instant::now();
        gates.others_done.send_replace(true);
        done
    };
    let ((count, chain_done), other_done) = futures::join!(chain, other);
    assert_eq!(count.unwrap(), DEPTH);
    assert!(
        other_done < chain_done,
        "the echo finished {:?} after the chain",
        other_done.duration_since(chain_done)
    );
}
