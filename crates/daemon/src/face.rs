//! What the standard faces (HTTP and WebDAV, IPP, PostgreSQL) share: the
//! accept loop with the same caps as the frame port (`max_connections`, and
//! `max_connections_per_client` so that one host cannot take every slot),
//! TLS with the `handshake_timeout`, HTTP/1.1 serving with a bounded head
//! and a drain on stop, the plain-HTTP refusal, and HTTP Basic credentials.
//!
//! Each face keeps its own protocol: it says how to serve an admitted
//! connection and how to turn one away.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backroom_frame::server::{ClientCap, ClientSlot, ServerConfig};
use base64::Engine;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest an HTTP face waits for a request's head, counted from when
/// the connection is ready for it: a slow head, and a keep-alive connection
/// idle that long, are closed. The frame's `idle_timeout` shortens it.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head an HTTP face reads.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long a refused client gets to read its answer before it is cut.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// A face's bounds, taken from its server's frame config so that every port
/// of a server is bounded alike.
#[derive(Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// The TLS handshake's deadline.
    pub handshake: Duration,
    /// An HTTP face's deadline for each request head; see [`HEAD_TIMEOUT`].
    pub head: Duration,
    /// How long a connection may finish its request once the face stops.
    pub drain: Duration,
    pub tls: Option<TlsAcceptor>,
}

impl From<&ServerConfig> for Limits {
    fn from(frame: &ServerConfig) -> Limits {
        Limits {
            max_connections: frame.max_connections,
            max_connections_per_client: frame.max_connections_per_client.max(1),
            handshake: frame.handshake_timeout,
            head: HEAD_TIMEOUT.min(Duration::from_millis(frame.limits.idle_timeout_ms)),
            drain: frame.drain_timeout,
            tls: frame.tls.clone().map(TlsAcceptor::from),
        }
    }
}

/// Why a connection is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The face holds `max_connections`.
    Full { max: usize },
    /// The client's address holds `max_connections_per_client`.
    OverCap { max: usize },
}

/// An accepted connection, holding its places in both caps until dropped.
pub struct Admitted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    places: Places,
}

/// A connection's places in both caps, given back when dropped.
pub struct Places {
    _slot: OwnedSemaphorePermit,
    _client: ClientSlot,
}

impl Admitted {
    /// The socket, the peer, and the places to keep for as long as the
    /// connection is served. (Moving a field out of an `Admitted` in an
    /// async block would capture that field alone, and drop the places.)
    pub fn into_parts(self) -> (TcpStream, SocketAddr, Places) {
        (self.tcp, self.peer, self.places)
    }
}

/// Accepts on `listener` until `stop` is cancelled, then waits for every
/// connection's task to end. Each admitted connection runs `serve` in a task
/// of its own; one beyond a cap runs `refuse` instead, so the client hears
/// why rather than waiting in the backlog. The loop never dies because one
/// accept failed.
pub async fn accept_loop<S, SF, R, RF>(
    face: &'static str,
    listener: TcpListener,
    limits: &Limits,
    stop: CancellationToken,
    serve: S,
    refuse: R,
) where
    S: Fn(Admitted) -> SF,
    SF: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, Refusal) -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = ClientCap::new(limits.max_connections_per_client);
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(face, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A response's head and body go out in separate writes: without
        // NODELAY, Nagle's algorithm holds the body for the peer's delayed
        // ACK, some 40 ms a request.
        let _ = tcp.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(face, %peer, "refused a connection: the face is full");
            let max = limits.max_connections;
            tracker.spawn(refuse(tcp, Refusal::Full { max }));
            continue;
        };
        let Some(client) = per_client.admit(peer.ip()) else {
            tracing::warn!(face, %peer, "refused a connection: its address holds the most allowed");
            let max = per_client.limit();
            tracker.spawn(refuse(tcp, Refusal::OverCap { max }));
            continue;
        };
        let places = Places {
            _slot: slot,
            _client: client,
        };
        tracker.spawn(serve(Admitted { tcp, peer, places }));
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

/// Serves HTTP/1.1 on an admitted connection, over TLS when the face has a
/// certificate, until it closes; once `stop` is cancelled it finishes its
/// request for up to the drain timeout. `handle` answers each request.
pub async fn serve_http<H, F, B>(
    face: &'static str,
    conn: Admitted,
    limits: &Limits,
    stop: CancellationToken,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (tcp, peer, _places) = conn.into_parts();
    let Some(tls) = &limits.tls else {
        return serve_io(face, TokioIo::new(tcp), peer, limits, stop, handle).await;
    };
    match tokio::time::timeout(limits.handshake, tls.accept(tcp)).await {
        Ok(Ok(stream)) => serve_io(face, TokioIo::new(stream), peer, limits, stop, handle).await,
        Ok(Err(e)) => tracing::debug!(face, %peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(face, %peer, "TLS handshake timed out"),
    }
}

async fn serve_io<I, H, F, B>(
    face: &'static str,
    io: I,
    peer: SocketAddr,
    limits: &Limits,
    stop: CancellationToken,
    handle: H,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = service_fn(move |request| {
        let answer = handle(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let served = tokio::select! {
        served = conn.as_mut() => served,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.drain, conn.as_mut()).await {
                Ok(served) => served,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(face, %peer, error = %e, "connection ended");
    }
}

/// Answers a refused HTTP client with `status` (such as `429 Too Many
/// Requests`) and `text`, then closes, without reading its request. On a TLS
/// face nothing is written (the client would read it as a broken handshake):
/// the connection is closed. The client's unread bytes are drained for a
/// moment, so that the answer is not lost to a TCP reset.
pub async fn refuse_http(mut tcp: TcpStream, plaintext: bool, status: &str, text: &str) {
    if !plaintext {
        return;
    }
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{text}\n",
        text.len() + 1
    );
    let linger = async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// What an HTTP face answers a refused client: the status line and why.
pub fn http_refusal(refusal: Refusal) -> (&'static str, String) {
    match refusal {
        Refusal::Full { max } => (
            "503 Service Unavailable",
            format!("the server already holds {max} connections (max_connections); retry later"),
        ),
        Refusal::OverCap { max } => (
            "429 Too Many Requests",
            format!(
                "this address already holds {max} connections to the server \
                 (max_connections_per_client)"
            ),
        ),
    }
}

/// The user name and password of `Authorization: Basic`.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    parse_basic(headers.get(AUTHORIZATION)?.as_bytes())
}

/// Splits a header value `Basic base64(user:password)` into its parts; the
/// proxy reads `Proxy-Authorization` with it.
pub fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_other_schemes_are_not() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("ann:se:cret");
        let value = format!("basic {encoded}").parse().expect("header");
        headers.insert(AUTHORIZATION, value);
        assert_eq!(
            basic_credentials(&headers),
            Some(("ann".into(), "se:cret".into()))
        );
        headers.insert(AUTHORIZATION, "Bearer token".parse().expect("header"));
        assert_eq!(basic_credentials(&headers), None);
        headers.insert(AUTHORIZATION, "Basic !!!".parse().expect("header"));
        assert_eq!(basic_credentials(&headers), None);
    }
}
