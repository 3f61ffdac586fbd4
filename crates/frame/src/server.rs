//! The server runtime: accept loop, handshake, dispatch, streams and shutdown.
//!
//! A service implements [`Service`]; [`run`] does everything else. Every
//! connection has one reader loop (this module's `Connection::serve`), one
//! writer task, and one task per request in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::FutureExt;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{AuthHandle, Identity};
use crate::body;
use crate::codec;
use crate::error::{Error, ErrorCode};
use crate::io::{self, FrameReader, Outbox, Outgoing, WriteHalf};
use crate::message::{
    CONNECTION_ID, HELLO_MAX_FRAME, Hello, Limits, Message, PROTOCOL_VERSION, Welcome,
};
use crate::stream::{ByteSink, ByteStream, Inbound};

/// A boxed stream of download bytes.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;
/// A boxed stream of encoded event bodies.
pub type EventStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// How a service answers a call.
pub enum Reply {
    /// One value: the common case.
    Value(Bytes),
    /// A head value, then a byte stream (a download or a large result).
    Stream { head: Bytes, body: BodyStream },
    /// An acknowledgement, then events until the stream ends or the client
    /// cancels.
    Subscription { head: Bytes, events: EventStream },
}

impl Reply {
    /// A reply of one encoded value.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Result<Reply, Error> {
        body::try_encode(value).map(Reply::Value)
    }
}

/// One request, as a handler sees it.
pub struct Call {
    pub method: String,
    pub body: Bytes,
    pub identity: Arc<Identity>,
    /// The caller's upload, when the request carries one.
    pub upload: Option<ByteStream>,
    pub peer: SocketAddr,
    /// A number unique to this connection within the server's run, for
    /// per-connection limits and state.
    pub connection: u64,
}

impl Call {
    /// Decodes the request body into the handler's argument type. A nil body
    /// reads as an empty map when the type is not nil itself, and `{}` as nil
    /// for a method without arguments, so a method whose arguments are all
    /// optional takes either.
    pub fn args<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        body::decode(&self.body).or_else(|error| {
            if self.body == body::NIL {
                body::decode(&body::EMPTY_MAP)
            } else if self.body == body::EMPTY_MAP {
                body::decode(&body::NIL).map_err(|_| error)
            } else {
                Err(error)
            }
        })
    }

    /// Takes the upload, failing with `bad_request` when there is none.
    pub fn take_upload(&mut self) -> Result<ByteStream, Error> {
        self.upload.take().ok_or_else(|| {
            Error::bad_request(format!("{} needs a streamed request body", self.method))
        })
    }
}

/// What a service does with its calls. Handlers run concurrently, one task per
/// request, and are dropped when the client cancels.
pub trait Service: Send + Sync + 'static {
    fn call(&self, call: Call) -> impl Future<Output = Result<Reply, Error>> + Send;

    /// The service's vital signs, answered in `info`. Called by the
    /// connection's reader, so it must be cheap: read counters, never wait.
    fn vitals(&self) -> Vec<Vital> {
        Vec::new()
    }
}

/// The default of [`ServerConfig::max_connections_per_client`]: room for a
/// busy host (a demo or a test suite opens dozens of connections at once)
/// while a flood from one host leaves most of the 1024 slots to the others.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 128;

/// The default of [`ServerConfig::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The service name clients must ask for in `Hello`.
    pub service: String,
    /// The server's own version, announced in `Welcome`.
    pub version: String,
    pub limits: Limits,
    pub max_connections: usize,
    /// The most connections one client address may hold at once, so that one
    /// host cannot take every slot of `max_connections`.
    pub max_connections_per_client: usize,
    /// Who may connect. Keep a clone to replace the users while the server
    /// runs; assign an `Auth` with `.into()`.
    pub auth: AuthHandle,
    /// Allows open access on a non-loopback address.
    pub insecure: bool,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long a client has to complete the handshake, TLS included. Short,
    /// because a connection that has not said Hello holds a slot for nothing.
    pub handshake_timeout: Duration,
    /// How long in-flight requests may run on after shutdown begins.
    pub drain_timeout: Duration,
}

