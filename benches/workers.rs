//! Worker benchmark harness: route forwarding and worker restarts.
//!
//! ```sh
//! cargo bench -p psvc-benches --bench workers
//! ```
//!
//! The worker is this harness itself, started again as a process with
//! `--worker PORT`: a psvc server with an `/echo` route. In the harness, a
//! front door (a psvc server whose `/w/` prefix is a
//! `psvc_actors::forward::Forward` to the worker) and a `ProcessWorker`
//! under a supervisor (backoff 10 ms) run on one actix system; the callers
//! run on another thread with a system of their own.
//!
//! - **Forwarding overhead**: 16 concurrent callers in closed loops for a
//!   fixed time, 64-byte param, through the front door (`/w/echo`) against
//!   the same callers calling the worker directly (`/echo`). p50 and
//!   throughput; the goal is forwarded ≤ 1.3× direct.
//! - **Restart latency**: the worker is killed with SIGKILL; the time from
//!   the kill to the first successful call through the front door
//!   (process exit, supervisor backoff, a new process, its server, the
//!   Forward's reconnection). Baseline in the same run: a process of the
//!   same worker started directly, to its first successful call.
//!
//! Only 127.0.0.1; every wait is bounded.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use psvc::client::{Client, ClientOptions, Rpc};
use psvc::commander::{Commander, Request, Response};
use psvc::socket::{Auth, Server};
use psvc::supervisor::{Backoff, SupervisorSpec};
use psvc_actors::forward::Forward;
use psvc_actors::worker::{ProcessWorker, WorkerCommand, WorkerPid};
use psvc_benches::report::{harness_main, median};

type Res<T> = Result<T, String>;

const STEP: Duration = Duration::from_secs(30);

fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// `--worker PORT`: serve `/echo` until killed.
fn worker(port: &str) -> ExitCode {
    let system = actix::System::new();
    let served = system.block_on(async move {
        let commands = Commander::new()
            .route("/echo", |req: Request| async move {
                Ok(Response::ok().param(req.param))
            })
            .commands();
        let server = Server::new(Auth::anonymous())
            .commands(commands)
            .start(format!("127.0.0.1:{port}"))
            .await
            .map_err(|e| e.to_string())?;
        std::future::pending::<()>().await;
        drop(server);
        Ok::<(), String>(())
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn worker_command(port: u16) -> Res<WorkerCommand> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Ok(WorkerCommand::new(exe)
        .arg("--worker")
        .arg(port.to_string())
        .stop_timeout(Duration::from_secs(1)))
}

async fn connect(addr: &str) -> Res<Client> {
    Client::connect(
        ClientOptions::new(addr)
            .connect_timeout(Duration::from_millis(500))
            .request_timeout(Duration::from_secs(5)),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn ok(client: &Client, url: &str) -> bool {
    client
        .rpc(Rpc::get(url).param(vec![b'x'; 64]))
        .await
        .is_ok_and(|r| r.status == psvc::frame::Status::OK)
}

/// `callers` clients in closed loops on `url` at `addr` for `secs`:
/// (p50 µs, calls/s).
async fn load(addr: &str, url: &'static str, callers: usize, secs: f64) -> Res<(f64, f64)> {
    let mut tasks = Vec::new();
    let until = Instant::now() + Duration::from_secs_f64(secs);
    for _ in 0..callers {
        let client = connect(addr).await?;
        tasks.push(actix_rt::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
            let param = bytes::Bytes::from(vec![b'x'; 64]);
            while Instant::now() < until {
                let t = Instant::now();
                let reply = client
                    .rpc(Rpc::get(url).param(param.clone()))
                    .await
                    .map_err(|e| e.to_string())?;
                if reply.status != psvc::frame::Status::OK {
                    return Err(format!("{url}: status {}", reply.status.0));
                }
                hist.record(t.elapsed().as_micros() as u64)
                    .map_err(|e| e.to_string())?;
            }
            client.close();
            Ok::<_, String>(hist)
        }));
    }
    let mut all = Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
    for t in tasks {
        let h = t.await.map_err(|e| e.to_string())??;
        all.add(&h).map_err(|e| e.to_string())?;
    }
    Ok((all.value_at_quantile(0.5) as f64, all.len() as f64 / secs))
}

/// [`load`] with 16 callers on a thread and actix system of their own, so
/// the callers do not share a core with the front door.
async fn load_elsewhere(addr: &str, url: &'static str, secs: f64) -> Res<(f64, f64)> {
    let addr = addr.to_owned();
    let thread = std::thread::spawn(move || {
        actix::System::new().block_on(async move { load(&addr, url, 16, secs).await })
    });
    // Wait without blocking this system (it serves the front door).
    let deadline = Instant::now() + STEP + Duration::from_secs_f64(secs);
    while !thread.is_finished() {
        if Instant::now() > deadline {
            return Err("the callers did not finish".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    thread
        .join()
        .map_err(|_| "the callers panicked".to_string())?
}

/// Polls `url` at `addr` until a call succeeds; the instant it did.
async fn first_ok(addr: &str, url: &str) -> Res<Instant> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(client) = connect(addr).await {
            loop {
                if ok(&client, url).await {
                    let at = Instant::now();
                    client.close();
                    return Ok(at);
                }
                if Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            client.close();
        }
        if Instant::now() > deadline {
            return Err(format!("{addr}{url} never answered"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

struct Figures {
    direct: Vec<(f64, f64)>,
    forwarded: Vec<(f64, f64)>,
    restart: Vec<f64>,
    cold_start: Vec<f64>,
}

async fn scenario(rounds: usize, secs: f64, restarts: usize) -> Res<Figures> {
    let port = free_port()?;
    let root = SupervisorSpec::new("root")
        .intensity(1000, Duration::from_secs(60))
        .backoff(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
        .start_root();
    let worker = root
        .handle()
        .start_child(ProcessWorker::child_spec("echo", worker_command(port)?))
        .await
        .map_err(|e| e.to_string())?;
    let front = Server::new(Auth::anonymous())
        .commands(
            Forward::new("echo", format!("127.0.0.1:{port}"))
                .strip_prefix(true)
                .routes(Commander::new(), "/w/")
                .commands(),
        )
        .start("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let (front_addr, worker_addr) = (front.local_addr().to_string(), format!("127.0.0.1:{port}"));
    first_ok(&front_addr, "/w/echo").await?;

    let mut f = Figures {
        direct: Vec::new(),
        forwarded: Vec::new(),
        restart: Vec::new(),
        cold_start: Vec::new(),
    };
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        f.direct
            .push(load_elsewhere(&worker_addr, "/echo", secs).await?);
        f.forwarded
            .push(load_elsewhere(&front_addr, "/w/echo", secs).await?);
    }
    for _ in 0..restarts {
        let pid = worker
            .ask(WorkerPid)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("worker not running")?;
        let killed = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| e.to_string())?;
        // The first call through the front door answered by a new process.
        let deadline = Instant::now() + STEP;
        loop {
            let at = first_ok(&front_addr, "/w/echo").await?;
            let now = worker.ask(WorkerPid).await.map_err(|e| e.to_string())?;
            if now.is_some_and(|p| p != pid) {
                f.restart.push(at.duration_since(killed).as_secs_f64());
                break;
            }
            if Instant::now() > deadline {
                return Err("the worker was not restarted".into());
            }
        }

        // Baseline: the same worker started as a plain process.
        let cold_port = free_port()?;
        let started = Instant::now();
        let mut child =
            std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
                .args(["--worker", &cold_port.to_string()])
                .stdin(std::process::Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
        let at = first_ok(&format!("127.0.0.1:{cold_port}"), "/echo").await;
        let _ = child.kill();
        let _ = child.wait();
        f.cold_start.push(at?.duration_since(started).as_secs_f64());
    }
    front.stop();
    root.handle()
        .stop_child("echo")
        .await
        .map_err(|e| e.to_string())?;
    Ok(f)
}

fn run(quick: bool, smoke: bool) -> Res<String> {
    let (rounds, secs, restarts) = if smoke {
        (1, 0.3, 3)
    } else if quick {
        (1, 2.0, 10)
    } else {
        (3, 5.0, 30)
    };
    let system = actix::System::new();
    let f = system.block_on(scenario(rounds, secs, restarts))?;
    let med = |v: &[f64]| median(v.to_vec()).unwrap_or(f64::NAN);
    let (dp, dr) = (
        med(&f.direct.iter().map(|x| x.0).collect::<Vec<_>>()),
        med(&f.direct.iter().map(|x| x.1).collect::<Vec<_>>()),
    );
    let (fp, fr) = (
        med(&f.forwarded.iter().map(|x| x.0).collect::<Vec<_>>()),
        med(&f.forwarded.iter().map(|x| x.1).collect::<Vec<_>>()),
    );
    let (r, c) = (med(&f.restart), med(&f.cold_start));
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let mut out = String::new();
    let _ = writeln!(out, "## Workers (the Process workers issue)\n");
    let _ = writeln!(
        out,
        "`cargo bench -p psvc-benches --bench workers`: {rounds} round(s) × {secs} s, 16 callers, 64 B; {restarts} restarts.\n"
    );
    let _ = writeln!(
        out,
        "| calls to `/echo` | p50 µs | calls/s | p50 vs direct | calls/s vs direct |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| direct to the worker | {dp:.0} | {dr:.0} | 1.00× | 1.00× |"
    );
    let _ = writeln!(
        out,
        "| through the front door (`Forward`) | {fp:.0} | {fr:.0} | {:.2}× | {:.2}× |",
        fp / dp,
        fr / dr
    );
    let _ = writeln!(
        out,
        "\n| worker restart | median ms | max ms | vs a cold start |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| a plain process started, to its first call (baseline) | {:.1} | {:.1} | 1.00× |",
        c * 1000.0,
        max(&f.cold_start) * 1000.0
    );
    let _ = writeln!(
        out,
        "| SIGKILL, to the first forwarded call on the new process (backoff 10 ms) | {:.1} | {:.1} | {:.2}× |",
        r * 1000.0,
        max(&f.restart) * 1000.0,
        r / c
    );
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker")
        && let Some(port) = args.get(i + 1)
    {
        return worker(port);
    }
    harness_main("workers", "workers.md", run)
}
