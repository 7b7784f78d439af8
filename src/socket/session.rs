//! One peer: handshake, keepalive, priority, bounded output, and handing
//! application packets to the service.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use actix::prelude::*;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;

use super::auth::{Hello, Verdict};
use super::io::{Transport, set_priority_tos};
use super::listener::Shared;
use super::{ClientEvent, Inbound, SessionInfo, SlowPeer};
use crate::codec::{FrameCodec, FrameStream};
use crate::frame::{Flags, Frame, Kind, Status};

/// What every holder of a [`SessionRef`] can read about the session.
#[derive(Debug)]
pub(crate) struct SessionState {
    pub(crate) id: u32,
    pub(crate) peer: SocketAddr,
    /// The server address the peer connected to (streams bind there).
    pub(crate) local_ip: IpAddr,
    pub(crate) tls: bool,
    /// The server's quick UDP socket (none under TLS or when disabled).
    pub(crate) quick: Option<Arc<tokio::net::UdpSocket>>,
    pub(crate) priority: AtomicU8,
    pub(crate) authed: AtomicBool,
    /// 0 = none.
    pub(crate) quick_port: AtomicU32,
    pub(crate) dropped: AtomicU64,
    pub(crate) subscriptions: Mutex<Vec<String>>,
}

impl SessionState {
    pub(crate) fn info(&self) -> SessionInfo {
        let quick = self.quick_port.load(Ordering::Relaxed);
        SessionInfo {
            id: self.id,
            peer: self.peer,
            priority: self.priority.load(Ordering::Relaxed),
            authed: self.authed.load(Ordering::Relaxed),
            quick_port: u16::try_from(quick).ok().filter(|p| *p != 0),
            subscriptions: self.subscriptions.lock().clone(),
            dropped: self.dropped.load(Ordering::Relaxed),
            tls: self.tls,
        }
    }
}

/// A handle on a session: read its state, send it packets, close it.
/// Cheap to clone (one reference count) and `Send`.
#[derive(Debug, Clone)]
pub struct SessionRef {
    inner: Arc<RefInner>,
}

/// What a [`SessionRef`] shares: cloning an actix `Addr` allocates, so
/// handles share one.
#[derive(Debug)]
struct RefInner {
    state: Arc<SessionState>,
    addr: Addr<Session>,
}

impl SessionRef {
    pub(crate) fn new(state: Arc<SessionState>, addr: Addr<Session>) -> Self {
        Self {
            inner: Arc::new(RefInner { state, addr }),
        }
    }

