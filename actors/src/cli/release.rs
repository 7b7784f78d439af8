//! The release verbs: `psvc build`, `psvc keys init`, `psvc approve`,
//! `psvc deprecate`, `psvc releases list | serve | refresh`.
//!
//! Each exits 0 on success, 64 on bad arguments, 65 when the change is
//! refused (bad version, approved version rebuilt, not an approver key…),
//! 69 when the Releaser cannot listen, 74 on a file error and 78 on a bad
//! configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::release::build::{BuildEvent, BuildSpec, CargoBuild, Source, build_release};
use crate::release::keys::{KeysSpec, RotateSpec, Rotated, init_keys, rotate_keys};
use crate::release::repo::{
    Change, DEFAULT_CHANNEL, Expiry, OnlineKeys, ReleaseRepo, RepoError, RepoLayout,
};
use crate::release::{BuildError, Releaser, ReleaserOptions, Status};

const EXIT_REFUSED: u8 = 65;
const EXIT_UNAVAILABLE: u8 = 69;
const EXIT_IO: u8 = 74;
const EXIT_CONFIG: u8 = 78;

/// Where the release path comes from.
#[derive(Debug, Clone, Args)]
pub struct PathArgs {
    /// Release path (default: `[PSVC] release_path` of ./psvc.conf, else ./releases).
    #[arg(long)]
    pub release_path: Option<PathBuf>,
    /// Config file to read `[PSVC] release_path` from.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl PathArgs {
    fn resolve(&self) -> Result<PathBuf, Failure> {
        if let Some(p) = &self.release_path {
            return Ok(p.clone());
        }
        let mut loader = psvc::config::ConfigLoader::new("psvc");
        if let Some(f) = &self.config {
            loader = loader.file(f);
        }
        let cfg = loader
            .load()
            .map_err(|e| Failure(EXIT_CONFIG, e.to_string()))?;
        cfg.get::<PathBuf>("PSVC.release_path")
            .map_err(|e| Failure(EXIT_CONFIG, e.to_string()))
    }
}

/// Metadata validity, for the verbs that sign.
#[derive(Debug, Clone, Args)]
pub struct ExpiryArgs {
    /// Validity of the targets metadata (approvals), e.g. `365d`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "365d")]
    pub targets_expiry: Duration,
    /// Validity of the snapshot, e.g. `30d`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30d")]
    pub snapshot_expiry: Duration,
    /// Validity of the timestamp (the Releaser re-signs it), e.g. `1d`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1d")]
    pub timestamp_expiry: Duration,
}

impl ExpiryArgs {
    fn expiry(&self) -> Expiry {
        Expiry {
            targets: self.targets_expiry,
            snapshot: self.snapshot_expiry,
            timestamp: self.timestamp_expiry,
        }
    }
}

/// `psvc build`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  psvc build --version 1.2.0 --manifest-path Cargo.toml --bin my-service\n  psvc build --version 1.2.0 --dir dist/ --exclude '*.pdb'"
)]
pub struct BuildArgs {
    /// Version to build (semver 2.0).
    #[arg(long)]
    pub version: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    /// Package an existing directory instead of running cargo.
    #[arg(long, conflicts_with_all = ["manifest_path", "package", "bin", "features"])]
    pub dir: Option<PathBuf>,
    /// Cargo.toml to build (default ./Cargo.toml).
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
    /// cargo --package.
    #[arg(long, short)]
    pub package: Option<String>,
    /// cargo --bin (repeat for several).
    #[arg(long)]
    pub bin: Vec<String>,
    /// cargo --features (repeat or comma-separate).
    #[arg(long)]
    pub features: Vec<String>,
    /// cargo --no-default-features.
    #[arg(long)]
    pub no_default_features: bool,
    /// Target triple (cargo --target; recorded for --dir).
    #[arg(long)]
    pub target: Option<String>,
    /// cargo --profile.
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// cargo --target-dir.
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Extra file or directory to ship (repeat).
    #[arg(long)]
    pub extra: Vec<PathBuf>,
    /// Exclude glob (repeat); replaces the defaults (*.log *.conf *.d .git/** *.tmp).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Release notes.
    #[arg(long, default_value = "")]
    pub notes: String,
    /// Version to go back to if this one is withdrawn.
    #[arg(long)]
    pub rollback_target: Option<String>,
}

