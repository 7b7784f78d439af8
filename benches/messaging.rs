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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    // Roles report failures on stdout too, where the driver reads them.
    psvc_benches::role::main("messaging bench", role::run, driver::run)
}

/// Wire formats shared by the client and server roles: VSOA (psvc and the VSOA peers), the raw
/// length-prefixed baseline, NATS and MQTT 3.1.1, each written by hand so every server is driven
/// by equally minimal client code.
mod wire {
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use psvc::frame::{self, Flags, Frame, HEADER_LEN, Kind, MAX_TCP_PACKET};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::Res;

    /// The echo command every RPC server serves.
    pub(crate) const ECHO_URL: &str = "/echo";
    /// The command that starts a download stream (param `{"size":n}`).
    pub(crate) const STREAM_URL: &str = "/stream/download";
    /// Subscriptions and the published topic, per protocol (prefix / wildcard forms).
    pub(crate) const VSOA_SUB: &str = "/bench/";
    pub(crate) const VSOA_TOPIC: &str = "/bench/x";
    pub(crate) const NATS_SUB: &str = "bench.>";
    pub(crate) const NATS_TOPIC: &str = "bench.x";
    pub(crate) const MQTT_SUB: &str = "bench/#";
    pub(crate) const MQTT_TOPIC: &str = "bench/x";
    /// Where psvc subscribers acknowledge progress (DATAGRAM, data = u64 count).
    pub(crate) const ACK_URL: &str = "/bench/ack";
    /// Published before the run until every subscriber receives it (psvc).
    pub(crate) const PROBE_URL: &str = "/bench/probe";
    /// Stream payload: byte `i` of a stream is `i % PATTERN_MOD`.
    pub(crate) const PATTERN_MOD: usize = 251;

