//! The service lifecycle: a [`Service`] (init / run / destroy, as in
//! PyService) run by a [`ServiceSystem`] that owns the configuration, the
//! logging, the signals and the root supervisor.
//!
//! Order of events:
//! 1. load the configuration (embedded defaults, file, environment, code);
//!    an error ends the process with [`ExitStatus::Config`] (78);
//! 2. set up logging, start the actix `System` and the root supervisor;
//! 3. `init`; if it fails, `run` is skipped;
//! 4. `run`, until it returns, the root supervisor escalates, or a
//!    shutdown is requested (SIGTERM, SIGINT, [`ServiceContext::request_shutdown`])
//!    and `run` returns or the shutdown deadline passes;
//! 5. `destroy`, always, while the actors still run;
//! 6. the supervision tree stops, children in reverse order;
//! 7. the process exits with an [`ExitStatus`].
//!
//! The whole graceful shutdown (4–6) must fit in `[PSVC] shutdown_timeout`,
//! counted from the request; if `run` overruns it, `run` is dropped and
//! `destroy` plus the tree still get a quarter of the timeout. Past the
//! deadline, or on a second SIGTERM/SIGINT, the tree is killed at once.
//! SIGHUP reloads the configuration and tells subscribers
//! ([`ServiceContext::subscribe_reload`]); a bad file is logged and the running
//! configuration kept.

mod cli;
mod systemd;

pub use cli::CliError;

use std::cell::RefCell;
use std::future::Future;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Context, Message};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Config, ConfigLoader};
use crate::logging::{self, LogFilter};
use crate::supervisor::{
    self, ChildRecipient, ChildRef, ChildSpec, ExitReason, RootSupervisor, SendError,
    SupervisorRef, SupervisorSpec,
};

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

/// How the service ended; converts to the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// Clean stop (exit code 0).
    Success,
    /// `init`, `run` or `destroy` returned an error (1).
    Failed,
    /// The graceful shutdown did not finish within the deadline; the tree was
    /// killed (2).
    DeadlineExceeded,
    /// The root supervisor escalated: restart intensity exceeded (70, EX_SOFTWARE).
    Escalated,
    /// The configuration could not be loaded, or logging set up (78, EX_CONFIG).
    Config,
    /// The command line was not understood (64, EX_USAGE).
    Usage,
    /// A second SIGTERM/SIGINT forced the stop (128 + signal number).
    Forced(i32),
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::DeadlineExceeded => 2,
            Self::Escalated => 70,
            Self::Usage => 64,
            Self::Config => 78,
            Self::Forced(sig) => 128i32
                .checked_add(sig)
                .and_then(|code| u8::try_from(code).ok())
                .unwrap_or(255),
        }
    }

    /// Keeps the more serious of two statuses.
    fn worst(self, other: Self) -> Self {
        let rank = |s: Self| match s {
            Self::Success => 0,
            Self::Failed => 1,
            Self::DeadlineExceeded => 2,
            Self::Escalated => 3,
            Self::Usage | Self::Config => 4,
            Self::Forced(_) => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

impl std::process::Termination for ExitStatus {
    fn report(self) -> ExitCode {
        self.into()
    }
}

/// Delivered to subscribers after SIGHUP reloaded the configuration.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct ConfigReloaded(pub Arc<Config>);

/// The shutdown phase of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// A graceful shutdown was requested at this instant.
    Stopping(Instant),
    Forced(i32),
}

/// Moves a running service to `Stopping` (once; later requests keep the
/// first instant, which starts the shutdown deadline).
fn begin_stopping(phase: &watch::Sender<Phase>) {
    phase.send_if_modified(|p| {
        let start = *p == Phase::Running;
        if start {
            *p = Phase::Stopping(Instant::now());
        }
        start
    });
}

/// Requests a shutdown of a running service from anywhere (another task,
/// another thread, a test). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger(watch::Sender<Phase>);

impl ShutdownTrigger {
    /// Requests a graceful shutdown, as SIGTERM does.
    pub fn request(&self) {
        begin_stopping(&self.0);
    }

    /// Forces the stop at once, as a second signal does (`sig` is reported
    /// in the exit code, 128 + `sig`).
    pub fn force(&self, sig: i32) {
        self.0.send_replace(Phase::Forced(sig));
    }
}

/// What a service sees of its system: configuration, the root supervisor,
/// shutdown and reload.
pub struct ServiceContext {
    name: Arc<str>,
    config: watch::Sender<Arc<Config>>,
    root: SupervisorRef,
    phase: watch::Sender<Phase>,
    reload_subscribers: Rc<RefCell<Vec<ChildRecipient<ConfigReloaded>>>>,
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

    /// A handle that requests the shutdown from another task.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.phase.clone())
    }

    /// Delivers [`ConfigReloaded`] to `recipient` after every reload: a
    /// [`ChildRef::recipient`] (which follows restarts) or a plain actix
    /// `Recipient` (`.into()`).
    pub fn subscribe_reload(&self, recipient: impl Into<ChildRecipient<ConfigReloaded>>) {
        self.reload_subscribers.borrow_mut().push(recipient.into());
    }
}

