//! Children that cannot start: a failing or panicking factory is a start
//! error (the supervisor lives), a nested supervisor whose child cannot start
//! does not start either, and a child that never comes back makes its
//! supervisor escalate (without recursing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use psvc::prelude::*;
use psvc::supervisor::{Error, EscalationCause};

fn panicking_factory(id: &str) -> ChildSpec<Probe> {
    ChildSpec::new(id, || -> Probe { panic!("expected: factory panicked") })
}

#[test]
fn panicking_factory_is_a_start_error() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let p = probe("p", &log);
        let hp = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        let err = root
            .handle()
            .start_child(panicking_factory("bad"))
            .await
            .unwrap_err();
        let Error::StartFailed { id, reason } = err else {
            panic!("expected StartFailed");
        };
        assert_eq!(id, "bad");
        assert_eq!(reason.panic_message(), Some("expected: factory panicked"));
        // the supervisor and its other child live on
        assert_eq!(hp.ask(Ping).await.unwrap(), 1);
        assert_eq!(root.handle().which_children().await.unwrap().len(), 1);
        root.shutdown().await;
    });
}

#[test]
fn nested_supervisor_with_a_failing_child_does_not_start() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let root = SupervisorSpec::new("root").start_root();
        let nested = SupervisorSpec::new("nested")
            .child(probe("first", &log))
            .child(panicking_factory("second"))
            .into_child();
        let nested_handle = nested.handle();
        let err = root.handle().start_child(nested).await.unwrap_err();
        // it never counted as started, and was never reachable
        assert_eq!(nested_handle.starts(), 0);
        assert!(!nested_handle.is_running());
        let Error::StartFailed { id, reason } = err else {
            panic!("expected StartFailed");
        };
        assert_eq!(id, "nested");
        let ExitReason::Escalated(esc) = reason else {
            panic!("expected an escalation");
        };
        assert_eq!(esc.cause, EscalationCause::StartFailed);
        assert_eq!(esc.child, "second");
        // `first` was created but never ran, and the root is untouched
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(log.count("start:first"), 0);
        assert!(root.exit_reason().is_none());
        assert!(root.handle().which_children().await.unwrap().is_empty());
        root.shutdown().await;
    });
}

#[test]
fn root_with_a_failing_static_child_reports_it() {
    quiet_panics();
    run(async {
        let root = SupervisorSpec::new("root")
            .child(panicking_factory("bad"))
            .start_root();
        let reason = root.exited().await;
        let ExitReason::Escalated(esc) = reason else {
            panic!("expected an escalation, got {reason}");
        };
        assert_eq!(esc.cause, EscalationCause::StartFailed);
    });
}

#[test]
fn child_that_cannot_restart_escalates_without_recursion() {
    #[derive(Debug, thiserror::Error)]
    #[error("device gone")]
    struct Gone;
    let log = Log::default();
    run(async move {
        let made = Arc::new(AtomicU32::new(0));
        let (m, l) = (made.clone(), log.clone());
        // starts once, then its factory always fails
        let spec = ChildSpec::try_new("flaky", move || {
            if m.fetch_add(1, Ordering::Relaxed) == 0 {
                Ok(Probe {
                    id: "flaky".into(),
                    log: l.clone(),
                    ignore_stop: false,
                    count: 0,
                })
            } else {
                Err(Gone)
            }
        });
        let h = spec.handle();
        let root = SupervisorSpec::new("root")
            .intensity(5_000, Duration::from_secs(60))
            .child(spec)
            .start_root();
        h.tell(Fail(TestError::Glitch)).unwrap();
        let reason = root.exited().await;
        let ExitReason::Escalated(esc) = reason else {
            panic!("expected an escalation, got {reason}");
        };
        assert!(matches!(
            esc.cause,
            EscalationCause::Intensity {
                max_restarts: 5_000,
                ..
            }
        ));
        assert_eq!(esc.reason.to_string(), "error: device gone");
        assert_eq!(
            made.load(Ordering::Relaxed),
            5_001,
            "one start + 5,000 failed restarts"
        );
    });
}
