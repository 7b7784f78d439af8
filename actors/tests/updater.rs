//! The Updater against a Releaser and a (fault-injecting) static mirror:
//! installs, updates, and each update threat it must stop.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Actor;
use common::mirror::{self, Fault};
use common::{Repo, approve};
use psvc::commander::Commander;
use psvc::socket::{Auth, Server, ServerHandle};
use psvc_actors::release::repo::{Change, Expiry};
use psvc_actors::release::{Releaser, ReleaserOptions};
use psvc_actors::update::download::{DownloadError, Limits};
use psvc_actors::update::install::{InstallError, InstallRoot, StagedFile};
use psvc_actors::update::updater::{UpdateError, UpdaterOptions, apply, check};

const APP_V1: &[u8] = b"#!/bin/sh\necho one\n";

/// A repository with 1.0.0 approved: an executable and a 600 KiB data file.
async fn repo_with_v1() -> Repo {
    let repo = Repo::new(1, 1).await;
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 249) as u8).collect();
    build_exec(&repo, "1.0.0", APP_V1, &data);
    repo.approve("1.0.0").await;
    repo
}

fn build_exec(repo: &Repo, version: &str, app: &[u8], data: &[u8]) {
    let src = repo.dir.path().join(format!("src-{version}"));
    common::write_tree(&src, &[("bin/app", app), ("share/data.bin", data)]);
    std::fs::set_permissions(src.join("bin/app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    psvc_actors::release::build_release(
        &psvc_actors::release::BuildSpec::new(
            version,
            &repo.release_path,
            psvc_actors::release::Source::Directory(src),
        ),
        &mut |_| {},
    )
    .unwrap();
}

async fn releaser(repo: &Repo) -> ServerHandle {
    let r = Releaser::new(ReleaserOptions::new(&repo.release_path)).start();
    Server::new(Auth::anonymous())
        .commands(Releaser::routes(Commander::new(), r).commands())
        .start("127.0.0.1:0")
        .await
        .unwrap()
}

fn options(repo: &Repo, install: &Path, sources: &[String]) -> UpdaterOptions {
    let mut o = UpdaterOptions::new(install, repo.keys.join("root.json"));
    for s in sources {
        o = o.source(s.parse().unwrap());
    }
    o.installation = Some("test-installation".into());
    o.limits = Limits {
        attempts: 4,
        min_rate: 4096,
        rate_window: Duration::from_secs(2),
        total_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
    };
    o
}

/// A fresh install root (in a temp dir kept alive by the first value) with
/// options for `sources`.
fn installation(
    repo: &Repo,
    sources: &[String],
) -> (tempfile::TempDir, PathBuf, UpdaterOptions, InstallRoot) {
    let tmp = tempfile::tempdir().unwrap();
    let install = tmp.path().join("app");
    let o = options(repo, &install, sources);
    let root = InstallRoot::open(&install).unwrap();
    (tmp, install, o, root)
}

fn current_file(install: &Path, path: &str) -> Vec<u8> {
    std::fs::read(install.join("current").join(path)).unwrap()
}

fn no_partials(install: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(install.join("downloads"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.iter()
            .all(|p| !p.to_string_lossy().ends_with(".partial")),
        "{left:?}"
    );
}

#[actix_rt::test]
async fn installs_from_a_releaser_then_updates_and_rolls_back() {
    let repo = repo_with_v1().await;
    let server = releaser(&repo).await;
    let (_tmp, install, o, root) =
        installation(&repo, &[format!("vsoa://{}", server.local_addr())]);

    let first = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(first.installed.as_deref(), Some("1.0.0"));
    assert_eq!(root.current().as_deref(), Some("1.0.0"));
    assert_eq!(current_file(&install, "bin/app"), APP_V1);
    let mode = std::fs::metadata(install.join("current/bin/app"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the executable stays executable");
    assert_eq!(current_file(&install, "share/data.bin").len(), 600_000);
    let again = check(&root, &o).await.unwrap().0;
    assert_eq!(again.update, None);
    assert_eq!(again.reason, "up to date");

    build_exec(&repo, "1.1.0", b"#!/bin/sh\necho one.one\n", b"new data");
    repo.approve("1.1.0").await;
    let second = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(second.installed.as_deref(), Some("1.1.0"));
    assert_eq!(second.previous.as_deref(), Some("1.0.0"));
    assert_eq!(current_file(&install, "share/data.bin"), b"new data");
    assert_eq!(root.installed(), ["1.0.0", "1.1.0"]);
    no_partials(&install);

    root.rollback("1.0.0", "test").unwrap();
    assert_eq!(current_file(&install, "bin/app"), APP_V1);
    let state = root.state();
    assert_eq!(state.current.as_deref(), Some("1.0.0"));
    assert_eq!(state.highest.as_deref(), Some("1.1.0"));
    assert!(state.history.iter().any(|h| h.event == "rolled_back"));
    server.stop();
}

/// Every file under `dir` whose path contains `part`.
fn files_under(dir: &Path, part: &str) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().to_string_lossy().contains(part))
        .map(|e| e.into_path())
        .collect()
}

fn overwrite_middle(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(file, bytes).unwrap();
}

#[actix_rt::test]
async fn small_changes_ship_as_patches_and_a_bad_patch_or_base_falls_back_to_the_full_file() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, install, o, root) = installation(&repo, &[m.url()]);
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    let mut data: Vec<u8> = (0..600_000u32).map(|i| (i % 249) as u8).collect();

    // A one-line change: 1.1.0 arrives as a patch against 1.0.0.
    data.splice(300_000..300_000, b"one more line\n".iter().copied());
    build_exec(&repo, "1.1.0", APP_V1, &data);
    repo.approve("1.1.0").await;
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.1.0"));
    assert_eq!(out.transfer.patched, ["share/data.bin"]);
    assert!(
        out.transfer.fetched_bytes * 10 <= out.transfer.full_bytes,
        "{:?}",
        out.transfer
    );
    assert_eq!(current_file(&install, "share/data.bin"), data);
    no_partials(&install);

    // Every published patch of 1.2.0 altered: each fails its signed hash
    // and the file comes in full, intact.
    data[10] ^= 1;
    build_exec(&repo, "1.2.0", APP_V1, &data);
    repo.approve("1.2.0").await;
    let patches = files_under(
        &repo.release_path.join("repository/targets"),
        ".1.2.0/.psvc-delta/",
    );
    assert_eq!(
        patches.len(),
        2,
        "patches from 1.1.0 and 1.0.0: {patches:?}"
    );
    patches.iter().for_each(|p| overwrite_middle(p));
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.2.0"));
    assert!(out.transfer.patched.is_empty(), "{:?}", out.transfer);
    assert_eq!(out.transfer.fetched_bytes, out.transfer.full_bytes);
    assert_eq!(current_file(&install, "share/data.bin"), data);
    no_partials(&install);

    // The installed bases altered locally: the patches verify but do not
    // rebuild the signed file, so it comes in full.
    for base in files_under(&install.join("versions"), "share/data.bin") {
        overwrite_middle(&base);
    }
    data[20] ^= 1;
    build_exec(&repo, "1.3.0", APP_V1, &data);
    repo.approve("1.3.0").await;
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.3.0"));
    assert!(out.transfer.patched.is_empty(), "{:?}", out.transfer);
    assert_eq!(current_file(&install, "share/data.bin"), data);
    no_partials(&install);
}

