//! Bounded mailboxes: fire-and-forget sends cannot grow a mailbox past its
//! capacity. `tell` applies the child's overflow policy, `tell_wait` waits for
//! space, and nothing is lost silently.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

const CAPACITY: usize = 8;

/// Sends `n` tells without yielding (so the actor cannot drain in between).
fn burst(h: &ChildRef<Probe>, n: usize) -> (usize, usize) {
    let (mut ok, mut full) = (0, 0);
    for _ in 0..n {
        match h.tell(Ping) {
            Ok(()) => ok += 1,
            Err(SendError::Full(id, Ping)) => {
                assert_eq!(&*id, "p");
                full += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    (ok, full)
}

#[test]
fn reject_hands_the_message_back() {
    let log = Log::default();
    run(async move {
        let p = probe("p", &log).mailbox_capacity(CAPACITY);
        let h = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        let (ok, full) = burst(&h, 100);
        assert!(
            ok <= CAPACITY + 1,
            "queued {ok} past a capacity of {CAPACITY}"
        );
        assert_eq!(ok + full, 100);
        // exactly the accepted messages were handled
        assert_eq!(h.ask(Ping).await.unwrap(), ok as u64 + 1);
        assert_eq!(h.dropped(), 0);
        root.shutdown().await;
    });
}

#[test]
fn drop_newest_counts_what_it_drops() {
    let log = Log::default();
    run(async move {
        let p = probe("p", &log)
            .mailbox_capacity(CAPACITY)
            .overflow(Overflow::DropNewest);
        let h = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        let (ok, full) = burst(&h, 100);
        assert_eq!((ok, full), (100, 0), "the policy absorbs the overflow");
        let handled = h.ask(Ping).await.unwrap() - 1;
        assert!(handled <= CAPACITY as u64 + 1);
        assert_eq!(
            handled + h.dropped(),
            100,
            "every message is handled or counted"
        );
        root.shutdown().await;
    });
}

#[test]
fn tell_wait_applies_backpressure_without_loss() {
    let log = Log::default();
    run(async move {
        let p = probe("p", &log).mailbox_capacity(CAPACITY);
        let h = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        for _ in 0..10_000 {
            h.tell_wait(Ping).await.unwrap();
        }
        assert_eq!(h.ask(Ping).await.unwrap(), 10_001);
        root.shutdown().await;
    });
}

#[test]
fn sends_to_a_stopped_child_fail_clearly() {
    let log = Log::default();
    run(async move {
        let p = probe("p", &log).restart(Restart::Temporary);
        let h = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        h.tell(StopSelf).unwrap();
        until(|| !h.is_running()).await;
        let err = h.tell(Ping).unwrap_err();
        assert!(matches!(err, SendError::NotRunning(..)));
        assert_eq!(err.to_string(), "child `p` is not running");
        assert_eq!(
            h.ask(Ping).await.unwrap_err().to_string(),
            "child `p` is not running"
        );
        root.shutdown().await;
    });
}
