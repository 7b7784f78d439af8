//! The task that runs one actor instance with panic containment, the cell
//! the supervisor steers it through, and [`SupervisedContext`], through
//! which an instance reports failures (see the module docs of `child`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};

use actix::dev::ContextFut;
use actix::{Actor, ActorContext, Addr, AsyncContext, Context, WeakAddr};

use std::time::Duration;

use super::handle::Shared;
use crate::supervisor::exit::{ExitReason, panic_message};
use crate::supervisor::{ChildExited, ChildFault, Supervisor};

/// How a child is stopped by its supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Ask it to stop (`stopping()` runs and may delay the stop), and kill it
    /// if it has not stopped after this long. Default for workers: 5 s.
    Timeout(Duration),
    /// Kill it at once: no more messages are handled and no more actor code
    /// runs (no `stopping`/`stopped`); the actor value is dropped.
    BrutalKill,
    /// Ask it to stop and wait as long as it takes. Default for supervisors,
    /// which stop their own children within their own timeouts.
    Infinity,
}

thread_local! {
    /// The supervised instances running on this thread, by mailbox (see
    /// [`mailbox_id`]): how `ctx.fail` / `ctx.fault` find their supervisor
    /// without any per-poll bookkeeping.
    static RUNNING: RefCell<HashMap<usize, Rc<ChildCell>>> = RefCell::new(HashMap::new());
}

/// The exact identity of an actor's mailbox: the address of actix's channel,
/// which is what `Addr`'s `Hash` feeds the hasher.
fn mailbox_id<A: Actor>(addr: &Addr<A>) -> usize {
    struct Capture(usize);
    impl Hasher for Capture {
        fn finish(&self) -> u64 {
            self.0 as u64
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = self.0.rotate_left(8) ^ usize::from(*b);
            }
        }
        fn write_usize(&mut self, n: usize) {
            self.0 = n;
        }
    }
    let mut capture = Capture(0);
    addr.hash(&mut capture);
    capture.0
}

/// The cell of the supervised instance whose mailbox is `ctx`'s.
fn cell_of<A: Actor<Context = Context<A>>>(ctx: &Context<A>) -> Option<Rc<ChildCell>> {
    let id = mailbox_id(&ctx.address());
    RUNNING
        .try_with(|running| running.borrow().get(&id).cloned())
        .ok()
        .flatten()
}

/// Where an instance reports an exit or a fault it was not asked for.
#[derive(Clone)]
pub(crate) struct Reporter {
    /// Weak: a child does not keep its supervisor's mailbox open (and costs
    /// no sender allocations).
    pub(crate) supervisor: WeakAddr<Supervisor>,
    pub(crate) key: u64,
    pub(crate) generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Stop,
    Kill,
}

/// Shared between a running instance's task and its supervisor (same thread).
pub(crate) struct ChildCell {
    command: Cell<Option<Command>>,
    task: RefCell<Option<Waker>>,
    solicited: Cell<bool>,
    fault_pending: Cell<bool>,
    /// While running: the failure recorded by `ctx.fail`; once ended: the
    /// exit reason.
    reason: RefCell<Option<ExitReason>>,
    ended: Cell<bool>,
    exit_waiters: RefCell<Vec<Waker>>,
    reporter: Option<Reporter>,
}

impl ChildCell {
    fn new(reporter: Option<Reporter>) -> Self {
        Self {
            command: Cell::new(None),
            task: RefCell::new(None),
            solicited: Cell::new(false),
            fault_pending: Cell::new(false),
            reason: RefCell::new(None),
            ended: Cell::new(false),
            exit_waiters: RefCell::new(Vec::new()),
            reporter,
        }
    }

    /// A cell for an instance that never ran (its start failed).
    pub(crate) fn ended(reason: ExitReason) -> Rc<Self> {
        let cell = Self::new(None);
        *cell.reason.borrow_mut() = Some(reason);
        cell.ended.set(true);
        Rc::new(cell)
    }

