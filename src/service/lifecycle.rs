//! What a service implements: the [`Service`] steps (init / run / destroy)
//! and their errors.

use super::context::ServiceContext;

/// The error type of service steps: anything that is an error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failed service step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// `init` failed.
    #[error("init failed: {0}")]
    Init(BoxError),
    /// `run` failed.
    #[error("run failed: {0}")]
    Run(BoxError),
    /// `destroy` failed.
    #[error("destroy failed: {0}")]
    Destroy(BoxError),
}

/// A long-running service.
///
/// All three steps have defaults: `init` and `destroy` do nothing, `run`
/// waits for a shutdown request. The futures need not be `Send`: the
/// service runs on the system arbiter's thread, beside its actors.
#[allow(async_fn_in_trait)]
pub trait Service: 'static {
    /// Prepares the service: start actors with [`ServiceContext::spawn`].
    /// An error skips `run` (but not `destroy`).
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }

    /// The service's main work. Return to stop the service; watch
    /// [`ServiceContext::shutdown_requested`] to stop when asked.
    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        ctx.shutdown_requested().await;
        Ok(())
    }

    /// Cleans up; always runs, even when `init` or `run` failed. Actors are
    /// still running; they stop after `destroy` returns.
    async fn destroy(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let _ = ctx;
        Ok(())
    }
}
