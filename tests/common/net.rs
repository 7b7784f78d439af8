//! Raw VSOA peers for the network tests: a plain tokio socket that writes
//! and reads packets by hand, so tests can send exactly the bytes they mean.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use bytes::BytesMut;
use psvc::frame::{self, Frame, Kind, MAX_TCP_PACKET};
use psvc::socket::{Auth, ClientEvent, Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        frame::encode(frame, &mut out, MAX_TCP_PACKET).unwrap();
        self.send_bytes(&out).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` if the server closed the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match frame::decode(&mut self.buf, MAX_TCP_PACKET) {
                    Ok(f) => return Some(f),
                    Err(frame::Error::Incomplete(_)) => {}
                    Err(e) => panic!("server sent a malformed packet: {e}"),
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("no packet and no close within 10 s")
    }

    /// Handshakes; returns the SERVINFO reply.
    pub async fn hello(&mut self, password: Option<&str>) -> Frame {
        let mut hello = Frame::new(Kind::ServInfo).seqno(1);
        if let Some(pw) = password {
            hello = hello.param(format!("{{\"passwd\":\"{pw}\"}}"));
        }
        self.send(&hello).await;
        self.recv().await.expect("no SERVINFO reply")
    }

    /// Sends `hello` (a SERVINFO of your own) and returns the reply.
    pub async fn hello_frame(&mut self, hello: Frame) -> Frame {
        self.send(&hello).await;
        self.recv().await.expect("no SERVINFO reply")
    }

    /// Handshakes without a password; returns the client id from SERVINFO.
    pub async fn hello_id(&mut self) -> u32 {
        client_id(&self.hello(None).await)
    }

    /// Asserts the server closes the connection (reading whatever it still
    /// sends) and returns the packets received before the close.
    pub async fn expect_closed(&mut self) -> Vec<Frame> {
        let mut got = Vec::new();
        while let Some(f) = self.recv().await {
            got.push(f);
        }
        got
    }

    pub async fn ping(&mut self, seqno: u32) -> Frame {
        self.send(&Frame::new(Kind::PingEcho).seqno(seqno)).await;
        self.recv().await.expect("no ping reply")
    }
}

/// The client id in a SERVINFO reply.
pub fn client_id(reply: &Frame) -> u32 {
    u32::from_be_bytes(reply.data[..4].try_into().expect("4-byte client id"))
}

/// Waits (bounded) until `n` clients have connected.
pub async fn until_connected(log: &EventLog, n: usize) {
    until_event(log, |e| {
        e.iter()
            .filter(|e| matches!(e, ClientEvent::Connected(_)))
            .count()
            == n
    })
    .await;
}

/// Collects [`ClientEvent`]s.
#[derive(Default)]
pub struct Events(pub std::sync::Arc<std::sync::Mutex<Vec<ClientEvent>>>);

impl Actor for Events {
    type Context = Context<Self>;
}

impl Handler<ClientEvent> for Events {
    type Result = ();
    fn handle(&mut self, e: ClientEvent, _: &mut Self::Context) {
        self.0.lock().unwrap().push(e);
    }
}

pub type EventLog = std::sync::Arc<std::sync::Mutex<Vec<ClientEvent>>>;

/// A server on 127.0.0.1:0 with an event log.
pub async fn server(server: Server) -> (ServerHandle, EventLog) {
    let log = EventLog::default();
    let events = Events(log.clone()).start();
    let handle = server
        .on_client(events.recipient())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    (handle, log)
}

pub async fn anonymous() -> (ServerHandle, EventLog) {
    server(Server::new(Auth::anonymous())).await
}

/// Waits (bounded) until `cond` holds on the event log.
pub async fn until_event(log: &EventLog, mut cond: impl FnMut(&[ClientEvent]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if cond(&log.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event not seen: {:?}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Collects a client's [`psvc::client::ClientMessage`]s.
pub struct Inbox(pub std::sync::Arc<std::sync::Mutex<Vec<psvc::client::ClientMessage>>>);

impl Actor for Inbox {
    type Context = Context<Self>;
}

impl Handler<psvc::client::ClientMessage> for Inbox {
    type Result = ();
    fn handle(&mut self, msg: psvc::client::ClientMessage, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

/// A server on 127.0.0.1:0 serving `commander`, with a broker.
pub async fn serve(
    commander: psvc::commander::Commander,
) -> (ServerHandle, Addr<psvc::broker::Broker>) {
    serve_with(Server::new(Auth::anonymous()), commander).await
}

/// [`serve`] with a server of your own (auth, options).
pub async fn serve_with(
    server: Server,
    commander: psvc::commander::Commander,
) -> (ServerHandle, Addr<psvc::broker::Broker>) {
    let broker = psvc::broker::Broker::new().start();
    let handle = server
        .commands(commander.commands())
        .broker(broker.clone().recipient())
        .start("127.0.0.1:0")
        .await
        .unwrap();
    (handle, broker)
}

/// The live session with client id `id`.
pub async fn session(srv: &ServerHandle, id: u32) -> psvc::socket::SessionRef {
    srv.sessions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id() == id)
        .unwrap_or_else(|| panic!("no session with client id {id}"))
}

/// A connected psvc client.
pub async fn connect(srv: &ServerHandle) -> psvc::client::Client {
    psvc::client::Client::connect(psvc::client::ClientOptions::new(
        srv.local_addr().to_string(),
    ))
    .await
    .unwrap()
}

impl Inbox {
    /// A new inbox listening to `client`.
    pub async fn listen(client: &psvc::client::Client) -> Inbox {
        let inbox = Inbox(Default::default());
        let addr = Inbox(inbox.0.clone()).start();
        client.on_message(addr.recipient()).await.unwrap();
        inbox
    }

    /// The (url, quick) of every publish received so far.
    pub fn published(&self) -> Vec<(String, bool)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                psvc::client::ClientMessage::Published { frame, quick } => {
                    Some((frame.url_str().unwrap().to_owned(), *quick))
                }
                _ => None,
            })
            .collect()
    }

    /// Every datagram received so far, with its quick flag.
    pub fn datagrams(&self) -> Vec<(Frame, bool)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                psvc::client::ClientMessage::Datagram { frame, quick } => {
                    Some((frame.clone(), *quick))
                }
                _ => None,
            })
            .collect()
    }
}
