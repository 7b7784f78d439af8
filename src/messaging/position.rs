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

use actix::prelude::*;
use serde::Deserialize;
use tokio::net::UdpSocket;

use crate::client::resolve::{AF_INET, AF_INET6, MAX_PACKET};
pub use crate::client::resolve::{Entry, QUERY_TIMEOUT, lookup};

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
