//! The Commander: RPC routing by URL (PyService's Commander and
//! `@command(ident)`, VSOA's `server.on(url)`), as an actor.
//!
//! Routing follows VSOA: the exact URL, then the longest registered route
//! ending in `/` that covers it (`/a/` serves `/a` and `/a/b`), then the
//! default route `/`; otherwise the caller gets status 3 (invalid URL). A URL
//! that does not start with `/` gets status 2 (arguments).
//!
//! Handlers are async and run as tasks next to the Commander, never inside
//! its mailbox: a handler that awaits (another command, a remote service, a
//! timer) does not hold up other requests, and a handler may call commands
//! of its own service, or of a peer that calls back, without deadlock.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use psvc::commander::{CommandError, Commander, Request, Response};
//! use psvc::socket::{Auth, Server};
//! use actix::Actor;
//!
//! #[derive(serde::Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! let commander = Commander::new()
//!     .typed("/add", |args: Add, _req| async move { Ok::<_, CommandError>(args.a + args.b) })
//!     .route("/echo", |req: Request| async move {
//!         Ok(Response::ok().param(req.param.clone()).data(req.data.clone()))
//!     })
//!     .start();
//! let server = Server::new(Auth::anonymous())
//!     .commander(commander.recipient())
//!     .start("127.0.0.1:3001")
//!     .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use actix::prelude::*;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::server::{Dispatch, Inbound, Reply, SessionRef};
use crate::wire::frame::{Flags, Frame, Kind, MAX_TCP_PACKET, Status};
use crate::wire::payload::{error_message, json_param};
use crate::wire::url;

pub use super::response::{CommandError, CommandResult, Encoding, Method, Response};
use super::routes::Table;

/// An RPC request as a handler sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// The requested URL (always starts with `/`).
    pub url: String,
    /// GET or SET.
    pub method: Method,
    /// The caller's sequence number (0 for local calls).
    pub seqno: u32,
    /// The param, JSON text by convention.
    pub param: Bytes,
    /// Raw data.
    pub data: Bytes,
    /// The tunnel id, if the caller sent one.
    pub tunid: Option<u16>,
    /// Whether a datagram came over the quick UDP channel.
    pub quick: bool,
    caller: Option<SessionRef>,
    commands: Option<Commands>,
}

impl Request {
    /// A local request for `url` (GET, empty payload), for
    /// [`Commands::call`].
    pub fn new(url: impl Into<String>) -> Self {
        Request {
            url: url.into(),
            method: Method::Get,
            seqno: 0,
            param: Bytes::new(),
            data: Bytes::new(),
            tunid: None,
            quick: false,
            caller: None,
            commands: None,
        }
    }

    /// Makes it a SET.
    #[must_use]
    pub fn set(mut self) -> Self {
        self.method = Method::Set;
        self
    }

    /// Sets the param (JSON text by convention).
    #[must_use]
    pub fn with_param(mut self, param: impl Into<Bytes>) -> Self {
        self.param = param.into();
        self
    }

    /// Sets the data.
    #[must_use]
    pub fn with_data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// Sets the param to `value` as JSON.
    ///
    /// # Errors
    /// [`CommandError::Arguments`] if `value` cannot be serialized.
    pub fn with_json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, CommandError> {
        let json = serde_json::to_vec(value).map_err(|e| CommandError::Arguments(e.to_string()))?;
        Ok(self.with_param(json))
    }

    fn from_frame(frame: Frame, url: String, caller: SessionRef, quick: bool) -> Self {
        Request {
            url,
            method: if frame.flags.contains(Flags::SET) {
                Method::Set
            } else {
                Method::Get
            },
            seqno: frame.seqno,
            tunid: frame.flags.contains(Flags::TUNNEL).then_some(frame.tunid),
            param: frame.param,
            data: frame.data,
            quick,
            caller: Some(caller),
            commands: None,
        }
    }

    /// The session that sent the request (id, address, priority, authed);
    /// `None` for a local call.
    pub fn caller(&self) -> Option<&SessionRef> {
        self.caller.as_ref()
    }

    /// The commands of the service that received this request, to call
    /// other commands from inside a handler.
    pub fn commands(&self) -> Option<&Commands> {
        self.commands.as_ref()
    }

