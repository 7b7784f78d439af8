//! Component actors for psvc services, built on the `psvc` runtime exactly
//! as a user would build their own, and the `psvc` command-line tool.
//!
//! # Layout
//! - [`cli`]: the `psvc` command (`actors/src/bin/psvc.rs` is a thin
//!   wrapper): configuration, client verbs, and the release verbs.
//! - [`release`]: the Builder, the signed release repository (TUF through
//!   `tough`: keys, k-of-n approval, channels, staged rollout) and the
//!   Releaser actor; see `docs/releases.md`.
//! - [`update`]: the Updater (TUF refresh from a Releaser or a mirror,
//!   resumable verified downloads, journaled atomic install, rollback);
//!   see `docs/updates.md`.
//!
//! The process-worker actors land here as their issue is done; see
//! `docs/architecture.md`.

pub mod cli;
pub mod forward;
mod fsutil;
pub mod release;
pub mod update;
pub mod worker;
