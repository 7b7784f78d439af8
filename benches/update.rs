//! Update benchmark harness: what a client of a self-updating service sees.
//!
//! ```sh
//! cargo build --release --example self_update
//! cargo bench -p psvc-benches --bench update
//! ```
//!
//! The `self_update` example runs from an install root under a small
//! supervisor loop (systemd's `ExecStartPre=psvc update boot` then
//! `ExecStart=…/current/bin/app`, restarted whenever it exits) and answers
//! `/version` on a loopback port. A client calls it in a closed loop,
//! reconnecting when the connection drops, and records the time of every
//! reply and the version that gave it.
//!
//! - **Downtime during an update**: a version is approved; the service's
//!   Updater (checking every 100 ms) installs it and restarts into it
//!   (graceful stop, exec). Downtime is the gap between the last reply of
//!   the old version and the first of the new one. Baseline: a plain
//!   restart of the same service (SIGTERM, the supervisor starts it again),
//!   measured the same way.
//! - **Failed version, detected and rolled back**: a version that exits at
//!   start-up (`CRASH`; the boot counter rolls it back after 2 starts), and
//!   one that never becomes ready (`HANG`; the health deadline of 1 s rolls
//!   it back). Measured from the last reply of the good version to the
//!   first reply of the good version again; the goal is the probation
//!   period (1 s) + 1 s.
//!
//! The example is not built by this harness: it looks for it beside its
//! own target directory (`target/release/examples/self_update`, or
//! `target/debug/examples/` for the smoke pass of `cargo test
//! --all-targets`). Only 127.0.0.1 is used; every wait is bounded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Actor;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::Commander;
use psvc::socket::{Auth, Server};
use psvc_actors::release::{
    BuildSpec, Change, Expiry, KeysSpec, OnlineKeys, ReleaseRepo, Releaser, ReleaserOptions,
    Source, build_release, init_keys,
};
use psvc_actors::update::install::InstallRoot;
use psvc_actors::update::probation::ProbationPolicy;
use psvc_actors::update::updater::{UpdaterOptions, apply};
use psvc_benches::report::{harness_main, median};

type Res<T> = Result<T, String>;

/// The longest any single step may take.
const STEP: Duration = Duration::from_secs(60);

/// A reply seen by the client.
#[derive(Debug, Clone)]
struct Reply {
    at: Instant,
    version: String,
    /// Which process image answered (new at each start or exec).
    boot: String,
}

/// Replies seen by the client, in order.
type Seen = Arc<Mutex<Vec<Reply>>>;

