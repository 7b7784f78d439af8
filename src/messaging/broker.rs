//! The Broker: URL-prefix publish/subscribe (VSOA's `server.publish`,
//! `is_subscribed`), as an actor.
//!
//! Remote clients subscribe over the wire (SUBSCRIBE/UNSUBSCRIBE, one URL or
//! a list); actors in the service subscribe with [`Subscribe`] and a
//! [`Recipient<Published>`]. Both go through the same rule:
//! `/` receives everything, `/a/` receives `/a`, `/a/b`, `/a/b/c` but not
//! `/ab`, and `/x` receives only `/x`. A publish reaches each subscribed
//! client once, only if it is `authed`, in priority order (7 first, then
//! by client id).
//!
//! A slow client is handled by its session's [`SlowPeer`] policy (the
//! broker never waits for one); a local subscriber whose mailbox is full
//! misses that message (counted in [`Delivered::dropped`]).
//!
//! [`SlowPeer`]: crate::socket::SlowPeer
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use actix::Actor;
//! use psvc::broker::{Broker, Publish};
//! use psvc::socket::{Auth, Server};
//! let broker = Broker::new().start();
//! let server = Server::new(Auth::anonymous())
//!     .broker(broker.clone().recipient())
//!     .start("127.0.0.1:3001")
//!     .await?;
//! let delivered = broker.send(Publish::new("/sensors/temp").json(&21.5)?).await?;
//! println!("sent to {} clients", delivered.sessions.len());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use serde::Serialize;

use crate::server::{Inbound, SessionRef, SessionTable};
use crate::wire::frame::{self, Frame, Kind, MAX_TCP_PACKET, MAX_UDP_PACKET};
use crate::wire::url;

/// A message published to local subscribers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub struct Published {
    /// The published URL.
    pub url: String,
    /// The param (JSON text by convention).
    pub param: Bytes,
    /// Raw data.
    pub data: Bytes,
}

/// Publish `url` to every subscriber it matches. Answers what was
/// delivered.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Delivered")]
#[non_exhaustive]
pub struct Publish {
    /// The URL (must start with `/`).
    pub url: String,
    /// The param (JSON text by convention).
    pub param: Bytes,
    /// Raw data.
    pub data: Bytes,
    /// Send over the quick UDP channel to clients that have one (others
    /// get it over TCP).
    pub quick: bool,
}

impl Publish {
    /// A publish of `url` with an empty payload.
    pub fn new(url: impl Into<String>) -> Self {
        Publish {
            url: url.into(),
            param: Bytes::new(),
            data: Bytes::new(),
            quick: false,
        }
    }

    /// Sets the param (JSON text by convention).
    #[must_use]
    pub fn param(mut self, param: impl Into<Bytes>) -> Self {
        self.param = param.into();
        self
    }

    /// Sets the param to `value` as JSON.
    ///
    /// # Errors
    /// `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, serde_json::Error> {
        Ok(self.param(serde_json::to_vec(value)?))
    }

    /// Sets the data.
    #[must_use]
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// Uses the quick UDP channel.
    #[must_use]
    pub fn quick(mut self, quick: bool) -> Self {
        self.quick = quick;
        self
    }
}

/// What a [`Publish`] reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
#[non_exhaustive]
pub struct Delivered {
    /// Client ids the packet was queued for, in delivery order (priority
    /// 7 first, then by id).
    pub sessions: Vec<u32>,
    /// Local subscribers that received it.
    pub local: usize,
    /// Local subscribers whose mailbox was full.
    pub dropped: usize,
    /// Set when the publish was refused (bad URL, too large).
    pub error: Option<String>,
}

/// Subscribe a local actor to a URL pattern (same rules as clients).
/// Answers the subscription id, for [`Unsubscribe`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, BrokerError>")]
pub struct Subscribe {
    /// The pattern: `/x`, `/a/`, or `/`.
    pub url: String,
    /// Who receives the messages.
    pub recipient: Recipient<Published>,
}

/// Remove a local subscription.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub u64);

/// Whether anyone (an authed client or a local actor) would receive a
/// publish of this URL: skip building payloads nobody reads.
#[derive(Debug, Clone, Message)]
#[rtype(result = "bool")]
pub struct IsSubscribed(pub String);

/// Why the broker refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The URL does not start with `/`.
    #[error("URL {0:?} does not start with '/'")]
    InvalidUrl(String),
}

/// Subscribers of one pattern: sessions by key, local ones by id.
#[derive(Debug, Default)]
struct Subscribers {
    sessions: HashSet<u64>,
    local: Vec<u64>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.local.is_empty()
    }
}

/// A client with at least one subscription.
#[derive(Debug)]
struct Remote {
    session: SessionRef,
    patterns: HashSet<String>,
}

/// The session tables the broker has heard from: a new instance (after a
/// restart) rebuilds its index from their live sessions.
type Tables = Arc<Mutex<Vec<Weak<SessionTable>>>>;

