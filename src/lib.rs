//! psvc: an actor-model framework for long-running services, on actix.
//!
//! # Layout
//! - [`supervisor`]: supervision trees with the OTP contract (strategies,
//!   restart types, intensity with escalation, backoff, ordered shutdown,
//!   panic containment) and stable [`ChildRef`] handles.
//! - [`service`]: the [`Service`] lifecycle (init / run / destroy) run by a
//!   [`ServiceSystem`] that loads the configuration, sets up logging, handles
//!   signals and owns the root supervisor.
//! - [`config`]: `psvc.conf` (INI or TOML) with embedded defaults and
//!   `PSVC_*` environment overrides.
//! - [`logging`]: `tracing` to the console and to `logs/<Name>.log`.
//! - [`frame`] and [`codec`]: VSOA v2 packets and their tokio-util codec.
//! - [`socket`]: the server side (listener, sessions, handshake, TLS).
//! - [`client`]: the client actor with auto-reconnect (robot mode), typed
//!   calls, datagrams and streams.
//! - [`commander`]: RPC routing by URL to async, typed handlers.
//! - [`broker`]: URL-prefix publish/subscribe for clients and local actors.
//! - [`stream`]: one-shot stream tunnels and file transfer with SHA-256.
//! - [`position`]: VSOA's name lookup service (`vsoa://name`).
//! - [`sandbox`]: paths a peer supplies, kept under one root directory.
//!
//! The [`prelude`] brings the names most services use.

pub mod broker;
pub mod client;
pub mod codec;
pub mod commander;
pub mod config;
pub mod error;
pub mod frame;
pub mod logging;
pub mod position;
pub mod sandbox;
pub mod service;
pub mod socket;
pub mod stream;
pub mod supervisor;
mod url;

pub use error::{Error, Result};
pub use service::{ExitStatus, Service, ServiceContext, ServiceSystem};
pub use supervisor::{ChildRef, ChildSpec, SupervisorRef, SupervisorSpec};

/// The names most services use.
pub mod prelude {
    pub use crate::config::Config;
    pub use crate::service::{ConfigReloaded, ExitStatus, Service, ServiceContext, ServiceSystem};
    pub use crate::supervisor::{
        AskError, Backoff, ChildRecipient, ChildRef, ChildSpec, Directive, DynamicSupervisor,
        ExitReason, Failure, OneForAll, OneForOne, Overflow, RestForOne, Restart, Scope, SendError,
        Shutdown, Strategy, SupervisedContext, SupervisorRef, SupervisorSpec,
    };
    pub use actix::prelude::*;
}

/// The README's code compiles (checked by `cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
