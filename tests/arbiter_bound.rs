//! Arbiter-bound commands are bounded: past the route's capacity a request
//! is refused at once with status 6 (worker queue full) instead of queuing
//! on the arbiter's unbounded channel, and the service carries on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::prelude::*;
use common::TIMEOUT;
use common::net::{connect, serve};
use psvc::client::Rpc;
use psvc::commander::{CommandError, Commander, Response};
use psvc::frame::Status;
use tokio::sync::watch;

const CAPACITY: usize = 2;

#[actix_rt::test]
async fn past_its_capacity_an_arbiter_route_refuses_with_status_6_and_serves_on() {
    let worker = Arbiter::new();
    // Each handler says it has started, then waits for the gate.
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(watch::Sender::new(false));
    let (started_in, gate_in) = (started.clone(), gate.clone());
    let commander =
        Commander::new().on_arbiter_bounded("/work", worker.handle(), CAPACITY, move |_req| {
            started_in.fetch_add(1, Ordering::SeqCst);
            let mut open = gate_in.subscribe();
            async move {
                tokio::time::timeout(TIMEOUT, open.wait_for(|o| *o))
                    .await
                    .map_err(|_| CommandError::Failed("gate never opened".into()))?
                    .map_err(|_| CommandError::Unavailable)?;
                Response::json(&"done")
            }
        });
    let (srv, _) = serve(commander).await;
    let client = connect(&srv).await;

    let held = |_: usize| async { client.rpc(Rpc::get("/work")).await.unwrap() };
    let refused = async {
        // Both slots are taken by handlers waiting on the arbiter.
        common::until(|| started.load(Ordering::SeqCst) == CAPACITY).await;
        let reply = client.rpc(Rpc::get("/work")).await.unwrap();
        gate.send_replace(true);
        reply
    };
    let (first, second, refused) = futures::join!(held(1), held(2), refused);
    assert_eq!(refused.status, Status::NO_MEMORY);
    let message = String::from_utf8_lossy(&refused.param);
    assert!(message.contains("worker queue full"), "{message}");
    // The refused request never reached the arbiter.
    assert_eq!(started.load(Ordering::SeqCst), CAPACITY);
    for reply in [first, second] {
        assert_eq!(reply.status, Status::OK);
        assert_eq!(&reply.param[..], b"\"done\"");
    }

    // The slots came back: more requests than the capacity, one at a time,
    // are all served.
    for _ in 0..CAPACITY + 2 {
        let reply = client.rpc(Rpc::get("/work")).await.unwrap();
        assert_eq!(reply.status, Status::OK);
    }
    client.ping().await.unwrap();
    worker.stop();
}

#[actix_rt::test]
async fn on_arbiter_keeps_its_signature_with_the_default_bound() {
    assert_eq!(psvc::commander::ARBITER_QUEUE, 1024);
    let worker = Arbiter::new();
    let net = std::thread::current().id();
    let commands = Commander::new()
        .on_arbiter("/where", worker.handle(), move |_req| async move {
            Response::json(&(std::thread::current().id() != net))
        })
        .commands();
    let off_thread: bool = commands.call_json("/where", &()).await.unwrap();
    assert!(off_thread);
    worker.stop();
}
