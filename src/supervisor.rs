//! Supervision trees with the Erlang/OTP contract, on actix.
//!
//! A [`Supervisor`] is an actor that starts its children in order, watches
//! them, restarts them according to a pluggable [`Strategy`], the children's
//! [`Restart`] types, a restart [`Intensity`] and a [`Backoff`], and stops them
//! in reverse order within each child's [`Shutdown`] policy.
//!
//! - Children are any actix actors with `Context<Self>`, described by a
//!   [`ChildSpec`] whose factory builds a fresh instance at each start.
//! - A panic in a child's handler is contained (see [`child`]): it becomes
//!   [`ExitReason::Panic`], handled by policy like any other failure.
//! - Callers keep a [`ChildRef`], which reaches whichever instance runs now.
//! - Past the intensity limit, or when the strategy says so, a supervisor
//!   escalates: it stops its children in reverse order, then exits with
//!   [`ExitReason::Escalated`], and its parent decides. The root escalating
//!   ends the service with a non-zero exit code.
//!
//! See `docs/supervision.md` for the whole contract with examples.
//!
//! # Files
//! This file holds the [`Supervisor`] actor itself: how it starts, stops
//! and restarts children and when it escalates. Around it:
//! - `supervisor_spec.rs`: [`SupervisorSpec`] and [`RootSupervisor`];
//! - `supervisor_ref.rs`: [`SupervisorRef`], the run-time operations, sent
//!   as the messages of `requests.rs` ([`StartChild`], [`StopChild`], …);
//! - `error.rs`: [`Error`];
//! - [`spec`], [`child`], [`strategy`], [`backoff`], [`exit`]: children's
//!   specs, how a child runs and is reached, the restart policies and
//!   limits, exit reasons; `children.rs`, `dynamic.rs`, `recipient.rs`: the
//!   supervisor's child table, [`DynamicSupervisor`], [`ChildRecipient`].

pub mod backoff;
pub mod child;
mod children;
mod dynamic;
mod error;
pub mod exit;
mod recipient;
mod requests;
pub mod spec;
pub mod strategy;
mod supervisor_ref;
mod supervisor_spec;

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix::{ActorFutureExt, WrapFuture};

pub use backoff::{Backoff, Intensity, RestartHistory};
pub use child::{AskError, ChildRef, SendError, SupervisedContext};
use child::{ChildCell, Reporter};
use children::{Children, Slot};
pub use dynamic::DynamicSupervisor;
pub use error::Error;
pub use exit::{Escalation, EscalationCause, ExitReason, SharedError};
pub use recipient::ChildRecipient;
pub use requests::{DeleteChild, KillChild, RestartChild, StartChild, StopChild, WhichChildren};
use spec::ErasedSpec;
pub use spec::{ChildInfo, ChildKind, ChildSpec, ChildState, Mailbox, Overflow, Restart, Shutdown};
pub use strategy::{Directive, Failure, OneForAll, OneForOne, RestForOne, Scope, Strategy};
pub use supervisor_ref::SupervisorRef;
pub use supervisor_spec::{RootSupervisor, SupervisorSpec};

/// A restart attempt failed; handled on the next turn, so that a factory
/// that always fails cannot recurse (internal).
#[derive(Message)]
#[rtype(result = "()")]
struct RestartFailed {
    key: u64,
    reason: ExitReason,
}

/// An instance exited without being asked to (internal).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChildExited {
    pub(crate) key: u64,
    pub(crate) generation: u64,
    pub(crate) reason: ExitReason,
}

/// A live instance reported a fault (internal).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChildFault {
    pub(crate) key: u64,
    pub(crate) generation: u64,
    pub(crate) reason: ExitReason,
}

/// The supervisor actor. Build it with [`SupervisorSpec`].
pub struct Supervisor {
    name: Arc<str>,
    strategy: Box<dyn Strategy>,
    intensity: Intensity,
    backoff: Backoff,
    rng: fastrand::Rng,
    initial: Vec<Arc<dyn ErasedSpec>>,
    children: Children,
    /// This supervisor's own (weak) address, handed to its children.
    me: Option<actix::WeakAddr<Supervisor>>,
    history: RestartHistory,
    /// Pending (backoff) restarts: group id, its timer, how many children
    /// still wait for it.
    timers: Vec<(u64, SpawnHandle, usize)>,
    next_group: u64,
    shutting_down: bool,
    children_down: bool,
}

impl Supervisor {
    fn new(spec: SupervisorSpec) -> Self {
        Self {
            strategy: (spec.strategy)(),
            rng: spec
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            name: spec.name,
            intensity: spec.intensity,
            backoff: spec.backoff,
            initial: spec.children,
            children: Children::default(),
            me: None,
            history: RestartHistory::default(),
            timers: Vec::new(),
            next_group: 0,
            shutting_down: false,
            children_down: false,
        }
    }