/// Builds and runs a service: configuration, logging, signals, the root
/// supervisor and the [`Service`] lifecycle.
///
/// ```no_run
/// use psvc::prelude::*;
///
/// struct Hello;
/// impl Service for Hello {}
///
/// fn main() -> ExitStatus {
///     ServiceSystem::new("hello").run(Hello)
/// }
/// ```
pub struct ServiceSystem {
    name: String,
    loader: ConfigLoader,
    root: SupervisorSpec,
    signals: bool,
    logging: bool,
    phase: watch::Sender<Phase>,
    cli: Result<bool, CliError>,
}

impl ServiceSystem {
    /// A system for the service `name`, with a one_for_one root supervisor.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            loader: ConfigLoader::new(name.clone()),
            name,
            cli: Ok(false),
            root: SupervisorSpec::new("root"),
            signals: true,
            logging: true,
            phase: watch::channel(Phase::Running).0,
        }
    }

    /// A handle that requests the shutdown of the service this system runs.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.phase.clone())
    }

    /// Uses this configuration loader (file, environment, overrides).
    pub fn config(mut self, loader: ConfigLoader) -> Self {
        self.loader = loader;
        self
    }

    /// Applies the standard service flags from `args` (program name first,
    /// as from `std::env::args_os()`): `-c FILE`, `-v`/`-vv`, `-q`,
    /// `--set KEY=VALUE`, `--check-config`, `--help`. They rank above the
    /// environment. A bad command line makes [`ServiceSystem::run`] print the
    /// usage and return [`ExitStatus::Usage`] (64).
    pub fn args<I, T>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        match cli::parse(&self.name, args, self.loader.clone()) {
            Ok(parsed) => {
                self.loader = parsed.loader;
                self.cli = Ok(parsed.check_only);
            }
            Err(err) => self.cli = Err(err),
        }
        self
    }

    /// Reads this config file (it must exist).
    pub fn config_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.loader = self.loader.file(path);
        self
    }

    /// Sets the root supervisor (strategy, intensity, backoff, static children).
    pub fn root(mut self, spec: SupervisorSpec) -> Self {
        self.root = spec;
        self
    }

    /// Does not install signal handlers (for embedding and tests).
    pub fn without_signals(mut self) -> Self {
        self.signals = false;
        self
    }

    /// Does not set up logging (for embedding and tests that set their own).
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Runs `service` to the end on a new actix `System` on this thread.
    ///
    /// Call it from `main`, outside any async runtime (it starts its own);
    /// inside a running actix `System`, use [`ServiceSystem::run_local`].
    /// With logging on, it also routes panic reports into the log
    /// ([`logging::log_panics`], replacing any panic hook set before).
    pub fn run<S: Service>(self, service: S) -> ExitStatus {
        let check_only = match &self.cli {
            Ok(check_only) => *check_only,
            Err(err) if err.help => {
                print!("{err}");
                return ExitStatus::Success;
            }
            Err(err) => {
                eprint!("{err}");
                return ExitStatus::Usage;
            }
        };
        let config = match self.loader.load() {
            Ok(config) => config,
            Err(err) => {
                eprintln!("{}: {err}", self.name);
                return ExitStatus::Config;
            }
        };
        if check_only {
            let source = config.file().map_or_else(
                || "embedded defaults".to_owned(),
                |f| f.display().to_string(),
            );
            println!("{}: configuration ok ({source})", self.name);
            return ExitStatus::Success;
        }
        let logging = if self.logging {
            match logging::init(&config.psvc) {
                Ok(guard) => {
                    logging::log_panics();
                    Some(guard)
                }
                Err(err) => {
                    eprintln!("{}: {err}", self.name);
                    return ExitStatus::Config;
                }
            }
        } else {
            None
        };
        let system = actix_rt::System::new();
        let log_filter = logging.as_ref().map(|g| g.filter());
        let status = system.block_on(self.lifecycle(service, config, log_filter));
        actix_rt::System::current().stop();
        if matches!(status, ExitStatus::Forced(_) | ExitStatus::DeadlineExceeded) {
            // Something did not stop in time: dropping the runtime would wait
            // for it (blocking tasks have no deadline). The process is ending.
            std::mem::forget(system);
        } else {
            drop(system);
        }
        status
    }

    /// Runs `service` inside an already running actix `System` (no logging
    /// set-up), with the configuration loaded here.
    pub async fn run_local<S: Service>(self, service: S) -> ExitStatus {
        match load_blocking(&self.loader).await {
            Ok(config) => self.lifecycle(service, config, None).await,
            Err(err) => {
                tracing::error!("{err}");
                ExitStatus::Config
            }
        }
    }
}

