//! Logging with `tracing`: the console (stderr) and `<log_dir>/<name>.log`,
//! filtered by `RUST_LOG` when set, else by `[PSVC] log_level`.
//!
//! The level can be changed at run time ([`LogFilter::set`]); the
//! service system does that when SIGHUP reloads the configuration.

use std::path::PathBuf;

use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{LogRotation, PsvcConfig};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The log directory could not be created.
    #[error("log directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("log file in {path}: {reason}")]
    File {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A filter directive is invalid.
    #[error("log filter {directive:?}: {reason}")]
    Filter {
        /// The directive.
        directive: String,
        /// Why.
        reason: String,
    },
}

/// Keeps logging alive: dropping it flushes the file writer and, when the
/// subscriber was installed for this thread only, removes it.
pub struct LoggingGuard {
    filter: reload::Handle<EnvFilter, Registry>,
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
    _scoped: Option<tracing::subscriber::DefaultGuard>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for LoggingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggingGuard")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// A handle that changes the log filter of a running service.
#[derive(Clone, Debug)]
pub struct LogFilter(reload::Handle<EnvFilter, Registry>);

impl LogFilter {
    /// Replaces the filter (EnvFilter syntax), unless `RUST_LOG` is set.
    pub fn set(&self, directive: &str) -> Result<(), Error> {
        if std::env::var_os("RUST_LOG").is_some() {
            return Ok(());
        }
        let filter = parse_filter(directive)?;
        self.0.reload(filter).map_err(|e| Error::Filter {
            directive: directive.to_owned(),
            reason: e.to_string(),
        })
    }
}

impl LoggingGuard {
    /// A handle to change the filter at run time.
    pub fn filter(&self) -> LogFilter {
        LogFilter(self.filter.clone())
    }

    /// The path of the current log file, if logging to a file (with
    /// rotation, the date is added before `.log`).
    pub fn file(&self) -> Option<&std::path::Path> {
        self.file.as_deref()
    }
}

fn parse_filter(directive: &str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(directive).map_err(|e| Error::Filter {
        directive: directive.to_owned(),
        reason: e.to_string(),
    })
}

/// Sets up logging for the service `cfg.name`.
///
/// The subscriber becomes the global default; if another one is already
/// global (a second service in the same process, or tests), it is installed
/// for the current thread only, for the life of the guard.
pub fn init(cfg: &PsvcConfig) -> Result<LoggingGuard, Error> {
    let directive = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log_level.clone());
    let (filter, handle) = reload::Layer::new(parse_filter(&directive)?);
    let console = cfg
        .log_console
        .then(|| fmt::layer().with_writer(std::io::stderr).with_target(false));
    let (file_layer, writer, file) = if cfg.log_file {
        std::fs::create_dir_all(&cfg.log_dir).map_err(|source| Error::Dir {
            path: cfg.log_dir.clone(),
            source,
        })?;
        let rotation = match cfg.log_rotation {
            LogRotation::Never => Rotation::NEVER,
            LogRotation::Minutely => Rotation::MINUTELY,
            LogRotation::Hourly => Rotation::HOURLY,
            LogRotation::Daily => Rotation::DAILY,
        };
        let mut builder = RollingFileAppender::builder()
            .rotation(rotation)
            .filename_prefix(&cfg.name)
            .filename_suffix("log");
        if cfg.log_max_files > 0 {
            builder = builder.max_log_files(cfg.log_max_files);
        }
        let appender = builder.build(&cfg.log_dir).map_err(|e| Error::File {
            path: cfg.log_dir.clone(),
            reason: e.to_string(),
        })?;
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let layer = fmt::layer().with_writer(writer).with_ansi(false);
        (
            Some(layer),
            Some(guard),
            Some(cfg.log_dir.join(format!("{}.log", cfg.name))),
        )
    } else {
        (None, None, None)
    };
    let subscriber = Registry::default()
        .with(filter)
        .with(console)
        .with(file_layer);
    let scoped = if tracing::dispatcher::has_been_set() {
        Some(tracing::subscriber::set_default(subscriber))
    } else {
        // Losing a race to another global subscriber leaves that one in place.
        let _ = tracing::subscriber::set_global_default(subscriber);
        None
    };
    Ok(LoggingGuard {
        filter: handle,
        _writer: writer,
        _scoped: scoped,
        file,
    })
}

/// Routes panic reports through `tracing` (with their location), so that a
/// contained actor panic appears in the service log like any other error
/// rather than as raw text on stderr. [`ServiceSystem::run`](crate::ServiceSystem::run)
/// installs it with logging.
pub fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("<non-string panic payload>");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic: {msg}");
    }));
}
