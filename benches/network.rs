//! Network benchmark harness: psvc's VSOA server against a raw tokio + `LengthDelimitedCodec`
//! echo server, with server and client in **separate processes** pinned with `taskset`.
//!
//! ```sh
//! cargo bench -p psvc-benches --bench network                      # full: 5 rounds × 2 s, N = 10,000
//! PSVC_BENCH_QUICK=1 cargo bench -p psvc-benches --bench network   # smoke: 1 round × 0.3 s, N = 500
//! cargo bench -p psvc-benches --bench network -- --only w1 --rounds 7
//! ```
//!
//! The driver re-executes this binary with `--role …` for every server and client process and
//! talks to them over their stdin/stdout (one line per message). Workloads:
//!
//! - **W1** PINGECHO round trip, closed loop, one connection, in placement A (server and client
//!   on CPU 0) and B (server on CPU 0, client on CPU 1). The same raw tokio client loop
//!   (`write_all` 20 bytes, `read_exact` 20 bytes) drives the psvc server (VSOA PINGECHO after
//!   the SERVINFO handshake) and the raw echo server (4-byte length prefix + 16-byte payload,
//!   20 bytes on the wire too), so the ratio measures the server. A third line drives the psvc
//!   server with psvc's own `Client::ping()` (client-side overhead included).
//! - **W6** memory per idle connection: a client process opens N connections (handshake done,
//!   or one echo for the baseline) and holds them; the server's `VmRSS` and live heap (counting
//!   allocator in this binary) are read before and 2 s after.
//!
//! The report is printed and written to `<target>/bench-results/network.md`.

use std::alloc::System;
use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Counting allocator: the server roles report `ALLOC.allocated()` (live heap bytes) on request.
/// Both server kinds run on the system allocator (glibc malloc) through it.
#[global_allocator]
static ALLOC: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // Roles report failures on stdout too, where the driver reads them.
    psvc_benches::role::main("network bench", role::run, driver::run)
}

/// Wire formats shared by the client and server roles.
mod wire {
    use bytes::BytesMut;
    use psvc::frame::{self, Flags, Frame, Kind, MAX_TCP_PACKET};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::Res;

    /// Bytes on the wire per request and per reply, for both servers.
    pub(crate) const PACKET: usize = 20;

    /// Which server a client talks to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Proto {
        /// VSOA v2: SERVINFO handshake, then 20-byte PINGECHO packets.
        Vsoa,
        /// `LengthDelimitedCodec` (4-byte big-endian length) with a 16-byte payload.
        Raw,
    }

    impl Proto {
        pub(crate) fn parse(s: &str) -> Res<Self> {
            match s {
                "vsoa" => Ok(Proto::Vsoa),
                "raw" => Ok(Proto::Raw),
                _ => Err(format!("unknown protocol {s:?}")),
            }
        }

        /// The request template; [`Proto::stamp`] writes the seqno into it.
        pub(crate) fn template(self) -> Res<[u8; PACKET]> {
            let mut out = [0u8; PACKET];
            match self {
                Proto::Vsoa => {
                    let mut b = BytesMut::new();
                    frame::encode(&Frame::new(Kind::PingEcho), &mut b, MAX_TCP_PACKET)
                        .map_err(|e| e.to_string())?;
                    if b.len() != PACKET {
                        return Err(format!("PINGECHO is {} bytes, not {PACKET}", b.len()));
                    }
                    out.copy_from_slice(&b);
                }
                Proto::Raw => out[..4].copy_from_slice(&((PACKET - 4) as u32).to_be_bytes()),
            }
            Ok(out)
        }

        /// Writes the sequence number into a request.
        #[inline]
        pub(crate) fn stamp(self, req: &mut [u8; PACKET], seq: u32) {
            // VSOA: header bytes 4..8; raw: the first 4 payload bytes.
            req[4..8].copy_from_slice(&seq.to_be_bytes());
        }

        /// Checks a reply against the request's sequence number.
        #[inline]
        pub(crate) fn verify(self, rep: &[u8; PACKET], seq: u32) -> Res<()> {
            let ok = rep[4..8] == seq.to_be_bytes()
                && match self {
                    Proto::Vsoa => {
                        rep[0] == frame::MAGIC_VERSION
                            && rep[1] == Kind::PingEcho.to_u8()
                            && rep[2] & Flags::REPLY.bits() != 0
                    }
                    Proto::Raw => rep[..4] == ((PACKET - 4) as u32).to_be_bytes(),
                };
            if ok {
                Ok(())
            } else {
                Err(format!("bad reply to seqno {seq}: {rep:02x?}"))
            }
        }

        /// What must happen on a new connection before it is in use: the VSOA SERVINFO
        /// handshake, or one echo for the raw baseline (so its buffers are allocated as they
        /// would be after use).
        pub(crate) async fn open(self, s: &mut TcpStream) -> Res<()> {
            match self {
                Proto::Vsoa => handshake(s).await,
                Proto::Raw => {
                    let mut req = self.template()?;
                    self.stamp(&mut req, 0);
                    let mut rep = [0u8; PACKET];
                    s.write_all(&req).await.map_err(|e| e.to_string())?;
                    s.read_exact(&mut rep).await.map_err(|e| e.to_string())?;
                    self.verify(&rep, 0)
                }
            }
        }
    }

    /// SERVINFO request (anonymous, as psvc's client sends it) and reply check.
    async fn handshake(s: &mut TcpStream) -> Res<()> {
        let mut b = BytesMut::new();
        frame::encode(&Frame::new(Kind::ServInfo), &mut b, MAX_TCP_PACKET)
            .map_err(|e| e.to_string())?;
        s.write_all(&b)
            .await
            .map_err(|e| format!("SERVINFO: {e}"))?;
        let mut hdr = [0u8; frame::HEADER_LEN];
        s.read_exact(&mut hdr)
            .await
            .map_err(|e| format!("SERVINFO reply: {e}"))?;
        let len = frame::check(&hdr, MAX_TCP_PACKET).map_err(|e| e.to_string())?;
        let mut buf = BytesMut::zeroed(len);
        buf[..frame::HEADER_LEN].copy_from_slice(&hdr);
        s.read_exact(&mut buf[frame::HEADER_LEN..])
            .await
            .map_err(|e| format!("SERVINFO reply body: {e}"))?;
        let reply = frame::decode(&mut buf, MAX_TCP_PACKET).map_err(|e| e.to_string())?;
        if reply.kind != Kind::ServInfo || !reply.is_reply() || !reply.status.is_ok() {
            return Err(format!("unexpected SERVINFO reply {reply:?}"));
        }
        Ok(())
    }
}

