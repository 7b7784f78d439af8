//! [`Server`]: how a server is built (authentication, info, options, TLS,
//! the recipients of its events and packets).

use std::sync::Arc;

use super::auth::Auth;
use super::dispatch::Dispatch;
use super::events::{ClientEvent, Inbound};
use super::options::ServerOptions;
use super::stats::ServerStats;
use crate::net::tls::ServerTls;
use crate::supervisor::ChildRecipient;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding the listening socket failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The listener actor stopped before reporting its address.
    #[error("listener stopped during start")]
    Stopped,
}

/// Builds a VSOA-compatible server: authentication (required), info,
/// options, TLS and the recipients of its events and packets.
#[derive(Debug, Clone)]
pub struct Server {
    pub(crate) auth: Auth,
    pub(crate) info: Arc<str>,
    pub(crate) options: ServerOptions,
    pub(crate) tls: Option<ServerTls>,
    pub(crate) events: Vec<ChildRecipient<ClientEvent>>,
    pub(crate) commander: Option<ChildRecipient<Inbound>>,
    pub(crate) commands: Option<Arc<dyn Dispatch>>,
    pub(crate) broker: Option<ChildRecipient<Inbound>>,
    pub(crate) quick: bool,
    /// Shared by every listener instance built from this server.
    pub(crate) stats: Arc<ServerStats>,
}

impl Server {
    /// A server with an explicit authentication choice and default options.
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            info: Arc::from("{}"),
            options: ServerOptions::default(),
            tls: None,
            events: Vec::new(),
            commander: None,
            commands: None,
            broker: None,
            quick: true,
            stats: Arc::default(),
        }
    }

    /// Server info sent to clients in SERVINFO (JSON).
    #[must_use]
    pub fn info(mut self, info: serde_json::Value) -> Self {
        self.info = Arc::from(info.to_string());
        self
    }

    /// Replaces the options.
    #[must_use]
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves TLS instead of plain TCP.
    #[must_use]
    pub fn tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Receives connect/disconnect/subscribe events. Give a supervised
    /// child's [`ChildRef::recipient`](crate::ChildRef::recipient) (it
    /// reaches every restarted instance) or a plain actix `Recipient`.
    /// Events are never waited for: one that finds the mailbox full or
    /// the child restarting is dropped and counted
    /// ([`ServerCounters::events_dropped`](super::ServerCounters::events_dropped)).
    #[must_use]
    pub fn on_client(mut self, recipient: impl Into<ChildRecipient<ClientEvent>>) -> Self {
        self.events.push(recipient.into());
        self
    }

    /// Receives RPC and datagram packets (a
    /// [`Commander`](crate::commander::Commander)); a supervised child's
    /// [`ChildRef::recipient`](crate::ChildRef::recipient) survives its
    /// restarts. Without one, RPCs are answered with status 3 (invalid
    /// URL) and datagrams are dropped; while it restarts, RPCs are
    /// answered with status 4 (no responding).
    #[must_use]
    pub fn commander(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        self.commander = Some(recipient.into());
        self
    }

    /// Serves RPCs and client datagrams from these routes
    /// ([`Commander::commands`](crate::commander::Commander::commands)):
    /// each session runs the handler itself, so a handler that does not
    /// wait is answered with no message passed at all; one that waits runs
    /// as a task and its reply is queued to the session. Takes precedence
    /// over [`Server::commander`].
    #[must_use]
    pub fn commands(mut self, commands: impl Dispatch) -> Self {
        self.commands = Some(Arc::new(commands));
        self
    }

    /// Receives SUBSCRIBE/UNSUBSCRIBE (after the session recorded them:
    /// the URLs that changed, as a JSON list in param) and client PUBLISH
    /// packets (a [`Broker`](crate::broker::Broker)). Give a supervised
    /// broker's [`ChildRef::recipient`](crate::ChildRef::recipient): a
    /// restarted Broker rebuilds its index from the live sessions, so
    /// connected clients see nothing of the restart.
    #[must_use]
    pub fn broker(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        self.broker = Some(recipient.into());
        self
    }

    /// Receives every packet the transport does not handle itself (RPC,
    /// DATAGRAM, PUBLISH, SUBSCRIBE, UNSUBSCRIBE): one dispatcher of your
    /// own instead of a Commander and a Broker.
    #[must_use]
    pub fn inbound(mut self, recipient: impl Into<ChildRecipient<Inbound>>) -> Self {
        let recipient = recipient.into();
        self.commander = Some(recipient.clone());
        self.broker = Some(recipient);
        self
    }

    /// Counts into `stats` (shared with other servers of the service)
    /// instead of counters of its own.
    pub(crate) fn count_into(mut self, stats: Arc<ServerStats>) -> Self {
        self.stats = stats;
        self
    }

    /// Whether to open the quick UDP channel on the server's port (on by
    /// default; never under TLS, as in VSOA).
    #[must_use]
    pub fn quick(mut self, on: bool) -> Self {
        self.quick = on;
        self
    }
}