    /// Client id.
    pub fn id(&self) -> u32 {
        self.inner.state.id
    }
    /// Peer address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.state.peer
    }
    /// Priority 0–7.
    pub fn priority(&self) -> u8 {
        self.inner.state.priority.load(Ordering::Relaxed)
    }
    /// VSOA's `authed` flag.
    pub fn authed(&self) -> bool {
        self.inner.state.authed.load(Ordering::Relaxed)
    }
    /// A snapshot of the session.
    pub fn info(&self) -> SessionInfo {
        self.inner.state.info()
    }
    /// Whether the session actor is still running.
    pub fn connected(&self) -> bool {
        self.inner.addr.connected()
    }
    /// The server address the peer connected to.
    pub fn local_ip(&self) -> IpAddr {
        self.inner.state.local_ip
    }
    /// Where quick-channel packets for this peer go: its address with the
    /// UDP port it announced; `None` if it announced none or under TLS.
    pub fn quick_addr(&self) -> Option<SocketAddr> {
        self.inner.state.quick.as_ref()?;
        let port = u16::try_from(self.inner.state.quick_port.load(Ordering::Relaxed)).ok()?;
        (port != 0).then(|| SocketAddr::new(self.inner.state.peer.ip(), port))
    }

    /// Sends `frame` over the quick UDP channel, without waiting. `false`
    /// if the peer has no quick channel, the packet is over the UDP limit
    /// (65,507 bytes) or the socket buffer is full (UDP may drop anyway).
    pub fn send_quick(&self, frame: &Frame) -> bool {
        let mut buf = bytes::BytesMut::new();
        if crate::frame::encode(frame, &mut buf, crate::frame::MAX_UDP_PACKET).is_err() {
            return false;
        }
        self.send_quick_encoded(&buf)
    }

    /// Sends an encoded packet over the quick channel.
    pub(crate) fn send_quick_encoded(&self, packet: &[u8]) -> bool {
        match (&self.inner.state.quick, self.quick_addr()) {
            (Some(socket), Some(to)) => socket.try_send_to(packet, to).is_ok(),
            _ => false,
        }
    }

    /// Queues `frame` regardless of the mailbox capacity: the session's
    /// output limit and [`SlowPeer`] policy bound what a slow peer costs.
    /// For replies and publishes, which must not be lost to a momentarily
    /// full mailbox.
    #[allow(clippy::disallowed_methods)] // bounded by the output limit, see above
    pub fn push(&self, frame: Frame) {
        self.inner.addr.do_send(Outbound(frame));
    }

    /// Queues an already encoded packet (a publish encoded once for all
    /// its subscribers), like [`SessionRef::push`].
    #[allow(clippy::disallowed_methods)] // bounded by the output limit
    pub(crate) fn push_encoded(&self, packet: Bytes) {
        self.inner.addr.do_send(Encoded(packet));
    }

    /// Queues `frame` for the peer without waiting.
    ///
    /// # Errors
    /// The session's mailbox is full (the frame comes back) or closed.
    pub fn send(&self, frame: Frame) -> Result<(), SendError<Frame>> {
        self.inner
            .addr
            .try_send(Outbound(frame))
            .map_err(|e| match e {
                SendError::Full(Outbound(f)) => SendError::Full(f),
                SendError::Closed(Outbound(f)) => SendError::Closed(f),
            })
    }

    /// Queues `frame`, waiting for mailbox room; `Ok(false)` if the session
    /// refused it (too large, or dropped under [`SlowPeer`]).
    ///
    /// # Errors
    /// The session is gone.
    pub async fn send_wait(&self, frame: Frame) -> Result<bool, MailboxError> {
        self.inner.addr.send(Outbound(frame)).await
    }

    /// Sets `authed` (who receives publishes).
    pub fn set_authed(&self, authed: bool) {
        self.inner.state.authed.store(authed, Ordering::Relaxed);
    }

    /// Sets the priority (0–7, clamped): IP_TOS on the socket, and a
    /// QOSSETUP packet tells the client to do the same.
    ///
    /// # Errors
    /// The session is gone or its mailbox is full.
    pub fn set_priority(&self, priority: u8) -> Result<(), SendError<()>> {
        self.inner
            .addr
            .try_send(SetPriority(priority.min(7)))
            .map_err(|e| match e {
                SendError::Full(_) => SendError::Full(()),
                SendError::Closed(_) => SendError::Closed(()),
            })
    }

    /// Closes the connection after what is queued has been written.
    pub fn close(&self) {
        let _ = self.inner.addr.try_send(Close);
    }
}

/// Write a packet to the peer. Answers `false` when the packet was refused
/// (larger than the packet limit, or dropped by [`SlowPeer::DropNewest`]).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Outbound(pub Frame);

/// An encoded packet to write (see [`SessionRef::push_encoded`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Encoded(pub(crate) Bytes);

/// Close the connection once the output is flushed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close;

/// Set VSOA's `authed` flag.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetAuthed(pub bool);

/// Set the priority (see [`SessionRef::set_priority`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct SetPriority(pub(crate) u8);

/// The actor serving one connected peer.
///
/// Everything a connection needs lives inline in this struct (transport,
/// read state, output queue), driven by one pump future inside the
/// actor's context: an idle session is one tokio task, one mailbox and the
/// socket, with no read buffer and no write buffer allocated.
pub struct Session {
    state: Arc<SessionState>,
    shared: Rc<Shared>,
    /// The transport, read through the frame decoder.
    conn: FrameStream<Transport>,
    /// Encoded output not yet accepted by the socket.
    out: bytes::BytesMut,
    /// Bytes the socket has accepted so far.
    written: u64,
    /// `written` when the pending stall check was scheduled, or
    /// [`NO_MARK`] when none is.
    stall_mark: u64,
    /// The pump's waker, to flush output queued outside of it.
    waker: Option<std::task::Waker>,
    /// The handle given to handlers, made on first use and shared.
    me: Option<SessionRef>,
    pumping: bool,
    phase: Phase,
    reason: Option<Box<str>>,
    _permit: OwnedSemaphorePermit,
}

