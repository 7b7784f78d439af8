//! What a server refused or dropped to stay within its bounds, counted
//! (readable with [`ServerHandle::stats`](super::ServerHandle::stats)) and
//! reported by a rate-limited warning.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a drop is warned about at most (per server).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The counters, shared by a server's listener (across restarts), its
/// sessions and its handle.
#[derive(Debug, Default)]
pub(crate) struct ServerStats {
    pub(crate) rpc_refused: AtomicU64,
    pub(crate) handler_timeouts: AtomicU64,
    pub(crate) datagrams_dropped: AtomicU64,
    pub(crate) quick_rejected: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) handshakes_refused: AtomicU64,
    pub(crate) subscriptions_refused: AtomicU64,
    /// Sessions open now.
    pub(crate) connections: AtomicU64,
    /// Sessions accepted since the server was built.
    pub(crate) accepted: AtomicU64,
    /// RPCs received.
    pub(crate) calls: AtomicU64,
    /// RPCs answered with a non-zero status.
    pub(crate) errors: AtomicU64,
    /// Milliseconds since [`epoch`] of the last warning, plus one.
    last_warning: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl ServerStats {
    /// Counts a reply: an error if its status is not 0.
    pub(crate) fn replied(&self, reply: &crate::wire::frame::Frame) {
        if !reply.status.is_ok() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one more in `counter` and warns, at most every 10 s.
    pub(crate) fn dropped(&self, counter: &AtomicU64, what: &str) {
        let total = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(epoch().elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_warning.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(total, "{what} (warned at most every {WARN_EVERY:?})");
        }
    }

    pub(crate) fn snapshot(&self) -> ServerCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerCounters {
            rpc_refused: get(&self.rpc_refused),
            handler_timeouts: get(&self.handler_timeouts),
            datagrams_dropped: get(&self.datagrams_dropped),
            quick_rejected: get(&self.quick_rejected),
            events_dropped: get(&self.events_dropped),
            handshakes_refused: get(&self.handshakes_refused),
            subscriptions_refused: get(&self.subscriptions_refused),
            connections: get(&self.connections),
            accepted: get(&self.accepted),
            calls: get(&self.calls),
            errors: get(&self.errors),
        }
    }
}

/// What a server refused or dropped since it was built, to stay within
/// its bounds ([`ServerOptions`](super::ServerOptions)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerCounters {
    /// RPCs answered with status 6 because the session had
    /// `max_inflight` requests in flight.
    pub rpc_refused: u64,
    /// RPCs answered with status 4 because their handler passed
    /// `handler_timeout`.
    pub handler_timeouts: u64,
    /// Client datagrams dropped (too many in flight, a full inbox or a
    /// dispatcher that could not take them).
    pub datagrams_dropped: u64,
    /// Quick-channel packets dropped: unknown client id, or not from the
    /// exact address the client announced (spoofed).
    pub quick_rejected: u64,
    /// Client events not delivered: the recipient's mailbox was full or it
    /// was not running.
    pub events_dropped: u64,
    /// Connections closed at once: their IP already had
    /// `handshakes_per_ip` handshakes under way.
    pub handshakes_refused: u64,
    /// SUBSCRIBE packets refused with status 6 (over
    /// `max_subscriptions`).
    pub subscriptions_refused: u64,
    /// Sessions open now.
    pub connections: u64,
    /// Sessions accepted (handshake begun) since the server was built.
    pub accepted: u64,
    /// RPCs received (refused ones included).
    pub calls: u64,
    /// RPCs answered with a non-zero status (refused, timed out, failed,
    /// not found…), for the routes a session runs itself
    /// ([`Server::commands`](super::Server::commands)).
    pub errors: u64,
}

impl ServerCounters {
    /// What was dropped or refused to stay within bounds, all counters
    /// together.
    pub fn dropped(&self) -> u64 {
        self.rpc_refused
            + self.handler_timeouts
            + self.datagrams_dropped
            + self.quick_rejected
            + self.events_dropped
            + self.handshakes_refused
            + self.subscriptions_refused
    }
}
