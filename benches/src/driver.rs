//! Driver mode: one process per (framework, scenario, round), interleaved rounds, markdown
//! report on stdout and in `<target>/bench-results/actors.md`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{BenchError, Framework, Outcome, Sample, Scenario, Size, err, parse_result};
use crate::host::{Host, load_average, locked_version};
use crate::process::taskset_works;
use crate::report::{environment_head, median, ratio, results_dir, thousands};

/// Driver settings.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Rounds per scenario; round `r` starts the framework rotation at position `r`.
    pub rounds: usize,
    /// Operations per run.
    pub size: Size,
    /// Write the report to `<target>/bench-results/actors.md` (off for smoke runs).
    pub write_report: bool,
    /// Scenarios to run, in order.
    pub scenarios: Vec<Scenario>,
    /// Frameworks to run.
    pub frameworks: Vec<Framework>,
    /// A worker running longer than this is killed and reported as failed.
    pub timeout: Duration,
    /// Pin workers to CPU 1 with `taskset -c 1` when available.
    pub pin: bool,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            rounds: 5,
            size: Size::Full,
            write_report: true,
            scenarios: Scenario::ALL.to_vec(),
            frameworks: Framework::ALL.to_vec(),
            timeout: Duration::from_secs(120),
            pin: true,
        }
    }
}

/// What one worker process produced.
#[derive(Debug, Clone)]
enum Run {
    Ok(Sample),
    Skipped(String),
    Failed(String),
}

/// What a driver run produced.
#[derive(Debug, Clone)]
pub struct DriverSummary {
    /// Where the report was written, if it was.
    pub path: Option<PathBuf>,
    /// Worker runs that failed (error, verification mismatch, crash or timeout).
    pub failures: usize,
}

/// Runs every scenario, prints the report and (unless disabled) writes it.
pub fn run(opts: &DriverOptions) -> Result<DriverSummary, BenchError> {
    let exe = std::env::current_exe()?;
    let pinned = opts.pin && taskset_works(1);
    if opts.pin && !pinned {
        eprintln!("note: `taskset -c 1` unavailable; workers run unpinned");
    }
    let mut results: HashMap<(Scenario, Framework), Vec<Run>> = HashMap::new();
    let load_before = load_average();
    let started = Instant::now();
    let nfw = opts.frameworks.len();
    for &scenario in &opts.scenarios {
        for round in 0..opts.rounds {
            for k in 0..nfw {
                let framework = opts.frameworks[(k + round) % nfw];
                let run = run_worker(&exe, pinned, framework, scenario, opts);
                eprintln!(
                    "[{} round {}/{}] {:<6} {}",
                    scenario.name(),
                    round + 1,
                    opts.rounds,
                    framework.name(),
                    match &run {
                        Run::Ok(s) => format!("{} {}", fmt_value(s.value), scenario.unit()),
                        Run::Skipped(r) => format!("skipped: {r}"),
                        Run::Failed(e) => format!("FAILED: {e}"),
                    }
                );
                results.entry((scenario, framework)).or_default().push(run);
            }
        }
    }
    let load = format!("{load_before} before, {} after", load_average());
    let report = render(opts, pinned, &results, started.elapsed(), &load);
    print!("{report}");
    let failures = results
        .values()
        .flatten()
        .filter(|r| matches!(r, Run::Failed(_)))
        .count();
    if !opts.write_report {
        eprintln!("report not written (smoke run)");
        return Ok(DriverSummary {
            path: None,
            failures,
        });
    }
    let dir = results_dir(&exe);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("actors.md");
    std::fs::write(&path, &report)?;
    eprintln!("report written to {}", path.display());
    Ok(DriverSummary {
        path: Some(path),
        failures,
    })
}

