//! Pluggable restart strategies.
//!
//! After a child fails, the supervisor asks its [`Strategy`] what to do. The
//! built-in OTP strategies ([`OneForOne`], [`OneForAll`], [`RestForOne`]) are
//! ordinary implementations of the trait, so a user strategy has exactly the
//! same power: restart any set of children, with or without a delay, leave the
//! failed child down, resume a live child, or escalate to the parent.
//!
//! Restart types ([`Restart`](super::Restart)) and restart intensity
//! ([`Intensity`](super::Intensity)) are applied by the supervisor around the
//! strategy: a strategy is only asked about children that must be restarted
//! by their restart type, and every restart it orders counts toward the
//! intensity limit.

use std::time::{Duration, Instant};

use super::backoff::RestartHistory;
use super::exit::ExitReason;
use super::spec::ChildInfo;

/// What a strategy is told about a failure.
pub struct Failure<'a> {
    /// The failing child.
    pub child: &'a ChildInfo,
    /// Why it failed.
    pub reason: &'a ExitReason,
    /// `true` when the child is still alive and reported a fault
    /// (`ctx.fault(err)`), `false` when it has exited.
    pub alive: bool,
    /// The supervisor's recent restarts (inside the intensity window).
    pub history: &'a RestartHistory,
    /// When the failure was handled.
    pub now: Instant,
    pub(crate) siblings: &'a dyn Siblings,
}

/// The supervisor's children, read on demand (a pool of thousands of
/// children costs nothing per failure unless the strategy looks).
pub(crate) trait Siblings {
    fn count(&self) -> usize;
    fn infos(&self) -> Vec<ChildInfo>;
}

impl Failure<'_> {
    /// How many children the supervisor has.
    pub fn child_count(&self) -> usize {
        self.siblings.count()
    }

    /// All children of the supervisor, in start order (built when asked).
    pub fn children(&self) -> impl Iterator<Item = ChildInfo> {
        self.siblings.infos().into_iter()
    }
}

impl std::fmt::Debug for Failure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failure")
            .field("child", &self.child)
            .field("reason", &self.reason)
            .field("alive", &self.alive)
            .field("children", &self.child_count())
            .finish_non_exhaustive()
    }
}

/// Which children a restart covers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scope {
    /// Only the failed child (one_for_one).
    Child,
    /// Every child (one_for_all).
    All,
    /// The failed child and every child started after it (rest_for_one).
    Rest,
    /// The failed child and the children with these ids.
    These(Vec<String>),
}

/// A strategy's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Directive {
    /// Leave the child as it is: a live child keeps running with its state; an
    /// exited child stays down without counting as a restart.
    Resume,
    /// Restart the children in `scope`: running ones are stopped in reverse
    /// start order, then all are started in start order after `delay`
    /// (`None`: the supervisor's [`Backoff`](super::Backoff)).
    Restart {
        /// Which children.
        scope: Scope,
        /// Delay before the restart; `None` uses the supervisor's backoff.
        delay: Option<Duration>,
    },
    /// Stop the failed child (if alive) and leave it down.
    Stop,
    /// Give up: stop all children in reverse order, then the supervisor
    /// itself; the parent decides.
    Escalate,
}

impl Directive {
    /// Restart `scope` using the supervisor's backoff.
    pub fn restart(scope: Scope) -> Self {
        Self::Restart { scope, delay: None }
    }

    /// Restart `scope` after exactly `delay` (a cool-down).
    pub fn restart_after(scope: Scope, delay: Duration) -> Self {
        Self::Restart {
            scope,
            delay: Some(delay),
        }
    }
}

/// Decides what happens after a child fails.
///
/// Implement it to plug a custom policy into a [`SupervisorSpec`](super::SupervisorSpec);
/// the built-in strategies implement it too.
pub trait Strategy: Send + 'static {
    /// The decision for one failure.
    fn decide(&mut self, failure: &Failure<'_>) -> Directive;

    /// A short name for logs.
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// Restart only the failed child (OTP `one_for_one`). Also the strategy of
/// dynamic supervisors (OTP `simple_one_for_one`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OneForOne;

/// Restart every child when one fails (OTP `one_for_all`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OneForAll;

/// Restart the failed child and every child started after it (OTP `rest_for_one`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RestForOne;

impl Strategy for OneForOne {
    fn decide(&mut self, _: &Failure<'_>) -> Directive {
        Directive::restart(Scope::Child)
    }
    fn name(&self) -> &'static str {
        "one_for_one"
    }
}

impl Strategy for OneForAll {
    fn decide(&mut self, _: &Failure<'_>) -> Directive {
        Directive::restart(Scope::All)
    }
    fn name(&self) -> &'static str {
        "one_for_all"
    }
}

impl Strategy for RestForOne {
    fn decide(&mut self, _: &Failure<'_>) -> Directive {
        Directive::restart(Scope::Rest)
    }
    fn name(&self) -> &'static str {
        "rest_for_one"
    }
}
