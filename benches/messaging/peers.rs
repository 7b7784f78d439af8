//! The servers the driver starts: its own server roles and the peers (VSOA Python and Node
//! scripts from `tests/peers/`, `nats-server`, `mosquitto`), and where to find the peers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use psvc_benches::host::command_line;
use psvc_benches::process::{Proc, free_port, wait_port};

use super::Res;
use super::contenders::Who;

/// Environment variable overriding where `tests/peers/install.sh` put the peers.
const PEERS_ENV: &str = "PSVC_PEERS_DIR";

/// Where the peers are and which ones can run (`Err` = why not).
pub(crate) struct Peers {
    repo: PathBuf,
    python: Res<PathBuf>,
    node: Res<(PathBuf, PathBuf)>,
    nats: Res<PathBuf>,
    mosquitto: Res<PathBuf>,
    pub(crate) versions: Vec<String>,
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
    pub(crate) fn probe() -> Self {
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
            .ok_or_else(|| "nats-server not installed (apt-get install nats-server)".to_string())
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

    pub(crate) fn available(&self, w: Who, smoke: bool) -> Result<(), String> {
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
pub(crate) struct Running {
    pub(crate) proc: Proc,
    pub(crate) addr: String,
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
pub(crate) enum Srv {
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

pub(crate) fn start(srv: Srv, cpu: Option<usize>, peers: &Peers) -> Res<Running> {
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
