//! The messages the connection tasks send the UI, and the timing they keep.
//!
//! A leaf: the tasks ([`crate::driver`] and each service's `task`) and the
//! state ([`crate::app`]) both depend on it, and it on neither.

use std::time::Duration;

use backroom_frame::server::Info;
use tokio::time::Instant;

use crate::server::Server;
use crate::{db, files, print, proxy};

/// News about one server, sent from its task to the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub server: Server,
    pub kind: UpdateKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateKind {
    /// A connection attempt has begun.
    Connecting { attempt: u32 },
    /// The handshake succeeded.
    Connected { version: String, session: String },
    /// A poll's results: the ping's round trip and `info`.
    Sample { latency: Duration, info: Info },
    /// The server cannot be reached, or the connection broke; the task tries
    /// again at `retry_at`.
    Down {
        error: String,
        retry_at: Instant,
        attempt: u32,
    },
    /// News for the Print tab from its own task.
    Print(print::tab::Msg),
    /// News for the DB tab from its own task.
    Db(db::tab::Msg),
    /// News for the Proxy tab from its own task.
    Proxy(proxy::tab::Msg),
    /// News for the Files tab from its own task.
    Files(files::tab::Msg),
}

/// How serious an event of the Overview is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// How often to poll and how to back off.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between two polls of a connected server.
    pub poll: Duration,
    /// The first delay before retrying; it doubles on each failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a poll may take before the connection counts as broken.
    pub request_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            poll: Duration::from_secs(2),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            request_timeout: Duration::from_secs(5),
        }
    }
}
