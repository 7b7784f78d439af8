//! ractor 0.16.5 (`default-features = false, features = ["tokio_runtime"]`, so no message span
//! propagation) on a current_thread tokio runtime.

use std::time::Instant;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::common::{
    BenchError, BenchResult, INTENTIONAL_PANIC, Outcome, Params, Sample, check_eq, err, heap_per,
    measure_ask, ns_per, time_ops, tokio_current_thread, us_per,
};

/// Messages of the measured child actor.
enum CounterMsg {
    Inc,
    Get(RpcReplyPort<u64>),
    Generation(RpcReplyPort<u64>),
    StopSelf,
    Panic,
}

struct Counter;

struct CounterState {
    count: u64,
    generation: u64,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = CounterState;
    type Arguments = u64;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        generation: u64,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(CounterState {
            count: 0,
            generation,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CounterMsg::Inc => state.count = state.count.wrapping_add(1),
            CounterMsg::Get(reply) => {
                let _ = reply.send(state.count);
            }
            CounterMsg::Generation(reply) => {
                let _ = reply.send(state.generation);
            }
            CounterMsg::StopSelf => myself.stop(None),
            CounterMsg::Panic => std::panic::panic_any(INTENTIONAL_PANIC),
        }
        Ok(())
    }
}

async fn call_u64(
    actor: &ActorRef<CounterMsg>,
    build: fn(RpcReplyPort<u64>) -> CounterMsg,
) -> Result<u64, BenchError> {
    match actor.call(build, None).await {
        Ok(CallResult::Success(v)) => Ok(v),
        Ok(CallResult::Timeout) => Err(err("ractor: call timed out")),
        Ok(CallResult::SenderError) => Err(err("ractor: reply port dropped")),
        Err(e) => Err(err(format!("ractor: call failed: {e}"))),
    }
}

async fn get(actor: &ActorRef<CounterMsg>) -> Result<u64, BenchError> {
    call_u64(actor, CounterMsg::Get).await
}

async fn spawn_counter(generation: u64) -> Result<ActorRef<CounterMsg>, BenchError> {
    let (actor, _handle) = Actor::spawn(None, Counter, generation)
        .await
        .map_err(|e| err(format!("ractor spawn: {e}")))?;
    Ok(actor)
}

/// `cast` (unbounded mailbox) N times, then one `call`.
pub fn tell(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let actor = spawn_counter(0).await?;
        let cast = |actor: &ActorRef<CounterMsg>| {
            actor
                .cast(CounterMsg::Inc)
                .map_err(|e| err(format!("ractor cast: {e}")))
        };
        for _ in 0..p.warmup {
            cast(&actor)?;
        }
        check_eq("ractor warmup count", get(&actor).await?, p.warmup)?;
        let t0 = Instant::now();
        for _ in 0..p.n {
            cast(&actor)?;
        }
        let total = get(&actor).await?;
        let elapsed = t0.elapsed();
        check_eq("ractor processed count", total, p.warmup + p.n)?;
        actor.stop(None);
        Ok(Outcome::Measured(Sample::new(
            ns_per(elapsed, p.n),
            "cast (unbounded mailbox)",
        )))
    })
}

/// `call` round trips.
pub fn ask(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let actor = spawn_counter(0).await?;
        let a = &actor;
        let sample = measure_ask(
            p.warmup,
            p.n,
            || async move { get(a).await },
            "call (RpcReplyPort)",
        )
        .await?;
        actor.stop(None);
        Ok(Outcome::Measured(sample))
    })
}

/// `Actor::spawn` → `call` → `stop(None)` → await the JoinHandle.
pub fn spawn_stop(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let once = || async {
            let (actor, handle) = Actor::spawn(None, Counter, 0)
                .await
                .map_err(|e| err(format!("ractor spawn: {e}")))?;
            get(&actor).await?;
            actor.stop(None);
            handle.await.map_err(|e| err(format!("ractor join: {e}")))
        };
        let elapsed = time_ops(p.warmup, p.n, async |_| once().await).await?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            "spawn + call + stop + JoinHandle",
        )))
    })
}

/// Messages of the hand-written supervisor.
enum ParentMsg {
    /// Reply with the current child once its generation is at least the given one.
    AwaitChild(u64, RpcReplyPort<ActorRef<CounterMsg>>),
    /// Reply with (ActorTerminated seen, ActorFailed seen).
    Stats(RpcReplyPort<(u64, u64)>),
}

/// A parent that respawns its linked child on `ActorTerminated` and `ActorFailed`.
struct Parent;

struct ParentState {
    child: ActorRef<CounterMsg>,
    generation: u64,
    terminated: u64,
    failed: u64,
    waiters: Vec<(u64, RpcReplyPort<ActorRef<CounterMsg>>)>,
}

