//! The server side of the network: a [`Listener`] actor accepts TCP (or TLS)
//! connections and starts one [`Session`] actor per peer (PyService's Socket,
//! done the actor way).
//!
//! A session reads frames as a stream and writes them through a sink, runs
//! the VSOA handshake (SERVINFO, password, 5 s limit), answers PINGECHO,
//! ignores NOOP, applies QOSSETUP priorities (IP_TOS), and hands every other
//! packet to the service's [`Inbound`] recipient together with a
//! [`SessionRef`] to reply through. Malformed input ends that session only,
//! with the reason logged. Output to a slow peer is bounded: see
//! [`SlowPeer`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), psvc::socket::ServerError> {
//! use psvc::socket::{Auth, Server};
//! let server = Server::new(Auth::password("secret"))
//!     .info(serde_json::json!({"name": "thermo"}))
//!     .start("127.0.0.1:3001")
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! # Ok(()) }
//! ```

pub mod auth;
pub(crate) mod io;
mod listener;
mod outbox;
mod session;
mod stats;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::Deserialize;

pub use auth::{Auth, Authenticator, Hello, Throttle, Verdict};
pub(crate) use listener::SessionTable;
pub use listener::{ListSessions, Listener, LocalAddr, ServerHandle, StopListener};
pub(crate) use session::subscription_urls;
pub use session::{Close, Outbound, Session, SessionRef, SetAuthed};
pub use stats::ServerCounters;
pub use tls::{ClientTls, ServerTls, TlsError};

use crate::frame::Frame;
use crate::supervisor::ChildRecipient;
use stats::ServerStats;

/// What a session does when its peer does not read fast enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowPeer {
    /// Close the connection (the default): the peer reconnects and
    /// resynchronises, and nobody else waits for it.
    #[default]
    Disconnect,
    /// Keep the connection and drop the packets that do not fit (counted in
    /// [`SessionInfo::dropped`]).
    DropNewest,
}

/// Server settings. The defaults suit a LAN service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Most connections at once; further peers wait in the kernel's backlog.
    pub max_connections: usize,
    /// A peer that has not completed the handshake by then is closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Output that makes no progress for this long marks a slow peer.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Most output bytes queued for one peer.
    pub send_buffer: usize,
    /// What happens to a slow peer.
    pub slow_peer: SlowPeer,
    /// TCP keepalive idle time (`None`: off).
    #[serde(with = "humantime_serde")]
    pub tcp_keepalive: Option<Duration>,
    /// TCP_NODELAY (on by default: requests are small and latency matters).
    pub nodelay: bool,
    /// Failed-handshake throttling per IP address.
    #[serde(skip)]
    pub throttle: Throttle,
    /// Mailbox capacity of each session actor (the session takes few
    /// messages: packets for the peer go through its output queue).
    pub session_mailbox: usize,
    /// Most RPCs (and datagram handlers) in flight per session; past it an
    /// RPC is answered with status 6 (no memory) and a datagram dropped.
    pub max_inflight: usize,
    /// Longest a handler may take; past it the caller gets status 4 (no
    /// responding) and the handler is cancelled.
    #[serde(with = "humantime_serde")]
    pub handler_timeout: Duration,
    /// Most URLs one client may subscribe to; a SUBSCRIBE past it is
    /// answered with status 6.
    pub max_subscriptions: usize,
    /// Most handshakes under way from one IP address; further connections
    /// from it are closed at once (parallel connections do not multiply
    /// password guesses).
    pub handshakes_per_ip: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(5),
            send_timeout: Duration::from_secs(2),
            send_buffer: 1024 * 1024,
            slow_peer: SlowPeer::Disconnect,
            tcp_keepalive: Some(Duration::from_secs(60)),
            nodelay: true,
            throttle: Throttle::default(),
            session_mailbox: 64,
            max_inflight: 1024,
            handler_timeout: Duration::from_secs(60),
            max_subscriptions: 1024,
            handshakes_per_ip: 16,
        }
    }
}

/// A connected peer as the service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// Client id: random, unique per listener (sent in SERVINFO).
    pub id: u32,
    /// The session's identity, unique in the process across listeners
    /// and restarts ([`SessionRef::key`]).
    pub key: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// Priority 0–7 (QOSSETUP).
    pub priority: u8,
    /// VSOA's `authed`: whether publishes reach this client.
    pub authed: bool,
    /// The client's UDP quick-channel port, if it announced one.
    pub quick_port: Option<u16>,
    /// URLs the client subscribed to, sorted.
    pub subscriptions: Vec<String>,
    /// Packets dropped by the [`SlowPeer::DropNewest`] policy.
    pub dropped: u64,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// A client connected or left (VSOA `onclient`).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum ClientEvent {
    /// Handshake completed.
    Connected(SessionInfo),
    /// Connection closed, with the reason.
    Disconnected {
        /// The session as it was at the end.
        info: SessionInfo,
        /// Why it ended ("peer closed", "malformed packet: …", …).
        reason: String,
    },
    /// The client subscribed to a URL.
    Subscribed {
        /// Client id.
        id: u32,
        /// The URL.
        url: String,
    },
    /// The client unsubscribed from a URL.
    Unsubscribed {
        /// Client id.
        id: u32,
        /// The URL.
        url: String,
    },
}

