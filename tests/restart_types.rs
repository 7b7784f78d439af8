//! Restart types: permanent children always restart, transient ones only after
//! an abnormal exit, temporary ones never (and leave the tree).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use psvc::prelude::*;
use psvc::supervisor::ChildState;

#[test]
fn permanent_restarts_after_normal_exit() {
    let log = Log::default();
    run(async move {
        let a = probe("a", &log).restart(Restart::Permanent);
        let ha = a.handle();
        let root = SupervisorSpec::new("root").child(a).start_root();
        ha.tell(StopSelf).unwrap();
        until(|| ha.starts() == 2 && ha.is_running()).await;
        root.shutdown().await;
    });
}

#[test]
fn transient_restarts_only_after_abnormal_exit() {
    let log = Log::default();
    run(async move {
        let a = probe("a", &log).restart(Restart::Transient);
        let ha = a.handle();
        let root = SupervisorSpec::new("root")
            .intensity(5, Duration::from_secs(5))
            .child(a)
            .start_root();
        ha.tell(Fail(TestError::Glitch)).unwrap();
        until(|| ha.starts() == 2 && ha.is_running()).await;

        ha.tell(StopSelf).unwrap();
        until(|| !ha.is_running()).await;
        // give the supervisor every chance to (wrongly) restart it
        assert_eq!(
            ha.ask(Ping).await.unwrap_err(),
            AskError::NotRunning("a".into())
        );
        let info = root.handle().which_children().await.unwrap();
        assert_eq!(info.len(), 1, "a stopped transient child stays in the tree");
        assert_eq!(info[0].state, ChildState::Stopped);
        assert_eq!(ha.starts(), 2);
        root.shutdown().await;
    });
}

#[test]
fn temporary_never_restarts_and_is_removed() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let a = probe("a", &log).restart(Restart::Temporary);
        let b = probe("b", &log);
        let (ha, hb) = (a.handle(), b.handle());
        let root = SupervisorSpec::new("root")
            .strategy(OneForAll)
            .intensity(5, Duration::from_secs(5))
            .child(a)
            .child(b)
            .start_root();
        let _ = ha.ask(Crash("expected: temporary crash")).await;
        let sup = root.handle();
        until(|| !ha.is_running()).await;
        assert_eq!(child_ids(&sup).await, ["b"]);
        assert_eq!(hb.starts(), 1, "no restart was needed, so none happened");
        root.shutdown().await;
    });
}

#[test]
fn temporary_sibling_stopped_by_one_for_all_is_not_restarted() {
    let log = Log::default();
    run(async move {
        let a = probe("a", &log).restart(Restart::Temporary);
        let b = probe("b", &log);
        let (ha, hb) = (a.handle(), b.handle());
        let root = SupervisorSpec::new("root")
            .strategy(OneForAll)
            .intensity(5, Duration::from_secs(5))
            .child(a)
            .child(b)
            .start_root();
        hb.tell(Fail(TestError::Glitch)).unwrap();
        until(|| hb.starts() == 2 && hb.is_running()).await;
        assert!(!ha.is_running());
        assert_eq!(ha.starts(), 1);
        assert_eq!(child_ids(&root.handle()).await, ["b"]);
        root.shutdown().await;
    });
}

#[test]
fn temporary_child_with_a_fault_is_stopped_not_restarted() {
    #[derive(Clone)]
    struct RestartAll;
    impl Strategy for RestartAll {
        fn decide(&mut self, _: &Failure<'_>) -> Directive {
            Directive::restart(Scope::Child)
        }
    }
    let log = Log::default();
    run(async move {
        let t = probe("t", &log).restart(Restart::Temporary);
        let ht = t.handle();
        let root = SupervisorSpec::new("root")
            .strategy(RestartAll)
            .intensity(5, Duration::from_secs(5))
            .child(t)
            .start_root();
        ht.tell(Fault(TestError::Glitch)).unwrap();
        until(|| !ht.is_running()).await;
        assert!(root.handle().which_children().await.unwrap().is_empty());
        assert_eq!(ht.starts(), 1);
        root.shutdown().await;
    });
}
