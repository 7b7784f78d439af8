//! The install root: complete versions side by side, one `current`.
//!
//! ```text
//! <update_path>/
//!   versions/<version>/…       complete, fsynced, never modified after install
//!   versions/.staging-<v>/     being unpacked (removed by recovery)
//!   current -> versions/<v>    the version that runs; flipped by rename()
//!   downloads/<sha256>.partial resumable downloads
//!   tuf/                       tough's datastore (trusted metadata, last known time)
//!   state.json                 current, previous, highest trusted, bad versions, history
//!   journal.json               the install in progress, if any
//!   .lock                      one updater at a time (flock)
//! ```
//!
//! An install goes: download (verified) → journal `unpacking` → copy into
//! staging → fsync files and directories → rename staging to
//! `versions/<v>` → journal `flipping` → flip `current` → state → journal
//! removed. [`InstallRoot::recover`] runs before anything else: a journal
//! in `unpacking` is undone (staging removed, `current` untouched); one in
//! `flipping` is finished (the version directory is complete by then). So
//! after a `kill -9` at any step exactly one complete version is current.
//!
//! Crash points for tests: with `PSVC_UPDATE_CRASH_AT` set to
//! `after_download`, `after_unpack`, `after_fsync` or `after_flip`, the
//! process aborts right there (as `kill -9` would).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;

/// Environment variable naming the step to abort at (tests).
pub const CRASH_ENV: &str = "PSVC_UPDATE_CRASH_AT";

/// Aborts the process if [`CRASH_ENV`] names `point`.
pub(crate) fn crash_point(point: &str) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == point) {
        tracing::error!(point, "crash point reached: aborting");
        std::process::abort();
    }
}

/// Environment variable naming an I/O fault to inject (tests):
/// `eio_fsync` makes the fsync of unpacked files fail with EIO,
/// `enospc_download` makes a download's second write fail with ENOSPC.
pub const FAULT_ENV: &str = "PSVC_UPDATE_FAULT";

/// Whether [`FAULT_ENV`] names `point`.
pub(crate) fn fault_armed(point: &str) -> bool {
    std::env::var(FAULT_ENV).is_ok_and(|v| v == point)
}

/// Fails with EIO when [`FAULT_ENV`] names `point`.
fn fault_point(point: &str) -> std::io::Result<()> {
    if fault_armed(point) {
        tracing::error!(point, "injected fault: EIO");
        return Err(std::io::Error::from_raw_os_error(5)); // EIO
    }
    Ok(())
}

/// Why an install step failed. The current version is untouched when one
/// does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another updater holds the lock.
    #[error("another updater is working in {0}")]
    Busy(PathBuf),
    /// The request cannot be done.
    #[error("{0}")]
    Refused(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What happened to a version, for `psvc update status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Its number in this install root (1, 2, …), for reports.
    #[serde(default)]
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// `installed`, `rolled_back`, `committed`, `marked_bad`, `recovered`.
    pub event: String,
    /// The version concerned.
    pub version: String,
    /// Details.
    pub detail: String,
}

/// `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The version `current` points to.
    pub current: Option<String>,
    /// The version before it (the automatic rollback target).
    pub previous: Option<String>,
    /// The highest version ever trusted: nothing lower is installed
    /// without an operator-signed downgrade.
    pub highest: Option<String>,
    /// Versions that failed; not retried until a newer one appears.
    pub bad: BTreeSet<String>,
    /// The last events, newest last (at most [`HISTORY`]).
    pub history: Vec<HistoryEntry>,
    /// The version on probation, if any.
    #[serde(default)]
    pub probation: Option<super::probation::Probation>,
    /// The number of the last event recorded.
    #[serde(default)]
    pub last_seq: u64,
    /// The number of the last event a Releaser acknowledged.
    #[serde(default)]
    pub reported_seq: u64,
}

/// Events kept in `state.json`.
pub const HISTORY: usize = 50;