#[actix_rt::test]
async fn a_dead_source_falls_back_to_the_mirror() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let tmp = tempfile::tempdir().unwrap();
    let install = tmp.path().join("app");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let o = options(&repo, &install, &[format!("vsoa://{dead}"), m.url()]);
    let root = InstallRoot::open(&install).unwrap();
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.0.0"));
    assert_eq!(out.check.source, m.url());
}

#[actix_rt::test]
async fn a_tampered_artifact_is_refused_and_nothing_changes() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, install, o, root) = installation(&repo, &[m.url()]);
    m.set(Fault::Tamper);
    let err = apply(&root, &o, &mut |_, _, _| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::Download(DownloadError::HashMismatch { .. })
        ),
        "{err:?}"
    );
    assert_eq!(root.current(), None);
    assert!(root.installed().is_empty());
    no_partials(&install);
}

#[actix_rt::test]
async fn a_rewritten_checksum_list_does_not_help_the_attacker() {
    // The attacker replaces a served file AND the status.json beside it:
    // the hashes that count are in the signed targets metadata.
    let repo = repo_with_v1().await;
    let targets = repo.release_path.join("repository/targets");
    for entry in std::fs::read_dir(&targets).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("bin/app").exists() {
            std::fs::write(dir.join("bin/app"), b"#!/bin/sh\nrm -rf /\n").unwrap();
        }
        if dir.join("status.json").exists() {
            let text = std::fs::read_to_string(dir.join("status.json")).unwrap();
            std::fs::write(
                dir.join("status.json"),
                text.replace("\"size\": 19", "\"size\": 20"),
            )
            .unwrap();
        }
    }
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, _, o, root) = installation(&repo, &[m.url()]);
    let err = apply(&root, &o, &mut |_, _, _| {}).await.unwrap_err();
    assert!(matches!(err, UpdateError::Download(_)), "{err:?}");
    assert_eq!(root.current(), None);
}

