//! The client end of streams and the bytes on them: [`TunnelStream`] (plain
//! or TLS, with an idle timeout), connecting to a stream a reply offers
//! ([`connect_reply`], with its one-time token), and moving files in
//! constant memory with SHA-256 computed on the way ([`copy`],
//! [`send_file`], [`recv_file`]). The server end, the one-shot `Tunnel`,
//! is in [`crate::stream`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::io::Transport;
use super::tls::ClientTls;
use crate::wire::frame::{Flags, Frame};

/// How long a connected stream may make no progress by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes in a stream token.
pub const TOKEN_LEN: usize = 32;

/// The key of the token (64 lowercase hex digits) in the reply's JSON
/// param.
pub const TOKEN_KEY: &str = "stream_token";

/// Size of each read while copying.
const CHUNK: usize = 256 * 1024;

/// Chunks in flight to the hashing thread.
const HASH_QUEUE: usize = 4;

/// Why a stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Socket or file error.
    #[error("stream: {0}")]
    Io(#[from] io::Error),
    /// Nobody connected in time.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    /// Connections came, but none from the caller with the token: each was
    /// closed, and the tunnel gave up at its timeout (or after too many).
    #[error("no acceptable connection within {timeout:?} ({refused} refused)")]
    Refused {
        /// Connections closed.
        refused: u32,
        /// The tunnel's timeout.
        timeout: Duration,
    },
    /// [`Tunnel::open`](crate::stream::Tunnel::open) for a caller connected over TLS: its stream must be
    /// TLS too.
    #[error("the caller is on TLS: open its tunnel with Tunnel::open_tls")]
    TlsRequired,
    /// The TLS handshake on the stream connection failed (client side).
    #[error("stream TLS handshake: {0}")]
    Tls(io::Error),
    /// The reply offers no stream (no TUNNEL flag).
    #[error("the reply offers no stream")]
    NoTunnel,
    /// The reply's `stream_token` is not 64 hex digits.
    #[error("malformed stream token in the reply: {0}")]
    BadToken(String),
    /// No random bytes for a token.
    #[error("no secure random source for a stream token")]
    Random,
}

/// Lowercase hex digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stream token in a reply's param, if it carries one.
///
/// # Errors
/// [`StreamError::BadToken`] if [`TOKEN_KEY`] is there but not 64 hex
/// digits.
pub fn reply_token(reply: &Frame) -> Result<Option<[u8; TOKEN_LEN]>, StreamError> {
    let Ok(param) = serde_json::from_slice::<serde_json::Value>(&reply.param) else {
        return Ok(None);
    };
    let Some(value) = param.get(TOKEN_KEY) else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| StreamError::BadToken("not a string".into()))?;
    if text.len() != 2 * TOKEN_LEN {
        return Err(StreamError::BadToken(format!(
            "{} characters, not {}",
            text.len(),
            2 * TOKEN_LEN
        )));
    }
    let mut token = [0u8; TOKEN_LEN];
    for (byte, pair) in token.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok();
        *byte = digits
            .and_then(|d| u8::from_str_radix(d, 16).ok())
            .ok_or_else(|| StreamError::BadToken("not hex".into()))?;
    }
    Ok(Some(token))
}

/// Idle tracking of one direction (read, or write/flush/shutdown).
#[derive(Default)]
struct Waiting {
    /// When the pending operation started waiting.
    since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

/// One end of a stream: plain TCP or TLS, with the idle timeout.
///
/// Reading and writing as any tokio stream; an operation left waiting
/// while the stream makes no progress either way for the idle timeout
/// fails with [`io::ErrorKind::TimedOut`].
pub struct TunnelStream {
    io: Transport,
    idle: Option<Duration>,
    /// Last completed operation either way.
    progress: Instant,
    read: Waiting,
    write: Waiting,
}

impl std::fmt::Debug for TunnelStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream")
            .field("peer", &self.peer_addr().ok())
            .field("tls", &self.is_tls())
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl TunnelStream {
    pub(crate) fn new(io: Transport, idle: Option<Duration>) -> Self {
        TunnelStream {
            io,
            idle,
            progress: Instant::now(),
            read: Waiting::default(),
            write: Waiting::default(),
        }
    }

    /// Sets the idle timeout (`None`: wait forever).
    pub fn set_idle_timeout(&mut self, limit: Option<Duration>) {
        self.idle = limit;
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle
    }

    /// Whether the stream is TLS.
    pub fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    /// The other end's address.
    ///
    /// # Errors
    /// The socket is no longer connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp()?.peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    /// The socket has no address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp()?.local_addr()
    }

