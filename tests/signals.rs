//! Signals against a real service process (the `lifecycle` example):
//! SIGTERM stops it gracefully (exit 0), a second signal forces the stop
//! (exit 128 + signal), SIGHUP reloads the configuration and a bad file is
//! rejected while the service keeps running.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

mod common;

use common::example;

struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Service {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(example("lifecycle"));
        cmd.current_dir(dir)
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut s = Self {
            child,
            lines,
            seen: Vec::new(),
        };
        s.wait_for("run: waiting for a signal");
        s
    }

    fn wait_for(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("`{text}` not logged; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    fn exit_code(mut self) -> i32 {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("service did not exit; log:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[]);
    svc.signal("TERM");
    svc.wait_for("run: shutdown requested");
    svc.wait_for("destroy: done");
    svc.wait_for("greeter stopped");
    assert_eq!(svc.exit_code(), 0);
    // the log file holds the same story
    let log = std::fs::read_to_string(dir.path().join("logs/lifecycle.log")).unwrap();
    assert!(
        log.contains("destroy: done") && log.contains("stopped"),
        "{log}"
    );
}

#[test]
fn second_signal_forces_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(dir.path(), &[("PSVC_DEMO__DESTROY_DELAY", "60s")]);
    svc.signal("TERM");
    svc.wait_for("destroy: cleaning up");
    svc.signal("INT");
    svc.wait_for("forcing the stop");
    assert_eq!(svc.exit_code(), 130);
}

#[test]
fn sighup_reloads_config_and_keeps_it_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("psvc.conf");
    std::fs::write(
        &conf,
        "[PSVC]\nlog_level = info\n\n[demo]\ngreeting = hello\n",
    )
    .unwrap();
    let mut svc = Service::start(dir.path(), &[]);
    std::fs::write(
        &conf,
        "[PSVC]\nlog_level = info\n\n[demo]\ngreeting = bonjour\n",
    )
    .unwrap();
    svc.signal("HUP");
    let line = svc.wait_for("config reloaded");
    assert!(line.contains("bonjour"), "{line}");

    std::fs::write(&conf, "[PSVC]\nshutdown_timeout = whenever\n").unwrap();
    svc.signal("HUP");
    let line = svc.wait_for("reload failed");
    assert!(
        line.contains("PSVC.shutdown_timeout") && line.contains("whenever"),
        "{line}"
    );

    svc.signal("TERM");
    svc.wait_for("greeter stopped");
    assert_eq!(svc.exit_code(), 0);
}

#[test]
fn bad_config_exits_78_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("psvc.conf"),
        "[PSVC]\nlog_max_files = lots\n",
    )
    .unwrap();
    let out = Command::new(example("lifecycle"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("psvc.conf") && err.contains("PSVC.log_max_files") && err.contains("lots"),
        "{err}"
    );
}
