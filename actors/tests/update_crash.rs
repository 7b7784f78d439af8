//! kill -9 at every install step: after a crash and a restart, exactly one
//! complete version is current. The `psvc update apply` process aborts at
//! the step named by PSVC_UPDATE_CRASH_AT (as kill -9 would), and the next
//! `psvc update status` recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Repo, approve};

/// Runs the tool on a blocking thread: the mirror it talks to is served by
/// this test's runtime.
async fn psvc(args: &[&str], crash: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let crash = crash.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psvc"));
        cmd.args(&args).stdin(Stdio::null());
        match crash {
            Some(point) => cmd.env("PSVC_UPDATE_CRASH_AT", point),
            None => cmd.env_remove("PSVC_UPDATE_CRASH_AT"),
        };
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

async fn status(root: &Path) -> serde_json::Value {
    let out = psvc(
        &[
            "update",
            "status",
            "--json",
            "--root",
            root.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[actix_rt::test]
async fn a_crash_at_any_step_leaves_one_complete_version_current() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"one"), ("lib/x", b"lib one")]);
    repo.build("1.1.0", &[("app", b"one.one"), ("lib/x", b"lib one.one")]);
    repo.approve("1.0.0").await;
    repo.propose(approve("1.1.0", "next", 100), &[1]).await;
    let repo_dir = repo.release_path.join("repository");
    let m = common::mirror::start(repo_dir).await;
    let trusted = repo.keys.join("root.json");

    for (point, expect) in [
        ("after_download", "1.0.0"),
        ("after_unpack", "1.0.0"),
        ("after_fsync", "1.0.0"),
        ("after_flip", "1.1.0"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("app");
        let base = [
            "--root",
            root.to_str().unwrap(),
            "--trusted-root",
            trusted.to_str().unwrap(),
            "--source",
            &m.url(),
        ];
        let first = psvc(&[&["update", "apply", "--json"][..], &base].concat(), None).await;
        assert!(
            first.status.success(),
            "{}",
            String::from_utf8_lossy(&first.stderr)
        );

        let crashed = psvc(
            &[
                &["update", "apply", "--json", "--channel", "next"][..],
                &base,
            ]
            .concat(),
            Some(point),
        )
        .await;
        assert_eq!(
            crashed.status.signal(),
            Some(6),
            "{point}: the process aborts (SIGABRT)"
        );

        let st = status(&root).await;
        assert_eq!(st["current"], expect, "{point}: {st}");
        let current = root.join("current");
        let app = std::fs::read(current.join("app")).unwrap();
        let lib = std::fs::read(current.join("lib/x")).unwrap();
        let want: (&[u8], &[u8]) = if expect == "1.0.0" {
            (b"one", b"lib one")
        } else {
            (b"one.one", b"lib one.one")
        };
        assert_eq!(
            (app.as_slice(), lib.as_slice()),
            want,
            "{point}: a complete version"
        );
        assert!(
            !root.join("journal.json").exists(),
            "{point}: journal finished or undone"
        );
        let leftovers: Vec<String> = std::fs::read_dir(root.join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{point}: {leftovers:?}");
        assert_eq!(
            st["state"]["current"], expect,
            "{point}: state agrees with the link"
        );

        // The interrupted update completes on the next run.
        let again = psvc(
            &[
                &["update", "apply", "--json", "--channel", "next"][..],
                &base,
            ]
            .concat(),
            None,
        )
        .await;
        assert!(
            again.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(status(&root).await["current"], "1.1.0", "{point}");
    }
}
