//! Fuzz target `handshake`: arbitrary bytes at a real psvc server over TCP.
//!
//! Once per process a background thread runs an actix System with
//! `Server::new(Auth::password("fuzz"))` on 127.0.0.1:0 (handshake timeout
//! 200 ms, throttle off), plus one control client that completed the
//! handshake.
//!
//! Input layout: byte 0 picks what goes first on the connection (mod 3):
//!   0: nothing (raw bytes only), 1: a SERVINFO with the right password,
//!   2: a SERVINFO with a wrong password; then the rest of the input.
//! The client writes it all, shuts down its write half and reads until EOF
//! (or 1 s).
//!
//! Checked, for every input:
//!   - everything the server sends is whole, valid packets (`frame::decode`),
//!     all REPLY-flagged;
//!   - nothing at all is answered unless the first packet the server sees is a
//!     SERVINFO request;
//!   - a SERVINFO with a wrong password gets at most one packet back, the
//!     SERVINFO reply with status 1 (password) and the request's seqno, and
//!     nothing after it (later packets are not processed);
//!   - a SERVINFO with the right password is answered first, status 0, same
//!     seqno, a 4-byte client id in data;
//!   - every 64 inputs the control connection's PINGECHO comes back with its
//!     seqno: the server survives everything.
//! Counters (EOF / read timeout / reset) are printed every 4096 inputs.
#![no_main]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use psvc::frame::{self, Flags, Frame, Kind, MAX_TCP_PACKET, Status};
use psvc::socket::{Auth, Server, ServerOptions, Throttle};

const PASSWORD: &str = "fuzz";

struct Harness {
    addr: SocketAddr,
    control: Mutex<Control>,
    inputs: AtomicU64,
    eof: AtomicU64,
    timeouts: AtomicU64,
    resets: AtomicU64,
}

struct Control {
    stream: TcpStream,
    buf: BytesMut,
    seqno: u32,
}

fn encode(f: &Frame) -> BytesMut {
    let mut b = BytesMut::new();
    frame::encode(f, &mut b, MAX_TCP_PACKET).expect("encode");
    b
}

fn hello(password: &str, seqno: u32) -> Frame {
    Frame::new(Kind::ServInfo)
        .seqno(seqno)
        .param(serde_json::json!({ "passwd": password }).to_string())
}

/// Reads one whole frame from `stream`.
fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Frame {
    loop {
        match frame::decode(buf, MAX_TCP_PACKET) {
            Ok(f) => return f,
            Err(frame::Error::Incomplete(_)) => {}
            Err(e) => panic!("control connection: server sent a malformed packet: {e}"),
        }
        let mut tmp = [0u8; 4096];
        let n = match stream.read(&mut tmp) {
            Ok(n) => n,
            // libFuzzer's -timeout alarm (SIGALRM) interrupts blocking calls.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("control connection: read failed: {e}"),
        };
        assert!(n > 0, "control connection closed by the server");
        buf.extend_from_slice(&tmp[..n]);
    }
}

fn start_server() -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("psvc-server".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut options = ServerOptions::default();
                options.handshake_timeout = Duration::from_millis(200);
                options.throttle = Throttle {
                    free_attempts: u32::MAX,
                    ..Throttle::default()
                };
                let handle = Server::new(Auth::password(PASSWORD))
                    .options(options)
                    .start("127.0.0.1:0")
                    .await
                    .expect("server start");
                tx.send(handle.local_addr()).expect("send addr");
                // Keep the handle (and the listener) for the process's life.
                std::future::pending::<()>().await;
                drop(handle);
            });
        })
        .expect("spawn server thread");
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server did not report its address");
    assert!(addr.ip().is_loopback());
    addr
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let addr = start_server();
        let mut stream = TcpStream::connect(addr).expect("control connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .write_all(&encode(&hello(PASSWORD, 1)))
            .expect("control hello");
        let mut buf = BytesMut::new();
        let reply = read_frame(&mut stream, &mut buf);
        assert_eq!(reply.kind, Kind::ServInfo);
        assert!(reply.is_reply());
        assert_eq!(reply.status, Status::OK, "control handshake refused");
        assert_eq!(reply.seqno, 1);
        Harness {
            addr,
            control: Mutex::new(Control {
                stream,
                buf,
                seqno: 1,
            }),
            inputs: AtomicU64::new(0),
            eof: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        }
    })
}

