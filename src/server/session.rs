//! One peer: handshake, keepalive, priority, bounded output, bounded work
//! in flight, and handing application packets to the service.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::Poll;

use actix::prelude::*;
use bytes::Bytes;
use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

use super::auth::{Hello, Verdict};
use super::dispatch::Reply;
use super::events::{ClientEvent, Inbound};
use super::handle::{NEXT_KEY, SessionRef, SessionState};
use super::options::SlowPeer;
use super::outbox::Outbox;
use super::shared::{HandshakeSlot, Shared};
use crate::net::io::{Transport, set_priority_tos};
use crate::supervisor::{ChildRecipient, SendError as ChildSendError};
use crate::wire::codec::{FrameCodec, FrameStream};
use crate::wire::frame::{Flags, Frame, Kind, Status};

/// Write a packet to the peer. Answers `false` when the packet was refused
/// (see [`SessionRef::push`]).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Outbound(pub Frame);

/// Close the connection once the output is flushed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close;

/// Set VSOA's `authed` flag.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetAuthed(pub bool);

/// A handler's work in flight: its reply, if it has one.
type Task = LocalBoxFuture<'static, Option<Frame>>;

/// The actor serving one connected peer.
///
/// Everything a connection needs lives inline in this struct (transport,
/// read state, the output being written, the handlers in flight), driven
/// by one pump future inside the actor's context, with no timer or task of
/// its own: the handshake deadline, the throttle delay and the slow-peer
/// watchdog are timers the pump polls. Nothing it waits for (a full
/// dispatcher mailbox) stops it from writing or from watching its timers.
pub struct Session {
    state: Arc<SessionState>,
    shared: Rc<Shared>,
    /// The transport, read through the frame decoder.
    conn: FrameStream<Transport>,
    /// Output taken from the queue and not yet accepted by the socket.
    writing: bytes::BytesMut,
    /// The session's own replies of this turn, not yet taken for writing.
    staged: bytes::BytesMut,
    /// Set when a reply overflowed the bound under [`SlowPeer::Disconnect`].
    failed: Option<Box<str>>,
    /// Bytes the socket has accepted so far.
    written: u64,
    /// The slow-peer watchdog: fires `send_timeout` after `written` was
    /// the mark, while output is pending.
    watchdog: Option<(Pin<Box<Sleep>>, u64)>,
    /// The handshake deadline, until the handshake completes.
    deadline: Option<Pin<Box<Sleep>>>,
    /// A throttled SERVINFO and when it is judged.
    /// (Boxed: most sessions are never throttled, and a `Frame` inline
    /// would cost every session its size.)
    judging: Option<Box<(Pin<Box<Sleep>>, Frame)>>,
    /// Handlers in flight (bounded by `max_inflight`); dropped, and so
    /// cancelled, with the session.
    tasks: Option<FuturesUnordered<Task>>,
    /// A packet waiting for room in a full dispatcher: input is not read
    /// meanwhile (back-pressure), output and timers go on.
    blocked: Option<LocalBoxFuture<'static, ()>>,
    /// This peer's place in the per-IP handshake limit.
    handshake: Option<HandshakeSlot>,
    phase: Phase,
    reason: Option<Box<str>>,
    _permit: OwnedSemaphorePermit,
}

/// Frames handled per wake-up before the session yields.
const READ_BUDGET: usize = 64;

/// How long a SUBSCRIBE waits for a restarting dispatcher.
const RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Drives a session's socket: reads and handles frames, runs handlers,
/// writes queued output, watches the timers.
struct Pump;

impl ActorFuture<Session> for Pump {
    type Output = ();

