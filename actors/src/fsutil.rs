//! Durable file operations shared by the release and update actors.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` so that a reader sees the old file or the whole
/// new one, never a part: a temporary file in the same directory, fsynced,
/// renamed over `path`, then the directory fsynced so the rename survives a
/// power cut. The file is world-readable (0644): metadata is public, and a
/// mirror's web server must read it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Creates `path` with `bytes`; fails if it exists. The file is fsynced.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::options().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Fsyncs a directory (its entries: created, renamed and removed names).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// SHA-256 (hex) and length of a file, read in 256 KiB chunks.
pub(crate) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    hash_through(&mut File::open(path)?, None)
}

/// Copies `from` to `to` (created, must not exist) and returns the SHA-256
/// (hex) and length of what was written; the copy is fsynced. The source's
/// permission bits are kept (an executable stays executable).
pub(crate) fn copy_hashed(from: &Path, to: &Path) -> io::Result<(String, u64)> {
    let mut src = File::open(from)?;
    let mut dst = File::options().write(true).create_new(true).open(to)?;
    let digest = hash_through(&mut src, Some(&mut dst))?;
    dst.set_permissions(src.metadata()?.permissions())?;
    dst.sync_all()?;
    Ok(digest)
}

/// Reads `src` to the end, hashing it and writing it to `dst` if given.
fn hash_through(src: &mut File, mut dst: Option<&mut File>) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), len));
        }
        hasher.update(&buf[..n]);
        if let Some(dst) = dst.as_deref_mut() {
            dst.write_all(&buf[..n])?;
        }
        len += n as u64;
    }
}

/// A directory removed when dropped unless [`TempDir::keep`] was called:
/// what a failed build or publish leaves behind is nothing.
pub(crate) struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    /// Creates `path` (its parent must exist; `path` must not).
    pub(crate) fn create(path: PathBuf) -> io::Result<TempDir> {
        std::fs::create_dir(&path)?;
        Ok(TempDir { path: Some(path) })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Keeps the directory (it was renamed into place).
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = std::fs::remove_dir_all(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a staging directory");
        }
    }
}
