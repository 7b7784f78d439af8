//! A sandbox for paths a peer supplies: a file name in an RPC, a release
//! artifact to serve, an upload target. Whatever the peer writes, the file
//! reached lies under one root directory.
//!
//! ```no_run
//! # fn demo() -> Result<(), psvc::sandbox::SandboxError> {
//! use psvc::sandbox::Sandbox;
//! let files = Sandbox::new("/srv/releases")?;
//! let file = files.open_read("v1.2/app.tar.gz")?; // a std::fs::File under the root
//! assert!(files.resolve("../etc/passwd").is_err());
//! # Ok(()) }
//! ```
//!
//! # The rules
//!
//! A peer path is UTF-8 text with `/` between components, relative to the
//! root. It is refused, before the file system is touched, when it is
//! empty (or names only the root, like `.` or `./`), longer than
//! [`MAX_PATH`] bytes or with a component longer than [`MAX_COMPONENT`],
//! absolute (`/etc/passwd`), has a `..` component anywhere (`a/../b`
//! too: a peer has no reason to climb, and lexical `..` is where most
//! traversal bugs live), contains a backslash (a Windows separator: `..\x`
//! would be one name here and a traversal elsewhere), starts with a
//! Windows drive prefix (`C:x`), or contains NUL or another control
//! character. `.` components and repeated slashes are harmless and ignored.
//!
//! Nothing is decoded: `%2e%2e` is a file named `%2e%2e`, and Unicode is
//! taken byte for byte (no normalization, so `．．` with fullwidth dots is an
//! ordinary name, and NFC and NFD spellings are different names, as they
//! are to the kernel). Decoding is the caller's job, once, before the
//! sandbox sees the path.
//!
//! Symbolic links are followed only while they stay inside: a link from
//! inside to inside works, one that leads outside (absolute, or climbing
//! with `..`) is refused with [`SandboxError::Escape`].
//!
//! # Races, and why cap-std
//!
//! [`Sandbox::resolve`] checks a path and returns it: it canonicalizes the
//! path (or, for a file still to be created, its deepest existing
//! ancestor) and requires the result under the canonical root. Between that
//! check and a later `open` of the returned path, whoever can write inside
//! the root can swap a directory for a symlink leading out (a TOCTOU race).
//! So `resolve` is for messages and decisions; to *open*, use
//! [`Sandbox::open_read`] and [`Sandbox::create`], which do not reopen the
//! path from `/`: they open relative to a descriptor of the root with the
//! [`cap-std`](https://docs.rs/cap-std) crate, which resolves each
//! component beneath that descriptor (with `openat2(RESOLVE_BENEATH)` on
//! Linux 5.6 and later, component by component with `O_NOFOLLOW`
//! otherwise), so a link swapped in at any moment still cannot lead out.
//! Doing that by hand needs `openat` and raw descriptors (unsafe code, or
//! re-implementing rustix); cap-std is maintained by the Bytecode Alliance
//! for exactly this job (it sandboxes WASI file access in Wasmtime), so
//! psvc uses it rather than a home-grown resolver. The residual race
//! left: the file opened is the one at that path at the instant of the
//! open; a file renamed or replaced inside the root afterwards is not
//! followed, which is what serving a file needs.

use std::io;
use std::path::{Component, Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};

/// Longest peer path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH: usize = 4096;

/// Longest component accepted, in bytes (Linux's `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;

/// Why a peer path was refused or could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The root directory cannot be used.
    #[error("sandbox root {path}: {source}")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// Why it cannot be used.
        source: io::Error,
    },
    /// The root exists but is not a directory.
    #[error("sandbox root {0} is not a directory")]
    RootNotDirectory(PathBuf),
    /// The path names nothing below the root.
    #[error("empty path {0:?}")]
    Empty(String),
    /// Longer than [`MAX_PATH`], or a component longer than
    /// [`MAX_COMPONENT`].
    #[error("path too long ({0} bytes)")]
    TooLong(usize),
    /// The path starts at `/`.
    #[error("absolute path {0:?}")]
    Absolute(String),
    /// The path has a `..` component.
    #[error("path {0:?} has a `..` component")]
    ParentDir(String),
    /// The path contains `\`.
    #[error("path {0:?} contains a backslash")]
    Backslash(String),
    /// The path starts with a Windows drive (`C:`).
    #[error("path {0:?} starts with a drive prefix")]
    DrivePrefix(String),
    /// The path contains a NUL byte.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    /// The path contains a control character other than NUL.
    #[error("path {0:?} contains a control character")]
    Control(String),
    /// The path leads outside the root through a symbolic link (or a link
    /// whose target does not exist, which a create would follow).
    #[error("path {0:?} leads outside the sandbox")]
    Escape(String),
    /// [`Sandbox::open_read`] found a directory or a device, not a file.
    #[error("path {0:?} is not a regular file")]
    NotAFile(String),
    /// The file system refused (missing file, permissions, …).
    #[error("{path:?}: {source}")]
    Io {
        /// The peer path.
        path: String,
        /// The error.
        source: io::Error,
    },
}

