//! An IPP message as the face reads and writes it: the head (version,
//! operation, request id and attribute groups) parsed by the `ipp` crate from
//! the first bytes of an HTTP body, the document that follows it, and the
//! encoded answer.

use std::io::Cursor;
use std::time::Duration;

use backroom_frame::error::{Error, ErrorCode};
use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use ipp::IppHeader;
use ipp::attribute::{IppAttribute, IppAttributeGroup, IppAttributes};
use ipp::model::{DelimiterTag, IppVersion, StatusCode};
use ipp::parser::{IppParseError, IppParser};
use ipp::reader::IppReader;
use ipp::value::{BoundedString, IppName, IppTextValue, IppValue};

use crate::service::Upload;

/// The head of a request may take at most this many bytes: far more than
/// any real client sends, and a bound on what a garbled length can make the
/// face buffer.
pub const MAX_HEAD: usize = 1 << 20;

/// Why no head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The body ended before the end-of-attributes tag.
    Truncated,
    /// The bytes are not an IPP message.
    Invalid(IppParseError),
    /// The head is longer than [`MAX_HEAD`].
    TooLong,
    /// The connection broke while the head was read.
    Broken(String),
}

/// A parsed head and the bytes of the body read past it.
pub struct Head {
    pub header: IppHeader,
    pub attributes: IppAttributes,
    /// How many bytes of the body the head took.
    pub len: usize,
    /// The first bytes of the document, read with the head.
    pub rest: Bytes,
}

/// Reads the body until its head parses. The `ipp` crate's parser reads from
/// a `Read`, so each attempt runs on the bytes so far and an early end of
/// input means "read more"; heads are small, so this is rarely more than one
/// attempt. A client silent for `idle` is given up.
pub async fn read_head(body: &mut Incoming, idle: Duration) -> Result<Head, HeadError> {
    let mut buf = BytesMut::new();
    loop {
        if !buf.is_empty() {
            let bytes = buf.clone().freeze();
            if let Some(head) = parse_head(&bytes)? {
                return Ok(head);
            }
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLong);
        }
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            return Err(HeadError::Broken(format!(
                "nothing came for {} s",
                idle.as_secs()
            )));
        };
        match frame {
            None => return Err(HeadError::Truncated),
            Some(Err(e)) => return Err(HeadError::Broken(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.put(data);
                }
            }
        }
    }
}

/// Parses a head from the start of `bytes`: `None` when more bytes are
/// needed.
pub fn parse_head(bytes: &Bytes) -> Result<Option<Head>, HeadError> {
    let parser = IppParser::new(IppReader::new(Cursor::new(bytes.clone())));
    match parser.parse_parts() {
        Ok((header, attributes, reader)) => {
            let len = usize::try_from(reader.into_inner().position()).unwrap_or(bytes.len());
            Ok(Some(Head {
                header,
                attributes,
                len,
                rest: bytes.slice(len.min(bytes.len())..),
            }))
        }
        Err(IppParseError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(HeadError::Invalid(e)),
    }
}

/// The document of a Print-Job or Send-Document request: the bytes read with
/// the head, then the rest of the HTTP body, chunked or not, up to a limit.
pub struct Document {
    rest: Option<Bytes>,
    body: Incoming,
    read: u64,
    limit: u64,
    declared: Option<u64>,
    /// How long the client may send nothing.
    idle: Duration,
}

impl Document {
    /// `declared` is the document's length when the request had a
    /// `Content-Length`.
    pub fn new(
        rest: Bytes,
        body: Incoming,
        (limit, idle): (u64, Duration),
        declared: Option<u64>,
    ) -> Document {
        Document {
            rest: Some(rest).filter(|r| !r.is_empty()),
            body,
            read: 0,
            limit,
            declared,
            idle,
        }
    }

    /// The next frame of the body; a client silent for `idle` is given up.
    async fn frame(&mut self) -> Result<Option<Result<Frame<Bytes>, hyper::Error>>, Error> {
        tokio::time::timeout(self.idle, self.body.frame())
            .await
            .map_err(|_| {
                Error::timeout(format!(
                    "the document stalled: nothing came for {} s",
                    self.idle.as_secs()
                ))
            })
    }

    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    fn count(&mut self, data: Bytes) -> Result<Option<Bytes>, Error> {
        self.read += data.len() as u64;
        if self.read > self.limit {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!("the document is longer than {} bytes", self.limit),
            ));
        }
        Ok(Some(data))
    }
}

