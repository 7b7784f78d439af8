//! Keys under attack: a client follows root rotations across several root
//! versions from the root it shipped with, and refuses metadata signed
//! by a revoked key, by fewer approvers than the threshold, or twice by
//! one approver. Forged metadata is served by a mirror of a copy of the
//! repository whose targets are the real ones; each forgery has a control
//! signed correctly that is accepted, so a refusal is the signature's
//! doing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use common::{Repo, approve, mirror};
use psvc_actors::release::{RotateSpec, Rotated, rotate_keys};
use psvc_actors::update::install::InstallRoot;
use psvc_actors::update::updater::{UpdateError, UpdaterOptions, apply, check};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tough::schema::{Hashes, Metafile, Signature, Signed, Snapshot, Targets, Timestamp};
use tough::sign::Sign;

async fn signature<T: Serialize>(value: &T, key: &Path) -> Signature {
    let pair = tough::sign::parse_keypair(&std::fs::read(key).unwrap()).unwrap();
    let mut data = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut data, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).unwrap();
    let sig = pair
        .sign(&data, &aws_lc_rs::rand::SystemRandom::new())
        .await
        .unwrap();
    Signature {
        keyid: pair.tuf_key().key_id().unwrap(),
        sig: sig.into(),
    }
}

async fn signed<T: Serialize + Clone>(value: &T, keys: &[&Path]) -> Signed<T> {
    let mut signatures = Vec::new();
    for key in keys {
        signatures.push(signature(value, key).await);
    }
    Signed {
        signed: value.clone(),
        signatures,
    }
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap()
}

fn metafile(bytes: &[u8], version: NonZeroU64) -> Metafile {
    Metafile {
        hashes: Some(Hashes {
            sha256: Sha256::digest(bytes).to_vec().into(),
            _extra: HashMap::new(),
        }),
        length: Some(bytes.len() as u64),
        version,
        _extra: HashMap::new(),
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A copy of the repository's metadata beside its real targets, to forge in.
fn forgery_dir(repo: &Repo, name: &str) -> PathBuf {
    let dir = repo.dir.path().join(name);
    let meta = dir.join("metadata");
    std::fs::create_dir_all(&meta).unwrap();
    for entry in std::fs::read_dir(repo.metadata()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), meta.join(entry.file_name())).unwrap();
    }
    std::os::unix::fs::symlink(
        repo.release_path.join("repository/targets"),
        dir.join("targets"),
    )
    .unwrap();
    dir
}

/// Writes `targets` (as signed), then a snapshot and a timestamp signed
/// with `snapshot_key` / `timestamp_key`, into the forgery `dir`.
async fn forge_from_targets(
    dir: &Path,
    targets: &Signed<Targets>,
    snapshot_key: &Path,
    timestamp_key: &Path,
) {
    let meta = dir.join("metadata");
    let old_ts: Signed<Timestamp> = read(&meta.join("timestamp.json"));
    let tv = targets.signed.version;
    let tbytes = json(targets);
    std::fs::write(meta.join(format!("{tv}.targets.json")), &tbytes).unwrap();
    let sv = old_ts.signed.meta["snapshot.json"].version.get() + 1;
    let sv = NonZeroU64::new(sv).unwrap();
    let mut snapshot = Snapshot::new("1.0.0".into(), sv, old_ts.signed.expires);
    snapshot
        .meta
        .insert("targets.json".into(), metafile(&tbytes, tv));
    let sbytes = json(&signed(&snapshot, &[snapshot_key]).await);
    std::fs::write(meta.join(format!("{sv}.snapshot.json")), &sbytes).unwrap();
    forge_timestamp(dir, &sbytes, sv, timestamp_key).await;
}

async fn forge_timestamp(dir: &Path, snapshot: &[u8], sv: NonZeroU64, key: &Path) {
    let meta = dir.join("metadata");
    let old: Signed<Timestamp> = read(&meta.join("timestamp.json"));
    let version = NonZeroU64::new(old.signed.version.get() + 1).unwrap();
    let mut ts = Timestamp::new("1.0.0".into(), version, old.signed.expires);
    ts.meta
        .insert("snapshot.json".into(), metafile(snapshot, sv));
    std::fs::write(
        meta.join("timestamp.json"),
        json(&signed(&ts, &[key]).await),
    )
    .unwrap();
}

