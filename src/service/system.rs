//! [`ServiceSystem`]: builds and runs a service, from the configuration to
//! the exit status (see the module docs of `service`).

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cli::{self, CliError, Invocation, Mode};
use super::context::ServiceContext;
use super::daemon::{self, Daemon, PidFile, ReadyMarker};
use super::lifecycle::{Service, ServiceError};
use super::shutdown::{Phase, ShutdownTrigger, forced, shutdown_deadline};
use super::signals::{Reloader, load_blocking, reloads, watch_config_file, watch_signals};
use super::status::ExitStatus;
use super::sys::{ReloadState, Sys, serve_metrics};
use super::systemd;
use crate::config::{Config, ConfigLoader};
use crate::logging::{self, LogFilter};
use crate::supervisor::{ExitReason, RootSupervisor, SupervisorSpec};

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
    restart: Arc<std::sync::atomic::AtomicBool>,
    cli: Result<Invocation, CliError>,
}

impl ServiceSystem {
    /// A system for the service `name`, with a one_for_one root supervisor.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            loader: ConfigLoader::new(name.clone()),
            name,
            cli: Ok(Invocation::default()),
            root: SupervisorSpec::new("root"),
            signals: true,
            logging: true,
            phase: watch::channel(Phase::Running).0,
            restart: Arc::default(),
        }
    }

    /// A handle that requests the shutdown of the service this system runs.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger {
            phase: self.phase.clone(),
            restart: self.restart.clone(),
        }
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
                self.cli = Ok(parsed.invocation);
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
        let invocation = match &self.cli {
            Ok(invocation) => invocation.clone(),
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
        if invocation.check_only {
            let source = config.file().map_or_else(
                || "embedded defaults".to_owned(),
                |f| f.display().to_string(),
            );
            println!("{}: configuration ok ({source})", self.name);
            return ExitStatus::Success;
        }
        let name = config.psvc.name.clone();
        let pidfile = invocation.pidfile.clone().map(std::path::absolute);
        let pidfile = match pidfile {
            Some(Ok(path)) => path,
            Some(Err(err)) => {
                eprintln!("{name}: --pidfile: {err}");
                return ExitStatus::Usage;
            }
            None => std::path::PathBuf::from(format!("{name}.pid")),
        };
        let background = Daemon {
            output: config.psvc.log_dir.join(format!("{name}.out")),
            pidfile: std::path::absolute(&pidfile).unwrap_or(pidfile),
            wait: config.psvc.shutdown_timeout + std::time::Duration::from_secs(5),
            name,
        };
        match invocation.mode {
            Mode::Run => {}
            Mode::Status => return daemon::status(&background),
            Mode::Stop => return daemon::stop(&background),
            Mode::Start => return daemon::start(&background, &invocation.relaunch),
            Mode::Restart => {
                let stopped = daemon::stop(&background);
                if stopped != ExitStatus::Success {
                    return stopped;
                }
                return daemon::start(&background, &invocation.relaunch);
            }
        }
        // `run --pidfile FILE` (what `start` launches) holds the pidfile.
        let pidfile = match invocation
            .pidfile
            .is_some()
            .then(|| PidFile::take(&background.pidfile))
        {
            Some(Ok(pidfile)) => Some(pidfile),
            Some(Err(err)) => {
                eprintln!("{}: {err}", self.name);
                return ExitStatus::Failed;
            }
            None => None,
        };
        let ready_marker = pidfile.as_ref().and_then(PidFile::ready_marker);
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
        let name = self.name.clone();
        let status = system.block_on(self.lifecycle(service, config, log_filter, ready_marker));
        actix_rt::System::current().stop();
        if matches!(status, ExitStatus::Forced(_) | ExitStatus::DeadlineExceeded) {
            // Something did not stop in time: dropping the runtime would wait
            // for it (blocking tasks have no deadline). The process is ending.
            std::mem::forget(system);
        } else {
            drop(system);
        }
        if let Some(pidfile) = pidfile {
            if status == ExitStatus::Restart {
                pidfile.keep();
            } else {
                drop(pidfile);
            }
        }
        if status == ExitStatus::Restart && std::env::var("PSVC_RESTART").as_deref() != Ok("exit") {
            let err = exec_self();
            eprintln!("{name}: restart: cannot exec: {err}");
        }
        status
    }

    /// Runs `service` inside an already running actix `System` (no logging
    /// set-up), with the configuration loaded here.
    pub async fn run_local<S: Service>(self, service: S) -> ExitStatus {
        match load_blocking(&self.loader).await {
            Ok(config) => self.lifecycle(service, config, None, None).await,
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
        ready_marker: Option<ReadyMarker>,
    ) -> ExitStatus {
        let Self {
            loader,
            root: root_spec,
            signals,
            phase,
            restart,
            ..
        } = self;
        let name: Arc<str> = Arc::from(config.psvc.name.as_str());
        let timeout = config.psvc.shutdown_timeout;
        let root = root_spec.start_root();
        let (config_tx, _) = watch::channel(Arc::new(config));
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let reload_state = watch::channel(ReloadState::default()).0;
        let sys = Sys {
            name: name.clone(),
            version: config_tx.borrow().psvc.version.to_string(),
            started: std::time::Instant::now(),
            root: root.handle(),
            stats: Arc::default(),
            reload: reload_tx.clone(),
            reloaded: reload_state.subscribe(),
        };
        let metrics_listen = config_tx.borrow().psvc.metrics_listen;
        let mut ctx = ServiceContext {
            name: name.clone(),
            config: config_tx,
            root: root.handle(),
            phase,
            restart: restart.clone(),
            reload_subscribers: Rc::default(),
            ready: watch::channel(None).0,
            reload: reload_tx,
            sys: sys.clone(),
        };
        tracing::info!(service = %name, "starting");
        let mut background = Vec::new();
        let watch_file = ctx
            .config()
            .psvc
            .watch_config
            .then(|| ctx.config().file().map(std::path::Path::to_path_buf))
            .flatten();
        let reloader = Reloader {
            loader,
            config: ctx.config.clone(),
            subscribers: ctx.reload_subscribers.clone(),
            log_filter,
            state: reload_state,
        };
        background.push(actix_rt::spawn(reloads(reloader, reload_rx)));
        if signals {
            match watch_signals(ctx.phase.clone(), ctx.reload.clone()) {
                Ok(task) => background.push(actix_rt::spawn(task)),
                Err(err) => tracing::warn!("signal handlers not installed: {err}"),
            }
        }
        // Kept for the life of the service: dropping it stops the watch.
        let _config_watch = match watch_file {
            Some(file) => match watch_config_file(&file, ctx.reload.clone()) {
                Ok(w) => Some(w),
                Err(err) => {
                    tracing::warn!("config file not watched: {err}");
                    None
                }
            },
            None => None,
        };

        if let Some(addr) = metrics_listen {
            match serve_metrics(sys, addr) {
                Ok(task) => background.push(actix_rt::spawn(task)),
                Err(err) => tracing::error!("{err}"),
            }
        }
        if let Some(marker) = ready_marker {
            let ready = ctx.readiness();
            background.push(actix_rt::spawn(async move {
                if ready.wait().await {
                    marker.mark();
                }
            }));
        }
        if let Some(watchdog) = systemd::watchdog() {
            background.push(actix_rt::spawn(watchdog));
        }
        let mut status = steps(&mut service, &mut ctx, &root, &name, timeout).await;
        // A requested restart stands even when the stop was not clean (a
        // hung `init` cut at the deadline, a failed `destroy`): the Updater
        // asks for it to leave a broken version. Only an operator's forced
        // stop, or a configuration or usage error, wins.
        if restart.load(std::sync::atomic::Ordering::SeqCst)
            && !matches!(
                status,
                ExitStatus::Forced(_) | ExitStatus::Config | ExitStatus::Usage
            )
        {
            if status != ExitStatus::Success {
                tracing::warn!(service = %name, code = status.code(), "stop was not clean; restarting as requested");
            }
            status = ExitStatus::Restart;
        }
        for task in background {
            task.abort();
        }
        tracing::info!(service = %name, code = status.code(), "stopped");
        status
    }
}

/// Replaces this process with a fresh start of its own command line
/// (`argv[0]` resolved again, so a path through an updated symlink starts
/// the new version). Returns only on failure.
fn exec_self() -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let Some(program) = args.next() else {
        return std::io::Error::other("no argv[0]");
    };
    tracing::info!(program = %program.to_string_lossy(), "restarting (exec)");
    std::process::Command::new(program).args(args).exec()
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
            ctx.ready.send_replace(Some(true));
            systemd::ready("running");
        }
        Step::Done(Err(err)) => {
            tracing::error!(service = %name, "{}", ServiceError::Init(err));
            ctx.ready.send_replace(Some(false));
            status = status.worst(ExitStatus::Failed);
            run_it = false;
        }
        other => {
            ctx.ready.send_replace(Some(false));
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
