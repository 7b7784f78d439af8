//! The server side of the network: a [`Listener`] actor accepts TCP (or TLS)
//! connections and starts one [`Session`] actor per peer (PyService's Socket,
//! done the actor way).
//!
//! A session reads frames as a stream and writes them through a sink, runs
//! the VSOA handshake (SERVINFO, password, 5 s limit), answers PINGECHO,
//! ignores NOOP, applies QOSSETUP priorities (IP_TOS), and hands every other
//! packet to the service's [`Inbound`] recipient together with a
//! [`SessionRef`] to reply through. Malformed input ends that session only,
//! with the reason logged. Output to a slow peer is bounded: see
//! [`SlowPeer`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), psvc::socket::ServerError> {
//! use psvc::socket::{Auth, Server};
//! let server = Server::new(Auth::password("secret"))
//!     .info(serde_json::json!({"name": "thermo"}))
//!     .start("127.0.0.1:3001")
//!     .await?;
//! println!("listening on {}", server.local_addr());
//! # Ok(()) }
//! ```

pub mod auth;
mod builder;
mod dispatch;
mod events;
mod handle;
mod listener;
mod options;
mod outbox;
mod session;
mod shared;
mod stats;

/// TLS settings (kept here for `psvc::socket::tls` paths).
pub use crate::net::tls;
pub use crate::net::tls::{ClientTls, ServerTls, TlsError};
pub use auth::{Auth, Authenticator, Hello, Throttle, Verdict};
pub use builder::{Server, ServerError};
pub use dispatch::{Dispatch, Reply};
pub use events::{ClientEvent, Inbound};
pub(crate) use handle::SessionTable;
pub use handle::{SessionInfo, SessionRef};
pub use listener::{ListSessions, Listener, LocalAddr, ServerHandle, StopListener};
pub use options::{ServerOptions, SlowPeer};
pub(crate) use session::subscription_urls;
pub use session::{Close, Outbound, Session, SetAuthed};
pub use stats::ServerCounters;
pub(crate) use stats::ServerStats;