    fn not_found(&self, id: &str) -> Error {
        Error::NotFound {
            supervisor: self.name.to_string(),
            id: id.to_owned(),
        }
    }

    fn id_of(&self, key: u64) -> Arc<str> {
        self.children
            .get(key)
            .map_or_else(|| Arc::from("?"), |s| s.spec.id().clone())
    }

    fn start_slot(&mut self, key: u64, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        let supervisor = self
            .me
            .get_or_insert_with(|| ctx.address().downgrade())
            .clone();
        let Some(slot) = self.children.get_mut(key) else {
            return Ok(());
        };
        slot.generation += 1;
        slot.pending = None;
        // a failed start is not a stable run: backoff must keep growing
        slot.started_at = None;
        let reporter = Reporter {
            supervisor,
            key,
            generation: slot.generation,
        };
        let cell = slot.spec.start(Some(reporter))?;
        slot.running = Some(cell);
        slot.started_at = Some(now());
        tracing::debug!(supervisor = %self.name, child = %slot.spec.id(), "child started");
        Ok(())
    }

    /// A future that stops the running children with these keys, one at a
    /// time in reverse start order, each within its shutdown policy. Which
    /// children run is read when the future first runs, not when it is made.
    fn stop_keys(keys: Vec<u64>) -> impl ActorFuture<Self, Output = ()> {
        fut::ready(()).then(move |(), act: &mut Self, _| {
            let mut keys = keys;
            keys.sort_unstable_by(|a, b| b.cmp(a)); // reverse start order
            let targets: Vec<(u64, Rc<ChildCell>, Shutdown, Arc<str>)> = keys
                .iter()
                .filter_map(|k| {
                    let s = act.children.get(*k)?;
                    let cell = s.running.clone()?;
                    Some((*k, cell, s.spec.shutdown(), s.spec.id().clone()))
                })
                .collect();
            let stopped: Vec<(u64, Rc<ChildCell>)> =
                targets.iter().map(|t| (t.0, t.1.clone())).collect();
            async move {
                for (_, cell, shutdown, id) in targets {
                    let reason = cell.shut_down(shutdown, id.clone()).await;
                    tracing::debug!(child = %id, %reason, "child stopped");
                }
            }
            .into_actor(act)
            .map(move |(), act: &mut Self, _ctx| {
                for (key, cell) in stopped {
                    if let Some(slot) = act.children.get_mut(key)
                        && slot.running.as_ref().is_some_and(|r| Rc::ptr_eq(r, &cell))
                    {
                        slot.running = None;
                    }
                }
            })
        })
    }

    /// Takes a child out of its pending restart group; the group's timer is
    /// cancelled only when no child waits for it any more.
    fn cancel_pending(&mut self, key: u64, ctx: &mut Context<Self>) {
        let Some(group) = self.children.get_mut(key).and_then(|s| s.pending.take()) else {
            return;
        };
        if let Some(pos) = self.timers.iter().position(|(g, _, _)| *g == group) {
            self.timers[pos].2 -= 1;
            if self.timers[pos].2 == 0 {
                let (_, handle, _) = self.timers.swap_remove(pos);
                ctx.cancel_future(handle);
            }
        }
    }

    /// Starts the children still waiting for restart group `group`.
    fn fire_group(&mut self, group: u64, ctx: &mut Context<Self>) {
        self.timers.retain(|(g, _, _)| *g != group);
        let keys: Vec<u64> = self
            .children
            .iter()
            .filter(|(_, s)| s.pending == Some(group))
            .map(|(k, _)| k)
            .collect();
        self.start_keys(&keys, ctx);
    }

    fn child_exited(&mut self, key: u64, reason: ExitReason, ctx: &mut Context<Self>) {
        let Some(slot) = self.children.get_mut(key) else {
            return;
        };
        slot.running = None;
        let restart = slot.spec.restart();
        let id = slot.spec.id().clone();
        if !restart.restarts_after(&reason) {
            if reason.is_normal() {
                tracing::info!(supervisor = %self.name, child = %id, %reason, "child exited");
            } else {
                tracing::warn!(supervisor = %self.name, child = %id, %reason, "child exited; not restarted ({restart:?})");
            }
            if restart == Restart::Temporary || slot.dynamic {
                self.children.remove(key);
            }
            return;
        }
        tracing::error!(supervisor = %self.name, child = %id, %reason, "child failed");
        self.on_failure(key, reason, false, ctx);
    }