impl ServiceSystem {
    /// Starts the tree, the signal and watchdog tasks, and runs the steps.
    async fn lifecycle<S: Service>(
        self,
        mut service: S,
        config: Config,
        log_filter: Option<LogFilter>,
    ) -> ExitStatus {
        let Self {
            loader,
            root: root_spec,
            signals,
            phase,
            ..
        } = self;
        let name: Arc<str> = Arc::from(config.psvc.name.as_str());
        let timeout = config.psvc.shutdown_timeout;
        let root = root_spec.start_root();
        let (config_tx, _) = watch::channel(Arc::new(config));
        let mut ctx = ServiceContext {
            name: name.clone(),
            config: config_tx,
            root: root.handle(),
            phase,
            reload_subscribers: Rc::default(),
        };
        tracing::info!(service = %name, "starting");
        let mut background = Vec::new();
        if signals {
            let reloader = Reloader {
                loader,
                config: ctx.config.clone(),
                subscribers: ctx.reload_subscribers.clone(),
                log_filter,
            };
            match watch_signals(ctx.phase.clone(), reloader) {
                Ok(task) => background.push(actix_rt::spawn(task)),
                Err(err) => tracing::warn!("signal handlers not installed: {err}"),
            }
        }

        if let Some(watchdog) = systemd::watchdog() {
            background.push(actix_rt::spawn(watchdog));
        }
        let status = steps(&mut service, &mut ctx, &root, &name, timeout).await;
        for task in background {
            task.abort();
        }
        tracing::info!(service = %name, code = status.code(), "stopped");
        status
    }
}

