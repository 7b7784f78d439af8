//! Where a client address leads: `host:port`, `vsoa://host:port/path`, or
//! `vsoa://name` looked up in VSOA's Position service (UDP JSON queries;
//! the service itself is [`crate::position::Position`]).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;

use super::ConnectError;

/// How long a client waits for each answer, and how many times it asks
/// each server (VSOA: 2 s, 2 tries).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
const QUERY_TRIES: usize = 2;
/// Largest query or answer.
pub(crate) const MAX_PACKET: usize = 4096;
/// The `domain` of IPv4 / IPv6 entries (the socket families' numbers).
pub(crate) const AF_INET: u32 = 2;
pub(crate) const AF_INET6: u32 = 10;

/// One name's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The service name.
    pub name: String,
    /// Its IP address.
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// The address family (2 IPv4, 10 IPv6).
    pub domain: u32,
    /// Whether the service uses TLS.
    #[serde(default)]
    pub security: bool,
}

/// Asks the position server at `server` for `name`.
///
/// # Errors
/// No answer in time, or the name is unknown (`NotFound`).
pub async fn lookup(name: &str, server: SocketAddr) -> std::io::Result<SocketAddr> {
    use std::io::{Error, ErrorKind};
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let query = serde_json::json!({ "name": name, "domain": AF_INET }).to_string();
    let mut buf = vec![0u8; MAX_PACKET];
    for _ in 0..QUERY_TRIES {
        socket.send(query.as_bytes()).await?;
        let Ok(received) = tokio::time::timeout(QUERY_TIMEOUT, socket.recv(&mut buf)).await else {
            continue;
        };
        let n = received?;
        let answer: Entry = serde_json::from_slice(&buf[..n])
            .map_err(|_| Error::new(ErrorKind::NotFound, format!("{name} is not registered")))?;
        let ip: std::net::IpAddr = answer
            .addr
            .parse()
            .map_err(|e| Error::new(ErrorKind::InvalidData, format!("bad address: {e}")))?;
        return Ok(SocketAddr::new(ip, answer.port));
    }
    Err(Error::new(
        ErrorKind::TimedOut,
        format!("no answer from position server {server}"),
    ))
}

/// Where the VSOA libraries keep the default position servers.
const POS_FILE: &str = "/etc/vsoa.pos";

/// The position servers to ask when none is configured: `VSOA_POS_SERVER`,
/// then `/etc/vsoa.pos` (read with `tokio::fs`, off the calling thread:
/// clients connect from actix threads).
async fn default_servers() -> Vec<SocketAddr> {
    let parse = |s: &str, sep: char| -> Option<SocketAddr> {
        let (ip, port) = s.trim().split_once(sep)?;
        Some(SocketAddr::new(
            ip.trim().parse().ok()?,
            port.trim().parse().ok()?,
        ))
    };
    if let Ok(list) = std::env::var("VSOA_POS_SERVER") {
        let servers: Vec<SocketAddr> = list.split(',').filter_map(|s| parse(s, ':')).collect();
        if !servers.is_empty() {
            return servers;
        }
    }
    tokio::fs::read_to_string(POS_FILE)
        .await
        .map(|text| text.lines().filter_map(|l| parse(l, ' ')).collect())
        .unwrap_or_default()
}

/// Turns a client address into `host:port`: plain `host:port` is kept;
/// `vsoa://host:port/path` loses scheme and path; `vsoa://name` is looked
/// up in the position service.
pub(crate) async fn resolve(
    addr: &str,
    server: Option<SocketAddr>,
) -> Result<String, ConnectError> {
    let Some(rest) = addr.strip_prefix("vsoa://") else {
        return Ok(addr.to_owned());
    };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(ConnectError::NotFound(format!("{addr}: no host")));
    }
    if let Some((name, port)) = host.rsplit_once(':')
        && port.parse::<u16>().is_ok()
        && !name.ends_with(':')
    {
        let name = if name == "localhost" {
            "127.0.0.1"
        } else {
            name
        };
        return Ok(format!("{name}:{port}"));
    }
    let servers = match server {
        Some(s) => vec![s],
        None => default_servers().await,
    };
    if servers.is_empty() {
        return Err(ConnectError::NotFound(format!(
            "{addr}: no position server (set VSOA_POS_SERVER or /etc/vsoa.pos)"
        )));
    }
    let mut last = String::new();
    for server in servers {
        match lookup(host, server).await {
            Ok(found) => return Ok(found.to_string()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ConnectError::NotFound(format!("{addr}: {last}")))
}