/// The processes the driver starts (`--role …`).
mod role {
    use std::io::BufRead;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use futures::{StreamExt, TryStreamExt};
    use hdrhistogram::Histogram;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::codec::{Framed, LengthDelimitedCodec};

    use psvc_benches::role::{self, RoleArgs, accept_loop, addr, io, linger, watchdog};

    use super::wire::{PACKET, Proto};
    use super::{ALLOC, Res};

    /// A server exits by itself after this long, whatever the driver does.
    const SERVER_LIFETIME: Duration = Duration::from_secs(900);
    /// Most round trips a ping client times in one run.
    const MAX_PINGS: u64 = 20_000_000;

    pub(crate) fn run(args: &[String]) -> Res<()> {
        let a = RoleArgs(args);
        let (arg, secs) = (|i| a.arg(i), |i| a.secs(i));
        match arg(0)? {
            // server KIND
            "server" => server(arg(1)?),
            // ping PROTO ADDR WARMUP_SECS SECS: raw tokio client, closed loop
            "ping" => ping_raw(Proto::parse(arg(1)?)?, addr(arg(2)?)?, secs(3)?, secs(4)?),
            // ping-client ADDR WARMUP_SECS SECS: psvc::client::Client::ping()
            "ping-client" => ping_client(arg(1)?, secs(2)?, secs(3)?),
            // hold PROTO ADDR N MAX_SECS
            "hold" => hold(
                Proto::parse(arg(1)?)?,
                addr(arg(2)?)?,
                arg(3)?.parse().map_err(|e| format!("N: {e}"))?,
                secs(4)?,
            ),
            // sizes: type sizes behind the per-connection heap (for the W6 notes)
            "sizes" => {
                sizes();
                Ok(())
            }
            other => Err(format!("unknown role {other:?}")),
        }
    }

    /// Sizes of the types one psvc session keeps, printed as `size NAME BYTES` lines.
    fn sizes() {
        use std::mem::size_of;
        type Session = psvc::socket::Session;
        let rows: [(&str, usize); 7] = [
            (
                "actix::dev::ContextFut<Session, Context<Session>> (the session task's future)",
                size_of::<actix::dev::ContextFut<Session, actix::Context<Session>>>(),
            ),
            (
                "actix::Context<Session>",
                size_of::<actix::Context<Session>>(),
            ),
            (
                "actix::dev::Mailbox<Session>",
                size_of::<actix::dev::Mailbox<Session>>(),
            ),
            ("psvc::socket::Session", size_of::<Session>()),
            (
                "psvc::socket::SessionRef",
                size_of::<psvc::socket::SessionRef>(),
            ),
            ("psvc::frame::Frame", size_of::<psvc::frame::Frame>()),
            ("tokio::net::TcpStream", size_of::<TcpStream>()),
        ];
        for (name, size) in rows {
            println!("size {size} {name}");
        }
        println!("sizes done");
    }

    /// Answers `heap` on stdin with the live heap; exits the process on EOF (the driver
    /// closed the pipe or died) or after [`SERVER_LIFETIME`].
    fn control_thread() {
        role::control_thread(SERVER_LIFETIME, |line| {
            if line == "heap" {
                println!("heap {}", ALLOC.allocated());
            }
        });
    }

