//! M1 RPC ping-pong, M2 pipelined RPC and M3 64 connections: one raw tokio client (or psvc's
//! client) against the raw echo, psvc and the VSOA peers.

use super::peers::{Srv, start};
use super::*;

/// RPC data bytes (M1–M3).
const RPC_DATA: usize = 64;
/// Pipelined requests in flight (M2).
const M2_WINDOW: usize = 128;
/// Connections (M3).
const M3_CONNS: usize = 64;

/// M1–M3: `conns` × `window` RPC through the raw client (or psvc's client).
fn run_rpc(
    who: Who,
    pl: &Placement,
    conns: usize,
    window: usize,
    m: usize,
    o: &Opts,
    peers: &Peers,
) -> Res<Sample> {
    let srv = match who {
        Who::Raw => Srv::RawEcho,
        Who::Psvc | Who::PsvcClient => Srv::Psvc,
        Who::Node => Srv::Node,
        Who::Python => Srv::Python,
        other => return Err(format!("{other:?} is not an RPC server")),
    };
    let server = start(srv, pl.server, peers)?;
    let (w, s) = o.window(m);
    let (w, s) = (
        format!("{}", w.as_secs_f64()),
        format!("{}", s.as_secs_f64()),
    );
    let (c, win, d) = (conns.to_string(), window.to_string(), RPC_DATA.to_string());
    let proto = if who == Who::Raw { "raw" } else { "vsoa" };
    let role: Vec<&str> = match who {
        Who::PsvcClient => vec!["rpc-client", &server.addr, &d, &w, &s],
        _ => vec!["rpc", proto, &server.addr, &c, &win, &d, &w, &s],
    };
    let client = Proc::role(&format!("{} client", who.short()), pl.client, &role)?;
    let sample = measure(
        Some(&server.proc),
        &client,
        Duration::from_secs(30),
        o.window(m).1 + Duration::from_secs(30),
        |s| s.get("count").copied().unwrap_or(0.0),
    )?;
    Ok(latency_sample(sample))
}

/// M1–M3: the runs selected in `o`, their sections of the report and their goals; returns the
/// number of failed runs.
pub(crate) fn section(
    o: &Opts,
    peers: &Peers,
    placements: &[Placement],
    [m1_whos, m2_whos, m3_whos]: [&[Who]; 3],
    out: &mut String,
    goals: &mut Vec<String>,
) -> usize {
    let mut failures = 0usize;
    for (m, conns, window, whos) in [
        (1, 1, 1, m1_whos),
        (2, 1, M2_WINDOW, m2_whos),
        (3, M3_CONNS, 1, m3_whos),
    ] {
        if !o.only[m - 1] {
            continue;
        }
        let (w, s) = o.window(m);
        let _ = writeln!(
            out,
            "\n## M{m} — {}\n\n{}",
            match m {
                1 => "RPC ping-pong, 1 connection, 64 B (lower is better)".to_string(),
                2 => format!(
                    "pipelined RPC, 1 connection, {M2_WINDOW} in flight, 64 B (higher is better)"
                ),
                _ => format!(
                    "{M3_CONNS} connections, each a closed loop, 64 B (higher calls/s is better)"
                ),
            },
            format_args!(
                "One raw tokio client (current_thread) drives every server: VSOA RPC `/echo` \
                     with 64 bytes of data and no param (92 bytes on the wire; SERVINFO \
                     handshake first) for psvc and the VSOA peers; the same 92 bytes (4-byte \
                     length + 88) for the raw echo. Replies matched by seqno. {w:.1} s warm-up, \
                     {s:.1} s timed; every reply's round trip in an HdrHistogram. *paired*: each \
                     run over the mean of the two baseline runs around it, median over rounds. \
                     CPU per call from `/proc/<pid>/task/*/schedstat` over the timed window.",
                w = w.as_secs_f64(),
                s = s.as_secs_f64()
            )
        );
        for pl in placements {
            let label = format!("M{m}/{}", pl.label);
            let primary = if m == 1 { "p50" } else { "rate" };
            let runs = interleave(&label, whos, o.rounds, primary, |who| {
                run_rpc(who, pl, conns, window, m, o, peers)
            });
            failures += count_failures(&runs);
            let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
            if m == 1 {
                table(
                    out,
                    m,
                    &runs,
                    Col("p50 µs", "p50"),
                    &[
                        Col("p99 µs", "p99"),
                        Col("p99.9 µs", "p999"),
                        Col("calls/s", "rate"),
                    ],
                    "µs/call",
                );
            } else {
                table(
                    out,
                    m,
                    &runs,
                    Col("calls/s", "rate"),
                    &[Col("p50 µs", "p50"), Col("p99 µs", "p99")],
                    "µs/call",
                );
            }
            rpc_goals(m, pl, &runs, goals);
        }
    }
    failures
}

fn rpc_goals(m: usize, pl: &Placement, runs: &Runs, goals: &mut Vec<String>) {
    let l = pl.label;
    let node = |k| med(runs, Who::Node, k);
    let py = |k| med(runs, Who::Python, k);
    if m == 1 {
        let (p, r) = (med(runs, Who::Psvc, "p50"), med(runs, Who::Raw, "p50"));
        let pr = paired(runs, Who::Psvc, Who::Raw, "p50");
        goals.push(format!(
            "| M1 RPC p50 ≤ 1.25× raw, {l} | {} µs vs {} µs = {} (paired {}; p99 {}) | {} |",
            opt(p),
            opt(r),
            ratio(p, r),
            pr.map_or_else(|| "–".into(), |x| format!("{x:.2}×")),
            ratio(med(runs, Who::Psvc, "p99"), med(runs, Who::Raw, "p99")),
            verdict(div(p, r).map(|x| x <= 1.25))
        ));
        let faster = match (p, node("p50"), py("p50")) {
            (Some(p), Some(a), Some(b)) => Some(p < a && p < b),
            _ => None,
        };
        goals.push(format!(
            "| M1 RPC faster than vsoa-node and vsoa-python, {l} | p50 {} µs; vsoa-node {} µs ({}); vsoa-python {} µs ({}) | {} |",
            opt(p),
            opt(node("p50")),
            ratio(p, node("p50")),
            opt(py("p50")),
            ratio(p, py("p50")),
            verdict(faster)
        ));
    } else {
        let (p, r) = (med(runs, Who::Psvc, "rate"), med(runs, Who::Raw, "rate"));
        let best = match (node("rate"), py("rate")) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if m == 2 {
            goals.push(format!(
                "| M2 pipelined ≥ 0.5× raw, {l} | {} calls/s vs {} = {} | {} |",
                opt(p),
                opt(r),
                ratio(p, r),
                verdict(div(p, r).map(|x| x >= 0.5))
            ));
            goals.push(format!(
                "| M2 pipelined ≥ 1.5× the best peer, {l} | best peer {} calls/s: {} | {} |",
                opt(best),
                ratio(p, best),
                verdict(div(p, best).map(|x| x >= 1.5))
            ));
        } else {
            goals.push(format!(
                "| M3 64 connections (research target ≥ 0.6× raw), {l} | {} calls/s vs {} = {}; best peer {} ({}) | {} |",
                opt(p),
                opt(r),
                ratio(p, r),
                opt(best),
                ratio(p, best),
                verdict(div(p, r).map(|x| x >= 0.6))
            ));
        }
    }
}
