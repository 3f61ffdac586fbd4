//! The first packet of a connection, checked before pgwire reads it: pgwire
//! closes a connection whose start-up it cannot decode without a word, so
//! garbage, an unknown protocol version or an absurd length get
//! PostgreSQL's own FATAL errors here instead.

use std::time::Duration;

use bytes::BytesMut;
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The codes of the requests that share the start-up packet's shape.
const CANCEL_REQUEST: u32 = 80_877_102;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
/// PostgreSQL's limit on a start-up packet.
const MAX_STARTUP: u32 = 10_000;
/// How long the first 8 bytes may take to arrive before pgwire is left to
/// wait for them under its own start-up timeout.
const PEEK_TRIES: usize = 200;
const PEEK_PAUSE: Duration = Duration::from_millis(5);

/// Why a first packet is refused: the SQLSTATE and message, or `None` when
/// pgwire should read it.
pub fn judge(head: [u8; 8]) -> Option<(&'static str, String)> {
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    if matches!(code, CANCEL_REQUEST | SSL_REQUEST | GSSENC_REQUEST) {
        return None;
    }
    if !(8..=MAX_STARTUP).contains(&len) {
        return Some((
            "08P01",
            format!(
                "invalid length of startup packet ({len} bytes): this port speaks \
                 PostgreSQL's protocol"
            ),
        ));
    }
    let (major, minor) = (code >> 16, code & 0xffff);
    if major != 3 {
        return Some((
            "0A000",
            format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.2"),
        ));
    }
    None
}

/// Refuses a first packet that `judge` rejects, answering its error and
/// closing; `true` when the connection was refused.
pub async fn refuse_bad_start(socket: &mut TcpStream) -> bool {
    let mut head = [0u8; 8];
    for _ in 0..PEEK_TRIES {
        match socket.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= head.len() => break,
            Ok(_) => tokio::time::sleep(PEEK_PAUSE).await,
        }
    }
    let Some((code, message)) = judge(head) else {
        return false;
    };
    refuse(socket, code, message).await;
    true
}

/// Answers a FATAL error with `code` and closes the connection.
pub async fn refuse(socket: &mut TcpStream, code: &str, message: String) {
    let info = ErrorInfo::new("FATAL".into(), code.into(), message);
    let mut buf = BytesMut::new();
    if PgWireBackendMessage::ErrorResponse(info.into())
        .encode(&mut buf)
        .is_ok()
    {
        let _ = socket.write_all(&buf).await;
    }
    let _ = socket.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(len: u32, code: u32) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&len.to_be_bytes());
        out[4..].copy_from_slice(&code.to_be_bytes());
        out
    }

    #[test]
    fn start_up_requests_pass_and_others_are_refused() {
        assert_eq!(judge(head(8, SSL_REQUEST)), None);
        assert_eq!(judge(head(16, CANCEL_REQUEST)), None);
        assert_eq!(judge(head(40, 3 << 16)), None);
        assert_eq!(judge(head(40, (3 << 16) | 2)), None);
        assert_eq!(judge(head(40, 2 << 16)).map(|(c, _)| c), Some("0A000"));
        assert_eq!(judge(head(1 << 30, 3 << 16)).map(|(c, _)| c), Some("08P01"));
        assert_eq!(judge(*b"GET / HT").map(|(c, _)| c), Some("08P01"));
    }
}
