//! The processes the driver starts (`--role …`).

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::Res;
use super::wire::{self, Delivery, Inbuf, Proto, Sub};

/// A server exits by itself after this long, whatever the driver does.
pub(crate) const SERVER_LIFETIME: Duration = Duration::from_secs(1500);
/// Queue per subscriber in the raw fan-out server (lossless: the publisher waits on it).
const RAW_FANOUT_QUEUE: usize = 1024;
/// Write size of the raw stream server and read size of the stream client.
pub(crate) const STREAM_CHUNK: usize = 256 * 1024;

pub(crate) fn run(args: &[String]) -> Res<()> {
    let a = RoleArgs(args);
    let (arg, secs, num) = (|i| a.arg(i), |i| a.secs(i), |i| a.num(i));
    match arg(0)? {
        // server KIND
        "server" => server(arg(1)?),
        // rpc PROTO ADDR CONNS WINDOW DATA WARMUP SECS: raw tokio client
        "rpc" => rpc(
            Proto::parse(arg(1)?)?,
            addr(arg(2)?)?,
            num(3)?,
            num(4)?,
            num(5)?,
            secs(6)?,
            secs(7)?,
        ),
        // rpc-client ADDR DATA WARMUP SECS: psvc::client::Client
        "rpc-client" => super::psvc_side::rpc_client(arg(1)?, num(2)?, secs(3)?, secs(4)?),
        // typed ENC ADDR WARMUP SECS: psvc client typed call, json | postcard
        "typed" => super::psvc_side::typed(arg(1)?, arg(2)?, secs(3)?, secs(4)?),
        // subs KIND ADDR N SIZE WARMUP SECS
        "subs" => subs(
            arg(1)?,
            addr(arg(2)?)?,
            num(3)?,
            num(4)?,
            secs(5)?,
            secs(6)?,
        ),
        // get KIND ADDR SIZE HASH EXPECTED_HEX; HASH: 0 none, 1 receiver, 2 both ends (raw)
        "get" => get(
            arg(1)?,
            addr(arg(2)?)?,
            num(3)?,
            arg(4)?.parse().map_err(|e| format!("HASH: {e}"))?,
            arg(5)?,
        ),
        // get-psvc ADDR SIZE EXPECTED_HEX SERVER_SHA: psvc client + stream::copy (SHA-256
        // at the receiver; at the sender too if SERVER_SHA is 1)
        "get-psvc" => super::psvc_side::get(arg(1)?, num(2)?, arg(3)?, arg(4)? == "1"),
        // sha SIZE: SHA-256 speed on this CPU
        "sha" => sha(num(1)?),
        other => Err(format!("unknown role {other:?}")),
    }
}

use psvc_benches::role::RoleArgs;
pub(crate) use psvc_benches::role::{addr, current_thread, io, linger, watchdog};

/// Forwards stdin lines to `tx`; exits the process on EOF (the driver closed the pipe or
/// died) or after [`SERVER_LIFETIME`].
pub(crate) fn control_thread(tx: mpsc::UnboundedSender<String>) {
    psvc_benches::role::control_thread(SERVER_LIFETIME, move |line| {
        let _ = tx.send(line.to_string());
    });
}

/// `go N SIZE MAXSECS [DEPTH]`: publish SIZE-byte messages to N subscribers for at most
/// MAXSECS (psvc: with DEPTH publishes in flight, default 1).
pub(crate) fn parse_go(line: &str) -> Option<(usize, usize, f64, usize)> {
    let mut it = line.split_whitespace();
    if it.next()? != "go" {
        return None;
    }
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next().and_then(|d| d.parse().ok()).unwrap_or(1),
    ))
}

fn server(kind: &str) -> Res<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    match kind {
        "psvc" => super::psvc_side::server(tx, rx),
        "raw-echo" => current_thread()?.block_on(raw_echo(tx)),
        "raw-fanout" => current_thread()?.block_on(raw_fanout(tx, rx)),
        "raw-stream" => current_thread()?.block_on(raw_stream(tx)),
        other => Err(format!("unknown server {other:?}")),
    }
}

