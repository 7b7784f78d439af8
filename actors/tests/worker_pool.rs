//! Workers declared in psvc.conf follow its edits: new entries start,
//! removed ones stop, changed ones restart, unchanged ones keep their
//! process, and a malformed entry is rejected by name while the rest
//! applies. Each edit goes through a real file and ConfigLoader, as SIGHUP
//! reloads it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use actix::Actor;
use psvc::config::ConfigLoader;
use psvc::service::ConfigReloaded;
use psvc::supervisor::{ChildState, SupervisorRef, SupervisorSpec};
use psvc_actors::worker::{ApplyConfig, WorkerPool};

fn load(path: &std::path::Path, text: &str) -> Arc<psvc::config::Config> {
    std::fs::write(path, text).unwrap();
    Arc::new(
        ConfigLoader::new("t")
            .file(path)
            .env_vars(Vec::<(String, String)>::new())
            .load()
            .unwrap(),
    )
}

/// The workers running now, by name.
async fn running(workers: &SupervisorRef) -> Vec<String> {
    workers
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.state == ChildState::Running)
        .map(|i| i.id.to_string())
        .collect()
}

/// Processes running `sleep <arg>`.
fn sleeping(arg: &str) -> Vec<u32> {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
        })
        .collect()
}

/// Waits (bounded) until `n` processes run `sleep <arg>`: a process just
/// spawned can show its parent's command line for a moment.
async fn expect_sleeping(arg: &str, n: usize) -> Vec<u32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = sleeping(arg);
        if found.len() == n {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sleep {arg}: {} processes, not {n}",
            found.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A root, a `workers` supervisor under it, and a pool over that.
async fn pool() -> (
    psvc::supervisor::RootSupervisor,
    SupervisorRef,
    actix::Addr<WorkerPool>,
) {
    let root = SupervisorSpec::new("root").start_root();
    let workers = root
        .handle()
        .start_child(SupervisorSpec::new("workers").into_child())
        .await
        .unwrap();
    let workers = SupervisorRef::from_child(workers);
    let pool = WorkerPool::new(workers.clone()).start();
    (root, workers, pool)
}

#[actix_rt::test]
async fn edits_of_worker_entries_start_stop_and_restart_exactly_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("psvc.conf");
    let (_root, workers, pool) = pool().await;

    let first = load(
        &conf,
        "[worker.a]\nprogram = sleep\nargs = 4242001\n\n[worker.b]\nprogram = sleep\nargs = 4242002\nstop_timeout = 1s\n",
    );
    let applied = pool.send(ApplyConfig(first)).await.unwrap();
    assert_eq!(applied.started, ["a", "b"]);
    assert!(
        applied.rejected.is_empty() && applied.failed.is_empty(),
        "{applied:?}"
    );
    assert_eq!(running(&workers).await, ["a", "b"]);
    expect_sleeping("4242001", 1).await;
    expect_sleeping("4242002", 1).await;

    // a removed, b changed, c added, d malformed (a typo), e malformed (a
    // bad restart type); delivered as SIGHUP delivers a reload.
    let second = load(
        &conf,
        "[worker.b]\nprogram = sleep\nargs = 4242012\nstop_timeout = 1s\n\n[worker.c]\nprogram = sleep\nargs = 4242003\n\n[worker.d]\nprogrm = sleep\n\n[worker.e]\nprogram = sleep\nrestart = sometimes\n",
    );
    pool.send(ConfigReloaded(second.clone())).await.unwrap();
    // The reload is applied in turn: an apply sent after it finds nothing
    // left to change.
    let again = pool.send(ApplyConfig(second)).await.unwrap();
    assert!(
        again.started.is_empty() && again.stopped.is_empty() && again.restarted.is_empty(),
        "{again:?}"
    );
    let names: Vec<&str> = again.rejected.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["d", "e"]);
    assert!(
        again.rejected[0].1.contains("progrm"),
        "{:?}",
        again.rejected
    );
    assert!(
        again.rejected[1].1.contains("sometimes"),
        "{:?}",
        again.rejected
    );
    assert_eq!(running(&workers).await, ["b", "c"]);
    expect_sleeping("4242001", 0).await;
    expect_sleeping("4242002", 0).await;
    expect_sleeping("4242012", 1).await;
    expect_sleeping("4242003", 1).await;

    // Unchanged entries keep their process; a worker whose entry becomes
    // malformed keeps running as it was.
    let (b_pid, c_pid) = (sleeping("4242012"), sleeping("4242003"));
    let third = load(
        &conf,
        "[worker.b]\nprogram = sleep\nargs = 4242012\nbogus = 1\n\n[worker.c]\nprogram = sleep\nargs = 4242003\n",
    );
    let applied = pool.send(ApplyConfig(third)).await.unwrap();
    assert!(
        applied.started.is_empty() && applied.stopped.is_empty() && applied.restarted.is_empty(),
        "{applied:?}"
    );
    assert_eq!(applied.rejected.len(), 1);
    assert_eq!(sleeping("4242003"), c_pid, "c untouched");
    assert_eq!(sleeping("4242012"), b_pid, "b kept running as it was");

    // Everything removed.
    let applied = pool.send(ApplyConfig(load(&conf, ""))).await.unwrap();
    assert_eq!(applied.stopped, ["b", "c"]);
    expect_sleeping("4242012", 0).await;
    expect_sleeping("4242003", 0).await;
    assert!(running(&workers).await.is_empty());
}

#[actix_rt::test]
async fn an_entry_sets_the_environment_and_a_bad_pair_is_rejected_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("psvc.conf");
    let (root, _workers, pool) = pool().await;
    let out = tmp.path().join("env.txt");
    let text = format!(
        "[worker.e]\nprogram = sh\nargs = -c 'echo \"$WHO|$MODE\" > {}; exec sleep 4242011'\nenv = WHO=there MODE=\"day shift\"\nbackoff_min = 50ms\nbackoff_max = 1s\n\n[worker.bad]\nprogram = sleep\nargs = 4242012\nenv = NOEQUALS\n",
        out.display()
    );
    let applied = pool.send(ApplyConfig(load(&conf, &text))).await.unwrap();
    assert_eq!(applied.started, ["e"], "{applied:?}");
    assert_eq!(applied.rejected.len(), 1);
    assert_eq!(applied.rejected[0].0, "bad");
    assert!(applied.rejected[0].1.contains("NOEQUALS"), "{applied:?}");
    expect_sleeping("4242011", 1).await;
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "there|day shift\n");
    root.shutdown().await;
    assert!(sleeping("4242011").is_empty());
}
