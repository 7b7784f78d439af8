//! Streams: bulk bytes beside the packet connection (VSOA streams,
//! PyService's send_file/recv_file).
//!
//! A command opens a [`Tunnel`] (a one-shot TCP listener on the address the
//! caller connected to), replies with its port as the tunid
//! ([`Tunnel::response`], or [`Response::tunnel`] with [`Tunnel::port`]),
//! and accepts one connection from the caller within the timeout; the
//! caller connects with [`Client::open_stream`](crate::client::Client::open_stream)
//! (or any VSOA client's stream call). The bytes are raw, in both
//! directions, as long as both sides keep the connection open.
//!
//! # Who gets the stream
//!
//! - Only the caller's IP address: a connection from elsewhere is closed
//!   and counted, and the tunnel keeps waiting for the caller until its
//!   timeout ([`DEFAULT_TIMEOUT`]).
//! - Optionally a one-time token ([`Tunnel::require_token`]): the reply
//!   carries 32 random bytes as 64 hex digits under
//!   [`TOKEN_KEY`] in its JSON param; the caller sends the 32 bytes first on
//!   the stream connection, and a connection that does not (wrong bytes,
//!   too few, nothing within the idle timeout) is closed and counted like
//!   one from a wrong address. psvc clients do this by themselves; plain
//!   VSOA clients, which just connect and exchange bytes, work with tunnels
//!   that do not ask for a token.
//! - Under TLS the stream is TLS too, as in VSOA ([`Tunnel::open_tls`]
//!   with the server's [`ServerTls`]; [`Tunnel::open`] refuses a caller on
//!   TLS rather than offer it a plaintext stream).
//!
//! After the connection, a stream that makes no progress for the idle
//! timeout ([`DEFAULT_IDLE_TIMEOUT`], [`Tunnel::idle_timeout`]) while
//! someone waits on it fails with [`io::ErrorKind::TimedOut`]: a peer that
//! connects and goes quiet ends [`copy`], [`send_file`] and [`recv_file`]
//! instead of holding them forever.
//!
//! [`copy`], [`send_file`] and [`recv_file`] move any amount of data in
//! constant memory and compute its SHA-256 on another thread while it
//! flows.
//!
//! ```no_run
//! # fn demo() -> psvc::commander::Commander {
//! use psvc::commander::{Commander, Request, Response};
//! use psvc::stream::{Tunnel, send_file};
//! Commander::new().route("/download", |req: Request| async move {
//!     // An error (no port, a TLS caller) fails the command (status 4).
//!     let tunnel = Tunnel::open(&req)?.require_token()?;
//!     let reply = tunnel.response(); // tunid and {"stream_token": …}
//!     actix::spawn(async move {
//!         if let Ok(mut stream) = tunnel.accept().await {
//!             let _ = send_file("/var/log/syslog", &mut stream, |_| {}).await;
//!         }
//!     });
//!     Ok(reply)
//! })
//! # }
//! ```
//!
//! [`Response::tunnel`]: crate::commander::Response::tunnel
//! [`ServerTls`]: crate::socket::ServerTls

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::commander::{CommandError, Request, Response};
use crate::frame::{Flags, Frame};
use crate::socket::io::Transport;
use crate::socket::{ClientTls, ServerTls};

/// How long a tunnel waits for its connection by default (VSOA's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Connections checked at once (TLS handshake, token); more wait in the
/// listen backlog.
const MAX_VETTING: usize = 16;

/// Refused connections after which a tunnel gives up before its timeout.
const MAX_REFUSED: u32 = 1024;

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
    /// [`Tunnel::open`] for a caller connected over TLS: its stream must be
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

impl From<StreamError> for CommandError {
    /// A tunnel that cannot be opened fails the command (status 4).
    fn from(e: StreamError) -> Self {
        CommandError::Failed(e.to_string())
    }
}

