//! The client's output queue: encoded packets waiting for the socket,
//! bounded in bytes, and the pump that writes them out.
//!
//! actix's `FramedWrite` grows its buffer without limit and does not say how
//! much it holds, so a client talking to a server that stops reading would
//! keep every request in memory. This queue refuses a packet that does not
//! fit (the caller gets [`RequestError::SendBufferFull`] at once, nothing is
//! queued) and counts the bytes written, so the actor can tell a stalled
//! server (no progress for the send timeout) from a slow one.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker, ready};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;

use super::RequestError;
use crate::net::io::IoWrite;
use crate::wire::codec::FrameCodec;
use crate::wire::frame::Frame;

/// The queue's state, shared by the actor (which pushes) and the pump
/// (which writes); both run on the actor's thread, one at a time.
struct Queue {
    buf: BytesMut,
    limit: usize,
    written: u64,
    /// The pump, parked with nothing to write.
    idle: Option<Waker>,
}

/// A connection's bounded output queue.
pub(crate) struct Outbox {
    queue: Rc<RefCell<Queue>>,
}

impl Outbox {
    /// A queue of at most `limit` bytes for `io`, and the pump that writes
    /// it out. The pump ends only with the write error that ends the
    /// connection.
    pub(crate) fn new(io: IoWrite, limit: usize) -> (Self, impl Future<Output = io::Error>) {
        let queue = Rc::new(RefCell::new(Queue {
            buf: BytesMut::new(),
            limit,
            written: 0,
            idle: None,
        }));
        let pump = pump(io, queue.clone());
        (Self { queue }, pump)
    }

    /// Queues `frame`, or refuses it (queuing nothing) if it is over the
    /// packet limit or does not fit in the queue.
    pub(crate) fn push(&self, frame: &Frame) -> Result<(), RequestError> {
        let len = frame
            .checked_len(FrameCodec::tcp().max())
            .map_err(|_| RequestError::TooLarge)?;
        let mut queue = self.queue.borrow_mut();
        let queued = queue.buf.len();
        if queued.saturating_add(len) > queue.limit {
            return Err(RequestError::SendBufferFull {
                queued,
                limit: queue.limit,
            });
        }
        crate::wire::frame::encode(frame, &mut queue.buf, FrameCodec::tcp().max())
            .map_err(|_| RequestError::TooLarge)?;
        if let Some(pump) = queue.idle.take() {
            pump.wake();
        }
        Ok(())
    }

    /// Bytes queued and not yet written to the socket.
    pub(crate) fn queued(&self) -> usize {
        self.queue.borrow().buf.len()
    }

    /// Bytes written to the socket so far.
    pub(crate) fn written(&self) -> u64 {
        self.queue.borrow().written
    }
}

/// Writes the queue out whenever it holds something; returns the error
/// that ends the connection.
async fn pump(mut io: IoWrite, queue: Rc<RefCell<Queue>>) -> io::Error {
    let result = std::future::poll_fn(|cx| -> Poll<io::Result<()>> {
        let mut queue = queue.borrow_mut();
        while !queue.buf.is_empty() {
            let n = ready!(Pin::new(&mut io).poll_write(cx, &queue.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            queue.buf.advance(n);
            queue.written += n as u64;
        }
        if queue.buf.capacity() > 0 {
            // An emptied BytesMut keeps its allocation: give it back.
            queue.buf = BytesMut::new();
        }
        ready!(Pin::new(&mut io).poll_flush(cx))?;
        queue.idle = Some(cx.waker().clone());
        Poll::Pending
    })
    .await;
    match result {
        Err(e) => e,
        Ok(()) => io::ErrorKind::WriteZero.into(),
    }
}
