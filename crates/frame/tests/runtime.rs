//! Loopback integration tests of the client and server runtimes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use backroom_frame::auth::{Auth, Role, User, hash_token};
use backroom_frame::body;
use backroom_frame::client::{Client, ClientConfig};
use backroom_frame::codec::{self, Decoder};
use backroom_frame::message::{Hello, Message, PROTOCOL_VERSION};
use backroom_frame::server::{self, Call, Reply, ServerConfig, Service, StartError};
use backroom_frame::{Error, ErrorCode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// What the test service tells the test about its handlers.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Started(String),
    Dropped(String),
}

/// Tells the test when a handler is dropped before it finished.
struct DropSignal {
    name: String,
    seen: mpsc::UnboundedSender<Seen>,
    armed: bool,
}

impl Drop for DropSignal {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.seen.send(Seen::Dropped(self.name.clone()));
        }
    }
}

struct State {
    seen: mpsc::UnboundedSender<Seen>,
    gate: watch::Receiver<bool>,
    news: broadcast::Sender<u64>,
    /// The senders of `hold` requests, released all at once in reverse.
    held: Mutex<Vec<oneshot::Sender<()>>>,
    hold_count: usize,
}

#[derive(Clone)]
struct TestService(Arc<State>);

#[derive(Debug, Serialize, Deserialize)]
struct Len {
    len: u64,
}

/// The arguments of `options`, all optional.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Options {
    #[serde(default)]
    n: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Whoami {
    user: String,
    role: Role,
}

/// The byte at `offset` of every test download.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

impl Service for TestService {
    async fn call(&self, mut call: Call) -> Result<Reply, Error> {
        let state = &self.0;
        match call.method.as_str() {
            "echo" => Ok(Reply::Value(call.body.clone())),
            "options" => Reply::value(&call.args::<Options>()?),
            "nothing" => {
                let () = call.args()?;
                Reply::value(&())
            }
            "whoami" => Reply::value(&Whoami {
                user: call.identity.user.clone(),
                role: call.identity.role,
            }),
            "hold" => {
                let n: u64 = call.args()?;
                let (tx, rx) = oneshot::channel();
                let mut held = state.held.lock().await;
                held.push(tx);
                if held.len() == state.hold_count {
                    // Release in reverse order of arrival.
                    while let Some(tx) = held.pop() {
                        let _ = tx.send(());
                    }
                }
                drop(held);
                let _ = rx.await;
                Reply::value(&n)
            }
            "gate" => {
                let _ = state.seen.send(Seen::Started("gate".into()));
                let mut gate = state.gate.clone();
                gate.wait_for(|open| *open)
                    .await
                    .map_err(|_| Error::internal("gate dropped"))?;
                Reply::value("through")
            }
            "forever" => {
                let _signal = DropSignal {
                    name: "forever".into(),
                    seen: state.seen.clone(),
                    armed: true,
                };
                let _ = state.seen.send(Seen::Started("forever".into()));
                std::future::pending::<()>().await;
                Reply::value(&())
            }
            "news" => {
                let rx = state.news.subscribe();
                let signal = DropSignal {
                    name: "news".into(),
                    seen: state.seen.clone(),
                    armed: true,
                };
                let events = futures_util::stream::unfold((rx, signal), |(mut rx, signal)| async {
                    let n = rx.recv().await.ok()?;
                    Some((body::encode(&n), (rx, signal)))
                });
                Ok(Reply::Subscription {
                    head: body::encode("subscribed"),
                    events: Box::pin(events),
                })
            }
            "download" => {
                let Len { len } = call.args()?;
                let piece: u64 = 64 * 1024;
                let chunks = futures_util::stream::iter((0..len.div_ceil(piece)).map(move |i| {
                    let start = i * piece;
                    let end = (start + piece).min(len);
                    Ok((start..end).map(pattern).collect::<Bytes>())
                }));
                Ok(Reply::Stream {
                    head: body::encode(&Len { len }),
                    body: Box::pin(chunks),
                })
            }
            "upload" => {
                let mut upload = call.take_upload()?;
                let mut total = 0u64;
                while let Some(chunk) = upload.chunk().await? {
                    for (i, b) in chunk.iter().enumerate() {
                        if *b != pattern(total + i as u64) {
                            return Err(Error::bad_request("upload corrupted"));
                        }
                    }
                    total += chunk.len() as u64;
                }
                Reply::value(&Len { len: total })
            }
            "upload_max_1mib" => {
                let mut upload = call.take_upload()?;
                let mut total = 0;
                while let Some(chunk) = upload.chunk().await? {
                    total += chunk.len();
                    if total > 1 << 20 {
                        return Err(Error::new(ErrorCode::TooLarge, "over 1 MiB"));
                    }
                }
                Reply::value(&total)
            }
            "panic" => panic!("a handler bug"),
            other => Err(Error::unknown_method(other)),
        }
    }
}

