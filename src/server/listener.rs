//! The accept loop: bind, connection limit, accept backoff, TLS accept, and
//! the registry of live sessions.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::Failures;
use super::builder::{Server, ServerError};
use super::handle::SessionInfo;
use super::handle::{SessionRef, SessionTable};
use super::session::Session;
use super::shared::Shared;
use super::stats::{ServerCounters, ServerStats};
use crate::net::io::{Transport, UNIX_ADDR, tune};

/// A bound listening socket, before the actor starts accepting on it.
enum Bound {
    Tcp(std::net::TcpListener),
    /// A Unix-domain socket, and its path (removed when the listener stops).
    Unix(std::os::unix::net::UnixListener, std::path::PathBuf),
}

/// What the accept loop accepts from.
enum Acceptor {
    Tcp(TcpListener),
    Unix(tokio::net::UnixListener),
}

/// The listening socket as an actor; starts a [`Session`] per connection.
pub struct Listener {
    std: Option<Bound>,
    /// The Unix-domain socket's path, to remove when the listener stops.
    unix: Option<std::path::PathBuf>,
    udp: Option<std::net::UdpSocket>,
    local: SocketAddr,
    shared: Rc<Shared>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `addr` (SO_REUSEADDR, non-blocking); the actor starts accepting
    /// when it starts.
    ///
    /// # Errors
    /// [`ServerError::Bind`] if the address is invalid or taken.
    /// The quick UDP channel is bound to the same port (unless TLS is on or
    /// [`Server::quick`] is off); with port 0 both get the same free port.
    pub fn bind(server: Server, addr: &str) -> Result<Self, ServerError> {
        Self::bind_with(server, addr, Arc::default())
    }

    /// [`Listener::bind`] serving the sessions of `table`: a restarted
    /// listener keeps the sessions its crashed instance left running.
    pub(crate) fn bind_with(
        server: Server,
        addr: &str,
        table: Arc<SessionTable>,
    ) -> Result<Self, ServerError> {
        let bind_err = |source: io::Error| ServerError::Bind {
            addr: addr.to_owned(),
            source,
        };
        if let Some(path) = addr.strip_prefix("unix:") {
            if server.tls.is_some() {
                return Err(bind_err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS is not served on a Unix-domain socket (its file permissions guard it)",
                )));
            }
            let path = std::path::PathBuf::from(path);
            let std = bind_unix(&path).map_err(bind_err)?;
            return Ok(Self::new(
                server,
                Bound::Unix(std, path),
                None,
                UNIX_ADDR,
                table,
            ));
        }
        let sockaddr = addr
            .parse::<SocketAddr>()
            .map_err(|e| bind_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let want_udp = server.quick && server.tls.is_none();
        // With port 0 the TCP port is picked first; if its UDP twin is
        // taken, try another port.
        let attempts = if sockaddr.port() == 0 && want_udp {
            16
        } else {
            1
        };
        let mut last = None;
        for _ in 0..attempts {
            let (std, local) = bind_tcp(sockaddr).map_err(bind_err)?;
            if !want_udp {
                return Ok(Self::new(server, Bound::Tcp(std), None, local, table));
            }
            match bind_udp(local) {
                Ok(udp) => return Ok(Self::new(server, Bound::Tcp(std), Some(udp), local, table)),
                Err(e) => last = Some(e),
            }
        }
        Err(bind_err(
            last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into()),
        ))
    }

    fn new(
        server: Server,
        std: Bound,
        udp: Option<std::net::UdpSocket>,
        local: SocketAddr,
        table: Arc<SessionTable>,
    ) -> Self {
        Self {
            unix: match &std {
                Bound::Unix(_, path) => Some(path.clone()),
                Bound::Tcp(_) => None,
            },
            std: Some(std),
            udp,
            local,
            shared: Rc::new(Shared {
                server,
                failures: Failures::default(),
                table,
                handshakes: RefCell::new(HashMap::new()),
                stopped: Cell::new(false),
                quick: OnceCell::new(),
            }),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(std) = self.std.take() else {
            return ctx.stop();
        };
        let listener = match std {
            Bound::Tcp(std) => TcpListener::from_std(std).map(Acceptor::Tcp),
            Bound::Unix(std, _) => tokio::net::UnixListener::from_std(std).map(Acceptor::Unix),
        };
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(addr = %self.local, error = %e, "listener could not start");
                return ctx.stop();
            }
        };
        if let Some(udp) = self.udp.take() {
            match tokio::net::UdpSocket::from_std(udp) {
                Ok(udp) => {
                    let udp = Arc::new(udp);
                    let _ = self.shared.quick.set(udp.clone());
                    ctx.spawn(quick_loop(udp, self.shared.clone()).into_actor(self));
                }
                Err(e) => {
                    tracing::warn!(addr = %self.local, error = %e, "quick channel unavailable");
                }
            }
        }
        let unix = self.unix.as_ref().map(|p| p.display().to_string());
        tracing::info!(addr = %self.local, ?unix, auth = self.shared.server.auth.kind(),
            tls = self.shared.server.tls.is_some(), quick = self.shared.quick.get().is_some(),
            "listening");
        ctx.spawn(accept_loop(listener, self.shared.clone()).into_actor(self));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Sessions live on without their listener only as long as it takes
        // to flush: close them all.
        self.shared.stopped.set(true);
        for s in self.shared.sessions() {
            s.close();
        }
        if let Some(path) = &self.unix
            && let Err(e) = std::fs::remove_file(path)
        {
            tracing::debug!(path = %path.display(), error = %e, "socket file not removed");
        }
        tracing::info!(addr = %self.local, "listener stopped");
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<(std::net::TcpListener, SocketAddr)> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let std: std::net::TcpListener = socket.into();
    let local = std.local_addr()?;
    Ok((std, local))
}

