//! The client side: a [`Client`] actor that connects to a VSOA server (psvc
//! or any other), runs the handshake, matches replies to requests by seqno,
//! and in robot mode keeps the connection alive: keepalive pings, a
//! disconnect after N lost pings, reconnects with backoff, re-subscription,
//! and a clear error for every request pending when the link drops.
//!
//! Output is bounded: at most [`ClientOptions::send_buffer`] bytes wait for
//! the socket; a request that does not fit fails at once with
//! [`RequestError::SendBufferFull`], and output that makes no progress for
//! [`ClientOptions::send_timeout`] drops the connection as a slow server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use psvc::client::{Client, ClientOptions, Robot};
//! let client = Client::connect(
//!     ClientOptions::new("127.0.0.1:3001").password("secret").robot(Robot::default()),
//! )
//! .await?;
//! let rtt = client.ping().await?;
//! client.subscribe(["/sensors/"]).await?;
//! # Ok(()) }
//! ```

mod actor;
mod connect;
mod outbox;
pub(crate) mod resolve;

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;

use crate::net::tls::ClientTls;
use crate::supervisor::Backoff;
use crate::wire::frame::{Flags, Frame, Kind};

pub use actor::ClientActor;

/// VSOA's connect result codes (`Client.CONNECT_*` in the VSOA libraries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Code 1: a local error (bad address, socket failure).
    #[error("connect error: {0}")]
    Error(String),
    /// Code 2: nothing accepts connections there.
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// Code 3: the server name could not be resolved.
    #[error("server not found: {0}")]
    NotFound(String),
    /// Code 4: no answer to the connect or the handshake in time, or the
    /// server closed before answering.
    #[error("server not responding: {0}")]
    NoResponding(String),
    /// Code 5: the answer is not a SERVINFO reply.
    #[error("invalid server response: {0}")]
    InvalidResponding(String),
    /// Code 6: the server refused the password.
    #[error("invalid password")]
    InvalidPassword,
    /// Code 7: the TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

impl ConnectError {
    /// The VSOA numeric code.
    pub fn code(&self) -> i32 {
        match self {
            ConnectError::Error(_) => 1,
            ConnectError::Unreachable(_) => 2,
            ConnectError::NotFound(_) => 3,
            ConnectError::NoResponding(_) => 4,
            ConnectError::InvalidResponding(_) => 5,
            ConnectError::InvalidPassword => 6,
            ConnectError::Tls(_) => 7,
        }
    }
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// There is no connection right now.
    #[error("not connected")]
    NotConnected,
    /// The connection dropped before the reply came.
    #[error("connection lost before the reply: {0}")]
    Disconnected(String),
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The packet is over the size limit.
    #[error("packet over the size limit")]
    TooLarge,
    /// The server refused (SUBSCRIBE/UNSUBSCRIBE status).
    #[error("refused with status {0}")]
    Refused(crate::wire::frame::Status),
    /// The client actor has stopped.
    #[error("client stopped")]
    Stopped,
    /// A quick datagram was asked for but the connection has no quick
    /// channel (TLS, or turned off).
    #[error("no quick channel on this connection")]
    NoQuickChannel,
    /// The quick channel failed to send.
    #[error("quick channel: {0}")]
    Quick(String),
    /// The packet does not fit in the send buffer
    /// ([`ClientOptions::send_buffer`]): the server is not reading as fast
    /// as the client writes. Nothing was sent or queued; try again later.
    #[error(
        "send buffer full: {queued} bytes already queued for the server (limit {limit}); not sent"
    )]
    SendBufferFull {
        /// Bytes queued when the packet was refused.
        queued: usize,
        /// The send buffer's size.
        limit: usize,
    },
}

/// Robot mode: keep the connection alive and come back after failures.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Robot {
    /// Time between keepalive pings.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered before it counts as lost.
    pub ping_timeout: Duration,
    /// Disconnect after this many consecutive lost pings.
    pub ping_lost: u32,
    /// Delay before reconnecting, growing on repeated failures.
    pub reconnect: Backoff,
}

impl Default for Robot {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(3),
            ping_timeout: Duration::from_secs(3),
            ping_lost: 3,
            reconnect: Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

impl Robot {
    /// Pings every `interval`, each answered within `interval`.
    #[must_use]
    pub fn ping(mut self, interval: Duration, lost: u32) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = interval;
        self.ping_lost = lost;
        self
    }

