//! Just enough MessagePack to read and write message envelopes without serde.
//!
//! Envelopes are fixed-position arrays, so hand-written code here is both faster
//! than serde and an exact mirror of the byte layout that `docs/protocol.md`
//! specifies. Bodies are skipped over, not parsed, and handed out as slices.

use bytes::{BufMut, BytesMut};

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("payload ends in the middle of a value")]
    Truncated,
    #[error("expected {expected}, found marker 0x{marker:02x}")]
    Unexpected { expected: &'static str, marker: u8 },
    #[error("string is not valid UTF-8")]
    BadUtf8,
    #[error("integer {0} is out of range")]
    OutOfRange(u64),
    #[error("marker 0xc1 is never used")]
    Reserved,
}

/// A cursor over a MessagePack payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let end = self.pos.checked_add(n).ok_or(ReadError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(ReadError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Result<u8, ReadError> {
        self.buf.get(self.pos).copied().ok_or(ReadError::Truncated)
    }

    fn be(&mut self, n: usize) -> Result<u64, ReadError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    pub fn array_len(&mut self) -> Result<usize, ReadError> {
        let m = self.byte()?;
        let n = match m {
            0x90..=0x9f => u64::from(m & 0x0f),
            0xdc => self.be(2)?,
            0xdd => self.be(4)?,
            _ => {
                return Err(ReadError::Unexpected {
                    expected: "array",
                    marker: m,
                });
            }
        };
        usize::try_from(n).map_err(|_| ReadError::OutOfRange(n))
    }

    pub fn map_len(&mut self) -> Result<usize, ReadError> {
        let m = self.byte()?;
        let n = match m {
            0x80..=0x8f => u64::from(m & 0x0f),
            0xde => self.be(2)?,
            0xdf => self.be(4)?,
            _ => {
                return Err(ReadError::Unexpected {
                    expected: "map",
                    marker: m,
                });
            }
        };
        usize::try_from(n).map_err(|_| ReadError::OutOfRange(n))
    }

    /// Reads a non-negative integer in any of MessagePack's integer encodings.
    pub fn uint(&mut self) -> Result<u64, ReadError> {
        let m = self.byte()?;
        match m {
            0x00..=0x7f => Ok(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            0xd0..=0xd3 => {
                let width = 1 << (m - 0xd0);
                let raw = self.be(width)?;
                let shift = 64 - 8 * width as u32;
                let v = ((raw << shift) as i64) >> shift;
                u64::try_from(v).map_err(|_| ReadError::OutOfRange(raw))
            }
            _ => Err(ReadError::Unexpected {
                expected: "unsigned integer",
                marker: m,
            }),
        }
    }

    pub fn u32(&mut self) -> Result<u32, ReadError> {
        let v = self.uint()?;
        u32::try_from(v).map_err(|_| ReadError::OutOfRange(v))
    }

    pub fn bool(&mut self) -> Result<bool, ReadError> {
        match self.byte()? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            m => Err(ReadError::Unexpected {
                expected: "boolean",
                marker: m,
            }),
        }
    }

    fn str_len(&mut self) -> Result<usize, ReadError> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => u64::from(m & 0x1f),
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => {
                return Err(ReadError::Unexpected {
                    expected: "string",
                    marker: m,
                });
            }
        };
        usize::try_from(n).map_err(|_| ReadError::OutOfRange(n))
    }

    pub fn str(&mut self) -> Result<&'a str, ReadError> {
        let n = self.str_len()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| ReadError::BadUtf8)
    }

    /// Reads a string or nil.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, ReadError> {
        if self.peek()? == 0xc0 {
            self.pos += 1;
            return Ok(None);
        }
        self.str().map(Some)
    }

    /// Reads a `bin` value and returns its position within the payload.
    pub fn bin_range(&mut self) -> Result<std::ops::Range<usize>, ReadError> {
        let m = self.byte()?;
        let n = match m {
            0xc4 => self.be(1)?,
            0xc5 => self.be(2)?,
            0xc6 => self.be(4)?,
            _ => {
                return Err(ReadError::Unexpected {
                    expected: "binary",
                    marker: m,
                });
            }
        };
        let n = usize::try_from(n).map_err(|_| ReadError::OutOfRange(n))?;
        let start = self.pos;
        self.take(n)?;
        Ok(start..self.pos)
    }

    /// Steps over one whole value, however nested, and returns its position.
    ///
    /// The walk is iterative, with a count of values still owed, so a hostile
    /// payload of deeply nested arrays cannot overflow the stack.
    pub fn skip_value(&mut self) -> Result<std::ops::Range<usize>, ReadError> {
        let start = self.pos;
        let mut owed: u64 = 1;
        while owed > 0 {
            owed -= 1;
            let m = self.byte()?;
            let (skip, more): (u64, u64) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (u64::from(m & 0x1f), 0),
                0xc1 => return Err(ReadError::Reserved),
                0xc4 | 0xd9 => (self.be(1)?, 0),
                0xc5 | 0xda => (self.be(2)?, 0),
                0xc6 | 0xdb => (self.be(4)?, 0),
                0xc7 => (self.be(1)? + 1, 0),
                0xc8 => (self.be(2)? + 1, 0),
                0xc9 => (self.be(4)? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
            };
            let skip = usize::try_from(skip).map_err(|_| ReadError::OutOfRange(skip))?;
            self.take(skip)?;
            owed += more;
            // Every owed value takes at least one byte, so a count larger than
            // what is left is a lie we can reject before walking it.
            if owed > (self.buf.len() - self.pos) as u64 {
                return Err(ReadError::Truncated);
            }
        }
        Ok(start..self.pos)
    }
}

