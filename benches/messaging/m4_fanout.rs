//! M4 publish fan-out to 1 / 10 / 100 subscribers: raw tokio, psvc's Broker, nats-server and
//! mosquitto, deliveries counted at the subscribers.

use super::peers::{Srv, start};
use super::*;

/// M4: `n` subscribers, `size`-byte messages.
fn run_fanout(
    who: Who,
    pl: &Placement,
    n: usize,
    size: usize,
    o: &Opts,
    peers: &Peers,
) -> Res<Sample> {
    let (srv, kind) = match who {
        Who::Raw => (Srv::RawFanout, "raw"),
        Who::Psvc | Who::PsvcPipelined => (Srv::Psvc, "vsoa"),
        Who::Nats => (Srv::Nats, "nats"),
        Who::Mosquitto => (Srv::Mosquitto, "mqtt"),
        other => return Err(format!("{other:?} is not a fan-out server")),
    };
    let mut server = start(srv, pl.server, peers)?;
    let (w, s) = o.window(4);
    let role = [
        "subs".to_string(),
        kind.to_string(),
        server.addr.clone(),
        n.to_string(),
        size.to_string(),
        format!("{}", w.as_secs_f64()),
        format!("{}", s.as_secs_f64()),
    ];
    let role: Vec<&str> = role.iter().map(String::as_str).collect();
    let client = Proc::role(&format!("{} subscribers", who.short()), pl.client, &role)?;
    client.expect("ready", Duration::from_secs(30))?;
    if matches!(who, Who::Raw | Who::Psvc | Who::PsvcPipelined) {
        let max = (w + s).as_secs_f64() + 20.0;
        let depth = if who == Who::PsvcPipelined { 64 } else { 1 };
        server.proc.send(&format!("go {n} {size} {max} {depth}"))?;
    }
    let mut sample = measure(
        Some(&server.proc),
        &client,
        w + Duration::from_secs(30),
        s + Duration::from_secs(30),
        |s| s.get("deliveries").copied().unwrap_or(0.0),
    )?;
    let secs = sample.get("secs").copied().unwrap_or(0.0);
    let d = sample.get("deliveries").copied().unwrap_or(0.0);
    let p = sample.get("published").copied().unwrap_or(0.0);
    sample.insert("rate".into(), if secs > 0.0 { d / secs } else { 0.0 });
    if secs > 0.0 && p > 0.0 {
        sample.insert("pub_rate".into(), p / secs);
    }
    if sample.get("lost").copied().unwrap_or(0.0) > 0.0 {
        sample.insert("lossy".into(), 1.0);
    }
    Ok(sample)
}

/// M4: the runs, the section of the report and the goals; returns the number of failed runs.
pub(crate) fn section(
    o: &Opts,
    peers: &Peers,
    placements: &[Placement],
    whos: &[Who],
    out: &mut String,
    goals: &mut Vec<String>,
) -> usize {
    let mut failures = 0usize;
    let (w, s) = o.window(4);
    let _ = writeln!(
        out,
        "\n## M4 — publish fan-out, deliveries/s at the subscribers (higher is better)\n\n\
             N subscriber connections in one client process (current_thread), subscribed \
             with a prefix / wildcard (`/bench/`, `bench.>`, `bench/#`), publishing to \
             `/bench/x` / `bench.x` / `bench/x`. Every payload carries a sequence number that \
             each subscriber checks: a gap counts as lost and flags the run. \
             **Raw**: a loop in the server process writes the same encoded VSOA PUBLISH to a \
             bounded queue (1,024) per subscriber, each drained by a batching writer; the \
             loop waits on a full queue (lossless, back-pressured). **psvc**: a loop in the \
             server process calls `broker.send(Publish::new(\"/bench/x\").data(..))` and \
             checks every `Delivered` (each subscriber a target); the Broker never waits for \
             a slow subscriber (by default a session more than 1 MiB behind is \
             disconnected), so the subscriber process acknowledges its slowest subscriber's \
             count every quarter window (a DATAGRAM to `/bench/ack` on a connection of its \
             own) and the publisher stays within the window. *psvc* awaits each publish; \
             *psvc, 64 in flight* keeps up to 64 `broker.send` futures outstanding. \
             **nats-server / mosquitto** (QoS 0) can only be published to over a client \
             connection: their publisher sits in the subscriber process and stays within the \
             same window of the slowest subscriber (in-process feedback). Window: 1,024 \
             messages, or fewer to fit 512 KiB (126 at 4 KiB). Framing differs: VSOA 20-byte \
             header + topic, NATS `MSG` line, MQTT 2-byte header + topic. {:.1} s warm-up \
             after the first delivery, {:.1} s timed. CPU in µs per delivery.",
        w.as_secs_f64(),
        s.as_secs_f64()
    );
    for &size in &o.sizes {
        for &n in &o.subs {
            let _ = writeln!(out, "\n### {n} subscriber(s), {size} B\n");
            for pl in placements {
                let label = format!("M4/{}/{n}x{size}B", pl.label);
                let runs = interleave(&label, whos, o.rounds, "rate", |who| {
                    run_fanout(who, pl, n, size, o, peers)
                });
                failures += count_failures(&runs);
                let _ = writeln!(out, "Placement {} — {}\n", pl.label, pl.describe);
                table(
                    out,
                    4,
                    &runs,
                    Col("deliveries/s", "rate"),
                    &[
                        Col("published/s (client publisher)", "pub_rate"),
                        Col("lost", "lost"),
                    ],
                    "µs/delivery",
                );
                out.push('\n');
                let r = med(&runs, Who::Raw, "rate");
                let nats = med(&runs, Who::Nats, "rate");
                let mq = med(&runs, Who::Mosquitto, "rate");
                for who in [Who::Psvc, Who::PsvcPipelined] {
                    let p = med(&runs, who, "rate");
                    let ahead = match (p, nats, mq) {
                        (Some(p), Some(a), Some(b)) => Some(p > a && p > b),
                        _ => None,
                    };
                    goals.push(format!(
                            "| M4 {n} sub × {size} B, {}, {}: ≥ 0.6× raw; ahead of nats-server and mosquitto | {} /s = {} raw; {} nats; {} mosquitto | {}; {} |",
                            pl.label,
                            who.short(),
                            opt(p),
                            ratio(p, r),
                            ratio(p, nats),
                            ratio(p, mq),
                            verdict(div(p, r).map(|x| x >= 0.6)),
                            verdict(ahead)
                        ));
                }
            }
        }
    }
    failures
}
