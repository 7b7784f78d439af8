//! The Updater actor: check, apply, status, rollback.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use actix::Actor;
//! use psvc_actors::update::updater::{Apply, Updater, UpdaterOptions};
//! let options = UpdaterOptions::new("/opt/app", "/opt/app/root.json")
//!     .source("vsoa://127.0.0.1:3002".parse()?)
//!     .source("http://mirror.lan/app/".parse()?);
//! let updater = Updater::new(options).start();
//! let outcome = updater.send(Apply).await??;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```

use std::path::PathBuf;

use actix::prelude::*;
use serde::Serialize;
use tough::{ExpirationEnforcement, RepositoryLoader};

use super::download::{DownloadError, Limits, Wanted, download};
use super::install::{InstallError, InstallRoot, StagedFile};
use super::source::Source;
use crate::release::repo::{DEFAULT_CHANNEL, ReleaseInfo, delta_name, latest, releases_of};
use crate::release::status::{ReleaseStatus, Status};

/// Why an update operation failed. The current version is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// No source gave metadata that verifies.
    #[error("no update source could be verified: {0}")]
    NoSource(String),
    /// The trusted root cannot be read.
    #[error("trusted root {path}: {message}")]
    Root {
        /// Its path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A download failed on every source.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The install failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// Not enough free space for the download and the unpacked version;
    /// nothing was written.
    #[error("{path}: the update needs {needed} bytes free, {available} are")]
    NoSpace {
        /// The install root.
        path: PathBuf,
        /// Bytes needed (downloads and the unpacked copy).
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The signed release is inconsistent (a listed file is missing, its
    /// status.json does not match).
    #[error("release {version}: {message}")]
    BadRelease {
        /// The version.
        version: String,
        /// What is wrong.
        message: String,
    },
}

/// How the Updater runs.
#[derive(Debug, Clone)]
pub struct UpdaterOptions {
    /// The install root (`[PSVC] update_path`).
    pub install_root: PathBuf,
    /// The shipped `root.json`.
    pub trusted_root: PathBuf,
    /// Sources, tried in order.
    pub sources: Vec<Source>,
    /// The channel followed.
    pub channel: String,
    /// This installation's id, for staged rollouts (default: /etc/machine-id).
    pub installation: Option<String>,
    /// Installed versions kept (at least 2: current and previous).
    pub keep: usize,
    /// Download limits.
    pub limits: Limits,
    /// Check (and probation tick) this often; `None`: only on request.
    pub check_every: Option<std::time::Duration>,
    /// Install what a scheduled check finds (else only log it).
    pub auto_apply: bool,
    /// Probation of a new version.
    pub probation: super::probation::ProbationPolicy,
    /// Restart the service (graceful shutdown, then exec of the same command
    /// line) after a scheduled apply installed a version, or after a failed
    /// probation flipped back: the service's
    /// [`ShutdownTrigger`](psvc::service::ShutdownTrigger). `None`: only log.
    pub restart: Option<psvc::service::ShutdownTrigger>,
    /// Report the version on probation healthy when the service is ready
    /// (its `init` returned `Ok`): the service's
    /// [`Readiness`](psvc::service::Readiness). `None`: the service sends
    /// [`Healthy`] itself, when it knows better (its devices answer, …).
    pub ready: Option<psvc::service::Readiness>,
    /// Send the install root's events (installed, committed, rolled back,
    /// marked bad) to the first Releaser source that takes them, on each
    /// scheduled run, until acknowledged (`/release/report`).
    pub report: bool,
}

/// The `[update]` section of `psvc.conf` (every key optional):
///
/// ```ini
/// [PSVC]
/// update_path = /opt/app          ; the install root
/// [update]
/// sources = vsoa://10.0.0.2:3002, http://mirror.lan/app/
/// channel = stable
/// trusted_root = /opt/app/root.json
/// interval = 1h                   ; scheduled checks (none: on request only)
/// auto_apply = false
/// report = false                  ; send update events to the Releaser
/// keep = 3
/// max_boots = 3
/// health_deadline = 2m
/// probation_period = 10m
/// ```
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// Sources, comma-separated, tried in order.
    pub sources: String,
    /// Channel followed.
    pub channel: Option<String>,
    /// The shipped root.json (default: `<update_path>/root.json`).
    pub trusted_root: Option<PathBuf>,
    /// Scheduled check interval.
    #[serde(with = "humantime_serde")]
    pub interval: Option<std::time::Duration>,
    /// Install what a scheduled check finds.
    pub auto_apply: bool,
    /// Report update events to the Releaser.
    pub report: bool,
    /// Installed versions kept.
    pub keep: Option<usize>,
    /// Starts allowed during probation.
    pub max_boots: Option<u32>,
    /// Health report deadline after an install.
    #[serde(with = "humantime_serde")]
    pub health_deadline: Option<std::time::Duration>,
    /// Healthy this long to be committed.
    #[serde(with = "humantime_serde")]
    pub probation_period: Option<std::time::Duration>,
}

/// Why the update configuration is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key is missing or invalid.
    #[error(transparent)]
    Config(#[from] psvc::config::Error),
    /// A source does not parse.
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
}

impl UpdaterOptions {
    /// Options for `install_root`, trusting `trusted_root`; no source yet.
    pub fn new(install_root: impl Into<PathBuf>, trusted_root: impl Into<PathBuf>) -> Self {
        UpdaterOptions {
            install_root: install_root.into(),
            trusted_root: trusted_root.into(),
            sources: Vec::new(),
            channel: DEFAULT_CHANNEL.to_owned(),
            installation: std::fs::read_to_string("/etc/machine-id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            keep: 3,
            limits: Limits::default(),
            check_every: None,
            auto_apply: false,
            probation: super::probation::ProbationPolicy::default(),
            restart: None,
            ready: None,
            report: false,
        }
    }

    /// From `[PSVC] update_path` and the `[update]` section ([`UpdateConfig`]).
    ///
    /// # Errors
    /// A key is missing (`update_path`) or invalid, or a source does not parse.
    pub fn from_config(config: &psvc::config::Config) -> Result<Self, ConfigError> {
        let root: PathBuf = config.get("PSVC.update_path")?;
        let section = match config.section::<UpdateConfig>("update") {
            Ok(s) => s,
            Err(psvc::config::Error::Missing(_)) => UpdateConfig::default(),
            Err(e) => return Err(e.into()),
        };
        let trusted = section
            .trusted_root
            .clone()
            .unwrap_or_else(|| root.join("root.json"));
        let mut o = UpdaterOptions::new(root, trusted);
        for s in section
            .sources
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            o = o.source(s.parse()?);
        }
        if let Some(c) = section.channel {
            o.channel = c;
        }
        o.check_every = section.interval;
        o.auto_apply = section.auto_apply;
        o.report = section.report;
        if let Some(k) = section.keep {
            o.keep = k;
        }
        if let Some(n) = section.max_boots {
            o.probation.max_boots = n;
        }
        if let Some(d) = section.health_deadline {
            o.probation.health_deadline = d;
        }
        if let Some(d) = section.probation_period {
            o.probation.period = d;
        }
        Ok(o)
    }

    /// Adds a source (tried after the ones before).
    pub fn source(mut self, source: Source) -> Self {
        self.sources.push(source);
        self
    }
}

/// What a check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    /// The current version.
    pub current: Option<String>,
    /// The newest version the channel offers this installation.
    pub latest: Option<String>,
    /// The version to install, if any (newer, or the signed rollback
    /// target of a deprecated current version).
    pub update: Option<String>,
    /// Why there is no update, or why this one.
    pub reason: String,
    /// The source whose metadata verified.
    pub source: String,
    /// The release to install.
    #[serde(skip)]
    pub release: Option<ReleaseInfo>,
}

