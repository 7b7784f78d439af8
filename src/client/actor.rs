//! The client actor: one connection at a time, replies matched by seqno,
//! robot-mode keepalive and reconnects.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use tokio::sync::oneshot;

use super::connect::{Established, establish, subscription};
use super::outbox::Outbox;
use super::{ClientMessage, ClientOptions, ConnectError, RequestError, ServerInfo};
use crate::net::io::{IoWrite, SharedIo, set_priority_tos};
use crate::wire::codec::CodecError;
use crate::wire::frame::{Frame, Kind, Status};

type Waiter = oneshot::Sender<Result<Frame, RequestError>>;

/// What the [`super::Client`] handle asks of its actor.
#[derive(Debug, Message)]
#[rtype(result = "Reply")]
pub(crate) enum Command {
    Request(Frame, Option<Duration>),
    Send(Frame),
    /// A DATAGRAM over the quick channel.
    Quick(Frame),
    Ping,
    Subscribe(Vec<String>, bool),
    Listen(Recipient<ClientMessage>),
    Info,
    /// Bytes in the send buffer.
    Queued,
    /// Messages listeners missed.
    Missed,
    Close,
}

/// The actor's answer to a [`Command`].
#[derive(Debug, MessageResponse)]
pub(crate) enum Reply {
    Pending(oneshot::Receiver<Result<Frame, RequestError>>),
    Done(Result<(), RequestError>),
    Info(Option<ServerInfo>),
    Queued(usize),
    Missed(u64),
}

enum Purpose {
    Caller(Waiter),
    Subscription(Vec<String>, bool, Option<Waiter>),
    RobotPing,
}

struct Pending {
    purpose: Purpose,
    timer: SpawnHandle,
}

struct Conn {
    io: Rc<SharedIo>,
    out: Outbox,
    /// The task writing `out` to the socket.
    writer: SpawnHandle,
    /// The send-timeout check, while output is queued.
    stall_check: Option<SpawnHandle>,
    reader: SpawnHandle,
    keepalive: Option<SpawnHandle>,
    info: ServerInfo,
    quick: Option<(Rc<tokio::net::UdpSocket>, SpawnHandle)>,
}

/// Frames of one connection generation; `item: None` marks its end.
#[derive(Debug)]
struct Incoming {
    generation: u64,
    item: Option<Result<Frame, CodecError>>,
    quick: bool,
}

/// The actor behind [`super::Client`].
pub struct ClientActor {
    options: ClientOptions,
    first: Option<oneshot::Sender<Result<(), ConnectError>>>,
    conn: Option<Conn>,
    generation: u64,
    pending: HashMap<u32, Pending>,
    seqno: u32,
    subscriptions: Vec<String>,
    listeners: Vec<Recipient<ClientMessage>>,
    attempt: u32,
    lost_pings: u32,
    rng: fastrand::Rng,
    closing: bool,
    /// Messages listeners missed (full mailbox), and the last warning.
    missed: std::cell::Cell<u64>,
    missed_warned: std::cell::Cell<Option<std::time::Instant>>,
}

