//! The `psvc` command-line tool.
//!
//! ```text
//! psvc config defaults             print the embedded defaults (a psvc.conf to start from)
//! psvc config show  [--file F]     the resolved [PSVC] settings and where each came from
//! psvc config check [--file F]     validate; exit 78 with a message naming file, key and value
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use psvc::config::{ConfigLoader, DEFAULTS};

/// psvc: tools for psvc services.
#[derive(Debug, Parser)]
#[command(name = "psvc", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `psvc config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded defaults in psvc.conf syntax.
    Defaults,
    /// Show the resolved `[PSVC]` settings and their origins.
    Show(ConfigArgs),
    /// Validate the configuration (file, environment).
    Check(ConfigArgs),
}

/// Where to read the configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Config file (default: $PSVC_CONFIG, ./psvc.conf or ./psvc.toml).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Service name (the default for `[PSVC] name`).
    #[arg(long, default_value = "service")]
    pub name: String,
}

/// Keys of the `[PSVC]` section, in the order they are shown.
const KEYS: &[&str] = &[
    "name",
    "version",
    "release_path",
    "update_path",
    "log_level",
    "log_dir",
    "log_console",
    "log_file",
    "log_rotation",
    "log_max_files",
    "shutdown_timeout",
];

/// Runs the tool with `args` (including the program name); returns the exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 64 } else { 0 });
        }
    };
    match cli.command {
        Command::Config(ConfigCommand::Defaults) => {
            print!("{DEFAULTS}");
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Show(args)) => match load(&args) {
            Ok(cfg) => {
                if let Some(file) = cfg.file() {
                    println!("# file: {}", file.display());
                }
                println!("[PSVC]");
                for key in KEYS {
                    let full = format!("PSVC.{key}");
                    let value = cfg.get::<String>(&full).unwrap_or_default();
                    println!("{key} = {value}    ; from {}", cfg.origin(&full));
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Config(ConfigCommand::Check(args)) => match load(&args) {
            Ok(cfg) => {
                let source = cfg.file().map_or_else(
                    || "embedded defaults".to_owned(),
                    |f| f.display().to_string(),
                );
                println!("ok: {source}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    }
}

fn load(args: &ConfigArgs) -> Result<psvc::config::Config, ExitCode> {
    let mut loader = ConfigLoader::new(args.name.clone());
    if let Some(file) = &args.file {
        loader = loader.file(file);
    }
    loader.load().map_err(|err| {
        eprintln!("psvc: {err}");
        ExitCode::from(78)
    })
}