    /// The param parsed as JSON into `T` (an empty param reads as `null`).
    ///
    /// # Errors
    /// [`CommandError::Arguments`] with serde's message.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, CommandError> {
        json_param(&self.param).map_err(|e| CommandError::Arguments(e.to_string()))
    }

    /// The data decoded as postcard into `T`.
    ///
    /// # Errors
    /// [`CommandError::Arguments`] with postcard's message.
    pub fn postcard<T: DeserializeOwned>(&self) -> Result<T, CommandError> {
        postcard::from_bytes(&self.data).map_err(|e| CommandError::Arguments(e.to_string()))
    }

    /// Decodes the typed argument the way the caller sent it: JSON when
    /// there is a param, postcard when there is only data, `null` when
    /// there is neither.
    ///
    /// # Errors
    /// [`CommandError::Arguments`] if it does not decode.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<(T, Encoding), CommandError> {
        if self.param.is_empty() && !self.data.is_empty() {
            Ok((self.postcard()?, Encoding::Postcard))
        } else {
            Ok((self.json()?, Encoding::Json))
        }
    }
}

type RpcHandler = Arc<dyn Fn(Request) -> LocalBoxFuture<'static, CommandResult> + Send + Sync>;
type DatagramHandler = Arc<dyn Fn(Request) -> LocalBoxFuture<'static, ()> + Send + Sync>;

/// The routes of a [`Commander`]: built once, shared by every restart.
#[derive(Default, Clone)]
struct Routes {
    rpc: Table<RpcHandler>,
    datagram: Table<DatagramHandler>,
    /// Route → what it does ([`Commander::describe`]).
    descriptions: std::collections::BTreeMap<String, String>,
}

/// The RPC router. Build it with [`Commander::new`] and the route methods,
/// then either hand its [`Commands`] to
/// [`Server::commands`](crate::socket::Server::commands) (sessions dispatch
/// on the routes themselves: no mailbox between a request and its handler),
/// or start it as an actor and hand its recipient to
/// [`Server::commander`](crate::socket::Server::commander). As an actor it
/// also serves local calls ([`Call`]).
pub struct Commander {
    commands: Commands,
    mailbox: usize,
    max_inflight: usize,
    /// Handlers of this instance that are waiting.
    inflight: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Commander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commander")
            .field("routes", &self.routes())
            .finish_non_exhaustive()
    }
}

impl Default for Commander {
    fn default() -> Self {
        Commander::new()
    }
}

impl Clone for Commander {
    fn clone(&self) -> Self {
        Commander {
            commands: self.commands.clone(),
            mailbox: self.mailbox,
            max_inflight: self.max_inflight,
            inflight: Arc::default(),
        }
    }
}

impl Commander {
    /// A Commander with no routes.
    pub fn new() -> Self {
        Commander {
            commands: Commands {
                routes: Arc::new(Routes::default()),
            },
            mailbox: 4096,
            max_inflight: 4096,
            inflight: Arc::default(),
        }
    }

    /// Routes are built before the Commander starts; a clone taken in
    /// between (a child spec) keeps the table it saw.
    fn routes_mut(&mut self) -> &mut Routes {
        Arc::make_mut(&mut self.commands.routes)
    }

