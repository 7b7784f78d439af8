//! `psvc update check | apply | status | boot | healthy | tick | rollback [VERSION]`.
//!
//! Exit codes: 0 done (or nothing to do), 65 refused (no source verified,
//! a bad download, a bad release), 74 a local file error, 75 another
//! updater holds the install root, 78 a bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::update::install::{InstallError, InstallRoot};
use crate::update::source::Source;
use crate::update::updater::{UpdateError, UpdaterOptions, apply, check};

/// Where and from what to update.
#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Install root (default: `[PSVC] update_path` of ./psvc.conf, else ./updates).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Config file to read `[PSVC] update_path` from.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The trusted root.json shipped with this installation (default: ROOT/root.json).
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Update source, tried in order (repeat): vsoa://HOST:PORT or
    /// http://HOST:PORT/PATH/ (default: `[update] sources`).
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Channel to follow (default: `[update] channel`, else stable).
    #[arg(long)]
    pub channel: Option<String>,
    /// This installation's id for staged rollouts (default: /etc/machine-id).
    #[arg(long)]
    pub installation: Option<String>,
    /// Installed versions to keep (default: `[update] keep`, else 3).
    #[arg(long)]
    pub keep: Option<usize>,
}

/// Probation of a new version.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Starts allowed during probation.
    #[arg(long, default_value_t = 3)]
    pub max_boots: u32,
    /// A new version must report healthy within this of its install.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2m")]
    pub health_deadline: std::time::Duration,
    /// Then stay healthy this long to be committed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
    pub period: std::time::Duration,
}

impl PolicyArgs {
    fn policy(&self) -> crate::update::probation::ProbationPolicy {
        crate::update::probation::ProbationPolicy {
            max_boots: self.max_boots,
            health_deadline: self.health_deadline,
            period: self.period,
        }
    }
}

fn verdict_text(v: &crate::update::probation::Verdict) -> String {
    use crate::update::probation::Verdict;
    match v {
        Verdict::Stable => "stable: no version on probation".into(),
        Verdict::OnProbation {
            version,
            boots,
            healthy,
        } => {
            format!(
                "{version} on probation: {boots} start(s), {}",
                if *healthy {
                    "healthy"
                } else {
                    "not healthy yet"
                }
            )
        }
        Verdict::Committed { version } => format!("{version} committed"),
        Verdict::RolledBack { from, to, reason } => {
            format!("{from} rolled back to {to}: {reason}; {from} is marked bad")
        }
    }
}

/// `psvc update …`
#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Refresh the signed metadata and say whether an update is due.
    #[command(
        after_help = "Example:\n  psvc update check --root /opt/app --source vsoa://10.0.0.2:3002 --source http://mirror/app/"
    )]
    Check(UpdateArgs),
    /// Check, download, verify and install the update; make it current.
    Apply(UpdateArgs),
    /// Installed versions, the current and previous ones, bad versions, history.
    Status(UpdateArgs),
    /// Count a start of the service (run it before the service: systemd
    /// ExecStartPre); rolls back a version on probation that keeps failing.
    #[command(
        after_help = "In the unit:\n  ExecStartPre=/usr/bin/psvc update boot --root /opt/app\n  ExecStart=/opt/app/current/bin/app"
    )]
    Boot {
        #[command(flatten)]
        #[allow(missing_docs)]
        args: UpdateArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        policy: PolicyArgs,
    },
    /// Report the current version healthy.
    Healthy(UpdateArgs),
    /// Commit a version healthy for the whole period, or roll back one past its deadline.
    Tick {
        #[command(flatten)]
        #[allow(missing_docs)]
        args: UpdateArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        policy: PolicyArgs,
    },
    /// Make an installed version current again (default: the previous one).
    Rollback {
        /// The version.
        version: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        args: UpdateArgs,
    },
}

struct Failure(u8, String);

impl From<UpdateError> for Failure {
    fn from(e: UpdateError) -> Self {
        let code = match &e {
            UpdateError::Install(InstallError::Busy(_)) => 75,
            UpdateError::Install(InstallError::Io { .. }) | UpdateError::Root { .. } => 74,
            _ => 65,
        };
        Failure(code, e.to_string())
    }
}

impl From<InstallError> for Failure {
    fn from(e: InstallError) -> Self {
        Failure::from(UpdateError::Install(e))
    }
}

fn options(args: &UpdateArgs, password: Option<&str>) -> Result<UpdaterOptions, Failure> {
    let root = match &args.root {
        Some(r) => r.clone(),
        None => {
            let mut loader = psvc::config::ConfigLoader::new("psvc");
            if let Some(f) = &args.config {
                loader = loader.file(f);
            }
            let cfg = loader.load().map_err(|e| Failure(78, e.to_string()))?;
            cfg.get::<PathBuf>("PSVC.update_path")
                .map_err(|e| Failure(78, e.to_string()))?
        }
    };
    let trusted = args
        .trusted_root
        .clone()
        .unwrap_or_else(|| root.join("root.json"));
    let mut o = UpdaterOptions::new(root, trusted);
    for s in &args.sources {
        let source: Source = s
            .parse()
            .map_err(|e: crate::update::source::SourceError| Failure(78, e.to_string()))?;
        o = o.source(source);
    }
    if let Some(c) = &args.channel {
        o.channel = c.clone();
    }
    if args.installation.is_some() {
        o.installation = args.installation.clone();
    }
    if let Some(k) = args.keep {
        o.keep = k;
    }
    for s in o.sources.iter_mut() {
        *s = s.clone().password(password.map(str::to_owned));
    }
    Ok(o)
}

