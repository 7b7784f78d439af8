//! Command-line flags every psvc service understands
//! ([`ServiceSystem::args`](super::ServiceSystem::args)).
//!
//! ```text
//! [run|start|stop|status|restart]
//!                        run in the foreground (the default), or in the
//!                        background: start, stop, status, restart
//!     --pidfile FILE     background mode's pidfile (default ./<name>.pid)
//! -c, --config FILE      config file (INI, or TOML when it ends in .toml)
//! -v, --verbose          more logging: -v debug, -vv trace
//! -q, --quiet            warnings and errors only
//!     --set KEY=VALUE    override any key: --set PSVC.log_dir=/tmp/logs --set device.port=7
//!     --check-config     load and validate the configuration, then exit (0, or 78)
//! ```
//!
//! Flags rank above the environment: defaults < file < `PSVC_*` < flags.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};

use crate::config::ConfigLoader;

/// The flags, parsed.
#[derive(Debug, Parser)]
#[command(about = "A psvc service", disable_version_flag = true)]
pub(crate) struct Flags {
    /// run: in the foreground. start: in the background (pidfile, output
    /// to <log_dir>/<name>.out), once ready. stop: SIGTERM through the
    /// pidfile, and wait. status: running (0) or not (3). restart: stop,
    /// then start.
    #[arg(value_enum, default_value_t = Mode::Run)]
    mode: Mode,
    /// Background mode's pidfile (default: ./<name>.pid).
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,
    /// Config file (INI, or TOML when it ends in .toml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// More logging: -v debug, -vv trace.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// Warnings and errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Override a config key (highest precedence), e.g. PSVC.log_dir=/tmp/logs.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
    /// Load and validate the configuration, print its source, and exit.
    #[arg(long)]
    check_config: bool,
}

/// What the command line asks the service to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Serve in the foreground.
    Run,
    /// Serve in the background; return once ready.
    Start,
    /// Stop the background instance.
    Stop,
    /// Is a background instance running?
    Status,
    /// Stop, then start.
    Restart,
}

impl Flags {
    /// The command line of a background instance: the same flags, in
    /// `run` mode (`start` adds the pidfile, made absolute).
    fn relaunch(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
        if let Some(file) = &self.config {
            args.extend(["--config".into(), file.clone().into_os_string()]);
        }
        if self.quiet {
            args.push("--quiet".into());
        }
        args.extend((0..self.verbose).map(|_| "--verbose".into()));
        for (key, value) in &self.set {
            args.push(format!("--set={key}={value}").into());
        }
        args
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Why the command line was not accepted (or asked for help).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    message: String,
    /// `true` for `--help`: print to stdout and exit 0.
    pub(crate) help: bool,
}

/// What the flags ask of the system.
pub(crate) struct Parsed {
    pub(crate) loader: ConfigLoader,
    pub(crate) invocation: Invocation,
}

/// The command line, beyond the configuration it sets.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) check_only: bool,
    pub(crate) mode: Mode,
    pub(crate) pidfile: Option<PathBuf>,
    /// The arguments for a background instance: the same, in `run` mode.
    pub(crate) relaunch: Vec<std::ffi::OsString>,
}

impl Default for Invocation {
    fn default() -> Self {
        Invocation {
            check_only: false,
            mode: Mode::Run,
            pidfile: None,
            relaunch: Vec::new(),
        }
    }
}

/// Parses `args` (program name first) for the service `name` and applies the
/// flags to `loader`.
pub(crate) fn parse<I, T>(name: &str, args: I, mut loader: ConfigLoader) -> Result<Parsed, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let command = Flags::command().name(name.to_owned());
    let flags = command
        .try_get_matches_from(args)
        .and_then(|m| Flags::from_arg_matches(&m))
        .map_err(|e| CliError {
            help: matches!(e.kind(), clap::error::ErrorKind::DisplayHelp),
            message: e.render().to_string(),
        })?;
    let relaunch = flags.relaunch();
    if let Some(file) = &flags.config {
        loader = loader.file(file);
    }
    let level = match (flags.quiet, flags.verbose) {
        (true, _) => Some("warn"),
        (false, 0) => None,
        (false, 1) => Some("debug"),
        (false, _) => Some("trace"),
    };
    if let Some(level) = level {
        loader = loader.set_from("command line", "PSVC.log_level", level);
    }
    for (key, value) in &flags.set {
        loader = loader.set_from("command line", key, value);
    }
    Ok(Parsed {
        loader,
        invocation: Invocation {
            check_only: flags.check_config,
            mode: flags.mode,
            pidfile: flags.pidfile.clone(),
            relaunch,
        },
    })
}