    /// Serves `route` with an async handler that sees the whole request and
    /// builds the whole reply. A route ending in `/` also serves every URL
    /// under it; `/` is the default route.
    ///
    /// # Panics
    /// If `route` does not start with `/` (a programming error).
    #[must_use]
    pub fn route<F, Fut>(mut self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CommandResult> + 'static,
    {
        assert!(url::valid(route), "route {route:?} must start with '/'");
        let handler: RpcHandler = Arc::new(move |req| handler(req).boxed_local());
        self.routes_mut().rpc.insert(route, handler);
        self
    }

    /// Serves `route` with a typed handler: the argument is decoded from the
    /// request (JSON in param, or postcard in data when the caller used the
    /// fast path) and the result is encoded the same way.
    ///
    /// # Panics
    /// If `route` does not start with `/`.
    #[must_use]
    pub fn typed<T, R, F, Fut>(self, route: &str, handler: F) -> Self
    where
        T: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(T, Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, CommandError>> + 'static,
    {
        self.route(route, move |req: Request| {
            let call = req
                .decode::<T>()
                .map(|(args, encoding)| (handler(args, req), encoding));
            async move {
                let (fut, encoding) = call?;
                Response::encode(&fut.await?, encoding)
            }
        })
    }

    /// Serves `route` with a blocking function, run on tokio's blocking
    /// pool (VSOA's WorkQueue): file IO, hardware access, heavy CPU work.
    ///
    /// # Panics
    /// If `route` does not start with `/`.
    #[must_use]
    pub fn blocking<F>(self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> CommandResult + Send + Sync + 'static,
    {
        let handler = Arc::new(handler);
        self.route(route, move |req: Request| {
            let handler = handler.clone();
            async move {
                let mut req = req;
                req.commands = None;
                tokio::task::spawn_blocking(move || handler(req))
                    .await
                    .map_err(|e| CommandError::Failed(format!("blocking handler: {e}")))?
            }
        })
    }

    /// Serves `route` with an async handler run on another arbiter (its
    /// own thread), so long or CPU-heavy work does not share the network
    /// thread. At most [`ARBITER_QUEUE`] requests of this route are queued
    /// or running on the arbiter at once; see
    /// [`Commander::on_arbiter_bounded`] for what happens beyond.
    ///
    /// # Panics
    /// If `route` does not start with `/`.
    #[must_use]
    pub fn on_arbiter<F, Fut>(self, route: &str, arbiter: ArbiterHandle, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CommandResult> + 'static,
    {
        self.on_arbiter_bounded(route, arbiter, ARBITER_QUEUE, handler)
    }

    /// [`Commander::on_arbiter`] with at most `capacity` (at least 1)
    /// requests of this route queued or running on the arbiter at once.
    ///
    /// actix hands work to an arbiter through an unbounded channel; this
    /// bound keeps a burst from queuing there without limit. A request that
    /// finds every slot taken is refused at once with status 6 (no memory)
    /// and a message saying the worker queue is full; it never reaches the
    /// arbiter. A slot is free again when its handler has finished (replied,
    /// failed or panicked).
    ///
    /// # Panics
    /// If `route` does not start with `/`.
    #[must_use]
    pub fn on_arbiter_bounded<F, Fut>(
        self,
        route: &str,
        arbiter: ArbiterHandle,
        capacity: usize,
        handler: F,
    ) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CommandResult> + 'static,
    {
        let handler = Arc::new(handler);
        let capacity = capacity.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        let slots = Arc::new(tokio::sync::Semaphore::new(capacity));
        let name: Arc<str> = Arc::from(route);
        self.route(route, move |req: Request| {
            let sent = match slots.clone().try_acquire_owned() {
                Ok(slot) => Ok(run_on_arbiter(&arbiter, handler.clone(), req, slot)),
                Err(_) => Err(worker_queue_full(&name, capacity)),
            };
            async move {
                match sent? {
                    Some(rx) => rx
                        .await
                        .map_err(|_| CommandError::Failed("worker arbiter stopped".into()))?,
                    None => Err(CommandError::Failed("worker arbiter stopped".into())),
                }
            }
        })
    }

    /// Handles client datagrams sent to `route` (same URL rules as RPC).
    /// Datagrams to a URL with no handler are dropped.
    ///
    /// # Panics
    /// If `route` does not start with `/`.
    #[must_use]
    pub fn datagram<F, Fut>(mut self, route: &str, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        assert!(url::valid(route), "route {route:?} must start with '/'");
        let handler: DatagramHandler = Arc::new(move |req| handler(req).boxed_local());
        self.routes_mut().datagram.insert(route, handler);
        self
    }

    /// Most handlers that wait at once, as an actor (default 4096); past
    /// it an RPC is answered with status 6 (no memory) and a datagram is
    /// dropped. Sessions serving [`Commands`] have their own per-session
    /// bound ([`ServerOptions::max_inflight`](crate::socket::ServerOptions)).
    #[must_use]
    pub fn max_inflight(mut self, limit: usize) -> Self {
        self.max_inflight = limit.max(1);
        self
    }

    /// Mailbox capacity (default 4096 queued requests).
    #[must_use]
    pub fn mailbox(mut self, capacity: usize) -> Self {
        self.mailbox = capacity.max(1);
        self
    }

    /// The registered RPC routes, sorted.
    pub fn routes(&self) -> Vec<String> {
        self.commands.routes()
    }

    /// Says what `route` does: shown by `/sys/help` and
    /// [`Commands::help`]. Describe a route before or after adding it.
    #[must_use]
    pub fn describe(mut self, route: &str, description: impl Into<String>) -> Self {
        self.routes_mut()
            .descriptions
            .insert(route.to_owned(), description.into());
        self
    }

    /// The routes as a shareable handle: for
    /// [`Server::commands`](crate::socket::Server::commands) and for local
    /// calls without an actor.
    pub fn commands(&self) -> Commands {
        self.commands.clone()
    }

    /// A supervised child running this Commander (restarts keep the routes).
    pub fn child_spec(self, id: impl Into<String>) -> crate::ChildSpec<Commander> {
        crate::ChildSpec::new(id, move || self.clone())
    }
}

/// The reply packet for `result`: an error becomes an error reply, and a
/// reply over the packet limit becomes status 6 (no memory) instead of
/// being dropped.
fn reply_frame(seqno: u32, result: CommandResult) -> Frame {
    let response = result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "command failed");
        e.to_response()
    });
    let frame = response.into_frame(seqno);
    match frame.checked_len(MAX_TCP_PACKET) {
        Ok(_) => frame,
        Err(e) => CommandError::status(
            Status::NO_MEMORY,
            format!("reply too large ({e}); use a stream"),
        )
        .to_response()
        .into_frame(seqno),
    }
}

/// The error reply to the request `seqno`.
pub(crate) fn error_reply(seqno: u32, error: CommandError) -> Frame {
    reply_frame(seqno, Err(error))
}

fn panicked(payload: &Box<dyn std::any::Any + Send>) -> CommandError {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    tracing::error!(%message, "command handler panicked");
    CommandError::Failed(format!("handler panicked: {message}"))
}

/// Default bound of [`Commander::on_arbiter`]: requests of one route queued
/// or running on its arbiter at once.
pub const ARBITER_QUEUE: usize = 1024;

/// Hands `req` to `handler` on `arbiter`, holding `slot` until the handler
/// has finished; `None` if the arbiter has stopped (the slot is freed).
fn run_on_arbiter<F, Fut>(
    arbiter: &ArbiterHandle,
    handler: Arc<F>,
    req: Request,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Option<oneshot::Receiver<CommandResult>>
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CommandResult> + 'static,
{
    let (tx, rx) = oneshot::channel();
    let sent = arbiter.spawn_fn(move || {
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(req))) {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind(),
            Err(p) => {
                drop(slot);
                let _ = tx.send(Err(panicked(&p)));
                return;
            }
        };
        actix::spawn(async move {
            let result = fut.await.unwrap_or_else(|p| Err(panicked(&p)));
            drop(slot);
            let _ = tx.send(result);
        });
    });
    sent.then_some(rx)
}

