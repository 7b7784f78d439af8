//! Signals: SIGTERM/SIGINT request the shutdown (a second one forces it),
//! SIGHUP reloads the configuration.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::watch;

use super::context::ConfigReloaded;
use super::shutdown::{Phase, begin_stopping};
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
}

impl Reloader {
    /// Loads the configuration off the actix thread, then applies it here
    /// (or keeps the running one if the new one is bad).
    async fn reload(&self) {
        systemd::reloading();
        let result = load_blocking(&self.loader).await;
        systemd::ready("running");
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
    }
}

pub(super) fn watch_signals(
    phase: watch::Sender<Phase>,
    reloader: Reloader,
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
                    reloader.reload().await;
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