#[actix_rt::test]
async fn truncated_downloads_resume_with_range_and_a_server_ignoring_range_restarts() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, install, o, root) = installation(&repo, &[m.url()]);
    m.set(Fault::Truncate {
        times: 2,
        fraction: 0.6,
    });
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.0.0"));
    let ranges = m.ranges.lock().unwrap().clone();
    assert!(
        ranges.iter().any(|r| *r > 0),
        "a resumed request: {ranges:?}"
    );
    assert_eq!(current_file(&install, "share/data.bin").len(), 600_000);

    // 1.1.0 through a mirror that answers 200 to every Range request.
    let big: Vec<u8> = (0..900_000u32).map(|i| (i % 241) as u8).collect();
    build_exec(&repo, "1.1.0", b"#!/bin/sh\n", &big);
    repo.approve("1.1.0").await;
    m.set(Fault::Truncate {
        times: 1,
        fraction: 0.5,
    });
    // After the truncation the mirror ignores Range.
    let fault = m.fault.clone();
    actix_rt::spawn(async move {
        for _ in 0..200 {
            if *fault.lock().unwrap() == Fault::None {
                *fault.lock().unwrap() = Fault::IgnoreRange;
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.1.0"));
    assert_eq!(current_file(&install, "share/data.bin"), big);
    assert!(
        m.ignored.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the mirror answered a Range request with the whole file"
    );
}

#[actix_rt::test]
async fn endless_data_stops_at_the_signed_length_and_slow_sources_are_dropped() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, install, o, root) = installation(&repo, &[m.url()]);
    m.set(Fault::Endless);
    let err = apply(&root, &o, &mut |_, _, _| {}).await.unwrap_err();
    assert!(
        matches!(err, UpdateError::Download(DownloadError::TooLong { .. })),
        "{err:?}"
    );
    no_partials(&install);

    m.set(Fault::Slow);
    let mut slow = o.clone();
    slow.limits.attempts = 1;
    let err = apply(&root, &slow, &mut |_, _, _| {}).await.unwrap_err();
    assert!(
        matches!(err, UpdateError::Download(DownloadError::Slow { .. })),
        "{err:?}"
    );
    assert_eq!(root.current(), None);
}

#[actix_rt::test]
async fn unapproved_versions_are_not_installed_even_when_served() {
    let repo = repo_with_v1().await;
    build_exec(&repo, "9.0.0", b"evil", b"evil");
    // Its files copied into the served tree, as a careless or hostile mirror would.
    let targets = repo.release_path.join("repository/targets");
    let fake = targets.join("0000.9.0.0/bin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("app"), b"evil").unwrap();
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, _, o, root) = installation(&repo, &[m.url()]);
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.0.0"));
    assert_eq!(out.check.latest.as_deref(), Some("1.0.0"));
}

#[actix_rt::test]
async fn freeze_and_replay_of_old_metadata_are_refused() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, _, o, root) = installation(&repo, &[m.url()]);
    let old_timestamp = std::fs::read(repo.metadata().join("timestamp.json")).unwrap();
    build_exec(&repo, "1.1.0", b"x", b"y");
    repo.approve("1.1.0").await;
    assert_eq!(
        check(&root, &o).await.unwrap().0.latest.as_deref(),
        Some("1.1.0")
    );

    // Replay: yesterday's complete, validly signed timestamp.
    let new_timestamp = std::fs::read(repo.metadata().join("timestamp.json")).unwrap();
    std::fs::write(repo.metadata().join("timestamp.json"), &old_timestamp).unwrap();
    let err = check(&root, &o).await.unwrap_err();
    assert!(matches!(err, UpdateError::NoSource(_)), "{err:?}");
    std::fs::write(repo.metadata().join("timestamp.json"), &new_timestamp).unwrap();
    check(&root, &o).await.unwrap();

    // Freeze: the timestamp is not renewed and expires.
    let mut open = repo.open().await;
    let short = Expiry {
        timestamp: Duration::from_secs(1),
        ..Expiry::default()
    };
    open.refresh(&repo.online(), &short, Duration::ZERO)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let err = loop {
        match check(&root, &o).await {
            Err(e) => break e,
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "an expired timestamp was accepted"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(err.to_string().contains("xpired"), "{err}");
}

#[actix_rt::test]
async fn downgrades_need_a_signed_deprecation() {
    let repo = repo_with_v1().await;
    build_exec(&repo, "1.1.0", b"v11", b"d11");
    repo.approve("1.1.0").await;
    let server = releaser(&repo).await;
    let (_tmp, install, o, root) =
        installation(&repo, &[format!("vsoa://{}", server.local_addr())]);
    assert_eq!(
        apply(&root, &o, &mut |_, _, _| {})
            .await
            .unwrap()
            .installed
            .as_deref(),
        Some("1.1.0")
    );

    // Another channel offering only 1.0.0 is not a reason to go down.
    repo.propose(approve("1.0.0", "lts", 100), &[1]).await;
    let mut lts = o.clone();
    lts.channel = "lts".into();
    let c = check(&root, &lts).await.unwrap().0;
    assert_eq!(c.update, None, "{}", c.reason);
    assert!(c.reason.contains("not newer"), "{}", c.reason);

    // A signed deprecation is the operator's downgrade.
    repo.propose(
        Change::Deprecate {
            version: "1.1.0".into(),
            to: "1.0.0".into(),
        },
        &[1],
    )
    .await;
    let out = apply(&root, &o, &mut |_, _, _| {}).await;
    // 1.0.0 is not installed here yet: it is downloaded and made current.
    let out = out.unwrap();
    assert_eq!(
        out.installed.as_deref(),
        Some("1.0.0"),
        "{}",
        out.check.reason
    );
    assert_eq!(current_file(&install, "bin/app"), APP_V1);
    server.stop();
}

#[test]
fn one_updater_at_a_time_and_no_path_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = InstallRoot::open(tmp.path()).unwrap();
    assert!(matches!(
        InstallRoot::open(tmp.path()),
        Err(InstallError::Busy(_))
    ));
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    for path in ["../escape", "/etc/x", "a/../../b", "a//b", "./a"] {
        let err = root
            .install(
                "1.0.0",
                &[StagedFile {
                    from: file.clone(),
                    path: path.into(),
                    mode: 0o644,
                }],
            )
            .unwrap_err();
        assert!(matches!(err, InstallError::Refused(_)), "{path}: {err:?}");
        assert!(root.installed().is_empty());
    }
    assert!(!tmp.path().join("escape").exists());
    drop(root);
    InstallRoot::open(tmp.path()).unwrap();
}

