//! One supervised child at run time: the task that runs an actor instance
//! with panic containment, the cell the supervisor steers it through, and
//! the [`ChildRef`] handle that survives restarts.
//!
//! actix runs an actor as a `ContextFut` future. psvc spawns that future
//! inside its own small task (`ChildTask`) that
//! - polls it under `catch_unwind`, so a panicking handler ends only this
//!   instance: the panic message becomes [`ExitReason::Panic`], the pending
//!   callers get an error when the instance is dropped, and the arbiter and
//!   every other actor run on;
//! - obeys stop and kill commands from the supervisor (graceful stop through
//!   the actor's own `stopping()`, or a brutal drop);
//! - records the exit reason and, when the exit was not asked for, reports it
//!   to the supervisor.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::time::Duration;

use actix::dev::{ContextFut, ToEnvelope};
use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, MailboxError, Message, WeakAddr,
};
use parking_lot::RwLock;
use tokio::sync::Notify;

use super::exit::{ExitReason, panic_message};
use super::{ChildExited, ChildFault, Supervisor};

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
        shutdown: super::Shutdown,
        id: Arc<str>,
    ) -> impl Future<Output = ExitReason> + 'static {
        let cell = self.clone();
        async move {
            match shutdown {
                super::Shutdown::BrutalKill => cell.kill(),
                super::Shutdown::Infinity => cell.stop(),
                super::Shutdown::Timeout(limit) => {
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

/// What the handle of a child shares with its running instances.
pub(crate) struct Shared<A: Actor> {
    id: Arc<str>,
    /// The running instance's address. Readers hold the lock only to queue
    /// a message (never across an await); writers are the supervisor, at
    /// start and exit.
    addr: RwLock<Option<Addr<A>>>,
    generation: AtomicU64,
    drop_newest: AtomicBool,
    space: Notify,
    waiters: AtomicUsize,
    dropped: AtomicU64,
}

impl<A: Actor> Shared<A> {
    fn notify_space(&self) {
        if self.waiters.load(Ordering::Acquire) != 0 {
            self.space.notify_waiters();
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

/// What a fire-and-forget [`ChildRef::tell`] does when the mailbox is full.
///
/// psvc never queues past the mailbox capacity: actix's `do_send` (which
/// ignores capacity) is banned in this codebase by clippy's
/// `disallowed-methods`, and every psvc send goes through `try_send`
/// (`tell`), a waiting send (`tell_wait`, `ask`), or this policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// `tell` fails with [`SendError::Full`], handing
    /// the message back to the caller (the default).
    #[default]
    Reject,
    /// `tell` drops the message, counts it in [`ChildRef::dropped`] and logs
    /// a warning (the first drop, then every 1000th).
    DropNewest,
}

/// Why a message could not be queued.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox is full; the message is handed back.
    #[error("mailbox of child `{0}` is full")]
    Full(Arc<str>, M),
    /// No instance is running (stopped, or between a crash and its restart).
    #[error("child `{0}` is not running")]
    NotRunning(Arc<str>, M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(_, m) | Self::NotRunning(_, m) => m,
        }
    }
}

impl<M> std::fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(id, _) => f.debug_tuple("Full").field(id).finish(),
            Self::NotRunning(id, _) => f.debug_tuple("NotRunning").field(id).finish(),
        }
    }
}

/// Why an `ask` got no reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// No instance is running.
    #[error("child `{0}` is not running")]
    NotRunning(Arc<str>),
    /// The instance stopped or crashed before it replied.
    #[error("child `{0}` stopped or crashed before replying")]
    Lost(Arc<str>),
    /// No reply within the timeout.
    #[error("child `{0}` did not reply within {1:?}")]
    Timeout(Arc<str>, Duration),
}

/// A handle to a supervised child that stays valid across restarts.
///
/// An `Addr` dies with the instance it points to; a `ChildRef` always reaches
/// the instance currently running. Messages sent to an instance that
/// crashes are lost with it (the caller of an `ask` gets [`AskError::Lost`]),
/// as in OTP.
pub struct ChildRef<A: Actor> {
    shared: Arc<Shared<A>>,
}

