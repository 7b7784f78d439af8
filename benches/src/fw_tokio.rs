//! Raw tokio baselines (the "physical floor"): a task owning a `tokio::sync::mpsc` receiver
//! plays the actor, a `oneshot` carries replies, everything on a current_thread runtime.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::common::{
    BenchError, BenchResult, INTENTIONAL_PANIC, Outcome, Params, Sample, check_eq, err, heap_per,
    measure_ask, ns_per, time_ops, tokio_current_thread, us_per,
};

/// Mailbox capacity for the throughput scenarios.
const TELL_CAPACITY: usize = 1024;
/// Mailbox capacity for spawned, restarted and idle tasks (kameo's default, for comparison).
const SMALL_CAPACITY: usize = 64;

enum Msg {
    Inc,
    Get(oneshot::Sender<u64>),
    Generation(oneshot::Sender<u64>),
    Stop,
    Panic,
}

async fn actor_task(mut rx: mpsc::Receiver<Msg>, generation: u64) {
    let mut count = 0u64;
    while let Some(msg) = rx.recv().await {
        match msg {
            Msg::Inc => count = count.wrapping_add(1),
            Msg::Get(tx) => {
                let _ = tx.send(count);
            }
            Msg::Generation(tx) => {
                let _ = tx.send(generation);
            }
            Msg::Stop => return,
            Msg::Panic => std::panic::panic_any(INTENTIONAL_PANIC),
        }
    }
}

fn spawn_actor(capacity: usize, generation: u64) -> (mpsc::Sender<Msg>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity);
    (tx, tokio::spawn(actor_task(rx, generation)))
}

async fn send(tx: &mpsc::Sender<Msg>, msg: Msg) -> Result<(), BenchError> {
    tx.send(msg).await.map_err(|_| err("tokio: mailbox closed"))
}

async fn get(tx: &mpsc::Sender<Msg>) -> Result<u64, BenchError> {
    let (rtx, rrx) = oneshot::channel();
    send(tx, Msg::Get(rtx)).await?;
    rrx.await.map_err(|_| err("tokio: reply dropped"))
}

async fn generation(tx: &mpsc::Sender<Msg>) -> Result<u64, BenchError> {
    let (rtx, rrx) = oneshot::channel();
    send(tx, Msg::Generation(rtx)).await?;
    rrx.await.map_err(|_| err("tokio: reply dropped"))
}

/// Task→task `mpsc(1024)` with `send().await`, then one mpsc+oneshot ask.
pub fn tell(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let (tx, handle) = spawn_actor(TELL_CAPACITY, 0);
        for _ in 0..p.warmup {
            send(&tx, Msg::Inc).await?;
        }
        check_eq("tokio warmup count", get(&tx).await?, p.warmup)?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            send(&tx, Msg::Inc).await?;
        }
        let total = get(&tx).await?;
        let elapsed = t0.elapsed();
        check_eq("tokio processed count", total, p.warmup + p.n)?;
        drop(tx);
        handle.await.map_err(|e| err(format!("tokio join: {e}")))?;
        Ok(Outcome::Measured(Sample::new(
            ns_per(elapsed, p.n),
            "task→task mpsc(1024) send().await",
        )))
    })
}

/// mpsc(1024) request + oneshot reply round trip.
pub fn ask(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let (tx, _handle) = spawn_actor(TELL_CAPACITY, 0);
        let tx = &tx;
        let sample = measure_ask(
            p.warmup,
            p.n,
            || async move { get(tx).await },
            "mpsc(1024) + oneshot",
        )
        .await?;
        Ok(Outcome::Measured(sample))
    })
}

/// spawn task with an mpsc(64) mailbox → first ask → stop message → await the JoinHandle.
pub fn spawn_stop(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let once = || async {
            let (tx, handle) = spawn_actor(SMALL_CAPACITY, 0);
            get(&tx).await?;
            send(&tx, Msg::Stop).await?;
            handle.await.map_err(|e| err(format!("tokio join: {e}")))
        };
        let elapsed = time_ops(p.warmup, p.n, async |_| once().await).await?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "spawn + mpsc(64) + oneshot ask + stop msg + join",
        )))
    })
}

/// Shared body of the two restart floors: the caller (acting as supervisor) injects a failure,
/// observes the end through the JoinHandle, respawns, and asks the new task's generation.
fn restart(p: &Params, panic: bool) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let (mut tx, mut handle) = spawn_actor(SMALL_CAPACITY, 0);
        let mut restarts = 0u64;
        let once = async |expected: u64| -> Result<(), BenchError> {
            send(&tx, if panic { Msg::Panic } else { Msg::Stop }).await?;
            let joined = (&mut handle).await;
            match (panic, joined) {
                (true, Err(e)) if e.is_panic() => restarts += 1,
                (false, Ok(())) => restarts += 1,
                (_, other) => return Err(err(format!("tokio: unexpected task end {other:?}"))),
            }
            (tx, handle) = spawn_actor(SMALL_CAPACITY, expected);
            check_eq("tokio new generation", generation(&tx).await?, expected)
        };
        let elapsed = time_ops(p.warmup, p.n, once).await?;
        check_eq("tokio restarts", restarts, p.warmup + p.n)?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            if panic {
                "floor: panic → JoinError (catch_unwind) + respawn + ask"
            } else {
                "floor: stop msg → join + respawn + ask"
            },
        )))
    })
}

/// Floor for a stop-triggered restart.
pub fn restart_stop(p: &Params) -> BenchResult {
    restart(p, false)
}

/// Floor for a panic-triggered restart.
pub fn restart_panic(p: &Params) -> BenchResult {
    restart(p, true)
}

/// Idle task + mpsc(64), asked once each; live-heap delta per task.
pub fn heap_idle(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let n = usize::try_from(p.n).map_err(|e| err(format!("n: {e}")))?;
        let mut keep: Vec<mpsc::Sender<Msg>> = Vec::with_capacity(n);
        let before = (p.allocated)();
        for _ in 0..n {
            let (tx, _detached) = spawn_actor(SMALL_CAPACITY, 0);
            keep.push(tx);
        }
        for tx in &keep {
            get(tx).await?;
        }
        let after = (p.allocated)();
        Ok(Outcome::Measured(Sample::new(
            heap_per(before, after, p.n),
            "idle task + mpsc(64)",
        )))
    })
}
