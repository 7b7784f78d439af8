//! psvc: an actor-model framework for long-running services, on actix.
//!
//! # Layout
//! Modules are layered: each uses only those below it (no import cycles;
//! `tests/layering.rs` checks). From the bottom:
//! - [`wire`]: VSOA v2 packets as values ([`frame`]), their tokio-util
//!   [`codec`], URL rules and payload conventions; no IO.
//! - [`net`]: transports (plain TCP or TLS), TLS settings, and the client
//!   end of streams.
//! - [`supervisor`], [`config`], [`logging`], [`error`]: supervision trees
//!   with the OTP contract and stable [`ChildRef`] handles; `psvc.conf` with
//!   embedded defaults; `tracing` to the console and `logs/<Name>.log`.
//! - [`server`] (also reachable as `socket`): listener, sessions, handshake,
//!   bounds, and the [`server::Dispatch`] trait through which it reaches the
//!   messaging layer without naming it.
//! - [`client`]: the client actor with auto-reconnect (robot mode), typed
//!   calls, datagrams, streams, `vsoa://name` resolution.
//! - [`messaging`]: the [`commander`] (RPC routing to async, typed
//!   handlers), the [`broker`] (URL-prefix publish/subscribe), [`stream`]
//!   tunnels and the [`position`] name service.
//! - [`service`]: the [`Service`] lifecycle (init / run / destroy) run by a
//!   [`ServiceSystem`] that loads the configuration, sets up logging,
//!   handles signals and owns the root supervisor.
//! - [`sandbox`]: paths a peer supplies, kept under one root directory.
//!
//! The paths of earlier versions (`psvc::socket`, `psvc::frame`,
//! `psvc::codec`, `psvc::commander`, `psvc::broker`, `psvc::stream`,
//! `psvc::position`) are re-exports of the modules above.
//!
//! The [`prelude`] brings the names most services use.

pub mod client;
pub mod config;
pub mod error;
pub mod logging;
pub mod messaging;
pub mod net;
pub mod sandbox;
pub mod server;
pub mod service;
pub mod supervisor;
pub mod wire;

pub use messaging::{broker, commander, position, stream};
pub use server as socket;
pub use wire::{codec, frame};

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
