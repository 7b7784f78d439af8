//! Workers declared in the configuration, kept in step with it:
//! [`WorkerPool`].
//!
//! ```ini
//! [worker.camera]
//! program = /opt/modules/camera
//! args = --port 4001 --name "front door"   ; split as a shell would
//! cwd = /opt/modules
//! restart = permanent                      ; permanent | transient | temporary
//! stop_timeout = 5s
//! ```
//!
//! At each [`ApplyConfig`] (and each [`ConfigReloaded`], which SIGHUP
//! delivers) the `[worker.*]` entries are compared with the running
//! workers: new ones start, removed ones stop, changed ones restart with
//! their new command, unchanged ones are left alone. An entry that does not
//! parse is rejected with a warning naming it, and the rest applies (a
//! running worker whose new entry is malformed keeps running as it was).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use actix::prelude::*;
use psvc::service::ConfigReloaded;
use psvc::supervisor::{Restart, SupervisorRef};
use serde::{Deserialize, Serialize};

use super::{ProcessWorker, WorkerCommand};

/// The configuration section holding the entries (`[worker.NAME]`).
pub const SECTION: &str = "worker";

/// One `[worker.NAME]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    program: PathBuf,
    #[serde(default)]
    args: String,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    restart: Option<String>,
    #[serde(default, with = "humantime_serde")]
    stop_timeout: Option<Duration>,
}

/// A worker as the pool runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Declared {
    command: WorkerCommand,
    restart: Restart,
}

fn declared(value: serde_json::Value) -> Result<Declared, String> {
    let entry: Entry = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let args = shell_words::split(&entry.args).map_err(|e| format!("args: {e}"))?;
    let restart = match entry.restart.as_deref() {
        None | Some("permanent") => Restart::Permanent,
        Some("transient") => Restart::Transient,
        Some("temporary") => Restart::Temporary,
        Some(other) => {
            return Err(format!(
                "restart: {other:?} is not permanent, transient or temporary"
            ));
        }
    };
    let mut command = WorkerCommand::new(entry.program);
    command.args = args;
    command.cwd = entry.cwd;
    if let Some(t) = entry.stop_timeout {
        command.stop_timeout = t;
    }
    Ok(Declared { command, restart })
}

/// What an apply changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Workers started (new entries).
    pub started: Vec<String>,
    /// Workers stopped (entries removed).
    pub stopped: Vec<String>,
    /// Workers restarted with a changed entry.
    pub restarted: Vec<String>,
    /// Entries rejected, with the reason; the rest applied.
    pub rejected: Vec<(String, String)>,
    /// Workers that could not be started or stopped, with the reason.
    pub failed: Vec<(String, String)>,
}

/// Keeps the workers of a supervisor in step with the configuration; see
/// the [module docs](self). One apply at a time.
pub struct WorkerPool {
    supervisor: SupervisorRef,
    running: BTreeMap<String, Declared>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkerPool {
    /// A pool whose workers are children of `supervisor` (give it a
    /// supervisor of its own: the pool stops children it does not know).
    pub fn new(supervisor: SupervisorRef) -> WorkerPool {
        WorkerPool {
            supervisor,
            running: BTreeMap::new(),
        }
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;
}

/// Brings the workers in step with `config`'s `[worker.*]` entries.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Applied")]
pub struct ApplyConfig(pub std::sync::Arc<psvc::config::Config>);

/// The entries of `config`: the parsed ones, and the rejected ones.
fn entries(config: &psvc::config::Config) -> (BTreeMap<String, Declared>, Vec<(String, String)>) {
    let mut good = BTreeMap::new();
    let mut rejected = Vec::new();
    let raw: BTreeMap<String, serde_json::Value> = config.get(SECTION).unwrap_or_default();
    for (name, value) in raw {
        match declared(value) {
            Ok(d) if !name.is_empty() => {
                good.insert(name, d);
            }
            Ok(_) => rejected.push((name, "empty worker name".into())),
            Err(reason) => {
                tracing::warn!(worker = %name, %reason, "[worker.{name}] rejected; the rest applies");
                rejected.push((name, reason));
            }
        }
    }
    (good, rejected)
}

impl Handler<ApplyConfig> for WorkerPool {
    type Result = AtomicResponse<Self, Applied>;

    fn handle(&mut self, msg: ApplyConfig, _: &mut Context<Self>) -> Self::Result {
        let (wanted, rejected) = entries(&msg.0);
        let rejected_names: Vec<String> = rejected.iter().map(|(n, _)| n.clone()).collect();
        let supervisor = self.supervisor.clone();
        let running = self.running.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let mut applied = Applied {
                    rejected,
                    ..Applied::default()
                };
                let mut now = running.clone();
                // Removed (a rejected entry keeps its worker as it was).
                for name in running.keys() {
                    if wanted.contains_key(name) || rejected_names.contains(name) {
                        continue;
                    }
                    match remove(&supervisor, name).await {
                        Ok(()) => {
                            now.remove(name);
                            applied.stopped.push(name.clone());
                        }
                        Err(e) => applied.failed.push((name.clone(), e)),
                    }
                }
                for (name, declared) in &wanted {
                    let changed = match running.get(name) {
                        Some(old) if old == declared => continue,
                        Some(_) => {
                            if let Err(e) = remove(&supervisor, name).await {
                                applied.failed.push((name.clone(), e));
                                continue;
                            }
                            now.remove(name);
                            true
                        }
                        None => false,
                    };
                    let spec = ProcessWorker::child_spec(name.clone(), declared.command.clone())
                        .restart(declared.restart);
                    match supervisor.start_child(spec).await {
                        Ok(_) => {
                            now.insert(name.clone(), declared.clone());
                            if changed {
                                applied.restarted.push(name.clone());
                            } else {
                                applied.started.push(name.clone());
                            }
                        }
                        Err(e) => {
                            tracing::warn!(worker = %name, error = %e, "worker not started");
                            applied.failed.push((name.clone(), e.to_string()));
                        }
                    }
                }
                tracing::info!(
                    started = ?applied.started,
                    stopped = ?applied.stopped,
                    restarted = ?applied.restarted,
                    rejected = applied.rejected.len(),
                    "workers in step with the configuration"
                );
                (applied, now)
            }
            .into_actor(self)
            .map(|(applied, now), act: &mut Self, _| {
                act.running = now;
                applied
            }),
        ))
    }
}

/// Stops and forgets a child (a stopped child is still a known id).
async fn remove(supervisor: &SupervisorRef, name: &str) -> Result<(), String> {
    match supervisor.stop_child(name).await {
        Ok(()) | Err(psvc::supervisor::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.to_string()),
    }
    match supervisor.delete_child(name).await {
        Ok(()) | Err(psvc::supervisor::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl Handler<ConfigReloaded> for WorkerPool {
    type Result = ();

    fn handle(&mut self, msg: ConfigReloaded, ctx: &mut Context<Self>) {
        // Applied in turn with any other apply.
        ctx.notify(ApplyConfig(msg.0));
    }
}
