//! A session's bounded output queue, shared by the session's pump and by
//! every holder of a [`SessionRef`](super::SessionRef).
//!
//! Replies, publishes and datagrams are encoded straight into one buffer
//! under a short lock, so sending to a peer costs no actor message and no
//! task, from any thread. The bound is the session's `send_buffer`: a packet
//! that would take the queued bytes over it is refused and the
//! [`SlowPeer`] policy applies (close the connection, or drop and count).
//! The pump takes the whole buffer at once and writes it; whatever it has
//! taken and not written yet still counts against the bound.
//!
//! The same lock carries the few requests other holders make of the
//! session (close, abort, priority, quick-channel datagrams), so the
//! session never needs its mailbox for them and nothing waits on it.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::SlowPeer;
use crate::wire::codec::FrameCodec;
use crate::wire::frame::{self, Frame};

/// Most quick-channel datagrams waiting for a session's pump; more are
/// dropped and counted.
pub(crate) const INBOX_LIMIT: usize = 64;

/// What happened to a packet offered to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Queued for the peer.
    Yes,
    /// Refused: the session is not open, or the packet is too large.
    Refused,
    /// Over the bound: dropped and counted ([`SlowPeer::DropNewest`]).
    Dropped,
    /// Over the bound: the session is closing ([`SlowPeer::Disconnect`]).
    Closing,
}

impl Queued {
    pub(crate) fn ok(self) -> bool {
        self == Queued::Yes
    }
}

/// The queue and the requests, behind the session state's lock. Waking
/// the pump is the caller's part ([`SessionState::with_out`]).
///
/// [`SessionState::with_out`]: super::handle::SessionState::with_out
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Encoded packets the pump has not taken yet.
    pub(crate) buf: BytesMut,
    /// Whether packets from other holders are accepted (after the
    /// handshake, until the session starts closing).
    pub(crate) open: bool,
    /// Close at once, with this reason.
    pub(crate) abort: Option<Box<str>>,
    /// Close after flushing.
    pub(crate) close: bool,
    /// A new priority to apply to the socket.
    pub(crate) priority: Option<u8>,
    /// Quick-channel datagrams for this session's handlers.
    pub(crate) inbox: VecDeque<Frame>,
}

impl Outbox {
    /// Whether the pump has something to do besides writing.
    pub(crate) fn has_requests(&self) -> bool {
        self.abort.is_some() || self.close || self.priority.is_some() || !self.inbox.is_empty()
    }

    /// Encodes `frame` under the bound `limit`, `taken` bytes being held by
    /// the pump already.
    pub(crate) fn push(
        &mut self,
        frame: &Frame,
        limit: usize,
        policy: SlowPeer,
        taken: usize,
    ) -> Queued {
        if !self.open {
            return Queued::Refused;
        }
        let before = self.buf.len();
        if let Err(e) = frame::encode(frame, &mut self.buf, FrameCodec::tcp().max()) {
            tracing::warn!(error = %e, "packet not sent");
            self.buf.truncate(before);
            return Queued::Refused;
        }
        self.bound(before, limit, policy, taken)
    }

    /// Appends an encoded packet under the bound.
    pub(crate) fn push_encoded(
        &mut self,
        packet: &[u8],
        limit: usize,
        policy: SlowPeer,
        taken: usize,
    ) -> Queued {
        if !self.open {
            return Queued::Refused;
        }
        let before = self.buf.len();
        self.buf.extend_from_slice(packet);
        self.bound(before, limit, policy, taken)
    }

    /// Applies the bound to what was appended after `before` bytes.
    fn bound(&mut self, before: usize, limit: usize, policy: SlowPeer, taken: usize) -> Queued {
        if self.buf.len() + taken <= limit {
            return Queued::Yes;
        }
        self.buf.truncate(before);
        if before == 0 {
            // Give the allocation back, as the pump does.
            self.buf = BytesMut::new();
        }
        match policy {
            SlowPeer::DropNewest => Queued::Dropped,
            SlowPeer::Disconnect => {
                let unread = before + taken;
                self.abort
                    .get_or_insert_with(|| format!("slow peer: {unread} bytes unread").into());
                self.open = false;
                Queued::Closing
            }
        }
    }

    /// Queues a quick-channel datagram for the handlers; `false` if the
    /// inbox is full or the session is not open.
    pub(crate) fn deliver(&mut self, frame: Frame) -> bool {
        if !self.open || self.inbox.len() >= INBOX_LIMIT {
            return false;
        }
        self.inbox.push_back(frame);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::Kind;

    fn packet(n: usize) -> Frame {
        Frame::new(Kind::Publish).url("/t").data(vec![0u8; n])
    }

    #[test]
    fn refuses_before_open() {
        let mut o = Outbox::default();
        assert_eq!(
            o.push(&packet(1), 1024, SlowPeer::DropNewest, 0),
            Queued::Refused
        );
        o.open = true;
        assert_eq!(
            o.push(&packet(1), 1024, SlowPeer::DropNewest, 0),
            Queued::Yes
        );
    }

    #[test]
    fn the_bound_counts_taken_bytes_and_applies_the_policy() {
        let mut o = Outbox {
            open: true,
            ..Outbox::default()
        };
        assert!(o.push(&packet(400), 1000, SlowPeer::DropNewest, 0).ok());
        let taken = o.buf.len();
        o.buf.clear();
        assert!(o.push(&packet(400), 1000, SlowPeer::DropNewest, taken).ok());
        assert_eq!(
            o.push(&packet(400), 1000, SlowPeer::DropNewest, taken),
            Queued::Dropped
        );
        assert_eq!(o.buf.len(), taken, "the refused packet was taken back");
        assert_eq!(
            o.push(&packet(400), 1000, SlowPeer::Disconnect, taken),
            Queued::Closing
        );
        assert!(o.abort.is_some());
        assert!(!o.open);
    }

    #[test]
    fn the_inbox_is_bounded() {
        let mut o = Outbox {
            open: true,
            ..Outbox::default()
        };
        for _ in 0..INBOX_LIMIT {
            assert!(o.deliver(packet(1)));
        }
        assert!(!o.deliver(packet(1)));
    }
}
