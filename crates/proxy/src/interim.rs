//! Interim (1xx) responses from origins, such as `103 Early Hints`, passed
//! on to the client (RFC 9110 §15.2). hyper's server cannot send a 1xx, so
//! each client connection runs over a [`ClientIo`], which slips them into
//! the byte stream where a message begins: always before the head of the
//! final response they belong to, never inside another message.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;
use http::{HeaderMap, StatusCode};
use parking_lot::{Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::headers;

/// The most interim bytes one request may have waiting for the client; an
/// origin that sends more loses the rest rather than growing the queue.
const MAX_QUEUED: usize = 64 * 1024;

/// The interim responses waiting for one client connection.
#[derive(Debug, Default)]
pub struct Interim {
    /// Set while bytes are queued, so that a write checks for them with one
    /// atomic load.
    queued: AtomicBool,
    // A standard mutex: held for a copy, never across an await.
    queue: Mutex<Queue>,
    /// The connection's task, woken to write what was queued.
    waker: AtomicWaker,
}

#[derive(Debug, Default)]
struct Queue {
    /// Which request may queue: a late 1xx of an earlier one is dropped.
    request: u64,
    /// The final response has been handed to hyper: what is still queued
    /// goes only if it can precede that response's head.
    sealed: bool,
    bytes: Vec<u8>,
}

/// Queues the interim responses of one request.
#[derive(Debug, Clone)]
pub struct InterimSender {
    interim: Arc<Interim>,
    request: u64,
}

impl Interim {
    /// Starts the next request of the connection.
    pub fn begin(self: &Arc<Self>) -> InterimSender {
        let mut queue = self.lock();
        queue.request += 1;
        queue.sealed = false;
        queue.bytes.clear();
        self.queued.store(false, Ordering::Release);
        InterimSender {
            interim: self.clone(),
            request: queue.request,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock()
    }
}

impl InterimSender {
    /// Queues one interim response for the client, without the hop-by-hop
    /// headers, unless its request's final response is already on its way.
    pub fn send(&self, status: StatusCode, fields: &HeaderMap) {
        let mut fields = fields.clone();
        headers::strip_hop_by_hop(&mut fields, false);
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &fields {
            bytes.extend_from_slice(name.as_str().as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        {
            let mut queue = self.interim.lock();
            if queue.request != self.request
                || queue.sealed
                || queue.bytes.len() + bytes.len() > MAX_QUEUED
            {
                return;
            }
            queue.bytes.extend_from_slice(&bytes);
            self.interim.queued.store(true, Ordering::Release);
        }
        self.interim.waker.wake();
    }

    /// The final response is about to be handed to hyper.
    pub fn seal(&self) {
        let mut queue = self.interim.lock();
        if queue.request == self.request {
            queue.sealed = true;
        }
    }
}

/// A client connection that writes queued interim responses between
/// hyper's messages.
#[derive(Debug)]
pub struct ClientIo {
    tcp: TcpStream,
    interim: Arc<Interim>,
    /// Interim bytes being written, and how many of them have gone.
    out: Vec<u8>,
    sent: usize,
    /// hyper has written nothing since it last flushed, and it flushes only
    /// once its own buffer is empty: what it writes next begins a message.
    at_boundary: bool,
}

impl ClientIo {
    pub fn new(tcp: TcpStream, interim: Arc<Interim>) -> ClientIo {
        ClientIo {
            tcp,
            interim,
            out: Vec::new(),
            sent: 0,
            at_boundary: true,
        }
    }

    /// The socket itself, for a tunnel to splice. Nothing interim is lost:
    /// queued bytes are written before any of hyper's, so all have gone once
    /// the final response that opens a tunnel has, and none may follow it.
    pub fn into_tcp(self) -> TcpStream {
        self.tcp
    }

    /// Writes the interim bytes taken at a message boundary. Bytes queued
    /// elsewhere wait for a boundary, or are dropped once their request is
    /// sealed: then no boundary before its final response is left.
    fn poll_interim(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if !self.interim.queued.load(Ordering::Acquire) {
                return Poll::Ready(Ok(()));
            }
            let mut queue = self.interim.lock();
            if !self.at_boundary && !queue.sealed {
                return Poll::Ready(Ok(()));
            }
            let bytes = std::mem::take(&mut queue.bytes);
            self.interim.queued.store(false, Ordering::Release);
            if self.at_boundary {
                self.out = bytes;
            }
        }
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interim(cx))?;
        let written = ready!(Pin::new(&mut this.tcp).poll_write(cx, buf))?;
        this.at_boundary &= written == 0;
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_interim(cx))?;
        let written = ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs))?;
        this.at_boundary &= written == 0;
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // hyper flushes on every turn of its connection task, so this is
        // where a queued response finds the task to wake.
        this.interim.waker.register(cx.waker());
        this.at_boundary = true;
        ready!(this.poll_interim(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (ClientIo, Arc<Interim>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let interim = Arc::new(Interim::default());
        (ClientIo::new(server, interim.clone()), interim, client)
    }

    fn hints() -> HeaderMap {
        let mut fields = HeaderMap::new();
        fields.insert("link", "</a.css>; rel=preload".parse().expect("value"));
        fields.insert("connection", "keep-alive".parse().expect("value"));
        fields
    }

    const HINT: &str = "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n";

    async fn received(mut io: ClientIo, mut peer: TcpStream) -> String {
        io.shutdown().await.expect("shutdown");
        let mut text = String::new();
        peer.read_to_string(&mut text).await.expect("read");
        text
    }

    #[tokio::test]
    async fn an_interim_response_waits_for_the_end_of_the_message_being_written() {
        let (mut io, interim, peer) = pair().await;
        io.write_all(b"HTTP/1.1 200 OK\r\n").await.expect("write");
        let sender = interim.begin();
        sender.send(StatusCode::EARLY_HINTS, &hints());
        io.write_all(b"content-length: 0\r\n\r\n")
            .await
            .expect("write");
        io.flush().await.expect("flush");
        let text = received(io, peer).await;
        assert_eq!(
            text,
            format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n{HINT}")
        );
    }

    #[tokio::test]
    async fn a_sealed_request_sends_its_interim_only_at_a_boundary() {
        let (mut io, interim, peer) = pair().await;
        // Queued at a boundary, sealed: it still goes before the final head.
        let first = interim.begin();
        first.send(StatusCode::EARLY_HINTS, &hints());
        first.seal();
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n")
            .await
            .expect("write");
        io.flush().await.expect("flush");
        // Queued while a message is half written, then sealed: dropped.
        io.write_all(b"HTTP/1.1 204 No").await.expect("write");
        let second = interim.begin();
        second.send(StatusCode::EARLY_HINTS, &hints());
        second.seal();
        io.write_all(b" Content\r\n\r\n").await.expect("write");
        io.flush().await.expect("flush");
        // A late interim of an earlier request is dropped.
        let _third = interim.begin();
        first.send(StatusCode::EARLY_HINTS, &hints());
        io.flush().await.expect("flush");
        let text = received(io, peer).await;
        assert_eq!(
            text,
            format!("{HINT}HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        );
    }
}
