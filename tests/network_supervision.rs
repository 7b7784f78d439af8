//! Supervision reaches the network tier: the Broker, the Commander and the
//! Listener each crash (killed as a panic would end them) under a running
//! server with subscribed robot clients, and the clients see nothing but a
//! short gap in RPC answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::net::Inbox;
use psvc::broker::{Broker, Publish};
use psvc::client::{Client, ClientOptions, Robot};
use psvc::commander::{Commander, Request, Response};
use psvc::socket::{Auth, Listener, Server};
use psvc::supervisor::{Backoff, RootSupervisor};
use psvc::{ChildRef, SupervisorSpec};

/// The restart delay of every child in these trees.
const BACKOFF: Duration = Duration::from_millis(100);

struct Tree {
    root: RootSupervisor,
    broker: ChildRef<Broker>,
    commander: ChildRef<Commander>,
    listener: ChildRef<Listener>,
    addr: SocketAddr,
}

/// A port free for TCP and UDP now (the listener rebinds it on restart).
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port")
}

async fn tree() -> Tree {
    let broker_spec = Broker::child_spec("broker");
    let broker = broker_spec.handle();
    let commander_spec = Commander::new()
        .route("/echo", |req: Request| async move {
            Ok(Response::ok().param(req.param))
        })
        .child_spec("commander");
    let commander = commander_spec.handle();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listener_spec = Server::new(Auth::anonymous())
        .commander(commander.recipient())
        .broker(broker.recipient())
        .child_spec("listener", addr.to_string());
    let listener = listener_spec.handle();
    let root = SupervisorSpec::new("root")
        .intensity(20, Duration::from_secs(10))
        .backoff(Backoff::exponential(BACKOFF, BACKOFF).jitter(0.0))
        .child(broker_spec)
        .child(commander_spec)
        .child(listener_spec)
        .start_root();
    listener.wait_running(Duration::from_secs(5)).await.unwrap();
    Tree {
        root,
        broker,
        commander,
        listener,
        addr,
    }
}

/// Robot clients subscribed to `/t/`, each with its inbox.
async fn robots(addr: SocketAddr, n: usize) -> Vec<(Client, Inbox)> {
    let mut list = Vec::new();
    for _ in 0..n {
        let client = Client::connect(ClientOptions::new(addr.to_string()).robot(Robot::default()))
            .await
            .unwrap();
        client.subscribe(["/t/"]).await.unwrap();
        let inbox = Inbox::listen(&client).await;
        list.push((client, inbox));
    }
    list
}

/// Publishes `/t/<n>` and waits until every client has it.
async fn every_client_gets(tree: &Tree, clients: &[(Client, Inbox)], n: u32) {
    let url = format!("/t/{n}");
    let delivered = tree.broker.ask(Publish::new(url.clone())).await.unwrap();
    assert_eq!(
        delivered.sessions.len(),
        clients.len(),
        "publish {n}: {delivered:?}"
    );
    common::until(|| {
        clients
            .iter()
            .all(|(_, inbox)| inbox.published().iter().any(|(u, _)| *u == url))
    })
    .await;
}

