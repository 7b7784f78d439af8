//! Background mode through a service's standard command line, on the
//! `task_server` example as a user runs it: `status`, `start` (returns once
//! the service is ready), a second `start`, `restart`, `stop`; a stale
//! pidfile; a service that fails during `start`; a bad configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use psvc::client::{Client, ClientOptions, Rpc};
use psvc::frame::Status;

fn task_server(dir: &Path, args: &[&str]) -> Output {
    Command::new(common::example("task_server"))
        .current_dir(dir)
        .args(args)
        .args(["--pidfile", "ts.pid", "--set", "PSVC.log_file=false"])
        .env("TASK_SERVER_TOKEN", "s3cret")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The pid `start` or `status` printed.
fn pid_in(out: &Output) -> u32 {
    let text = text(out);
    let at = text.find("pid ").expect("a pid") + 4;
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The port of the newest instance, from the output file (each instance
/// prints `{"port": N}` once it listens).
fn port(dir: &Path) -> u16 {
    let out = std::fs::read_to_string(dir.join("logs/task_server.out")).unwrap();
    let line = out
        .lines()
        .rfind(|l| l.starts_with("{\"port\""))
        .expect("the instance printed its port");
    serde_json::from_str::<serde_json::Value>(line).unwrap()["port"]
        .as_u64()
        .unwrap() as u16
}

async fn ping(port: u16) -> Status {
    let client = Client::connect(
        ClientOptions::new(format!("127.0.0.1:{port}"))
            .password("s3cret")
            .request_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let status = client.rpc(Rpc::get("/sys/ping")).await.unwrap().status;
    client.close();
    status
}

#[actix_rt::test]
async fn start_status_restart_stop_of_a_background_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    let out = task_server(dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("not running"));

    let out = task_server(dir, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let pid = pid_in(&out);
    assert_eq!(
        std::fs::read_to_string(dir.join("ts.pid")).unwrap(),
        format!("{pid}\nready\n"),
        "start returned once the service was ready"
    );
    assert_eq!(ping(port(dir)).await, Status::OK);

    let out = task_server(dir, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(pid_in(&out), pid);
    assert!(text(&out).contains("running"));

    let out = task_server(dir, &["start"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("already running"), "{}", text(&out));
    assert_eq!(pid_in(&out), pid);

    let out = task_server(dir, &["restart"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("stopped (pid {pid})")),
        "{}",
        text(&out)
    );
    let started = text(&out);
    let new_pid: u32 = started
        .rsplit("started (pid ")
        .next()
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert_ne!(new_pid, pid, "a new process");
    assert_eq!(ping(port(dir)).await, Status::OK, "the new instance serves");

    let out = task_server(dir, &["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("stopped (pid {new_pid})")));
    assert!(!dir.join("ts.pid").exists(), "the pidfile is removed");
    let log = std::fs::read_to_string(dir.join("logs/task_server.out")).unwrap();
    assert!(
        log.contains("stopped"),
        "the service logged its stop:\n{log}"
    );

    let out = task_server(dir, &["status"]);
    assert_eq!(out.status.code(), Some(3));
    let out = task_server(dir, &["stop"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stopping a stopped service is fine"
    );
    assert!(text(&out).contains("not running"));
}

#[actix_rt::test]
async fn a_stale_pidfile_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // A pidfile left by a crash, naming a live process (this test): only
    // the lock counts, so nobody is signalled.
    std::fs::write(
        dir.join("ts.pid"),
        format!("{}\nready\n", std::process::id()),
    )
    .unwrap();
    let out = task_server(dir, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = task_server(dir, &["stop"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("not running"));
    let out = task_server(dir, &["start"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(ping(port(dir)).await, Status::OK);
    let out = task_server(dir, &["stop"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_service_that_fails_during_start_is_reported_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::example("task_server"))
        .current_dir(dir.path())
        .args(["start", "--pidfile", "ts.pid"])
        .env_remove("TASK_SERVER_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("exited during start"), "{}", text(&out));
    assert!(
        text(&out).contains("TASK_SERVER_TOKEN"),
        "its own words: {}",
        text(&out)
    );
    assert!(!dir.path().join("ts.pid").exists());
}

#[test]
fn start_checks_the_configuration_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = task_server(
        dir.path(),
        &["start", "--set", "PSVC.shutdown_timeout=soon"],
    );
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(text(&out).contains("shutdown_timeout"));
    assert!(
        !dir.path().join("logs/task_server.out").exists(),
        "nothing launched"
    );
}
