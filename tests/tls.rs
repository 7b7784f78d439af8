//! TLS with rustls: a round trip over an encrypted session, certificates the
//! client does not trust, and client-certificate verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::net::server;
use common::pki::Pki;
use psvc::client::{Client, ClientOptions};
use psvc::socket::{Auth, ClientTls, Server, ServerTls};

fn server_tls(pki: &Pki) -> ServerTls {
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
    ServerTls::from_pem(cert, key).unwrap()
}

#[actix_rt::test]
async fn tls_round_trip_with_password() {
    let pki = Pki::new("test");
    let (srv, _) = server(Server::new(Auth::password("pw")).tls(server_tls(&pki))).await;
    let tls = ClientTls::new(pki.ca(), "localhost").unwrap();
    let client = Client::connect(
        ClientOptions::new(srv.local_addr().to_string())
            .password("pw")
            .tls(tls),
    )
    .await
    .unwrap();
    client.ping().await.unwrap();
    client.subscribe(["/secure/"]).await.unwrap();
    let info = srv.session_infos().await.unwrap().remove(0);
    assert!(info.tls);
    assert_eq!(info.subscriptions, vec!["/secure/"]);
    assert_eq!(info.quick_port, None, "no quick channel under TLS");
}

#[actix_rt::test]
async fn a_certificate_from_an_unknown_ca_is_rejected() {
    let real = Pki::new("real");
    let other = Pki::new("other");
    let (srv, _) = server(Server::new(Auth::anonymous()).tls(server_tls(&real))).await;
    let tls = ClientTls::new(other.ca(), "localhost").unwrap();
    let err = Client::connect(ClientOptions::new(srv.local_addr().to_string()).tls(tls))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    // Wrong name with the right CA is rejected too.
    let tls = ClientTls::new(real.ca(), "elsewhere.example").unwrap();
    let err = Client::connect(ClientOptions::new(srv.local_addr().to_string()).tls(tls))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    // A plain-TCP client talking to a TLS server gets no SERVINFO.
    let err = Client::connect(
        ClientOptions::new(srv.local_addr().to_string())
            .connect_timeout(std::time::Duration::from_millis(500)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err.code(), 4 | 5), "{err}");
    assert!(srv.sessions().await.unwrap().is_empty());
}

#[actix_rt::test]
async fn client_certificates_are_verified_when_required() {
    let pki = Pki::new("corp");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let (ccert, ckey) = pki.issue("device-7", &["device-7"]);
    let tls = ServerTls::with_client_auth(&cert, &key, pki.ca()).unwrap();
    let (srv, _) = server(Server::new(Auth::anonymous()).tls(tls)).await;
    let addr = srv.local_addr().to_string();

    let with_cert = ClientTls::with_client_cert(pki.ca(), "localhost", &ccert, &ckey).unwrap();
    let client = Client::connect(ClientOptions::new(addr.clone()).tls(with_cert))
        .await
        .unwrap();
    client.ping().await.unwrap();

    let without = ClientTls::new(pki.ca(), "localhost").unwrap();
    let err = Client::connect(
        ClientOptions::new(addr.clone())
            .tls(without)
            .connect_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), 7, "{err}");

    let stranger = Pki::new("stranger");
    let (scert, skey) = stranger.issue("intruder", &["intruder"]);
    let foreign = ClientTls::with_client_cert(pki.ca(), "localhost", &scert, &skey).unwrap();
    let err = Client::connect(
        ClientOptions::new(addr)
            .tls(foreign)
            .connect_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    assert_eq!(
        srv.sessions().await.unwrap().len(),
        1,
        "only the trusted device got in"
    );
}

#[test]
fn bad_pem_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let err = ServerTls::from_pem(&junk, &junk).unwrap_err().to_string();
    assert!(err.contains("junk.pem"), "{err}");
    let err = ClientTls::new(Path::new("/nonexistent/ca.pem"), "localhost")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

