//! rest_for_one: the failed child and the children started after it restart;
//! the ones before it are untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

#[test]
fn failed_child_and_later_ones_restart() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let spec = SupervisorSpec::new("root").strategy(RestForOne);
        let (root, h) = start_probes(spec, &log, &["a", "b", "c", "d"]);
        let [ha, hb, hc, hd] = [&h[0], &h[1], &h[2], &h[3]];
        until(|| log.snapshot().len() == 4).await;
        log.take();
        hb.tell(Fail(TestError::Glitch)).unwrap();
        until(|| hd.starts() == 2).await;
        assert_eq!(ha.starts(), 1);
        assert_eq!((hb.starts(), hc.starts()), (2, 2));
        assert_eq!(
            log.take(),
            [
                "stop:b", "stop:d", "stop:c", "start:b", "start:c", "start:d"
            ]
        );
        assert_eq!(ha.ask(Ping).await.unwrap(), 1);
        root.shutdown().await;
    });
}
