//! The Position service: VSOA's UDP JSON name lookup, and clients that
//! connect to `vsoa://name`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::net::serve;
use psvc::client::{Client, ClientOptions, ConnectError};
use psvc::commander::Commander;
use psvc::position::{Position, lookup};

#[actix_rt::test]
async fn clients_connect_by_name() {
    let (srv, _) = serve(Commander::new()).await;
    let position = Position::new()
        .register("thermo", srv.local_addr(), false)
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let pos = position.local_addr();
    assert_eq!(lookup("thermo", pos).await.unwrap(), srv.local_addr());
    let client = Client::connect(ClientOptions::new("vsoa://thermo/some/path").position(pos))
        .await
        .unwrap();
    client.ping().await.unwrap();
    // vsoa://ip:port needs no lookup.
    let direct = Client::connect(ClientOptions::new(format!("vsoa://{}", srv.local_addr())))
        .await
        .unwrap();
    direct.ping().await.unwrap();
    // Unknown names are "server not found" (VSOA code 3).
    let err = Client::connect(ClientOptions::new("vsoa://nobody").position(pos))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::NotFound(_)), "{err:?}");
    assert_eq!(err.code(), 3);
    // Names can be added and removed while running.
    position
        .register("late", srv.local_addr(), false)
        .await
        .unwrap();
    assert_eq!(lookup("late", pos).await.unwrap(), srv.local_addr());
    position.unregister("late").await.unwrap();
    assert!(lookup("late", pos).await.is_err());
}

#[actix_rt::test]
async fn the_wire_format_is_vsoa_json_and_garbage_is_ignored() {
    let position = Position::new()
        .register("svc", "127.0.0.1:4000".parse().unwrap(), true)
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(position.local_addr()).await.unwrap();
    let mut buf = [0u8; 4096];
    udp.send(b"\xffnot json").await.unwrap();
    udp.send(br#"{"name": ""}"#).await.unwrap();
    udp.send(br#"{"name":"svc","domain":2}"#).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"name": "svc", "addr": "127.0.0.1", "port": 4000, "domain": 2, "security": true})
    );
    udp.send(br#"{"name":"other","domain":2}"#).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), udp.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"{}");
}
