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

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use subtle::ConstantTimeEq;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::commander::{CommandError, Request, Response};
use crate::net::io::Transport;
use crate::net::tls::ServerTls;
use crate::net::tunnel::hex;

pub use crate::net::tunnel::{
    DEFAULT_IDLE_TIMEOUT, StreamError, TOKEN_KEY, TOKEN_LEN, Transfer, TunnelStream, connect,
    connect_reply, connect_with, copy, recv_file, reply_token, send_file,
};

/// How long a tunnel waits for its connection by default (VSOA's 5 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections checked at once (TLS handshake, token); more wait in the
/// listen backlog.
const MAX_VETTING: usize = 16;

/// Refused connections after which a tunnel gives up before its timeout.
const MAX_REFUSED: u32 = 1024;

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
        if let Some(tcp) = io.tcp() {
            let _ = tcp.set_nodelay(true);
        }
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