/// The refusal of a request that finds its route's worker queue full.
fn worker_queue_full(route: &str, capacity: usize) -> CommandError {
    tracing::debug!(%route, capacity, "worker queue full: request refused");
    CommandError::status(
        Status::NO_MEMORY,
        format!(
            "worker queue full: {capacity} requests for {route} already queued or running on its arbiter"
        ),
    )
}

impl Actor for Commander {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
    }
}

impl Handler<Inbound> for Commander {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let Inbound {
            session,
            frame,
            quick,
            ..
        } = msg;
        let work = match frame.kind {
            Kind::Rpc => {
                let seqno = frame.seqno;
                if self.inflight.load(Ordering::Relaxed) >= self.max_inflight {
                    let message = format!("more than {} requests in flight", self.max_inflight);
                    let error = CommandError::status(Status::NO_MEMORY, message);
                    session.push(error_reply(seqno, error));
                    return;
                }
                match self.commands.rpc(&session, frame) {
                    Reply::Ready(reply) => {
                        session.push(reply);
                        return;
                    }
                    Reply::Later(reply) => async move {
                        session.push(reply.await);
                    }
                    .boxed_local(),
                }
            }
            Kind::Datagram if self.inflight.load(Ordering::Relaxed) < self.max_inflight => {
                match self.commands.datagram(session, frame, quick) {
                    Some(work) => work,
                    None => return,
                }
            }
            _ => return,
        };
        // Handlers that wait run in this actor's context: bounded by
        // `max_inflight`, cancelled if the Commander stops.
        let slot = InFlight::take(&self.inflight);
        ctx.spawn(
            async move {
                work.await;
                drop(slot);
            }
            .into_actor(self),
        );
    }
}

/// One handler in flight; the count goes down when it ends or is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A local call: run the command for `request` as if a client had sent it
/// (no caller session).
#[derive(Debug, Message)]
#[rtype(result = "CommandResult")]
pub struct Call(pub Request);

impl Handler<Call> for Commander {
    type Result = ResponseFuture<CommandResult>;

    fn handle(&mut self, Call(req): Call, _: &mut Self::Context) -> Self::Result {
        match self.commands.dispatch(req) {
            Outcome::Ready(result) => Box::pin(std::future::ready(result)),
            Outcome::Later(fut) => fut,
        }
    }
}

/// The routes of a [`Commander`] as a handle: cheap to clone, `Send`, and
/// able to run commands itself. Sessions dispatch RPCs and datagrams
/// through it ([`Server::commands`](crate::socket::Server::commands)), and
/// handlers reach their own service's commands through
/// [`Request::commands`].
#[derive(Clone)]
pub struct Commands {
    routes: Arc<Routes>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands").finish_non_exhaustive()
    }
}

