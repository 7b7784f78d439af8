//! ProcessWorker: an OS process as a supervised child. Killed with -9 a
//! hundred times, it serves again each time; a worker that keeps crashing
//! escalates; a graceful stop is SIGTERM, then SIGKILL of the whole process
//! group; its output reaches tracing under its name.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::supervisor::{
    Backoff, ChildRef, ChildState, Error as SupervisorError, ExitReason, Restart, RootSupervisor,
    SupervisorSpec,
};
use psvc_actors::worker::{ProcessWorker, WorkerCommand, WorkerPid};

/// Longest wait for any one step (a bound, not a performance claim).
const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `psvc releases serve` on an empty release path: a psvc service.
fn releaser(dir: &std::path::Path, port: u16) -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_psvc"))
        .arg("releases")
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--release-path")
        .arg(dir.join("releases").to_string_lossy())
        .stop_timeout(Duration::from_secs(2))
}

/// Whether the service on `port` answers a call.
async fn serves(port: u16) -> bool {
    let options = ClientOptions::new(format!("127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(2));
    let Ok(client) = Client::connect(options).await else {
        return false;
    };
    let ok = client
        .rpc(Rpc::get("/release/versions"))
        .await
        .is_ok_and(|r| r.status == psvc::frame::Status::OK);
    client.close();
    ok
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Live (not zombie) processes whose process group is `pgid`, from /proc.
fn live_in_group(pgid: u32) -> Vec<u32> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces and parens.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(pid);
        }
    }
    live
}

/// A root supervisor (`max_restarts` in 60 s, exponential backoff between
/// `backoff_ms`) with the releaser worker on `port` as its child.
async fn supervised_releaser(
    dir: &std::path::Path,
    port: u16,
    max_restarts: u32,
    backoff_ms: (u64, u64),
) -> (RootSupervisor, ChildRef<ProcessWorker>) {
    let root = SupervisorSpec::new("root")
        .intensity(max_restarts, Duration::from_secs(60))
        .backoff(Backoff::exponential(
            Duration::from_millis(backoff_ms.0),
            Duration::from_millis(backoff_ms.1),
        ))
        .start_root();
    let worker = root
        .handle()
        .start_child(ProcessWorker::child_spec("releaser", releaser(dir, port)))
        .await
        .unwrap();
    (root, worker)
}

fn gone(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_err()
}

#[actix_rt::test]
async fn a_worker_killed_with_sigkill_100_times_serves_again_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (root, worker) = supervised_releaser(tmp.path(), port, 1000, (10, 100)).await;
    until("first start", || serves(port)).await;
    let mut pids = std::collections::HashSet::new();
    for round in 0..100 {
        let pid = worker.ask(WorkerPid).await.unwrap().expect("running");
        assert!(pids.insert(pid), "round {round}: a fresh process each time");
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        until(&format!("round {round}: restarted"), || {
            let worker = worker.clone();
            async move { matches!(worker.ask(WorkerPid).await, Ok(Some(p)) if p != pid) }
        })
        .await;
        until(&format!("round {round}: serving"), || serves(port)).await;
        assert!(gone(pid), "round {round}: the killed process was reaped");
    }
    let info = root.handle().which_children().await.unwrap();
    assert_eq!(info[0].restarts, 100);
    assert_eq!(info[0].state, ChildState::Running);

    // A graceful stop of a service that stops on SIGTERM.
    let pid = worker.ask(WorkerPid).await.unwrap().unwrap();
    root.handle().stop_child("releaser").await.unwrap();
    assert!(gone(pid));
    assert!(!serves(port).await);
}