/// `stall_mark` when no stall check is pending.
const NO_MARK: u64 = u64::MAX;

/// Frames handled per wake-up before the session yields to its mailbox.
const READ_BUDGET: usize = 64;

/// Drives a session's socket: reads and handles frames, writes queued output.
struct Pump;

impl ActorFuture<Session> for Pump {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if !act
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(task.waker()))
        {
            act.waker = Some(task.waker().clone());
        }
        act.pumping = true;
        let poll = act.pump(ctx, task);
        act.pumping = false;
        poll
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for SERVINFO.
    Hello,
    /// A throttled SERVINFO is waiting to be judged.
    Judging,
    Ready,
    /// Flushing, then closing; input is ignored.
    Closing,
}

impl Session {
    pub(crate) fn spawn(
        shared: Rc<Shared>,
        stream: Transport,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let tls = !matches!(stream, Transport::Plain(_));
        let local_ip = stream
            .tcp()
            .local_addr()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let quick = if tls {
            None
        } else {
            shared.quick.get().cloned()
        };
        let id = shared.next_id();
        Session::create(move |ctx| {
            ctx.set_mailbox_capacity(shared.server.options.session_mailbox);
            ctx.spawn(Pump);
            let state = Arc::new(SessionState {
                id,
                peer,
                local_ip,
                tls,
                quick,
                priority: AtomicU8::new(0),
                authed: AtomicBool::new(false),
                quick_port: AtomicU32::new(0),
                dropped: AtomicU64::new(0),
                subscriptions: Mutex::new(Vec::new()),
            });
            Session {
                state,
                shared,
                conn: FrameStream::new(stream, FrameCodec::tcp()),
                out: bytes::BytesMut::new(),
                written: 0,
                stall_mark: NO_MARK,
                waker: None,
                me: None,
                pumping: false,
                phase: Phase::Hello,
                reason: None,
                _permit: permit,
            }
        });
    }

    fn session_ref(&mut self, ctx: &Context<Self>) -> SessionRef {
        self.me
            .get_or_insert_with(|| SessionRef::new(self.state.clone(), ctx.address()))
            .clone()
    }

    /// Ends the session at once (output not flushed).
    fn abort(&mut self, reason: String, ctx: &mut Context<Self>) {
        tracing::warn!(id = self.state.id, peer = %self.state.peer, %reason, "closing connection");
        self.reason.get_or_insert(reason.into());
        self.phase = Phase::Closing;
        ctx.stop();
    }

    /// Flushes what is queued, then closes.
    fn close_after_flush(&mut self, reason: String) {
        tracing::debug!(id = self.state.id, peer = %self.state.peer, %reason, "closing connection");
        self.reason.get_or_insert(reason.into());
        self.phase = Phase::Closing;
        self.wake_pump();
    }

    fn wake_pump(&self) {
        if !self.pumping
            && let Some(w) = &self.waker
        {
            w.wake_by_ref();
        }
    }

    /// One turn of the pump: handle what the peer sent, then write.
    fn pump(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        let mut budget = READ_BUDGET;
        while self.phase != Phase::Closing && !ctx.waiting() {
            if budget == 0 {
                task.waker().wake_by_ref();
                break;
            }
            match std::pin::Pin::new(&mut self.conn).poll_next(task) {
                Poll::Ready(Some(Ok(frame))) => {
                    budget -= 1;
                    self.on_frame(frame, ctx);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.abort(e.to_string(), ctx);
                    return Poll::Ready(());
                }
                Poll::Ready(None) => {
                    self.reason.get_or_insert_with(|| "peer closed".into());
                    ctx.stop();
                    return Poll::Ready(());
                }
                Poll::Pending => break,
            }
        }
        match self.poll_flush_out(task) {
            Poll::Ready(Err(e)) => {
                self.reason
                    .get_or_insert_with(|| format!("write failed: {e}").into());
                ctx.stop();
                Poll::Ready(())
            }
            Poll::Ready(Ok(())) if self.phase == Phase::Closing => {
                // Best-effort orderly close (FIN, TLS close_notify); the
                // socket is dropped right after either way.
                let _ = tokio::io::AsyncWrite::poll_shutdown(
                    std::pin::Pin::new(self.conn.get_mut()),
                    task,
                );
                ctx.stop();
                Poll::Ready(())
            }
            _ => Poll::Pending,
        }
    }

