//! Signals: SIGTERM/SIGINT request the shutdown (a second one forces it),
//! SIGHUP reloads the configuration.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::context::ConfigReloaded;
use super::shutdown::{Phase, begin_stopping};
use super::sys::request_reload;
use super::systemd;
use crate::config::{Config, ConfigLoader};
use crate::logging::LogFilter;
use crate::supervisor::{ChildRecipient, SendError};

/// Loads the configuration on tokio's blocking pool: reading and parsing
/// the file is blocking work that must not hold up an actix thread.
pub(super) async fn load_blocking(loader: &ConfigLoader) -> Result<Config, crate::config::Error> {
    let loader = loader.clone();
    tokio::task::spawn_blocking(move || loader.load())
        .await
        .unwrap_or_else(|e| {
            Err(crate::config::Error::Other(format!(
                "the configuration loader failed: {e}"
            )))
        })
}

pub(super) struct Reloader {
    pub(super) loader: ConfigLoader,
    pub(super) config: watch::Sender<Arc<Config>>,
    pub(super) subscribers: Rc<RefCell<Vec<ChildRecipient<ConfigReloaded>>>>,
    pub(super) log_filter: Option<LogFilter>,
    /// Counts reloads begun and ended, with the last outcome.
    pub(super) state: watch::Sender<super::sys::ReloadState>,
}

impl Reloader {
    /// Loads the configuration off the actix thread, then applies it here
    /// (or keeps the running one if the new one is bad).
    async fn reload(&self) {
        systemd::reloading();
        self.state.send_modify(|s| s.started += 1);
        let result = load_blocking(&self.loader).await;
        systemd::ready("running");
        let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        match result {
            Ok(config) => {
                let config = Arc::new(config);
                self.config.send_replace(config.clone());
                tracing::info!("configuration reloaded");
                for sub in self.subscribers.borrow().iter() {
                    match sub.tell(ConfigReloaded(config.clone())) {
                        Ok(()) => {}
                        Err(err @ SendError::Full(..)) => {
                            tracing::warn!("reload notice not delivered: {err}");
                        }
                        Err(err) => tracing::debug!("reload notice not delivered: {err}"),
                    }
                }
                if let Some(filter) = &self.log_filter
                    && let Err(err) = filter.set(&config.psvc.log_level)
                {
                    tracing::warn!("log level not changed: {err}");
                }
            }
            Err(err) => tracing::error!("reload failed, keeping the running configuration: {err}"),
        }
        self.state.send_modify(|s| {
            s.finished += 1;
            s.last = outcome;
        });
    }
}

/// Applies each requested reload in turn (SIGHUP, a change of the config
/// file, [`ServiceContext::request_reload`](super::ServiceContext::request_reload)).
pub(super) async fn reloads(reloader: Reloader, mut requests: mpsc::Receiver<()>) {
    while requests.recv().await.is_some() {
        reloader.reload().await;
    }
}

/// Watches the config file (its directory: editors replace files by
/// renaming) and requests a reload 200 ms after the last change to it.
pub(super) fn watch_config_file(
    file: &std::path::Path,
    requests: mpsc::Sender<()>,
) -> Result<
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    String,
> {
    use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode};
    let file = std::path::absolute(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let dir = file
        .parent()
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| format!("{} has no directory", file.display()))?;
    let watched = file.clone();
    let mut debouncer = new_debouncer(
        std::time::Duration::from_millis(200),
        move |events: notify_debouncer_mini::DebounceEventResult| {
            if let Ok(events) = events
                && events.iter().any(|e| e.path == watched)
            {
                tracing::info!(file = %watched.display(), "config file changed: reloading");
                request_reload(&requests);
            }
        },
    )
    .map_err(|e| e.to_string())?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(debouncer)
}

pub(super) fn watch_signals(
    phase: watch::Sender<Phase>,
    reload: mpsc::Sender<()>,
) -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        let mut signals = 0u32;
        loop {
            let sig = tokio::select! {
                Some(()) = term.recv() => 15,
                Some(()) = int.recv() => 2,
                Some(()) = hup.recv() => {
                    request_reload(&reload);
                    continue;
                }
                else => return,
            };
            // Count signals, not phases: the first signal is graceful even if
            // the service was already stopping on its own.
            signals += 1;
            if signals == 1 {
                tracing::info!(signal = sig, "shutdown requested (send it again to force)");
                begin_stopping(&phase);
            } else {
                tracing::warn!(signal = sig, "second signal: forcing the stop");
                phase.send_replace(Phase::Forced(sig));
                return;
            }
        }
    })
}
