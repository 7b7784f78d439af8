//! The Releaser: serves the release repository over the psvc protocol.
//!
//! ```no_run
//! # async fn demo() {
//! use actix::Actor;
//! use psvc::commander::Commander;
//! use psvc_actors::release::{Releaser, ReleaserOptions};
//! let releaser = Releaser::new(ReleaserOptions::new("releases")).start();
//! let commander = Releaser::routes(Commander::new(), releaser);
//! # let _ = commander; }
//! ```
//!
//! | route | param | reply |
//! |---|---|---|
//! | `/release/versions` | `{"channel"?, "installation"?}` | `{"versions": [release…]}`, oldest first |
//! | `/release/latest` | `{"channel"?, "installation"?}` | `{"version": V \| null, "release"?: release}` |
//! | `/release/metadata/<file>` | — | the metadata file as data (≤ 192 KiB; else use `/release/file`) |
//! | `/release/file` | `{"kind": "target"\|"file"\|"metadata", "name", "offset"?}` | a stream from `offset`; param `{"name","length","offset","sha256","stream_token"}` |
//! | `/release/report` | [`Report`]: `{"installation", "current"?, "events": [event…]}` | `{"accepted": n}` |
//! | `/release/reports` | `{"installation"?, "limit"?}` | `{"reports": [report…], "dropped": n}`, newest last |
//!
//! Only what the signed metadata names is listed or served: a draft, an
//! unapproved directory or any other file under the release path gets
//! status 3 even when it exists. Files are opened through
//! [`psvc::sandbox::Sandbox`], so no name reaches outside the repository.
//! The channel defaults to `stable`; without an `installation` id only
//! versions rolled out to 100 % are offered.
//!
//! With the online keys, the Releaser re-signs `timestamp.json` (and the
//! snapshot) before they expire, so clients never see a stale repository
//! while it runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use psvc::commander::{CommandError, Commander, Request, Response};
use psvc::sandbox::Sandbox;
use psvc::stream::Tunnel;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use super::repo::{
    DEFAULT_CHANNEL, Expiry, OnlineKeys, ReleaseInfo, ReleaseRepo, RepoError, RepoLayout,
    consistent_name, latest, load_verified, releases_of,
};
use super::status::Status;

/// Largest metadata file sent as RPC data (the frame limit is 256 KiB).
pub const MAX_INLINE_METADATA: usize = 192 * 1024;

/// How the Releaser runs.
#[derive(Debug, Clone)]
pub struct ReleaserOptions {
    /// The release path (`[PSVC] release_path`).
    pub release_path: PathBuf,
    /// The root to trust (default: the repository's `1.root.json`).
    pub trusted_root: Option<PathBuf>,
    /// Keys to re-sign the timestamp and snapshot with; `None`: only warn.
    pub online_keys: Option<OnlineKeys>,
    /// Validity of what it re-signs.
    pub expiry: Expiry,
    /// Re-sign when the timestamp expires within this (default: half its
    /// validity).
    pub refresh_margin: Option<Duration>,
    /// How often expiry is checked (default 60 s).
    pub check_every: Duration,
    /// Streams served at once; past it a request gets status 6.
    pub max_downloads: usize,
    /// How long a stream may make no progress.
    pub stream_idle: Duration,
}

impl ReleaserOptions {
    /// Defaults for `release_path`.
    pub fn new(release_path: impl Into<PathBuf>) -> ReleaserOptions {
        ReleaserOptions {
            release_path: release_path.into(),
            trusted_root: None,
            online_keys: None,
            expiry: Expiry::default(),
            refresh_margin: None,
            check_every: Duration::from_secs(60),
            max_downloads: 64,
            stream_idle: Duration::from_secs(30),
        }
    }

    /// Defaults, with `[PSVC] release_path` from `config`.
    ///
    /// # Errors
    /// The key is missing or not a path.
    pub fn from_config(
        config: &psvc::config::Config,
    ) -> Result<ReleaserOptions, psvc::config::Error> {
        let path: PathBuf = config.get("PSVC.release_path")?;
        Ok(ReleaserOptions::new(path))
    }

