//! one_for_one: only the failed child is restarted; its siblings keep their
//! instances and their state.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

#[test]
fn only_the_failed_child_restarts() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let spec = SupervisorSpec::new("root").strategy(OneForOne);
        let (root, h) = start_probes(spec, &log, &["a", "b", "c"]);
        let [ha, hb, hc] = [&h[0], &h[1], &h[2]];
        for h in [&ha, &hb, &hc] {
            assert_eq!(h.ask(Ping).await.unwrap(), 1);
        }
        log.take();
        hb.tell(Fail(TestError::Glitch)).unwrap();
        until(|| hb.starts() == 2).await;
        assert_eq!(hb.ask(Ping).await.unwrap(), 1, "fresh state after restart");
        assert_eq!(ha.ask(Ping).await.unwrap(), 2, "sibling untouched");
        assert_eq!(hc.ask(Ping).await.unwrap(), 2, "sibling untouched");
        assert_eq!(log.take(), ["stop:b", "start:b"]);
        root.shutdown().await;
    });
}
