//! Wire formats shared by the client and server roles: VSOA (psvc and the VSOA peers), the raw
//! length-prefixed baseline, NATS and MQTT 3.1.1, each written by hand so every server is driven
//! by equally minimal client code.

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
pub(crate) async fn vsoa_request(s: &mut TcpStream, inbuf: &mut Inbuf, req: &Frame) -> Res<Frame> {
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
pub(crate) fn parse_delivery(sub: Sub, buf: &[u8], size: usize) -> Res<Option<(Delivery, usize)>> {
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
                    .ok_or_else(|| format!("bad MSG line {:?}", String::from_utf8_lossy(line)))?;
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