    fn tcp(&self) -> io::Result<&tokio::net::TcpStream> {
        self.io
            .tcp()
            .ok_or_else(|| io::Error::other("not a TCP stream"))
    }

    /// Read and write halves usable from two tasks (over a lock, as
    /// [`tokio::io::split`]).
    pub fn into_split(
        self,
    ) -> (
        tokio::io::ReadHalf<TunnelStream>,
        tokio::io::WriteHalf<TunnelStream>,
    ) {
        tokio::io::split(self)
    }

    /// Bookkeeping after a poll of one direction: progress resets the
    /// clock; a wait longer than the idle timeout becomes an error.
    fn after<T>(
        &mut self,
        poll: Poll<io::Result<T>>,
        reading: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        let now_ready = poll.is_ready();
        let (progress, idle) = (&mut self.progress, self.idle);
        let waiting = if reading {
            &mut self.read
        } else {
            &mut self.write
        };
        if now_ready {
            *progress = Instant::now();
            waiting.since = None;
            return poll;
        }
        let Some(limit) = idle else {
            return Poll::Pending;
        };
        let now = Instant::now();
        let since = *waiting.since.get_or_insert(now);
        let deadline = since.max(*progress) + limit;
        if deadline <= now {
            return Poll::Ready(Err(idle_error(limit)));
        }
        let timer = waiting
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(idle_error(limit))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn idle_error(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("stream made no progress for {limit:?}"),
    )
}

impl AsyncRead for TunnelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        this.after(poll, true, cx)
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.after(poll, false, cx)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.after(poll, false, cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.after(poll, false, cx)
    }
}

/// What a copy moved: the byte count and its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes copied.
    pub bytes: u64,
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
}

impl Transfer {
    /// The digest as lowercase hex (what `sha256sum` prints).
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Copies `reader` to `writer` until end of input, hashing on another
/// thread while the bytes flow; `progress` sees the running total. Memory
/// stays constant whatever the size: a few 256 KiB chunks, recycled
/// between the reader and the hashing thread (fresh memory for every chunk
/// would cost a page fault per 4 KiB). The writer is flushed, not shut
/// down.
///
/// # Errors
/// A read or write error.
pub async fn copy<R, W>(
    reader: &mut R,
    writer: &mut W,
    mut progress: impl FnMut(u64),
) -> io::Result<Transfer>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (to_hasher, mut chunks) = mpsc::channel::<(Vec<u8>, usize)>(HASH_QUEUE);
    let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
    let hasher = tokio::task::spawn_blocking(move || {
        let mut sha = Sha256::new();
        while let Some((chunk, len)) = chunks.blocking_recv() {
            sha.update(&chunk[..len]);
            let _ = recycle.send(chunk);
        }
        let digest: [u8; 32] = sha.finalize().into();
        digest
    });
    let mut total = 0u64;
    let result: io::Result<()> = async {
        loop {
            let mut chunk = recycled.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
            let mut len = reader.read(&mut chunk).await?;
            if len == 0 {
                break;
            }
            // Fill the chunk with what is ready already: fewer, larger writes.
            while len < CHUNK {
                match futures::FutureExt::now_or_never(reader.read(&mut chunk[len..])) {
                    Some(Ok(0)) | None => break,
                    Some(Ok(n)) => len += n,
                    Some(Err(e)) => return Err(e),
                }
            }
            writer.write_all(&chunk[..len]).await?;
            total += len as u64;
            progress(total);
            if to_hasher.send((chunk, len)).await.is_err() {
                return Err(io::Error::other("hashing thread stopped"));
            }
        }
        writer.flush().await
    }
    .await;
    drop(to_hasher);
    let sha256 = hasher.await.map_err(io::Error::other)?;
    result?;
    Ok(Transfer {
        bytes: total,
        sha256,
    })
}