#[actix_rt::test]
async fn a_deprecated_version_goes_back_to_an_installed_rollback_target() {
    let repo = repo_with_v1().await;
    let server = releaser(&repo).await;
    let (_tmp, install, o, root) =
        installation(&repo, &[format!("vsoa://{}", server.local_addr())]);
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    build_exec(&repo, "1.1.0", b"v11", b"d11");
    repo.approve("1.1.0").await;
    assert_eq!(
        apply(&root, &o, &mut |_, _, _| {})
            .await
            .unwrap()
            .installed
            .as_deref(),
        Some("1.1.0")
    );
    repo.propose(
        Change::Deprecate {
            version: "1.1.0".into(),
            to: "1.0.0".into(),
        },
        &[1],
    )
    .await;
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.0.0"));
    assert_eq!(out.previous.as_deref(), Some("1.1.0"));
    assert_eq!(current_file(&install, "bin/app"), APP_V1);
    assert_eq!(root.installed(), ["1.0.0", "1.1.0"]);
    server.stop();
}

#[actix_rt::test]
async fn a_mirror_serving_altered_metadata_is_skipped_for_a_good_one() {
    let repo = repo_with_v1().await;
    let evil = mirror::start(repo.release_path.join("repository")).await;
    evil.set(Fault::TamperMetadata);
    let good = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, _, o, root) = installation(&repo, &[evil.url(), good.url()]);
    let out = apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(out.installed.as_deref(), Some("1.0.0"));
    assert_eq!(
        out.check.source,
        good.url(),
        "the altered metadata did not verify"
    );
    // Alone, the bad mirror gets nothing installed.
    let (_tmp2, _, o2, root2) = installation(&repo, &[evil.url()]);
    let err = apply(&root2, &o2, &mut |_, _, _| {}).await.unwrap_err();
    assert!(matches!(err, UpdateError::NoSource(_)), "{err:?}");
    assert_eq!(root2.current(), None);
}

