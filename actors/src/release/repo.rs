//! The release repository: signed TUF metadata over plain static files.
//!
//! ```text
//! releases/                       [PSVC] release_path
//!   1.2.0/status.json, files/…    drafts, made by the Builder
//!   approvals/pending.json        a change signed by fewer than k approvers
//!   repository/metadata/          1.root.json  root.json  N.targets.json
//!                                 N.snapshot.json  timestamp.json
//!   repository/targets/           <sha256>.<version>/<path>  (content-addressed)
//! ```
//!
//! Every file under `repository/` is written once under a new name, except
//! `timestamp.json`, which is replaced last and atomically: a reader (the
//! Releaser, nginx, a mirror's rsync) sees the old release set or the new
//! one, never half of each. Each approved version is a set of targets named
//! `<version>/<path>`, plus `<version>/status.json`, the build's provenance,
//! whose `custom.psvc_release` carries the release record: status,
//! channels with their rollout percentage, notes, rollback target, and the
//! list of files (so a client can tell a missing file from a smaller
//! release).
//!
//! # Where tough stops
//!
//! tough's `RepositoryEditor::sign` signs the targets role with every key
//! it is given at once; it has no way to add one approver's signature to
//! metadata another approver signed earlier. A k-of-n approval by people
//! at different desks needs that, so [`ReleaseRepo::propose`] keeps the
//! proposed targets in `approvals/pending.json` and adds one signature per
//! approver over tough's canonical form (`olpc-cjson`, as tough signs),
//! with tough's `Sign` keys. Everything else (key ids, the snapshot and
//! timestamp roles, threshold verification, loading and verifying the whole
//! repository) is tough's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tough::editor::signed::SignedRole;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::{
    Hashes, KeyHolder, Metafile, RoleType, Root, Signature, Signed, Snapshot, Target, Targets,
    Timestamp,
};
use tough::sign::Sign;
use tough::{ExpirationEnforcement, RepositoryLoader, TargetName};

use super::status::{ReleaseStatus, Status};
use crate::fsutil;

const SPEC_VERSION: &str = "1.0.0";
/// Key of the release record in the custom field of `<version>/status.json`.
pub const RECORD_KEY: &str = "psvc_release";
/// Key of a file's version and path in its target's custom field.
pub const FILE_KEY: &str = "psvc_file";
/// Key of a patch's base version and path in its target's custom field.
pub const DELTA_KEY: &str = "psvc_delta";
/// Directory of a release's patches, in target names and in its draft.
pub const DELTA_DIR: &str = ".psvc-delta";
/// Patches are made from this many of the newest approved versions
/// below the one approved.
pub const DELTA_BASES: usize = 2;
/// The channel used when none is named.
pub const DEFAULT_CHANNEL: &str = "stable";

/// Why a repository operation failed. The published repository is
/// unchanged when one does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// TUF metadata could not be made, signed or verified.
    #[error("{what}: {message}")]
    Tuf {
        /// The step.
        what: String,
        /// tough's error.
        message: String,
    },
    /// A key is missing, unreadable or not allowed for what it was used for.
    #[error("key: {0}")]
    Key(String),
    /// There is no repository yet.
    #[error("no release repository in {0} (run `psvc keys init` first)")]
    NoRepository(PathBuf),
    /// The change asked for cannot be made.
    #[error("{0}")]
    Refused(String),
    /// Another change waits for approvals.
    #[error(
        "another change is waiting for approvals: {0} (approve it with more keys, or discard it)"
    )]
    PendingOther(String),
}

impl RepoError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
        move |source| RepoError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn tuf<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> RepoError + '_ {
        move |e| RepoError::Tuf {
            what: what.to_owned(),
            message: e.to_string(),
        }
    }
}

/// `now + d` as a TUF expiry.
pub(crate) fn expires_in(d: Duration) -> Result<jiff::Timestamp, RepoError> {
    let span = jiff::SignedDuration::try_from(d).map_err(RepoError::tuf("expiry"))?;
    jiff::Timestamp::now()
        .checked_add(span)
        .map_err(RepoError::tuf("expiry"))
}

/// How long each role's metadata stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// Targets (signed by approvers, offline): default 365 days.
    #[serde(with = "humantime_serde")]
    pub targets: Duration,
    /// Snapshot (online): default 30 days.
    #[serde(with = "humantime_serde")]
    pub snapshot: Duration,
    /// Timestamp (online, re-signed by the Releaser): default 1 day. A
    /// client that sees no fresher timestamp after this suspects a freeze.
    #[serde(with = "humantime_serde")]
    pub timestamp: Duration,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            targets: Duration::from_secs(365 * 24 * 3600),
            snapshot: Duration::from_secs(30 * 24 * 3600),
            timestamp: Duration::from_secs(24 * 3600),
        }
    }
}

/// The Releaser's online keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineKeys {
    /// `snapshot.pk8`.
    pub snapshot: PathBuf,
    /// `timestamp.pk8`.
    pub timestamp: PathBuf,
}

impl OnlineKeys {
    /// `snapshot.pk8` and `timestamp.pk8` in `dir` (as `psvc keys init` makes them).
    pub fn in_dir(dir: impl AsRef<Path>) -> OnlineKeys {
        OnlineKeys {
            snapshot: dir.as_ref().join("snapshot.pk8"),
            timestamp: dir.as_ref().join("timestamp.pk8"),
        }
    }
}

/// Where things are under a release path.
#[derive(Debug, Clone)]
pub struct RepoLayout {
    release_path: PathBuf,
}

impl RepoLayout {
    /// The layout under `release_path`.
    pub fn new(release_path: impl Into<PathBuf>) -> RepoLayout {
        RepoLayout {
            release_path: release_path.into(),
        }
    }

    /// The release path.
    pub fn release_path(&self) -> &Path {
        &self.release_path
    }

