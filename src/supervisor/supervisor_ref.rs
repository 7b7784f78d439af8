//! [`SupervisorRef`]: a stable handle to a running supervisor, and the
//! run-time operations on its children.

use std::sync::Arc;

use actix::{Actor, Context};

use super::Supervisor;
use super::child::ChildRef;
use super::error::Error;
use super::requests::{
    DeleteChild, KillChild, NestedSupervisor, RestartChild, StartChild, StopChild, WhichChildren,
};
use super::spec::{ChildInfo, ChildSpec};

/// A stable handle to a supervisor (valid across its restarts).
#[derive(Clone, Debug)]
pub struct SupervisorRef(pub(super) ChildRef<Supervisor>);

impl SupervisorRef {
    /// The handle of a nested supervisor started as a child.
    pub fn from_child(child: ChildRef<Supervisor>) -> Self {
        Self(child)
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        self.0.id()
    }

    /// The underlying child handle.
    pub fn child_ref(&self) -> &ChildRef<Supervisor> {
        &self.0
    }

    /// Adds and starts a child at run time.
    pub async fn start_child<A: Actor<Context = Context<A>>>(
        &self,
        spec: ChildSpec<A>,
    ) -> Result<ChildRef<A>, Error> {
        let handle = spec.handle();
        self.0.ask(StartChild(Arc::new(spec))).await??;
        Ok(handle)
    }

    /// Stops a child (within its shutdown policy); it stays in the tree,
    /// stopped, until restarted or deleted.
    pub async fn stop_child(&self, id: &str) -> Result<(), Error> {
        self.0.ask(StopChild(id.to_owned())).await?
    }

    /// Restarts a child: stops it if it runs, then starts a new instance.
    pub async fn restart_child(&self, id: &str) -> Result<(), Error> {
        self.0.ask(RestartChild(id.to_owned())).await?
    }

    /// Kills a child's running instance at once, as a crash would end it
    /// (OTP's `exit(Pid, kill)`): no more of its code runs, the exit is
    /// [`ExitReason::Killed`](super::ExitReason::Killed) and the strategy
    /// decides what follows, as for a panic. For operators, and for tests of
    /// what survives a crash.
    pub async fn kill_child(&self, id: &str) -> Result<(), Error> {
        self.0.ask(KillChild(id.to_owned())).await?
    }

    /// Stops a child and removes it from the tree.
    pub async fn delete_child(&self, id: &str) -> Result<(), Error> {
        self.0.ask(DeleteChild(id.to_owned())).await?
    }

    /// The children in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, Error> {
        Ok(self.0.ask(WhichChildren).await?)
    }

    /// The nested supervisor started as the child `id`, to walk the tree
    /// (`None` if there is no such child or it is not a supervisor).
    pub async fn nested(&self, id: &str) -> Result<Option<SupervisorRef>, Error> {
        let child = self.0.ask(NestedSupervisor(id.to_owned())).await?;
        Ok(child.map(SupervisorRef))
    }
}