/// What a refused request may still send, read and dropped so that the client,
/// still writing, reads the refusal rather than a reset connection.
const MAX_DRAIN: u64 = 1 << 20;

impl Document {
    /// Reads and drops the rest of the document, up to [`MAX_DRAIN`] bytes
    /// more; beyond that the connection is closed with the answer.
    pub async fn drain(&mut self) {
        let mut dropped = 0u64;
        self.rest = None;
        while dropped < MAX_DRAIN {
            match self.frame().await {
                Ok(Some(Ok(frame))) => {
                    dropped += frame.data_ref().map_or(0, |d| d.len() as u64);
                }
                _ => return,
            }
        }
    }
}

impl Upload for &mut Document {
    async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.next().await
    }
}

impl Document {
    async fn next(&mut self) -> Result<Option<Bytes>, Error> {
        if let Some(rest) = self.rest.take() {
            return self.count(rest);
        }
        loop {
            match self.frame().await? {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::unavailable(format!("the document broke off: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return self.count(data);
                    }
                }
            }
        }
    }
}

/// An answer: its status, an optional message for people, and its groups
/// after the operation group.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub message: Option<String>,
    pub groups: Vec<IppAttributeGroup>,
    /// Attributes of the request that are not supported, as RFC 8011
    /// section 4.1.7 asks: they travel in their own group.
    pub unsupported: Vec<IppAttribute>,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer {
            status: StatusCode::SuccessfulOk,
            message: None,
            groups: Vec::new(),
            unsupported: Vec::new(),
        }
    }

    pub fn refuse(status: StatusCode, message: impl Into<String>) -> Answer {
        Answer {
            status,
            message: Some(message.into()),
            groups: Vec::new(),
            unsupported: Vec::new(),
        }
    }

    /// Adds one group of attributes, such as one job's.
    pub fn group(mut self, tag: DelimiterTag, attributes: Vec<IppAttribute>) -> Answer {
        let mut group = IppAttributeGroup::new(tag);
        *group.attributes_mut() = attributes;
        self.groups.push(group);
        self
    }

    /// Reports attributes the face ignored; a success becomes
    /// `successful-ok-ignored-or-substituted-attributes`.
    pub fn ignoring(mut self, unsupported: Vec<IppAttribute>) -> Answer {
        if !unsupported.is_empty() && self.status == StatusCode::SuccessfulOk {
            self.status = StatusCode::SuccessfulOkIgnoredOrSubstitutedAttributes;
        }
        self.unsupported.extend(unsupported);
        self
    }

    /// The answer as an IPP message, in the version the request used.
    pub fn encode(self, version: IppVersion, request_id: i32) -> Bytes {
        let header = IppHeader::new(version, self.status as i16, request_id);
        let mut attributes = IppAttributes::new();
        let operation = DelimiterTag::OperationAttributes;
        attributes.add(operation, attr("attributes-charset", charset("utf-8")));
        attributes.add(
            operation,
            attr("attributes-natural-language", language("en")),
        );
        if let Some(message) = self.message {
            attributes.add(operation, attr("status-message", text(&message)));
        }
        if !self.unsupported.is_empty() {
            let mut group = IppAttributeGroup::new(DelimiterTag::UnsupportedAttributes);
            *group.attributes_mut() = self.unsupported;
            attributes.groups_mut().push(group);
        }
        attributes.groups_mut().extend(self.groups);
        let mut out = BytesMut::new();
        out.put(header.to_bytes());
        out.put(attributes.to_bytes());
        out.freeze()
    }
}

