//! Restart intensity: 6 failures where 5 in 5 s are allowed make the
//! supervisor stop its children in reverse order and escalate to its parent.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use psvc::prelude::*;
use psvc::supervisor::EscalationCause;

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, ExitReason)>>>);

impl Strategy for Recorder {
    fn decide(&mut self, f: &Failure<'_>) -> Directive {
        self.0
            .lock()
            .unwrap()
            .push((f.child.id.clone(), f.reason.clone()));
        Directive::Stop
    }
}

#[test]
fn sixth_failure_in_window_escalates_to_parent() {
    let log = Log::default();
    let seen = Recorder::default();
    let seen2 = seen.clone();
    run_paused(async move {
        let (w1, w2, w3) = (probe("w1", &log), probe("w2", &log), probe("w3", &log));
        let (h1, h2, h3) = (w1.handle(), w2.handle(), w3.handle());
        let sub = SupervisorSpec::new("sub")
            .intensity(5, Duration::from_secs(5))
            .child(w1)
            .child(w2)
            .child(w3)
            .into_child();
        let hsub = sub.handle();
        let root = SupervisorSpec::new("root")
            .strategy(seen2)
            .child(sub)
            .start_root();

        for n in 1..=5u64 {
            h2.tell(Fail(TestError::Glitch)).unwrap();
            until(|| h2.starts() == n + 1).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(hsub.is_running(), "five restarts in 5 s are allowed");
        assert!(seen.0.lock().unwrap().is_empty());
        log.take();

        h2.tell(Fail(TestError::Glitch)).unwrap();
        until(|| !seen.0.lock().unwrap().is_empty()).await;
        // the subtree stopped in reverse order (w2 had already exited)
        assert_eq!(log.take(), ["stop:w2", "stop:w3", "stop:w1"]);
        assert!(!h1.is_running() && !h2.is_running() && !h3.is_running());
        assert!(!hsub.is_running());
        // the parent was told, with the cause
        let (child, reason) = seen.0.lock().unwrap()[0].clone();
        assert_eq!(child, "sub");
        let ExitReason::Escalated(esc) = reason else {
            panic!("expected escalation, got {reason}");
        };
        assert_eq!(
            esc.cause,
            EscalationCause::Intensity {
                max_restarts: 5,
                within: Duration::from_secs(5)
            }
        );
        assert_eq!(esc.child, "w2");
        root.shutdown().await;
    });
}

#[test]
fn failures_spread_beyond_the_window_do_not_escalate() {
    let log = Log::default();
    run_paused(async move {
        let w = probe("w", &log);
        let hw = w.handle();
        let root = SupervisorSpec::new("root")
            .intensity(1, Duration::from_secs(5))
            .child(w)
            .start_root();
        for n in 1..=4u64 {
            hw.tell(Fail(TestError::Glitch)).unwrap();
            until(|| hw.starts() == n + 1).await;
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
        assert!(root.exit_reason().is_none());
        root.shutdown().await;
    });
}

#[test]
fn root_escalation_is_visible_to_the_owner() {
    let log = Log::default();
    run(async move {
        let w = probe("w", &log);
        let hw = w.handle();
        let root = SupervisorSpec::new("root").child(w).start_root(); // OTP default: 1 in 5 s
        hw.tell(Fail(TestError::Glitch)).unwrap();
        until(|| hw.starts() == 2).await;
        hw.tell(Fail(TestError::Glitch)).unwrap();
        let reason = root.exited().await;
        assert!(matches!(reason, ExitReason::Escalated(_)), "{reason}");
    });
}