fn run_worker(
    exe: &Path,
    pinned: bool,
    framework: Framework,
    scenario: Scenario,
    opts: &DriverOptions,
) -> Run {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "1"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(["--worker", framework.name(), scenario.name()]);
    cmd.args(opts.size.flag());
    match spawn_with_timeout(cmd, opts.timeout) {
        Err(e) => Run::Failed(e.to_string()),
        Ok((None, _, stderr)) => Run::Failed(format!(
            "killed after {} s{}",
            opts.timeout.as_secs(),
            tail(&stderr)
        )),
        Ok((Some(status), stdout, stderr)) if status.success() => match parse_result(&stdout) {
            Ok(Outcome::Measured(s)) => Run::Ok(s),
            Ok(Outcome::Skipped(r)) => Run::Skipped(r),
            Err(e) => Run::Failed(format!("{e}{}", tail(&stderr))),
        },
        Ok((Some(status), _, stderr)) => Run::Failed(format!("{status}{}", tail(&stderr))),
    }
}

/// Last stderr line, for failure messages.
fn tail(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}

/// Spawns `cmd`, collects stdout/stderr, kills it after `timeout`.
/// Returns `(None, ..)` when it was killed.
fn spawn_with_timeout(
    mut cmd: Command,
    timeout: Duration,
) -> Result<(Option<ExitStatus>, String, String), BenchError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let errs = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().map_err(|_| err("stdout reader panicked"))?;
    let stderr = errs.join().map_err(|_| err("stderr reader panicked"))?;
    Ok((status, stdout, stderr))
}

/// Aggregate of one (scenario, framework) cell over rounds.
struct Cell {
    median: Option<f64>,
    min: f64,
    max: f64,
    p50: Option<f64>,
    p99: Option<f64>,
    /// Median and range of the information-only unbounded figure, when reported.
    unbounded: Option<(f64, f64, f64)>,
    ok: usize,
    runs: usize,
    note: String,
    skipped: Option<String>,
    failure: Option<String>,
}

