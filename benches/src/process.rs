//! Processes of the `network` and `messaging` harnesses: role and peer processes pinned with
//! `taskset` and driven over their stdin/stdout, and the CPU time they use (from `/proc`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

type Res<T> = Result<T, String>;

/// `sh` wrapper: soft `RLIMIT_NOFILE` raised to the hard limit, then `exec` the program.
pub const SH_ULIMIT: &str = "ulimit -n \"$(ulimit -H -n)\" 2>/dev/null; exec \"$@\"";

/// A process; killed (and reaped) when dropped, so a panic or an early return of the driver
/// leaves nothing behind. Roles also exit by themselves when their stdin closes.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Last stderr lines of a peer (roles inherit stderr). Peers do not read stdin, so
    /// they are killed at once when dropped.
    errors: Option<Arc<Mutex<VecDeque<String>>>>,
    /// How long a dropped role may take to exit on EOF before it is killed.
    grace: Duration,
}

impl Proc {
    /// This binary with `--role …`.
    pub fn role(name: &str, cpu: Option<usize>, role: &[&str]) -> Res<Proc> {
        Self::role_env(name, cpu, role, &[])
    }

    /// This binary with `--role …` and the extra environment `env`.
    pub fn role_env(
        name: &str,
        cpu: Option<usize>,
        role: &[&str],
        env: &[(&str, String)],
    ) -> Res<Proc> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let args: Vec<String> = std::iter::once("--role".to_string())
            .chain(role.iter().map(|s| s.to_string()))
            .collect();
        Self::spawn(name, cpu, &exe, &args, env, false)
    }

    /// Any program, under `taskset -c CPU` when `cpu` is given and the [`SH_ULIMIT`] wrapper;
    /// with `capture_stderr` (a peer) its stderr is kept for error messages.
    pub fn spawn(
        name: &str,
        cpu: Option<usize>,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        capture_stderr: bool,
    ) -> Res<Proc> {
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "sh", "-c", SH_ULIMIT, "sh"]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", SH_ULIMIT, "sh"]);
                c
            }
        };
        cmd.arg(program).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("{name}: no stdout"))?;
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let errors = child.stderr.take().map(|stderr| {
            let tail = Arc::new(Mutex::new(VecDeque::new()));
            let t = tail.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut q) = t.lock() {
                        if q.len() >= 8 {
                            q.pop_front();
                        }
                        q.push_back(line);
                    }
                }
            });
            tail
        });
        let grace = Duration::from_millis(if capture_stderr { 0 } else { 300 });
        Ok(Proc {
            name: name.to_string(),
            child,
            stdin,
            lines,
            errors,
            grace,
        })
    }

    /// Lets a dropped role `grace` to exit on EOF before it is killed (default 300 ms; a peer: 0).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Process id (of `taskset`/`sh`, which `exec` the program).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured stderr tail, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.errors
            .as_ref()
            .and_then(|t| t.lock().ok().map(|q| q.iter().cloned().collect::<Vec<_>>()))
            .filter(|v| !v.is_empty())
            .map(|v| format!(" (stderr: {})", v.join(" / ")))
            .unwrap_or_default()
    }

    /// The next line starting with `key ` (its rest), within `timeout`. A line `error …`
    /// fails at once.
    pub fn expect(&self, key: &str, timeout: Duration) -> Res<String> {
        self.next_line(
            timeout,
            |line| {
                line.strip_prefix(key).and_then(|r| {
                    if r.is_empty() {
                        Some(r.to_string())
                    } else {
                        r.strip_prefix(' ').map(str::to_string)
                    }
                })
            },
            Some(key),
        )
    }

    /// The first `want(line)` that is `Some`, within `timeout`. A line `error …` fails at once.
    pub fn expect_line(
        &self,
        timeout: Duration,
        want: impl Fn(&str) -> Option<String>,
    ) -> Res<String> {
        self.next_line(timeout, want, None)
    }

    fn next_line(
        &self,
        timeout: Duration,
        want: impl Fn(&str) -> Option<String>,
        key: Option<&str>,
    ) -> Res<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = want(&line) {
                        return Ok(v);
                    }
                    if let Some(e) = line.strip_prefix("error ") {
                        return Err(format!("{}: {e}", self.name));
                    }
                    eprintln!("[{}] {line}", self.name);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(match key {
                        Some(key) => format!(
                            "{}: no `{key}` within {timeout:?}{}",
                            self.name,
                            self.stderr_tail()
                        ),
                        None => format!(
                            "{}: nothing expected within {timeout:?}{}",
                            self.name,
                            self.stderr_tail()
                        ),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Let the stderr reader catch up before reporting.
                    if self.errors.is_some() {
                        thread::sleep(Duration::from_millis(100));
                    }
                    return Err(match key {
                        Some(key) => {
                            format!("{}: exited before `{key}`{}", self.name, self.stderr_tail())
                        }
                        None => format!("{}: exited{}", self.name, self.stderr_tail()),
                    });
                }
            }
        }
    }

    /// Writes `line` to the process's stdin.
    pub fn send(&mut self, line: &str) -> Res<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin closed", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: {e}", self.name))
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        // Give a role a moment to exit on EOF, then kill it (a peer at once).
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `taskset -c CPU` runs here.
pub fn taskset_works(cpu: usize) -> bool {
    Command::new("taskset")
        .args(["-c", &cpu.to_string(), "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A free loopback port (bound and released; the peer binds it right after).
pub fn free_port() -> Res<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Waits until `port` accepts connections (at most 5 s) or the process exits.
pub fn wait_port(p: &mut Proc, port: u16) -> Res<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if p.exited() {
            thread::sleep(Duration::from_millis(50));
            return Err(format!("{} exited at start{}", p.name, p.stderr_tail()));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "{}: port {port} not open within 5 s{}",
        p.name,
        p.stderr_tail()
    ))
}

// ------------------------------------------------------------------------------ CPU time

/// CPU time of a process, all threads (`/proc/<pid>/task/*/schedstat`, ns on CPU).
pub fn proc_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// CPU time of every other task on the machine (kernel threads included), in ns: all
/// `/proc/<pid>/task/*/schedstat` but those of `skip` and of this driver.
pub fn others_cpu_ns(skip: &[u32]) -> u64 {
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    procs
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me && !skip.contains(pid))
        .map(proc_cpu_ns)
        .sum()
}