impl<A: Actor> Clone for ChildRef<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for ChildRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.shared.id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl<A: Actor> ChildRef<A> {
    pub(crate) fn new(id: Arc<str>, overflow: Overflow) -> Self {
        Self {
            shared: Arc::new(Shared {
                id,
                addr: RwLock::new(None),
                generation: AtomicU64::new(0),
                drop_newest: AtomicBool::new(overflow == Overflow::DropNewest),
                space: Notify::new(),
                waiters: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn set_overflow(&self, overflow: Overflow) {
        self.shared
            .drop_newest
            .store(overflow == Overflow::DropNewest, Ordering::Relaxed);
    }

    pub(crate) fn shared(&self) -> Arc<Shared<A>> {
        self.shared.clone()
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Whether an instance is running now.
    pub fn is_running(&self) -> bool {
        self.shared.addr.read().is_some()
    }

    /// How many times an instance has been started (1 after the first start).
    pub fn starts(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The address of the running instance. It dies with that instance;
    /// keep the `ChildRef` to reach restarted ones.
    pub fn addr(&self) -> Option<Addr<A>> {
        self.shared.addr.read().clone()
    }

    /// Waits until an instance is running (at once if one is), for at most
    /// `limit`: after an `ask` came back [`AskError::Lost`] or
    /// [`AskError::NotRunning`] because the child is being restarted, this
    /// is how to wait for the new instance before trying again.
    pub async fn wait_running(&self, limit: Duration) -> Result<(), AskError> {
        let wait = async {
            loop {
                let notified = self.shared.space.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.is_running() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| AskError::Timeout(self.shared.id.clone(), limit))
    }

    /// Messages dropped by [`Overflow::DropNewest`].
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues `msg` without waiting. When the mailbox is full the child's
    /// [`Overflow`] policy applies.
    pub fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self.try_tell(msg) {
            Err(SendError::Full(id, msg)) if self.shared.drop_newest.load(Ordering::Relaxed) => {
                drop(msg);
                let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(child = %id, dropped = n + 1, "mailbox full: message dropped");
                }
                Ok(())
            }
            other => other,
        }
    }

    fn try_tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let guard = self.shared.addr.read();
        let Some(addr) = guard.as_ref() else {
            return Err(SendError::NotRunning(self.shared.id.clone(), msg));
        };
        addr.try_send(msg).map_err(|e| match e {
            actix::prelude::SendError::Full(m) => SendError::Full(self.shared.id.clone(), m),
            actix::prelude::SendError::Closed(m) => {
                SendError::NotRunning(self.shared.id.clone(), m)
            }
        })
    }

    /// Queues `msg`, waiting while the mailbox is full (backpressure). Fails
    /// only if no instance is running.
    pub async fn tell_wait<M>(&self, mut msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        // Fast path: room in the mailbox.
        msg = match self.try_tell(msg) {
            Err(SendError::Full(_, m)) => m,
            other => return other,
        };
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.shared.waiters.fetch_add(1, Ordering::AcqRel);
            let _waiting = Waiting(&self.shared.waiters);
            match self.try_tell(msg) {
                Err(SendError::Full(_, m)) => {
                    msg = m;
                    notified.await;
                }
                other => return other,
            }
        }
    }

    /// Sends `msg` and waits for the reply (waiting for mailbox space first).
    pub async fn ask<M>(&self, msg: M) -> Result<M::Result, AskError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let request = {
            let guard = self.shared.addr.read();
            match guard.as_ref() {
                Some(addr) => addr.send(msg),
                None => return Err(AskError::NotRunning(self.shared.id.clone())),
            }
        };
        request
            .await
            .map_err(|_| AskError::Lost(self.shared.id.clone()))
    }

    /// [`ChildRef::ask`] with a deadline.
    pub async fn ask_timeout<M>(&self, msg: M, limit: Duration) -> Result<M::Result, AskError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let request = {
            let guard = self.shared.addr.read();
            match guard.as_ref() {
                Some(addr) => addr.send(msg).timeout(limit),
                None => return Err(AskError::NotRunning(self.shared.id.clone())),
            }
        };
        request.await.map_err(|e| match e {
            MailboxError::Timeout => AskError::Timeout(self.shared.id.clone(), limit),
            MailboxError::Closed => AskError::Lost(self.shared.id.clone()),
        })
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