/// A bounded IPP string, cut at a character boundary when `s` is too long.
fn bounded<const MAX: usize>(s: &str) -> BoundedString<MAX> {
    let mut end = s.len().min(MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    BoundedString::new_truncated(&s[..end])
}

pub fn bounded_name(name: &str) -> IppName {
    bounded(name)
}

pub fn attr(name: &str, value: IppValue) -> IppAttribute {
    IppAttribute::new(bounded_name(name), value)
}

pub fn keyword(s: &str) -> IppValue {
    IppValue::Keyword(bounded(s))
}

pub fn keywords(all: &[&str]) -> IppValue {
    IppValue::Array(all.iter().map(|s| keyword(s)).collect())
}

pub fn name(s: &str) -> IppValue {
    IppValue::NameWithoutLanguage(bounded(s))
}

pub fn text(s: &str) -> IppValue {
    let mut end = s.len().min(1023);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    IppTextValue::new(&s[..end])
        .map(IppValue::TextWithoutLanguage)
        .unwrap_or(IppValue::NoValue)
}

pub fn uri(s: &str) -> IppValue {
    IppValue::Uri(bounded(s))
}

pub fn mime(s: &str) -> IppValue {
    IppValue::MimeMediaType(bounded(s))
}

pub fn charset(s: &str) -> IppValue {
    IppValue::Charset(bounded(s))
}

pub fn language(s: &str) -> IppValue {
    IppValue::NaturalLanguage(bounded(s))
}

pub fn integer(n: i64) -> IppValue {
    IppValue::Integer(i32::try_from(n).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Get-Printer-Attributes request followed by a document's bytes.
    fn message() -> Vec<u8> {
        let mut m = vec![0x02, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x07, 0x01];
        for (tag, name, value) in [
            (0x47u8, "attributes-charset", "utf-8"),
            (0x48, "attributes-natural-language", "en"),
            (0x45, "printer-uri", "ipp://localhost/printers/lp"),
        ] {
            m.push(tag);
            m.extend_from_slice(&(name.len() as u16).to_be_bytes());
            m.extend_from_slice(name.as_bytes());
            m.extend_from_slice(&(value.len() as u16).to_be_bytes());
            m.extend_from_slice(value.as_bytes());
        }
        m.push(0x03);
        m
    }

    #[test]
    fn a_head_split_at_any_offset_needs_more_bytes_then_parses_whole() {
        let head = message();
        let mut whole = head.clone();
        whole.extend_from_slice(b"%PDF-1.4 document");
        for cut in 0..head.len() {
            let part = Bytes::copy_from_slice(&whole[..cut]);
            assert!(
                matches!(parse_head(&part), Ok(None)),
                "{cut} bytes are not a head"
            );
        }
        let parsed = parse_head(&Bytes::from(whole))
            .expect("valid")
            .expect("whole");
        assert_eq!(parsed.len, head.len());
        assert_eq!(&parsed.rest[..], b"%PDF-1.4 document");
        assert_eq!(parsed.header.request_id, 7);
    }

    #[test]
    fn garbage_is_invalid_not_incomplete() {
        let mut bad = message();
        // A value tag outside every range the standard defines.
        bad[8] = 0x99;
        let parsed = parse_head(&Bytes::from(bad));
        assert!(matches!(parsed, Err(HeadError::Invalid(_))));
    }

    #[test]
    fn an_answer_starts_with_charset_and_language() {
        let bytes = Answer::refuse(StatusCode::ClientErrorNotFound, "no printer")
            .encode(IppVersion::v1_1(), 9);
        let parsed = parse_head(&bytes).expect("valid").expect("whole");
        assert_eq!(parsed.header.operation_or_status, 0x0406);
        let group = parsed
            .attributes
            .groups_of(DelimiterTag::OperationAttributes)
            .next()
            .expect("operation group");
        let names: Vec<&str> = group
            .attributes()
            .iter()
            .map(|a| a.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "attributes-charset",
                "attributes-natural-language",
                "status-message"
            ]
        );
    }
}
