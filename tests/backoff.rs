//! Exponential backoff between restarts: the delays follow the configured
//! schedule within 5 % or 1 ms (paused time), jitter stays within its
//! fraction, and a stable run resets the schedule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::*;
use psvc::prelude::*;
use tokio::time::Instant;

/// Records the instant each instance starts.
struct Timed(Arc<Mutex<Vec<Instant>>>);

impl Actor for Timed {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(Instant::now());
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Die;

impl Handler<Die> for Timed {
    type Result = ();
    fn handle(&mut self, _: Die, ctx: &mut Context<Self>) {
        ctx.fail(TestError::Glitch);
    }
}

fn within(actual: Duration, expected: Duration) -> bool {
    let tolerance = expected.mul_f64(0.05).max(Duration::from_millis(1));
    actual.abs_diff(expected) <= tolerance
}

/// Fails the child `n` times; returns the delay before each restart.
async fn delays(h: &ChildRef<Timed>, starts: &Arc<Mutex<Vec<Instant>>>, n: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        let before = starts.lock().unwrap().len();
        let failed_at = Instant::now();
        h.tell(Die).unwrap();
        until(|| starts.lock().unwrap().len() == before + 1).await;
        out.push(starts.lock().unwrap()[before] - failed_at);
    }
    out
}

fn timed_root(
    backoff: Backoff,
) -> (
    ChildRef<Timed>,
    Arc<Mutex<Vec<Instant>>>,
    psvc::supervisor::RootSupervisor,
) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = starts.clone();
    let spec = ChildSpec::new("timed", move || Timed(s.clone()));
    let h = spec.handle();
    let root = SupervisorSpec::new("root")
        .intensity(100, Duration::from_secs(60))
        .backoff(backoff)
        .jitter_seed(42)
        .child(spec)
        .start_root();
    (h, starts, root)
}

#[test]
fn exponential_schedule_is_followed() {
    run_paused(async {
        let (h, starts, root) = timed_root(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(160),
        ));
        until(|| starts.lock().unwrap().len() == 1).await;
        let got = delays(&h, &starts, 7).await;
        let want = [10, 20, 40, 80, 160, 160, 160].map(Duration::from_millis);
        for (g, w) in got.iter().zip(want) {
            assert!(within(*g, w), "delay {g:?}, expected {w:?} (all: {got:?})");
        }
        root.shutdown().await;
    });
}

#[test]
fn jitter_adds_at_most_its_fraction() {
    run_paused(async {
        let (h, starts, root) = timed_root(
            Backoff::exponential(Duration::from_millis(100), Duration::from_secs(2)).jitter(0.2),
        );
        until(|| starts.lock().unwrap().len() == 1).await;
        let got = delays(&h, &starts, 5).await;
        for (n, g) in got.iter().enumerate() {
            let base = Duration::from_millis(100 * (1 << n));
            assert!(
                *g >= base && *g <= base.mul_f64(1.2) + Duration::from_millis(1),
                "delay {n}: {g:?} not in [{base:?}, 1.2 x {base:?}]"
            );
        }
        assert!(got.iter().enumerate().any(|(n, g)| *g > Duration::from_millis(100 * (1 << n)) + Duration::from_millis(1)), "jitter had no effect: {got:?}");
        root.shutdown().await;
    });
}

#[test]
fn stable_run_resets_the_schedule() {
    run_paused(async {
        let (h, starts, root) = timed_root(
            Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1))
                .reset_after(Duration::from_secs(1)),
        );
        until(|| starts.lock().unwrap().len() == 1).await;
        let first = delays(&h, &starts, 3).await;
        assert!(within(first[2], Duration::from_millis(40)), "{first:?}");
        tokio::time::sleep(Duration::from_secs(2)).await; // stable
        let after = delays(&h, &starts, 2).await;
        assert!(within(after[0], Duration::from_millis(10)), "{after:?}");
        assert!(within(after[1], Duration::from_millis(20)), "{after:?}");
        root.shutdown().await;
    });
}