    fn server(kind: &str) -> Res<()> {
        match kind {
            "psvc" => {
                let sys = actix::System::new();
                sys.block_on(async {
                    let handle = psvc::socket::Server::new(psvc::socket::Auth::anonymous())
                        .start("127.0.0.1:0")
                        .await
                        .map_err(io("psvc server"))?;
                    control_thread();
                    println!("addr {}", handle.local_addr());
                    tokio::time::sleep(SERVER_LIFETIME).await;
                    Ok(())
                })
            }
            "raw" => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io("runtime"))?
                .block_on(raw_server()),
            "raw-mt" => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(io("runtime"))?
                .block_on(raw_server()),
            other => Err(format!("unknown server {other:?}")),
        }
    }

    /// The baseline: `Framed<TcpStream, LengthDelimitedCodec>`, split, every frame sent back
    /// (`forward` flushes when the input runs dry).
    async fn raw_server() -> Res<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
        control_thread();
        println!("addr {}", listener.local_addr().map_err(io("local_addr"))?);
        accept_loop(listener, SERVER_LIFETIME, |stream| {
            tokio::spawn(async move {
                let (sink, stream) = Framed::new(stream, LengthDelimitedCodec::new()).split();
                let _ = stream.map_ok(BytesMut::freeze).forward(sink).await;
            });
        })
        .await
    }

    struct Timed {
        hist: Histogram<u64>,
        count: u64,
        secs: f64,
    }

    impl Timed {
        fn new() -> Res<Self> {
            Ok(Self {
                hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| format!("histogram: {e}"))?,
                count: 0,
                secs: 0.0,
            })
        }

        /// Records one round trip `t0..t1` of the timed window that began at
        /// `from`; `true` once the window (ending at `end`) or the count is full.
        fn record(&mut self, t0: Instant, t1: Instant, from: Instant, end: Instant) -> bool {
            self.hist.saturating_record((t1 - t0).as_nanos() as u64);
            self.count += 1;
            let done = t1 >= end || self.count >= MAX_PINGS;
            if done {
                self.secs = (t1 - from).as_secs_f64();
            }
            done
        }

        fn print(&self) {
            let q = |q: f64| self.hist.value_at_quantile(q);
            println!(
                "result p50={} p99={} p999={} max={} count={} secs={:.3}",
                q(0.5),
                q(0.99),
                q(0.999),
                self.hist.max(),
                self.count,
                self.secs
            );
        }
    }

    /// Tells the driver that the timed window starts (it samples CPU times then).
    fn warm() {
        println!("warm");
    }

    /// Closed-loop round trips with a raw tokio socket: `write_all` 20 bytes, `read_exact` 20
    /// bytes, one connection, current_thread runtime. The same code for both servers.
    fn ping_raw(proto: Proto, addr: SocketAddr, warmup: Duration, secs: Duration) -> Res<()> {
        watchdog(warmup + secs + Duration::from_secs(60));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("runtime"))?;
        let timed = rt.block_on(async move {
            let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
            s.set_nodelay(true).map_err(io("nodelay"))?;
            proto.open(&mut s).await?;
            let mut req = proto.template()?;
            let mut rep = [0u8; PACKET];
            let mut timed = Timed::new()?;
            let start = Instant::now();
            let (warm_end, end) = (start + warmup, start + warmup + secs);
            let mut measured_from = None;
            let mut seq: u32 = 1;
            loop {
                proto.stamp(&mut req, seq);
                let mut t0 = Instant::now();
                if measured_from.is_none() && t0 >= warm_end {
                    warm();
                    t0 = Instant::now();
                    measured_from = Some(t0);
                }
                s.write_all(&req).await.map_err(io("write"))?;
                s.read_exact(&mut rep).await.map_err(io("read"))?;
                let t1 = Instant::now();
                proto.verify(&rep, seq)?;
                seq = seq.wrapping_add(1);
                if let Some(from) = measured_from
                    && timed.record(t0, t1, from, end)
                {
                    break;
                }
            }
            Ok::<_, String>(timed)
        })?;
        timed.print();
        linger();
        Ok(())
    }

    /// Closed-loop `psvc::client::Client::ping()` inside an actix System.
    fn ping_client(addr: &str, warmup: Duration, secs: Duration) -> Res<()> {
        watchdog(warmup + secs + Duration::from_secs(60));
        let options = psvc::client::ClientOptions::new(addr)
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(5));
        let sys = actix::System::new();
        let timed = sys.block_on(async move {
            let client = psvc::client::Client::connect(options)
                .await
                .map_err(io("connect"))?;
            let mut timed = Timed::new()?;
            let start = Instant::now();
            let (warm_end, end) = (start + warmup, start + warmup + secs);
            let mut measured_from = None;
            loop {
                let mut t0 = Instant::now();
                if measured_from.is_none() && t0 >= warm_end {
                    warm();
                    t0 = Instant::now();
                    measured_from = Some(t0);
                }
                client.ping().await.map_err(io("ping"))?;
                let t1 = Instant::now();
                if let Some(from) = measured_from
                    && timed.record(t0, t1, from, end)
                {
                    break;
                }
            }
            client.close();
            Ok::<_, String>(timed)
        })?;
        timed.print();
        linger();
        Ok(())
    }

    /// Opens `n` connections one after the other, readies each (handshake or one echo), says
    /// `ready`, and holds them until stdin closes (or `max` passes).
    fn hold(proto: Proto, addr: SocketAddr, n: usize, max: Duration) -> Res<()> {
        watchdog(max);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("runtime"))?;
        let conns = rt.block_on(async move {
            let mut conns = Vec::with_capacity(n);
            for i in 0..n {
                let mut s = TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect #{i}: {e}"))?;
                s.set_nodelay(true).map_err(io("nodelay"))?;
                proto
                    .open(&mut s)
                    .await
                    .map_err(|e| format!("connection #{i}: {e}"))?;
                conns.push(s);
            }
            Ok::<_, String>(conns)
        })?;
        println!("ready {}", conns.len());
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        drop(conns);
        Ok(())
    }
}

/// The driver: runs the roles, aggregates, prints and writes the report.
mod driver {
    use super::*;
    use psvc_benches::host::{Host, command_line, load_average, locked_version};
    use psvc_benches::process::{CpuMark, Placement, Proc, placements};
    use psvc_benches::report::{
        Flags, environment_head, fmt_num, median, opt, quick_mode, ratio, write_report,
    };

    const USAGE: &str = "\
usage: cargo bench -p psvc-benches --bench network [-- OPTIONS]
  --quick            1 round of 0.3 s, N = 500 (same as PSVC_BENCH_QUICK=1)
  --rounds N         W1 rounds per placement (default 5)
  --secs S           timed seconds per W1 run (default 2)
  --conns N          W6 connections (default 10000)
  --mem-rounds N     W6 rounds (default 3)
  --only w1|w6       one workload
  --no-pin           no taskset (placements then mean nothing)
  --no-write         print the report only
";

    #[derive(Debug, Clone)]
    struct Opts {
        quick: bool,
        rounds: usize,
        warmup: Duration,
        secs: Duration,
        conns: usize,
        mem_rounds: usize,
        w1: bool,
        w6: bool,
        pin: bool,
        write: bool,
    }

