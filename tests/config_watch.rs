//! The configuration follows its file when `[PSVC] watch_config` is on:
//! each edit reloads it (as SIGHUP does, through the same reloader, which
//! keeps the running configuration when the new one is bad), and
//! `ServiceContext::request_reload` reloads on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use psvc::config::{Config, ConfigLoader};
use psvc::prelude::*;
use psvc::service::{BoxError, ConfigReloaded};
use tokio::sync::mpsc;

/// Forwards each reloaded configuration to the test (the test expects a
/// few; more would be a failure, not a reason to grow).
struct Seen(mpsc::Sender<Arc<Config>>);
impl Actor for Seen {
    type Context = Context<Self>;
}
impl Handler<ConfigReloaded> for Seen {
    type Result = ();
    fn handle(&mut self, msg: ConfigReloaded, _: &mut Context<Self>) {
        // Room for 8; the test makes at most 2.
        let _ = self.0.try_send(msg.0);
    }
}

fn write(path: &Path, watch: bool, level: &str) {
    // Write then rename, as editors do.
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("[PSVC]\nwatch_config = {watch}\nlog_console = false\nlog_file = false\n[app]\nlevel = {level}\n"),
    )
    .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn next_level(rx: &mut mpsc::Receiver<Arc<Config>>) -> i64 {
    let config = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a reload within 20 s")
        .unwrap();
    config.get("app.level").unwrap()
}

struct Watches {
    file: PathBuf,
    watch: bool,
}

impl Service for Watches {
    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let (tx, mut rx) = mpsc::channel(8);
        ctx.subscribe_reload(Seen(tx).start().recipient());
        assert_eq!(ctx.config().get::<i64>("app.level").unwrap(), 1);
        if self.watch {
            // An edit reloads.
            write(&self.file, true, "2");
            assert_eq!(next_level(&mut rx).await, 2);
            assert_eq!(ctx.config().get::<i64>("app.level").unwrap(), 2);
            // And the next one.
            write(&self.file, true, "3");
            assert_eq!(next_level(&mut rx).await, 3);
        } else {
            // Not watched: an edit alone does nothing; a requested reload
            // reads it.
            write(&self.file, false, "5");
            ctx.request_reload();
            assert_eq!(next_level(&mut rx).await, 5);
        }
        Ok(())
    }
}

async fn run(watch: bool) -> ExitStatus {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("psvc.conf");
    write(&file, watch, "1");
    ServiceSystem::new("t")
        .config(
            ConfigLoader::new("t")
                .file(&file)
                .env_vars(Vec::<(String, String)>::new()),
        )
        .without_signals()
        .without_logging()
        .run_local(Watches { file, watch })
        .await
}

#[actix_rt::test]
async fn each_edit_of_a_watched_config_file_is_reloaded() {
    assert_eq!(run(true).await, ExitStatus::Success);
}

#[actix_rt::test]
async fn request_reload_reloads_on_demand() {
    assert_eq!(run(false).await, ExitStatus::Success);
}
