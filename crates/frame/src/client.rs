//! The client runtime: connect with retries, typed requests, subscriptions and
//! streams over one multiplexed connection.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::body;
use crate::codec::{CodecError, Foreign};
use crate::error::{Error, ErrorCode};
use crate::io::{self, FrameReader, Outbox};
use crate::message::{CONNECTION_ID, Hello, Message, PROTOCOL_VERSION, Welcome};
use crate::server::Info;
use crate::stream::{ByteSink, ByteStream, Inbound};

/// An upper bound on a request envelope's bytes beyond its method and body.
const ENVELOPE_SLACK: usize = 32;

/// How many events may wait for a slow subscriber before it is cut off.
const EVENT_BACKLOG: usize = 4096;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`.
    pub addr: String,
    /// The service expected at `addr`.
    pub service: String,
    pub token: Option<String>,
    /// Told to the server, for its logs.
    pub client_name: String,
    /// Set to connect over TLS, trusting the roots in this config.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The limit for one attempt: TCP, TLS and the handshake together.
    pub connect_timeout: Duration,
    /// Further attempts after a failed connect, with doubling delays.
    pub retries: u32,
    /// The largest frame this client accepts from the server.
    pub max_frame: u32,
}

impl ClientConfig {
    pub fn new(addr: impl Into<String>, service: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            service: service.into(),
            token: None,
            client_name: format!("backroom-frame/{}", env!("CARGO_PKG_VERSION")),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            retries: 0,
            max_frame: 64 * 1024 * 1024,
        }
    }
}

/// One request the client waits on, and where its later messages go.
struct Pending {
    reply: Option<oneshot::Sender<Result<Answer, Error>>>,
    events: Option<mpsc::Sender<Result<Bytes, Error>>>,
    download: Option<Inbound>,
    upload_credit: Option<Arc<Semaphore>>,
    /// The in-flight slot this request holds until its last message.
    _slot: OwnedSemaphorePermit,
}

struct Answer {
    body: Bytes,
    download: Option<ByteStream>,
}

/// The requests waiting for answers, by id. The ids are this client's own
/// counter, never a peer's choice, so a fast hash that does not resist chosen
/// keys is safe here, and SipHash was a twentieth of a pipelined ping's cost.
type PendingMap = HashMap<u64, Pending, foldhash::fast::RandomState>;

/// The state the reader loop and the handles share. The lock is never held
/// across an await.
struct Conn {
    out: Outbox,
    pending: Mutex<PendingMap>,
    /// Why the connection can take no more requests, once it cannot.
    closed: Mutex<Option<Error>>,
    window: u32,
}

impl Conn {
    fn pending(&self) -> MutexGuard<'_, PendingMap> {
        self.pending.lock()
    }

    fn closed_reason(&self) -> Option<Error> {
        self.closed.lock().clone()
    }

    fn set_closed(&self, error: Error) {
        let mut closed = self.closed.lock();
        if closed.is_none() {
            *closed = Some(error);
        }
    }

    /// Fails everything still pending with `error`.
    fn fail_all(&self, error: &Error) {
        let all: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for p in all {
            fail(p, error.clone());
        }
    }
}

fn fail(p: Pending, error: Error) {
    if let Some(download) = &p.download {
        download.fail(error.clone());
    }
    if let Some(reply) = p.reply {
        let _ = reply.send(Err(error));
    } else if let Some(events) = p.events {
        let _ = events.try_send(Err(error));
    }
    // Closed only after the answer is in place, so an uploader woken by the
    // close finds the server's reason, not just "closed".
    if let Some(credit) = &p.upload_credit {
        credit.close();
    }
}

/// Owned by every handle; closes the connection when the last one goes.
struct Inner {
    conn: Arc<Conn>,
    welcome: Welcome,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A connection to one backroom service. Cheap to clone; every clone shares
/// the connection, and it closes when the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.inner.welcome.service)
            .field("session", &self.inner.welcome.session)
            .finish()
    }
}

/// Errors worth another connect attempt: the server may come up in a moment.
fn retryable(e: &Error) -> bool {
    matches!(e.code, ErrorCode::Unavailable | ErrorCode::Timeout)
}

impl Client {
    /// Connects and shakes hands, retrying with backoff when the server cannot
    /// be reached. A refusal (bad token, wrong service) is final at once.
    pub async fn connect(config: &ClientConfig) -> Result<Client, Error> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let once = tokio::time::timeout(config.connect_timeout, connect_once(config));
            let error = match once.await {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(e)) => e,
                Err(_) => Error::timeout(format!(
                    "connecting to {} took longer than {:?}",
                    config.addr, config.connect_timeout
                )),
            };
            if attempt >= config.retries || !retryable(&error) {
                return Err(error);
            }
            attempt += 1;
            tracing::debug!(addr = %config.addr, %error, attempt, "connect failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// What the server said when it let us in.
    pub fn welcome(&self) -> &Welcome {
        &self.inner.welcome
    }

    /// Why this connection is no longer usable, if it is not.
    pub fn closed(&self) -> Option<Error> {
        self.inner.conn.closed_reason()
    }

    /// Sends a typed request and decodes the typed response.
    pub async fn request<Req, Resp>(&self, method: &str, args: &Req) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = self.call(method, body::try_encode(args)?).await?;
        body::decode(&body)
    }

    /// Sends an encoded request body and returns the encoded response body.
    pub async fn call(&self, method: &str, body: Bytes) -> Result<Bytes, Error> {
        let (rx, guard) = self.start(method, body, Expect::Value).await?;
        let answer = wait(rx, &self.inner.conn).await;
        guard.disarm();
        Ok(answer?.body)
    }

    /// The server's round-trip time for the built-in `ping`.
    pub async fn ping(&self) -> Result<Duration, Error> {
        let started = Instant::now();
        self.call("ping", body::NIL.clone()).await?;
        Ok(started.elapsed())
    }

    /// The built-in `info`: uptime, connections and requests served.
    pub async fn info(&self) -> Result<Info, Error> {
        self.request("info", &()).await
    }

    /// Opens a subscription; the returned stream yields its events.
    pub async fn subscribe<Req, Ev>(
        &self,
        method: &str,
        args: &Req,
    ) -> Result<Subscription<Ev>, Error>
    where
        Req: Serialize + ?Sized,
        Ev: DeserializeOwned,
    {
        let (tx, events) = mpsc::channel(EVENT_BACKLOG);
        let (rx, guard) = self
            .start(method, body::try_encode(args)?, Expect::Events(tx))
            .await?;
        let answer = wait(rx, &self.inner.conn).await?;
        Ok(Subscription {
            head: answer.body,
            events,
            _guard: guard,
            _event: PhantomData,
        })
    }

    /// Sends a request whose answer is a head value and then a byte stream.
    pub async fn download<Req, Head>(
        &self,
        method: &str,
        args: &Req,
    ) -> Result<(Head, ByteStream), Error>
    where
        Req: Serialize + ?Sized,
        Head: DeserializeOwned,
    {
        let (rx, guard) = self
            .start(method, body::try_encode(args)?, Expect::Value)
            .await?;
        let answer = wait(rx, &self.inner.conn).await;
        guard.disarm();
        let answer = answer?;
        let stream = answer.download.ok_or_else(|| {
            Error::new(
                ErrorCode::BadRequest,
                format!("{method} does not stream its answer"),
            )
        })?;
        Ok((body::decode(&answer.body)?, stream))
    }

    /// Starts a request that carries a byte stream; send it with
    /// [`UploadCall::send`], then [`UploadCall::finish`] for the answer.
    pub async fn upload<Req>(&self, method: &str, args: &Req) -> Result<UploadCall, Error>
    where
        Req: Serialize + ?Sized,
    {
        let window = self.inner.welcome.limits.stream_window;
        let credit = ByteSink::initial_credit(window);
        let (rx, guard) = self
            .start(
                method,
                body::try_encode(args)?,
                Expect::Upload(credit.clone()),
            )
            .await?;
        let sink = ByteSink::new(guard.id, self.inner.conn.out.clone(), credit, window);
        Ok(UploadCall {
            sink,
            reply: rx,
            early: None,
            guard,
            conn: self.inner.conn.clone(),
        })
    }

    /// Registers a request and sends it, once an in-flight slot is free.
    async fn start(
        &self,
        method: &str,
        body: Bytes,
        expect: Expect,
    ) -> Result<(oneshot::Receiver<Result<Answer, Error>>, CancelGuard), Error> {
        let conn = &self.inner.conn;
        if let Some(reason) = conn.closed_reason() {
            return Err(reason);
        }
        // The server would close the whole connection over an oversize
        // frame; refusing it here fails only this request.
        let max = self.inner.welcome.limits.max_frame as usize;
        if body.len() + method.len() + ENVELOPE_SLACK > max {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "a {} byte request exceeds the server's {max} byte frame limit; stream it instead",
                    body.len()
                ),
            ));
        }
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::unavailable("the connection is closed"))?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut pending = Pending {
            reply: Some(tx),
            events: None,
            download: None,
            upload_credit: None,
            _slot: slot,
        };
        let stream = match expect {
            Expect::Value => false,
            Expect::Events(events) => {
                pending.events = Some(events);
                false
            }
            Expect::Upload(credit) => {
                pending.upload_credit = Some(credit);
                true
            }
        };
        conn.pending().insert(id, pending);
        let guard = CancelGuard {
            conn: conn.clone(),
            id,
            armed: true,
        };
        let request = Message::Request {
            id,
            method: method.to_owned(),
            body,
            stream,
        };
        if conn.out.send(request).await.is_err() {
            return Err(conn
                .closed_reason()
                .unwrap_or_else(|| Error::unavailable("the connection is closed")));
        }
        Ok((rx, guard))
    }
}

enum Expect {
    Value,
    Events(mpsc::Sender<Result<Bytes, Error>>),
    Upload(Arc<Semaphore>),
}

async fn wait(rx: oneshot::Receiver<Result<Answer, Error>>, conn: &Conn) -> Result<Answer, Error> {
    match rx.await {
        Ok(answer) => answer,
        Err(_) => Err(conn
            .closed_reason()
            .unwrap_or_else(|| Error::unavailable("the connection closed"))),
    }
}

/// Cancels its request on the server when dropped before the request ends,
/// so a dropped future or subscription frees the server's work too.
struct CancelGuard {
    conn: Arc<Conn>,
    id: u64,
    armed: bool,
}

impl CancelGuard {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.conn.pending().remove(&self.id).is_some() {
            // A full outbox means the connection is swamped or dying; the
            // server then cleans up when the connection closes.
            let _ = self.conn.out.try_send(Message::Cancel { id: self.id });
        }
    }
}

/// A live subscription. Dropping it cancels it on the server.
pub struct Subscription<Ev> {
    /// The server's acknowledgement, as an encoded body.
    pub head: Bytes,
    events: mpsc::Receiver<Result<Bytes, Error>>,
    _guard: CancelGuard,
    _event: PhantomData<fn() -> Ev>,
}

impl<Ev: DeserializeOwned> Subscription<Ev> {
    /// The next event; `None` once the server ends the subscription.
    pub async fn next(&mut self) -> Option<Result<Ev, Error>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Ev, Error>>> {
        self.events
            .poll_recv(cx)
            .map(|item| item.map(|r| r.and_then(|b| body::decode(&b))))
    }
}

impl<Ev: DeserializeOwned> futures_core::Stream for Subscription<Ev> {
    type Item = Result<Ev, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

/// A request whose body is being streamed to the server.
pub struct UploadCall {
    sink: ByteSink,
    reply: oneshot::Receiver<Result<Answer, Error>>,
    /// The server's answer, when it came before the upload's end.
    early: Option<Result<Answer, Error>>,
    guard: CancelGuard,
    conn: Arc<Conn>,
}

impl UploadCall {
    /// Sends the next piece, waiting for the server's credit as needed.
    ///
    /// The server may answer before the upload ends: a refusal (a quota, a
    /// size limit) comes back here as its error; an early success makes the
    /// rest of the upload moot, and `finish` returns it.
    pub async fn send(&mut self, data: Bytes) -> Result<(), Error> {
        if let Some(early) = &self.early {
            return early.as_ref().map(|_| ()).map_err(Error::clone);
        }
        let Err(closed) = self.sink.send(data).await else {
            return Ok(());
        };
        match self.reply.try_recv() {
            Ok(answer) => {
                let result = answer.as_ref().map(|_| ()).map_err(Error::clone);
                self.early = Some(answer);
                result
            }
            Err(_) => Err(closed),
        }
    }

    /// Ends the stream and waits for the server's typed answer.
    pub async fn finish<Resp: DeserializeOwned>(self) -> Result<Resp, Error> {
        let UploadCall {
            sink,
            reply,
            early,
            guard,
            conn,
        } = self;
        let answer = match early {
            Some(answer) => answer,
            None => {
                let sent = sink.finish().await;
                let answer = wait(reply, &conn).await;
                answer.and_then(|a| sent.map(|()| a))
            }
        };
        guard.disarm();
        body::decode(&answer?.body)
    }
}

/// The error for an answer to Hello that is no frame: when it is HTTP or
/// TLS, the client was pointed at the wrong port or the wrong transport, and
/// says so plainly.
fn foreign_answer(config: &ClientConfig, e: &CodecError, unread: &[u8]) -> Error {
    let addr = &config.addr;
    let message = match Foreign::sniff(unread) {
        Some(Foreign::Http) => format!(
            "{addr} looks like an HTTP server (the proxy's HTTP port?), not a backroom service"
        ),
        Some(Foreign::Tls) if config.tls.is_none() => {
            format!("the server at {addr} speaks TLS: set tls_ca to connect to it")
        }
        _ => return Error::unavailable(format!("handshake with {addr}: {e}")),
    };
    Error::new(ErrorCode::WrongService, message)
}

/// The error for a failed TLS handshake. A server that answers the
/// ClientHello with something other than TLS does not speak TLS: say so,
/// rather than rustls's "corrupt message".
fn tls_failure(addr: &str, e: &std::io::Error) -> Error {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::InvalidMessage(_)) = rustls_error {
        return Error::new(
            ErrorCode::WrongService,
            format!("the server at {addr} does not speak TLS: remove tls_ca for it"),
        );
    }
    Error::unavailable(format!("TLS handshake with {addr} failed: {e}"))
}

async fn connect_once(config: &ClientConfig) -> Result<Client, Error> {
    let tcp = TcpStream::connect(&config.addr)
        .await
        .map_err(|e| Error::unavailable(format!("cannot connect to {}: {e}", config.addr)))?;
    let _ = tcp.set_nodelay(true);
    let (reader, mut writer) = match &config.tls {
        None => io::split_tcp(tcp),
        Some(tls) => {
            let name = crate::tls::server_name(&config.addr).map_err(Error::bad_request)?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_failure(&config.addr, &e))?;
            io::split(stream)
        }
    };
    let hello = Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        service: config.service.clone(),
        token: config.token.clone(),
        client: config.client_name.clone(),
    });
    io::write_now(&mut writer, &hello).await?;
    let mut reader = FrameReader::new(reader, config.max_frame as usize);
    let welcome = match reader.next().await {
        Ok(Some(Message::Welcome(w))) => w,
        Ok(Some(Message::Error { error, .. })) => return Err(error),
        Ok(Some(other)) => {
            return Err(Error::bad_request(format!(
                "expected Welcome from {}, got {:?}",
                config.addr,
                other.kind()
            )));
        }
        Ok(None) => {
            return Err(Error::unavailable(format!(
                "{} closed the connection during the handshake",
                config.addr
            )));
        }
        Err(io::ReadError::Codec(e)) => return Err(foreign_answer(config, &e, reader.unread())),
        Err(e) => {
            return Err(Error::unavailable(format!(
                "handshake with {}: {e}",
                config.addr
            )));
        }
    };
    let (out, rx) = Outbox::new();
    let stop = CancellationToken::new();
    io::spawn_writer(writer, rx, stop.clone());
    let conn = Arc::new(Conn {
        out,
        pending: Mutex::new(PendingMap::default()),
        closed: Mutex::new(None),
        window: welcome.limits.stream_window,
    });
    tokio::spawn(read_loop(reader, conn.clone(), stop.clone()));
    tokio::spawn(keepalive(
        conn.clone(),
        Duration::from_millis(welcome.limits.idle_timeout_ms / 3),
        stop.clone(),
    ));
    Ok(Client {
        inner: Arc::new(Inner {
            conn,
            slots: Arc::new(Semaphore::new(welcome.limits.max_in_flight.max(1) as usize)),
            welcome,
            next_id: AtomicU64::new(1),
            stop,
        }),
    })
}

/// Pings often enough that the server's idle timeout never fires on a
/// connection that is merely quiet.
async fn keepalive(conn: Arc<Conn>, every: Duration, stop: CancellationToken) {
    let every = every.max(Duration::from_millis(100));
    let mut nonce = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        nonce += 1;
        if conn.out.send(Message::Ping { nonce }).await.is_err() {
            return;
        }
    }
}

async fn read_loop(mut reader: FrameReader, conn: Arc<Conn>, stop: CancellationToken) {
    let reason = loop {
        let read = tokio::select! {
            () = stop.cancelled() => break Error::unavailable("the client closed the connection"),
            read = reader.next() => read,
        };
        match read {
            Ok(Some(msg)) => {
                if let Err(error) = deliver_burst(&conn, &mut reader, msg) {
                    break error;
                }
            }
            Ok(None) => {
                break conn
                    .closed_reason()
                    .unwrap_or_else(|| Error::unavailable("the server closed the connection"));
            }
            Err(e) => break Error::unavailable(format!("the connection failed: {e}")),
        }
    };
    conn.set_closed(reason.clone());
    conn.fail_all(&reason);
    stop.cancel();
}

/// Delivers a message and every further one already buffered, so a burst of
/// answers costs one trip through the reader's `select!`.
fn deliver_burst(conn: &Conn, reader: &mut FrameReader, first: Message) -> Result<(), Error> {
    let mut msg = first;
    loop {
        deliver(conn, msg)?;
        msg = match reader.buffered() {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Error::unavailable(format!("the connection failed: {e}"))),
        };
    }
}

/// Routes one message from the server to whoever waits for it. An error
/// means the connection is beyond use.
fn deliver(conn: &Conn, msg: Message) -> Result<(), Error> {
    match msg {
        Message::Response { id, body, stream } => {
            let mut pending = conn.pending();
            let Some(p) = pending.get_mut(&id) else {
                return Ok(());
            };
            let download = stream.then(|| {
                let (inbound, download) = ByteStream::new(id, conn.out.clone(), conn.window);
                p.download = Some(inbound);
                download.cancel_on_drop()
            });
            let reply = p.reply.take();
            // Requests live on while a download or events may follow.
            let ended = (!stream && p.events.is_none())
                .then(|| pending.remove(&id))
                .flatten();
            drop(pending);
            if let Some(reply) = reply {
                let _ = reply.send(Ok(Answer { body, download }));
            }
            // An upload the server answered before its end sends no more.
            if let Some(credit) = ended.as_ref().and_then(|p| p.upload_credit.as_ref()) {
                credit.close();
            }
            Ok(())
        }
        Message::Error {
            id: CONNECTION_ID,
            error,
        } => {
            conn.set_closed(error.clone());
            Ok(())
        }
        Message::Error { id, error } => {
            let p = conn.pending().remove(&id);
            if let Some(p) = p {
                fail(p, error);
            }
            Ok(())
        }
        Message::Event { id, body } => {
            let mut pending = conn.pending();
            let Some(events) = pending.get(&id).and_then(|p| p.events.as_ref()) else {
                return Ok(());
            };
            if events.try_send(Ok(body)).is_err() {
                // The subscriber fell behind by a whole backlog: cut it off
                // and tell it why once it catches up.
                if let Some(p) = pending.remove(&id) {
                    let _ = conn.out.try_send(Message::Cancel { id });
                    if let Some(events) = p.events {
                        tokio::spawn(async move {
                            let lag = Error::busy(format!(
                                "subscription dropped: more than {EVENT_BACKLOG} events unread"
                            ));
                            let _ = events.send(Err(lag)).await;
                        });
                    }
                }
            }
            Ok(())
        }
        Message::Cancel { id } => {
            // The server ended a subscription; dropping the sender ends the
            // subscriber's stream.
            conn.pending().remove(&id);
            Ok(())
        }
        Message::Chunk { id, data, last } => {
            let mut pending = conn.pending();
            let Some(inbound) = pending.get(&id).and_then(|p| p.download.as_ref()) else {
                return Ok(());
            };
            if inbound.push(data, last).is_err() {
                return Err(Error::bad_request(format!(
                    "the server sent more on stream {id} than its credit"
                )));
            }
            if last {
                pending.remove(&id);
            }
            Ok(())
        }
        Message::Credit { id, bytes } => {
            if let Some(credit) = conn
                .pending()
                .get(&id)
                .and_then(|p| p.upload_credit.as_ref())
            {
                ByteSink::add_credit(credit, bytes);
            }
            Ok(())
        }
        Message::Ping { nonce } => {
            let _ = conn.out.try_send(Message::Pong { nonce });
            Ok(())
        }
        Message::Pong { .. } => Ok(()),
        Message::Goodbye { reason } => {
            conn.set_closed(Error::unavailable(format!(
                "the server said goodbye: {reason}"
            )));
            Ok(())
        }
        other => Err(Error::bad_request(format!(
            "the server sent an unexpected {:?}",
            other.kind()
        ))),
    }
}
