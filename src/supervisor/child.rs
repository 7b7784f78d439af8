//! One supervised child at run time: the task that runs an actor instance
//! with panic containment, the cell the supervisor steers it through, and
//! the [`ChildRef`] handle that survives restarts.
//!
//! actix runs an actor as a `ContextFut` future. psvc spawns that future
//! inside its own small task (`ChildTask`) that
//! - polls it under `catch_unwind`, so a panicking handler ends only this
//!   instance: the panic message becomes
//!   [`ExitReason::Panic`](super::ExitReason::Panic), the pending callers get
//!   an error when the instance is dropped, and the arbiter and every other
//!   actor run on;
//! - obeys stop and kill commands from the supervisor (graceful stop through
//!   the actor's own `stopping()`, or a brutal drop);
//! - records the exit reason and, when the exit was not asked for, reports it
//!   to the supervisor.
//!
//! The handle side ([`ChildRef`], its errors and [`Overflow`] policy) is in
//! `child/handle.rs`; the task, the cell and [`SupervisedContext`] in
//! `child/task.rs`.

mod handle;
mod task;

pub use handle::{AskError, ChildRef, Overflow, SendError};
pub(crate) use task::{ChildCell, Prepare, Reporter, record_failure, spawn};
pub use task::{Shutdown, SupervisedContext};
