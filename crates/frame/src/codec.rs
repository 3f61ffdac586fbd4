//! The sans-IO frame codec: bytes in, messages out, and back.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, one
//! MessagePack array whose first element is the message kind. The decoder
//! never touches a socket: `Ok(None)` means "not enough bytes yet".

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, ErrorCode};
use crate::message::{Hello, Kind, Limits, Message, Welcome};
use crate::msgpack::{ReadError, Reader, Writer};

/// The length prefix's size in bytes.
pub const HEADER_LEN: usize = 4;

/// Why bytes could not become a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl CodecError {
    /// The protocol error a peer is told before its connection closes.
    pub fn to_error(&self) -> Error {
        match self {
            CodecError::TooLarge { .. } => Error::new(ErrorCode::TooLarge, self.to_string()),
            CodecError::Malformed(_) => Error::new(ErrorCode::BadRequest, self.to_string()),
        }
    }
}

impl From<ReadError> for CodecError {
    fn from(e: ReadError) -> CodecError {
        CodecError::Malformed(e.to_string())
    }
}

/// Another protocol, recognised by the first bytes a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Foreign {
    /// An HTTP request or response: it opens with a method or `HTTP/`.
    Http,
    /// A TLS record: a content type from 20 to 24, then major version 3.
    Tls,
}

impl Foreign {
    /// Recognises HTTP or TLS by the first bytes of a stream. Only a stream
    /// whose first frame the decoder refused is worth asking: as a length
    /// prefix, either opening announces hundreds of megabytes.
    pub fn sniff(bytes: &[u8]) -> Option<Foreign> {
        match bytes {
            [b0, b1, b2, b3, ..]
                if [b0, b1, b2].iter().all(|b| b.is_ascii_uppercase())
                    && (b3.is_ascii_uppercase() || *b3 == b' ') =>
            {
                Some(Foreign::Http)
            }
            [20..=24, 3, ..] => Some(Foreign::Tls),
            _ => None,
        }
    }
}

/// Splits frames off a byte buffer and parses them.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    max_frame: usize,
}

impl Decoder {
    pub fn new(max_frame: usize) -> Decoder {
        Decoder { max_frame }
    }

    /// Takes one whole message off the front of `buf`, if one is there.
    ///
    /// The length is checked against the limit before any room is reserved
    /// for it, so a hostile prefix can never make us allocate.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame {
            return Err(CodecError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if len == 0 {
            return Err(CodecError::Malformed("empty frame".into()));
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        parse(payload).map(Some)
    }
}

/// Parses one frame payload.
pub fn parse(payload: Bytes) -> Result<Message, CodecError> {
    let mut r = Reader::new(&payload);
    let fields = r.array_len()?;
    let kind = r.uint()?;
    let kind = Kind::from_u64(kind)
        .ok_or_else(|| CodecError::Malformed(format!("unknown message kind {kind}")))?;
    let expected = field_count(kind);
    if fields != expected {
        return Err(CodecError::Malformed(format!(
            "{kind:?} has {expected} fields, not {fields}"
        )));
    }
    let msg = match kind {
        Kind::Hello => Message::Hello(Hello {
            version: r.u32()?,
            service: r.str()?.to_owned(),
            token: r.opt_str()?.map(str::to_owned),
            client: r.str()?.to_owned(),
        }),
        Kind::Welcome => Message::Welcome(Welcome {
            service: r.str()?.to_owned(),
            server_version: r.str()?.to_owned(),
            session: r.str()?.to_owned(),
            limits: parse_limits(&mut r)?,
        }),
        Kind::Request => Message::Request {
            id: r.uint()?,
            method: r.str()?.to_owned(),
            body: payload.slice(r.skip_value()?),
            stream: r.bool()?,
        },
        Kind::Response => Message::Response {
            id: r.uint()?,
            body: payload.slice(r.skip_value()?),
            stream: r.bool()?,
        },
        Kind::Error => Message::Error {
            id: r.uint()?,
            error: Error::new(ErrorCode::from_wire(r.str()?), r.str()?),
        },
        Kind::Event => Message::Event {
            id: r.uint()?,
            body: payload.slice(r.skip_value()?),
        },
        Kind::Cancel => Message::Cancel { id: r.uint()? },
        Kind::Ping => Message::Ping { nonce: r.uint()? },
        Kind::Pong => Message::Pong { nonce: r.uint()? },
        Kind::Goodbye => Message::Goodbye {
            reason: r.str()?.to_owned(),
        },
        Kind::Chunk => Message::Chunk {
            id: r.uint()?,
            data: payload.slice(r.bin_range()?),
            last: r.bool()?,
        },
        Kind::Credit => Message::Credit {
            id: r.uint()?,
            bytes: r.uint()?,
        },
    };
    if !r.is_empty() {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes after the message",
            payload.len() - r.position()
        )));
    }
    Ok(msg)
}

