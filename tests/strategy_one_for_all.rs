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
        let spec = SupervisorSpec::new("root").strategy(OneForAll);
        let (root, h) = start_probes(spec, &log, &["a", "b", "c"]);
        let [ha, hb, hc] = [&h[0], &h[1], &h[2]];
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
