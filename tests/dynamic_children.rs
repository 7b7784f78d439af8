//! Children at run time: dynamic children of one template (simple_one_for_one),
//! and start / stop / restart / delete / list by id.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use psvc::prelude::*;
use psvc::supervisor::{ChildState, Error};

#[test]
fn dynamic_children_of_one_template() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("pool")
            .intensity(10, Duration::from_secs(1))
            .start_root();
        let l2 = log.clone();
        let pool = DynamicSupervisor::new(root.handle(), "conn", move |peer: String| Probe {
            id: peer,
            log: l2.clone(),
            ignore_stop: false,
            count: 0,
        })
        .restart(Restart::Transient);
        let mut handles = Vec::new();
        for peer in ["p1", "p2", "p3"] {
            handles.push(pool.spawn(peer.to_owned()).await.unwrap());
        }
        assert_eq!(handles[1].id(), "conn-2");
        for h in &handles {
            assert_eq!(h.ask(Ping).await.unwrap(), 1);
        }
        // a crash restarts it with the same arguments
        let _ = handles[1].ask(Crash("expected: dynamic crash")).await;
        until(|| handles[1].starts() == 2).await;
        assert_eq!(log.count("start:p2"), 2);
        // a normal exit of a transient dynamic child removes it
        handles[0].tell(StopSelf).unwrap();
        until(|| !handles[0].is_running()).await;
        let ids = child_ids(&root.handle()).await;
        assert_eq!(ids, ["conn-2", "conn-3"]);
        root.shutdown().await;
        assert_eq!(log.count("stop:p3"), 1);
    });
}

#[test]
fn children_by_id_at_run_time() {
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("root")
            .child(probe("a", &log))
            .start_root();
        let sup = root.handle();
        let hb = sup.start_child(probe("b", &log)).await.unwrap();
        assert_eq!(hb.ask(Ping).await.unwrap(), 1);

        let err = sup.start_child(probe("b", &log)).await.unwrap_err();
        assert!(matches!(err, Error::DuplicateId { .. }), "{err}");
        let err = sup.stop_child("nope").await.unwrap_err();
        assert_eq!(err.to_string(), "supervisor `root` has no child `nope`");

        sup.stop_child("b").await.unwrap();
        let info = sup.which_children().await.unwrap();
        assert_eq!(info[1].id, "b");
        assert_eq!(info[1].state, ChildState::Stopped);
        assert!(info[1].dynamic && !info[0].dynamic);

        sup.restart_child("b").await.unwrap();
        assert_eq!(hb.ask(Ping).await.unwrap(), 1);
        assert_eq!(hb.starts(), 2);

        sup.delete_child("b").await.unwrap();
        assert!(!hb.is_running());
        let ids = child_ids(&sup).await;
        assert_eq!(ids, ["a"]);
        root.shutdown().await;
    });
}

#[test]
fn failing_factory_is_a_start_error() {
    #[derive(Debug, thiserror::Error)]
    #[error("port busy")]
    struct PortBusy;
    run(async {
        let root = SupervisorSpec::new("root").start_root();
        let spec = ChildSpec::try_new("srv", || -> Result<Probe, PortBusy> { Err(PortBusy) });
        let err = root.handle().start_child(spec).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "child `srv` failed to start: error: port busy"
        );
        assert!(root.handle().which_children().await.unwrap().is_empty());
        root.shutdown().await;
    });
}

#[test]
fn a_large_pool_restarts_and_stops_in_reverse_order() {
    quiet_panics();
    const N: usize = 2_000;
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("pool")
            .intensity(100, Duration::from_secs(1))
            .start_root();
        let l2 = log.clone();
        let pool = DynamicSupervisor::new(root.handle(), "s", move |n: usize| Probe {
            id: format!("p{n}"),
            log: l2.clone(),
            ignore_stop: false,
            count: 0,
        });
        let mut handles = Vec::with_capacity(N);
        for n in 0..N {
            handles.push(pool.spawn(n).await.unwrap());
        }
        for n in (0..N).step_by(200) {
            let _ = handles[n].ask(Crash("expected: pool crash")).await;
        }
        for n in (0..N).step_by(200) {
            until(|| handles[n].starts() == 2).await;
            assert_eq!(handles[n].ask(Ping).await.unwrap(), 1);
        }
        let info = root.handle().which_children().await.unwrap();
        assert_eq!(info.len(), N);
        assert_eq!(info.iter().filter(|c| c.restarts == 1).count(), N / 200);
        log.take();
        root.shutdown().await;
        let stops = log.take();
        let expected: Vec<String> = (0..N).rev().map(|n| format!("stop:p{n}")).collect();
        assert_eq!(stops, expected);
    });
}

#[test]
fn a_dynamic_child_left_down_by_the_strategy_leaves_the_tree() {
    quiet_panics();
    #[derive(Clone)]
    struct LeaveDown;
    impl Strategy for LeaveDown {
        fn decide(&mut self, _: &Failure<'_>) -> Directive {
            Directive::Stop
        }
    }
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("pool").strategy(LeaveDown).start_root();
        let l2 = log.clone();
        let pool = DynamicSupervisor::new(root.handle(), "w", move |n: u32| Probe {
            id: format!("w{n}"),
            log: l2.clone(),
            ignore_stop: false,
            count: 0,
        });
        let crashed = pool.spawn(1).await.unwrap();
        let faulty = pool.spawn(2).await.unwrap();
        let healthy = pool.spawn(3).await.unwrap();
        let _ = crashed.ask(Crash("expected: dynamic crash")).await;
        faulty.tell(Fault(TestError::Fatal)).unwrap();
        until(|| !crashed.is_running() && !faulty.is_running()).await;
        let ids = child_ids(&root.handle()).await;
        assert_eq!(ids, ["w-3"]);
        assert!(healthy.is_running());
        root.shutdown().await;
    });
}

#[test]
fn handles_know_their_instance_is_gone_when_the_runtime_ends() {
    let log = Log::default();
    let h = probe("p", &log).handle();
    let h2 = h.clone();
    let l = log.clone();
    run(async move {
        let spec = probe("p", &l);
        let root = SupervisorSpec::new("root").start_root();
        // the handle of a spec started at run time
        let started = root.handle().start_child(spec).await.unwrap();
        assert!(started.is_running());
        *STARTED.lock().unwrap() = Some(started);
        drop(h2);
        // no shutdown: the System just ends
    });
    let started = STARTED.lock().unwrap().take().unwrap();
    assert!(
        !started.is_running(),
        "the dropped instance is not reported running"
    );
    assert!(!h.is_running());
}

static STARTED: std::sync::Mutex<Option<ChildRef<Probe>>> = std::sync::Mutex::new(None);
