//! The client's output is bounded: against a server that completes the
//! handshake and then reads nothing, the client's queued bytes stay under
//! its send buffer, requests that do not fit fail at once with
//! `SendBufferFull`, and after the send timeout without progress the
//! connection is dropped as a slow server (robot mode reconnects).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::net::{Inbox, Raw};
use psvc::client::{Client, ClientMessage, ClientOptions, RequestError, Robot, Rpc};
use psvc::frame::{Flags, Frame, Kind};
use psvc::supervisor::Backoff;
use tokio::net::{TcpSocket, TcpStream};

/// The client's send buffer in these tests.
const LIMIT: usize = 512 * 1024;
/// Payload of each packet used to fill it.
const CHUNK: usize = 64 * 1024;
/// Most packets sent while filling: far more than the kernel's socket
/// buffers and the send buffer hold together (a few MiB), far less than
/// memory (64 MiB) if the client queued without limit.
const MAX_PACKETS: usize = 1000;

/// A VSOA server that answers SERVINFO and then never reads again. Its
/// receive buffer is small, so the client's output backs up quickly.
struct Hostile {
    addr: SocketAddr,
    /// Handshakes completed.
    handshakes: Arc<AtomicUsize>,
    /// Keeps the connections open (unread).
    _held: tokio::sync::mpsc::UnboundedReceiver<TcpStream>,
}

async fn hostile() -> Hostile {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8).unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let (hold, held) = tokio::sync::mpsc::unbounded_channel();
    let count = handshakes.clone();
    actix::spawn(async move {
        // A bounded number of connections: the tests need two at most.
        for id in 1..=8u32 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut raw = Raw::from_stream(stream);
            let Some(hello) = raw.recv().await else {
                continue;
            };
            assert_eq!(hello.kind, Kind::ServInfo);
            raw.send(
                &Frame::new(Kind::ServInfo)
                    .flags(Flags::REPLY)
                    .seqno(hello.seqno)
                    .param(r#"{"name":"hostile"}"#)
                    .data(id.to_be_bytes().to_vec()),
            )
            .await;
            count.fetch_add(1, Ordering::SeqCst);
            if hold.send(raw.stream).is_err() {
                return;
            }
        }
    });
    Hostile {
        addr,
        handshakes,
        _held: held,
    }
}

/// Sends CHUNK-sized datagrams until one is refused; returns how many were
/// accepted and the refusal.
async fn fill(client: &Client) -> (usize, RequestError) {
    for sent in 0..MAX_PACKETS {
        if let Err(e) = client.datagram("/fill", "", vec![0u8; CHUNK], false).await {
            return (sent, e);
        }
        assert!(client.queued_bytes().await <= LIMIT);
    }
    panic!("{MAX_PACKETS} packets of {CHUNK} bytes queued without a refusal");
}

#[actix_rt::test]
async fn a_server_that_stops_reading_gets_refusals_not_an_unbounded_queue() {
    let server = hostile().await;
    let client = Client::connect(
        ClientOptions::new(server.addr.to_string())
            .quick(false)
            .send_buffer(LIMIT)
            // Longer than the test: the queue stays up while we look at it.
            .send_timeout(common::TIMEOUT * 6),
    )
    .await
    .unwrap();
    let (sent, refusal) = fill(&client).await;
    let queued = client.queued_bytes().await;
    assert!(
        matches!(refusal, RequestError::SendBufferFull { limit: LIMIT, .. }),
        "{refusal:?} after {sent} packets"
    );
    assert!(
        queued <= LIMIT && queued + CHUNK + 64 > LIMIT,
        "queued {queued} of {LIMIT}"
    );
    // A request that does not fit fails at once and is not queued.
    let err = client
        .rpc(Rpc::get("/fill").data(vec![0u8; CHUNK]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::SendBufferFull { queued: q, limit: LIMIT } if q == queued),
        "{err:?}"
    );
    assert!(err.to_string().contains("send buffer full"), "{err}");
    for _ in 0..10 {
        let err = client
            .datagram("/fill", "", vec![0u8; CHUNK], false)
            .await
            .unwrap_err();
        assert!(
            matches!(err, RequestError::SendBufferFull { .. }),
            "{err:?}"
        );
    }
    assert_eq!(client.queued_bytes().await, queued);
    assert!(client.is_connected().await);
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_stalled_server_is_dropped_as_slow_and_robot_mode_reconnects() {
    let server = hostile().await;
    let robot = Robot::default()
        .ping(Duration::from_secs(60), 3)
        .reconnect(Backoff::exponential(
            Duration::from_millis(10),
            Duration::from_millis(100),
        ));
    let client = Client::connect(
        ClientOptions::new(server.addr.to_string())
            .quick(false)
            .send_buffer(LIMIT)
            .send_timeout(Duration::from_millis(200))
            .robot(robot),
    )
    .await
    .unwrap();
    let inbox = Inbox::listen(&client).await;
    // A call queued ahead of the flood, never answered: it fails with the
    // disconnect, not with its (60 s) timeout.
    let pending = client.rpc(Rpc::get("/never"));
    let flood = async {
        // Stops at the first refusal: the buffer is full or, if the send
        // timeout already fired, the client is reconnecting.
        let (_, refusal) = fill(&client).await;
        assert!(
            matches!(
                refusal,
                RequestError::SendBufferFull { .. } | RequestError::NotConnected
            ),
            "{refusal:?}"
        );
    };
    let (pending, ()) = futures::join!(pending, flood);
    match pending.unwrap_err() {
        RequestError::Disconnected(reason) => {
            assert!(reason.contains("slow server"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let disconnects = || {
        inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                ClientMessage::Disconnected(reason) => Some(reason.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    common::until(|| !disconnects().is_empty()).await;
    assert!(
        disconnects()[0].starts_with("slow server"),
        "{:?}",
        disconnects()
    );
    // Robot mode reconnects, with an empty send buffer.
    common::until(|| server.handshakes.load(Ordering::SeqCst) == 2).await;
    common::until(|| {
        inbox
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|m| matches!(m, ClientMessage::Connected(_)))
    })
    .await;
    assert!(client.is_connected().await);
    assert_eq!(client.queued_bytes().await, 0);
    client.datagram("/after", "", "small", false).await.unwrap();
}