fn example_binary() -> Res<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/update-… → target/<profile>/examples/self_update
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    let bin = profile.join("examples/self_update");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: run `cargo build --release --example self_update` first",
            bin.display()
        ))
    }
}

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The supervisor loop: boot counter, then the service; again whenever it
/// exits, until `stop`.
struct Supervisor {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(dir: &Path, root: &Path, policy: ProbationPolicy) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let pid = Arc::new(AtomicU32::new(0));
        let (dir, root, s, p) = (dir.to_owned(), root.to_owned(), stop.clone(), pid.clone());
        let thread = std::thread::spawn(move || {
            for _ in 0..1000 {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(r) = InstallRoot::open(&root) {
                    let _ = r.boot(&policy);
                }
                let child: std::io::Result<Child> = Command::new(root.join("current/bin/app"))
                    .current_dir(&dir)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(mut child) = child else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                p.store(child.id(), Ordering::SeqCst);
                loop {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    if s.load(Ordering::SeqCst) {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Supervisor {
            stop,
            pid,
            thread: Some(thread),
        }
    }

    fn terminate_child(&self) {
        let pid = self.pid.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Calls `/version` in a closed loop until `stop`, reconnecting.
async fn client_loop(addr: String, seen: Seen, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let options = ClientOptions::new(addr.clone())
            .connect_timeout(Duration::from_millis(200))
            .request_timeout(Duration::from_millis(500));
        let Ok(client) = Client::connect(options).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        while !stop.load(Ordering::SeqCst) {
            match client.rpc(Rpc::get("/version")).await {
                Ok(reply) if reply.status == psvc::frame::Status::OK => {
                    let at = Instant::now();
                    let v: serde_json::Value =
                        serde_json::from_slice(&reply.param).unwrap_or_default();
                    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                    if let Ok(mut s) = seen.lock() {
                        s.push(Reply {
                            at,
                            version: text("version"),
                            boot: text("boot"),
                        });
                    }
                }
                _ => break,
            }
        }
        client.close();
    }
}

/// Waits until the client has seen `version` answer after `since`.
async fn wait_for_version(seen: &Seen, version: &str, since: Instant) -> Res<Instant> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(s) = seen.lock()
            && let Some(r) = s.iter().find(|r| r.at > since && r.version == version)
        {
            return Ok(r.at);
        }
        if Instant::now() > deadline {
            let last = seen.lock().ok().and_then(|s| s.last().cloned());
            return Err(format!("{version} never answered (last: {last:?})"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the running process has answered after `after` (so the
/// switch that follows has a reply of the old process before it); the
/// instant of that reply.
async fn answered_since(seen: &Seen, after: Instant) -> Res<Instant> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(at) = seen
            .lock()
            .ok()
            .and_then(|s| s.last().map(|r| r.at))
            .filter(|at| *at > after)
        {
            return Ok(at);
        }
        if Instant::now() > deadline {
            return Err("the service stopped answering".into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The outage around a switch that happens after `since`: from the last
/// reply of the process answering at `since` to the first reply of
/// another process (of `version`, when given).
async fn outage(seen: &Seen, since: Instant, version: Option<&str>) -> Res<f64> {
    let deadline = Instant::now() + STEP;
    loop {
        {
            let s = seen.lock().map_err(|e| e.to_string())?;
            let old = s
                .iter()
                .rev()
                .find(|r| r.at <= since)
                .map(|r| r.boot.clone())
                .ok_or("no reply before the switch")?;
            if let Some(first) = s
                .iter()
                .find(|r| r.at > since && r.boot != old && version.is_none_or(|v| r.version == v))
            {
                let last_old = s
                    .iter()
                    .rev()
                    .find(|r| r.boot == old && r.at < first.at)
                    .map_or(since, |r| r.at);
                return Ok(first.at.duration_since(last_old).as_secs_f64());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no new process answered ({version:?})"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The largest gap between consecutive replies in [from, to].
fn largest_gap(seen: &Seen, from: Instant, to: Instant) -> Res<f64> {
    let s = seen.lock().map_err(|e| e.to_string())?;
    let times: Vec<Instant> = s
        .iter()
        .map(|r| r.at)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    Ok(times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64())
        .fold(0.0, f64::max))
}

async fn committed(root: &Path, version: &str) -> Res<()> {
    let deadline = Instant::now() + STEP;
    loop {
        let state: serde_json::Value = std::fs::read(root.join("state.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if state["history"].as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["event"] == "committed" && e["version"] == version)
        }) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{version} was never committed"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn approve(releases: &Path, keys: &Path, version: &str) -> Res<()> {
    let mut repo = ReleaseRepo::open(releases)
        .await
        .map_err(|e| e.to_string())?;
    repo.propose(
        Change::Approve {
            version: version.into(),
            channel: "stable".into(),
            notes: None,
            rollout: 100,
        },
        &[keys.join("approver-1.pk8")],
        &OnlineKeys::in_dir(keys),
        &Expiry::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn build(dir: &Path, releases: &Path, app: &Path, version: &str, broken: Option<&str>) -> Res<()> {
    let src = dir.join(format!("src-{version}"));
    std::fs::create_dir_all(src.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(app, src.join("bin/app")).map_err(|e| e.to_string())?;
    if let Some(mark) = broken {
        std::fs::write(src.join("bin").join(mark), b"").map_err(|e| e.to_string())?;
    }
    build_release(
        &BuildSpec::new(version, releases, Source::Directory(src)),
        &mut |_| {},
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

struct Figures {
    restart: Vec<f64>,
    update: Vec<f64>,
    crash_rollback: f64,
    hang_rollback: f64,
    longest_gap_while_committing: f64,
}

async fn scenario(rounds: usize) -> Res<Figures> {
    let app = example_binary()?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path();
    let (releases, keys, root) = (dir.join("releases"), dir.join("keys"), dir.join("app"));
    init_keys(&KeysSpec::new(&keys, &releases))
        .await
        .map_err(|e| e.to_string())?;
    let good: Vec<String> = (0..=rounds).map(|i| format!("1.{i}.0")).collect();
    let crash = format!("1.{}.0", rounds + 1);
    let hang = format!("1.{}.0", rounds + 2);
    for v in &good {
        build(dir, &releases, &app, v, None)?;
    }
    build(dir, &releases, &app, &crash, Some("CRASH"))?;
    build(dir, &releases, &app, &hang, Some("HANG"))?;
    approve(&releases, &keys, &good[0]).await?;

    let releaser = Releaser::new(ReleaserOptions::new(&releases)).start();
    let server = Server::new(Auth::anonymous())
        .commands(Releaser::routes(Commander::new(), releaser).commands())
        .start("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let source = format!("vsoa://{}", server.local_addr());
    {
        let installed = InstallRoot::open(&root).map_err(|e| e.to_string())?;
        let o = UpdaterOptions::new(&root, keys.join("root.json"))
            .source(source.parse().map_err(|e| format!("{e}"))?);
        apply(&installed, &o, &mut |_, _, _| {})
            .await
            .map_err(|e| e.to_string())?;
    }
    let port = free_port()?;
    std::fs::write(
        dir.join("psvc.conf"),
        format!(
            "[PSVC]\nupdate_path = {}\nlog_console = false\nlog_file = false\nshutdown_timeout = 500ms\n\
             [update]\nsources = {source}\ntrusted_root = {}\ninterval = 100ms\nauto_apply = true\n\
             max_boots = 2\nhealth_deadline = 1s\nprobation_period = 1s\n[app]\nlisten = 127.0.0.1:{port}\n",
            root.display(),
            keys.join("root.json").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let policy = ProbationPolicy {
        max_boots: 2,
        health_deadline: Duration::from_secs(1),
        period: Duration::from_secs(1),
    };
    let supervisor = Supervisor::start(dir, &root, policy);
    let seen: Seen = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = actix_rt::spawn(client_loop(
        format!("127.0.0.1:{port}"),
        seen.clone(),
        stop.clone(),
    ));
    let t0 = Instant::now();
    wait_for_version(
        &seen,
        &good[0],
        t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0),
    )
    .await?;

    let mut figures = Figures {
        restart: Vec::new(),
        update: Vec::new(),
        crash_rollback: 0.0,
        hang_rollback: 0.0,
        longest_gap_while_committing: 0.0,
    };
    for (i, v) in good.iter().enumerate().skip(1) {
        // Baseline: a plain restart of the running version.
        let since = answered_since(&seen, Instant::now()).await?;
        supervisor.terminate_child();
        figures.restart.push(outage(&seen, since, None).await?);

        // The update: approved, installed by the service, exec'd.
        let since = answered_since(&seen, Instant::now()).await?;
        approve(&releases, &keys, v).await?;
        figures.update.push(outage(&seen, since, Some(v)).await?);
        let switched = Instant::now();
        committed(&root, v).await?;
        let g = largest_gap(&seen, switched, Instant::now())?;
        figures.longest_gap_while_committing = figures.longest_gap_while_committing.max(g);
        eprintln!(
            "round {i}: restart {:.3} s, update {:.3} s",
            figures.restart[i - 1],
            figures.update[i - 1]
        );
    }
    let last_good = good.last().ok_or("no version")?.clone();
    for (bad, slot) in [(&crash, 0), (&hang, 1)] {
        let since = answered_since(&seen, Instant::now()).await?;
        approve(&releases, &keys, bad).await?;
        // Until the good version answers again, from a new process.
        let secs = outage(&seen, since, Some(&last_good)).await?;
        let st = std::fs::read_link(root.join("current")).map_err(|e| e.to_string())?;
        if !st.ends_with(&last_good) {
            return Err(format!("current is {}, not {last_good}", st.display()));
        }
        if slot == 0 {
            figures.crash_rollback = secs;
        } else {
            figures.hang_rollback = secs;
        }
        eprintln!("{bad}: back on {last_good} after {secs:.3} s");
    }
    stop.store(true, Ordering::SeqCst);
    let _ = client.await;
    drop(supervisor);
    server.stop();
    Ok(figures)
}

fn run(quick: bool, smoke: bool) -> Res<String> {
    let rounds = if smoke {
        1
    } else if quick {
        2
    } else {
        5
    };
    let system = actix::System::new();
    let f = system.block_on(scenario(rounds))?;
    let med = |v: &[f64]| median(v.to_vec()).unwrap_or(f64::NAN);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (r, u) = (med(&f.restart), med(&f.update));
    let mut out = String::new();
    let _ = writeln!(out, "## Updates seen by a client (the Updater issue)\n");
    let _ = writeln!(
        out,
        "`cargo bench -p psvc-benches --bench update`: {rounds} update(s), medians; the `self_update` example under a supervisor loop, a client calling `/version` throughout.\n"
    );
    let _ = writeln!(
        out,
        "| no replies for | median s | max s | vs plain restart |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| plain restart (SIGTERM, started again) | {r:.3} | {:.3} | 1.00× |",
        max(&f.restart)
    );
    let _ = writeln!(
        out,
        "| update: install, graceful stop, exec of the new version | {u:.3} | {:.3} | {:.2}× |",
        max(&f.update),
        u / r
    );
    let _ = writeln!(
        out,
        "| a version that exits at start-up, until the good one answers again | {:.3} | – | – |",
        f.crash_rollback
    );
    let _ = writeln!(
        out,
        "| a version that never becomes ready (health deadline 1 s), until the good one answers again | {:.3} | – | – |",
        f.hang_rollback
    );
    let _ = writeln!(
        out,
        "\nLongest gap between replies while a new version was on probation (1 s) and committed: {:.3} s.",
        f.longest_gap_while_committing
    );
    Ok(out)
}

fn main() -> ExitCode {
    harness_main("update", "update.md", run)
}
