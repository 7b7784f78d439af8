//! ModuleServer's design done with psvc: one front door, each module a
//! worker process of its own, supervised, forwarded to by RPC, reloaded
//! when its code changes, and following the config file as it is edited.
//!
//! ```sh
//! cargo run --example module_server
//! # prints {"port": N, "config": "/tmp/…/psvc.conf"}; then, from another shell:
//! psvc call vsoa://127.0.0.1:N/alpha/hello      # {"module":"alpha","pid":…}
//! psvc call vsoa://127.0.0.1:N/beta/hello
//! psvc sys children vsoa://127.0.0.1:N          # the tree: pool, alpha, beta
//! psvc sys help vsoa://127.0.0.1:N
//! kill -9 <alpha's pid>                          # and /alpha/hello answers again
//! # edit the printed config: add [worker.gamma] (copy beta's, another port),
//! # remove [worker.beta]: within a second /gamma/ serves and /beta/ is gone.
//! # touch a module's `watch` file: it reloads without failing a request.
//! ```
//!
//! Without `-c FILE` (or `$PSVC_CONFIG`), it writes a config with two
//! modules on free loopback ports into a temporary directory and follows
//! that one (alpha on a loopback port, beta on a Unix-domain socket). Each
//! module is this same program run as `module_server module NAME
//! PORT|unix:/PATH`: a small psvc service answering
//! `/hello` and `/slow` (`{"ms": N}`, replies after N ms). Any psvc or
//! VSOA service can be a module: `[worker.NAME]` with its `program`,
//! `args` and the `forward` address it serves on.

use std::time::Duration;

use actix::Actor;
use psvc::commander::{CommandError, Commander};
use psvc::prelude::*;
use psvc::service::BoxError;
use psvc::socket::{Auth, Server, ServerHandle};
use psvc_actors::forward::ForwardTable;
use psvc_actors::worker::pool::{ApplyConfig, WorkerPool};

/// The front door: the workers of `[worker.*]`, served under `/NAME/`.
#[derive(Default)]
struct FrontDoor {
    server: Option<ServerHandle>,
}

impl Service for FrontDoor {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let table = ForwardTable::new();
        // The workers sit beside the pool under the root, so /sys/children
        // shows them.
        let pool = WorkerPool::new(ctx.root().clone())
            .forwarding(table.clone())
            .start();
        // Applied now, then at every reload (file change, SIGHUP, /sys/reload).
        let applied = pool.send(ApplyConfig(ctx.config())).await?;
        for (name, reason) in &applied.rejected {
            tracing::warn!(worker = %name, %reason, "module rejected");
        }
        ctx.subscribe_reload(pool.recipient::<psvc::service::ConfigReloaded>());
        let commands = table.routes(ctx.commander());
        let listen = ctx
            .config()
            .get::<String>("app.listen")
            .unwrap_or_else(|_| "127.0.0.1:0".into());
        let server = ctx
            .server(Auth::anonymous())
            .commands(commands.commands())
            .start(listen)
            .await?;
        let config = ctx.config().file().map(|f| f.display().to_string());
        println!(
            "{}",
            serde_json::json!({ "port": server.local_addr().port(), "config": config })
        );
        self.server = Some(server);
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        stop(&mut self.server);
        Ok(())
    }
}

/// A module: answers `/hello` and `/slow` at its address.
struct Module {
    name: String,
    /// `127.0.0.1:PORT`, or `unix:/path`.
    addr: String,
    server: Option<ServerHandle>,
}

#[derive(serde::Deserialize)]
struct Slow {
    ms: u64,
}

impl Service for Module {
    async fn init(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        let me = serde_json::json!({ "module": self.name, "pid": std::process::id() });
        let slow = me.clone();
        let commands = Commander::new()
            .typed("/hello", move |_: Option<serde_json::Value>, _| {
                let me = me.clone();
                async move { Ok::<_, CommandError>(me) }
            })
            .describe("/hello", "which module and process answered")
            .typed("/slow", move |args: Slow, _| {
                let me = slow.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(args.ms.min(10_000))).await;
                    Ok::<_, CommandError>(me)
                }
            })
            .describe("/slow", "answers after {\"ms\": N} milliseconds");
        // Loopback only: the front door is its one client.
        let server = Server::new(Auth::anonymous())
            .commands(commands.commands())
            .start(&self.addr)
            .await?;
        println!("module {} serving on {}", self.name, self.addr);
        self.server = Some(server);
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        stop(&mut self.server);
        Ok(())
    }
}

/// Stops the server, if one was started.
fn stop(server: &mut Option<ServerHandle>) {
    if let Some(server) = server.take() {
        server.stop();
    }
}

/// A free loopback port.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The config for two modules, written to a temporary directory.
fn default_config() -> std::io::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("module_server-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut text = String::from(
        "[PSVC]\nwatch_config = true\nlog_file = false\n\n[app]\nlisten = 127.0.0.1:0\n",
    );
    let alpha = free_port()?;
    let beta = format!("unix:{}", dir.join("beta.sock").display());
    for (name, arg, forward) in [
        ("alpha", alpha.to_string(), format!("127.0.0.1:{alpha}")),
        ("beta", beta.clone(), beta),
    ] {
        let watch = dir.join(format!("{name}.code"));
        std::fs::write(&watch, "1\n")?;
        text.push_str(&format!(
            "\n[worker.{name}]\nprogram = {}\nargs = module {name} {arg}\nforward = {forward}\nwatch = {}\nstop_timeout = 5s\n",
            exe.display(),
            watch.display()
        ));
    }
    let file = dir.join("psvc.conf");
    std::fs::write(&file, text)?;
    Ok(file)
}

fn main() -> ExitStatus {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("module") {
        // A port on 127.0.0.1, or a Unix-domain socket.
        let addr = args.get(3).and_then(|a| match a.parse::<u16>() {
            Ok(port) => Some(format!("127.0.0.1:{port}")),
            Err(_) => a.starts_with("unix:/").then(|| a.clone()),
        });
        let (Some(name), Some(addr)) = (args.get(2), addr) else {
            eprintln!("usage: module_server module NAME PORT|unix:/PATH");
            return ExitStatus::Usage;
        };
        let loader = psvc::config::ConfigLoader::new(format!("module-{name}"))
            .no_file()
            .set("PSVC.log_file", "false");
        return ServiceSystem::new(format!("module-{name}"))
            .config(loader)
            .run(Module {
                name: name.clone(),
                addr,
                server: None,
            });
    }
    let mut system = ServiceSystem::new("module_server");
    let has_config = args.iter().any(|a| a == "-c" || a.starts_with("--config"))
        || std::env::var_os("PSVC_CONFIG").is_some();
    if !has_config {
        match default_config() {
            Ok(file) => system = system.config_file(file),
            Err(err) => {
                eprintln!("module_server: cannot write the default config: {err}");
                return ExitStatus::Config;
            }
        }
    }
    system.args(std::env::args_os()).run(FrontDoor::default())
}