/// What `apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyOutcome {
    /// The check it acted on.
    pub check: CheckOutcome,
    /// The version installed and made current, if any.
    pub installed: Option<String>,
    /// The version current before.
    pub previous: Option<String>,
    /// Versions removed to keep `keep` generations.
    pub pruned: Vec<String>,
    /// What was transferred.
    pub transfer: Transfer,
}

/// Bytes an install fetched, against what full downloads would have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Signed length of every file of the release.
    pub full_bytes: u64,
    /// Signed length of what was fetched: patches, and the files that had
    /// none (or whose patch failed).
    pub fetched_bytes: u64,
    /// Files rebuilt from a patch against an installed version.
    pub patched: Vec<String>,
}

fn newer(a: &str, b: &str) -> bool {
    matches!((semver::Version::parse(a), semver::Version::parse(b)), (Ok(x), Ok(y)) if x > y)
}

/// Refreshes the TUF metadata from the first source that verifies and
/// decides what to install.
///
/// # Errors
/// [`UpdateError::NoSource`] when no source verifies (the reasons of each
/// are in the message), or the trusted root cannot be read.
pub async fn check(
    root: &InstallRoot,
    options: &UpdaterOptions,
) -> Result<(CheckOutcome, tough::Repository, Source), UpdateError> {
    let trusted = std::fs::read(&options.trusted_root).map_err(|e| UpdateError::Root {
        path: options.trusted_root.clone(),
        message: e.to_string(),
    })?;
    let mut errors = Vec::new();
    for source in &options.sources {
        let (meta, targets) = match (source.metadata_url(), source.targets_url()) {
            (Ok(m), Ok(t)) => (m, t),
            (Err(e), _) | (_, Err(e)) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let loaded = RepositoryLoader::new(&trusted, meta, targets)
            .transport(source.transport(options.limits.request_timeout))
            .datastore(root.tuf_dir())
            .expiration_enforcement(ExpirationEnforcement::Safe)
            .load()
            .await;
        match loaded {
            Ok(repo) => {
                let outcome = decide(root, options, &repo, source);
                return Ok((outcome, repo, source.clone()));
            }
            Err(e) => {
                tracing::warn!(%source, error = %e, "update source refused");
                errors.push(format!("{source}: {e}"));
            }
        }
    }
    Err(UpdateError::NoSource(if errors.is_empty() {
        "no source configured".into()
    } else {
        errors.join("; ")
    }))
}

fn decide(
    root: &InstallRoot,
    options: &UpdaterOptions,
    repo: &tough::Repository,
    source: &Source,
) -> CheckOutcome {
    let releases = releases_of(&repo.targets().signed);
    let state = root.state();
    let current = root.current();
    let offered = latest(&releases, &options.channel, options.installation.as_deref());
    let mut outcome = CheckOutcome {
        current: current.clone(),
        latest: offered.map(|r| r.record.version.clone()),
        update: None,
        reason: String::new(),
        source: source.to_string(),
        release: None,
    };
    // A deprecated current version goes back to its signed rollback target.
    if let Some(cur) = &current
        && let Some(rec) = releases.iter().find(|r| &r.record.version == cur)
        && rec.record.status == Status::Deprecated
        && let Some(to) = &rec.record.rollback_target
        && let Some(target) = releases
            .iter()
            .find(|r| &r.record.version == to && r.record.status == Status::Approved)
    {
        outcome.update = Some(to.clone());
        outcome.reason = format!("{cur} is deprecated; the signed rollback target is {to}");
        outcome.release = Some(target.clone());
        return outcome;
    }
    let Some(offered) = offered else {
        outcome.reason = format!(
            "channel {} offers nothing to this installation",
            options.channel
        );
        return outcome;
    };
    let version = &offered.record.version;
    if current.as_deref() == Some(version.as_str()) {
        outcome.reason = "up to date".into();
    } else if state.bad.contains(version) {
        outcome.reason = format!("{version} failed here before; waiting for a newer version");
    } else if let Some(cur) = &current
        && !newer(version, cur)
    {
        outcome.reason = format!("{version} is not newer than {cur}");
    } else if let Some(high) = &state.highest
        && newer(high, version)
    {
        outcome.reason = format!(
            "{version} is lower than {high}, the highest trusted here (no signed downgrade)"
        );
    } else {
        outcome.update = Some(version.clone());
        outcome.reason = match &current {
            Some(cur) => format!("{version} is newer than {cur}"),
            None => format!("{version} is the newest in {}", options.channel),
        };
        outcome.release = Some(offered.clone());
    }
    outcome
}

/// Checks, downloads, verifies and installs the update, if there is one.
/// `progress` sees (file, bytes held, file length).
///
/// # Errors
/// See [`UpdateError`]; the current version stays current.
pub async fn apply(
    root: &InstallRoot,
    options: &UpdaterOptions,
    progress: &mut (dyn FnMut(&str, u64, u64) + Send),
) -> Result<ApplyOutcome, UpdateError> {
    let (check, repo, good) = check(root, options).await?;
    let Some(release) = check.release.clone() else {
        return Ok(ApplyOutcome {
            check,
            installed: None,
            previous: None,
            pruned: Vec::new(),
            transfer: Transfer::default(),
        });
    };
    let version = release.record.version.clone();
    if root.installed().contains(&version) {
        // Installed before (a signed rollback target): make it current again.
        let previous = root.current();
        root.rollback(&version, &check.reason)?;
        return Ok(ApplyOutcome {
            check,
            installed: Some(version),
            previous,
            pruned: Vec::new(),
            transfer: Transfer::default(),
        });
    }
    let bad = |message: String| UpdateError::BadRelease {
        version: version.clone(),
        message,
    };
    // Every file the signed record lists must be a signed target.
    let targets = &repo.targets().signed;
    let mut wanted = Vec::new();
    for path in
        std::iter::once("status.json".to_owned()).chain(release.record.files.iter().cloned())
    {
        let name =
            tough::TargetName::new(format!("{version}/{path}")).map_err(|e| bad(e.to_string()))?;
        let target = targets
            .targets
            .get(&name)
            .ok_or_else(|| bad(format!("{path} is listed but not signed")))?;
        wanted.push((
            path,
            Wanted {
                file: crate::release::repo::consistent_name(name.raw(), target),
                length: target.length,
                sha256: hex::encode(&target.hashes.sha256),
            },
        ));
    }
    // Room for the downloads and the unpacked copy, checked before a byte
    // is written: a full disk must not take the running service down.
    let needed: u64 = wanted.iter().map(|(_, w)| w.length).sum::<u64>() * 2;
    if let Ok(available) = fs4::available_space(root.path())
        && available < needed
    {
        return Err(UpdateError::NoSpace {
            path: root.path().to_path_buf(),
            needed,
            available,
        });
    }
    // The source that verified first, then the others.
    let mut order = vec![good.clone()];
    order.extend(options.sources.iter().filter(|s| **s != good).cloned());
    let mut fetched = Vec::new();
    let mut transfer = Transfer::default();
    for (path, w) in &wanted {
        transfer.full_bytes += w.length;
        if let Some((file, patch_len)) =
            fetch_patched(root, options, &order, &repo, &release, path, w, progress).await
        {
            transfer.fetched_bytes += patch_len;
            transfer.patched.push(path.clone());
            fetched.push((path.clone(), file));
            continue;
        }
        let mut last = None;
        let mut got = None;
        for source in &order {
            let mut report = |n: u64| progress(path, n, w.length);
            match download(source, w, &root.downloads(), &options.limits, &mut report).await {
                Ok(file) => {
                    got = Some(file);
                    break;
                }
                Err(e) => {
                    tracing::warn!(%source, file = %path, error = %e, "download failed; trying the next source");
                    last = Some(e);
                }
            }
        }
        match got {
            Some(file) => {
                transfer.fetched_bytes += w.length;
                fetched.push((path.clone(), file));
            }
            None => return Err(last.map_or_else(|| bad("no source".into()), UpdateError::from)),
        }
    }
    super::install::crash_point("after_download");
    // status.json (verified) gives each file's mode.
    let status: ReleaseStatus = std::fs::read(&fetched[0].1)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("its status.json does not parse".into()))?;
    if status.version != version {
        return Err(bad(format!("its status.json says {}", status.version)));
    }
    let mut files = Vec::new();
    for (path, from) in fetched.iter().skip(1) {
        let entry = status
            .files
            .iter()
            .find(|f| &f.path == path)
            .ok_or_else(|| bad(format!("{path} is not in its status.json")))?;
        files.push(StagedFile {
            from: from.clone(),
            path: path.clone(),
            mode: entry.mode,
        });
    }
    // Copying, fsyncing and pruning block: on a thread of their own, so the
    // service keeps answering while its next version is installed.
    let (r, v, keep) = (root.clone(), version.clone(), options.keep);
    let (previous, pruned) = tokio::task::spawn_blocking(move || {
        let previous = r.install(&v, &files)?;
        if let Some(prev) = &previous {
            r.start_probation(&v, prev)?;
        }
        for (_, file) in &fetched {
            let _ = std::fs::remove_file(file);
        }
        Ok::<_, InstallError>((previous, r.prune(keep)?))
    })
    .await
    .map_err(|e| InstallError::Refused(format!("install task: {e}")))??;
    tracing::info!(%version, previous = ?previous, "update installed");
    // Installed and on probation; the restart into it has not happened.
    super::install::crash_point("before_restart");
    Ok(ApplyOutcome {
        check,
        installed: Some(version),
        previous,
        pruned,
        transfer,
    })
}

