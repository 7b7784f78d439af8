//! Dynamic children of one spec (OTP `simple_one_for_one`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::{Actor, Context};

use super::{ChildRef, ChildSpec, Error, Restart, Shutdown, SupervisorRef};

type Template<A, Args> = dyn Fn(Args) -> A + Send + Sync;

/// Starts any number of children from one template under a supervisor.
///
/// Each child gets the id `<prefix>-<n>` and is restarted with a clone of the
/// arguments it was spawned with. Children that are not restarted (a
/// transient child that exited normally, a temporary child) are removed from
/// the supervisor.
pub struct DynamicSupervisor<A: Actor<Context = Context<A>>, Args> {
    supervisor: SupervisorRef,
    template: Arc<Template<A, Args>>,
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
    restart: Restart,
    shutdown: Shutdown,
    capacity: Option<usize>,
}

impl<A: Actor<Context = Context<A>>, Args> Clone for DynamicSupervisor<A, Args> {
    fn clone(&self) -> Self {
        Self {
            supervisor: self.supervisor.clone(),
            template: self.template.clone(),
            prefix: self.prefix.clone(),
            next: self.next.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            capacity: self.capacity,
        }
    }
}

impl<A, Args> DynamicSupervisor<A, Args>
where
    A: Actor<Context = Context<A>>,
    Args: Clone + Send + Sync + 'static,
{
    /// Children built by `template` under `supervisor`, named `<prefix>-<n>`.
    pub fn new(
        supervisor: SupervisorRef,
        prefix: impl Into<String>,
        template: impl Fn(Args) -> A + Send + Sync + 'static,
    ) -> Self {
        Self {
            supervisor,
            template: Arc::new(template),
            prefix: Arc::from(prefix.into()),
            next: Arc::new(AtomicU64::new(0)),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(std::time::Duration::from_secs(5)),
            capacity: None,
        }
    }

    /// The restart type of every child.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// The shutdown policy of every child.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The mailbox capacity of every child.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The supervisor the children run under.
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// Starts one more child with `args`.
    pub async fn spawn(&self, args: Args) -> Result<ChildRef<A>, Error> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let template = self.template.clone();
        let mut spec = ChildSpec::new(format!("{}-{n}", self.prefix), move || {
            template(args.clone())
        })
        .restart(self.restart)
        .shutdown(self.shutdown);
        if let Some(capacity) = self.capacity {
            spec = spec.mailbox_capacity(capacity);
        }
        self.supervisor.start_child(spec).await
    }
}
