//! [`Dispatch`]: how the server reaches the messaging layer without naming
//! it. A session hands each RPC and client datagram to the service's
//! dispatcher (the Commander's routes implement it) and runs what comes
//! back itself, bounded in number and time.

use futures::future::LocalBoxFuture;

use super::handle::SessionRef;
use crate::wire::frame::Frame;

/// The reply to an RPC: ready now, or a future the session polls (within
/// its `max_inflight` and `handler_timeout` bounds).
pub enum Reply {
    /// The handler finished without waiting.
    Ready(Frame),
    /// The handler waits; the reply comes when this completes.
    Later(LocalBoxFuture<'static, Frame>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Ready(frame) => f.debug_tuple("Ready").field(frame).finish(),
            Reply::Later(_) => f.write_str("Later(..)"),
        }
    }
}

/// Runs RPCs and client datagrams for sessions, in the session's own
/// context (no mailbox in between): implemented by
/// [`Commands`](crate::commander::Commands); give one to
/// [`Server::commands`](super::Server::commands).
pub trait Dispatch: std::fmt::Debug + Send + Sync + 'static {
    /// The reply to the RPC `frame` from `session`. Runs the handler as far
    /// as it goes without waiting; errors and panics become error replies.
    fn rpc(&self, session: &SessionRef, frame: Frame) -> Reply;

    /// Runs the datagram handler for `frame` as far as it goes without
    /// waiting; what is left comes back for the session to drive. `quick`:
    /// it came over the quick UDP channel.
    fn datagram(
        &self,
        session: SessionRef,
        frame: Frame,
        quick: bool,
    ) -> Option<LocalBoxFuture<'static, ()>>;
}
