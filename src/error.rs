//! The crate-wide error type.

/// Any psvc error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// Logging could not be set up.
    #[error(transparent)]
    Logging(#[from] crate::logging::Error),
    /// A supervisor operation failed.
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::Error),
    /// A service step (init, run, destroy) failed.
    #[error("{0}")]
    Service(#[from] crate::service::ServiceError),
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