/// `psvc keys`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create the TUF roles' keys and an empty repository.
    #[command(after_help = "Example:\n  psvc keys init --keys ./keys --approvers 3 --threshold 2")]
    Init(KeysInitArgs),
    /// Replace the keys of one or more roles: root version N+1 signed by the
    /// old root key (and the new one), the old keys retired, what they
    /// signed re-signed; clients follow the chain of N.root.json.
    #[command(
        after_help = "Example:\n  psvc keys rotate timestamp snapshot --keys ./keys\n  psvc keys rotate root --keys ./keys   # then ship keys/root.json with new installs"
    )]
    Rotate(KeysRotateArgs),
}

/// `psvc keys rotate`
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    /// Roles whose keys are replaced: root, targets, snapshot, timestamp.
    #[arg(required = true, value_parser = clap::value_parser!(Rotated))]
    pub roles: Vec<Rotated>,
    /// The key directory of `psvc keys init` (with the root key).
    #[arg(long, default_value = "keys")]
    pub keys: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    /// Validity of the new root.json.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "365d")]
    pub root_expiry: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub expiry: ExpiryArgs,
}

/// `psvc keys init`
#[derive(Debug, Args)]
pub struct KeysInitArgs {
    /// Directory for the key files (mode 0700, files 0600).
    #[arg(long, default_value = "keys")]
    pub keys: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    /// Number of approver keys (n).
    #[arg(long, default_value_t = 1)]
    pub approvers: usize,
    /// Approvals needed to publish (k).
    #[arg(long, default_value_t = 1)]
    pub threshold: usize,
    /// Validity of root.json.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "365d")]
    pub root_expiry: Duration,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub expiry: ExpiryArgs,
}

/// Keys for a signed change.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Approver key file (repeat: one per approver signing now).
    #[arg(long = "key", required = true)]
    pub keys: Vec<PathBuf>,
    /// Directory with the online keys (snapshot.pk8, timestamp.pk8).
    #[arg(long = "keys", default_value = "keys")]
    pub online: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub expiry: ExpiryArgs,
}

/// `psvc approve`
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  psvc approve 1.2.0 --key keys/approver-1.pk8\n  psvc approve 1.3.0-beta.1 --channel beta --key keys/approver-1.pk8\n  psvc approve 1.2.0 --rollout 10 --key keys/approver-1.pk8   # 10 % of installations"
)]
pub struct ApproveArgs {
    /// The version (a draft, or approved: to add a channel or change the rollout).
    pub version: String,
    /// Channel to offer it in.
    #[arg(long, default_value = DEFAULT_CHANNEL)]
    pub channel: String,
    /// Release notes (default: the build's).
    #[arg(long)]
    pub notes: Option<String>,
    /// Percentage of installations offered it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub rollout: u8,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sign: SignArgs,
}

/// `psvc deprecate`
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  psvc deprecate 1.2.0 --to 1.1.0 --key keys/approver-1.pk8")]
pub struct DeprecateArgs {
    /// The version to withdraw.
    pub version: String,
    /// The older approved version its installations go back to.
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub sign: SignArgs,
}

/// `psvc releases`
#[derive(Debug, Subcommand)]
pub enum ReleasesCommand {
    /// Drafts, approved and deprecated versions per channel, and a pending change.
    List(PathArgs),
    /// Serve the repository over the psvc protocol (the Releaser).
    #[command(after_help = "Example:\n  psvc releases serve --listen 127.0.0.1:3002 --keys ./keys")]
    Serve(ServeArgs),
    /// Re-sign the timestamp (and snapshot) now.
    Refresh(RefreshArgs),
    /// Drop the change waiting for more approvals.
    Discard(PathArgs),
}

