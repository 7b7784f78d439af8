//! The Position service: VSOA's name lookup over UDP, so clients can
//! connect to `vsoa://name` instead of an address.
//!
//! A query is one UDP datagram of JSON `{"name": "thermo", "domain": 2}`;
//! the answer is `{"name", "addr", "port", "domain", "security"}` or `{}`
//! when the name is unknown. Clients find position servers in
//! [`ClientOptions::position`](crate::client::ClientOptions::position), else
//! in `VSOA_POS_SERVER` (`ip:port,ip:port`), else in `/etc/vsoa.pos`
//! (`ip port` per line), like the VSOA libraries.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use psvc::position::Position;
//! let position = Position::new()
//!     .register("thermo", "127.0.0.1:3001".parse().unwrap(), false)
//!     .serve("127.0.0.1:3000")
//!     .await?;
//! println!("position service on {}", position.local_addr());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use crate::client::ConnectError;

/// How long a client waits for each answer, and how many times it asks
/// each server (VSOA: 2 s, 2 tries).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const QUERY_TRIES: usize = 2;
/// Largest query or answer.
const MAX_PACKET: usize = 4096;
/// The `domain` of IPv4 / IPv6 entries (the socket families' numbers).
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

/// One name's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The service name.
    pub name: String,
    /// Its IP address.
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// The address family (2 IPv4, 10 IPv6).
    pub domain: u32,
    /// Whether the service uses TLS.
    #[serde(default)]
    pub security: bool,
}

#[derive(Debug, Deserialize)]
struct Query {
    name: String,
}

/// The name table, served over UDP by an actor.
#[derive(Debug, Default, Clone)]
pub struct Position {
    names: HashMap<String, Entry>,
}

impl Position {
    /// An empty table.
    pub fn new() -> Self {
        Position::default()
    }

    /// Adds (or replaces) `name` → `addr`.
    #[must_use]
    pub fn register(mut self, name: &str, addr: SocketAddr, security: bool) -> Self {
        self.names
            .insert(name.to_owned(), entry(name, addr, security));
        self
    }

    /// Binds `addr` (UDP) and serves the table from an actor on the current
    /// arbiter.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn serve(self, addr: &str) -> std::io::Result<PositionHandle> {
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let actor = PositionActor {
            names: self.names,
            socket: socket.clone(),
        };
        let addr = PositionActor::create(|ctx| {
            ctx.add_stream(queries(socket));
            actor
        });
        tracing::info!(addr = %local, "position service listening");
        Ok(PositionHandle { addr, local })
    }
}

fn entry(name: &str, addr: SocketAddr, security: bool) -> Entry {
    Entry {
        name: name.to_owned(),
        addr: addr.ip().to_string(),
        port: addr.port(),
        domain: if addr.is_ipv4() { AF_INET } else { AF_INET6 },
        security,
    }
}

/// A running position service.
#[derive(Debug, Clone)]
pub struct PositionHandle {
    addr: Addr<PositionActor>,
    local: SocketAddr,
}

impl PositionHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Adds or replaces a name while running.
    ///
    /// # Errors
    /// The service has stopped.
    pub async fn register(
        &self,
        name: &str,
        addr: SocketAddr,
        security: bool,
    ) -> Result<(), MailboxError> {
        let entry = entry(name, addr, security);
        self.addr.send(Register(Some(entry), name.to_owned())).await
    }

    /// Removes a name.
    ///
    /// # Errors
    /// The service has stopped.
    pub async fn unregister(&self, name: &str) -> Result<(), MailboxError> {
        self.addr.send(Register(None, name.to_owned())).await
    }

    /// Stops the service.
    pub fn stop(&self) {
        let _ = self.addr.try_send(StopPosition);
    }
}

/// The actor answering queries.
#[derive(Debug)]
pub struct PositionActor {
    names: HashMap<String, Entry>,
    socket: Arc<UdpSocket>,
}

impl Actor for PositionActor {
    type Context = Context<Self>;
}

struct Packet(Vec<u8>, SocketAddr);

fn queries(socket: Arc<UdpSocket>) -> impl futures::Stream<Item = Packet> {
    futures::stream::unfold(socket, |socket| async move {
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    buf.truncate(n);
                    return Some((Packet(buf, from), socket));
                }
                Err(e) => tracing::trace!(error = %e, "position receive"),
            }
        }
    })
}

