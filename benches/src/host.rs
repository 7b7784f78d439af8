//! What a report records about the machine and the build it ran on, shared
//! by the `actors` and `network` harnesses.

use std::process::{Command, Stdio};
use std::thread;

/// The trimmed stdout of `program args`, if it succeeded and printed something.
pub fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// The trimmed contents of a file, if readable and not empty.
pub fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Version of `name` in the workspace `Cargo.lock` this binary was built with.
pub fn locked_version(name: &str) -> String {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let needle = format!("name = \"{name}\"\nversion = \"");
    LOCK.find(&needle)
        .and_then(|i| {
            let rest = &LOCK[i + needle.len()..];
            rest.find('"').map(|j| rest[..j].to_string())
        })
        .unwrap_or_else(|| "?".to_string())
}

/// 1/5/15-minute load averages: other work on this 2-core box skews absolute numbers.
pub fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The machine, toolchain and commit of a run.
#[derive(Debug, Clone)]
pub struct Host {
    /// UTC date and time.
    pub date: String,
    /// Short commit, with " + uncommitted changes" when the tree is dirty.
    pub git: String,
    /// Available parallelism.
    pub nproc: usize,
    /// CPU model name.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// cpuidle driver.
    pub cpuidle: String,
    /// `rustc --version` of the toolchain that built the benches.
    pub rustc: String,
}

impl Host {
    /// Reads everything now.
    pub fn read() -> Self {
        let unknown = || "unknown".to_string();
        let cpu = read_trimmed("/proc/cpuinfo")
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(unknown);
        let kernel = read_trimmed("/proc/sys/kernel/osrelease")
            .or_else(|| command_line("uname", &["-r"]))
            .unwrap_or_else(unknown);
        let rustc = std::env::var("RUSTC")
            .ok()
            .and_then(|r| command_line(&r, &["--version"]))
            .or_else(|| command_line("rustc", &["--version"]))
            .unwrap_or_else(|| "unavailable".to_string());
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let dirty = command_line(
            "git",
            &[
                "-C",
                workspace,
                "status",
                "--porcelain",
                "--untracked-files=all",
            ],
        )
        .map_or("", |_| " + uncommitted changes");
        let git = command_line("git", &["-C", workspace, "rev-parse", "--short", "HEAD"])
            .map_or_else(|| "no commit".to_string(), |sha| format!("{sha}{dirty}"));
        Self {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(unknown),
            git,
            nproc: thread::available_parallelism().map_or(0, usize::from),
            cpu,
            kernel,
            cpuidle: read_trimmed("/sys/devices/system/cpu/cpuidle/current_driver")
                .unwrap_or_else(unknown),
            rustc,
        }
    }
}
