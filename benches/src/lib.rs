//! Benchmark harness for the psvc actor layer.
//!
//! The `actors` bench binary (`benches/actors.rs`) is a thin entry point; everything else
//! lives here:
//! - [`common`]: scenario and framework names, parameters, results and the worker protocol;
//! - one module per framework ([`fw_actix`], [`fw_tokio`], [`fw_ractor`], [`fw_kameo`] and,
//!   with the `psvc` feature, `psvc_fw`), each with one function per scenario;
//! - [`driver`]: runs every framework in its own process, interleaved over rounds, and writes
//!   the markdown report;
//! - [`cli`]: argument parsing shared by driver and worker modes;
//! - [`host`]: machine, toolchain and commit facts for every report (also used by the
//!   `network` and `messaging` harnesses);
//! - [`report`]: quick mode, medians, number formats, the results directory and the first
//!   environment lines, for all three harnesses;
//! - [`process`] (driver side) and [`role`] (role side): the separate, pinned processes of the
//!   `network` and `messaging` harnesses and their CPU time.
//!
//! Run with `cargo bench -p psvc-benches --bench actors [-- --rounds 5 --quick]`.

pub mod cli;
pub mod common;
pub mod driver;
pub mod fw_actix;
pub mod fw_kameo;
pub mod fw_ractor;
pub mod fw_tokio;
pub mod host;
pub mod process;
#[cfg(feature = "psvc")]
pub mod psvc_fw;
pub mod report;
pub mod role;
