//! A panic in a supervised actor's handler is a crash of that actor only:
//! the caller gets an error, the supervisor restarts it, everything else lives.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

#[test]
fn panic_is_contained_reported_and_restarted() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let a = probe("a", &log);
        let b = probe("b", &log);
        let (ha, hb) = (a.handle(), b.handle());
        let root = SupervisorSpec::new("root")
            .intensity(10, std::time::Duration::from_secs(1))
            .child(a)
            .child(b)
            .start_root();
        assert_eq!(ha.ask(Ping).await.unwrap(), 1);
        assert_eq!(hb.ask(Ping).await.unwrap(), 1);

        // the pending caller gets an error, not a hang
        let err = ha
            .ask(Crash("expected: boom in handler"))
            .await
            .unwrap_err();
        assert!(matches!(err, AskError::Lost(_)), "{err:?}");

        // the restarted instance answers with fresh state; the sibling kept its own
        until(|| ha.starts() == 2).await;
        assert_eq!(ha.ask(Ping).await.unwrap(), 1);
        assert_eq!(hb.ask(Ping).await.unwrap(), 2);

        let children = root.handle().which_children().await.unwrap();
        assert_eq!(children[0].restarts, 1);
        assert_eq!(children[1].restarts, 0);
        assert_eq!(log.count("start:a"), 2);
        assert_eq!(log.count("start:b"), 1);
        let reason = root.shutdown().await;
        assert!(reason.is_normal(), "{reason}");
    });
}

#[test]
fn panic_message_reaches_the_strategy() {
    quiet_panics();
    #[derive(Clone)]
    struct Record(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl Strategy for Record {
        fn decide(&mut self, f: &Failure<'_>) -> Directive {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}:{}", f.child.id, f.reason));
            Directive::Stop
        }
    }
    let seen = Record(Default::default());
    let seen2 = seen.clone();
    let log = Log::default();
    run(async move {
        let a = probe("a", &log);
        let ha = a.handle();
        let root = SupervisorSpec::new("root")
            .strategy(seen2)
            .child(a)
            .start_root();
        let _ = ha.ask(Crash("expected: sensor overflow")).await;
        until(|| !seen.0.lock().unwrap().is_empty()).await;
        assert_eq!(
            seen.0.lock().unwrap()[0],
            "a:panic: expected: sensor overflow"
        );
        // Directive::Stop leaves it down
        assert!(!ha.is_running());
        root.shutdown().await;
    });
}

#[test]
fn callers_can_wait_for_the_restarted_instance() {
    quiet_panics();
    let log = Log::default();
    run_paused(async move {
        let a = probe("a", &log);
        let ha = a.handle();
        let root = SupervisorSpec::new("root")
            .backoff(Backoff::exponential(
                std::time::Duration::from_millis(50),
                std::time::Duration::from_secs(1),
            ))
            .child(a)
            .start_root();
        let _ = ha.ask(Crash("expected: crash during work")).await;
        // the restart is 50 ms away: the child is not running now
        assert!(matches!(ha.ask(Ping).await, Err(AskError::NotRunning(_))));
        let t0 = tokio::time::Instant::now();
        ha.wait_running(std::time::Duration::from_secs(1))
            .await
            .unwrap();
        assert!(t0.elapsed() <= std::time::Duration::from_millis(51));
        assert_eq!(ha.ask(Ping).await.unwrap(), 1);
        // and a child that stays down times out
        root.handle().stop_child("a").await.unwrap();
        let err = ha
            .wait_running(std::time::Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, AskError::Timeout(..)), "{err}");
        root.shutdown().await;
    });
}
