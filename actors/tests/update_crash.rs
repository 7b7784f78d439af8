//! kill -9 at every install step (and after it, before the restart): after a crash and a restart, exactly one
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
    match crash {
        Some(point) => psvc_with(args, Some(("PSVC_UPDATE_CRASH_AT", point))).await,
        None => psvc_with(args, None).await,
    }
}

/// The tool with one variable of the fault injection set (crash point or
/// I/O fault); neither is inherited otherwise.
async fn psvc_with(args: &[&str], var: Option<(&str, &str)>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let var = var.map(|(k, v)| (k.to_owned(), v.to_owned()));
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_psvc"));
        cmd.args(&args)
            .stdin(Stdio::null())
            .env_remove("PSVC_UPDATE_CRASH_AT")
            .env_remove("PSVC_UPDATE_FAULT");
        if let Some((k, v)) = var {
            cmd.env(k, v);
        }
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
        ("before_restart", "1.1.0"),
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

        if point == "before_restart" {
            // Killed before the restart: the new version starts on
            // probation, its previous one kept to go back to.
            assert_eq!(st["state"]["probation"]["version"], "1.1.0", "{st}");
            assert_eq!(st["state"]["probation"]["previous"], "1.0.0", "{st}");
        }

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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Nothing of a failed install is left: no journal, no staging or
/// half-made version, no partial download.
fn nothing_left(root: &Path, version: &str) {
    assert!(!root.join("journal.json").exists());
    let versions: Vec<String> = std::fs::read_dir(root.join("versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        versions.iter().all(|v| v != version && !v.starts_with('.')),
        "{versions:?}"
    );
    let partials = std::fs::read_dir(root.join("downloads"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(partials, 0);
}

#[actix_rt::test]
async fn eio_on_fsync_or_enospc_mid_download_keeps_the_current_version_and_the_next_try_installs() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"one")]);
    let big: Vec<u8> = (0..2u32 << 20).map(|i| (i % 253) as u8).collect();
    repo.build("1.1.0", &[("app", b"one.one"), ("lib/big", &big)]);
    repo.approve("1.0.0").await;
    repo.propose(approve("1.1.0", "next", 100), &[1]).await;
    let m = common::mirror::start(repo.release_path.join("repository")).await;
    let trusted = repo.keys.join("root.json");
    for (fault, message) in [
        ("eio_fsync", "Input/output error"),
        ("enospc_download", "No space left on device"),
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
        let first = psvc(&[&["update", "apply"][..], &base].concat(), None).await;
        assert!(first.status.success(), "{}", text(&first));

        let failed = psvc_with(
            &[&["update", "apply", "--channel", "next"][..], &base].concat(),
            Some(("PSVC_UPDATE_FAULT", fault)),
        )
        .await;
        assert!(!failed.status.success(), "{fault}");
        assert!(
            text(&failed).contains(message),
            "{fault}: {}",
            text(&failed)
        );
        assert_eq!(status(&root).await["current"], "1.0.0", "{fault}");
        assert_eq!(std::fs::read(root.join("current/app")).unwrap(), b"one");
        nothing_left(&root, "1.1.0");

        let again = psvc(
            &[&["update", "apply", "--channel", "next"][..], &base].concat(),
            None,
        )
        .await;
        assert!(again.status.success(), "{fault}: {}", text(&again));
        assert_eq!(status(&root).await["current"], "1.1.0", "{fault}");
        assert_eq!(std::fs::read(root.join("current/lib/big")).unwrap(), big);
    }
}

/// The install root on a 2 MiB tmpfs (a mount namespace of our own, as an
/// unprivileged user): 1.0.0 fits, 1.1.0's 3 MiB file does not. The
/// update is refused before a byte is written, the disk is left as it
/// was, and 1.0.0 stays current.
#[actix_rt::test]
async fn a_full_disk_refuses_the_update_before_writing_and_keeps_the_current_version() {
    let repo = Repo::new(1, 1).await;
    repo.build("1.0.0", &[("app", b"one")]);
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    repo.build("1.1.0", &[("app", b"one.one"), ("data", &big)]);
    repo.approve("1.0.0").await;
    repo.propose(approve("1.1.0", "next", 100), &[1]).await;
    let m = common::mirror::start(repo.release_path.join("repository")).await;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("app");
    std::fs::create_dir(&root).unwrap();
    let trusted = repo.keys.join("root.json");
    let psvc_bin = env!("CARGO_BIN_EXE_psvc");
    let common = format!(
        "--root {} --trusted-root {} --source {}",
        root.display(),
        trusted.display(),
        m.url()
    );
    let script = format!(
        "set -u
mount -t tmpfs -o size=2m psvc-test {root} || exit 90
{psvc_bin} update apply {common} > /dev/null || exit 91
df -B1 --output=avail {root} | tail -1
echo ---
{psvc_bin} update apply --channel next {common}
echo \"rc=$?\"
echo ---
df -B1 --output=avail {root} | tail -1
echo ---
{psvc_bin} update status --json --root {root}
echo ---
cat {root}/current/app
ls -a {root}/versions {root}/downloads",
        root = root.display()
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("unshare")
            .args(["-rm", "sh", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let all = text(&out);
    assert!(
        out.status.success(),
        "the scenario needs `unshare -rm` (user and mount namespaces): {all}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let parts: Vec<&str> = stdout.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{all}");
    let free_before: u64 = parts[0].trim().parse().unwrap();
    assert!(
        parts[1].contains("rc=") && !parts[1].contains("rc=0"),
        "{all}"
    );
    assert!(all.contains("bytes free"), "refused for space: {all}");
    let free_after: u64 = parts[2].trim().parse().unwrap();
    assert_eq!(free_before, free_after, "nothing written: {all}");
    let st: serde_json::Value = serde_json::from_str(parts[3].trim()).unwrap();
    assert_eq!(st["current"], "1.0.0", "{all}");
    assert!(parts[4].starts_with("one"), "{all}");
    assert!(
        !parts[4].contains("1.1.0") && !parts[4].contains(".partial"),
        "{all}"
    );
}
