//! The role side of the `network` and `messaging` harnesses: what a server or client process
//! (the bench binary re-executed with `--role …`) needs around its workload.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, String>;

/// `main` of a harness binary: `--role …` runs `role` with the rest of the arguments, anything
/// else `driver`. A failure is printed on stdout too (`error …`, where the driver reads a
/// role's), and on stderr after `bench`; exit code 2.
pub fn main(
    bench: &str,
    role: impl FnOnce(&[String]) -> Res<()>,
    driver: impl FnOnce(&[String]) -> Res<()>,
) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().is_some_and(|a| a == "--role") {
        role(&args[1..])
    } else {
        driver(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error {e}");
            eprintln!("{bench}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The arguments of a role (after `--role`).
pub struct RoleArgs<'a>(pub &'a [String]);

impl<'a> RoleArgs<'a> {
    /// Argument `i`.
    pub fn arg(&self, i: usize) -> Res<&'a str> {
        let args = self.0;
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("role arguments missing: {args:?}"))
    }

    /// Argument `i` as seconds.
    pub fn secs(&self, i: usize) -> Res<Duration> {
        self.arg(i)?
            .parse::<f64>()
            .map(Duration::from_secs_f64)
            .map_err(|e| format!("{e}"))
    }

    /// Argument `i` as a count.
    pub fn num(&self, i: usize) -> Res<usize> {
        self.arg(i)?
            .parse::<usize>()
            .map_err(|e| format!("argument {i}: {e}"))
    }
}

/// Accepts on `listener` for `lifetime`, handing each connection (TCP_NODELAY set) to `serve`.
pub async fn accept_loop(
    listener: TcpListener,
    lifetime: Duration,
    mut serve: impl FnMut(TcpStream),
) -> Res<()> {
    let deadline = tokio::time::Instant::now() + lifetime;
    loop {
        let Ok(accepted) = tokio::time::timeout_at(deadline, listener.accept()).await else {
            return Ok(());
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        serve(stream);
    }
}

/// A loopback socket address (anything else is refused).
pub fn addr(s: &str) -> Res<SocketAddr> {
    let a: SocketAddr = s.parse().map_err(|e| format!("address {s:?}: {e}"))?;
    if !a.ip().is_loopback() {
        return Err(format!("{a} is not a loopback address"));
    }
    Ok(a)
}

/// An error mapper: `what: error`.
pub fn io<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// A current_thread tokio runtime with I/O and time.
pub fn current_thread() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("runtime"))
}

/// Hands every stdin line (trimmed) to `on_line` on a thread of its own; exits the process on
/// EOF (the driver closed the pipe or died) with 0, or after `lifetime` with 3.
pub fn control_thread(lifetime: Duration, mut on_line: impl FnMut(&str) + Send + 'static) {
    std::thread::spawn(move || {
        std::thread::spawn(move || {
            std::thread::sleep(lifetime);
            std::process::exit(3);
        });
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) => on_line(l.trim()),
                Err(_) => break,
            }
        }
        std::process::exit(0);
    });
}

/// Keeps the process (and its CPU counters) around until the driver closes stdin.
pub fn linger() {
    let mut sink = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut sink)
        .is_ok_and(|n| n > 0)
    {
        sink.clear();
    }
}

/// Exits the process (with 4) after `limit`, whatever happens.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        std::process::exit(4);
    });
}
