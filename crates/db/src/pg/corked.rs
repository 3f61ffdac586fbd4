//! A PostgreSQL connection's socket that sends a whole answer at once.
//!
//! pgwire flushes after most messages it writes, so one Execute's answer
//! (BindComplete, the rows, CommandComplete, ReadyForQuery) left in three
//! or four sends, each a system call and a wake-up of the client;
//! PostgreSQL sends it in one. This socket holds what is written until the
//! server would wait for the client: it sends what it holds before every
//! read of the socket (so after Sync, or a client's Flush message, the
//! answer is out before the server waits for more), at shutdown, and
//! whenever it holds [`CORK_LIMIT`] bytes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes held before they are sent anyway.
const CORK_LIMIT: usize = 64 * 1024;

pub struct Corked<S> {
    io: S,
    held: Vec<u8>,
    /// How much of `held` the socket has taken.
    sent: usize,
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    pub fn new(io: S) -> Corked<S> {
        Corked {
            io,
            held: Vec::new(),
            sent: 0,
        }
    }

    /// Sends everything held, then flushes the socket (TLS keeps records
    /// of its own).
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Pin::new(&mut self.io).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.held.is_empty() {
            ready!(this.poll_send_held(cx))?;
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() >= CORK_LIMIT {
            ready!(this.poll_send_held(cx))?;
        }
        this.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    /// Holds on: what is held goes out before the next read.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_the_next_read_and_then_leave_as_one() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut corked = Corked::new(near);
        corked.write_all(b"one").await.expect("written");
        corked.flush().await.expect("flushed");
        corked.write_all(b"two").await.expect("written");
        corked.flush().await.expect("flushed");
        let mut byte = [0u8; 1];
        let nothing_yet =
            tokio::time::timeout(std::time::Duration::ZERO, far.read(&mut byte)).await;
        assert!(nothing_yet.is_err(), "nothing is sent before a read");
        far.write_all(b"?").await.expect("the client asks");
        corked.read_exact(&mut byte).await.expect("read");
        let mut answer = [0u8; 6];
        far.read_exact(&mut answer)
            .await
            .expect("the answer arrives");
        assert_eq!(&answer, b"onetwo");
    }

    #[tokio::test]
    async fn past_the_limit_what_is_held_is_sent() {
        let (near, mut far) = tokio::io::duplex(4 * CORK_LIMIT);
        let mut corked = Corked::new(near);
        let chunk = vec![7u8; CORK_LIMIT];
        corked.write_all(&chunk).await.expect("written");
        corked.write_all(b"x").await.expect("written");
        let mut got = vec![0u8; CORK_LIMIT];
        far.read_exact(&mut got)
            .await
            .expect("the first chunk left");
        assert_eq!(got, chunk);
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_held() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut corked = Corked::new(near);
        corked.write_all(b"bye").await.expect("written");
        corked.shutdown().await.expect("shut down");
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.expect("read to the end");
        assert_eq!(got, b"bye");
    }
}
