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
//!
//! # Files
//! - `lifecycle.rs`: the [`Service`] trait and its errors;
//! - `context.rs`: the [`ServiceContext`] a service sees;
//! - `status.rs`: [`ExitStatus`] and the exit codes;
//! - `shutdown.rs`: the shutdown phase and [`ShutdownTrigger`];
//! - `signals.rs`: signal handling and configuration reload;
//! - `sys.rs`: the system commands (`/sys/...`), [`SysStats`] and the
//!   Prometheus endpoint;
//! - `system.rs`: [`ServiceSystem`], which runs the steps above in order;
//! - `cli.rs`, `systemd.rs`: the standard flags, `sd_notify`;
//! - `daemon.rs`: background mode (start, stop, status, restart; the
//!   pidfile and its lock).
mod cli;
mod context;
mod daemon;
mod lifecycle;
mod shutdown;
mod signals;
mod status;
mod sys;
mod system;
mod systemd;

pub use cli::CliError;
pub use context::{ConfigReloaded, Readiness, ServiceContext};
pub use lifecycle::{BoxError, Service, ServiceError};
pub use shutdown::ShutdownTrigger;
pub use status::ExitStatus;
pub use sys::{ChildEntry, ReloadError, SysStats};
pub use system::ServiceSystem;
