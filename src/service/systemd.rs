//! systemd integration: `sd_notify` READY / RELOADING / STOPPING / WATCHDOG.
//!
//! Every call is a no-op unless the service runs under systemd with
//! `Type=notify` (or `notify-reload`), i.e. unless `NOTIFY_SOCKET` is set.
//! See `docs/configuration.md` for a unit file.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {err}");
    }
}

/// Start-up finished (after `init`).
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A configuration reload begins.
pub(crate) fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(err) => tracing::warn!("sd_notify: no monotonic clock: {err}"),
    }
}

/// The shutdown begins.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// When systemd's watchdog is on (`WatchdogSec=`), a task that pings it at
/// half the interval from the system arbiter, so a stuck event loop is
/// noticed and the service restarted.
pub(crate) fn watchdog() -> Option<impl Future<Output = ()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let every = (interval / 2).max(Duration::from_millis(10));
    tracing::info!(?interval, "systemd watchdog enabled");
    Some(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    })
}
