//! Body wrappers: they count bytes, cut silent responses, follow a
//! client's request body upstream (its faults, its end, and its wait for
//! `100 Continue`), and write the access-log record when a response is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use backroom_api::proxy::AccessRecord;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::Sleep;
use tokio_util::sync::{CancellationToken, DropGuard, WaitForCancellationFutureOwned};

use crate::Shared;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the proxy sends.
pub type ProxyBody = LoggedBody;

/// What a finished request or tunnel puts in the log; written on drop, so a
/// record is written however the exchange ends.
pub struct Finisher {
    pub shared: Arc<Shared>,
    pub record: AccessRecord,
    pub started: Instant,
    /// The destination host, for the stats' top hosts.
    pub host: Option<String>,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
}

impl Drop for Finisher {
    fn drop(&mut self) {
        let mut record = std::mem::replace(&mut self.record, empty_record());
        record.bytes_in = self.bytes_in.load(Ordering::Relaxed);
        record.bytes_out = self.bytes_out.load(Ordering::Relaxed);
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        self.shared.stats.record(
            record.status,
            record.bytes_in,
            record.bytes_out,
            self.host.as_deref(),
        );
        self.shared.log.emit(record);
    }
}

fn empty_record() -> AccessRecord {
    AccessRecord {
        time_ms: 0,
        client: String::new(),
        user: String::new(),
        method: String::new(),
        target: String::new(),
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        duration_ms: 0,
        upstream: String::new(),
        user_agent: String::new(),
        referer: String::new(),
    }
}

/// A response body on its way to the client: counted, cut after `idle` of
/// silence, and logged when it ends or is dropped.
pub struct LoggedBody {
    inner: BoxBody<Bytes, BoxError>,
    counted: Arc<AtomicU64>,
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    finisher: Option<Finisher>,
    /// Cancels its token when this body ends or is dropped.
    on_end: Option<DropGuard>,
}

impl LoggedBody {
    pub fn new(inner: BoxBody<Bytes, BoxError>, finisher: Option<Finisher>) -> LoggedBody {
        let counted = finisher
            .as_ref()
            .map(|f| f.bytes_out.clone())
            .unwrap_or_default();
        LoggedBody {
            inner,
            counted,
            idle: None,
            finisher,
            on_end: None,
        }
    }

    pub fn full(data: impl Into<Bytes>, finisher: Option<Finisher>) -> LoggedBody {
        let body = http_body_util::Full::new(data.into())
            .map_err(|never| match never {})
            .boxed();
        LoggedBody::new(body, finisher)
    }

    /// Cancels `token` once this body has ended or is dropped.
    pub fn cancel_on_end(mut self, token: CancellationToken) -> LoggedBody {
        self.on_end = Some(token.drop_guard());
        self
    }

