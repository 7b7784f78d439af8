//! Probation: a new version that keeps crashing, or never reports healthy,
//! is rolled back and marked bad; one that stays healthy is committed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use psvc_actors::update::install::{InstallRoot, StagedFile};
use psvc_actors::update::probation::{ProbationPolicy, Verdict};

/// An install root with 1.0.0, then 1.1.0 on probation.
fn updated(tmp: &std::path::Path) -> InstallRoot {
    let root = InstallRoot::open(tmp.join("app")).unwrap();
    for (v, body) in [("1.0.0", "one"), ("1.1.0", "one.one")] {
        let f = tmp.join(format!("f-{v}"));
        std::fs::write(&f, body).unwrap();
        let previous = root
            .install(
                v,
                &[StagedFile {
                    from: f,
                    path: "app".into(),
                    mode: 0o755,
                }],
            )
            .unwrap();
        if let Some(p) = previous {
            root.start_probation(v, &p).unwrap();
        }
    }
    root
}

fn policy(max_boots: u32, deadline: Duration, period: Duration) -> ProbationPolicy {
    ProbationPolicy {
        max_boots,
        health_deadline: deadline,
        period,
    }
}

#[test]
fn a_crash_loop_during_probation_rolls_back_and_marks_the_version_bad() {
    let tmp = tempfile::tempdir().unwrap();
    let root = updated(tmp.path());
    let p = policy(3, Duration::from_secs(3600), Duration::from_secs(3600));
    for boots in 1..=3 {
        assert_eq!(
            root.boot(&p).unwrap(),
            Verdict::OnProbation {
                version: "1.1.0".into(),
                boots,
                healthy: false
            }
        );
    }
    let v = root.boot(&p).unwrap();
    assert!(
        matches!(&v, Verdict::RolledBack { from, to, .. } if from == "1.1.0" && to == "1.0.0"),
        "{v:?}"
    );
    assert_eq!(root.current().as_deref(), Some("1.0.0"));
    assert_eq!(
        std::fs::read(root.path().join("current/app")).unwrap(),
        b"one"
    );
    let state = root.state();
    assert!(state.bad.contains("1.1.0"));
    assert_eq!(state.probation, None);
    assert!(
        state
            .history
            .iter()
            .any(|h| h.event == "marked_bad" && h.version == "1.1.0")
    );
    // The old version now boots without probation.
    assert_eq!(root.boot(&p).unwrap(), Verdict::Stable);
}

#[test]
fn a_version_healthy_for_the_period_is_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = updated(tmp.path());
    let p = policy(3, Duration::from_secs(3600), Duration::ZERO);
    root.boot(&p).unwrap();
    assert_eq!(
        root.tick(&policy(
            3,
            Duration::from_secs(3600),
            Duration::from_secs(3600)
        ))
        .unwrap(),
        Verdict::OnProbation {
            version: "1.1.0".into(),
            boots: 1,
            healthy: false
        }
    );
    root.healthy().unwrap();
    assert_eq!(
        root.tick(&p).unwrap(),
        Verdict::Committed {
            version: "1.1.0".into()
        }
    );
    assert_eq!(root.current().as_deref(), Some("1.1.0"));
    assert!(root.state().bad.is_empty());
    for _ in 0..5 {
        assert_eq!(
            root.boot(&p).unwrap(),
            Verdict::Stable,
            "a committed version is never rolled back"
        );
    }
}

#[test]
fn no_health_report_within_the_deadline_rolls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = updated(tmp.path());
    let p = policy(3, Duration::ZERO, Duration::from_secs(3600));
    let v = root.tick(&p).unwrap();
    assert!(
        matches!(&v, Verdict::RolledBack { reason, .. } if reason.contains("not healthy")),
        "{v:?}"
    );
    assert_eq!(root.current().as_deref(), Some("1.0.0"));
}

#[test]
fn the_boot_counter_runs_before_the_service_from_the_command_line() {
    // ExecStartPre=psvc update boot: a version that dies at start-up never
    // reaches its own code, and is still rolled back.
    let tmp = tempfile::tempdir().unwrap();
    drop(updated(tmp.path()));
    let app = tmp.path().join("app");
    let run = |verb: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_psvc"))
            .args([
                "update",
                verb,
                "--json",
                "--root",
                app.to_str().unwrap(),
                "--max-boots",
                "2",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(run("boot")["verdict"], "on_probation");
    assert_eq!(run("boot")["verdict"], "on_probation");
    let third = run("boot");
    assert_eq!(third["verdict"], "rolled_back", "{third}");
    assert_eq!(third["to"], "1.0.0");
    assert_eq!(
        std::fs::read_link(app.join("current")).unwrap(),
        std::path::Path::new("versions/1.0.0")
    );
}
