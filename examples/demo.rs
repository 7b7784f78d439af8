//! The main psvc demo: a small supervised service on embedded defaults.
//!
//! Run it with `cargo run --example demo` (no config file, no server needed).
//!
//! A `sensor` actor takes readings and panics on every fourth one. The panic
//! is contained: the root supervisor restarts the sensor after a short
//! backoff, and a `monitor` actor keeps polling it through a `ChildRef`,
//! which reaches whichever instance is running. The log (console and
//! `logs/demo.log`) shows each crash and restart. After 3 seconds the demo
//! stops itself gracefully (set `PSVC_DEMO__RUN_FOR=0` to run until Ctrl-C).

use std::time::Duration;

use psvc::prelude::*;
use psvc::service::BoxError;

/// Takes readings; panics on every fourth one.
#[derive(Default)]
struct Sensor {
    readings: u32,
}

impl Actor for Sensor {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        tracing::info!("sensor online");
    }
}

/// Asks the sensor for a reading.
#[derive(Message)]
#[rtype(result = "f64")]
struct Read;

impl Handler<Read> for Sensor {
    type Result = f64;
    fn handle(&mut self, _: Read, _: &mut Context<Self>) -> f64 {
        self.readings += 1;
        if self.readings.is_multiple_of(4) {
            panic!("sensor glitch at reading {}", self.readings);
        }
        20.0 + f64::from(self.readings) * 0.5
    }
}

/// Polls the sensor four times a second.
struct Monitor {
    sensor: ChildRef<Sensor>,
}

impl Actor for Monitor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            let sensor = act.sensor.clone();
            ctx.spawn(
                async move {
                    match sensor.ask_timeout(Read, Duration::from_secs(1)).await {
                        Ok(value) => tracing::info!(value, "reading"),
                        Err(err) => tracing::warn!("no reading: {err}"),
                    }
                }
                .into_actor(act),
            );
        });
    }
}

struct Demo;

impl Service for Demo {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let sensor = ctx.spawn(ChildSpec::new("sensor", Sensor::default)).await?;
        ctx.spawn(ChildSpec::new("monitor", move || Monitor {
            sensor: sensor.clone(),
        }))
        .await?;
        Ok(())
    }

    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let run_for = ctx
            .config()
            .get::<String>("demo.run_for")
            .unwrap_or_else(|_| "3s".to_owned());
        let run_for = humantime::parse_duration(&run_for)
            .map_err(|e| format!("demo.run_for = {run_for:?}: {e}"))?;
        tracing::info!(?run_for, "running (Ctrl-C to stop)");
        if run_for.is_zero() {
            ctx.shutdown_requested().await;
        } else {
            tokio::select! {
                () = ctx.shutdown_requested() => {}
                () = tokio::time::sleep(run_for) => tracing::info!("demo time is up"),
            }
        }
        Ok(())
    }

    async fn destroy(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        for child in ctx.root().which_children().await? {
            tracing::info!(child = %child.id, restarts = child.restarts, "final state");
        }
        Ok(())
    }
}

fn main() -> ExitStatus {
    ServiceSystem::new("demo")
        .args(std::env::args_os())
        .root(
            SupervisorSpec::new("root")
                .intensity(5, Duration::from_secs(10))
                .backoff(Backoff::exponential(
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                )),
        )
        .run(Demo)
}