    /// Cuts the body when the origin sends nothing for `idle`.
    pub fn with_idle_timeout(mut self, idle: Duration) -> LoggedBody {
        self.idle = Some((idle, Box::pin(tokio::time::sleep(idle))));
        self
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if let Some((idle, sleep)) = &mut this.idle {
                    sleep.as_mut().reset(tokio::time::Instant::now() + *idle);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                // Log now: hyper may keep the body a while after its end.
                this.finisher.take();
                this.on_end.take();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => {
                if let Some((idle, sleep)) = &mut this.idle
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    let message = format!("the origin sent nothing for {idle:?}");
                    return Poll::Ready(Some(Err(message.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the proxy learns of a client's request body on its way upstream:
/// its faults, so that the client gets 400 or 408 rather than the origin
/// the blame, and its end, where the wait for the origin's answer starts.
#[derive(Debug, Default)]
pub struct Upload {
    /// A framing error: a bad chunk size, a short body.
    pub malformed: AtomicBool,
    /// The client went silent mid-body.
    pub stalled: AtomicBool,
    /// Set once the whole body has gone upstream; `ended` tells waiters.
    done: AtomicBool,
    ended: Notify,
    /// Present when the body waits for the origin's `100 Continue`.
    pub expectation: Option<Expectation>,
}

/// The two events a body held back for `100 Continue` waits on.
#[derive(Debug, Default)]
pub struct Expectation {
    /// Cancelled when the origin answers `100 Continue`.
    pub continued: CancellationToken,
    /// Cancelled when the origin's final answer has been relayed: a body
    /// still held back is then never sent.
    pub answered: CancellationToken,
}

impl Upload {
    /// With `expects_continue`, the body will wait for the origin's
    /// `100 Continue`.
    pub fn new(expects_continue: bool) -> Upload {
        Upload {
            expectation: expects_continue.then(Expectation::default),
            ..Upload::default()
        }
    }

    /// Whether the whole body has gone upstream.
    pub fn is_finished(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Completes once the whole body has gone upstream.
    pub async fn finished(&self) {
        let ended = self.ended.notified();
        let mut ended = std::pin::pin!(ended);
        ended.as_mut().enable();
        if self.is_finished() {
            return;
        }
        ended.await
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.ended.notify_waiters();
    }
}

/// Holds a request body that carries `Expect: 100-continue` back until the
/// origin answers `100 Continue`, or lets `wait` pass without a word (an
/// origin that ignores the expectation). Until then the client is not told
/// to send its body either: hyper answers it `100 Continue` only when the
/// body is first read.
struct ContinueGate {
    continued: Pin<Box<WaitForCancellationFutureOwned>>,
    answered: Pin<Box<WaitForCancellationFutureOwned>>,
    waited: Pin<Box<Sleep>>,
}

/// What a closed gate says when polled.
enum GateState {
    Closed,
    Open,
    /// The origin answered without asking for the body.
    Abandoned,
}

impl ContinueGate {
    fn new(expectation: &Expectation, wait: Duration) -> ContinueGate {
        ContinueGate {
            continued: Box::pin(expectation.continued.clone().cancelled_owned()),
            answered: Box::pin(expectation.answered.clone().cancelled_owned()),
            waited: Box::pin(tokio::time::sleep(wait)),
        }
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> GateState {
        if self.continued.as_mut().poll(cx).is_ready() {
            return GateState::Open;
        }
        if self.answered.as_mut().poll(cx).is_ready() {
            return GateState::Abandoned;
        }
        if self.waited.as_mut().poll(cx).is_ready() {
            return GateState::Open;
        }
        GateState::Closed
    }
}

/// A client's request body on its way to the origin: counted, cut when the
/// client goes silent for `idle`, held back for `100 Continue` when asked,
/// and its faults and end reported in its [`Upload`].
pub struct ClientBody {
    inner: Incoming,
    counted: Arc<AtomicU64>,
    upload: Arc<Upload>,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    gate: Option<ContinueGate>,
}

impl ClientBody {
    /// A body whose upload has an [`Expectation`] waits for the origin's
    /// `100 Continue` for at most `continue_wait`.
    pub fn new(
        inner: Incoming,
        counted: Arc<AtomicU64>,
        upload: Arc<Upload>,
        idle: Duration,
        continue_wait: Duration,
    ) -> ClientBody {
        // hyper never polls a body that is over before it starts.
        let empty = inner.is_end_stream();
        if empty {
            upload.finish();
        }
        let gate = upload
            .expectation
            .as_ref()
            .filter(|_| !empty)
            .map(|expectation| ContinueGate::new(expectation, continue_wait));
        ClientBody {
            inner,
            counted,
            upload,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            gate,
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(gate) = &mut this.gate {
            match gate.poll(cx) {
                GateState::Closed => return Poll::Pending,
                GateState::Abandoned => {
                    return Poll::Ready(Some(Err("the origin answered before the body".into())));
                }
                GateState::Open => {
                    this.gate = None;
                    // The client's silence is counted from now on.
                    this.sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.idle);
                }
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.counted.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                this.sleep
                    .as_mut()
                    .reset(tokio::time::Instant::now() + this.idle);
                // hyper stops polling a body of known length at its end.
                if this.inner.is_end_stream() {
                    this.upload.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.upload.malformed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                this.upload.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.upload.stalled.store(true, Ordering::Relaxed);
                    let message = format!("the client sent nothing for {:?}", this.idle);
                    return Poll::Ready(Some(Err(message.into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
