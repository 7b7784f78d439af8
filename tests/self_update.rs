//! A service that updates itself end to end: the `self_update` example runs
//! from an install root, its Updater finds 1.1.0 on a Releaser, installs
//! it, restarts into it (exec, same process), reports healthy and commits;
//! then a broken 1.2.0 that dies at start-up is rolled back by the boot
//! counter a supervisor runs before each start (as systemd's ExecStartPre),
//! marked bad, and never installed again.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actix::Actor;
use psvc::commander::Commander;
use psvc::socket::{Auth, Server};
use psvc_actors::release::repo::{Change, Expiry, OnlineKeys, ReleaseRepo};
use psvc_actors::release::{
    BuildSpec, KeysSpec, Releaser, ReleaserOptions, Source, build_release, init_keys,
};
use psvc_actors::update::install::InstallRoot;
use psvc_actors::update::probation::{ProbationPolicy, Verdict};
use psvc_actors::update::updater::{UpdaterOptions, apply};

const WAIT: Duration = Duration::from_secs(60);

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, root: &Path) -> Running {
    let mut child = Command::new(root.join("current/bin/app"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Running { child, lines }
}

/// Waits (off the runtime) for a line containing `want`.
async fn expect_line(running: &Running, want: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        match running.lines.try_recv() {
            Ok(line) if line.contains(want) => return,
            Ok(_) => continue,
            Err(mpsc::TryRecvError::Disconnected) => {
                panic!("the service ended before printing {want:?}")
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        assert!(Instant::now() < deadline, "no {want:?} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(root: &Path) -> serde_json::Value {
    std::fs::read(root.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[actix_rt::test]
async fn a_service_updates_itself_commits_and_rolls_back_a_broken_release() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (releases, keys, root) = (dir.join("releases"), dir.join("keys"), dir.join("app"));
    init_keys(&KeysSpec::new(&keys, &releases)).await.unwrap();
    let app = common::example("self_update");
    for (version, broken) in [("1.0.0", false), ("1.1.0", false), ("1.2.0", true)] {
        let src = dir.join(format!("src-{version}"));
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::copy(&app, src.join("bin/app")).unwrap();
        if broken {
            std::fs::write(src.join("bin/CRASH"), b"").unwrap();
        }
        build_release(
            &BuildSpec::new(version, &releases, Source::Directory(src)),
            &mut |_| {},
        )
        .unwrap();
    }
    let approve = |version: &'static str| {
        let (releases, keys) = (releases.clone(), keys.clone());
        async move {
            let mut repo = ReleaseRepo::open(&releases).await.unwrap();
            repo.propose(
                Change::Approve {
                    version: version.into(),
                    channel: "stable".into(),
                    notes: None,
                    rollout: 100,
                },
                &[keys.join("approver-1.pk8")],
                &OnlineKeys::in_dir(&keys),
                &Expiry::default(),
            )
            .await
            .unwrap();
        }
    };
    approve("1.0.0").await;
    let releaser = Releaser::new(ReleaserOptions::new(&releases)).start();
    let server = Server::new(Auth::anonymous())
        .commands(Releaser::routes(Commander::new(), releaser).commands())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let source = format!("vsoa://{}", server.local_addr());

    // The first install, as an installer would do it.
    {
        let installed = InstallRoot::open(&root).unwrap();
        let o = UpdaterOptions::new(&root, keys.join("root.json")).source(source.parse().unwrap());
        apply(&installed, &o, &mut |_, _, _| {}).await.unwrap();
    }
    std::fs::write(
        dir.join("psvc.conf"),
        format!(
            "[PSVC]\nupdate_path = {}\nlog_console = false\n[update]\nsources = {source}\ntrusted_root = {}\ninterval = 200ms\nauto_apply = true\nmax_boots = 2\nhealth_deadline = 30s\nprobation_period = 1s\n",
            root.display(),
            keys.join("root.json").display()
        ),
    )
    .unwrap();

    let running = start(dir, &root);
    expect_line(&running, "running 1.0.0").await;
    let pid = running.child.id();

    // 1.1.0 approved: the service installs it and restarts into it.
    approve("1.1.0").await;
    expect_line(&running, "running 1.1.0").await;
    assert_eq!(running.child.id(), pid, "restarted by exec, same process");
    wait_for("1.1.0 committed after its probation", || {
        state(&root)["history"].as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["event"] == "committed" && e["version"] == "1.1.0")
        })
    })
    .await;

    // 1.2.0 is broken: it dies at start-up, before any of its code runs.
    approve("1.2.0").await;
    let mut running = running;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(3), "1.2.0 exits at start-up");
            break;
        }
        assert!(Instant::now() < deadline, "1.2.0 was never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_link(root.join("current")).unwrap(),
        Path::new("versions/1.2.0")
    );

    // The supervisor's loop: the boot counter, then a start.
    let policy = ProbationPolicy {
        max_boots: 2,
        health_deadline: Duration::from_secs(30),
        period: Duration::from_secs(1),
    };
    let mut verdicts = Vec::new();
    let survivor = loop {
        assert!(verdicts.len() < 5, "no version stayed up: {verdicts:?}");
        let verdict = InstallRoot::open(&root).unwrap().boot(&policy).unwrap();
        verdicts.push(verdict);
        let mut next = start(dir, &root);
        // Either it dies at start-up, or it says it runs.
        let started = Instant::now();
        let up = loop {
            if let Ok(line) = next.lines.try_recv()
                && line.contains("running ")
            {
                break Some(line);
            }
            if next.child.try_wait().unwrap().is_some() {
                break None;
            }
            assert!(started.elapsed() < WAIT, "neither running nor dead");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if let Some(line) = up {
            assert!(line.contains("running 1.1.0"), "{line}");
            break next;
        }
    };
    assert!(
        matches!(verdicts.last(), Some(Verdict::RolledBack { from, to, .. }) if from == "1.2.0" && to == "1.1.0"),
        "{verdicts:?}"
    );
    let st = state(&root);
    assert!(
        st["bad"].as_array().unwrap().iter().any(|v| v == "1.2.0"),
        "{st}"
    );
    // It keeps checking (every 200 ms) and does not install 1.2.0 again:
    // watched over ten check intervals.
    let watch_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch_until {
        assert_eq!(
            std::fs::read_link(root.join("current")).unwrap(),
            Path::new("versions/1.1.0")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(survivor);
    server.stop();
}
