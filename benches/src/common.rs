//! Names, parameters, results and the one-line worker protocol shared by every framework.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

/// Marker that starts the single result line a worker prints on stdout.
pub const RESULT_MARKER: &str = "PSVC-BENCH-RESULT";

/// Payload of every panic the harness triggers on purpose; the worker's panic hook is silent
/// for exactly this message and prints anything else.
pub const INTENTIONAL_PANIC: &str = "psvc-bench: intentional panic";

/// Upper bound on retries of one ask while an actor is being restarted.
pub const MAX_RETRIES: u32 = 100_000;

/// An error that aborts one worker run; the worker exits non-zero and the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchError(pub String);

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BenchError {}

impl From<std::io::Error> for BenchError {
    fn from(e: std::io::Error) -> Self {
        Self(format!("I/O error: {e}"))
    }
}

/// Builds a [`BenchError`] from anything printable.
pub fn err(msg: impl fmt::Display) -> BenchError {
    BenchError(msg.to_string())
}

/// Builds a [`BenchError`] from a context and a `Debug` value (for errors without `Display`).
pub fn err_dbg(context: &str, e: impl fmt::Debug) -> BenchError {
    BenchError(format!("{context}: {e:?}"))
}

/// Fails unless `got == want`; used to verify counters (messages processed, restarts seen).
pub fn check_eq(what: &str, got: u64, want: u64) -> Result<(), BenchError> {
    if got == want {
        Ok(())
    } else {
        Err(BenchError(format!("{what}: expected {want}, got {got}")))
    }
}

/// How many operations each run performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// The full counts of [`Scenario::full_n`].
    Full,
    /// N/10 (`--quick`); `heap_idle` keeps 10,000 actors.
    Quick,
    /// N/1000, at least 10 (`--smoke`): checks that everything runs, numbers meaningless.
    Smoke,
}

impl Size {
    /// Worker command-line flag for this size (none for [`Size::Full`]).
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Size::Full => None,
            Size::Quick => Some("--quick"),
            Size::Smoke => Some("--smoke"),
        }
    }

    /// Description for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Size::Full => "full N",
            Size::Quick => "quick (N/10)",
            Size::Smoke => "SMOKE TEST (N/1000, numbers meaningless)",
        }
    }
}

/// The frameworks under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framework {
    /// psvc, this project.
    Psvc,
    /// Raw actix 0.13.5 on `actix_rt::System` (baseline).
    Actix,
    /// Raw tokio primitives on a current_thread runtime (physical floor).
    Tokio,
    /// ractor 0.16.5 (tokio_runtime only) on a current_thread runtime.
    Ractor,
    /// kameo 0.22.2 (default features) on a current_thread runtime.
    Kameo,
}

impl Framework {
    /// Every framework, in the driver's default order.
    pub const ALL: [Framework; 5] = [
        Framework::Psvc,
        Framework::Actix,
        Framework::Tokio,
        Framework::Ractor,
        Framework::Kameo,
    ];

    /// Command-line and report name.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Psvc => "psvc",
            Framework::Actix => "actix",
            Framework::Tokio => "tokio",
            Framework::Ractor => "ractor",
            Framework::Kameo => "kameo",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// The measured scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// 1 producer → 1 actor fire-and-forget counter increments, then one ask.
    Tell,
    /// Sequential request/response round trips.
    Ask,
    /// Spawn → first ask → request stop → observe the stop.
    SpawnStop,
    /// Child stops itself → supervisor restarts it → ask answered by the new instance.
    RestartStop,
    /// Child panics in a handler → supervisor restarts it → ask answered by the new instance.
    RestartPanic,
    /// Live heap bytes per idle actor.
    HeapIdle,
}

impl Scenario {
    /// Every scenario, in report order.
    pub const ALL: [Scenario; 6] = [
        Scenario::Tell,
        Scenario::Ask,
        Scenario::SpawnStop,
        Scenario::RestartStop,
        Scenario::RestartPanic,
        Scenario::HeapIdle,
    ];

