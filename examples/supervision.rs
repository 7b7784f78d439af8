//! Supervision strategies, a crash, a restart, and an escalation.
//!
//! Run it with `cargo run --example supervision`.
//!
//! 1. one_for_one: a panicking `camera` is restarted alone.
//! 2. rest_for_one: when `bus` fails, `camera` and `recorder` (started after
//!    it) are restarted too.
//! 3. a custom strategy: glitches restart after a cool-down, a fatal fault
//!    escalates; the nested `devices` supervisor stops its children in
//!    reverse order and the root is told.

use std::time::Duration;

use psvc::prelude::*;

/// A device that can glitch, fail fatally, or panic.
struct Device {
    name: &'static str,
}

impl Actor for Device {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Context<Self>) {
        println!("  + {} started", self.name);
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        println!("  - {} stopped", self.name);
    }
}

#[derive(Debug, thiserror::Error)]
enum DeviceError {
    #[error("glitch")]
    Glitch,
    #[error("fatal fault")]
    Fatal,
}

#[derive(Message)]
#[rtype(result = "()")]
enum Trouble {
    Panic,
    Glitch,
    Fatal,
}

impl Handler<Trouble> for Device {
    type Result = ();
    fn handle(&mut self, msg: Trouble, ctx: &mut Context<Self>) {
        match msg {
            Trouble::Panic => panic!("{} panicked", self.name),
            Trouble::Glitch => ctx.fail(DeviceError::Glitch),
            Trouble::Fatal => ctx.fail(DeviceError::Fatal),
        }
    }
}

fn device(name: &'static str) -> ChildSpec<Device> {
    ChildSpec::new(name, move || Device { name })
}

/// Glitches restart after a 300 ms cool-down; anything fatal escalates.
#[derive(Clone)]
struct CoolDown;

impl Strategy for CoolDown {
    fn decide(&mut self, failure: &Failure<'_>) -> Directive {
        match failure.reason.downcast_error::<DeviceError>() {
            Some(DeviceError::Fatal) => Directive::Escalate,
            _ => Directive::restart_after(Scope::Child, Duration::from_millis(300)),
        }
    }
}

/// Prints what the root is told, then leaves the failed child down.
#[derive(Clone)]
struct Report;

impl Strategy for Report {
    fn decide(&mut self, failure: &Failure<'_>) -> Directive {
        println!(
            "  root told: `{}` exited: {}",
            failure.child.id, failure.reason
        );
        Directive::Stop
    }
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix::main]
async fn main() {
    std::panic::set_hook(Box::new(|_| {})); // panics are reported by the supervisor below

    println!("1. one_for_one: camera panics");
    let (bus, camera, recorder) = (device("bus"), device("camera"), device("recorder"));
    let cam = camera.handle();
    let root = SupervisorSpec::new("one-for-one")
        .intensity(3, Duration::from_secs(5))
        .child(bus)
        .child(camera)
        .child(recorder)
        .start_root();
    pause().await;
    let _ = cam.tell(Trouble::Panic);
    pause().await;
    println!("  (camera panicked and was restarted alone)");
    root.shutdown().await;

    println!("\n2. rest_for_one: bus fails");
    let (bus, camera, recorder) = (device("bus"), device("camera"), device("recorder"));
    let b = bus.handle();
    let root = SupervisorSpec::new("rest-for-one")
        .strategy(RestForOne)
        .intensity(3, Duration::from_secs(5))
        .child(bus)
        .child(camera)
        .child(recorder)
        .start_root();
    pause().await;
    let _ = b.tell(Trouble::Glitch);
    pause().await;
    root.shutdown().await;

    println!("\n3. custom strategy: cool-down, then escalation");
    let (sensor, actuator) = (device("sensor"), device("actuator"));
    let s = sensor.handle();
    let devices = SupervisorSpec::new("devices")
        .strategy(CoolDown)
        .intensity(5, Duration::from_secs(5))
        .child(sensor)
        .child(actuator)
        .into_child();
    let root = SupervisorSpec::new("root")
        .strategy(Report)
        .child(devices)
        .start_root();
    pause().await;
    let _ = s.tell(Trouble::Glitch);
    println!("  (sensor glitched; restart in 300 ms)");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = s.tell(Trouble::Fatal);
    pause().await;
    let info = root.handle().which_children().await.unwrap_or_default();
    for child in info {
        println!("  root's child `{}`: {:?}", child.id, child.state);
    }
    root.shutdown().await;
}