/// A one-shot stream listener: one connection from the caller, within a
/// timeout.
pub struct Tunnel {
    listener: TcpListener,
    port: u16,
    timeout: Duration,
    idle: Option<Duration>,
    expect: Option<IpAddr>,
    token: Option<[u8; TOKEN_LEN]>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("port", &self.port)
            .field("timeout", &self.timeout)
            .field("idle", &self.idle)
            .field("expect", &self.expect)
            .field("token", &self.token.is_some())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A plain-TCP tunnel for the caller of `req`: bound on the address the
    /// caller connected to (127.0.0.1 for a local call), accepting only the
    /// caller's IP address, with the default timeouts and no token.
    ///
    /// # Errors
    /// [`StreamError::TlsRequired`] if the caller is connected over TLS
    /// (use [`Tunnel::open_tls`]); [`StreamError::Io`] if the port cannot
    /// be bound.
    pub fn open(req: &Request) -> Result<Tunnel, StreamError> {
        if req.caller().is_some_and(|s| s.info().tls) {
            return Err(StreamError::TlsRequired);
        }
        Tunnel::for_caller(req)
    }

    /// [`Tunnel::open`] with TLS on the stream, as VSOA does under TLS:
    /// pass the [`ServerTls`] the server was built with (client
    /// certificates are then required or optional as on the server). A
    /// caller on plain TCP gets TLS too.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn open_tls(req: &Request, tls: &ServerTls) -> Result<Tunnel, StreamError> {
        Ok(Tunnel::for_caller(req)?.tls(tls))
    }

    fn for_caller(req: &Request) -> Result<Tunnel, StreamError> {
        let (ip, expect) = match req.caller() {
            Some(s) => (s.local_ip(), Some(s.peer().ip())),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), None),
        };
        let mut tunnel = Tunnel::bind(ip)?;
        tunnel.expect = expect;
        Ok(tunnel)
    }

    /// A tunnel on `ip`, a free port, any peer, the default timeouts, plain
    /// TCP, no token.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn bind(ip: IpAddr) -> io::Result<Tunnel> {
        let std = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        std.set_nonblocking(true)?;
        let port = std.local_addr()?.port();
        Ok(Tunnel {
            listener: TcpListener::from_std(std)?,
            port,
            timeout: DEFAULT_TIMEOUT,
            idle: Some(DEFAULT_IDLE_TIMEOUT),
            expect: None,
            token: None,
            tls: None,
        })
    }

    /// How long to wait for the connection.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// How long the connected stream may make no progress (`None`: no
    /// limit). Also bounds the TLS handshake and the token of each
    /// connection.
    #[must_use]
    pub fn idle_timeout(mut self, limit: Option<Duration>) -> Self {
        self.idle = limit;
        self
    }

    /// Serves the stream over TLS with `tls`.
    #[must_use]
    pub fn tls(mut self, tls: &ServerTls) -> Self {
        self.tls = Some(tls.acceptor.clone());
        self
    }

    /// Requires a fresh one-time token: send it in the reply
    /// ([`Tunnel::response`] or [`Tunnel::token_hex`]); only a connection
    /// that sends it first is accepted. Plain VSOA clients cannot use such
    /// a tunnel.
    ///
    /// # Errors
    /// [`StreamError::Random`] if no secure random bytes are available.
    pub fn require_token(mut self) -> Result<Self, StreamError> {
        let mut token = [0u8; TOKEN_LEN];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut token)
            .map_err(|_| StreamError::Random)?;
        self.token = Some(token);
        Ok(self)
    }

    /// The token as 64 lowercase hex digits, if one is required: for a
    /// reply that builds its own JSON param, under [`TOKEN_KEY`].
    pub fn token_hex(&self) -> Option<String> {
        self.token.as_ref().map(|t| hex(t))
    }

    /// The reply that offers this tunnel: status 0, the port as tunid, and
    /// when a token is required, `{"stream_token": "<hex>"}` as the param.
    pub fn response(&self) -> Response {
        let reply = Response::ok().tunnel(self.port);
        match self.token_hex() {
            Some(token) => reply.param(serde_json::json!({ TOKEN_KEY: token }).to_string()),
            None => reply,
        }
    }

    /// The port to send as the tunid.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the caller's connection; the listener closes either way.
    ///
    /// A connection from another address, or one that fails the TLS
    /// handshake or the token, is closed and counted, and the wait goes
    /// on until the timeout. Connections are checked concurrently, so a
    /// peer that connects and stays silent does not hold up the caller.
    ///
    /// # Errors
    /// [`StreamError::Timeout`] if nobody connects in time,
    /// [`StreamError::Refused`] if only refused connections came (or
    /// more than 1024 of them), [`StreamError::Io`] if the listener
    /// fails.
    pub async fn accept(self) -> Result<TunnelStream, StreamError> {
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let vet_limit = self.idle.unwrap_or(self.timeout);
        let checks = self.tls.is_some() || self.token.is_some();
        let mut vetting = FuturesUnordered::new();
        let mut refused = 0u32;
        loop {
            let refusal = tokio::select! {
                biased;
                () = &mut deadline => break,
                Some((peer, checked)) = vetting.next(), if !vetting.is_empty() => {
                    match checked {
                        Ok(io) => return Ok(self.connected(io, peer, refused)),
                        Err(why) => (peer, why),
                    }
                }
                accepted = self.listener.accept(), if vetting.len() < MAX_VETTING => {
                    let (tcp, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) if transient(&e) => {
                            refused += 1;
                            tracing::debug!(port = self.port, error = %e, "stream accept failed");
                            if refused >= MAX_REFUSED {
                                break;
                            }
                            continue;
                        }
                        Err(e) => return Err(StreamError::Io(e)),
                    };
                    if self.expect.is_some_and(|ip| !same_ip(ip, peer.ip())) {
                        (peer, Refusal::Address)
                    } else if checks {
                        vetting.push(vet(tcp, peer, self.tls.clone(), self.token, vet_limit));
                        continue;
                    } else {
                        return Ok(self.connected(Transport::Plain(tcp), peer, refused));
                    }
                }
            };
            refused += 1;
            let (peer, why) = refusal;
            if refused == 1 {
                tracing::warn!(%peer, port = self.port, %why, "stream connection refused");
            } else {
                tracing::debug!(%peer, port = self.port, %why, refused, "stream connection refused");
            }
            if refused >= MAX_REFUSED {
                break;
            }
        }
        if refused == 0 {
            Err(StreamError::Timeout(self.timeout))
        } else {
            tracing::warn!(
                port = self.port,
                refused,
                "stream tunnel closed without its caller"
            );
            Err(StreamError::Refused {
                refused,
                timeout: self.timeout,
            })
        }
    }

    fn connected(&self, io: Transport, peer: SocketAddr, refused: u32) -> TunnelStream {
        let _ = io.tcp().set_nodelay(true);
        if refused > 0 {
            tracing::info!(%peer, port = self.port, refused, "stream connected after refusals");
        } else {
            tracing::debug!(%peer, port = self.port, "stream connected");
        }
        TunnelStream::new(io, self.idle)
    }
}