/// A root directory that peer paths cannot leave.
#[derive(Debug)]
pub struct Sandbox {
    /// The canonical root.
    root: PathBuf,
    /// The root, open: every open is relative to it.
    dir: Dir,
}

impl Sandbox {
    /// A sandbox on `root`, an existing directory (canonicalized now: a
    /// symlinked root is fine, and later renames of its parents do not
    /// move it).
    ///
    /// # Errors
    /// [`SandboxError::Root`] if it cannot be resolved or opened,
    /// [`SandboxError::RootNotDirectory`] if it is a file.
    pub fn new(root: impl AsRef<Path>) -> Result<Sandbox, SandboxError> {
        let given = root.as_ref();
        let root_err = |source| SandboxError::Root {
            path: given.to_path_buf(),
            source,
        };
        let root = std::fs::canonicalize(given).map_err(root_err)?;
        if !std::fs::metadata(&root).map_err(root_err)?.is_dir() {
            return Err(SandboxError::RootNotDirectory(given.to_path_buf()));
        }
        let dir = Dir::open_ambient_dir(&root, ambient_authority()).map_err(root_err)?;
        Ok(Sandbox { root, dir })
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Checks `peer_path` by the rules alone, without the file system, and
    /// returns it as a relative path of plain names.
    ///
    /// # Errors
    /// The rule it breaks (see the [module docs](self)).
    pub fn check(peer_path: &str) -> Result<PathBuf, SandboxError> {
        let owned = || peer_path.to_owned();
        if peer_path.len() > MAX_PATH {
            return Err(SandboxError::TooLong(peer_path.len()));
        }
        if peer_path.contains('\0') {
            return Err(SandboxError::Nul(owned()));
        }
        if peer_path.chars().any(char::is_control) {
            return Err(SandboxError::Control(owned()));
        }
        if peer_path.contains('\\') {
            return Err(SandboxError::Backslash(owned()));
        }
        if peer_path.starts_with('/') {
            return Err(SandboxError::Absolute(owned()));
        }
        let b = peer_path.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            return Err(SandboxError::DrivePrefix(owned()));
        }
        let mut rel = PathBuf::new();
        for component in Path::new(peer_path).components() {
            match component {
                Component::Normal(name) => {
                    if name.len() > MAX_COMPONENT {
                        return Err(SandboxError::TooLong(name.len()));
                    }
                    rel.push(name);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err(SandboxError::ParentDir(owned())),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(SandboxError::Absolute(owned()));
                }
            }
        }
        if rel.as_os_str().is_empty() {
            return Err(SandboxError::Empty(owned()));
        }
        Ok(rel)
    }

