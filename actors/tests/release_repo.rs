//! The signed release repository: keys, k-of-n approval, deprecation,
//! channels and staged rollout, consistent snapshots, tampering.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Repo, approve, names};
use psvc_actors::release::repo::{Change, Expiry, Outcome, RepoError, latest};
use psvc_actors::release::{
    BuildError, BuildSpec, KeysSpec, Source, Status, build_release, in_rollout, init_keys,
    rollout_bucket,
};

#[actix_rt::test]
async fn keys_init_makes_private_keys_and_a_valid_empty_repository() {
    let repo = Repo::new(3, 2).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&repo.keys), 0o700);
    for name in [
        "root.pk8",
        "approver-1.pk8",
        "approver-2.pk8",
        "approver-3.pk8",
        "snapshot.pk8",
        "timestamp.pk8",
    ] {
        assert_eq!(mode(&repo.keys.join(name)), 0o600, "{name}");
    }
    // Metadata is public: a mirror's web server reads it.
    assert_eq!(mode(&repo.metadata().join("timestamp.json")), 0o644);

    let tough = repo.verify().await;
    let root = &tough.root().signed;
    let targets = &root.roles[&tough::schema::RoleType::Targets];
    assert_eq!((targets.keyids.len(), targets.threshold.get()), (3, 2));
    // Four roles, six distinct keys: no role shares a key with another.
    assert_eq!(root.keys.len(), 6);
    assert!(tough.targets().signed.targets.is_empty());

    // Never overwritten.
    let err = init_keys(&KeysSpec::new(&repo.keys, &repo.release_path))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already"), "{err}");
    let mut bad = KeysSpec::new(repo.dir.path().join("k2"), repo.dir.path().join("r2"));
    bad.threshold = 2;
    assert!(
        init_keys(&bad).await.is_err(),
        "threshold above the approvers"
    );
}

#[actix_rt::test]
async fn one_of_one_approval_publishes_and_makes_the_version_immutable() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("bin/app", b"app v1"), ("lib/x.so", b"lib")]);
    repo.build("1.1.0", &[("bin/app", b"app v1.1")]);
    assert!(
        repo.open().await.list().is_empty(),
        "drafts are not releases"
    );

    repo.approve("1.0.0").await;
    let tough = repo.verify().await;
    let names: Vec<String> = tough
        .targets()
        .signed
        .targets
        .keys()
        .map(|n| n.raw().to_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["1.0.0/bin/app", "1.0.0/lib/x.so", "1.0.0/status.json"]
    );
    // tough's client reads the approved file and checks its signed hash.
    let name = tough::TargetName::new("1.0.0/bin/app").unwrap();
    let stream = tough.read_target(&name).await.unwrap().unwrap();
    let bytes = tough::IntoVec::into_vec(stream).await.unwrap();
    assert_eq!(bytes, b"app v1");

    let list = repo.open().await.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].record.status, Status::Approved);
    assert_eq!(list[0].record.files, ["bin/app", "lib/x.so"]);
    assert_eq!(list[0].record.channels["stable"].rollout, 100);

    // An approved version is never rebuilt.
    let src = repo.dir.path().join("src-1.0.0");
    let err = build_release(
        &BuildSpec::new("1.0.0", &repo.release_path, Source::Directory(src)),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::Approved(_)), "{err:?}");
}

#[actix_rt::test]
async fn two_of_three_approvers_each_sign_once() {
    let repo = Repo::new(3, 2).await;
    repo.build("2.0.0", &[("app", b"two")]);
    let change = approve("2.0.0", "stable", 100);

    let first = repo.propose(change.clone(), &[1]).await;
    assert_eq!(
        first,
        Outcome::Pending {
            change: change.to_string(),
            signatures: 1,
            threshold: 2
        }
    );
    assert!(
        repo.open().await.list().is_empty(),
        "one approval publishes nothing"
    );
    assert!(repo.verify().await.targets().signed.targets.is_empty());

    let keys_of = |names: &[&str]| names.iter().map(|n| repo.keys.join(n)).collect::<Vec<_>>();
    let mut open = repo.open().await;
    // The same approver again, and a key that is not an approver's.
    for (keys, says) in [
        (keys_of(&["approver-1.pk8"]), "already signed"),
        (keys_of(&["snapshot.pk8"]), "not an approver"),
        (keys_of(&["root.pk8"]), "not an approver"),
    ] {
        let err = open
            .propose(change.clone(), &keys, &repo.online(), &Expiry::default())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    // Another change cannot jump the queue.
    repo.build("2.0.1", &[("app", b"two.one")]);
    let err = open
        .propose(
            approve("2.0.1", "stable", 100),
            &keys_of(&["approver-2.pk8"]),
            &repo.online(),
            &Expiry::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::PendingOther(_)), "{err:?}");

    let second = repo.propose(change.clone(), &[3]).await;
    assert!(matches!(second, Outcome::Published { .. }), "{second:?}");
    let tough = repo.verify().await;
    assert_eq!(tough.targets().signatures.len(), 2);
    assert_eq!(repo.open().await.list()[0].record.version, "2.0.0");
    assert!(repo.open().await.pending().is_none());

    // Two keys at once also reach the threshold.
    let both = repo.propose(approve("2.0.1", "stable", 100), &[1, 2]).await;
    assert!(matches!(both, Outcome::Published { .. }), "{both:?}");
}