/// Sends the install root's unreported events (at most
/// [`MAX_REPORT_EVENTS`](crate::release::releaser::MAX_REPORT_EVENTS) at a
/// time) to the first Releaser source that acknowledges them, and records
/// the acknowledgement in `state.json`, so each event is reported at least
/// once however often the service restarts. Returns how many were sent.
///
/// # Errors
/// [`UpdateError::NoSource`] when there are events and no Releaser source
/// took them; they are sent again next time.
pub async fn report(root: &InstallRoot, options: &UpdaterOptions) -> Result<usize, UpdateError> {
    use crate::release::releaser::{MAX_REPORT_EVENTS, Report};
    let state = root.state();
    let events: Vec<_> = state
        .unreported()
        .into_iter()
        .take(MAX_REPORT_EVENTS)
        .collect();
    let Some(last) = events.last().map(|e| e.seq) else {
        return Ok(0);
    };
    let report = Report {
        installation: options
            .installation
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        current: state.current.clone(),
        events,
        received_at: String::new(),
    };
    let mut errors = Vec::new();
    for source in &options.sources {
        if !matches!(source, Source::Releaser { .. }) {
            continue;
        }
        match source.report(&report, options.limits.request_timeout).await {
            Ok(()) => {
                root.mark_reported(last)?;
                return Ok(report.events.len());
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    Err(UpdateError::NoSource(if errors.is_empty() {
        "no Releaser source to report to".into()
    } else {
        errors.join("; ")
    }))
}

/// Fetches `path` of `release` as a signed patch against an installed
/// version (the current one first) and rebuilds it; `None` when there is
/// no patch from an installed version or every one failed (the caller
/// then downloads the file in full). Returns the file and the patch's
/// length.
#[allow(clippy::too_many_arguments)] // one step of `apply`, its state passed in
async fn fetch_patched(
    root: &InstallRoot,
    options: &UpdaterOptions,
    order: &[Source],
    repo: &tough::Repository,
    release: &ReleaseInfo,
    path: &str,
    wanted: &Wanted,
    progress: &mut (dyn FnMut(&str, u64, u64) + Send),
) -> Option<(PathBuf, u64)> {
    let version = &release.record.version;
    let current = root.current();
    let mut bases: Vec<&String> = release
        .record
        .deltas
        .iter()
        .filter(|(_, paths)| paths.iter().any(|p| p == path))
        .map(|(base, _)| base)
        .collect();
    bases.sort_by_key(|b| Some(b.as_str()) != current.as_deref());
    for base in bases {
        let base_file = root.version_dir(base).join(path);
        if !base_file.is_file() {
            continue;
        }
        let Some((name, target)) = tough::TargetName::new(delta_name(version, base, path))
            .ok()
            .and_then(|n| repo.targets().signed.targets.get(&n).map(|t| (n, t)))
        else {
            continue;
        };
        let patch = Wanted {
            file: crate::release::repo::consistent_name(name.raw(), target),
            length: target.length,
            sha256: hex::encode(&target.hashes.sha256),
        };
        let mut fetched = None;
        for source in order {
            let mut report = |n: u64| progress(path, n, patch.length);
            match download(
                source,
                &patch,
                &root.downloads(),
                &options.limits,
                &mut report,
            )
            .await
            {
                Ok(file) => {
                    fetched = Some(file);
                    break;
                }
                Err(e) => {
                    tracing::warn!(%source, file = %path, %base, error = %e, "patch download failed");
                }
            }
        }
        let Some(patch_file) = fetched else { continue };
        let (dir, want, pf) = (root.downloads(), wanted.clone(), patch_file.clone());
        let rebuilt = tokio::task::spawn_blocking(move || {
            super::download::rebuild_from_patch(&base_file, &pf, &want, &dir)
        })
        .await;
        let _ = std::fs::remove_file(&patch_file);
        match rebuilt {
            Ok(Ok(file)) => {
                tracing::info!(%version, %base, file = %path, patch = patch.length, full = wanted.length, "rebuilt from a patch");
                progress(path, wanted.length, wanted.length);
                return Some((file, patch.length));
            }
            Ok(Err(e)) => {
                tracing::warn!(%version, %base, file = %path, error = %e, "the patch did not rebuild the signed file; downloading it in full");
            }
            Err(e) => tracing::warn!(error = %e, "patch task failed"),
        }
    }
    None
}

/// The Updater actor: one operation at a time; the install root stays
/// locked while it runs.
pub struct Updater {
    options: UpdaterOptions,
    root: Option<std::sync::Arc<InstallRoot>>,
}

impl std::fmt::Debug for Updater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Updater")
            .field("install_root", &self.options.install_root)
            .finish_non_exhaustive()
    }
}

impl Updater {
    /// An Updater for `options` (the install root is opened at the first request).
    pub fn new(options: UpdaterOptions) -> Updater {
        Updater {
            options,
            root: None,
        }
    }

    fn root(&mut self) -> Result<std::sync::Arc<InstallRoot>, UpdateError> {
        if let Some(r) = &self.root {
            return Ok(r.clone());
        }
        let r = std::sync::Arc::new(InstallRoot::open(&self.options.install_root)?);
        self.root = Some(r.clone());
        Ok(r)
    }
}

impl Actor for Updater {
    type Context = Context<Self>;

    /// The schedule starts with the first message (no timer in `started`:
    /// it may run while the runtime shuts down).
    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.options.check_every.is_some() {
            ctx.notify(Scheduled { first: true });
        }
        if let Some(ready) = self.options.ready.clone() {
            ctx.spawn(
                fut::wrap_future(ready.wait()).map(|ready, act: &mut Self, _| {
                    if !ready {
                        return;
                    }
                    match act.root().and_then(|r| Ok(r.healthy()?)) {
                        Ok(verdict) => tracing::info!(?verdict, "service ready: reported healthy"),
                        Err(e) => tracing::warn!(error = %e, "health report failed"),
                    }
                }),
            );
        }
    }
}