/// Binds a Unix-domain socket at `path`. A socket file nobody listens on
/// (left by a crash) is replaced; a live one is an error, as is any other
/// kind of file.
fn bind_unix(path: &std::path::Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "a server already listens on this socket",
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // A restarted listener rebinds while the old sessions still hold the
    // previous socket for a moment.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Reads the quick channel: client DATAGRAMs carry their client id in the
/// seqno and must come from that client's address.
async fn quick_loop(socket: Arc<tokio::net::UdpSocket>, shared: Rc<Shared>) {
    let mut buf = vec![0u8; crate::wire::frame::MAX_UDP_PACKET];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here; keep going.
                tracing::trace!(error = %e, "quick channel receive");
                continue;
            }
        };
        let mut packet = bytes::BytesMut::from(&buf[..n]);
        let frame =
            match crate::wire::frame::decode(&mut packet, crate::wire::frame::MAX_UDP_PACKET) {
                Ok(f) if packet.is_empty() => f,
                Ok(_) => {
                    tracing::debug!(%from, "quick packet with trailing bytes dropped");
                    continue;
                }
                Err(e) => {
                    tracing::debug!(%from, error = %e, "malformed quick packet dropped");
                    continue;
                }
            };
        if frame.kind != crate::wire::frame::Kind::Datagram || frame.is_reply() {
            continue;
        }
        let stats = &shared.server.stats;
        // Only from the exact address the client announced: its IP and
        // the UDP port in its SERVINFO.
        let Some(session) = shared
            .table
            .session(frame.seqno)
            .filter(|s| s.quick_addr() == Some(from))
        else {
            tracing::debug!(%from, id = frame.seqno, "quick packet from an unknown client or address dropped");
            stats.dropped(
                &stats.quick_rejected,
                "quick packets rejected: unknown client or address",
            );
            continue;
        };
        if !session.deliver_quick(frame) {
            stats.dropped(
                &stats.datagrams_dropped,
                "client datagrams dropped: session inbox full",
            );
        }
    }
}

/// Errors that concern one connection only; anything else (out of file
/// descriptors, memory) pauses accepting with a growing delay.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

impl Acceptor {
    async fn accept(&self) -> io::Result<(Transport, SocketAddr)> {
        match self {
            Acceptor::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                Ok((Transport::Plain(stream), peer))
            }
            Acceptor::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok((Transport::Unix(stream), UNIX_ADDR))
            }
        }
    }
}

