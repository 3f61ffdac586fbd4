//! Test helpers: a proxy on loopback, origins started inside the test, and a
//! raw HTTP client for the bytes that real clients refuse to send.

#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backroom_frame::client::ClientConfig;
use backroom_frame::server::ServerConfig;
use backroom_proxy::config::Config;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type OriginBody = BoxBody<Bytes, Infallible>;

/// A running proxy; dropping `stop` (or sending on it) shuts it down.
pub struct Proxy {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), backroom_proxy::StartError>>,
}

impl Proxy {
    pub fn admin_config(&self) -> ClientConfig {
        ClientConfig::new(self.admin.to_string(), "proxy")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Begins shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the proxy stops within its drain deadline")
            .expect("the proxy task does not panic");
        result.expect("run returns Ok");
    }
}

/// A config for tests: loopback origins allowed, short timeouts.
pub fn config() -> Config {
    let mut config = Config::new(ServerConfig::new("proxy", "test"));
    config.proxy.allow_loopback = true;
    config.proxy.timeouts.response_header = 5.0;
    config.proxy.timeouts.connect = 5.0;
    config.proxy.timeouts.drain = 2.0;
    config
}

pub async fn start(config: Config) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = listener.local_addr().expect("addr");
    let admin_addr = admin.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(backroom_proxy::run(listener, admin, config, async move {
        let _ = stopped.await;
    }));
    Proxy {
        addr,
        admin: admin_addr,
        stop: Some(stop),
        task,
    }
}

/// An origin server on loopback; counts the TCP connections it accepted.
pub struct Origin {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn accepted(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

pub async fn origin<F, Fut>(handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<OriginBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Origin { addr, connections }
}

/// An origin on raw TCP that answers each request head (bodies are not
/// read) with `answer`, byte for byte: for answers that a real server
/// library would refuse to send.
pub async fn scripted_origin(answer: &'static [u8]) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    while let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                        received.drain(..end + 4);
                        if tcp.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => received.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    Origin { addr, connections }
}

pub fn text(body: impl Into<Bytes>) -> Response<OriginBody> {
    Response::new(Full::new(body.into()).boxed())
}

/// An origin that answers every request with `hello`.
pub async fn hello_origin() -> Origin {
    origin(|_req| async { text("hello") }).await
}

/// Sends raw bytes and reads the answer until the proxy closes or `limit`
/// passes; returns what was read and whether the connection was closed.
pub async fn raw(proxy: SocketAddr, request: &[u8], limit: Duration) -> (String, bool) {
    let mut tcp = TcpStream::connect(proxy).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    read_until_close(&mut tcp, limit).await
}

pub async fn read_until_close(tcp: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

/// Reads until `needle` appears; panics after ten seconds.
pub async fn read_until(tcp: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if String::from_utf8_lossy(&out).contains(needle) {
            return String::from_utf8_lossy(&out).into_owned();
        }
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} within 10 s; got {:?}",
                    String::from_utf8_lossy(&out)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}; got {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
    }
}

/// The status code of a raw HTTP response.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// Runs curl with `args` and returns (exit ok, stdout, stderr).
pub async fn curl(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
