//! The Broker: VSOA's subscription rule, authed-only delivery in priority
//! order, local actor subscribers, `is_subscribed`, lists, unsubscribe,
//! clients that leave, the quick channel and slow subscribers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::net::{Inbox, connect, serve, serve_with};
use psvc::broker::{IsSubscribed, Publish, Published, Subscribe, Unsubscribe};
use psvc::commander::Commander;
use psvc::socket::{Auth, Server, ServerOptions, SlowPeer};

const URLS: [&str; 8] = ["/a", "/a/b", "/a/b/c", "/ab", "/", "/x", "/x/y", "/b"];

/// Publishes every URL of `URLS` then a marker, and waits for the marker.
async fn publish_all(broker: &Addr<psvc::broker::Broker>, inbox: &Inbox, marker: &str) {
    for url in URLS {
        broker.send(Publish::new(url)).await.unwrap();
    }
    broker.send(Publish::new(marker)).await.unwrap();
    common::until(|| inbox.published().iter().any(|(u, _)| u == marker)).await;
}

async fn received_for(pattern: &[&str]) -> Vec<String> {
    let (srv, broker) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let inbox = Inbox::listen(&client).await;
    let mut patterns: Vec<&str> = pattern.to_vec();
    patterns.push("/marker");
    client.subscribe(patterns).await.unwrap();
    publish_all(&broker, &inbox, "/marker").await;
    inbox
        .published()
        .into_iter()
        .map(|(u, _)| u)
        .filter(|u| u != "/marker")
        .collect()
}

#[actix_rt::test]
async fn the_vsoa_subscription_rule() {
    assert_eq!(received_for(&["/a/"]).await, ["/a", "/a/b", "/a/b/c"]);
    assert_eq!(received_for(&["/a"]).await, ["/a"]);
    assert_eq!(received_for(&["/a/b/"]).await, ["/a/b", "/a/b/c"]);
    assert_eq!(received_for(&["/x/", "/b"]).await, ["/x", "/x/y", "/b"]);
    // "/" receives everything (the marker is covered by it too, once).
    let all = received_for(&["/"]).await;
    assert_eq!(all, URLS);
}

#[actix_rt::test]
async fn overlapping_subscriptions_deliver_once() {
    assert_eq!(received_for(&["/", "/a/", "/a/b/", "/a/b/c"]).await, URLS);
}

#[actix_rt::test]
async fn unsubscribe_stops_delivery() {
    let (srv, broker) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let inbox = Inbox::listen(&client).await;
    client.subscribe(["/a/", "/m1", "/m2"]).await.unwrap();
    publish_all(&broker, &inbox, "/m1").await;
    client.unsubscribe(["/a/"]).await.unwrap();
    publish_all(&broker, &inbox, "/m2").await;
    let got: Vec<String> = inbox.published().into_iter().map(|(u, _)| u).collect();
    assert_eq!(got, ["/a", "/a/b", "/a/b/c", "/m1", "/m2"]);
}

#[actix_rt::test]
async fn only_authed_clients_receive() {
    let (srv, broker) = serve(Commander::new()).await;
    let quiet = connect(&srv).await;
    let loud = connect(&srv).await;
    let quiet_inbox = Inbox::listen(&quiet).await;
    let loud_inbox = Inbox::listen(&loud).await;
    quiet.subscribe(["/"]).await.unwrap();
    loud.subscribe(["/"]).await.unwrap();
    let quiet_id = quiet.info().await.unwrap().client_id;
    let loud_id = loud.info().await.unwrap().client_id;
    for s in srv.sessions().await.unwrap() {
        if s.id() == quiet_id {
            s.set_authed(false);
        }
    }
    let delivered = broker.send(Publish::new("/t")).await.unwrap();
    assert_eq!(delivered.sessions, [loud_id]);
    common::until(|| loud_inbox.published().len() == 1).await;
    // Give a wrongly delivered packet time to arrive before checking.
    quiet.ping().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(quiet_inbox.published().is_empty());
    // Nobody authed left: nobody is subscribed.
    assert!(broker.send(IsSubscribed("/t".into())).await.unwrap());
    for s in srv.sessions().await.unwrap() {
        s.set_authed(false);
    }
    assert!(!broker.send(IsSubscribed("/t".into())).await.unwrap());
}

