//! The `module_server` example as a user runs it: two modules behind one
//! front door (one on a loopback port, one on a Unix-domain socket); `kill -9` of one and it serves again; config edits (a
//! module added, one removed) applied while a client sends requests
//! continuously, none failing; a change of a module's code reloads it with
//! no failed request, in flight or arriving meanwhile; and the system
//! commands.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::cell::Cell;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use psvc::client::{Client, ClientOptions, Rpc};
use psvc::frame::Status;

/// Bounds every wait here.
const LIMIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A module entry: on a loopback port, or on a Unix-domain socket in `dir`
/// when `port` is `None`.
fn module(dir: &Path, name: &str, port: Option<u16>) -> String {
    let watch = dir.join(format!("{name}.code"));
    if !watch.exists() {
        std::fs::write(&watch, "1\n").unwrap();
    }
    let (arg, forward) = match port {
        Some(port) => (port.to_string(), format!("127.0.0.1:{port}")),
        None => {
            let unix = format!("unix:{}", dir.join(format!("{name}.sock")).display());
            (unix.clone(), unix)
        }
    };
    format!(
        "\n[worker.{name}]\nprogram = {}\nargs = module {name} {arg}\nforward = {forward}\nwatch = {}\nstop_timeout = 5s\n",
        common::example("module_server").display(),
        watch.display()
    )
}

/// Writes the config (then renames, as editors do).
fn write_config(file: &Path, modules: &[String]) {
    let text = format!(
        "[PSVC]\nwatch_config = true\nlog_file = false\nlog_console = false\n\n[app]\nlisten = 127.0.0.1:0\n{}",
        modules.concat()
    );
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

struct Door(Child);
impl Drop for Door {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn hello(client: &Client, name: &str) -> (Status, serde_json::Value) {
    common::call(client, &format!("/{name}/hello"), serde_json::Value::Null).await
}

/// Calls `/NAME/hello` until it answers from a process other than `not`
/// (bounded); returns that pid.
async fn serving(client: &Client, name: &str, not: Option<u64>) -> u64 {
    let deadline = Instant::now() + LIMIT;
    loop {
        let (status, reply) = hello(client, name).await;
        if status == Status::OK && reply["pid"].as_u64() != not {
            return reply["pid"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "/{name}/ never served: {reply}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `/alpha/hello` back to back until `stop` is set; counts the
/// failures and the calls.
fn load(client: Client, stop: Rc<Cell<bool>>) -> tokio::task::JoinHandle<(u32, u32)> {
    tokio::task::spawn_local(async move {
        let (mut calls, mut failed) = (0u32, 0u32);
        let deadline = Instant::now() + LIMIT;
        while !stop.get() && Instant::now() < deadline {
            let (status, reply) = hello(&client, "alpha").await;
            calls += 1;
            if status != Status::OK {
                eprintln!("failed under load: {status:?} {reply}");
                failed += 1;
            }
        }
        (calls, failed)
    })
}

#[actix_rt::test]
async fn modules_behind_one_front_door_survive_kills_edits_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("psvc.conf");
    let (alpha, beta, gamma) = (
        module(dir.path(), "alpha", Some(free_port())),
        // beta serves on a Unix-domain socket.
        module(dir.path(), "beta", None),
        module(dir.path(), "gamma", Some(free_port())),
    );
    write_config(&conf, &[alpha.clone(), beta.clone()]);
    let mut child = Command::new(common::example("module_server"))
        .args(["-c", conf.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = common::first_json_line(&mut child)["port"]
        .as_u64()
        .unwrap();
    let _door = Door(child);
    let connect =
        || Client::connect(ClientOptions::new(format!("127.0.0.1:{port}")).request_timeout(LIMIT));
    let client = connect().await.unwrap();

    // Two modules, each its own process.
    let alpha_pid = serving(&client, "alpha", None).await;
    let beta_pid = serving(&client, "beta", None).await;
    assert_ne!(alpha_pid, beta_pid);
    let (status, _) = hello(&client, "gamma").await;
    assert_eq!(status, Status::INVALID_URL, "no such module yet");

    // The system commands of the front door.
    let reply = client.rpc(Rpc::get("/sys/children")).await.unwrap();
    let children: serde_json::Value = serde_json::from_slice(&reply.param).unwrap();
    let ids: Vec<&str> = children
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha", "beta"]);
    let reply = client.rpc(Rpc::get("/sys/ping")).await.unwrap();
    assert_eq!(reply.status, Status::OK);

    // kill -9 of a module: it serves again, from a new process.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(alpha_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let alpha_pid = serving(&client, "alpha", Some(alpha_pid)).await;

    // Config edits under continuous load: gamma added, beta removed.
    let stop = Rc::new(Cell::new(false));
    let load_task = load(connect().await.unwrap(), stop.clone());
    let edited = Instant::now();
    write_config(&conf, &[alpha.clone(), gamma.clone()]);
    serving(&client, "gamma", None).await;
    let applied_in = edited.elapsed();
    let deadline = Instant::now() + LIMIT;
    while hello(&client, "beta").await.0 != Status::INVALID_URL {
        assert!(Instant::now() < deadline, "beta was never removed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.set(true);
    let (calls, failed) = load_task.await.unwrap();
    eprintln!("config edit applied in {applied_in:?}, {calls} calls meanwhile");
    assert!(calls > 0);
    assert_eq!(failed, 0, "no request failed while the config changed");
    assert_eq!(
        serving(&client, "alpha", None).await,
        alpha_pid,
        "an unchanged module is left alone"
    );

    // A change of alpha's code: slow requests in flight finish on the old
    // process, requests arriving meanwhile wait and go to the new one.
    let before = stats_calls(&client).await;
    let mut slow = Vec::new();
    for _ in 0..4 {
        let client = client.clone();
        slow.push(tokio::task::spawn_local(async move {
            let reply = client
                .rpc(Rpc::get("/alpha/slow").param(r#"{"ms": 400}"#))
                .await
                .unwrap();
            (
                reply.status,
                serde_json::from_slice::<serde_json::Value>(&reply.param).unwrap(),
            )
        }));
    }
    // Observed: the four are in flight at the front door.
    let deadline = Instant::now() + LIMIT;
    while stats_calls(&client).await < before + 5 {
        assert!(Instant::now() < deadline, "the slow calls never arrived");
    }
    let stop = Rc::new(Cell::new(false));
    let load_task = load(connect().await.unwrap(), stop.clone());
    std::fs::write(dir.path().join("alpha.tmp"), "2\n").unwrap();
    std::fs::rename(dir.path().join("alpha.tmp"), dir.path().join("alpha.code")).unwrap();
    for task in slow {
        let (status, reply) = task.await.unwrap();
        assert_eq!(status, Status::OK, "an in-flight request failed: {reply}");
        assert_eq!(
            reply["pid"].as_u64(),
            Some(alpha_pid),
            "it finished on the old process"
        );
    }
    let reloaded = serving(&client, "alpha", Some(alpha_pid)).await;
    assert_ne!(reloaded, alpha_pid);
    stop.set(true);
    let (calls, failed) = load_task.await.unwrap();
    eprintln!("{calls} calls during the reload");
    assert_eq!(failed, 0, "no request failed during the reload");
    client.close();
}

/// The front door's `/sys/stats` calls (this call included).
async fn stats_calls(client: &Client) -> u64 {
    let reply = client.rpc(Rpc::get("/sys/stats")).await.unwrap();
    serde_json::from_slice::<serde_json::Value>(&reply.param).unwrap()["calls"]
        .as_u64()
        .unwrap()
}
