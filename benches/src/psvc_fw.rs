//! psvc measurements, one function per scenario, mirroring the baseline
//! modules (`fw_actix`, `fw_tokio`, `fw_ractor`, `fw_kameo`).
//!
//! The actor is raw actix's own `Counter` (`fw_actix`): psvc children are
//! actix actors, so the two differ only in the framework around them.
//! Every actor here is a *supervised* child reached through a `ChildRef`
//! (the stable handle that survives restarts), on an `actix_rt::System`.
//! Each function verifies what it claims (messages processed, instance
//! generations, restart counts) and fails the worker on a mismatch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use psvc::supervisor::{
    AskError, ChildRef, ChildSpec, DynamicSupervisor, Restart, RootSupervisor, SupervisorSpec,
};
use tokio::sync::oneshot;

use crate::common::{
    BenchError, BenchResult, MAX_RETRIES, Outcome, Params, Sample, check_eq, err, heap_per,
    measure_ask, ns_per, time_ops, us_per,
};
use crate::fw_actix::{Counter, Generation, Get, Inc, PanicNow, StopSelf};

fn system_block_on<F: Future<Output = BenchResult>>(fut: F) -> BenchResult {
    actix_rt::System::new().block_on(fut)
}

fn ask_err(e: AskError) -> BenchError {
    err(format!("psvc ask: {e}"))
}

/// A root supervisor with one `Counter` child whose instances count their
/// generation (0 for the first).
fn one_child(capacity: usize) -> (RootSupervisor, ChildRef<Counter>, Arc<AtomicU64>) {
    let starts = Arc::new(AtomicU64::new(0));
    let s = starts.clone();
    let spec = ChildSpec::new("counter", move || {
        let mut counter = Counter::new();
        counter.generation = s.fetch_add(1, Ordering::Relaxed);
        counter
    })
    .mailbox_capacity(capacity);
    let handle = spec.handle();
    let root = SupervisorSpec::new("bench")
        .intensity(u32::MAX, Duration::from_secs(1))
        .child(spec)
        .start_root();
    (root, handle, starts)
}

/// `ChildRef::tell_wait` (bounded mailbox of 1024: waits when full) N times,
/// then one ask.
pub fn tell(p: &Params) -> BenchResult {
    system_block_on(async {
        let (root, child, _) = one_child(1024);
        for _ in 0..p.warmup {
            child
                .tell_wait(Inc)
                .await
                .map_err(|e| err(format!("psvc tell: {e}")))?;
        }
        check_eq(
            "psvc warmup count",
            child.ask(Get).await.map_err(ask_err)?,
            p.warmup,
        )?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            child
                .tell_wait(Inc)
                .await
                .map_err(|e| err(format!("psvc tell: {e}")))?;
        }
        let total = child.ask(Get).await.map_err(ask_err)?;
        let elapsed = t0.elapsed();
        check_eq("psvc processed count", total, p.warmup + p.n)?;
        root.kill();
        Ok(Outcome::Measured(Sample::new(
            ns_per(elapsed, p.n),
            "ChildRef::tell_wait, supervised child, bounded mailbox 1024 (backpressure)",
        )))
    })
}

/// `ChildRef::ask` round trips to a supervised child.
pub fn ask(p: &Params) -> BenchResult {
    system_block_on(async {
        let (root, child, _) = one_child(64);
        let child = &child;
        let sample = measure_ask(
            p.warmup,
            p.n,
            || async move { child.ask(Get).await.map_err(ask_err) },
            "ChildRef::ask, supervised child",
        )
        .await?;
        root.kill();
        Ok(Outcome::Measured(sample))
    })
}

