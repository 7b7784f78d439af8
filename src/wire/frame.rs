//! VSOA v2 packets as values: the 20-byte header, url, param, data and
//! padding. Pure encode/decode over byte buffers, no IO (the [`codec`]
//! module adapts this to tokio-util; `docs/protocol.md` shows every packet
//! type in hex).
//!
//! All integers are big-endian:
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 1 | `0x29`: magic 0x9 (high nibble), version 2 (low nibble) |
//! | 1 | 1 | [`Kind`] |
//! | 2 | 1 | [`Flags`]: bit0 REPLY, bit1 TUNNEL, bit2 SET, bits 6–7 pad count |
//! | 3 | 1 | status ([`Status`]) |
//! | 4 | 4 | seqno |
//! | 8 | 2 | tunid |
//! | 10 | 2 | url length |
//! | 12 | 4 | param length |
//! | 16 | 4 | data length |
//! | 20 | … | url, param, data, then the pad bytes |
//!
//! [`check`] reads only the header and returns the packet's total length,
//! so a caller can refuse an oversize packet before it allocates anything.
//!
//! [`codec`]: crate::codec

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The first byte of every packet: magic 0x9, version 2.
pub const MAGIC_VERSION: u8 = 0x29;
/// Largest packet on a TCP connection (VSOA's limit), header included.
pub const MAX_TCP_PACKET: usize = 256 * 1024;
/// Largest packet on the UDP quick channel (the largest UDP payload over
/// IPv4), header included.
pub const MAX_UDP_PACKET: usize = 65_507;

/// Why bytes are not a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not enough bytes yet; at least this many are needed in total.
    /// Control flow for stream decoders, not a protocol error.
    #[error("incomplete packet: {0} bytes needed")]
    Incomplete(usize),
    /// The first byte is not `0x29`.
    #[error("bad magic/version byte {0:#04x} (expected 0x29)")]
    BadMagic(u8),
    /// The packet type byte is not a VSOA type.
    #[error("unknown packet type {0:#04x}")]
    UnknownKind(u8),
    /// The header announces more than the limit allows.
    #[error("packet of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Announced total length (header, body and padding).
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The pad count in the flags does not make the packet a multiple of 4.
    #[error(
        "pad count {pad} disagrees with the body length {body} (must round it to a multiple of 4)"
    )]
    BadPadding {
        /// Pad count from flags bits 6–7.
        pad: u8,
        /// url + param + data lengths.
        body: u64,
    },
}

/// Packet type (header byte 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// Handshake: client hello and server info.
    ServInfo,
    /// Remote procedure call.
    Rpc,
    /// Subscribe to a URL (prefix).
    Subscribe,
    /// Unsubscribe from a URL.
    Unsubscribe,
    /// A published message (server to subscribers).
    Publish,
    /// A one-way message.
    Datagram,
    /// Client sets its priority.
    QosSetup,
    /// Ignored by the receiver (the default).
    #[default]
    Noop,
    /// Keepalive request and echo.
    PingEcho,
}

impl Kind {
    /// The wire byte.
    pub const fn to_u8(self) -> u8 {
        match self {
            Kind::ServInfo => 0x00,
            Kind::Rpc => 0x01,
            Kind::Subscribe => 0x02,
            Kind::Unsubscribe => 0x03,
            Kind::Publish => 0x04,
            Kind::Datagram => 0x05,
            Kind::QosSetup => 0x06,
            Kind::Noop => 0xfe,
            Kind::PingEcho => 0xff,
        }
    }

    /// Parses the wire byte.
    pub const fn from_u8(b: u8) -> Result<Self, Error> {
        Ok(match b {
            0x00 => Kind::ServInfo,
            0x01 => Kind::Rpc,
            0x02 => Kind::Subscribe,
            0x03 => Kind::Unsubscribe,
            0x04 => Kind::Publish,
            0x05 => Kind::Datagram,
            0x06 => Kind::QosSetup,
            0xfe => Kind::Noop,
            0xff => Kind::PingEcho,
            other => return Err(Error::UnknownKind(other)),
        })
    }
}