impl Parent {
    async fn respawn(
        myself: &ActorRef<ParentMsg>,
        state: &mut ParentState,
    ) -> Result<(), ActorProcessingErr> {
        state.generation += 1;
        let (child, _handle) =
            Actor::spawn_linked(None, Counter, state.generation, myself.get_cell()).await?;
        state.child = child;
        let generation = state.generation;
        let mut i = 0;
        while i < state.waiters.len() {
            if state.waiters[i].0 <= generation {
                let (_, port) = state.waiters.swap_remove(i);
                let _ = port.send(state.child.clone());
            } else {
                i += 1;
            }
        }
        Ok(())
    }
}

impl Actor for Parent {
    type Msg = ParentMsg;
    type State = ParentState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let (child, _handle) = Actor::spawn_linked(None, Counter, 0, myself.get_cell()).await?;
        Ok(ParentState {
            child,
            generation: 0,
            terminated: 0,
            failed: 0,
            waiters: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ParentMsg::AwaitChild(min_generation, port) => {
                if state.generation >= min_generation {
                    let _ = port.send(state.child.clone());
                } else {
                    state.waiters.push((min_generation, port));
                }
            }
            ParentMsg::Stats(port) => {
                let _ = port.send((state.terminated, state.failed));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(who, _, _)
                if who.get_id() == state.child.get_id() =>
            {
                state.terminated += 1;
                Self::respawn(&myself, state).await?;
            }
            SupervisionEvent::ActorFailed(who, _) if who.get_id() == state.child.get_id() => {
                state.failed += 1;
                Self::respawn(&myself, state).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

async fn await_child(
    parent: &ActorRef<ParentMsg>,
    min_generation: u64,
) -> Result<ActorRef<CounterMsg>, BenchError> {
    match parent
        .call(|port| ParentMsg::AwaitChild(min_generation, port), None)
        .await
    {
        Ok(CallResult::Success(child)) => Ok(child),
        Ok(other) => Err(err(format!(
            "ractor: AwaitChild failed ({})",
            match other {
                CallResult::Timeout => "timeout",
                _ => "reply port dropped",
            }
        ))),
        Err(e) => Err(err(format!("ractor: AwaitChild send failed: {e}"))),
    }
}

/// Child fails (stop or panic) → parent's `handle_supervisor_evt` respawns it with
/// `spawn_linked` → the driver gets the new ref from the parent and asks its generation.
fn restart(p: &Params, panic: bool) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let (parent, parent_handle) = Actor::spawn(None, Parent, ())
            .await
            .map_err(|e| err(format!("ractor spawn parent: {e}")))?;
        let mut child = await_child(&parent, 0).await?;
        let once = async |expected: u64| -> Result<(), BenchError> {
            let msg = if panic {
                CounterMsg::Panic
            } else {
                CounterMsg::StopSelf
            };
            child
                .cast(msg)
                .map_err(|e| err(format!("ractor cast: {e}")))?;
            child = await_child(&parent, expected).await?;
            let g = call_u64(&child, CounterMsg::Generation).await?;
            check_eq("ractor generation after restart", g, expected)
        };
        let elapsed = time_ops(p.warmup, p.n, once).await?;
        let (terminated, failed) = match parent.call(ParentMsg::Stats, None).await {
            Ok(CallResult::Success(v)) => v,
            _ => return Err(err("ractor: Stats call failed")),
        };
        let total = p.warmup + p.n;
        if panic {
            check_eq("ractor ActorFailed respawns", failed, total)?;
            check_eq("ractor ActorTerminated respawns", terminated, 0)?;
        } else {
            check_eq("ractor ActorTerminated respawns", terminated, total)?;
            check_eq("ractor ActorFailed respawns", failed, 0)?;
        }
        parent.stop(None);
        parent_handle
            .await
            .map_err(|e| err(format!("ractor join parent: {e}")))?;
        Ok(Outcome::Measured(Sample::new(
            us_per(elapsed, p.n),
            if panic {
                "hand-written parent respawns on ActorFailed; +1 call to parent for the new ref"
            } else {
                "hand-written parent respawns on ActorTerminated; +1 call to parent for the new ref"
            },
        )))
    })
}

/// Stop-triggered restart through a hand-written parent.
pub fn restart_stop(p: &Params) -> BenchResult {
    restart(p, false)
}

/// Panic-triggered restart through a hand-written parent.
pub fn restart_panic(p: &Params) -> BenchResult {
    restart(p, true)
}

/// Idle actors from `Actor::spawn`, asked once each.
pub fn heap_idle(p: &Params) -> BenchResult {
    tokio_current_thread()?.block_on(async {
        let n = usize::try_from(p.n).map_err(|e| err(format!("n: {e}")))?;
        let mut keep: Vec<ActorRef<CounterMsg>> = Vec::with_capacity(n);
        let before = (p.allocated)();
        for _ in 0..n {
            keep.push(spawn_counter(0).await?);
        }
        for actor in &keep {
            get(actor).await?;
        }
        let after = (p.allocated)();
        Ok(Outcome::Measured(Sample::new(
            heap_per(before, after, p.n),
            "Actor::spawn (unsupervised), JoinHandle dropped",
        )))
    })
}