/// `start_child` under a supervisor → first ask → `StopSelf` → the child's
/// `stopped()` hook fires (a temporary child: not restarted, removed).
pub fn spawn_stop(p: &Params) -> BenchResult {
    system_block_on(async {
        let root = SupervisorSpec::new("bench").start_root();
        let sup = root.handle();
        let next = AtomicU64::new(0);
        let once = async || -> Result<(), BenchError> {
            let (tx, rx) = oneshot::channel();
            let tx = std::sync::Mutex::new(Some(tx));
            let n = next.fetch_add(1, Ordering::Relaxed);
            let spec = ChildSpec::new(format!("c{n}"), move || {
                let mut c = Counter::new();
                c.stopped = tx.lock().ok().and_then(|mut t| t.take());
                c
            })
            .restart(Restart::Temporary);
            let child = sup
                .start_child(spec)
                .await
                .map_err(|e| err(format!("psvc start: {e}")))?;
            child.ask(Get).await.map_err(ask_err)?;
            child
                .tell(StopSelf)
                .map_err(|e| err(format!("psvc tell: {e}")))?;
            rx.await.map_err(|_| err("psvc: stopped hook never fired"))
        };
        let elapsed = time_ops(p.warmup, p.n, async |_| once().await).await?;
        let left = sup
            .which_children()
            .await
            .map_err(|e| err(format!("psvc: {e}")))?;
        check_eq("psvc children left", left.len() as u64, 0)?;
        root.kill();
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "SupervisorRef::start_child + ask + StopSelf + stopped() hook",
        )))
    })
}

fn restart(p: &Params, panic: bool) -> BenchResult {
    system_block_on(async {
        let (root, child, starts) = one_child(64);
        check_eq(
            "psvc first generation",
            child.ask(Generation).await.map_err(ask_err)?,
            0,
        )?;
        let mut retries = 0u64;
        let once = async |expected: u64| -> Result<(), BenchError> {
            if panic {
                // the caller of the lost message gets an error
                match child.ask(PanicNow).await {
                    Err(AskError::Lost(_)) => {}
                    other => return Err(err(format!("psvc: panic not reported: {other:?}"))),
                }
            } else {
                child
                    .tell(StopSelf)
                    .map_err(|e| err(format!("psvc tell: {e}")))?;
            }
            for _ in 0..MAX_RETRIES {
                match child.ask(Generation).await {
                    Ok(g) if g == expected => return Ok(()),
                    Ok(_) | Err(AskError::Lost(_) | AskError::NotRunning(_)) => {
                        retries += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(e) => return Err(ask_err(e)),
                }
            }
            Err(err("psvc: child never came back after restart"))
        };
        let elapsed = time_ops(p.warmup, p.n, once).await?;
        check_eq(
            "psvc instances started",
            starts.load(Ordering::Relaxed),
            p.warmup + p.n + 1,
        )?;
        let info = root
            .handle()
            .which_children()
            .await
            .map_err(|e| err(format!("psvc: {e}")))?;
        check_eq("psvc restarts counted", info[0].restarts, p.warmup + p.n)?;
        root.kill();
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            format!(
                "one_for_one restart (fresh instance from the factory) on {}; {retries} asks retried",
                if panic {
                    "panic (contained)"
                } else {
                    "ctx.stop()"
                }
            ),
        )))
    })
}

/// Stop-triggered restart.
pub fn restart_stop(p: &Params) -> BenchResult {
    restart(p, false)
}

/// Panic-triggered restart.
pub fn restart_panic(p: &Params) -> BenchResult {
    restart(p, true)
}

/// Idle supervised children (dynamic children of one spec), asked once each;
/// includes the supervisor's bookkeeping and the `ChildRef` of each child.
pub fn heap_idle(p: &Params) -> BenchResult {
    system_block_on(async {
        let n = usize::try_from(p.n).map_err(|e| err(format!("n: {e}")))?;
        let mut keep: Vec<ChildRef<Counter>> = Vec::with_capacity(n);
        let root = SupervisorSpec::new("bench").start_root();
        let pool = DynamicSupervisor::new(root.handle(), "c", |(): ()| Counter::new());
        let before = (p.allocated)();
        for _ in 0..n {
            keep.push(
                pool.spawn(())
                    .await
                    .map_err(|e| err(format!("psvc spawn: {e}")))?,
            );
        }
        for child in &keep {
            child.ask(Get).await.map_err(ask_err)?;
        }
        let after = (p.allocated)();
        root.kill();
        Ok(Outcome::Measured(Sample::new(
            heap_per(before, after, p.n),
            "supervised (DynamicSupervisor) children, mailbox 64, incl. supervisor bookkeeping",
        )))
    })
}