/// Waits (at most 10 s) until `cond` answers true.
async fn eventually<F, Fut>(mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Calls `/echo` until it answers; the time of the first answer is taken
/// where it arrives.
async fn first_answer(client: &Client, since: Instant) -> Duration {
    let deadline = since + Duration::from_secs(5);
    loop {
        let arg = serde_json::json!({"x": 1});
        let call = client.call::<_, serde_json::Value>("/echo", &arg);
        if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_millis(200), call).await {
            let at = since.elapsed();
            assert_eq!(v, serde_json::json!({"x": 1}));
            return at;
        }
        assert!(Instant::now() < deadline, "no answer within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix_rt::test]
async fn a_crashed_broker_comes_back_with_every_subscription() {
    let tree = tree().await;
    let clients = robots(tree.addr, 3).await;
    every_client_gets(&tree, &clients, 1).await;
    tree.root.handle().kill_child("broker").await.unwrap();
    common::until(|| tree.broker.starts() == 2 && tree.broker.is_running()).await;
    // The new instance rebuilt its index from the live sessions: nobody
    // re-subscribed, yet everyone gets the next publish.
    every_client_gets(&tree, &clients, 2).await;
    // New subscriptions reach the new instance too.
    clients[0].0.subscribe(["/only/"]).await.unwrap();
    eventually(|| async {
        tree.broker
            .ask(Publish::new("/only/x"))
            .await
            .is_ok_and(|d| d.sessions.len() == 1)
    })
    .await;
}

#[actix_rt::test]
async fn a_crashed_commander_answers_again_within_the_backoff_plus_100ms() {
    let tree = tree().await;
    let clients = robots(tree.addr, 2).await;
    let client = &clients[0].0;
    first_answer(client, Instant::now()).await;
    let killed = Instant::now();
    tree.root.handle().kill_child("commander").await.unwrap();
    let back = first_answer(client, killed).await;
    assert!(tree.commander.starts() >= 2);
    assert!(
        back <= BACKOFF + Duration::from_millis(100),
        "answers resumed after {back:?}"
    );
    every_client_gets(&tree, &clients, 1).await;
}

#[actix_rt::test]
async fn a_crashed_listener_keeps_its_sessions_and_accepts_again() {
    let tree = tree().await;
    let clients = robots(tree.addr, 3).await;
    every_client_gets(&tree, &clients, 1).await;
    let killed = Instant::now();
    tree.root.handle().kill_child("listener").await.unwrap();
    // Connected clients keep their sessions: publishes and RPCs go on.
    every_client_gets(&tree, &clients, 2).await;
    first_answer(&clients[1].0, Instant::now()).await;
    // The new instance accepts on the same port within the backoff + 100 ms.
    let deadline = killed + Duration::from_secs(5);
    let back = loop {
        if tree.listener.starts() >= 2
            && let Ok(c) = Client::connect(ClientOptions::new(tree.addr.to_string())).await
        {
            let at = killed.elapsed();
            c.ping().await.unwrap();
            break at;
        }
        assert!(Instant::now() < deadline, "listener not back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(back <= BACKOFF + Duration::from_millis(100), "{back:?}");
    // The old sessions are the new instance's: it lists them.
    let sessions = tree.listener.ask(psvc::socket::ListSessions).await.unwrap();
    assert!(sessions.len() >= 3, "{}", sessions.len());
    every_client_gets(&tree, &clients, 3).await;
}

#[actix_rt::test]
async fn two_listeners_on_one_broker_deliver_to_the_right_clients_only() {
    use actix::Actor;
    let broker = Broker::new().start();
    let mut servers = Vec::new();
    for _ in 0..2 {
        servers.push(
            Server::new(Auth::anonymous())
                .broker(broker.clone().recipient())
                .start("127.0.0.1:0")
                .await
                .unwrap(),
        );
    }
    let mut clients = Vec::new();
    for (srv, url) in servers.iter().zip(["/a", "/b"]) {
        let client = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
            .await
            .unwrap();
        client.subscribe([url, "/both"]).await.unwrap();
        clients.push((Inbox::listen(&client).await, client));
    }
    let publish = |url: &'static str| broker.send(Publish::new(url));
    eventually(|| async { publish("/both").await.is_ok_and(|d| d.sessions.len() == 2) }).await;
    assert_eq!(publish("/a").await.unwrap().sessions.len(), 1);
    assert_eq!(publish("/b").await.unwrap().sessions.len(), 1);
    common::until(|| {
        clients
            .iter()
            .all(|(inbox, _)| inbox.published().len() >= 2)
    })
    .await;
    let urls = |i: usize| -> Vec<String> {
        clients[i]
            .0
            .published()
            .into_iter()
            .map(|(u, _)| u)
            .collect()
    };
    assert!(urls(0).contains(&"/a".to_owned()) && !urls(0).contains(&"/b".to_owned()));
    assert!(urls(1).contains(&"/b".to_owned()) && !urls(1).contains(&"/a".to_owned()));
}