/// Why a tunnel closed a connection (for the log).
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("not the caller's address")]
    Address,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("no token: {0}")]
    NoToken(io::Error),
    #[error("wrong token")]
    WrongToken,
    #[error("no TLS handshake and token within {0:?}")]
    Slow(Duration),
}

/// TLS handshake and token check of one connection, within `limit`.
async fn vet(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    token: Option<[u8; TOKEN_LEN]>,
    limit: Duration,
) -> (SocketAddr, Result<Transport, Refusal>) {
    let checked = tokio::time::timeout(limit, async {
        let mut io = match tls {
            Some(acceptor) => {
                Transport::TlsServer(Box::new(acceptor.accept(tcp).await.map_err(Refusal::Tls)?))
            }
            None => Transport::Plain(tcp),
        };
        if let Some(expected) = token {
            let mut given = [0u8; TOKEN_LEN];
            io.read_exact(&mut given).await.map_err(Refusal::NoToken)?;
            if !bool::from(given.ct_eq(&expected)) {
                return Err(Refusal::WrongToken);
            }
        }
        Ok(io)
    })
    .await;
    (peer, checked.unwrap_or(Err(Refusal::Slow(limit))))
}

/// Accept errors that concern one connection, not the listener.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Equal addresses, an IPv4 one and its IPv6-mapped form included.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn hex(bytes: &[u8]) -> String {
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
    fn new(io: Transport, idle: Option<Duration>) -> Self {
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
        !matches!(self.io, Transport::Plain(_))
    }

    /// The other end's address.
    ///
    /// # Errors
    /// The socket is no longer connected.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.tcp().peer_addr()
    }

    /// This end's address.
    ///
    /// # Errors
    /// The socket has no address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.tcp().local_addr()
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