impl std::fmt::Debug for ClientActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientActor")
            .field("addr", &self.options.addr)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientActor {
    pub(crate) fn new(
        options: ClientOptions,
        first: Option<oneshot::Sender<Result<(), ConnectError>>>,
    ) -> Self {
        Self {
            options,
            first,
            conn: None,
            generation: 0,
            pending: HashMap::new(),
            seqno: 0,
            subscriptions: Vec::new(),
            listeners: Vec::new(),
            attempt: 0,
            lost_pings: 0,
            rng: fastrand::Rng::new(),
            closing: false,
            missed: std::cell::Cell::new(0),
            missed_warned: std::cell::Cell::new(None),
        }
    }

    /// Hands `message` to every listener without waiting: one whose
    /// mailbox is full misses it (counted, warned at most every 10 s).
    fn emit(&self, message: ClientMessage) {
        for l in &self.listeners {
            if l.try_send(message.clone()).is_err() {
                let n = self.missed.get() + 1;
                self.missed.set(n);
                let now = std::time::Instant::now();
                if self
                    .missed_warned
                    .get()
                    .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(10))
                {
                    self.missed_warned.set(Some(now));
                    tracing::warn!(missed = n, "client message dropped: listener mailbox full");
                }
            }
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.closing || self.conn.is_some() {
            return;
        }
        ctx.spawn(
            establish(self.options.clone())
                .into_actor(self)
                .map(|res, act, ctx| act.established(res, ctx)),
        );
    }

    fn established(&mut self, res: Result<Established, ConnectError>, ctx: &mut Context<Self>) {
        let est = match res {
            Ok(est) if !self.closing => est,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(addr = %self.options.addr, error = %e, "connect failed");
                if let Some(first) = self.first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                return self.schedule_reconnect(ctx);
            }
        };
        self.generation += 1;
        let generation = self.generation;
        let frames = est
            .frames
            .map(move |item| Incoming {
                generation,
                item: Some(item),
                quick: false,
            })
            .chain(futures::stream::once(async move {
                Incoming {
                    generation,
                    item: None,
                    quick: false,
                }
            }));
        let reader = ctx.add_stream(frames);
        let quick = est.quick.map(|socket| {
            let socket = Rc::new(socket);
            let packets = quick_packets(socket.clone()).map(move |frame| Incoming {
                generation,
                item: Some(Ok(frame)),
                quick: true,
            });
            (socket, ctx.add_stream(packets))
        });
        let (out, pump) = Outbox::new(IoWrite(est.io.clone()), self.options.send_buffer);
        let writer = ctx.spawn(pump.into_actor(self).map(move |err, act, ctx| {
            if act.generation == generation {
                act.disconnect(format!("write failed: {err}"), ctx);
            }
        }));
        let keepalive = self
            .options
            .robot
            .map(|robot| ctx.run_interval(robot.ping_interval, |act, ctx| act.robot_ping(ctx)));
        tracing::debug!(addr = %self.options.addr, client_id = est.info.client_id, "connected");
        self.conn = Some(Conn {
            io: est.io,
            out,
            writer,
            stall_check: None,
            reader,
            keepalive,
            info: est.info.clone(),
            quick,
        });
        self.attempt = 0;
        self.lost_pings = 0;
        if !self.subscriptions.is_empty() {
            let urls = self.subscriptions.clone();
            let frame = subscription(&urls, true);
            let limit = self.options.request_timeout;
            let _ = self.request(frame, limit, Purpose::Subscription(urls, true, None), ctx);
        }
        if let Some(first) = self.first.take() {
            let _ = first.send(Ok(()));
        }
        self.emit(ClientMessage::Connected(est.info));
    }

    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        let Some(robot) = self.options.robot else {
            return;
        };
        if self.closing {
            return;
        }
        let delay = robot.reconnect.delay(self.attempt, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        tracing::debug!(addr = %self.options.addr, ?delay, "reconnecting");
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }

    fn disconnect(&mut self, reason: String, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        ctx.cancel_future(conn.reader);
        ctx.cancel_future(conn.writer);
        if let Some(check) = conn.stall_check {
            ctx.cancel_future(check);
        }
        if let Some(k) = conn.keepalive {
            ctx.cancel_future(k);
        }
        if let Some((_, reader)) = conn.quick {
            ctx.cancel_future(reader);
        }
        tracing::debug!(addr = %self.options.addr, %reason, "disconnected");
        for (_, p) in self.pending.drain() {
            ctx.cancel_future(p.timer);
            let err = RequestError::Disconnected(reason.clone());
            match p.purpose {
                Purpose::Caller(w) | Purpose::Subscription(_, _, Some(w)) => {
                    let _ = w.send(Err(err));
                }
                Purpose::Subscription(_, _, None) | Purpose::RobotPing => {}
            }
        }
        self.emit(ClientMessage::Disconnected(reason));
        self.schedule_reconnect(ctx);
    }

    fn next_seqno(&mut self) -> u32 {
        loop {
            self.seqno = self.seqno.wrapping_add(1);
            if !self.pending.contains_key(&self.seqno) {
                return self.seqno;
            }
        }
    }

    /// Queues `frame` in the send buffer, or refuses it at once (too large,
    /// or the buffer is full: the server is not reading).
    fn write(&mut self, frame: Frame, ctx: &mut Context<Self>) -> Result<(), RequestError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(RequestError::NotConnected);
        };
        conn.out.push(&frame)?;
        if conn.stall_check.is_none() {
            self.watch_output(ctx);
        }
        Ok(())
    }

    /// While output is queued, checks every `send_timeout` that some of it
    /// was written; a server that takes none for that long is cut off as a
    /// slow server (robot mode then reconnects).
    fn watch_output(&mut self, ctx: &mut Context<Self>) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mark = conn.out.written();
        let limit = self.options.send_timeout;
        let generation = self.generation;
        let check = ctx.run_later(limit, move |act, ctx| {
            if act.generation != generation {
                return;
            }
            let Some(conn) = act.conn.as_mut() else {
                return;
            };
            conn.stall_check = None;
            let queued = conn.out.queued();
            if queued == 0 {
                return;
            }
            if conn.out.written() == mark {
                act.disconnect(
                    format!("slow server: {queued} bytes unsent, no write progress for {limit:?}"),
                    ctx,
                );
            } else {
                act.watch_output(ctx);
            }
        });
        conn.stall_check = Some(check);
    }

    fn write_quick(&mut self, frame: Frame) -> Result<(), RequestError> {
        let Some(conn) = self.conn.as_ref() else {
            return Err(RequestError::NotConnected);
        };
        let Some((socket, _)) = &conn.quick else {
            return Err(RequestError::NoQuickChannel);
        };
        // The quick channel carries the client id in the seqno.
        let frame = frame.seqno(conn.info.client_id);
        let mut buf = bytes::BytesMut::new();
        crate::wire::frame::encode(&frame, &mut buf, crate::wire::frame::MAX_UDP_PACKET)
            .map_err(|_| RequestError::TooLarge)?;
        match socket.try_send(&buf) {
            Ok(_) => Ok(()),
            // A full socket buffer drops the datagram, as UDP would.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(RequestError::Quick(e.to_string())),
        }
    }

    fn request(
        &mut self,
        frame: Frame,
        limit: Duration,
        purpose: Purpose,
        ctx: &mut Context<Self>,
    ) -> Result<(), RequestError> {
        let seqno = self.next_seqno();
        self.write(frame.seqno(seqno), ctx)?;
        let timer = ctx.run_later(limit, move |act, ctx| act.timed_out(seqno, limit, ctx));
        self.pending.insert(seqno, Pending { purpose, timer });
        Ok(())
    }

    fn timed_out(&mut self, seqno: u32, limit: Duration, ctx: &mut Context<Self>) {
        let Some(p) = self.pending.remove(&seqno) else {
            return;
        };
        match p.purpose {
            Purpose::Caller(w) | Purpose::Subscription(_, _, Some(w)) => {
                let _ = w.send(Err(RequestError::Timeout(limit)));
            }
            Purpose::Subscription(_, _, None) => {
                tracing::warn!(addr = %self.options.addr, "re-subscription not answered");
            }
            Purpose::RobotPing => {
                self.lost_pings += 1;
                let max = self.options.robot.map_or(u32::MAX, |r| r.ping_lost);
                if self.lost_pings >= max {
                    let lost = self.lost_pings;
                    self.disconnect(format!("{lost} keepalive pings lost"), ctx);
                }
            }
        }
    }

    fn robot_ping(&mut self, ctx: &mut Context<Self>) {
        let Some(robot) = self.options.robot else {
            return;
        };
        let _ = self.request(
            Frame::new(Kind::PingEcho),
            robot.ping_timeout,
            Purpose::RobotPing,
            ctx,
        );
    }

    fn on_frame(&mut self, frame: Frame, quick: bool, ctx: &mut Context<Self>) {
        match frame.kind {
            Kind::QosSetup => {
                let priority = frame.status.0.min(7);
                if let Some(conn) = &self.conn
                    && let Ok(Err(e)) = conn.io.with_tcp(|tcp| set_priority_tos(tcp, priority))
                {
                    tracing::debug!(error = %e, "IP_TOS not set");
                }
                self.emit(ClientMessage::Priority(priority));
            }
            Kind::Publish => self.emit(ClientMessage::Published { frame, quick }),
            Kind::Datagram => self.emit(ClientMessage::Datagram { frame, quick }),
            _ if quick => {}
            Kind::Noop => {}
            _ if frame.is_reply() => self.on_reply(frame, ctx),
            other => tracing::debug!(?other, "unexpected packet from server ignored"),
        }
    }

    fn on_reply(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        let Some(p) = self.pending.remove(&frame.seqno) else {
            return;
        };
        ctx.cancel_future(p.timer);
        match p.purpose {
            Purpose::Caller(w) => {
                let _ = w.send(Ok(frame));
            }
            Purpose::RobotPing => self.lost_pings = 0,
            Purpose::Subscription(urls, subscribe, waiter) => {
                let result = if frame.status.is_ok() {
                    for url in urls {
                        let known = self.subscriptions.iter().position(|s| *s == url);
                        match (subscribe, known) {
                            (true, None) => self.subscriptions.push(url),
                            (false, Some(i)) => {
                                self.subscriptions.remove(i);
                            }
                            _ => {}
                        }
                    }
                    Ok(frame)
                } else {
                    Err(RequestError::Refused(frame.status))
                };
                match waiter {
                    Some(w) => {
                        let _ = w.send(result);
                    }
                    None => {
                        if let Err(e) = result {
                            tracing::warn!(addr = %self.options.addr, error = %e, "re-subscription refused");
                        }
                    }
                }
            }
        }
    }

    fn pending_reply(
        &mut self,
        frame: Frame,
        limit: Duration,
        wrap: impl FnOnce(Waiter) -> Purpose,
        ctx: &mut Context<Self>,
    ) -> Reply {
        let (tx, rx) = oneshot::channel();
        match self.request(frame, limit, wrap(tx), ctx) {
            Ok(()) => Reply::Pending(rx),
            Err(e) => Reply::Done(Err(e)),
        }
    }
}