/// `psvc releases serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3002")]
    pub listen: String,
    /// Directory with the online keys, to re-sign the timestamp before it expires.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub expiry: ExpiryArgs,
}

/// `psvc releases refresh`
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Directory with the online keys.
    #[arg(long, default_value = "keys")]
    pub keys: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub path: PathArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub expiry: ExpiryArgs,
}

/// A release verb.
#[derive(Debug)]
pub enum Verb {
    /// `psvc build`
    Build(BuildArgs),
    /// `psvc keys`
    Keys(KeysCommand),
    /// `psvc approve`
    Approve(ApproveArgs),
    /// `psvc deprecate`
    Deprecate(DeprecateArgs),
    /// `psvc releases`
    Releases(ReleasesCommand),
}

/// An exit code and what to say.
#[derive(Debug)]
struct Failure(u8, String);

impl From<RepoError> for Failure {
    fn from(e: RepoError) -> Self {
        let code = match &e {
            RepoError::Io { .. } => EXIT_IO,
            _ => EXIT_REFUSED,
        };
        Failure(code, e.to_string())
    }
}

impl From<BuildError> for Failure {
    fn from(e: BuildError) -> Self {
        let code = match &e {
            BuildError::Io { .. } => EXIT_IO,
            _ => EXIT_REFUSED,
        };
        Failure(code, e.to_string())
    }
}

fn bar(json: bool) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn build(args: BuildArgs, json: bool) -> Result<(), Failure> {
    let release_path = args.path.resolve()?;
    let source = match args.dir {
        Some(dir) => Source::Directory(dir),
        None => Source::Cargo(CargoBuild {
            manifest_path: args.manifest_path.unwrap_or_else(|| "Cargo.toml".into()),
            package: args.package,
            bins: args.bin,
            features: args.features,
            no_default_features: args.no_default_features,
            target: args.target.clone(),
            profile: args.profile,
            target_dir: args.target_dir,
        }),
    };
    let spec = BuildSpec {
        version: args.version,
        release_path,
        source,
        extra_files: args.extra,
        exclude: (!args.exclude.is_empty()).then_some(args.exclude),
        notes: args.notes,
        rollback_target: args.rollback_target,
        target: args.target,
    };
    let progress = bar(json);
    let status = build_release(&spec, &mut |event| match event {
        BuildEvent::Compiling => progress.set_message("cargo build …"),
        BuildEvent::Copying { done, total, bytes } => {
            if progress.length() != Some(total as u64) {
                progress.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} copying {pos}/{len} files {msg} {wide_bar}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                progress.set_length(total as u64);
            }
            progress.set_position(done as u64);
            progress.set_message(indicatif::HumanBytes(bytes).to_string());
        }
        BuildEvent::Done => progress.finish_and_clear(),
    });
    progress.finish_and_clear();
    let status = status?;
    if json {
        println!("{}", serde_json::to_string(&status).unwrap_or_default());
    } else {
        println!(
            "built {} (draft): {} files, {} in {}",
            status.version,
            status.files.len(),
            indicatif::HumanBytes(status.total_size()),
            spec.release_path.join(&status.version).display()
        );
        println!("next: psvc approve {} --key <approver key>", status.version);
    }
    Ok(())
}

async fn keys_rotate(args: KeysRotateArgs, json: bool) -> Result<(), Failure> {
    let spec = RotateSpec {
        dir: args.keys,
        release_path: args.path.resolve()?,
        roles: args.roles,
        root_expiry: args.root_expiry,
        expiry: args.expiry.expiry(),
    };
    let report = rotate_keys(&spec).await?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    println!("root version {} published", report.root_version);
    for k in &report.new_keys {
        println!("new key:     {}", k.display());
    }
    for k in &report.retired {
        println!("retired key: {}", k.display());
    }
    println!(
        "ship {} with new installations; installed ones follow the rotation",
        report.root_json.display()
    );
    Ok(())
}