#[actix_rt::test]
async fn delivery_follows_priority_order() {
    let (srv, broker) = serve(Commander::new()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let c = connect(&srv).await;
        c.subscribe(["/p/"]).await.unwrap();
        clients.push(c);
    }
    let sessions = srv.sessions().await.unwrap();
    let priorities = [2u8, 7, 0, 7, 5];
    for (s, p) in sessions.iter().zip(priorities) {
        s.set_priority(p).unwrap();
    }
    common::until(|| {
        sessions
            .iter()
            .zip(priorities)
            .all(|(s, p)| s.priority() == p)
    })
    .await;
    let delivered = broker.send(Publish::new("/p/q")).await.unwrap();
    let ids: Vec<u32> = sessions.iter().map(|s| s.id()).collect();
    // 7, 7 (by id), 5, 2, 0.
    assert_eq!(delivered.sessions, [ids[1], ids[3], ids[4], ids[0], ids[2]]);
}

/// A local subscriber actor.
struct Sink(Arc<Mutex<Vec<String>>>);
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<Published> for Sink {
    type Result = ();
    fn handle(&mut self, msg: Published, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg.url);
    }
}

#[actix_rt::test]
async fn local_actors_and_remote_clients_share_the_broker() {
    let (srv, broker) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let inbox = Inbox::listen(&client).await;
    client.subscribe(["/s/"]).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(seen.clone()).start();
    let sub = broker
        .send(Subscribe {
            url: "/s/".into(),
            recipient: sink.recipient(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(broker.send(IsSubscribed("/s/1".into())).await.unwrap());
    let delivered = broker.send(Publish::new("/s/1")).await.unwrap();
    assert_eq!((delivered.sessions.len(), delivered.local), (1, 1));
    common::until(|| seen.lock().unwrap().len() == 1 && inbox.published().len() == 1).await;
    broker.send(Unsubscribe(sub)).await.unwrap();
    let delivered = broker.send(Publish::new("/s/2")).await.unwrap();
    assert_eq!((delivered.sessions.len(), delivered.local), (1, 0));
    // A bad pattern is refused.
    let refused = broker
        .send(Subscribe {
            url: "no-slash".into(),
            recipient: Sink(seen.clone()).start().recipient(),
        })
        .await
        .unwrap();
    assert!(refused.is_err());
    assert!(
        broker
            .send(Publish::new("no-slash"))
            .await
            .unwrap()
            .error
            .is_some()
    );
}

#[actix_rt::test]
async fn clients_that_leave_are_forgotten() {
    let (srv, broker) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    client.subscribe(["/gone/"]).await.unwrap();
    assert!(broker.send(IsSubscribed("/gone/x".into())).await.unwrap());
    client.close();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while broker.send(IsSubscribed("/gone/x".into())).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered = broker.send(Publish::new("/gone/x")).await.unwrap();
    assert!(delivered.sessions.is_empty());
}

#[actix_rt::test]
async fn quick_publishes_arrive_over_udp() {
    let (srv, broker) = serve(Commander::new()).await;
    let client = connect(&srv).await;
    let inbox = Inbox::listen(&client).await;
    client.subscribe(["/q/"]).await.unwrap();
    // UDP may drop: publish until one arrives (bounded).
    for i in 0..50 {
        broker
            .send(Publish::new(format!("/q/{i}")).quick(true))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !inbox.published().is_empty() {
            break;
        }
    }
    let got = inbox.published();
    assert!(!got.is_empty(), "no quick publish arrived");
    assert!(got.iter().all(|(_, quick)| *quick), "{got:?}");
    broker.send(Publish::new("/q/tcp")).await.unwrap();
    common::until(|| inbox.published().iter().any(|(u, q)| u == "/q/tcp" && !q)).await;
}

#[actix_rt::test]
async fn a_slow_subscriber_is_cut_off_and_others_keep_receiving() {
    let mut options = ServerOptions::default();
    options.send_buffer = 64 * 1024;
    options.send_timeout = Duration::from_millis(300);
    options.slow_peer = SlowPeer::Disconnect;
    let (srv, broker) = serve_with(
        Server::new(Auth::anonymous()).options(options),
        Commander::new(),
    )
    .await;
    // The slow one never reads: a raw socket that subscribed.
    let mut slow = common::net::Raw::connect(srv.local_addr()).await;
    slow.hello(None).await;
    slow.send(
        &psvc::frame::Frame::new(psvc::frame::Kind::Subscribe)
            .seqno(1)
            .url("/f/"),
    )
    .await;
    assert!(slow.recv().await.unwrap().status.is_ok());
    let fast = connect(&srv).await;
    let inbox = Inbox::listen(&fast).await;
    fast.subscribe(["/f/"]).await.unwrap();
    let payload = bytes::Bytes::from(vec![1u8; 16 * 1024]);
    let total = 400; // 6.4 MiB: far past the slow peer's socket buffers.
    for i in 0..total {
        broker
            .send(Publish::new("/f/x").data(payload.clone()))
            .await
            .unwrap();
        if i % 20 == 0 {
            // Let the fast client drain.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    common::until(|| inbox.published().len() == total).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while srv.sessions().await.unwrap().len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow peer not cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
