//! Streams: bulk bytes beside the packet connection (VSOA streams,
//! PyService's send_file/recv_file).
//!
//! A command opens a [`Tunnel`] (a one-shot TCP listener on the address the
//! caller connected to), replies with its port as the tunid
//! ([`Response::tunnel`](crate::commander::Response::tunnel)), and accepts
//! one connection within the timeout; the caller connects with
//! [`Client::stream`](crate::client::Client::stream). The bytes are raw, in
//! both directions, as long as both sides keep the connection open.
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
//!     let tunnel = Tunnel::open(&req)?; // an IO error fails the command (status 4)
//!     let port = tunnel.port();
//!     actix::spawn(async move {
//!         if let Ok(mut stream) = tunnel.accept().await {
//!             let _ = send_file("/var/log/syslog", &mut stream, |_| {}).await;
//!         }
//!     });
//!     Ok(Response::ok().tunnel(port))
//! })
//! # }
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::commander::Request;

/// How long a tunnel waits for its connection by default (VSOA's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// A peer other than the caller connected (it was closed).
    #[error("connection from unexpected address {0}")]
    WrongPeer(SocketAddr),
}

/// A one-shot stream listener: one connection, within a timeout.
#[derive(Debug)]
pub struct Tunnel {
    listener: TcpListener,
    port: u16,
    timeout: Duration,
    expect: Option<IpAddr>,
}

impl Tunnel {
    /// A tunnel for the caller of `req`: bound on the address the caller
    /// connected to (127.0.0.1 for a local call), accepting only the
    /// caller's IP address, with the default timeout.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn open(req: &Request) -> io::Result<Tunnel> {
        let (ip, expect) = match req.caller() {
            Some(s) => (s.local_ip(), Some(s.peer().ip())),
            None => (IpAddr::V4(Ipv4Addr::LOCALHOST), None),
        };
        let mut tunnel = Tunnel::bind(ip)?;
        tunnel.expect = expect;
        Ok(tunnel)
    }

    /// A tunnel on `ip`, a free port, any peer, the default timeout.
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
            expect: None,
        })
    }

    /// How long to wait for the connection.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The port to send as the tunid.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits for the one connection; the listener closes either way.
    ///
    /// # Errors
    /// [`StreamError::Timeout`] if nobody connects in time,
    /// [`StreamError::WrongPeer`] if someone else does.
    pub async fn accept(self) -> Result<TcpStream, StreamError> {
        let (stream, peer) = tokio::time::timeout(self.timeout, self.listener.accept())
            .await
            .map_err(|_| StreamError::Timeout(self.timeout))??;
        if self.expect.is_some_and(|ip| ip != peer.ip()) {
            tracing::warn!(%peer, port = self.port, "stream connection from another address refused");
            return Err(StreamError::WrongPeer(peer));
        }
        let _ = stream.set_nodelay(true);
        tracing::debug!(%peer, port = self.port, "stream connected");
        Ok(stream)
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

/// Connects to a stream the server offered: its address with the tunid as
/// port.
///
/// # Errors
/// The connection fails.
pub async fn connect(server: SocketAddr, tunid: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(SocketAddr::new(server.ip(), tunid)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