    /// Command-line and report name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Tell => "tell",
            Scenario::Ask => "ask",
            Scenario::SpawnStop => "spawn_stop",
            Scenario::RestartStop => "restart_stop",
            Scenario::RestartPanic => "restart_panic",
            Scenario::HeapIdle => "heap_idle",
        }
    }

    /// Parses a command-line name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    /// Unit of the reported value.
    pub fn unit(self) -> &'static str {
        match self {
            Scenario::Tell => "ns/msg",
            Scenario::Ask => "ns/op",
            Scenario::SpawnStop | Scenario::RestartStop | Scenario::RestartPanic => "µs/op",
            Scenario::HeapIdle => "B/actor",
        }
    }

    /// Full-size operation count (see [`Size`] for the reduced ones).
    pub fn full_n(self) -> u64 {
        match self {
            Scenario::Tell => 1_000_000,
            Scenario::Ask => 200_000,
            Scenario::SpawnStop => 50_000,
            Scenario::RestartStop | Scenario::RestartPanic => 20_000,
            Scenario::HeapIdle => 10_000,
        }
    }

    /// Operation count for a run.
    pub fn n(self, size: Size) -> u64 {
        match (self, size) {
            // The heap figure is per actor and cheap to get; keep it at 10,000 actors.
            (Scenario::HeapIdle, Size::Quick) | (_, Size::Full) => self.full_n(),
            (_, Size::Quick) => self.full_n() / 10,
            (_, Size::Smoke) => (self.full_n() / 1000).max(10),
        }
    }

    /// One-line definition for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Tell => {
                "1 producer → 1 actor, N u64 increments, each sent the framework's bounded way \
                 where it has one (waiting for room, see notes), then one ask; total ÷ N"
            }
            Scenario::Ask => {
                "N sequential request/response round trips (mean); p50/p99 from a second, \
                 per-op timed pass"
            }
            Scenario::SpawnStop => {
                "N × (spawn actor → first ask → request stop → observe it stopped)"
            }
            Scenario::RestartStop => {
                "N × (child stops itself → supervisor restarts it → ask answered by the new \
                 instance, generation checked)"
            }
            Scenario::RestartPanic => {
                "N × (child panics in a handler → supervisor restarts it → ask answered by the \
                 new instance, generation checked)"
            }
            Scenario::HeapIdle => {
                "spawn N idle actors, ask each once, live-heap delta (counting allocator) ÷ N"
            }
        }
    }
}

/// Parameters handed to one scenario run inside a worker process.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Measured operations.
    pub n: u64,
    /// Unmeasured operations run first (same operation, same actor/runtime where possible).
    pub warmup: u64,
    /// Currently allocated heap bytes (from the counting global allocator of the bench binary).
    pub allocated: fn() -> usize,
}

impl Params {
    /// Parameters for `scenario`, with `warmup = n / 10` (none for `heap_idle`).
    pub fn new(scenario: Scenario, size: Size, allocated: fn() -> usize) -> Self {
        let n = scenario.n(size);
        let warmup = if scenario == Scenario::HeapIdle {
            0
        } else {
            n / 10
        };
        Self {
            n,
            warmup,
            allocated,
        }
    }
}

/// One measured value, in the scenario's [`Scenario::unit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The per-operation value (mean over the timed pass).
    pub value: f64,
    /// Median latency of the per-op timed pass, in the same unit, if measured.
    pub p50: Option<f64>,
    /// 99th percentile latency of the per-op timed pass, in the same unit, if measured.
    pub p99: Option<f64>,
    /// For information only, never judged: the same operation through an unbounded path,
    /// measured in the same worker (raw actix's `do_send` in `tell`), in the same unit.
    pub unbounded: Option<f64>,
    /// Short remark on what was measured (mailbox kind, verification, …).
    pub note: String,
}

impl Sample {
    /// A sample with a value and a note and no percentiles.
    pub fn new(value: f64, note: impl Into<String>) -> Self {
        Self {
            value,
            p50: None,
            p99: None,
            unbounded: None,
            note: note.into(),
        }
    }

    /// The same sample with an unbounded figure reported beside it.
    #[must_use]
    pub fn with_unbounded(mut self, value: f64) -> Self {
        self.unbounded = Some(value);
        self
    }
}

/// What one worker run produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A measurement.
    Measured(Sample),
    /// Not applicable or not (yet) measured, with the reason.
    Skipped(String),
}

/// Result of one scenario function.
pub type BenchResult = Result<Outcome, BenchError>;

