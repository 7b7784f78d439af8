//! The `psvc` command-line tool.
//!
//! ```text
//! psvc config defaults             print the embedded defaults (a psvc.conf to start from)
//! psvc config show  [--file F]     the resolved [PSVC] settings and where each came from
//! psvc config check [--file F]     validate; exit 78 with a message naming file, key and value
//!
//! psvc call vsoa://HOST:PORT/path [--param JSON] [--data TEXT|@FILE] [--set]
//! psvc sub  vsoa://HOST:PORT/url [/more …] [--count N] [--duration S]
//! psvc pub  vsoa://HOST:PORT/url [--param JSON] [--quick] [--via /publish]
//! psvc datagram vsoa://HOST:PORT/url [--param JSON] [--data …] [--quick]
//! psvc ping vsoa://HOST:PORT [--count N]
//! psvc stream get|put vsoa://HOST:PORT/path FILE [--param JSON]
//!   every client verb: [--password PW] [--timeout S] [--json]
//!
//! psvc build --version X [--manifest-path M | --dir D] [--exclude GLOB …]
//! psvc keys init [--keys DIR] [--approvers N] [--threshold K]
//! psvc approve VERSION --key FILE [--channel C] [--rollout PCT] [--notes T]
//! psvc deprecate VERSION --to OLDER --key FILE
//! psvc releases list | serve [--listen A] [--keys DIR] | refresh | discard
//! psvc update check | apply | status | rollback [VERSION]  [--root R] [--source S …]
//! ```
//!
//! Client verbs exit 0 on success, 1 when the server answers a non-zero
//! status, 64 on bad arguments, 69 when the server cannot be reached, 74 on
//! a local file error and 75 on a timeout.

use std::path::PathBuf;
use std::process::ExitCode;

pub mod client;
pub mod release;
pub mod update;

use clap::{Parser, Subcommand};
use psvc::config::{ConfigLoader, DEFAULTS};

/// psvc: tools for psvc services.
#[derive(Debug, Parser)]
#[command(name = "psvc", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Options of the client verbs.
    #[command(flatten)]
    pub client: client::Common,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Call a command (RPC) and print the reply.
    Call(client::CallArgs),
    /// Subscribe to URLs and print what is published.
    Sub(client::SubArgs),
    /// Publish through a server command (default /publish).
    Pub(client::PubArgs),
    /// Send a datagram (over TCP or the quick UDP channel).
    Datagram(client::DatagramArgs),
    /// Measure round trips (PINGECHO).
    Ping(client::PingArgs),
    /// A psvc service's system commands: ping, help, children, restart,
    /// reload, stats.
    Sys(client::SysArgs),
    /// Download or upload a file through a stream.
    #[command(subcommand)]
    Stream(client::StreamCommand),
    /// Build a release (a draft) from cargo or a directory.
    Build(release::BuildArgs),
    /// Signing keys of the release repository.
    #[command(subcommand)]
    Keys(release::KeysCommand),
    /// Approve a version (sign it into the targets metadata).
    Approve(release::ApproveArgs),
    /// Withdraw an approved version in favour of an older one.
    Deprecate(release::DeprecateArgs),
    /// List, serve or refresh the release repository.
    #[command(subcommand)]
    Releases(release::ReleasesCommand),
    /// Check for, install and roll back updates of this installation.
    #[command(subcommand)]
    Update(update::UpdateCommand),
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
    "watch_config",
    "sys_commands",
    "admin_token_file",
    "metrics_listen",
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
    let verb = match cli.command {
        Command::Call(a) => client::Verb::Call(a),
        Command::Sub(a) => client::Verb::Sub(a),
        Command::Pub(a) => client::Verb::Pub(a),
        Command::Datagram(a) => client::Verb::Datagram(a),
        Command::Ping(a) => client::Verb::Ping(a),
        Command::Stream(c) => client::Verb::Stream(c),
        Command::Sys(a) => client::Verb::Sys(a),
        Command::Config(c) => return config(c),
        Command::Build(a) => return release::run(release::Verb::Build(a), &cli.client),
        Command::Keys(c) => return release::run(release::Verb::Keys(c), &cli.client),
        Command::Approve(a) => return release::run(release::Verb::Approve(a), &cli.client),
        Command::Deprecate(a) => return release::run(release::Verb::Deprecate(a), &cli.client),
        Command::Releases(c) => return release::run(release::Verb::Releases(c), &cli.client),
        Command::Update(c) => return update::run(c, &cli.client),
    };
    client::run(verb, &cli.client)
}

fn config(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Defaults => {
            print!("{DEFAULTS}");
            ExitCode::SUCCESS
        }
        ConfigCommand::Show(args) => match load(&args) {
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
        ConfigCommand::Check(args) => match load(&args) {
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
