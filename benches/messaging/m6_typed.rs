//! M6 typed call with a small struct through `psvc::client::Client`: JSON (param) against
//! postcard (data).

use super::peers::{Srv, start};
use super::*;

/// M6: typed calls through psvc's client.
fn run_typed(who: Who, pl: &Placement, o: &Opts, peers: &Peers) -> Res<Sample> {
    let server = start(Srv::Psvc, pl.server, peers)?;
    let (w, s) = o.window(6);
    let role = [
        "typed",
        if who == Who::Json { "json" } else { "postcard" },
        &server.addr,
        &format!("{}", w.as_secs_f64()),
        &format!("{}", s.as_secs_f64()),
    ];
    let client = Proc::role(&format!("{} client", who.short()), pl.client, &role)?;
    let sample = measure(
        Some(&server.proc),
        &client,
        Duration::from_secs(30),
        s + Duration::from_secs(30),
        |s| s.get("count").copied().unwrap_or(0.0),
    )?;
    Ok(latency_sample(sample))
}

/// M6: the runs, the section of the report and the goals; returns the number of failed runs.
pub(crate) fn section(
    o: &Opts,
    peers: &Peers,
    placements: &[Placement],
    whos: &[Who],
    out: &mut String,
    goals: &mut Vec<String>,
) -> usize {
    let mut failures = 0usize;
    let (w, s) = o.window(6);
    let _ = writeln!(
        out,
        "\n## M6 — typed call, JSON vs postcard (lower is better)\n\n\
             psvc's own client (`Client::call` with the struct as JSON in param, \
             `Client::call_postcard` with it as postcard in data) against the psvc server's \
             typed route `/add`; closed loop, one connection, {:.1} s warm-up, {:.1} s timed. \
             The ratio column is against the JSON line.",
        w.as_secs_f64(),
        s.as_secs_f64()
    );
    for pl in placements {
        let label = format!("M6/{}", pl.label);
        let runs = interleave(&label, whos, o.rounds, "p50", |who| {
            run_typed(who, pl, o, peers)
        });
        failures += count_failures(&runs);
        let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
        table(
            out,
            6,
            &runs,
            Col("p50 µs", "p50"),
            &[Col("p99 µs", "p99"), Col("calls/s", "rate")],
            "µs/call",
        );
        let j = med(&runs, Who::Json, "p50");
        let p = med(&runs, Who::Postcard, "p50");
        goals.push(format!(
            "| M6 {}: postcard vs JSON (no target; informative) | p50 {} µs vs {} µs = {} | – |",
            pl.label,
            opt(p),
            opt(j),
            ratio(p, j)
        ));
    }
    failures
}
