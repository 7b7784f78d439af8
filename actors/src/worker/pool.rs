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
//! env = RUST_LOG=info MODE="day shift"     ; KEY=VALUE pairs, split as a shell would
//! backoff_min = 100ms                      ; this worker's restart delays (default: its supervisor's)
//! backoff_max = 10s
//! forward = 127.0.0.1:4001                 ; serve /camera/… from the worker here (or unix:/run/camera.sock)
//! watch = /opt/modules/camera.py           ; files whose change reloads it (default: program)
//! reload_on_change = true
//! ```
//!
//! With [`WorkerPool::forwarding`], a worker with `forward = ADDR` is
//! served under `/NAME/` by the front door's [`ForwardTable`]. When a
//! watched file changes (the program by default: a new build, an edited
//! script), the worker is reloaded gracefully: requests in flight finish
//! on the old process, new ones wait, the worker restarts, and they go to
//! the new one ([`Forward::drained`]).
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
use psvc::supervisor::{Backoff, Restart, SupervisorRef};
use serde::{Deserialize, Serialize};

use super::{ProcessWorker, WorkerCommand};
use crate::forward::{Forward, ForwardTable};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use parking_lot::Mutex;
use std::sync::Arc;

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
    #[serde(default)]
    env: String,
    #[serde(default, with = "humantime_serde")]
    backoff_min: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    backoff_max: Option<Duration>,
    #[serde(default)]
    forward: Option<String>,
    #[serde(default)]
    watch: Option<String>,
    #[serde(default)]
    reload_on_change: Option<bool>,
}

/// A worker as the pool runs it.
#[derive(Debug, Clone, PartialEq)]
struct Declared {
    command: WorkerCommand,
    restart: Restart,
    backoff: Option<Backoff>,
    /// Where the worker serves, for the front door.
    forward: Option<String>,
    /// Files whose change reloads the worker (absolute).
    watch: Vec<PathBuf>,
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
    let mut watch = match &entry.watch {
        Some(list) => shell_words::split(list)
            .map_err(|e| format!("watch: {e}"))?
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        // A program named by path (not looked up in PATH).
        None if entry.program.components().count() > 1 => vec![entry.program.clone()],
        None => Vec::new(),
    };
    if entry.reload_on_change == Some(false) {
        watch.clear();
    }
    let base = entry.cwd.clone().unwrap_or_default();
    let watch = watch
        .into_iter()
        .map(|p| std::path::absolute(base.join(p)).map_err(|e| format!("watch: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(addr) = &entry.forward
        && addr.parse::<std::net::SocketAddr>().is_err()
        && !addr
            .strip_prefix("unix:")
            .is_some_and(|p| p.starts_with('/'))
    {
        return Err(format!(
            "forward: {addr:?} is neither IP:PORT nor unix:/absolute/path"
        ));
    }
    let mut command = WorkerCommand::new(entry.program);
    for pair in shell_words::split(&entry.env).map_err(|e| format!("env: {e}"))? {
        match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => command = command.env(key, value),
            _ => return Err(format!("env: {pair:?} is not KEY=VALUE")),
        }
    }
    let backoff = match (entry.backoff_min, entry.backoff_max) {
        (None, None) => None,
        (min, max) => {
            let min = min.unwrap_or(Duration::from_millis(100));
            Some(Backoff::exponential(
                min,
                max.unwrap_or(min.max(Duration::from_secs(10))),
            ))
        }
    };
    command.args = args;
    command.cwd = entry.cwd;
    if let Some(t) = entry.stop_timeout {
        command.stop_timeout = t;
    }
    Ok(Declared {
        command,
        restart,
        backoff,
        forward: entry.forward,
        watch,
    })
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
    forwards: Option<ForwardTable>,
    /// Watched file → the workers it reloads (shared with the watcher).
    watched: Arc<Mutex<BTreeMap<PathBuf, Vec<String>>>>,
    watcher: Option<Debouncer<RecommendedWatcher>>,
    /// Directories the watcher watches.
    watched_dirs: std::collections::BTreeSet<PathBuf>,
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
            forwards: None,
            watched: Arc::default(),
            watcher: None,
            watched_dirs: std::collections::BTreeSet::new(),
        }
    }

