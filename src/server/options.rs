//! Server settings: the bounds of every session and what happens past them.

use std::time::Duration;

use serde::Deserialize;

use super::auth::Throttle;

/// What a session does when its peer does not read fast enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowPeer {
    /// Close the connection (the default): the peer reconnects and
    /// resynchronises, and nobody else waits for it.
    #[default]
    Disconnect,
    /// Keep the connection and drop the packets that do not fit (counted in
    /// [`SessionInfo::dropped`](super::SessionInfo::dropped)).
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
