//! The run-time requests a [`Supervisor`] handles (sent by
//! [`SupervisorRef`](super::SupervisorRef)): start, stop, kill, restart,
//! delete and list children.

use std::sync::Arc;

use actix::prelude::*;

use super::Supervisor;
use super::children::Slot;
use super::error::Error;
use super::spec::{ChildInfo, ErasedSpec};

/// Adds and starts a child at run time (see
/// [`SupervisorRef::start_child`](super::SupervisorRef::start_child)).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct StartChild(pub(super) Arc<dyn ErasedSpec>);

/// Stops a child by id (see
/// [`SupervisorRef::stop_child`](super::SupervisorRef::stop_child)).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct StopChild(pub String);

/// Kills a child's instance by id (see
/// [`SupervisorRef::kill_child`](super::SupervisorRef::kill_child)).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct KillChild(pub String);

/// Restarts a child by id (see
/// [`SupervisorRef::restart_child`](super::SupervisorRef::restart_child)).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct RestartChild(pub String);

/// Stops and removes a child by id (see
/// [`SupervisorRef::delete_child`](super::SupervisorRef::delete_child)).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct DeleteChild(pub String);

/// Lists the children (see
/// [`SupervisorRef::which_children`](super::SupervisorRef::which_children)).
#[derive(Message)]
#[rtype(result = "Vec<ChildInfo>")]
pub struct WhichChildren;

impl Handler<StartChild> for Supervisor {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: StartChild, ctx: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return Err(Error::ShuttingDown(self.name.to_string()));
        }
        let id = msg.0.id().clone();
        let Some(key) = self.children.push(Slot::new(msg.0, true)) else {
            return Err(Error::DuplicateId {
                supervisor: self.name.to_string(),
                id: id.to_string(),
            });
        };
        self.start_slot(key, ctx).map_err(|reason| {
            self.children.remove(key);
            Error::StartFailed {
                id: id.to_string(),
                reason,
            }
        })
    }
}

impl Supervisor {
    /// An exclusive response: no failure report is handled half-way through,
    /// as with every stop the supervisor makes.
    fn atomic<F>(fut: F) -> AtomicResponse<Self, Result<(), Error>>
    where
        F: ActorFuture<Self, Output = Result<(), Error>> + 'static,
    {
        AtomicResponse::new(Box::pin(fut))
    }

    fn refuse(err: Error) -> AtomicResponse<Self, Result<(), Error>> {
        Self::atomic(fut::ready(Err(err)))
    }
}

impl Handler<StopChild> for Supervisor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: StopChild, ctx: &mut Context<Self>) -> Self::Result {
        let Some(key) = self.children.key_of(&msg.0) else {
            return Self::refuse(self.not_found(&msg.0));
        };
        self.cancel_pending(key, ctx);
        Self::atomic(Self::stop_keys(vec![key]).map(|(), _, _| Ok(())))
    }
}

impl Handler<RestartChild> for Supervisor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: RestartChild, ctx: &mut Context<Self>) -> Self::Result {
        if self.shutting_down {
            return Self::refuse(Error::ShuttingDown(self.name.to_string()));
        }
        let Some(key) = self.children.key_of(&msg.0) else {
            return Self::refuse(self.not_found(&msg.0));
        };
        self.cancel_pending(key, ctx);
        Self::atomic(Self::stop_keys(vec![key]).map(move |(), act, ctx| {
            if act.shutting_down {
                return Err(Error::ShuttingDown(act.name.to_string()));
            }
            let slot = act.children.get_mut(key).ok_or_else(|| Error::NotFound {
                supervisor: act.name.to_string(),
                id: msg.0.clone(),
            })?;
            slot.restarts += 1;
            act.start_slot(key, ctx)
                .map_err(|reason| Error::StartFailed {
                    id: msg.0.clone(),
                    reason,
                })
        }))
    }
}

impl Handler<KillChild> for Supervisor {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: KillChild, _: &mut Context<Self>) -> Self::Result {
        let Some(key) = self.children.key_of(&msg.0) else {
            return Err(self.not_found(&msg.0));
        };
        let running = self.children.get_mut(key).and_then(|s| s.running.clone());
        match running {
            Some(cell) => {
                cell.crash();
                Ok(())
            }
            None => Err(Error::NotRunning(msg.0)),
        }
    }
}

impl Handler<DeleteChild> for Supervisor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: DeleteChild, ctx: &mut Context<Self>) -> Self::Result {
        let Some(key) = self.children.key_of(&msg.0) else {
            return Self::refuse(self.not_found(&msg.0));
        };
        self.cancel_pending(key, ctx);
        Self::atomic(Self::stop_keys(vec![key]).map(move |(), act, _| {
            act.children.remove(key);
            Ok(())
        }))
    }
}

/// The handle of a nested supervisor by id (see
/// [`SupervisorRef::nested`](super::SupervisorRef::nested)).
#[derive(Message)]
#[rtype(result = "Option<super::child::ChildRef<Supervisor>>")]
pub struct NestedSupervisor(pub String);

impl Handler<NestedSupervisor> for Supervisor {
    type Result = Option<super::child::ChildRef<Supervisor>>;

    fn handle(&mut self, msg: NestedSupervisor, _: &mut Context<Self>) -> Self::Result {
        let key = self.children.key_of(&msg.0)?;
        self.children.get(key)?.spec.nested()
    }
}

impl Handler<WhichChildren> for Supervisor {
    type Result = MessageResult<WhichChildren>;

    fn handle(&mut self, _: WhichChildren, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.infos())
    }
}
