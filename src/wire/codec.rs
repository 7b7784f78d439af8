//! The tokio-util adapter for [`frame`]: [`FrameCodec`] with a hard size
//! limit, and [`FrameStream`], the read side of every connection.
//!
//! The limit is checked on the 20-byte header, before any memory is reserved
//! for the body: a peer announcing a 4 GiB packet costs 20 bytes.
//!
//! # Why `FrameStream` and not `FramedRead`
//! tokio-util's `FramedRead` reserves an 8 KiB buffer per connection up front
//! and keeps it for the connection's life; with 10 000 idle peers that is
//! 80 MiB doing nothing. [`FrameStream`] reads small packets through a stack
//! buffer and keeps heap memory only while a packet is incomplete: an idle
//! connection holds no read buffer at all. Large packets are read straight
//! into a buffer sized from their header. It uses the same [`Decoder`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::io::poll_read_buf;

use crate::wire::frame::{self, Frame, MAX_TCP_PACKET, MAX_UDP_PACKET};

/// Why a connection's byte stream failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent bytes that are not a valid packet.
    #[error("malformed packet: {0}")]
    Frame(#[from] frame::Error),
    /// The connection ended in the middle of a packet.
    #[error("connection closed inside a packet ({0} bytes pending)")]
    Truncated(usize),
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

/// Encodes and decodes [`Frame`]s with a size limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    /// At most 4 GiB; `u32` keeps a session's read state small.
    max: u32,
}

impl FrameCodec {
    /// The TCP limit (256 KiB per packet).
    pub const fn tcp() -> Self {
        Self {
            max: MAX_TCP_PACKET as u32,
        }
    }

    /// The UDP quick-channel limit (65 507 bytes per packet).
    pub const fn udp() -> Self {
        Self {
            max: MAX_UDP_PACKET as u32,
        }
    }

    /// A custom limit (header included), clamped to 20 bytes … 4 GiB − 1.
    pub const fn with_max(max: usize) -> Self {
        let max = if max < frame::HEADER_LEN {
            frame::HEADER_LEN
        } else if max > u32::MAX as usize {
            u32::MAX as usize
        } else {
            max
        };
        Self { max: max as u32 }
    }

    /// The limit in force.
    pub const fn max(&self) -> usize {
        self.max as usize
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::tcp()
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match frame::decode(src, self.max()) {
            Ok(frame) => Ok(Some(frame)),
            Err(frame::Error::Incomplete(need)) => {
                // Size the buffer once for the whole packet (the header check
                // already bounded `need` by the limit). An empty buffer stays
                // empty: idle connections hold no memory.
                if !src.is_empty() {
                    src.reserve(need.saturating_sub(src.len()));
                }
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated(src.len())),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame::encode(&item, dst, self.max()).map_err(Into::into)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame::encode(item, dst, self.max()).map_err(Into::into)
    }
}

/// Bytes read through the stack before the heap is involved.
const STACK_READ: usize = 2048;

/// A [`Stream`] of decoded frames over an [`AsyncRead`] that holds no heap
/// buffer while idle (see the module docs).
///
/// Ends with `None` on a clean close between packets; yields one error and
/// then ends on malformed input, a close inside a packet or an IO error.
#[derive(Debug)]
pub struct FrameStream<R> {
    io: R,
    buf: BytesMut,
    codec: FrameCodec,
    done: bool,
}

impl<R> FrameStream<R> {
    /// Reads frames from `io` with `codec`'s limit.
    pub fn new(io: R, codec: FrameCodec) -> Self {
        Self {
            io,
            codec,
            buf: BytesMut::new(),
            done: false,
        }
    }

    /// The reader.
    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// The reader, mutably (e.g. to write to a duplex transport; never read
    /// from it directly, or frames get lost).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// Heap bytes held for incomplete input (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameStream<R> {
    type Item = Result<Frame, CodecError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match this.codec.decode(&mut this.buf) {
                Ok(Some(frame)) => {
                    if this.buf.is_empty() {
                        // Drop the emptied buffer's hold on the read
                        // allocation: the frame owns what it needs.
                        this.buf = BytesMut::new();
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            let n = if this.buf.capacity() - this.buf.len() >= STACK_READ {
                // A large packet in progress: read into its buffer directly.
                match ready!(poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buf)) {
                    Ok(n) => n,
                    Err(e) => return this.fail(e.into()),
                }
            } else {
                let mut stack = [0u8; STACK_READ];
                let mut rb = ReadBuf::new(&mut stack);
                let res = ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb));
                if let Err(e) = res {
                    return this.fail(e.into());
                }
                let filled = rb.filled();
                this.buf.extend_from_slice(filled);
                filled.len()
            };
            if n == 0 {
                this.done = true;
                return if this.buf.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(CodecError::Truncated(this.buf.len()))))
                };
            }
        }
    }
}

impl<R> FrameStream<R> {
    fn fail(&mut self, e: CodecError) -> Poll<Option<Result<Frame, CodecError>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}