async fn bind(tx: mpsc::UnboundedSender<String>) -> Res<TcpListener> {
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(io("bind"))?;
    control_thread(tx);
    println!("addr {}", listener.local_addr().map_err(io("local_addr"))?);
    Ok(listener)
}

/// Accepts until the lifetime ends, handing each connection to `serve`.
async fn accept_loop(listener: TcpListener, serve: impl FnMut(TcpStream)) -> Res<()> {
    psvc_benches::role::accept_loop(listener, SERVER_LIFETIME, serve).await
}

/// The RPC baseline: `Framed<TcpStream, LengthDelimitedCodec>`, split, every frame sent back
/// (`forward` flushes when the input runs dry), on a current_thread runtime.
async fn raw_echo(tx: mpsc::UnboundedSender<String>) -> Res<()> {
    let listener = bind(tx).await?;
    accept_loop(listener, |stream| {
        tokio::spawn(async move {
            let (sink, stream) = Framed::new(stream, LengthDelimitedCodec::new()).split();
            let _ = stream.map_ok(BytesMut::freeze).forward(sink).await;
        });
    })
    .await
}

/// Writes everything its queue holds in one `write_all` (up to 256 KiB), then waits.
async fn fanout_writer(mut sock: TcpStream, mut rx: mpsc::Receiver<Bytes>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(m) = rx.recv().await {
        buf.extend_from_slice(&m);
        while buf.len() < STREAM_CHUNK {
            match rx.try_recv() {
                Ok(m) => buf.extend_from_slice(&m),
                Err(_) => break,
            }
        }
        if sock.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// The fan-out baseline: every accepted connection is a subscriber with a bounded queue and
/// a writer task; on `go N SIZE MAXSECS` (once N are connected) a loop publishes the same
/// encoded VSOA PUBLISH packet (seq stamped in) to every queue, waiting when one is full.
async fn raw_fanout(
    tx: mpsc::UnboundedSender<String>,
    mut ctl: mpsc::UnboundedReceiver<String>,
) -> Res<()> {
    let listener = bind(tx).await?;
    let mut subs: Vec<mpsc::Sender<Bytes>> = Vec::new();
    let mut go = None;
    let deadline = tokio::time::Instant::now() + SERVER_LIFETIME;
    let (n, size, max_secs) = loop {
        if let Some((n, size, max, _)) = go
            && subs.len() >= n
        {
            break (n, size, max);
        }
        tokio::select! {
            a = listener.accept() => {
                let Ok((stream, _)) = a else { continue };
                let _ = stream.set_nodelay(true);
                let (qtx, qrx) = mpsc::channel(RAW_FANOUT_QUEUE);
                tokio::spawn(fanout_writer(stream, qrx));
                subs.push(qtx);
            }
            line = ctl.recv() => match line {
                Some(l) => go = parse_go(&l).or(go),
                None => return Ok(()),
            },
            () = tokio::time::sleep_until(deadline) => return Ok(()),
        }
    };
    let (template, off) = wire::vsoa_publish_template(size)?;
    let end = Instant::now() + Duration::from_secs_f64(max_secs);
    let mut seq = 0u64;
    'publish: loop {
        if seq.is_multiple_of(64) && Instant::now() >= end {
            break;
        }
        let mut m = BytesMut::from(&template[..]);
        m[off..off + 8].copy_from_slice(&seq.to_be_bytes());
        let m = m.freeze();
        for q in &subs[..n] {
            if q.send(m.clone()).await.is_err() {
                break 'publish;
            }
        }
        seq += 1;
    }
    println!("published {seq}");
    // Stay up until the driver closes stdin.
    while ctl.recv().await.is_some() {}
    Ok(())
}

/// The stream baseline: each connection sends an 8-byte size and a hash flag byte, and
/// gets that many pattern bytes in 256 KiB writes (hashed with SHA-256 on a blocking-pool
/// thread while they are sent, if the flag is 1).
async fn raw_stream(tx: mpsc::UnboundedSender<String>) -> Res<()> {
    let listener = bind(tx).await?;
    let pat = Bytes::from(wire::pattern(STREAM_CHUNK + wire::PATTERN_MOD));
    accept_loop(listener, move |mut stream| {
        let pat = pat.clone();
        tokio::spawn(async move {
            let mut req = [0u8; 9];
            if stream.read_exact(&mut req).await.is_err() {
                return;
            }
            let size = u64::from_be_bytes([
                req[0], req[1], req[2], req[3], req[4], req[5], req[6], req[7],
            ]);
            let hasher = (req[8] == 1).then(|| {
                let (htx, mut hrx) = mpsc::channel::<Bytes>(4);
                let h = tokio::task::spawn_blocking(move || {
                    let mut sha = Sha256::new();
                    while let Some(b) = hrx.blocking_recv() {
                        sha.update(&b);
                    }
                    sha.finalize()
                });
                (htx, h)
            });
            let _ = send_pattern(&mut stream, &pat, size, hasher.as_ref().map(|h| &h.0)).await;
            if let Some((htx, h)) = hasher {
                drop(htx);
                let _ = h.await;
            }
            let _ = stream.shutdown().await;
        });
    })
    .await
}

/// Writes `size` bytes of the pattern (from offset 0) in [`STREAM_CHUNK`] writes, each
/// also handed to `hash` if given.
pub(crate) async fn send_pattern<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    pat: &Bytes,
    size: u64,
    hash: Option<&mpsc::Sender<Bytes>>,
) -> std::io::Result<()> {
    let mut off = 0u64;
    while off < size {
        let len = (size - off).min(STREAM_CHUNK as u64) as usize;
        let at = (off % wire::PATTERN_MOD as u64) as usize;
        w.write_all(&pat[at..at + len]).await?;
        if let Some(h) = hash {
            h.send(pat.slice(at..at + len))
                .await
                .map_err(|_| std::io::Error::other("hasher stopped"))?;
        }
        off += len as u64;
    }
    Ok(())
}