/// init → run → destroy → tree shutdown; see the module docs.
async fn steps<S: Service>(
    service: &mut S,
    ctx: &mut ServiceContext,
    root: &RootSupervisor,
    name: &str,
    timeout: std::time::Duration,
) -> ExitStatus {
    let mut status = ExitStatus::Success;
    let mut phase_rx = ctx.phase.subscribe();

    // init, then run: each raced against the root escalating, and run against
    // the shutdown deadline as well.
    let init_deadline = shutdown_deadline(ctx.phase.subscribe(), timeout);
    let init = race(
        service.init(ctx),
        root.exited(),
        &mut phase_rx,
        Some(Box::pin(init_deadline)),
    )
    .await;
    let mut run_it = true;
    match init {
        Step::Done(Ok(())) => {
            tracing::info!(service = %name, "initialized");
            systemd::ready("running");
        }
        Step::Done(Err(err)) => {
            tracing::error!(service = %name, "{}", ServiceError::Init(err));
            status = status.worst(ExitStatus::Failed);
            run_it = false;
        }
        other => {
            status = status.worst(other.status());
            run_it = false;
        }
    }
    if run_it && !ctx.is_shutting_down() {
        let deadline = shutdown_deadline(ctx.phase.subscribe(), timeout);
        match race(
            service.run(ctx),
            root.exited(),
            &mut phase_rx,
            Some(Box::pin(deadline)),
        )
        .await
        {
            Step::Done(Ok(())) => tracing::info!(service = %name, "run finished"),
            Step::Done(Err(err)) => {
                tracing::error!(service = %name, "{}", ServiceError::Run(err));
                status = status.worst(ExitStatus::Failed);
            }
            other => status = status.worst(other.status()),
        }
    }
    ctx.request_shutdown();
    systemd::stopping();
    // One deadline for the whole graceful shutdown, counted from the request;
    // if `run` used it all up, `destroy` and the tree still get a quarter of it.
    let since = match *ctx.phase.borrow() {
        Phase::Stopping(since) => since,
        _ => Instant::now(),
    };
    let deadline = (since + timeout).max(Instant::now() + timeout / 4);

    if let Phase::Forced(sig) = *ctx.phase.borrow() {
        root.kill();
        return status.worst(ExitStatus::Forced(sig));
    }
    let destroy = race(
        service.destroy(ctx),
        std::future::pending(),
        &mut phase_rx,
        Some(Box::pin(tokio::time::sleep_until(deadline))),
    )
    .await;
    match destroy {
        Step::Done(Ok(())) => {}
        Step::Done(Err(err)) => {
            tracing::error!(service = %name, "{}", ServiceError::Destroy(err));
            status = status.worst(ExitStatus::Failed);
        }
        other => status = status.worst(other.status()),
    }

    // Stop the tree in reverse order within what is left of the deadline.
    if root.exit_reason().is_none() {
        tokio::select! {
            reason = root.shutdown() => tracing::debug!(%reason, "supervision tree stopped"),
            () = tokio::time::sleep_until(deadline) => {
                tracing::error!("shutdown deadline of {timeout:?} passed; killing the supervision tree");
                root.kill();
                status = status.worst(ExitStatus::DeadlineExceeded);
            }
            sig = forced(&mut phase_rx) => {
                root.kill();
                status = status.worst(ExitStatus::Forced(sig));
            }
        }
    } else {
        match root.exit_reason() {
            Some(ExitReason::Escalated(esc)) => {
                tracing::error!("root supervisor escalated: {esc}");
                status = status.worst(ExitStatus::Escalated);
            }
            Some(reason) if !reason.is_normal() => {
                tracing::error!(%reason, "root supervisor stopped");
                status = status.worst(ExitStatus::Failed);
            }
            _ => {}
        }
    }
    status
}

enum Step<T> {
    Done(T),
    RootExited(ExitReason),
    Deadline,
    Forced(i32),
}

impl<T> Step<T> {
    fn status(&self) -> ExitStatus {
        match self {
            Self::Done(_) => ExitStatus::Success,
            Self::RootExited(ExitReason::Escalated(_)) => ExitStatus::Escalated,
            Self::RootExited(_) => ExitStatus::Failed,
            Self::Deadline => ExitStatus::DeadlineExceeded,
            Self::Forced(sig) => ExitStatus::Forced(*sig),
        }
    }
}

type BoxedDeadline = std::pin::Pin<Box<dyn Future<Output = ()>>>;