#[actix_rt::test]
async fn a_draft_changed_after_the_build_is_refused() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"good")]);
    std::fs::write(repo.release_path.join("1.0.0/files/app"), b"evil").unwrap();
    let err = repo
        .open()
        .await
        .propose(
            approve("1.0.0", "stable", 100),
            &[repo.approver(1)],
            &repo.online(),
            &Expiry::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("changed since the build"), "{err}");
    assert!(repo.open().await.list().is_empty());
    let err = repo
        .open()
        .await
        .propose(
            approve("9.9.9", "stable", 100),
            &[repo.approver(1)],
            &repo.online(),
            &Expiry::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no draft"), "{err}");
}

#[actix_rt::test]
async fn deprecate_points_back_to_an_older_approved_version() {
    let repo = Repo::new(1, 1).await;
    for v in ["1.0.0", "1.1.0", "1.2.0"] {
        repo.build(v, &[("app", v.as_bytes())]);
    }
    repo.approve("1.0.0").await;
    repo.approve("1.1.0").await;
    let mut open = repo.open().await;
    for (to, says) in [
        ("1.2.0", "not an approved"),
        ("1.1.0", "not older"),
        ("0.9.0", "not an approved"),
    ] {
        let err = open
            .propose(
                Change::Deprecate {
                    version: "1.1.0".into(),
                    to: to.into(),
                },
                &[repo.approver(1)],
                &repo.online(),
                &Expiry::default(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains(says), "{to}: {err}");
    }
    let done = repo
        .propose(
            Change::Deprecate {
                version: "1.1.0".into(),
                to: "1.0.0".into(),
            },
            &[1],
        )
        .await;
    assert!(matches!(done, Outcome::Published { .. }));
    let list = repo.open().await.list();
    let v11 = list.iter().find(|r| r.record.version == "1.1.0").unwrap();
    assert_eq!(v11.record.status, Status::Deprecated);
    assert_eq!(v11.record.rollback_target.as_deref(), Some("1.0.0"));
    assert_eq!(
        latest(&list, "stable", None).unwrap().record.version,
        "1.0.0"
    );
    // A deprecated version cannot be approved again.
    let mut open = repo.open().await;
    let err = open
        .propose(
            approve("1.1.0", "stable", 100),
            &[repo.approver(1)],
            &repo.online(),
            &Expiry::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deprecated"), "{err}");
}

#[test]
fn rollout_buckets_are_stable_and_spread() {
    assert_eq!(
        rollout_bucket("machine-1", "1.0.0"),
        rollout_bucket("machine-1", "1.0.0")
    );
    let ids: Vec<String> = (0..2000).map(|i| format!("installation-{i}")).collect();
    let share = |pct: u8| {
        ids.iter()
            .filter(|id| in_rollout(Some(id), "2.0.0", pct))
            .count()
    };
    assert_eq!(share(0), 0);
    assert_eq!(share(100), 2000);
    let ten = share(10);
    assert!((120..=280).contains(&ten), "10 % of 2000 gave {ten}");
    // Raising the percentage only adds installations.
    let at = |pct: u8| -> Vec<&String> {
        ids.iter()
            .filter(|id| in_rollout(Some(id), "2.0.0", pct))
            .collect()
    };
    let (small, big) = (at(10), at(50));
    assert!(small.iter().all(|id| big.contains(id)));
    // Unknown installations get only full rollouts.
    assert!(!in_rollout(None, "2.0.0", 99));
    assert!(in_rollout(None, "2.0.0", 100));
}

#[actix_rt::test]
async fn channels_and_a_staged_rollout_are_signed() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"one")]);
    repo.build("2.0.0-beta.1", &[("app", b"beta")]);
    repo.approve("1.0.0").await;
    repo.propose(approve("2.0.0-beta.1", "beta", 20), &[1])
        .await;

    let list = repo.open().await.list();
    assert_eq!(
        latest(&list, "stable", Some("any")).unwrap().record.version,
        "1.0.0"
    );
    assert!(
        latest(&list, "beta", None).is_none(),
        "20 %: unknown installations wait"
    );
    let ids: Vec<String> = (0..500).map(|i| format!("site-{i}")).collect();
    let offered = ids
        .iter()
        .filter(|id| latest(&list, "beta", Some(id)).is_some())
        .count();
    assert!((50..=150).contains(&offered), "20 % of 500 gave {offered}");

    // Raised to 100 % by another signed change.
    repo.propose(approve("2.0.0-beta.1", "beta", 100), &[1])
        .await;
    let list = repo.open().await.list();
    assert_eq!(
        latest(&list, "beta", None).unwrap().record.version,
        "2.0.0-beta.1"
    );
    assert_eq!(
        list.iter()
            .find(|r| r.record.version == "2.0.0-beta.1")
            .unwrap()
            .record
            .channels
            .len(),
        1
    );

    // The rollout lives in signed metadata: editing it on a mirror breaks the signature.
    let meta = repo.metadata();
    let latest_targets = names(&meta)
        .into_iter()
        .filter(|n| n.ends_with(".targets.json"))
        .max_by_key(|n| n.split('.').next().unwrap().parse::<u64>().unwrap())
        .unwrap();
    let path = meta.join(&latest_targets);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"rollout\": 100"));
    std::fs::write(&path, text.replace("\"rollout\": 100", "\"rollout\": 99")).unwrap();
    let root = std::fs::read(repo.keys.join("root.json")).unwrap();
    let res = tough::RepositoryLoader::new(
        &root,
        url::Url::from_directory_path(&meta).unwrap(),
        url::Url::from_directory_path(repo.release_path.join("repository/targets")).unwrap(),
    )
    .load()
    .await;
    assert!(res.is_err(), "tampered targets metadata must not load");
}