    /// `repository/`: what a mirror serves.
    pub fn repository_dir(&self) -> PathBuf {
        self.release_path.join("repository")
    }

    /// `repository/metadata/`.
    pub fn metadata_dir(&self) -> PathBuf {
        self.repository_dir().join("metadata")
    }

    /// `repository/targets/`.
    pub fn targets_dir(&self) -> PathBuf {
        self.repository_dir().join("targets")
    }

    /// `approvals/pending.json`.
    pub fn pending_file(&self) -> PathBuf {
        self.release_path.join("approvals").join("pending.json")
    }

    /// `<version>/`: a draft made by the Builder.
    pub fn draft_dir(&self, version: &str) -> PathBuf {
        self.release_path.join(version)
    }

    /// Versions named in the current targets metadata, read without
    /// verifying signatures: enough for the Builder to refuse to rebuild
    /// an approved version, never used to trust anything.
    pub fn signed_versions(&self) -> BTreeSet<String> {
        let read = || -> Option<BTreeSet<String>> {
            let meta = self.metadata_dir();
            let ts: Signed<Timestamp> =
                serde_json::from_slice(&std::fs::read(meta.join("timestamp.json")).ok()?).ok()?;
            let sv = ts.signed.meta.get("snapshot.json")?.version;
            let snap: Signed<Snapshot> = serde_json::from_slice(
                &std::fs::read(meta.join(format!("{sv}.snapshot.json"))).ok()?,
            )
            .ok()?;
            let tv = snap.signed.meta.get("targets.json")?.version;
            let targets: Signed<Targets> = serde_json::from_slice(
                &std::fs::read(meta.join(format!("{tv}.targets.json"))).ok()?,
            )
            .ok()?;
            Some(
                targets
                    .signed
                    .targets
                    .keys()
                    .filter_map(|name| name.raw().split('/').next().map(str::to_owned))
                    .collect(),
            )
        };
        read().unwrap_or_default()
    }

    /// Drafts on disk: directories with a `status.json`.
    pub fn drafts(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.release_path)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("status.json").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|v| semver::Version::parse(v).is_ok())
            .collect();
        sort_versions(&mut out);
        out
    }
}

fn sort_versions(versions: &mut [String]) {
    versions.sort_by(
        |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => a.cmp(b),
        },
    );
}

/// An exclusive hold on a release path (an advisory lock on
/// `<release_path>/.lock`), released when dropped or when the process dies:
/// approvals, re-signing and the Builder's final swap never interleave, so
/// two `psvc approve` or an approval and the Releaser's re-signing cannot
/// both publish "the next timestamp".
#[derive(Debug)]
pub struct RepoLock {
    _file: std::fs::File,
}

/// How long an operation waits for another one's lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

impl RepoLayout {
    /// Takes the lock if it is free.
    ///
    /// # Errors
    /// The lock file cannot be created.
    pub fn try_lock(&self) -> Result<Option<RepoLock>, RepoError> {
        use fs4::fs_std::FileExt;
        std::fs::create_dir_all(&self.release_path).map_err(RepoError::io(&self.release_path))?;
        let path = self.release_path.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(RepoError::io(&path))?;
        match file.try_lock_exclusive() {
            Ok(true) => Ok(Some(RepoLock { _file: file })),
            Ok(false) => Ok(None),
            Err(e) => Err(RepoError::io(&path)(e)),
        }
    }

    /// Waits (at most [`LOCK_WAIT`]) for the lock, without blocking the
    /// arbiter: free, it is taken at once; held, the wait runs on a
    /// blocking thread ([`RepoLayout::lock_blocking`]).
    ///
    /// # Errors
    /// Still held by another process after the wait, or no lock file.
    pub async fn lock(&self) -> Result<RepoLock, RepoError> {
        if let Some(lock) = self.try_lock()? {
            return Ok(lock);
        }
        let layout = self.clone();
        tokio::task::spawn_blocking(move || layout.lock_blocking())
            .await
            .map_err(|e| RepoError::Refused(format!("waiting for the repository lock: {e}")))?
    }

    /// Waits (at most [`LOCK_WAIT`]) for the lock, polling it every 50 ms
    /// (the Builder, and [`RepoLayout::lock`] when the lock is held).
    ///
    /// # Errors
    /// Still held by another process after the wait, or no lock file.
    pub fn lock_blocking(&self) -> Result<RepoLock, RepoError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            if let Some(lock) = self.try_lock()? {
                return Ok(lock);
            }
            if std::time::Instant::now() >= deadline {
                return Err(self.busy());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn busy(&self) -> RepoError {
        RepoError::Refused(format!(
            "another psvc has been changing {} for {}s; try again",
            self.release_path.display(),
            LOCK_WAIT.as_secs()
        ))
    }
}

/// A channel's offer of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// Percentage of installations offered the version (0–100).
    pub rollout: u8,
}

/// The signed record of one release (in `custom.psvc_release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The version.
    pub version: String,
    /// Approved or deprecated.
    pub status: Status,
    /// Channels offering it.
    pub channels: BTreeMap<String, ChannelState>,
    /// Release notes.
    pub notes: String,
    /// Where a deprecated version's installations go back to.
    pub rollback_target: Option<String>,
    /// When it was first approved (RFC 3339).
    pub approved_at: String,
    /// Target triple.
    pub target: String,
    /// Every file's release path.
    pub files: Vec<String>,
    /// Signed patches: for each base version, the paths of the files
    /// that have a patch from that version's file (target
    /// `<version>/.psvc-delta/<base>/<path>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deltas: BTreeMap<String, Vec<String>>,
}

/// The target name of the patch of `path` in `version` from `base`.
pub fn delta_name(version: &str, base: &str, path: &str) -> String {
    format!("{version}/{DELTA_DIR}/{base}/{path}")
}