async fn race<T>(
    step: impl Future<Output = T>,
    root_exit: impl Future<Output = ExitReason>,
    phase: &mut watch::Receiver<Phase>,
    deadline: Option<BoxedDeadline>,
) -> Step<T> {
    let deadline = async move {
        match deadline {
            Some(d) => d.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        out = step => Step::Done(out),
        reason = root_exit => {
            tracing::error!(%reason, "root supervisor stopped");
            Step::RootExited(reason)
        }
        () = deadline => {
            tracing::error!("shutdown deadline passed before the service step returned");
            Step::Deadline
        }
        sig = forced(phase) => Step::Forced(sig),
    }
}

async fn forced(phase: &mut watch::Receiver<Phase>) -> i32 {
    loop {
        if let Phase::Forced(sig) = *phase.borrow_and_update() {
            return sig;
        }
        if phase.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves `timeout` after a shutdown starts.
async fn shutdown_deadline(mut phase: watch::Receiver<Phase>, timeout: std::time::Duration) {
    let since = match phase.wait_for(|p| *p != Phase::Running).await {
        Ok(p) => match *p {
            Phase::Stopping(since) => since,
            _ => Instant::now(),
        },
        Err(_) => return std::future::pending().await,
    };
    tokio::time::sleep_until(since + timeout).await;
}

/// Loads the configuration on tokio's blocking pool: reading and parsing
/// the file is blocking work that must not hold up an actix thread.
async fn load_blocking(loader: &ConfigLoader) -> Result<Config, crate::config::Error> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader.load())
        .await
        .unwrap_or_else(|e| {
            Err(crate::config::Error::Other(format!(
                "the configuration loader failed: {e}"
            )))
        })
}

struct Reloader {
    loader: ConfigLoader,
    config: watch::Sender<Arc<Config>>,
    subscribers: Rc<RefCell<Vec<ChildRecipient<ConfigReloaded>>>>,
    log_filter: Option<LogFilter>,
}

impl Reloader {
    /// Loads the configuration off the actix thread, then applies it here
    /// (or keeps the running one if the new one is bad).
    async fn reload(&self) {
        systemd::reloading();
        let result = load_blocking(&self.loader).await;
        systemd::ready("running");
        match result {
            Ok(config) => {
                let config = Arc::new(config);
                self.config.send_replace(config.clone());
                tracing::info!("configuration reloaded");
                for sub in self.subscribers.borrow().iter() {
                    match sub.tell(ConfigReloaded(config.clone())) {
                        Ok(()) => {}
                        Err(err @ SendError::Full(..)) => {
                            tracing::warn!("reload notice not delivered: {err}");
                        }
                        Err(err) => tracing::debug!("reload notice not delivered: {err}"),
                    }
                }
                if let Some(filter) = &self.log_filter
                    && let Err(err) = filter.set(&config.psvc.log_level)
                {
                    tracing::warn!("log level not changed: {err}");
                }
            }
            Err(err) => tracing::error!("reload failed, keeping the running configuration: {err}"),
        }
    }
}

fn watch_signals(
    phase: watch::Sender<Phase>,
    reloader: Reloader,
) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        let mut signals = 0u32;
        loop {
            let sig = tokio::select! {
                Some(()) = term.recv() => 15,
                Some(()) = int.recv() => 2,
                Some(()) = hup.recv() => {
                    reloader.reload().await;
                    continue;
                }
                else => return,
            };
            // Count signals, not phases: the first signal is graceful even if
            // the service was already stopping on its own.
            signals += 1;
            if signals == 1 {
                tracing::info!(signal = sig, "shutdown requested (send it again to force)");
                begin_stopping(&phase);
            } else {
                tracing::warn!(signal = sig, "second signal: forcing the stop");
                phase.send_replace(Phase::Forced(sig));
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn exit_codes() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Forced(15).code(), 143);
        assert_eq!(ExitStatus::Forced(i32::MAX).code(), 255);
        assert_eq!(ExitStatus::Forced(-200).code(), 255);
        assert_eq!(
            ExitStatus::Success.worst(ExitStatus::Escalated),
            ExitStatus::Escalated
        );
    }
}
