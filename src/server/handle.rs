//! Sessions as every holder sees them: [`SessionRef`] (read the state,
//! send packets into the bounded output queue, close), the state behind it
//! and the table of a listener's live sessions.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use actix::prelude::*;
use futures::task::AtomicWaker;
use parking_lot::Mutex;

use super::options::SlowPeer;
use super::outbox::{Outbox, Queued};
use super::stats::ServerStats;
use crate::wire::frame::{Flags, Frame, Kind, Status};

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

/// What every holder of a [`SessionRef`] can read about the session, and
/// its output queue.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) id: u32,
    /// Unique in the process, across listeners and restarts.
    pub(crate) key: u64,
    pub(crate) peer: SocketAddr,
    /// The server address the peer connected to (streams bind there).
    pub(crate) local_ip: IpAddr,
    pub(crate) tls: bool,
    /// The server's quick UDP socket (none under TLS or when disabled).
    pub(crate) quick: Option<Arc<tokio::net::UdpSocket>>,
    pub(crate) priority: AtomicU8,
    pub(crate) authed: AtomicBool,
    /// Handshake completed.
    pub(crate) ready: AtomicBool,
    /// The session actor is running.
    pub(crate) alive: AtomicBool,
    /// 0 = none.
    pub(crate) quick_port: AtomicU32,
    pub(crate) dropped: AtomicU64,
    pub(crate) subscriptions: Mutex<BTreeSet<String>>,
    pub(crate) out: Mutex<Outbox>,
    /// `out.buf`'s length, readable without the lock.
    pub(crate) buffered: AtomicUsize,
    /// Bytes the pump holds and has not written (they count against the
    /// bound too).
    pub(crate) taken: AtomicUsize,
    /// Set with a request in `out` (abort, close, priority, datagrams).
    pub(crate) requested: AtomicBool,
    /// The pump is running: it looks at everything before it sleeps.
    pub(crate) pumping: AtomicBool,
    /// The pump's waker.
    pub(crate) waker: AtomicWaker,
    /// Signalled when the writer made room, for [`SessionRef::send_wait`].
    pub(crate) space: tokio::sync::Notify,
    /// Callers waiting for room.
    pub(crate) waiters: AtomicUsize,
    pub(crate) send_buffer: usize,
    pub(crate) send_timeout: std::time::Duration,
    pub(crate) slow_peer: SlowPeer,
    /// The listener's table this session is in (the Broker rebuilds its
    /// index from the live sessions of the tables it has seen).
    pub(crate) table: Weak<SessionTable>,
    pub(crate) stats: Arc<ServerStats>,
}

/// Process-wide session identities.
pub(crate) static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

impl SessionState {
    pub(crate) fn info(&self) -> SessionInfo {
        let quick = self.quick_port.load(Ordering::Relaxed);
        SessionInfo {
            id: self.id,
            key: self.key,
            peer: self.peer,
            priority: self.priority.load(Ordering::Relaxed),
            authed: self.authed.load(Ordering::Relaxed),
            quick_port: u16::try_from(quick).ok().filter(|p| *p != 0),
            subscriptions: self.subscriptions.lock().iter().cloned().collect(),
            dropped: self.dropped.load(Ordering::Relaxed),
            tls: self.tls,
        }
    }

    /// Runs `f` on the output queue (with the bytes the pump holds), then
    /// wakes the pump if `f` gave it output to write or a request.
    ///
    /// Wake-ups are not lost: this publishes `buffered`/`requested` and
    /// then reads `pumping`; the pump clears `pumping` and then reads
    /// `buffered`/`requested` (all `SeqCst`), so one of them sees the other.
    pub(crate) fn with_out<R>(&self, f: impl FnOnce(&mut Outbox, usize) -> R) -> R {
        let taken = self.taken.load(Ordering::SeqCst);
        let mut out = self.out.lock();
        let had = out.buf.len();
        let result = f(&mut out, taken);
        let len = out.buf.len();
        let requests = out.has_requests();
        self.buffered.store(len, Ordering::SeqCst);
        drop(out);
        if requests {
            self.requested.store(true, Ordering::SeqCst);
        }
        if (had == 0 && len > 0 || requests) && !self.pumping.load(Ordering::SeqCst) {
            self.waker.wake();
        }
        result
    }

    /// Offers `frame` to the output queue under the slow-peer policy.
    pub(crate) fn enqueue(&self, frame: &Frame) -> Queued {
        let queued =
            self.with_out(|out, taken| out.push(frame, self.send_buffer, self.slow_peer, taken));
        self.count(queued)
    }

    pub(crate) fn count(&self, queued: Queued) -> Queued {
        if queued == Queued::Dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }
}

