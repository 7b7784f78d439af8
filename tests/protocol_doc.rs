//! The hex dumps in docs/protocol.md are real packets: each decodes and
//! encodes back to the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use psvc::frame::{self, MAX_TCP_PACKET};

#[test]
fn every_hex_dump_in_the_protocol_doc_round_trips() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```hex") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push(' ');
                b.push_str(l);
            }
            (None, _) => {}
        }
    }
    assert!(blocks.len() >= 15, "found only {} hex blocks", blocks.len());
    for block in blocks {
        let bytes: Vec<u8> = block
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let mut src = BytesMut::from(&bytes[..]);
        let f = frame::decode(&mut src, MAX_TCP_PACKET).unwrap_or_else(|e| panic!("{block}: {e}"));
        assert!(src.is_empty(), "{block}: trailing bytes");
        let mut out = BytesMut::new();
        frame::encode(&f, &mut out, MAX_TCP_PACKET).unwrap();
        assert_eq!(&out[..], &bytes[..], "{block}");
    }
}