/// Sends the file at `path` into `stream`, then shuts the stream's write
/// side down so the receiver sees the end.
///
/// # Errors
/// The file cannot be read or the stream fails.
pub async fn send_file<W>(
    path: impl AsRef<Path>,
    stream: &mut W,
    progress: impl FnMut(u64),
) -> io::Result<Transfer>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut file = tokio::fs::File::open(path).await?;
    let transfer = copy(&mut file, stream, progress).await?;
    stream.shutdown().await?;
    Ok(transfer)
}

/// Receives `stream` until its end into a new file at `path` (written to
/// `path.part` and renamed when complete, so a broken transfer never leaves
/// a truncated file under the real name).
///
/// # Errors
/// The file cannot be written or the stream fails.
pub async fn recv_file<R>(
    stream: &mut R,
    path: impl AsRef<Path>,
    progress: impl FnMut(u64),
) -> io::Result<Transfer>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let path = path.as_ref();
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    let part = std::path::PathBuf::from(part);
    let mut file = tokio::fs::File::create(&part).await?;
    let result = copy(stream, &mut file, progress).await;
    match result {
        Ok(transfer) => {
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&part, path).await?;
            Ok(transfer)
        }
        Err(e) => {
            drop(file);
            let _ = tokio::fs::remove_file(&part).await;
            Err(e)
        }
    }
}

/// Connects to a stream the server offered, VSOA style: its address with
/// the tunid as port, plain TCP, no token.
///
/// # Errors
/// The connection fails.
pub async fn connect(server: SocketAddr, tunid: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(SocketAddr::new(server.ip(), tunid)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Connects to a stream the server offered at `tunid`: over TLS with `tls`
/// (as the server expects when its packets are TLS), then sends `token`
/// when the reply carried one ([`reply_token`]). The stream has the
/// default idle timeout.
///
/// # Errors
/// [`StreamError::Io`] if the connection fails, [`StreamError::Tls`] if
/// the TLS handshake does.
pub async fn connect_with(
    server: SocketAddr,
    tunid: u16,
    token: Option<&[u8; TOKEN_LEN]>,
    tls: Option<&ClientTls>,
) -> Result<TunnelStream, StreamError> {
    let tcp = connect(server, tunid).await?;
    let io = match tls {
        Some(tls) => Transport::TlsClient(Box::new(
            tls.connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(StreamError::Tls)?,
        )),
        None => Transport::Plain(tcp),
    };
    let mut stream = TunnelStream::new(io, Some(DEFAULT_IDLE_TIMEOUT));
    if let Some(token) = token {
        stream.write_all(token).await?;
        stream.flush().await?;
    }
    Ok(stream)
}

/// Connects to the stream `reply` offers: its tunid, its token if any,
/// TLS with `tls`.
///
/// # Errors
/// [`StreamError::NoTunnel`] if the reply offers none,
/// [`StreamError::BadToken`], or as [`connect_with`].
pub async fn connect_reply(
    server: SocketAddr,
    reply: &Frame,
    tls: Option<&ClientTls>,
) -> Result<TunnelStream, StreamError> {
    if !reply.flags.contains(Flags::TUNNEL) {
        return Err(StreamError::NoTunnel);
    }
    let token = reply_token(reply)?;
    connect_with(server, reply.tunid, token.as_ref(), tls).await
}
