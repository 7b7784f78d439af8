//! The handle of a supervised child: [`ChildRef`], which reaches whichever
//! instance runs now, the errors of its sends, and the [`Overflow`] policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, MailboxError, Message};
use parking_lot::RwLock;
use tokio::sync::Notify;

/// What the handle of a child shares with its running instances.
pub(crate) struct Shared<A: Actor> {
    id: Arc<str>,
    /// The running instance's address. Readers hold the lock only to queue
    /// a message (never across an await); writers are the supervisor, at
    /// start and exit.
    pub(super) addr: RwLock<Option<Addr<A>>>,
    pub(super) generation: AtomicU64,
    drop_newest: AtomicBool,
    pub(super) space: Notify,
    waiters: AtomicUsize,
    dropped: AtomicU64,
}

impl<A: Actor> Shared<A> {
    pub(super) fn notify_space(&self) {
        if self.waiters.load(Ordering::Acquire) != 0 {
            self.space.notify_waiters();
        }
    }
}

/// What a fire-and-forget [`ChildRef::tell`] does when the mailbox is full.
///
/// psvc never queues past the mailbox capacity: actix's `do_send` (which
/// ignores capacity) is banned in this codebase by clippy's
/// `disallowed-methods`, and every psvc send goes through `try_send`
/// (`tell`), a waiting send (`tell_wait`, `ask`), or this policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// `tell` fails with [`SendError::Full`], handing
    /// the message back to the caller (the default).
    #[default]
    Reject,
    /// `tell` drops the message, counts it in [`ChildRef::dropped`] and logs
    /// a warning (the first drop, then every 1000th).
    DropNewest,
}

/// Why a message could not be queued.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SendError<M> {
    /// The mailbox is full; the message is handed back.
    #[error("mailbox of child `{0}` is full")]
    Full(Arc<str>, M),
    /// No instance is running (stopped, or between a crash and its restart).
    #[error("child `{0}` is not running")]
    NotRunning(Arc<str>, M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            Self::Full(_, m) | Self::NotRunning(_, m) => m,
        }
    }
}

impl<M> std::fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(id, _) => f.debug_tuple("Full").field(id).finish(),
            Self::NotRunning(id, _) => f.debug_tuple("NotRunning").field(id).finish(),
        }
    }
}

/// Why an `ask` got no reply.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// No instance is running.
    #[error("child `{0}` is not running")]
    NotRunning(Arc<str>),
    /// The instance stopped or crashed before it replied.
    #[error("child `{0}` stopped or crashed before replying")]
    Lost(Arc<str>),
    /// No reply within the timeout.
    #[error("child `{0}` did not reply within {1:?}")]
    Timeout(Arc<str>, Duration),
}

/// A handle to a supervised child that stays valid across restarts.
///
/// An `Addr` dies with the instance it points to; a `ChildRef` always reaches
/// the instance currently running. Messages sent to an instance that
/// crashes are lost with it (the caller of an `ask` gets [`AskError::Lost`]),
/// as in OTP.
pub struct ChildRef<A: Actor> {
    shared: Arc<Shared<A>>,
}

impl<A: Actor> Clone for ChildRef<A> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for ChildRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildRef")
            .field("id", &self.shared.id)
            .field("running", &self.is_running())
            .finish()
    }
}

impl<A: Actor> ChildRef<A> {
    pub(crate) fn new(id: Arc<str>, overflow: Overflow) -> Self {
        Self {
            shared: Arc::new(Shared {
                id,
                addr: RwLock::new(None),
                generation: AtomicU64::new(0),
                drop_newest: AtomicBool::new(overflow == Overflow::DropNewest),
                space: Notify::new(),
                waiters: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn set_overflow(&self, overflow: Overflow) {
        self.shared
            .drop_newest
            .store(overflow == Overflow::DropNewest, Ordering::Relaxed);
    }

    pub(crate) fn shared(&self) -> Arc<Shared<A>> {
        self.shared.clone()
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Whether an instance is running now.
    pub fn is_running(&self) -> bool {
        self.shared.addr.read().is_some()
    }

    /// How many times an instance has been started (1 after the first start).
    pub fn starts(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The address of the running instance. It dies with that instance;
    /// keep the `ChildRef` to reach restarted ones.
    pub fn addr(&self) -> Option<Addr<A>> {
        self.shared.addr.read().clone()
    }

    /// Waits until an instance is running (at once if one is), for at most
    /// `limit`: after an `ask` came back [`AskError::Lost`] or
    /// [`AskError::NotRunning`] because the child is being restarted, this
    /// is how to wait for the new instance before trying again.
    pub async fn wait_running(&self, limit: Duration) -> Result<(), AskError> {
        let wait = async {
            loop {
                let notified = self.shared.space.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.is_running() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| AskError::Timeout(self.shared.id.clone(), limit))
    }

    /// Messages dropped by [`Overflow::DropNewest`].
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Queues `msg` without waiting. When the mailbox is full the child's
    /// [`Overflow`] policy applies.
    pub fn tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        match self.try_tell(msg) {
            Err(SendError::Full(id, msg)) if self.shared.drop_newest.load(Ordering::Relaxed) => {
                drop(msg);
                let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(1000) {
                    tracing::warn!(child = %id, dropped = n + 1, "mailbox full: message dropped");
                }
                Ok(())
            }
            other => other,
        }
    }

    fn try_tell<M>(&self, msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let guard = self.shared.addr.read();
        let Some(addr) = guard.as_ref() else {
            return Err(SendError::NotRunning(self.shared.id.clone(), msg));
        };
        addr.try_send(msg).map_err(|e| match e {
            actix::prelude::SendError::Full(m) => SendError::Full(self.shared.id.clone(), m),
            actix::prelude::SendError::Closed(m) => {
                SendError::NotRunning(self.shared.id.clone(), m)
            }
        })
    }

    /// Queues `msg`, waiting while the mailbox is full (backpressure). Fails
    /// only if no instance is running.
    pub async fn tell_wait<M>(&self, mut msg: M) -> Result<(), SendError<M>>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        // Fast path: room in the mailbox.
        msg = match self.try_tell(msg) {
            Err(SendError::Full(_, m)) => m,
            other => return other,
        };
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        loop {
            let notified = self.shared.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.shared.waiters.fetch_add(1, Ordering::AcqRel);
            let _waiting = Waiting(&self.shared.waiters);
            match self.try_tell(msg) {
                Err(SendError::Full(_, m)) => {
                    msg = m;
                    notified.await;
                }
                other => return other,
            }
        }
    }

    /// Sends `msg` and waits for the reply (waiting for mailbox space first).
    pub async fn ask<M>(&self, msg: M) -> Result<M::Result, AskError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let request = {
            let guard = self.shared.addr.read();
            match guard.as_ref() {
                Some(addr) => addr.send(msg),
                None => return Err(AskError::NotRunning(self.shared.id.clone())),
            }
        };
        request
            .await
            .map_err(|_| AskError::Lost(self.shared.id.clone()))
    }

    /// [`ChildRef::ask`] with a deadline.
    pub async fn ask_timeout<M>(&self, msg: M, limit: Duration) -> Result<M::Result, AskError>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        let request = {
            let guard = self.shared.addr.read();
            match guard.as_ref() {
                Some(addr) => addr.send(msg).timeout(limit),
                None => return Err(AskError::NotRunning(self.shared.id.clone())),
            }
        };
        request.await.map_err(|e| match e {
            MailboxError::Timeout => AskError::Timeout(self.shared.id.clone(), limit),
            MailboxError::Closed => AskError::Lost(self.shared.id.clone()),
        })
    }
}
