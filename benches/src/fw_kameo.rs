//! kameo 0.22.2 (default features: macros, tracing) on a current_thread tokio runtime, default
//! bounded mailbox of 64 everywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::{Infallible, SendError};
use kameo::message::{Context, Message};
use kameo::supervision::RestartPolicy;

use crate::common::{
    BenchError, BenchResult, INTENTIONAL_PANIC, MAX_RETRIES, Outcome, Params, Sample, check_eq,
    err, heap_per, measure_ask, ns_per, time_ops, tokio_current_thread, us_per,
};

/// The measured actor. Its generation is the number of `on_start` calls before it (shared
/// counter), so a restarted instance is distinguishable from the old one.
struct Counter {
    count: u64,
    generation: u64,
}

impl Actor for Counter {
    /// Shared `on_start` counter.
    type Args = Arc<AtomicU64>;
    type Error = Infallible;

    async fn on_start(starts: Self::Args, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        let generation = starts.fetch_add(1, Ordering::Relaxed);
        Ok(Counter {
            count: 0,
            generation,
        })
    }
}

struct Inc;
struct Get;
struct Generation;
struct StopSelf;
struct PanicNow;

impl Message<Inc> for Counter {
    type Reply = ();
    async fn handle(&mut self, _msg: Inc, _ctx: &mut Context<Self, ()>) {
        self.count = self.count.wrapping_add(1);
    }
}

impl Message<Get> for Counter {
    type Reply = u64;
    async fn handle(&mut self, _msg: Get, _ctx: &mut Context<Self, u64>) -> u64 {
        self.count
    }
}

impl Message<Generation> for Counter {
    type Reply = u64;
    async fn handle(&mut self, _msg: Generation, _ctx: &mut Context<Self, u64>) -> u64 {
        self.generation
    }
}

impl Message<StopSelf> for Counter {
    type Reply = ();
    async fn handle(&mut self, _msg: StopSelf, ctx: &mut Context<Self, ()>) {
        ctx.stop();
    }
}

impl Message<PanicNow> for Counter {
    type Reply = ();
    async fn handle(&mut self, _msg: PanicNow, _ctx: &mut Context<Self, ()>) {
        std::panic::panic_any(INTENTIONAL_PANIC)
    }
}

/// Supervisor with the default strategy (OneForOne).
struct Sup;

impl Actor for Sup {
    type Args = ();
    type Error = Infallible;

    async fn on_start(_args: (), _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Sup)
    }
}

async fn get(actor: &ActorRef<Counter>) -> Result<u64, BenchError> {
    actor
        .ask(Get)
        .await
        .map_err(|e| err(format!("kameo ask: {e}")))
}

/// `tell(..).await` into the default bounded(64) mailbox (back-pressured), then one ask.
pub fn tell(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let actor = Counter::spawn(Arc::new(AtomicU64::new(0)));
        let tell = async |actor: &ActorRef<Counter>| {
            actor
                .tell(Inc)
                .await
                .map_err(|e| err(format!("kameo tell: {e}")))
        };
        for _ in 0..p.warmup {
            tell(&actor).await?;
        }
        check_eq("kameo warmup count", get(&actor).await?, p.warmup)?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            tell(&actor).await?;
        }
        let total = get(&actor).await?;
        let elapsed = t0.elapsed();
        check_eq("kameo processed count", total, p.warmup + p.n)?;
        actor.kill();
        Ok(Outcome::Measured(Sample::new(
            ns_per(elapsed, p.n),
            "tell().await, default bounded(64) mailbox",
        )))
    })
}

/// `ask(..).await` round trips.
pub fn ask(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let actor = Counter::spawn(Arc::new(AtomicU64::new(0)));
        let a = &actor;
        let sample = measure_ask(
            p.warmup,
            p.n,
            || async move { get(a).await },
            "ask().await, bounded(64)",
        )
        .await?;
        actor.kill();
        Ok(Outcome::Measured(sample))
    })
}

