//! A static HTTP mirror with injectable faults, in front of a repository
//! directory: the "toxic proxy" of the update threat scenarios. It serves
//! GET with `Range: bytes=N-` (206), 404 for missing files, and applies the
//! current [`Fault`] to target files.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the mirror does wrong to files under `targets/`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Answers 200 with the whole file to a Range request.
    IgnoreRange,
    /// The next `n` target responses stop after `fraction` of the body.
    Truncate { times: u32, fraction: f64 },
    /// Sends the file, then more bytes, forever (no Content-Length).
    Endless,
    /// One byte every 100 ms.
    Slow,
    /// Flips one byte in the middle of the body.
    Tamper,
    /// 503 for everything.
    Down,
    /// Serves altered metadata: one byte of every `*.targets.json` changed
    /// (applies to metadata, not targets).
    TamperMetadata,
}

pub struct Mirror {
    pub port: u16,
    pub fault: Arc<Mutex<Fault>>,
    /// Range offsets requested for target files, in order.
    pub ranges: Arc<Mutex<Vec<u64>>>,
    /// Range requests answered with the whole file (200).
    pub ignored: Arc<AtomicUsize>,
}

impl Mirror {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

pub async fn start(root: PathBuf) -> Mirror {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fault = Arc::new(Mutex::new(Fault::None));
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let ignored = Arc::new(AtomicUsize::new(0));
    let (f, r, i) = (fault.clone(), ranges.clone(), ignored.clone());
    actix_rt::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (root, f, r, i) = (root.clone(), f.clone(), r.clone(), i.clone());
            actix_rt::spawn(async move {
                let _ = serve(sock, root, f, r, i).await;
            });
        }
    });
    Mirror {
        port,
        fault,
        ranges,
        ignored,
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    root: PathBuf,
    shared: Arc<Mutex<Fault>>,
    ranges: Arc<Mutex<Vec<u64>>>,
    ignored: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if sock.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let range: Option<u64> = head.lines().find_map(|l| {
        let l = l.to_ascii_lowercase();
        l.strip_prefix("range: bytes=")
            .and_then(|r| r.trim().trim_end_matches('-').parse().ok())
    });
    let current = *shared.lock().unwrap();
    if current == Fault::Down {
        sock.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await?;
        return Ok(());
    }
    let rel = path.trim_start_matches('/');
    let decoded = rel.replace("%2F", "/");
    let file = root.join(&decoded);
    let Ok(mut body) = std::fs::read(&file) else {
        sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    };
    if current == Fault::TamperMetadata && rel.ends_with(".targets.json") {
        // Change a signed value without breaking the JSON.
        let text = String::from_utf8_lossy(&body).replace("\"rollout\": 100", "\"rollout\": 99");
        body = text.into_bytes();
    }
    let is_target = rel.starts_with("targets/");
    if is_target {
        ranges.lock().unwrap().push(range.unwrap_or(0));
    }
    let fault = if is_target { current } else { Fault::None };
    if fault == Fault::Tamper && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0x40;
    }
    let (status, start) = match (range, fault) {
        (Some(off), f) if f != Fault::IgnoreRange && off <= body.len() as u64 => {
            ("206 Partial Content", off as usize)
        }
        _ => ("200 OK", 0),
    };
    if is_target && range.is_some_and(|off| off > 0) && start == 0 {
        ignored.fetch_add(1, Ordering::SeqCst);
    }
    let part = &body[start..];
    match fault {
        Fault::Endless => {
            sock.write_all(format!("HTTP/1.1 {status}\r\nConnection: close\r\n\r\n").as_bytes())
                .await?;
            sock.write_all(part).await?;
            let junk = vec![0x5a; 64 * 1024];
            // Bounded: the client must stop long before this.
            for _ in 0..16_384 {
                sock.write_all(&junk).await?;
            }
        }
        Fault::Slow => {
            sock.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                )
                .as_bytes(),
            )
            .await?;
            for b in part.iter().take(600) {
                sock.write_all(&[*b]).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Fault::Truncate { times, fraction } if times > 0 => {
            *shared.lock().unwrap() = if times > 1 {
                Fault::Truncate {
                    times: times - 1,
                    fraction,
                }
            } else {
                Fault::None
            };
            sock.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                )
                .as_bytes(),
            )
            .await?;
            let cut = ((part.len() as f64) * fraction) as usize;
            sock.write_all(&part[..cut]).await?;
            sock.flush().await?;
        }
        _ => {
            sock.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    part.len()
                )
                .as_bytes(),
            )
            .await?;
            sock.write_all(part).await?;
        }
    }
    let _ = sock.shutdown().await;
    Ok(())
}
