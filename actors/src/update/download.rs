//! Resumable, bounded, verified downloads of signed target files.
//!
//! A download goes to `downloads/<sha256>.partial` and becomes
//! `downloads/<sha256>` only when its length and SHA-256 match the signed
//! metadata: a partial file is never used. It resumes where it stopped
//! (the Releaser's offset, HTTP `Range`), starts over when a server ignores
//! the offset, stops at the signed length (endless data), and gives up on
//! a source that sends less than [`Limits::min_rate`] for
//! [`Limits::rate_window`] (slow retrieval) or exceeds
//! [`Limits::total_timeout`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::source::{Resume, Source, SourceError};

/// Download limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Attempts per file and source (each resumes the previous one).
    pub attempts: u32,
    /// Least throughput accepted, bytes per second, over `rate_window`.
    pub min_rate: u64,
    /// The window of the throughput guard.
    pub rate_window: Duration,
    /// The whole download of one file.
    pub total_timeout: Duration,
    /// Connecting and each request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            attempts: 5,
            min_rate: 16 * 1024,
            rate_window: Duration::from_secs(10),
            total_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The source failed (after the attempts).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// More bytes than the signed length.
    #[error("{file}: the source sent more than the signed {length} bytes")]
    TooLong {
        /// The file.
        file: String,
        /// Its signed length.
        length: u64,
    },
    /// The bytes do not match the signed hash.
    #[error("{file}: SHA-256 {got} does not match the signed {want}")]
    HashMismatch {
        /// The file.
        file: String,
        /// Computed.
        got: String,
        /// Signed.
        want: String,
    },
    /// Slower than the guard allows.
    #[error("{file}: less than {min_rate} B/s for {window:?}")]
    Slow {
        /// The file.
        file: String,
        /// The guard.
        min_rate: u64,
        /// Over this long.
        window: Duration,
    },
    /// Over the total timeout.
    #[error("{file}: not done after {0:?}", .limit)]
    Timeout {
        /// The file.
        file: String,
        /// The limit.
        limit: Duration,
    },
    /// Ended early on every attempt.
    #[error("{file}: {got} of {length} bytes after {attempts} attempts")]
    Truncated {
        /// The file.
        file: String,
        /// Bytes received.
        got: u64,
        /// Signed length.
        length: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file to fetch: its repository name and signed length and hash.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// The repository file name under `targets/` (`<sha256>.<name>`).
    pub file: String,
    /// Signed length.
    pub length: u64,
    /// Signed SHA-256, lowercase hex.
    pub sha256: String,
}