/// A handle on a session: read its state, send it packets, close it.
/// Cheap to clone (one reference count), `Send` and `Sync`.
///
/// Sending never goes through a mailbox: the packet is encoded into the
/// session's bounded output queue and the session's writer is woken. The
/// bound is [`ServerOptions::send_buffer`](super::ServerOptions) and the
/// [`SlowPeer`] policy says what happens past it.
#[derive(Debug, Clone)]
pub struct SessionRef {
    state: Arc<SessionState>,
}

impl SessionRef {
    pub(crate) fn new(state: Arc<SessionState>) -> Self {
        Self { state }
    }

    pub(crate) fn state(&self) -> &Arc<SessionState> {
        &self.state
    }

    /// Client id (random, unique among the listener's live sessions; sent
    /// in SERVINFO).
    pub fn id(&self) -> u32 {
        self.state.id
    }
    /// The session's identity: unique in the process, across listeners and
    /// listener restarts (client ids are unique per listener only).
    pub fn key(&self) -> u64 {
        self.state.key
    }
    /// Peer address.
    pub fn peer(&self) -> SocketAddr {
        self.state.peer
    }
    /// Priority 0–7.
    pub fn priority(&self) -> u8 {
        self.state.priority.load(Ordering::Relaxed)
    }
    /// VSOA's `authed` flag.
    pub fn authed(&self) -> bool {
        self.state.authed.load(Ordering::Relaxed)
    }
    /// A snapshot of the session.
    pub fn info(&self) -> SessionInfo {
        self.state.info()
    }
    /// The URLs the client is subscribed to, sorted.
    pub fn subscriptions(&self) -> Vec<String> {
        self.state.subscriptions.lock().iter().cloned().collect()
    }
    /// Whether the session is still running.
    pub fn connected(&self) -> bool {
        self.state.alive.load(Ordering::Acquire)
    }
    /// The server address the peer connected to.
    pub fn local_ip(&self) -> IpAddr {
        self.state.local_ip
    }
    /// Where quick-channel packets for this peer go: its address with the
    /// UDP port it announced; `None` if it announced none or under TLS.
    pub fn quick_addr(&self) -> Option<SocketAddr> {
        self.state.quick.as_ref()?;
        let port = u16::try_from(self.state.quick_port.load(Ordering::Relaxed)).ok()?;
        (port != 0).then(|| SocketAddr::new(self.state.peer.ip(), port))
    }

    /// Sends `frame` over the quick UDP channel, without waiting. `false`
    /// if the peer has no quick channel, the packet is over the UDP limit
    /// (65,507 bytes) or the socket buffer is full (UDP may drop anyway).
    pub fn send_quick(&self, frame: &Frame) -> bool {
        let mut buf = bytes::BytesMut::new();
        if crate::wire::frame::encode(frame, &mut buf, crate::wire::frame::MAX_UDP_PACKET).is_err()
        {
            return false;
        }
        self.send_quick_encoded(&buf)
    }

    /// Sends an encoded packet over the quick channel.
    pub(crate) fn send_quick_encoded(&self, packet: &[u8]) -> bool {
        match (&self.state.quick, self.quick_addr()) {
            (Some(socket), Some(to)) => socket.try_send_to(packet, to).is_ok(),
            _ => false,
        }
    }

    /// Queues `frame` for the peer, from any thread, without waiting.
    /// `false` if it was not queued: the session is not connected (or has
    /// not completed its handshake), the packet is over the packet limit,
    /// or the output queue is full, in which case the [`SlowPeer`] policy
    /// applies (the session closes, or the packet is dropped and counted
    /// in [`SessionInfo::dropped`]).
    pub fn push(&self, frame: Frame) -> bool {
        self.state.enqueue(&frame).ok()
    }

    /// Queues an already encoded packet (a publish encoded once for all
    /// its subscribers), like [`SessionRef::push`].
    pub(crate) fn push_encoded(&self, packet: &[u8]) -> bool {
        let state = &self.state;
        let queued = state.with_out(|out, taken| {
            out.push_encoded(packet, state.send_buffer, state.slow_peer, taken)
        });
        state.count(queued).ok()
    }

    /// Queues `frame` for the peer without waiting, and without applying
    /// the slow-peer policy: a full queue hands the frame back.
    ///
    /// # Errors
    /// The output queue is full ([`SendError::Full`]) or the session is
    /// not open ([`SendError::Closed`]); the frame comes back.
    pub fn send(&self, frame: Frame) -> Result<(), SendError<Frame>> {
        let state = &self.state;
        let queued = state.with_out(|out, taken| {
            out.push(&frame, state.send_buffer, SlowPeer::DropNewest, taken)
        });
        match queued {
            Queued::Yes => Ok(()),
            Queued::Dropped => Err(SendError::Full(frame)),
            Queued::Refused | Queued::Closing => Err(SendError::Closed(frame)),
        }
    }