/// A scheduled probation tick and check (or apply).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Scheduled {
    first: bool,
}

impl Handler<Scheduled> for Updater {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Scheduled, ctx: &mut Context<Self>) -> Self::Result {
        if msg.first
            && let Some(every) = self.options.check_every
        {
            ctx.run_interval(every, |_, ctx| ctx.notify(Scheduled { first: false }));
        }
        let root = self.root();
        let options = self.options.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let root = match root {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "update: install root unusable");
                        return;
                    }
                };
                if options.report {
                    match report(&root, &options).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(events = n, "update events reported"),
                        Err(e) => tracing::debug!(error = %e, "update report not sent"),
                    }
                }
                let restart = |why: &str| match &options.restart {
                    Some(trigger) => {
                        tracing::warn!(why, "restarting the service");
                        trigger.request_restart();
                    }
                    None => tracing::warn!(why, "restart the service to run it"),
                };
                match root.tick(&options.probation) {
                    Ok(super::probation::Verdict::RolledBack { from, to, reason }) => {
                        tracing::error!(%from, %to, %reason, "probation failed: rolled back");
                        restart("back to the previous version");
                        return;
                    }
                    Ok(super::probation::Verdict::Committed { version }) => {
                        tracing::info!(%version, "update committed")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "probation tick failed"),
                }
                if options.auto_apply {
                    match apply(&root, &options, &mut |_, _, _| {}).await {
                        Ok(out) => match out.installed {
                            Some(v) => {
                                tracing::info!(version = %v, "update installed");
                                restart("a new version is current");
                            }
                            None => tracing::debug!(reason = %out.check.reason, "no update"),
                        },
                        Err(e) => tracing::warn!(error = %e, "scheduled update failed"),
                    }
                } else {
                    match check(&root, &options).await {
                        Ok((c, _, _)) => match c.update {
                            Some(v) => {
                                tracing::info!(version = %v, reason = %c.reason, "update available")
                            }
                            None => tracing::debug!(reason = %c.reason, "no update"),
                        },
                        Err(e) => tracing::warn!(error = %e, "scheduled check failed"),
                    }
                }
            }
            .into_actor(self),
        ))
    }
}

