//! Forwarding a route prefix to a worker service: one front door serves
//! many modules, each a psvc (or VSOA) service in its own process —
//! ModuleServer's design, done with RPC.
//!
//! A [`Forward`] holds one connection to the worker, kept up by the psvc
//! client's robot mode (it reconnects with backoff when the worker
//! restarts). A request under the prefix is sent on as it came (method,
//! URL, param, data) and the worker's reply comes back as it was (status,
//! param, data). While the worker is down or restarting, a request gets
//! status 4 (no responding) with `{"error": "worker NAME is not reachable
//! …"}` at once, never a hang; a worker that does not answer in time gets
//! the same status after [`Forward::timeout`].
//!
//! ```no_run
//! use psvc::commander::Commander;
//! use psvc_actors::forward::Forward;
//! # fn demo() {
//! let commander = Forward::new("camera", "127.0.0.1:4001").routes(Commander::new(), "/camera/");
//! # let _ = commander; }
//! ```

use std::sync::Arc;
use std::time::Duration;

use psvc::client::{Client, ClientOptions, RequestError, Robot, Rpc};
use psvc::commander::{CommandError, CommandResult, Commander, Method, Request, Response};
use psvc::frame::Status;
use psvc::supervisor::Backoff;

/// Default [`Forward::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Forward::drained`] waits for the worker to answer again.
pub const REACHABLE_WAIT: Duration = Duration::from_secs(10);

/// A route prefix forwarded to a worker service; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Forward {
    name: Arc<str>,
    client: Client,
    strip: bool,
    timeout: Duration,
    /// Requests hold it shared while in flight; [`Forward::drained`]
    /// holds it alone (fair: once it waits, new requests queue behind it).
    gate: Arc<tokio::sync::RwLock<()>>,
}