#[test]
fn stopping_one_child_keeps_the_rest_of_a_pending_group_restart() {
    let log = Log::default();
    run_paused(async move {
        let (a, b, c) = (probe("a", &log), probe("b", &log), probe("c", &log));
        let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
        let root = SupervisorSpec::new("root")
            .strategy(OneForAll)
            .intensity(5, Duration::from_secs(5))
            .backoff(Backoff::exponential(
                Duration::from_millis(100),
                Duration::from_secs(1),
            ))
            .child(a)
            .child(b)
            .child(c)
            .start_root();
        let sup = root.handle();
        ha.tell(Fail(TestError::Glitch)).unwrap();
        until(|| !hb.is_running() && !hc.is_running()).await;
        let states: Vec<_> = sup
            .which_children()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.state)
            .collect();
        assert_eq!(states, [psvc::supervisor::ChildState::Restarting; 3]);
        // during the backoff, b is stopped on request
        sup.stop_child("b").await.unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            ha.is_running() && hc.is_running(),
            "a and c restarted after the delay"
        );
        assert!(!hb.is_running(), "b stays stopped");
        assert_eq!((ha.starts(), hb.starts(), hc.starts()), (2, 1, 2));
        root.shutdown().await;
    });
}

#[test]
fn backoff_keeps_growing_while_restarts_fail() {
    #[derive(Debug, thiserror::Error)]
    #[error("database down")]
    struct Down;
    run_paused(async {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        // runs once (stably, for a long time), then can never start again
        let spec = ChildSpec::try_new("db-client", move || {
            let mut calls = c.lock().unwrap();
            calls.push(Instant::now());
            if calls.len() == 1 {
                Ok(Timed(Arc::new(Mutex::new(Vec::new()))))
            } else {
                Err(Down)
            }
        });
        let h = spec.handle();
        let root = SupervisorSpec::new("root")
            .intensity(100, Duration::from_secs(600))
            .backoff(
                Backoff::exponential(Duration::from_millis(10), Duration::from_secs(10))
                    .reset_after(Duration::from_secs(1)),
            )
            .child(spec)
            .start_root();
        tokio::time::sleep(Duration::from_secs(5)).await; // a stable run
        h.tell(Die).unwrap();
        until(|| calls.lock().unwrap().len() >= 6).await;
        let calls = calls.lock().unwrap().clone();
        let gaps: Vec<Duration> = calls.windows(2).skip(1).map(|w| w[1] - w[0]).collect();
        // after the stable run the first retry waits 10 ms, then 20, 40, 80 …
        for (n, gap) in gaps.iter().enumerate().take(4) {
            let want = Duration::from_millis(20 << n);
            assert!(
                within(*gap, want),
                "retry {n}: {gap:?}, expected {want:?} ({gaps:?})"
            );
        }
        root.kill();
    });
}

#[test]
fn a_child_with_its_own_backoff_follows_it_and_its_siblings_the_supervisors() {
    run_paused(async {
        let own = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Mutex::new(Vec::new()));
        let (o, s) = (own.clone(), shared.clone());
        let slow = ChildSpec::new("slow", move || Timed(o.clone())).backoff(Backoff::exponential(
            Duration::from_millis(100),
            Duration::from_millis(400),
        ));
        let plain = ChildSpec::new("plain", move || Timed(s.clone()));
        let (slow_h, plain_h) = (slow.handle(), plain.handle());
        let root = SupervisorSpec::new("root")
            .intensity(100, Duration::from_secs(60))
            .backoff(Backoff::exponential(
                Duration::from_millis(10),
                Duration::from_millis(40),
            ))
            .child(slow)
            .child(plain)
            .start_root();
        until(|| own.lock().unwrap().len() == 1 && shared.lock().unwrap().len() == 1).await;
        let got = delays(&slow_h, &own, 4).await;
        let want = [100, 200, 400, 400].map(Duration::from_millis);
        for (g, w) in got.iter().zip(want) {
            assert!(within(*g, w), "own backoff: got {got:?}, want {want:?}");
        }
        let got = delays(&plain_h, &shared, 4).await;
        let want = [10, 20, 40, 40].map(Duration::from_millis);
        for (g, w) in got.iter().zip(want) {
            assert!(
                within(*g, w),
                "supervisor's backoff: got {got:?}, want {want:?}"
            );
        }
        root.shutdown().await;
    });
}
