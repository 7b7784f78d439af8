//! The `psvc config` commands against real files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

fn psvc(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_psvc"))
        .args(args)
        .current_dir(dir)
        .env_remove("PSVC_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn defaults_print_a_loadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = psvc(&["config", "defaults"], dir.path());
    assert_eq!(code, 0);
    assert!(out.contains("[PSVC]") && out.contains("shutdown_timeout = 10s"));
    std::fs::write(dir.path().join("psvc.conf"), &out).unwrap();
    let (code, out, err) = psvc(&["config", "check"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("psvc.conf"), "{out}");
}

#[test]
fn show_names_where_each_value_came_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("psvc.conf"), "[PSVC]\nversion = 1.2.3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_psvc"))
        .args(["config", "show", "--name", "probe"])
        .current_dir(dir.path())
        .env("PSVC_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("version = 1.2.3    ; from psvc.conf"),
        "{text}"
    );
    assert!(
        text.contains("log_level = debug    ; from environment variable PSVC_LOG_LEVEL"),
        "{text}"
    );
    assert!(
        text.contains("name = probe    ; from embedded defaults"),
        "{text}"
    );
}

#[test]
fn check_reports_file_key_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(&path, "[PSVC]\nlog_rotation = weekly\n").unwrap();
    let (code, _, err) = psvc(
        &["config", "check", "--file", path.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, 78);
    assert!(
        err.contains("bad.conf") && err.contains("PSVC.log_rotation") && err.contains("weekly"),
        "{err}"
    );
}
