//! Reentrancy without deadlock: a command calls other commands on its own
//! service and on a remote service that calls back, 50 levels deep, while
//! other requests keep flowing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::net::{connect, serve};
use psvc::client::{Client, Rpc};
use psvc::commander::{CommandError, Commander, Request, Response};

const DEPTH: u32 = 50;
/// How long the innermost call waits, so the chain is still open while
/// the other requests are made.
const BOTTOM: Duration = Duration::from_millis(400);

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// `/down` with n > 0 calls `/down` with n - 1 through `next` (a remote
/// peer) and adds its own name; at 0 it waits and answers.
fn bouncer(name: &'static str, next: Arc<OnceLock<Client>>) -> Commander {
    Commander::new()
        .typed("/down", move |n: u32, _req: Request| {
            let next = next.clone();
            async move {
                if n == 0 {
                    tokio::time::sleep(BOTTOM).await;
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
    let to_b = Arc::new(OnceLock::new());
    let to_a = Arc::new(OnceLock::new());
    let (a, _) = serve(bouncer("a", to_b.clone())).await;
    let (b, _) = serve(bouncer("b", to_a.clone())).await;
    to_b.set(connect(&b).await).unwrap();
    to_a.set(connect(&a).await).unwrap();

    let caller = connect(&a).await;
    let started = Instant::now();
    let chain = caller.call::<_, Vec<String>>("/down", &DEPTH);
    let others = async {
        // Give the chain time to build up, then use both services.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let other = connect(&b).await;
        let mut done = Vec::new();
        for i in 0..20 {
            let reply = caller
                .rpc(Rpc::get("/echo").param(format!("{i}")))
                .await
                .unwrap();
            assert_eq!(reply.param, format!("{i}").as_bytes());
            let reply = other.rpc(Rpc::get("/echo").param("1")).await.unwrap();
            assert!(reply.status.is_ok());
            done.push(started.elapsed());
        }
        done
    };
    let (path, others) = futures::join!(chain, others);
    let chain_time = started.elapsed();
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
    assert!(
        others.iter().all(|t| *t < chain_time),
        "other requests waited for the chain: {others:?} vs {chain_time:?}"
    );
}

#[actix_rt::test]
async fn a_command_calls_its_own_service_50_deep() {
    let commander = Commander::new()
        .typed("/count", |n: u32, req: Request| async move {
            if n == 0 {
                tokio::time::sleep(BOTTOM).await;
                return Ok(0u32);
            }
            let commands = req.commands().ok_or_else(|| failed("no commands"))?;
            let below: u32 = commands.call_json("/count", &(n - 1)).await?;
            Ok::<_, CommandError>(below + 1)
        })
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;
    let started = Instant::now();
    let chain = client.call::<_, u32>("/count", &DEPTH);
    let other = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.rpc(Rpc::get("/echo").param("1")).await.unwrap();
        started.elapsed()
    };
    let (count, other_done) = futures::join!(chain, other);
    assert_eq!(count.unwrap(), DEPTH);
    assert!(other_done < started.elapsed());
    assert!(
        other_done < BOTTOM,
        "the echo waited for the chain: {other_done:?}"
    );
}
