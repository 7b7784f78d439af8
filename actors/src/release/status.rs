//! `releases/<version>/status.json`: what the Builder made, as a draft.

use serde::{Deserialize, Serialize};

/// The state of a release.
///
/// `status.json` is written once, as a [`Status::Draft`]: it is the build's
/// provenance and its hash is signed into the targets metadata at approval,
/// so it is never rewritten. Whether a version is approved or deprecated is
/// what the signed metadata says ([`ReleaseRepo::list`](super::ReleaseRepo::list)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Built, not approved: never listed nor served.
    Draft,
    /// Signed into the targets metadata by enough approvers.
    Approved,
    /// Approved once, then withdrawn in favour of an older version.
    Deprecated,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Draft => "draft",
            Status::Approved => "approved",
            Status::Deprecated => "deprecated",
        })
    }
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the release's `files/` directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Unix permission bits (`0o755` for an executable); the Updater
    /// installs the file with them.
    #[serde(default = "default_mode")]
    pub mode: u32,
}

fn default_mode() -> u32 {
    0o644
}

/// The contents of `status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    /// The version, semver 2.0.
    pub version: String,
    /// Always [`Status::Draft`] when written by the Builder.
    pub status: Status,
    /// When the build finished (RFC 3339, UTC).
    pub build_time: String,
    /// Target triple of the artifacts (`--target`, or the host's).
    pub target: String,
    /// Every file of the release, sorted by path.
    pub files: Vec<FileEntry>,
    /// The exclude patterns actually applied.
    pub exclude_patterns: Vec<String>,
    /// `git rev-parse HEAD` of the source, with `-dirty` if it had changes.
    pub git_commit: Option<String>,
    /// `rustc -V` of a cargo build.
    pub toolchain: Option<String>,
    /// How it was built: `cargo build …` or `directory PATH`.
    pub source: String,
    /// Release notes given at build time.
    pub release_notes: String,
    /// The version to go back to if this one is withdrawn.
    pub rollback_target: Option<String>,
}

impl ReleaseStatus {
    /// Total size of the files, in bytes.
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