#[actix_rt::test]
async fn a_clock_stepped_back_is_refused() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let (_tmp, install, o, root) = installation(&repo, &[m.url()]);
    check(&root, &o).await.unwrap();
    // The datastore remembers the latest time it saw; pretend it saw a day ahead.
    let ahead = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap();
    std::fs::write(
        install.join("tuf/latest_known_time.json"),
        serde_json::to_vec(&ahead).unwrap(),
    )
    .unwrap();
    let err = check(&root, &o).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("backward"), "{err}");
    assert!(apply(&root, &o, &mut |_, _, _| {}).await.is_err());
    assert_eq!(
        root.current(),
        None,
        "nothing installed on a stepped-back clock"
    );
}

#[actix_rt::test]
async fn a_scheduled_updater_from_psvc_conf_installs_by_itself() {
    let repo = repo_with_v1().await;
    let m = mirror::start(repo.release_path.join("repository")).await;
    let tmp = tempfile::tempdir().unwrap();
    let install = tmp.path().join("app");
    let conf = tmp.path().join("psvc.conf");
    std::fs::write(
        &conf,
        format!(
            "[PSVC]\nupdate_path = {}\n[update]\nsources = vsoa://127.0.0.1:1, {}\ntrusted_root = {}\ninterval = 100ms\nauto_apply = true\nkeep = 4\nmax_boots = 5\nhealth_deadline = 30s\nprobation_period = 1m\n",
            install.display(),
            m.url(),
            repo.keys.join("root.json").display()
        ),
    )
    .unwrap();
    let config = psvc::config::ConfigLoader::new("app")
        .file(&conf)
        .load()
        .unwrap();
    let o = UpdaterOptions::from_config(&config).unwrap();
    assert_eq!(o.sources.len(), 2);
    assert_eq!(o.check_every, Some(Duration::from_millis(100)));
    assert_eq!((o.keep, o.probation.max_boots), (4, 5));
    assert_eq!(o.probation.period, Duration::from_secs(60));

    let _updater = psvc_actors::update::updater::Updater::new(o).start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_link(install.join("current")).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduled updater never installed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(current_file(&install, "bin/app"), APP_V1);

    // A bad key is named.
    std::fs::write(&conf, "[update]\nsources = ftp://x\n").unwrap();
    let config = psvc::config::ConfigLoader::new("app")
        .file(&conf)
        .load()
        .unwrap();
    let err = UpdaterOptions::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("ftp://x"), "{err}");
    std::fs::write(&conf, "[update]\nintervall = 1h\n").unwrap();
    let config = psvc::config::ConfigLoader::new("app")
        .file(&conf)
        .load()
        .unwrap();
    let err = UpdaterOptions::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("intervall"), "{err}");
}

