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

/// Runs `svc` to the end on paused time (so durations are exact): a graceful
/// shutdown is requested after `request`, and forced after `force`, when
/// given. Returns the status and how long the service ran.
fn run_service<S: Service>(
    svc: S,
    timeout: &str,
    request: Option<Duration>,
    force: Option<Duration>,
) -> (ExitStatus, Duration) {
    let sys = system(timeout);
    let trigger = sys.shutdown_trigger();
    let out = std::rc::Rc::new(std::cell::Cell::new(None));
    let out2 = out.clone();
    run_paused(async move {
        actix_rt::spawn(async move {
            if let Some(after) = request {
                tokio::time::sleep(after).await;
                trigger.request();
            }
            if let Some(after) = force {
                tokio::time::sleep(after).await;
                trigger.force(2);
            }
        });
        let t0 = tokio::time::Instant::now();
        let status = sys.run_local(svc).await;
        out2.set(Some((status, t0.elapsed())));
    });
    out.get().expect("the service ran")
}

fn steps(log: &Log) -> Steps {
    Steps {
        log: log.clone(),
        ..Default::default()
    }
}

#[test]
fn run_to_completion_then_destroy_then_tree_in_reverse() {
    let log = Log::default();
    let svc = Steps {
        spawn_shutdown: true,
        ..steps(&log)
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!((status, status.code()), (ExitStatus::Success, 0));
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
    let svc = Steps {
        fail_init: true,
        ..steps(&log)
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!((status, status.code()), (ExitStatus::Failed, 1));
    let events = log.take();
    assert!(!events.contains(&"run".to_owned()), "{events:?}");
    assert!(events.contains(&"destroy:2".to_owned()), "{events:?}");
}

#[test]
fn run_error_still_destroys_and_fails() {
    let log = Log::default();
    let svc = Steps {
        fail_run: true,
        ..steps(&log)
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!(status, ExitStatus::Failed);
    assert!(log.take().contains(&"destroy:2".to_owned()));
}

#[test]
fn root_escalation_ends_the_service_with_70() {
    let log = Log::default();
    let svc = Steps {
        crash_child: true,
        ..steps(&log)
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!((status, status.code()), (ExitStatus::Escalated, 70));
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
    let svc = Steps {
        hang_run: true,
        ..steps(&log)
    };
    let (status, took) = run_service(svc, "100ms", Some(Duration::from_millis(10)), None);
    assert_eq!((status, status.code()), (ExitStatus::DeadlineExceeded, 2));
    // requested at 10 ms, 100 ms deadline
    assert!(
        took >= Duration::from_millis(110) && took <= Duration::from_millis(111),
        "{took:?}"
    );
    assert!(log.take().iter().any(|e| e.starts_with("destroy:")));
}

#[test]
fn forced_stop_reports_the_signal() {
    let log = Log::default();
    let svc = Steps {
        hang_run: true,
        ..steps(&log)
    };
    let ms = Duration::from_millis;
    let (status, took) = run_service(svc, "60s", Some(ms(10)), Some(ms(10)));
    assert_eq!((status, status.code()), (ExitStatus::Forced(2), 130));
    assert!(
        took < ms(21),
        "forced at once, not after the 60 s deadline: {took:?}"
    );
}

#[test]
fn one_deadline_covers_run_destroy_and_the_tree() {
    let log = Log::default();
    let svc = Steps {
        wind_down: Duration::from_millis(60),
        destroy_takes: Duration::from_millis(500),
        ..steps(&log)
    };
    let (status, took) = run_service(svc, "100ms", Some(Duration::from_millis(10)), None);
    assert_eq!(status, ExitStatus::DeadlineExceeded);
    // request at 10 ms + 100 ms deadline: destroy is cut off at 110 ms
    assert!(
        took >= Duration::from_millis(110) && took <= Duration::from_millis(111),
        "{took:?}"
    );
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
    let (status, took) = run_service(
        HangingInit(log.clone()),
        "100ms",
        Some(Duration::from_millis(10)),
        None,
    );
    assert_eq!(status, ExitStatus::DeadlineExceeded);
    assert!(took <= Duration::from_millis(111), "{took:?}");
    assert_eq!(log.take(), ["destroy"]);
}

struct RestartsItself(Log);

impl Service for RestartsItself {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        self.0.push("init");
        ctx.request_restart();
        Ok(())
    }

    async fn destroy(&mut self, _: &mut ServiceContext) -> Result<(), BoxError> {
        self.0.push("destroy");
        Ok(())
    }
}

#[test]
fn a_requested_restart_is_a_graceful_stop_reported_as_restart() {
    let log = Log::default();
    let (status, _) = run_service(RestartsItself(log.clone()), "5s", None, None);
    assert_eq!(status, ExitStatus::Restart);
    assert_eq!(
        status.code(),
        75,
        "what a supervisor sees when it is not exec'd"
    );
    assert_eq!(log.snapshot(), ["init", "destroy"], "a graceful stop first");
    // A plain request is still a plain stop.
    let sys = system("5s");
    let trigger = sys.shutdown_trigger();
    assert!(!trigger.restart_requested());
    trigger.request_restart();
    assert!(trigger.restart_requested());
}

/// Watches its own readiness from a task started in `init`.
struct WatchesReadiness {
    log: Log,
    fail_init: bool,
}

impl Service for WatchesReadiness {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let readiness = ctx.readiness();
        assert!(!readiness.is_ready(), "not ready during init");
        let log = self.log.clone();
        actix_rt::spawn(async move {
            let ready = readiness.wait().await;
            log.push(if ready { "ready" } else { "never ready" });
        });
        tokio::task::yield_now().await;
        self.log.push("init");
        if self.fail_init {
            return Err("no device".into());
        }
        ctx.request_shutdown();
        Ok(())
    }
}

#[test]
fn readiness_follows_a_successful_init_and_never_comes_after_a_failed_one() {
    let log = Log::default();
    let svc = WatchesReadiness {
        log: log.clone(),
        fail_init: false,
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!(status, ExitStatus::Success);
    assert_eq!(log.take(), ["init", "ready"]);

    let svc = WatchesReadiness {
        log: log.clone(),
        fail_init: true,
    };
    let (status, _) = run_service(svc, "5s", None, None);
    assert_eq!(status, ExitStatus::Failed);
    assert_eq!(log.take(), ["init", "never ready"]);
}

/// Asks for a restart from a task while its `init` never returns (a new
/// version that hangs, rolled back by its Updater).
struct HangsThenRestarts;

impl Service for HangsThenRestarts {
    async fn init(&mut self, ctx: &mut ServiceContext) -> Result<(), BoxError> {
        let trigger = ctx.shutdown_trigger();
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.request_restart();
        });
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[test]
fn a_restart_requested_during_a_hung_init_still_restarts_after_the_deadline() {
    let (status, took) = run_service(HangsThenRestarts, "1s", None, None);
    assert_eq!(status, ExitStatus::Restart);
    assert_eq!(
        took,
        Duration::from_millis(1100),
        "the request, then the deadline"
    );
    // An operator's forced stop wins over a requested restart.
    let (status, _) = run_service(
        HangsThenRestarts,
        "5s",
        None,
        Some(Duration::from_millis(200)),
    );
    assert_eq!(status, ExitStatus::Forced(2));
}
