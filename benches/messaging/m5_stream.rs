//! M5 stream: psvc's stream tunnel against a raw tokio socket and the VSOA peers, with and
//! without SHA-256.

use super::peers::{Srv, start};
use super::*;

/// Largest `/stream/download` the peer scripts serve.
const PEER_STREAM_MAX: usize = 64 << 20;

/// M5: one stream of `size` bytes (at most [`PEER_STREAM_MAX`] for the peers).
fn run_stream(who: Who, pl: &Placement, size: usize, digest: &str, peers: &Peers) -> Res<Sample> {
    let timeout = Duration::from_secs(90);
    let per_gib = |s: &Sample| s.get("bytes").copied().unwrap_or(0.0) / (1u64 << 30) as f64;
    let mut sample = if who == Who::Sha {
        let client = Proc::role("sha256", pl.client, &["sha", &size.to_string()])?;
        measure(None, &client, timeout, timeout, per_gib)?
    } else {
        // Hash mode: 0 none, 1 at the receiver, 2 at both ends.
        let (srv, kind, hash) = match who {
            Who::Raw => (Srv::RawStream, "raw", "0"),
            Who::RawShaRecv => (Srv::RawStream, "raw", "1"),
            Who::RawSha => (Srv::RawStream, "raw", "2"),
            Who::Psvc => (Srv::Psvc, "vsoa", "0"),
            Who::PsvcShaRecv => (Srv::Psvc, "psvc", "1"),
            Who::PsvcSha => (Srv::Psvc, "psvc", "2"),
            Who::Node => (Srv::Node, "vsoa", "0"),
            Who::Python => (Srv::Python, "vsoa", "0"),
            other => return Err(format!("{other:?} is not a stream server")),
        };
        let server = start(srv, pl.server, peers)?;
        let size = if matches!(who, Who::Node | Who::Python) {
            size.min(PEER_STREAM_MAX)
        } else {
            size
        };
        let size_s = size.to_string();
        let role: Vec<&str> = if kind == "psvc" {
            vec![
                "get-psvc",
                &server.addr,
                &size_s,
                digest,
                if hash == "2" { "1" } else { "0" },
            ]
        } else {
            vec!["get", kind, &server.addr, &size_s, hash, digest]
        };
        let client = Proc::role(&format!("{} receiver", who.short()), pl.client, &role)?;
        measure(Some(&server.proc), &client, timeout, timeout, per_gib)?
    };
    let secs = sample.get("secs").copied().unwrap_or(0.0);
    let bytes = sample.get("bytes").copied().unwrap_or(0.0);
    // GB/s (10^9), CPU in ms per GiB.
    sample.insert(
        "rate".into(),
        if secs > 0.0 { bytes / secs / 1e9 } else { 0.0 },
    );
    for k in ["server_cpu", "client_cpu"] {
        if let Some(v) = sample.get_mut(k) {
            *v /= 1000.0;
        }
    }
    Ok(sample)
}

/// The expected SHA-256 of the M5 stream, and the hashing speed outside any run.
fn stream_digest(size: usize) -> Res<String> {
    let p = Proc::role("sha256 (digest)", None, &["sha", &size.to_string()])?;
    p.expect("warm", Duration::from_secs(10))?;
    let line = p.expect("result", Duration::from_secs(120))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("digest="))
        .map(str::to_string)
        .ok_or_else(|| format!("no digest in {line:?}"))
}

/// M5: the runs, the section of the report and the goals; returns the number of failed runs.
pub(crate) fn section(
    o: &Opts,
    peers: &Peers,
    placements: &[Placement],
    whos: &[Who],
    out: &mut String,
    goals: &mut Vec<String>,
) -> usize {
    let mut failures = 0usize;
    let size = o.stream_size;
    let _ = writeln!(
        out,
        "\n## M5 — stream of {} MiB (higher is better)\n\n\
             The client times from its request (raw: connect + 8-byte size; VSOA: RPC \
             `/stream/download` then a TCP connection to the reply's tunid) to the last \
             byte, reading 256 KiB at a time and checking sampled bytes against the pattern \
             `i % 251`. With SHA-256, **both ends hash** on a second thread while the bytes \
             flow (raw: the server's blocking pool and a client thread; psvc: \
             `psvc::stream::copy` on both sides, the client through `Client::rpc` + \
             `Client::stream`), and the receiver's digest must equal the one computed \
             beforehand; the goal's bound is min(raw copy, SHA-256 alone). *SHA-256 alone* hashes \
             the same bytes with no I/O on the client CPU: the hashing bound. GB/s = 10^9 \
             bytes/s; CPU in ms per GiB.",
        size >> 20
    );
    match stream_digest(size) {
        Err(e) => {
            let _ = writeln!(out, "\n**M5 not run**: digest: {e}");
            failures += 1;
        }
        Ok(digest) => {
            for pl in placements {
                let label = format!("M5/{}", pl.label);
                let runs = interleave(&label, whos, o.rounds, "rate", |who| {
                    run_stream(who, pl, size, &digest, peers)
                });
                failures += count_failures(&runs);
                let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
                table(
                    out,
                    5,
                    &runs,
                    Col("GB/s", "rate"),
                    &[Col("s", "secs")],
                    "ms/GiB",
                );
                let p = med(&runs, Who::Psvc, "rate");
                let r = med(&runs, Who::Raw, "rate");
                let ps = med(&runs, Who::PsvcSha, "rate");
                let pr = med(&runs, Who::PsvcShaRecv, "rate");
                let rs = med(&runs, Who::RawSha, "rate");
                let rr = med(&runs, Who::RawShaRecv, "rate");
                let sha = med(&runs, Who::Sha, "rate");
                let bound = match (r, sha) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                };
                goals.push(format!(
                    "| M5 stream {}: ≥ 0.8× raw | {} GB/s vs {} GB/s = {} | {} |",
                    pl.label,
                    opt(p),
                    opt(r),
                    ratio(p, r),
                    verdict(div(p, r).map(|x| x >= 0.8))
                ));
                for (what, v) in [("at the receiver", pr), ("at both ends", ps)] {
                    goals.push(format!(
                            "| M5 stream + SHA-256 {what} {}: ≥ 0.8× min(raw, SHA-256) | {} GB/s vs min({}, {}) = {} | {} |",
                            pl.label,
                            opt(v),
                            opt(r),
                            opt(sha),
                            ratio(v, bound),
                            verdict(div(v, bound).map(|x| x >= 0.8))
                        ));
                }
                for (what, v, raw_same) in [("at the receiver", pr, rr), ("at both ends", ps, rs)] {
                    goals.push(format!(
                            "| M5 stream + SHA-256 {what} {} against the same work done raw (no target; informative) | {} GB/s vs {} GB/s = {} | – |",
                            pl.label,
                            opt(v),
                            opt(raw_same),
                            ratio(v, raw_same)
                        ));
                }
            }
        }
    }
    failures
}