/// A packet from an authenticated client that the transport does not handle
/// itself: RPC and DATAGRAM (to the [`Server::commander`] recipient),
/// SUBSCRIBE/UNSUBSCRIBE after the session has recorded them, and PUBLISH
/// (to the [`Server::broker`] recipient).
#[derive(Debug, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct Inbound {
    /// Who sent it; reply through it.
    pub session: SessionRef,
    /// The packet.
    pub frame: Frame,
    /// Whether it came over the quick UDP channel.
    pub quick: bool,
}

impl Inbound {
    /// A packet from `session` over TCP.
    pub fn new(session: SessionRef, frame: Frame) -> Self {
        Inbound {
            session,
            frame,
            quick: false,
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The listener actor stopped before reporting its address.
    #[error("listener stopped during start")]
    Stopped,
}

/// Builds a VSOA-compatible server: authentication (required), info,
/// options, TLS and the recipients of its events and packets.
#[derive(Debug, Clone)]
pub struct Server {
    pub(crate) auth: Auth,
    pub(crate) info: Arc<str>,
    pub(crate) options: ServerOptions,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) events: Vec<ChildRecipient<ClientEvent>>,
    pub(crate) commander: Option<ChildRecipient<Inbound>>,
    pub(crate) commands: Option<crate::commander::Commands>,
    pub(crate) broker: Option<ChildRecipient<Inbound>>,
    pub(crate) quick: bool,
    /// Shared by every listener instance built from this server.
    pub(crate) stats: Arc<ServerStats>,
}

impl Server {
    /// A server with an explicit authentication choice and default options.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            info: Arc::from("{}"),
            options: ServerOptions::default(),
            tls: None,
            events: Vec::new(),
            commander: None,
            commands: None,
            broker: None,
            quick: true,
            stats: Arc::default(),
        }
    }

    /// Server info sent to clients in SERVINFO (JSON).
    #[must_use]
    pub fn info(mut self, info: serde_json::Value) -> Self {
        self.info = Arc::from(info.to_string());
        self
    }

    /// Replaces the options.
    #[must_use]
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves TLS instead of plain TCP.
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Receives connect/disconnect/subscribe events. Give a supervised
    /// child's [`ChildRef::recipient`](crate::ChildRef::recipient) (it
    /// reaches every restarted instance) or a plain actix `Recipient`.
    /// Events are never waited for: one that finds the mailbox full or
    /// the child restarting is dropped and counted
    /// ([`ServerCounters::events_dropped`]).
    #[must_use]
    pub fn on_client(mut self, recipient: impl Into<ChildRecipient<ClientEvent>>) -> Self {
        self.events.push(recipient.into());
        self
    }

    /// Receives RPC and datagram packets (a
    /// [`Commander`](crate::commander::Commander)); a supervised child's
    /// [`ChildRef::recipient`](crate::ChildRef::recipient) survives its
    /// restarts. Without one, RPCs are answered with status 3 (invalid
    /// URL) and datagrams are dropped; while it restarts, RPCs are
    /// answered with status 4 (no responding).
    #[must_use]
    pub fn commander(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        self.commander = Some(recipient.into());
        self
    }

    /// Serves RPCs and client datagrams from these routes
    /// ([`Commander::commands`](crate::commander::Commander::commands)):
    /// each session runs the handler itself, so a handler that does not
    /// wait is answered with no message passed at all; one that waits runs
    /// as a task and its reply is queued to the session. Takes precedence
    /// over [`Server::commander`].
    #[must_use]
    pub fn commands(mut self, commands: crate::commander::Commands) -> Self {
        self.commands = Some(commands);
        self
    }

    /// Receives SUBSCRIBE/UNSUBSCRIBE (after the session recorded them:
    /// the URLs that changed, as a JSON list in param) and client PUBLISH
    /// packets (a [`Broker`](crate::broker::Broker)). Give a supervised
    /// broker's [`ChildRef::recipient`](crate::ChildRef::recipient): a
    /// restarted Broker rebuilds its index from the live sessions, so
    /// connected clients see nothing of the restart.
    #[must_use]
    pub fn broker(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        self.broker = Some(recipient.into());
        self
    }

    /// Receives every packet the transport does not handle itself (RPC,
    /// DATAGRAM, PUBLISH, SUBSCRIBE, UNSUBSCRIBE): one dispatcher of your
    /// own instead of a Commander and a Broker.
    #[must_use]
    pub fn inbound(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        let recipient = recipient.into();
        self.commander = Some(recipient.clone());
        self.broker = Some(recipient);
        self
    }

    /// Whether to open the quick UDP channel on the server's port (on by
    /// default; never under TLS, as in VSOA).
    #[must_use]
    pub fn quick(mut self, on: bool) -> Self {
        self.quick = on;
        self
    }

    /// Binds `addr` and starts the listener on the current arbiter.
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