    fn command(&self, cmd: Command) {
        self.solicited.set(true);
        // a kill overrides a pending stop, never the reverse
        if self.command.get() != Some(Command::Kill) {
            self.command.set(Some(cmd));
        }
        if let Some(waker) = self.task.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Asks the instance to stop through its own `stopping()`.
    pub(crate) fn stop(&self) {
        self.command(Command::Stop);
    }

    /// Drops the instance at its next poll: no more messages are handled.
    pub(crate) fn kill(&self) {
        self.command(Command::Kill);
    }

    /// Ends the instance as a crash would: the supervisor did not ask for
    /// it, so its exit goes through the strategy.
    pub(crate) fn crash(&self) {
        self.command.set(Some(Command::Kill));
        if let Some(waker) = self.task.borrow_mut().take() {
            waker.wake();
        }
    }

    /// The exit reason, once the instance has ended.
    pub(crate) fn exit_reason(&self) -> Option<ExitReason> {
        if self.ended.get() {
            self.reason.borrow().clone()
        } else {
            None
        }
    }

    /// Records the final exit reason and wakes whoever waits for it.
    fn settle(&self, reason: ExitReason) {
        *self.reason.borrow_mut() = Some(reason);
        self.ended.set(true);
        let waiters = std::mem::take(&mut *self.exit_waiters.borrow_mut());
        for waker in waiters {
            waker.wake();
        }
    }

    /// Marks a fault report as handled, so the next one is sent.
    pub(crate) fn fault_handled(&self) {
        self.fault_pending.set(false);
    }

    /// Resolves with the exit reason when the instance has ended.
    pub(crate) fn exited(self: &Rc<Self>) -> impl Future<Output = ExitReason> + 'static {
        let cell = self.clone();
        std::future::poll_fn(move |cx| {
            if let Some(reason) = cell.exit_reason() {
                return Poll::Ready(reason);
            }
            let mut waiters = cell.exit_waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Stops the instance as `shutdown` says and resolves when it has ended.
    pub(crate) fn shut_down(
        self: &Rc<Self>,
        shutdown: Shutdown,
        id: Arc<str>,
    ) -> impl Future<Output = ExitReason> + 'static {
        let cell = self.clone();
        async move {
            match shutdown {
                Shutdown::BrutalKill => cell.kill(),
                Shutdown::Infinity => cell.stop(),
                Shutdown::Timeout(limit) => {
                    cell.stop();
                    let exited = cell.exited();
                    match tokio::time::timeout(limit, exited).await {
                        Ok(reason) => return reason,
                        Err(_) => {
                            tracing::warn!(child = %id, ?limit, "child ignored stop; killing it");
                            cell.kill();
                        }
                    }
                }
            }
            cell.exited().await
        }
    }
}

/// Runs one actor instance; see the module docs.
struct ChildTask<A: Actor<Context = Context<A>>> {
    fut: Option<ContextFut<A, Context<A>>>,
    cell: Rc<ChildCell>,
    shared: Arc<Shared<A>>,
    generation: u64,
    mailbox: usize,
}

enum Outcome {
    Exited,
    Killed,
    Panicked(Arc<str>),
}

/// Creates the context for `actor`, publishes its address in `shared` and
/// spawns its task on the current arbiter.
///
/// `prepare` runs before the task is spawned, with the new context: a
/// supervisor starts its own children there, so that they run (and their
/// handles work) as soon as the supervisor has been started.
pub(crate) fn spawn<A: Actor<Context = Context<A>>>(
    mut actor: A,
    capacity: usize,
    shared: Arc<Shared<A>>,
    reporter: Option<Reporter>,
    prepare: Option<Prepare<A>>,
) -> Result<Rc<ChildCell>, ExitReason> {
    let mut ctx = Context::<A>::new();
    ctx.set_mailbox_capacity(capacity);
    let addr = ctx.address();
    let mailbox = mailbox_id(&addr);
    let cell = Rc::new(ChildCell::new(reporter));
    if let Some(prepare) = prepare {
        let prepared = catch_unwind(AssertUnwindSafe(|| prepare(&mut actor, &mut ctx)));
        let failure = match prepared {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(payload) => Some(ExitReason::Panic(panic_message(payload.as_ref()))),
        };
        if let Some(reason) = failure {
            // Never ran and never published: dropping the actor and its
            // context releases whatever `prepare` started.
            ctx.terminate();
            drop(addr);
            drop(ctx);
            let _ = catch_unwind(AssertUnwindSafe(move || drop(actor)));
            return Err(reason);
        }
    }
    let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
    *shared.addr.write() = Some(addr);
    // whoever waits for an instance (`ChildRef::wait_running`) can go on
    shared.space.notify_waiters();
    RUNNING.with(|running| running.borrow_mut().insert(mailbox, cell.clone()));
    let task = ChildTask {
        fut: Some(ctx.into_future(actor)),
        cell: cell.clone(),
        shared,
        generation,
        mailbox,
    };
    actix_rt::spawn(task);
    Ok(cell)
}

/// Runs before an instance's task is spawned; an error aborts the start.
pub(crate) type Prepare<A> = fn(&mut A, &mut Context<A>) -> Result<(), ExitReason>;

impl<A: Actor<Context = Context<A>>> ChildTask<A> {
    fn step(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Outcome> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(Outcome::Exited);
        };
        match self.cell.command.take() {
            Some(Command::Kill) => return Poll::Ready(Outcome::Killed),
            Some(Command::Stop) => fut.ctx().stop(),
            None => {}
        }
        {
            let mut task = self.cell.task.borrow_mut();
            match task.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *task = Some(cx.waker().clone()),
            }
        }
        let polled = catch_unwind(AssertUnwindSafe(|| Pin::new(fut).poll(cx)));
        self.shared.notify_space();
        match polled {
            Ok(Poll::Ready(())) => Poll::Ready(Outcome::Exited),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Outcome::Panicked(panic_message(payload.as_ref()))),
        }
    }

    /// The instance is gone: takes it out of the thread's registry (before
    /// its mailbox, whose address is the key, can be freed and reused) and
    /// out of its `ChildRef`, so callers see `NotRunning`.
    fn retract(&self) {
        // `try_with`: during thread teardown the registry may be gone already.
        let _ = RUNNING.try_with(|running| running.borrow_mut().remove(&self.mailbox));
        if self.shared.generation.load(Ordering::Acquire) == self.generation {
            *self.shared.addr.write() = None;
        }
        self.shared.notify_space(); // waiting senders now see `NotRunning`
    }

    fn finish(&mut self, outcome: Outcome) {
        self.retract();
        let mut fut = self.fut.take();
        if !matches!(outcome, Outcome::Exited)
            && let Some(fut) = fut.as_mut()
        {
            // Killed or crashed: no more actor code runs (no `stopping`/`stopped`);
            // the actor value is simply dropped.
            fut.ctx().terminate();
        }
        // Dropping a context that is still alive runs its stop hooks; contain a
        // panic there too.
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(fut)));
        let cell = &self.cell;
        let reason = match outcome {
            Outcome::Killed => ExitReason::Killed,
            Outcome::Panicked(msg) => ExitReason::Panic(msg),
            Outcome::Exited => match cell.reason.borrow_mut().take() {
                Some(reason) => reason,
                None if cell.solicited.get() => ExitReason::Shutdown,
                None => ExitReason::Normal,
            },
        };
        let reason = match (dropped, reason) {
            (Err(payload), ExitReason::Normal | ExitReason::Shutdown) => {
                ExitReason::Panic(panic_message(payload.as_ref()))
            }
            (_, reason) => reason,
        };
        cell.settle(reason.clone());
        if !cell.solicited.get()
            && let Some(rep) = &cell.reporter
        {
            // System message, at most one per instance: bounded by the number of
            // children, so it may bypass the mailbox capacity.
            if let Some(supervisor) = rep.supervisor.upgrade() {
                #[allow(clippy::disallowed_methods)]
                supervisor.do_send(ChildExited {
                    key: rep.key,
                    generation: rep.generation,
                    reason,
                });
            }
        }
    }
}

