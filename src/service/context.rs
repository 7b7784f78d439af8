//! What a service sees of its system: the [`ServiceContext`].

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Context, Message};
use tokio::sync::watch;

use super::shutdown::{Phase, ShutdownTrigger};
use crate::config::Config;
use crate::supervisor::{self, ChildRecipient, ChildRef, ChildSpec, SupervisorRef, SupervisorSpec};

/// Delivered to subscribers after SIGHUP reloaded the configuration.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ConfigReloaded(pub Arc<Config>);

/// What a service sees of its system: configuration, the root supervisor,
/// shutdown and reload.
pub struct ServiceContext {
    pub(super) name: Arc<str>,
    pub(super) config: watch::Sender<Arc<Config>>,
    pub(super) root: SupervisorRef,
    pub(super) phase: watch::Sender<Phase>,
    pub(super) restart: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub(super) reload_subscribers: Rc<RefCell<Vec<ChildRecipient<ConfigReloaded>>>>,
    /// `None` while `init` runs; then whether it succeeded.
    pub(super) ready: watch::Sender<Option<bool>>,
    /// Reload requests (one waiting at most: they coalesce).
    pub(super) reload: tokio::sync::mpsc::Sender<()>,
}

/// Requests a reload; one already waiting covers this one (the channel
/// holds one request: reloads coalesce, none is lost).
pub(super) fn request_reload(requests: &tokio::sync::mpsc::Sender<()>) {
    use tokio::sync::mpsc::error::TrySendError;
    match requests.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) => {}
        Err(TrySendError::Closed(())) => {
            tracing::debug!("reload not requested: the service is stopping");
        }
    }
}

/// Whether the service is ready: its `init` returned `Ok` (the moment
/// systemd is told `READY=1`). Cheap to clone; see
/// [`ServiceContext::readiness`].
#[derive(Clone, Debug)]
pub struct Readiness(watch::Receiver<Option<bool>>);

impl Readiness {
    /// Whether the service is ready now.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow() == Some(true)
    }

    /// Resolves to `true` once the service is ready, or `false` if it never
    /// will be (its `init` failed or was cut short, or the service is gone).
    pub async fn wait(mut self) -> bool {
        matches!(
            self.0.wait_for(Option::is_some).await.as_deref(),
            Ok(Some(true))
        )
    }
}

impl ServiceContext {
    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current configuration (replaced on reload).
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// A receiver that sees every reloaded configuration.
    pub fn config_updates(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// The root supervisor.
    pub fn root(&self) -> &SupervisorRef {
        &self.root
    }

    /// Starts `spec` under the root supervisor.
    pub async fn spawn<A: Actor<Context = Context<A>>>(
        &self,
        spec: ChildSpec<A>,
    ) -> Result<ChildRef<A>, supervisor::Error> {
        self.root.start_child(spec).await
    }

    /// Starts a nested supervisor under the root and returns its handle.
    pub async fn spawn_supervisor(
        &self,
        spec: SupervisorSpec,
    ) -> Result<SupervisorRef, supervisor::Error> {
        let child = self.root.start_child(spec.into_child()).await?;
        Ok(SupervisorRef::from_child(child))
    }

    /// Resolves when a shutdown has been requested.
    pub fn shutdown_requested(&self) -> impl Future<Output = ()> + 'static {
        let mut rx = self.phase.subscribe();
        async move {
            // An error means the system is gone: that is a shutdown too.
            let _ = rx.wait_for(|p| *p != Phase::Running).await;
        }
    }

    /// Whether a shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        *self.phase.borrow() != Phase::Running
    }

    /// Requests a graceful shutdown, as SIGTERM does.
    pub fn request_shutdown(&self) {
        self.shutdown_trigger().request();
    }

    /// Requests a graceful shutdown and a fresh start of the same command
    /// line (see [`ShutdownTrigger::request_restart`]).
    pub fn request_restart(&self) {
        self.shutdown_trigger().request_restart();
    }

    /// A handle that requests the shutdown (or a restart) from another task.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger {
            phase: self.phase.clone(),
            restart: self.restart.clone(),
        }
    }

    /// Reloads the configuration as SIGHUP does: subscribers get
    /// [`ConfigReloaded`] with the new one, or the running one stays if the
    /// new one is bad. Requests made while one waits are covered by it.
    pub fn request_reload(&self) {
        request_reload(&self.reload);
    }

    /// The service's readiness: ready once `init` has returned `Ok`. An
    /// Updater given it reports a new version healthy at that moment.
    pub fn readiness(&self) -> Readiness {
        Readiness(self.ready.subscribe())
    }

    /// Delivers [`ConfigReloaded`] to `recipient` after every reload: a
    /// [`ChildRef::recipient`] (which follows restarts) or a plain actix
    /// `Recipient` (`.into()`).
    pub fn subscribe_reload(&self, recipient: impl Into<ChildRecipient<ConfigReloaded>>) {
        self.reload_subscribers.borrow_mut().push(recipient.into());
    }
}
