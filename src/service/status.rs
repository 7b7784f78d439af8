//! How a service ended: [`ExitStatus`] and its process exit code.

use std::process::ExitCode;

/// How the service ended; converts to the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// Clean stop (exit code 0).
    Success,
    /// `init`, `run` or `destroy` returned an error (1).
    Failed,
    /// The graceful shutdown did not finish within the deadline; the tree was
    /// killed (2).
    DeadlineExceeded,
    /// The root supervisor escalated: restart intensity exceeded (70, EX_SOFTWARE).
    Escalated,
    /// The configuration could not be loaded, or logging set up (78, EX_CONFIG).
    Config,
    /// The command line was not understood (64, EX_USAGE).
    Usage,
    /// A second SIGTERM/SIGINT forced the stop (128 + signal number).
    Forced(i32),
    /// Stopped cleanly to be started again
    /// ([`ShutdownTrigger::request_restart`](super::ShutdownTrigger::request_restart)):
    /// `run` execs the same command line; the code (75, EX_TEMPFAIL) is seen
    /// when that fails or with `PSVC_RESTART=exit`.
    Restart,
    /// `status`: no background instance is running (3, as LSB says).
    NotRunning,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::DeadlineExceeded => 2,
            Self::Escalated => 70,
            Self::Usage => 64,
            Self::Config => 78,
            Self::Restart => 75,
            Self::NotRunning => 3,
            Self::Forced(sig) => 128i32
                .checked_add(sig)
                .and_then(|code| u8::try_from(code).ok())
                .unwrap_or(255),
        }
    }

    /// Keeps the more serious of two statuses.
    pub(super) fn worst(self, other: Self) -> Self {
        let rank = |s: Self| match s {
            Self::Success | Self::Restart | Self::NotRunning => 0,
            Self::Failed => 1,
            Self::DeadlineExceeded => 2,
            Self::Escalated => 3,
            Self::Usage | Self::Config => 4,
            Self::Forced(_) => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> Self {
        ExitCode::from(status.code())
    }
}

impl std::process::Termination for ExitStatus {
    fn report(self) -> ExitCode {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn exit_codes() {
        assert_eq!(ExitStatus::Success.code(), 0);
        assert_eq!(ExitStatus::Forced(15).code(), 143);
        assert_eq!(ExitStatus::Forced(i32::MAX).code(), 255);
        assert_eq!(ExitStatus::Forced(-200).code(), 255);
        assert_eq!(
            ExitStatus::Success.worst(ExitStatus::Escalated),
            ExitStatus::Escalated
        );
    }
}