/// The test service and the handles a test uses to steer it.
fn test_service(
    hold_count: usize,
) -> (
    TestService,
    mpsc::UnboundedReceiver<Seen>,
    watch::Sender<bool>,
    broadcast::Sender<u64>,
) {
    let (seen_tx, seen) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let (news, _) = broadcast::channel(64);
    let service = TestService(Arc::new(State {
        seen: seen_tx,
        gate: gate_rx,
        news: news.clone(),
        held: Mutex::new(Vec::new()),
        hold_count,
    }));
    (service, seen, gate, news)
}

struct TestServer {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    gate: watch::Sender<bool>,
    news: broadcast::Sender<u64>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StartError>>,
}

impl TestServer {
    async fn start(config: ServerConfig) -> TestServer {
        TestServer::start_holding(config, 0).await
    }

    async fn start_holding(config: ServerConfig, hold_count: usize) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (service, seen, gate, news) = test_service(hold_count);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, config, service, async {
            let _ = stop.await;
        }));
        TestServer {
            addr,
            seen,
            gate,
            news,
            shutdown: Some(shutdown),
            task,
        }
    }

    fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.addr.to_string(), "test")
    }

    async fn client(&self) -> Client {
        Client::connect(&self.client_config())
            .await
            .expect("connect")
    }

    async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    async fn stop(mut self) -> Result<(), StartError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.expect("server task")
    }
}

fn config() -> ServerConfig {
    ServerConfig::new("test", "9.9.9")
}

/// A client that speaks frames by hand, to send what a good client never would.
struct Raw {
    tcp: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            tcp: TcpStream::connect(addr).await.expect("connect"),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, msg: &Message) {
        self.send_bytes(&codec::to_bytes(msg)).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// The next message, or `None` at end of stream.
    async fn recv(&mut self) -> Option<Message> {
        let decoder = Decoder::new(usize::MAX);
        loop {
            if let Some(msg) = decoder
                .decode(&mut self.buf)
                .expect("server sends valid frames")
            {
                return Some(msg);
            }
            match self.tcp.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn hello(&mut self, version: u32, service: &str, token: Option<&str>) -> Message {
        self.send(&Message::Hello(Hello {
            version,
            service: service.into(),
            token: token.map(str::to_owned),
            client: "raw".into(),
        }))
        .await;
        self.recv().await.expect("an answer to Hello")
    }

    async fn welcomed(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr).await;
        let answer = raw.hello(PROTOCOL_VERSION, "test", None).await;
        assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");
        raw
    }

    /// Expects a connection error with `code`, then the end of the stream.
    async fn expect_refusal(&mut self, code: ErrorCode) {
        match self.recv().await {
            Some(Message::Error { id: 0, error }) => assert_eq!(error.code, code, "{error}"),
            other => panic!("expected a {code} connection error, got {other:?}"),
        }
        assert_eq!(self.recv().await, None, "the connection should close");
    }
}

fn request(id: u64, method: &str, body: Bytes) -> Message {
    Message::Request {
        id,
        method: method.into(),
        body,
        stream: false,
    }
}

fn users() -> Auth {
    Auth::new(vec![
        User {
            name: "ann".into(),
            token_sha256: hash_token("ann-token"),
            role: Role::Admin,
        },
        User {
            name: "bob".into(),
            token_sha256: hash_token("bob-token"),
            role: Role::ReadOnly,
        },
    ])
    .expect("users")
}

#[tokio::test]
async fn handshake_welcomes_with_service_version_and_limits() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let welcome = client.welcome();
    assert_eq!(welcome.service, "test");
    assert_eq!(welcome.server_version, "9.9.9");
    assert!(!welcome.session.is_empty());
    assert_eq!(welcome.limits.max_frame, 16 << 20);
    let info = client.info().await.expect("info");
    assert_eq!(info.service, "test");
    assert_eq!(info.connections, 1);
}

#[tokio::test]
async fn a_good_token_gives_the_users_identity_and_role() {
    let mut config = config();
    config.auth = users().into();
    let server = TestServer::start(config).await;
    let mut client_config = server.client_config();
    client_config.token = Some("bob-token".into());
    let client = Client::connect(&client_config).await.expect("connect");
    let me: Whoami = client.request("whoami", &()).await.expect("whoami");
    assert_eq!(
        me,
        Whoami {
            user: "bob".into(),
            role: Role::ReadOnly
        }
    );
}

