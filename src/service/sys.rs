//! The system commands every psvc service serves (`/sys/...`), the figures
//! behind them, and the optional Prometheus scrape endpoint.
//!
//! | route | reply |
//! |---|---|
//! | `/sys/ping` | `{"pong": true, "peer": "IP:PORT"}`: the caller's address |
//! | `/sys/help` | `[{"route", "description"}]`: every route of the service |
//! | `/sys/children` | `[ChildEntry]`: the supervision tree (nested supervisors' children within) |
//! | `/sys/restart` | param `{"id"}`: restarts that child |
//! | `/sys/reload` | reloads the configuration; replies once it is applied (or refused) |
//! | `/sys/stats` | [`SysStats`]: connections, calls, errors, restarts, dropped, uptime, version |
//!
//! `[PSVC] sys_commands` decides who may use them: `all` (every client the
//! server's authentication let in), `admin` (requests carrying the admin
//! token in `{"token": ...}`, read from `[PSVC] admin_token_file`) or
//! `off`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};

use crate::commander::{CommandError, Commander, Request};
use crate::config::{PsvcConfig, SysAccess};
use crate::server::ServerStats;
use crate::supervisor::{ChildInfo, ChildKind, ChildState, Restart, SupervisorRef};

/// How long `/sys/reload` waits for the reload it asked for.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// Where the reloads stand: how many began and ended, and how the last
/// one went.
#[derive(Clone, Debug)]
pub(super) struct ReloadState {
    pub(super) started: u64,
    pub(super) finished: u64,
    /// `Err(message)` if the last reload kept the running configuration.
    pub(super) last: Result<(), String>,
}

impl Default for ReloadState {
    fn default() -> Self {
        ReloadState {
            started: 0,
            finished: 0,
            last: Ok(()),
        }
    }
}

/// Why [`ServiceContext::reload`](super::ServiceContext::reload) did not
/// apply a new configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The new configuration was refused; the running one stays.
    #[error("reload refused, the running configuration stays: {0}")]
    Refused(String),
    /// The service is stopping (or the reload did not finish in time).
    #[error("reload not done: {0}")]
    NotDone(&'static str),
}

/// Requests a reload; one already waiting covers this one (the channel
/// holds one request: reloads coalesce, none is lost).
pub(super) fn request_reload(requests: &tokio::sync::mpsc::Sender<()>) {
    use tokio::sync::mpsc::error::TrySendError;
    match requests.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) => {}
        Err(TrySendError::Closed(())) => {
            tracing::debug!("reload not requested: the service is stopping");
        }
    }
}

/// Requests a reload and waits until a reload that began after the
/// request has ended.
pub(super) async fn reload_and_wait(
    requests: &mpsc::Sender<()>,
    mut state: watch::Receiver<ReloadState>,
) -> Result<(), ReloadError> {
    // A reload under way may have read the file before the request: wait
    // for the next one to begin after it, i.e. for `started + 1` to end.
    let target = state.borrow().started + 1;
    request_reload(requests);
    let done = tokio::time::timeout(RELOAD_WAIT, state.wait_for(|s| s.finished >= target)).await;
    match done {
        Ok(Ok(state)) => state.last.clone().map_err(ReloadError::Refused),
        Ok(Err(_)) => Err(ReloadError::NotDone("the service is stopping")),
        Err(_) => Err(ReloadError::NotDone("no reload finished within 30 s")),
    }
}

/// A service's figures, as `/sys/stats` replies them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SysStats {
    /// The service name.
    pub name: String,
    /// `[PSVC] version`.
    pub version: String,
    /// Milliseconds since the service started.
    pub uptime_ms: u64,
    /// Sessions open now (servers built with
    /// [`ServiceContext::server`](super::ServiceContext::server)).
    pub connections: u64,
    /// Sessions accepted since start.
    pub accepted: u64,
    /// RPCs received.
    pub calls: u64,
    /// RPCs answered with a non-zero status.
    pub errors: u64,
    /// Restarts of the root supervisor's children, all together.
    pub restarts: u64,
    /// Packets and events dropped or refused to stay within bounds.
    pub dropped: u64,
    /// Children of the root supervisor.
    pub children: usize,
}

/// One child, as `/sys/children` replies it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildEntry {
    /// Its id.
    pub id: String,
    /// `worker` or `supervisor`.
    pub kind: String,
    /// `running`, `stopped` or `restarting`.
    pub state: String,
    /// `permanent`, `transient` or `temporary`.
    pub restart: String,
    /// How many times it was restarted.
    pub restarts: u64,
    /// Milliseconds its current instance has run.
    pub uptime_ms: Option<u64>,
    /// Added at run time.
    pub dynamic: bool,
    /// A nested supervisor's own children (empty for a worker).
    #[serde(default)]
    pub children: Vec<ChildEntry>,
}