/// Header flags (byte 2), without the pad count, which [`encode`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// The packet answers a request.
    pub const REPLY: Flags = Flags(0x01);
    /// `tunid` is valid (stream port; in SERVINFO the client's UDP port).
    pub const TUNNEL: Flags = Flags(0x02);
    /// RPC method SET (clear: GET).
    pub const SET: Flags = Flags(0x04);
    const PAD_MASK: u8 = 0xc0;

    /// No flags.
    pub const fn empty() -> Self {
        Flags(0)
    }
    /// From the wire byte; the pad bits are dropped.
    pub const fn from_bits(b: u8) -> Self {
        Flags(b & !Self::PAD_MASK)
    }
    /// The bits (pad bits always clear).
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    /// `self` with the flags of `other` added.
    #[must_use]
    pub const fn with(self, other: Flags) -> Self {
        Flags(self.0 | other.0)
    }
}

/// Reply status (byte 3). Codes 128–255 belong to applications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u8);

impl Status {
    /// Success.
    pub const OK: Status = Status(0);
    /// Wrong or missing password.
    pub const PASSWORD: Status = Status(1);
    /// Bad arguments (e.g. a URL not starting with `/`).
    pub const ARGUMENTS: Status = Status(2);
    /// No route for the URL.
    pub const INVALID_URL: Status = Status(3);
    /// The server did not answer in time.
    pub const NO_RESPONDING: Status = Status(4);
    /// Not allowed.
    pub const NO_PERMISSIONS: Status = Status(5);
    /// Out of memory / resources.
    pub const NO_MEMORY: Status = Status(6);

    /// Whether this is [`Status::OK`].
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// A short name for logs and errors.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "password",
            2 => "arguments",
            3 => "invalid url",
            4 => "no responding",
            5 => "no permissions",
            6 => "no memory",
            128..=255 => "user",
            _ => "reserved",
        }
    }
}

impl From<u8> for Status {
    fn from(code: u8) -> Self {
        Status(code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}

/// One VSOA packet.
///
/// `url`, `param` and `data` are [`Bytes`], so decoding slices the read
/// buffer without copying. `url` and `param` are text on the wire
/// (`param` is JSON by convention) but are kept as bytes here: a packet with
/// invalid UTF-8 still decodes and the layer that needs text says what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frame {
    /// Packet type.
    pub kind: Kind,
    /// Flags (pad bits excluded).
    pub flags: Flags,
    /// Reply status.
    pub status: Status,
    /// Sequence number, echoed in replies.
    pub seqno: u32,
    /// Tunnel id (stream port) when [`Flags::TUNNEL`] is set.
    pub tunid: u16,
    /// The URL.
    pub url: Bytes,
    /// The parameter, JSON text by convention.
    pub param: Bytes,
    /// Raw data.
    pub data: Bytes,
}

impl Frame {
    /// A packet of `kind` with everything else empty.
    pub fn new(kind: Kind) -> Self {
        Frame {
            kind,
            ..Frame::default()
        }
    }

    /// Sets the sequence number.
    #[must_use]
    pub fn seqno(mut self, seqno: u32) -> Self {
        self.seqno = seqno;
        self
    }

    /// Adds flags.
    #[must_use]
    pub fn flags(mut self, flags: Flags) -> Self {
        self.flags = self.flags.with(flags);
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    /// Sets the tunnel id and the TUNNEL flag.
    #[must_use]
    pub fn tunid(mut self, tunid: u16) -> Self {
        self.tunid = tunid;
        self.flags = self.flags.with(Flags::TUNNEL);
        self
    }

    /// Sets the URL.
    #[must_use]
    pub fn url(mut self, url: impl Into<Bytes>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets the param (JSON text by convention).
    #[must_use]
    pub fn param(mut self, param: impl Into<Bytes>) -> Self {
        self.param = param.into();
        self
    }

    /// Sets the data.
    #[must_use]
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// The reply to this packet: same type and seqno, REPLY set, empty body.
    pub fn reply(&self) -> Frame {
        Frame::new(self.kind).seqno(self.seqno).flags(Flags::REPLY)
    }

    /// Whether REPLY is set.
    pub fn is_reply(&self) -> bool {
        self.flags.contains(Flags::REPLY)
    }

    /// The URL as text, if it is UTF-8.
    pub fn url_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.url).ok()
    }