impl State {
    /// Records an event.
    pub fn record(&mut self, event: &str, version: &str, detail: impl Into<String>) {
        self.last_seq += 1;
        self.history.push(HistoryEntry {
            seq: self.last_seq,
            at: jiff::Timestamp::now().to_string(),
            event: event.to_owned(),
            version: version.to_owned(),
            detail: detail.into(),
        });
        let extra = self.history.len().saturating_sub(HISTORY);
        self.history.drain(..extra);
    }

    /// Events not yet acknowledged by a Releaser, oldest first.
    pub fn unreported(&self) -> Vec<HistoryEntry> {
        self.history
            .iter()
            .filter(|e| e.seq > self.reported_seq)
            .cloned()
            .collect()
    }
}

/// The install step in progress (`journal.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The version being installed.
    pub version: String,
    /// What was current before.
    pub previous: Option<String>,
    /// `unpacking` or `flipping`.
    pub stage: String,
}

/// One file to install: where its verified bytes are, where it goes.
#[derive(Debug, Clone)]
pub struct StagedFile {
    /// The verified download.
    pub from: PathBuf,
    /// Path in the release (`bin/app`), already checked safe.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
}

/// An install root, locked for this process. Clones share the lock (it is
/// released when the last one is dropped), so a blocking step can run on
/// another thread.
#[derive(Debug, Clone)]
pub struct InstallRoot {
    root: PathBuf,
    _lock: std::sync::Arc<std::fs::File>,
}

