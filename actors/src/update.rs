//! The Updater: installs approved releases from a Releaser or a static
//! mirror, atomically, with a journal that survives `kill -9`.
//!
//! Work in progress (the Updater issue). What exists:
//!
//! - [`install`]: the install root (`versions/<version>/`, a `current`
//!   symlink flipped atomically, a journal that finishes or undoes an
//!   interrupted install, kept generations, one updater at a time);
//! - [`source`] and [`download`]: TUF refresh through `tough` from a
//!   Releaser (psvc protocol) or an HTTP mirror, and resumable, bounded,
//!   verified downloads;
//! - [`probation`]: a new version proves itself (boot counter, health
//!   deadline, probation period) or the previous one comes back and the
//!   new one is marked bad;
//! - [`updater`]: the `Updater` actor (check, apply, status, rollback).
//!
//! See docs/updates.md.

pub mod download;
pub mod install;
pub mod probation;
pub mod source;
pub mod updater;
