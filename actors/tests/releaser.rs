//! The Releaser over the psvc protocol: lists and serves only what the
//! signed metadata approves, resumes at an offset, re-signs the timestamp.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use actix::Actor;
use common::Repo;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::Commander;
use psvc::frame::{Flags, Frame, Status};
use psvc::socket::{Auth, Server, ServerHandle};
use psvc_actors::release::{Releaser, ReleaserOptions};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

struct Served {
    repo: Repo,
    server: ServerHandle,
    client: Client,
}

async fn serve(repo: Repo, tune: impl FnOnce(&mut ReleaserOptions)) -> Served {
    let mut options = ReleaserOptions::new(&repo.release_path);
    tune(&mut options);
    let releaser = Releaser::new(options).start();
    let commander = Releaser::routes(Commander::new(), releaser);
    let server = Server::new(Auth::anonymous())
        .commands(commander.commands())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(ClientOptions::new(server.local_addr().to_string()))
        .await
        .unwrap();
    Served {
        repo,
        server,
        client,
    }
}

async fn call(client: &Client, url: &str, param: serde_json::Value) -> Frame {
    client
        .rpc(Rpc::get(url).json(&param).unwrap())
        .await
        .unwrap()
}

fn json(frame: &Frame) -> serde_json::Value {
    assert_eq!(
        frame.status,
        Status::OK,
        "{}",
        String::from_utf8_lossy(&frame.param)
    );
    serde_json::from_slice(&frame.param).unwrap()
}

/// Fetches a file through `/release/file`; returns the reply param and the bytes.
async fn fetch(
    client: &Client,
    name: &str,
    offset: u64,
) -> Result<(serde_json::Value, Vec<u8>), Frame> {
    let reply = call(
        client,
        "/release/file",
        serde_json::json!({ "name": name, "offset": offset }),
    )
    .await;
    if reply.status != Status::OK {
        return Err(reply);
    }
    assert!(reply.flags.contains(Flags::TUNNEL));
    let param: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    let mut stream = client.open_stream(&reply).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    Ok((param, bytes))
}

async fn fixture() -> Served {
    let repo = Repo::new(1, 1).await;
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    repo.build("1.0.0", &[("bin/app", b"one"), ("data/big.bin", &big)]);
    repo.build("1.1.0", &[("bin/app", b"one.one")]);
    repo.build("1.2.0", &[("bin/app", b"never approved")]);
    repo.approve("1.0.0").await;
    repo.approve("1.1.0").await;
    serve(repo, |_| {}).await
}

#[actix_rt::test]
async fn only_approved_versions_are_listed_and_latest_is_the_highest() {
    let s = fixture().await;
    let versions = json(&call(&s.client, "/release/versions", serde_json::json!({})).await);
    let listed: Vec<&str> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["1.0.0", "1.1.0"], "the 1.2.0 draft is not listed");
    let files = &versions["versions"][0]["file_info"];
    assert_eq!(
        files.as_array().unwrap().len(),
        3,
        "status.json and two files"
    );

    let latest = json(&call(&s.client, "/release/latest", serde_json::json!({})).await);
    assert_eq!(latest["version"], "1.1.0");
    let beta = json(
        &call(
            &s.client,
            "/release/latest",
            serde_json::json!({"channel": "beta"}),
        )
        .await,
    );
    assert!(beta["version"].is_null());

    // A new approval shows up at the next request (timestamp.json changed).
    s.repo.approve("1.2.0").await;
    let latest = json(&call(&s.client, "/release/latest", serde_json::json!({})).await);
    assert_eq!(latest["version"], "1.2.0");
    s.server.stop();
}