/// Fetches `wanted` from `source` into `dir`; returns the verified file.
/// `progress` sees the bytes held so far (resumed bytes included).
///
/// # Errors
/// See [`DownloadError`]. A hash mismatch or excess data deletes the
/// partial file (the source is bad); an interrupted transfer keeps it for
/// the next attempt.
pub async fn download(
    source: &Source,
    wanted: &Wanted,
    dir: &Path,
    limits: &Limits,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<PathBuf, DownloadError> {
    let done = dir.join(&wanted.sha256);
    if let Ok((sha, len)) = crate::fsutil::hash_file(&done)
        && sha == wanted.sha256
        && len == wanted.length
    {
        progress(len);
        return Ok(done);
    }
    let partial = dir.join(format!("{}.partial", wanted.sha256));
    let deadline = Instant::now() + limits.total_timeout;
    let mut last_error: Option<DownloadError> = None;
    for attempt in 1..=limits.attempts.max(1) {
        let result = tokio::time::timeout_at(
            deadline.into(),
            attempt_once(source, wanted, &partial, limits, progress),
        )
        .await
        .unwrap_or_else(|_| {
            Err(DownloadError::Timeout {
                file: wanted.file.clone(),
                limit: limits.total_timeout,
            })
        });
        match result {
            Ok(true) => {
                std::fs::rename(&partial, &done).map_err(io(&partial))?;
                crate::fsutil::sync_dir(dir).map_err(io(dir))?;
                return Ok(done);
            }
            Ok(false) => {
                tracing::info!(file = %wanted.file, attempt, "download interrupted; resuming");
                last_error = None;
            }
            Err(e @ (DownloadError::HashMismatch { .. } | DownloadError::TooLong { .. })) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            Err(e @ DownloadError::Timeout { .. }) => return Err(e),
            // A local write failed (ENOSPC, EIO): the partial file is not
            // trusted and its space is given back.
            Err(e @ DownloadError::Io { .. }) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            Err(DownloadError::Source(SourceError::NotFound { source_name, file })) => {
                return Err(DownloadError::Source(SourceError::NotFound {
                    source_name,
                    file,
                }));
            }
            Err(e) => {
                tracing::info!(file = %wanted.file, attempt, error = %e, "download attempt failed");
                last_error = Some(e);
            }
        }
    }
    let got = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    Err(last_error.unwrap_or(DownloadError::Truncated {
        file: wanted.file.clone(),
        got,
        length: wanted.length,
        attempts: limits.attempts,
    }))
}

/// Chunks in flight to the writing-and-hashing thread.
const SINK_QUEUE: usize = 8;

/// One attempt: Ok(true) complete and verified, Ok(false) ended early.
///
/// The socket is read on the arbiter while a blocking thread writes and
/// hashes what was read (at most [`SINK_QUEUE`] chunks behind), so hashing
/// and disk writes overlap the transfer.
async fn attempt_once(
    source: &Source,
    wanted: &Wanted,
    partial: &Path,
    limits: &Limits,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<bool, DownloadError> {
    let mut offset = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    if offset > wanted.length {
        offset = 0;
    }
    let (mut body, resume) = source
        .open("targets", &wanted.file, offset, limits.request_timeout)
        .await?;
    if resume == Resume::FromStart {
        tracing::info!(file = %wanted.file, offset, "the source ignored the offset; starting over");
        offset = 0;
    }
    // Two threads beside the transfer: one writes, one hashes; each gets
    // every chunk (a shared `Bytes`), at most SINK_QUEUE behind.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(SINK_QUEUE);
    let (htx, mut hrx) = tokio::sync::mpsc::channel::<bytes::Bytes>(SINK_QUEUE);
    let sink_path = partial.to_path_buf();
    let hash_path = partial.to_path_buf();
    let hasher_task = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        // The hash covers the bytes already held.
        let mut hasher = Sha256::new();
        if offset > 0 {
            let mut held = std::fs::File::open(&hash_path)?.take(offset);
            let mut buf = vec![0u8; 256 * 1024];
            let mut seen = 0u64;
            loop {
                let n = held.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                seen += n as u64;
            }
            if seen != offset {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        while let Some(chunk) = hrx.blocking_recv() {
            hasher.update(&chunk);
        }
        Ok(hex::encode(hasher.finalize()))
    });
    let sink = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&sink_path)?;
        file.set_len(offset)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        let mut fail_at = super::install::fault_armed("enospc_download").then_some(1);
        while let Some(chunk) = rx.blocking_recv() {
            if fail_at == Some(0) {
                tracing::error!("injected fault: ENOSPC");
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            fail_at = fail_at.map(|n: u32| n.saturating_sub(1));
            file.write_all(&chunk)?;
        }
        file.sync_all()
    });
    progress(offset);
    let mut have = offset;
    let mut window_start = Instant::now();
    let mut window_bytes = 0u64;
    let read = async {
        loop {
            let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
            let left = limits.rate_window.saturating_sub(window_start.elapsed());
            let n = match tokio::time::timeout(left, body.read_buf(&mut buf)).await {
                Err(_) => {
                    return Err(DownloadError::Slow {
                        file: wanted.file.clone(),
                        min_rate: limits.min_rate,
                        window: limits.rate_window,
                    });
                }
                Ok(Ok(0)) => return Ok(have < wanted.length),
                Ok(Ok(n)) => n,
                // A dropped connection: keep what we have, resume.
                Ok(Err(_)) => return Ok(true),
            };
            if have + n as u64 > wanted.length {
                return Err(DownloadError::TooLong {
                    file: wanted.file.clone(),
                    length: wanted.length,
                });
            }
            let chunk = buf.freeze();
            if htx.send(chunk.clone()).await.is_err() || tx.send(chunk).await.is_err() {
                // The sink failed; its error is reported below.
                return Ok(true);
            }
            have += n as u64;
            window_bytes += n as u64;
            progress(have);
            if window_start.elapsed() >= limits.rate_window {
                let rate = window_bytes as f64 / window_start.elapsed().as_secs_f64();
                if rate < limits.min_rate as f64 {
                    return Err(DownloadError::Slow {
                        file: wanted.file.clone(),
                        min_rate: limits.min_rate,
                        window: limits.rate_window,
                    });
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
    };
    let read = read.await;
    drop(tx);
    drop(htx);
    let joined = |e: tokio::task::JoinError| DownloadError::Io {
        path: partial.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let written = sink.await.map_err(joined)?.map_err(io(partial));
    let hashed = hasher_task.await.map_err(joined)?.map_err(io(partial));
    let ended_early = read?;
    written?;
    let got = hashed?;
    if ended_early {
        return Ok(false);
    }
    if got != wanted.sha256 {
        return Err(DownloadError::HashMismatch {
            file: wanted.file.clone(),
            got,
            want: wanted.sha256.clone(),
        });
    }
    Ok(true)
}

/// Rebuilds `wanted` in `dir` from the installed file `base` and a
/// verified `patch` (see [`crate::release::delta`]); returns the file, held
/// to the same rule as a download: it becomes `dir/<sha256>` only when its
/// length and SHA-256 match the signed ones. Blocking.
///
/// # Errors
/// [`DownloadError::HashMismatch`] when the result is not the signed file
/// (a changed base, a patch for another base), [`DownloadError::TooLong`],
/// or a local I/O error; the partial result is deleted.
pub fn rebuild_from_patch(
    base: &Path,
    patch: &Path,
    wanted: &Wanted,
    dir: &Path,
) -> Result<PathBuf, DownloadError> {
    struct Hashing<W> {
        inner: W,
        hasher: Sha256,
    }
    impl<W: std::io::Write> std::io::Write for Hashing<W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let partial = dir.join(format!("{}.partial", wanted.sha256));
    let result = (|| {
        let old = std::fs::read(base).map_err(io(base))?;
        let patch_file = std::fs::File::open(patch).map_err(io(patch))?;
        let file = std::fs::File::create(&partial).map_err(io(&partial))?;
        let mut out = Hashing {
            inner: std::io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
        };
        let written = crate::release::delta::apply_patch(&old, patch_file, &mut out, wanted.length)
            .map_err(|e| DownloadError::HashMismatch {
                file: wanted.file.clone(),
                got: format!("(patch failed: {e})"),
                want: wanted.sha256.clone(),
            })?;
        let got = hex::encode(out.hasher.finalize_reset());
        if written != wanted.length || got != wanted.sha256 {
            return Err(DownloadError::HashMismatch {
                file: wanted.file.clone(),
                got,
                want: wanted.sha256.clone(),
            });
        }
        let file = out.inner.into_inner().map_err(|e| DownloadError::Io {
            path: partial.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io(&partial))?;
        let done = dir.join(&wanted.sha256);
        std::fs::rename(&partial, &done).map_err(io(&partial))?;
        crate::fsutil::sync_dir(dir).map_err(io(dir))?;
        Ok(done)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}