impl StreamHandler<Packet> for PositionActor {
    fn handle(&mut self, Packet(query, from): Packet, _: &mut Self::Context) {
        let name = match serde_json::from_slice::<Query>(&query) {
            Ok(q) if !q.name.is_empty() => q.name,
            _ => {
                tracing::debug!(%from, "malformed position query ignored");
                return;
            }
        };
        let answer = match self.names.get(&name) {
            Some(e) => serde_json::to_vec(e).unwrap_or_else(|_| b"{}".to_vec()),
            None => b"{}".to_vec(),
        };
        if let Err(e) = self.socket.try_send_to(&answer, from) {
            tracing::debug!(%from, error = %e, "position answer not sent");
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Register(Option<Entry>, String);

impl Handler<Register> for PositionActor {
    type Result = ();
    fn handle(&mut self, Register(entry, name): Register, _: &mut Self::Context) {
        match entry {
            Some(e) => self.names.insert(name, e),
            None => self.names.remove(&name),
        };
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StopPosition;

impl Handler<StopPosition> for PositionActor {
    type Result = ();
    fn handle(&mut self, _: StopPosition, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Asks the position server at `server` for `name`.
///
/// # Errors
/// No answer in time, or the name is unknown (`NotFound`).
pub async fn lookup(name: &str, server: SocketAddr) -> std::io::Result<SocketAddr> {
    use std::io::{Error, ErrorKind};
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let query = serde_json::json!({ "name": name, "domain": AF_INET }).to_string();
    let mut buf = vec![0u8; MAX_PACKET];
    for _ in 0..QUERY_TRIES {
        socket.send(query.as_bytes()).await?;
        let Ok(received) = tokio::time::timeout(QUERY_TIMEOUT, socket.recv(&mut buf)).await else {
            continue;
        };
        let n = received?;
        let answer: Entry = serde_json::from_slice(&buf[..n])
            .map_err(|_| Error::new(ErrorKind::NotFound, format!("{name} is not registered")))?;
        let ip: std::net::IpAddr = answer
            .addr
            .parse()
            .map_err(|e| Error::new(ErrorKind::InvalidData, format!("bad address: {e}")))?;
        return Ok(SocketAddr::new(ip, answer.port));
    }
    Err(Error::new(
        ErrorKind::TimedOut,
        format!("no answer from position server {server}"),
    ))
}

/// Where the VSOA libraries keep the default position servers.
const POS_FILE: &str = "/etc/vsoa.pos";

/// The position servers to ask when none is configured: `VSOA_POS_SERVER`,
/// then `/etc/vsoa.pos` (read with `tokio::fs`, off the calling thread:
/// clients connect from actix threads).
async fn default_servers() -> Vec<SocketAddr> {
    let parse = |s: &str, sep: char| -> Option<SocketAddr> {
        let (ip, port) = s.trim().split_once(sep)?;
        Some(SocketAddr::new(
            ip.trim().parse().ok()?,
            port.trim().parse().ok()?,
        ))
    };
    if let Ok(list) = std::env::var("VSOA_POS_SERVER") {
        let servers: Vec<SocketAddr> = list.split(',').filter_map(|s| parse(s, ':')).collect();
        if !servers.is_empty() {
            return servers;
        }
    }
    tokio::fs::read_to_string(POS_FILE)
        .await
        .map(|text| text.lines().filter_map(|l| parse(l, ' ')).collect())
        .unwrap_or_default()
}

/// Turns a client address into `host:port`: plain `host:port` is kept;
/// `vsoa://host:port/path` loses scheme and path; `vsoa://name` is looked
/// up in the position service.
pub(crate) async fn resolve(
    addr: &str,
    server: Option<SocketAddr>,
) -> Result<String, ConnectError> {
    let Some(rest) = addr.strip_prefix("vsoa://") else {
        return Ok(addr.to_owned());
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(ConnectError::NotFound(format!("{addr}: no host")));
    }
    if let Some((name, port)) = host.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && !name.ends_with(':')
    {
        let name = if name == "localhost" {
            "127.0.0.1"
        } else {
            name
        };
        return Ok(format!("{name}:{port}"));
    }
    let servers = match server {
        Some(s) => vec![s],
        None => default_servers().await,
    };
    if servers.is_empty() {
        return Err(ConnectError::NotFound(format!(
            "{addr}: no position server (set VSOA_POS_SERVER or /etc/vsoa.pos)"
        )));
    }
    let mut last = String::new();
    for server in servers {
        match lookup(host, server).await {
            Ok(found) => return Ok(found.to_string()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ConnectError::NotFound(format!("{addr}: {last}")))
}