#[actix_rt::test]
async fn approved_files_are_served_and_resume_at_an_offset() {
    let s = fixture().await;
    let big = std::fs::read(s.repo.release_path.join("1.0.0/files/data/big.bin")).unwrap();
    let (param, bytes) = fetch(&s.client, "1.0.0/data/big.bin", 0).await.unwrap();
    assert_eq!(bytes, big);
    assert_eq!(param["length"], big.len());
    assert_eq!(param["sha256"], hex::encode(Sha256::digest(&big)));

    let offset = 1_234_567u64;
    let (param, tail) = fetch(&s.client, "1.0.0/data/big.bin", offset)
        .await
        .unwrap();
    assert_eq!(param["offset"], offset);
    assert_eq!(tail, big[offset as usize..]);
    let (_, empty) = fetch(&s.client, "1.0.0/data/big.bin", big.len() as u64)
        .await
        .unwrap();
    assert!(empty.is_empty());
    let past = fetch(&s.client, "1.0.0/data/big.bin", big.len() as u64 + 1)
        .await
        .unwrap_err();
    assert_eq!(past.status, Status::ARGUMENTS);
    s.server.stop();
}

#[actix_rt::test]
async fn unapproved_or_outside_files_are_refused_even_when_they_exist() {
    let s = fixture().await;
    for name in [
        "1.2.0/bin/app",          // a draft: its files exist under releases/1.2.0
        "1.0.0/bin/missing",      // not in the release
        "../1.2.0/files/bin/app", // climbing out of the repository
        "../../keys/root.pk8",
        "/etc/passwd",
        "1.0.0/../1.2.0/bin/app",
    ] {
        let reply = fetch(&s.client, name, 0).await.unwrap_err();
        assert_eq!(reply.status, Status::INVALID_URL, "{name}");
    }
    // Metadata: only TUF metadata names.
    let ts = call(
        &s.client,
        "/release/metadata/timestamp.json",
        serde_json::json!(null),
    )
    .await;
    assert_eq!(ts.status, Status::OK);
    assert_eq!(
        &ts.data[..],
        std::fs::read(s.repo.metadata().join("timestamp.json")).unwrap()
    );
    let root = call(
        &s.client,
        "/release/metadata/1.root.json",
        serde_json::json!(null),
    )
    .await;
    assert_eq!(root.status, Status::OK);
    for bad in [
        "../../keys/root.pk8",
        "pending.json",
        "x.targets.json",
        "1.root.json/..",
        "",
    ] {
        let reply = call(
            &s.client,
            &format!("/release/metadata/{bad}"),
            serde_json::json!(null),
        )
        .await;
        assert_eq!(reply.status, Status::INVALID_URL, "{bad}");
    }
    let reply = call(
        &s.client,
        "/release/file",
        serde_json::json!({"kind": "metadata", "name": "../../keys/root.pk8"}),
    )
    .await;
    assert_eq!(reply.status, Status::INVALID_URL);
    let (_, meta) = fetch_kind(&s.client, "metadata", "timestamp.json").await;
    assert_eq!(
        meta,
        std::fs::read(s.repo.metadata().join("timestamp.json")).unwrap()
    );
    // Malformed params get status 2, and the server lives.
    let reply = s
        .client
        .rpc(Rpc::get("/release/file").param("{not json"))
        .await
        .unwrap();
    assert_eq!(reply.status, Status::ARGUMENTS);
    assert_eq!(
        json(&call(&s.client, "/release/latest", serde_json::json!({})).await)["version"],
        "1.1.0"
    );
    s.server.stop();
}

async fn fetch_kind(client: &Client, kind: &str, name: &str) -> (serde_json::Value, Vec<u8>) {
    let reply = call(
        client,
        "/release/file",
        serde_json::json!({ "kind": kind, "name": name }),
    )
    .await;
    assert_eq!(reply.status, Status::OK);
    let param: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    let mut stream = client.open_stream(&reply).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    (param, bytes)
}

#[actix_rt::test]
async fn a_damaged_target_on_the_server_is_not_served() {
    let s = fixture().await;
    let targets = s.repo.release_path.join("repository/targets");
    let dir = std::fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("bin/app").exists() && std::fs::read(p.join("bin/app")).unwrap() == b"one")
        .unwrap();
    std::fs::write(dir.join("bin/app"), b"one plus more").unwrap();
    let reply = fetch(&s.client, "1.0.0/bin/app", 0).await.unwrap_err();
    assert_eq!(reply.status, Status::NO_RESPONDING);
    s.server.stop();
}