    impl Opts {
        fn parse(args: &[String]) -> Res<Self> {
            // Without `--bench` (e.g. `cargo test --all-targets`) run the quick mode, unwritten.
            let (quick, smoke) = quick_mode(args);
            let mut o = Opts {
                quick,
                rounds: if quick { 1 } else { 5 },
                warmup: Duration::from_millis(if quick { 100 } else { 500 }),
                secs: Duration::from_millis(if quick { 300 } else { 2000 }),
                conns: if quick { 500 } else { 10_000 },
                mem_rounds: if quick { 1 } else { 3 },
                w1: true,
                w6: true,
                pin: true,
                write: !smoke,
            };
            let mut flags = Flags::new(args, USAGE);
            while let Some(a) = flags.next() {
                match a {
                    "--bench" | "--quick" => {}
                    "--rounds" => o.rounds = (flags.num(a)? as usize).max(1),
                    "--mem-rounds" => o.mem_rounds = (flags.num(a)? as usize).max(1),
                    "--secs" => o.secs = Duration::from_secs_f64(flags.num(a)?.min(60.0)),
                    "--conns" => o.conns = (flags.num(a)? as usize).clamp(1, 16_000),
                    "--only" => match flags.value(a)?.as_str() {
                        "w1" => o.w6 = false,
                        "w6" => o.w1 = false,
                        other => return Err(format!("--only w1|w6, not {other}")),
                    },
                    "--no-pin" => o.pin = false,
                    "--no-write" => o.write = false,
                    "-h" | "--help" => return Err(USAGE.to_string()),
                    other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
                }
            }
            Ok(o)
        }
    }

    // ---------------------------------------------------------------- processes

    /// A role process (one malloc arena: the servers are single-threaded apart from the stdin
    /// control thread, which must not get an arena of its own); killed after 500 ms when
    /// dropped, unless it exited on EOF.
    fn spawn(name: &str, cpu: Option<usize>, role: &[&str]) -> Res<Proc> {
        Proc::role_env(name, cpu, role, &[("MALLOC_ARENA_MAX", "1".to_string())])
            .map(|p| p.with_grace(Duration::from_millis(500)))
    }

    /// Live heap bytes of a server role.
    fn heap(p: &mut Proc) -> Res<u64> {
        p.send("heap")?;
        let v = p.expect("heap", Duration::from_secs(10))?;
        v.parse().map_err(|e| format!("heap {v:?}: {e}"))
    }

    // ---------------------------------------------------------------- W1

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Pinger {
        /// Raw client → raw current_thread server.
        Raw,
        /// Raw client → psvc server.
        Psvc,
        /// psvc `Client::ping()` → psvc server.
        PsvcClient,
        /// Raw client → raw multi_thread(2) server.
        RawMt,
    }

    impl Pinger {
        const ALL: [Pinger; 4] = [Pinger::Raw, Pinger::Psvc, Pinger::PsvcClient, Pinger::RawMt];

        fn name(self) -> &'static str {
            match self {
                Pinger::Raw => "raw tokio (current_thread)",
                Pinger::Psvc => "**psvc server**",
                Pinger::PsvcClient => "psvc Client::ping → psvc server",
                Pinger::RawMt => "raw tokio (multi_thread, 2 workers)",
            }
        }

