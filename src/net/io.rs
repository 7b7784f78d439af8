//! One connection's transport (plain TCP, TLS, or a Unix-domain socket) shared by its read and write
//! halves inside one actor.
//!
//! An actor polls its read stream and its write sink from the same task, one
//! at a time, so the halves can share the stream through an `Rc<RefCell<_>>`
//! (as actix's own writer does) instead of `tokio::io::split`'s `Arc` and
//! lock. The shared cell also keeps the TCP socket reachable for options set
//! after the handshake (IP_TOS on QOSSETUP). The client uses these halves;
//! a server session keeps its transport inline (see `session.rs`).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The address a Unix-domain server and its peers are given: this
/// machine, no port.
pub(crate) const UNIX_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A plain or TLS TCP stream, or a Unix-domain stream.
pub(crate) enum Transport {
    Plain(TcpStream),
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Unix(tokio::net::UnixStream),
}

impl Transport {
    /// The TCP socket under it (none for a Unix-domain stream).
    pub(crate) fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::TlsServer(s) => Some(s.get_ref().0),
            Transport::TlsClient(s) => Some(s.get_ref().0),
            Transport::Unix(_) => None,
        }
    }

    /// Whether it is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Transport::TlsServer(_) | Transport::TlsClient(_))
    }

    /// Whether the peer presented a client certificate that rustls
    /// verified: only a server-side TLS connection can have one, and only
    /// when the server asked for it (a verifier that rejects the chain
    /// fails the handshake, so a stored chain is a verified one). False for
    /// plain TCP, for a TLS server that asks for no certificate, and for a
    /// client that skipped an optional one.
    pub(crate) fn client_certificate(&self) -> bool {
        match self {
            Transport::TlsServer(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|chain| !chain.is_empty()),
            Transport::Plain(_) | Transport::TlsClient(_) | Transport::Unix(_) => false,
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Plain($s) => $e,
            Transport::TlsServer($s) => $e,
            Transport::TlsClient($s) => $e,
            Transport::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The transport shared by a client's read and write halves.
pub(crate) struct SharedIo {
    stream: RefCell<Transport>,
}

impl SharedIo {
    pub(crate) fn new(stream: Transport) -> Rc<Self> {
        Rc::new(Self {
            stream: RefCell::new(stream),
        })
    }

    /// Runs `f` on the TCP socket (for socket options); an error for a
    /// Unix-domain stream.
    pub(crate) fn with_tcp<T>(&self, f: impl FnOnce(&TcpStream) -> T) -> io::Result<T> {
        let stream = self.stream.try_borrow().map_err(busy)?;
        let tcp = stream
            .tcp()
            .ok_or_else(|| io::Error::other("not a TCP connection"))?;
        Ok(f(tcp))
    }
}

fn busy(_: std::cell::BorrowError) -> io::Error {
    io::Error::other("transport busy")
}

fn busy_mut(_: std::cell::BorrowMutError) -> io::Error {
    io::Error::other("transport busy")
}

/// The read half.
pub(crate) struct IoRead(pub(crate) Rc<SharedIo>);

/// The write half.
pub(crate) struct IoWrite(pub(crate) Rc<SharedIo>);

impl AsyncRead for IoRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.0.stream.try_borrow_mut().map_err(busy_mut)?;
        Pin::new(&mut *stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for IoWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut stream = self.0.stream.try_borrow_mut().map_err(busy_mut)?;
        Pin::new(&mut *stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.0.stream.try_borrow_mut().map_err(busy_mut)?;
        Pin::new(&mut *stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.0.stream.try_borrow_mut().map_err(busy_mut)?;
        Pin::new(&mut *stream).poll_shutdown(cx)
    }
}

/// Applies the options every psvc TCP connection gets.
pub(crate) fn tune(stream: &TcpStream, nodelay: bool, keepalive: Option<std::time::Duration>) {
    if let Err(e) = stream.set_nodelay(nodelay) {
        tracing::debug!(error = %e, "TCP_NODELAY not set");
    }
    if let Some(idle) = keepalive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(idle / 3 + std::time::Duration::from_secs(1));
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "TCP keepalive not set");
        }
    }
}

/// The IP_TOS byte for a VSOA priority, as VSOA computes it: precedence
/// bits from the priority, plus the high-throughput bit when non-zero.
pub(crate) fn priority_tos(priority: u8) -> u32 {
    let dscp = u32::from(priority.min(7)) << 5;
    if dscp == 0 { 0 } else { dscp | 0x08 }
}

/// Sets IP_TOS (or the IPv6 traffic class) from a VSOA priority (0–7).
pub(crate) fn set_priority_tos(stream: &TcpStream, priority: u8) -> io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    let tos = priority_tos(priority);
    match stream.local_addr()? {
        std::net::SocketAddr::V4(_) => sock.set_tos_v4(tos),
        std::net::SocketAddr::V6(_) => sock.set_tclass_v6(tos),
    }
}
