//! Property tests of the codec: any frame survives encode → decode, through
//! any split of the byte stream, and no byte string makes it panic or
//! allocate past the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use proptest::prelude::*;
use psvc::codec::{CodecError, FrameCodec, FrameStream};
use psvc::frame::{self, Flags, Frame, Kind, MAX_TCP_PACKET, MAX_UDP_PACKET, Status};
use tokio_util::codec::{Decoder, Encoder};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::ServInfo),
        Just(Kind::Rpc),
        Just(Kind::Subscribe),
        Just(Kind::Unsubscribe),
        Just(Kind::Publish),
        Just(Kind::Datagram),
        Just(Kind::QosSetup),
        Just(Kind::Noop),
        Just(Kind::PingEcho),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        kind(),
        0u8..8,
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(
            |(kind, flags, status, seqno, tunid, url, param, data)| Frame {
                kind,
                flags: Flags::from_bits(flags),
                status: Status(status),
                seqno,
                tunid,
                url: Bytes::from(url),
                param: Bytes::from(param),
                data: Bytes::from(data),
            },
        )
}

proptest! {
    #[test]
    fn frames_round_trip_through_any_split(frames in proptest::collection::vec(frame(), 1..8), cut in 1usize..97) {
        let mut codec = FrameCodec::tcp();
        let mut wire = BytesMut::new();
        for f in &frames {
            codec.encode(f.clone(), &mut wire).unwrap();
        }
        prop_assert_eq!(wire.len() % 4, 0);
        let mut out = Vec::new();
        let mut buf = BytesMut::new();
        for chunk in wire.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_final(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut codec = FrameCodec::udp();
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => prop_assert!(f.encoded_len() <= MAX_UDP_PACKET),
                Ok(None) => {
                    // Never reserves more than the limit for a pending packet.
                    prop_assert!(buf.capacity() <= MAX_UDP_PACKET.max(bytes.len()) + 64);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn the_frame_stream_yields_the_same_frames(frames in proptest::collection::vec(frame(), 0..6)) {
        let mut wire = BytesMut::new();
        for f in &frames {
            frame::encode(f, &mut wire, MAX_TCP_PACKET).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got: Vec<Frame> = rt.block_on(async {
            FrameStream::new(&wire[..], FrameCodec::tcp())
                .map(|r| r.unwrap())
                .collect()
                .await
        });
        prop_assert_eq!(got, frames);
    }
}

#[test]
fn a_large_packet_is_read_into_one_buffer_and_idle_streams_hold_none() {
    let big = Frame::new(Kind::Rpc)
        .url("/blob")
        .data(vec![9u8; 200 * 1024]);
    let mut wire = BytesMut::new();
    frame::encode(&big, &mut wire, MAX_TCP_PACKET).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = FrameStream::new(&wire[..], FrameCodec::tcp());
        let got = s.next().await.unwrap().unwrap();
        assert_eq!(got, big);
        assert_eq!(s.buffered_capacity(), 0, "nothing kept between packets");
        // The stream holds no share of the read allocation: once the url is
        // gone the frame's data is the allocation's only owner.
        let Frame { url, data, .. } = got;
        drop(url);
        assert!(
            data.is_unique(),
            "the stream still references the read buffer"
        );
        assert!(s.next().await.is_none());
    });
}

#[test]
fn a_stream_cut_inside_a_packet_reports_truncation() {
    let mut wire = BytesMut::new();
    frame::encode(
        &Frame::new(Kind::Rpc).url("/abc"),
        &mut wire,
        MAX_TCP_PACKET,
    )
    .unwrap();
    let cut = &wire[..wire.len() - 1];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut s = FrameStream::new(cut, FrameCodec::tcp());
        assert!(matches!(
            s.next().await,
            Some(Err(CodecError::Truncated(_)))
        ));
        assert!(s.next().await.is_none(), "an error ends the stream");
    });
}

#[test]
fn oversize_headers_are_refused_before_any_body_arrives() {
    let mut header = BytesMut::new();
    frame::encode(&Frame::new(Kind::Datagram), &mut header, MAX_TCP_PACKET).unwrap();
    header[16..20].copy_from_slice(&(MAX_UDP_PACKET as u32).to_be_bytes());
    let mut codec = FrameCodec::udp();
    let before = header.capacity();
    assert!(matches!(
        codec.decode(&mut header),
        Err(CodecError::Frame(frame::Error::TooLarge { .. }))
    ));
    assert_eq!(
        header.capacity(),
        before,
        "nothing reserved for the refused body"
    );
}
