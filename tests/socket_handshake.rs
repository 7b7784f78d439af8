//! The VSOA handshake on a psvc server: SERVINFO with info and client id,
//! passwords (status 1, then close), throttling and the 5 s limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::net::{Raw, anonymous, client_id, server, until_connected, until_event};
use psvc::frame::{Flags, Frame, Kind, Status};
use psvc::socket::{Auth, ClientEvent, Server, ServerOptions, Throttle};

#[actix_rt::test]
async fn servinfo_reply_carries_info_and_client_id() {
    let (srv, events) =
        server(Server::new(Auth::anonymous()).info(serde_json::json!({"name": "thermo"}))).await;
    let mut a = Raw::connect(srv.local_addr()).await;
    let mut b = Raw::connect(srv.local_addr()).await;
    let ra = a.hello(None).await;
    let rb = b.hello(None).await;
    for r in [&ra, &rb] {
        assert_eq!(r.kind, Kind::ServInfo);
        assert!(r.flags.contains(Flags::REPLY));
        assert_eq!(r.seqno, 1, "seqno echoed");
        assert_eq!(r.status, Status::OK);
        assert_eq!(&r.param[..], br#"{"name":"thermo"}"#);
        assert_eq!(r.data.len(), 4);
    }
    let ida = client_id(&ra);
    let idb = client_id(&rb);
    assert_ne!(ida, idb, "client ids are unique");
    until_connected(&events, 2).await;
    let infos = srv.session_infos().await.unwrap();
    assert_eq!(infos.iter().map(|i| i.id).collect::<Vec<_>>(), {
        let mut v = vec![ida, idb];
        v.sort();
        v
    });
    assert!(infos.iter().all(|i| i.authed && !i.tls));
    drop(a);
    until_event(&events, |e| {
        e.iter()
            .any(|e| matches!(e, ClientEvent::Disconnected { info, .. } if info.id == ida))
    })
    .await;
}

#[actix_rt::test]
async fn right_password_is_accepted() {
    let (srv, _) = server(Server::new(Auth::password("s3cret"))).await;
    let mut c = Raw::connect(srv.local_addr()).await;
    let r = c.hello(Some("s3cret")).await;
    assert_eq!(r.status, Status::OK);
    assert_eq!(c.ping(9).await.seqno, 9);
}

#[actix_rt::test]
async fn wrong_or_missing_password_gets_status_1_and_is_closed() {
    let (srv, events) = server(Server::new(Auth::password("s3cret"))).await;
    for pw in [Some("wrong"), None, Some("")] {
        let mut c = Raw::connect(srv.local_addr()).await;
        let r = c.hello(pw).await;
        assert_eq!(r.kind, Kind::ServInfo);
        assert!(r.is_reply());
        assert_eq!(r.status, Status::PASSWORD, "{pw:?}");
        assert!(r.data.is_empty(), "no client id for a refused client");
        assert!(
            c.expect_closed().await.is_empty(),
            "closed after the refusal"
        );
    }
    assert!(srv.sessions().await.unwrap().is_empty());
    assert!(
        !events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected(_))),
        "a refused client never counts as connected"
    );
}

#[actix_rt::test]
async fn repeated_failures_are_throttled_per_address() {
    let throttle = Throttle {
        free_attempts: 2,
        base: Duration::from_millis(400),
        max: Duration::from_secs(2),
        window: Duration::from_secs(60),
    };
    let mut options = ServerOptions::default();
    options.throttle = throttle;
    let (srv, _) = server(Server::new(Auth::password("pw")).options(options)).await;
    let attempt = |pw: &'static str| {
        let addr = srv.local_addr();
        async move {
            let mut c = Raw::connect(addr).await;
            let start = Instant::now();
            let r = c.hello(Some(pw)).await;
            (r.status, start.elapsed())
        }
    };
    for _ in 0..2 {
        let (status, took) = attempt("guess").await;
        assert_eq!(status, Status::PASSWORD);
        assert!(
            took < Duration::from_millis(300),
            "free attempts are not delayed: {took:?}"
        );
    }
    let (status, took) = attempt("guess").await;
    assert_eq!(status, Status::PASSWORD);
    assert!(
        took >= Duration::from_millis(400),
        "third failure waits: {took:?}"
    );
    // Even the right password waits while the address is penalised, then
    // succeeds and clears the record.
    let (status, took) = attempt("pw").await;
    assert_eq!(status, Status::OK);
    assert!(
        took >= Duration::from_millis(800),
        "penalty doubled: {took:?}"
    );
    let (status, took) = attempt("pw").await;
    assert_eq!(status, Status::OK);
    assert!(
        took < Duration::from_millis(300),
        "success cleared the penalty: {took:?}"
    );
}

#[actix_rt::test]
async fn unanswered_handshake_is_closed_after_5_seconds() {
    assert_eq!(
        ServerOptions::default().handshake_timeout,
        Duration::from_secs(5)
    );
    let (srv, _) = anonymous().await;
    let mut silent = Raw::connect(srv.local_addr()).await;
    let start = Instant::now();
    assert!(silent.expect_closed().await.is_empty());
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(4900),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "closed too late: {took:?}");
}

