//! Flow-controlled byte streams, the same in both directions.
//!
//! Each stream starts with `stream_window` bytes of credit. The sender spends
//! credit on every chunk and waits when it has none; the receiver hands credit
//! back with `Credit` frames as its consumer takes data. So a stream never has
//! more than one window of bytes buffered, however fast its sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};

use crate::error::{Error, ErrorCode};
use crate::io::Outbox;
use crate::message::Message;

/// The largest chunk a sender puts in one frame.
pub const MAX_CHUNK: usize = 128 * 1024;

/// Credit beyond this is ignored, so a hostile peer cannot overflow the count.
const MAX_CREDIT: usize = 1 << 40;

/// The reader loop's end of an incoming stream.
pub(crate) struct Inbound {
    tx: mpsc::UnboundedSender<Result<(Bytes, bool), Error>>,
    /// Bytes the peer may still send; shared with the [`ByteStream`].
    allowed: Arc<AtomicU64>,
}

/// The peer sent more than its credit allowed.
#[derive(Debug)]
pub(crate) struct CreditExceeded;

impl Inbound {
    pub(crate) fn push(&self, data: Bytes, last: bool) -> Result<(), CreditExceeded> {
        let len = data.len() as u64;
        self.allowed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| a.checked_sub(len))
            .map_err(|_| CreditExceeded)?;
        // The consumer may have gone; then the bytes are simply dropped.
        let _ = self.tx.send(Ok((data, last)));
        Ok(())
    }

    /// Ends the stream with an error, for example when the connection drops.
    pub(crate) fn fail(&self, error: Error) {
        let _ = self.tx.send(Err(error));
    }
}

/// An incoming byte stream: an upload as a handler sees it, or a download as a
/// client sees it.
pub struct ByteStream {
    id: u64,
    rx: mpsc::UnboundedReceiver<Result<(Bytes, bool), Error>>,
    out: Outbox,
    allowed: Arc<AtomicU64>,
    owed: u64,
    window: u64,
    done: bool,
    cancel_on_drop: bool,
}

impl ByteStream {
    pub(crate) fn new(id: u64, out: Outbox, window: u32) -> (Inbound, ByteStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let allowed = Arc::new(AtomicU64::new(u64::from(window)));
        let inbound = Inbound {
            tx,
            allowed: allowed.clone(),
        };
        let stream = ByteStream {
            id,
            rx,
            out,
            allowed,
            owed: 0,
            window: u64::from(window),
            done: false,
            cancel_on_drop: false,
        };
        (inbound, stream)
    }

    /// Makes dropping the stream before its end cancel it at the sender: what
    /// a client wants of a download it stops reading.
    pub(crate) fn cancel_on_drop(mut self) -> ByteStream {
        self.cancel_on_drop = true;
        self
    }

    /// The next piece of data, or `None` once the sender has sent its last.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if self.done {
            return Ok(None);
        }
        let Some(item) = self.rx.recv().await else {
            self.done = true;
            return Err(Error::new(
                ErrorCode::Unavailable,
                "the stream was interrupted before its end",
            ));
        };
        let (data, last) = item.inspect_err(|_| self.done = true)?;
        self.done = last;
        if !last {
            self.grant(data.len() as u64).await;
        }
        Ok(if data.is_empty() && last {
            None
        } else {
            Some(data)
        })
    }

    /// Returns credit in batches of half a window, which keeps a window's
    /// worth in flight without a `Credit` frame per chunk.
    async fn grant(&mut self, consumed: u64) {
        self.owed += consumed;
        if self.owed * 2 < self.window {
            return;
        }
        let bytes = std::mem::take(&mut self.owed);
        self.allowed.fetch_add(bytes, Ordering::AcqRel);
        let _ = self.out.send(Message::Credit { id: self.id, bytes }).await;
    }

    /// Reads the whole rest of the stream into memory. For small streams.
    pub async fn collect(mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!("stream exceeds {limit} bytes"),
                ));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

impl Drop for ByteStream {
    fn drop(&mut self) {
        if self.cancel_on_drop && !self.done {
            let _ = self.out.try_send(Message::Cancel { id: self.id });
        }
    }
}

/// The sending end of a stream: a download as a handler's reply produces it, or
/// an upload as a client sends it.
pub struct ByteSink {
    id: u64,
    out: Outbox,
    credit: Arc<Semaphore>,
    max_chunk: usize,
}

impl ByteSink {
    pub(crate) fn new(id: u64, out: Outbox, credit: Arc<Semaphore>, window: u32) -> ByteSink {
        ByteSink {
            id,
            out,
            credit,
            max_chunk: MAX_CHUNK.min(window.max(1) as usize),
        }
    }

    /// A credit counter holding one initial window.
    pub(crate) fn initial_credit(window: u32) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(window as usize))
    }

    /// Adds credit that the peer granted.
    pub(crate) fn add_credit(credit: &Semaphore, bytes: u64) {
        let room = MAX_CREDIT.saturating_sub(credit.available_permits());
        credit.add_permits(usize::try_from(bytes).unwrap_or(usize::MAX).min(room));
    }

    /// Sends data, split into chunks, waiting for credit as needed. Each
    /// chunk is as large as the credit allows, up to `max_chunk`: a sender
    /// waits only when it has no credit at all, so a grant of any size is
    /// spent in full.
    pub async fn send(&mut self, mut data: Bytes) -> Result<(), Error> {
        while !data.is_empty() {
            self.credit
                .acquire()
                .await
                .map_err(|_| Error::unavailable("the stream's connection closed"))?
                .forget();
            let want = data.len().min(self.max_chunk);
            // This sink is the semaphore's only taker, so the permits it sees
            // stay available until it takes them.
            let more = (want - 1).min(self.credit.available_permits());
            if let Ok(permits) = self.credit.try_acquire_many(more as u32) {
                permits.forget();
            }
            let piece = data.split_to(1 + more);
            self.queue(piece, false).await?;
        }
        Ok(())
    }

    /// Marks the end of the stream.
    pub async fn finish(self) -> Result<(), Error> {
        self.queue(Bytes::new(), true).await
    }

    async fn queue(&self, data: Bytes, last: bool) -> Result<(), Error> {
        self.out
            .send(Message::Chunk {
                id: self.id,
                data,
                last,
            })
            .await
            .map_err(|_| Error::unavailable("the stream's connection closed"))
    }
}
