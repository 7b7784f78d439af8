//! The service lifecycle: init / run / destroy, signals and live config.
//!
//! Run it with `cargo run --example lifecycle`, then press Ctrl-C (or send
//! SIGTERM): `run` sees the shutdown request, `destroy` runs, the actors stop
//! in reverse order, and the process exits with 0. A second Ctrl-C during
//! the shutdown forces the stop (exit code 130).
//!
//! `kill -HUP <pid>` reloads the configuration (`psvc.conf` in the working
//! directory, if any) and the `greeter` actor prints the new greeting from
//! the `[demo]` section. A bad file is logged and the old configuration kept.
//!
//! Settings (file `[demo]` section or environment):
//! - `PSVC_DEMO__GREETING`: what the greeter says;
//! - `PSVC_DEMO__DESTROY_DELAY`: how long `destroy` takes (e.g. `30s`).

use std::time::Duration;

use psvc::prelude::*;
use psvc::service::BoxError;

struct Greeter {
    greeting: String,
}

impl Actor for Greeter {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        tracing::info!(greeting = %self.greeting, "greeter started");
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!("greeter stopped");
    }
}

impl Handler<ConfigReloaded> for Greeter {
    type Result = ();
    fn handle(&mut self, msg: ConfigReloaded, _: &mut Context<Self>) {
        if let Ok(greeting) = msg.0.get::<String>("demo.greeting") {
            self.greeting = greeting;
        }
        tracing::info!(greeting = %self.greeting, "config reloaded");
    }
}

struct Lifecycle;

impl Service for Lifecycle {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        tracing::info!("init: starting the greeter");
        let greeting = ctx
            .config()
            .get::<String>("demo.greeting")
            .unwrap_or_else(|_| "hello".to_owned());
        let greeter = ctx
            .spawn(ChildSpec::new("greeter", move || Greeter {
                greeting: greeting.clone(),
            }))
            .await?;
        // follows the greeter across restarts
        ctx.subscribe_reload(greeter.recipient());
        Ok(())
    }

    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        tracing::info!(pid = std::process::id(), "run: waiting for a signal");
        ctx.shutdown_requested().await;
        tracing::info!("run: shutdown requested");
        Ok(())
    }

    async fn destroy(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let delay = ctx
            .config()
            .get::<String>("demo.destroy_delay")
            .ok()
            .and_then(|d| humantime::parse_duration(&d).ok())
            .unwrap_or(Duration::ZERO);
        tracing::info!(?delay, "destroy: cleaning up");
        tokio::time::sleep(delay).await;
        tracing::info!("destroy: done");
        Ok(())
    }
}

fn main() -> ExitStatus {
    ServiceSystem::new("lifecycle")
        .args(std::env::args_os())
        .run(Lifecycle)
}