#[tokio::test]
async fn a_bad_or_missing_token_is_refused() {
    let mut config = config();
    config.auth = users().into();
    let server = TestServer::start(config).await;
    for token in [Some("wrong".to_owned()), None] {
        let mut client_config = server.client_config();
        client_config.token = token;
        let err = Client::connect(&client_config).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unauthorized, "{err}");
    }
    let mut raw = server.raw().await;
    match raw.hello(PROTOCOL_VERSION, "test", Some("wrong")).await {
        Message::Error { id: 0, error } => assert_eq!(error.code, ErrorCode::Unauthorized),
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn replacing_the_auth_changes_who_may_connect_but_not_who_is_connected() {
    let mut config = config();
    config.auth = users().into();
    let auth = config.auth.clone();
    let server = TestServer::start(config).await;
    let as_user = |token: &str| {
        let mut client_config = server.client_config();
        client_config.token = Some(token.to_owned());
        client_config
    };
    let ann = Client::connect(&as_user("ann-token"))
        .await
        .expect("ann before the change");

    auth.replace(
        Auth::new(vec![User {
            name: "cat".into(),
            token_sha256: hash_token("cat-token"),
            role: Role::ReadWrite,
        }])
        .expect("users"),
    );

    let cat = Client::connect(&as_user("cat-token"))
        .await
        .expect("the new token is let in");
    let me: Whoami = cat.request("whoami", &()).await.expect("whoami");
    assert_eq!(me.user, "cat");
    let err = Client::connect(&as_user("ann-token")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unauthorized, "{err}");
    let me: Whoami = ann
        .request("whoami", &())
        .await
        .expect("ann stays connected");
    assert_eq!(me.user, "ann");
}

#[tokio::test]
async fn a_version_mismatch_is_refused() {
    let server = TestServer::start(config()).await;
    let mut raw = server.raw().await;
    match raw.hello(PROTOCOL_VERSION - 1, "test", None).await {
        Message::Error { id: 0, error } => {
            assert_eq!(error.code, ErrorCode::VersionMismatch);
            let both = format!(
                "the client speaks protocol version {}, this server speaks version {}",
                PROTOCOL_VERSION - 1,
                PROTOCOL_VERSION
            );
            assert!(error.message.contains(&both), "{}", error.message);
        }
        other => panic!("expected version_mismatch, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn the_wrong_service_is_refused() {
    let server = TestServer::start(config()).await;
    let err = Client::connect(&ClientConfig::new(server.addr.to_string(), "files"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongService);
    assert!(err.message.contains("test service"), "{}", err.message);
}

#[tokio::test]
async fn a_request_before_hello_is_refused() {
    let server = TestServer::start(config()).await;
    let mut raw = server.raw().await;
    raw.send(&request(1, "echo", body::NIL.clone())).await;
    raw.expect_refusal(ErrorCode::BadRequest).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_thousand_pipelined_requests_are_answered_out_of_order() {
    let server = TestServer::start_holding(config(), 1000).await;
    let client = server.client().await;
    let mut calls: FuturesUnordered<_> = (0..1000u64)
        .map(|n| {
            let client = client.clone();
            async move { client.request::<_, u64>("hold", &n).await.map(|r| (n, r)) }
        })
        .collect();
    let mut order = Vec::new();
    while let Some(answer) = calls.next().await {
        let (sent, got) = answer.expect("answer");
        assert_eq!(sent, got, "each answer belongs to its own request");
        order.push(got);
    }
    assert_eq!(order.len(), 1000);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_ne!(order, sorted, "answers should arrive out of order");
    assert_ne!(
        order[0], 0,
        "the first request was held until the last arrived"
    );
}

#[tokio::test]
async fn a_burst_of_built_in_requests_is_answered_in_order_even_past_one_flush() {
    let server = TestServer::start(config()).await;
    let mut raw = Raw::welcomed(server.addr).await;
    // One write of pings, Pings and infos: the infos' answers alone pass the
    // amount the reader gathers before it hands its replies to the writer.
    let mut burst = BytesMut::new();
    for id in 1..=2000u64 {
        let msg = match id % 3 {
            0 => Message::Ping { nonce: id },
            1 => request(id, "ping", body::encode(&id)),
            _ => request(id, "info", body::NIL.clone()),
        };
        codec::encode(&msg, &mut burst);
    }
    raw.send_bytes(&burst).await;
    for id in 1..=2000u64 {
        match (id % 3, raw.recv().await) {
            (0, Some(Message::Pong { nonce })) => assert_eq!(nonce, id),
            (1, Some(Message::Response { id: got, body, .. })) => {
                assert_eq!(got, id);
                assert_eq!(body::decode::<u64>(&body).expect("echo"), id);
            }
            (2, Some(Message::Response { id: got, body, .. })) => {
                assert_eq!(got, id);
                let info: server::Info = body::decode(&body).expect("info");
                assert_eq!(info.service, "test");
            }
            (_, other) => panic!("answer {id}: unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn answers_gathered_before_a_violation_arrive_before_the_refusal() {
    let server = TestServer::start(config()).await;
    let mut raw = Raw::welcomed(server.addr).await;
    let mut burst = BytesMut::new();
    for id in 1..=10u64 {
        codec::encode(&request(id, "ping", body::NIL.clone()), &mut burst);
    }
    codec::encode(&request(0, "ping", body::NIL.clone()), &mut burst);
    raw.send_bytes(&burst).await;
    for id in 1..=10u64 {
        match raw.recv().await {
            Some(Message::Response { id: got, .. }) => assert_eq!(got, id),
            other => panic!("expected the answer to ping {id}, got {other:?}"),
        }
    }
    raw.expect_refusal(ErrorCode::BadRequest).await;
}

#[tokio::test]
async fn an_unknown_method_gets_an_error_and_the_connection_stays_open() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let err = client
        .call("no_such_method", body::NIL.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::UnknownMethod);
    let echoed: String = client.request("echo", "still here").await.expect("echo");
    assert_eq!(echoed, "still here");
}

#[tokio::test]
async fn nil_and_an_empty_map_are_one_body_for_optional_or_no_arguments() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    for request in [body::NIL.clone(), body::EMPTY_MAP.clone()] {
        let answer = client
            .call("options", request.clone())
            .await
            .expect("options");
        let options: Options = body::decode(&answer).expect("decodes");
        assert_eq!(options, Options::default());
        client.call("nothing", request).await.expect("no arguments");
    }
    let err = client
        .call("download", body::NIL.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(err.message.contains("missing field"), "{}", err.message);
}

#[tokio::test]
async fn a_mismatched_body_is_a_bad_request_and_the_connection_stays_open() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let err = client
        .request::<_, Len>("download", "not a map")
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRequest);
    client.ping().await.expect("ping");
}

#[tokio::test]
async fn dropping_a_request_cancels_its_handler() {
    let mut server = TestServer::start(config()).await;
    let client = server.client().await;
    let call = client.call("forever", body::NIL.clone());
    tokio::select! {
        _ = call => panic!("forever never answers"),
        seen = server.seen.recv() => assert_eq!(seen, Some(Seen::Started("forever".into()))),
    }
    assert_eq!(
        server.seen.recv().await,
        Some(Seen::Dropped("forever".into()))
    );
    client.ping().await.expect("the connection is still good");
}

#[tokio::test]
async fn an_explicit_cancel_is_confirmed_with_a_cancelled_error() {
    let mut server = TestServer::start(config()).await;
    let mut raw = Raw::welcomed(server.addr).await;
    raw.send(&request(5, "forever", body::NIL.clone())).await;
    assert_eq!(
        server.seen.recv().await,
        Some(Seen::Started("forever".into()))
    );
    raw.send(&Message::Cancel { id: 5 }).await;
    match raw.recv().await {
        Some(Message::Error { id: 5, error }) => assert_eq!(error.code, ErrorCode::Cancelled),
        other => panic!("expected cancelled, got {other:?}"),
    }
    assert_eq!(
        server.seen.recv().await,
        Some(Seen::Dropped("forever".into()))
    );
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_busy() {
    let mut config = config();
    config.limits.max_in_flight = 2;
    let mut server = TestServer::start(config).await;
    let mut raw = Raw::welcomed(server.addr).await;
    for id in 1..=2 {
        raw.send(&request(id, "gate", body::NIL.clone())).await;
        assert_eq!(server.seen.recv().await, Some(Seen::Started("gate".into())));
    }
    raw.send(&request(3, "gate", body::NIL.clone())).await;
    match raw.recv().await {
        Some(Message::Error { id: 3, error }) => assert_eq!(error.code, ErrorCode::Busy),
        other => panic!("expected busy, got {other:?}"),
    }
    // Built-ins need no slot, so the connection still answers them.
    raw.send(&request(4, "ping", body::NIL.clone())).await;
    assert!(matches!(
        raw.recv().await,
        Some(Message::Response { id: 4, .. })
    ));
    server.gate.send_replace(true);
    let mut done = Vec::new();
    while done.len() < 2 {
        match raw.recv().await {
            Some(Message::Response { id, .. }) => done.push(id),
            other => panic!("expected a response, got {other:?}"),
        }
    }
    done.sort_unstable();
    assert_eq!(done, [1, 2]);
}

#[tokio::test]
async fn a_duplicate_request_id_closes_the_connection() {
    let mut server = TestServer::start(config()).await;
    let mut raw = Raw::welcomed(server.addr).await;
    raw.send(&request(1, "gate", body::NIL.clone())).await;
    assert_eq!(server.seen.recv().await, Some(Seen::Started("gate".into())));
    raw.send(&request(1, "echo", body::NIL.clone())).await;
    raw.expect_refusal(ErrorCode::BadRequest).await;
}

#[tokio::test]
async fn subscription_events_arrive_and_dropping_it_ends_it_on_the_server() {
    let mut server = TestServer::start(config()).await;
    let client = server.client().await;
    let mut sub = client
        .subscribe::<_, u64>("news", &())
        .await
        .expect("subscribe");
    assert_eq!(
        body::decode::<String>(&sub.head).expect("head"),
        "subscribed"
    );
    for n in 1..=3 {
        server.news.send(n).expect("a subscriber is listening");
    }
    for n in 1..=3 {
        assert_eq!(sub.next().await.expect("event").expect("decodes"), n);
    }
    drop(sub);
    assert_eq!(server.seen.recv().await, Some(Seen::Dropped("news".into())));
    client.ping().await.expect("the connection is still good");
}

#[tokio::test]
async fn small_requests_are_answered_while_a_100_mib_stream_runs() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let len = 100u64 << 20;
    let (head, mut download) = client
        .download::<_, Len>("download", &Len { len })
        .await
        .expect("download");
    assert_eq!(head.len, len);
    let first = download.chunk().await.expect("first chunk").expect("data");
    let mut received = first.len() as u64;
    // The stream is stalled on credit now, but small requests still pass.
    for i in 0..100u32 {
        let echoed: u32 = client.request("echo", &i).await.expect("echo");
        assert_eq!(echoed, i);
    }
    while let Some(chunk) = download.chunk().await.expect("chunk") {
        assert_eq!(chunk[0], pattern(received), "at offset {received}");
        received += chunk.len() as u64;
    }
    assert_eq!(received, len);
}

#[tokio::test]
async fn an_upload_streams_to_the_handler_under_flow_control() {
    let mut config = config();
    config.limits.stream_window = 64 * 1024;
    let server = TestServer::start(config).await;
    let client = server.client().await;
    let mut upload = client.upload("upload", &()).await.expect("upload");
    let len: u64 = 8 << 20;
    let piece: u64 = 100_000;
    let mut offset = 0;
    while offset < len {
        let end = (offset + piece).min(len);
        upload
            .send((offset..end).map(pattern).collect())
            .await
            .expect("send");
        offset = end;
    }
    let answer: Len = upload.finish().await.expect("answer");
    assert_eq!(answer.len, len);
}

#[tokio::test]
async fn an_upload_refused_midway_reports_the_servers_error() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let mut upload = client.upload("upload_max_1mib", &()).await.expect("upload");
    let chunk = Bytes::from(vec![0u8; 256 * 1024]);
    let mut refusal = None;
    for _ in 0..64 {
        if let Err(e) = upload.send(chunk.clone()).await {
            refusal = Some(e);
            break;
        }
    }
    let err = match refusal {
        Some(e) => e,
        None => upload.finish::<u64>().await.unwrap_err(),
    };
    assert_eq!(err.code, ErrorCode::TooLarge, "{err}");
    client.ping().await.expect("the connection is still good");
}

#[tokio::test]
async fn an_upload_refused_midway_can_still_be_finished_for_its_answer() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let mut upload = client.upload("upload_max_1mib", &()).await.expect("upload");
    let chunk = Bytes::from(vec![0u8; 256 * 1024]);
    let mut refused = false;
    for _ in 0..64 {
        if upload.send(chunk.clone()).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the server refuses past 1 MiB");
    let err = upload.finish::<u64>().await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge, "{err}");
}

#[tokio::test]
async fn an_upload_answered_early_stops_sending_and_finishes_with_the_answer() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    // `echo` answers at once and never reads the upload.
    let mut upload = client.upload("echo", "done early").await.expect("upload");
    let chunk = Bytes::from(vec![0u8; 256 * 1024]);
    for _ in 0..64 {
        upload
            .send(chunk.clone())
            .await
            .expect("an early success is no error");
    }
    let answer: String = upload.finish().await.expect("the early answer");
    assert_eq!(answer, "done early");
}

/// Reads chunks of request 1 until `bytes` have arrived; fails after a
/// generous bound rather than hang when the sender stalls.
async fn receive_chunks(raw: &mut Raw, bytes: usize) -> bool {
    let mut received = 0;
    let mut last = false;
    let read = async {
        while received < bytes {
            match raw.recv().await {
                Some(Message::Chunk {
                    id: 1,
                    data,
                    last: end,
                }) => {
                    received += data.len();
                    last = end;
                }
                Some(Message::Response { id: 1, .. }) => {}
                other => panic!("expected chunks, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("stalled after {received} of {bytes} bytes"));
    assert_eq!(received, bytes, "the sender overspent its credit");
    last
}

#[tokio::test]
async fn a_download_sends_exactly_what_a_grant_of_any_size_allows() {
    let server = TestServer::start(config()).await;
    let window = config().limits.stream_window as usize;
    let mut raw = Raw::welcomed(server.addr).await;
    let len = 2 * window;
    raw.send(&request(
        1,
        "download",
        body::encode(&Len { len: len as u64 }),
    ))
    .await;
    assert!(!receive_chunks(&mut raw, window).await);
    // Not a multiple of any chunk size the server uses.
    let grant = 300_000;
    raw.send(&Message::Credit {
        id: 1,
        bytes: grant,
    })
    .await;
    assert!(!receive_chunks(&mut raw, grant as usize).await);
    raw.send(&Message::Ping { nonce: 9 }).await;
    assert_eq!(raw.recv().await, Some(Message::Pong { nonce: 9 }));
    raw.send(&Message::Credit {
        id: 1,
        bytes: len as u64,
    })
    .await;
    receive_chunks(&mut raw, len - window - grant as usize).await;
    let end = raw.recv().await;
    assert!(
        matches!(end, Some(Message::Chunk { id: 1, ref data, last: true }) if data.is_empty()),
        "{end:?}"
    );
}

#[tokio::test]
async fn a_chunk_beyond_its_credit_closes_the_connection() {
    let mut config = config();
    config.limits.stream_window = 4096;
    let server = TestServer::start(config).await;
    let mut raw = Raw::welcomed(server.addr).await;
    raw.send(&Message::Request {
        id: 1,
        method: "upload".into(),
        body: body::NIL.clone(),
        stream: true,
    })
    .await;
    raw.send(&Message::Chunk {
        id: 1,
        data: Bytes::from(vec![0u8; 5000]),
        last: false,
    })
    .await;
    raw.expect_refusal(ErrorCode::BadRequest).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_times_out() {
    let mut config = config();
    config.limits.idle_timeout_ms = 30_000;
    let server = TestServer::start(config).await;
    let mut raw = Raw::welcomed(server.addr).await;
    let started = tokio::time::Instant::now();
    match raw.recv().await {
        Some(Message::Goodbye { reason }) => assert!(reason.contains("idle"), "{reason}"),
        other => panic!("expected an idle goodbye, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None);
    assert!(started.elapsed() >= Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_keep_a_quiet_connection_open() {
    let mut config = config();
    config.limits.idle_timeout_ms = 30_000;
    let server = TestServer::start(config).await;
    let client = server.client().await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(client.closed(), None);
    client
        .ping()
        .await
        .expect("still open after ten idle timeouts");
}

#[tokio::test]
async fn an_oversize_frame_is_refused() {
    let mut config = config();
    config.limits.max_frame = 1024;
    let server = TestServer::start(config).await;
    let mut raw = Raw::welcomed(server.addr).await;
    raw.send_bytes(&1025u32.to_be_bytes()).await;
    raw.expect_refusal(ErrorCode::TooLarge).await;

    let mut before_hello = server.raw().await;
    before_hello.send_bytes(&u32::MAX.to_be_bytes()).await;
    before_hello.expect_refusal(ErrorCode::TooLarge).await;
}

#[tokio::test]
async fn a_huge_first_frame_is_refused_at_its_length_prefix_while_others_are_served() {
    let mut config = config();
    // Long enough that a server waiting for the frame's bytes fails the test.
    config.handshake_timeout = Duration::from_secs(60);
    let server = TestServer::start(config).await;
    let mut attackers = Vec::new();
    for _ in 0..10 {
        let mut raw = server.raw().await;
        // A 16 MiB frame announced, its first byte sent, the rest withheld.
        raw.send_bytes(&[0x01, 0x00, 0x00, 0x00, 0x95]).await;
        attackers.push(raw);
    }
    let good = server.client().await;
    for raw in &mut attackers {
        let refused = tokio::time::timeout(Duration::from_secs(10), raw.recv())
            .await
            .expect("refused at the length prefix, not after the frame");
        match refused {
            Some(Message::Error { id: 0, error }) => {
                assert_eq!(error.code, ErrorCode::TooLarge, "{error}");
                assert!(error.message.contains("8192"), "{error}");
            }
            other => panic!("expected a too_large refusal, got {other:?}"),
        }
    }
    let echoed: String = good.request("echo", "unharmed").await.expect("echo");
    assert_eq!(echoed, "unharmed");
    let after: String = server
        .client()
        .await
        .request("echo", &"x".repeat(100_000))
        .await
        .expect("large frames once authenticated");
    assert_eq!(after.len(), 100_000);
}

/// A raw connection from `source`, an address of the loopback network.
async fn raw_from(source: &str, server: SocketAddr) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("address"))
        .expect("bind the source address");
    Raw {
        tcp: socket.connect(server).await.expect("connect"),
        buf: BytesMut::new(),
    }
}

#[tokio::test]
async fn one_address_at_its_cap_does_not_keep_another_out() {
    let mut config = config();
    config.max_connections_per_client = 2;
    let server = TestServer::start(config).await;
    // Two silent connections: the most 127.0.0.1 may hold.
    let first = raw_from("127.0.0.1", server.addr).await;
    let _second = raw_from("127.0.0.1", server.addr).await;
    let mut third = raw_from("127.0.0.1", server.addr).await;
    third.expect_refusal(ErrorCode::Busy).await;

    let mut other = raw_from("127.0.0.2", server.addr).await;
    let answer = other.hello(PROTOCOL_VERSION, "test", None).await;
    assert!(matches!(answer, Message::Welcome(_)), "{answer:?}");

    // A closed connection gives its place back to its address, once the
    // server has seen it close; until then a new one is refused, and the
    // refusal may reach it as a reset, since its Hello went unread.
    drop(first);
    loop {
        let mut again = raw_from("127.0.0.1", server.addr).await;
        again
            .send(&Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                service: "test".into(),
                token: None,
                client: "raw".into(),
            }))
            .await;
        match again.recv().await {
            Some(Message::Welcome(_)) => break,
            Some(Message::Error { error, .. }) if error.code == ErrorCode::Busy => {}
            None => {}
            other => panic!("expected Welcome or busy, got {other:?}"),
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_connection_that_never_says_hello_is_cut_at_the_handshake_deadline() {
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(200);
    let server = TestServer::start(config).await;
    let mut silent = server.raw().await;
    silent.expect_refusal(ErrorCode::Timeout).await;
}

#[tokio::test]
async fn a_client_pointed_at_an_http_server_is_told_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let http = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut hello = [0u8; 16];
        let _ = tcp.read(&mut hello).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    });
    let err = Client::connect(&ClientConfig::new(addr.to_string(), "test"))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::WrongService, "{err}");
    assert!(err.message.contains("looks like an HTTP server"), "{err}");
    http.await.expect("the fake HTTP server");
}

#[tokio::test]
async fn the_client_refuses_a_request_larger_than_the_servers_frame_limit() {
    let mut config = config();
    config.limits.max_frame = 1024;
    let server = TestServer::start(config).await;
    let client = server.client().await;
    let err = client
        .request::<_, String>("echo", &"x".repeat(2000))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooLarge);
    client.ping().await.expect("the connection is still good");
}

#[tokio::test]
async fn garbage_on_one_connection_does_not_disturb_another() {
    let server = TestServer::start(config()).await;
    let good = server.client().await;
    let mut bad = Raw::welcomed(server.addr).await;
    bad.send_bytes(b"\x00\x00\x00\x05GET / HTTP/1.1\r\n\r\n")
        .await;
    bad.expect_refusal(ErrorCode::BadRequest).await;

    let mut http = server.raw().await;
    http.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    http.expect_refusal(ErrorCode::BadRequest).await;

    let echoed: String = good.request("echo", "unharmed").await.expect("echo");
    assert_eq!(echoed, "unharmed");
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let mut server = TestServer::start(config()).await;
    let client = server.client().await;
    let mut sub = client
        .subscribe::<_, u64>("news", &())
        .await
        .expect("subscribe");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.request::<_, String>("gate", &()).await }
    });
    assert_eq!(server.seen.recv().await, Some(Seen::Started("gate".into())));
    let shutdown = server.shutdown.take().expect("running");
    let _ = shutdown.send(());
    // Subscriptions end at once, so the subscriber knows the server is going.
    assert!(sub.next().await.is_none(), "the subscription ends");
    let refused = client.call("echo", body::NIL.clone()).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable, "{refused}");
    server.gate.send_replace(true);
    let answer = in_flight
        .await
        .expect("task")
        .expect("drained, not dropped");
    assert_eq!(answer, "through");
    server.task.await.expect("server task").expect("clean stop");
}

#[tokio::test(start_paused = true)]
async fn shutdown_gives_up_on_requests_after_the_drain_timeout() {
    let mut config = config();
    config.drain_timeout = Duration::from_secs(5);
    let mut server = TestServer::start(config).await;
    let client = server.client().await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.call("forever", body::NIL.clone()).await }
    });
    assert_eq!(
        server.seen.recv().await,
        Some(Seen::Started("forever".into()))
    );
    let started = tokio::time::Instant::now();
    server.stop().await.expect("clean stop");
    assert!(started.elapsed() >= Duration::from_secs(5));
    let err = in_flight.await.expect("task").unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable, "{err}");
}