/// `spawn` → `ask` → `stop_gracefully` → `wait_for_shutdown`.
pub fn spawn_stop(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let starts = Arc::new(AtomicU64::new(0));
        let once = || async {
            let actor = Counter::spawn(starts.clone());
            get(&actor).await?;
            actor
                .stop_gracefully()
                .await
                .map_err(|e| err(format!("kameo stop: {e}")))?;
            actor.wait_for_shutdown().await;
            Ok::<(), BenchError>(())
        };
        let elapsed = time_ops(p.warmup, p.n, async |_| once().await).await?;
        check_eq(
            "kameo on_start calls",
            starts.load(Ordering::Relaxed),
            p.warmup + p.n,
        )?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "spawn + ask + stop_gracefully + wait_for_shutdown",
        )))
    })
}

/// Built-in supervision: child supervised with `RestartPolicy::Permanent` (restarts on normal
/// stop and on panic), restart limit effectively unlimited. The `ActorRef` survives restarts
/// (the mailbox is reused); asks bounced with `ActorRestarting` are retried and counted.
fn restart(p: &Params, panic: bool) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let starts = Arc::new(AtomicU64::new(0));
        let sup = Sup::spawn(());
        let child = Counter::supervise(&sup, starts.clone())
            .restart_policy(RestartPolicy::Permanent)
            .restart_limit(u32::MAX, Duration::from_secs(1))
            .spawn()
            .await;
        // Messages buffered while an actor is still starting are dropped if one of them stops it,
        // so let the first instance finish starting before the first StopSelf.
        child.wait_for_startup().await;
        let g0 = child
            .ask(Generation)
            .await
            .map_err(|e| err(format!("kameo ask: {e}")))?;
        check_eq("kameo first generation", g0, 0)?;
        let mut retries = 0u64;
        let once = async |expected: u64| -> Result<(), BenchError> {
            let sent = if panic {
                child.tell(PanicNow).await.map_err(|e| e.to_string())
            } else {
                child.tell(StopSelf).await.map_err(|e| e.to_string())
            };
            sent.map_err(|e| err(format!("kameo tell: {e}")))?;
            for _ in 0..MAX_RETRIES {
                match child.ask(Generation).await {
                    Ok(g) => return check_eq("kameo generation after restart", g, expected),
                    Err(SendError::ActorRestarting(_) | SendError::ActorNotRunning(_)) => {
                        retries += 1;
                        tokio::task::yield_now().await;
                    }
                    Err(e) => return Err(err(format!("kameo ask: {e}"))),
                }
            }
            Err(err("kameo: child never came back after restart"))
        };
        let elapsed = time_ops(p.warmup, p.n, once).await?;
        check_eq(
            "kameo child on_start calls",
            starts.load(Ordering::Relaxed),
            p.warmup + p.n + 1,
        )?;
        sup.kill();
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            format!(
                "built-in supervise(Permanent) restart on {}; {retries} asks retried",
                if panic { "panic" } else { "ctx.stop()" }
            ),
        )))
    })
}

/// Stop-triggered restart (kameo `RestartPolicy::Permanent` restarts on normal exit).
pub fn restart_stop(p: &Params) -> BenchResult {
    restart(p, false)
}

/// Panic-triggered restart.
pub fn restart_panic(p: &Params) -> BenchResult {
    restart(p, true)
}

/// Idle actors from `spawn` (bounded 64), asked once each.
pub fn heap_idle(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let n = usize::try_from(p.n).map_err(|e| err(format!("n: {e}")))?;
        let starts = Arc::new(AtomicU64::new(0));
        let mut keep: Vec<ActorRef<Counter>> = Vec::with_capacity(n);
        let before = (p.allocated)();
        for _ in 0..n {
            keep.push(Counter::spawn(starts.clone()));
        }
        for actor in &keep {
            get(actor).await?;
        }
        let after = (p.allocated)();
        Ok(Outcome::Measured(Sample::new(
            heap_per(before, after, p.n),
            "spawn (unsupervised), bounded(64)",
        )))
    })
}
