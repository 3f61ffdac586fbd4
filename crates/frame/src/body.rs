//! Message bodies: one MessagePack value each, with named fields.
//!
//! Structs travel as maps keyed by field name, so that a client in another
//! language reads `{"path": "a.txt"}` rather than a bare positional array.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// The encoding of `nil`, the body of requests that take no arguments.
pub static NIL: Bytes = Bytes::from_static(&[0xc0]);

/// The encoding of an empty map, the body a nil body stands for when a
/// method's arguments are all optional.
pub static EMPTY_MAP: Bytes = Bytes::from_static(&[0x80]);

/// Encodes a value as a body.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Bytes {
    try_encode(value).unwrap_or_else(|_| NIL.clone())
}

/// Encodes a value as a body, reporting a value that MessagePack cannot hold.
pub fn try_encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| Error::internal(format!("cannot encode body: {e}")))
}

/// Decodes a body, turning a shape mismatch into a `bad_request` that says why.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(body).map_err(|e| Error::bad_request(format!("invalid body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Args {
        path: String,
        limit: u32,
    }

    #[test]
    fn structs_travel_as_maps_keyed_by_field_name() {
        let body = encode(&Args {
            path: "a".into(),
            limit: 3,
        });
        // fixmap(2) "path" "a" "limit" 3
        assert_eq!(
            &body[..],
            b"\x82\xa4path\xa1a\xa5limit\x03".as_slice(),
            "{body:02x?}"
        );
    }

    #[test]
    fn mismatched_body_is_a_bad_request() {
        let err = decode::<Args>(&encode(&42u8)).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::BadRequest);
        assert!(err.message.starts_with("invalid body"), "{}", err.message);
    }
}