    fn on_failure(&mut self, key: u64, reason: ExitReason, alive: bool, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let Some(slot) = self.children.get(key) else {
            return;
        };
        let now = now();
        let info = slot.info(self.children.position(key));
        let directive = self.strategy.decide(&Failure {
            child: &info,
            reason: &reason,
            alive,
            history: &self.history,
            now,
            siblings: &self.children,
        });
        tracing::debug!(supervisor = %self.name, child = %info.id, strategy = self.strategy.name(), ?directive, "decision");
        match directive {
            Directive::Resume | Directive::Stop => {
                let stop = alive && directive == Directive::Stop;
                // a child that stays down leaves the tree if it is temporary
                // or dynamic, as after a normal exit
                let leaves = self
                    .children
                    .get(key)
                    .is_some_and(|s| s.dynamic || s.spec.restart() == Restart::Temporary);
                if stop {
                    ctx.wait(Self::stop_keys(vec![key]).map(move |(), act, _| {
                        if leaves {
                            act.children.remove(key);
                        }
                    }));
                } else if !alive && leaves {
                    self.children.remove(key);
                }
            }
            Directive::Escalate => self.escalate(key, reason, EscalationCause::Strategy, ctx),
            Directive::Restart { scope, delay } => {
                if !self.history.record(self.intensity, now) {
                    let cause = EscalationCause::Intensity {
                        max_restarts: self.intensity.max_restarts,
                        within: self.intensity.within,
                    };
                    self.escalate(key, reason, cause, ctx);
                    return;
                }
                let Some(slot) = self.children.get_mut(key) else {
                    return;
                };
                let backoff = slot.spec.backoff().unwrap_or(self.backoff);
                let stable_after = backoff.stable_after();
                if alive
                    || slot
                        .started_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= stable_after)
                {
                    slot.consecutive = 0;
                }
                let consecutive = slot.consecutive;
                slot.consecutive = consecutive.saturating_add(1);
                let delay = delay.unwrap_or_else(|| backoff.delay(consecutive, &mut self.rng));
                let keys = self.resolve(&scope, key);
                self.restart_keys(keys, delay, ctx);
            }
        }
    }

    /// The keys a restart scope covers, in start order.
    fn resolve(&self, scope: &Scope, key: u64) -> Vec<u64> {
        match scope {
            Scope::Child => vec![key],
            Scope::All => self.children.keys().collect(),
            Scope::Rest => self.children.keys_from(key).collect(),
            Scope::These(ids) => {
                let mut keys: Vec<u64> = ids
                    .iter()
                    .filter_map(|id| self.children.key_of(id))
                    .collect();
                keys.push(key);
                keys.sort_unstable();
                keys.dedup();
                keys
            }
        }
    }

    /// Stops the running children among `keys` (reverse order), drops the
    /// temporary ones (never restarted), and starts the rest in start order
    /// after `delay`.
    fn restart_keys(&mut self, keys: Vec<u64>, delay: Duration, ctx: &mut Context<Self>) {
        for key in &keys {
            self.cancel_pending(*key, ctx);
        }
        let any_running = keys
            .iter()
            .any(|k| self.children.get(*k).is_some_and(|s| s.running.is_some()));
        let stopping = keys.clone();
        let after_stop = move |act: &mut Self, ctx: &mut Context<Self>| {
            if act.shutting_down {
                return;
            }
            let mut restart = Vec::with_capacity(keys.len());
            for key in keys {
                match act.children.get(key).map(|s| s.spec.restart()) {
                    Some(Restart::Temporary) => {
                        act.children.remove(key);
                    }
                    Some(_) => restart.push(key),
                    None => {}
                }
            }
            if delay.is_zero() {
                act.start_keys(&restart, ctx);
            } else {
                act.next_group += 1;
                let group = act.next_group;
                let handle = ctx.run_later(delay, move |act, ctx| act.fire_group(group, ctx));
                let mut members = 0;
                for key in restart {
                    if let Some(slot) = act.children.get_mut(key) {
                        slot.pending = Some(group);
                        members += 1;
                    }
                }
                act.timers.push((group, handle, members));
            }
        };
        if any_running {
            ctx.wait(Self::stop_keys(stopping).map(move |(), act, ctx| after_stop(act, ctx)));
        } else {
            after_stop(self, ctx);
        }
    }

    /// Starts the stopped children among `keys` (in start order). The first
    /// failure ends the round (later children may depend on it); it is
    /// handled on the next turn as a failure of that child.
    fn start_keys(&mut self, keys: &[u64], ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        for (n, key) in keys.iter().copied().enumerate() {
            let Some(slot) = self.children.get_mut(key) else {
                continue;
            };
            if slot.running.is_some() {
                continue;
            }
            slot.restarts += 1;
            let id = slot.spec.id().clone();
            match self.start_slot(key, ctx) {
                Ok(()) => tracing::info!(supervisor = %self.name, child = %id, "child restarted"),
                Err(reason) => {
                    tracing::error!(supervisor = %self.name, child = %id, %reason, "restart failed");
                    for later in &keys[n..] {
                        if let Some(slot) = self.children.get_mut(*later) {
                            slot.pending = None;
                        }
                    }
                    ctx.notify(RestartFailed { key, reason });
                    return;
                }
            }
        }
    }

    fn escalate(
        &mut self,
        key: u64,
        reason: ExitReason,
        cause: EscalationCause,
        ctx: &mut Context<Self>,
    ) {
        let escalation = Escalation {
            supervisor: self.name.to_string(),
            child: self.id_of(key).to_string(),
            reason,
            cause,
        };
        tracing::error!(supervisor = %self.name, "{escalation}");
        child::record_failure(ctx, ExitReason::Escalated(Arc::new(escalation)));
        ctx.stop();
    }

    /// Starts the static children in order, before the supervisor's own task
    /// runs (see `child::spawn`). If one fails, the ones already started are
    /// killed (they never ran) and the supervisor does not start.
    fn start_children(&mut self, ctx: &mut Context<Self>) -> Result<(), ExitReason> {
        let initial = std::mem::take(&mut self.initial);
        for spec in initial {
            let id = spec.id().clone();
            let Some(key) = self.children.push(Slot::new(spec, false)) else {
                tracing::warn!(supervisor = %self.name, child = %id, "duplicate child id; ignored");
                continue;
            };
            if let Err(reason) = self.start_slot(key, ctx) {
                let escalation = Escalation {
                    supervisor: self.name.to_string(),
                    child: id.to_string(),
                    reason,
                    cause: EscalationCause::StartFailed,
                };
                tracing::error!(supervisor = %self.name, "{escalation}");
                for (_, slot) in self.children.iter_mut().rev() {
                    if let Some(cell) = slot.running.take() {
                        cell.kill();
                    }
                }
                return Err(ExitReason::Escalated(Arc::new(escalation)));
            }
        }
        tracing::debug!(supervisor = %self.name, children = self.children.len(), strategy = self.strategy.name(), "supervisor started");
        Ok(())
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.children_down {
            return Running::Stop;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            // The runtime is going away: no timers to stop children with.
            for (_, slot) in self.children.iter_mut() {
                if let Some(cell) = slot.running.take() {
                    cell.kill();
                }
            }
            return Running::Stop;
        }
        if !self.shutting_down {
            self.shutting_down = true;
            for (_, slot) in self.children.iter_mut() {
                slot.pending = None;
            }
            for (_, handle, _) in self.timers.drain(..) {
                ctx.cancel_future(handle);
            }
            let keys: Vec<u64> = self.children.keys().collect();
            ctx.wait(Self::stop_keys(keys).map(|(), act, ctx| {
                act.children_down = true;
                ctx.stop();
            }));
        }
        Running::Continue
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::debug!(supervisor = %self.name, "supervisor stopped");
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Killed (or crashed) before its children stopped: take them along, so
        // no orphan outlives its supervisor.
        for (_, slot) in self.children.iter() {
            if let Some(cell) = &slot.running {
                cell.kill();
            }
        }
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        let Some(slot) = self.children.get(msg.key) else {
            return;
        };
        if slot.generation != msg.generation || slot.running.is_none() {
            return; // a report from an instance already replaced
        }
        self.child_exited(msg.key, msg.reason, ctx);
    }
}

impl Handler<RestartFailed> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RestartFailed, ctx: &mut Context<Self>) {
        if self
            .children
            .get(msg.key)
            .is_some_and(|s| s.running.is_none())
        {
            self.on_failure(msg.key, msg.reason, false, ctx);
        }
    }
}

impl Handler<ChildFault> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildFault, ctx: &mut Context<Self>) {
        let Some(slot) = self.children.get(msg.key) else {
            return;
        };
        let Some(cell) = slot.running.clone() else {
            return;
        };
        if slot.generation != msg.generation {
            return;
        }
        cell.fault_handled();
        tracing::warn!(supervisor = %self.name, child = %slot.spec.id(), reason = %msg.reason, "child reported a fault");
        self.on_failure(msg.key, msg.reason, true, ctx);
    }
}

impl strategy::Siblings for Children {
    fn count(&self) -> usize {
        self.len()
    }
    fn infos(&self) -> Vec<ChildInfo> {
        Children::infos(self)
    }
}

/// The supervisor's clock: tokio's, so that paused time in tests (and the
/// timers the supervisor sets) agree with the restart history.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