fn aggregate(runs: &[Run]) -> Cell {
    let mut values: Vec<f64> = Vec::new();
    let mut p50s: Vec<f64> = Vec::new();
    let mut p99s: Vec<f64> = Vec::new();
    let mut unbounded: Vec<f64> = Vec::new();
    let mut note = String::new();
    let mut skipped = None;
    let mut failure = None;
    for run in runs {
        match run {
            Run::Ok(s) => {
                values.push(s.value);
                p50s.extend(s.p50);
                p99s.extend(s.p99);
                unbounded.extend(s.unbounded);
                if note.is_empty() {
                    note.clone_from(&s.note);
                }
            }
            Run::Skipped(r) => skipped = Some(r.clone()),
            Run::Failed(e) => failure = failure.or_else(|| Some(e.clone())),
        }
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let unbounded_range = (
        unbounded.iter().copied().fold(f64::INFINITY, f64::min),
        unbounded.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    Cell {
        unbounded: median(unbounded).map(|m| (m, unbounded_range.0, unbounded_range.1)),
        ok: values.len(),
        runs: runs.len(),
        median: median(values),
        min,
        max,
        p50: median(p50s),
        p99: median(p99s),
        note,
        skipped,
        failure,
    }
}

/// Integer with thousands separators.
fn fmt_int(n: u64) -> String {
    thousands(&n.to_string())
}

fn fmt_value(v: f64) -> String {
    crate::report::fmt_number(v, 1000.0)
}

/// Target for psvc from research section 14.a, and whether a measurement meets it.
///
/// `tell` is judged against the faster of the bounded baselines measured in the run (raw
/// actix's `send().await` into a bounded mailbox, tokio's `mpsc(1024)`): psvc's `tell_wait`
/// waits for room, so an unbounded send (actix's `do_send`) is no baseline for it.
fn target(
    scenario: Scenario,
    psvc: f64,
    actix: Option<f64>,
    tokio: Option<f64>,
) -> (String, String) {
    let verdict = |ok: Option<bool>| match ok {
        Some(true) => "met".to_string(),
        Some(false) => "MISSED".to_string(),
        None => "–".to_string(),
    };
    match scenario {
        Scenario::Tell => {
            let bounded = [actix, tokio]
                .into_iter()
                .flatten()
                .filter(|b| *b > 0.0)
                .reduce(f64::min);
            (
                "≤ 1.15× the faster bounded baseline (actix send().await, tokio mpsc(1024))"
                    .to_string(),
                verdict(bounded.map(|b| psvc / b <= 1.15)),
            )
        }
        Scenario::Ask => (
            "≤ 1.15× actix".to_string(),
            verdict(actix.filter(|b| *b > 0.0).map(|b| psvc / b <= 1.15)),
        ),
        Scenario::SpawnStop => ("≤ 2 µs".to_string(), verdict(Some(psvc <= 2.0))),
        Scenario::RestartStop => ("≤ 1 µs".to_string(), verdict(Some(psvc <= 1.0))),
        Scenario::RestartPanic => (
            "≤ 4 µs and ≤ 1.7× tokio floor".to_string(),
            verdict(Some(
                psvc <= 4.0 && tokio.filter(|b| *b > 0.0).is_none_or(|b| psvc / b <= 1.7),
            )),
        ),
        Scenario::HeapIdle => ("≤ 1,536 B".to_string(), verdict(Some(psvc <= 1536.0))),
    }
}

fn render(
    opts: &DriverOptions,
    pinned: bool,
    results: &HashMap<(Scenario, Framework), Vec<Run>>,
    elapsed: Duration,
    load: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# psvc actor-layer benchmarks\n");
    out.push_str(&environment(opts, pinned, elapsed, load));

    let mut summary = Vec::new();
    for &scenario in &opts.scenarios {
        let cells: Vec<(Framework, Cell)> = opts
            .frameworks
            .iter()
            .map(|&f| {
                let runs = results.get(&(scenario, f)).map_or(&[][..], Vec::as_slice);
                (f, aggregate(runs))
            })
            .collect();
        let base = |fw: Framework| {
            cells
                .iter()
                .find(|(f, _)| *f == fw)
                .and_then(|(_, c)| c.median)
        };
        let (actix, tokio) = (base(Framework::Actix), base(Framework::Tokio));
        let with_pct = cells.iter().any(|(_, c)| c.p50.is_some());
        let unit = scenario.unit();

        let _ = writeln!(
            out,
            "\n## {} — {unit}, N = {} per run (lower is better)\n\n{}\n",
            scenario.name(),
            fmt_int(scenario.n(opts.size)),
            scenario.describe()
        );
        out.push_str("| framework | median | min–max | ÷ actix | ÷ tokio |");
        if with_pct {
            let _ = write!(out, " p50 ({unit}) | p99 ({unit}) |");
        }
        out.push_str(" runs ok | notes |\n|---|---:|---:|---:|---:|");
        if with_pct {
            out.push_str("---:|---:|");
        }
        out.push_str("---:|---|\n");
        for (f, c) in &cells {
            let (med, range) = match c.median {
                Some(m) => (
                    format!("**{}**", fmt_value(m)),
                    format!("{}–{}", fmt_value(c.min), fmt_value(c.max)),
                ),
                None if c.skipped.is_some() && c.failure.is_none() => {
                    ("n/a".to_string(), "–".to_string())
                }
                None => ("FAILED".to_string(), "–".to_string()),
            };
            let mut notes = vec![];
            if !c.note.is_empty() {
                notes.push(c.note.clone());
            }
            if let Some(r) = &c.skipped {
                notes.push(r.clone());
            }
            if let Some(e) = &c.failure {
                notes.push(format!("failure: {e}"));
            }
            let _ = write!(
                out,
                "| {} | {med} | {range} | {} | {} |",
                f.name(),
                ratio(c.median, actix),
                ratio(c.median, tokio)
            );
            if with_pct {
                let p = |v: Option<f64>| v.map_or("–".to_string(), fmt_value);
                let _ = write!(out, " {} | {} |", p(c.p50), p(c.p99));
            }
            let _ = writeln!(
                out,
                " {}/{} | {} |",
                c.ok,
                c.runs,
                notes.join("; ").replace('|', "/")
            );
            if let Some((median, min, max)) = c.unbounded {
                let _ = write!(
                    out,
                    "| {} unbounded (info) | {} | {}–{} | {} | {} |",
                    f.name(),
                    fmt_value(median),
                    fmt_value(min),
                    fmt_value(max),
                    ratio(Some(median), actix),
                    ratio(Some(median), tokio)
                );
                if with_pct {
                    out.push_str(" – | – |");
                }
                let _ = writeln!(
                    out,
                    " {}/{} | information only: not a baseline for the verdict |",
                    c.ok, c.runs
                );
            }
            if *f == Framework::Psvc {
                summary.push((scenario, c.median, actix, tokio, c.skipped.clone()));
            }
        }
    }

    if !summary.is_empty() {
        out.push_str(
            "\n## psvc against its targets (research §14.a; ratios of medians from this run)\n\n\
             | scenario | psvc | ÷ actix | ÷ tokio | target | verdict |\n\
             |---|---:|---:|---:|---|---|\n",
        );
        for (scenario, psvc, actix, tokio, skipped) in summary {
            let (tgt, verdict) = match psvc {
                Some(v) => target(scenario, v, actix, tokio),
                None => (
                    target(scenario, 0.0, None, None).0,
                    skipped.unwrap_or_else(|| "failed".to_string()),
                ),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {tgt} | {verdict} |",
                scenario.name(),
                psvc.map_or("–".to_string(), |v| format!(
                    "{} {}",
                    fmt_value(v),
                    scenario.unit()
                )),
                ratio(psvc, actix),
                ratio(psvc, tokio),
            );
        }
    }
    out
}

fn environment(opts: &DriverOptions, pinned: bool, elapsed: Duration, load: &str) -> String {
    let host = Host::read();
    let v = locked_version;
    let mut s = environment_head(&host, elapsed, "", false, load);
    let _ = writeln!(s, "- rustc: {}; profile: bench (release)", host.rustc);
    let _ = writeln!(
        s,
        "- crates: actix {} (actix-rt {}), tokio {}, ractor {} (no default features: \
         tokio_runtime, no span propagation), kameo {} (default features: macros, tracing); \
         psvc feature {}",
        v("actix"),
        v("actix-rt"),
        v("tokio"),
        v("ractor"),
        v("kameo"),
        if cfg!(feature = "psvc") { "on" } else { "off" }
    );
    let _ = writeln!(
        s,
        "- runs: {} rounds, order rotated each round, one process per run; {}; {}; \
         every framework single-threaded (actix System / tokio current_thread); worker \
         timeout {} s; warmup N/10 before each timed pass",
        opts.rounds,
        opts.size.describe(),
        if pinned {
            "pinned with `taskset -c 1`"
        } else {
            "UNPINNED (taskset unavailable or disabled)"
        },
        opts.timeout.as_secs()
    );
    let _ = writeln!(
        s,
        "- ratios are ratios of medians measured in this run: ÷ actix = framework ÷ raw actix, \
         ÷ tokio = framework ÷ raw tokio floor"
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format() {
        assert_eq!(fmt_value(1234567.4), "1,234,567");
        assert_eq!(fmt_value(-1234.0), "-1,234");
        assert_eq!(fmt_int(10), "10");
        assert_eq!(fmt_int(1_000_000), "1,000,000");
        assert_eq!(fmt_value(345.6), "346");
        assert_eq!(fmt_value(12.34), "12.3");
        assert_eq!(fmt_value(1.234), "1.23");
    }

    #[test]
    fn tell_is_judged_against_the_faster_bounded_baseline() {
        // 160 is 0.19× a bounded actix send().await of 860 but 1.12× tokio's mpsc(1024).
        assert_eq!(
            target(Scenario::Tell, 160.0, Some(860.0), Some(143.0)).1,
            "met"
        );
        assert_eq!(
            target(Scenario::Tell, 170.0, Some(860.0), Some(143.0)).1,
            "MISSED"
        );
        // Whichever bounded baseline ran.
        assert_eq!(target(Scenario::Tell, 170.0, Some(860.0), None).1, "met");
        assert_eq!(target(Scenario::Tell, 170.0, None, None).1, "–");
    }

    #[test]
    fn worker_timeout_kills() -> Result<(), BenchError> {
        let mut cmd = Command::new("sleep");
        cmd.arg("5");
        let t0 = Instant::now();
        let (status, _, _) = spawn_with_timeout(cmd, Duration::from_millis(200))?;
        assert!(status.is_none());
        assert!(t0.elapsed() < Duration::from_secs(3));
        Ok(())
    }

    #[test]
    fn lock_versions_found() {
        assert_eq!(locked_version("ractor"), "0.16.5");
        assert_eq!(locked_version("kameo"), "0.22.2");
    }
}
