//! A service that updates itself: it runs from `<root>/current/bin/app`,
//! checks a Releaser or mirror on a schedule, installs what the signed
//! metadata approves, restarts into it (graceful shutdown, then exec of the
//! same command line) and reports healthy, so probation can commit it or
//! roll it back.
//!
//! Built by `cargo test`; `tests/self_update.rs` ships this binary as
//! releases 1.0.0 and 1.1.0 (and a broken 1.2.0) and watches it update.
//! By hand:
//!
//! ```sh
//! cargo build --example self_update
//! # … build, approve and serve releases that contain it as bin/app, then:
//! PSVC_UPDATE_PATH=/tmp/app /tmp/app/current/bin/app --set update.sources=vsoa://127.0.0.1:3002
//! ```
//!
//! It prints `running <version>` when it starts (the version is the
//! `versions/<v>` directory it runs from) and, with `[app] listen = ADDR`,
//! answers `/version` there (`{"version", "boot"}`, `boot` new at each
//! start or exec). A broken release, for the rollback tests and
//! benchmarks: with a file `CRASH` beside its binary it exits 3 at once;
//! with `HANG` its `init` never finishes, so it never becomes ready.

use actix::Actor;
use psvc::prelude::*;
use psvc::service::BoxError;
use psvc_actors::update::updater::{Updater, UpdaterOptions};

/// The version this binary was installed as, from its own path.
fn installed_version() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let dir = exe.parent()?.parent()?;
            dir.file_name()?.to_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Default)]
struct App {
    server: Option<psvc::socket::ServerHandle>,
}

impl Service for App {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        if let Ok(listen) = ctx.config().get::<String>("app.listen") {
            // The version, and when this process image started (an exec
            // starts a new one): clients tell restarts apart by it.
            let reply = serde_json::json!({
                "version": installed_version(),
                "boot": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos().to_string())
                    .unwrap_or_default(),
            });
            let commands = psvc::commander::Commander::new()
                .typed("/version", move |_: Option<serde_json::Value>, _| {
                    let reply = reply.clone();
                    async move { Ok::<_, psvc::commander::CommandError>(reply) }
                })
                .commands();
            let server = psvc::socket::Server::new(psvc::socket::Auth::anonymous())
                .commands(commands)
                .start(&listen)
                .await?;
            self.server = Some(server);
        }
        let mut options = UpdaterOptions::from_config(&ctx.config())?;
        options.restart = Some(ctx.shutdown_trigger());
        // Healthy once `init` has returned Ok (a service that must check its
        // devices first sends `Healthy` itself instead).
        options.ready = Some(ctx.readiness());
        Updater::new(options).start();
        println!("running {}", installed_version());
        if std::env::current_exe().is_ok_and(|exe| exe.with_file_name("HANG").exists()) {
            // Never ready: the Updater's health deadline rolls this back.
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    if let Ok(exe) = std::env::current_exe()
        && exe.with_file_name("CRASH").exists()
    {
        eprintln!("broken release: exiting at start-up");
        return std::process::ExitCode::from(3);
    }
    ServiceSystem::new("app").run(App::default()).into()
}
