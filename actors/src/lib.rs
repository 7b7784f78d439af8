//! Component actors for psvc services, built on the `psvc` runtime exactly
//! as a user would build their own, and the `psvc` command-line tool.
//!
//! # Layout
//! - [`cli`]: the `psvc` command (`actors/src/bin/psvc.rs` is a thin
//!   wrapper). Today: `psvc config defaults | show | check`.
//!
//! The builder, releaser, updater and process-worker actors land here as
//! their issues are done; see `docs/architecture.md`.

pub mod cli;
pub mod release;