        fn short(self) -> &'static str {
            match self {
                Pinger::Raw => "raw",
                Pinger::Psvc => "psvc",
                Pinger::PsvcClient => "psvc-client",
                Pinger::RawMt => "raw-mt",
            }
        }

        fn server(self) -> &'static str {
            match self {
                Pinger::Raw => "raw",
                Pinger::Psvc | Pinger::PsvcClient => "psvc",
                Pinger::RawMt => "raw-mt",
            }
        }

        fn note(self) -> &'static str {
            match self {
                Pinger::Raw => {
                    "Framed<LengthDelimitedCodec> split + forward; raw tokio client (write_all/read_exact)"
                }
                Pinger::Psvc => {
                    "Server::new(Auth::anonymous()), actix System; raw tokio client, SERVINFO then PINGECHO"
                }
                Pinger::PsvcClient => {
                    "client actor in its own actix System: includes the client's overhead"
                }
                Pinger::RawMt => "same echo as raw on a 2-worker runtime (the research's setup)",
            }
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct PingSample {
        p50: f64,
        p99: f64,
        p999: f64,
        max: f64,
        rate: f64,
        /// Round trips timed.
        count: f64,
        /// Server process CPU time per round trip over the timed window, µs.
        server_cpu: f64,
        /// Client process CPU time per round trip, µs.
        client_cpu: f64,
        /// CPU time used by anything else on the machine during the window, % of one CPU.
        other_pct: f64,
    }

    fn parse_ping(line: &str) -> Res<PingSample> {
        let get = |key: &str| -> Res<f64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("no {key} in {line:?}"))?
                .parse::<f64>()
                .map_err(|e| format!("{key}: {e}"))
        };
        let secs = get("secs")?;
        Ok(PingSample {
            p50: get("p50")? / 1000.0,
            p99: get("p99")? / 1000.0,
            p999: get("p999")? / 1000.0,
            max: get("max")? / 1000.0,
            rate: if secs > 0.0 {
                get("count")? / secs
            } else {
                0.0
            },
            count: get("count")?,
            server_cpu: 0.0,
            client_cpu: 0.0,
            other_pct: 0.0,
        })
    }

    fn run_ping(
        p: Pinger,
        server_cpu: Option<usize>,
        client_cpu: Option<usize>,
        o: &Opts,
    ) -> Res<PingSample> {
        let server = spawn(
            &format!("{} server", p.short()),
            server_cpu,
            &["server", p.server()],
        )?;
        let addr = server.expect("addr", Duration::from_secs(10))?;
        let (w, s) = (
            format!("{}", o.warmup.as_secs_f64()),
            format!("{}", o.secs.as_secs_f64()),
        );
        let role: Vec<&str> = match p {
            Pinger::Raw | Pinger::RawMt => vec!["ping", "raw", &addr, &w, &s],
            Pinger::Psvc => vec!["ping", "vsoa", &addr, &w, &s],
            Pinger::PsvcClient => vec!["ping-client", &addr, &w, &s],
        };
        let client = spawn(&format!("{} client", p.short()), client_cpu, &role)?;
        client.expect("warm", o.warmup + Duration::from_secs(20))?;
        let m0 = CpuMark::take(Some(server.pid()), client.pid());
        let line = client.expect("result", o.secs + Duration::from_secs(20))?;
        let m1 = CpuMark::take(Some(server.pid()), client.pid());
        drop(client);
        drop(server);
        let mut sample = parse_ping(&line)?;
        let count = sample.count;
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1000.0 / count.max(1.0);
        sample.server_cpu = us(m0.server, m1.server);
        sample.client_cpu = us(m0.client, m1.client);
        let others = m1.others.saturating_sub(m0.others) as f64;
        let window = (m1.at - m0.at).as_nanos() as f64;
        sample.other_pct = if window > 0.0 {
            others / window * 100.0
        } else {
            0.0
        };
        Ok(sample)
    }

    type PingRuns = Vec<(Pinger, Vec<Res<PingSample>>)>;

    fn w1(o: &Opts, placements: &[Placement]) -> Vec<PingRuns> {
        let mut all = Vec::new();
        for pl in placements {
            let mut runs: PingRuns = Pinger::ALL.iter().map(|&p| (p, Vec::new())).collect();
            // baseline → psvc → psvc client → raw-mt → baseline → …, closed by a baseline.
            let mut order: Vec<Pinger> = Vec::new();
            for _ in 0..o.rounds {
                order.extend(Pinger::ALL);
            }
            order.push(Pinger::Raw);
            let total = order.len();
            for (i, p) in order.into_iter().enumerate() {
                let r = run_ping(p, pl.server, pl.client, o);
                match &r {
                    Ok(s) => eprintln!(
                        "[W1/{} {}/{}] {:<12} p50 {:>7.2} µs  p99 {:>7.2} µs  {:>9.0} rt/s  \
                         CPU µs/rt server {:.2} client {:.2}  other {:.1} %",
                        pl.label,
                        i + 1,
                        total,
                        p.short(),
                        s.p50,
                        s.p99,
                        s.rate,
                        s.server_cpu,
                        s.client_cpu,
                        s.other_pct
                    ),
                    Err(e) => eprintln!(
                        "[W1/{} {}/{}] {} FAILED: {e}",
                        pl.label,
                        i + 1,
                        total,
                        p.short()
                    ),
                }
                if let Some((_, v)) = runs.iter_mut().find(|(q, _)| *q == p) {
                    v.push(r);
                }
            }
            all.push(runs);
        }
        all
    }

    // ---------------------------------------------------------------- W6

    #[derive(Debug, Clone, Copy, Default)]
    struct MemSample {
        /// VmRSS before, kB.
        rss0: f64,
        /// VmRSS delta per connection 2 s after `ready`, bytes.
        rss_per: f64,
        /// Live heap delta per connection 2 s after, bytes.
        heap_per: f64,
        /// Same, 7 s after `ready` (past psvc's 5 s handshake timers), if measured.
        heap_late_per: Option<f64>,
        rss_late_per: Option<f64>,
        /// `/proc/net/sockstat` TCP mem pages delta (both ends), bytes per connection.
        tcp_mem_per: f64,
        /// `/proc/meminfo` Slab delta (whole machine, both ends), bytes per connection.
        slab_per: f64,
        /// Seconds to open and ready all connections.
        open_secs: f64,
    }

    fn status_kb(pid: u32, key: &str) -> Res<f64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
        field_kb(&s, key).ok_or_else(|| format!("no {key} in /proc/{pid}/status"))
    }

    fn field_kb(text: &str, key: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    fn tcp_mem_pages() -> f64 {
        std::fs::read_to_string("/proc/net/sockstat")
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("TCP:")).and_then(|l| {
                    let mut it = l.split_whitespace();
                    while let Some(w) = it.next() {
                        if w == "mem" {
                            return it.next().and_then(|v| v.parse().ok());
                        }
                    }
                    None
                })
            })
            .unwrap_or(0.0)
    }

    fn slab_kb() -> f64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| field_kb(&s, "Slab"))
            .unwrap_or(0.0)
    }

    fn run_mem(
        server: &str,
        o: &Opts,
        server_cpu: Option<usize>,
        client_cpu: Option<usize>,
    ) -> Res<MemSample> {
        let proto = if server == "psvc" { "vsoa" } else { "raw" };
        let mut srv = spawn(&format!("{server} server"), server_cpu, &["server", server])?;
        let addr = srv.expect("addr", Duration::from_secs(10))?;
        thread::sleep(Duration::from_millis(300));
        let pid = srv.pid();
        let rss0 = status_kb(pid, "VmRSS")?;
        let heap0 = heap(&mut srv)? as f64;
        let (tcp0, slab0) = (tcp_mem_pages(), slab_kb());
        let n = o.conns;
        let t0 = Instant::now();
        let client = spawn(
            &format!("{server} holder"),
            client_cpu,
            &["hold", proto, &addr, &n.to_string(), "180"],
        )?;
        let ready = client.expect("ready", Duration::from_secs(150))?;
        let open_secs = t0.elapsed().as_secs_f64();
        if ready.trim() != n.to_string() {
            return Err(format!("holder readied {ready} connections, not {n}"));
        }
        thread::sleep(Duration::from_secs(2));
        let nf = n as f64;
        let rss1 = status_kb(pid, "VmRSS")?;
        let heap1 = heap(&mut srv)? as f64;
        let (tcp1, slab1) = (tcp_mem_pages(), slab_kb());
        let mut s = MemSample {
            rss0,
            rss_per: (rss1 - rss0) * 1024.0 / nf,
            heap_per: (heap1 - heap0) / nf,
            tcp_mem_per: (tcp1 - tcp0) * 4096.0 / nf,
            slab_per: (slab1 - slab0) * 1024.0 / nf,
            open_secs,
            ..MemSample::default()
        };
        if !o.quick {
            thread::sleep(Duration::from_secs(5));
            s.heap_late_per = Some((heap(&mut srv)? as f64 - heap0) / nf);
            s.rss_late_per = Some((status_kb(pid, "VmRSS")? - rss0) * 1024.0 / nf);
        }
        drop(client);
        drop(srv);
        Ok(s)
    }

    fn w6(
        o: &Opts,
        server_cpu: Option<usize>,
        client_cpu: Option<usize>,
    ) -> Vec<(&'static str, Vec<Res<MemSample>>)> {
        let mut out: Vec<(&'static str, Vec<Res<MemSample>>)> =
            vec![("raw", vec![]), ("psvc", vec![])];
        for round in 0..o.mem_rounds {
            for (server, runs) in &mut out {
                let r = run_mem(server, o, server_cpu, client_cpu);
                match &r {
                    Ok(s) => eprintln!(
                        "[W6 {}/{}] {:<5} N={} RSS +{:.0} B/conn, heap +{:.0} B/conn (opened in {:.1} s)",
                        round + 1,
                        o.mem_rounds,
                        server,
                        o.conns,
                        s.rss_per,
                        s.heap_per,
                        s.open_secs
                    ),
                    Err(e) => eprintln!("[W6 {}/{}] {server} FAILED: {e}", round + 1, o.mem_rounds),
                }
                runs.push(r);
                // Let the closed sockets' TIME_WAIT and the slab settle between runs.
                thread::sleep(Duration::from_millis(500));
            }
        }
        out
    }

    // ---------------------------------------------------------------- report

    fn environment(o: &Opts, pinned: bool, elapsed: Duration, load: &str) -> String {
        let unknown = || "unknown".to_string();
        let host = Host::read();
        let nofile = command_line("sh", &["-c", "ulimit -H -n"]).unwrap_or_else(unknown);
        let v = locked_version;
        let mut s = environment_head(&host, elapsed, "", o.quick, load);
        let _ = writeln!(
            s,
            "- rustc: {}; profile: bench (release); allocator: system malloc (glibc) behind a \
             counting wrapper (`cap`) in every process, `MALLOC_ARENA_MAX=1` in every role process",
            host.rustc
        );
        let _ = writeln!(
            s,
            "- crates: actix {} (actix-rt {}), tokio {}, tokio-util {}, bytes {}, hdrhistogram {}",
            v("actix"),
            v("actix-rt"),
            v("tokio"),
            v("tokio-util"),
            v("bytes"),
            v("hdrhistogram")
        );
        let _ = writeln!(
            s,
            "- processes: every server and client is its own process (this binary re-executed \
             with `--role`), started as `taskset -c CPU sh -c 'ulimit -n <hard>; exec …'` \
             (hard RLIMIT_NOFILE {nofile}); {}; all sockets on 127.0.0.1, TCP_NODELAY on both ends",
            if pinned { "pinned" } else { "**UNPINNED**" }
        );
        s
    }

    fn render_w1(
        o: &Opts,
        placements: &[Placement],
        w1: &[PingRuns],
        out: &mut String,
        goals: &mut Vec<String>,
    ) {
        let _ = writeln!(
            out,
            "\n## W1 — PINGECHO round trip, closed loop, 1 connection (lower is better)\n\n\
             {} rounds per placement, order raw → psvc → psvc client → raw-mt in every round and \
             a closing raw run (each psvc run sits between two baseline runs); each run: new \
             server and client processes, {:.1} s warm-up then {:.1} s timed, every round trip \
             recorded (HdrHistogram, 3 significant digits). Median over rounds of each run's \
             p50 / p99 / p99.9 and round trips per second. 20 bytes each way on the wire for \
             every server: VSOA PINGECHO header (type 0xff, seqno incrementing, reply checked), \
             or a 4-byte length prefix + 16-byte payload (seqno echoed and checked) for the \
             baseline. Both servers run on one thread (actix `System` / tokio `current_thread`); \
             the ping clients are tokio `current_thread` (raw) or an actix `System` (psvc client). \
             *paired ÷ raw p50*: each run's p50 over the mean of the two baseline runs around \
             it, median over rounds. *CPU µs/rt*: CPU time of the server / client process (all \
             threads, `/proc/<pid>/task/*/schedstat`) over the timed window ÷ round trips. \
             *other CPU %*: CPU time of every other task on the machine (kernel threads \
             included, this driver excluded) over the window, in % of one CPU; more than a few \
             % means something else was running. *best ÷ raw best p50*: lowest p50 \
             over the rounds ÷ the baseline's lowest. On this VM the same-CPU round trip \
             (placement A) is bimodal from one process pair to the next: about 9 µs or about 13 \
             µs, for every server alike, fixed for the life of the pair, and the CPU time per \
             round trip moves with it (about 5 vs 7 µs: the vCPU runs slower, the code path and \
             context-switch pattern are the same). A median of 5 rounds can land on either \
             mode, so a ratio of medians may compare different modes: read the min–max column \
             and the best-round ratio alongside it.",
            o.rounds,
            o.warmup.as_secs_f64(),
            o.secs.as_secs_f64()
        );
        for (pl, runs) in placements.iter().zip(w1) {
            let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
            out.push_str(
                "| server | p50 µs | p50 min–max | p99 µs | p99.9 µs | max µs | rt/s | ÷ raw p50 | \
                 paired ÷ raw p50 | best ÷ raw best p50 | ÷ raw p99 | server CPU µs/rt | client CPU µs/rt | other CPU % | \
                 runs ok | notes |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
            );
            let stat = |p: Pinger| {
                let v: Vec<PingSample> = runs
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, r)| r.iter().filter_map(|x| x.as_ref().ok().copied()).collect())
                    .unwrap_or_default();
                v
            };
            let med =
                |v: &[PingSample], f: fn(&PingSample) -> f64| median(v.iter().map(f).collect());
            let best = |v: &[PingSample]| v.iter().map(|s| s.p50).min_by(f64::total_cmp);
            let raw = stat(Pinger::Raw);
            let (raw50, raw99) = (med(&raw, |s| s.p50), med(&raw, |s| s.p99));
            for &p in &Pinger::ALL {
                let v = stat(p);
                let total = runs
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(0, |(_, r)| r.len());
                let failure = runs
                    .iter()
                    .find(|(q, _)| *q == p)
                    .and_then(|(_, r)| r.iter().find_map(|x| x.as_ref().err().cloned()));
                let (p50, p99) = (med(&v, |s| s.p50), med(&v, |s| s.p99));
                let lo = v.iter().map(|s| s.p50).fold(f64::INFINITY, f64::min);
                let hi = v.iter().map(|s| s.p50).fold(f64::NEG_INFINITY, f64::max);
                let mut note = p.note().to_string();
                if let Some(e) = failure {
                    let _ = write!(note, "; failure: {e}");
                }
                // Each run of round i sits between baseline runs i and i + 1: its p50 over
                // their mean, median over rounds (only when no run failed).
                let all_ok = |p: Pinger| {
                    runs.iter()
                        .find(|(q, _)| *q == p)
                        .is_some_and(|(_, r)| r.iter().all(Result::is_ok))
                };
                let paired = if all_ok(p) && all_ok(Pinger::Raw) && raw.len() == v.len() + 1 {
                    median(
                        v.iter()
                            .enumerate()
                            .map(|(i, s)| s.p50 / ((raw[i].p50 + raw[i + 1].p50) / 2.0))
                            .collect(),
                    )
                } else {
                    None
                };
                let _ = writeln!(
                    out,
                    "| {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} | {} |",
                    p.name(),
                    opt(p50),
                    if v.is_empty() {
                        "–".to_string()
                    } else {
                        format!("{}–{}", fmt_num(lo), fmt_num(hi))
                    },
                    opt(p99),
                    opt(med(&v, |s| s.p999)),
                    opt(med(&v, |s| s.max)),
                    opt(med(&v, |s| s.rate)),
                    ratio(p50, raw50),
                    paired.map_or_else(|| "–".to_string(), |r| format!("{r:.2}×")),
                    ratio(best(&v), best(&raw)),
                    ratio(p99, raw99),
                    opt(med(&v, |s| s.server_cpu)),
                    opt(med(&v, |s| s.client_cpu)),
                    opt(med(&v, |s| s.other_pct)),
                    v.len(),
                    total,
                    note.replace('|', "/")
                );
            }
            if raw.len() >= 2 {
                let lo = raw.iter().map(|s| s.p50).fold(f64::INFINITY, f64::min);
                let hi = raw.iter().map(|s| s.p50).fold(f64::NEG_INFINITY, f64::max);
                let spread = raw50.map_or(0.0, |m| (hi - lo) / m * 100.0);
                let _ = writeln!(
                    out,
                    "\nBaseline p50 spread over its {} runs: {}–{} µs ({spread:.0} % of the median){}",
                    raw.len(),
                    fmt_num(lo),
                    fmt_num(hi),
                    if spread > 10.0 {
                        " — **noisy** (> 10 %): read the ratios with care"
                    } else {
                        ""
                    }
                );
            }
            let all: Vec<PingSample> = Pinger::ALL.iter().flat_map(|&p| stat(p)).collect();
            if let Some(other) = med(&all, |s| s.other_pct)
                && other > 5.0
            {
                let _ = writeln!(
                    out,
                    "\n**Other processes used {other:.0} % of a CPU** (median over the timed \
                     windows): the machine was not quiet, absolute figures are inflated."
                );
            }
            let psvc = stat(Pinger::Psvc);
            let p50 = med(&psvc, |s| s.p50);
            let verdict = match (p50, raw50) {
                (Some(a), Some(b)) if b > 0.0 => {
                    if a / b <= 1.25 {
                        "met"
                    } else {
                        "MISSED"
                    }
                }
                _ => "–",
            };
            goals.push(format!(
                "| W1 p50 ≤ 1.25× raw, placement {} | medians {} µs vs {} µs: **{}** (p99 {}); \
                 best rounds {} µs vs {} µs: **{}** | {verdict} |",
                pl.label,
                opt(p50),
                opt(raw50),
                ratio(p50, raw50),
                ratio(med(&psvc, |s| s.p99), raw99),
                opt(best(&psvc)),
                opt(best(&raw)),
                ratio(best(&psvc), best(&raw))
            ));
        }
    }

    fn render_w6(
        o: &Opts,
        w6: &[(&'static str, Vec<Res<MemSample>>)],
        placement: &str,
        out: &mut String,
        goals: &mut Vec<String>,
    ) {
        let _ = writeln!(
            out,
            "\n## W6 — memory per idle connection, N = {} (lower is better)\n\n\
             {placement}. The holder process opens N connections one after the other \
             (psvc: SERVINFO handshake on each; raw: one 20-byte frame echoed on each, so its \
             buffers are allocated as after use), then keeps them open and idle. Server `VmRSS` (from `/proc/<pid>/status`) \
             and live heap (the counting allocator inside the server process) are read before the \
             first connection and 2 s after the last one is ready{}; deltas ÷ N. Kernel columns \
             are machine-wide deltas over the same interval, for **both ends** of each \
             connection (client and server sockets): TCP `mem` pages from `/proc/net/sockstat` \
             (queued data only) and `Slab` from `/proc/meminfo` (socket, inode, file, epoll \
             objects; noisy when other work runs). Median of {} round(s).\n",
            fmt_num(o.conns as f64),
            if o.quick {
                ""
            } else {
                ", and again 7 s after (past psvc's 5 s handshake timers)"
            },
            o.mem_rounds
        );
        out.push_str(
            "| server | RSS KiB/conn | heap B/conn | heap B/conn @7 s | RSS KiB/conn @7 s | RSS before MiB | kernel slab KiB/conn (both ends) | TCP mem B/conn | open N s | runs ok |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let mut meds = Vec::new();
        for (server, runs) in w6 {
            let ok: Vec<MemSample> = runs
                .iter()
                .filter_map(|r| r.as_ref().ok().copied())
                .collect();
            let m = |f: fn(&MemSample) -> f64| median(ok.iter().map(f).collect());
            let mo = |f: fn(&MemSample) -> Option<f64>| median(ok.iter().filter_map(f).collect());
            let rss = m(|s| s.rss_per / 1024.0);
            let heap = m(|s| s.heap_per);
            meds.push((*server, rss, heap));
            let failure = runs.iter().find_map(|r| r.as_ref().err().cloned());
            let _ = writeln!(
                out,
                "| {} | **{}** | {} | {} | {} | {} | {} | {} | {} | {}/{}{} |",
                if *server == "psvc" {
                    "**psvc server**"
                } else {
                    "raw tokio Framed<LengthDelimitedCodec> (current_thread)"
                },
                opt(rss),
                opt(heap),
                opt(mo(|s| s.heap_late_per)),
                opt(mo(|s| s.rss_late_per.map(|v| v / 1024.0))),
                opt(m(|s| s.rss0 / 1024.0)),
                opt(m(|s| s.slab_per / 1024.0)),
                opt(m(|s| s.tcp_mem_per)),
                opt(m(|s| s.open_secs)),
                ok.len(),
                runs.len(),
                failure
                    .map(|e| format!(" ({})", e.replace('|', "/")))
                    .unwrap_or_default()
            );
        }
        let get = |name: &str| {
            meds.iter()
                .find(|(s, _, _)| *s == name)
                .and_then(|(_, r, _)| *r)
        };
        let psvc = get("psvc");
        let raw = get("raw");
        let _ = writeln!(
            out,
            "\nAgainst the figures measured for other servers (userspace RSS per idle connection, \
             same kind of machine): VSOA Python server **1.1 KiB**, VSOA Node (C core) **6.0 KiB** \
             (issue); raw tokio `Framed` 8.9 KiB at 9,000 connections and nats-server 20.4 KiB \
             (research §3.7). psvc this run: **{} KiB** = {} the raw baseline of this run, \
             {} VSOA Python, {} VSOA Node.",
            opt(psvc),
            ratio(psvc, raw),
            ratio(psvc, Some(1.1)),
            ratio(psvc, Some(6.0)),
        );
        let sizes = type_sizes();
        if !sizes.is_empty() {
            out.push_str(
                "\nType sizes in this build (`size_of`; the session task's heap cell is this \
                 future plus tokio's task header and trailer, rounded up to 128-byte lines):\n\n\
                 | type | bytes |\n|---|---:|\n",
            );
            for (n, name) in &sizes {
                let _ = writeln!(out, "| `{name}` | {n} |");
            }
        }
        goals.push(format!(
            "| W6 RSS per idle connection below the VSOA peers (Python 1.1 KiB, Node 6.0 KiB) | {} KiB ({} raw) | {} |",
            opt(psvc),
            ratio(psvc, raw),
            match psvc {
                Some(v) if v <= 1.1 => "met",
                Some(v) if v <= 6.0 => "below Node, above Python",
                Some(_) => "MISSED",
                None => "–",
            }
        ));
    }

    /// `size NAME BYTES` lines of the `sizes` role.
    fn type_sizes() -> Vec<(usize, String)> {
        let Ok(exe) = std::env::current_exe() else {
            return Vec::new();
        };
        let Ok(out) = Command::new(exe)
            .args(["--role", "sizes"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
        else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("size "))
            .filter_map(|l| l.split_once(' '))
            .filter_map(|(n, name)| n.parse().ok().map(|n| (n, name.to_string())))
            .collect()
    }

    pub(crate) fn run(args: &[String]) -> Res<()> {
        let o = Opts::parse(args)?;
        let started = Instant::now();
        let load_before = load_average();
        let (pinned, placements) = placements(
            o.pin,
            "server and client on CPU 0 (`taskset -c 0` both)",
            None,
        );
        eprintln!(
            "network bench: {} mode; W1 {} round(s) × {:.1} s per placement ({}); W6 N = {}",
            if o.quick { "QUICK" } else { "full" },
            o.rounds,
            o.secs.as_secs_f64(),
            placements
                .iter()
                .map(|p| p.label)
                .collect::<Vec<_>>()
                .join(", "),
            o.conns
        );
        let w1_runs = if o.w1 {
            w1(&o, &placements)
        } else {
            Vec::new()
        };
        let (mem_server, mem_client) = match placements.last() {
            Some(p) => (p.server, p.client),
            None => (None, None),
        };
        let w6_runs = if o.w6 {
            w6(&o, mem_server, mem_client)
        } else {
            Vec::new()
        };
        let load = format!("{load_before} before, {} after", load_average());

        let mut out = String::from("# psvc network benchmarks\n\n");
        out.push_str(&environment(&o, pinned, started.elapsed(), &load));
        let mut goals = Vec::new();
        if o.w1 {
            render_w1(&o, &placements, &w1_runs, &mut out, &mut goals);
        }
        if o.w6 {
            let pl = match (mem_server, mem_client) {
                (Some(s), Some(c)) => format!("Server on CPU {s}, holder (client) on CPU {c}"),
                _ => "Unpinned".to_string(),
            };
            render_w6(&o, &w6_runs, &pl, &mut out, &mut goals);
        }
        if !goals.is_empty() {
            out.push_str("\n## Against the goals (ratios of medians from this run)\n\n| goal | result | verdict |\n|---|---|---|\n");
            for g in &goals {
                let _ = writeln!(out, "{g}");
            }
        }
        print!("{out}");
        let failures = w1_runs
            .iter()
            .flatten()
            .flat_map(|(_, r)| r.iter())
            .filter(|r| r.is_err())
            .count()
            + w6_runs
                .iter()
                .flat_map(|(_, r)| r.iter())
                .filter(|r| r.is_err())
                .count();
        write_report(&out, "network.md", o.write)?;
        if failures > 0 {
            return Err(format!("{failures} run(s) FAILED, see the report"));
        }
        Ok(())
    }
}
