//! The socket side: reading frames off a stream and writing batched frames.
//!
//! Both runtimes split a connection into a read half, owned by one reader
//! loop, and a write half, owned by one writer task fed by an [`Outbox`].

use std::io;
use std::time::Duration;

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::{self, CodecError, Decoder};
use crate::message::Message;

pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// What a connection's writer task writes next.
pub enum Outgoing {
    /// A message, which the writer encodes.
    Message(Message),
    /// Whole frames its sender already encoded, written as they are.
    Encoded(Bytes),
}

/// The queue of what waits for a connection's writer task. Cheap to clone;
/// the writer ends once every clone is dropped.
#[derive(Clone)]
pub struct Outbox(mpsc::Sender<Outgoing>);

/// The writer task's end of an [`Outbox`].
pub struct OutboxReceiver(mpsc::Receiver<Outgoing>);

/// The outbox is closed: the connection's writer has ended.
#[derive(Debug)]
pub struct Closed;

/// The outbox had no room, or was closed.
#[derive(Debug)]
pub struct Unsent;

impl Outbox {
    /// A new outbox holding at most [`OUTBOX_CAPACITY`] entries.
    pub fn new() -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
        (Outbox(tx), OutboxReceiver(rx))
    }

    /// Queues a message, waiting for room.
    pub async fn send(&self, msg: Message) -> Result<(), Closed> {
        self.0
            .send(Outgoing::Message(msg))
            .await
            .map_err(|_| Closed)
    }

    /// Queues a message if there is room now.
    pub fn try_send(&self, msg: Message) -> Result<(), Unsent> {
        self.0.try_send(Outgoing::Message(msg)).map_err(|_| Unsent)
    }

    /// Queues an entry, waiting for room.
    pub async fn queue(&self, entry: Outgoing) -> Result<(), Closed> {
        self.0.send(entry).await.map_err(|_| Closed)
    }

    /// Queues an entry if there is room now; gives it back when there is
    /// none, and `None` when the outbox is closed.
    pub fn try_queue(&self, entry: Outgoing) -> Result<(), Option<Outgoing>> {
        self.0.try_send(entry).map_err(|e| match e {
            mpsc::error::TrySendError::Full(entry) => Some(entry),
            mpsc::error::TrySendError::Closed(_) => None,
        })
    }
}

/// How many messages may wait for the writer before senders wait in turn.
pub const OUTBOX_CAPACITY: usize = 1024;

/// The writer gathers queued messages into one buffer of up to this many bytes
/// before each write, so pipelined replies cost one system call, not many.
const WRITE_BATCH: usize = 256 * 1024;

/// Splits a plain TCP stream without a lock between the halves.
pub fn split_tcp(tcp: TcpStream) -> (ReadHalf, WriteHalf) {
    let (r, w) = tcp.into_split();
    (Box::new(r), Box::new(w))
}

/// Splits any other stream, such as a TLS one.
pub fn split<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (ReadHalf, WriteHalf) {
    let (r, w) = tokio::io::split(stream);
    (Box::new(r), Box::new(w))
}

/// Why reading the next frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads whole messages off a read half.
pub struct FrameReader {
    io: ReadHalf,
    buf: BytesMut,
    decoder: Decoder,
    /// How much room each read asks for: 64 KiB, or less under a small
    /// frame limit, so a connection that has not said Hello costs little.
    read_size: usize,
}

/// The most room one read asks for.
const READ_SIZE: usize = 64 * 1024;

impl FrameReader {
    pub fn new(io: ReadHalf, max_frame: usize) -> FrameReader {
        let read_size = read_size(max_frame);
        FrameReader {
            io,
            buf: BytesMut::with_capacity(read_size),
            decoder: Decoder::new(max_frame),
            read_size,
        }
    }

