//! Typed protocol errors with stable, wire-visible codes.

use std::fmt;

/// The stable error codes of the protocol.
///
/// The string form (`as_str`) is what travels on the wire; it never changes once
/// published, so clients in any language can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    Busy,
    Timeout,
    Cancelled,
    Unavailable,
    Internal,
    UnknownMethod,
    VersionMismatch,
    WrongService,
}

impl ErrorCode {
    /// Every code, in the order of the table in `docs/protocol.md`.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::Busy,
        ErrorCode::Timeout,
        ErrorCode::Cancelled,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::UnknownMethod,
        ErrorCode::VersionMismatch,
        ErrorCode::WrongService,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::UnknownMethod => "unknown_method",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::WrongService => "wrong_service",
        }
    }

    /// Parses a wire code. Codes from a newer peer that this build does not know
    /// map to `Internal`, so an old client still reports something sensible.
    pub fn from_wire(s: &str) -> ErrorCode {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Internal)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as the protocol carries it: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::NotFound, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Forbidden, message)
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Conflict, message)
    }

    pub fn busy(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Busy, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Unavailable, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Cancelled, message)
    }

    pub fn timeout(message: impl Into<String>) -> Error {
        Error::new(ErrorCode::Timeout, message)
    }

    /// The answer to a method the service does not have.
    pub fn unknown_method(method: &str) -> Error {
        Error::new(
            ErrorCode::UnknownMethod,
            format!("no method named {method:?}"),
        )
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        use std::io::ErrorKind;
        let code = match e.kind() {
            ErrorKind::NotFound => ErrorCode::NotFound,
            ErrorKind::PermissionDenied => ErrorCode::Forbidden,
            ErrorKind::AlreadyExists => ErrorCode::Conflict,
            ErrorKind::TimedOut => ErrorCode::Timeout,
            ErrorKind::InvalidInput | ErrorKind::InvalidData => ErrorCode::BadRequest,
            ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        Error::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_name() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
        }
    }

    #[test]
    fn unknown_wire_code_maps_to_internal() {
        assert_eq!(ErrorCode::from_wire("no_such_code"), ErrorCode::Internal);
    }
}