/// The current targets one version up, with 1.0.0's rollout set to 50 %
/// (a change only approvers may make).
fn next_targets(repo: &Repo) -> Targets {
    let meta = repo.metadata();
    let ts: Signed<Timestamp> = read(&meta.join("timestamp.json"));
    let sv = ts.signed.meta["snapshot.json"].version;
    let snapshot: Signed<Snapshot> = read(&meta.join(format!("{sv}.snapshot.json")));
    let tv = snapshot.signed.meta["targets.json"].version;
    let mut targets: Signed<Targets> = read(&meta.join(format!("{tv}.targets.json")));
    targets.signed.version = NonZeroU64::new(tv.get() + 1).unwrap();
    let name = tough::TargetName::new("1.0.0/status.json").unwrap();
    let record = targets
        .signed
        .targets
        .get_mut(&name)
        .unwrap()
        .custom
        .get_mut("psvc_release")
        .unwrap();
    record["channels"]["stable"]["rollout"] = 50.into();
    targets.signed
}

fn options(install: &Path, trusted_root: &Path, source: &str) -> UpdaterOptions {
    let mut o = UpdaterOptions::new(install, trusted_root).source(source.parse().unwrap());
    o.installation = Some("test-installation".into());
    o
}

fn client(install: &Path, trusted_root: &Path, source: &str) -> (UpdaterOptions, InstallRoot) {
    (
        options(install, trusted_root, source),
        InstallRoot::open(install).unwrap(),
    )
}

fn refused(err: &UpdateError, why: &str) {
    let text = err.to_string();
    assert!(
        matches!(err, UpdateError::NoSource(_)) && text.contains(why),
        "expected a refusal naming {why:?}: {text}"
    );
}

#[actix_rt::test]
async fn rotations_across_root_versions_are_followed_and_retired_keys_sign_nothing() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("bin/app", b"one")]);
    repo.approve("1.0.0").await;
    // The root shipped with the installation: version 1.
    let shipped = repo.dir.path().join("shipped-root.json");
    std::fs::copy(repo.keys.join("root.json"), &shipped).unwrap();
    let m = mirror::start(repo.release_path.join("repository")).await;
    let tmp = tempfile::tempdir().unwrap();
    let (o, root) = client(&tmp.path().join("app"), &shipped, &m.url());
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();

    // Three rotations: root 2, 3 and 4.
    for roles in [
        vec![Rotated::Timestamp],
        vec![Rotated::Root, Rotated::Snapshot],
        vec![Rotated::Targets],
    ] {
        rotate_keys(&RotateSpec::new(&repo.keys, &repo.release_path, roles))
            .await
            .unwrap();
    }
    for v in 1..=4 {
        assert!(repo.metadata().join(format!("{v}.root.json")).is_file());
    }
    let retired = repo.keys.join("retired");
    let old_timestamp = retired.join("timestamp.root-1.pk8");
    let old_root = retired.join("root.root-2.pk8");
    let old_approver = retired.join("approver-1.root-3.pk8");
    for k in [&old_timestamp, &old_root, &old_approver] {
        assert!(k.is_file(), "{} retired", k.display());
    }

    // A release approved with the new approver key reaches a client that
    // still trusts only root 1, and one installed from the newest root.
    repo.build("1.1.0", &[("bin/app", b"one.one")]);
    repo.approve("1.1.0").await;
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.1.0"));
    let fresh = tempfile::tempdir().unwrap();
    let (o2, root2) = client(
        &fresh.path().join("app"),
        &repo.keys.join("root.json"),
        &m.url(),
    );
    let out = apply(&root2, &o2, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.1.0"));

    // Metadata signed by a retired key: refused by both.
    let snap_of = |dir: &Path| -> (Vec<u8>, NonZeroU64) {
        let ts: Signed<Timestamp> = read(&dir.join("metadata/timestamp.json"));
        let sv = ts.signed.meta["snapshot.json"].version;
        (
            std::fs::read(dir.join(format!("metadata/{sv}.snapshot.json"))).unwrap(),
            sv,
        )
    };
    let control = forgery_dir(&repo, "control");
    let (bytes, sv) = snap_of(&control);
    forge_timestamp(&control, &bytes, sv, &repo.keys.join("timestamp.pk8")).await;
    let good = mirror::start(control).await;
    let oc = options(&tmp.path().join("app"), &shipped, &good.url());
    check(&root, &oc)
        .await
        .expect("a timestamp by the current key verifies");

    let forged = forgery_dir(&repo, "old-timestamp-key");
    let (bytes, sv) = snap_of(&forged);
    forge_timestamp(&forged, &bytes, sv, &old_timestamp).await;
    let bad = mirror::start(forged).await;
    for (install, trusted, client) in [
        (tmp.path().join("app"), &shipped, &root),
        (
            fresh.path().join("app"),
            &repo.keys.join("root.json"),
            &root2,
        ),
    ] {
        let ob = options(&install, trusted, &bad.url());
        refused(
            &check(client, &ob).await.unwrap_err(),
            "Failed to verify timestamp metadata: Signature threshold",
        );
    }

    // Targets signed by the retired approver key (snapshot and timestamp
    // by the current ones): refused.
    let forged = forgery_dir(&repo, "old-approver-key");
    let targets = signed(&next_targets(&repo), &[&old_approver]).await;
    forge_from_targets(
        &forged,
        &targets,
        &repo.keys.join("snapshot.pk8"),
        &repo.keys.join("timestamp.pk8"),
    )
    .await;
    let bad = mirror::start(forged).await;
    let ob = options(&tmp.path().join("app"), &shipped, &bad.url());
    refused(
        &check(&root, &ob).await.unwrap_err(),
        "Failed to verify targets metadata: Signature threshold",
    );
    assert_eq!(root.current().as_deref(), Some("1.1.0"));
}

