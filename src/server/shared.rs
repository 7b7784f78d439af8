//! What a listener and its sessions share (all on one arbiter): the
//! server's settings, the throttle, the session table, the per-IP
//! handshake count.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use super::auth::Failures;
use super::builder::Server;
use super::events::ClientEvent;
use super::handle::{SessionRef, SessionTable};

/// State shared by a listener and its sessions (all on one arbiter).
pub(crate) struct Shared {
    pub(crate) server: Server,
    pub(crate) failures: Failures,
    pub(crate) table: Arc<SessionTable>,
    /// Handshakes under way, per IP address.
    pub(crate) handshakes: RefCell<HashMap<IpAddr, usize>>,
    /// Set when the listener stops: sessions still in their handshake
    /// close instead of joining.
    pub(crate) stopped: Cell<bool>,
    /// The quick UDP channel, once the listener has started.
    pub(crate) quick: OnceCell<Arc<tokio::net::UdpSocket>>,
}

impl Shared {
    /// Handles on the live sessions.
    pub(crate) fn sessions(&self) -> Vec<SessionRef> {
        self.table.sessions()
    }

    /// Delivers an event to every subscriber, never blocking the session:
    /// a recipient that cannot take it now misses it (counted).
    pub(crate) fn emit(&self, event: ClientEvent) {
        for recipient in &self.server.events {
            if recipient.tell(event.clone()).is_err() {
                let stats = &self.server.stats;
                stats.dropped(
                    &stats.events_dropped,
                    "client event dropped: recipient full or down",
                );
            }
        }
    }

    /// A place in the per-IP handshake limit, or `None` if `ip` has
    /// `handshakes_per_ip` handshakes under way already.
    pub(crate) fn begin_handshake(self: &Rc<Self>, ip: IpAddr) -> Option<HandshakeSlot> {
        let mut handshakes = self.handshakes.borrow_mut();
        let n = handshakes.entry(ip).or_insert(0);
        if *n >= self.server.options.handshakes_per_ip.max(1) {
            return None;
        }
        *n += 1;
        Some(HandshakeSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// One handshake under way; freed when dropped.
pub(crate) struct HandshakeSlot {
    shared: Rc<Shared>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut handshakes = self.shared.handshakes.borrow_mut();
        if let Some(n) = handshakes.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                handshakes.remove(&self.ip);
            }
        }
    }
}