impl Actor for ClientActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        self.connect(ctx);
    }
}

impl StreamHandler<Incoming> for ClientActor {
    fn handle(&mut self, incoming: Incoming, ctx: &mut Self::Context) {
        if incoming.generation != self.generation || self.conn.is_none() {
            return;
        }
        match incoming.item {
            Some(Ok(frame)) => self.on_frame(frame, incoming.quick, ctx),
            Some(Err(e)) => self.disconnect(e.to_string(), ctx),
            None => self.disconnect("server closed the connection".into(), ctx),
        }
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // Each connection's end arrives as an `Incoming` with no item.
    }
}

impl Handler<Command> for ClientActor {
    type Result = Reply;

    fn handle(&mut self, command: Command, ctx: &mut Self::Context) -> Reply {
        let default_limit = self.options.request_timeout;
        match command {
            Command::Request(frame, limit) => {
                self.pending_reply(frame, limit.unwrap_or(default_limit), Purpose::Caller, ctx)
            }
            Command::Ping => self.pending_reply(
                Frame::new(Kind::PingEcho),
                default_limit,
                Purpose::Caller,
                ctx,
            ),
            Command::Send(frame) => Reply::Done(self.write(frame, ctx)),
            Command::Quick(frame) => Reply::Done(self.write_quick(frame)),
            Command::Subscribe(urls, subscribe) => {
                if urls.is_empty() || urls.iter().any(|u| !u.starts_with('/')) {
                    return Reply::Done(Err(RequestError::Refused(Status::ARGUMENTS)));
                }
                let frame = subscription(&urls, subscribe);
                self.pending_reply(
                    frame,
                    default_limit,
                    |w| Purpose::Subscription(urls, subscribe, Some(w)),
                    ctx,
                )
            }
            Command::Listen(recipient) => {
                self.listeners.push(recipient);
                Reply::Done(Ok(()))
            }
            Command::Info => Reply::Info(self.conn.as_ref().map(|c| c.info.clone())),
            Command::Queued => Reply::Queued(self.conn.as_ref().map_or(0, |c| c.out.queued())),
            Command::Missed => Reply::Missed(self.missed.get()),
            Command::Close => {
                self.closing = true;
                self.disconnect("closed by the client".into(), ctx);
                ctx.stop();
                Reply::Done(Ok(()))
            }
        }
    }
}

/// Packets from the quick channel; malformed ones and receive errors (ICMP
/// after a send) are skipped, never ending the connection.
fn quick_packets(socket: Rc<tokio::net::UdpSocket>) -> impl futures::Stream<Item = Frame> {
    let buf = vec![0u8; crate::wire::frame::MAX_UDP_PACKET];
    futures::stream::unfold((socket, buf), |(socket, mut buf)| async move {
        loop {
            let n = match socket.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::trace!(error = %e, "quick channel receive");
                    continue;
                }
            };
            let mut packet = bytes::BytesMut::from(&buf[..n]);
            match crate::wire::frame::decode(&mut packet, crate::wire::frame::MAX_UDP_PACKET) {
                Ok(frame) => return Some((frame, (socket, buf))),
                Err(e) => tracing::debug!(error = %e, "malformed quick packet dropped"),
            }
        }
    })
}
