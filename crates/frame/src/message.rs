//! The protocol's messages, as plain data. Encoding lives in `codec`.

use bytes::Bytes;

use crate::error::{Error, ErrorCode};

/// The protocol version this build speaks. See "Versioning" in `docs/protocol.md`.
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest frame a server reads before the client is authenticated. A
/// `Hello` is a few hundred bytes; a larger first frame is refused at its
/// length prefix, before any room is reserved for it.
pub const HELLO_MAX_FRAME: u32 = 8 * 1024;

/// Request id 0 is reserved: an `Error` with id 0 concerns the whole connection.
pub const CONNECTION_ID: u64 = 0;

/// The numeric kind tag that opens every message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Hello = 0,
    Welcome = 1,
    Request = 2,
    Response = 3,
    Error = 4,
    Event = 5,
    Cancel = 6,
    Ping = 7,
    Pong = 8,
    Goodbye = 9,
    Chunk = 10,
    Credit = 11,
}

impl Kind {
    pub fn from_u64(v: u64) -> Option<Kind> {
        Some(match v {
            0 => Kind::Hello,
            1 => Kind::Welcome,
            2 => Kind::Request,
            3 => Kind::Response,
            4 => Kind::Error,
            5 => Kind::Event,
            6 => Kind::Cancel,
            7 => Kind::Ping,
            8 => Kind::Pong,
            9 => Kind::Goodbye,
            10 => Kind::Chunk,
            11 => Kind::Credit,
            _ => return None,
        })
    }
}

/// The first message a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub service: String,
    pub token: Option<String>,
    pub client: String,
}

/// What a server grants a connection; announced in `Welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame payload, in bytes, that the server accepts.
    pub max_frame: u32,
    /// How many requests may be in flight on the connection at once.
    pub max_in_flight: u32,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout_ms: u64,
    /// The initial flow-control credit, in bytes, of every stream.
    pub stream_window: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame: 16 * 1024 * 1024,
            max_in_flight: 1024,
            idle_timeout_ms: 60_000,
            stream_window: 1024 * 1024,
        }
    }
}

/// The server's answer to a good `Hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub service: String,
    pub server_version: String,
    pub session: String,
    pub limits: Limits,
}

/// One protocol message. `body` fields hold exactly one encoded MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    /// A call. With `stream` set, the caller follows it with `Chunk`s of the same id.
    Request {
        id: u64,
        method: String,
        body: Bytes,
        stream: bool,
    },
    /// A successful result. With `stream` set, `Chunk`s of the same id follow.
    Response {
        id: u64,
        body: Bytes,
        stream: bool,
    },
    /// A failed request (or, with id 0, a failed connection).
    Error {
        id: u64,
        error: Error,
    },
    /// A pushed event of the subscription opened by request `id`.
    Event {
        id: u64,
        body: Bytes,
    },
    /// The sender abandons request, stream or subscription `id`.
    Cancel {
        id: u64,
    },
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    Goodbye {
        reason: String,
    },
    /// A piece of the byte stream that belongs to request `id`.
    Chunk {
        id: u64,
        data: Bytes,
        last: bool,
    },
    /// The receiver of stream `id` lets the sender send `bytes` more.
    Credit {
        id: u64,
        bytes: u64,
    },
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::Welcome(_) => Kind::Welcome,
            Message::Request { .. } => Kind::Request,
            Message::Response { .. } => Kind::Response,
            Message::Error { .. } => Kind::Error,
            Message::Event { .. } => Kind::Event,
            Message::Cancel { .. } => Kind::Cancel,
            Message::Ping { .. } => Kind::Ping,
            Message::Pong { .. } => Kind::Pong,
            Message::Goodbye { .. } => Kind::Goodbye,
            Message::Chunk { .. } => Kind::Chunk,
            Message::Credit { .. } => Kind::Credit,
        }
    }

    pub fn error(id: u64, code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error {
            id,
            error: Error::new(code, message),
        }
    }
}
