//! Raw actix 0.13.5 baselines on an `actix_rt::System` (single thread).
//!
//! The `tell` baseline is actix's bounded send, `Addr::send(..).await` into a mailbox of
//! 1,024, the operation psvc's bounded `tell_wait` is judged against. Raw actix's usual
//! `Addr::do_send` (which the workspace's clippy.toml forbids for psvc code because it ignores
//! mailbox capacity) is measured beside it and reported for information only.
#![allow(
    clippy::disallowed_methods,
    reason = "raw-actix baseline: do_send is reported beside the bounded send, for information"
)]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use actix::{Actor, ActorContext, Context, Handler, Message, Supervised, Supervisor};
use tokio::sync::oneshot;

use crate::common::{
    BenchError, BenchResult, Outcome, Params, Sample, check_eq, err, heap_per, measure_ask, ns_per,
    time_ops, us_per,
};

/// The counter actor, shared with `psvc_fw`: psvc children are actix actors,
/// so both measure the framework around the very same actor.
pub(crate) struct Counter {
    pub(crate) count: u64,
    pub(crate) generation: u64,
    /// Restarts seen by `Supervised::restarting`, shared with the driver for verification.
    restarts: Option<Rc<Cell<u64>>>,
    /// Fired from `stopped()` so the driver can observe the stop.
    pub(crate) stopped: Option<oneshot::Sender<()>>,
}

impl Counter {
    pub(crate) fn new() -> Self {
        Self {
            count: 0,
            generation: 0,
            restarts: None,
            stopped: None,
        }
    }
}

impl Actor for Counter {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(tx) = self.stopped.take() {
            let _ = tx.send(());
        }
    }
}

impl Supervised for Counter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.generation += 1;
        if let Some(r) = &self.restarts {
            r.set(r.get() + 1);
        }
    }
}

pub(crate) struct Inc;
impl Message for Inc {
    type Result = ();
}

pub(crate) struct Get;
impl Message for Get {
    type Result = u64;
}

pub(crate) struct Generation;
impl Message for Generation {
    type Result = u64;
}

pub(crate) struct StopSelf;
impl Message for StopSelf {
    type Result = ();
}

impl Handler<Inc> for Counter {
    type Result = ();
    fn handle(&mut self, _msg: Inc, _ctx: &mut Self::Context) {
        self.count = self.count.wrapping_add(1);
    }
}

impl Handler<Get> for Counter {
    type Result = u64;
    fn handle(&mut self, _msg: Get, _ctx: &mut Self::Context) -> u64 {
        self.count
    }
}

impl Handler<Generation> for Counter {
    type Result = u64;
    fn handle(&mut self, _msg: Generation, _ctx: &mut Self::Context) -> u64 {
        self.generation
    }
}

/// Panics in the handler (psvc's panic restart; raw actix cannot recover from it).
pub(crate) struct PanicNow;
impl Message for PanicNow {
    type Result = ();
}

impl Handler<PanicNow> for Counter {
    type Result = ();
    fn handle(&mut self, _msg: PanicNow, _ctx: &mut Self::Context) {
        std::panic::panic_any(crate::common::INTENTIONAL_PANIC);
    }
}

