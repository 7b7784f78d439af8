//! Establishing a connection: TCP connect, TLS, the SERVINFO handshake, each
//! failure mapped to VSOA's connect result code.

use std::io;
use std::rc::Rc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{ClientOptions, ConnectError, ServerInfo};
use crate::net::io::{IoRead, IoWrite, SharedIo, Transport, tune};
use crate::wire::codec::{CodecError, FrameCodec, FrameStream};
use crate::wire::frame::{self, Flags, Frame, Kind, Status};

/// A connection that completed the handshake. The frame stream keeps any
/// bytes the server sent right after its SERVINFO reply.
pub(crate) struct Established {
    pub(crate) io: Rc<SharedIo>,
    pub(crate) frames: FrameStream<IoRead>,
    pub(crate) info: ServerInfo,
    /// The quick UDP channel, connected to the server's quick port.
    pub(crate) quick: Option<tokio::net::UdpSocket>,
}

fn connect_error(e: &io::Error, addr: &str) -> ConnectError {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused | ConnectionReset | HostUnreachable | NetworkUnreachable
        | AddrNotAvailable => ConnectError::Unreachable(format!("{addr}: {e}")),
        TimedOut => ConnectError::NoResponding(format!("{addr}: {e}")),
        _ => ConnectError::Error(format!("{addr}: {e}")),
    }
}

/// The SERVINFO request: TUNNEL with the client's quick UDP port (when it
/// has one) and the password as VSOA sends it.
pub(crate) fn hello(password: Option<&str>, quick_port: Option<u16>) -> Frame {
    let mut hello = Frame::new(Kind::ServInfo);
    if let Some(port) = quick_port {
        hello = hello.tunid(port);
    }
    match password.filter(|p| !p.is_empty()) {
        Some(pw) => hello.param(serde_json::json!({ "passwd": pw }).to_string()),
        None => hello,
    }
}

/// Judges the server's first packet.
pub(crate) fn check_reply(reply: &Frame) -> Result<ServerInfo, ConnectError> {
    if reply.kind != Kind::ServInfo || !reply.flags.contains(Flags::REPLY) {
        return Err(ConnectError::InvalidResponding(format!(
            "expected a SERVINFO reply, got {:?}",
            reply.kind
        )));
    }
    if reply.status == Status::PASSWORD {
        return Err(ConnectError::InvalidPassword);
    }
    if !reply.status.is_ok() {
        return Err(ConnectError::InvalidResponding(format!(
            "SERVINFO status {}",
            reply.status
        )));
    }
    let client_id = match reply.data.get(..4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => {
            return Err(ConnectError::InvalidResponding(
                "SERVINFO without a client id".into(),
            ));
        }
    };
    // Six bytes: the client id and the server's quick port, when it is not
    // the connection's port.
    let quick_port = reply
        .data
        .get(4..6)
        .map(|b| u16::from_be_bytes([b[0], b[1]]));
    Ok(ServerInfo {
        info: String::from_utf8_lossy(&reply.param).into_owned(),
        client_id,
        addr: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        quick_port,
    })
}

/// A UDP socket for the quick channel, connected to the server.
async fn quick_socket(server: std::net::SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    let local: std::net::SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    Ok(socket)
}