impl<A: Actor<Context = Context<A>>> Drop for ChildTask<A> {
    fn drop(&mut self) {
        // Dropped unfinished: the runtime is shutting down. The context's own
        // drop still runs the actor's stop hooks; keep a panic there contained.
        if let Some(mut fut) = self.fut.take() {
            self.retract();
            let killed = self.cell.command.get() == Some(Command::Kill);
            if killed {
                // killed, but not polled again before the runtime went away:
                // still no more actor code
                fut.ctx().terminate();
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(fut)));
            self.cell.settle(if killed {
                ExitReason::Killed
            } else {
                ExitReason::Shutdown
            });
        }
    }
}

impl<A: Actor<Context = Context<A>>> Future for ChildTask<A> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.step(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                this.finish(outcome);
                Poll::Ready(())
            }
        }
    }
}

/// Failure reporting for actors run by a psvc supervisor.
///
/// Outside a supervisor, `fail` still stops the actor and `fault` only logs.
pub trait SupervisedContext {
    /// Stops this actor with an error: the supervisor sees
    /// [`ExitReason::Error`] and applies its restart policy.
    fn fail<E: std::error::Error + Send + Sync + 'static>(&mut self, err: E);

    /// Reports a fault while the actor keeps running: the supervisor's
    /// strategy may resume it, restart it, stop it or escalate.
    fn fault<E: std::error::Error + Send + Sync + 'static>(&mut self, err: E);
}

impl<A: Actor<Context = Context<A>>> SupervisedContext for Context<A> {
    fn fail<E: std::error::Error + Send + Sync + 'static>(&mut self, err: E) {
        let reason = ExitReason::error(err);
        match cell_of(self) {
            Some(cell) => *cell.reason.borrow_mut() = Some(reason),
            None => tracing::error!(%reason, "actor failed outside a psvc supervisor"),
        }
        self.stop();
    }

    fn fault<E: std::error::Error + Send + Sync + 'static>(&mut self, err: E) {
        let reason = ExitReason::error(err);
        let cell = cell_of(self);
        let sent = cell.as_ref().is_some_and(|cell| match &cell.reporter {
            Some(rep) if !cell.fault_pending.get() => {
                let Some(supervisor) = rep.supervisor.upgrade() else {
                    return false;
                };
                cell.fault_pending.set(true);
                // At most one fault in flight per instance (see `fault_pending`).
                #[allow(clippy::disallowed_methods)]
                supervisor.do_send(ChildFault {
                    key: rep.key,
                    generation: rep.generation,
                    reason: reason.clone(),
                });
                true
            }
            _ => false,
        });
        if !sent {
            tracing::warn!(%reason, "fault not reported (no supervisor, or one already pending)");
        }
    }
}

/// Records the exit reason of the supervised instance behind `ctx` (used by
/// a supervisor that escalates).
pub(crate) fn record_failure<A: Actor<Context = Context<A>>>(ctx: &Context<A>, reason: ExitReason) {
    match cell_of(ctx) {
        Some(cell) => *cell.reason.borrow_mut() = Some(reason),
        None => tracing::debug!("exit reason recorded outside a supervised task"),
    }
}