    /// Which RPC server a client talks to.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Proto {
        /// VSOA v2: SERVINFO handshake, then RPC `/echo` packets.
        Vsoa,
        /// `LengthDelimitedCodec` (4-byte big-endian length), same bytes per request.
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
    }

    fn enc(f: &Frame, out: &mut BytesMut) -> Res<()> {
        frame::encode(f, out, MAX_TCP_PACKET).map_err(|e| e.to_string())
    }

    /// The request template: seqno at bytes 4..8 in both protocols (VSOA header seqno; first
    /// payload bytes after the raw length prefix).
    pub(crate) fn rpc_request(proto: Proto, data: usize) -> Res<Vec<u8>> {
        let mut b = BytesMut::new();
        enc(
            &Frame::new(Kind::Rpc).url(ECHO_URL).data(vec![0xa5u8; data]),
            &mut b,
        )?;
        Ok(match proto {
            Proto::Vsoa => b.to_vec(),
            Proto::Raw => {
                let mut v = vec![0xa5u8; b.len()];
                v[..4].copy_from_slice(&((b.len() - 4) as u32).to_be_bytes());
                v
            }
        })
    }

    /// Writes the sequence number into a request.
    #[inline]
    pub(crate) fn stamp(req: &mut [u8], seq: u32) {
        req[4..8].copy_from_slice(&seq.to_be_bytes());
    }

    /// One complete reply at the start of `buf`: its seqno and length, `None` if incomplete.
    /// VSOA replies must be RPC, REPLY, status 0 with `data` bytes of data.
    #[inline]
    pub(crate) fn parse_reply(proto: Proto, buf: &[u8], data: usize) -> Res<Option<(u32, usize)>> {
        match proto {
            Proto::Raw => {
                if buf.len() < 8 {
                    return Ok(None);
                }
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize + 4;
                if buf.len() < len {
                    return Ok(None);
                }
                Ok(Some((
                    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                    len,
                )))
            }
            Proto::Vsoa => {
                let Some(len) = vsoa_len(buf, "bad reply")? else {
                    return Ok(None);
                };
                let seq = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                let dlen = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
                if buf[1] != Kind::Rpc.to_u8()
                    || buf[2] & Flags::REPLY.bits() == 0
                    || buf[3] != 0
                    || dlen != data
                {
                    return Err(format!(
                        "unexpected reply to seqno {seq}: {:02x?}",
                        &buf[..HEADER_LEN]
                    ));
                }
                Ok(Some((seq, len)))
            }
        }
    }

    /// A read buffer over a socket.
    pub(crate) struct Inbuf {
        pub(crate) buf: BytesMut,
    }

    impl Inbuf {
        pub(crate) fn new() -> Self {
            Self {
                buf: BytesMut::with_capacity(64 * 1024),
            }
        }

        /// Reads once (at least one byte); EOF is an error.
        pub(crate) async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Res<()> {
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            match r.read_buf(&mut self.buf).await {
                Ok(0) => Err("connection closed by the server".to_string()),
                Ok(_) => Ok(()),
                Err(e) => Err(format!("read: {e}")),
            }
        }
    }

    /// Sends a VSOA request and reads packets until its reply (other packets are skipped).
    pub(crate) async fn vsoa_request(
        s: &mut TcpStream,
        inbuf: &mut Inbuf,
        req: &Frame,
    ) -> Res<Frame> {
        let mut b = BytesMut::new();
        enc(req, &mut b)?;
        s.write_all(&b).await.map_err(|e| format!("write: {e}"))?;
        loop {
            match frame::decode(&mut inbuf.buf, MAX_TCP_PACKET) {
                Ok(f) => {
                    if f.kind == req.kind && f.is_reply() && f.seqno == req.seqno {
                        return Ok(f);
                    }
                }
                Err(frame::Error::Incomplete(_)) => inbuf.fill(s).await?,
                Err(e) => return Err(format!("bad packet: {e}")),
            }
        }
    }

    /// SERVINFO request (anonymous, as psvc's client sends it) and reply check.
    pub(crate) async fn handshake(s: &mut TcpStream, inbuf: &mut Inbuf) -> Res<()> {
        let reply = vsoa_request(s, inbuf, &Frame::new(Kind::ServInfo))
            .await
            .map_err(|e| format!("SERVINFO: {e}"))?;
        if !reply.status.is_ok() {
            return Err(format!("SERVINFO refused: {reply:?}"));
        }
        Ok(())
    }

    /// SUBSCRIBE to `url`, reply checked.
    pub(crate) async fn vsoa_subscribe(
        s: &mut TcpStream,
        inbuf: &mut Inbuf,
        url: &str,
        seqno: u32,
    ) -> Res<()> {
        let reply = vsoa_request(
            s,
            inbuf,
            &Frame::new(Kind::Subscribe)
                .url(url.to_string())
                .seqno(seqno),
        )
        .await?;
        if !reply.status.is_ok() {
            return Err(format!("SUBSCRIBE {url} refused: status {}", reply.status));
        }
        Ok(())
    }

    /// A fan-out payload of `size` bytes carrying `seq` in its first 8 bytes.
    pub(crate) fn payload(size: usize) -> Vec<u8> {
        let mut v = vec![0x5au8; size.max(8)];
        v[..8].fill(0);
        v
    }

    /// The encoded VSOA PUBLISH of a payload of `size` bytes and the offset of its seq field.
    pub(crate) fn vsoa_publish_template(size: usize) -> Res<(BytesMut, usize)> {
        let mut b = BytesMut::new();
        enc(
            &Frame::new(Kind::Publish)
                .url(VSOA_TOPIC)
                .data(Bytes::from(payload(size))),
            &mut b,
        )?;
        Ok((b, HEADER_LEN + VSOA_TOPIC.len()))
    }

    /// What a subscriber found at the start of its buffer.
    pub(crate) enum Delivery {
        /// A message and its sequence number.
        Msg(u64),
        /// NATS server PING (answer PONG).
        Ping,
        /// Anything else (acks, INFO, PONG).
        Other,
    }

    /// The subscriber's protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Sub {
        /// VSOA PUBLISH packets (psvc and the raw fan-out baseline).
        Vsoa,
        /// NATS text protocol.
        Nats,
        /// MQTT 3.1.1.
        Mqtt,
    }

    /// Length of the VSOA packet at the start of `buf`, `None` until all of it is there; a
    /// malformed one fails as `what: error`.
    fn vsoa_len(buf: &[u8], what: &str) -> Res<Option<usize>> {
        match frame::check(buf, MAX_TCP_PACKET) {
            Ok(len) if buf.len() >= len => Ok(Some(len)),
            Ok(_) | Err(frame::Error::Incomplete(_)) => Ok(None),
            Err(e) => Err(format!("{what}: {e}")),
        }
    }

    fn seq_of(p: &[u8], size: usize) -> Res<u64> {
        if p.len() != size.max(8) {
            return Err(format!("payload of {} bytes, expected {size}", p.len()));
        }
        Ok(u64::from_be_bytes([
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7],
        ]))
    }

    /// One complete delivery at the start of `buf` and its length, `None` if incomplete.
    #[inline]
    pub(crate) fn parse_delivery(
        sub: Sub,
        buf: &[u8],
        size: usize,
    ) -> Res<Option<(Delivery, usize)>> {
        match sub {
            Sub::Vsoa => {
                let Some(len) = vsoa_len(buf, "bad packet")? else {
                    return Ok(None);
                };
                if buf[1] != Kind::Publish.to_u8() {
                    return Ok(Some((Delivery::Other, len)));
                }
                let url = u16::from_be_bytes([buf[10], buf[11]]) as usize;
                let param = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]) as usize;
                let data = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
                let at = HEADER_LEN + url + param;
                if &buf[HEADER_LEN..HEADER_LEN + url] != VSOA_TOPIC.as_bytes() {
                    // psvc's readiness probe (`/bench/probe`).
                    return Ok(Some((Delivery::Other, len)));
                }
                Ok(Some((
                    Delivery::Msg(seq_of(&buf[at..at + data], size)?),
                    len,
                )))
            }
            Sub::Nats => {
                let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                let line = &buf[..eol];
                if let Some(rest) = line.strip_prefix(b"MSG ") {
                    let n: usize = rest
                        .rsplit(|&c| c == b' ')
                        .next()
                        .and_then(|t| std::str::from_utf8(t).ok())
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| {
                            format!("bad MSG line {:?}", String::from_utf8_lossy(line))
                        })?;
                    let total = eol + 2 + n + 2;
                    if buf.len() < total {
                        return Ok(None);
                    }
                    let seq = seq_of(&buf[eol + 2..eol + 2 + n], size)?;
                    Ok(Some((Delivery::Msg(seq), total)))
                } else if line == b"PING" {
                    Ok(Some((Delivery::Ping, eol + 2)))
                } else if line.starts_with(b"-ERR") {
                    Err(format!("nats: {}", String::from_utf8_lossy(line)))
                } else {
                    Ok(Some((Delivery::Other, eol + 2)))
                }
            }
            Sub::Mqtt => {
                let Some((rem, hlen)) = mqtt_remaining(buf)? else {
                    return Ok(None);
                };
                let total = hlen + rem;
                if buf.len() < total {
                    return Ok(None);
                }
                if buf[0] >> 4 != 3 {
                    return Ok(Some((Delivery::Other, total)));
                }
                let body = &buf[hlen..total];
                if body.len() < 2 {
                    return Err("short PUBLISH".to_string());
                }
                let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
                // QoS 1/2 carry a packet id after the topic.
                let id = if (buf[0] >> 1) & 3 != 0 { 2 } else { 0 };
                let at = 2 + tlen + id;
                if body.len() < at {
                    return Err("short PUBLISH".to_string());
                }
                Ok(Some((Delivery::Msg(seq_of(&body[at..], size)?), total)))
            }
        }
    }

    /// MQTT fixed header: remaining length and header length, `None` if incomplete.
    fn mqtt_remaining(buf: &[u8]) -> Res<Option<(usize, usize)>> {
        let mut value = 0usize;
        for i in 0..4 {
            let Some(&b) = buf.get(1 + i) else {
                return Ok(None);
            };
            value |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(Some((value, 2 + i)));
            }
        }
        Err("bad MQTT remaining length".to_string())
    }

    fn mqtt_varint(out: &mut BytesMut, mut n: usize) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.put_u8(b);
            if n == 0 {
                break;
            }
        }
    }

    fn mqtt_str(out: &mut BytesMut, s: &[u8]) {
        out.put_u16(s.len() as u16);
        out.put_slice(s);
    }

    /// MQTT 3.1.1 CONNECT, clean session, keepalive off.
    pub(crate) fn mqtt_connect(client_id: &str) -> BytesMut {
        let mut body = BytesMut::new();
        mqtt_str(&mut body, b"MQTT");
        body.put_u8(4);
        body.put_u8(0x02);
        body.put_u16(0);
        mqtt_str(&mut body, client_id.as_bytes());
        let mut out = BytesMut::new();
        out.put_u8(0x10);
        mqtt_varint(&mut out, body.len());
        out.put_slice(&body);
        out
    }

    /// MQTT SUBSCRIBE to one filter at QoS 0.
    pub(crate) fn mqtt_subscribe(packet_id: u16, filter: &str) -> BytesMut {
        let mut body = BytesMut::new();
        body.put_u16(packet_id);
        mqtt_str(&mut body, filter.as_bytes());
        body.put_u8(0);
        let mut out = BytesMut::new();
        out.put_u8(0x82);
        mqtt_varint(&mut out, body.len());
        out.put_slice(&body);
        out
    }

    /// Appends an MQTT QoS 0 PUBLISH of `payload` (with `seq` written in) to `out`.
    pub(crate) fn mqtt_publish(out: &mut BytesMut, payload: &[u8], seq: u64) {
        out.put_u8(0x30);
        mqtt_varint(out, 2 + MQTT_TOPIC.len() + payload.len());
        mqtt_str(out, MQTT_TOPIC.as_bytes());
        out.put_u64(seq);
        out.put_slice(&payload[8..]);
    }

    /// Appends a NATS PUB of `payload` (with `seq` written in) to `out`.
    pub(crate) fn nats_publish(out: &mut BytesMut, payload: &[u8], seq: u64) {
        out.put_slice(b"PUB ");
        out.put_slice(NATS_TOPIC.as_bytes());
        out.put_slice(format!(" {}\r\n", payload.len()).as_bytes());
        out.put_u64(seq);
        out.put_slice(&payload[8..]);
        out.put_slice(b"\r\n");
    }

    /// The NATS CONNECT line: no acks (verbose off), no echo of own messages.
    pub(crate) const NATS_CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\