    /// Reconnect delays.
    #[must_use]
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = backoff;
        self
    }
}

/// Default [`ClientOptions::send_buffer`]: 1 MiB.
pub const DEFAULT_SEND_BUFFER: usize = 1024 * 1024;
/// Default [`ClientOptions::send_timeout`]: 2 s.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Where and how to connect.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// `host:port` of the server.
    pub addr: String,
    /// Password (VSOA `passwd`).
    pub password: Option<String>,
    /// Limit for TCP connect, TLS and handshake together.
    pub connect_timeout: Duration,
    /// Default request timeout (VSOA's is 60 s).
    pub request_timeout: Duration,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<ClientTls>,
    /// Robot mode; `None` for a one-shot connection.
    pub robot: Option<Robot>,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Open the quick UDP channel (VSOA does; never under TLS).
    pub quick: bool,
    /// The position server for `vsoa://name` addresses (else
    /// `VSOA_POS_SERVER` or `/etc/vsoa.pos`, as VSOA).
    pub position: Option<std::net::SocketAddr>,
    /// Most bytes of output queued for the server (default 1 MiB). A packet
    /// that does not fit is refused at once with
    /// [`RequestError::SendBufferFull`], never queued; keep it at least the
    /// largest packet (256 KiB) or such packets can never be sent.
    pub send_buffer: usize,
    /// A connection whose queued output makes no progress for this long
    /// (default 2 s) is dropped as a slow server; robot mode reconnects.
    pub send_timeout: Duration,
}

impl ClientOptions {
    /// Plain TCP to `addr`, no password, no robot.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            password: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            tls: None,
            robot: None,
            nodelay: true,
            quick: true,
            position: None,
            send_buffer: DEFAULT_SEND_BUFFER,
            send_timeout: DEFAULT_SEND_TIMEOUT,
        }
    }

    /// Size of the send buffer, in bytes.
    #[must_use]
    pub fn send_buffer(mut self, bytes: usize) -> Self {
        self.send_buffer = bytes;
        self
    }

    /// How long queued output may make no progress before the connection
    /// is dropped as a slow server.
    #[must_use]
    pub fn send_timeout(mut self, limit: Duration) -> Self {
        self.send_timeout = limit;
        self
    }

    /// Turns the quick UDP channel on or off.
    #[must_use]
    pub fn quick(mut self, on: bool) -> Self {
        self.quick = on;
        self
    }

    /// Resolves `vsoa://name` addresses with this position server.
    #[must_use]
    pub fn position(mut self, server: std::net::SocketAddr) -> Self {
        self.position = Some(server);
        self
    }

    /// Sends this password in the handshake.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Connect + handshake time limit.
    #[must_use]
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// Default request timeout.
    #[must_use]
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// Connects over TLS.
    #[must_use]
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Enables robot mode.
    #[must_use]
    pub fn robot(mut self, robot: Robot) -> Self {
        self.robot = Some(robot);
        self
    }
}

/// What the server said in its SERVINFO reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The info param (JSON text as sent).
    pub info: String,
    /// The client id the server assigned.
    pub client_id: u32,
    /// The server's address (streams connect to its IP).
    pub addr: std::net::SocketAddr,
    /// The server's quick port, when it announced one apart from its TCP
    /// port.
    pub quick_port: Option<u16>,
}

/// Something the server sent or a change of the connection.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum ClientMessage {
    /// Connected (again); subscriptions have been re-sent.
    Connected(ServerInfo),
    /// The connection dropped, with the reason.
    Disconnected(String),
    /// A PUBLISH for a subscribed URL.
    Published {
        /// The packet (url, param, data).
        frame: Frame,
        /// Whether it came over the quick UDP channel.
        quick: bool,
    },
    /// A DATAGRAM from the server.
    Datagram {
        /// The packet (url, param, data).
        frame: Frame,
        /// Whether it came over the quick UDP channel.
        quick: bool,
    },
    /// The server set this client's priority (QOSSETUP).
    Priority(u8),
}

/// A handle on a client actor. Clones share the connection; when the last
/// clone is dropped the client closes.
#[derive(Debug, Clone)]
pub struct Client {
    addr: Addr<ClientActor>,
    _owner: std::sync::Arc<CloseOnDrop>,
    /// TLS for streams: the connection's own.
    tls: Option<ClientTls>,
    /// Limit for opening a stream (TCP, TLS, token).
    connect_timeout: Duration,
}