#[actix_rt::test]
async fn custom_authenticator_sees_the_param_and_sets_authed() {
    let auth = Auth::custom(|hello: &psvc::socket::Hello<'_>| {
        match hello.param.get("token").and_then(|t| t.as_str()) {
            Some("reader") => psvc::socket::Verdict::Accept { authed: false },
            Some("admin") => psvc::socket::Verdict::Accept { authed: true },
            _ => psvc::socket::Verdict::Reject,
        }
    });
    let (srv, _) = server(Server::new(auth)).await;
    let mut reader = Raw::connect(srv.local_addr()).await;
    reader
        .send(&Frame::new(Kind::ServInfo).param(r#"{"token":"reader"}"#))
        .await;
    let reply = reader.recv().await.unwrap();
    assert_eq!(reply.status, Status::OK);
    let reader_id = common::net::client_id(&reply);
    let mut admin = Raw::connect(srv.local_addr()).await;
    admin
        .send(&Frame::new(Kind::ServInfo).param(r#"{"token":"admin"}"#))
        .await;
    assert_eq!(admin.recv().await.unwrap().status, Status::OK);
    let mut nobody = Raw::connect(srv.local_addr()).await;
    nobody
        .send(&Frame::new(Kind::ServInfo).param("not json"))
        .await;
    assert_eq!(nobody.recv().await.unwrap().status, Status::PASSWORD);
    let infos = srv.session_infos().await.unwrap();
    assert_eq!(infos.len(), 2);
    for info in &infos {
        assert_eq!(info.authed, info.id != reader_id, "{info:?}");
    }
    // The service can change the flag later.
    common::net::session(&srv, reader_id).await.set_authed(true);
    assert!(srv.session_infos().await.unwrap().iter().all(|i| i.authed));
}

#[actix_rt::test]
async fn one_address_gets_a_bounded_number_of_handshakes_at_once() {
    let mut options = ServerOptions::default();
    options.handshakes_per_ip = 4;
    let (srv, log) = server(Server::new(Auth::password("pw")).options(options)).await;
    // Four connections that never say hello hold the four places.
    let mut silent = Vec::new();
    for _ in 0..4 {
        let mut c = Raw::connect(srv.local_addr()).await;
        // A ping before SERVINFO is answered: the session is up and counted.
        assert_eq!(c.ping(1).await.status, psvc::frame::Status::PASSWORD);
        silent.push(c);
    }
    // A fifth is closed at once, without an answer.
    let mut fifth = Raw::connect(srv.local_addr()).await;
    fifth.send(&Frame::new(Kind::ServInfo)).await;
    assert!(fifth.expect_closed().await.is_empty());
    assert_eq!(srv.stats().handshakes_refused, 1);
    // A place frees when a handshake completes.
    assert_eq!(silent[0].hello(Some("pw")).await.status, Status::OK);
    until_connected(&log, 1).await;
    let mut sixth = Raw::connect(srv.local_addr()).await;
    assert_eq!(sixth.hello(Some("pw")).await.status, Status::OK);
}

#[actix_rt::test]
async fn parallel_guesses_are_judged_one_after_another_and_input_waits() {
    let throttle = Throttle {
        free_attempts: 1,
        base: Duration::from_millis(200),
        max: Duration::from_millis(200),
        window: Duration::from_secs(60),
    };
    let mut options = ServerOptions::default();
    options.throttle = throttle;
    let (srv, _) = server(Server::new(Auth::password("pw")).options(options)).await;
    let mut first = Raw::connect(srv.local_addr()).await;
    assert_eq!(first.hello(Some("guess")).await.status, Status::PASSWORD);
    // Four guesses in parallel: judged 200 ms apart, not all at once.
    let start = Instant::now();
    let guesses = (0..4).map(|_| {
        let addr = srv.local_addr();
        async move {
            let mut c = Raw::connect(addr).await;
            let reply = c.hello(Some("guess")).await;
            (reply.status, start.elapsed())
        }
    });
    let mut took: Vec<Duration> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|(status, at)| {
            assert_eq!(status, Status::PASSWORD);
            at
        })
        .collect();
    took.sort();
    for (i, at) in took.iter().enumerate() {
        let slot = Duration::from_millis(200) * (i as u32 + 1);
        assert!(*at >= slot - Duration::from_millis(20), "{took:?}");
    }
    // The right password, then a ping in the same write: the ping waits
    // for the judgment and is answered after the SERVINFO reply.
    let mut c = Raw::connect(srv.local_addr()).await;
    let mut both = bytes::BytesMut::new();
    for f in [
        Frame::new(Kind::ServInfo)
            .seqno(1)
            .param(r#"{"passwd":"pw"}"#),
        Frame::new(Kind::PingEcho).seqno(2),
    ] {
        psvc::frame::encode(&f, &mut both, psvc::frame::MAX_TCP_PACKET).unwrap();
    }
    c.send_bytes(&both).await;
    let hello = c.recv().await.unwrap();
    assert_eq!((hello.kind, hello.status), (Kind::ServInfo, Status::OK));
    let pong = c.recv().await.unwrap();
    assert_eq!((pong.kind, pong.seqno), (Kind::PingEcho, 2));
}