/// The options and the install root they name (locked, recovered).
fn open(
    args: &UpdateArgs,
    password: Option<&str>,
) -> Result<(UpdaterOptions, InstallRoot), Failure> {
    let o = options(args, password)?;
    let root = InstallRoot::open(&o.install_root)?;
    Ok((o, root))
}

/// Prints `value` as JSON with `--json`, else `text`.
fn print(json: bool, value: &impl serde::Serialize, text: &str) {
    if json {
        println!("{}", serde_json::to_value(value).unwrap_or_default());
    } else {
        println!("{text}");
    }
}

async fn run_async(command: UpdateCommand, common: &super::client::Common) -> Result<(), Failure> {
    let json = common.json;
    let password = common.password.as_deref();
    match command {
        UpdateCommand::Check(args) => {
            let (o, root) = open(&args, password)?;
            let (outcome, _, _) = check(&root, &o).await?;
            let text = match &outcome.update {
                Some(v) => format!("update available: {v} ({})", outcome.reason),
                None => format!("no update: {}", outcome.reason),
            };
            print(json, &outcome, &text);
        }
        UpdateCommand::Apply(args) => {
            let (o, root) = open(&args, password)?;
            let bar = if json {
                indicatif::ProgressBar::hidden()
            } else {
                let b = indicatif::ProgressBar::new(0);
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b
            };
            let outcome = apply(&root, &o, &mut |file, n, len| {
                bar.set_message(file.to_owned());
                bar.set_length(len);
                bar.set_position(n);
            })
            .await;
            bar.finish_and_clear();
            let outcome = outcome?;
            let text = match &outcome.installed {
                Some(v) => {
                    let t = &outcome.transfer;
                    let patched = if t.patched.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({} from patches: {})",
                            t.patched.len(),
                            t.patched.join(" ")
                        )
                    };
                    format!(
                        "installed {v} (was {}); fetched {} of {} bytes{patched}; restart the service to run it",
                        outcome.previous.as_deref().unwrap_or("nothing"),
                        t.fetched_bytes,
                        t.full_bytes,
                    )
                }
                None => format!("no update: {}", outcome.check.reason),
            };
            print(json, &outcome, &text);
        }
        UpdateCommand::Status(args) => {
            let (_, root) = open(&args, password)?;
            let state = root.state();
            let installed = root.installed();
            let value = serde_json::json!({
                "current": root.current(),
                "installed": installed,
                "state": state,
            });
            let mut text = format!(
                "current: {}\nprevious: {}\ninstalled: {}\nbad: {}",
                root.current().unwrap_or_else(|| "-".into()),
                state.previous.clone().unwrap_or_else(|| "-".into()),
                installed.join(" "),
                state.bad.iter().cloned().collect::<Vec<_>>().join(" ")
            );
            for h in state.history.iter().rev().take(10) {
                text.push_str(&format!(
                    "\n  {} {} {} {}",
                    h.at, h.event, h.version, h.detail
                ));
            }
            print(json, &value, &text);
        }
        UpdateCommand::Boot { args, policy } => {
            let (_, root) = open(&args, password)?;
            let v = root.boot(&policy.policy())?;
            print(json, &v, &verdict_text(&v));
        }
        UpdateCommand::Healthy(args) => {
            let (_, root) = open(&args, password)?;
            let v = root.healthy()?;
            print(json, &v, &verdict_text(&v));
        }
        UpdateCommand::Tick { args, policy } => {
            let (_, root) = open(&args, password)?;
            let v = root.tick(&policy.policy())?;
            print(json, &v, &verdict_text(&v));
        }
        UpdateCommand::Rollback { version, args } => {
            let (_, root) = open(&args, password)?;
            let target = match version {
                Some(v) => v,
                None => root
                    .state()
                    .previous
                    .ok_or_else(|| Failure(65, "no previous version to roll back to".into()))?,
            };
            root.rollback(&target, "operator rollback")?;
            print(
                json,
                &serde_json::json!({ "current": target }),
                &format!("current: {target}"),
            );
        }
    }
    Ok(())
}

/// Runs `psvc update …`; returns the exit code.
pub fn run(command: UpdateCommand, common: &super::client::Common) -> ExitCode {
    let system = actix::System::new();
    match system.block_on(run_async(command, common)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            if common.json {
                println!("{}", serde_json::json!({ "error": message, "exit": code }));
            }
            eprintln!("psvc: {message}");
            ExitCode::from(code)
        }
    }
}