/// Closes the client when the last handle goes.
#[derive(Debug)]
struct CloseOnDrop(Addr<ClientActor>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.try_send(Command::Close);
    }
}

impl Client {
    fn from_addr(addr: Addr<ClientActor>, options: &ClientOptions) -> Self {
        Self {
            _owner: std::sync::Arc::new(CloseOnDrop(addr.clone())),
            addr,
            tls: options.tls.clone(),
            connect_timeout: options.connect_timeout,
        }
    }
}

pub(crate) use actor::{Command, Reply};

/// An RPC to send with [`Client::rpc`]: URL, method, payload, timeout.
#[derive(Debug, Clone)]
pub struct Rpc {
    frame: Frame,
    timeout: Option<Duration>,
}

impl Rpc {
    /// A GET of `url`.
    pub fn get(url: &str) -> Self {
        Rpc {
            frame: Frame::new(Kind::Rpc).url(bytes::Bytes::copy_from_slice(url.as_bytes())),
            timeout: None,
        }
    }

    /// A SET of `url`.
    pub fn set(url: &str) -> Self {
        let mut rpc = Rpc::get(url);
        rpc.frame = rpc.frame.flags(Flags::SET);
        rpc
    }

    /// Sets the param (JSON text by convention).
    #[must_use]
    pub fn param(mut self, param: impl Into<bytes::Bytes>) -> Self {
        self.frame.param = param.into();
        self
    }

    /// Sets the param to `value` as JSON.
    ///
    /// # Errors
    /// [`CallError::Encode`] if it cannot be serialized.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, CallError> {
        let json = serde_json::to_vec(value).map_err(|e| CallError::Encode(e.to_string()))?;
        Ok(self.param(json))
    }

    /// Sets the data to `value` as postcard (and leaves the param empty).
    ///
    /// # Errors
    /// [`CallError::Encode`] if it cannot be serialized.
    pub fn postcard<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Self, CallError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| CallError::Encode(e.to_string()))?;
        Ok(self.param(bytes::Bytes::new()).data(bytes))
    }

    /// Sets the data.
    #[must_use]
    pub fn data(mut self, data: impl Into<bytes::Bytes>) -> Self {
        self.frame.data = data.into();
        self
    }

    /// Waits this long for the reply instead of the client's default.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }
}

/// Why a typed call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply (not connected, timeout, disconnect…).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The server answered with a non-zero status.
    #[error("status {status}: {message}")]
    Status {
        /// The reply status (VSOA's 1–6 or a user code 128–255).
        status: crate::wire::frame::Status,
        /// The server's `{"error": …}` message, or the param text.
        message: String,
        /// The whole reply.
        reply: Box<Frame>,
    },
    /// The argument could not be encoded.
    #[error("cannot encode the argument: {0}")]
    Encode(String),
    /// The reply did not decode as the expected type.
    #[error("cannot decode the reply: {0}")]
    Decode(String),
}

/// Decodes a typed reply: status 0 required; postcard when the reply has
/// data and no param, JSON otherwise (an empty param reads as `null`).
///
/// # Errors
/// [`CallError::Status`] for a non-zero status, [`CallError::Decode`] if
/// the payload is not an `R`.
pub fn decode_reply<R: serde::de::DeserializeOwned>(reply: &Frame) -> Result<R, CallError> {
    if !reply.status.is_ok() {
        return Err(CallError::Status {
            status: reply.status,
            message: crate::wire::payload::error_message(&reply.param),
            reply: Box::new(reply.clone()),
        });
    }
    if reply.param.is_empty() && !reply.data.is_empty() {
        return postcard::from_bytes(&reply.data).map_err(|e| CallError::Decode(e.to_string()));
    }
    crate::wire::payload::json_param(&reply.param).map_err(|e| CallError::Decode(e.to_string()))
}

/// Why a one-shot [`fetch`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The connection failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Connects, sends one RPC, returns the reply and closes (VSOA's `fetch`).
///
/// # Errors
/// [`FetchError`].
pub async fn fetch(options: ClientOptions, rpc: Rpc) -> Result<Frame, FetchError> {
    let client = Client::connect(options.quick(false)).await?;
    let reply = client.rpc(rpc).await;
    client.close();
    Ok(reply?)
}