// ------------------------------------------------------------------ RPC clients

/// Round-trip histogram and counters of a timed window, shared by a role's tasks.
pub(crate) struct Timed {
    pub(crate) hist: RefCell<Histogram<u64>>,
    pub(crate) count: Cell<u64>,
    pub(crate) measuring: Cell<bool>,
    pub(crate) stop: Cell<bool>,
    pub(crate) error: RefCell<Option<String>>,
}

impl Timed {
    pub(crate) fn new() -> Res<Rc<Self>> {
        Ok(Rc::new(Self {
            hist: RefCell::new(
                Histogram::new_with_bounds(1, 60_000_000_000, 3)
                    .map_err(|e| format!("histogram: {e}"))?,
            ),
            count: Cell::new(0),
            measuring: Cell::new(false),
            stop: Cell::new(false),
            error: RefCell::new(None),
        }))
    }

    #[inline]
    pub(crate) fn record(&self, nanos: u64) {
        if self.measuring.get() {
            let _ = self.hist.borrow_mut().record(nanos.max(1));
            self.count.set(self.count.get() + 1);
        }
    }

    pub(crate) fn fail(&self, e: String) {
        self.error.borrow_mut().get_or_insert(e);
        self.stop.set(true);
    }

    /// Warm-up, then the timed window; prints `warm` and the `result` line.
    pub(crate) async fn window(&self, warmup: Duration, secs: Duration) -> Res<()> {
        let step = Duration::from_millis(20);
        let wait = |d: Duration| async move {
            let end = Instant::now() + d;
            while Instant::now() < end && !self.stop.get() {
                tokio::time::sleep(step.min(end - Instant::now())).await;
            }
        };
        wait(warmup).await;
        self.measuring.set(true);
        let from = Instant::now();
        println!("warm");
        wait(secs).await;
        self.measuring.set(false);
        self.stop.set(true);
        let took = from.elapsed().as_secs_f64();
        if let Some(e) = self.error.borrow().clone() {
            return Err(e);
        }
        let h = self.hist.borrow();
        let q = |q: f64| h.value_at_quantile(q);
        println!(
            "result p50={} p99={} p999={} max={} count={} secs={took:.4}",
            q(0.5),
            q(0.99),
            q(0.999),
            h.max(),
            self.count.get()
        );
        Ok(())
    }
}