/// A handler's result, ready now or to wait for.
pub(crate) enum Outcome {
    Ready(CommandResult),
    Later(LocalBoxFuture<'static, CommandResult>),
}

impl Commands {
    /// The registered RPC routes, sorted.
    pub fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self.routes.rpc.routes().collect();
        routes.sort();
        routes
    }

    /// Every RPC route, sorted, with its description if it has one
    /// ([`Commander::describe`]).
    pub fn help(&self) -> Vec<(String, Option<String>)> {
        self.routes()
            .into_iter()
            .map(|route| {
                let description = self.routes.descriptions.get(&route).cloned();
                (route, description)
            })
            .collect()
    }

    fn find(&self, target: &str) -> Result<RpcHandler, CommandError> {
        if !url::valid(target) {
            return Err(CommandError::Arguments(format!(
                "URL {target:?} does not start with '/'"
            )));
        }
        self.routes
            .rpc
            .find(target)
            .cloned()
            .ok_or_else(|| CommandError::NotFound(target.to_owned()))
    }

    /// Runs the handler for `req` as far as it goes without waiting (most
    /// handlers finish there); panics, early or late, become errors.
    pub(crate) fn dispatch(&self, mut req: Request) -> Outcome {
        let handler = match self.find(&req.url) {
            Ok(h) => h,
            Err(e) => return Outcome::Ready(Err(e)),
        };
        req.commands = Some(self.clone());
        // The handler's synchronous part runs here: contain its panics too.
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(req))) {
            Ok(fut) => fut,
            Err(p) => return Outcome::Ready(Err(panicked(&p))),
        };
        let mut fut = AssertUnwindSafe(fut)
            .catch_unwind()
            .map(|r| r.unwrap_or_else(|p| Err(panicked(&p))));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(result) => Outcome::Ready(result),
            // Polled again by whoever awaits it, which registers the real
            // waker.
            Poll::Pending => Outcome::Later(fut.boxed_local()),
        }
    }

    /// Runs the command for `request`; errors come back as
    /// [`CommandError`], replies with any status as `Ok`.
    ///
    /// # Errors
    /// The command failed.
    pub async fn call(&self, request: Request) -> CommandResult {
        match self.dispatch(request) {
            Outcome::Ready(result) => result,
            Outcome::Later(fut) => fut.await,
        }
    }

    /// Calls `route` with a typed argument (JSON) and decodes the typed
    /// result; a non-zero reply status is an error.
    ///
    /// # Errors
    /// The command failed, returned a non-zero status, or its result does
    /// not decode as `R`.
    pub async fn call_json<T, R>(&self, route: &str, args: &T) -> Result<R, CommandError>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let response = self.call(Request::new(route).with_json(args)?).await?;
        if !response.status.is_ok() {
            let message = error_message(&response.param);
            return Err(CommandError::status(response.status, message));
        }
        response.parse_json()
    }
}

impl Dispatch for Commands {
    /// The reply to an RPC packet from `session`.
    fn rpc(&self, session: &SessionRef, frame: Frame) -> Reply {
        let seqno = frame.seqno;
        let Some(target) = frame.url_str().map(str::to_owned) else {
            let error = CommandError::Arguments("URL is not UTF-8".into());
            return Reply::Ready(reply_frame(seqno, Err(error)));
        };
        let req = Request::from_frame(frame, target, session.clone(), false);
        match self.dispatch(req) {
            Outcome::Ready(result) => Reply::Ready(reply_frame(seqno, result)),
            Outcome::Later(fut) => {
                Reply::Later(async move { reply_frame(seqno, fut.await) }.boxed_local())
            }
        }
    }

    /// Runs the datagram handler for a packet from `session`, if any, as
    /// far as it goes without waiting; what is left to run comes back for
    /// the caller to drive (and bound). Panics are contained and logged.
    fn datagram(
        &self,
        session: SessionRef,
        frame: Frame,
        quick: bool,
    ) -> Option<LocalBoxFuture<'static, ()>> {
        let target = frame.url_str().map(str::to_owned)?;
        let Some(handler) = self.routes.datagram.find(&target).cloned() else {
            tracing::trace!(url = %target, "datagram with no handler dropped");
            return None;
        };
        let mut req = Request::from_frame(frame, target, session, quick);
        req.commands = Some(self.clone());
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(req))) {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind(),
            Err(p) => {
                tracing::warn!(error = %panicked(&p), "datagram handler panicked");
                return None;
            }
        };
        let mut fut = fut.map(|r| {
            if let Err(p) = r {
                tracing::warn!(error = %panicked(&p), "datagram handler panicked");
            }
        });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut fut).poll(&mut cx) {
            Poll::Ready(()) => None,
            Poll::Pending => Some(fut.boxed_local()),
        }
    }
}