impl InstallRoot {
    /// Opens (creating) the install root and takes its lock; fails at once
    /// if another updater holds it. Runs [`InstallRoot::recover`].
    ///
    /// # Errors
    /// [`InstallError::Busy`], or the root cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<InstallRoot, InstallError> {
        use fs4::fs_std::FileExt;
        let root = root.into();
        for dir in [
            root.join("versions"),
            root.join("downloads"),
            root.join("tuf"),
        ] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let lock_path = root.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        if !lock.try_lock_exclusive().map_err(io(&lock_path))? {
            return Err(InstallError::Busy(root));
        }
        let this = InstallRoot {
            root,
            _lock: std::sync::Arc::new(lock),
        };
        this.recover()?;
        Ok(this)
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `versions/<version>`.
    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.root.join("versions").join(version)
    }

    /// `downloads/`.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// `tuf/`: tough's datastore.
    pub fn tuf_dir(&self) -> PathBuf {
        self.root.join("tuf")
    }

    /// `current`.
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// The version `current` points to, read from the link.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.current_link()).ok()?;
        target.file_name()?.to_str().map(str::to_owned)
    }

    /// Installed versions, oldest first.
    pub fn installed(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("versions"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|n| !n.starts_with('.'))
            .collect();
        v.sort_by(
            |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.cmp(b),
            },
        );
        v
    }

    /// `state.json` (empty when absent or unreadable).
    pub fn state(&self) -> State {
        std::fs::read(self.root.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes `state.json` atomically.
    ///
    /// # Errors
    /// The write failed.
    pub fn save_state(&self, state: &State) -> Result<(), InstallError> {
        let path = self.root.join("state.json");
        let json = serde_json::to_vec_pretty(state)
            .map_err(|e| InstallError::Refused(format!("state.json: {e}")))?;
        fsutil::write_atomic(&path, &json).map_err(io(&path))
    }

    /// Records that a Releaser acknowledged the events up to `seq`.
    ///
    /// # Errors
    /// `state.json` cannot be written.
    pub fn mark_reported(&self, seq: u64) -> Result<(), InstallError> {
        let mut state = self.state();
        if seq <= state.reported_seq {
            return Ok(());
        }
        state.reported_seq = seq.min(state.last_seq);
        self.save_state(&state)
    }

    fn journal(&self) -> Option<Journal> {
        let bytes = std::fs::read(self.root.join("journal.json")).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_journal(&self, journal: &Journal) -> Result<(), InstallError> {
        let path = self.root.join("journal.json");
        let json = serde_json::to_vec(journal)
            .map_err(|e| InstallError::Refused(format!("journal.json: {e}")))?;
        fsutil::write_atomic(&path, &json).map_err(io(&path))
    }

    fn clear_journal(&self) -> Result<(), InstallError> {
        let path = self.root.join("journal.json");
        match std::fs::remove_file(&path) {
            Ok(()) => fsutil::sync_dir(&self.root).map_err(io(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Finishes or undoes an install that a crash interrupted; removes
    /// leftover staging directories and temporary links.
    ///
    /// # Errors
    /// A file operation failed.
    pub fn recover(&self) -> Result<(), InstallError> {
        if let Some(journal) = self.journal() {
            let dir = self.version_dir(&journal.version);
            if journal.stage == "flipping" && dir.is_dir() {
                tracing::warn!(version = %journal.version, "finishing an interrupted install");
                if self.current().as_deref() != Some(journal.version.as_str()) {
                    self.flip(&journal.version)?;
                }
                let mut state = self.state();
                self.installed_state(&mut state, &journal.version, journal.previous.clone());
                state.record(
                    "recovered",
                    &journal.version,
                    "install finished after a crash",
                );
                self.save_state(&state)?;
            } else {
                tracing::warn!(version = %journal.version, stage = %journal.stage, "undoing an interrupted install");
                let mut state = self.state();
                state.record(
                    "recovered",
                    &journal.version,
                    format!("install undone at {}", journal.stage),
                );
                self.save_state(&state)?;
            }
            self.clear_journal()?;
        }
        let versions = self.root.join("versions");
        for entry in std::fs::read_dir(&versions)
            .map_err(io(&versions))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(".staging-") {
                std::fs::remove_dir_all(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        let tmp = self.root.join("current.new");
        if tmp.symlink_metadata().is_ok() {
            std::fs::remove_file(&tmp).map_err(io(&tmp))?;
        }
        Ok(())
    }

    fn installed_state(&self, state: &mut State, version: &str, previous: Option<String>) {
        state.previous = previous.filter(|p| p != version).or(state.previous.take());
        state.current = Some(version.to_owned());
        let higher = state.highest.as_deref().is_none_or(|h| {
            matches!((semver::Version::parse(version), semver::Version::parse(h)), (Ok(v), Ok(h)) if v > h)
        });
        if higher {
            state.highest = Some(version.to_owned());
        }
    }

    /// Points `current` at `versions/<version>` atomically and durably: a
    /// new link beside it, renamed over it, the directory fsynced.
    ///
    /// # Errors
    /// The version is not installed, or a file operation failed.
    pub fn flip(&self, version: &str) -> Result<(), InstallError> {
        let dir = self.version_dir(version);
        if !dir.is_dir() {
            return Err(InstallError::Refused(format!("{version} is not installed")));
        }
        let tmp = self.root.join("current.new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(Path::new("versions").join(version), &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, self.current_link()).map_err(io(&tmp))?;
        fsutil::sync_dir(&self.root).map_err(io(&self.root))
    }

    /// Installs `files` as `version` and makes it current. Returns the
    /// version that was current before.
    ///
    /// # Errors
    /// A file operation failed (the previous version stays current and
    /// nothing of the new one is left), or `version` is already installed.
    pub fn install(
        &self,
        version: &str,
        files: &[StagedFile],
    ) -> Result<Option<String>, InstallError> {
        let dest = self.version_dir(version);
        if dest.exists() {
            return Err(InstallError::Refused(format!(
                "{version} is already installed"
            )));
        }
        let previous = self.current();
        self.write_journal(&Journal {
            version: version.to_owned(),
            previous: previous.clone(),
            stage: "unpacking".into(),
        })?;
        let staging = self
            .root
            .join("versions")
            .join(format!(".staging-{version}"));
        let versions = self.root.join("versions");
        // Until the rename is durable, a failure (ENOSPC, EIO on fsync)
        // removes the new version and the journal: the previous version
        // stays current and nothing is left behind. Files whose fsync
        // failed are never trusted again (their pages may be lost).
        let staged = self
            .unpack(&staging, files)
            .and_then(|()| {
                crash_point("after_unpack");
                self.sync_tree(&staging)
            })
            .and_then(|()| {
                crash_point("after_fsync");
                std::fs::rename(&staging, &dest).map_err(io(&staging))?;
                fsutil::sync_dir(&versions).map_err(io(&versions))
            });
        if let Err(e) = staged {
            let _ = std::fs::remove_dir_all(&staging);
            let _ = std::fs::remove_dir_all(&dest);
            self.clear_journal()?;
            return Err(e);
        }
        self.write_journal(&Journal {
            version: version.to_owned(),
            previous: previous.clone(),
            stage: "flipping".into(),
        })?;
        self.flip(version)?;
        crash_point("after_flip");
        let mut state = self.state();
        self.installed_state(&mut state, version, previous.clone());
        state.record(
            "installed",
            version,
            previous
                .as_deref()
                .map_or(String::new(), |p| format!("from {p}")),
        );
        self.save_state(&state)?;
        self.clear_journal()?;
        Ok(previous)
    }

    fn unpack(&self, staging: &Path, files: &[StagedFile]) -> Result<(), InstallError> {
        let _ = std::fs::remove_dir_all(staging);
        std::fs::create_dir(staging).map_err(io(staging))?;
        for f in files {
            crate::release::build::parse_path(&f.path)
                .map_err(|e| InstallError::Refused(e.to_string()))?;
            let to = staging.join(&f.path);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            fsutil::copy_hashed(&f.from, &to).map_err(io(&f.from))?;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(f.mode & 0o777))
                .map_err(io(&to))?;
        }
        Ok(())
    }

    fn sync_tree(&self, dir: &Path) -> Result<(), InstallError> {
        for entry in walkdir::WalkDir::new(dir).contents_first(true) {
            let entry = entry.map_err(|e| InstallError::Refused(e.to_string()))?;
            if entry.file_type().is_dir() {
                fsutil::sync_dir(entry.path()).map_err(io(entry.path()))?;
            } else {
                fault_point("eio_fsync")
                    .and_then(|()| std::fs::File::open(entry.path()))
                    .and_then(|f| f.sync_all())
                    .map_err(io(entry.path()))?;
            }
        }
        Ok(())
    }

    /// Makes an installed `version` current again (manual rollback, or the
    /// automatic one after a failed probation).
    ///
    /// # Errors
    /// Not installed, or the flip failed.
    pub fn rollback(&self, version: &str, reason: &str) -> Result<(), InstallError> {
        let from = self.current();
        self.flip(version)?;
        let mut state = self.state();
        state.previous = from.clone();
        state.current = Some(version.to_owned());
        state.record(
            "rolled_back",
            version,
            format!("from {}: {reason}", from.unwrap_or_default()),
        );
        self.save_state(&state)
    }

    /// Marks `version` bad: it is not installed again until a newer one appears.
    ///
    /// # Errors
    /// The state cannot be written.
    pub fn mark_bad(&self, version: &str, reason: &str) -> Result<(), InstallError> {
        let mut state = self.state();
        state.bad.insert(version.to_owned());
        state.record("marked_bad", version, reason);
        self.save_state(&state)
    }

    /// Removes installed versions beyond the newest `keep` (never the
    /// current or previous one). Returns what was removed.
    ///
    /// # Errors
    /// A removal failed.
    pub fn prune(&self, keep: usize) -> Result<Vec<String>, InstallError> {
        let state = self.state();
        let current = self.current();
        let installed = self.installed();
        let excess = installed.len().saturating_sub(keep.max(2));
        let mut removed = Vec::new();
        for v in installed.into_iter().take(excess) {
            if Some(&v) == current.as_ref() || Some(&v) == state.previous.as_ref() {
                continue;
            }
            let dir = self.version_dir(&v);
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            removed.push(v);
        }
        Ok(removed)
    }
}
