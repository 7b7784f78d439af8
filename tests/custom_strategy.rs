//! A user-defined strategy has the built-ins' power: restart with a cool-down
//! on one error kind, escalate on another, resume a live child after a fault.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use psvc::prelude::*;
use psvc::supervisor::EscalationCause;

/// Glitches: restart after a 200 ms cool-down. Fatal errors: escalate.
/// Faults from live children: resume.
#[derive(Clone)]
struct Hardware;

impl Strategy for Hardware {
    fn decide(&mut self, f: &Failure<'_>) -> Directive {
        if f.alive {
            return Directive::Resume;
        }
        match f.reason.downcast_error::<TestError>() {
            Some(TestError::Fatal) => Directive::Escalate,
            _ => Directive::restart_after(Scope::Child, Duration::from_millis(200)),
        }
    }
}

#[test]
fn cool_down_then_escalate_by_error_kind() {
    let log = Log::default();
    run_paused(async move {
        let dev = probe("device", &log);
        let other = probe("other", &log);
        let (hd, ho) = (dev.handle(), other.handle());
        let root = SupervisorSpec::new("hw")
            .strategy(Hardware)
            .intensity(10, Duration::from_secs(1))
            .child(dev)
            .child(other)
            .start_root();
        assert_eq!(hd.ask(Ping).await.unwrap(), 1);

        // a fault from a live child is resumed: same instance, same state
        hd.tell(Fault(TestError::Glitch)).unwrap();
        assert_eq!(hd.ask(Ping).await.unwrap(), 2);
        assert_eq!(hd.starts(), 1);

        // a glitch restarts after exactly the cool-down
        let t0 = tokio::time::Instant::now();
        hd.tell(Fail(TestError::Glitch)).unwrap();
        until(|| hd.starts() == 2).await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited <= Duration::from_millis(201),
            "{waited:?}"
        );
        let info = root.handle().which_children().await.unwrap();
        assert_eq!(info[0].restarts, 1);

        // a fatal error escalates: the tree stops in reverse order
        log.take();
        hd.tell(Fail(TestError::Fatal)).unwrap();
        let reason = root.exited().await;
        let ExitReason::Escalated(esc) = reason else {
            panic!("expected an escalation, got {reason}");
        };
        assert_eq!(esc.cause, EscalationCause::Strategy);
        assert_eq!(esc.child, "device");
        assert_eq!(
            esc.reason.downcast_error::<TestError>(),
            Some(&TestError::Fatal)
        );
        assert_eq!(log.take(), ["stop:device", "stop:other"]);
        assert!(!ho.is_running());
    });
}

/// Live faults: a glitch restarts the faulty child, a fatal fault stops it.
#[derive(Clone)]
struct FaultPolicy;

impl Strategy for FaultPolicy {
    fn decide(&mut self, f: &Failure<'_>) -> Directive {
        assert!(f.alive, "only faults in this test");
        assert_eq!(f.child_count(), 2);
        assert_eq!(
            f.children().map(|c| c.id).collect::<Vec<_>>(),
            ["device", "other"]
        );
        match f.reason.downcast_error::<TestError>() {
            Some(TestError::Fatal) => Directive::Stop,
            _ => Directive::restart(Scope::Child),
        }
    }
}

#[test]
fn faults_of_live_children_can_restart_or_stop_them() {
    let log = Log::default();
    run(async move {
        let dev = probe("device", &log);
        let hd = dev.handle();
        let root = SupervisorSpec::new("hw")
            .strategy(FaultPolicy)
            .intensity(10, Duration::from_secs(1))
            .child(dev)
            .child(probe("other", &log))
            .start_root();
        assert_eq!(hd.ask(Ping).await.unwrap(), 1);
        hd.tell(Fault(TestError::Glitch)).unwrap();
        until(|| hd.starts() == 2 && hd.is_running()).await;
        assert_eq!(hd.ask(Ping).await.unwrap(), 1, "restarted with fresh state");
        assert_eq!(
            log.count("stop:device"),
            1,
            "stopped gracefully before the restart"
        );

        hd.tell(Fault(TestError::Fatal)).unwrap();
        until(|| !hd.is_running()).await;
        let info = root.handle().which_children().await.unwrap();
        assert_eq!(info[0].state, psvc::supervisor::ChildState::Stopped);
        assert_eq!(hd.starts(), 2);
        root.shutdown().await;
    });
}
