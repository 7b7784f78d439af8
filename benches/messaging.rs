//! Messaging benchmark harness: psvc's RPC, pub/sub, stream and payload layers against raw tokio
//! baselines and real peers (VSOA's C core through npm `vsoa`, VSOA Python, nats-server,
//! mosquitto), all measured in the same run, with every server and client in **separate
//! processes** pinned with `taskset`.
//!
//! ```sh
//! cargo bench -p psvc-benches --bench messaging                       # full: 5 rounds, ~15 min
//! PSVC_BENCH_QUICK=1 cargo bench -p psvc-benches --bench messaging    # smoke: 1 round, short
//! cargo bench -p psvc-benches --bench messaging -- --only m1,m4 --rounds 7
//! ```
//!
//! The driver re-executes this binary with `--role …` for every server and client process it
//! owns, starts the peers (Python and Node scripts from `tests/peers/`, `nats-server`,
//! `mosquitto`) as processes of their own, and talks to its roles over stdin/stdout (one line per
//! message). Rounds are interleaved (baseline → psvc → peers → baseline …, closed by a baseline)
//! in placement A (server and client on CPU 0) and B (server on CPU 0, client on CPU 1); each
//! figure is the median over rounds. Workloads:
//!
//! - **M1** RPC ping-pong, one connection, 64-byte data: one raw tokio client drives every
//!   server: VSOA RPC `/echo` frames (built with `psvc::frame`, SERVINFO handshake first) for
//!   psvc and the VSOA peers, the same byte count behind a 4-byte length prefix for the raw
//!   `LengthDelimitedCodec` echo baseline. p50 / p99 round trip.
//! - **M2** pipelined RPC on one connection (128 requests in flight), same client and servers.
//! - **M3** 64 connections, each a closed loop, same client and servers.
//! - **M4** publish fan-out to 1 / 10 / 100 subscribers at 64 B and 4 KiB: lossless deliveries
//!   per second counted at the subscribers (every payload carries a sequence number; gaps are
//!   counted as lost). psvc publishes from inside the server process through its Broker; the raw
//!   baseline is a tokio loop in the server process writing the same encoded PUBLISH frames to N
//!   sockets through bounded queues (lossless, back-pressured); nats-server and mosquitto need a
//!   client connection to publish, so their publisher lives in the subscriber process and keeps
//!   at most 1,024 messages ahead of the slowest subscriber.
//! - **M5** 1 GiB stream: psvc's stream tunnel against a raw tokio socket writing 256 KiB chunks,
//!   with and without SHA-256; the SHA-256 speed of the client CPU is measured in the same run.
//! - **M6** typed call with a small struct, JSON (param) against postcard (data), through
//!   `psvc::client::Client`.
//!
//! The report is printed and written to `<target>/bench-results/messaging.md`.
//!
//! Layout: this file is the driver (options, sampling, the report); `messaging/` holds the wire
//! formats (`wire.rs`), the role processes (`role.rs`, psvc's in `psvc_side.rs`), the servers and
//! peers the driver starts (`peers.rs`), the contenders (`contenders.rs`) and one file per
//! workload (`m1_m3_rpc.rs`, `m4_fanout.rs`, `m5_stream.rs`, `m6_typed.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use psvc_benches::host::{Host, load_average, locked_version};
use psvc_benches::process::{CpuMark, Placement, Proc, placements};
use psvc_benches::report::{
    Flags, environment_head, fmt_num, median, opt, quick_mode, ratio, write_report,
};

use contenders::Who;
use peers::Peers;

#[path = "messaging/contenders.rs"]
mod contenders;
#[path = "messaging/m1_m3_rpc.rs"]
mod m1_m3_rpc;
#[path = "messaging/m4_fanout.rs"]
mod m4_fanout;
#[path = "messaging/m5_stream.rs"]
mod m5_stream;
#[path = "messaging/m6_typed.rs"]
mod m6_typed;
#[path = "messaging/peers.rs"]
mod peers;
#[path = "messaging/psvc_side.rs"]
mod psvc_side;
#[path = "messaging/role.rs"]
mod role;
#[path = "messaging/wire.rs"]
mod wire;

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // Roles report failures on stdout too, where the driver reads them.
    psvc_benches::role::main("messaging bench", role::run, run)
}