    /// Re-signs with the online keys in `dir` (`snapshot.pk8`, `timestamp.pk8`).
    pub fn online_keys(mut self, dir: impl Into<PathBuf>) -> Self {
        self.online_keys = Some(OnlineKeys::in_dir(dir.into()));
        self
    }
}

/// A signed target as served.
#[derive(Debug, Clone)]
struct ServedTarget {
    length: u64,
    sha256: String,
    file: String,
}

/// What the Releaser serves, from one verified load of the metadata.
#[derive(Debug, Default)]
pub struct RepoView {
    /// Every approved or deprecated release, oldest first.
    pub releases: Vec<ReleaseInfo>,
    targets: HashMap<String, ServedTarget>,
    /// Consistent-snapshot file name (`<sha256>.<name>`) → target name.
    files: HashMap<String, String>,
    /// When the timestamp expires.
    pub timestamp_expires: Option<jiff::Timestamp>,
    /// `timestamp.json` as read at this load: what every update check
    /// fetches, served from memory.
    timestamp: bytes::Bytes,
}

impl RepoView {
    /// The releases `channel` shows `installation`: approved ones in its
    /// rollout and deprecated ones (so their installations learn where to
    /// go back to).
    pub fn versions(&self, channel: &str, installation: Option<&str>) -> Vec<&ReleaseInfo> {
        self.releases
            .iter()
            .filter(|r| {
                r.offered(channel, installation)
                    || (r.record.status == Status::Deprecated
                        && r.record.channels.contains_key(channel))
            })
            .collect()
    }

    /// The newest release `channel` offers `installation`.
    pub fn latest(&self, channel: &str, installation: Option<&str>) -> Option<&ReleaseInfo> {
        latest(&self.releases, channel, installation)
    }
}

/// Most reports a Releaser keeps (the oldest are dropped and counted).
pub const MAX_REPORTS: usize = 1000;
/// Most events in one report.
pub const MAX_REPORT_EVENTS: usize = 64;
/// Longest text field of a report.
const MAX_REPORT_TEXT: usize = 512;

/// An installation's update events (installed, committed, rolled back,
/// marked bad…), as its Updater sends them with
/// [`UpdaterOptions::report`](crate::update::updater::UpdaterOptions::report).
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
pub struct Report {
    /// The installation's id.
    pub installation: String,
    /// Its current version.
    #[serde(default)]
    pub current: Option<String>,
    /// The events, oldest first.
    pub events: Vec<crate::update::install::HistoryEntry>,
    /// When the Releaser received it (RFC 3339; set by the Releaser).
    #[serde(default)]
    pub received_at: String,
}

impl Report {
    fn check(&self) -> Result<(), CommandError> {
        let long = |s: &str| s.len() > MAX_REPORT_TEXT;
        if self.installation.is_empty() || long(&self.installation) {
            return Err(CommandError::Arguments(
                "installation: 1 to 512 bytes".into(),
            ));
        }
        if self.events.is_empty() || self.events.len() > MAX_REPORT_EVENTS {
            return Err(CommandError::Arguments(format!(
                "events: 1 to {MAX_REPORT_EVENTS}"
            )));
        }
        if self.current.as_deref().is_some_and(long)
            || self
                .events
                .iter()
                .any(|e| long(&e.at) || long(&e.event) || long(&e.version) || long(&e.detail))
        {
            return Err(CommandError::Arguments(format!(
                "a field is longer than {MAX_REPORT_TEXT} bytes"
            )));
        }
        Ok(())
    }
}

/// The reports kept, newest last.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reports {
    /// The reports (of one installation when asked so).
    pub reports: Vec<Report>,
    /// Reports dropped because more than [`MAX_REPORTS`] arrived.
    pub dropped: u64,
}