#[actix_rt::test]
async fn only_the_timestamp_is_ever_rewritten() {
    let repo = Repo::new(1, 1).await;
    let snapshot = |repo: &Repo| -> Vec<(String, Vec<u8>)> {
        names(&repo.metadata())
            .into_iter()
            .filter(|n| n != "timestamp.json")
            .map(|n| {
                let bytes = std::fs::read(repo.metadata().join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    };
    let before = snapshot(&repo);
    repo.build("1.0.0", &[("app", b"one")]);
    repo.approve("1.0.0").await;
    let after = snapshot(&repo);
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(&now.1, bytes, "{name} was rewritten");
    }
    assert!(after.len() > before.len());
    assert!(
        !names(&repo.metadata())
            .iter()
            .any(|n| n.starts_with(".tmp"))
    );

    // Refresh: a new timestamp, same targets.
    let mut open = repo.open().await;
    let (ts_before, _) = open.expires().unwrap();
    let v_before = open.tough().unwrap().timestamp().signed.version.get();
    let expiry = Expiry {
        timestamp: Duration::from_secs(7 * 24 * 3600),
        ..Expiry::default()
    };
    open.refresh(&repo.online(), &expiry, Duration::from_secs(60))
        .await
        .unwrap();
    let (ts_after, _) = open.expires().unwrap();
    assert!(ts_after > ts_before);
    let tough = repo.verify().await;
    assert_eq!(tough.timestamp().signed.version.get(), v_before + 1);
    assert_eq!(tough.targets().signed.targets.len(), 2);
    // The timestamp key is the only one that can do it.
    let wrong = psvc_actors::release::OnlineKeys {
        snapshot: repo.keys.join("snapshot.pk8"),
        timestamp: repo.approver(1),
    };
    assert!(
        open.refresh(&wrong, &expiry, Duration::from_secs(60))
            .await
            .is_err()
    );
    repo.verify().await;
}

#[actix_rt::test]
async fn concurrent_approvals_both_land() {
    let repo = Repo::new(1, 1).await;
    let versions: Vec<String> = (0..4).map(|i| format!("1.0.{i}")).collect();
    for v in &versions {
        repo.build(v, &[("app", v.as_bytes())]);
    }
    // Each opens the repository before any publishes: without the lock and
    // the reload under it, all would sign "targets v2" and three would be lost.
    let mut opened = Vec::new();
    for _ in &versions {
        opened.push(repo.open().await);
    }
    let online = repo.online();
    let key = [repo.approver(1)];
    let runs = opened.into_iter().zip(&versions).map(|(mut r, v)| {
        let online = online.clone();
        let key = key.clone();
        let v = v.clone();
        tokio::task::spawn_local(async move {
            r.propose(
                approve(&v, "stable", 100),
                &key,
                &online,
                &Expiry::default(),
            )
            .await
        })
    });
    for run in futures::future::join_all(runs).await {
        assert!(matches!(run.unwrap().unwrap(), Outcome::Published { .. }));
    }
    let listed: Vec<String> = repo
        .open()
        .await
        .list()
        .into_iter()
        .map(|r| r.record.version)
        .collect();
    assert_eq!(listed, versions);
    assert_eq!(
        repo.verify().await.targets().signed.version.get(),
        1 + versions.len() as u64
    );
}
