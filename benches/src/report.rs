//! Modes, figures and report files shared by the `actors`, `network` and `messaging` harnesses.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::Host;

/// Environment variable for the quick (smoke) mode.
pub const QUICK_ENV: &str = "PSVC_BENCH_QUICK";

/// `(quick, smoke)` of a harness's command line: smoke without `--bench` (e.g. `cargo test
/// --all-targets`: run quick, do not write), quick also with `--quick` or [`QUICK_ENV`] set.
pub fn quick_mode(args: &[String]) -> (bool, bool) {
    let quick_env = std::env::var(QUICK_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = quick_env || smoke || args.iter().any(|a| a == "--quick");
    (quick, smoke)
}

/// A harness's command-line options, one at a time, with their values.
pub struct Flags<'a> {
    it: std::slice::Iter<'a, String>,
    usage: &'a str,
}

impl<'a> Flags<'a> {
    /// Over `args`; `usage` ends the message of a missing value.
    pub fn new(args: &'a [String], usage: &'a str) -> Self {
        Self {
            it: args.iter(),
            usage,
        }
    }

    /// The value of option `name` (the next argument).
    pub fn value(&mut self, name: &str) -> Result<String, String> {
        self.it
            .next()
            .cloned()
            .ok_or_else(|| format!("{name} needs a value\n{}", self.usage))
    }

    /// The value of option `name` as a number, at least 0.
    pub fn num(&mut self, name: &str) -> Result<f64, String> {
        self.value(name)?
            .parse::<f64>()
            .map_err(|e| format!("{name}: {e}"))
            .map(|v| v.max(0.0))
    }
}

impl<'a> Iterator for Flags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        self.it.next().map(String::as_str)
    }
}

/// Median of `v` (the mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Digits with a comma every three from the right: `1234567` → `1,234,567`.
pub fn thousands(digits: &str) -> String {
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A figure for a table: thousands separators from 10,000, else 0, 1 or 2 decimals.
pub fn fmt_num(v: f64) -> String {
    fmt_number(v, 10_000.0)
}

/// `v` with digit groups from `commas_from` up, no decimals from 100 up,
/// one from 10, two below.
pub fn fmt_number(v: f64, commas_from: f64) -> String {
    let a = v.abs();
    if a >= commas_from {
        let out = thousands(&format!("{a:.0}"));
        if v < 0.0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// [`fmt_num`], or `–` for no figure.
pub fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), fmt_num)
}

/// `a ÷ b` as `1.23×`, or `–`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_string(),
    }
}

/// `<target>/bench-results`: `$CARGO_TARGET_DIR` if absolute, else derived from the binary's
/// path (`<target>/<profile>/deps/<bench>-<hash>`).
pub fn results_dir(exe: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return dir.join("bench-results");
    }
    let mut dir = exe.parent().unwrap_or(Path::new("."));
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    dir.parent().unwrap_or(dir).join("bench-results")
}

/// Writes `report` to `<target>/bench-results/<file>` when `write`, and says so on stderr.
pub fn write_report(report: &str, file: &str, write: bool) -> Result<(), String> {
    if write {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = results_dir(&exe);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join(file);
        std::fs::write(&path, report).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("report written to {}", path.display());
    } else {
        eprintln!("report not written (smoke run or --no-write)");
    }
    Ok(())
}

/// The first lines of a report's environment: date, git and wall time (then `detail`, and a
/// QUICK mark when `quick`), host, load average.
pub fn environment_head(
    host: &Host,
    elapsed: Duration,
    detail: &str,
    quick: bool,
    load: &str,
) -> String {
    let Host {
        date,
        git,
        nproc,
        cpu,
        kernel,
        cpuidle,
        ..
    } = host;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "- date: {date}; git: {git}; wall time {:.0} s{detail}{}",
        elapsed.as_secs_f64(),
        if quick {
            "; **QUICK mode** (smoke figures)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "- host: nproc {nproc}; CPU {cpu}; kernel {kernel}; cpuidle {cpuidle}"
    );
    let _ = writeln!(s, "- load average (1/5/15 min): {load}");
    s
}

/// The `main` of a harness: runs `run(quick, smoke)` with the modes of
/// [`quick_mode`], prints the report and, outside the smoke pass, writes it
/// to `<target>/bench-results/<file>`.
pub fn harness_main(
    name: &str,
    file: &str,
    run: fn(bool, bool) -> Result<String, String>,
) -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (quick, smoke) = quick_mode(&args);
    match run(quick, smoke) {
        Ok(report) => {
            println!("{report}");
            if let Err(e) = write_report(&report, file, !smoke) {
                eprintln!("{e}");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name} bench failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_format() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(-12_345.0), "-12,345");
        assert_eq!(fmt_num(1234.0), "1234");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(opt(None), "–");
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50×");
        assert_eq!(ratio(Some(3.0), None), "–");
    }

    #[test]
    fn results_dir_from_exe() {
        let d = results_dir(Path::new("/w/target/release/deps/actors-abc"));
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(d, PathBuf::from("/w/target/bench-results"));
        }
    }
}