/// A file of an approved release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path in the release.
    pub path: String,
    /// Signed length.
    pub length: u64,
    /// Signed SHA-256, hex.
    pub sha256: String,
}

/// An approved (or deprecated) release as the signed metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// The signed record.
    #[serde(flatten)]
    pub record: ReleaseRecord,
    /// Its files with their signed lengths and hashes (status.json first).
    pub file_info: Vec<FileInfo>,
}

impl ReleaseInfo {
    /// Whether `channel` offers this release to `installation` (see
    /// [`in_rollout`]); deprecated releases are offered to no one.
    pub fn offered(&self, channel: &str, installation: Option<&str>) -> bool {
        self.record.status == Status::Approved
            && self
                .record
                .channels
                .get(channel)
                .is_some_and(|c| in_rollout(installation, &self.record.version, c.rollout))
    }
}

/// The stable rollout bucket (0–99) of an installation for a version:
/// the first 8 bytes of SHA-256(`installation` ‖ `\n` ‖ `version`) mod 100.
/// The same installation lands in the same bucket on every machine and
/// every check; a different version reshuffles the buckets, so the same
/// installations are not always first.
pub fn rollout_bucket(installation: &str, version: &str) -> u8 {
    let digest = Sha256::new()
        .chain_update(installation.as_bytes())
        .chain_update(b"\n")
        .chain_update(version.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 100) as u8
}

/// Whether a version rolled out to `percent` % is offered to
/// `installation`: always at 100 %, never at 0 %, else when its bucket is
/// below the percentage. An unknown installation gets only full rollouts.
pub fn in_rollout(installation: Option<&str>, version: &str, percent: u8) -> bool {
    percent >= 100 || installation.is_some_and(|id| rollout_bucket(id, version) < percent)
}

/// A change to the signed targets metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    /// Approve a draft into a channel, or change an approved version's
    /// rollout or notes in a channel.
    Approve {
        /// The version.
        version: String,
        /// The channel.
        channel: String,
        /// New notes (`None`: keep / take the build's).
        notes: Option<String>,
        /// Percentage of installations offered it.
        rollout: u8,
    },
    /// Withdraw a version in favour of an older approved one.
    Deprecate {
        /// The version withdrawn.
        version: String,
        /// The version its installations go back to.
        to: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Approve {
                version,
                channel,
                rollout,
                ..
            } => write!(f, "approve {version} in {channel} at {rollout}%"),
            Change::Deprecate { version, to } => write!(f, "deprecate {version}, back to {to}"),
        }
    }
}

/// What [`ReleaseRepo::propose`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// Enough approvers signed: the change is published.
    Published {
        /// The change.
        change: String,
        /// The new targets metadata version.
        targets_version: u64,
    },
    /// Signed by fewer approvers than the threshold: kept in
    /// `approvals/pending.json` until more sign.
    Pending {
        /// The change.
        change: String,
        /// Signatures so far.
        signatures: usize,
        /// Signatures needed.
        threshold: usize,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    change: Change,
    /// The targets version this change was made against.
    base: u64,
    signed: Signed<Targets>,
}

/// The release repository under a release path, loaded and verified with
/// tough (expiry not enforced: an expired timestamp is what the operator
/// is here to renew).
#[derive(Debug)]
pub struct ReleaseRepo {
    layout: RepoLayout,
    root: Signed<Root>,
    loaded: Option<tough::Repository>,
}

fn file_url(dir: &Path) -> Result<url::Url, RepoError> {
    let abs = std::path::absolute(dir).map_err(RepoError::io(dir))?;
    url::Url::from_directory_path(&abs)
        .map_err(|()| RepoError::Refused(format!("{} is not a usable path", abs.display())))
}

/// Loads and verifies the repository at `metadata` / `targets` with tough,
/// starting from the trusted root bytes.
pub(crate) async fn load_verified(
    trusted_root: &[u8],
    metadata: &Path,
    targets: &Path,
    enforcement: ExpirationEnforcement,
) -> Result<tough::Repository, RepoError> {
    RepositoryLoader::new(&trusted_root, file_url(metadata)?, file_url(targets)?)
        .expiration_enforcement(enforcement)
        .load()
        .await
        .map_err(RepoError::tuf("verify the repository"))
}

