//! Fuzz target `decode`: arbitrary bytes through every decoding path psvc has.
//!
//! Input layout: byte 0 is a selector, the rest is the byte stream.
//!   - bits 0..5 of the selector: chunk size (1..=64) for the chunked paths;
//!   - bits 6..7: the size limit (TCP, UDP, or two small custom limits so
//!     `TooLarge` is reachable with short inputs).
//!
//! Checked, for every input:
//!   1. `frame::decode` over the whole buffer (the reference), frame by frame:
//!      every frame re-encodes with `frame::encode` to the same length, the
//!      same bytes except the pad bytes, and decodes back to an equal frame;
//!      `frame::check` returns exactly the consumed length, and the same
//!      error as `decode` on a bad header; an error leaves the buffer as it
//!      was.
//!   2. `FrameCodec` as a tokio-util `Decoder`, fed in chunks (the way
//!      `FramedRead` does, `decode_eof` at the end), yields the same frames
//!      and the same ending as the reference.
//!   3. `FrameStream` over `&[u8]` on a current-thread runtime, and over a
//!      reader that hands out `chunk` bytes at a time and returns `Pending`
//!      (after waking itself) every other call, polled by hand with a step
//!      bound: both end (no hang), with the reference's frames and at most
//!      one error, which is the reference's ending.
#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use libfuzzer_sys::fuzz_target;
use psvc::codec::{CodecError, FrameCodec, FrameStream};
use psvc::frame::{self, Frame};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

/// How a byte stream ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Between packets.
    Clean,
    /// A malformed packet.
    Bad(frame::Error),
    /// EOF inside a packet, with this many bytes pending.
    Truncated(usize),
}

fn end_of(e: CodecError) -> End {
    match e {
        CodecError::Frame(f) => End::Bad(f),
        CodecError::Truncated(n) => End::Truncated(n),
        other => panic!("unexpected codec error on in-memory input: {other}"),
    }
}

/// The reference: `frame::decode` over the whole buffer, with the frame-level
/// invariants checked on the way.
fn reference(stream: &[u8], max: usize) -> (Vec<Frame>, End) {
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    loop {
        let before = buf.clone();
        let checked = frame::check(&buf, max);
        match frame::decode(&mut buf, max) {
            Ok(f) => {
                let consumed = before.len() - buf.len();
                assert_eq!(checked, Ok(consumed), "check disagrees with decode");
                assert!(consumed <= max);
                assert_eq!(f.encoded_len(), consumed, "encoded_len vs consumed");
                let mut out = BytesMut::new();
                frame::encode(&f, &mut out, max).expect("a decoded frame must re-encode");
                assert_eq!(out.len(), consumed, "re-encoded length");
                let pad = usize::from(before[2] >> 6);
                assert_eq!(
                    &out[..consumed - pad],
                    &before[..consumed - pad],
                    "re-encoded bytes differ outside the padding"
                );
                assert!(out[consumed - pad..].iter().all(|&b| b == 0), "pad not zero");
                let mut again = out.clone();
                let g = frame::decode(&mut again, max).expect("re-encoded frame must decode");
                assert!(again.is_empty());
                assert_eq!(g, f, "decode(encode(f)) != f");
                frames.push(f);
            }
            Err(frame::Error::Incomplete(need)) => {
                assert_eq!(buf, before, "Incomplete must leave the buffer as it was");
                assert!(need > buf.len(), "Incomplete({need}) with {} bytes", buf.len());
                assert!(need <= max.max(frame::HEADER_LEN));
                match checked {
                    Err(frame::Error::Incomplete(n)) => assert_eq!(n, frame::HEADER_LEN),
                    Ok(n) => assert_eq!(n, need),
                    Err(e) => panic!("check: {e}, decode: Incomplete"),
                }
                let end = if buf.is_empty() {
                    End::Clean
                } else {
                    End::Truncated(buf.len())
                };
                return (frames, end);
            }
            Err(e) => {
                assert_eq!(buf, before, "an error must leave the buffer as it was");
                assert_eq!(checked, Err(e.clone()), "check and decode disagree");
                return (frames, End::Bad(e));
            }
        }
    }
}

/// `FrameCodec` as a `Decoder`, fed `chunk` bytes at a time like `FramedRead`.
fn chunked(stream: &[u8], chunk: usize, mut codec: FrameCodec) -> (Vec<Frame>, End) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, end_of(e)),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, End::Clean),
            Err(e) => return (frames, end_of(e)),
        }
    }
}

/// Collects a `FrameStream`: frames, then the ending; at most one error.
fn collect_stream(items: Vec<Result<Frame, CodecError>>) -> (Vec<Frame>, End) {
    let mut frames = Vec::new();
    let mut end = End::Clean;
    let n = items.len();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Ok(f) => frames.push(f),
            Err(e) => {
                assert_eq!(i + 1, n, "FrameStream yielded something after an error");
                end = end_of(e);
            }
        }
    }
    (frames, end)
}

/// Reads at most `chunk` bytes per call and returns `Pending` (having woken
/// the task) every other call.
struct Dribble<'a> {
    data: &'a [u8],
    chunk: usize,
    pend: bool,
}

impl AsyncRead for Dribble<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.pend = !self.pend;
        if self.pend {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (head, tail) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = tail;
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(sel & 0x3f) + 1;
    let codec = match sel >> 6 {
        0 => FrameCodec::tcp(),
        1 => FrameCodec::udp(),
        2 => FrameCodec::with_max(usize::from(sel & 0x3f)), // clamps to 20
        _ => FrameCodec::with_max(64 + usize::from(sel & 0x3f) * 8),
    };
    let max = codec.max();

    let expected = reference(stream, max);

    let got = chunked(stream, chunk, codec);
    assert_eq!(got, expected, "chunked Decoder (chunk {chunk}) vs frame::decode");

    // FrameStream over &[u8] on a real runtime.
    let items: Vec<_> = runtime().block_on(FrameStream::new(stream, codec).collect());
    assert_eq!(collect_stream(items), expected, "FrameStream(&[u8])");

    // FrameStream over a dribbling reader, polled by hand: every poll makes
    // progress or returns Pending after waking, so the stream must end within
    // a bounded number of polls.
    let mut fs = FrameStream::new(
        Dribble {
            data: stream,
            chunk,
            pend: false,
        },
        codec,
    );
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut items = Vec::new();
    let bound = 4 * (stream.len() / chunk + 2) + 2 * (stream.len() / frame::HEADER_LEN + 2) + 16;
    let mut polls = 0usize;
    loop {
        polls += 1;
        assert!(polls <= bound, "FrameStream did not end within {bound} polls");
        match Pin::new(&mut fs).poll_next(&mut cx) {
            Poll::Ready(Some(item)) => items.push(item),
            Poll::Ready(None) => break,
            Poll::Pending => {}
        }
    }
    // Ended streams stay ended.
    assert!(matches!(Pin::new(&mut fs).poll_next(&mut cx), Poll::Ready(None)));
    assert_eq!(collect_stream(items), expected, "FrameStream(Dribble, chunk {chunk})");
});
