//! The service lifecycle (PyService semantics): init → run → destroy;
//! destroy always runs; an init failure skips run; the tree stops after
//! destroy, in reverse order; root escalation and a missed shutdown deadline
//! end the service with their own exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use psvc::config::ConfigLoader;
use psvc::prelude::*;
use psvc::service::BoxError;

#[derive(Default)]
struct Steps {
    log: Log,
    fail_init: bool,
    fail_run: bool,
    hang_run: bool,
    crash_child: bool,
    spawn_shutdown: bool,
    /// How long `run` takes to wind down after the shutdown request.
    wind_down: Duration,
    /// How long `destroy` takes.
    destroy_takes: Duration,
}

impl Service for Steps {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        self.log.push("init");
        ctx.spawn(probe("a", &self.log)).await?;
        ctx.spawn(probe("b", &self.log)).await?;
        if self.fail_init {
            return Err("no device".into());
        }
        Ok(())
    }

    async fn run(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        self.log.push("run");
        if self.fail_run {
            return Err("lost device".into());
        }
        if self.crash_child {
            let h = ctx.spawn(probe("c", &self.log)).await?;
            h.tell(Fail(TestError::Glitch))?;
            until(|| h.starts() == 2).await;
            h.tell(Fail(TestError::Glitch))?;
        }
        if self.hang_run {
            std::future::pending::<()>().await;
        }
        if self.spawn_shutdown {
            let trigger = ctx.shutdown_trigger();
            actix_rt::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                trigger.request();
            });
        }
        ctx.shutdown_requested().await;
        self.log.push("shutdown-seen");
        tokio::time::sleep(self.wind_down).await;
        Ok(())
    }

    async fn destroy(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        // actors still run during destroy
        let alive = ctx
            .root()
            .which_children()
            .await
            .map(|c| c.len())
            .unwrap_or(0);
        self.log.push(format!("destroy:{alive}"));
        tokio::time::sleep(self.destroy_takes).await;
        self.log.push("destroyed");
        Ok(())
    }
}

fn system(timeout: &str) -> ServiceSystem {
    ServiceSystem::new("t")
        .config(
            ConfigLoader::new("t")
                .no_file()
                .env_vars(Vec::<(String, String)>::new())
                .set("PSVC.shutdown_timeout", timeout),
        )
        .without_signals()
        .without_logging()
}

#[test]
fn run_to_completion_then_destroy_then_tree_in_reverse() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let svc = Steps {
            log: l,
            spawn_shutdown: true,
            ..Default::default()
        };
        let status = system("5s").run_local(svc).await;
        assert_eq!(status, ExitStatus::Success);
        assert_eq!(status.code(), 0);
    });
    assert_eq!(
        log.take(),
        [
            "init",
            "start:a",
            "start:b",
            "run",
            "shutdown-seen",
            "destroy:2",
            "destroyed",
            "stop:b",
            "stop:a"
        ]
    );
}

#[test]
fn init_failure_skips_run_but_not_destroy() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let svc = Steps {
            log: l,
            fail_init: true,
            ..Default::default()
        };
        let status = system("5s").run_local(svc).await;
        assert_eq!(status, ExitStatus::Failed);
        assert_eq!(status.code(), 1);
    });
    let events = log.take();
    assert!(!events.contains(&"run".to_owned()), "{events:?}");
    assert!(events.contains(&"destroy:2".to_owned()), "{events:?}");
}

#[test]
fn run_error_still_destroys_and_fails() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let svc = Steps {
            log: l,
            fail_run: true,
            ..Default::default()
        };
        assert_eq!(system("5s").run_local(svc).await, ExitStatus::Failed);
    });
    assert!(log.take().contains(&"destroy:2".to_owned()));
}

#[test]
fn root_escalation_ends_the_service_with_70() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let svc = Steps {
            log: l,
            crash_child: true,
            ..Default::default()
        };
        let status = system("5s").run_local(svc).await;
        assert_eq!(status, ExitStatus::Escalated);
        assert_eq!(status.code(), 70);
    });
    let events = log.take();
    assert!(
        events.iter().any(|e| e.starts_with("destroy:")),
        "{events:?}"
    );
    // c failed twice; then the escalation stopped the rest in reverse order
    let stops: Vec<&String> = events.iter().filter(|e| e.starts_with("stop:")).collect();
    assert_eq!(stops, ["stop:c", "stop:c", "stop:b", "stop:a"]);
}

#[test]
fn missed_shutdown_deadline_is_reported() {
    let log = Log::default();
    let l = log.clone();
    run_paused(async move {
        let svc = Steps {
            log: l,
            hang_run: true,
            ..Default::default()
        };
        let sys = system("100ms");
        let trigger = sys.shutdown_trigger();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.request();
        });
        let t0 = tokio::time::Instant::now();
        let status = sys.run_local(svc).await;
        assert_eq!(status, ExitStatus::DeadlineExceeded);
        assert_eq!(status.code(), 2);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(110) && took <= Duration::from_millis(111),
            "{took:?}"
        );
    });
    assert!(log.take().iter().any(|e| e.starts_with("destroy:")));
}

#[test]
fn forced_stop_reports_the_signal() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let svc = Steps {
            log: l,
            hang_run: true,
            ..Default::default()
        };
        let sys = system("60s");
        let trigger = sys.shutdown_trigger();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.request();
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.force(2);
        });
        let status = sys.run_local(svc).await;
        assert_eq!(status, ExitStatus::Forced(2));
        assert_eq!(status.code(), 130);
    });
}

#[test]
fn one_deadline_covers_run_destroy_and_the_tree() {
    let log = Log::default();
    let l = log.clone();
    run_paused(async move {
        let svc = Steps {
            log: l,
            wind_down: Duration::from_millis(60),
            destroy_takes: Duration::from_millis(500),
            ..Default::default()
        };
        let sys = system("100ms");
        let trigger = sys.shutdown_trigger();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.request();
        });
        let t0 = tokio::time::Instant::now();
        let status = sys.run_local(svc).await;
        assert_eq!(status, ExitStatus::DeadlineExceeded);
        // request at 10 ms + 100 ms deadline: destroy is cut off at 110 ms
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(110) && took <= Duration::from_millis(111),
            "{took:?}"
        );
    });
    let events = log.take();
    assert!(events.contains(&"destroy:2".to_owned()), "{events:?}");
    assert!(!events.contains(&"destroyed".to_owned()), "{events:?}");
}

/// `init` that never finishes.
struct HangingInit(Log);

impl Service for HangingInit {
    async fn init(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        std::future::pending::<()>().await;
        Ok(())
    }
    async fn run(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        self.0.push("run");
        Ok(())
    }
    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        self.0.push("destroy");
        Ok(())
    }
}

#[test]
fn a_hanging_init_is_bounded_by_the_shutdown_deadline() {
    let log = Log::default();
    let l = log.clone();
    run_paused(async move {
        let sys = system("100ms");
        let trigger = sys.shutdown_trigger();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            trigger.request();
        });
        let status = sys.run_local(HangingInit(l)).await;
        assert_eq!(status, ExitStatus::DeadlineExceeded);
    });
    assert_eq!(log.take(), ["destroy"]);
}