/// Check for an update.
#[derive(Debug, Message)]
#[rtype(result = "Result<CheckOutcome, UpdateError>")]
pub struct Check;

/// Check, download and install.
#[derive(Debug, Message)]
#[rtype(result = "Result<ApplyOutcome, UpdateError>")]
pub struct Apply;

impl Handler<Check> for Updater {
    type Result = AtomicResponse<Self, Result<CheckOutcome, UpdateError>>;

    fn handle(&mut self, _: Check, _: &mut Context<Self>) -> Self::Result {
        let root = self.root();
        let options = self.options.clone();
        AtomicResponse::new(Box::pin(
            async move { check(&*root?, &options).await.map(|(c, _, _)| c) }.into_actor(self),
        ))
    }
}

impl Handler<Apply> for Updater {
    type Result = AtomicResponse<Self, Result<ApplyOutcome, UpdateError>>;

    fn handle(&mut self, _: Apply, _: &mut Context<Self>) -> Self::Result {
        let root = self.root();
        let options = self.options.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let root = root?;
                apply(&root, &options, &mut |file, n, len| {
                    tracing::debug!(file, n, len, "download");
                })
                .await
            }
            .into_actor(self),
        ))
    }
}

/// Installed versions and history.
#[derive(Debug, Message)]
#[rtype(result = "Result<super::install::State, UpdateError>")]
pub struct GetStatus;

