//! The errors of supervisor operations.

use super::child::AskError;
use super::exit::ExitReason;

/// Errors from supervisor operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No child has this id.
    #[error("supervisor `{supervisor}` has no child `{id}`")]
    NotFound {
        /// The supervisor.
        supervisor: String,
        /// The id asked for.
        id: String,
    },
    /// A child with this id exists already.
    #[error("supervisor `{supervisor}` already has a child `{id}`")]
    DuplicateId {
        /// The supervisor.
        supervisor: String,
        /// The duplicate id.
        id: String,
    },
    /// The child's factory failed.
    #[error("child `{id}` failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: String,
        /// Why.
        reason: ExitReason,
    },
    /// The supervisor is shutting down and takes no new work.
    #[error("supervisor `{0}` is shutting down")]
    ShuttingDown(String),
    /// The child has no running instance (stopped, or waiting to restart).
    #[error("child `{0}` is not running")]
    NotRunning(String),
    /// The supervisor is not running (or stopped while handling the request).
    #[error("supervisor is not reachable: {0}")]
    Unreachable(#[from] AskError),
}
