//! Why a child stopped: the vocabulary every strategy and log line uses.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A shareable error value carried by an [`ExitReason::Error`].
pub type SharedError = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a supervised actor stopped (or, for a live fault, what went wrong).
///
/// `Normal` and `Shutdown` are the *normal* reasons: a
/// [`Restart::Transient`](crate::supervisor::Restart::Transient) child is not
/// restarted after them. Everything else is abnormal.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ExitReason {
    /// The actor stopped itself (`ctx.stop()`) or ran out of addresses.
    Normal,
    /// The actor was stopped by its supervisor (graceful stop).
    Shutdown,
    /// The actor was killed: brutal kill, or it ignored a stop past its timeout.
    Killed,
    /// The actor failed with an error (`ctx.fail(err)`, or its factory failed).
    Error(SharedError),
    /// A message handler (or lifecycle hook) panicked; the panic message.
    Panic(Arc<str>),
    /// A nested supervisor gave up: its restart intensity was exceeded, or a
    /// strategy chose to escalate.
    Escalated(Arc<Escalation>),
}

impl ExitReason {
    /// An error reason from any error value.
    pub fn error(err: impl StdError + Send + Sync + 'static) -> Self {
        Self::Error(Arc::new(err))
    }

    /// `true` for [`ExitReason::Normal`] and [`ExitReason::Shutdown`].
    pub fn is_normal(&self) -> bool {
        matches!(self, Self::Normal | Self::Shutdown)
    }

    /// The error value of an [`ExitReason::Error`], downcast to `E`.
    ///
    /// Custom strategies use it to treat error kinds differently.
    pub fn downcast_error<E: StdError + 'static>(&self) -> Option<&E> {
        match self {
            Self::Error(err) => err.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The panic message of an [`ExitReason::Panic`].
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            Self::Panic(msg) => Some(msg),
            _ => None,
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Normal => f.write_str("normal"),
            Self::Shutdown => f.write_str("shutdown"),
            Self::Killed => f.write_str("killed"),
            Self::Error(err) => write!(f, "error: {err}"),
            Self::Panic(msg) => write!(f, "panic: {msg}"),
            Self::Escalated(esc) => write!(f, "escalated: {esc}"),
        }
    }
}

/// What a supervisor reports to its parent when it gives up.
#[derive(Clone, Debug)]
pub struct Escalation {
    /// The supervisor that gave up.
    pub supervisor: String,
    /// The child whose failure made it give up.
    pub child: String,
    /// That child's exit reason.
    pub reason: ExitReason,
    /// Why the supervisor gave up.
    pub cause: EscalationCause,
}

/// Why a supervisor escalated.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EscalationCause {
    /// More than `max_restarts` restarts happened within `within`.
    Intensity {
        /// The configured limit.
        max_restarts: u32,
        /// The configured window.
        within: Duration,
    },
    /// The strategy returned [`Directive::Escalate`](crate::supervisor::Directive::Escalate).
    Strategy,
    /// A child could not be started when the supervisor started.
    StartFailed,
}

impl fmt::Display for Escalation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match &self.cause {
            EscalationCause::Intensity {
                max_restarts,
                within,
            } => format!("more than {max_restarts} restarts within {within:?}"),
            EscalationCause::Strategy => "the strategy escalated".to_owned(),
            EscalationCause::StartFailed => "a child failed to start".to_owned(),
        };
        write!(
            f,
            "supervisor `{}` gave up ({why}); child `{}` exited with {}",
            self.supervisor, self.child, self.reason
        )
    }
}

/// Turns a panic payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("<non-string panic payload>")
    }
}
