//! What a service sees of its system: the [`ServiceContext`].

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Context, Message};
use tokio::sync::watch;

use super::shutdown::{Phase, ShutdownTrigger};
use super::sys::{ReloadError, Sys, SysStats, reload_and_wait, request_reload};
use crate::commander::Commander;
use crate::config::Config;
use crate::socket::{Auth, Server};
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
    /// What the system commands read.
    pub(super) sys: Sys,
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

    /// Reloads the configuration and waits for the outcome: `Ok` once a
    /// reload that began after this call applied a new configuration.
    ///
    /// # Errors
    /// [`ReloadError::Refused`] (with the reason) if the new configuration
    /// was bad and the running one stays; [`ReloadError::NotDone`] if the
    /// service is stopping or no reload ended within 30 s.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        reload_and_wait(&self.reload, self.sys.reloaded.clone()).await
    }

    /// A Commander that already serves this service's system commands
    /// (`/sys/ping`, `/sys/help`, `/sys/children`, `/sys/restart`,
    /// `/sys/reload`, `/sys/stats`; see `docs/operations.md`) as
    /// `[PSVC] sys_commands` allows: to everyone the server lets in
    /// (`all`, the default), only with the admin token (`admin`), or not
    /// at all (`off`). Add your routes to it.
    pub fn commander(&self) -> Commander {
        self.sys.routes(Commander::new(), &self.config().psvc)
    }

    /// A [`Server`] whose connections, calls and errors count in this
    /// service's `/sys/stats` and metrics.
    pub fn server(&self, auth: Auth) -> Server {
        Server::new(auth).count_into(self.sys.stats.clone())
    }

    /// The service's figures, as `/sys/stats` replies them.
    pub async fn stats(&self) -> SysStats {
        self.sys.stats().await
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