impl From<&ChildInfo> for ChildEntry {
    fn from(info: &ChildInfo) -> Self {
        ChildEntry {
            id: info.id.clone(),
            kind: match info.kind {
                ChildKind::Worker => "worker",
                ChildKind::Supervisor => "supervisor",
            }
            .into(),
            state: match info.state {
                ChildState::Running => "running",
                ChildState::Stopped => "stopped",
                ChildState::Restarting => "restarting",
            }
            .into(),
            restart: match info.restart {
                Restart::Permanent => "permanent",
                Restart::Transient => "transient",
                Restart::Temporary => "temporary",
            }
            .into(),
            restarts: info.restarts,
            uptime_ms: info.started_at.map(|t| millis(t.elapsed())),
            dynamic: info.dynamic,
            children: Vec::new(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the system commands read: shared by the service's context and its
/// routes.
#[derive(Clone)]
pub(super) struct Sys {
    pub(super) name: Arc<str>,
    pub(super) version: String,
    pub(super) started: Instant,
    pub(super) root: SupervisorRef,
    pub(super) stats: Arc<ServerStats>,
    pub(super) reload: mpsc::Sender<()>,
    pub(super) reloaded: watch::Receiver<ReloadState>,
}

impl Sys {
    pub(super) async fn stats(&self) -> SysStats {
        let children = self.root.which_children().await.unwrap_or_default();
        let counters = self.stats.snapshot();
        SysStats {
            name: self.name.to_string(),
            version: self.version.clone(),
            uptime_ms: millis(self.started.elapsed()),
            connections: counters.connections,
            accepted: counters.accepted,
            calls: counters.calls,
            errors: counters.errors,
            restarts: children.iter().map(|c| c.restarts).sum(),
            dropped: counters.dropped(),
            children: children.len(),
        }
    }

    /// Adds the `/sys/*` routes to `commander` as `config` allows.
    pub(super) fn routes(&self, commander: Commander, config: &PsvcConfig) -> Commander {
        let gate = match (config.sys_commands, &config.admin_token_file) {
            (SysAccess::Off, _) => return commander,
            (SysAccess::All, _) => Gate(None),
            (SysAccess::Admin, Some(file)) => match std::fs::read_to_string(file) {
                Ok(token) if !token.trim().is_empty() => {
                    Gate(Some(Sha256::digest(token.trim().as_bytes()).into()))
                }
                Ok(_) => return refuse_all(commander, "the admin token file is empty"),
                Err(err) => {
                    tracing::error!(file = %file.display(), "system commands off: admin token not read: {err}");
                    return refuse_all(commander, "the admin token could not be read");
                }
            },
            (SysAccess::Admin, None) => {
                tracing::error!(
                    "system commands off: sys_commands = admin needs [PSVC] admin_token_file"
                );
                return refuse_all(commander, "no admin token is configured");
            }
        };
        let gate = Arc::new(gate);
        let route = |commander: Commander, path: &str, text: &str, handler: SysHandler| {
            let (sys, gate) = (self.clone(), gate.clone());
            commander
                .route(path, move |req: Request| {
                    let (sys, allowed) = (sys.clone(), gate.check(&req));
                    async move {
                        allowed?;
                        handler(sys, req).await
                    }
                })
                .describe(path, text)
        };
        let commander = route(
            commander,
            "/sys/ping",
            "the caller's address: {\"pong\": true, \"peer\"}",
            |_, req| Box::pin(async move { ping(&req) }),
        );
        let commander = route(
            commander,
            "/sys/help",
            "every route of this service with its description",
            |_, req| Box::pin(async move { help(&req) }),
        );
        let commander = route(
            commander,
            "/sys/children",
            "the supervision tree: id, kind, state, restart, restarts, uptime_ms, children",
            |sys, _| Box::pin(async move { children(&sys).await }),
        );
        let commander = route(
            commander,
            "/sys/restart",
            "restarts a child of the root supervisor: {\"id\": ID}",
            |sys, req| Box::pin(async move { restart(&sys, &req).await }),
        );
        let commander = route(
            commander,
            "/sys/reload",
            "reloads the configuration; replies once it is applied or refused",
            |sys, _| {
                Box::pin(async move {
                    reload_and_wait(&sys.reload, sys.reloaded.clone())
                        .await
                        .map_err(|e| CommandError::Failed(e.to_string()))?;
                    json(&serde_json::json!({ "reloaded": true }))
                })
            },
        );
        route(
            commander,
            "/sys/stats",
            "connections, calls, errors, restarts, dropped, uptime_ms, version",
            |sys, _| Box::pin(async move { json(&sys.stats().await) }),
        )
    }
}

type SysHandler =
    fn(Sys, Request) -> futures::future::LocalBoxFuture<'static, crate::commander::CommandResult>;

/// With `admin` access and no usable token, every `/sys/` request is
/// refused with the reason (rather than served to everyone).
fn refuse_all(commander: Commander, why: &'static str) -> Commander {
    commander
        .route("/sys/", move |_| async move {
            Err(CommandError::Forbidden(format!(
                "system commands are admin-only and {why}"
            )))
        })
        .describe(
            "/sys/",
            "system commands (refused: no admin token configured)",
        )
}

/// Who may call: everyone (`None`) or requests with the admin token (its
/// SHA-256).
struct Gate(Option<[u8; 32]>);

#[derive(Deserialize)]
struct TokenParam {
    #[serde(default)]
    token: Option<String>,
}

impl Gate {
    fn check(&self, req: &Request) -> Result<(), CommandError> {
        let Some(expected) = &self.0 else {
            return Ok(());
        };
        let given = serde_json::from_slice::<TokenParam>(&req.param)
            .ok()
            .and_then(|p| p.token)
            .unwrap_or_default();
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        if bool::from(given.ct_eq(expected)) {
            Ok(())
        } else {
            Err(CommandError::Forbidden(
                "system commands need the admin token ({\"token\": ...})".into(),
            ))
        }
    }
}

fn json<T: Serialize>(value: &T) -> crate::commander::CommandResult {
    crate::commander::Response::encode(value, crate::commander::Encoding::Json)
}

fn ping(req: &Request) -> crate::commander::CommandResult {
    let peer = req.caller().map(|s| s.peer().to_string());
    json(&serde_json::json!({ "pong": true, "peer": peer }))
}

fn help(req: &Request) -> crate::commander::CommandResult {
    let routes: Vec<serde_json::Value> = req
        .commands()
        .map(crate::commander::Commands::help)
        .unwrap_or_default()
        .into_iter()
        .map(|(route, description)| serde_json::json!({ "route": route, "description": description }))
        .collect();
    json(&routes)
}

/// How deep `/sys/children` walks nested supervisors.
const TREE_DEPTH: usize = 8;

/// The children of `supervisor`, nested supervisors walked `depth` deep.
fn tree(
    supervisor: SupervisorRef,
    depth: usize,
) -> futures::future::LocalBoxFuture<'static, Result<Vec<ChildEntry>, crate::supervisor::Error>> {
    Box::pin(async move {
        let mut entries = Vec::new();
        for info in supervisor.which_children().await? {
            let mut entry = ChildEntry::from(&info);
            if info.kind == ChildKind::Supervisor
                && info.state == ChildState::Running
                && depth > 0
                && let Ok(Some(nested)) = supervisor.nested(&info.id).await
            {
                // A nested supervisor stopping meanwhile shows no children.
                entry.children = tree(nested, depth - 1).await.unwrap_or_default();
            }
            entries.push(entry);
        }
        Ok(entries)
    })
}

async fn children(sys: &Sys) -> crate::commander::CommandResult {
    let entries = tree(sys.root.clone(), TREE_DEPTH)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    json(&entries)
}

#[derive(Deserialize)]
struct RestartParam {
    id: String,
}

async fn restart(sys: &Sys, req: &Request) -> crate::commander::CommandResult {
    let RestartParam { id } = req.json()?;
    match sys.root.restart_child(&id).await {
        Ok(()) => {
            tracing::info!(child = %id, "restarted by /sys/restart");
            json(&serde_json::json!({ "restarted": id }))
        }
        Err(crate::supervisor::Error::NotFound { .. }) => Err(CommandError::NotFound(format!(
            "child {id:?} (see /sys/children)"
        ))),
        Err(err) => Err(CommandError::Failed(err.to_string())),
    }
}

/// Serves the figures of `/sys/stats` for Prometheus on `addr`, refreshed
/// every second, until the service stops. Counters end in `_total`.
pub(super) fn serve_metrics(
    sys: Sys,
    addr: std::net::SocketAddr,
) -> Result<impl std::future::Future<Output = ()>, String> {
    use metrics_exporter_prometheus::PrometheusBuilder;
    let (recorder, exporter) = PrometheusBuilder::new()
        .with_http_listener(addr)
        .build()
        .map_err(|e| format!("metrics endpoint {addr}: {e}"))?;
    tracing::info!(%addr, "Prometheus metrics served");
    Ok(async move {
        let refresh = async {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let stats = sys.stats().await;
                metrics::with_local_recorder(&recorder, || record(&stats));
            }
        };
        tokio::select! {
            result = exporter => if let Err(err) = result {
                tracing::error!("metrics endpoint stopped: {err:?}");
            },
            () = refresh => {}
        }
    })
}

/// Sets every figure on the current (local) recorder.
fn record(stats: &SysStats) {
    let labels = [
        ("service", stats.name.clone()),
        ("version", stats.version.clone()),
    ];
    metrics::gauge!("psvc_uptime_seconds", &labels).set(stats.uptime_ms as f64 / 1000.0);
    metrics::gauge!("psvc_connections", &labels).set(stats.connections as f64);
    metrics::gauge!("psvc_children", &labels).set(stats.children as f64);
    metrics::counter!("psvc_accepted_total", &labels).absolute(stats.accepted);
    metrics::counter!("psvc_calls_total", &labels).absolute(stats.calls);
    metrics::counter!("psvc_errors_total", &labels).absolute(stats.errors);
    metrics::counter!("psvc_restarts_total", &labels).absolute(stats.restarts);
    metrics::counter!("psvc_dropped_total", &labels).absolute(stats.dropped);
}