    /// url + param + data lengths.
    pub fn body_len(&self) -> usize {
        self.url.len() + self.param.len() + self.data.len()
    }

    /// Total encoded length: header, body and padding.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        HEADER_LEN + body + pad_for(body as u64) as usize
    }

    /// [`Frame::encoded_len`], if the packet can be encoded under `max`.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if it would exceed `max` bytes or the url exceeds
    /// its 16-bit length field.
    pub fn checked_len(&self, max: usize) -> Result<usize, Error> {
        let len = self.encoded_len();
        if len > max || self.url.len() > usize::from(u16::MAX) {
            return Err(Error::TooLarge {
                len: len as u64,
                max: max.min(HEADER_LEN + usize::from(u16::MAX)),
            });
        }
        Ok(len)
    }
}

/// Pad bytes needed after a body of `body` bytes.
const fn pad_for(body: u64) -> u8 {
    ((4 - (body % 4)) % 4) as u8
}

/// Checks the header at the start of `src` and returns the packet's total
/// length (header, body, padding), without reading the body.
///
/// # Errors
/// [`Error::Incomplete`] if fewer than 20 bytes are present; a protocol error
/// if the header is invalid or announces more than `max` bytes.
pub fn check(src: &[u8], max: usize) -> Result<usize, Error> {
    if src.is_empty() {
        return Err(Error::Incomplete(HEADER_LEN));
    }
    if src[0] != MAGIC_VERSION {
        return Err(Error::BadMagic(src[0]));
    }
    if src.len() < HEADER_LEN {
        return Err(Error::Incomplete(HEADER_LEN));
    }
    let mut h = &src[1..HEADER_LEN];
    Kind::from_u8(h.get_u8())?;
    let flags = h.get_u8();
    let _status = h.get_u8();
    let _seqno = h.get_u32();
    let _tunid = h.get_u16();
    let url_len = u64::from(h.get_u16());
    let param_len = u64::from(h.get_u32());
    let data_len = u64::from(h.get_u32());
    let body = url_len + param_len + data_len;
    let pad = flags >> 6;
    let len = HEADER_LEN as u64 + body + u64::from(pad);
    if len > max as u64 {
        return Err(Error::TooLarge { len, max });
    }
    if pad != pad_for(body) {
        return Err(Error::BadPadding { pad, body });
    }
    // len <= max, so it fits in usize.
    Ok(len as usize)
}

/// Decodes one packet from the start of `src`, removing its bytes.
///
/// On any error `src` is left as it was.
///
/// # Errors
/// [`Error::Incomplete`] when the packet is not all there yet; a protocol
/// error when the bytes are not a valid packet of at most `max` bytes.
pub fn decode(src: &mut BytesMut, max: usize) -> Result<Frame, Error> {
    let len = check(src, max)?;
    if src.len() < len {
        return Err(Error::Incomplete(len));
    }
    let mut packet = src.split_to(len).freeze();
    packet.advance(1);
    let kind = Kind::from_u8(packet.get_u8())?;
    let flags = Flags::from_bits(packet.get_u8());
    let status = Status(packet.get_u8());
    let seqno = packet.get_u32();
    let tunid = packet.get_u16();
    let url_len = usize::from(packet.get_u16());
    let param_len = packet.get_u32() as usize;
    let data_len = packet.get_u32() as usize;
    let url = packet.split_to(url_len);
    let param = packet.split_to(param_len);
    let data = packet.split_to(data_len);
    Ok(Frame {
        kind,
        flags,
        status,
        seqno,
        tunid,
        url,
        param,
        data,
    })
}