/// The publish/subscribe actor. Start it and hand its recipient to
/// [`crate::socket::Server::broker`]; publish with [`Publish`].
///
/// Clients' subscriptions belong to their sessions; the broker keeps an
/// index of them, keyed by session identity ([`SessionRef::key`]), so two
/// listeners can share one broker. Supervised ([`Broker::child_spec`]), a
/// restarted broker rebuilds that index from the live sessions before it
/// handles anything, and connected clients miss nothing.
#[derive(Debug, Default)]
pub struct Broker {
    exact: HashMap<String, Subscribers>,
    /// By key: the pattern without its trailing `/`.
    prefix: HashMap<String, Subscribers>,
    remotes: HashMap<u64, Remote>,
    locals: HashMap<u64, (String, Recipient<Published>)>,
    next_local: u64,
    /// Shared by the instances of one child spec.
    tables: Tables,
    /// Remote clients at the last sweep of closed sessions.
    swept_at: usize,
}

impl Broker {
    /// A broker with no subscribers.
    pub fn new() -> Self {
        Broker::default()
    }

    /// A supervised child running a broker. Its instances share what they
    /// learn of the servers' sessions, so a restarted one rebuilds the
    /// clients' subscriptions from the live sessions when it starts.
    pub fn child_spec(id: impl Into<String>) -> crate::ChildSpec<Broker> {
        let tables = Tables::default();
        crate::ChildSpec::new(id, move || Broker {
            tables: tables.clone(),
            ..Broker::default()
        })
    }

    /// Notes the session table of `session`, once.
    fn learn(&mut self, session: &SessionRef) {
        let table = &session.state().table;
        let mut tables = self.tables.lock();
        if !tables.iter().any(|t| t.ptr_eq(table)) {
            tables.retain(|t| t.strong_count() > 0);
            tables.push(table.clone());
        }
    }

    /// Rebuilds the index from the live sessions of the known tables.
    fn rebuild(&mut self) {
        let tables: Vec<Arc<SessionTable>> = self
            .tables
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for session in tables.iter().flat_map(|t| t.sessions()) {
            for pattern in session.subscriptions() {
                self.subscribe_remote(&session, &pattern);
            }
        }
        if !self.remotes.is_empty() {
            tracing::info!(
                clients = self.remotes.len(),
                "broker rebuilt its subscriptions from the live sessions"
            );
        }
    }

    fn slot(&mut self, pattern: &str) -> &mut Subscribers {
        match url::prefix_key(pattern) {
            Some(key) => self.prefix.entry(key.to_owned()).or_default(),
            None => self.exact.entry(pattern.to_owned()).or_default(),
        }
    }

    fn remove_from(&mut self, pattern: &str, session: Option<u64>, local: Option<u64>) {
        let (map, key) = match url::prefix_key(pattern) {
            Some(key) => (&mut self.prefix, key),
            None => (&mut self.exact, pattern),
        };
        if let Some(subs) = map.get_mut(key) {
            if let Some(key) = session {
                subs.sessions.remove(&key);
            }
            if let Some(id) = local {
                subs.local.retain(|s| *s != id);
            }
            if subs.is_empty() {
                map.remove(key);
            }
        }
    }

    fn subscribe_remote(&mut self, session: &SessionRef, pattern: &str) {
        if !session.connected() {
            return;
        }
        let key = session.key();
        let remote = self.remotes.entry(key).or_insert_with(|| Remote {
            session: session.clone(),
            patterns: HashSet::new(),
        });
        if !remote.patterns.insert(pattern.to_owned()) {
            return;
        }
        self.slot(pattern).sessions.insert(key);
        // Sessions that closed without a word are swept each time the
        // index doubles: amortized, and with no timer.
        if self.remotes.len() > 2 * self.swept_at.max(512) {
            self.sweep();
        }
    }

    fn unsubscribe_remote(&mut self, key: u64, pattern: &str) {
        let Some(remote) = self.remotes.get_mut(&key) else {
            return;
        };
        if !remote.patterns.remove(pattern) {
            return;
        }
        if remote.patterns.is_empty() {
            self.remotes.remove(&key);
        }
        self.remove_from(pattern, Some(key), None);
    }

    /// Drops the subscriptions of a client that has gone.
    fn forget(&mut self, id: u64) {
        if let Some(remote) = self.remotes.remove(&id) {
            for pattern in remote.patterns {
                self.remove_from(&pattern, Some(id), None);
            }
        }
    }