impl ServerConfig {
    pub fn new(service: impl Into<String>, version: impl Into<String>) -> ServerConfig {
        ServerConfig {
            service: service.into(),
            version: version.into(),
            limits: Limits::default(),
            max_connections: 1024,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            auth: AuthHandle::default(),
            insecure: false,
            tls: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Insecure(String),
    #[error("invalid limits: {0}")]
    Limits(String),
    #[error("cannot read the listener's address: {0}")]
    Io(#[from] std::io::Error),
}

/// What `info` answers; every server has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub service: String,
    pub version: String,
    pub uptime_ms: u64,
    pub connections: u64,
    pub requests_served: u64,
    /// The service's own figures, in the order it chose; absent when it has
    /// none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vitals: Vec<Vital>,
}

impl Info {
    /// The vital sign named `name`, if the service reports one.
    pub fn vital(&self, name: &str) -> Option<&Vital> {
        self.vitals.iter().find(|v| v.name == name)
    }
}

/// One figure of a server's health, such as `queued 12` or `in 3.2 MB/s`,
/// which the dashboard shows on the server's card as it comes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vital {
    /// A short lower-case label, unique within the service.
    pub name: String,
    pub value: f64,
    /// `""` for a count, or `"B"`, `"B/s"`, `"/s"`, `"%"`.
    pub unit: String,
    /// Set when the value calls for the admin's attention (printers in
    /// error, a full disk).
    #[serde(default)]
    pub alert: bool,
}

/// The units a [`Vital`] may carry, written once for servers and clients.
pub mod unit {
    /// A count: no unit.
    pub const COUNT: &str = "";
    pub const BYTES: &str = "B";
    pub const BYTES_PER_SEC: &str = "B/s";
    pub const PER_SEC: &str = "/s";
    pub const PERCENT: &str = "%";
}

impl Vital {
    /// A figure that needs no attention; `unit` is one of [`unit`]'s.
    pub fn new(name: &str, value: f64, unit: &str) -> Vital {
        Vital {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            alert: false,
        }
    }

    /// A count: a figure without a unit.
    pub fn count(name: &str, value: u64) -> Vital {
        Vital::new(name, value as f64, unit::COUNT)
    }

    /// The same figure, flagged for the admin's attention when `alert`.
    pub fn alert_if(mut self, alert: bool) -> Vital {
        self.alert = alert;
        self
    }
}

/// The reader hands its gathered replies to the writer once they reach this
/// many bytes, so that a burst of large answers holds little memory and still
/// meets the outbox's back-pressure.
const REPLIES_FLUSH: usize = 64 * 1024;

/// The reader's own answers of one burst: built-in replies, `Pong`s and
/// refusals. A lone answer goes to the writer as a message, as it would
/// anyway; two or more are encoded into one buffer that goes as one outbox
/// entry, so a pipelined burst costs one channel hop and one wake-up of the
/// writer rather than one per answer.
#[derive(Default)]
struct Replies {
    lone: Option<Message>,
    encoded: BytesMut,
}

impl Replies {
    fn push(&mut self, msg: Message) {
        if self.lone.is_none() && self.encoded.is_empty() {
            self.lone = Some(msg);
            return;
        }
        // Room for many small frames at once; once the writer has dropped
        // what went before, this reuses the same allocation.
        if self.encoded.capacity() - self.encoded.len() < 1024 {
            self.encoded.reserve(16 * 1024);
        }
        if let Some(lone) = self.lone.take() {
            codec::encode(&lone, &mut self.encoded);
        }
        codec::encode(&msg, &mut self.encoded);
    }

    fn is_full(&self) -> bool {
        self.encoded.len() >= REPLIES_FLUSH
    }