    /// Queues `frame`, waiting while the output queue is full (for the
    /// writer to make room, at most the session's `send_timeout`; then the
    /// [`SlowPeer`] policy applies). `Ok(false)` if the session refused it
    /// (too large, or dropped under [`SlowPeer::DropNewest`]).
    ///
    /// # Errors
    /// The session is gone.
    pub async fn send_wait(&self, frame: Frame) -> Result<bool, MailboxError> {
        let state = &self.state;
        let deadline = tokio::time::Instant::now() + state.send_timeout;
        state.waiters.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&state.waiters);
        loop {
            let notified = state.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let queued = state.with_out(|out, taken| {
                out.push(&frame, state.send_buffer, SlowPeer::DropNewest, taken)
            });
            match queued {
                Queued::Yes => return Ok(true),
                Queued::Dropped => {}
                Queued::Refused | Queued::Closing if !self.connected() => {
                    return Err(MailboxError::Closed);
                }
                Queued::Refused | Queued::Closing => return Ok(false),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(self.push(frame));
            }
        }
    }

    /// Sets `authed` (who receives publishes).
    pub fn set_authed(&self, authed: bool) {
        self.state.authed.store(authed, Ordering::Relaxed);
    }

    /// Sets the priority (0–7, clamped): IP_TOS on the socket, and a
    /// QOSSETUP packet tells the client to do the same.
    ///
    /// # Errors
    /// The session is gone.
    pub fn set_priority(&self, priority: u8) -> Result<(), SendError<()>> {
        if !self.connected() {
            return Err(SendError::Closed(()));
        }
        let priority = priority.min(7);
        self.state.priority.store(priority, Ordering::Relaxed);
        // QOSSETUP is queued now, in order with what is sent next; the
        // session applies IP_TOS when it next runs.
        let qos = Frame::new(Kind::QosSetup)
            .flags(Flags::REPLY)
            .status(Status(priority));
        let state = &self.state;
        let queued = state.with_out(|out, taken| {
            out.priority = Some(priority);
            out.push(&qos, state.send_buffer, state.slow_peer, taken)
        });
        state.count(queued);
        Ok(())
    }

    /// Closes the connection after what is queued has been written.
    pub fn close(&self) {
        self.state.with_out(|out, _| {
            out.close = true;
            out.open = false;
        });
    }

    /// Hands a quick-channel datagram to the session's handlers; `false`
    /// if its inbox is full (the datagram is dropped).
    pub(crate) fn deliver_quick(&self, frame: Frame) -> bool {
        self.state.with_out(|out, _| out.deliver(frame))
    }
}

/// Counts a waiting caller while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The live sessions of one listener (those still in their handshake
/// too), shared with the Broker, which rebuilds its index from them when
/// it restarts.
#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    sessions: Mutex<HashMap<u32, Arc<SessionState>>>,
}

impl SessionTable {
    /// Adds the session `make` builds for a new random client id, unique
    /// in this table (ids are not guessable: the quick channel and the
    /// broker never trust one alone).
    pub(crate) fn add(&self, make: impl FnOnce(u32) -> Arc<SessionState>) -> Arc<SessionState> {
        let mut sessions = self.sessions.lock();
        let mut id = random_id();
        // At most `max_connections` ids are taken out of 2^32 - 1: a free
        // one is found in a few tries; the scan is a bounded fallback.
        for _ in 0..64 {
            if id != 0 && !sessions.contains_key(&id) {
                break;
            }
            id = random_id();
        }
        while id == 0 || sessions.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        let state = make(id);
        sessions.insert(id, state.clone());
        state
    }

    pub(crate) fn remove(&self, id: u32) {
        self.sessions.lock().remove(&id);
    }

    /// Handles on the sessions that completed their handshake, by id.
    pub(crate) fn sessions(&self) -> Vec<SessionRef> {
        let mut list: Vec<SessionRef> = self
            .sessions
            .lock()
            .values()
            .filter(|s| s.ready.load(Ordering::Acquire))
            .map(|s| SessionRef::new(s.clone()))
            .collect();
        list.sort_by_key(SessionRef::id);
        list
    }

    /// The session with client id `id`, if it completed its handshake.
    pub(crate) fn session(&self, id: u32) -> Option<SessionRef> {
        let sessions = self.sessions.lock();
        let state = sessions.get(&id)?;
        state
            .ready
            .load(Ordering::Acquire)
            .then(|| SessionRef::new(state.clone()))
    }
}

/// A random client id from the operating system's generator.
fn random_id() -> u32 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => u32::from_ne_bytes(bytes),
        // No OS randomness (never seen on Linux): still unique, less secret.
        Err(_) => fastrand::u32(1..),
    }
}
