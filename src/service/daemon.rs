//! Background mode: `start`, `stop`, `status`, `restart` and `run`, through
//! the standard command line of every service.
//!
//! The pidfile is also a lock: the running service holds an exclusive
//! `flock` on it for its whole life (the kernel drops it when the process
//! ends, however it ends), so `status` and `stop` never trust a stale pid:
//! a pidfile nobody holds means "not running", whatever number it holds.
//! The file reads `PID` and, once the service's `init` succeeded, a second
//! line `ready`.
//!
//! `start` checks the configuration, relaunches the same program with the
//! same flags in `run` mode, in a process group of its own, stdin from
//! `/dev/null` and its output appended to `<log_dir>/<name>.out`; then it
//! waits until the service is ready (0), or has exited (1, with the end of
//! its output), or the deadline passed.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::status::ExitStatus;

/// How often `start` and `stop` look at the pidfile while they wait.
const POLL: Duration = Duration::from_millis(20);

/// What background mode acts on.
pub(super) struct Daemon {
    pub(super) name: String,
    pub(super) pidfile: PathBuf,
    pub(super) output: PathBuf,
    /// How long `start` waits for readiness and `stop` for the exit.
    pub(super) wait: Duration,
}

/// What the pidfile says, checked against its lock.
enum Running {
    /// Held by a live service: its pid, and whether it is ready.
    Yes {
        pid: i32,
        ready: bool,
    },
    No,
}

fn read_state(path: &Path) -> std::io::Result<Running> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Running::No),
        Err(err) => return Err(err),
    };
    // (fs4's, not std's: std's needs Rust 1.89.)
    match fs4::fs_std::FileExt::try_lock_shared(&file) {
        // Nobody holds it: stale (or not written yet).
        Ok(true) => Ok(Running::No),
        Ok(false) => {
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let mut lines = text.lines();
            let pid = lines
                .next()
                .and_then(|l| l.trim().parse().ok())
                .unwrap_or(0);
            let ready = lines.any(|l| l.trim() == "ready");
            Ok(Running::Yes { pid, ready })
        }
        Err(err) => Err(err),
    }
}

/// `status`: 0 and the pid if running, 3 (LSB "not running") if not.
pub(super) fn status(d: &Daemon) -> ExitStatus {
    match read_state(&d.pidfile) {
        Ok(Running::Yes { pid, ready }) => {
            let state = if ready { "running" } else { "starting" };
            println!("{}: {state} (pid {pid})", d.name);
            ExitStatus::Success
        }
        Ok(Running::No) => {
            println!("{}: not running", d.name);
            ExitStatus::NotRunning
        }
        Err(err) => {
            eprintln!("{}: {}: {err}", d.name, d.pidfile.display());
            ExitStatus::Failed
        }
    }
}

/// `stop`: SIGTERM to the pid in the pidfile, then waits for the service
/// to let go of it. Not running is not an error (as LSB says).
pub(super) fn stop(d: &Daemon) -> ExitStatus {
    let pid = match read_state(&d.pidfile) {
        Ok(Running::Yes { pid, .. }) if pid > 0 => pid,
        Ok(_) => {
            println!("{}: not running", d.name);
            return ExitStatus::Success;
        }
        Err(err) => {
            eprintln!("{}: {}: {err}", d.name, d.pidfile.display());
            return ExitStatus::Failed;
        }
    };
    if let Err(err) = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    ) {
        eprintln!("{}: cannot signal pid {pid}: {err}", d.name);
        return ExitStatus::Failed;
    }
    let deadline = Instant::now() + d.wait;
    loop {
        match read_state(&d.pidfile) {
            Ok(Running::No) => {
                println!("{}: stopped (pid {pid})", d.name);
                return ExitStatus::Success;
            }
            Ok(Running::Yes { .. }) if Instant::now() < deadline => std::thread::sleep(POLL),
            Ok(Running::Yes { .. }) => {
                eprintln!(
                    "{}: pid {pid} still running {:?} after SIGTERM",
                    d.name, d.wait
                );
                return ExitStatus::Failed;
            }
            Err(err) => {
                eprintln!("{}: {}: {err}", d.name, d.pidfile.display());
                return ExitStatus::Failed;
            }
        }
    }
}

