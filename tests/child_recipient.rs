//! `ChildRecipient<M>`: the type-erased handle components hold of each other
//! keeps working across restarts, and a plain actix recipient (a test
//! double) fits in the same place.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use psvc::prelude::*;

/// A component that only knows "something that answers Ping".
struct Caller {
    target: ChildRecipient<Ping>,
}

impl Caller {
    async fn call(&self) -> Result<u64, AskError> {
        self.target.ask(Ping).await
    }
}

#[test]
fn recipient_follows_restarts() {
    quiet_panics();
    let log = Log::default();
    run(async move {
        let p = probe("p", &log);
        let h = p.handle();
        let root = SupervisorSpec::new("root").child(p).start_root();
        let caller = Caller {
            target: h.recipient(),
        };
        assert_eq!(caller.target.id(), "p");
        assert_eq!(caller.call().await.unwrap(), 1);
        let _ = h.ask(Crash("expected: restart me")).await;
        until(|| h.starts() == 2).await;
        assert_eq!(caller.call().await.unwrap(), 1, "the new instance answered");
        caller.target.tell(Ping).unwrap();
        caller.target.tell_wait(Ping).await.unwrap();
        assert_eq!(caller.call().await.unwrap(), 4);
        root.shutdown().await;
    });
}

/// A test double: any actix actor handling `Ping`.
struct Double;
impl Actor for Double {
    type Context = Context<Self>;
}
impl Handler<Ping> for Double {
    type Result = u64;
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) -> u64 {
        42
    }
}

#[test]
fn plain_recipient_is_a_drop_in_double() {
    run(async {
        let addr = Double.start();
        let caller = Caller {
            target: addr.clone().recipient().into(),
        };
        assert_eq!(caller.call().await.unwrap(), 42);
        caller.target.tell_wait(Ping).await.unwrap();
        caller.target.tell(Ping).unwrap();
        assert_eq!(addr.send(Ping).await.unwrap(), 42);
    });
}