async fn keys_init(args: KeysInitArgs, json: bool) -> Result<(), Failure> {
    let spec = KeysSpec {
        dir: args.keys,
        release_path: args.path.resolve()?,
        approvers: args.approvers,
        threshold: args.threshold,
        root_expiry: args.root_expiry,
        expiry: args.expiry.expiry(),
    };
    let report = init_keys(&spec).await?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        return Ok(());
    }
    println!(
        "root key (keep offline):      {}",
        report.root_key.display()
    );
    for k in &report.approver_keys {
        println!("approver key (give to one approver): {}", k.display());
    }
    println!(
        "approvals needed:             {} of {}",
        report.threshold,
        report.approver_keys.len()
    );
    println!(
        "online keys (the Releaser):   {}, {}",
        report.snapshot_key.display(),
        report.timestamp_key.display()
    );
    println!(
        "repository:                   {}",
        report.metadata_dir.display()
    );
    println!(
        "ship {} with every client: it is the trust anchor the updater verifies everything against",
        report.root_json.display()
    );
    Ok(())
}

async fn signed_change(change: Change, sign: SignArgs, json: bool) -> Result<(), Failure> {
    let release_path = sign.path.resolve()?;
    let progress = bar(json);
    progress.set_message(format!("{change}: verifying and signing …"));
    let result = async {
        let mut repo = ReleaseRepo::open(&release_path).await?;
        repo.propose(
            change,
            &sign.keys,
            &OnlineKeys::in_dir(&sign.online),
            &sign.expiry.expiry(),
        )
        .await
    }
    .await;
    progress.finish_and_clear();
    let outcome = result?;
    if json {
        println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
        return Ok(());
    }
    match outcome {
        crate::release::Outcome::Published {
            change,
            targets_version,
        } => println!("published: {change} (targets metadata v{targets_version})"),
        crate::release::Outcome::Pending {
            change,
            signatures,
            threshold,
        } => println!(
            "recorded: {change}; {signatures} of {threshold} approvals. Another approver runs the same command with their --key."
        ),
    }
    Ok(())
}