    /// Keeps `table` in step with the `forward = ADDR` entries: the front
    /// door serves each such worker under `/NAME/`.
    pub fn forwarding(mut self, table: ForwardTable) -> WorkerPool {
        self.forwards = Some(table);
        self
    }

    /// After an apply: the forwarding table and the watched files follow
    /// the running workers.
    fn follow(&mut self, before: &BTreeMap<String, Declared>, ctx: &mut Context<Self>) {
        if let Some(table) = &self.forwards {
            for name in before.keys().filter(|n| !self.running.contains_key(*n)) {
                table.remove(name);
            }
            for (name, declared) in &self.running {
                let old = before.get(name).and_then(|d| d.forward.as_ref());
                match &declared.forward {
                    Some(addr) if Some(addr) != old || table.get(name).is_none() => {
                        table.insert(Forward::new(name.clone(), addr.clone()));
                    }
                    None => {
                        table.remove(name);
                    }
                    Some(_) => {}
                }
            }
        }
        let mut watched: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (name, declared) in &self.running {
            for file in &declared.watch {
                watched.entry(file.clone()).or_default().push(name.clone());
            }
        }
        if !watched.is_empty() && self.watcher.is_none() {
            self.watcher = self.start_watcher(ctx);
        }
        if let Some(watcher) = &mut self.watcher {
            for dir in watched.keys().filter_map(|f| f.parent()) {
                if self.watched_dirs.insert(dir.to_owned())
                    && let Err(e) = watcher.watcher().watch(dir, RecursiveMode::NonRecursive)
                {
                    tracing::warn!(dir = %dir.display(), "not watched for reloads: {e}");
                    self.watched_dirs.remove(dir);
                }
            }
        }
        *self.watched.lock() = watched;
    }

    /// Watches for changes of the watched files, debounced 200 ms.
    fn start_watcher(&self, ctx: &mut Context<Self>) -> Option<Debouncer<RecommendedWatcher>> {
        let pool = ctx.address();
        let watched = self.watched.clone();
        let watcher = new_debouncer(
            Duration::from_millis(200),
            move |events: DebounceEventResult| {
                let Ok(events) = events else { return };
                let names: std::collections::BTreeSet<String> = {
                    let watched = watched.lock();
                    events
                        .iter()
                        .filter_map(|e| watched.get(&e.path))
                        .flatten()
                        .cloned()
                        .collect()
                };
                for name in names {
                    // A full mailbox already holds work for the pool; the next
                    // change is seen again.
                    if let Err(e) = pool.try_send(ProgramChanged(name)) {
                        tracing::warn!("reload on change not queued: {e}");
                    }
                }
            },
        );
        match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("program files not watched: {e}");
                None
            }
        }
    }
}

impl Actor for WorkerPool {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(64);
    }
}

/// A watched file of the worker changed: reload it gracefully.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ProgramChanged(pub String);

impl Handler<ProgramChanged> for WorkerPool {
    type Result = AtomicResponse<Self, ()>;

    fn handle(
        &mut self,
        ProgramChanged(name): ProgramChanged,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let running = self.running.contains_key(&name);
        let forward = self.forwards.as_ref().and_then(|t| t.get(&name));
        let supervisor = self.supervisor.clone();
        AtomicResponse::new(Box::pin(
            async move {
                if !running {
                    return;
                }
                tracing::info!(worker = %name, "a watched file changed: reloading the worker");
                let restart = supervisor.restart_child(&name);
                let result = match forward {
                    Some(forward) => forward.drained(restart).await,
                    None => restart.await,
                };
                match result {
                    Ok(()) => tracing::info!(worker = %name, "worker reloaded"),
                    Err(e) => tracing::warn!(worker = %name, error = %e, "worker not reloaded"),
                }
            }
            .into_actor(self),
        ))
    }
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
                    let mut spec =
                        ProcessWorker::child_spec(name.clone(), declared.command.clone())
                            .restart(declared.restart);
                    if let Some(backoff) = declared.backoff {
                        spec = spec.backoff(backoff);
                    }
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
            .map(|(applied, now), act: &mut Self, ctx| {
                let before = std::mem::replace(&mut act.running, now);
                act.follow(&before, ctx);
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