// ---------------------------------------------------------------- options

const USAGE: &str = "\
usage: cargo bench -p psvc-benches --bench messaging [-- OPTIONS]
  --quick            1 round, short windows, smaller sizes (same as PSVC_BENCH_QUICK=1)
  --rounds N         rounds per workload and placement (default 5)
  --secs S           timed seconds of every run (default: M1 2, M2/M3/M6 1.5, M4 1)
  --only LIST        comma-separated subset of m1,m2,m3,m4,m5,m6
  --stream-mib N     M5 stream size in MiB (default 1024)
  --no-pin           no taskset (placements then mean nothing)
  --no-write         print the report only

Without --bench (e.g. `cargo test --all-targets`): a smoke run (quick, placement A only, no
peers), printed and not written.
";

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    /// No `--bench` (e.g. `cargo test --all-targets`): placement A only, no peers.
    smoke: bool,
    rounds: usize,
    secs: Option<Duration>,
    only: [bool; 6],
    stream_size: usize,
    subs: Vec<usize>,
    sizes: Vec<usize>,
    pin: bool,
    write: bool,
}

impl Opts {
    fn parse(args: &[String]) -> Res<Self> {
        // Without `--bench` (e.g. `cargo test --all-targets`) run the quick mode, unwritten.
        let (quick, smoke) = quick_mode(args);
        let mut o = Opts {
            quick,
            smoke,
            rounds: if quick { 1 } else { 5 },
            secs: None,
            only: [true; 6],
            stream_size: if quick { 64 << 20 } else { 1 << 30 },
            subs: if quick { vec![10] } else { vec![1, 10, 100] },
            sizes: vec![64, 4096],
            pin: true,
            write: !smoke,
        };
        let mut flags = Flags::new(args, USAGE);
        while let Some(a) = flags.next() {
            match a {
                "--bench" | "--quick" => {}
                "--rounds" => o.rounds = (flags.num(a)? as usize).clamp(1, 50),
                "--secs" => {
                    o.secs = Some(Duration::from_secs_f64(flags.num(a)?.clamp(0.1, 30.0)));
                }
                "--stream-mib" => {
                    o.stream_size = (flags.num(a)? as usize).clamp(1, 8192) << 20;
                }
                "--only" => {
                    o.only = [false; 6];
                    for w in flags.value(a)?.split(',') {
                        let i = match w.trim().to_ascii_lowercase().as_str() {
                            "m1" => 0,
                            "m2" => 1,
                            "m3" => 2,
                            "m4" => 3,
                            "m5" => 4,
                            "m6" => 5,
                            other => return Err(format!("--only m1..m6, not {other:?}")),
                        };
                        o.only[i] = true;
                    }
                }
                "--no-pin" => o.pin = false,
                "--no-write" => o.write = false,
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(o)
    }

    /// Warm-up and timed window of a run of workload `m` (1-based).
    fn window(&self, m: usize) -> (Duration, Duration) {
        let (w, s) = match (self.quick, m) {
            (true, _) => (0.1, 0.3),
            (false, 1) => (0.5, 2.0),
            (false, 4) => (0.3, 1.0),
            (false, _) => (0.3, 1.5),
        };
        (
            Duration::from_secs_f64(w),
            self.secs.unwrap_or(Duration::from_secs_f64(s)),
        )
    }
}

// ---------------------------------------------------------------- samples

/// One run's figures by name (latencies in µs, rates per second, CPU in µs per operation).
type Sample = HashMap<String, f64>;
type Runs = Vec<(Who, Vec<Res<Sample>>)>;

fn parse_result(line: &str) -> Res<Sample> {
    let mut m = Sample::new();
    for kv in line.split_whitespace() {
        if let Some((k, v)) = kv.split_once('=')
            && let Ok(v) = v.parse::<f64>()
        {
            m.insert(k.to_string(), v);
        }
    }
    if m.is_empty() {
        return Err(format!("bad result line {line:?}"));
    }
    Ok(m)
}

/// Runs a client until its result; CPU of server and client over the timed window,
/// divided by `ops(sample)`.
fn measure(
    server: Option<&Proc>,
    client: &Proc,
    warm_timeout: Duration,
    result_timeout: Duration,
    ops: impl Fn(&Sample) -> f64,
) -> Res<Sample> {
    client.expect("warm", warm_timeout)?;
    let spid = server.map(Proc::pid);
    let m0 = CpuMark::take(spid, client.pid());
    let line = client.expect("result", result_timeout)?;
    let m1 = CpuMark::take(spid, client.pid());
    let mut s = parse_result(&line)?;
    let n = ops(&s);
    if n > 0.0 {
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0 / n;
        if server.is_some() {
            s.insert("server_cpu".into(), us(m0.server, m1.server));
        }
        s.insert("client_cpu".into(), us(m0.client, m1.client));
    }
    let window = (m1.at - m0.at).as_nanos() as f64;
    if window > 0.0 {
        s.insert(
            "other_pct".into(),
            m1.others.saturating_sub(m0.others) as f64 / window * 100.0,
        );
    }
    Ok(s)
}

/// Latency results in µs and the rate.
fn latency_sample(mut s: Sample) -> Sample {
    for k in ["p50", "p99", "p999", "max"] {
        if let Some(v) = s.get_mut(k) {
            *v /= 1000.0;
        }
    }
    let secs = s.get("secs").copied().unwrap_or(0.0);
    let count = s.get("count").copied().unwrap_or(0.0);
    s.insert("rate".into(), if secs > 0.0 { count / secs } else { 0.0 });
    s
}

/// Baseline → the others → baseline …, closed by a baseline; every run logged.
fn interleave(
    label: &str,
    whos: &[Who],
    rounds: usize,
    primary: &str,
    mut run: impl FnMut(Who) -> Res<Sample>,
) -> Runs {
    let mut runs: Runs = whos.iter().map(|&w| (w, Vec::new())).collect();
    let mut order: Vec<Who> = Vec::new();
    for _ in 0..rounds {
        order.extend(whos);
    }
    if let Some(&base) = whos.first() {
        order.push(base);
    }
    let total = order.len();
    for (i, w) in order.into_iter().enumerate() {
        let r = run(w);
        match &r {
            Ok(s) => {
                let mut line = format!("[{label} {}/{total}] {:<12}", i + 1, w.short());
                let keys = [
                    primary,
                    "p50",
                    "p99",
                    "lost",
                    "server_cpu",
                    "client_cpu",
                    "other_pct",
                ];
                for (i, k) in keys.iter().enumerate() {
                    if let Some(v) = s.get(*k)
                        && !keys[..i].contains(k)
                    {
                        let _ = write!(line, " {k} {}", fmt_num(*v));
                    }
                }
                eprintln!("{line}");
            }
            Err(e) => eprintln!("[{label} {}/{total}] {} FAILED: {e}", i + 1, w.short()),
        }
        if let Some((_, v)) = runs.iter_mut().find(|(q, _)| *q == w) {
            v.push(r);
        }
    }
    runs
}

// ---------------------------------------------------------------- report

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Successful samples of `w`.
fn ok(runs: &Runs, w: Who) -> Vec<Sample> {
    runs.iter()
        .find(|(q, _)| *q == w)
        .map(|(_, r)| r.iter().filter_map(|x| x.as_ref().ok().cloned()).collect())
        .unwrap_or_default()
}

fn med(runs: &Runs, w: Who, key: &str) -> Option<f64> {
    median(
        ok(runs, w)
            .iter()
            .filter_map(|s| s.get(key).copied())
            .collect(),
    )
}

/// Each run of `w` in round i over the mean of baseline runs i and i + 1, median over
/// rounds (only when every run of both succeeded).
fn paired(runs: &Runs, w: Who, base: Who, key: &str) -> Option<f64> {
    let all = |q: Who| -> Option<Vec<f64>> {
        runs.iter().find(|(x, _)| *x == q).and_then(|(_, r)| {
            r.iter()
                .map(|x| x.as_ref().ok().and_then(|s| s.get(key).copied()))
                .collect()
        })
    };
    let (v, b) = (all(w)?, all(base)?);
    if b.len() != v.len() + 1 || v.is_empty() {
        return None;
    }
    median(
        v.iter()
            .enumerate()
            .map(|(i, x)| x / ((b[i] + b[i + 1]) / 2.0))
            .collect(),
    )
}

/// A column: header, sample key, and whether to bold it.
struct Col(&'static str, &'static str);

/// One results table: the primary metric with its min–max and ratios to the baseline, then
/// `cols`, CPU, runs ok and notes.
fn table(out: &mut String, m: usize, runs: &Runs, primary: Col, cols: &[Col], cpu_unit: &str) {
    let base = runs.first().map(|(w, _)| *w);
    let _ = write!(
        out,
        "| server | {} | min–max | ÷ {} | paired |",
        primary.0,
        base.map_or("baseline", Who::short)
    );
    for c in cols {
        let _ = write!(out, " {} |", c.0);
    }
    let _ = writeln!(
        out,
        " server CPU {cpu_unit} | client CPU {cpu_unit} | other CPU % | runs ok | notes |"
    );
    out.push_str("|---|---:|---:|---:|---:|");
    for _ in cols {
        out.push_str("---:|");
    }
    out.push_str("---:|---:|---:|---:|---|\n");
    for (w, r) in runs {
        let v = ok(runs, *w);
        let vals: Vec<f64> = v.iter().filter_map(|s| s.get(primary.1).copied()).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let p = med(runs, *w, primary.1);
        let b = base.and_then(|b| med(runs, b, primary.1));
        let mut note = w.note(m).to_string();
        if let Some(e) = r.iter().find_map(|x| x.as_ref().err()) {
            let _ = write!(note, "; **failure**: {e}");
        }
        let lossy = v.iter().filter(|s| s.contains_key("lossy")).count();
        if lossy > 0 {
            let _ = write!(note, "; **lost messages in {lossy} run(s)**");
        }
        let _ = write!(
            out,
            "| {} | **{}** | {} | {} | {} |",
            w.name(m),
            opt(p),
            if vals.is_empty() {
                "–".to_string()
            } else {
                format!("{}–{}", fmt_num(lo), fmt_num(hi))
            },
            ratio(p, b),
            match base {
                Some(b) if b != *w => paired(runs, *w, b, primary.1)
                    .map_or_else(|| "–".to_string(), |r| format!("{r:.2}×")),
                _ => "–".to_string(),
            }
        );
        for c in cols {
            let _ = write!(out, " {} |", opt(med(runs, *w, c.1)));
        }
        let _ = writeln!(
            out,
            " {} | {} | {} | {}/{} | {} |",
            opt(med(runs, *w, "server_cpu")),
            opt(med(runs, *w, "client_cpu")),
            opt(med(runs, *w, "other_pct")),
            v.len(),
            r.len(),
            note.replace('|', "/")
        );
    }
    if let Some(b) = base {
        let vals: Vec<f64> = ok(runs, b)
            .iter()
            .filter_map(|s| s.get(primary.1).copied())
            .collect();
        if vals.len() >= 2
            && let Some(m) = median(vals.clone())
        {
            let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let spread = (hi - lo) / m * 100.0;
            if spread > 10.0 {
                let _ = writeln!(
                    out,
                    "\nBaseline spread over its {} runs: {}–{} ({spread:.0} % of the median) — **noisy**: read the ratios with care.",
                    vals.len(),
                    fmt_num(lo),
                    fmt_num(hi)
                );
            }
        }
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**NOT MET**",
        None => "–",
    }
}

fn environment(o: &Opts, pinned: bool, elapsed: Duration, load: &str, peers: &Peers) -> String {
    let host = Host::read();
    let v = locked_version;
    let rounds = format!("; {} round(s)", o.rounds);
    let mut s = environment_head(&host, elapsed, &rounds, o.quick, load);
    let _ = writeln!(s, "- rustc: {}; profile: bench (release)", host.rustc);
    let _ = writeln!(
        s,
        "- crates: actix {}, tokio {}, tokio-util {}, bytes {}, sha2 {}, hdrhistogram {}",
        v("actix"),
        v("tokio"),
        v("tokio-util"),
        v("bytes"),
        v("sha2"),
        v("hdrhistogram")
    );
    let _ = writeln!(s, "- peers: {}", peers.versions.join("; "));
    let _ = writeln!(
        s,
        "- processes: every server, peer and client is its own process, started as \
         `taskset -c CPU sh -c 'ulimit -n <hard>; exec …'`; {}; all sockets on 127.0.0.1, \
         TCP_NODELAY on every socket the harness opens (mosquitto: `set_tcp_nodelay true`)",
        if pinned { "pinned" } else { "**UNPINNED**" }
    );
    s
}

/// Failed runs in `runs`.
fn count_failures(runs: &Runs) -> usize {
    runs.iter()
        .flat_map(|(_, r)| r.iter())
        .filter(|r| r.is_err())
        .count()
}

// ---------------------------------------------------------------- main

fn run(args: &[String]) -> Res<()> {
    let o = Opts::parse(args)?;
    let started = Instant::now();
    let load_before = load_average();
    let peers = Peers::probe();
    let smoke = o.smoke.then_some("smoke run (no --bench)");
    let (pinned, placements) = placements(o.pin, "server and client on CPU 0", smoke);
    let mut skipped: Vec<String> = Vec::new();
    let mut avail = |whos: &[Who], m: usize| -> Vec<Who> {
        whos.iter()
            .copied()
            .filter(|&w| match peers.available(w, o.smoke) {
                Ok(()) => true,
                Err(e) => {
                    let line = format!("M{m}: {} skipped — {e}", w.name(m));
                    eprintln!("{line}");
                    skipped.push(line);
                    false
                }
            })
            .collect()
    };
    let rpc_whos = [Who::Raw, Who::Psvc, Who::Node, Who::Python];
    let m1_whos = avail(
        &[Who::Raw, Who::Psvc, Who::PsvcClient, Who::Node, Who::Python],
        1,
    );
    let m2_whos = avail(&rpc_whos, 2);
    let m3_whos = avail(&rpc_whos, 3);
    let m4_whos = avail(
        &[
            Who::Raw,
            Who::Psvc,
            Who::PsvcPipelined,
            Who::Nats,
            Who::Mosquitto,
        ],
        4,
    );
    let m5_whos = avail(
        &[
            Who::Raw,
            Who::Psvc,
            Who::RawShaRecv,
            Who::PsvcShaRecv,
            Who::RawSha,
            Who::PsvcSha,
            Who::Sha,
            Who::Node,
            Who::Python,
        ],
        5,
    );
    let m6_whos = [Who::Json, Who::Postcard];
    eprintln!(
        "messaging bench: {} mode; {} round(s); placements {}; workloads {}",
        if o.quick { "QUICK" } else { "full" },
        o.rounds,
        placements
            .iter()
            .map(|p| p.label)
            .collect::<Vec<_>>()
            .join(", "),
        (1..=6)
            .filter(|i| o.only[i - 1])
            .map(|i| format!("M{i}"))
            .collect::<Vec<_>>()
            .join(",")
    );

    let mut out = String::new();
    let mut goals: Vec<String> = Vec::new();
    let mut failures = 0usize;

    // M1–M3: RPC.
    failures += m1_m3_rpc::section(
        &o,
        &peers,
        &placements,
        [&m1_whos, &m2_whos, &m3_whos],
        &mut out,
        &mut goals,
    );

    // M4: fan-out.
    if o.only[3] {
        failures += m4_fanout::section(&o, &peers, &placements, &m4_whos, &mut out, &mut goals);
    }

    // M5: streams.
    if o.only[4] {
        failures += m5_stream::section(&o, &peers, &placements, &m5_whos, &mut out, &mut goals);
    }

    // M6: JSON vs postcard.
    if o.only[5] {
        failures += m6_typed::section(&o, &peers, &placements, &m6_whos, &mut out, &mut goals);
    }

    let load = format!("{load_before} before, {} after", load_average());
    let mut report = String::from("# psvc messaging benchmarks\n\n");
    report.push_str(&environment(&o, pinned, started.elapsed(), &load, &peers));
    if !skipped.is_empty() {
        report.push_str("\n**Skipped:**\n\n");
        for s in &skipped {
            let _ = writeln!(report, "- {s}");
        }
    }
    report.push_str(&out);
    if !goals.is_empty() {
        report.push_str(
            "\n## Against the goals (ratios of medians from this run)\n\n| goal | result | verdict |\n|---|---|---|\n",
        );
        for g in &goals {
            let _ = writeln!(report, "{g}");
        }
    }
    print!("{report}");
    write_report(&report, "messaging.md", o.write)?;
    if failures > 0 {
        return Err(format!("{failures} run(s) FAILED, see the report"));
    }
    Ok(())
}