/// PINGECHO on the control connection; the echo must carry the same seqno.
fn health_check(h: &Harness) {
    let mut c = h.control.lock().unwrap_or_else(|e| e.into_inner());
    c.seqno = c.seqno.wrapping_add(1);
    let seqno = c.seqno;
    let ping = encode(&Frame::new(Kind::PingEcho).seqno(seqno));
    c.stream
        .write_all(&ping)
        .unwrap_or_else(|e| panic!("control connection: write failed: {e}"));
    let Control { stream, buf, .. } = &mut *c;
    let echo = read_frame(stream, buf);
    assert_eq!(echo.kind, Kind::PingEcho, "control: expected a PINGECHO echo");
    assert!(echo.is_reply(), "control: echo without REPLY");
    assert_eq!(echo.seqno, seqno, "control: echo seqno");
}

/// Connects to the server. Out of local ports (thousands of connections in
/// TIME_WAIT) is the harness's problem, not the server's: wait and retry.
fn connect(addr: SocketAddr) -> TcpStream {
    let mut tries = 0;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("connect {addr}: {e} (is the server still accepting?)"),
        }
    }
}

/// What the server should make of the first packet on the connection.
enum Gate {
    /// Not a SERVINFO request: nothing may be answered.
    Silent,
    /// SERVINFO with the right password.
    Accept(u32),
    /// SERVINFO with a wrong/missing password.
    Reject(u32),
}

fn gate(sent: &[u8]) -> Gate {
    let mut b = BytesMut::from(sent);
    match frame::decode(&mut b, MAX_TCP_PACKET) {
        Ok(f) if f.kind == Kind::ServInfo && !f.is_reply() => {
            // The same reading as the server's.
            let param: serde_json::Value = serde_json::from_slice(&f.param).unwrap_or_default();
            if param.get("passwd").and_then(serde_json::Value::as_str) == Some(PASSWORD) {
                Gate::Accept(f.seqno)
            } else {
                Gate::Reject(f.seqno)
            }
        }
        _ => Gate::Silent,
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let n = h.inputs.fetch_add(1, Ordering::Relaxed) + 1;

    let mut sent = Vec::with_capacity(rest.len() + 64);
    match mode % 3 {
        1 => sent.extend_from_slice(&encode(&hello(PASSWORD, u32::from(mode)))),
        2 => sent.extend_from_slice(&encode(&hello("not-the-password", u32::from(mode)))),
        _ => {}
    }
    sent.extend_from_slice(rest);

    let mut conn = connect(h.addr);
    conn.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    conn.set_write_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    // The server may already have closed: write errors are fine.
    let _ = conn.write_all(&sent);
    let _ = conn.shutdown(Shutdown::Write);

    let mut got = Vec::new();
    let mut tmp = [0u8; 8192];
    let mut eof = false;
    loop {
        match conn.read(&mut tmp) {
            Ok(0) => {
                eof = true;
                h.eof.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Ok(k) => got.extend_from_slice(&tmp[..k]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                h.timeouts.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Err(_) => {
                h.resets.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    drop(conn);

    // Everything the server sent must be valid packets.
    let mut buf = BytesMut::from(&got[..]);
    let mut replies = Vec::new();
    loop {
        match frame::decode(&mut buf, MAX_TCP_PACKET) {
            Ok(f) => replies.push(f),
            Err(frame::Error::Incomplete(_)) => {
                assert!(
                    !eof || buf.is_empty(),
                    "server closed the connection inside a packet ({} bytes pending)",
                    buf.len()
                );
                break;
            }
            Err(e) => panic!("server sent a malformed packet: {e} (output {got:02x?})"),
        }
    }
    for r in &replies {
        assert!(r.is_reply(), "server sent a non-REPLY packet: {r:?}");
    }

    match gate(&sent) {
        Gate::Silent => assert!(
            replies.is_empty(),
            "server answered before a SERVINFO: {replies:?}"
        ),
        Gate::Accept(seqno) => {
            if let Some(first) = replies.first() {
                assert_eq!(first.kind, Kind::ServInfo, "first reply: {first:?}");
                assert_eq!(first.status, Status::OK, "right password refused");
                assert_eq!(first.seqno, seqno);
                assert_eq!(first.data.len(), 4, "client id");
            }
        }
        Gate::Reject(seqno) => {
            assert!(
                replies.len() <= 1,
                "server kept talking after a wrong password: {replies:?}"
            );
            if let Some(first) = replies.first() {
                assert_eq!(first.kind, Kind::ServInfo);
                assert_eq!(first.status, Status::PASSWORD, "wrong password accepted");
                assert_eq!(first.seqno, seqno);
                assert!(!first.flags.contains(Flags::TUNNEL));
            }
        }
    }

    if n % 64 == 0 {
        health_check(h);
    }
    if n % 4096 == 0 {
        eprintln!(
            "handshake harness: {n} inputs, eof {} timeouts {} resets {}",
            h.eof.load(Ordering::Relaxed),
            h.timeouts.load(Ordering::Relaxed),
            h.resets.load(Ordering::Relaxed)
        );
    }
});