/// Nanoseconds per operation.
pub fn ns_per(elapsed: Duration, n: u64) -> f64 {
    elapsed.as_secs_f64() * 1e9 / n.max(1) as f64
}

/// Microseconds per operation.
pub fn us_per(elapsed: Duration, n: u64) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n.max(1) as f64
}

/// A current_thread tokio runtime with all enabled drivers.
pub fn tokio_current_thread() -> Result<tokio::runtime::Runtime, BenchError> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs `op` `warmup` times unmeasured, then `n` times measured, and returns
/// the measured time. `op` gets the 1-based number of the operation (so a
/// restart scenario can check the generation it expects).
pub async fn time_ops(
    warmup: u64,
    n: u64,
    mut op: impl AsyncFnMut(u64) -> Result<(), BenchError>,
) -> Result<Duration, BenchError> {
    for i in 1..=warmup {
        op(i).await?;
    }
    let t0 = Instant::now();
    for i in warmup + 1..=warmup + n {
        op(i).await?;
    }
    Ok(t0.elapsed())
}

/// Runs an ask-style operation `warmup` times, then `n` times timed as a whole (mean), then
/// `n` times timed individually into an HDR histogram (p50, p99). Values are in ns.
pub async fn measure_ask<F, Fut>(
    warmup: u64,
    n: u64,
    mut op: F,
    note: &str,
) -> Result<Sample, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, BenchError>>,
{
    for _ in 0..warmup {
        op().await?;
    }
    let t0 = Instant::now();
    for _ in 0..n {
        op().await?;
    }
    let mean = ns_per(t0.elapsed(), n);

    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| err(format!("histogram: {e}")))?;
    for _ in 0..n {
        let t = Instant::now();
        op().await?;
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        hist.saturating_record(ns.max(1));
    }
    Ok(Sample {
        value: mean,
        p50: Some(hist.value_at_quantile(0.50) as f64),
        p99: Some(hist.value_at_quantile(0.99) as f64),
        unbounded: None,
        note: note.to_string(),
    })
}

/// Live heap bytes per item between two readings of the counting allocator.
pub fn heap_per(before: usize, after: usize, n: u64) -> f64 {
    (after as f64 - before as f64) / n.max(1) as f64
}

/// Runs one scenario of one framework in this process.
pub fn run(framework: Framework, scenario: Scenario, p: &Params) -> BenchResult {
    use crate::{fw_actix as a, fw_kameo as k, fw_ractor as r, fw_tokio as t};
    match (framework, scenario) {
        (Framework::Psvc, s) => run_psvc(s, p),
        (Framework::Actix, Scenario::Tell) => a::tell(p),
        (Framework::Actix, Scenario::Ask) => a::ask(p),
        (Framework::Actix, Scenario::SpawnStop) => a::spawn_stop(p),
        (Framework::Actix, Scenario::RestartStop) => a::restart_stop(p),
        (Framework::Actix, Scenario::RestartPanic) => a::restart_panic(p),
        (Framework::Actix, Scenario::HeapIdle) => a::heap_idle(p),
        (Framework::Tokio, Scenario::Tell) => t::tell(p),
        (Framework::Tokio, Scenario::Ask) => t::ask(p),
        (Framework::Tokio, Scenario::SpawnStop) => t::spawn_stop(p),
        (Framework::Tokio, Scenario::RestartStop) => t::restart_stop(p),
        (Framework::Tokio, Scenario::RestartPanic) => t::restart_panic(p),
        (Framework::Tokio, Scenario::HeapIdle) => t::heap_idle(p),
        (Framework::Ractor, Scenario::Tell) => r::tell(p),
        (Framework::Ractor, Scenario::Ask) => r::ask(p),
        (Framework::Ractor, Scenario::SpawnStop) => r::spawn_stop(p),
        (Framework::Ractor, Scenario::RestartStop) => r::restart_stop(p),
        (Framework::Ractor, Scenario::RestartPanic) => r::restart_panic(p),
        (Framework::Ractor, Scenario::HeapIdle) => r::heap_idle(p),
        (Framework::Kameo, Scenario::Tell) => k::tell(p),
        (Framework::Kameo, Scenario::Ask) => k::ask(p),
        (Framework::Kameo, Scenario::SpawnStop) => k::spawn_stop(p),
        (Framework::Kameo, Scenario::RestartStop) => k::restart_stop(p),
        (Framework::Kameo, Scenario::RestartPanic) => k::restart_panic(p),
        (Framework::Kameo, Scenario::HeapIdle) => k::heap_idle(p),
    }
}