    /// What goes to the writer now, if anything.
    fn take(&mut self) -> Option<Outgoing> {
        if let Some(lone) = self.lone.take() {
            return Some(Outgoing::Message(lone));
        }
        (!self.encoded.is_empty()).then(|| Outgoing::Encoded(self.encoded.split().freeze()))
    }
}

/// State shared by every connection of one server.
struct Shared<S> {
    service: S,
    config: ServerConfig,
    started: Instant,
    connections: AtomicU64,
    served: AtomicU64,
    sessions: AtomicU64,
    /// Cancelled when shutdown begins: connections say goodbye and drain.
    shutdown: CancellationToken,
    /// Cancelled when draining has taken too long: everything stops at once.
    hard_stop: CancellationToken,
}

impl<S: Service> Shared<S> {
    fn info(&self) -> Info {
        Info {
            service: self.config.service.clone(),
            version: self.config.version.clone(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            connections: self.connections.load(Ordering::Relaxed),
            requests_served: self.served.load(Ordering::Relaxed),
            vitals: self.service.vitals(),
        }
    }
}

/// Serves `service` on `listener` until `shutdown` completes, then drains.
///
/// `shutdown` is first polled once the start-up checks have passed, right
/// before the first accept, so a daemon's shutdown future can announce
/// readiness. Returns once every connection has closed: at the latest one
/// drain timeout (plus a moment to flush) after `shutdown`.
pub async fn run<S: Service>(
    listener: TcpListener,
    config: ServerConfig,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let addr = listener.local_addr()?;
    config
        .auth
        .current()
        .check_bind(addr, config.insecure)
        .map_err(StartError::Insecure)?;
    check_limits(&config.limits).map_err(StartError::Limits)?;
    if config.max_connections_per_client == 0 {
        return Err(StartError::Limits(
            "max_connections_per_client must be at least 1".into(),
        ));
    }
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let per_client = ClientCap::new(config.max_connections_per_client);
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let shared = Arc::new(Shared {
        service,
        config,
        started: Instant::now(),
        connections: AtomicU64::new(0),
        served: AtomicU64::new(0),
        sessions: AtomicU64::new(0),
        shutdown: CancellationToken::new(),
        hard_stop: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    let mut shutdown = std::pin::pin!(shutdown);
    tracing::info!(%addr, service = %shared.config.service, "serving");
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(client_slot) = per_client.admit(peer.ip()) else {
            refuse_over_cap(&tcp, peer, per_client.limit(), tls.is_none());
            continue;
        };
        let shared = shared.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
            shared.connections.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = accept_connection(&shared, tcp, peer, tls).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            shared.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    tracing::info!(%addr, "shutting down");
    shared.shutdown.cancel();
    tracker.close();
    // Drains end on their own; this bound is for peers that stopped reading.
    let grace = shared.config.drain_timeout + Duration::from_secs(1);
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
        shared.hard_stop.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// The connections open per client address (`max_connections_per_client`),
/// so that one host cannot take every slot of a port. The frame port, the
/// standard faces and the proxy port each keep one.
#[derive(Debug)]
pub struct ClientCap {
    limit: usize,
    // A standard mutex: held for one map update, never across an await.
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place in the cap.
#[derive(Debug)]
pub struct ClientSlot {
    cap: Arc<ClientCap>,
    ip: IpAddr,
}

impl ClientCap {
    pub fn new(limit: usize) -> Arc<ClientCap> {
        Arc::new(ClientCap {
            limit,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every update is a single insert, store or remove: a panic cannot
        // leave the map half-changed.
        self.open.lock()
    }

    /// A slot for one more connection from `ip`, or `None` when that
    /// address already holds `limit` connections. An IPv4-mapped IPv6
    /// address counts as its IPv4 address.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            cap: self.clone(),
            ip,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.cap.open();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Turns away a connection beyond its address's cap, at once and without a
/// task: a plaintext peer is told `busy` if the socket takes the frame now.
fn refuse_over_cap(tcp: &TcpStream, peer: SocketAddr, max: usize, plaintext: bool) {
    tracing::warn!(%peer, max, "refused a connection: its address holds the most allowed");
    if plaintext {
        let refusal = Message::Error {
            id: CONNECTION_ID,
            error: Error::busy(format!(
                "{} already holds {max} connections, the most one address may hold",
                peer.ip()
            )),
        };
        let _ = tcp.try_write(&codec::to_bytes(&refusal));
    }
}

async fn accept_connection<S: Service>(
    shared: &Arc<Shared<S>>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    // One deadline for the TLS handshake and Hello together.
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let (reader, writer) = match tls {
        None => io::split_tcp(tcp),
        Some(acceptor) => {
            let accepted = tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await;
            match accepted {
                Ok(Ok(stream)) => io::split(stream),
                Ok(Err(e)) => {
                    log_tls_failure(peer, &e);
                    return Err(format!("TLS handshake failed: {e}"));
                }
                Err(_) => {
                    tracing::warn!(%peer, reason = "timed out", "TLS handshake failed");
                    return Err("TLS handshake timed out".to_owned());
                }
            }
        }
    };
    // Until the client is authenticated, only a Hello-sized frame is read.
    let reader = FrameReader::new(reader, HELLO_MAX_FRAME as usize);
    Connection::handshake(shared.clone(), reader, writer, peer, deadline).await
}

/// A failed TLS handshake is worth a warning, except a peer that connected
/// and left without a word, as port probes and readiness checks do.
fn log_tls_failure(peer: SocketAddr, e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        tracing::debug!(%peer, error = %e, "a peer left before the TLS handshake");
        return;
    }
    let reason = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidMessage(_)) => {
            format!("{e} (a client that does not speak TLS?)")
        }
        _ => e.to_string(),
    };
    tracing::warn!(%peer, %reason, "TLS handshake failed");
}

/// One request in flight: how to stop it and where its streams go.
#[derive(Default)]
struct Slot {
    abort: Option<AbortHandle>,
    upload: Option<Inbound>,
    download_credit: Option<Arc<Semaphore>>,
    subscription: bool,
}

/// The requests in flight on one connection.
///
/// Whoever removes a request's slot sends its final message, which settles
/// every race between a handler finishing and a client cancelling. The lock is
/// a std one: it is never held across an await.
struct Table {
    slots: Mutex<HashMap<u64, Slot>>,
    /// Signalled when the table empties, for draining.
    emptied: Notify,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        // A panic while holding this lock leaves the map consistent (every
        // operation is a single insert, remove or field store), so recover it.
        self.slots.lock()
    }

    fn remove(&self, id: u64) -> Option<Slot> {
        let mut slots = self.lock();
        let slot = slots.remove(&id);
        if slot.is_some() && slots.is_empty() {
            self.emptied.notify_one();
        }
        slot
    }
}

struct Connection<S> {
    shared: Arc<Shared<S>>,
    identity: Arc<Identity>,
    peer: SocketAddr,
    number: u64,
    out: Outbox,
    table: Arc<Table>,
    tasks: TaskTracker,
    /// Ends every request task of this connection when it closes.
    tasks_stop: CancellationToken,
    /// How long the reader waits for room in the outbox before it decides
    /// the peer has stopped reading.
    stall_limit: Duration,
}

/// Why the reader loop must stop.
enum Fault {
    /// The peer broke the protocol; tell it why, then close.
    Refuse(Error),
    /// The peer left or stopped reading; nothing more can be told.
    Gone,
}

impl From<Error> for Fault {
    fn from(e: Error) -> Fault {
        Fault::Refuse(e)
    }
}

/// How a connection's reader loop ended.
enum End {
    /// The peer closed, left, or the connection failed.
    Closed,
    /// We refused the peer; its last bytes are drained so it reads our error.
    Refused,
    Drained,
}

impl<S: Service> Connection<S> {
    async fn handshake(
        shared: Arc<Shared<S>>,
        mut reader: FrameReader,
        mut writer: WriteHalf,
        peer: SocketAddr,
        deadline: tokio::time::Instant,
    ) -> Result<(), String> {
        let first = tokio::time::timeout_at(deadline, reader.next()).await;
        let hello = match first {
            Err(_) => Err(Error::timeout("no Hello within the handshake timeout")),
            Ok(Ok(Some(Message::Hello(hello)))) => Ok(hello),
            Ok(Ok(Some(other))) => Err(Error::bad_request(format!(
                "expected Hello, got {:?}",
                other.kind()
            ))),
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(io::ReadError::Codec(e))) => Err(first_frame_error(&e, reader.unread())),
            Ok(Err(io::ReadError::Io(e))) => return Err(e.to_string()),
        };
        let client = hello.as_ref().map_or("-", |h| h.client.as_str()).to_owned();
        let checked = hello.and_then(|h| check_hello(&shared, &h));
        let identity = match checked {
            Ok(identity) => identity,
            Err(error) => {
                // No user is known until a token is accepted, so the peer's
                // address and the name the client gave are all there is.
                tracing::warn!(
                    %peer,
                    user = "-",
                    %client,
                    reason = %error,
                    "handshake refused"
                );
                let refusal = Message::Error {
                    id: CONNECTION_ID,
                    error: error.clone(),
                };
                let _ = io::write_now(&mut writer, &refusal).await;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut writer).await;
                reader.linger(Duration::from_secs(1)).await;
                return Err(format!("handshake refused: {error}"));
            }
        };
        reader.set_max_frame(shared.config.limits.max_frame as usize);
        let number = shared.sessions.fetch_add(1, Ordering::Relaxed);
        let session = format!(
            "{:x}-{:x}",
            shared.started.elapsed().as_nanos() as u64,
            number
        );
        let welcome = Message::Welcome(Welcome {
            service: shared.config.service.clone(),
            server_version: shared.config.version.clone(),
            session,
            limits: shared.config.limits,
        });
        io::write_now(&mut writer, &welcome)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(%peer, user = %identity.user, %client, "welcomed");

        let (out, rx) = Outbox::new();
        let hard = shared.hard_stop.child_token();
        let writer = io::spawn_writer(writer, rx, hard.clone());
        let stall_limit = Duration::from_millis(shared.config.limits.idle_timeout_ms);
        let conn = Connection {
            shared,
            identity: Arc::new(identity),
            peer,
            number,
            out,
            table: Arc::new(Table {
                slots: Mutex::new(HashMap::new()),
                emptied: Notify::new(),
            }),
            tasks: TaskTracker::new(),
            tasks_stop: CancellationToken::new(),
            stall_limit,
        };
        let served = tokio::select! {
            served = conn.serve(reader) => Some(served),
            () = hard.cancelled() => None,
        };
        conn.close(writer, &hard).await;
        if let Some((End::Refused, reader)) = served {
            reader.linger(Duration::from_secs(1)).await;
        }
        Ok(())
    }

    /// The reader loop: one message at a time, until the peer goes, the
    /// connection idles out, or shutdown has drained.
    async fn serve(&self, mut reader: FrameReader) -> (End, FrameReader) {
        let limits = self.shared.config.limits;
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        let mut last_heard = tokio::time::Instant::now();
        // Both timers are created once and re-armed, never re-created per
        // message: timer registration is the costliest part of a round trip.
        let idle_timer = tokio::time::sleep(idle);
        let drain_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(idle_timer, drain_timer);
        let mut draining = false;
        let mut replies = Replies::default();
        let end = loop {
            tokio::select! {
                biased;
                () = self.shared.shutdown.cancelled(), if !draining => {
                    draining = true;
                    let deadline = tokio::time::Instant::now() + self.shared.config.drain_timeout;
                    drain_timer.as_mut().reset(deadline);
                    self.begin_drain();
                    if self.table.lock().is_empty() {
                        break End::Drained;
                    }
                }
                () = self.table.emptied.notified(), if draining => {
                    if self.table.lock().is_empty() {
                        break End::Drained;
                    }
                }
                () = &mut drain_timer, if draining => break End::Drained,
                () = &mut idle_timer => {
                    let deadline = last_heard + idle;
                    if deadline > tokio::time::Instant::now() {
                        idle_timer.as_mut().reset(deadline);
                        continue;
                    }
                    let _ = self.out.try_send(Message::Goodbye {
                        reason: format!("idle for {} ms", limits.idle_timeout_ms),
                    });
                    break End::Closed;
                }
                read = reader.next() => {
                    last_heard = tokio::time::Instant::now();
                    if let Some(end) = self.take(read, &mut reader, draining, &mut replies).await {
                        break end;
                    }
                }
            }
        };
        (end, reader)
    }

    /// Handles a message just read, then every further one already buffered,
    /// so a pipelined burst costs one trip through `select!`, not one each.
    /// The reader's own answers in the burst gather in `replies` and go to
    /// the writer together at its end.
    async fn take(
        &self,
        read: Result<Option<Message>, io::ReadError>,
        reader: &mut FrameReader,
        draining: bool,
        replies: &mut Replies,
    ) -> Option<End> {
        let end = self.take_burst(read, reader, draining, replies).await;
        if let Some(End::Refused) = end {
            // A peer we refuse gets what fits now, and no more waiting.
            if let Some(entry) = replies.take() {
                let _ = self.out.try_queue(entry);
            }
            return end;
        }
        match self.flush(replies).await {
            Ok(()) => end,
            Err(_) => Some(End::Closed),
        }
    }

    async fn take_burst(
        &self,
        mut read: Result<Option<Message>, io::ReadError>,
        reader: &mut FrameReader,
        draining: bool,
        replies: &mut Replies,
    ) -> Option<End> {
        loop {
            let msg = match read {
                Ok(Some(msg)) => msg,
                Ok(None) => return Some(End::Closed),
                Err(io::ReadError::Codec(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "bad frame");
                    let error = e.to_error();
                    replies.push(Message::Error {
                        id: CONNECTION_ID,
                        error,
                    });
                    return Some(End::Refused);
                }
                Err(io::ReadError::Io(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    return Some(End::Closed);
                }
            };
            match self.dispatch(msg, draining, replies).await {
                Ok(()) => {}
                Err(Fault::Refuse(error)) => {
                    replies.push(Message::Error {
                        id: CONNECTION_ID,
                        error,
                    });
                    return Some(End::Refused);
                }
                Err(Fault::Gone) => return Some(End::Closed),
            }
            read = match reader.buffered() {
                Ok(None) => return None,
                Ok(Some(msg)) => Ok(Some(msg)),
                Err(e) => Err(io::ReadError::Codec(e)),
            };
        }
    }

    /// Stops everything still running, then lets the writer flush and close.
    async fn close(
        self,
        mut writer: tokio::task::JoinHandle<std::io::Result<()>>,
        hard: &CancellationToken,
    ) {
        let leftover: Vec<Slot> = self.table.lock().drain().map(|(_, s)| s).collect();
        for slot in leftover {
            if let Some(credit) = slot.download_credit {
                credit.close();
            }
        }
        self.tasks_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        drop(self.out);
        // A peer that stopped reading must not hold this task forever.
        tokio::select! {
            _ = &mut writer => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                tracing::debug!(peer = %self.peer, "gave up flushing to a peer that does not read");
                hard.cancel();
                let _ = writer.await;
            }
        }
    }

    /// Announces shutdown and ends subscriptions; requests keep running.
    fn begin_drain(&self) {
        let _ = self.out.try_send(Message::Goodbye {
            reason: "server shutting down".into(),
        });
        let ended: Vec<u64> = {
            let slots = self.table.lock();
            slots
                .iter()
                .filter(|(_, s)| s.subscription)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in ended {
            if let Some(slot) = self.table.remove(id) {
                if let Some(abort) = slot.abort {
                    abort.abort();
                }
                let _ = self.out.try_send(Message::Cancel { id });
            }
        }
    }

    /// Adds one of the reader's answers to the burst's `replies`, handing
    /// them to the writer early once they are many.
    async fn reply(&self, replies: &mut Replies, msg: Message) -> Result<(), Fault> {
        replies.push(msg);
        if replies.is_full() {
            self.flush(replies).await?;
        }
        Ok(())
    }

    /// Queues the gathered replies for the peer as one outbox entry, waiting
    /// for room, but only so long: a peer that reads nothing for a whole
    /// idle timeout is cut off.
    async fn flush(&self, replies: &mut Replies) -> Result<(), Fault> {
        let Some(entry) = replies.take() else {
            return Ok(());
        };
        // The common case needs no timer: there is room.
        let entry = match self.out.try_queue(entry) {
            Ok(()) => return Ok(()),
            Err(None) => return Err(Fault::Gone),
            Err(Some(entry)) => entry,
        };
        match tokio::time::timeout(self.stall_limit, self.out.queue(entry)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Fault::Gone),
        }
    }

    /// Handles one message from the client. An error closes the connection.
    async fn dispatch(
        &self,
        msg: Message,
        draining: bool,
        replies: &mut Replies,
    ) -> Result<(), Fault> {
        match msg {
            Message::Request {
                id,
                method,
                body,
                stream,
            } => {
                self.request(id, method, body, stream, draining, replies)
                    .await
            }
            Message::Cancel { id } => {
                if let Some(slot) = self.table.remove(id) {
                    if let Some(abort) = slot.abort {
                        abort.abort();
                    }
                    let error = Error::cancelled("cancelled by the client");
                    self.reply(replies, Message::Error { id, error }).await?;
                }
                Ok(())
            }
            Message::Chunk { id, data, last } => {
                let slots = self.table.lock();
                // Chunks for a finished or cancelled request are dropped.
                let Some(upload) = slots.get(&id).and_then(|s| s.upload.as_ref()) else {
                    return Ok(());
                };
                upload.push(data, last).map_err(|_| {
                    Fault::Refuse(Error::bad_request(format!(
                        "stream {id} sent more than its credit"
                    )))
                })
            }
            Message::Credit { id, bytes } => {
                if let Some(credit) = self
                    .table
                    .lock()
                    .get(&id)
                    .and_then(|s| s.download_credit.as_ref())
                {
                    ByteSink::add_credit(credit, bytes);
                }
                Ok(())
            }
            Message::Ping { nonce } => self.reply(replies, Message::Pong { nonce }).await,
            Message::Pong { .. } => Ok(()),
            Message::Goodbye { .. } => Err(Fault::Gone),
            other => Err(Fault::Refuse(Error::bad_request(format!(
                "a client may not send {:?} after the handshake",
                other.kind()
            )))),
        }
    }

    fn duplicate(&self, id: u64) -> Fault {
        Fault::Refuse(Error::bad_request(format!(
            "request id {id} is already in flight"
        )))
    }

    async fn request(
        &self,
        id: u64,
        method: String,
        body: Bytes,
        stream: bool,
        draining: bool,
        replies: &mut Replies,
    ) -> Result<(), Fault> {
        if id == CONNECTION_ID {
            return Err(Error::bad_request("request id 0 is reserved").into());
        }
        if draining {
            let error = Error::unavailable("the server is shutting down");
            return self.reply(replies, Message::Error { id, error }).await;
        }
        // Built-ins answer inline: no task, no slot, the cheapest round trip.
        let builtin = match method.as_str() {
            "ping" => Some(Ok(body.clone())),
            "info" => Some(body::try_encode(&self.shared.info())),
            _ => None,
        };
        if let Some(mut result) = builtin {
            if self.table.lock().contains_key(&id) {
                return Err(self.duplicate(id));
            }
            if stream {
                result = Err(Error::bad_request(format!("{method} takes no stream")));
            }
            self.shared.served.fetch_add(1, Ordering::Relaxed);
            let reply = match result {
                Ok(body) => Message::Response {
                    id,
                    body,
                    stream: false,
                },
                Err(error) => Message::Error { id, error },
            };
            return self.reply(replies, reply).await;
        }
        let max = self.shared.config.limits.max_in_flight as usize;
        let admitted = {
            let mut slots = self.table.lock();
            if slots.contains_key(&id) {
                return Err(self.duplicate(id));
            }
            if slots.len() >= max {
                None
            } else {
                let mut slot = Slot::default();
                let upload = stream.then(|| {
                    let window = self.shared.config.limits.stream_window;
                    let (inbound, upload) = ByteStream::new(id, self.out.clone(), window);
                    slot.upload = Some(inbound);
                    upload
                });
                slots.insert(id, slot);
                Some(upload)
            }
        };
        let Some(upload) = admitted else {
            let error = Error::busy(format!(
                "{max} requests are already in flight on this connection; wait for one to finish"
            ));
            return self.reply(replies, Message::Error { id, error }).await;
        };
        let call = Call {
            method,
            body,
            identity: self.identity.clone(),
            upload,
            peer: self.peer,
            connection: self.number,
        };
        let work = handle(
            id,
            call,
            self.shared.clone(),
            self.table.clone(),
            self.out.clone(),
        );
        let stop = self.tasks_stop.clone();
        let task = self.tasks.spawn(async move {
            tokio::select! {
                () = work => {}
                () = stop.cancelled() => {}
            }
        });
        if let Some(slot) = self.table.lock().get_mut(&id) {
            slot.abort = Some(task.abort_handle());
        }
        Ok(())
    }
}

/// Runs one request to its end: its handler, then its stream or events.
async fn handle<S: Service>(
    id: u64,
    call: Call,
    shared: Arc<Shared<S>>,
    table: Arc<Table>,
    out: Outbox,
) {
    let method = call.method.clone();
    // A panicking handler fails its own request, not the connection.
    let reply = AssertUnwindSafe(shared.service.call(call))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| {
            tracing::error!(id, %method, "handler panicked");
            Err(Error::internal(format!(
                "the {method} handler failed unexpectedly"
            )))
        });
    shared.served.fetch_add(1, Ordering::Relaxed);
    let finish = |msg: Message| {
        let live = table.remove(id).is_some();
        let out = out.clone();
        async move {
            if live {
                let _ = out.send(msg).await;
            }
        }
    };
    match reply {
        Err(error) => {
            tracing::debug!(id, %method, %error, "request failed");
            finish(Message::Error { id, error }).await;
        }
        Ok(Reply::Value(body)) => {
            finish(Message::Response {
                id,
                body,
                stream: false,
            })
            .await;
        }
        Ok(Reply::Stream { head, mut body }) => {
            let window = shared.config.limits.stream_window;
            let credit = ByteSink::initial_credit(window);
            match table.lock().get_mut(&id) {
                Some(slot) => slot.download_credit = Some(credit.clone()),
                None => return,
            }
            let _ = out
                .send(Message::Response {
                    id,
                    body: head,
                    stream: true,
                })
                .await;
            let mut sink = ByteSink::new(id, out.clone(), credit, window);
            while let Some(piece) = next(&mut body).await {
                let sent = match piece {
                    Ok(data) => sink.send(data).await,
                    Err(e) => Err(e),
                };
                if let Err(error) = sent {
                    finish(Message::Error { id, error }).await;
                    return;
                }
            }
            if table.remove(id).is_some() {
                let _ = sink.finish().await;
            }
        }
        Ok(Reply::Subscription { head, mut events }) => {
            match table.lock().get_mut(&id) {
                Some(slot) => slot.subscription = true,
                None => return,
            }
            let _ = out
                .send(Message::Response {
                    id,
                    body: head,
                    stream: false,
                })
                .await;
            while let Some(body) = next(&mut events).await {
                if out.send(Message::Event { id, body }).await.is_err() {
                    return;
                }
            }
            finish(Message::Cancel { id }).await;
        }
    }
}

async fn next<T, St: Stream<Item = T> + ?Sized>(stream: &mut Pin<Box<St>>) -> Option<T> {
    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
}

/// What a client whose first frame could not be read is told: when its bytes
/// are HTTP or TLS, that it speaks the wrong protocol, in plain words.
fn first_frame_error(e: &crate::codec::CodecError, unread: &[u8]) -> Error {
    let wrong = |what: &str| {
        Error::new(
            ErrorCode::BadRequest,
            format!("{what}; this port speaks the backroom protocol without TLS"),
        )
    };
    match crate::codec::Foreign::sniff(unread) {
        Some(crate::codec::Foreign::Http) => wrong("this looks like an HTTP request"),
        Some(crate::codec::Foreign::Tls) => wrong("this looks like a TLS handshake"),
        None => e.to_error(),
    }
}

/// Limits that would wedge every connection are refused at startup.
fn check_limits(limits: &Limits) -> Result<(), String> {
    if limits.max_frame < 1024 {
        return Err(format!(
            "max_frame {} is below 1024 bytes",
            limits.max_frame
        ));
    }
    if limits.max_in_flight == 0 {
        return Err("max_in_flight must be at least 1".into());
    }
    if limits.stream_window < 1024 {
        return Err(format!(
            "stream_window {} is below 1024 bytes",
            limits.stream_window
        ));
    }
    if limits.idle_timeout_ms < 100 {
        return Err(format!(
            "idle_timeout_ms {} is below 100",
            limits.idle_timeout_ms
        ));
    }
    Ok(())
}

fn check_hello<S>(shared: &Shared<S>, hello: &Hello) -> Result<Identity, Error> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Error::new(
            ErrorCode::VersionMismatch,
            format!(
                "the client speaks protocol version {}, this server speaks version \
                 {PROTOCOL_VERSION}: use a client of the same protocol version",
                hello.version
            ),
        ));
    }
    if hello.service != shared.config.service {
        return Err(Error::new(
            ErrorCode::WrongService,
            format!(
                "this is the {} service, not {:?}",
                shared.config.service, hello.service
            ),
        ));
    }
    shared
        .config
        .auth
        .current()
        .authenticate(hello.token.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap_and_a_dropped_slot_frees_a_place() {
        let cap = ClientCap::new(2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = cap.admit(a).expect("first");
        let _second = cap.admit(mapped).expect("second, the same address");
        assert!(cap.admit(a).is_none(), "a third from the same address");
        let _other = cap.admit(b).expect("another address");
        drop(first);
        assert!(cap.admit(a).is_some(), "a place was freed");
    }
}