/// `conns` connections, each keeping `window` RPC requests of `data` bytes in flight, all
/// on one current_thread runtime; every reply's round trip is recorded.
fn rpc(
    proto: Proto,
    addr: SocketAddr,
    conns: usize,
    window: usize,
    data: usize,
    warmup: Duration,
    secs: Duration,
) -> Res<()> {
    watchdog(warmup + secs + Duration::from_secs(60));
    let rt = current_thread()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let timed = Timed::new()?;
        let mut streams = Vec::with_capacity(conns);
        for i in 0..conns {
            let mut s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect #{i}: {e}"))?;
            s.set_nodelay(true).map_err(io("nodelay"))?;
            let mut inbuf = Inbuf::new();
            if proto == Proto::Vsoa {
                wire::handshake(&mut s, &mut inbuf).await?;
            }
            streams.push((s, inbuf));
        }
        let mut tasks = Vec::new();
        for (s, inbuf) in streams {
            let t = timed.clone();
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = rpc_conn(proto, s, inbuf, window, data, &t).await {
                    t.fail(e);
                }
            }));
        }
        let r = timed.window(warmup, secs).await;
        for t in tasks {
            t.abort();
        }
        r
    })?;
    linger();
    Ok(())
}

async fn rpc_conn(
    proto: Proto,
    mut s: TcpStream,
    mut inbuf: Inbuf,
    window: usize,
    data: usize,
    timed: &Timed,
) -> Res<()> {
    let mut req = wire::rpc_request(proto, data)?;
    let ring = window * 4;
    let mut slots: Vec<Option<(u32, Instant)>> = vec![None; ring];
    let mut wbuf = Vec::with_capacity(req.len() * window);
    let mut seq: u32 = 1;
    let mut inflight = 0usize;
    while !timed.stop.get() {
        let now = Instant::now();
        while inflight < window {
            let slot = seq as usize % ring;
            if slots[slot].is_some() {
                break;
            }
            wire::stamp(&mut req, seq);
            wbuf.extend_from_slice(&req);
            slots[slot] = Some((seq, now));
            seq = seq.wrapping_add(1);
            inflight += 1;
        }
        if !wbuf.is_empty() {
            s.write_all(&wbuf).await.map_err(io("write"))?;
            wbuf.clear();
        }
        loop {
            let mut got = 0;
            let mut t1 = None;
            while let Some((rseq, used)) = wire::parse_reply(proto, &inbuf.buf, data)? {
                inbuf.buf.advance(used);
                let t1 = *t1.get_or_insert_with(Instant::now);
                let slot = rseq as usize % ring;
                match slots[slot].take() {
                    Some((q, t0)) if q == rseq => {
                        timed.record((t1 - t0).as_nanos() as u64);
                    }
                    other => {
                        return Err(format!(
                            "reply seqno {rseq} matches no request in flight ({other:?})"
                        ));
                    }
                }
                inflight -= 1;
                got += 1;
            }
            if got > 0 {
                break;
            }
            inbuf.fill(&mut s).await?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ fan-out subscribers

/// Deliveries seen by one subscriber process.
struct Fanout {
    /// Next expected sequence number per subscriber (= messages received when lossless).
    next: Vec<Cell<u64>>,
    total: Cell<u64>,
    lost: Cell<u64>,
    progress: Notify,
    /// Wakes the ack task (psvc).
    acks: Notify,
    first: Notify,
    published: Cell<u64>,
    stop: Cell<bool>,
    error: RefCell<Option<String>>,
}

impl Fanout {
    fn fail(&self, e: String) {
        self.error.borrow_mut().get_or_insert(e);
        self.stop.set(true);
        self.progress.notify_one();
        self.acks.notify_one();
        self.first.notify_one();
    }
}

/// Opens and subscribes one subscriber connection of `kind`.
async fn subscriber(kind: &str, addr: SocketAddr, i: usize) -> Res<(TcpStream, Inbuf)> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect #{i}: {e}"))?;
    s.set_nodelay(true).map_err(io("nodelay"))?;
    let mut inbuf = Inbuf::new();
    match kind {
        "vsoa" => {
            wire::handshake(&mut s, &mut inbuf).await?;
            wire::vsoa_subscribe(&mut s, &mut inbuf, wire::VSOA_SUB, 1).await?;
        }
        "raw" => {}
        "nats" => {
            s.write_all(wire::NATS_CONNECT).await.map_err(io("write"))?;
            s.write_all(format!("SUB {} 1\r\nPING\r\n", wire::NATS_SUB).as_bytes())
                .await
                .map_err(io("write"))?;
            wire::read_until(&mut s, &mut inbuf, Sub::Nats, "PONG", |l| {
                l.starts_with(b"PONG")
            })
            .await?;
        }
        "mqtt" => {
            let id = format!("psvc-bench-{}-{i}", std::process::id());
            s.write_all(&wire::mqtt_connect(&id))
                .await
                .map_err(io("write"))?;
            wire::read_until(&mut s, &mut inbuf, Sub::Mqtt, "CONNACK", |p| p[0] == 0x20).await?;
            s.write_all(&wire::mqtt_subscribe(1, wire::MQTT_SUB))
                .await
                .map_err(io("write"))?;
            wire::read_until(&mut s, &mut inbuf, Sub::Mqtt, "SUBACK", |p| p[0] == 0x90).await?;
        }
        other => return Err(format!("unknown subscriber kind {other:?}")),
    }
    Ok((s, inbuf))
}

async fn read_deliveries(
    sub: Sub,
    mut s: TcpStream,
    mut inbuf: Inbuf,
    size: usize,
    me: usize,
    f: &Fanout,
) -> Res<()> {
    let mut expected = 0u64;
    let mut first = true;
    while !f.stop.get() {
        let mut pong = false;
        let mut got = 0u64;
        while let Some((d, used)) = wire::parse_delivery(sub, &inbuf.buf, size)? {
            inbuf.buf.advance(used);
            match d {
                Delivery::Msg(seq) => {
                    if seq < expected {
                        return Err(format!(
                            "subscriber {me}: seq {seq} after {expected} (duplicate or reordered)"
                        ));
                    }
                    if seq > expected {
                        f.lost.set(f.lost.get() + (seq - expected));
                    }
                    expected = seq + 1;
                    got += 1;
                }
                Delivery::Ping => pong = true,
                Delivery::Other => {}
            }
        }
        if got > 0 {
            f.next[me].set(expected);
            f.total.set(f.total.get() + got);
            f.progress.notify_one();
            f.acks.notify_one();
            if first {
                first = false;
                f.first.notify_one();
            }
        }
        if pong {
            s.write_all(b"PONG\r\n").await.map_err(io("write"))?;
        }
        inbuf.fill(&mut s).await?;
    }
    Ok(())
}

/// The NATS / MQTT publisher: at most [`wire::pub_window`] messages ahead of the slowest
/// subscriber, batches of up to 64 per write.
async fn publisher(sub: Sub, mut s: TcpStream, size: usize, max: Duration, f: &Fanout) -> Res<()> {
    let payload = wire::payload(size);
    let end = Instant::now() + max;
    let mut out = BytesMut::with_capacity(64 * (size + 64));
    let mut seq = 0u64;
    let window = wire::pub_window(size);
    while !f.stop.get() && Instant::now() < end {
        let floor = f.next.iter().map(Cell::get).min().unwrap_or(0);
        let mut k = 0;
        while seq < floor + window && k < 64 {
            match sub {
                Sub::Nats => wire::nats_publish(&mut out, &payload, seq),
                Sub::Mqtt => wire::mqtt_publish(&mut out, &payload, seq),
                Sub::Vsoa => return Err("no client publisher for VSOA".to_string()),
            }
            seq += 1;
            k += 1;
        }
        if k > 0 {
            s.write_all(&out).await.map_err(io("publish"))?;
            out.clear();
            f.published.set(seq);
            tokio::task::yield_now().await;
        } else if tokio::time::timeout(Duration::from_secs(5), f.progress.notified())
            .await
            .is_err()
        {
            return Err(format!(
                "no subscriber progress for 5 s (published {seq}, slowest at {floor})"
            ));
        }
    }
    Ok(())
}

/// psvc's flow control: reports the slowest subscriber's count to the server (a DATAGRAM
/// to [`wire::ACK_URL`] on a connection of its own) every quarter window.
async fn acker(mut s: TcpStream, size: usize, f: &Fanout) -> Res<()> {
    let step = (wire::pub_window(size) / 4).max(1);
    let mut last = 0u64;
    let mut b = BytesMut::new();
    while !f.stop.get() {
        f.acks.notified().await;
        let floor = f.next.iter().map(Cell::get).min().unwrap_or(0);
        if floor >= last + step {
            b.clear();
            psvc::frame::encode(
                &psvc::frame::Frame::new(psvc::frame::Kind::Datagram)
                    .url(wire::ACK_URL)
                    .data(floor.to_be_bytes().to_vec()),
                &mut b,
                psvc::frame::MAX_TCP_PACKET,
            )
            .map_err(|e| e.to_string())?;
            s.write_all(&b).await.map_err(io("ack"))?;
            last = floor;
        }
    }
    Ok(())
}

/// N subscribers (and, for NATS / MQTT, the publisher) in one process; prints `ready`,
/// `warm` (after the first delivery and the warm-up) and the `result` line.
fn subs(
    kind: &str,
    addr: SocketAddr,
    n: usize,
    size: usize,
    warmup: Duration,
    secs: Duration,
) -> Res<()> {
    watchdog(warmup + secs + Duration::from_secs(90));
    let sub = match kind {
        "vsoa" | "raw" => Sub::Vsoa,
        "nats" => Sub::Nats,
        "mqtt" => Sub::Mqtt,
        other => return Err(format!("unknown subscriber kind {other:?}")),
    };
    let rt = current_thread()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            conns.push(subscriber(kind, addr, i).await?);
        }
        let publisher_conn = match sub {
            Sub::Nats => {
                let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
                s.set_nodelay(true).map_err(io("nodelay"))?;
                let mut inbuf = Inbuf::new();
                s.write_all(wire::NATS_CONNECT).await.map_err(io("write"))?;
                s.write_all(b"PING\r\n").await.map_err(io("write"))?;
                wire::read_until(&mut s, &mut inbuf, Sub::Nats, "PONG", |l| {
                    l.starts_with(b"PONG")
                })
                .await?;
                Some(s)
            }
            Sub::Mqtt => {
                let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
                s.set_nodelay(true).map_err(io("nodelay"))?;
                let mut inbuf = Inbuf::new();
                let id = format!("psvc-bench-pub-{}", std::process::id());
                s.write_all(&wire::mqtt_connect(&id))
                    .await
                    .map_err(io("write"))?;
                wire::read_until(&mut s, &mut inbuf, Sub::Mqtt, "CONNACK", |p| p[0] == 0x20)
                    .await?;
                Some(s)
            }
            Sub::Vsoa => None,
        };
        let ack_conn = if kind == "vsoa" {
            let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
            s.set_nodelay(true).map_err(io("nodelay"))?;
            wire::handshake(&mut s, &mut Inbuf::new()).await?;
            Some(s)
        } else {
            None
        };
        println!("ready");
        let f = Rc::new(Fanout {
            next: (0..n).map(|_| Cell::new(0)).collect(),
            total: Cell::new(0),
            lost: Cell::new(0),
            progress: Notify::new(),
            acks: Notify::new(),
            first: Notify::new(),
            published: Cell::new(0),
            stop: Cell::new(false),
            error: RefCell::new(None),
        });
        let mut tasks = Vec::new();
        for (me, (s, inbuf)) in conns.into_iter().enumerate() {
            let f2 = f.clone();
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = read_deliveries(sub, s, inbuf, size, me, &f2).await {
                    f2.fail(e);
                }
            }));
        }
        if let Some(s) = ack_conn {
            let f2 = f.clone();
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = acker(s, size, &f2).await {
                    f2.fail(e);
                }
            }));
        }
        if let Some(s) = publisher_conn {
            let f2 = f.clone();
            let max = warmup + secs + Duration::from_secs(15);
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = publisher(sub, s, size, max, &f2).await {
                    f2.fail(e);
                }
            }));
        }
        let r = async {
            tokio::time::timeout(Duration::from_secs(15), f.first.notified())
                .await
                .map_err(|_| "no delivery within 15 s".to_string())?;
            let check = || match f.error.borrow().clone() {
                Some(e) => Err(e),
                None => Ok(()),
            };
            check()?;
            tokio::time::sleep(warmup).await;
            let (t0, d0, l0, p0) = (
                Instant::now(),
                f.total.get(),
                f.lost.get(),
                f.published.get(),
            );
            println!("warm");
            tokio::time::sleep(secs).await;
            let (t1, d1, l1, p1) = (
                Instant::now(),
                f.total.get(),
                f.lost.get(),
                f.published.get(),
            );
            check()?;
            println!(
                "result deliveries={} lost={} published={} secs={:.4} subs={n}",
                d1 - d0,
                l1 - l0,
                p1 - p0,
                (t1 - t0).as_secs_f64()
            );
            Ok::<_, String>(())
        }
        .await;
        f.stop.set(true);
        for t in tasks {
            t.abort();
        }
        r
    })?;
    linger();
    Ok(())
}

