//! [`ChildRecipient`]: a type-erased, restart-proof handle for one message
//! type — what components hold of each other.

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Handler, Message, Recipient};
use futures::future::BoxFuture;

use super::child::{AskError, ChildRef, SendError};

/// Something that accepts `M` (a supervised child, or a plain actix recipient).
trait Target<M: Message + Send>: Send + Sync
where
    M::Result: Send,
{
    fn id(&self) -> &str;
    fn tell(&self, msg: M) -> Result<(), SendError<M>>;
    fn tell_wait(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>>;
    fn ask(&self, msg: M) -> BoxFuture<'_, Result<M::Result, AskError>>;
    fn wait_running(&self, limit: Duration) -> BoxFuture<'_, Result<(), AskError>>;
}

impl<A, M> Target<M> for ChildRef<A>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn id(&self) -> &str {
        ChildRef::id(self)
    }
    fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        ChildRef::tell(self, msg)
    }
    fn tell_wait(&self, msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        Box::pin(ChildRef::tell_wait(self, msg))
    }
    fn ask(&self, msg: M) -> BoxFuture<'_, Result<M::Result, AskError>> {
        Box::pin(ChildRef::ask(self, msg))
    }
    fn wait_running(&self, limit: Duration) -> BoxFuture<'_, Result<(), AskError>> {
        Box::pin(ChildRef::wait_running(self, limit))
    }
}

/// A plain actix recipient (for actors outside a supervisor, and test doubles).
struct Plain<M: Message + Send>
where
    M::Result: Send,
{
    id: Arc<str>,
    recipient: Recipient<M>,
}

impl<M> Target<M> for Plain<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn id(&self) -> &str {
        &self.id
    }
    fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.recipient.try_send(msg).map_err(|e| match e {
            actix::prelude::SendError::Full(m) => SendError::Full(self.id.clone(), m),
            actix::prelude::SendError::Closed(m) => SendError::NotRunning(self.id.clone(), m),
        })
    }
    fn tell_wait(&self, mut msg: M) -> BoxFuture<'_, Result<(), SendError<M>>> {
        // A plain recipient tells nobody when room frees up: poll every
        // millisecond while the mailbox is full (a supervised child is woken
        // exactly instead).
        Box::pin(async move {
            loop {
                match self.tell(msg) {
                    Err(SendError::Full(_, m)) => {
                        msg = m;
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    other => return other,
                }
            }
        })
    }
    fn ask(&self, msg: M) -> BoxFuture<'_, Result<M::Result, AskError>> {
        Box::pin(async move {
            self.recipient
                .send(msg)
                .await
                .map_err(|_| AskError::Lost(self.id.clone()))
        })
    }
    fn wait_running(&self, _: Duration) -> BoxFuture<'_, Result<(), AskError>> {
        // A plain actor is never restarted: it runs or it is gone.
        let running = self.recipient.connected();
        Box::pin(async move {
            if running {
                Ok(())
            } else {
                Err(AskError::NotRunning(self.id.clone()))
            }
        })
    }
}

/// A handle for sending one message type `M` that survives restarts.
///
/// Get one with [`ChildRef::recipient`] (stable across restarts of that
/// child) or from a plain actix [`Recipient`] (`From`), so a component can
/// hold `ChildRecipient<Job>` and a test can hand it a double.
pub struct ChildRecipient<M: Message + Send>
where
    M::Result: Send,
{
    target: Arc<dyn Target<M>>,
}

impl<M: Message + Send> Clone for ChildRecipient<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Self {
            target: self.target.clone(),
        }
    }
}

impl<M: Message + Send> std::fmt::Debug for ChildRecipient<M>
where
    M::Result: Send,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ChildRecipient")
            .field(&self.target.id())
            .finish()
    }
}

impl<M> ChildRecipient<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    /// The id of the child (or the name given to a plain recipient).
    pub fn id(&self) -> &str {
        self.target.id()
    }

    /// See [`ChildRef::tell`].
    pub fn tell(&self, msg: M) -> Result<(), SendError<M>> {
        self.target.tell(msg)
    }

    /// See [`ChildRef::tell_wait`].
    pub async fn tell_wait(&self, msg: M) -> Result<(), SendError<M>> {
        self.target.tell_wait(msg).await
    }

    /// See [`ChildRef::ask`].
    pub async fn ask(&self, msg: M) -> Result<M::Result, AskError> {
        self.target.ask(msg).await
    }

    /// See [`ChildRef::wait_running`] (a plain recipient answers at once:
    /// it is running or gone for good).
    pub async fn wait_running(&self, limit: Duration) -> Result<(), AskError> {
        self.target.wait_running(limit).await
    }

    /// Wraps a plain actix recipient (it does not survive restarts of its actor).
    pub fn from_recipient(name: impl Into<String>, recipient: Recipient<M>) -> Self {
        Self {
            target: Arc::new(Plain {
                id: Arc::from(name.into()),
                recipient,
            }),
        }
    }
}

impl<M> From<Recipient<M>> for ChildRecipient<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn from(recipient: Recipient<M>) -> Self {
        Self::from_recipient("recipient", recipient)
    }
}

impl<A: Actor> ChildRef<A> {
    /// A type-erased handle for message `M`, valid across restarts.
    pub fn recipient<M>(&self) -> ChildRecipient<M>
    where
        A: Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: Message + Send + 'static,
        M::Result: Send,
    {
        ChildRecipient {
            target: Arc::new(self.clone()),
        }
    }
}