#[tokio::test]
async fn limits_that_would_wedge_connections_refuse_to_start() {
    let mut config = config();
    config.limits.stream_window = 0;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let err = server::run(listener, config, test_service(0).0, std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Limits(_)), "{err}");
}

#[tokio::test]
async fn builtins_refuse_a_request_id_already_in_flight() {
    let mut server = TestServer::start(config()).await;
    let mut raw = Raw::welcomed(server.addr).await;
    raw.send(&request(1, "gate", body::NIL.clone())).await;
    assert_eq!(server.seen.recv().await, Some(Seen::Started("gate".into())));
    raw.send(&request(1, "ping", body::NIL.clone())).await;
    raw.expect_refusal(ErrorCode::BadRequest).await;
}

#[tokio::test]
async fn a_panicking_handler_fails_only_its_own_request() {
    let server = TestServer::start(config()).await;
    let client = server.client().await;
    let err = client.call("panic", body::NIL.clone()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(err.message.contains("panic handler"), "{err}");
    client.ping().await.expect("the connection is still good");
}

#[tokio::test(start_paused = true)]
async fn shutdown_finishes_even_when_a_peer_never_reads() {
    let mut config = config();
    config.drain_timeout = Duration::from_secs(5);
    let server = TestServer::start(config).await;
    let mut raw = Raw::welcomed(server.addr).await;
    // Sixty-four windows of data: far more than the socket buffers hold.
    for id in 1..=64 {
        let body = body::encode(&Len { len: 1 << 20 });
        raw.send(&request(id, "download", body)).await;
    }
    let started = tokio::time::Instant::now();
    server.stop().await.expect("clean stop");
    assert!(started.elapsed() <= Duration::from_secs(30));
    drop(raw);
}

#[tokio::test(start_paused = true)]
async fn a_client_retries_until_the_server_is_up() {
    // The listener exists but nobody serves it yet: the first attempt's
    // handshake times out, and a later one gets through.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut client_config = ClientConfig::new(addr.to_string(), "test");
    client_config.connect_timeout = Duration::from_secs(1);
    client_config.retries = 5;
    let started = tokio::time::Instant::now();
    let connecting = tokio::spawn(async move { Client::connect(&client_config).await });
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::run(listener, config(), test_service(0).0, async {
        let _ = stopped.await;
    }));
    let client = connecting
        .await
        .expect("task")
        .expect("connected on a retry");
    assert!(started.elapsed() >= Duration::from_secs(1));
    client.ping().await.expect("ping");
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_unavailable_and_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let mut client_config = ClientConfig::new(addr.to_string(), "test");
    client_config.retries = 0;
    let err = Client::connect(&client_config).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains(&addr.to_string()), "{}", err.message);
}