\"tls_required\":false,\"lang\":\"rust\",\"version\":\"0.0.0\",\"protocol\":1,\"echo\":false}\r\n";

    /// Reads until the buffer holds a packet satisfying `done` (skipping others).
    pub(crate) async fn read_until(
        s: &mut TcpStream,
        inbuf: &mut Inbuf,
        sub: Sub,
        what: &str,
        done: impl Fn(&[u8]) -> bool,
    ) -> Res<()> {
        loop {
            loop {
                let buf = &inbuf.buf[..];
                let len = match sub {
                    Sub::Nats => buf.windows(2).position(|w| w == b"\r\n").map(|p| p + 2),
                    Sub::Mqtt => mqtt_remaining(buf)?
                        .map(|(r, h)| r + h)
                        .filter(|&t| t <= buf.len()),
                    Sub::Vsoa => return Err("read_until is for NATS and MQTT".to_string()),
                };
                let Some(len) = len else { break };
                let hit = done(&buf[..len]);
                if sub == Sub::Nats && buf.starts_with(b"-ERR") {
                    return Err(format!(
                        "nats: {}",
                        String::from_utf8_lossy(&buf[..len]).trim()
                    ));
                }
                inbuf.buf.advance(len);
                if hit {
                    return Ok(());
                }
            }
            inbuf
                .fill(s)
                .await
                .map_err(|e| format!("waiting for {what}: {e}"))?;
        }
    }

    /// Messages a publisher may be ahead of the slowest subscriber: 1,024, or fewer so that
    /// they fit in 512 KiB (half of psvc's default per-session output limit).
    pub(crate) fn pub_window(size: usize) -> u64 {
        ((512 * 1024 / (size + 64)) as u64).clamp(16, 1024)
    }

    /// The stream pattern starting at offset 0, `len` bytes.
    pub(crate) fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % PATTERN_MOD) as u8).collect()
    }

    /// Lower-case hex.
    pub(crate) fn hex(bytes: &[u8]) -> String {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }
}

/// The processes the driver starts (`--role …`).
mod role {
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
                wire::read_until(&mut s, &mut inbuf, Sub::Mqtt, "CONNACK", |p| p[0] == 0x20)
                    .await?;
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
    async fn publisher(
        sub: Sub,
        mut s: TcpStream,
        size: usize,
        max: Duration,
        f: &Fanout,
    ) -> Res<()> {
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
}

/// The psvc side: the server role (Commander routes, Broker publisher, stream tunnels) and the
/// roles that use psvc's own client.
mod psvc_side {
    use std::cell::RefCell;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use actix::Actor;
    use bytes::{Bytes, BytesMut};
    use futures::StreamExt;
    use futures::stream::FuturesOrdered;
    use psvc::broker::{Broker, Delivered, Publish};
    use psvc::client::{Client, ClientOptions, Rpc};
    use psvc::commander::{CommandError, Commander, Request, Response};
    use psvc::socket::{Auth, Server};
    use psvc::stream::Tunnel;
    use serde::{Deserialize, Serialize};
    use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
    use tokio::sync::{Notify, mpsc};

    use super::Res;
    use super::role::{self, Timed, io};
    use super::wire;

    /// M6's argument: a small struct.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Add {
        a: i64,
        b: i64,
        label: String,
    }

