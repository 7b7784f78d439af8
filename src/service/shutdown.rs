//! The shutdown phase of a running service, the [`ShutdownTrigger`] that
//! requests it, and the futures that watch it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;
use tokio::time::Instant;

/// The shutdown phase of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    /// A graceful shutdown was requested at this instant.
    Stopping(Instant),
    Forced(i32),
}

/// Moves a running service to `Stopping` (once; later requests keep the
/// first instant, which starts the shutdown deadline).
pub(super) fn begin_stopping(phase: &watch::Sender<Phase>) {
    phase.send_if_modified(|p| {
        let start = *p == Phase::Running;
        if start {
            *p = Phase::Stopping(Instant::now());
        }
        start
    });
}

/// Requests a shutdown of a running service from anywhere (another task,
/// another thread, a test). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    pub(super) phase: watch::Sender<Phase>,
    pub(super) restart: Arc<AtomicBool>,
}

impl ShutdownTrigger {
    /// Requests a graceful shutdown, as SIGTERM does.
    pub fn request(&self) {
        begin_stopping(&self.phase);
    }

    /// Requests a graceful shutdown followed by a fresh start of the same
    /// command line: [`ServiceSystem::run`](super::ServiceSystem::run) ends
    /// with [`ExitStatus::Restart`](super::ExitStatus::Restart) and replaces
    /// the process (`exec`), so a path through a symlink (an updated
    /// `current/`) starts the new version. With `PSVC_RESTART=exit` in the
    /// environment it exits with 75 instead, for a supervisor such as
    /// systemd (`Restart=on-failure`) to start it again.
    pub fn request_restart(&self) {
        self.restart.store(true, Ordering::SeqCst);
        begin_stopping(&self.phase);
    }

    /// Whether a restart was requested.
    pub fn restart_requested(&self) -> bool {
        self.restart.load(Ordering::SeqCst)
    }

    /// Forces the stop at once, as a second signal does (`sig` is reported
    /// in the exit code, 128 + `sig`).
    pub fn force(&self, sig: i32) {
        self.phase.send_replace(Phase::Forced(sig));
    }
}

pub(super) async fn forced(phase: &mut watch::Receiver<Phase>) -> i32 {
    loop {
        if let Phase::Forced(sig) = *phase.borrow_and_update() {
            return sig;
        }
        if phase.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Resolves `timeout` after a shutdown starts.
pub(super) async fn shutdown_deadline(
    mut phase: watch::Receiver<Phase>,
    timeout: std::time::Duration,
) {
    let since = match phase.wait_for(|p| *p != Phase::Running).await {
        Ok(p) => match *p {
            Phase::Stopping(since) => since,
            _ => Instant::now(),
        },
        Err(_) => return std::future::pending().await,
    };
    tokio::time::sleep_until(since + timeout).await;
}