    fn poll(
        self: Pin<&mut Self>,
        act: &mut Session,
        ctx: &mut Context<Session>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        act.pump(ctx, task)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for SERVINFO.
    Hello,
    /// A throttled SERVINFO is waiting to be judged; input waits.
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
        handshake: HandshakeSlot,
    ) {
        let tls = stream.is_tls();
        // A Unix-domain peer is on this machine: its streams bind loopback.
        let local_ip = match stream.tcp() {
            Some(tcp) => tcp
                .local_addr()
                .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |a| a.ip()),
            None => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        };
        let quick = if tls || stream.tcp().is_none() {
            None
        } else {
            shared.quick.get().cloned()
        };
        let options = &shared.server.options;
        let state = shared.table.add(|id| {
            Arc::new(SessionState {
                id,
                key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
                peer,
                local_ip,
                tls,
                quick,
                priority: AtomicU8::new(0),
                authed: AtomicBool::new(false),
                ready: AtomicBool::new(false),
                alive: AtomicBool::new(true),
                quick_port: AtomicU32::new(0),
                dropped: AtomicU64::new(0),
                subscriptions: Mutex::new(BTreeSet::new()),
                out: Mutex::new(Outbox::default()),
                buffered: AtomicUsize::new(0),
                taken: AtomicUsize::new(0),
                requested: AtomicBool::new(false),
                pumping: AtomicBool::new(false),
                waker: futures::task::AtomicWaker::new(),
                space: tokio::sync::Notify::new(),
                waiters: AtomicUsize::new(0),
                send_buffer: options.send_buffer,
                send_timeout: options.send_timeout,
                slow_peer: options.slow_peer,
                table: Arc::downgrade(&shared.table),
                stats: shared.server.stats.clone(),
            })
        });
        let stats = &shared.server.stats;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        Session::create(move |ctx| {
            ctx.spawn(Pump);
            Session {
                state,
                shared,
                conn: FrameStream::new(stream, FrameCodec::tcp()),
                writing: bytes::BytesMut::new(),
                staged: bytes::BytesMut::new(),
                failed: None,
                written: 0,
                watchdog: None,
                deadline: None,
                judging: None,
                tasks: None,
                blocked: None,
                handshake: Some(handshake),
                phase: Phase::Hello,
                reason: None,
                _permit: permit,
            }
        });
    }

    fn session_ref(&self) -> SessionRef {
        SessionRef::new(self.state.clone())
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
        // Handlers in flight are cancelled: their replies could not go out.
        self.tasks = None;
        self.blocked = None;
        self.state.out.lock().open = false;
    }

    /// Queues the session's own packet (a reply), under the same bound as
    /// every other: it is staged here, with no lock, and written before
    /// what other holders queued.
    fn write(&mut self, frame: &Frame) -> bool {
        if self.phase == Phase::Closing {
            return false;
        }
        let before = self.staged.len();
        if let Err(e) = crate::wire::frame::encode(frame, &mut self.staged, FrameCodec::tcp().max())
        {
            tracing::warn!(id = self.state.id, error = %e, "packet not sent");
            self.staged.truncate(before);
            return false;
        }
        let held = self.staged.len() + self.writing.len();
        if held + self.state.buffered.load(Ordering::Relaxed) > self.state.send_buffer {
            self.staged.truncate(before);
            match self.state.slow_peer {
                SlowPeer::DropNewest => {
                    self.state.dropped.fetch_add(1, Ordering::Relaxed);
                }
                SlowPeer::Disconnect => {
                    self.failed
                        .get_or_insert_with(|| format!("slow peer: {held} bytes unread").into());
                }
            }
            return false;
        }
        self.state.taken.store(held, Ordering::SeqCst);
        true
    }

    /// One turn of the pump.
    fn pump(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        if self.requests(ctx, task).is_ready() {
            return Poll::Ready(());
        }
        if let Some(blocked) = &mut self.blocked
            && blocked.as_mut().poll(task).is_ready()
        {
            self.blocked = None;
        }
        if self.read(ctx, task).is_ready() {
            return Poll::Ready(());
        }
        // After reading: a timer the input just set is polled at once.
        if self.poll_timers(ctx, task).is_ready() {
            return Poll::Ready(());
        }
        self.poll_tasks(task);
        if self.flush(ctx, task).is_ready() {
            return Poll::Ready(());
        }
        // Anything queued or asked for since the last look gets another
        // turn (output only if the socket is not what we wait for).
        let state = &self.state;
        state.pumping.store(false, Ordering::SeqCst);
        if state.requested.load(Ordering::SeqCst)
            || self.writing.is_empty() && state.buffered.load(Ordering::SeqCst) > 0
        {
            task.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Takes what other holders asked for: abort, close, priority, quick
    /// datagrams.
    fn requests(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let state = &self.state;
        state.waker.register(task.waker());
        state.pumping.store(true, Ordering::SeqCst);
        if !state.requested.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        let (abort, close, priority, inbox) = {
            let mut out = state.out.lock();
            let inbox = (!out.inbox.is_empty()).then(|| std::mem::take(&mut out.inbox));
            (
                out.abort.take(),
                std::mem::take(&mut out.close),
                out.priority.take(),
                inbox,
            )
        };
        if let Some(reason) = abort {
            self.abort(reason.into(), ctx);
            return Poll::Ready(());
        }
        if close && self.phase != Phase::Closing {
            self.close_after_flush("closed by the service".into());
        }
        if let Some(priority) = priority {
            self.apply_priority(priority);
        }
        for frame in inbox.into_iter().flatten() {
            if self.phase == Phase::Ready {
                self.datagram(frame, true);
            }
        }
        Poll::Pending
    }

    /// The handshake deadline, the throttle delay and the slow-peer
    /// watchdog.
    fn poll_timers(
        &mut self,
        ctx: &mut Context<Self>,
        task: &mut std::task::Context<'_>,
    ) -> Poll<()> {
        if matches!(self.phase, Phase::Hello | Phase::Judging) {
            let limit = self.shared.server.options.handshake_timeout;
            let deadline = self
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
            if deadline.as_mut().poll(task).is_ready() {
                self.abort(format!("no handshake within {limit:?}"), ctx);
                return Poll::Ready(());
            }
        }
        if let Some(judging) = &mut self.judging
            && judging.0.as_mut().poll(task).is_ready()
            && let Some(judging) = self.judging.take()
        {
            let (_, frame) = *judging;
            self.phase = Phase::Hello;
            self.handshake(&frame, ctx);
            // Input waited while judging: read it on the next turn.
            task.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Reads and handles what the peer sent, unless input waits.
    fn read(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let mut budget = READ_BUDGET;
        while matches!(self.phase, Phase::Hello | Phase::Ready) && self.blocked.is_none() {
            if budget == 0 {
                task.waker().wake_by_ref();
                break;
            }
            match Pin::new(&mut self.conn).poll_next(task) {
                Poll::Ready(Some(Ok(frame))) => {
                    budget -= 1;
                    self.on_frame(frame, ctx);
                    if !ctx.state().alive() {
                        return Poll::Ready(());
                    }
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
        Poll::Pending
    }

    /// Polls the handlers in flight and queues their replies.
    fn poll_tasks(&mut self, task: &mut std::task::Context<'_>) {
        let Some(mut tasks) = self.tasks.take() else {
            return;
        };
        while let Poll::Ready(Some(reply)) = tasks.poll_next_unpin(task) {
            if let Some(reply) = reply {
                self.write(&reply);
            }
        }
        if !tasks.is_empty() {
            self.tasks = Some(tasks);
        }
    }

    /// Writes queued output until done or the socket is full; closes when
    /// closing and done.
    fn flush(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        use bytes::Buf;
        use tokio::io::AsyncWrite;
        if let Some(reason) = self.failed.take() {
            self.abort(reason.into(), ctx);
            return Poll::Ready(());
        }
        let state = self.state.clone();
        let result = loop {
            if self.writing.is_empty() {
                if !self.staged.is_empty() {
                    // The session's own replies first.
                    std::mem::swap(&mut self.writing, &mut self.staged);
                } else if state.buffered.load(Ordering::SeqCst) > 0 {
                    let mut out = state.out.lock();
                    self.writing = std::mem::take(&mut out.buf);
                    state.buffered.store(0, Ordering::SeqCst);
                    state.taken.store(self.writing.len(), Ordering::SeqCst);
                } else {
                    // An emptied BytesMut still owns its allocation: release it.
                    self.writing = bytes::BytesMut::new();
                    state.taken.store(0, Ordering::SeqCst);
                    break Pin::new(self.conn.get_mut()).poll_flush(task);
                }
            }
            match Pin::new(self.conn.get_mut()).poll_write(task, &self.writing) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.writing.advance(n);
                    self.written += n as u64;
                    if state.waiters.load(Ordering::Acquire) > 0 {
                        state
                            .taken
                            .store(self.writing.len() + self.staged.len(), Ordering::SeqCst);
                        state.space.notify_waiters();
                    }
                }
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        state
            .taken
            .store(self.writing.len() + self.staged.len(), Ordering::SeqCst);
        match result {
            Poll::Ready(Err(e)) => {
                self.reason
                    .get_or_insert_with(|| format!("write failed: {e}").into());
                ctx.stop();
                Poll::Ready(())
            }
            Poll::Ready(Ok(())) if self.phase == Phase::Closing => {
                // Best-effort orderly close (FIN, TLS close_notify); the
                // socket is dropped right after either way.
                let _ = tokio::io::AsyncWrite::poll_shutdown(Pin::new(self.conn.get_mut()), task);
                ctx.stop();
                Poll::Ready(())
            }
            Poll::Ready(Ok(())) => {
                self.watchdog = None;
                Poll::Pending
            }
            Poll::Pending => self.watch(ctx, task),
        }
    }

    /// Output is pending: closes a peer that has read nothing for
    /// `send_timeout` (under [`SlowPeer::Disconnect`]).
    fn watch(&mut self, ctx: &mut Context<Self>, task: &mut std::task::Context<'_>) -> Poll<()> {
        let options = &self.shared.server.options;
        if options.slow_peer != SlowPeer::Disconnect {
            return Poll::Pending;
        }
        let limit = options.send_timeout;
        let written = self.written;
        let (timer, mark) = self
            .watchdog
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(limit)), written));
        let stalled = loop {
            if timer.as_mut().poll(task).is_pending() {
                break false;
            }
            if *mark == written {
                break true;
            }
            *mark = written;
            timer.as_mut().reset(tokio::time::Instant::now() + limit);
        };
        if !stalled {
            return Poll::Pending;
        }
        let unread =
            self.writing.len() + self.staged.len() + self.state.buffered.load(Ordering::Relaxed);
        self.abort(format!("send timeout: {unread} bytes unread"), ctx);
        Poll::Ready(())
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        if frame.is_reply() {
            return self.abort(format!("{:?} REPLY sent to a server", frame.kind), ctx);
        }
        match self.phase {
            Phase::Closing | Phase::Judging => {}
            Phase::Hello if frame.kind == Kind::ServInfo => {
                let policy = self.shared.server.options.throttle;
                let delay = self.shared.failures.reserve(self.state.peer.ip(), &policy);
                if delay.is_zero() {
                    self.handshake(&frame, ctx);
                } else {
                    tracing::debug!(peer = %self.state.peer, ?delay, "handshake throttled");
                    self.phase = Phase::Judging;
                    self.judging = Some(Box::new((Box::pin(tokio::time::sleep(delay)), frame)));
                }
            }
            // VSOA: with a password, anything before SERVINFO is answered
            // with status 1 and the connection waits for SERVINFO until the
            // handshake timer; without one, any first packet activates.
            Phase::Hello if self.shared.server.auth.requires_hello() => {
                self.write(&frame.reply().status(Status::PASSWORD));
            }
            Phase::Hello if self.shared.stopped.get() => {
                self.abort("server stopping".into(), ctx);
            }
            Phase::Hello => {
                self.accept(true);
                self.on_packet(frame);
            }
            Phase::Ready => self.on_packet(frame),
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
                if frame.flags.contains(Flags::TUNNEL) && !self.state.tls {
                    self.state
                        .quick_port
                        .store(u32::from(frame.tunid), Ordering::Relaxed);
                }
                // The reply goes first: nothing else may reach the client
                // before it.
                let reply = self.servinfo_reply(frame);
                self.write(&reply);
                self.accept(authed);
            }
            Verdict::Reject => {
                self.shared
                    .failures
                    .failed(ip, &self.shared.server.options.throttle);
                self.write(&frame.reply().status(Status::PASSWORD));
                self.close_after_flush("wrong password".into());
            }
        }
    }

    /// The client is in: open the session to the service.
    fn accept(&mut self, authed: bool) {
        self.state.authed.store(authed, Ordering::Relaxed);
        self.phase = Phase::Ready;
        self.deadline = None;
        self.handshake = None;
        self.state.out.lock().open = true;
        self.state.ready.store(true, Ordering::Release);
        tracing::debug!(id = self.state.id, peer = %self.state.peer, "client connected");
        self.shared.emit(ClientEvent::Connected(self.state.info()));
    }

    /// SERVINFO reply: the server info and the 4-byte client id.
    fn servinfo_reply(&self, hello: &Frame) -> Frame {
        hello
            .reply()
            .param(Bytes::copy_from_slice(self.shared.server.info.as_bytes()))
            .data(Bytes::copy_from_slice(&self.state.id.to_be_bytes()))
    }

    fn on_packet(&mut self, frame: Frame) {
        match frame.kind {
            Kind::PingEcho => {
                self.write(&frame.reply());
            }
            // VSOA servers answer a repeated SERVINFO again (same id).
            Kind::ServInfo => {
                let reply = self.servinfo_reply(&frame);
                self.write(&reply);
            }
            Kind::Noop | Kind::QosSetup => {}
            Kind::Subscribe | Kind::Unsubscribe => self.on_subscription(frame),
            Kind::Rpc => self.rpc(frame),
            Kind::Datagram => self.datagram(frame, false),
            Kind::Publish => self.publish(frame),
        }
    }

    fn on_subscription(&mut self, frame: Frame) {
        let Some(urls) = subscription_urls(&frame) else {
            self.write(&frame.reply().status(Status::ARGUMENTS));
            return;
        };
        let subscribe = frame.kind == Kind::Subscribe;
        let changed: Vec<String> = {
            let mut subs = self.state.subscriptions.lock();
            if subscribe {
                let new = urls.iter().filter(|u| !subs.contains(*u)).count();
                let limit = self.shared.server.options.max_subscriptions;
                if subs.len() + new > limit {
                    drop(subs);
                    self.state
                        .stats
                        .subscriptions_refused
                        .fetch_add(1, Ordering::Relaxed);
                    let message = format!("more than {limit} subscriptions");
                    self.write(
                        &frame
                            .reply()
                            .status(Status::NO_MEMORY)
                            .param(serde_json::json!({ "error": message }).to_string()),
                    );
                    return;
                }
                urls.into_iter()
                    .filter(|u| subs.insert(u.clone()))
                    .collect()
            } else {
                urls.into_iter().filter(|u| subs.remove(u)).collect()
            }
        };
        self.write(&frame.reply());
        let id = self.state.id;
        for url in &changed {
            self.shared.emit(if subscribe {
                ClientEvent::Subscribed {
                    id,
                    url: url.clone(),
                }
            } else {
                ClientEvent::Unsubscribed {
                    id,
                    url: url.clone(),
                }
            });
        }
        if !changed.is_empty() && self.shared.server.broker.is_some() {
            let forward =
                Frame::new(frame.kind).param(serde_json::to_vec(&changed).unwrap_or_default());
            self.forward_to_broker(forward);
        }
    }

    /// Hands a (un)subscription to the broker; input waits while its
    /// mailbox is full or it is restarting (its new instance rebuilds its
    /// index from the sessions, so nothing is lost while it is down).
    fn forward_to_broker(&mut self, frame: Frame) {
        let Some(broker) = self.shared.server.broker.clone() else {
            return;
        };
        if let Some(msg) = self.offer(&broker, Inbound::new(self.session_ref(), frame)) {
            self.blocked = Some(
                async move {
                    if broker.wait_running(RESTART_WAIT).await.is_ok() {
                        let _ = broker.tell_wait(msg).await;
                    }
                }
                .boxed_local(),
            );
        }
    }

    /// A client PUBLISH, to the broker (which may ignore it).
    fn publish(&mut self, frame: Frame) {
        let Some(broker) = self.shared.server.broker.clone() else {
            return;
        };
        if let Some(msg) = self.offer(&broker, Inbound::new(self.session_ref(), frame)) {
            drop(msg);
        }
    }

    /// Offers `msg` to a dispatcher. When its mailbox is full, this peer's
    /// input waits until it has room (back-pressure: output and timers go
    /// on, other sessions are not affected). A dispatcher that is not
    /// running hands the message back.
    fn offer(&mut self, to: &ChildRecipient<Inbound>, msg: Inbound) -> Option<Inbound> {
        match to.tell(msg) {
            Ok(()) => None,
            Err(ChildSendError::Full(_, msg)) => {
                let to = to.clone();
                self.blocked = Some(
                    async move {
                        let _ = to.tell_wait(msg).await;
                    }
                    .boxed_local(),
                );
                None
            }
            Err(ChildSendError::NotRunning(_, msg)) => Some(msg),
        }
    }

    fn inflight(&self) -> usize {
        self.tasks.as_ref().map_or(0, FuturesUnordered::len)
    }

    fn spawn_task(&mut self, task: Task) {
        self.tasks
            .get_or_insert_with(FuturesUnordered::new)
            .push(task);
    }

    /// Runs the command for an RPC here, without a mailbox in between: a
    /// reply that is ready goes straight into the output queue; one that
    /// waits runs in this session, bounded in number and time.
    fn rpc(&mut self, frame: Frame) {
        self.state.stats.calls.fetch_add(1, Ordering::Relaxed);
        let Some(commands) = self.shared.server.commands.clone() else {
            return self.forward_rpc(frame);
        };
        let options = &self.shared.server.options;
        if self.inflight() >= options.max_inflight {
            self.state.stats.rpc_refused.fetch_add(1, Ordering::Relaxed);
            self.state.stats.errors.fetch_add(1, Ordering::Relaxed);
            let message = format!("more than {} requests in flight", options.max_inflight);
            let reply = error_reply(frame.seqno, Status::NO_MEMORY, &message);
            self.write(&reply);
            return;
        }
        let seqno = frame.seqno;
        match commands.rpc(&self.session_ref(), frame) {
            Reply::Ready(reply) => {
                self.state.stats.replied(&reply);
                self.write(&reply);
            }
            Reply::Later(reply) => {
                let limit = options.handler_timeout;
                let stats = self.state.stats.clone();
                self.spawn_task(
                    async move {
                        let reply = match tokio::time::timeout(limit, reply).await {
                            Ok(reply) => reply,
                            Err(_) => {
                                stats.handler_timeouts.fetch_add(1, Ordering::Relaxed);
                                error_reply(
                                    seqno,
                                    Status::NO_RESPONDING,
                                    &format!("no reply within {limit:?}"),
                                )
                            }
                        };
                        stats.replied(&reply);
                        Some(reply)
                    }
                    .boxed_local(),
                );
            }
        }
    }

    /// An RPC for the Commander actor (no routes given to the server).
    fn forward_rpc(&mut self, frame: Frame) {
        let server = &self.shared.server;
        let Some(inbound) = server.commander.clone() else {
            self.write(&frame.reply().status(Status::INVALID_URL));
            return;
        };
        if let Some(msg) = self.offer(&inbound, Inbound::new(self.session_ref(), frame)) {
            self.write(&msg.frame.reply().status(Status::NO_RESPONDING));
        }
    }

    /// Runs the datagram handler here (bounded like RPCs; datagrams over
    /// the bound are dropped and counted).
    fn datagram(&mut self, frame: Frame, quick: bool) {
        let Some(commands) = self.shared.server.commands.clone() else {
            let Some(inbound) = self.shared.server.commander.clone() else {
                return;
            };
            let mut msg = Inbound::new(self.session_ref(), frame);
            msg.quick = quick;
            if inbound.tell(msg).is_err() {
                self.state
                    .stats
                    .datagrams_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let options = &self.shared.server.options;
        if self.inflight() >= options.max_inflight {
            self.state
                .stats
                .datagrams_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let limit = options.handler_timeout;
        if let Some(work) = commands.datagram(self.session_ref(), frame, quick) {
            self.spawn_task(
                async move {
                    let _ = tokio::time::timeout(limit, work).await;
                    None
                }
                .boxed_local(),
            );
        }
    }

    fn apply_priority(&mut self, priority: u8) {
        if let Some(tcp) = self.conn.get_ref().tcp()
            && let Err(e) = set_priority_tos(tcp, priority)
        {
            tracing::debug!(error = %e, "IP_TOS not set");
        }
    }
}

/// An RPC error reply: `status`, and `{"error": message}` in the param
/// (as the Commander's errors are).
fn error_reply(seqno: u32, status: Status, message: &str) -> Frame {
    Frame::new(Kind::Rpc)
        .flags(Flags::REPLY)
        .seqno(seqno)
        .status(status)
        .param(serde_json::json!({ "error": message }).to_string())
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

    fn stopped(&mut self, _: &mut Self::Context) {
        self.finish();
    }
}

impl Session {
    /// Deregisters and reports the disconnect (once; also from `Drop`, so a
    /// panicking session is reported too).
    fn finish(&mut self) {
        if !self.state.alive.swap(false, Ordering::AcqRel) {
            return;
        }
        self.state.stats.connections.fetch_sub(1, Ordering::Relaxed);
        {
            let mut out = self.state.out.lock();
            out.open = false;
            out.buf = bytes::BytesMut::new();
            out.inbox.clear();
            self.state.buffered.store(0, Ordering::SeqCst);
            drop(out);
            self.state.waker.take();
        }
        let reason = self
            .reason
            .take()
            .map_or_else(|| "closed".into(), String::from);
        self.shared.table.remove(self.state.id);
        if self.state.ready.load(Ordering::Acquire) {
            tracing::debug!(id = self.state.id, peer = %self.state.peer, %reason, "client disconnected");
            // The broker forgets this session's subscriptions.
            let subscriptions: Vec<String> =
                self.state.subscriptions.lock().iter().cloned().collect();
            if !subscriptions.is_empty()
                && let Some(broker) = &self.shared.server.broker
            {
                // Best effort: a broker with a full mailbox finds out at
                // its next publish or sweep.
                let frame = Frame::new(Kind::Unsubscribe)
                    .param(serde_json::to_vec(&subscriptions).unwrap_or_default());
                let _ = broker.tell(Inbound::new(self.session_ref(), frame));
            }
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
    fn handle(&mut self, Outbound(frame): Outbound, _: &mut Self::Context) -> bool {
        self.session_ref().push(frame)
    }
}

impl Handler<Close> for Session {
    type Result = ();
    fn handle(&mut self, _: Close, _: &mut Self::Context) {
        self.session_ref().close();
    }
}

impl Handler<SetAuthed> for Session {
    type Result = ();
    fn handle(&mut self, SetAuthed(authed): SetAuthed, _: &mut Self::Context) {
        self.state.authed.store(authed, Ordering::Relaxed);
    }
}