impl Handler<GetStatus> for Updater {
    type Result = Result<super::install::State, UpdateError>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        Ok(self.root()?.state())
    }
}

/// The service reports healthy: the version on probation is on its way to
/// being committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<super::probation::Verdict, UpdateError>")]
pub struct Healthy;

impl Handler<Healthy> for Updater {
    type Result = Result<super::probation::Verdict, UpdateError>;

    fn handle(&mut self, _: Healthy, _: &mut Context<Self>) -> Self::Result {
        Ok(self.root()?.healthy()?)
    }
}

/// Commit or roll back the version on probation, as its policy says.
#[derive(Debug, Message)]
#[rtype(result = "Result<super::probation::Verdict, UpdateError>")]
pub struct Tick(pub super::probation::ProbationPolicy);

impl Handler<Tick> for Updater {
    type Result = Result<super::probation::Verdict, UpdateError>;

    fn handle(&mut self, msg: Tick, _: &mut Context<Self>) -> Self::Result {
        Ok(self.root()?.tick(&msg.0)?)
    }
}

/// Make an installed version current again (`None`: the previous one).
#[derive(Debug, Message)]
#[rtype(result = "Result<String, UpdateError>")]
pub struct Rollback(pub Option<String>);

impl Handler<Rollback> for Updater {
    type Result = Result<String, UpdateError>;

    fn handle(&mut self, msg: Rollback, _: &mut Context<Self>) -> Self::Result {
        let root = self.root()?;
        let target = match msg.0 {
            Some(v) => v,
            None => root.state().previous.ok_or_else(|| {
                InstallError::Refused("no previous version to roll back to".into())
            })?,
        };
        root.rollback(&target, "operator rollback")?;
        Ok(target)
    }
}