    /// The absolute path `peer_path` names under the root, with symbolic
    /// links resolved: the canonical path of an existing file, or for one
    /// to be created, the canonical path of its deepest existing ancestor
    /// with the missing names appended. For checks and messages; open with
    /// [`Sandbox::open_read`] or [`Sandbox::create`] (see the
    /// [module docs](self) on races).
    ///
    /// # Errors
    /// A rule of [`Sandbox::check`], [`SandboxError::Escape`] if a link
    /// leads outside (or dangles), [`SandboxError::Io`] if the file system
    /// refuses (a file used as a directory, no permission).
    pub fn resolve(&self, peer_path: &str) -> Result<PathBuf, SandboxError> {
        let rel = Sandbox::check(peer_path)?;
        let io_err = |source| SandboxError::Io {
            path: peer_path.to_owned(),
            source,
        };
        let mut existing = self.root.join(&rel);
        // Names below the deepest existing ancestor, last first.
        let mut missing = Vec::new();
        // `check` made every component a plain name, so popping one at a
        // time reaches the root after at most that many steps.
        let canonical = loop {
            match std::fs::canonicalize(&existing) {
                Ok(canonical) => break canonical,
                Err(e) if e.kind() == io::ErrorKind::NotFound && existing != self.root => {
                    if existing.symlink_metadata().is_ok() {
                        // It exists but does not resolve: a dangling link,
                        // which a create would follow wherever it points.
                        return Err(SandboxError::Escape(peer_path.to_owned()));
                    }
                    match (existing.file_name(), existing.parent()) {
                        (Some(name), Some(parent)) => {
                            missing.push(name.to_owned());
                            existing = parent.to_path_buf();
                        }
                        _ => return Err(io_err(e)),
                    }
                }
                Err(e) => return Err(io_err(e)),
            }
        };
        if !canonical.starts_with(&self.root) {
            return Err(SandboxError::Escape(peer_path.to_owned()));
        }
        Ok(missing
            .iter()
            .rev()
            .fold(canonical, |path, name| path.join(name)))
    }

    /// Opens the regular file at `peer_path` for reading, never outside
    /// the root, whatever links are swapped in meanwhile.
    ///
    /// # Errors
    /// As [`Sandbox::resolve`]; [`SandboxError::NotAFile`] for a directory
    /// or a device; [`SandboxError::Io`] if it is missing or unreadable.
    pub fn open_read(&self, peer_path: &str) -> Result<std::fs::File, SandboxError> {
        let rel = self.checked(peer_path)?;
        let file = self
            .open_beneath(&rel, OpenOptions::new().read(true))
            .map_err(|e| self.open_error(peer_path, e))?;
        let meta = file.metadata().map_err(|e| self.open_error(peer_path, e))?;
        if !meta.is_file() {
            return Err(SandboxError::NotAFile(peer_path.to_owned()));
        }
        Ok(file.into_std())
    }

    /// Creates (or truncates) the file at `peer_path` for writing, never
    /// outside the root. Its directory must exist.
    ///
    /// # Errors
    /// As [`Sandbox::resolve`]; [`SandboxError::Io`] if the directory is
    /// missing or not writable, or the path is a directory.
    pub fn create(&self, peer_path: &str) -> Result<std::fs::File, SandboxError> {
        let rel = self.checked(peer_path)?;
        let file = self
            .open_beneath(
                &rel,
                OpenOptions::new().write(true).create(true).truncate(true),
            )
            .map_err(|e| self.open_error(peer_path, e))?;
        Ok(file.into_std())
    }

    /// Opens `rel` (plain names only) beneath the root's descriptor: the
    /// step that guarantees containment, whatever changed since a check.
    fn open_beneath(&self, rel: &Path, options: &OpenOptions) -> io::Result<cap_std::fs::File> {
        self.dir.open_with(rel, options)
    }

    /// The rules, then the canonical check (for a clear
    /// [`SandboxError::Escape`] in the common case; the open that follows
    /// is what guarantees containment).
    fn checked(&self, peer_path: &str) -> Result<PathBuf, SandboxError> {
        self.resolve(peer_path)?;
        Sandbox::check(peer_path)
    }

