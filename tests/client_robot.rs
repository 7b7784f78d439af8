//! Robot mode: keepalive pings, disconnect after lost pings, reconnect with
//! a delay, and subscriptions restored on the new connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::net::Inbox;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::BytesMut;
use common::net::{EventLog, Events, until_event};
use psvc::client::{Client, ClientMessage, ClientOptions, Robot};
use psvc::frame::{self, MAX_TCP_PACKET};
use psvc::socket::{Auth, ClientEvent, Server, ServerHandle};
use psvc::supervisor::Backoff;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start_on(addr: &str, log: &EventLog) -> ServerHandle {
    let events = Events(log.clone()).start();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Server::new(Auth::anonymous())
            .on_client(events.clone().recipient())
            .start(addr)
            .await
        {
            Ok(h) => return h,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(%e, "port not free yet");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[actix_rt::test]
async fn client_is_back_and_resubscribed_within_the_reconnect_delay_plus_100ms() {
    let delay = Duration::from_millis(300);
    let first_log = EventLog::default();
    let first = start_on("127.0.0.1:0", &first_log).await;
    let addr = first.local_addr().to_string();
    let robot = Robot::default().reconnect(Backoff::exponential(delay, Duration::from_secs(2)));
    let client = Client::connect(ClientOptions::new(addr.clone()).robot(robot))
        .await
        .unwrap();
    client.subscribe(["/sensors/", "/alarm"]).await.unwrap();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    client
        .on_message(Inbox(inbox.clone()).start().recipient())
        .await
        .unwrap();

    // The server goes down and comes back on the same port.
    let down = Instant::now();
    first.stop();
    let second_log = EventLog::default();
    let second = start_on(&addr, &second_log).await;
    until_event(&second_log, |e| {
        e.iter()
            .filter(|e| matches!(e, ClientEvent::Subscribed { .. }))
            .count()
            == 2
    })
    .await;
    let back = down.elapsed();
    assert!(back >= delay, "reconnected before the delay: {back:?}");
    assert!(
        back <= delay + Duration::from_millis(100),
        "too slow: {back:?}"
    );
    let sessions = second.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].info().subscriptions,
        vec!["/alarm", "/sensors/"],
        "sorted"
    );
    client.ping().await.unwrap();
    let inbox = inbox.lock().unwrap();
    assert!(
        matches!(inbox[0], ClientMessage::Disconnected(_)),
        "{inbox:?}"
    );
    assert!(matches!(inbox[1], ClientMessage::Connected(_)), "{inbox:?}");
}

/// A server that completes the handshake and then ignores everything.
async fn deaf_server() -> (std::net::SocketAddr, Arc<Mutex<u32>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(Mutex::new(0));
    let count = accepted.clone();
    actix::spawn(async move {
        for _ in 0..5 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            *count.lock().unwrap() += 1;
            actix::spawn(async move {
                let mut buf = BytesMut::new();
                let hello = loop {
                    match frame::decode(&mut buf, MAX_TCP_PACKET) {
                        Ok(f) => break f,
                        Err(_) => {
                            if s.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                                return;
                            }
                        }
                    }
                };
                let mut out = BytesMut::new();
                frame::encode(
                    &hello.reply().data(&[0, 0, 0, 7][..]),
                    &mut out,
                    MAX_TCP_PACKET,
                )
                .unwrap();
                s.write_all(&out).await.unwrap();
                let mut sink = [0u8; 1024];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, accepted)
}

#[actix_rt::test]
async fn lost_pings_drop_the_link_and_the_robot_reconnects() {
    let (addr, accepted) = deaf_server().await;
    let robot = Robot::default()
        .ping(Duration::from_millis(100), 3)
        .reconnect(Backoff::exponential(
            Duration::from_millis(50),
            Duration::from_millis(50),
        ));
    let client = Client::connect(ClientOptions::new(addr.to_string()).robot(robot))
        .await
        .unwrap();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    client
        .on_message(Inbox(inbox.clone()).start().recipient())
        .await
        .unwrap();
    let start = Instant::now();
    common::until(|| inbox.lock().unwrap().len() >= 2).await;
    let took = start.elapsed();
    let inbox = inbox.lock().unwrap();
    assert!(
        matches!(&inbox[0], ClientMessage::Disconnected(r) if r.contains("3 keepalive pings lost")),
        "{inbox:?}"
    );
    assert!(
        matches!(&inbox[1], ClientMessage::Connected(i) if i.client_id == 7),
        "{inbox:?}"
    );
    assert!(
        took >= Duration::from_millis(300),
        "three pings must be lost first: {took:?}"
    );
    assert_eq!(*accepted.lock().unwrap(), 2);
}

#[actix_rt::test]
async fn a_started_robot_waits_for_a_server_that_is_not_up_yet() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap().to_string();
    drop(probe);
    let robot = Robot::default().reconnect(Backoff::exponential(
        Duration::from_millis(20),
        Duration::from_millis(100),
    ));
    let client = Client::start(ClientOptions::new(addr.clone()).robot(robot));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!client.is_connected().await);
    let log = EventLog::default();
    let _srv = start_on(&addr, &log).await;
    until_event(&log, |e| {
        e.iter().any(|e| matches!(e, ClientEvent::Connected(_)))
    })
    .await;
    // The server counts the session before the client has read SERVINFO:
    // wait for the client's own view too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !client.is_connected().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the robot never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.ping().await.unwrap();
}