#[actix_rt::test]
async fn update_events_reach_the_releaser_once_each_and_its_store_is_bounded() {
    use psvc::client::{Client, ClientOptions, Rpc};
    use psvc_actors::release::releaser::{GetReports, MAX_REPORTS, Report};
    use psvc_actors::update::updater::report;

    let repo = repo_with_v1().await;
    let releaser = Releaser::new(ReleaserOptions::new(&repo.release_path)).start();
    let server = Server::new(Auth::anonymous())
        .commands(Releaser::routes(Commander::new(), releaser.clone()).commands())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let (_tmp, _install, o, root) =
        installation(&repo, &[format!("vsoa://{}", server.local_addr())]);
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();
    build_exec(&repo, "1.1.0", b"#!/bin/sh\necho one.one\n", b"new");
    repo.approve("1.1.0").await;
    apply(&root, &o, &mut |_, _, _| {}).await.unwrap();

    assert_eq!(report(&root, &o).await.unwrap(), 2, "two installs");
    assert_eq!(report(&root, &o).await.unwrap(), 0, "each event once");
    root.rollback("1.0.0", "operator").unwrap();
    assert_eq!(report(&root, &o).await.unwrap(), 1);

    let client = Client::connect(ClientOptions::new(server.local_addr().to_string()))
        .await
        .unwrap();
    let reply = client
        .rpc(
            Rpc::get("/release/reports")
                .json(&serde_json::json!({ "installation": "test-installation" }))
                .unwrap(),
        )
        .await
        .unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    let events: Vec<(String, String)> = seen["reports"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["events"].as_array().unwrap().clone())
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("installed".into(), "1.0.0".into()),
            ("installed".into(), "1.1.0".into()),
            ("rolled_back".into(), "1.0.0".into()),
        ]
    );
    assert_eq!(
        seen["reports"].as_array().unwrap().len(),
        2,
        "one report per send"
    );
    assert_eq!(seen["reports"][1]["current"], "1.0.0");

    // A malformed report is refused with a reason.
    let bad = client
        .rpc(
            Rpc::set("/release/report")
                .json(&serde_json::json!({ "installation": "", "events": [] }))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(bad.status, psvc::frame::Status::OK);
    assert!(String::from_utf8_lossy(&bad.param).contains("installation"));

    // Bounded: the oldest go, and are counted.
    let one = |i: usize| Report {
        installation: format!("flood-{i}"),
        current: None,
        events: vec![root.state().history[0].clone()],
        received_at: String::new(),
    };
    for i in 0..MAX_REPORTS + 5 {
        releaser.send(one(i)).await.unwrap();
    }
    let all = releaser.send(GetReports::default()).await.unwrap();
    assert_eq!(all.reports.len(), MAX_REPORTS);
    assert_eq!(all.dropped, 7, "2 real reports and 5 floods dropped");
    assert_eq!(
        all.reports.last().unwrap().installation,
        format!("flood-{}", MAX_REPORTS + 4)
    );
    server.stop();
}