#[cfg(feature = "psvc")]
fn run_psvc(scenario: Scenario, p: &Params) -> BenchResult {
    use crate::psvc_fw as ours;
    match scenario {
        Scenario::Tell => ours::tell(p),
        Scenario::Ask => ours::ask(p),
        Scenario::SpawnStop => ours::spawn_stop(p),
        Scenario::RestartStop => ours::restart_stop(p),
        Scenario::RestartPanic => ours::restart_panic(p),
        Scenario::HeapIdle => ours::heap_idle(p),
    }
}

#[cfg(not(feature = "psvc"))]
fn run_psvc(_scenario: Scenario, _p: &Params) -> BenchResult {
    Ok(Outcome::Skipped(
        "built without the `psvc` feature".to_string(),
    ))
}

/// Formats the single stdout line a worker emits for an outcome.
pub fn result_line(outcome: &Outcome) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    match outcome {
        Outcome::Measured(s) => {
            let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v}"));
            format!(
                "{RESULT_MARKER}\tok\t{}\t{}\t{}\t{}\t{}",
                s.value,
                opt(s.p50),
                opt(s.p99),
                opt(s.unbounded),
                clean(&s.note)
            )
        }
        Outcome::Skipped(reason) => format!("{RESULT_MARKER}\tskip\t{}", clean(reason)),
    }
}

/// Parses a worker's stdout, looking for its result line.
pub fn parse_result(stdout: &str) -> Result<Outcome, BenchError> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(RESULT_MARKER))
        .ok_or_else(|| err("worker printed no result line"))?;
    let fields: Vec<&str> = line.split('\t').collect();
    let num = |s: &str| -> Result<f64, BenchError> {
        s.parse::<f64>()
            .map_err(|e| err(format!("bad number {s:?} in result line: {e}")))
    };
    let opt = |s: &str| -> Result<Option<f64>, BenchError> {
        if s == "-" { Ok(None) } else { num(s).map(Some) }
    };
    match fields.as_slice() {
        [_, "ok", value, p50, p99, unbounded, note] => Ok(Outcome::Measured(Sample {
            value: num(value)?,
            p50: opt(p50)?,
            p99: opt(p99)?,
            unbounded: opt(unbounded)?,
            note: (*note).to_string(),
        })),
        [_, "skip", reason] => Ok(Outcome::Skipped((*reason).to_string())),
        _ => Err(err(format!("malformed result line: {line:?}"))),
    }
}

/// Installs the panic hook every worker uses, identically for all frameworks: silent for the
/// harness's intentional panics, prints anything else to stderr.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if msg != Some(INTENTIONAL_PANIC) {
            eprintln!("worker panic: {info}");
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_round_trips() -> Result<(), BenchError> {
        let s = Outcome::Measured(Sample {
            value: 12.5,
            p50: Some(11.0),
            p99: None,
            unbounded: Some(3.5),
            note: "a\tb".to_string(),
        });
        let parsed = parse_result(&format!("noise\n{}\n", result_line(&s)))?;
        let Outcome::Measured(m) = parsed else {
            return Err(err("not measured"));
        };
        assert!((m.value - 12.5).abs() < 1e-9);
        assert_eq!(m.p50, Some(11.0));
        assert_eq!(m.p99, None);
        assert_eq!(m.unbounded, Some(3.5));
        assert_eq!(m.note, "a b");
        let skip = parse_result(&result_line(&Outcome::Skipped("n/a: x".into())))?;
        assert_eq!(skip, Outcome::Skipped("n/a: x".into()));
        Ok(())
    }

    #[test]
    fn names_parse() {
        for f in Framework::ALL {
            assert_eq!(Framework::parse(f.name()), Some(f));
        }
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()), Some(s));
        }
        assert_eq!(Scenario::HeapIdle.n(Size::Quick), 10_000);
        assert_eq!(Scenario::Tell.n(Size::Quick), 100_000);
        assert_eq!(Scenario::Tell.n(Size::Full), 1_000_000);
        assert_eq!(Scenario::RestartStop.n(Size::Smoke), 20);
    }
}