/// An authenticator that lets everyone in and records what the handshake
/// reported about the client certificate.
fn recording_auth() -> (Auth, std::sync::Arc<std::sync::Mutex<Vec<bool>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let auth = Auth::custom(move |hello: &psvc::socket::Hello<'_>| {
        log.lock().unwrap().push(hello.client_certificate);
        psvc::socket::Verdict::Accept { authed: true }
    });
    (auth, seen)
}

/// Connects, pings, closes; returns what the authenticator saw.
async fn certificate_seen(tls: ServerTls, client: ClientTls) -> Vec<bool> {
    let (auth, seen) = recording_auth();
    let (srv, _) = server(Server::new(auth).tls(tls)).await;
    let c = Client::connect(ClientOptions::new(srv.local_addr().to_string()).tls(client))
        .await
        .unwrap();
    c.ping().await.unwrap();
    c.close();
    seen.lock().unwrap().clone()
}

#[actix_rt::test]
async fn no_client_certificate_is_reported_when_the_server_asks_for_none() {
    let pki = Pki::new("plain");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let tls = ServerTls::from_pem(&cert, &key).unwrap();
    let client = ClientTls::new(pki.ca(), "localhost").unwrap();
    assert_eq!(certificate_seen(tls, client).await, vec![false]);

    // A client that has a certificate but is never asked for it: still false.
    let (ccert, ckey) = pki.issue("device-1", &["device-1"]);
    let tls = ServerTls::from_pem(&cert, &key).unwrap();
    let client = ClientTls::with_client_cert(pki.ca(), "localhost", &ccert, &ckey).unwrap();
    assert_eq!(certificate_seen(tls, client).await, vec![false]);
}

#[actix_rt::test]
async fn optional_client_auth_reports_whether_a_certificate_was_verified() {
    let pki = Pki::new("opt");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let (ccert, ckey) = pki.issue("device-2", &["device-2"]);

    let tls = ServerTls::with_optional_client_auth(&cert, &key, pki.ca()).unwrap();
    let without = ClientTls::new(pki.ca(), "localhost").unwrap();
    assert_eq!(certificate_seen(tls, without).await, vec![false]);

    let tls = ServerTls::with_optional_client_auth(&cert, &key, pki.ca()).unwrap();
    let with = ClientTls::with_client_cert(pki.ca(), "localhost", &ccert, &ckey).unwrap();
    assert_eq!(certificate_seen(tls, with).await, vec![true]);

    // A certificate from another CA is not "optional": the handshake fails.
    let stranger = Pki::new("stranger");
    let (scert, skey) = stranger.issue("intruder", &["intruder"]);
    let (auth, seen) = recording_auth();
    let tls = ServerTls::with_optional_client_auth(&cert, &key, pki.ca()).unwrap();
    let (srv, _) = server(Server::new(auth).tls(tls)).await;
    let foreign = ClientTls::with_client_cert(pki.ca(), "localhost", &scert, &skey).unwrap();
    let err = Client::connect(
        ClientOptions::new(srv.local_addr().to_string())
            .tls(foreign)
            .connect_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    assert!(seen.lock().unwrap().is_empty());
}

#[actix_rt::test]
async fn a_verified_client_certificate_is_reported_under_required_client_auth() {
    let pki = Pki::new("req");
    let (cert, key) = pki.issue("server", &["localhost"]);
    let (ccert, ckey) = pki.issue("device-3", &["device-3"]);
    let tls = ServerTls::with_client_auth(&cert, &key, pki.ca()).unwrap();
    let with = ClientTls::with_client_cert(pki.ca(), "localhost", &ccert, &ckey).unwrap();
    assert_eq!(certificate_seen(tls, with).await, vec![true]);
}

#[actix_rt::test]
async fn plain_tcp_reports_no_client_certificate() {
    let (auth, seen) = recording_auth();
    let (srv, _) = server(Server::new(auth)).await;
    let c = Client::connect(ClientOptions::new(srv.local_addr().to_string()))
        .await
        .unwrap();
    c.ping().await.unwrap();
    assert_eq!(seen.lock().unwrap().clone(), vec![false]);
}