/// A copy of the served repository, for a mirror that serves it altered.
fn repository_copy(repo: &Repo, name: &str) -> PathBuf {
    let to = repo.dir.path().join(name);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(repo.release_path.join("repository"))
        .arg(&to)
        .status()
        .unwrap();
    assert!(st.success());
    to
}

#[actix_rt::test]
async fn mix_and_match_metadata_a_swapped_file_and_a_missing_file_install_nothing() {
    let repo = repo_with_v1().await;
    let (_tmp, install, _, root) = installation(&repo, &[]);
    let first = options(
        &repo,
        &install,
        &[mirror::start(repo.release_path.join("repository"))
            .await
            .url()],
    );
    apply(&root, &first, &mut |_, _, _| {}).await.unwrap();
    build_exec(&repo, "1.1.0", b"#!/bin/sh\necho one.one\n", b"other data");
    repo.approve("1.1.0").await;
    let targets_dir = |dir: &Path| dir.join("targets");
    let file_of = |dir: &Path, version: &str, path: &str| -> PathBuf {
        files_under(&targets_dir(dir), &format!(".{version}/{path}"))
            .into_iter()
            .find(|p| !p.to_string_lossy().contains(".psvc-delta"))
            .unwrap()
    };

    // Mix-and-match: the newest snapshot with an older targets metadata
    // under its name.
    let mixed = repository_copy(&repo, "mixed");
    let meta = mixed.join("metadata");
    let mut versions: Vec<u64> = std::fs::read_dir(&meta)
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .strip_suffix(".targets.json")
                .and_then(|v| v.parse().ok())
        })
        .collect();
    versions.sort_unstable();
    let (older, newest) = (versions[versions.len() - 2], versions[versions.len() - 1]);
    std::fs::copy(
        meta.join(format!("{older}.targets.json")),
        meta.join(format!("{newest}.targets.json")),
    )
    .unwrap();
    // A multi-file release with one file swapped for the previous
    // version's (same path, both validly signed once).
    let swapped = repository_copy(&repo, "swapped");
    std::fs::copy(
        file_of(&swapped, "1.0.0", "share/data.bin"),
        file_of(&swapped, "1.1.0", "share/data.bin"),
    )
    .unwrap();
    // One file of the release missing.
    let missing = repository_copy(&repo, "missing");
    std::fs::remove_file(file_of(&missing, "1.1.0", "share/data.bin")).unwrap();

    for (name, dir) in [("mixed", mixed), ("swapped", swapped), ("missing", missing)] {
        let m = mirror::start(dir).await;
        let o = options(&repo, &install, &[m.url()]);
        let err = apply(&root, &o, &mut |_, _, _| {}).await.unwrap_err();
        let expected = match name {
            "mixed" => matches!(err, UpdateError::NoSource(_)),
            // The old file is longer than the signed one: cut at the length.
            "swapped" => matches!(
                err,
                UpdateError::Download(
                    DownloadError::HashMismatch { .. } | DownloadError::TooLong { .. }
                )
            ),
            _ => matches!(err, UpdateError::Download(DownloadError::Source(_))),
        };
        assert!(expected, "{name}: {err}");
        assert_eq!(root.current().as_deref(), Some("1.0.0"), "{name}");
        assert_eq!(root.installed(), ["1.0.0"], "{name}");
        no_partials(&install);
    }
    // The honest repository still installs it.
    apply(&root, &first, &mut |_, _, _| {}).await.unwrap();
    assert_eq!(current_file(&install, "share/data.bin"), b"other data");
}