    /// An open's error: an escape cap-std caught (a link swapped in after
    /// the check) is reported as one.
    fn open_error(&self, peer_path: &str, source: io::Error) -> SandboxError {
        match self.resolve(peer_path) {
            Err(escape @ SandboxError::Escape(_)) => escape,
            _ => SandboxError::Io {
                path: peer_path.to_owned(),
                source,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_paths_pass_the_rules() {
        for (given, want) in [
            ("a", "a"),
            ("a/b/c.txt", "a/b/c.txt"),
            ("./a//b/", "a/b"),
            ("a/./b", "a/b"),
            ("%2e%2e/%2f", "%2e%2e/%2f"),
            ("．．/x", "．．/x"),
            ("caf\u{e9}/e\u{301}", "caf\u{e9}/e\u{301}"),
            ("...", "..."),
            ("..a/b..", "..a/b.."),
            ("ab:c", "ab:c"),
            ("-rf", "-rf"),
        ] {
            assert_eq!(Sandbox::check(given).unwrap(), Path::new(want), "{given:?}");
        }
    }

    #[test]
    fn every_rule_has_its_error() {
        type Is = fn(&SandboxError) -> bool;
        let cases: &[(&str, Is)] = &[
            ("", |e| matches!(e, SandboxError::Empty(_))),
            (".", |e| matches!(e, SandboxError::Empty(_))),
            ("./", |e| matches!(e, SandboxError::Empty(_))),
            ("/etc/passwd", |e| matches!(e, SandboxError::Absolute(_))),
            ("//server/share", |e| matches!(e, SandboxError::Absolute(_))),
            ("..", |e| matches!(e, SandboxError::ParentDir(_))),
            ("../x", |e| matches!(e, SandboxError::ParentDir(_))),
            ("a/../b", |e| matches!(e, SandboxError::ParentDir(_))),
            ("a/..", |e| matches!(e, SandboxError::ParentDir(_))),
            ("a\\..\\b", |e| matches!(e, SandboxError::Backslash(_))),
            ("\\\\?\\C:\\x", |e| matches!(e, SandboxError::Backslash(_))),
            ("C:x", |e| matches!(e, SandboxError::DrivePrefix(_))),
            ("c:/x", |e| matches!(e, SandboxError::DrivePrefix(_))),
            ("a\0b", |e| matches!(e, SandboxError::Nul(_))),
            ("a\nb", |e| matches!(e, SandboxError::Control(_))),
            ("a\u{7f}", |e| matches!(e, SandboxError::Control(_))),
            ("a\u{85}", |e| matches!(e, SandboxError::Control(_))),
        ];
        for (given, is) in cases {
            let err = Sandbox::check(given).unwrap_err();
            assert!(is(&err), "{given:?}: {err}");
        }
        let long = "a/".repeat(MAX_PATH);
        assert!(matches!(
            Sandbox::check(&long),
            Err(SandboxError::TooLong(_))
        ));
        let name = "n".repeat(MAX_COMPONENT + 1);
        assert!(matches!(
            Sandbox::check(&name),
            Err(SandboxError::TooLong(_))
        ));
        assert!(Sandbox::check(&"n".repeat(MAX_COMPONENT)).is_ok());
    }

    #[test]
    fn error_messages_name_the_path() {
        let err = Sandbox::check("a/../etc").unwrap_err().to_string();
        assert!(err.contains("a/../etc"), "{err}");
    }

    /// The race `resolve` cannot close, run deterministically: the path
    /// passes the checks, then a directory on it is replaced by a link
    /// leading out, then the open happens. The open still fails.
    #[test]
    fn a_link_swapped_in_after_the_check_cannot_lead_out() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("box")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("box/f"), b"inside").unwrap();
        std::fs::write(outside.join("f"), b"outside").unwrap();
        let sandbox = Sandbox::new(&root).unwrap();
        let rel = sandbox.checked("box/f").unwrap();
        // The attacker's move, between check and open.
        std::fs::remove_dir_all(root.join("box")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("box")).unwrap();
        assert_eq!(std::fs::read(root.join("box/f")).unwrap(), b"outside");
        let read = sandbox.open_beneath(&rel, OpenOptions::new().read(true));
        assert!(read.is_err(), "opened the outside file");
        let write = sandbox.open_beneath(
            &rel,
            OpenOptions::new().write(true).create(true).truncate(true),
        );
        assert!(write.is_err(), "opened the outside file for writing");
        assert_eq!(std::fs::read(outside.join("f")).unwrap(), b"outside");
    }

    proptest::proptest! {
        /// Whatever the peer writes, a checked path is relative and made of
        /// plain names only.
        #[test]
        fn checked_paths_are_plain_names(s in "\\PC{0,40}|[./a\\\\:%]{0,12}") {
            if let Ok(rel) = Sandbox::check(&s) {
                proptest::prop_assert!(rel.is_relative());
                for c in rel.components() {
                    proptest::prop_assert!(matches!(c, Component::Normal(_)), "{s:?}");
                }
            }
        }
    }
}