#[actix_rt::test]
async fn targets_below_the_threshold_or_signed_twice_by_one_approver_are_refused() {
    let repo = Repo::new(3, 2).await;
    repo.build("1.0.0", &[("bin/app", b"one")]);
    repo.propose(approve("1.0.0", "stable", 100), &[1, 2]).await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let tmp = tempfile::tempdir().unwrap();
    let install = tmp.path().join("app");
    let trusted = repo.keys.join("root.json");
    let (o, root) = client(&install, &trusted, &m.url());
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();

    let (a1, a2) = (repo.approver(1), repo.approver(2));
    let online = (
        repo.keys.join("snapshot.pk8"),
        repo.keys.join("timestamp.pk8"),
    );
    let cases: [(&str, Vec<&Path>, &str); 3] = [
        ("control", vec![&a1, &a2], ""),
        (
            "one-approver",
            vec![&a1],
            "Failed to verify targets metadata: Signature threshold of 2 not met",
        ),
        (
            "one-approver-twice",
            vec![&a1, &a1],
            "Failed to verify targets metadata: Duplicate key ID",
        ),
    ];
    for (name, keys, why) in cases {
        let dir = forgery_dir(&repo, name);
        let targets = signed(&next_targets(&repo), &keys).await;
        forge_from_targets(&dir, &targets, &online.0, &online.1).await;
        let mirror = mirror::start(dir).await;
        // A copy of the client, so a verified forgery does not stick.
        let copy = tmp.path().join(format!("client-{name}"));
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(&install)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(st.success());
        let (oc, rc) = client(&copy, &trusted, &mirror.url());
        let result = check(&rc, &oc).await;
        if why.is_empty() {
            let (outcome, repo_seen, _) = result.expect("two approvers verify");
            assert_eq!(outcome.reason, "up to date");
            assert_eq!(
                repo_seen.targets().signed.version,
                targets.signed.version,
                "the control's targets were loaded"
            );
        } else {
            refused(&result.unwrap_err(), why);
        }
    }
}
