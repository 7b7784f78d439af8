//! The real VSOA peers (Python `vsoa` 1.0.4, Node `vsoa` 1.5.1), installed
//! on first use into target/peers by tests/peers/install.sh.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a peer server may take to print its start-up line.
pub const STARTUP: Duration = Duration::from_secs(30);
/// How long a peer script may run (every check of a client script).
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

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

/// Spawns `cmd` with its stdout piped and returns the child with the first
/// line it prints. A peer that prints nothing within [`STARTUP`] (or exits
/// first) is killed and fails the test, instead of hanging it.
pub fn start_with_line(mut cmd: Command, what: &str) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    match rx.recv_timeout(STARTUP) {
        Ok(Ok(line)) if !line.is_empty() => (child, line),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} printed no start-up line within {STARTUP:?}: {other:?}");
        }
    }
}

/// Runs `cmd` to completion within `limit` (killing it after that), off the
/// calling thread's work: stdout and stderr are drained by their own
/// threads and the exit is polled, a bounded number of times.
fn output_within(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("peer did not start");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("peer still running after {limit:?}; killed. stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs a peer script to completion (within [`RUN_LIMIT`]) off the actix
/// thread and parses its one JSON line.
pub async fn run_json(cmd: Command) -> (Output, serde_json::Value) {
    let out = tokio::task::spawn_blocking(move || output_within(cmd, RUN_LIMIT))
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
