//! Child specifications: how to create a child, when to restart it, how to
//! stop it, and how big its mailbox is.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context};

use super::child::{self, ChildCell, ChildRef, Reporter};
use super::exit::{ExitReason, SharedError, panic_message};

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Always restarted (the default).
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (not after
    /// [`ExitReason::Normal`] or [`ExitReason::Shutdown`]).
    Transient,
    /// Never restarted, not even when a sibling's failure stops it; removed
    /// from the supervisor when it exits.
    Temporary,
}

impl Restart {
    /// Whether a child with this restart type is restarted after `reason`.
    pub fn restarts_after(self, reason: &ExitReason) -> bool {
        match self {
            Self::Permanent => true,
            Self::Transient => !reason.is_normal(),
            Self::Temporary => false,
        }
    }
}

pub use super::child::Shutdown;

/// Whether a child is a worker or a nested supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildKind {
    /// An ordinary actor.
    Worker,
    /// A nested [`Supervisor`](super::Supervisor).
    Supervisor,
}

pub use super::child::Overflow;

/// Mailbox settings of a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Messages the mailbox holds before sends are refused or wait.
    pub capacity: usize,
    /// What `tell` does when it is full.
    pub overflow: Overflow,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self {
            capacity: 64,
            overflow: Overflow::Reject,
        }
    }
}

/// What the supervisor knows about one child (see
/// [`SupervisorRef::which_children`](super::SupervisorRef::which_children)).
#[derive(Clone, Debug)]
pub struct ChildInfo {
    /// The child's id, unique in its supervisor.
    pub id: String,
    /// Its position in start order.
    pub index: usize,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// Running, stopped, or waiting for a (backoff) restart.
    pub state: ChildState,
    /// How many times it has been restarted.
    pub restarts: u64,
    /// Failures since it last ran stably (drives backoff).
    pub consecutive_failures: u32,
    /// When the current instance started.
    pub started_at: Option<Instant>,
    /// Whether it was added at run time.
    pub dynamic: bool,
}

/// The run state of a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildState {
    /// An instance is running.
    Running,
    /// No instance runs and none is scheduled.
    Stopped,
    /// A restart is scheduled (backoff or cool-down).
    Restarting,
}

type Factory<A> = dyn Fn() -> Result<A, SharedError> + Send + Sync;

/// How to create and run one child actor.
///
/// The factory is called for the first start and for every restart, so each
/// restart gets fresh state. [`ChildSpec::handle`] gives a [`ChildRef`] that
/// stays valid across restarts.
///
/// ```
/// use actix::prelude::*;
/// use psvc::supervisor::{ChildSpec, Restart, Shutdown};
/// use std::time::Duration;
///
/// #[derive(Default)]
/// struct Worker;
/// impl Actor for Worker { type Context = Context<Self>; }
///
/// let spec = ChildSpec::new("worker", Worker::default)
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(2)))
///     .mailbox_capacity(256);
/// let handle = spec.handle();
/// assert_eq!(handle.id(), "worker");
/// ```
pub struct ChildSpec<A: Actor<Context = Context<A>>> {
    pub(crate) id: Arc<str>,
    factory: Arc<Factory<A>>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    mailbox: Mailbox,
    handle: ChildRef<A>,
    prepare: Option<child::Prepare<A>>,
    /// This child's own restart delays, instead of its supervisor's.
    backoff: Option<super::Backoff>,
}

impl<A: Actor<Context = Context<A>>> Clone for ChildSpec<A> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            factory: self.factory.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            mailbox: self.mailbox,
            handle: self.handle.clone(),
            prepare: self.prepare,
            backoff: self.backoff,
        }
    }
}

impl<A: Actor<Context = Context<A>>> fmt::Debug for ChildSpec<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

impl<A: Actor<Context = Context<A>>> ChildSpec<A> {
    /// A permanent worker built by `factory`, stopped with a 5 s timeout.
    pub fn new(id: impl Into<String>, factory: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Self::from_factory(id.into(), Arc::new(move || Ok(factory())))
    }

    /// Like [`ChildSpec::new`] with a factory that can fail; a failure at
    /// restart counts as another failure of the child.
    pub fn try_new<E>(
        id: impl Into<String>,
        factory: impl Fn() -> Result<A, E> + Send + Sync + 'static,
    ) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::from_factory(
            id.into(),
            Arc::new(move || factory().map_err(|e| Arc::new(e) as SharedError)),
        )
    }

    pub(crate) fn from_factory(id: String, factory: Arc<Factory<A>>) -> Self {
        let id: Arc<str> = Arc::from(id);
        let mailbox = Mailbox::default();
        Self {
            handle: ChildRef::new(id.clone(), mailbox.overflow),
            id,
            factory,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(Duration::from_secs(5)),
            kind: ChildKind::Worker,
            mailbox,
            prepare: None,
            backoff: None,
        }
    }

    /// Gives this child restart delays of its own (its failures and the
    /// restarts they cause wait by this backoff instead of the
    /// supervisor's; the supervisor's intensity still counts them).
    pub fn backoff(mut self, backoff: super::Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the mailbox capacity (at least 1).
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.mailbox.capacity = capacity.max(1);
        self
    }

    /// Sets what `tell` does when the mailbox is full.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.mailbox.overflow = overflow;
        self.handle.set_overflow(overflow);
        self
    }

    pub(crate) fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    pub(crate) fn prepare(mut self, prepare: child::Prepare<A>) -> Self {
        self.prepare = Some(prepare);
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A handle that reaches whichever instance of this child is running.
    pub fn handle(&self) -> ChildRef<A> {
        self.handle.clone()
    }
}

/// A type-erased child spec, as the supervisor stores it.
pub(crate) trait ErasedSpec: Send + Sync {
    fn id(&self) -> &Arc<str>;
    fn restart(&self) -> Restart;
    fn shutdown(&self) -> Shutdown;
    fn kind(&self) -> ChildKind;
    /// Creates an instance and spawns it on the current arbiter.
    fn start(&self, reporter: Option<Reporter>) -> Result<Rc<ChildCell>, ExitReason>;
    /// The handle of this child if it is a nested supervisor.
    fn nested(&self) -> Option<ChildRef<super::Supervisor>>;
    /// Its own backoff, if it has one.
    fn backoff(&self) -> Option<super::Backoff>;
}

impl<A: Actor<Context = Context<A>>> ErasedSpec for ChildSpec<A> {
    fn id(&self) -> &Arc<str> {
        &self.id
    }
    fn restart(&self) -> Restart {
        self.restart
    }
    fn shutdown(&self) -> Shutdown {
        self.shutdown
    }
    fn kind(&self) -> ChildKind {
        self.kind
    }
    fn backoff(&self) -> Option<super::Backoff> {
        self.backoff
    }
    fn nested(&self) -> Option<ChildRef<super::Supervisor>> {
        let handle: &dyn std::any::Any = &self.handle;
        handle
            .downcast_ref::<ChildRef<super::Supervisor>>()
            .cloned()
    }
    fn start(&self, reporter: Option<Reporter>) -> Result<Rc<ChildCell>, ExitReason> {
        // A panicking factory is a failed start, not a crash of the supervisor.
        let actor = match catch_unwind(AssertUnwindSafe(|| (self.factory)())) {
            Ok(Ok(actor)) => actor,
            Ok(Err(err)) => return Err(ExitReason::Error(err)),
            Err(payload) => return Err(ExitReason::Panic(panic_message(payload.as_ref()))),
        };
        child::spawn(
            actor,
            self.mailbox.capacity,
            self.handle.shared(),
            reporter,
            self.prepare,
        )
    }
}