    /// M6's result.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    struct Sum {
        sum: i64,
        label: String,
    }

    /// `/stream/download` argument.
    #[derive(Debug, Deserialize)]
    struct Download {
        size: u64,
        #[serde(default)]
        sha: bool,
    }

    /// The stream pattern as an `AsyncRead` of `left` bytes (what `psvc::stream::copy` reads,
    /// like a file).
    struct PatternReader {
        pat: Bytes,
        off: u64,
        left: u64,
    }

    impl AsyncRead for PatternReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = (buf.remaining() as u64)
                .min(self.left)
                .min(role::STREAM_CHUNK as u64) as usize;
            let at = (self.off % wire::PATTERN_MOD as u64) as usize;
            buf.put_slice(&self.pat[at..at + n]);
            self.off += n as u64;
            self.left -= n as u64;
            Poll::Ready(Ok(()))
        }
    }

    fn failed(e: impl std::fmt::Display) -> CommandError {
        CommandError::Failed(e.to_string())
    }

    /// The psvc server: Commander with `/echo`, `/add` (typed), `/stream/download` and the
    /// `/bench/ack` datagram; a Broker; on `go N SIZE MAXSECS` a publisher loop.
    pub(crate) fn server(
        tx: mpsc::UnboundedSender<String>,
        mut ctl: mpsc::UnboundedReceiver<String>,
    ) -> Res<()> {
        let sys = actix::System::new();
        sys.block_on(async move {
            let acked = Arc::new(AtomicU64::new(0));
            let acked_notify = Arc::new(Notify::new());
            let pat = Bytes::from(wire::pattern(role::STREAM_CHUNK + wire::PATTERN_MOD));
            let (a, n) = (acked.clone(), acked_notify.clone());
            let commander = Commander::new()
                .route(wire::ECHO_URL, |req: Request| async move {
                    Ok(Response::ok()
                        .param(req.param.clone())
                        .data(req.data.clone()))
                })
                .typed("/add", |args: Add, _req| async move {
                    Ok::<_, CommandError>(Sum {
                        sum: args.a + args.b,
                        label: args.label,
                    })
                })
                .route(wire::STREAM_URL, move |req: Request| {
                    let pat = pat.clone();
                    async move {
                        let arg: Download = req.json()?;
                        let tunnel = Tunnel::open(&req).map_err(failed)?;
                        let port = tunnel.port();
                        actix::spawn(async move {
                            let Ok(mut stream) = tunnel.accept().await else {
                                return;
                            };
                            if arg.sha {
                                let mut src = PatternReader {
                                    pat,
                                    off: 0,
                                    left: arg.size,
                                };
                                let _ = psvc::stream::copy(&mut src, &mut stream, |_| {}).await;
                            } else {
                                let _ = role::send_pattern(&mut stream, &pat, arg.size, None).await;
                            }
                            let _ = stream.shutdown().await;
                        });
                        Ok(Response::ok().tunnel(port))
                    }
                })
                .datagram(wire::ACK_URL, move |req: Request| {
                    let (acked, notify) = (a.clone(), n.clone());
                    async move {
                        if let Ok(b) = <[u8; 8]>::try_from(&req.data[..]) {
                            acked.fetch_max(u64::from_be_bytes(b), Ordering::Relaxed);
                            notify.notify_one();
                        }
                    }
                });
            let broker = Broker::new().start();
            let handle = Server::new(Auth::anonymous())
                .commands(commander.commands())
                .broker(broker.clone().recipient())
                .start("127.0.0.1:0")
                .await
                .map_err(io("psvc server"))?;
            role::control_thread(tx);
            println!("addr {}", handle.local_addr());
            while let Some(line) = ctl.recv().await {
                if let Some((n, size, max, depth)) = role::parse_go(&line) {
                    let max = Duration::from_secs_f64(max);
                    match publish(&broker, n, size, max, depth, &acked, &acked_notify).await {
                        Ok(seq) => println!("published {seq}"),
                        Err(e) => println!("error {e}"),
                    }
                }
            }
            Ok(())
        })
    }

    /// Publishes `size`-byte messages to `/bench/x` through the Broker with `depth` sends in
    /// flight (1: each awaited before the next), every `Delivered` checked (each subscriber
    /// must be a target), at most [`wire::pub_window`] ahead of what the slowest subscriber
    /// acknowledged.
    async fn publish(
        broker: &actix::Addr<Broker>,
        n: usize,
        size: usize,
        max: Duration,
        depth: usize,
        acked: &AtomicU64,
        acked_notify: &Notify,
    ) -> Res<u64> {
        // Subscriptions reach the Broker after the SUBSCRIBE replies: wait for all of them.
        let ready = Instant::now() + Duration::from_secs(10);
        loop {
            let d = broker
                .send(Publish::new(wire::PROBE_URL))
                .await
                .map_err(io("broker"))?;
            if d.sessions.len() >= n {
                break;
            }
            if Instant::now() >= ready {
                return Err(format!(
                    "only {} of {n} subscribers after 10 s",
                    d.sessions.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let payload = wire::payload(size);
        let window = wire::pub_window(size);
        let end = Instant::now() + max;
        let mut seq = 0u64;
        let mut inflight = FuturesOrdered::new();
        let check = |d: Result<Delivered, actix::MailboxError>| -> Res<()> {
            let d = d.map_err(io("broker"))?;
            if d.sessions.len() != n {
                return Err(format!(
                    "a publish reached {} of {n} subscribers",
                    d.sessions.len()
                ));
            }
            Ok(())
        };
        loop {
            if seq.is_multiple_of(64) && Instant::now() >= end {
                break;
            }
            while inflight.len() >= depth.max(1) {
                if let Some(d) = inflight.next().await {
                    check(d)?;
                }
            }
            while seq >= acked.load(Ordering::Relaxed) + window {
                if tokio::time::timeout(Duration::from_secs(5), acked_notify.notified())
                    .await
                    .is_err()
                {
                    return Err(format!(
                        "no acknowledgement for 5 s (published {seq}, acknowledged {})",
                        acked.load(Ordering::Relaxed)
                    ));
                }
                if Instant::now() >= end {
                    return Ok(seq);
                }
            }
            let mut p = BytesMut::from(&payload[..]);
            p[..8].copy_from_slice(&seq.to_be_bytes());
            inflight.push_back(broker.send(Publish::new(wire::VSOA_TOPIC).data(p.freeze())));
            seq += 1;
        }
        while let Some(d) = inflight.next().await {
            check(d)?;
        }
        Ok(seq)
    }

    fn options(addr: &str) -> ClientOptions {
        ClientOptions::new(addr)
            .quick(false)
            .connect_timeout(Duration::from_secs(5))
            .request_timeout(Duration::from_secs(5))
    }

    /// Runs `call` in a closed loop on psvc's client, timed like the raw clients.
    fn closed_loop<F, Fut>(addr: &str, warmup: Duration, secs: Duration, call: F) -> Res<()>
    where
        F: Fn(Client) -> Fut + 'static,
        Fut: std::future::Future<Output = Res<()>>,
    {
        role::watchdog(warmup + secs + Duration::from_secs(60));
        let options = options(addr);
        let sys = actix::System::new();
        sys.block_on(async move {
            let client = Client::connect(options).await.map_err(io("connect"))?;
            let timed = Timed::new()?;
            let t = timed.clone();
            let c = client.clone();
            let task = actix::spawn(async move {
                while !t.stop.get() {
                    let t0 = Instant::now();
                    if let Err(e) = call(c.clone()).await {
                        t.fail(e);
                        break;
                    }
                    t.record((Instant::now() - t0).as_nanos() as u64);
                }
            });
            let r = timed.window(warmup, secs).await;
            task.abort();
            client.close();
            r
        })?;
        role::linger();
        Ok(())
    }

    /// M1's psvc client line: `Client::rpc` of `/echo` with `data` bytes.
    pub(crate) fn rpc_client(addr: &str, data: usize, warmup: Duration, secs: Duration) -> Res<()> {
        let data = Bytes::from(vec![0xa5u8; data]);
        closed_loop(addr, warmup, secs, move |c| {
            let data = data.clone();
            async move {
                let reply = c
                    .rpc(Rpc::get(wire::ECHO_URL).data(data.clone()))
                    .await
                    .map_err(io("rpc"))?;
                if !reply.status.is_ok() || reply.data.len() != data.len() {
                    return Err(format!("bad /echo reply {reply:?}"));
                }
                Ok(())
            }
        })
    }

    /// M6: typed `/add` calls, JSON or postcard.
    pub(crate) fn typed(enc: &str, addr: &str, warmup: Duration, secs: Duration) -> Res<()> {
        let postcard = match enc {
            "json" => false,
            "postcard" => true,
            other => return Err(format!("unknown encoding {other:?}")),
        };
        let n = Rc::new(RefCell::new(0i64));
        closed_loop(addr, warmup, secs, move |c| {
            let n = n.clone();
            async move {
                let a = {
                    let mut n = n.borrow_mut();
                    *n += 1;
                    *n
                };
                let args = Add {
                    a,
                    b: 2,
                    label: "sensor-7".to_string(),
                };
                let r: Sum = if postcard {
                    c.call_postcard("/add", &args).await
                } else {
                    c.call("/add", &args).await
                }
                .map_err(io("call"))?;
                if r.sum != a + 2 || r.label != args.label {
                    return Err(format!("wrong result {r:?} for {args:?}"));
                }
                Ok(())
            }
        })
    }

    /// M5 with SHA-256: `Client::rpc` `/stream/download` `{"size":n,"sha":server_sha}` (with
    /// `server_sha` the server sends with `psvc::stream::copy`, hashing too), `Client::stream`,
    /// then `psvc::stream::copy` into a sink; the receiver's digest must match.
    pub(crate) fn get(addr: &str, size: usize, expected: &str, server_sha: bool) -> Res<()> {
        role::watchdog(Duration::from_secs(120));
        let options = options(addr);
        let sys = actix::System::new();
        let (secs, bytes, digest) = sys.block_on(async move {
            let client = Client::connect(options).await.map_err(io("connect"))?;
            println!("warm");
            let t0 = Instant::now();
            let reply = client
                .rpc(
                    Rpc::get(wire::STREAM_URL)
                        .param(format!("{{\"size\":{size},\"sha\":{server_sha}}}")),
                )
                .await
                .map_err(io("rpc"))?;
            if !reply.status.is_ok() || reply.tunid == 0 {
                return Err(format!("bad {} reply {reply:?}", wire::STREAM_URL));
            }
            let mut stream = client.stream(reply.tunid).await.map_err(io("stream"))?;
            let t = psvc::stream::copy(&mut stream, &mut tokio::io::sink(), |_| {})
                .await
                .map_err(io("copy"))?;
            let secs = t0.elapsed().as_secs_f64();
            client.close();
            Ok::<_, String>((secs, t.bytes, t.sha256_hex()))
        })?;
        if bytes != size as u64 {
            return Err(format!("received {bytes} bytes, expected {size}"));
        }
        if digest != expected {
            return Err(format!("SHA-256 {digest} != expected {expected}"));
        }
        println!("result bytes={size} secs={secs:.4}");
        role::linger();
        Ok(())
    }
}

/// The driver: starts servers, peers and clients, aggregates, prints and writes the report.
mod driver {
    use std::collections::HashMap;

    use super::*;
    use psvc_benches::host::{Host, command_line, load_average, locked_version};
    use psvc_benches::process::{CpuMark, Placement, Proc, free_port, placements, wait_port};
    use psvc_benches::report::{
        Flags, environment_head, fmt_num, median, opt, quick_mode, ratio, write_report,
    };

    /// Environment variable overriding where `tests/peers/install.sh` put the peers.
    const PEERS_ENV: &str = "PSVC_PEERS_DIR";
    /// RPC data bytes (M1–M3).
    const RPC_DATA: usize = 64;
    /// Pipelined requests in flight (M2).
    const M2_WINDOW: usize = 128;
    /// Connections (M3).
    const M3_CONNS: usize = 64;

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

    // ---------------------------------------------------------------- processes

    // ---------------------------------------------------------------- peers

    /// Where the peers are and which ones can run (`Err` = why not).
    struct Peers {
        repo: PathBuf,
        python: Res<PathBuf>,
        node: Res<(PathBuf, PathBuf)>,
        nats: Res<PathBuf>,
        mosquitto: Res<PathBuf>,
        versions: Vec<String>,
    }

    fn which(program: &str) -> Option<PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        path.split(':')
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
            .map(|d| Path::new(d).join(program))
            .find(|p| p.is_file())
    }

    const INSTALL_HINT: &str = " (run tests/peers/install.sh)";

    /// `Err("PATH missing<hint>")` unless `path` is a file.
    fn present(path: &Path, hint: &str) -> Res<()> {
        if path.is_file() {
            Ok(())
        } else {
            Err(format!("{} missing{hint}", path.display()))
        }
    }

    /// The reason a peer is not run.
    fn unavailable(e: impl std::fmt::Display) -> String {
        format!("peer unavailable: {e}")
    }

    impl Peers {
        fn probe() -> Self {
            let repo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            let repo = repo.canonicalize().unwrap_or(repo);
            let dir = std::env::var_os(PEERS_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target/peers"));
            let scripts = repo.join("tests/peers");
            let mut versions = Vec::new();
            let python = (|| {
                let py = dir.join("venv/bin/python");
                present(&py, INSTALL_HINT)?;
                present(&scripts.join("py_echo_server.py"), "")?;
                let v = command_line(
                    &py.to_string_lossy(),
                    &[
                        "-c",
                        "import sys, importlib.metadata as m; import vsoa; \
                         print('Python', sys.version.split()[0], 'vsoa', m.version('vsoa'))",
                    ],
                )
                .ok_or_else(|| format!("`import vsoa` fails in {}", py.display()))?;
                versions.push(v);
                Ok(py)
            })();
            let node = (|| {
                let node = which("node").ok_or("node not on PATH")?;
                let modules = dir.join("node/node_modules");
                let pkg = modules.join("vsoa/package.json");
                present(&pkg, INSTALL_HINT)?;
                present(&scripts.join("node_echo_server.js"), "")?;
                let nv = command_line(&node.to_string_lossy(), &["--version"]).unwrap_or_default();
                let vv = std::fs::read_to_string(&pkg)
                    .ok()
                    .and_then(|s| {
                        s.split("\"version\"")
                            .nth(1)
                            .and_then(|r| r.split('"').nth(1).map(str::to_string))
                    })
                    .unwrap_or_else(|| "?".to_string());
                versions.push(format!("Node {nv} vsoa {vv} (native libvsoa binding)"));
                Ok((node, modules))
            })();
            let nats = which("nats-server")
                .ok_or_else(|| {
                    "nats-server not installed (apt-get install nats-server)".to_string()
                })
                .inspect(|p| {
                    if let Some(v) = command_line(&p.to_string_lossy(), &["--version"]) {
                        versions.push(v);
                    }
                });
            let mosquitto = which("mosquitto")
                .ok_or_else(|| "mosquitto not installed (apt-get install mosquitto)".to_string())
                .inspect(|p| {
                    // `mosquitto -h` exits 3; read its first line anyway.
                    if let Ok(out) = Command::new(p).arg("-h").stdin(Stdio::null()).output() {
                        let s = String::from_utf8_lossy(&out.stdout);
                        if let Some(l) = s.lines().next() {
                            versions.push(l.trim().to_string());
                        }
                    }
                });
            Peers {
                repo,
                python,
                node,
                nats,
                mosquitto,
                versions,
            }
        }

        fn available(&self, w: Who, smoke: bool) -> Result<(), String> {
            if smoke && matches!(w, Who::Python | Who::Node | Who::Nats | Who::Mosquitto) {
                return Err("smoke run (no --bench): peers are not started".to_string());
            }
            let r = |x: Result<(), &String>| x.map_err(unavailable);
            match w {
                Who::Python => r(self.python.as_ref().map(drop)),
                Who::Node => r(self.node.as_ref().map(drop)),
                Who::Nats => r(self.nats.as_ref().map(drop)),
                Who::Mosquitto => r(self.mosquitto.as_ref().map(drop)),
                _ => Ok(()),
            }
        }
    }

    /// A running server: its process and `127.0.0.1:port`.
    struct Running {
        proc: Proc,
        addr: String,
        /// A temporary directory to remove afterwards (mosquitto's configuration).
        tmp: Option<PathBuf>,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(t) = self.tmp.take() {
                let _ = std::fs::remove_dir_all(t);
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Srv {
        RawEcho,
        RawFanout,
        RawStream,
        Psvc,
        Python,
        Node,
        Nats,
        Mosquitto,
    }

    /// `{"port":N}` from a peer script's first line.
    fn json_port(line: &str) -> Option<String> {
        let rest = line.split("\"port\"").nth(1)?;
        let digits: String = rest
            .trim_start_matches([':', ' '])
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u16>().ok().map(|p| format!("127.0.0.1:{p}"))
    }

    /// A peer that prints `{"port":N}` once listening.
    fn script_server(
        name: &str,
        cpu: Option<usize>,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Res<Running> {
        let proc = Proc::spawn(name, cpu, program, args, env, true)?;
        let addr = proc
            .expect_line(Duration::from_secs(15), json_port)
            .map_err(unavailable)?;
        Ok(Running {
            proc,
            addr,
            tmp: None,
        })
    }

    /// A peer told to listen on `port`: running once the port accepts connections.
    fn port_server(
        name: &str,
        cpu: Option<usize>,
        program: &Path,
        args: &[String],
        port: u16,
    ) -> Res<Running> {
        let mut proc = Proc::spawn(name, cpu, program, args, &[], true)?;
        wait_port(&mut proc, port).map_err(unavailable)?;
        Ok(Running {
            proc,
            addr: format!("127.0.0.1:{port}"),
            tmp: None,
        })
    }

    fn start(srv: Srv, cpu: Option<usize>, peers: &Peers) -> Res<Running> {
        let role_server = |kind: &str| -> Res<Running> {
            let proc = Proc::role(&format!("{kind} server"), cpu, &["server", kind])?;
            let addr = proc.expect("addr", Duration::from_secs(10))?;
            Ok(Running {
                proc,
                addr,
                tmp: None,
            })
        };
        let scripts = peers.repo.join("tests/peers");
        match srv {
            Srv::RawEcho => role_server("raw-echo"),
            Srv::RawFanout => role_server("raw-fanout"),
            Srv::RawStream => role_server("raw-stream"),
            Srv::Psvc => role_server("psvc"),
            Srv::Python => {
                let py = peers.python.clone().map_err(unavailable)?;
                let args = [
                    "-u".to_string(),
                    scripts.join("py_echo_server.py").to_string_lossy().into(),
                    "--lifetime".into(),
                    "0".into(),
                ];
                script_server("vsoa-python server", cpu, &py, &args, &[])
            }
            Srv::Node => {
                let (node, modules) = peers.node.clone().map_err(unavailable)?;
                let args = [
                    scripts.join("node_echo_server.js").to_string_lossy().into(),
                    "--lifetime".to_string(),
                    "0".into(),
                ];
                let env = [("NODE_PATH", modules.to_string_lossy().into_owned())];
                script_server("vsoa-node server", cpu, &node, &args, &env)
            }
            Srv::Nats => {
                let bin = peers.nats.clone().map_err(unavailable)?;
                let port = free_port()?;
                let args = [
                    "-a".to_string(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ];
                port_server("nats-server", cpu, &bin, &args, port)
            }
            Srv::Mosquitto => {
                let bin = peers.mosquitto.clone().map_err(unavailable)?;
                let port = free_port()?;
                let dir = std::env::temp_dir().join(format!(
                    "psvc-messaging-bench-{}-{port}",
                    std::process::id()
                ));
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let conf = dir.join("mosquitto.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                         set_tcp_nodelay true\nlog_dest stderr\nlog_type error\n"
                    ),
                )
                .map_err(|e| format!("{}: {e}", conf.display()))?;
                let args = ["-c".to_string(), conf.to_string_lossy().into()];
                match port_server("mosquitto", cpu, &bin, &args, port) {
                    Ok(mut running) => {
                        running.tmp = Some(dir);
                        Ok(running)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(e)
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- contenders

    /// Who is measured: a server (driven by the harness's own client) or a client variant.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Who {
        /// The raw tokio baseline of the workload.
        Raw,
        /// The raw baseline with SHA-256 at both ends (M5).
        RawSha,
        /// The raw baseline with SHA-256 at the receiver (M5).
        RawShaRecv,
        /// psvc's server driven by the raw client.
        Psvc,
        /// psvc's stream with SHA-256 at both ends (M5).
        PsvcSha,
        /// psvc's stream with SHA-256 at the receiver only (M5).
        PsvcShaRecv,
        /// psvc's own client against psvc's server (M1).
        PsvcClient,
        /// psvc's Broker with 64 publishes in flight (M4).
        PsvcPipelined,
        Node,
        Python,
        Nats,
        Mosquitto,
        /// SHA-256 alone on the client CPU (M5).
        Sha,
        /// Typed call, JSON in param (M6).
        Json,
        /// Typed call, postcard in data (M6).
        Postcard,
    }

    impl Who {
        fn short(self) -> &'static str {
            match self {
                Who::Raw => "raw",
                Who::RawSha => "raw+sha",
                Who::RawShaRecv => "raw+sha-recv",
                Who::Psvc => "psvc",
                Who::PsvcSha => "psvc+sha",
                Who::PsvcShaRecv => "psvc+sha-recv",
                Who::PsvcClient => "psvc-client",
                Who::PsvcPipelined => "psvc-pipe64",
                Who::Node => "vsoa-node",
                Who::Python => "vsoa-python",
                Who::Nats => "nats",
                Who::Mosquitto => "mosquitto",
                Who::Sha => "sha256",
                Who::Json => "json",
                Who::Postcard => "postcard",
            }
        }

        fn name(self, m: usize) -> String {
            match (self, m) {
                (Who::Raw, 1..=3) => "raw tokio LengthDelimitedCodec echo".into(),
                (Who::Raw, 4) => "raw tokio fan-out".into(),
                (Who::Raw, 5) => "raw tokio copy".into(),
                (Who::RawSha, _) => "raw tokio copy + SHA-256 at both ends".into(),
                (Who::RawShaRecv, _) => "raw tokio copy + SHA-256 at the receiver".into(),
                (Who::Psvc, _) => "**psvc**".into(),
                (Who::PsvcSha, _) => "**psvc stream + SHA-256 at both ends**".into(),
                (Who::PsvcShaRecv, _) => "**psvc stream + SHA-256 at the receiver**".into(),
                (Who::PsvcClient, _) => "psvc Client → psvc".into(),
                (Who::PsvcPipelined, _) => "**psvc, 64 publishes in flight**".into(),
                (Who::Node, _) => "vsoa-node (C core)".into(),
                (Who::Python, _) => "vsoa-python".into(),
                (Who::Nats, _) => "nats-server".into(),
                (Who::Mosquitto, _) => "mosquitto".into(),
                (Who::Sha, _) => "SHA-256 alone (client CPU)".into(),
                (Who::Json, _) => "**psvc typed call, JSON**".into(),
                (Who::Postcard, _) => "**psvc typed call, postcard**".into(),
                (Who::Raw, _) => "raw".into(),
            }
        }

        fn note(self, m: usize) -> &'static str {
            match (self, m) {
                (Who::Raw, 1..=3) => {
                    "Framed<LengthDelimitedCodec> split + forward, current_thread; same bytes per request behind a 4-byte length"
                }
                (Who::Psvc, 1..=3) => {
                    "Commander route /echo (Response with the request's param + data), actix System"
                }
                (Who::PsvcClient, _) => {
                    "psvc::client::Client::rpc(Rpc::get(\"/echo\").data(..)) in an actix System: includes the client's cost"
                }
                (Who::Node, 1..=3) => "tests/peers/node_echo_server.js, npm vsoa (native binding)",
                (Who::Python, 1..=3) => {
                    "tests/peers/py_echo_server.py, PyPI vsoa (threads + select)"
                }
                (Who::Raw, 4) => {
                    "publisher loop in the server process, bounded queue (1,024) + batching writer per subscriber"
                }
                (Who::Psvc, 4) => {
                    "publisher loop in the server process: broker.send(Publish).await, one at a time; subscribers acknowledge progress (flow control)"
                }
                (Who::PsvcPipelined, _) => {
                    "same, up to 64 broker.send futures in flight (FuturesOrdered), each Delivered checked"
                }
                (Who::Nats, 4) => {
                    "publisher is a client connection in the subscriber process (same window)"
                }
                (Who::Mosquitto, 4) => {
                    "QoS 0; publisher is a client connection in the subscriber process (same window)"
                }
                (Who::Raw, 5) => "write_all of 256 KiB chunks; client reads 256 KiB at a time",
                (Who::RawShaRecv, _) => {
                    "same; the client hashes on a second thread while the bytes flow"
                }
                (Who::RawSha, _) => {
                    "same; SHA-256 at both ends, each on a second thread while the bytes flow"
                }
                (Who::Psvc, 5) => {
                    "Commander route: Tunnel::open → reply tunid → write_all 256 KiB chunks; raw client"
                }
                (Who::PsvcShaRecv, _) => {
                    "server writes 256 KiB chunks (no hash); client: psvc Client::rpc + Client::stream + psvc::stream::copy into a sink; digest checked"
                }
                (Who::PsvcSha, _) => {
                    "server: psvc::stream::copy (pattern reader → tunnel); client: psvc Client::rpc + Client::stream + psvc::stream::copy into a sink; digest checked"
                }
                (Who::Node, 5) | (Who::Python, 5) => {
                    "peer script: RPC /stream/download → tunid; **64 MiB** (the scripts' limit), not the full size"
                }
                (Who::Sha, _) => "sha2 crate, 1 MiB updates, no I/O: the hashing bound",
                (Who::Json, _) => "Client::call, serde_json struct in param",
                (Who::Postcard, _) => "Client::call_postcard, postcard struct in data",
                _ => "",
            }
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

    // ---------------------------------------------------------------- workloads

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

    /// Largest `/stream/download` the peer scripts serve.
    const PEER_STREAM_MAX: usize = 64 << 20;

    /// M5: one stream of `size` bytes (at most [`PEER_STREAM_MAX`] for the peers).
    fn run_stream(
        who: Who,
        pl: &Placement,
        size: usize,
        digest: &str,
        peers: &Peers,
    ) -> Res<Sample> {
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

    // ---------------------------------------------------------------- main

    pub(crate) fn run(args: &[String]) -> Res<()> {
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
        let count_failures = |runs: &Runs| {
            runs.iter()
                .flat_map(|(_, r)| r.iter())
                .filter(|r| r.is_err())
                .count()
        };

        // M1–M3: RPC.
        for (m, conns, window, whos) in [
            (1, 1, 1, &m1_whos),
            (2, 1, M2_WINDOW, &m2_whos),
            (3, M3_CONNS, 1, &m3_whos),
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
            for pl in &placements {
                let label = format!("M{m}/{}", pl.label);
                let primary = if m == 1 { "p50" } else { "rate" };
                let runs = interleave(&label, whos, o.rounds, primary, |who| {
                    run_rpc(who, pl, conns, window, m, &o, &peers)
                });
                failures += count_failures(&runs);
                let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
                if m == 1 {
                    table(
                        &mut out,
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
                        &mut out,
                        m,
                        &runs,
                        Col("calls/s", "rate"),
                        &[Col("p50 µs", "p50"), Col("p99 µs", "p99")],
                        "µs/call",
                    );
                }
                rpc_goals(m, pl, &runs, &mut goals);
            }
        }

        // M4: fan-out.
        if o.only[3] {
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
                    for pl in &placements {
                        let label = format!("M4/{}/{n}x{size}B", pl.label);
                        let runs = interleave(&label, &m4_whos, o.rounds, "rate", |who| {
                            run_fanout(who, pl, n, size, &o, &peers)
                        });
                        failures += count_failures(&runs);
                        let _ = writeln!(out, "Placement {} — {}\n", pl.label, pl.describe);
                        table(
                            &mut out,
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
        }

        // M5: streams.
        if o.only[4] {
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
                    for pl in &placements {
                        let label = format!("M5/{}", pl.label);
                        let runs = interleave(&label, &m5_whos, o.rounds, "rate", |who| {
                            run_stream(who, pl, size, &digest, &peers)
                        });
                        failures += count_failures(&runs);
                        let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
                        table(
                            &mut out,
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
                        for (what, v, raw_same) in
                            [("at the receiver", pr, rr), ("at both ends", ps, rs)]
                        {
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
        }

        // M6: JSON vs postcard.
        if o.only[5] {
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
            for pl in &placements {
                let label = format!("M6/{}", pl.label);
                let runs = interleave(&label, &m6_whos, o.rounds, "p50", |who| {
                    run_typed(who, pl, &o, &peers)
                });
                failures += count_failures(&runs);
                let _ = writeln!(out, "\n### Placement {} — {}\n", pl.label, pl.describe);
                table(
                    &mut out,
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
}
