//! The real VSOA peers (Python `vsoa` 1.0.4, Node `vsoa` 1.5.1), installed
//! on first use into target/peers by tests/peers/install.sh.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn dir() -> PathBuf {
    repo().join("target").join("peers")
}

/// Installs the peers once per test binary; panics with the installer's
/// message if they cannot be installed (a missing peer is a failure).
pub fn ensure() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("tests/peers/install.sh"))
            .arg(dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run tests/peers/install.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the VSOA peers could not be installed (pip install vsoa==1.0.4 / npm install vsoa@1.5.1 into target/peers); \
                 run tests/peers/install.sh to see why:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

pub fn python() -> Command {
    ensure();
    let mut c = Command::new(dir().join("venv/bin/python"));
    c.stdin(Stdio::null());
    c
}

pub fn node() -> Command {
    ensure();
    let mut c = Command::new("node");
    c.env("NODE_PATH", dir().join("node/node_modules"))
        .stdin(Stdio::null());
    c
}

pub fn script(name: &str) -> PathBuf {
    repo().join("tests/peers").join(name)
}

/// Runs a peer script to completion off the actix thread and parses its
/// one JSON line.
pub async fn run_json(mut cmd: Command) -> (Output, serde_json::Value) {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("peer did not start"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    let json = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!(
            "peer printed no JSON line; stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}