/// Limits travel as a map, so that a later version can add keys that older
/// clients skip.
fn parse_limits(r: &mut Reader<'_>) -> Result<Limits, CodecError> {
    let mut limits = Limits::default();
    for _ in 0..r.map_len()? {
        match r.str()? {
            "max_frame" => limits.max_frame = r.u32()?,
            "max_in_flight" => limits.max_in_flight = r.u32()?,
            "idle_timeout_ms" => limits.idle_timeout_ms = r.uint()?,
            "stream_window" => limits.stream_window = r.u32()?,
            _ => {
                r.skip_value()?;
            }
        }
    }
    Ok(limits)
}

/// The number of array elements, kind included, of each message.
fn field_count(kind: Kind) -> usize {
    match kind {
        Kind::Hello | Kind::Welcome => 5,
        Kind::Request => 5,
        Kind::Response | Kind::Error | Kind::Chunk => 4,
        Kind::Event | Kind::Credit => 3,
        Kind::Cancel | Kind::Ping | Kind::Pong | Kind::Goodbye => 2,
    }
}

/// Appends one whole frame, length prefix included, to `dst`.
pub fn encode(msg: &Message, dst: &mut BytesMut) {
    let start = dst.len();
    dst.put_u32(0);
    let mut w = Writer(dst);
    w.array_len(field_count(msg.kind()) as u32);
    w.uint(msg.kind() as u64);
    match msg {
        Message::Hello(h) => {
            w.uint(u64::from(h.version));
            w.str(&h.service);
            match &h.token {
                Some(t) => w.str(t),
                None => w.nil(),
            }
            w.str(&h.client);
        }
        Message::Welcome(wel) => {
            w.str(&wel.service);
            w.str(&wel.server_version);
            w.str(&wel.session);
            w.map_len(4);
            w.str("max_frame");
            w.uint(u64::from(wel.limits.max_frame));
            w.str("max_in_flight");
            w.uint(u64::from(wel.limits.max_in_flight));
            w.str("idle_timeout_ms");
            w.uint(wel.limits.idle_timeout_ms);
            w.str("stream_window");
            w.uint(u64::from(wel.limits.stream_window));
        }
        Message::Request {
            id,
            method,
            body,
            stream,
        } => {
            w.uint(*id);
            w.str(method);
            w.raw(body);
            w.bool(*stream);
        }
        Message::Response { id, body, stream } => {
            w.uint(*id);
            w.raw(body);
            w.bool(*stream);
        }
        Message::Error { id, error } => {
            w.uint(*id);
            w.str(error.code.as_str());
            w.str(&error.message);
        }
        Message::Event { id, body } => {
            w.uint(*id);
            w.raw(body);
        }
        Message::Cancel { id } => w.uint(*id),
        Message::Ping { nonce } | Message::Pong { nonce } => w.uint(*nonce),
        Message::Goodbye { reason } => w.str(reason),
        Message::Chunk { id, data, last } => {
            w.uint(*id);
            w.bin(data);
            w.bool(*last);
        }
        Message::Credit { id, bytes } => {
            w.uint(*id);
            w.uint(*bytes);
        }
    }
    let len = (dst.len() - start - HEADER_LEN) as u32;
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Chunks at least this large are written from their own buffer rather than
/// copied into the write batch.
pub const ZERO_COPY_MIN: usize = 16 * 1024;

/// Appends a frame to `dst`, except that a large chunk's data is returned
/// rather than copied: the caller writes `dst`'s bytes so far, then the data,
/// then whatever `dst` holds after this call (the chunk's closing `last` flag).
/// The bytes on the wire are exactly those of [`encode`].
pub fn encode_vectored(msg: Message, dst: &mut BytesMut) -> Option<(usize, Bytes)> {
    let Message::Chunk { id, data, last } = msg else {
        encode(&msg, dst);
        return None;
    };
    if data.len() < ZERO_COPY_MIN {
        encode(&Message::Chunk { id, data, last }, dst);
        return None;
    }
    let start = dst.len();
    dst.put_u32(0);
    let mut w = Writer(dst);
    w.array_len(field_count(Kind::Chunk) as u32);
    w.uint(Kind::Chunk as u64);
    w.uint(id);
    w.bin_header(data.len());
    let split = dst.len();
    Writer(dst).bool(last);
    let len = (dst.len() - start - HEADER_LEN + data.len()) as u32;
    dst[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Some((split, data))
}

/// The encoded frame of one message, as a fresh buffer.
pub fn to_bytes(msg: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use proptest::prelude::*;

    fn arb_body() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            Just(body::NIL.clone()),
            any::<i64>().prop_map(|v| body::encode(&v)),
            ".{0,40}".prop_map(|s| body::encode(&s)),
            proptest::collection::vec(any::<u32>(), 0..20).prop_map(|v| body::encode(&v)),
            proptest::collection::btree_map(".{0,8}", any::<bool>(), 0..8)
                .prop_map(|m| body::encode(&m)),
        ]
    }

    fn arb_error() -> impl Strategy<Value = Error> {
        (proptest::sample::select(ErrorCode::ALL.to_vec()), ".{0,40}")
            .prop_map(|(code, message)| Error::new(code, message))
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u32>(),
                ".{0,20}",
                proptest::option::of(".{0,64}"),
                ".{0,20}"
            )
                .prop_map(|(version, service, token, client)| Message::Hello(Hello {
                    version,
                    service,
                    token,
                    client
                })),
            (
                ".{0,20}",
                ".{0,20}",
                ".{0,40}",
                any::<(u32, u32, u64, u32)>()
            )
                .prop_map(|(service, server_version, session, l)| {
                    Message::Welcome(Welcome {
                        service,
                        server_version,
                        session,
                        limits: Limits {
                            max_frame: l.0,
                            max_in_flight: l.1,
                            idle_timeout_ms: l.2,
                            stream_window: l.3,
                        },
                    })
                }),
            (any::<u64>(), ".{0,30}", arb_body(), any::<bool>()).prop_map(
                |(id, method, body, stream)| Message::Request {
                    id,
                    method,
                    body,
                    stream
                }
            ),
            (any::<u64>(), arb_body(), any::<bool>())
                .prop_map(|(id, body, stream)| Message::Response { id, body, stream }),
            (any::<u64>(), arb_error()).prop_map(|(id, error)| Message::Error { id, error }),
            (any::<u64>(), arb_body()).prop_map(|(id, body)| Message::Event { id, body }),
            any::<u64>().prop_map(|id| Message::Cancel { id }),
            any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
            any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
            ".{0,60}".prop_map(|reason| Message::Goodbye { reason }),
            (
                any::<u64>(),
                proptest::collection::vec(any::<u8>(), 0..300),
                any::<bool>()
            )
                .prop_map(|(id, data, last)| Message::Chunk {
                    id,
                    data: data.into(),
                    last
                }),
            (any::<u64>(), any::<u64>()).prop_map(|(id, bytes)| Message::Credit { id, bytes }),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in arb_message()) {
            let mut buf = BytesMut::new();
            encode(&msg, &mut buf);
            let decoded = Decoder::new(usize::MAX).decode(&mut buf).expect("decodes");
            prop_assert_eq!(decoded, Some(msg));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn every_frame_decodes_when_split_at_every_offset(msg in arb_message()) {
            let frame = to_bytes(&msg);
            let decoder = Decoder::new(usize::MAX);
            for split in 0..frame.len() {
                let mut buf = BytesMut::from(&frame[..split]);
                prop_assert_eq!(decoder.decode(&mut buf), Ok(None));
                buf.extend_from_slice(&frame[split..]);
                prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(msg.clone())));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let decoder = Decoder::new(1024);
            // Drain until the decoder wants more bytes or reports an error.
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }

        #[test]
        fn arbitrary_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 1..512)) {
            let _ = parse(Bytes::from(bytes));
        }
    }

    #[test]
    fn vectored_encoding_puts_the_same_bytes_on_the_wire() {
        for len in [0, 100, ZERO_COPY_MIN, 200_000] {
            let msg = Message::Chunk {
                id: 300,
                data: Bytes::from(vec![7u8; len]),
                last: len % 2 == 0,
            };
            let mut parts = BytesMut::new();
            let wire = match encode_vectored(msg.clone(), &mut parts) {
                None => parts.to_vec(),
                Some((split, data)) => [&parts[..split], &data[..], &parts[split..]].concat(),
            };
            assert_eq!(wire, to_bytes(&msg).to_vec(), "chunk of {len} bytes");
        }
    }

    #[test]
    fn oversize_length_is_refused_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0x00][..]);
        let before = buf.capacity();
        let err = Decoder::new(16 << 20).decode(&mut buf).unwrap_err();
        assert_eq!(
            err,
            CodecError::TooLarge {
                len: 0xffff_ffff,
                max: 16 << 20
            }
        );
        assert_eq!(err.to_error().code, ErrorCode::TooLarge);
        assert_eq!(buf.capacity(), before);
    }

    #[test]
    fn http_and_tls_openings_are_recognised_and_frames_are_not() {
        assert_eq!(
            Foreign::sniff(b"HTTP/1.1 400 Bad Request\r\n"),
            Some(Foreign::Http)
        );
        assert_eq!(Foreign::sniff(b"GET / HTTP/1.1\r\n"), Some(Foreign::Http));
        // A TLS alert (what a TLS server answers to plaintext) and a ClientHello.
        assert_eq!(
            Foreign::sniff(&[0x15, 0x03, 0x03, 0x00, 0x02, 2, 10]),
            Some(Foreign::Tls)
        );
        assert_eq!(
            Foreign::sniff(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Some(Foreign::Tls)
        );
        let ping = to_bytes(&Message::Ping { nonce: 7 });
        assert_eq!(Foreign::sniff(&ping), None);
        assert_eq!(Foreign::sniff(b"GE"), None);
    }

    #[test]
    fn empty_frame_is_malformed() {
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert!(matches!(
            Decoder::new(64).decode(&mut buf),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn extra_fields_are_malformed() {
        // [6, 1, 2]: a Cancel with one field too many.
        let mut buf = BytesMut::from(&[0, 0, 0, 4, 0x93, 6, 1, 2][..]);
        let err = Decoder::new(64).decode(&mut buf).unwrap_err();
        assert_eq!(err.to_error().code, ErrorCode::BadRequest);
    }

    #[test]
    fn unknown_kind_is_malformed() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 0x92, 0x63, 1][..]);
        assert!(matches!(
            Decoder::new(64).decode(&mut buf),
            Err(CodecError::Malformed(m)) if m.contains("unknown message kind 99")
        ));
    }

    #[test]
    fn ping_frame_matches_the_documented_bytes() {
        let frame = to_bytes(&Message::Ping { nonce: 7 });
        assert_eq!(&frame[..], &[0, 0, 0, 3, 0x92, 0x07, 0x07]);
    }
}