/// Appends the encoding of `frame` to `dst`.
///
/// # Errors
/// [`Error::TooLarge`] if the packet would exceed `max` bytes or a field
/// exceeds its length field (url > 65 535 bytes); nothing is written then.
pub fn encode(frame: &Frame, dst: &mut BytesMut, max: usize) -> Result<(), Error> {
    let len = frame.checked_len(max)?;
    let body = frame.body_len() as u64;
    let pad = pad_for(body);
    dst.reserve(len);
    dst.put_u8(MAGIC_VERSION);
    dst.put_u8(frame.kind.to_u8());
    dst.put_u8(frame.flags.bits() | (pad << 6));
    dst.put_u8(frame.status.0);
    dst.put_u32(frame.seqno);
    dst.put_u16(frame.tunid);
    // The limits checked above make these casts lossless (max < 4 GiB).
    dst.put_u16(frame.url.len() as u16);
    dst.put_u32(frame.param.len() as u32);
    dst.put_u32(frame.data.len() as u32);
    dst.extend_from_slice(&frame.url);
    dst.extend_from_slice(&frame.param);
    dst.extend_from_slice(&frame.data);
    dst.put_bytes(0, usize::from(pad));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bytes_of(frame: &Frame) -> BytesMut {
        let mut b = BytesMut::new();
        encode(frame, &mut b, MAX_TCP_PACKET).unwrap();
        b
    }

    #[test]
    fn ping_is_twenty_bytes_big_endian() {
        let b = bytes_of(&Frame::new(Kind::PingEcho).seqno(0x0102_0304));
        assert_eq!(
            &b[..],
            &[
                0x29, 0xff, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn body_is_padded_and_pad_count_is_in_the_flags() {
        let f = Frame::new(Kind::Rpc)
            .flags(Flags::SET)
            .seqno(7)
            .url("/a")
            .param("{}")
            .data(&b"x"[..]);
        let b = bytes_of(&f);
        assert_eq!(b.len(), 28);
        assert_eq!(b[2], 0x04 | (3 << 6));
        assert_eq!(&b[20..25], b"/a{}x");
        assert_eq!(&b[25..], &[0, 0, 0]);
        let mut src = b.clone();
        assert_eq!(decode(&mut src, MAX_TCP_PACKET).unwrap(), f);
        assert!(src.is_empty());
    }

    #[test]
    fn short_input_is_incomplete_and_untouched() {
        let b = bytes_of(&Frame::new(Kind::Rpc).url("/abc"));
        for cut in 0..b.len() {
            let mut src = BytesMut::from(&b[..cut]);
            let err = decode(&mut src, MAX_TCP_PACKET).unwrap_err();
            assert!(matches!(err, Error::Incomplete(_)), "{cut}: {err}");
            assert_eq!(src.len(), cut);
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let mut h = bytes_of(&Frame::new(Kind::Rpc));
        h[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
        h[2] = 0; // pad irrelevant: size is checked first
        assert!(matches!(
            check(&h, MAX_TCP_PACKET),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn bad_magic_kind_and_padding_are_errors() {
        let good = bytes_of(&Frame::new(Kind::Rpc).url("/x"));
        let mut bad = good.clone();
        bad[0] = 0x28;
        assert_eq!(check(&bad, MAX_TCP_PACKET), Err(Error::BadMagic(0x28)));
        let mut bad = good.clone();
        bad[1] = 0x42;
        assert_eq!(check(&bad, MAX_TCP_PACKET), Err(Error::UnknownKind(0x42)));
        let mut bad = good.clone();
        bad[2] = 0;
        assert!(matches!(
            check(&bad, MAX_TCP_PACKET),
            Err(Error::BadPadding { .. })
        ));
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let big = Frame::new(Kind::Rpc).data(vec![0u8; MAX_UDP_PACKET]);
        let mut b = BytesMut::new();
        assert!(encode(&big, &mut b, MAX_UDP_PACKET).is_err());
        assert!(b.is_empty());
        let long_url = Frame::new(Kind::Rpc).url(vec![b'a'; 70_000]);
        assert!(encode(&long_url, &mut b, MAX_TCP_PACKET).is_err());
    }
}