async fn establish_inner(options: &ClientOptions) -> Result<Established, ConnectError> {
    if let Some(path) = options.addr.strip_prefix("unix:") {
        if options.tls.is_some() {
            return Err(ConnectError::Tls(
                "TLS is not spoken on a Unix-domain socket".into(),
            ));
        }
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| connect_error(&e, &options.addr))?;
        let server = crate::net::io::UNIX_ADDR;
        return handshake(options, Transport::Unix(stream), server, None).await;
    }
    let resolved = super::resolve::resolve(&options.addr, options.position).await?;
    let addr = resolved.as_str();
    let tcp = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            return Err(ConnectError::NotFound(format!("{addr}: {e}")));
        }
        Err(e) => {
            // Name resolution failures surface as "other" errors from
            // getaddrinfo; report them as "not found".
            if addr.parse::<std::net::SocketAddr>().is_err()
                && tokio::net::lookup_host(addr).await.is_err()
            {
                return Err(ConnectError::NotFound(format!("{addr}: {e}")));
            }
            return Err(connect_error(&e, addr));
        }
    };
    tune(&tcp, options.nodelay, None);
    let server = tcp
        .peer_addr()
        .map_err(|e| ConnectError::Error(format!("{addr}: {e}")))?;
    let quick = match options.quick && options.tls.is_none() {
        true => match quick_socket(server).await {
            Ok(socket) => Some(socket),
            Err(e) => {
                tracing::debug!(error = %e, "no quick channel");
                None
            }
        },
        false => None,
    };
    let transport = match &options.tls {
        None => Transport::Plain(tcp),
        Some(tls) => {
            let stream = tls
                .connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| ConnectError::Tls(e.to_string()))?;
            Transport::TlsClient(Box::new(stream))
        }
    };
    handshake(options, transport, server, quick).await
}

/// SERVINFO over `transport`: the password, the quick port; the reply.
async fn handshake(
    options: &ClientOptions,
    transport: Transport,
    server: std::net::SocketAddr,
    quick: Option<tokio::net::UdpSocket>,
) -> Result<Established, ConnectError> {
    let quick_port = quick
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map(|a| a.port());
    let io = SharedIo::new(transport);
    let mut out = bytes::BytesMut::new();
    frame::encode(
        &hello(options.password.as_deref(), quick_port),
        &mut out,
        frame::MAX_TCP_PACKET,
    )
    .map_err(|e| ConnectError::Error(e.to_string()))?;
    let mut writer = IoWrite(io.clone());
    writer
        .write_all(&out)
        .await
        .map_err(|e| ConnectError::NoResponding(format!("sending SERVINFO: {e}")))?;
    writer
        .flush()
        .await
        .map_err(|e| ConnectError::NoResponding(format!("sending SERVINFO: {e}")))?;
    let mut frames = FrameStream::new(IoRead(io.clone()), FrameCodec::tcp());
    let reply = match frames.next().await {
        Some(Ok(reply)) => reply,
        // Under TLS 1.3 the server judges the client certificate after the
        // client's handshake has finished: its refusal arrives here.
        Some(Err(CodecError::Io(e))) if options.tls.is_some() => {
            return Err(ConnectError::Tls(e.to_string()));
        }
        Some(Err(e)) => return Err(ConnectError::InvalidResponding(e.to_string())),
        None => {
            return Err(ConnectError::NoResponding(
                "server closed the connection during the handshake".into(),
            ));
        }
    };
    let mut info = check_reply(&reply)?;
    info.addr = server;
    if let (Some(socket), Some(port)) = (&quick, info.quick_port)
        && port != server.port()
        && let Err(e) = socket
            .connect(std::net::SocketAddr::new(server.ip(), port))
            .await
    {
        tracing::debug!(error = %e, "quick channel not connected");
    }
    Ok(Established {
        io,
        frames,
        info,
        quick,
    })
}

/// Connects and handshakes within `options.connect_timeout`.
pub(crate) async fn establish(options: ClientOptions) -> Result<Established, ConnectError> {
    match tokio::time::timeout(options.connect_timeout, establish_inner(&options)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::NoResponding(format!(
            "no handshake within {:?}",
            options.connect_timeout
        ))),
    }
}

/// The SUBSCRIBE/UNSUBSCRIBE packet for `urls`: one URL in the url field,
/// several as a JSON list in param (VSOA's form).
pub(crate) fn subscription(urls: &[String], subscribe: bool) -> Frame {
    let kind = if subscribe {
        Kind::Subscribe
    } else {
        Kind::Unsubscribe
    };
    match urls {
        [one] => Frame::new(kind).url(Bytes::from(one.clone())),
        many => Frame::new(kind).param(serde_json::to_string(many).unwrap_or_default()),
    }
}