#[actix_rt::test]
async fn a_worker_that_keeps_crashing_escalates_and_one_that_cannot_start_fails_to_start() {
    let root = SupervisorSpec::new("root")
        .intensity(3, Duration::from_secs(10))
        .start_root();
    let crashing = WorkerCommand::new("sh").arg("-c").arg("exit 3");
    root.handle()
        .start_child(ProcessWorker::child_spec("crashing", crashing))
        .await
        .unwrap();
    let reason = tokio::time::timeout(WAIT, root.exited()).await.unwrap();
    assert!(matches!(reason, ExitReason::Escalated(_)), "{reason}");
    assert!(reason.to_string().contains("exit status: 3"), "{reason}");

    let root = SupervisorSpec::new("root").start_root();
    let err = root
        .handle()
        .start_child(ProcessWorker::child_spec(
            "missing",
            WorkerCommand::new("/nonexistent/program"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SupervisorError::StartFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cannot start /nonexistent/program"),
        "{err}"
    );
}

#[actix_rt::test]
async fn a_graceful_stop_is_sigterm_then_sigkill_of_the_whole_group() {
    let root = SupervisorSpec::new("root").start_root();
    // Ignores SIGTERM, and has a child of its own in its group.
    let stubborn = WorkerCommand::new("sh")
        .arg("-c")
        .arg("trap '' TERM; sleep 1000 & echo started; wait")
        .stop_timeout(Duration::from_millis(300));
    let worker = root
        .handle()
        .start_child(ProcessWorker::child_spec("stubborn", stubborn))
        .await
        .unwrap();
    let pid = worker.ask(WorkerPid).await.unwrap().unwrap();
    until("its child started", || async {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .is_ok_and(|c| !c.trim().is_empty())
    })
    .await;
    // The shell ignores SIGTERM: only the SIGKILL after the stop timeout
    // ends it and its child.
    assert_eq!(live_in_group(pid).len(), 2, "the shell and its sleep");
    root.handle().stop_child("stubborn").await.unwrap();
    assert_eq!(
        live_in_group(pid),
        Vec::<u32>::new(),
        "no process of the group is left"
    );
    let info = root.handle().which_children().await.unwrap();
    assert_eq!(info[0].state, ChildState::Stopped);
}

/// Collects what tracing writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn output_goes_to_tracing_and_exit_0_is_a_normal_stop() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let talker = WorkerCommand::new("sh")
        .arg("-c")
        .arg("echo to-stdout; echo to-stderr >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; echo after-a-long-line; exit 0");
    let root = SupervisorSpec::new("root")
        .child(ProcessWorker::child_spec("talker", talker).restart(Restart::Transient))
        .start_root();
    // Stopped is final for a transient child that exited normally (a
    // restart would show Restarting or Running).
    let handle = root.handle();
    until("stopped normally", || {
        let handle = handle.clone();
        async move {
            handle
                .which_children()
                .await
                .is_ok_and(|c| c[0].state == ChildState::Stopped)
        }
    })
    .await;
    assert_eq!(handle.which_children().await.unwrap()[0].restarts, 0);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap_or("");
    assert!(
        line("to-stdout").contains("INFO") && line("to-stdout").contains("worker=talker"),
        "{text}"
    );
    assert!(
        line("to-stderr").contains("WARN") && line("to-stderr").contains("worker=talker"),
        "{text}"
    );
    assert!(text.contains("worker stopped"), "{text}");
    assert!(text.contains("line too long: cut"), "{text}");
    assert!(
        line("after-a-long-line").contains("worker=talker"),
        "read on after it: {text}"
    );
    assert!(
        !text.contains(&"x".repeat(17 * 1024)),
        "the long line was cut"
    );
}

#[actix_rt::test]
async fn a_prefix_forwarded_to_a_worker_answers_as_the_worker_and_says_so_while_it_restarts() {
    use psvc::commander::Commander;
    use psvc::socket::{Auth, Server};
    use psvc_actors::forward::Forward;

    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    // A visible restart window: 200 ms of backoff.
    let (_root, worker) = supervised_releaser(tmp.path(), port, 100, (200, 200)).await;
    let front = Server::new(Auth::anonymous())
        .commands(
            Forward::new("releaser", format!("127.0.0.1:{port}"))
                .routes(Commander::new(), "/release/")
                .commands(),
        )
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(
        ClientOptions::new(front.local_addr().to_string()).request_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let call = |url: &'static str| {
        let client = client.clone();
        async move { client.rpc(Rpc::get(url)).await.unwrap() }
    };
    until("forwarded", || async {
        call("/release/versions").await.status == psvc::frame::Status::OK
    })
    .await;
    // The worker's own replies, status included.
    let direct = Client::connect(ClientOptions::new(format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let want = direct.rpc(Rpc::get("/release/versions")).await.unwrap();
    let got = call("/release/versions").await;
    assert_eq!((got.status, &got.param), (want.status, &want.param));
    direct.close();
    let missing = call("/release/nothing-here").await;
    assert_eq!(
        missing.status,
        psvc::frame::Status::INVALID_URL,
        "the worker's 3"
    );

    // Killed: every call answers (no hang): OK, or 4 saying why.
    let pid = worker.ask(WorkerPid).await.unwrap().unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let mut unreachable = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = call("/release/versions").await;
        if reply.status == psvc::frame::Status::OK {
            if unreachable > 0 {
                break;
            }
        } else {
            assert_eq!(reply.status, psvc::frame::Status::NO_RESPONDING);
            let text = String::from_utf8_lossy(&reply.param);
            assert!(text.contains("worker releaser is not reachable"), "{text}");
            unreachable += 1;
        }
        assert!(Instant::now() < deadline, "serving again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(unreachable > 0);
    front.stop();
}