    /// The next message, or `None` at a clean end of stream. Cancel-safe: a
    /// cancelled call loses no bytes, because they stay in the buffer.
    pub async fn next(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            if let Some(msg) = self.decoder.decode(&mut self.buf)? {
                return Ok(Some(msg));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(self.read_size);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in the middle of a frame",
                )));
            }
        }
    }

    /// Changes the largest frame accepted from now on; the server reads the
    /// handshake under a small limit and the session under the full one.
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.decoder = Decoder::new(max_frame);
        self.read_size = read_size(max_frame);
    }

    /// The bytes read but not yet taken as messages: after a codec error,
    /// the frame that could not be read.
    pub fn unread(&self) -> &[u8] {
        &self.buf
    }

    /// The next message if its bytes are already buffered, without reading.
    pub fn buffered(&mut self) -> Result<Option<Message>, CodecError> {
        self.decoder.decode(&mut self.buf)
    }

    /// Reads and throws away what the peer still sends, for a short while.
    ///
    /// Closing a socket with unread bytes makes the kernel send a reset, which
    /// can destroy the error frame we just wrote before the peer reads it.
    pub async fn linger(mut self, for_at_most: Duration) {
        let mut sink = [0u8; 8192];
        let drain = async {
            let mut budget = 1 << 20;
            while budget > 0 {
                match self.io.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => budget -= n.min(budget),
                }
            }
        };
        let _ = tokio::time::timeout(for_at_most, drain).await;
    }
}

fn read_size(max_frame: usize) -> usize {
    max_frame.saturating_add(codec::HEADER_LEN).min(READ_SIZE)
}

/// Writes one message straight to a write half; for the handshake, before the
/// writer task exists.
pub async fn write_now(io: &mut WriteHalf, msg: &Message) -> io::Result<()> {
    let mut buf = BytesMut::new();
    codec::encode(msg, &mut buf);
    io.write_all(&buf).await?;
    io.flush().await
}

/// Spawns the writer task of a connection. It ends, after a graceful shutdown
/// of the write half, once every `Outbox` clone is dropped; or at once when
/// `stop` is cancelled, which is how a peer that never reads is cut off.
pub fn spawn_writer(
    io: WriteHalf,
    rx: OutboxReceiver,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<io::Result<()>> {
    tokio::spawn(async move {
        tokio::select! {
            written = write_loop(io, rx) => written,
            () = stop.cancelled() => Ok(()),
        }
    })
}

async fn write_loop(mut io: WriteHalf, rx: OutboxReceiver) -> io::Result<()> {
    let mut rx = rx.0;
    let mut batch = Batch::default();
    while let Some(next) = rx.recv().await {
        batch.push(next);
        while batch.len < WRITE_BATCH {
            match rx.try_recv() {
                Ok(msg) => batch.push(msg),
                Err(_) => break,
            }
        }
        batch.write_to(&mut io).await?;
        io.flush().await?;
    }
    io.shutdown().await
}

/// Queued frames, as buffers to write in order: small frames are encoded
/// together into one buffer, while a large chunk's data and frames encoded
/// by their sender go out from their own buffers, uncopied, in the same
/// vectored write.
#[derive(Default)]
struct Batch {
    encoded: BytesMut,
    parts: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn push(&mut self, next: Outgoing) {
        let msg = match next {
            Outgoing::Message(msg) => msg,
            Outgoing::Encoded(frames) => {
                self.len += frames.len();
                if !self.encoded.is_empty() {
                    self.parts.push(self.encoded.split().freeze());
                }
                self.parts.push(frames);
                return;
            }
        };
        let before = self.encoded.len();
        match codec::encode_vectored(msg, &mut self.encoded) {
            None => self.len += self.encoded.len() - before,
            Some((split, data)) => {
                self.len += self.encoded.len() - before + data.len();
                let tail = self.encoded.split_off(split);
                self.parts.push(self.encoded.split().freeze());
                self.parts.push(data);
                self.encoded = tail;
            }
        }
    }

    async fn write_to(&mut self, io: &mut WriteHalf) -> io::Result<()> {
        if !self.encoded.is_empty() {
            self.parts.push(self.encoded.split().freeze());
        }
        let mut parts = std::collections::VecDeque::from(std::mem::take(&mut self.parts));
        while !parts.is_empty() {
            let slices: Vec<IoSlice<'_>> = parts.iter().take(64).map(|p| IoSlice::new(p)).collect();
            let mut written = io.write_vectored(&slices).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let Some(front) = parts.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    parts.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        self.len = 0;
        Ok(())
    }
}