// ------------------------------------------------------------------ streams

/// Receives a stream of `size` pattern bytes from a raw stream server (`raw`) or a VSOA
/// server (`vsoa`: RPC `/stream/download`, then a TCP connection to the reply's tunid),
/// hashing it with SHA-256 on a second thread if `hash` ≥ 1 (2: the raw server hashes too);
/// checks a sample of the bytes and the digest.
fn get(kind: &str, addr: SocketAddr, size: usize, hash: u8, expected: &str) -> Res<()> {
    watchdog(Duration::from_secs(120));
    let rt = current_thread()?;
    let (secs, digest) = rt.block_on(async move {
        let mut ctl = None;
        let mut pre = match kind {
            "raw" => None,
            "vsoa" => {
                let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
                s.set_nodelay(true).map_err(io("nodelay"))?;
                let mut inbuf = Inbuf::new();
                wire::handshake(&mut s, &mut inbuf).await?;
                Some((s, inbuf))
            }
            other => return Err(format!("unknown stream kind {other:?}")),
        };
        println!("warm");
        let t0 = Instant::now();
        let mut data = match pre.take() {
            None => {
                let mut s = TcpStream::connect(addr).await.map_err(io("connect"))?;
                let mut req = (size as u64).to_be_bytes().to_vec();
                req.push(u8::from(hash == 2));
                s.write_all(&req).await.map_err(io("write"))?;
                s
            }
            Some((mut s, mut inbuf)) => {
                let req = psvc::frame::Frame::new(psvc::frame::Kind::Rpc)
                    .url(wire::STREAM_URL)
                    .seqno(7)
                    .param(format!("{{\"size\":{size}}}"));
                let reply = wire::vsoa_request(&mut s, &mut inbuf, &req).await?;
                if !reply.status.is_ok() || reply.tunid == 0 {
                    return Err(format!(
                        "{} answered status {} tunid {}",
                        wire::STREAM_URL,
                        reply.status,
                        reply.tunid
                    ));
                }
                let d = TcpStream::connect((addr.ip(), reply.tunid))
                    .await
                    .map_err(io("connect to the stream port"))?;
                ctl = Some(s);
                d
            }
        };
        // The hashing thread stays alive after it answers: an exited thread leaves
        // `/proc/<pid>/task`, and with it the CPU time the driver reads.
        let hasher = (hash >= 1).then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(64);
            let (dtx, drx) = std::sync::mpsc::channel::<String>();
            std::thread::spawn(move || {
                let mut sha = Sha256::new();
                while let Ok(b) = rx.recv() {
                    sha.update(&b);
                }
                let _ = dtx.send(wire::hex(&sha.finalize()));
                loop {
                    std::thread::park();
                }
            });
            (tx, drx)
        });
        let mut got = 0usize;
        let mut buf = BytesMut::with_capacity(STREAM_CHUNK);
        while got < size {
            if buf.capacity() < STREAM_CHUNK / 2 {
                buf = BytesMut::with_capacity(STREAM_CHUNK);
            }
            let n = data.read_buf(&mut buf).await.map_err(io("read"))?;
            if n == 0 {
                return Err(format!("stream ended after {got} of {size} bytes"));
            }
            let chunk = buf.split().freeze();
            let (a, b) = (chunk[0], chunk[chunk.len() - 1]);
            if usize::from(a) != got % wire::PATTERN_MOD
                || usize::from(b) != (got + chunk.len() - 1) % wire::PATTERN_MOD
            {
                return Err(format!("wrong bytes at offset {got}"));
            }
            got += chunk.len();
            if let Some((tx, _)) = &hasher {
                tx.send(chunk).map_err(|_| "hasher stopped".to_string())?;
            }
        }
        let digest = match hasher {
            Some((tx, drx)) => {
                drop(tx);
                Some(drx.recv().map_err(|_| "hasher stopped".to_string())?)
            }
            None => None,
        };
        let secs = t0.elapsed().as_secs_f64();
        drop(ctl);
        if got != size {
            return Err(format!("received {got} bytes, expected {size}"));
        }
        Ok::<_, String>((secs, digest))
    })?;
    if let Some(d) = &digest
        && d != expected
    {
        return Err(format!("SHA-256 {d} != expected {expected}"));
    }
    println!("result bytes={size} secs={secs:.4}");
    linger();
    Ok(())
}

/// SHA-256 of `size` pattern bytes in 1 MiB updates on this CPU: speed and digest.
fn sha(size: usize) -> Res<()> {
    const STEP: usize = 1024 * 1024;
    let pat = wire::pattern(STEP + wire::PATTERN_MOD);
    println!("warm");
    let t0 = Instant::now();
    let mut sha = Sha256::new();
    let mut off = 0usize;
    while off < size {
        let len = (size - off).min(STEP);
        let at = off % wire::PATTERN_MOD;
        sha.update(&pat[at..at + len]);
        off += len;
    }
    let digest = wire::hex(&sha.finalize());
    let secs = t0.elapsed().as_secs_f64();
    println!("result bytes={size} secs={secs:.4} digest={digest}");
    linger();
    Ok(())
}
