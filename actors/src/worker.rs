//! Supervised OS processes: [`ProcessWorker`].
//!
//! A worker is a child of a psvc supervisor whose work is done by a
//! program in its own process group. Its lines on stdout and stderr go to
//! `tracing` under the worker's name; its exit is the child's exit, handled
//! by the supervisor's policy and backoff like any other: exit code 0 is a
//! normal stop ([`ExitReason::Normal`](psvc::supervisor::ExitReason::Normal)),
//! any other code or a signal is a failure. Each start, first or restart,
//! spawns a fresh process, so a restart is as reliable as the first start.
//!
//! A graceful stop sends SIGTERM to the process group, then SIGKILL to the
//! whole group when [`WorkerCommand::stop_timeout`] passes; whatever the
//! way the worker ends (its leader exiting, its actor dropped), no process
//! of its group is left behind.
//!
//! ```no_run
//! # async fn demo(root: psvc::supervisor::SupervisorRef) -> Result<(), Box<dyn std::error::Error>> {
//! use psvc_actors::worker::{ProcessWorker, WorkerCommand};
//! let command = WorkerCommand::new("/usr/bin/python3").arg("-m").arg("http.server");
//! let worker = root.start_child(ProcessWorker::child_spec("web", command)).await?;
//! # let _ = worker; Ok(()) }
//! ```

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use actix::prelude::*;
use futures::StreamExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use psvc::supervisor::{ChildSpec, Shutdown, SupervisedContext};
use serde::Deserialize;
use tokio_util::codec::{FramedRead, LinesCodec};

pub mod pool;
pub use pool::{Applied, ApplyConfig, WorkerPool};

/// Longest line of a worker's output passed to tracing; longer ones are
/// cut (the rest of the line is dropped and counted as one).
pub const MAX_LINE: usize = 16 * 1024;

/// What a worker runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerCommand {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Variables added to the environment it inherits.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Its working directory (default: the service's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Between SIGTERM and SIGKILL on a graceful stop.
    #[serde(default = "default_stop_timeout", with = "humantime_serde")]
    pub stop_timeout: Duration,
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(5)
}

impl WorkerCommand {
    /// Runs `program` with no arguments, stopped within 5 s.
    pub fn new(program: impl Into<PathBuf>) -> WorkerCommand {
        WorkerCommand {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stop_timeout: default_stop_timeout(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<String>) -> WorkerCommand {
        self.args.push(arg.into());
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> WorkerCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> WorkerCommand {
        self.cwd = Some(dir.into());
        self
    }

    /// Sets the time between SIGTERM and SIGKILL.
    pub fn stop_timeout(mut self, timeout: Duration) -> WorkerCommand {
        self.stop_timeout = timeout;
        self
    }
}

/// Why a worker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The program could not be started.
    #[error("{name}: cannot start {program}: {source}")]
    Spawn {
        /// The worker.
        name: String,
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The process ended on its own, unsuccessfully.
    #[error("{name}: process {pid} {status}")]
    Exited {
        /// The worker.
        name: String,
        /// Its process id.
        pid: u32,
        /// How it ended (`exit status: 3`, `signal: 9 (SIGKILL)`).
        status: String,
    },
}

/// The actor of one worker process; see the [module docs](self).
pub struct ProcessWorker {
    name: String,
    command: WorkerCommand,
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    /// SIGTERM was sent for a graceful stop.
    terminating: bool,
    /// stdout and stderr not read to their end yet.
    open_streams: u8,
    /// How the process ended, until its last output lines are logged.
    ended: Option<std::io::Result<std::process::ExitStatus>>,
    finished: bool,
}

/// How long a worker's last output may take to arrive after its exit (a
/// process outside its group may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(1);

impl std::fmt::Debug for ProcessWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessWorker")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl ProcessWorker {
    /// Starts the process (in a process group of its own, stdin from
    /// `/dev/null`, stdout and stderr piped to tracing).
    ///
    /// # Errors
    /// [`WorkerError::Spawn`]: the program cannot be started.
    pub fn spawn(
        name: impl Into<String>,
        command: WorkerCommand,
    ) -> Result<ProcessWorker, WorkerError> {
        let name = name.into();
        let mut cmd = tokio::process::Command::new(&command.program);
        cmd.args(&command.args)
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &command.cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn().map_err(|source| WorkerError::Spawn {
            name: name.clone(),
            program: command.program.clone(),
            source,
        })?;
        let pid = child.id();
        tracing::info!(worker = %name, ?pid, program = %command.program.display(), "worker started");
        Ok(ProcessWorker {
            name,
            command,
            child: Some(child),
            pid,
            terminating: false,
            open_streams: 0,
            ended: None,
            finished: false,
        })
    }

    /// A permanent child spec: each start spawns the process (a program that
    /// cannot start is a failed start); the supervisor's shutdown allows
    /// [`WorkerCommand::stop_timeout`] plus one second.
    pub fn child_spec(id: impl Into<String>, command: WorkerCommand) -> ChildSpec<ProcessWorker> {
        let id = id.into();
        let shutdown = Shutdown::Timeout(command.stop_timeout + Duration::from_secs(1));
        let name = id.clone();
        ChildSpec::try_new(id, move || {
            ProcessWorker::spawn(name.clone(), command.clone())
        })
        .shutdown(shutdown)
    }

    /// Sends `signal` to the worker's process group (nothing once it is
    /// gone).
    fn signal_group(&self, signal: Signal) {
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        match killpg(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(worker = %self.name, pid, %signal, error = %e, "signal not sent")
            }
        }
    }

    /// The process has been reaped (its status waits in `ended`, or the
    /// actor has finished with it).
    fn reaped(&self) -> bool {
        self.ended.is_some() || self.finished
    }

    fn on_exit(
        &mut self,
        status: std::io::Result<std::process::ExitStatus>,
        ctx: &mut Context<Self>,
    ) {
        // Whatever its leader did, nothing of the group stays behind.
        self.signal_group(Signal::SIGKILL);
        self.ended = Some(status);
        // Its last lines (a panic message) are logged before it is gone.
        ctx.run_later(DRAIN, |act, ctx| act.finish(ctx));
        if self.open_streams == 0 {
            self.finish(ctx);
        }
    }

    fn stream_closed(&mut self, ctx: &mut Context<Self>) {
        self.open_streams = self.open_streams.saturating_sub(1);
        if self.open_streams == 0 && self.reaped() {
            self.finish(ctx);
        }
    }

    /// Ends the actor as the process ended.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        let Some(status) = self.ended.take() else {
            return;
        };
        if self.finished {
            return;
        }
        self.finished = true;
        let pid = self.pid.unwrap_or_default();
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                ctx.fail(WorkerError::Exited {
                    name: self.name.clone(),
                    pid,
                    status: format!("could not be waited for: {e}"),
                });
                return;
            }
        };
        if self.terminating || status.success() {
            tracing::info!(worker = %self.name, pid, %status, "worker stopped");
            ctx.stop();
        } else {
            tracing::warn!(worker = %self.name, pid, %status, "worker exited");
            ctx.fail(WorkerError::Exited {
                name: self.name.clone(),
                pid,
                status: describe(status),
            });
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status: {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("signal: {sig} ({s})"),
            Err(_) => format!("signal: {sig}"),
        },
        _ => status.to_string(),
    }
}