mod tls {
    use super::*;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    fn identity() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let der = cert.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()).into();
        (der, key)
    }

    #[tokio::test]
    async fn the_tls_handshake_works_and_carries_requests() {
        let (cert, key) = identity();
        let mut config = config();
        config.tls = Some(
            backroom_frame::tls::server_config_from_der(vec![cert.clone()], key).expect("tls"),
        );
        let server = TestServer::start(config).await;
        let mut client_config =
            ClientConfig::new(format!("localhost:{}", server.addr.port()), "test");
        client_config.tls =
            Some(backroom_frame::tls::client_config_from_der(vec![cert]).expect("roots"));
        let client = Client::connect(&client_config)
            .await
            .expect("connect over TLS");
        let echoed: String = client.request("echo", "secret").await.expect("echo");
        assert_eq!(echoed, "secret");
    }

    #[tokio::test]
    async fn a_client_that_does_not_trust_the_certificate_is_refused() {
        let (cert, key) = identity();
        let (other_cert, _) = identity();
        let mut config = config();
        config.tls =
            Some(backroom_frame::tls::server_config_from_der(vec![cert], key).expect("tls"));
        let server = TestServer::start(config).await;
        let mut client_config =
            ClientConfig::new(format!("localhost:{}", server.addr.port()), "test");
        client_config.tls =
            Some(backroom_frame::tls::client_config_from_der(vec![other_cert]).expect("roots"));
        let err = Client::connect(&client_config).await.unwrap_err();
        assert!(err.message.contains("TLS"), "{err}");
    }

    #[tokio::test]
    async fn a_plaintext_client_at_a_tls_port_is_told_to_use_tls() {
        let (cert, key) = identity();
        let mut config = config();
        config.tls =
            Some(backroom_frame::tls::server_config_from_der(vec![cert], key).expect("tls"));
        let server = TestServer::start(config).await;
        let err = Client::connect(&server.client_config()).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongService, "{err}");
        assert!(err.message.contains("speaks TLS: set tls_ca"), "{err}");
    }

    #[tokio::test]
    async fn a_tls_client_at_a_plaintext_port_is_told_it_does_not_speak_tls() {
        let (cert, _) = identity();
        let server = TestServer::start(config()).await;
        let mut client_config =
            ClientConfig::new(format!("localhost:{}", server.addr.port()), "test");
        client_config.tls =
            Some(backroom_frame::tls::client_config_from_der(vec![cert]).expect("roots"));
        let err = Client::connect(&client_config).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::WrongService, "{err}");
        assert!(err.message.contains("does not speak TLS"), "{err}");
        let echoed: String = server
            .client()
            .await
            .request("echo", "plaintext")
            .await
            .expect("the port serves plaintext clients on");
        assert_eq!(echoed, "plaintext");
    }
}
