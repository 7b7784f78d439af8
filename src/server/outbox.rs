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
use std::task::Waker;

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

/// The queue and the requests, behind the session state's lock.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Encoded packets the pump has not taken yet.
    pub(crate) buf: BytesMut,
    /// Bytes the pump has taken and not written yet.
    pub(crate) taken: usize,
    /// Whether packets from other holders are accepted (after the
    /// handshake, until the session starts closing).
    pub(crate) open: bool,
    /// The pump is running: no need to wake it.
    pub(crate) pumping: bool,
    pub(crate) waker: Option<Waker>,
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
    /// Wakes the pump unless it is running (it looks at everything before
    /// it sleeps).
    pub(crate) fn wake(&mut self) {
        if !self.pumping
            && let Some(w) = &self.waker
        {
            w.wake_by_ref();
        }
    }

    /// Encodes `frame` under the bound `limit`; `internal` packets (the
    /// session's own replies) are accepted before the session opens.
    pub(crate) fn push(
        &mut self,
        frame: &Frame,
        internal: bool,
        limit: usize,
        policy: SlowPeer,
    ) -> Queued {
        if !(self.open || internal && self.abort.is_none() && !self.close) {
            return Queued::Refused;
        }
        let before = self.buf.len();
        if let Err(e) = frame::encode(frame, &mut self.buf, FrameCodec::tcp().max()) {
            tracing::warn!(error = %e, "packet not sent");
            self.buf.truncate(before);
            return Queued::Refused;
        }
        self.bound(before, limit, policy)
    }

    /// Appends an encoded packet under the bound.
    pub(crate) fn push_encoded(&mut self, packet: &[u8], limit: usize, policy: SlowPeer) -> Queued {
        if !self.open {
            return Queued::Refused;
        }
        let before = self.buf.len();
        self.buf.extend_from_slice(packet);
        self.bound(before, limit, policy)
    }

    /// Applies the bound to what was appended after `before` bytes.
    fn bound(&mut self, before: usize, limit: usize, policy: SlowPeer) -> Queued {
        let queued = self.buf.len() + self.taken;
        if queued > limit {
            self.buf.truncate(before);
            if before == 0 {
                // Give the allocation back, as the pump does.
                self.buf = BytesMut::new();
            }
            return match policy {
                SlowPeer::DropNewest => Queued::Dropped,
                SlowPeer::Disconnect => {
                    let unread = before + self.taken;
                    self.abort
                        .get_or_insert_with(|| format!("slow peer: {unread} bytes unread").into());
                    self.open = false;
                    self.wake();
                    Queued::Closing
                }
            };
        }
        if before == 0 {
            self.wake();
        }
        Queued::Yes
    }

    /// Queues a quick-channel datagram for the handlers; `false` if the
    /// inbox is full or the session is not open.
    pub(crate) fn deliver(&mut self, frame: Frame) -> bool {
        if !self.open || self.inbox.len() >= INBOX_LIMIT {
            return false;
        }
        self.inbox.push_back(frame);
        if self.inbox.len() == 1 {
            self.wake();
        }
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
    fn refuses_before_open_except_internal_packets() {
        let mut o = Outbox::default();
        assert_eq!(
            o.push(&packet(1), false, 1024, SlowPeer::DropNewest),
            Queued::Refused
        );
        assert_eq!(
            o.push(&packet(1), true, 1024, SlowPeer::DropNewest),
            Queued::Yes
        );
    }

    #[test]
    fn the_bound_counts_taken_bytes_and_applies_the_policy() {
        let mut o = Outbox {
            open: true,
            ..Outbox::default()
        };
        assert!(o.push(&packet(400), false, 1000, SlowPeer::DropNewest).ok());
        let len = o.buf.len();
        o.taken = len;
        o.buf.clear();
        assert!(o.push(&packet(400), false, 1000, SlowPeer::DropNewest).ok());
        assert_eq!(
            o.push(&packet(400), false, 1000, SlowPeer::DropNewest),
            Queued::Dropped
        );
        assert_eq!(o.buf.len(), len, "the refused packet was taken back");
        assert_eq!(
            o.push(&packet(400), false, 1000, SlowPeer::Disconnect),
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