/// The reports kept, at most `limit`, of `installation` when given.
#[derive(Debug, Clone, Default, Deserialize, Message)]
#[rtype(result = "Reports")]
pub struct GetReports {
    /// Only this installation's.
    #[serde(default)]
    pub installation: Option<String>,
    /// At most this many (the newest; default and cap [`MAX_REPORTS`]).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Why the Releaser cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("release repository: {0}")]
pub struct ServeError(String);

/// The Releaser actor.
pub struct Releaser {
    options: ReleaserOptions,
    layout: RepoLayout,
    view: Option<Arc<RepoView>>,
    /// `timestamp.json`'s modification time and length at the last load.
    stamp: Option<(SystemTime, u64)>,
    downloads: Arc<Semaphore>,
    refreshing: bool,
    reports: std::collections::VecDeque<Report>,
    reports_dropped: u64,
}

impl std::fmt::Debug for Releaser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Releaser")
            .field("release_path", &self.options.release_path)
            .finish_non_exhaustive()
    }
}

impl Releaser {
    /// A Releaser for `options` (nothing is read until the first request).
    pub fn new(options: ReleaserOptions) -> Releaser {
        Releaser {
            layout: RepoLayout::new(&options.release_path),
            downloads: Arc::new(Semaphore::new(options.max_downloads.max(1))),
            options,
            view: None,
            stamp: None,
            refreshing: false,
            reports: std::collections::VecDeque::new(),
            reports_dropped: 0,
        }
    }

    fn timestamp_stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = std::fs::metadata(self.layout.metadata_dir().join("timestamp.json")).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }

    fn trusted_root(&self) -> PathBuf {
        self.options
            .trusted_root
            .clone()
            .unwrap_or_else(|| self.layout.metadata_dir().join("1.root.json"))
    }

    /// Adds the release routes to `commander`, served by `releaser`: an
    /// `Addr`, or the `ChildRef` of a supervised Releaser, which reaches
    /// each restarted instance (requests during a restart get status 4).
    pub fn routes(commander: Commander, releaser: impl Into<ReleaserHandle>) -> Commander {
        let releaser = releaser.into();
        let (versions, latest_addr, meta, file, report, reports) = (
            releaser.clone(),
            releaser.clone(),
            releaser.clone(),
            releaser.clone(),
            releaser.clone(),
            releaser,
        );
        commander
            .typed("/release/report", move |r: Report, _| {
                let addr = report.clone();
                async move {
                    r.check()?;
                    let accepted = r.events.len();
                    addr.ask(r).await?;
                    Ok::<_, CommandError>(serde_json::json!({ "accepted": accepted }))
                }
            })
            .typed("/release/reports", move |q: Option<GetReports>, _| {
                let addr = reports.clone();
                async move { addr.ask(q.unwrap_or_default()).await }
            })
            .typed("/release/versions", move |q: Option<Query>, _| {
                let addr = versions.clone();
                let q = q.unwrap_or_default();
                async move {
                    let view = view_of(&addr).await?;
                    let channel = q.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
                    Ok::<_, CommandError>(serde_json::json!({
                        "channel": channel,
                        "versions": view.versions(channel, q.installation.as_deref()),
                    }))
                }
            })
            .typed("/release/latest", move |q: Option<Query>, _| {
                let addr = latest_addr.clone();
                let q = q.unwrap_or_default();
                async move {
                    let view = view_of(&addr).await?;
                    let channel = q.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
                    Ok::<_, CommandError>(match view.latest(channel, q.installation.as_deref()) {
                        Some(r) => serde_json::json!({
                            "channel": channel, "version": r.record.version, "release": r,
                        }),
                        None => serde_json::json!({ "channel": channel, "version": null }),
                    })
                }
            })
            .route("/release/metadata/", move |req: Request| {
                let addr = meta.clone();
                async move {
                    let name = req
                        .url
                        .strip_prefix("/release/metadata/")
                        .unwrap_or_default()
                        .to_owned();
                    if name == "timestamp.json" {
                        let view = view_of(&addr).await?;
                        if view.timestamp.is_empty() {
                            return Err(CommandError::NotFound("no timestamp.json yet".into()));
                        }
                        return Ok(Response::ok().data(view.timestamp.clone()));
                    }
                    let (dir, _) = addr
                        .ask(Locate {
                            kind: Kind::Metadata,
                            name: name.clone(),
                        })
                        .await??;
                    let bytes = tokio::task::spawn_blocking(move || read_small(&dir, &name))
                        .await
                        .map_err(|e| CommandError::Failed(e.to_string()))??;
                    Ok(Response::ok().data(bytes))
                }
            })
            .route("/release/file", move |req: Request| {
                let addr = file.clone();
                async move { serve_file(&addr, &req).await }
            })
    }
}