/// Appends MessagePack values to a buffer, always in their shortest form.
pub struct Writer<'a>(pub &'a mut BytesMut);

impl Writer<'_> {
    pub fn array_len(&mut self, n: u32) {
        match n {
            0..=15 => self.0.put_u8(0x90 | n as u8),
            16..=0xffff => {
                self.0.put_u8(0xdc);
                self.0.put_u16(n as u16);
            }
            _ => {
                self.0.put_u8(0xdd);
                self.0.put_u32(n);
            }
        }
    }

    pub fn map_len(&mut self, n: u32) {
        match n {
            0..=15 => self.0.put_u8(0x80 | n as u8),
            16..=0xffff => {
                self.0.put_u8(0xde);
                self.0.put_u16(n as u16);
            }
            _ => {
                self.0.put_u8(0xdf);
                self.0.put_u32(n);
            }
        }
    }

    pub fn uint(&mut self, v: u64) {
        match v {
            0..=0x7f => self.0.put_u8(v as u8),
            0x80..=0xff => {
                self.0.put_u8(0xcc);
                self.0.put_u8(v as u8);
            }
            0x100..=0xffff => {
                self.0.put_u8(0xcd);
                self.0.put_u16(v as u16);
            }
            0x1_0000..=0xffff_ffff => {
                self.0.put_u8(0xce);
                self.0.put_u32(v as u32);
            }
            _ => {
                self.0.put_u8(0xcf);
                self.0.put_u64(v);
            }
        }
    }

    pub fn bool(&mut self, v: bool) {
        self.0.put_u8(if v { 0xc3 } else { 0xc2 });
    }

    pub fn nil(&mut self) {
        self.0.put_u8(0xc0);
    }

    pub fn str(&mut self, s: &str) {
        let n = s.len();
        match n {
            0..=31 => self.0.put_u8(0xa0 | n as u8),
            32..=0xff => {
                self.0.put_u8(0xd9);
                self.0.put_u8(n as u8);
            }
            0x100..=0xffff => {
                self.0.put_u8(0xda);
                self.0.put_u16(n as u16);
            }
            _ => {
                self.0.put_u8(0xdb);
                self.0.put_u32(n as u32);
            }
        }
        self.0.put_slice(s.as_bytes());
    }

    pub fn bin(&mut self, b: &[u8]) {
        self.bin_header(b.len());
        self.0.put_slice(b);
    }

    /// The marker and length of a `bin` value whose bytes follow separately.
    pub fn bin_header(&mut self, n: usize) {
        match n {
            0..=0xff => {
                self.0.put_u8(0xc4);
                self.0.put_u8(n as u8);
            }
            0x100..=0xffff => {
                self.0.put_u8(0xc5);
                self.0.put_u16(n as u16);
            }
            _ => {
                self.0.put_u8(0xc6);
                self.0.put_u32(n as u32);
            }
        }
    }

    /// Appends an already-encoded value as it is.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.0.put_slice(encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_value_rejects_a_count_larger_than_the_payload() {
        // An array32 that claims four billion elements in five bytes.
        let mut r = Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.skip_value(), Err(ReadError::Truncated));
    }

    #[test]
    fn skip_value_survives_deep_nesting() {
        let mut deep = vec![0x91u8; 1_000_000];
        deep.push(0xc0);
        let mut r = Reader::new(&deep);
        assert_eq!(r.skip_value(), Ok(0..deep.len()));
    }

    #[test]
    fn signed_encodings_of_non_negative_integers_are_accepted() {
        let mut r = Reader::new(&[0xd1, 0x01, 0x00]);
        assert_eq!(r.uint(), Ok(256));
        let mut r = Reader::new(&[0xd0, 0xff]);
        assert!(matches!(r.uint(), Err(ReadError::OutOfRange(_))));
    }
}