    /// Writes queued output until done or the socket is full. An emptied
    /// queue gives its memory back.
    fn poll_flush_out(
        &mut self,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use bytes::Buf;
        use std::task::{Poll, ready};
        use tokio::io::AsyncWrite;
        let io = self.conn.get_mut();
        while !self.out.is_empty() {
            let n = ready!(std::pin::Pin::new(&mut *io).poll_write(task, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
            self.written += n as u64;
        }
        // An emptied BytesMut still owns its allocation (even at capacity 0,
        // its pointer sits at the end of it): release it.
        self.out = bytes::BytesMut::new();
        std::pin::Pin::new(io).poll_flush(task)
    }

    /// Queues `frame` under the slow-peer policy; `false` if refused.
    fn write(&mut self, frame: Frame, ctx: &mut Context<Self>) -> bool {
        if self.phase == Phase::Closing {
            return false;
        }
        let queued = self.out.len();
        if let Err(e) = crate::frame::encode(&frame, &mut self.out, FrameCodec::tcp().max()) {
            tracing::warn!(id = self.state.id, error = %e, "packet not sent");
            return false;
        }
        self.queued(queued, ctx)
    }

    /// Queues an encoded packet under the slow-peer policy.
    fn write_encoded(&mut self, packet: &[u8], ctx: &mut Context<Self>) -> bool {
        if self.phase != Phase::Ready {
            return false;
        }
        let queued = self.out.len();
        self.out.extend_from_slice(packet);
        self.queued(queued, ctx)
    }

    /// Applies the output limit to what was just appended after `queued`
    /// bytes, and wakes the pump.
    fn queued(&mut self, queued: usize, ctx: &mut Context<Self>) -> bool {
        let options = &self.shared.server.options;
        if self.out.len() > options.send_buffer {
            // Over the queue limit: take the packet back out.
            self.out.truncate(queued);
            match options.slow_peer {
                SlowPeer::Disconnect => {
                    self.abort(format!("slow peer: {queued} bytes unread"), ctx);
                }
                SlowPeer::DropNewest => {
                    self.state.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            return false;
        }
        if queued == 0 {
            self.wake_pump();
        }
        if self.stall_mark == NO_MARK {
            self.watch_output(ctx);
        }
        true
    }

    /// Checks after `send_timeout` that queued output moved.
    fn watch_output(&mut self, ctx: &mut Context<Self>) {
        let mark = self.written;
        self.stall_mark = mark;
        ctx.run_later(self.shared.server.options.send_timeout, move |act, ctx| {
            let written = act.written;
            if act.out.is_empty() {
                act.stall_mark = NO_MARK;
            } else if written == mark && act.shared.server.options.slow_peer == SlowPeer::Disconnect
            {
                let queued = act.out.len();
                act.abort(format!("send timeout: {queued} bytes unread"), ctx);
            } else {
                act.watch_output(ctx);
            }
        });
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        if frame.is_reply() {
            return self.abort(format!("{:?} REPLY sent to a server", frame.kind), ctx);
        }
        match self.phase {
            Phase::Closing | Phase::Judging => {}
            Phase::Hello if frame.kind != Kind::ServInfo => {
                self.abort(format!("expected SERVINFO, got {:?}", frame.kind), ctx);
            }
            Phase::Hello => {
                let policy = self.shared.server.options.throttle;
                let delay = self.shared.failures.delay(self.state.peer.ip(), &policy);
                if delay.is_zero() {
                    self.handshake(&frame, ctx);
                } else {
                    tracing::debug!(peer = %self.state.peer, ?delay, "handshake throttled");
                    self.phase = Phase::Judging;
                    ctx.run_later(delay, move |act, ctx| act.handshake(&frame, ctx));
                }
            }
            Phase::Ready => self.on_packet(frame, ctx),
        }
    }

    fn handshake(&mut self, frame: &Frame, ctx: &mut Context<Self>) {
        let param: serde_json::Value = serde_json::from_slice(&frame.param).unwrap_or_default();
        let client_certificate = self.conn.get_ref().client_certificate();
        let hello = Hello {
            peer: self.state.peer,
            password: param.get("passwd").and_then(serde_json::Value::as_str),
            param: &param,
            client_certificate,
        };
        let ip = self.state.peer.ip();
        match self.shared.server.auth.judge(&hello) {
            Verdict::Accept { .. } if self.shared.stopped.get() => {
                self.abort("server stopping".into(), ctx);
            }
            Verdict::Accept { authed } => {
                self.shared.failures.succeeded(ip);
                self.state.authed.store(authed, Ordering::Relaxed);
                if frame.flags.contains(Flags::TUNNEL) && !self.state.tls {
                    self.state
                        .quick_port
                        .store(u32::from(frame.tunid), Ordering::Relaxed);
                }
                self.phase = Phase::Ready;
                let reply = self.servinfo_reply(frame);
                self.write(reply, ctx);
                self.shared
                    .register(self.state.clone(), ctx.address().downgrade());
                tracing::debug!(id = self.state.id, peer = %self.state.peer, "client connected");
                self.shared.emit(ClientEvent::Connected(self.state.info()));
            }
            Verdict::Reject => {
                self.shared
                    .failures
                    .failed(ip, &self.shared.server.options.throttle);
                self.write(frame.reply().status(Status::PASSWORD), ctx);
                self.close_after_flush("wrong password".into());
            }
        }
    }

    /// SERVINFO reply: the server info and the 4-byte client id.
    fn servinfo_reply(&self, hello: &Frame) -> Frame {
        hello
            .reply()
            .param(Bytes::copy_from_slice(self.shared.server.info.as_bytes()))
            .data(Bytes::copy_from_slice(&self.state.id.to_be_bytes()))
    }

    fn on_packet(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        match frame.kind {
            Kind::PingEcho => {
                self.write(frame.reply(), ctx);
            }
            // VSOA servers answer a repeated SERVINFO again (same id).
            Kind::ServInfo => {
                let reply = self.servinfo_reply(&frame);
                self.write(reply, ctx);
            }
            Kind::Noop | Kind::QosSetup => {}
            Kind::Subscribe | Kind::Unsubscribe => self.on_subscription(frame, ctx),
            Kind::Rpc | Kind::Datagram | Kind::Publish => self.forward(frame, ctx),
        }
    }

    fn on_subscription(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let urls = match subscription_urls(&frame) {
            Some(urls) => urls,
            None => {
                self.write(frame.reply().status(Status::ARGUMENTS), ctx);
                return;
            }
        };
        let subscribe = frame.kind == Kind::Subscribe;
        {
            let mut subs = self.state.subscriptions.lock();
            for url in &urls {
                let pos = subs.iter().position(|s| s == url);
                match (subscribe, pos) {
                    (true, None) => subs.push(url.clone()),
                    (false, Some(i)) => {
                        subs.remove(i);
                    }
                    _ => {}
                }
            }
        }
        self.write(frame.reply(), ctx);
        for url in urls {
            let id = self.state.id;
            self.shared.emit(if subscribe {
                ClientEvent::Subscribed { id, url }
            } else {
                ClientEvent::Unsubscribed { id, url }
            });
        }
        if self.shared.server.broker.is_some() {
            self.forward(frame, ctx);
        }
    }

    fn forward(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        if matches!(frame.kind, Kind::Rpc | Kind::Datagram)
            && let Some(commands) = self.shared.server.commands.clone()
        {
            return self.run_command(&commands, frame, ctx);
        }
        let server = &self.shared.server;
        let recipient = match frame.kind {
            Kind::Rpc | Kind::Datagram => &server.commander,
            _ => &server.broker,
        };
        let Some(inbound) = recipient.clone() else {
            if frame.kind == Kind::Rpc {
                self.write(frame.reply().status(Status::INVALID_URL), ctx);
            }
            return;
        };
        let msg = Inbound::new(self.session_ref(ctx), frame);
        match inbound.try_send(msg) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                // Back-pressure: this peer's input waits until the
                // dispatcher has room; other sessions are not affected.
                ctx.wait(
                    async move {
                        let _ = inbound.send(msg).await;
                    }
                    .into_actor(self),
                );
            }
            Err(SendError::Closed(msg)) => {
                if msg.frame.kind == Kind::Rpc {
                    self.write(msg.frame.reply().status(Status::NO_RESPONDING), ctx);
                }
            }
        }
    }
}

impl Session {
    /// Runs the command for an RPC or DATAGRAM here, without a mailbox in
    /// between: a reply that is ready goes straight into the output queue.
    fn run_command(
        &mut self,
        commands: &crate::commander::Commands,
        frame: Frame,
        ctx: &mut Context<Self>,
    ) {
        let session = self.session_ref(ctx);
        if frame.kind == Kind::Datagram {
            return commands.datagram(session, frame, false);
        }
        match commands.rpc(&session, frame) {
            crate::commander::Reply::Ready(reply) => {
                self.write(reply, ctx);
            }
            crate::commander::Reply::Later(reply) => {
                actix::spawn(async move { session.push(reply.await) });
            }
        }
    }
}

/// The URLs of a SUBSCRIBE/UNSUBSCRIBE: the url field, or a JSON list in
/// param when the url is empty (VSOA's multi-URL form). `None` if invalid.
pub(crate) fn subscription_urls(frame: &Frame) -> Option<Vec<String>> {
    if !frame.url.is_empty() {
        let url = frame.url_str()?;
        return url.starts_with('/').then(|| vec![url.to_owned()]);
    }
    let list: Vec<String> = serde_json::from_slice(&frame.param).ok()?;
    let urls: Vec<String> = list.into_iter().filter(|u| u.starts_with('/')).collect();
    (!urls.is_empty()).then_some(urls)
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let limit = self.shared.server.options.handshake_timeout;
        // Not cancelled on success: actix keeps cancelled handles in a list
        // that never shrinks, which would cost every session more than the
        // timer does for its 5 s.
        ctx.run_later(limit, move |act, ctx| {
            if matches!(act.phase, Phase::Hello | Phase::Judging) {
                act.abort(format!("no handshake within {limit:?}"), ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.finish();
    }
}

impl Session {
    /// Deregisters and reports the disconnect (once; also from `Drop`, so a
    /// panicking session is reported too).
    fn finish(&mut self) {
        let reason = self
            .reason
            .take()
            .map_or_else(|| "closed".into(), String::from);
        if self.shared.deregister(self.state.id) {
            tracing::debug!(id = self.state.id, peer = %self.state.peer, %reason, "client disconnected");
            self.shared.emit(ClientEvent::Disconnected {
                info: self.state.info(),
                reason,
            });
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Handler<Outbound> for Session {
    type Result = bool;
    fn handle(&mut self, Outbound(frame): Outbound, ctx: &mut Self::Context) -> bool {
        self.phase == Phase::Ready && self.write(frame, ctx)
    }
}

impl Handler<Encoded> for Session {
    type Result = ();
    fn handle(&mut self, Encoded(packet): Encoded, ctx: &mut Self::Context) {
        self.write_encoded(&packet, ctx);
    }
}

impl Handler<Close> for Session {
    type Result = ();
    fn handle(&mut self, _: Close, _: &mut Self::Context) {
        self.close_after_flush("closed by the service".into());
    }
}

impl Handler<SetAuthed> for Session {
    type Result = ();
    fn handle(&mut self, SetAuthed(authed): SetAuthed, _: &mut Self::Context) {
        self.state.authed.store(authed, Ordering::Relaxed);
    }
}

impl Handler<SetPriority> for Session {
    type Result = ();
    fn handle(&mut self, SetPriority(priority): SetPriority, ctx: &mut Self::Context) {
        self.state.priority.store(priority, Ordering::Relaxed);
        if let Err(e) = set_priority_tos(self.conn.get_ref().tcp(), priority) {
            tracing::debug!(error = %e, "IP_TOS not set");
        }
        if self.phase == Phase::Ready {
            self.write(
                Frame::new(Kind::QosSetup)
                    .flags(Flags::REPLY)
                    .status(Status(priority)),
                ctx,
            );
        }
    }
}
