//! What the transport tells the service: client events, and the packets it
//! does not handle itself.

use actix::prelude::*;

use super::handle::{SessionInfo, SessionRef};
use crate::wire::frame::Frame;

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
/// itself: RPC and DATAGRAM (to the [`Server::commander`](super::Server::commander) recipient),
/// SUBSCRIBE/UNSUBSCRIBE after the session has recorded them, and PUBLISH
/// (to the [`Server::broker`](super::Server::broker) recipient).
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
