//! Shared helpers for the integration tests: a probe actor that records its
//! lifecycle, and systems with real or paused time.
#![allow(
    dead_code,
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use psvc::supervisor::{ChildSpec, SupervisedContext};

/// Upper bound for any wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `f` on a fresh actix System with real time.
pub fn run<F: Future<Output = ()> + 'static>(f: F) {
    actix_rt::System::new().block_on(async move {
        tokio::time::timeout(TIMEOUT * 3, f)
            .await
            .expect("test timed out");
    });
}

/// Runs `f` on a fresh actix System whose clock is paused (auto-advancing
/// when idle), so timing assertions are exact.
pub fn run_paused<F: Future<Output = ()> + 'static>(f: F) {
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    });
    system.block_on(f);
}

/// Silences the panic hook for expected panics (messages starting with
/// `expected:`); every other panic is printed as usual.
pub fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with("expected:") {
            default(info);
        }
    }));
}

/// A shared, ordered event log.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn count(&self, s: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|e| *e == s).count()
    }
}

/// A test actor that records `start:<id>` and `stop:<id>`.
pub struct Probe {
    pub id: String,
    pub log: Log,
    pub ignore_stop: bool,
    pub count: u64,
}

impl Actor for Probe {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        self.log.push(format!("start:{}", self.id));
    }
    fn stopping(&mut self, _: &mut Context<Self>) -> Running {
        if self.ignore_stop {
            self.log.push(format!("ignore-stop:{}", self.id));
            Running::Continue
        } else {
            Running::Stop
        }
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.log.push(format!("stop:{}", self.id));
    }
}

/// Replies with the id of the instance and how many pings it handled.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Ping;

impl Handler<Ping> for Probe {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        self.count += 1;
        self.count
    }
}

/// Panics inside the handler.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Crash(pub &'static str);

impl Handler<Crash> for Probe {
    type Result = u64;
    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) -> u64 {
        panic!("{}", msg.0);
    }
}

/// A test error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TestError {
    #[error("transient glitch")]
    Glitch,
    #[error("fatal hardware fault")]
    Fatal,
}

/// Stops the actor with an error.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fail(pub TestError);

impl Handler<Fail> for Probe {
    type Result = ();
    fn handle(&mut self, msg: Fail, ctx: &mut Context<Self>) {
        ctx.fail(msg.0);
    }
}

/// Reports a fault but keeps running.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fault(pub TestError);

impl Handler<Fault> for Probe {
    type Result = ();
    fn handle(&mut self, msg: Fault, ctx: &mut Context<Self>) {
        ctx.fault(msg.0);
    }
}

/// Stops the actor normally.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSelf;

impl Handler<StopSelf> for Probe {
    type Result = ();
    fn handle(&mut self, _: StopSelf, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// A probe child spec.
pub fn probe(id: &str, log: &Log) -> ChildSpec<Probe> {
    let (id2, log) = (id.to_owned(), log.clone());
    ChildSpec::new(id, move || Probe {
        id: id2.clone(),
        log: log.clone(),
        ignore_stop: false,
        count: 0,
    })
}

/// A probe that ignores graceful stops.
pub fn stubborn(id: &str, log: &Log) -> ChildSpec<Probe> {
    let (id2, log) = (id.to_owned(), log.clone());
    ChildSpec::new(id, move || Probe {
        id: id2.clone(),
        log: log.clone(),
        ignore_stop: true,
        count: 0,
    })
}

/// Polls `cond` (yielding to the runtime) until it holds or `TIMEOUT` passes.
pub async fn until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The path of a compiled example (`cargo test` builds them) next to the
/// test binary: target/<profile>/deps/<test> → target/<profile>/examples/<name>.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --example {name}` (cargo test builds it)",
        path.display()
    );
    path
}

/// The ids of a supervisor's children, in start order.
pub async fn child_ids(sup: &psvc::SupervisorRef) -> Vec<String> {
    let children = sup.which_children().await.unwrap();
    children.into_iter().map(|c| c.id).collect()
}

/// Starts `sup` as a root with one probe child per id (in that order), under
/// 5 restarts in 5 s; returns the root and the children's handles.
pub fn start_probes(
    sup: psvc::SupervisorSpec,
    log: &Log,
    ids: &[&str],
) -> (psvc::supervisor::RootSupervisor, Vec<psvc::ChildRef<Probe>>) {
    let mut sup = sup.intensity(5, Duration::from_secs(5));
    let mut handles = Vec::new();
    for id in ids {
        let spec = probe(id, log);
        handles.push(spec.handle());
        sup = sup.child(spec);
    }
    (sup.start_root(), handles)
}

pub mod net;
pub mod peers;
pub mod pki;

/// Connects to a psvc server on 127.0.0.1:`port` with `password`
/// (requests time out after 20 s).
pub async fn connect(
    port: u16,
    password: &str,
) -> Result<psvc::client::Client, psvc::client::ConnectError> {
    psvc::client::Client::connect(
        psvc::client::ClientOptions::new(format!("127.0.0.1:{port}"))
            .password(password)
            .request_timeout(Duration::from_secs(20)),
    )
    .await
}

/// An RPC SET of `args` as JSON: the reply's status and its param as JSON.
pub async fn call(
    client: &psvc::client::Client,
    url: &str,
    args: serde_json::Value,
) -> (psvc::frame::Status, serde_json::Value) {
    let reply = client
        .rpc(psvc::client::Rpc::set(url).json(&args).unwrap())
        .await
        .unwrap();
    (
        reply.status,
        serde_json::from_slice(&reply.param).unwrap_or_default(),
    )
}

/// The first line a child process prints, as JSON (examples print
/// `{"port": N, ...}` once they listen).
pub fn first_json_line(child: &mut std::process::Child) -> serde_json::Value {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(&line).unwrap()
}
