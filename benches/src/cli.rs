//! Command line of the `actors` bench binary: driver mode, worker mode, or smoke mode.

use std::time::Duration;

use crate::common::{self, BenchError, Framework, Params, Scenario, Size, err};
use crate::driver::{self, DriverOptions};

const USAGE: &str = "\
usage: cargo bench -p psvc-benches --bench actors [-- OPTIONS]

driver mode (under `cargo bench`, which passes --bench): runs every framework in its own
process, interleaved rounds, writes <target>/bench-results/actors.md
  --rounds N           rounds per scenario (default 5, at least 1)
  --quick              N/10 operations per run (heap_idle keeps 10,000 actors)
  --scenarios a,b      subset of: tell, ask, spawn_stop, restart_stop, restart_panic, heap_idle
  --frameworks a,b     subset of: psvc, actix, tokio, ractor, kameo
  --timeout SECS       kill a worker after this long (default 120)
  --no-pin             do not pin workers with `taskset -c 1`

smoke mode (without --bench, e.g. `cargo test --all-targets`): one round at N/1000,
report printed, not written; other arguments are ignored

worker mode (used by the driver):
  --worker FRAMEWORK SCENARIO [--quick | --smoke]
";

/// Entry point shared by the bench binary; returns the process exit code.
///
/// `allocated` reads the live heap bytes of the binary's counting global allocator.
pub fn main(args: &[String], allocated: fn() -> usize) -> u8 {
    let result = if args.iter().any(|a| a == "--bench" || a == "--worker") {
        dispatch(args, allocated)
    } else if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        Ok(0)
    } else {
        smoke()
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// One quick pass over everything so `cargo test --all-targets` checks the harness without
/// running (or overwriting) the real benchmark.
fn smoke() -> Result<u8, BenchError> {
    eprintln!("smoke run (no --bench): use `cargo bench -p psvc-benches --bench actors`");
    let opts = DriverOptions {
        rounds: 1,
        size: Size::Smoke,
        write_report: false,
        ..DriverOptions::default()
    };
    finish(&driver::run(&opts)?)
}

/// Exit code 3 when any worker run failed.
fn finish(summary: &driver::DriverSummary) -> Result<u8, BenchError> {
    if summary.failures == 0 {
        Ok(0)
    } else {
        eprintln!("{} worker run(s) FAILED, see the report", summary.failures);
        Ok(3)
    }
}

fn dispatch(args: &[String], allocated: fn() -> usize) -> Result<u8, BenchError> {
    let mut opts = DriverOptions::default();
    let mut worker: Option<(Framework, Scenario)> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| err(format!("{name} needs a value\n{USAGE}")))
        };
        match arg.as_str() {
            // `cargo bench` passes `--bench` to harness = false targets.
            "--bench" => {}
            "--quick" => opts.size = Size::Quick,
            "--smoke" => opts.size = Size::Smoke,
            "--no-pin" => opts.pin = false,
            "--rounds" => {
                opts.rounds = value("--rounds")?
                    .parse::<usize>()
                    .map_err(|e| err(format!("--rounds: {e}")))?
                    .max(1);
            }
            "--timeout" => {
                let secs = value("--timeout")?
                    .parse::<u64>()
                    .map_err(|e| err(format!("--timeout: {e}")))?;
                opts.timeout = Duration::from_secs(secs.max(1));
            }
            "--scenarios" => {
                opts.scenarios = parse_list(&value("--scenarios")?, Scenario::parse)?;
            }
            "--frameworks" => {
                opts.frameworks = parse_list(&value("--frameworks")?, Framework::parse)?;
            }
            "--worker" => {
                let f = value("--worker")?;
                let s = value("--worker")?;
                let f =
                    Framework::parse(&f).ok_or_else(|| err(format!("unknown framework {f}")))?;
                let s = Scenario::parse(&s).ok_or_else(|| err(format!("unknown scenario {s}")))?;
                worker = Some((f, s));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(0);
            }
            other => return Err(err(format!("unknown argument {other:?}\n{USAGE}"))),
        }
    }
    match worker {
        Some((f, s)) => Ok(run_worker(f, s, opts.size, allocated)),
        None => finish(&driver::run(&opts)?),
    }
}

fn parse_list<T>(s: &str, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, BenchError> {
    let items = s
        .split(',')
        .filter(|x| !x.is_empty())
        .map(|x| parse(x).ok_or_else(|| err(format!("unknown name {x:?}"))))
        .collect::<Result<Vec<T>, BenchError>>()?;
    if items.is_empty() {
        return Err(err("empty list"));
    }
    Ok(items)
}

/// Worker mode: installs the panic hook, runs one scenario, prints one result line.
/// Exit code 2 when the scenario failed (including a verification mismatch).
fn run_worker(
    framework: Framework,
    scenario: Scenario,
    size: Size,
    allocated: fn() -> usize,
) -> u8 {
    common::install_panic_hook();
    let params = Params::new(scenario, size, allocated);
    match common::run(framework, scenario, &params) {
        Ok(outcome) => {
            println!("{}", common::result_line(&outcome));
            0
        }
        Err(e) => {
            eprintln!("{} {}: {e}", framework.name(), scenario.name());
            2
        }
    }
}