/// CPU times at one instant: of the server (if any) and client processes, and of the rest.
#[derive(Clone, Copy)]
pub struct CpuMark {
    /// When.
    pub at: Instant,
    /// ns of every other task ([`others_cpu_ns`]).
    pub others: u64,
    /// ns of the server (0 without one).
    pub server: u64,
    /// ns of the client.
    pub client: u64,
}

impl CpuMark {
    /// Reads the CPU times now.
    pub fn take(server: Option<u32>, client: u32) -> Self {
        let skip: Vec<u32> = server.into_iter().chain([client]).collect();
        Self {
            at: Instant::now(),
            others: others_cpu_ns(&skip),
            server: server.map_or(0, proc_cpu_ns),
            client: proc_cpu_ns(client),
        }
    }
}

// ------------------------------------------------------------------------------ placements

/// Where the server and the client of a run are pinned.
pub struct Placement {
    /// `A`, `B` or `U` (unpinned).
    pub label: &'static str,
    /// For the report.
    pub describe: String,
    /// The server's CPU (`None`: unpinned).
    pub server: Option<usize>,
    /// The client's CPU (`None`: unpinned).
    pub client: Option<usize>,
}

/// Whether runs are pinned, and the placements: A (server and client on CPU 0, described as
/// `describe_a`) and B (server on CPU 0, client on CPU 1; left out, with a note, if CPU 1 is
/// unavailable or for the reason `skip_b`), or U (unpinned) without `pin` or `taskset`.
pub fn placements(pin: bool, describe_a: &str, skip_b: Option<&str>) -> (bool, Vec<Placement>) {
    let pinned = pin && taskset_works(0);
    let split = pinned && taskset_works(1);
    if pin && !pinned {
        eprintln!("note: `taskset -c 0` unavailable; running unpinned");
    }
    let mut placements = Vec::new();
    if pinned {
        placements.push(Placement {
            label: "A",
            describe: describe_a.to_string(),
            server: Some(0),
            client: Some(0),
        });
        if let Some(why) = skip_b {
            eprintln!("note: {why}: placement B skipped");
        } else if split {
            placements.push(Placement {
                label: "B",
                describe: "server on CPU 0, client on CPU 1".to_string(),
                server: Some(0),
                client: Some(1),
            });
        } else {
            eprintln!("note: CPU 1 unavailable; placement B skipped");
        }
    } else {
        placements.push(Placement {
            label: "U",
            describe: "unpinned".to_string(),
            server: None,
            client: None,
        });
    }
    (pinned, placements)
}
