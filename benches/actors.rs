//! Actor-layer benchmark harness: psvc against raw actix, raw tokio, ractor and kameo.
//!
//! `cargo bench -p psvc-benches --bench actors [-- --rounds 5 --quick]` runs the driver, which
//! re-executes this binary as `--worker <framework> <scenario>` once per run. See the
//! `psvc_benches` library for the scenarios and the report format.

use std::alloc::System;
use std::process::ExitCode;

/// Counting allocator: `ALLOC.allocated()` is the live heap, read by the `heap_idle` scenario.
#[global_allocator]
static ALLOC: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

fn allocated() -> usize {
    ALLOC.allocated()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    ExitCode::from(psvc_benches::cli::main(&args, allocated))
}