    fn sweep(&mut self) {
        let gone: Vec<u64> = self
            .remotes
            .iter()
            .filter(|(_, r)| !r.session.connected())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.forget(id);
        }
        self.swept_at = self.remotes.len();
    }

    /// Every subscriber set covering `target`.
    fn matching<'a>(&'a self, target: &'a str) -> impl Iterator<Item = &'a Subscribers> + 'a {
        let exact = self.exact.get(target);
        let prefix = url::covering_keys(target).filter_map(|k| self.prefix.get(k));
        exact.into_iter().chain(prefix)
    }

    fn publish(&mut self, msg: Publish) -> Delivered {
        let mut delivered = Delivered::default();
        if !url::valid(&msg.url) {
            delivered.error = Some(BrokerError::InvalidUrl(msg.url).to_string());
            return delivered;
        }
        let mut targets: Vec<&SessionRef> = Vec::new();
        let mut local: Vec<u64> = Vec::new();
        let mut stale: Vec<u64> = Vec::new();
        for subs in self.matching(&msg.url) {
            for id in &subs.sessions {
                match self.remotes.get(id) {
                    Some(r) if r.session.connected() => {
                        if r.session.authed() {
                            targets.push(&r.session);
                        }
                    }
                    _ => stale.push(*id),
                }
            }
            local.extend_from_slice(&subs.local);
        }
        targets.sort_by_key(|s| (std::cmp::Reverse(s.priority()), s.id(), s.key()));
        targets.dedup_by_key(|s| s.key());

        if !targets.is_empty() {
            let frame = Frame::new(Kind::Publish)
                .url(Bytes::from(msg.url.clone()))
                .param(msg.param.clone())
                .data(msg.data.clone());
            match encode(&frame, MAX_TCP_PACKET) {
                Ok(tcp) => {
                    let udp = msg
                        .quick
                        .then(|| encode(&frame, MAX_UDP_PACKET).ok())
                        .flatten();
                    for session in &targets {
                        let sent_quick = udp
                            .as_ref()
                            .is_some_and(|packet| session.send_quick_encoded(packet));
                        if !sent_quick {
                            session.push_encoded(&tcp);
                        }
                        delivered.sessions.push(session.id());
                    }
                }
                Err(e) => delivered.error = Some(format!("publish refused: {e}")),
            }
        }

        local.sort_unstable();
        local.dedup();
        let mut closed = Vec::new();
        for id in local {
            let Some((_, recipient)) = self.locals.get(&id) else {
                continue;
            };
            let message = Published {
                url: msg.url.clone(),
                param: msg.param.clone(),
                data: msg.data.clone(),
            };
            match recipient.try_send(message) {
                Ok(()) => delivered.local += 1,
                Err(SendError::Full(_)) => delivered.dropped += 1,
                Err(SendError::Closed(_)) => closed.push(id),
            }
        }
        for id in closed {
            self.unsubscribe_local(id);
        }
        for id in stale {
            self.forget(id);
        }
        delivered
    }

    fn unsubscribe_local(&mut self, id: u64) {
        if let Some((pattern, _)) = self.locals.remove(&id) {
            self.remove_from(&pattern, None, Some(id));
        }
    }

    fn is_subscribed(&self, target: &str) -> bool {
        self.matching(target).any(|subs| {
            !subs.local.is_empty()
                || subs.sessions.iter().any(|id| {
                    self.remotes
                        .get(id)
                        .is_some_and(|r| r.session.connected() && r.session.authed())
                })
        })
    }
}

fn encode(frame: &Frame, max: usize) -> Result<Bytes, frame::Error> {
    let mut buf = BytesMut::with_capacity(frame.checked_len(max)?);
    frame::encode(frame, &mut buf, max)?;
    Ok(buf.freeze())
}

impl Actor for Broker {
    type Context = Context<Self>;

    /// Rebuilds the index (after a restart) before any message is
    /// handled. No timer here: `started` may run while the runtime shuts
    /// down.
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.rebuild();
    }
}

impl Handler<Inbound> for Broker {
    type Result = ();

    fn handle(&mut self, msg: Inbound, _: &mut Self::Context) {
        let subscribe = match msg.frame.kind {
            Kind::Subscribe => true,
            Kind::Unsubscribe => false,
            Kind::Publish => {
                tracing::debug!(id = msg.session.id(), "client PUBLISH ignored");
                return;
            }
            _ => return,
        };
        let Some(urls) = crate::server::subscription_urls(&msg.frame) else {
            return;
        };
        self.learn(&msg.session);
        for pattern in &urls {
            if subscribe {
                self.subscribe_remote(&msg.session, pattern);
            } else {
                self.unsubscribe_remote(msg.session.key(), pattern);
            }
        }
    }
}

impl Handler<Publish> for Broker {
    type Result = Delivered;

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Delivered {
        self.publish(msg)
    }
}

impl Handler<Subscribe> for Broker {
    type Result = Result<u64, BrokerError>;

    fn handle(&mut self, msg: Subscribe, _: &mut Self::Context) -> Self::Result {
        if !url::valid(&msg.url) {
            return Err(BrokerError::InvalidUrl(msg.url));
        }
        self.next_local += 1;
        let id = self.next_local;
        self.slot(&msg.url).local.push(id);
        self.locals.insert(id, (msg.url, msg.recipient));
        Ok(id)
    }
}

impl Handler<Unsubscribe> for Broker {
    type Result = ();

    fn handle(&mut self, Unsubscribe(id): Unsubscribe, _: &mut Self::Context) {
        self.unsubscribe_local(id);
    }
}

impl Handler<IsSubscribed> for Broker {
    type Result = bool;

    fn handle(&mut self, IsSubscribed(target): IsSubscribed, _: &mut Self::Context) -> bool {
        self.is_subscribed(&target)
    }
}