/// `start`: relaunches this program with `args` (the same flags, in `run`
/// mode) in the background and waits until it is ready.
pub(super) fn start(d: &Daemon, args: &[OsString]) -> ExitStatus {
    match read_state(&d.pidfile) {
        Ok(Running::Yes { pid, .. }) => {
            println!("{}: already running (pid {pid})", d.name);
            return ExitStatus::Success;
        }
        Ok(Running::No) => {}
        Err(err) => {
            eprintln!("{}: {}: {err}", d.name, d.pidfile.display());
            return ExitStatus::Failed;
        }
    }
    match launch(d, args) {
        Ok(status) => status,
        Err(err) => {
            eprintln!("{}: cannot start: {err}", d.name);
            ExitStatus::Failed
        }
    }
}

fn launch(d: &Daemon, args: &[OsString]) -> std::io::Result<ExitStatus> {
    use std::os::unix::process::CommandExt;
    let program = std::env::current_exe()?;
    if let Some(dir) = d.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let output = File::options().create(true).append(true).open(&d.output)?;
    let from = output.metadata()?.len();
    let mut child = std::process::Command::new(&program)
        .args(args)
        .arg("--pidfile")
        .arg(&d.pidfile)
        .stdin(std::process::Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        // Out of the terminal's process group: Ctrl-C and the shell's job
        // control no longer reach it.
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + d.wait;
    loop {
        if let Some(code) = child.try_wait()? {
            eprintln!(
                "{}: exited during start ({code}); its output ({}):\n{}",
                d.name,
                d.output.display(),
                tail(&d.output, from)
            );
            return Ok(ExitStatus::Failed);
        }
        if let Running::Yes { ready: true, pid } = read_state(&d.pidfile)? {
            println!(
                "{}: started (pid {pid}); output in {}",
                d.name,
                d.output.display()
            );
            return Ok(ExitStatus::Success);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "{}: not ready within {:?} (pid {}); see {}",
                d.name,
                d.wait,
                child.id(),
                d.output.display()
            );
            return Ok(ExitStatus::Failed);
        }
        std::thread::sleep(POLL);
    }
}

/// The last 20 lines written to `path` since byte `from`.
fn tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(std::io::SeekFrom::Start(from));
        let _ = file.take(1 << 20).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The pidfile of a running service: locked for its whole life.
pub(super) struct PidFile {
    file: File,
    path: PathBuf,
}

/// Why the pidfile could not be taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum PidFileError {
    #[error("{0}: already held by a running instance")]
    Held(PathBuf),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
}

impl PidFile {
    /// Takes the pidfile at `path`: locks it and writes this process's pid.
    pub(super) fn take(path: &Path) -> Result<PidFile, PidFileError> {
        let io = |e| PidFileError::Io(path.to_owned(), e);
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        if !fs4::fs_std::FileExt::try_lock_exclusive(&file).map_err(io)? {
            return Err(PidFileError::Held(path.to_owned()));
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(PidFile {
            file,
            path: path.to_owned(),
        })
    }

    /// A handle that marks the service ready (the second line), for a
    /// waiting `start`.
    pub(super) fn ready_marker(&self) -> Option<ReadyMarker> {
        match self.file.try_clone() {
            Ok(file) => Some(ReadyMarker(file, self.path.clone())),
            Err(err) => {
                tracing::warn!(pidfile = %self.path.display(), "pidfile will not be marked ready: {err}");
                None
            }
        }
    }

    /// Leaves the file in place (for a restart by exec: the new image
    /// takes it again; the lock goes with this image).
    pub(super) fn keep(self) {
        std::mem::forget(self);
    }
}

/// Marks the pidfile ready.
pub(super) struct ReadyMarker(File, PathBuf);

impl ReadyMarker {
    /// Writes the `ready` line.
    pub(super) fn mark(mut self) {
        if let Err(err) = writeln!(self.0, "ready") {
            tracing::warn!(pidfile = %self.1.display(), "pidfile not marked ready: {err}");
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked: no other instance can have taken it.
        let _ = std::fs::remove_file(&self.path);
    }
}
