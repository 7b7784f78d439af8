//! Shutdown: children start in order and stop in reverse order; a child that
//! ignores its stop is killed when its timeout passes; brutal kill runs no
//! more actor code; nested supervisors stop their subtree first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use psvc::prelude::*;

#[test]
fn start_in_order_stop_in_reverse() {
    let log = Log::default();
    run(async move {
        let sub = SupervisorSpec::new("sub")
            .child(probe("s1", &log))
            .child(probe("s2", &log))
            .into_child();
        let root = SupervisorSpec::new("root")
            .child(probe("a", &log))
            .child(sub)
            .child(probe("b", &log))
            .start_root();
        until(|| log.snapshot().len() == 4).await;
        assert_eq!(log.take(), ["start:a", "start:s1", "start:s2", "start:b"]);
        let reason = root.shutdown().await;
        assert_eq!(reason.to_string(), "shutdown");
        assert_eq!(log.take(), ["stop:b", "stop:s2", "stop:s1", "stop:a"]);
    });
}

#[test]
fn child_ignoring_stop_is_killed_at_its_timeout() {
    let log = Log::default();
    run_paused(async move {
        let root = SupervisorSpec::new("root")
            .child(probe("a", &log))
            .child(stubborn("stuck", &log).shutdown(Shutdown::Timeout(Duration::from_millis(50))))
            .child(probe("c", &log))
            .start_root();
        until(|| log.snapshot().len() == 3).await;
        log.take();
        let t0 = tokio::time::Instant::now();
        root.shutdown().await;
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took <= Duration::from_millis(51),
            "forced stop after {took:?}"
        );
        // `stuck` refused the stop, was killed (no stop hook), then `a` stopped
        assert_eq!(log.take(), ["stop:c", "ignore-stop:stuck", "stop:a"]);
    });
}

#[test]
fn brutal_kill_runs_no_more_actor_code() {
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("root")
            .child(stubborn("k", &log).shutdown(Shutdown::BrutalKill))
            .start_root();
        until(|| log.snapshot().len() == 1).await;
        log.take();
        root.shutdown().await;
        assert!(
            log.take().is_empty(),
            "no stopping/stopped after a brutal kill"
        );
    });
}

#[test]
fn stop_child_at_run_time_uses_its_policy() {
    let log = Log::default();
    run_paused(async move {
        let s = stubborn("s", &log).shutdown(Shutdown::Timeout(Duration::from_millis(30)));
        let hs = s.handle();
        let root = SupervisorSpec::new("root").child(s).start_root();
        let sup = root.handle();
        let t0 = tokio::time::Instant::now();
        sup.stop_child("s").await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert!(!hs.is_running());
        // stopped on request: not restarted
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!hs.is_running());
        sup.restart_child("s").await.unwrap();
        assert!(hs.is_running());
        root.kill();
        until(|| root.exit_reason().is_some()).await;
        until(|| !hs.is_running()).await;
    });
}