impl Handler<Report> for Releaser {
    type Result = ();

    fn handle(&mut self, mut report: Report, _: &mut Context<Self>) {
        report.received_at = jiff::Timestamp::now().to_string();
        tracing::info!(
            installation = %report.installation,
            current = ?report.current,
            events = report.events.len(),
            last = ?report.events.last().map(|e| format!("{} {}", e.event, e.version)),
            "update report"
        );
        if self.reports.len() >= MAX_REPORTS {
            self.reports.pop_front();
            self.reports_dropped += 1;
        }
        self.reports.push_back(report);
    }
}

impl Handler<GetReports> for Releaser {
    type Result = MessageResult<GetReports>;

    fn handle(&mut self, q: GetReports, _: &mut Context<Self>) -> Self::Result {
        let limit = q.limit.unwrap_or(MAX_REPORTS).min(MAX_REPORTS);
        let mut reports: Vec<Report> = self
            .reports
            .iter()
            .rev()
            .filter(|r| {
                q.installation
                    .as_deref()
                    .is_none_or(|i| i == r.installation)
            })
            .take(limit)
            .cloned()
            .collect();
        reports.reverse();
        MessageResult(Reports {
            reports,
            dropped: self.reports_dropped,
        })
    }
}

/// How the routes reach the Releaser.
#[derive(Debug, Clone)]
pub enum ReleaserHandle {
    /// A Releaser started with `Actor::start`.
    Addr(Addr<Releaser>),
    /// A supervised Releaser: survives its restarts.
    Child(psvc::ChildRef<Releaser>),
}

impl From<Addr<Releaser>> for ReleaserHandle {
    fn from(addr: Addr<Releaser>) -> Self {
        ReleaserHandle::Addr(addr)
    }
}

impl From<psvc::ChildRef<Releaser>> for ReleaserHandle {
    fn from(child: psvc::ChildRef<Releaser>) -> Self {
        ReleaserHandle::Child(child)
    }
}

impl ReleaserHandle {
    /// Sends `msg`; a Releaser that is gone or restarting is status 4.
    async fn ask<M>(&self, msg: M) -> Result<M::Result, CommandError>
    where
        Releaser: Handler<M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self {
            ReleaserHandle::Addr(a) => a.send(msg).await.map_err(|_| CommandError::Unavailable),
            ReleaserHandle::Child(c) => c.ask(msg).await.map_err(|_| CommandError::Unavailable),
        }
    }
}

/// Param of `/release/versions` and `/release/latest`.
#[derive(Debug, Default, Deserialize)]
struct Query {
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    installation: Option<String>,
}

/// Param of `/release/file`.
#[derive(Debug, Deserialize)]
struct FileQuery {
    #[serde(default = "target_kind")]
    kind: Kind,
    name: String,
    #[serde(default)]
    offset: u64,
}

fn target_kind() -> Kind {
    Kind::Target
}

/// What a file request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// A signed target, by target name (`<version>/<path>`).
    Target,
    /// A metadata file (`timestamp.json`, `N.root.json`, …).
    Metadata,
    /// A signed target by its file name in the repository
    /// (`<sha256>.<version>/<path>`, what a TUF client asks a mirror for).
    File,
}