impl Handler<StopSelf> for Counter {
    type Result = ();
    fn handle(&mut self, _msg: StopSelf, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

fn system_block_on<F: Future<Output = BenchResult>>(fut: F) -> BenchResult {
    actix_rt::System::new().block_on(fut)
}

async fn get(addr: &actix::Addr<Counter>) -> Result<u64, BenchError> {
    addr.send(Get).await.map_err(|e| err(format!("actix: {e}")))
}

/// Mailbox capacity of the bounded `tell` baseline (as psvc's and tokio's).
const TELL_CAPACITY: usize = 1024;

/// The bounded baseline: `send(..).await` into a mailbox of `TELL_CAPACITY` N times, then
/// one ask. Beside it, for information only: `do_send` (unbounded: bypasses the mailbox
/// capacity) N times, then one ask, on a second actor in the same process.
pub fn tell(p: &Params) -> BenchResult {
    system_block_on(async {
        let bounded = Counter::create(|ctx| {
            ctx.set_mailbox_capacity(TELL_CAPACITY);
            Counter::new()
        });
        let send = async |addr: &actix::Addr<Counter>| {
            addr.send(Inc)
                .await
                .map_err(|e| err(format!("actix send: {e}")))
        };
        for _ in 0..p.warmup {
            send(&bounded).await?;
        }
        check_eq("actix send warmup count", get(&bounded).await?, p.warmup)?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            send(&bounded).await?;
        }
        let total = get(&bounded).await?;
        let elapsed = t0.elapsed();
        check_eq("actix send processed count", total, p.warmup + p.n)?;

        let unbounded = Counter::new().start();
        for _ in 0..p.warmup {
            unbounded.do_send(Inc);
        }
        check_eq(
            "actix do_send warmup count",
            get(&unbounded).await?,
            p.warmup,
        )?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            unbounded.do_send(Inc);
        }
        let total = get(&unbounded).await?;
        let unbounded_elapsed = t0.elapsed();
        check_eq("actix do_send processed count", total, p.warmup + p.n)?;
        Ok(Outcome::Measured(
            Sample::new(
                ns_per(elapsed, p.n),
                "send().await, bounded mailbox 1024 (waits for room and for the handler's \
                 reply); unbounded row: do_send (ignores mailbox capacity), information only",
            )
            .with_unbounded(ns_per(unbounded_elapsed, p.n)),
        ))
    })
}

/// `Addr::send(..).await` round trips.
pub fn ask(p: &Params) -> BenchResult {
    system_block_on(async {
        let addr = Counter::new().start();
        let addr = &addr;
        let sample = measure_ask(
            p.warmup,
            p.n,
            || async move { get(addr).await },
            "Addr::send().await",
        )
        .await?;
        Ok(Outcome::Measured(sample))
    })
}

/// `start()` → `send(Get)` → `do_send(StopSelf)` (ctx.stop) → `stopped()` hook fires a oneshot.
pub fn spawn_stop(p: &Params) -> BenchResult {
    system_block_on(async {
        let once = || async {
            let (tx, rx) = oneshot::channel();
            let mut actor = Counter::new();
            actor.stopped = Some(tx);
            let addr = actor.start();
            get(&addr).await?;
            addr.do_send(StopSelf);
            rx.await.map_err(|_| err("actix: stopped hook never fired"))
        };
        let elapsed = time_ops(p.warmup, p.n, async |_| once().await).await?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "start + send + StopSelf(ctx.stop) + stopped() hook",
        )))
    })
}

/// `actix::Supervisor` restart-on-stop: `do_send(StopSelf)` then `send(Generation)`, which the
/// restarted actor (same mailbox and address) answers; `restarting()` calls are counted.
pub fn restart_stop(p: &Params) -> BenchResult {
    system_block_on(async {
        let restarts = Rc::new(Cell::new(0u64));
        let shared = restarts.clone();
        let addr = Supervisor::start(move |_| {
            let mut actor = Counter::new();
            actor.restarts = Some(shared);
            actor
        });
        let once = async |expected: u64| -> Result<(), BenchError> {
            addr.do_send(StopSelf);
            let g = addr
                .send(Generation)
                .await
                .map_err(|e| err(format!("actix: {e}")))?;
            check_eq("actix generation after restart", g, expected)
        };
        let elapsed = time_ops(p.warmup, p.n, once).await?;
        check_eq("actix restarting() calls", restarts.get(), p.warmup + p.n)?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "Supervisor + Supervised::restarting (restart-on-stop, same Addr)",
        )))
    })
}

/// Not applicable: actix cannot restart an actor whose handler panicked.
pub fn restart_panic(_p: &Params) -> BenchResult {
    Ok(Outcome::Skipped(
        "n/a: actix 0.13 cannot restart on panic (the panic kills the actor task, Supervisor included)"
            .to_string(),
    ))
}

/// Idle actors started with `start()`, asked once each.
pub fn heap_idle(p: &Params) -> BenchResult {
    system_block_on(async {
        let n = usize::try_from(p.n).map_err(|e| err(format!("n: {e}")))?;
        let mut keep: Vec<actix::Addr<Counter>> = Vec::with_capacity(n);
        let before = (p.allocated)();
        for _ in 0..n {
            keep.push(Counter::new().start());
        }
        for addr in &keep {
            get(addr).await?;
        }
        let after = (p.allocated)();
        Ok(Outcome::Measured(Sample::new(
            heap_per(before, after, p.n),
            "Actor::start(), Context mailbox 16",
        )))
    })
}