/// Forwards the lines of `stream` to tracing as the worker's output.
async fn log_lines<R: tokio::io::AsyncRead + Unpin + 'static>(
    name: String,
    stream: R,
    stderr: bool,
) {
    let mut lines = FramedRead::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    // After a decoding error the stream yields `None` once, then reads on:
    // an over-long line must not stop the reading (the worker would block
    // on a full pipe).
    let mut after_error = false;
    loop {
        match lines.next().await {
            Some(Ok(line)) => {
                after_error = false;
                if stderr {
                    tracing::warn!(worker = %name, "{line}");
                } else {
                    tracing::info!(worker = %name, "{line}");
                }
            }
            Some(Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded)) => {
                tracing::warn!(worker = %name, max = MAX_LINE, "line too long: cut");
                after_error = true;
            }
            None if after_error => after_error = false,
            Some(Err(_)) | None => return,
        }
    }
}

impl Actor for ProcessWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(out) = child.stdout.take() {
            self.open_streams += 1;
            ctx.spawn(
                fut::wrap_future(log_lines(self.name.clone(), out, false))
                    .map(|(), act: &mut Self, ctx| act.stream_closed(ctx)),
            );
        }
        if let Some(err) = child.stderr.take() {
            self.open_streams += 1;
            ctx.spawn(
                fut::wrap_future(log_lines(self.name.clone(), err, true))
                    .map(|(), act: &mut Self, ctx| act.stream_closed(ctx)),
            );
        }
        ctx.spawn(
            fut::wrap_future(async move {
                let status = child.wait().await;
                drop(child);
                status
            })
            .map(|status, act: &mut Self, ctx| act.on_exit(status, ctx)),
        );
    }

    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if self.finished || self.pid.is_none() {
            return Running::Stop;
        }
        if self.reaped() {
            // Reaped; its last lines are being logged.
            return Running::Continue;
        }
        if !self.terminating {
            self.terminating = true;
            tracing::info!(worker = %self.name, pid = ?self.pid, "stopping worker: SIGTERM");
            self.signal_group(Signal::SIGTERM);
            ctx.run_later(self.command.stop_timeout, |act, _| {
                if !act.reaped() {
                    tracing::warn!(worker = %act.name, pid = ?act.pid, "worker ignored SIGTERM: SIGKILL");
                    act.signal_group(Signal::SIGKILL);
                }
            });
        }
        // Stopped for good when the process is reaped (`on_exit`).
        Running::Continue
    }
}

impl Drop for ProcessWorker {
    fn drop(&mut self) {
        if !self.reaped() {
            self.signal_group(Signal::SIGKILL);
        }
    }
}

/// The worker's process id (`None` before it started or once it exited).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Option<u32>")]
pub struct WorkerPid;

impl Handler<WorkerPid> for ProcessWorker {
    type Result = Option<u32>;

    fn handle(&mut self, _: WorkerPid, _: &mut Context<Self>) -> Option<u32> {
        if self.reaped() { None } else { self.pid }
    }
}