#[actix_rt::test]
async fn downloads_at_once_are_bounded() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"x")]);
    repo.approve("1.0.0").await;
    let s = serve(repo, |o| {
        o.max_downloads = 1;
        o.stream_idle = Duration::from_secs(2);
    })
    .await;
    // The first stream is offered and never connected: it holds the slot.
    let first = call(
        &s.client,
        "/release/file",
        serde_json::json!({"name": "1.0.0/app"}),
    )
    .await;
    assert_eq!(first.status, Status::OK);
    let second = call(
        &s.client,
        "/release/file",
        serde_json::json!({"name": "1.0.0/app"}),
    )
    .await;
    assert_eq!(
        second.status,
        Status::NO_MEMORY,
        "{}",
        String::from_utf8_lossy(&second.param)
    );
    // Once the first is served, the slot is free again.
    let mut stream = s.client.open_stream(&first).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    drop(stream);
    let started = Instant::now();
    loop {
        let again = call(
            &s.client,
            "/release/file",
            serde_json::json!({"name": "1.0.0/app"}),
        )
        .await;
        if again.status == Status::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "slot never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.server.stop();
}

#[actix_rt::test]
async fn the_releaser_re_signs_the_timestamp_before_it_expires() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"x")]);
    repo.approve("1.0.0").await;
    let before = repo.verify().await.timestamp().signed.version.get();
    let keys = repo.keys.clone();
    let s = serve(repo, move |o| {
        *o = o.clone().online_keys(&keys);
        o.expiry.timestamp = Duration::from_secs(3600);
        // Always within the margin: every check re-signs.
        o.refresh_margin = Some(Duration::from_secs(2 * 24 * 3600));
        o.check_every = Duration::from_millis(100);
    })
    .await;
    let started = Instant::now();
    loop {
        let now = s.repo.verify().await.timestamp().signed.version.get();
        if now >= before + 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timestamp never re-signed ({before} → {now})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Clients still see the same release.
    let latest = json(&call(&s.client, "/release/latest", serde_json::json!({})).await);
    assert_eq!(latest["version"], "1.0.0");
    s.server.stop();
}

#[actix_rt::test]
async fn a_supervised_releaser_is_reached_again_after_a_crash() {
    use psvc::supervisor::{Backoff, Restart};
    use psvc::{ChildSpec, SupervisorSpec};
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"x")]);
    repo.approve("1.0.0").await;
    let options = ReleaserOptions::new(&repo.release_path);
    let spec = ChildSpec::new("releaser", move || Releaser::new(options.clone()))
        .restart(Restart::Permanent);
    let releaser = spec.handle();
    let root = SupervisorSpec::new("root")
        .backoff(
            Backoff::exponential(Duration::from_millis(20), Duration::from_millis(20)).jitter(0.0),
        )
        .child(spec)
        .start_root();
    releaser.wait_running(Duration::from_secs(5)).await.unwrap();
    let commander = Releaser::routes(Commander::new(), releaser.clone());
    let server = Server::new(Auth::anonymous())
        .commands(commander.commands())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(ClientOptions::new(server.local_addr().to_string()))
        .await
        .unwrap();
    assert_eq!(
        json(&call(&client, "/release/latest", serde_json::json!({})).await)["version"],
        "1.0.0"
    );

    let starts = releaser.starts();
    root.handle().kill_child("releaser").await.unwrap();
    let started = Instant::now();
    loop {
        if releaser.starts() > starts && releaser.is_running() {
            let reply = call(&client, "/release/latest", serde_json::json!({})).await;
            if reply.status == Status::OK {
                assert_eq!(json(&reply)["version"], "1.0.0");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the routes never reached the restarted Releaser"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
}