impl Forward {
    /// Forwards to the service at `addr` (a loopback `host:port`, or
    /// `unix:/path` for a Unix-domain socket),
    /// reconnecting while it is down (after 10 ms, doubling up to 1 s).
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Forward {
        let options = ClientOptions::new(addr)
            .connect_timeout(Duration::from_secs(1))
            .robot(Robot::default().ping(Duration::from_secs(1), 2).reconnect(
                Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)),
            ));
        Forward::with_options(name, options)
    }

    /// Forwards with these client options (a password, TLS, other
    /// timeouts); robot mode is what keeps the connection up.
    pub fn with_options(name: impl Into<String>, options: ClientOptions) -> Forward {
        Forward {
            name: Arc::from(name.into()),
            client: Client::start(options),
            strip: false,
            timeout: DEFAULT_TIMEOUT,
            gate: Arc::default(),
        }
    }

    /// The worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `work` (a restart of the worker) once the requests in flight
    /// have been answered, holding new ones; then waits until the worker
    /// answers again (at most [`REACHABLE_WAIT`]) and lets them through.
    /// So a graceful reload fails no request: those in flight finish on
    /// the old process, those that arrive meanwhile wait (each within its
    /// [`Forward::timeout`]) and go to the new one.
    pub async fn drained<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        let _alone = self.gate.write().await;
        let result = work.await;
        let deadline = tokio::time::Instant::now() + REACHABLE_WAIT;
        // The old connection may still look up for a moment: wait for a
        // round trip, which only a live worker answers.
        while tokio::time::Instant::now() < deadline {
            let ping = tokio::time::timeout(Duration::from_secs(1), self.client.ping()).await;
            if matches!(ping, Ok(Ok(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        result
    }

    /// Sends `/prefix/rest` to the worker as `/rest` (default: the URL as it
    /// came).
    #[must_use]
    pub fn strip_prefix(mut self, strip: bool) -> Forward {
        self.strip = strip;
        self
    }

    /// How long the worker has to answer a request.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Forward {
        self.timeout = timeout;
        self
    }

    /// The client connected to the worker.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Serves every URL under `prefix` (ending in `/`) by forwarding it.
    ///
    /// # Panics
    /// If `prefix` does not start with `/` (a programming error).
    pub fn routes(self, commander: Commander, prefix: &str) -> Commander {
        let prefix = if prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        let strip_from = prefix.trim_end_matches('/').to_owned();
        commander.route(&prefix, move |req: Request| {
            let this = self.clone();
            let strip_from = strip_from.clone();
            async move { this.forward(req, &strip_from).await }
        })
    }

    async fn forward(&self, req: Request, prefix: &str) -> CommandResult {
        // Uncontended (no reload under way): no timer on the hot path.
        let in_flight = match self.gate.try_read() {
            Ok(guard) => Ok(guard),
            Err(_) => tokio::time::timeout(self.timeout, self.gate.read()).await,
        };
        let Ok(_in_flight) = in_flight else {
            return Err(CommandError::status(
                Status::NO_RESPONDING,
                format!(
                    "worker {} is reloading and did not come back within {:?}",
                    self.name, self.timeout
                ),
            ));
        };
        let url = match req.url.strip_prefix(prefix) {
            Some(rest) if self.strip => {
                if rest.is_empty() {
                    "/".to_owned()
                } else {
                    rest.to_owned()
                }
            }
            _ => req.url.clone(),
        };
        let rpc = match req.method {
            Method::Set => Rpc::set(&url),
            _ => Rpc::get(&url),
        }
        .param(req.param)
        .data(req.data)
        .timeout(self.timeout);
        let down = |why: String| {
            CommandError::status(
                Status::NO_RESPONDING,
                format!(
                    "worker {} is not reachable ({why}); it may be restarting",
                    self.name
                ),
            )
        };
        match self.client.rpc(rpc).await {
            Ok(reply) => Ok(Response::with_status(reply.status)
                .param(reply.param)
                .data(reply.data)),
            Err(RequestError::Timeout(limit)) => Err(CommandError::status(
                Status::NO_RESPONDING,
                format!("worker {} did not answer within {limit:?}", self.name),
            )),
            Err(
                e @ (RequestError::NotConnected
                | RequestError::Disconnected(_)
                | RequestError::Stopped),
            ) => Err(down(e.to_string())),
            Err(e) => Err(CommandError::Failed(format!("worker {}: {e}", self.name))),
        }
    }
}

/// Workers by name, forwarded under `/NAME/`, that can change while the
/// front door serves: the table a [`WorkerPool`](crate::worker::WorkerPool)
/// keeps in step with the `[worker.NAME] forward = ADDR` entries. Cheap to
/// clone (shared).
#[derive(Debug, Clone, Default)]
pub struct ForwardTable {
    workers: Arc<parking_lot::RwLock<std::collections::BTreeMap<String, Forward>>>,
}

impl ForwardTable {
    /// An empty table.
    pub fn new() -> ForwardTable {
        ForwardTable::default()
    }

    /// Forwards `/NAME/…` to `forward` (replacing any earlier one).
    pub fn insert(&self, forward: Forward) {
        self.workers
            .write()
            .insert(forward.name().to_owned(), forward.strip_prefix(true));
    }

    /// Stops forwarding `/NAME/…`; requests get status 3 again.
    pub fn remove(&self, name: &str) -> Option<Forward> {
        self.workers.write().remove(name)
    }

    /// The worker forwarded under `/NAME/`.
    pub fn get(&self, name: &str) -> Option<Forward> {
        self.workers.read().get(name).cloned()
    }

    /// The names forwarded, sorted.
    pub fn names(&self) -> Vec<String> {
        self.workers.read().keys().cloned().collect()
    }

    /// Serves `/NAME/rest` by forwarding `/rest` to the worker `NAME`, on
    /// the default route (`/`), so the Commander's own routes (`/sys/…`)
    /// come first. A name not in the table gets status 3.
    pub fn routes(&self, commander: Commander) -> Commander {
        let table = self.clone();
        commander
            .route("/", move |req: Request| {
                let name = req.url[1..].split('/').next().unwrap_or_default();
                let worker = table.get(name);
                let prefix = format!("/{name}");
                async move {
                    match worker {
                        Some(worker) => worker.forward(req, &prefix).await,
                        None => Err(CommandError::NotFound(req.url)),
                    }
                }
            })
            .describe(
                "/",
                "/NAME/…: forwarded to the worker NAME (see /sys/children)",
            )
    }
}