impl ReleaseRepo {
    /// Opens the repository under `release_path`, trusting its
    /// `1.root.json` (root rotations are followed from there).
    ///
    /// # Errors
    /// [`RepoError::NoRepository`], or verification failed.
    pub async fn open(release_path: impl Into<PathBuf>) -> Result<ReleaseRepo, RepoError> {
        let layout = RepoLayout::new(release_path);
        let first = layout.metadata_dir().join("1.root.json");
        let bytes = std::fs::read(&first)
            .map_err(|_| RepoError::NoRepository(layout.release_path().to_path_buf()))?;
        let root: Signed<Root> =
            serde_json::from_slice(&bytes).map_err(RepoError::tuf("parse 1.root.json"))?;
        let loaded = if layout.metadata_dir().join("timestamp.json").exists() {
            Some(
                load_verified(
                    &bytes,
                    &layout.metadata_dir(),
                    &layout.targets_dir(),
                    ExpirationEnforcement::Unsafe,
                )
                .await?,
            )
        } else {
            None
        };
        let root = loaded.as_ref().map_or(root, |r| r.root().clone());
        Ok(ReleaseRepo {
            layout,
            root,
            loaded,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &RepoLayout {
        &self.layout
    }

    /// The tough repository, once something is published.
    pub fn tough(&self) -> Option<&tough::Repository> {
        self.loaded.as_ref()
    }

    /// Approvals needed for a change (k of k-of-n).
    pub fn threshold(&self) -> usize {
        self.root
            .signed
            .roles
            .get(&RoleType::Targets)
            .map_or(1, |r| r.threshold.get() as usize)
    }

    fn targets_version(&self) -> u64 {
        self.loaded
            .as_ref()
            .map_or(0, |r| r.targets().signed.version.get())
    }

    /// Every approved or deprecated release, oldest version first.
    pub fn list(&self) -> Vec<ReleaseInfo> {
        self.loaded
            .as_ref()
            .map(|r| releases_of(&r.targets().signed))
            .unwrap_or_default()
    }

    /// The change waiting for approvals, with its signature count.
    pub fn pending(&self) -> Option<(Change, usize)> {
        let bytes = std::fs::read(self.layout.pending_file()).ok()?;
        let pending: Pending = serde_json::from_slice(&bytes).ok()?;
        Some((pending.change, pending.signed.signatures.len()))
    }

    /// Drops the change waiting for approvals.
    ///
    /// # Errors
    /// The file cannot be removed.
    pub fn discard_pending(&self) -> Result<bool, RepoError> {
        let path = self.layout.pending_file();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RepoError::io(&path)(e)),
        }
    }

    /// Signs `change` with each approver key in `approver_keys`; once the
    /// threshold is reached, publishes it (snapshot and timestamp signed
    /// with `online`). Below the threshold, the signed change waits in
    /// `approvals/pending.json`; the next approver proposes the same change
    /// with their key.
    ///
    /// # Errors
    /// The change is refused (unknown draft, files changed since the build,
    /// not an approver key, a key that already signed, another change
    /// pending), or a file cannot be written; the published repository is
    /// unchanged.
    pub async fn propose(
        &mut self,
        change: Change,
        approver_keys: &[PathBuf],
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<Outcome, RepoError> {
        let _lock = self.layout.lock().await?;
        self.reload_latest().await?;
        if self.loaded.is_none() {
            return Err(RepoError::NoRepository(
                self.layout.release_path().to_path_buf(),
            ));
        }
        let base = self.targets_version();
        let pending_path = self.layout.pending_file();
        let existing: Option<Pending> = std::fs::read(&pending_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut signed = match existing {
            Some(p) if p.base != base => {
                tracing::warn!(change = %p.change, "dropping a pending change made against older metadata");
                self.discard_pending()?;
                self.apply(&change, expiry)?
            }
            Some(p) if p.change == change => p.signed,
            Some(p) => return Err(RepoError::PendingOther(p.change.to_string())),
            None => self.apply(&change, expiry)?,
        };
        if approver_keys.is_empty() {
            return Err(RepoError::Key("no approver key given".into()));
        }
        for key in approver_keys {
            self.add_signature(&mut signed, key).await?;
        }
        let threshold = self.threshold();
        if signed.signatures.len() < threshold {
            let dir = pending_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(RepoError::io(&dir))?;
            let pending = Pending {
                change: change.clone(),
                base,
                signed,
            };
            let json = serde_json::to_vec_pretty(&pending).map_err(RepoError::tuf("pending"))?;
            fsutil::write_atomic(&pending_path, &json).map_err(RepoError::io(&pending_path))?;
            let signatures = pending.signed.signatures.len();
            tracing::info!(%change, signatures, threshold, "approval recorded; more approvers needed");
            return Ok(Outcome::Pending {
                change: change.to_string(),
                signatures,
                threshold,
            });
        }
        self.root
            .signed
            .verify_role(&signed)
            .map_err(RepoError::tuf("approver signatures"))?;
        let targets_version = signed.signed.version.get();
        self.publish(signed, online, expiry).await?;
        self.discard_pending()?;
        tracing::info!(%change, targets_version, "published");
        Ok(Outcome::Published {
            change: change.to_string(),
            targets_version,
        })
    }

    /// The targets metadata after `change`, unsigned, one version up.
    fn apply(&self, change: &Change, expiry: &Expiry) -> Result<Signed<Targets>, RepoError> {
        let current = self
            .loaded
            .as_ref()
            .map(|r| r.targets().signed.clone())
            .ok_or_else(|| RepoError::NoRepository(self.layout.release_path().into()))?;
        let mut targets = current.clone();
        targets.version = NonZeroU64::new(current.version.get() + 1).unwrap_or(NonZeroU64::MIN);
        targets.expires = expires_in(expiry.targets)?;
        let releases: HashMap<String, ReleaseInfo> = releases_of(&current)
            .into_iter()
            .map(|r| (r.record.version.clone(), r))
            .collect();
        match change {
            Change::Approve {
                version,
                channel,
                notes,
                rollout,
            } => {
                if *rollout > 100 {
                    return Err(RepoError::Refused(format!(
                        "rollout {rollout}% is above 100"
                    )));
                }
                if channel.is_empty() || channel.contains(['/', ' ']) {
                    return Err(RepoError::Refused(format!("bad channel name {channel:?}")));
                }
                let mut record = match releases.get(version) {
                    Some(r) if r.record.status == Status::Deprecated => {
                        return Err(RepoError::Refused(format!(
                            "{version} is deprecated; release a new version instead"
                        )));
                    }
                    Some(r) => r.record.clone(),
                    None => self.add_draft(&mut targets, version)?,
                };
                record
                    .channels
                    .insert(channel.clone(), ChannelState { rollout: *rollout });
                if let Some(n) = notes {
                    record.notes = n.clone();
                }
                set_record(&mut targets, &record)?;
            }
            Change::Deprecate { version, to } => {
                let from = releases
                    .get(version)
                    .ok_or_else(|| RepoError::Refused(format!("{version} is not approved")))?;
                let back = releases
                    .get(to)
                    .filter(|r| r.record.status == Status::Approved)
                    .ok_or_else(|| {
                        RepoError::Refused(format!("{to} is not an approved version"))
                    })?;
                let older = matches!(
                    (semver::Version::parse(to), semver::Version::parse(version)),
                    (Ok(a), Ok(b)) if a < b
                );
                if !older {
                    return Err(RepoError::Refused(format!(
                        "{to} is not older than {version}"
                    )));
                }
                let _ = back;
                let mut record = from.record.clone();
                record.status = Status::Deprecated;
                record.rollback_target = Some(to.clone());
                set_record(&mut targets, &record)?;
            }
        }
        Ok(Signed {
            signed: targets,
            signatures: Vec::new(),
        })
    }

    /// Adds the draft `version`'s files to `targets`; returns its new record.
    fn add_draft(&self, targets: &mut Targets, version: &str) -> Result<ReleaseRecord, RepoError> {
        let dir = self.layout.draft_dir(version);
        let status_path = dir.join("status.json");
        let status_bytes = std::fs::read(&status_path)
            .map_err(|_| RepoError::Refused(format!("no draft of {version} (run `psvc build`)")))?;
        let status: ReleaseStatus = serde_json::from_slice(&status_bytes)
            .map_err(|e| RepoError::Refused(format!("{}: {e}", status_path.display())))?;
        if status.version != version {
            return Err(RepoError::Refused(format!(
                "{} says version {}",
                status_path.display(),
                status.version
            )));
        }
        for file in &status.files {
            crate::release::build::parse_path(&file.path)
                .map_err(|e| RepoError::Refused(e.to_string()))?;
            let path = dir.join("files").join(&file.path);
            let (sha256, size) = fsutil::hash_file(&path).map_err(RepoError::io(&path))?;
            if sha256 != file.sha256 || size != file.size {
                return Err(RepoError::Refused(format!(
                    "{} changed since the build (status.json says {} bytes sha256 {}, the file has {size} bytes sha256 {sha256}); rebuild",
                    path.display(),
                    file.size,
                    file.sha256
                )));
            }
            let target = target_of(
                size,
                hex_decoded(&sha256)?,
                Some((
                    FILE_KEY,
                    serde_json::json!({ "version": version, "path": file.path }),
                )),
            );
            targets.add_target(target_name(&format!("{version}/{}", file.path))?, target);
        }
        let status_target = target_of(
            status_bytes.len() as u64,
            Sha256::digest(&status_bytes).to_vec().into(),
            None,
        );
        targets.add_target(
            target_name(&format!("{version}/status.json"))?,
            status_target,
        );
        let deltas = self.add_deltas(targets, &status)?;
        Ok(ReleaseRecord {
            version: version.to_owned(),
            status: Status::Approved,
            channels: BTreeMap::new(),
            notes: status.release_notes.clone(),
            rollback_target: status.rollback_target.clone(),
            approved_at: jiff::Timestamp::now().to_string(),
            target: status.target.clone(),
            files: status.files.iter().map(|f| f.path.clone()).collect(),
            deltas,
        })
    }

    /// Makes a patch of each changed file from the [`DELTA_BASES`] newest
    /// approved versions below `status.version`, keeps those under
    /// [`delta::MAX_PATCH_PERCENT`](super::delta::MAX_PATCH_PERCENT) % of
    /// the file, and adds them as targets.
    fn add_deltas(
        &self,
        targets: &mut Targets,
        status: &ReleaseStatus,
    ) -> Result<BTreeMap<String, Vec<String>>, RepoError> {
        use super::delta::{MAX_PATCH_INPUT, MAX_PATCH_PERCENT, make_patch};
        let version = &status.version;
        let Ok(this) = semver::Version::parse(version) else {
            return Ok(BTreeMap::new());
        };
        let bases: Vec<String> = releases_of(targets)
            .into_iter()
            .rev()
            .filter(|r| {
                r.record.status == Status::Approved
                    && semver::Version::parse(&r.record.version).is_ok_and(|v| v < this)
            })
            .take(DELTA_BASES)
            .map(|r| r.record.version)
            .collect();
        let draft = self.layout.draft_dir(version);
        let mut deltas: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for base in &bases {
            for file in &status.files {
                let Some(old_target) = target_name(&format!("{base}/{}", file.path))
                    .ok()
                    .and_then(|n| targets.targets.get(&n).map(|t| (n, t.clone())))
                else {
                    continue;
                };
                let (old_name, old_target) = old_target;
                if hex::encode(&old_target.hashes.sha256) == file.sha256
                    || old_target.length > MAX_PATCH_INPUT
                    || file.size > MAX_PATCH_INPUT
                {
                    continue;
                }
                let old_path = self
                    .layout
                    .targets_dir()
                    .join(consistent_name(old_name.raw(), &old_target));
                let new_path = draft.join("files").join(&file.path);
                let (Ok(old), Ok(new)) = (std::fs::read(&old_path), std::fs::read(&new_path))
                else {
                    continue;
                };
                if Sha256::digest(&old).as_slice() != &*old_target.hashes.sha256 {
                    tracing::warn!(file = %old_path.display(), "published file differs from its signed hash; no patch from it");
                    continue;
                }
                let patch = make_patch(&old, &new).map_err(RepoError::io(&new_path))?;
                if patch.len() as u64 * 100 >= new.len() as u64 * MAX_PATCH_PERCENT {
                    continue;
                }
                let rel = format!("{DELTA_DIR}/{base}/{}", file.path);
                let out = draft.join(&rel);
                if let Some(parent) = out.parent() {
                    std::fs::create_dir_all(parent).map_err(RepoError::io(parent))?;
                }
                fsutil::write_atomic(&out, &patch).map_err(RepoError::io(&out))?;
                let target = target_of(
                    patch.len() as u64,
                    Sha256::digest(&patch).to_vec().into(),
                    Some((
                        DELTA_KEY,
                        serde_json::json!({ "version": version, "base": base, "path": file.path }),
                    )),
                );
                targets.add_target(target_name(&format!("{version}/{rel}"))?, target);
                tracing::info!(%version, %base, path = %file.path, patch = patch.len(), full = file.size, "patch made");
                deltas
                    .entry(base.clone())
                    .or_default()
                    .push(file.path.clone());
            }
        }
        Ok(deltas)
    }

    async fn add_signature(
        &self,
        signed: &mut Signed<Targets>,
        key: &Path,
    ) -> Result<(), RepoError> {
        let der = std::fs::read(key).map_err(RepoError::io(key))?;
        let pair = tough::sign::parse_keypair(&der)
            .map_err(|e| RepoError::Key(format!("{}: {e}", key.display())))?;
        let keyid = pair
            .tuf_key()
            .key_id()
            .map_err(|e| RepoError::Key(format!("{}: {e}", key.display())))?;
        let approvers = self
            .root
            .signed
            .roles
            .get(&RoleType::Targets)
            .map(|r| r.keyids.clone())
            .unwrap_or_default();
        if !approvers.contains(&keyid) {
            return Err(RepoError::Key(format!(
                "{} is not an approver key of this repository",
                key.display()
            )));
        }
        if signed.signatures.iter().any(|s| s.keyid == keyid) {
            return Err(RepoError::Key(format!(
                "{} has already signed this change; another approver must",
                key.display()
            )));
        }
        signed
            .signatures
            .push(signature_of(&signed.signed, key).await?);
        Ok(())
    }

    /// The root metadata in force.
    pub fn root(&self) -> &Signed<Root> {
        &self.root
    }

    /// Publishes `root` (the next root version, signed by the old and the
    /// new root keys) as `N.root.json` and `root.json`, then re-signs what
    /// the rotated keys signed: the targets with `approver_keys` when
    /// given (their keys changed), and always a new snapshot and
    /// timestamp with `online`. A change waiting for approvals is dropped
    /// when the approver keys changed (its signatures no longer count).
    ///
    /// # Errors
    /// The root does not follow the one in force (version, signatures:
    /// tough verifies the new repository as a client would), or a write
    /// failed.
    pub(crate) async fn publish_root(
        &mut self,
        root: Signed<Root>,
        approver_keys: Option<&[PathBuf]>,
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<(), RepoError> {
        let _lock = self.layout.lock().await?;
        self.reload_latest().await?;
        let next = self.root.signed.version.get() + 1;
        if root.signed.version.get() != next {
            return Err(RepoError::Refused(format!(
                "root version {} does not follow {}",
                root.signed.version,
                next - 1
            )));
        }
        // Both the old root's keys and the new root's must have signed.
        self.root
            .signed
            .verify_role(&root)
            .map_err(RepoError::tuf("the new root, by the old root keys"))?;
        root.signed
            .verify_role(&root)
            .map_err(RepoError::tuf("the new root, by its own root keys"))?;
        let mut bytes =
            serde_json::to_vec_pretty(&root).map_err(RepoError::tuf("serialize root"))?;
        bytes.push(b'\n');
        let meta_dir = self.layout.metadata_dir();
        let numbered = meta_dir.join(format!("{next}.root.json"));
        fsutil::write_new(&numbered, &bytes).map_err(RepoError::io(&numbered))?;
        let served = meta_dir.join("root.json");
        fsutil::write_atomic(&served, &bytes).map_err(RepoError::io(&served))?;
        self.root = root;
        let current = self
            .loaded
            .as_ref()
            .map(|r| r.targets().signed.clone())
            .ok_or_else(|| RepoError::NoRepository(self.layout.release_path().into()))?;
        match approver_keys {
            Some(keys) => {
                if self.discard_pending()? {
                    tracing::warn!("approver keys rotated: the pending change is dropped");
                }
                let mut targets = current;
                targets.version =
                    NonZeroU64::new(targets.version.get() + 1).unwrap_or(NonZeroU64::MIN);
                targets.expires = expires_in(expiry.targets)?;
                let mut signed = Signed {
                    signed: targets,
                    signatures: Vec::new(),
                };
                for key in keys.iter().take(self.threshold()) {
                    self.add_signature(&mut signed, key).await?;
                }
                self.publish(signed, online, expiry).await
            }
            None => {
                let meta = self
                    .loaded
                    .as_ref()
                    .map(|r| r.snapshot().signed.meta.clone())
                    .unwrap_or_default();
                self.publish_snapshot(meta, online, expiry).await
            }
        }
    }

    /// Publishes the first, empty targets metadata (at `psvc keys init`).
    pub(crate) async fn publish_empty(
        mut self,
        approver_keys: &[PathBuf],
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<(), RepoError> {
        let _lock = self.layout.lock().await?;
        let targets = Targets::new(
            SPEC_VERSION.to_owned(),
            NonZeroU64::MIN,
            expires_in(expiry.targets)?,
        );
        let mut signed = Signed {
            signed: targets,
            signatures: Vec::new(),
        };
        for key in approver_keys {
            self.add_signature(&mut signed, key).await?;
        }
        self.publish(signed, online, expiry).await
    }

    /// Copies the new targets' files into `repository/targets/`, then
    /// writes targets, snapshot and, last and atomically, the timestamp.
    async fn publish(
        &mut self,
        targets: Signed<Targets>,
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<(), RepoError> {
        let meta_dir = self.layout.metadata_dir();
        let targets_dir = self.layout.targets_dir();
        std::fs::create_dir_all(&targets_dir).map_err(RepoError::io(&targets_dir))?;
        for (name, target) in targets.signed.targets_iter() {
            let file = targets_dir.join(consistent_name(name.raw(), target));
            if file.exists() {
                continue;
            }
            let (version, path) = name
                .raw()
                .split_once('/')
                .ok_or_else(|| RepoError::Refused(format!("bad target name {}", name.raw())))?;
            let source = if path == "status.json" || path.starts_with(DELTA_DIR) {
                self.layout.draft_dir(version).join(path)
            } else {
                self.layout.draft_dir(version).join("files").join(path)
            };
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(RepoError::io(parent))?;
            }
            let tmp = file.with_extension("partial");
            let _ = std::fs::remove_file(&tmp);
            let (sha256, size) =
                fsutil::copy_hashed(&source, &tmp).map_err(RepoError::io(&source))?;
            if size != target.length || hex_decoded(&sha256)? != target.hashes.sha256 {
                let _ = std::fs::remove_file(&tmp);
                return Err(RepoError::Refused(format!(
                    "{} changed since it was approved",
                    source.display()
                )));
            }
            std::fs::rename(&tmp, &file).map_err(RepoError::io(&file))?;
            if let Some(parent) = file.parent() {
                fsutil::sync_dir(parent).map_err(RepoError::io(parent))?;
            }
        }

        let mut buffer =
            serde_json::to_vec_pretty(&targets).map_err(RepoError::tuf("serialize targets"))?;
        buffer.push(b'\n');
        let tv = targets.signed.version;
        let path = meta_dir.join(format!("{tv}.targets.json"));
        fsutil::write_atomic(&path, &buffer).map_err(RepoError::io(&path))?;
        let targets_meta = Metafile {
            hashes: Some(Hashes {
                sha256: Sha256::digest(&buffer).to_vec().into(),
                _extra: HashMap::new(),
            }),
            length: Some(buffer.len() as u64),
            version: tv,
            _extra: HashMap::new(),
        };
        let mut meta = HashMap::new();
        meta.insert("targets.json".to_owned(), targets_meta);
        self.publish_snapshot(meta, online, expiry).await
    }

    /// Signs a snapshot listing `meta` and a timestamp pointing at it.
    async fn publish_snapshot(
        &mut self,
        meta: HashMap<String, Metafile>,
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<(), RepoError> {
        let (sv, tsv) = self.loaded.as_ref().map_or((1, 1), |r| {
            (
                r.snapshot().signed.version.get() + 1,
                r.timestamp().signed.version.get() + 1,
            )
        });
        let mut snapshot = Snapshot::new(
            SPEC_VERSION.to_owned(),
            NonZeroU64::new(sv).unwrap_or(NonZeroU64::MIN),
            expires_in(expiry.snapshot)?,
        );
        snapshot.meta = meta;
        let rng = SystemRandom::new();
        let holder = KeyHolder::Root(self.root.signed.clone());
        let snapshot = SignedRole::new(snapshot, &holder, &key_source(&online.snapshot)?, &rng)
            .await
            .map_err(RepoError::tuf("sign snapshot (is it the snapshot key?)"))?;
        let meta_dir = self.layout.metadata_dir();
        let path = meta_dir.join(format!("{sv}.snapshot.json"));
        fsutil::write_atomic(&path, snapshot.buffer()).map_err(RepoError::io(&path))?;
        let snapshot_meta = Metafile {
            hashes: Some(Hashes {
                sha256: snapshot.sha256().to_vec().into(),
                _extra: HashMap::new(),
            }),
            length: Some(*snapshot.length()),
            version: snapshot.signed().signed.version,
            _extra: HashMap::new(),
        };
        self.publish_timestamp(snapshot_meta, tsv, online, expiry)
            .await
    }

    async fn publish_timestamp(
        &mut self,
        snapshot_meta: Metafile,
        version: u64,
        online: &OnlineKeys,
        expiry: &Expiry,
    ) -> Result<(), RepoError> {
        let mut timestamp = Timestamp::new(
            SPEC_VERSION.to_owned(),
            NonZeroU64::new(version).unwrap_or(NonZeroU64::MIN),
            expires_in(expiry.timestamp)?,
        );
        timestamp
            .meta
            .insert("snapshot.json".to_owned(), snapshot_meta);
        let holder = KeyHolder::Root(self.root.signed.clone());
        let timestamp = SignedRole::new(
            timestamp,
            &holder,
            &key_source(&online.timestamp)?,
            &SystemRandom::new(),
        )
        .await
        .map_err(RepoError::tuf("sign timestamp (is it the timestamp key?)"))?;
        let meta_dir = self.layout.metadata_dir();
        let path = meta_dir.join("timestamp.json");
        fsutil::write_atomic(&path, timestamp.buffer()).map_err(RepoError::io(&path))?;
        self.reload().await
    }

    /// Loads what is on disk now (another process may have published since
    /// `open`), expiry not enforced.
    async fn reload_latest(&mut self) -> Result<(), RepoError> {
        let fresh = ReleaseRepo::open(self.layout.release_path()).await?;
        self.root = fresh.root;
        self.loaded = fresh.loaded;
        Ok(())
    }

    /// Loads the repository again from disk, verifying it fully (expiry
    /// included) as a client would.
    async fn reload(&mut self) -> Result<(), RepoError> {
        let first = self.layout.metadata_dir().join("1.root.json");
        let bytes = std::fs::read(&first).map_err(RepoError::io(&first))?;
        let repo = load_verified(
            &bytes,
            &self.layout.metadata_dir(),
            &self.layout.targets_dir(),
            ExpirationEnforcement::Safe,
        )
        .await?;
        self.root = repo.root().clone();
        self.loaded = Some(repo);
        Ok(())
    }

    /// When the timestamp (or the snapshot) expires.
    pub fn expires(&self) -> Option<(jiff::Timestamp, jiff::Timestamp)> {
        self.loaded
            .as_ref()
            .map(|r| (r.timestamp().signed.expires, r.snapshot().signed.expires))
    }

    /// Re-signs the timestamp (and the snapshot, if it expires within
    /// `margin`) so that clients keep seeing fresh metadata; the targets
    /// are unchanged.
    ///
    /// # Errors
    /// No repository, a wrong key, or a write failed.
    pub async fn refresh(
        &mut self,
        online: &OnlineKeys,
        expiry: &Expiry,
        margin: Duration,
    ) -> Result<(), RepoError> {
        let _lock = self.layout.lock().await?;
        self.reload_latest().await?;
        let repo = self
            .loaded
            .as_ref()
            .ok_or_else(|| RepoError::NoRepository(self.layout.release_path().into()))?;
        let soon = expires_in(margin)?;
        if repo.snapshot().signed.expires <= soon {
            let meta = repo.snapshot().signed.meta.clone();
            return self.publish_snapshot(meta, online, expiry).await;
        }
        let snapshot_meta = repo
            .timestamp()
            .signed
            .meta
            .get("snapshot.json")
            .cloned()
            .ok_or_else(|| RepoError::Refused("timestamp.json names no snapshot".into()))?;
        let version = repo.timestamp().signed.version.get() + 1;
        self.publish_timestamp(snapshot_meta, version, online, expiry)
            .await
    }
}

fn key_source(path: &Path) -> Result<Vec<Box<dyn KeySource>>, RepoError> {
    if !path.is_file() {
        return Err(RepoError::Key(format!("{} not found", path.display())));
    }
    Ok(vec![Box::new(LocalKeySource {
        path: path.to_path_buf(),
    })])
}

/// The signature of `key` over the canonical JSON of `value`, as TUF
/// verifies it.
pub(crate) async fn signature_of<T: Serialize>(
    value: &T,
    key: &Path,
) -> Result<Signature, RepoError> {
    let der = std::fs::read(key).map_err(RepoError::io(key))?;
    let pair = tough::sign::parse_keypair(&der)
        .map_err(|e| RepoError::Key(format!("{}: {e}", key.display())))?;
    let keyid = pair
        .tuf_key()
        .key_id()
        .map_err(|e| RepoError::Key(format!("{}: {e}", key.display())))?;
    let mut data = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut data, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(RepoError::tuf("canonical JSON"))?;
    let sig = pair
        .sign(&data, &SystemRandom::new())
        .await
        .map_err(|e| RepoError::Key(format!("{}: {e}", key.display())))?;
    Ok(Signature {
        keyid,
        sig: sig.into(),
    })
}

fn hex_decoded(hex_str: &str) -> Result<Decoded<Hex>, RepoError> {
    hex::decode(hex_str)
        .map(Decoded::from)
        .map_err(|e| RepoError::Refused(format!("bad sha256 {hex_str:?}: {e}")))
}

fn target_name(name: &str) -> Result<TargetName, RepoError> {
    let t = TargetName::new(name).map_err(RepoError::tuf("target name"))?;
    if t.resolved() != name {
        return Err(RepoError::Refused(format!("unsafe target name {name:?}")));
    }
    Ok(t)
}

/// The file name of a target in a consistent-snapshot repository, as
/// tough's client fetches it: `<sha256>.<name>`.
/// A target of `length` bytes with this SHA-256 and, when given, one
/// custom field.
fn target_of(
    length: u64,
    sha256: Decoded<Hex>,
    custom: Option<(&str, serde_json::Value)>,
) -> Target {
    Target {
        length,
        hashes: Hashes {
            sha256,
            _extra: HashMap::new(),
        },
        custom: custom.map(|(k, v)| (k.to_owned(), v)).into_iter().collect(),
        _extra: HashMap::new(),
    }
}

pub(crate) fn consistent_name(name: &str, target: &Target) -> String {
    format!("{}.{name}", hex::encode(&target.hashes.sha256))
}

fn set_record(targets: &mut Targets, record: &ReleaseRecord) -> Result<(), RepoError> {
    let name = target_name(&format!("{}/status.json", record.version))?;
    let target = targets.targets.get_mut(&name).ok_or_else(|| {
        RepoError::Refused(format!("{} has no status.json target", record.version))
    })?;
    target.custom.insert(
        RECORD_KEY.to_owned(),
        serde_json::to_value(record).map_err(RepoError::tuf("release record"))?,
    );
    Ok(())
}

/// The releases described by a targets metadata, oldest first.
pub(crate) fn releases_of(targets: &Targets) -> Vec<ReleaseInfo> {
    let mut out: Vec<ReleaseInfo> = Vec::new();
    for (name, target) in &targets.targets {
        let Some(value) = target.custom.get(RECORD_KEY) else {
            continue;
        };
        let Ok(record) = serde_json::from_value::<ReleaseRecord>(value.clone()) else {
            continue;
        };
        if name.raw() != format!("{}/status.json", record.version) {
            continue;
        }
        let mut file_info = vec![FileInfo {
            path: "status.json".to_owned(),
            length: target.length,
            sha256: hex::encode(&target.hashes.sha256),
        }];
        for path in &record.files {
            if let Some(t) = TargetName::new(format!("{}/{path}", record.version))
                .ok()
                .and_then(|n| targets.targets.get(&n))
            {
                file_info.push(FileInfo {
                    path: path.clone(),
                    length: t.length,
                    sha256: hex::encode(&t.hashes.sha256),
                });
            }
        }
        out.push(ReleaseInfo { record, file_info });
    }
    out.sort_by(|a, b| {
        match (
            semver::Version::parse(&a.record.version),
            semver::Version::parse(&b.record.version),
        ) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.record.version.cmp(&b.record.version),
        }
    });
    out
}

/// The highest version `channel` offers to `installation`.
pub fn latest<'a>(
    releases: &'a [ReleaseInfo],
    channel: &str,
    installation: Option<&str>,
) -> Option<&'a ReleaseInfo> {
    releases
        .iter()
        .filter(|r| r.offered(channel, installation))
        .max_by(|a, b| {
            match (
                semver::Version::parse(&a.record.version),
                semver::Version::parse(&b.record.version),
            ) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.record.version.cmp(&b.record.version),
            }
        })
}
