//! The Builder: makes `releases/<version>/` from a cargo build or a
//! directory of artifacts.
//!
//! ```no_run
//! # fn demo() -> Result<(), psvc_actors::release::BuildError> {
//! use psvc_actors::release::{BuildSpec, Source, build_release};
//! let spec = BuildSpec::new("1.2.0", "releases", Source::Directory("dist".into()));
//! let status = build_release(&spec, &mut |_| {})?;
//! println!("{} files", status.files.len());
//! # Ok(()) }
//! ```
//!
//! A build happens in a staging directory beside the release; only a
//! complete one (files copied, hashed, fsynced, `status.json` written) is
//! renamed to `releases/<version>`, so a failed build leaves nothing. A
//! version that the signed metadata lists is never rebuilt: an approved
//! release is immutable.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use actix::prelude::*;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::repo::RepoLayout;
use super::status::{FileEntry, ReleaseStatus, Status};
use crate::fsutil::{self, TempDir};

/// Patterns excluded when the spec gives none: logs, local configuration,
/// dependency files and VCS data do not belong in a release.
pub const DEFAULT_EXCLUDES: &[&str] = &["*.log", "*.conf", "*.d", ".git/**", "*.tmp"];

/// Why a build failed. Nothing is left in the release path when it does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The version is not semver 2.0 (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`).
    #[error("invalid version {version:?}: {reason} (semver 2.0: MAJOR.MINOR.PATCH[-PRE][+BUILD])")]
    InvalidVersion {
        /// As given.
        version: String,
        /// What the parser said.
        reason: String,
    },
    /// The version is in the signed metadata: approved releases are immutable.
    #[error("version {0} is approved; an approved release is never rebuilt (build a new version)")]
    Approved(String),
    /// An exclude pattern does not parse.
    #[error("exclude pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// `cargo build` could not run or failed.
    #[error("cargo build failed ({status}):\n{output}")]
    Cargo {
        /// Exit status or the reason it did not run.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// The build or the directory produced no file to release.
    #[error("nothing to release: {0}")]
    Empty(String),
    /// A file name is not UTF-8 or not a plain relative path.
    #[error("unusable file name {0:?} (release paths are UTF-8, relative, without ..)")]
    BadPath(PathBuf),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to release.
#[derive(Debug, Clone)]
pub enum Source {
    /// Run `cargo build` and release the executables it makes.
    Cargo(CargoBuild),
    /// Release the files of an existing directory (non-Rust payloads, demos).
    Directory(PathBuf),
}

/// The `cargo build` to run.
#[derive(Debug, Clone)]
pub struct CargoBuild {
    /// `Cargo.toml` of the crate or workspace.
    pub manifest_path: PathBuf,
    /// `--package`.
    pub package: Option<String>,
    /// `--bin` (each); none: every binary of the package.
    pub bins: Vec<String>,
    /// `--features`.
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--target` triple; none: the host.
    pub target: Option<String>,
    /// `--profile` (default `release`).
    pub profile: String,
    /// `--target-dir`; none: cargo's default.
    pub target_dir: Option<PathBuf>,
}

impl CargoBuild {
    /// A release build of the crate at `manifest_path`.
    pub fn new(manifest_path: impl Into<PathBuf>) -> CargoBuild {
        CargoBuild {
            manifest_path: manifest_path.into(),
            package: None,
            bins: Vec::new(),
            features: Vec::new(),
            no_default_features: false,
            target: None,
            profile: "release".to_owned(),
            target_dir: None,
        }
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "build".to_owned(),
            "--message-format=json-render-diagnostics".to_owned(),
            "--profile".to_owned(),
            self.profile.clone(),
            "--manifest-path".to_owned(),
            self.manifest_path.display().to_string(),
        ];
        if let Some(p) = &self.package {
            args.extend(["--package".to_owned(), p.clone()]);
        }
        for b in &self.bins {
            args.extend(["--bin".to_owned(), b.clone()]);
        }
        if !self.features.is_empty() {
            args.extend(["--features".to_owned(), self.features.join(",")]);
        }
        if self.no_default_features {
            args.push("--no-default-features".to_owned());
        }
        if let Some(t) = &self.target {
            args.extend(["--target".to_owned(), t.clone()]);
        }
        if let Some(d) = &self.target_dir {
            args.extend(["--target-dir".to_owned(), d.display().to_string()]);
        }
        args
    }
}

/// A build request.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The version to build (semver 2.0).
    pub version: String,
    /// The release path (`[PSVC] release_path`).
    pub release_path: PathBuf,
    /// What to release.
    pub source: Source,
    /// More files or directories to add at the top of the release.
    pub extra_files: Vec<PathBuf>,
    /// Exclude globs matched against each file's release path (`*`
    /// crosses `/`); `None`: [`DEFAULT_EXCLUDES`].
    pub exclude: Option<Vec<String>>,
    /// Release notes.
    pub notes: String,
    /// The version to return to if this one is withdrawn.
    pub rollback_target: Option<String>,
    /// Target triple to record for a directory source (default: the host).
    pub target: Option<String>,
}

impl BuildSpec {
    /// A build of `version` from `source` into `release_path`, default excludes.
    pub fn new(
        version: impl Into<String>,
        release_path: impl Into<PathBuf>,
        source: Source,
    ) -> BuildSpec {
        BuildSpec {
            version: version.into(),
            release_path: release_path.into(),
            source,
            extra_files: Vec::new(),
            exclude: None,
            notes: String::new(),
            rollback_target: None,
            target: None,
        }
    }
}

/// What a build is doing, for progress displays.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// `cargo build` started (it can take minutes).
    Compiling,
    /// Files are being copied and hashed.
    Copying {
        /// Files done.
        done: usize,
        /// Files in all.
        total: usize,
        /// Bytes copied so far.
        bytes: u64,
    },
    /// The release is in place.
    Done,
}

/// Checks that `version` is semver 2.0 as written (no `v`, no spaces,
/// no leading zeros) and returns it parsed.
///
/// # Errors
/// [`BuildError::InvalidVersion`].
pub fn parse_version(version: &str) -> Result<semver::Version, BuildError> {
    let parsed = semver::Version::parse(version).map_err(|e| BuildError::InvalidVersion {
        version: version.to_owned(),
        reason: e.to_string(),
    })?;
    if parsed.to_string() != version {
        return Err(BuildError::InvalidVersion {
            version: version.to_owned(),
            reason: format!("not in canonical form ({parsed})"),
        });
    }
    Ok(parsed)
}

fn globset(patterns: &[String]) -> Result<GlobSet, BuildError> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| BuildError::Pattern {
            pattern: p.clone(),
            reason: e.kind().to_string(),
        })?;
        set.add(glob);
    }
    set.build().map_err(|e| BuildError::Pattern {
        pattern: patterns.join(" "),
        reason: e.to_string(),
    })
}

/// Checks a release path as written in `status.json` or a target name:
/// relative, `/`-separated, no empty, `.` or `..` component (the
/// [`psvc::sandbox`] rules).
///
/// # Errors
/// [`BuildError::BadPath`].
pub fn parse_path(path: &str) -> Result<(), BuildError> {
    let bad = || BuildError::BadPath(PathBuf::from(path));
    psvc::sandbox::Sandbox::check(path).map_err(|_| bad())?;
    if path.split('/').any(|c| c.is_empty() || c == ".")
        || path.split('/').next() == Some(super::repo::DELTA_DIR)
    {
        return Err(bad());
    }
    Ok(())
}

/// A file's release path: UTF-8, `/`-separated, only normal components.
fn release_path_of(rel: &Path) -> Result<String, BuildError> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| BuildError::BadPath(rel.to_path_buf()))?,
            ),
            Component::CurDir => {}
            _ => return Err(BuildError::BadPath(rel.to_path_buf())),
        }
    }
    if parts.is_empty() {
        return Err(BuildError::BadPath(rel.to_path_buf()));
    }
    Ok(parts.join("/"))
}

/// Files to copy: (source file, release path).
type Plan = Vec<(PathBuf, String)>;

/// Adds the files under `root` (a file or a directory) to `plan`, their
/// release paths prefixed with `prefix`.
fn plan_tree(root: &Path, prefix: &str, plan: &mut Plan) -> Result<(), BuildError> {
    let meta = std::fs::metadata(root).map_err(io_err(root))?;
    if meta.is_file() {
        let name = Path::new(prefix).join(
            root.file_name()
                .ok_or_else(|| BuildError::BadPath(root.to_path_buf()))?,
        );
        plan.push((root.to_path_buf(), release_path_of(&name)?));
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            BuildError::Io {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("walk")),
            }
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .map_err(|_| BuildError::BadPath(entry.path().to_path_buf()))?;
        plan.push((
            entry.path().to_path_buf(),
            release_path_of(&Path::new(prefix).join(rel))?,
        ));
    }
    Ok(())
}

fn run_cargo(cargo: &CargoBuild) -> Result<Vec<PathBuf>, BuildError> {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&program)
        .args(cargo.args())
        .output()
        .map_err(|e| BuildError::Cargo {
            status: format!("cannot run {}: {e}", program.to_string_lossy()),
            output: String::new(),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = {
            let chars: Vec<char> = stderr.chars().collect();
            chars[chars.len().saturating_sub(2000)..].iter().collect()
        };
        return Err(BuildError::Cargo {
            status: output.status.to_string(),
            output: tail,
        });
    }
    let mut executables = Vec::new();
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && let Some(exe) = msg["executable"].as_str()
        {
            executables.push(PathBuf::from(exe));
        }
    }
    executables.sort();
    executables.dedup();
    Ok(executables)
}

fn command_line(program: &str, args: &[&str], dir: Option<&Path>) -> Option<String> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn git_commit(dir: &Path) -> Option<String> {
    let head = command_line("git", &["rev-parse", "HEAD"], Some(dir))?;
    let dirty = command_line(
        "git",
        &["status", "--porcelain", "--untracked-files=no"],
        Some(dir),
    )
    .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned())
}

fn host_triple() -> String {
    command_line(&rustc(), &["-vV"], None)
        .and_then(|out| {
            out.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        })
        .unwrap_or_else(|| format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS))
}

/// Builds `spec` into `releases/<version>/` (`files/` and `status.json`)
/// and returns the status written. `progress` sees each step.
///
/// An existing draft of the same version is replaced, atomically, once the
/// new build is complete.
///
/// # Errors
/// See [`BuildError`]; on any error nothing is left behind and an existing
/// draft is untouched.
pub fn build_release(
    spec: &BuildSpec,
    progress: &mut dyn FnMut(BuildEvent),
) -> Result<ReleaseStatus, BuildError> {
    parse_version(&spec.version)?;
    if let Some(target) = &spec.rollback_target {
        parse_version(target)?;
    }
    let patterns: Vec<String> = match &spec.exclude {
        Some(p) => p.clone(),
        None => DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()).collect(),
    };
    let excluded = globset(&patterns)?;
    let layout = RepoLayout::new(&spec.release_path);
    if layout.signed_versions().contains(&spec.version) {
        return Err(BuildError::Approved(spec.version.clone()));
    }
    std::fs::create_dir_all(&spec.release_path).map_err(io_err(&spec.release_path))?;

    let mut plan = Plan::new();
    let (source, toolchain, source_dir, target) = match &spec.source {
        Source::Cargo(cargo) => {
            progress(BuildEvent::Compiling);
            for exe in run_cargo(cargo)? {
                plan_tree(&exe, "", &mut plan)?;
            }
            let dir = cargo
                .manifest_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let line = format!("cargo {}", cargo.args().join(" "));
            let target = cargo.target.clone().unwrap_or_else(host_triple);
            (line, command_line(&rustc(), &["-V"], None), dir, target)
        }
        Source::Directory(dir) => {
            plan_tree(dir, "", &mut plan)?;
            let target = spec.target.clone().unwrap_or_else(host_triple);
            (
                format!("directory {}", dir.display()),
                None,
                dir.clone(),
                target,
            )
        }
    };
    for extra in &spec.extra_files {
        plan_tree(extra, "", &mut plan)?;
    }
    plan.retain(|(_, path)| !excluded.is_match(path));
    plan.sort_by(|a, b| a.1.cmp(&b.1));
    if let Some(w) = plan.windows(2).find(|w| w[0].1 == w[1].1) {
        return Err(BuildError::Empty(format!("two files would be {}", w[0].1)));
    }
    if plan.is_empty() {
        return Err(BuildError::Empty(format!(
            "{source} gave no file (after excludes {patterns:?})"
        )));
    }

    let staging = TempDir::create(spec.release_path.join(format!(
        ".staging-{}-{}",
        spec.version,
        std::process::id()
    )))
    .map_err(io_err(&spec.release_path))?;
    let files_dir = staging.path().join("files");
    std::fs::create_dir(&files_dir).map_err(io_err(&files_dir))?;
    let mut files = Vec::with_capacity(plan.len());
    let mut bytes = 0u64;
    for (i, (from, rel)) in plan.iter().enumerate() {
        let to = files_dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let (sha256, size) = fsutil::copy_hashed(from, &to).map_err(io_err(from))?;
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(&to)
                .map_err(io_err(&to))?
                .permissions()
                .mode()
                & 0o777
        };
        bytes += size;
        files.push(FileEntry {
            path: rel.clone(),
            size,
            sha256,
            mode,
        });
        progress(BuildEvent::Copying {
            done: i + 1,
            total: plan.len(),
            bytes,
        });
    }
    let status = ReleaseStatus {
        version: spec.version.clone(),
        status: Status::Draft,
        build_time: jiff::Timestamp::now().to_string(),
        target,
        files,
        exclude_patterns: patterns,
        git_commit: git_commit(&source_dir),
        toolchain,
        source,
        release_notes: spec.notes.clone(),
        rollback_target: spec.rollback_target.clone(),
    };
    let json = serde_json::to_vec_pretty(&status).map_err(|e| BuildError::Io {
        path: staging.path().join("status.json"),
        source: std::io::Error::other(e),
    })?;
    let status_path = staging.path().join("status.json");
    fsutil::write_new(&status_path, &json).map_err(io_err(&status_path))?;
    for dir in walkdir::WalkDir::new(staging.path()).into_iter().flatten() {
        if dir.file_type().is_dir() {
            fsutil::sync_dir(dir.path()).map_err(io_err(dir.path()))?;
        }
    }

    // Approval may have happened while we built: check again under the
    // repository lock (an approval cannot start until the swap is done).
    let _lock = layout.lock_blocking().map_err(|e| BuildError::Io {
        path: spec.release_path.join(".lock"),
        source: std::io::Error::other(e.to_string()),
    })?;
    if layout.signed_versions().contains(&spec.version) {
        return Err(BuildError::Approved(spec.version.clone()));
    }
    let dest = spec.release_path.join(&spec.version);
    let old = spec
        .release_path
        .join(format!(".old-{}-{}", spec.version, std::process::id()));
    let replaced = dest.exists();
    if replaced {
        std::fs::rename(&dest, &old).map_err(io_err(&dest))?;
    }
    if let Err(e) = std::fs::rename(staging.path(), &dest) {
        if replaced {
            let _ = std::fs::rename(&old, &dest);
        }
        return Err(BuildError::Io {
            path: dest,
            source: e,
        });
    }
    staging.keep();
    fsutil::sync_dir(&spec.release_path).map_err(io_err(&spec.release_path))?;
    if replaced {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    progress(BuildEvent::Done);
    tracing::info!(
        version = %status.version,
        files = status.files.len(),
        bytes = status.total_size(),
        "release built (draft)"
    );
    Ok(status)
}

/// The Builder actor: one build at a time, each on a blocking thread so
/// the arbiter stays free. A second request waits in the mailbox.
#[derive(Debug, Default)]
pub struct Builder;

impl Actor for Builder {
    type Context = Context<Self>;
}

/// Build a release; replies with its `status.json`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ReleaseStatus, BuildError>")]
pub struct Build(pub BuildSpec);

impl Handler<Build> for Builder {
    type Result = AtomicResponse<Self, Result<ReleaseStatus, BuildError>>;

    fn handle(&mut self, msg: Build, _: &mut Context<Self>) -> Self::Result {
        let work = tokio::task::spawn_blocking(move || {
            build_release(&msg.0, &mut |event| tracing::debug!(?event, "build"))
        });
        AtomicResponse::new(Box::pin(
            async move {
                work.await.unwrap_or_else(|e| {
                    Err(BuildError::Empty(format!("the build thread failed: {e}")))
                })
            }
            .into_actor(self),
        ))
    }
}
