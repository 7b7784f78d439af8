//! psvc measurements — one function per scenario, mirroring the baseline modules
//! (`fw_actix`, `fw_tokio`, `fw_ractor`, `fw_kameo`).
//!
//! Contract for each function (see `crate::common`):
//! - build its own runtime (psvc runs on actix, so `actix_rt::System::new().block_on(..)`);
//! - run `p.warmup` unmeasured operations, then time `p.n` operations;
//! - end by waiting for processing (a final ask or an observed stop);
//! - verify what it claims (messages processed, restarts counted, generation of the instance
//!   that answered) and return a `BenchError` on mismatch — the worker then exits non-zero;
//! - return `Outcome::Measured(Sample::new(value, note))` in the scenario's unit
//!   (`Scenario::unit`), or `Outcome::Skipped(reason)`.
//!
//! `ask` should use `crate::common::measure_ask` (mean + HDR p50/p99), and `heap_idle` should
//! spawn `p.n` idle *supervised* children and use `(p.allocated)()` before/after, with any
//! `Vec` of handles allocated before the first reading.
//!
//! Every function returns "not measured" until the psvc runtime provides the needed API.

use crate::common::{BenchResult, Outcome, Params};

fn not_measured() -> BenchResult {
    Ok(Outcome::Skipped("not measured yet".to_string()))
}

/// 1 producer → 1 actor, `p.n` tells then one ask; ns/msg.
pub fn tell(_p: &Params) -> BenchResult {
    not_measured()
}

/// `p.n` sequential asks; mean ns/op plus p50/p99 (use `measure_ask`).
pub fn ask(_p: &Params) -> BenchResult {
    not_measured()
}

/// `p.n` × (spawn under a supervisor → first ask → request stop → observe it stopped); µs/op.
pub fn spawn_stop(_p: &Params) -> BenchResult {
    not_measured()
}

/// `p.n` × (child stops itself → restarted → ask answered by the new instance); µs/op.
pub fn restart_stop(_p: &Params) -> BenchResult {
    not_measured()
}

/// `p.n` × (child panics in a handler → restarted → ask answered by the new instance); µs/op.
/// Panic with `crate::common::INTENTIONAL_PANIC` so the worker's hook stays silent.
pub fn restart_panic(_p: &Params) -> BenchResult {
    not_measured()
}

/// Live heap bytes per idle supervised child (`p.n` children); B/actor.
pub fn heap_idle(_p: &Params) -> BenchResult {
    not_measured()
}