impl Client {
    /// Starts a client and waits for its first connection.
    ///
    /// # Errors
    /// The VSOA connect result of the first attempt. In robot mode the
    /// client is stopped on this error; use [`Client::start`] to keep trying.
    pub async fn connect(options: ClientOptions) -> Result<Client, ConnectError> {
        let (tx, rx) = oneshot::channel();
        let client = Client::from_addr(
            ClientActor::new(options.clone(), Some(tx)).start(),
            &options,
        );
        match rx.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => {
                client.close();
                Err(e)
            }
            Err(_) => Err(ConnectError::Error("client stopped".into())),
        }
    }

    /// Starts a client that connects in the background (and, in robot
    /// mode, retries until it succeeds).
    pub fn start(options: ClientOptions) -> Client {
        let addr = ClientActor::new(options.clone(), None).start();
        Client::from_addr(addr, &options)
    }

    async fn command(&self, command: Command) -> Result<Reply, RequestError> {
        self.addr
            .send(command)
            .await
            .map_err(|_| RequestError::Stopped)
    }

    async fn wait(&self, command: Command) -> Result<Frame, RequestError> {
        match self.command(command).await? {
            Reply::Pending(rx) => rx.await.map_err(|_| RequestError::Stopped)?,
            Reply::Done(r) => r.map(|()| Frame::default()),
            Reply::Info(_) | Reply::Queued(_) | Reply::Missed(_) => Err(RequestError::Stopped),
        }
    }

    /// Sends a request and waits for the reply with the default timeout.
    /// The seqno is assigned by the client.
    ///
    /// # Errors
    /// See [`RequestError`]; a reply with a non-zero status is still `Ok`.
    pub async fn request(&self, frame: Frame) -> Result<Frame, RequestError> {
        self.wait(Command::Request(frame, None)).await
    }

    /// [`Client::request`] with its own timeout.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn request_timeout(
        &self,
        frame: Frame,
        limit: Duration,
    ) -> Result<Frame, RequestError> {
        self.wait(Command::Request(frame, Some(limit))).await
    }

    /// Sends a packet that expects no reply (DATAGRAM, NOOP).
    ///
    /// # Errors
    /// Not connected, or the packet is too large.
    pub async fn send(&self, frame: Frame) -> Result<(), RequestError> {
        self.wait(Command::Send(frame)).await.map(drop)
    }

    /// Sends a DATAGRAM to `url` over TCP, or over the quick UDP channel
    /// (unordered, may be lost; at most 65,507 bytes).
    ///
    /// # Errors
    /// Not connected, no quick channel (TLS, or the server has none), or
    /// the packet is too large.
    pub async fn datagram(
        &self,
        url: &str,
        param: impl Into<bytes::Bytes>,
        data: impl Into<bytes::Bytes>,
        quick: bool,
    ) -> Result<(), RequestError> {
        let frame = Frame::new(Kind::Datagram)
            .url(bytes::Bytes::copy_from_slice(url.as_bytes()))
            .param(param)
            .data(data);
        if quick {
            self.wait(Command::Quick(frame)).await.map(drop)
        } else {
            self.send(frame).await
        }
    }

    /// Sends an RPC built with [`Rpc`] and returns the reply packet, whatever
    /// its status (header and payload).
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn rpc(&self, rpc: Rpc) -> Result<Frame, RequestError> {
        self.wait(Command::Request(rpc.frame, rpc.timeout)).await
    }

    /// Calls `url` with a typed argument as JSON in the param (any VSOA
    /// server understands it) and decodes the typed result.
    ///
    /// # Errors
    /// [`CallError`]: no reply, a non-zero status, or a result that does
    /// not decode.
    pub async fn call<T, R>(&self, url: &str, args: &T) -> Result<R, CallError>
    where
        T: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let reply = self.rpc(Rpc::get(url).json(args)?).await?;
        decode_reply(&reply)
    }

    /// [`Client::call`] with postcard in the data: the compact fast path
    /// between Rust peers (psvc `typed` commands accept both).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_postcard<T, R>(&self, url: &str, args: &T) -> Result<R, CallError>
    where
        T: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let reply = self.rpc(Rpc::get(url).postcard(args)?).await?;
        decode_reply(&reply)
    }

    /// Sends `rpc` (its own method, payload and timeout) and decodes the
    /// typed result like [`Client::call`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call_rpc<R: serde::de::DeserializeOwned>(&self, rpc: Rpc) -> Result<R, CallError> {
        let reply = self.rpc(rpc).await?;
        decode_reply(&reply)
    }

    /// Opens the stream a server offered in a reply's tunid, as VSOA
    /// clients do: over TLS when this client uses TLS, sending no token
    /// (see [`Client::open_stream`] for tunnels that require one). The
    /// stream has the default idle timeout
    /// ([`crate::net::tunnel::DEFAULT_IDLE_TIMEOUT`]).
    ///
    /// # Errors
    /// Not connected, the connection or its TLS handshake fails, or it
    /// takes longer than the connect timeout.
    pub async fn stream(&self, tunid: u16) -> std::io::Result<crate::net::tunnel::TunnelStream> {
        let info = self
            .info()
            .await
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
        let open = crate::net::tunnel::connect_with(info.addr, tunid, None, self.tls.as_ref());
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(
                crate::net::tunnel::StreamError::Io(e) | crate::net::tunnel::StreamError::Tls(e),
            )) => Err(e),
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        }
    }

    /// Opens the stream `reply` offers: its tunid, over TLS when this
    /// client uses TLS, sending the reply's one-time token first when it
    /// carries one (see [`crate::stream`]). Works with any tunnel a psvc
    /// or VSOA server offers.
    ///
    /// # Errors
    /// [`StreamError::NoTunnel`](crate::net::tunnel::StreamError::NoTunnel) if
    /// the reply offers none, a malformed token, not connected, the
    /// connection or its TLS handshake fails, or it takes longer than the
    /// connect timeout.
    pub async fn open_stream(
        &self,
        reply: &Frame,
    ) -> Result<crate::net::tunnel::TunnelStream, crate::net::tunnel::StreamError> {
        let info = self
            .info()
            .await
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
        let open = crate::net::tunnel::connect_reply(info.addr, reply, self.tls.as_ref());
        tokio::time::timeout(self.connect_timeout, open)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// PINGECHO round trip.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn ping(&self) -> Result<Duration, RequestError> {
        let start = std::time::Instant::now();
        self.wait(Command::Ping).await?;
        Ok(start.elapsed())
    }

    /// Subscribes to URLs (VSOA prefix rules); remembered and re-sent after
    /// every reconnect.
    ///
    /// # Errors
    /// See [`RequestError`]; [`RequestError::Refused`] if the server says no.
    pub async fn subscribe<I, S>(&self, urls: I) -> Result<(), RequestError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls = urls.into_iter().map(Into::into).collect();
        self.wait(Command::Subscribe(urls, true)).await.map(drop)
    }

    /// Unsubscribes from URLs.
    ///
    /// # Errors
    /// See [`RequestError`].
    pub async fn unsubscribe<I, S>(&self, urls: I) -> Result<(), RequestError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls = urls.into_iter().map(Into::into).collect();
        self.wait(Command::Subscribe(urls, false)).await.map(drop)
    }

    /// Delivers [`ClientMessage`]s (publishes, datagrams, connection
    /// changes) to `recipient`.
    ///
    /// # Errors
    /// The client has stopped.
    pub async fn on_message(
        &self,
        recipient: Recipient<ClientMessage>,
    ) -> Result<(), RequestError> {
        self.command(Command::Listen(recipient)).await.map(drop)
    }

    /// The server's SERVINFO answer, while connected.
    pub async fn info(&self) -> Option<ServerInfo> {
        match self.command(Command::Info).await {
            Ok(Reply::Info(info)) => info,
            _ => None,
        }
    }

    /// Bytes queued for the server and not yet written to the socket (0
    /// when not connected); at most [`ClientOptions::send_buffer`].
    pub async fn queued_bytes(&self) -> usize {
        match self.command(Command::Queued).await {
            Ok(Reply::Queued(n)) => n,
            _ => 0,
        }
    }

    /// Messages (publishes, datagrams, events) that a listener given to
    /// [`Client::on_message`] missed because its mailbox was full: they are
    /// dropped and counted, never waited for.
    pub async fn missed_messages(&self) -> u64 {
        match self.command(Command::Missed).await {
            Ok(Reply::Missed(n)) => n,
            _ => 0,
        }
    }

    /// Whether the client is connected now.
    pub async fn is_connected(&self) -> bool {
        self.info().await.is_some()
    }

    /// Closes the connection and stops the client (no reconnect).
    pub fn close(&self) {
        let _ = self.addr.try_send(Command::Close);
    }

    /// The actor.
    pub fn actor(&self) -> &Addr<ClientActor> {
        &self.addr
    }
}
