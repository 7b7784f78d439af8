//! How to build a supervisor ([`SupervisorSpec`]), and the root of a tree
//! started from one ([`RootSupervisor`]).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context};

use super::Supervisor;
use super::backoff::{Backoff, Intensity};
use super::child::{self, ChildCell, ChildRef};
use super::exit::ExitReason;
use super::spec::{ChildKind, ChildSpec, ErasedSpec, Overflow, Shutdown};
use super::strategy::{OneForOne, Strategy};
use super::supervisor_ref::SupervisorRef;

type StrategyFactory = Arc<dyn Fn() -> Box<dyn Strategy> + Send + Sync>;

/// How to build a supervisor: its strategy, limits and static children.
#[derive(Clone)]
pub struct SupervisorSpec {
    pub(super) name: Arc<str>,
    pub(super) strategy: StrategyFactory,
    pub(super) intensity: Intensity,
    pub(super) backoff: Backoff,
    pub(super) children: Vec<Arc<dyn ErasedSpec>>,
    pub(super) seed: Option<u64>,
}

impl std::fmt::Debug for SupervisorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorSpec")
            .field("name", &self.name)
            .field("intensity", &self.intensity)
            .field("backoff", &self.backoff)
            .field(
                "children",
                &self
                    .children
                    .iter()
                    .map(|c| c.id().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SupervisorSpec {
    /// A one_for_one supervisor with OTP's default intensity (1 restart in
    /// 5 s) and no backoff.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: Arc::from(name.into()),
            strategy: Arc::new(|| Box::new(OneForOne)),
            intensity: Intensity::default(),
            backoff: Backoff::none(),
            children: Vec::new(),
            seed: None,
        }
    }

    /// Sets the restart strategy (built-in or your own). Each supervisor
    /// instance gets its own clone, so a stateful strategy starts fresh
    /// when its supervisor is restarted.
    pub fn strategy<S: Strategy + Clone + Sync>(mut self, strategy: S) -> Self {
        self.strategy = Arc::new(move || Box::new(strategy.clone()));
        self
    }

    /// At most `max_restarts` restarts within `within`, else escalate.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity::new(max_restarts, within);
        self
    }

    /// Delays between consecutive restarts of a child.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Seeds the jitter generator (for reproducible schedules in tests).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a static child; children start in the order they are added.
    pub fn child<A: Actor<Context = Context<A>>>(mut self, spec: ChildSpec<A>) -> Self {
        self.children.push(Arc::new(spec));
        self
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This supervisor as a child of another one (shutdown `Infinity`).
    pub fn into_child(self) -> ChildSpec<Supervisor> {
        let name = self.name.to_string();
        ChildSpec::new(name, move || Supervisor::new(self.clone()))
            .kind(ChildKind::Supervisor)
            .shutdown(Shutdown::Infinity)
            .mailbox_capacity(SUPERVISOR_MAILBOX)
            .prepare(Supervisor::start_children)
    }

    /// Starts this supervisor as the root of a tree on the current arbiter.
    /// Must be called inside a running actix `System`. Its static children
    /// are running when this returns.
    pub fn start_root(self) -> RootSupervisor {
        let handle = ChildRef::new(self.name.clone(), Overflow::Reject);
        // A root whose children fail to start has exited already, with the
        // reason (an escalation), just as if it had started and given up.
        let cell = child::spawn(
            Supervisor::new(self),
            SUPERVISOR_MAILBOX,
            handle.shared(),
            None,
            Some(Supervisor::start_children),
        )
        .unwrap_or_else(ChildCell::ended);
        RootSupervisor {
            handle: SupervisorRef(handle),
            cell,
        }
    }
}

/// Mailbox capacity of every supervisor.
const SUPERVISOR_MAILBOX: usize = 1024;

/// The root of a supervision tree, as started by [`SupervisorSpec::start_root`].
pub struct RootSupervisor {
    handle: SupervisorRef,
    cell: Rc<ChildCell>,
}

impl RootSupervisor {
    /// A handle to the root supervisor.
    pub fn handle(&self) -> SupervisorRef {
        self.handle.clone()
    }

    /// Resolves with the root's exit reason when it has stopped.
    pub fn exited(&self) -> impl Future<Output = ExitReason> + 'static {
        self.cell.exited()
    }

    /// The exit reason if the root has already stopped.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.cell.exit_reason()
    }

    /// Stops the tree: children in reverse order, each within its shutdown
    /// policy. Resolves with the root's exit reason.
    pub fn shutdown(&self) -> impl Future<Output = ExitReason> + 'static {
        self.cell.shut_down(Shutdown::Infinity, Arc::from("root"))
    }

    /// Kills the root at once (its children are killed with it).
    pub fn kill(&self) {
        self.cell.kill();
    }
}