fn metadata_name_ok(name: &str) -> bool {
    if name == "timestamp.json" || name == "root.json" {
        return true;
    }
    ["root", "snapshot", "targets"].iter().any(|role| {
        name.strip_suffix(&format!(".{role}.json"))
            .is_some_and(|n| {
                !n.is_empty() && n.len() <= 20 && n.bytes().all(|b| b.is_ascii_digit())
            })
    })
}

fn read_small(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, CommandError> {
    let sandbox = Sandbox::new(dir).map_err(|e| CommandError::Failed(e.to_string()))?;
    let mut file = sandbox
        .open_read(name)
        .map_err(|_| CommandError::NotFound(format!("no metadata {name}")))?;
    let len = file
        .metadata()
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .len();
    if len > MAX_INLINE_METADATA as u64 {
        return Err(CommandError::Status {
            status: psvc::frame::Status::NO_MEMORY,
            message: format!("{name} is {len} bytes; fetch it with /release/file"),
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut file, &mut buf)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    Ok(buf)
}

async fn view_of(addr: &ReleaserHandle) -> Result<Arc<RepoView>, CommandError> {
    addr.ask(GetView)
        .await?
        .map_err(|e| CommandError::Failed(e.to_string()))
}

async fn serve_file(addr: &ReleaserHandle, req: &Request) -> Result<Response, CommandError> {
    let q: FileQuery = req.json()?;
    let (dir, target) = addr
        .ask(Locate {
            kind: q.kind,
            name: q.name.clone(),
        })
        .await??;
    let (permits, idle) = addr.ask(Limits).await?;
    let permit = permits
        .try_acquire_owned()
        .map_err(|_| CommandError::Status {
            status: psvc::frame::Status::NO_MEMORY,
            message: "too many downloads at once; retry later".into(),
        })?;
    let (file_name, length, sha256) = match &target {
        Some(t) => (t.file.clone(), t.length, Some(t.sha256.clone())),
        None => (q.name.clone(), 0, None),
    };
    let sandbox = Sandbox::new(&dir).map_err(|e| CommandError::Failed(e.to_string()))?;
    let file = sandbox
        .open_read(&file_name)
        .map_err(|_| CommandError::NotFound(format!("{} is not in the repository", q.name)))?;
    let size = file
        .metadata()
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .len();
    let length = if target.is_some() {
        if size != length {
            tracing::error!(name = %q.name, size, length, "a served target differs from its signed length");
            return Err(CommandError::Failed(format!(
                "{} is damaged on the server",
                q.name
            )));
        }
        length
    } else {
        size
    };
    if q.offset > length {
        return Err(CommandError::Arguments(format!(
            "offset {} is past the end ({length})",
            q.offset
        )));
    }
    let tunnel = Tunnel::open(req)
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .idle_timeout(Some(idle))
        .require_token()
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let param = serde_json::json!({
        "name": q.name,
        "length": length,
        "offset": q.offset,
        "sha256": sha256,
        psvc::stream::TOKEN_KEY: tunnel.token_hex(),
    });
    let port = tunnel.port();
    let offset = q.offset;
    let name = q.name;
    actix::spawn(async move {
        let _permit = permit;
        let Ok(mut stream) = tunnel.accept().await else {
            return;
        };
        let result = send_range(file, offset, length - offset, &mut stream).await;
        match result {
            Ok(bytes) => tracing::debug!(%name, offset, bytes, "served"),
            Err(e) => tracing::info!(%name, offset, error = %e, "download ended early"),
        }
        // Let the client read to the end before the socket goes.
        let mut rest = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await;
    });
    Ok(Response::ok().param(param.to_string()).tunnel(port))
}

/// Size of each read of a served file.
const READ_CHUNK: usize = 512 * 1024;
/// Chunks read ahead of the socket, per download.
const READ_AHEAD: usize = 4;

/// Sends `len` bytes of `file` from `offset` to `stream`. One blocking
/// thread reads ahead (at most [`READ_AHEAD`] chunks of [`READ_CHUNK`]) while
/// the arbiter writes, so neither waits for the other and a download holds
/// at most 2.5 MiB (five buffers, reused).
async fn send_range(
    mut file: std::fs::File,
    offset: u64,
    len: u64,
    stream: &mut psvc::stream::TunnelStream,
) -> std::io::Result<u64> {
    use std::io::{Read, Seek};
    // Buffers go round: the reader fills a free one, the writer sends it
    // and hands it back. No allocation or zeroing per chunk.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<(Vec<u8>, usize)>>(READ_AHEAD);
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(READ_AHEAD + 1);
    for _ in 0..READ_AHEAD + 1 {
        let _ = free_tx.try_send(vec![0u8; READ_CHUNK]);
    }
    let reader = tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(offset)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = len;
        while left > 0 {
            // The writer is gone when the client went away: stop reading.
            let Some(mut buf) = free_rx.blocking_recv() else {
                return;
            };
            let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
            let chunk = match file.read(&mut buf[..want]) {
                Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    left -= n as u64;
                    Ok((buf, n))
                }
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    let mut sent = 0u64;
    while sent < len {
        let Some(chunk) = rx.recv().await else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let (buf, n) = chunk?;
        stream.write_all(&buf[..n]).await?;
        sent += n as u64;
        let _ = free_tx.send(buf).await;
    }
    drop(rx);
    drop(free_tx);
    let _ = reader.await;
    stream.shutdown().await?;
    Ok(sent)
}

impl Actor for Releaser {
    type Context = Context<Self>;

    /// The expiry timer starts with the first message (no timer in
    /// `started`: it may run while the runtime shuts down).
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(Tick { first: true });
    }
}

/// Checks expiry (and starts the periodic check the first time).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Tick {
    first: bool,
}

impl Handler<Tick> for Releaser {
    type Result = ();

    fn handle(&mut self, msg: Tick, ctx: &mut Context<Self>) {
        if msg.first {
            ctx.run_interval(self.options.check_every, |_, ctx| {
                ctx.notify(Tick { first: false });
            });
        }
        let Some(keys) = self.options.online_keys.clone() else {
            return;
        };
        if self.refreshing {
            return;
        }
        let margin = self
            .options
            .refresh_margin
            .unwrap_or(self.options.expiry.timestamp / 2);
        let due = self
            .view
            .as_ref()
            .and_then(|v| v.timestamp_expires)
            .is_none_or(|exp| super::repo::expires_in(margin).is_ok_and(|soon| exp <= soon));
        if !due {
            return;
        }
        self.refreshing = true;
        let release_path = self.options.release_path.clone();
        let expiry = self.options.expiry;
        ctx.spawn(
            async move {
                let mut repo = ReleaseRepo::open(&release_path).await?;
                let Some((ts, _)) = repo.expires() else {
                    return Ok(false);
                };
                if super::repo::expires_in(margin)? < ts {
                    return Ok(false);
                }
                repo.refresh(&keys, &expiry, margin).await?;
                Ok::<bool, RepoError>(true)
            }
            .into_actor(self)
            .map(|result, act, _| {
                act.refreshing = false;
                match result {
                    Ok(true) => {
                        act.stamp = None;
                        tracing::info!("timestamp re-signed");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "could not re-sign the timestamp"),
                }
            }),
        );
    }
}

/// The current view of the repository, reloaded when `timestamp.json`
/// changed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<RepoView>, ServeError>")]
pub struct GetView;

impl Handler<GetView> for Releaser {
    type Result = ResponseActFuture<Self, Result<Arc<RepoView>, ServeError>>;

    fn handle(&mut self, _: GetView, _: &mut Context<Self>) -> Self::Result {
        let stamp = self.timestamp_stamp();
        if let (Some(view), true) = (&self.view, stamp.is_some() && stamp == self.stamp) {
            return Box::pin(fut::ready(Ok(view.clone())));
        }
        let root = self.trusted_root();
        let layout = self.layout.clone();
        Box::pin(
            async move {
                if stamp.is_none() {
                    return Ok(RepoView::default());
                }
                let root = std::fs::read(&root)
                    .map_err(|e| ServeError(format!("{}: {e}", root.display())))?;
                let ts_path = layout.metadata_dir().join("timestamp.json");
                let timestamp = std::fs::read(&ts_path)
                    .map_err(|e| ServeError(format!("{}: {e}", ts_path.display())))?;
                let repo = load_verified(
                    &root,
                    &layout.metadata_dir(),
                    &layout.targets_dir(),
                    tough::ExpirationEnforcement::Unsafe,
                )
                .await
                .map_err(|e| ServeError(e.to_string()))?;
                let targets = &repo.targets().signed;
                let served = targets
                    .targets
                    .iter()
                    .map(|(name, t)| {
                        (
                            name.raw().to_owned(),
                            ServedTarget {
                                length: t.length,
                                sha256: hex::encode(&t.hashes.sha256),
                                file: consistent_name(name.raw(), t),
                            },
                        )
                    })
                    .collect();
                let files = targets
                    .targets
                    .iter()
                    .map(|(name, t)| (consistent_name(name.raw(), t), name.raw().to_owned()))
                    .collect();
                let expires = repo.timestamp().signed.expires;
                if expires <= jiff::Timestamp::now() {
                    tracing::warn!(%expires, "timestamp.json has expired: clients will refuse this repository until it is re-signed");
                }
                Ok(RepoView {
                    releases: releases_of(targets),
                    targets: served,
                    files,
                    timestamp_expires: Some(expires),
                    timestamp: timestamp.into(),
                })
            }
            .into_actor(self)
            .map(move |result: Result<RepoView, ServeError>, act, _| {
                let view = Arc::new(result?);
                act.view = Some(view.clone());
                act.stamp = stamp;
                Ok(view)
            }),
        )
    }
}

/// Where a requested file is, if it may be served.
#[derive(Debug, Message)]
#[rtype(result = "Result<(PathBuf, Option<ServedTarget>), CommandError>")]
struct Locate {
    kind: Kind,
    name: String,
}

impl Handler<Locate> for Releaser {
    type Result = ResponseActFuture<Self, Result<(PathBuf, Option<ServedTarget>), CommandError>>;

    fn handle(&mut self, msg: Locate, ctx: &mut Context<Self>) -> Self::Result {
        let layout = self.layout.clone();
        if msg.kind == Kind::Metadata {
            let found = if metadata_name_ok(&msg.name) {
                Ok((layout.metadata_dir(), None))
            } else {
                Err(CommandError::NotFound(format!("no metadata {}", msg.name)))
            };
            return Box::pin(fut::ready(found));
        }
        let view = self.handle(GetView, ctx);
        Box::pin(view.map(move |view, _, _| {
            let view = view.map_err(|e| CommandError::Failed(e.to_string()))?;
            let name = match msg.kind {
                Kind::File => view.files.get(&msg.name).cloned().unwrap_or_default(),
                _ => msg.name.clone(),
            };
            let target = view.targets.get(&name).cloned().ok_or_else(|| {
                CommandError::NotFound(format!("{} is not an approved file", msg.name))
            })?;
            Ok((layout.targets_dir(), Some(target)))
        }))
    }
}

/// The download bound and idle limit.
#[derive(Debug, Message)]
#[rtype(result = "(Arc<Semaphore>, Duration)")]
struct Limits;

impl Handler<Limits> for Releaser {
    type Result = MessageResult<Limits>;

    fn handle(&mut self, _: Limits, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.downloads.clone(), self.options.stream_idle))
    }
}