async fn accept_loop(listener: Acceptor, shared: Rc<Shared>) {
    let options = &shared.server.options;
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let mut pause = Duration::from_millis(5);
    loop {
        // At the limit, wait here: new peers queue in the kernel backlog.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                pause = Duration::from_millis(5);
                open(&shared, stream, peer, permit);
            }
            Err(e) if per_connection(&e) => {
                tracing::debug!(error = %e, "accept");
            }
            Err(e) => {
                tracing::warn!(error = %e, ?pause, "accept failed; pausing");
                drop(permit);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn open(shared: &Rc<Shared>, stream: Transport, peer: SocketAddr, permit: OwnedSemaphorePermit) {
    let Some(slot) = shared.begin_handshake(peer.ip()) else {
        let stats = &shared.server.stats;
        stats.dropped(
            &stats.handshakes_refused,
            "connections refused: too many handshakes from one address",
        );
        return;
    };
    let options = &shared.server.options;
    let stream = match stream {
        Transport::Plain(stream) => stream,
        // No TLS on a Unix-domain socket (refused at bind).
        other => return Session::spawn(shared.clone(), other, peer, permit, slot),
    };
    tune(&stream, options.nodelay, options.tcp_keepalive);
    match &shared.server.tls {
        None => Session::spawn(shared.clone(), Transport::Plain(stream), peer, permit, slot),
        Some(tls) => {
            let acceptor = tls.acceptor.clone();
            let shared = shared.clone();
            let limit = options.handshake_timeout;
            actix::spawn(async move {
                match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let tls = Transport::TlsServer(Box::new(tls));
                        Session::spawn(shared, tls, peer, permit, slot);
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::warn!(%peer, "TLS handshake timed out"),
                }
            });
        }
    }
}

/// The bound address.
#[derive(Debug, Message)]
#[rtype(result = "SocketAddr")]
pub struct LocalAddr;

impl Handler<LocalAddr> for Listener {
    type Result = MessageResult<LocalAddr>;
    fn handle(&mut self, _: LocalAddr, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.local)
    }
}

/// The sessions that completed their handshake, by client id.
#[derive(Debug, Message)]
#[rtype(result = "Vec<SessionRef>")]
pub struct ListSessions;

impl Handler<ListSessions> for Listener {
    type Result = MessageResult<ListSessions>;
    fn handle(&mut self, _: ListSessions, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.shared.sessions())
    }
}

/// A started server: its address and the listener actor.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    addr: Addr<Listener>,
    local: SocketAddr,
    stats: Arc<ServerStats>,
}

impl ServerHandle {
    pub(crate) fn new(addr: Addr<Listener>, local: SocketAddr, stats: Arc<ServerStats>) -> Self {
        Self { addr, local, stats }
    }

    /// What the server refused or dropped to stay within its bounds.
    pub fn stats(&self) -> ServerCounters {
        self.stats.snapshot()
    }

    /// The bound address (the real port when bound to port 0);
    /// `127.0.0.1:0` for a Unix-domain socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The listener actor.
    pub fn listener(&self) -> &Addr<Listener> {
        &self.addr
    }

    /// The connected sessions, by client id.
    ///
    /// # Errors
    /// The listener has stopped.
    pub async fn sessions(&self) -> Result<Vec<SessionRef>, MailboxError> {
        self.addr.send(ListSessions).await
    }

    /// Snapshots of the connected sessions.
    ///
    /// # Errors
    /// The listener has stopped.
    pub async fn session_infos(&self) -> Result<Vec<SessionInfo>, MailboxError> {
        Ok(self
            .sessions()
            .await?
            .iter()
            .map(SessionRef::info)
            .collect())
    }

    /// Stops accepting and closes every session.
    pub fn stop(&self) {
        let _ = self.addr.try_send(StopListener);
    }
}

/// Stop accepting and close every session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopListener;

impl Handler<StopListener> for Listener {
    type Result = ();
    fn handle(&mut self, _: StopListener, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Server {
    /// Binds `addr` and starts the listener on the current arbiter:
    /// `IP:PORT`, or `unix:/path` for a Unix-domain socket (no TLS, no
    /// quick channel; peers read as `127.0.0.1:0`; a stale socket file is
    /// replaced, and the file is removed when the listener stops).
    ///
    /// # Errors
    /// [`ServerError::Bind`] if the address cannot be bound.
    pub async fn start(self, addr: impl Into<String>) -> Result<ServerHandle, ServerError> {
        let stats = self.stats.clone();
        let listener = Listener::bind(self, &addr.into())?;
        let local = listener.local_addr();
        let addr = listener.start();
        Ok(ServerHandle::new(addr, local, stats))
    }

    /// A supervised child that binds `addr` each time it starts (restarts
    /// rebind the same address thanks to SO_REUSEADDR; use a fixed port).
    ///
    /// A listener that crashes (a panic, a kill) leaves its sessions
    /// running: the restarted instance serves them, and its clients see
    /// nothing. A listener stopped in order closes them.
    pub fn child_spec(
        self,
        id: impl Into<String>,
        addr: impl Into<String>,
    ) -> crate::ChildSpec<Listener> {
        let addr = addr.into();
        let table = Arc::<SessionTable>::default();
        crate::ChildSpec::try_new(id, move || {
            Listener::bind_with(self.clone(), &addr, table.clone())
        })
    }
}