async fn list(path: PathArgs, json: bool) -> Result<(), Failure> {
    let release_path = path.resolve()?;
    let layout = RepoLayout::new(&release_path);
    let repo = match ReleaseRepo::open(&release_path).await {
        Ok(r) => Some(r),
        Err(RepoError::NoRepository(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let releases = repo.as_ref().map(ReleaseRepo::list).unwrap_or_default();
    let signed: std::collections::BTreeSet<&str> =
        releases.iter().map(|r| r.record.version.as_str()).collect();
    let drafts: Vec<String> = layout
        .drafts()
        .into_iter()
        .filter(|v| !signed.contains(v.as_str()))
        .collect();
    let pending = repo.as_ref().and_then(ReleaseRepo::pending);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "releases": releases,
                "drafts": drafts,
                "pending": pending.map(|(c, n)| serde_json::json!({
                    "change": c.to_string(),
                    "signatures": n,
                    "threshold": repo.as_ref().map_or(1, ReleaseRepo::threshold),
                })),
            })
        );
        return Ok(());
    }
    if repo.is_none() {
        println!(
            "no repository yet in {} (psvc keys init)",
            release_path.display()
        );
    }
    println!(
        "{:<20} {:<11} {:<24} notes",
        "version", "status", "channels"
    );
    for r in &releases {
        let channels: Vec<String> = r
            .record
            .channels
            .iter()
            .map(|(c, s)| {
                if s.rollout >= 100 {
                    c.clone()
                } else {
                    format!("{c}@{}%", s.rollout)
                }
            })
            .collect();
        let mut status = r.record.status.to_string();
        if r.record.status == Status::Deprecated
            && let Some(to) = &r.record.rollback_target
        {
            status = format!("deprecated→{to}");
        }
        println!(
            "{:<20} {:<11} {:<24} {}",
            r.record.version,
            status,
            channels.join(","),
            r.record.notes
        );
    }
    for d in &drafts {
        println!("{d:<20} {:<11} {:<24}", "draft", "-");
    }
    if let Some((change, n)) = pending {
        println!(
            "pending: {change} ({n} of {} approvals)",
            repo.as_ref().map_or(1, ReleaseRepo::threshold)
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs, common: &super::client::Common) -> Result<(), Failure> {
    use actix::Actor;
    let release_path = args.path.resolve()?;
    let mut options = ReleaserOptions::new(release_path);
    options.expiry = args.expiry.expiry();
    if let Some(keys) = args.keys {
        options = options.online_keys(keys);
    }
    let releaser = Releaser::new(options).start();
    let commander = Releaser::routes(psvc::commander::Commander::new(), releaser);
    let auth = match &common.password {
        Some(pw) => psvc::socket::Auth::password(pw),
        None => psvc::socket::Auth::anonymous(),
    };
    let server = psvc::socket::Server::new(auth)
        .info(serde_json::json!({ "name": "psvc releaser" }))
        .commands(commander.commands())
        .start(args.listen.clone())
        .await
        .map_err(|e| Failure(EXIT_UNAVAILABLE, e.to_string()))?;
    let addr = server.local_addr();
    println!(
        "{}",
        serde_json::json!({ "port": addr.port(), "addr": addr.to_string() })
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop();
    Ok(())
}

async fn refresh(args: RefreshArgs, json: bool) -> Result<(), Failure> {
    let release_path = args.path.resolve()?;
    let mut repo = ReleaseRepo::open(&release_path).await?;
    let expiry = args.expiry.expiry();
    repo.refresh(&OnlineKeys::in_dir(&args.keys), &expiry, expiry.timestamp)
        .await?;
    let (ts, snap) = repo.expires().unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({ "timestamp_expires": ts.to_string(), "snapshot_expires": snap.to_string() })
        );
    } else {
        println!("timestamp valid until {ts}, snapshot until {snap}");
    }
    Ok(())
}

/// Runs a release verb; returns the exit code.
pub fn run(verb: Verb, common: &super::client::Common) -> ExitCode {
    let json = common.json;
    if matches!(verb, Verb::Releases(ReleasesCommand::Serve(_))) {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .try_init();
    }
    let system = actix::System::new();
    let result = system.block_on(async move {
        match verb {
            Verb::Build(a) => tokio::task::spawn_blocking(move || build(a, json))
                .await
                .map_err(|e| Failure(EXIT_IO, e.to_string()))?,
            Verb::Keys(KeysCommand::Init(a)) => keys_init(a, json).await,
            Verb::Keys(KeysCommand::Rotate(a)) => keys_rotate(a, json).await,
            Verb::Approve(a) => {
                let change = Change::Approve {
                    version: a.version,
                    channel: a.channel,
                    notes: a.notes,
                    rollout: a.rollout,
                };
                signed_change(change, a.sign, json).await
            }
            Verb::Deprecate(a) => {
                let change = Change::Deprecate {
                    version: a.version,
                    to: a.to,
                };
                signed_change(change, a.sign, json).await
            }
            Verb::Releases(ReleasesCommand::List(p)) => list(p, json).await,
            Verb::Releases(ReleasesCommand::Serve(a)) => serve(a, common).await,
            Verb::Releases(ReleasesCommand::Refresh(a)) => refresh(a, json).await,
            Verb::Releases(ReleasesCommand::Discard(p)) => {
                let release_path = p.resolve()?;
                let repo = ReleaseRepo::open(&release_path).await?;
                let dropped = repo.discard_pending()?;
                println!(
                    "{}",
                    if dropped {
                        "pending change discarded"
                    } else {
                        "nothing pending"
                    }
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, message)) => {
            if json {
                println!("{}", serde_json::json!({ "error": message, "exit": code }));
            }
            eprintln!("psvc: {message}");
            ExitCode::from(code)
        }
    }
}
