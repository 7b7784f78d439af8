//! one_for_all: when one child fails, the others are stopped in reverse start
//! order and all are started again in start order.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

#[test]
fn all_children_restart_in_order() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let (a, b, c) = (probe("a", &log), probe("b", &log), probe("c", &log));
        let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());
        let root = SupervisorSpec::new("root")
            .strategy(OneForAll)
            .intensity(5, std::time::Duration::from_secs(5))
            .child(a)
            .child(b)
            .child(c)
            .start_root();
        assert_eq!(
            log_after_start(&log).await,
            ["start:a", "start:b", "start:c"]
        );
        let _ = hb.ask(Crash("expected: b crashed")).await;
        until(|| ha.starts() == 2 && hb.starts() == 2 && hc.starts() == 2).await;
        for h in [&ha, &hb, &hc] {
            assert_eq!(h.ask(Ping).await.unwrap(), 1, "every instance is fresh");
        }
        // b crashed (no stop hooks after a panic); c then a were stopped, in reverse order
        assert_eq!(
            log.take(),
            ["stop:c", "stop:a", "start:a", "start:b", "start:c"]
        );
        let info = root.handle().which_children().await.unwrap();
        assert!(info.iter().all(|c| c.restarts == 1));
        root.shutdown().await;
    });
}

async fn log_after_start(log: &Log) -> Vec<String> {
    until(|| log.snapshot().len() == 3).await;
    log.take()
}
