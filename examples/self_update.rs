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
//! `versions/<v>` directory it runs from) and exits 3 at once when a file
//! `CRASH` sits beside its binary (a broken release, for the rollback test).

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

struct App;

impl Service for App {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let mut options = UpdaterOptions::from_config(&ctx.config())?;
        options.restart = Some(ctx.shutdown_trigger());
        // Healthy once `init` has returned Ok (a service that must check its
        // devices first sends `Healthy` itself instead).
        options.ready = Some(ctx.readiness());
        Updater::new(options).start();
        println!("running {}", installed_version());
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
    ServiceSystem::new("app").run(App).into()
}
