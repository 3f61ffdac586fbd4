//! The Proxy tab against the real proxy, started in-process on loopback: a
//! request sent through the proxy shows in the live access log and in the
//! statistics.

use std::net::SocketAddr;

use backroom_dash::app::{App, Clock};
use backroom_dash::driver;
use backroom_dash::server::Server;
use backroom_frame::server::ServerConfig;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod common;
use common::{key, only, timing, until};

struct Proxy {
    http: SocketAddr,
    admin: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let mut config = backroom_proxy::config::Config::new(ServerConfig::new("proxy", "0.0.9"));
        config.proxy.allow_loopback = true;
        config.proxy.timeouts.connect = 5.0;
        config.proxy.timeouts.drain = 2.0;
        let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (http_addr, admin_addr) = (
            http.local_addr().expect("addr"),
            admin.local_addr().expect("addr"),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            backroom_proxy::run(http, admin, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("the proxy runs");
        });
        Proxy {
            http: http_addr,
            admin: admin_addr,
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("proxy task");
    }
}

/// Sends one request through the proxy to a loopback port where nothing
/// listens, which the proxy answers with 502, and reads the answer.
async fn request_through(proxy: SocketAddr) -> String {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = closed.local_addr().expect("addr");
    drop(closed);
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    let request = format!(
        "GET http://{target}/dashboard-test HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    answer
}

#[tokio::test]
async fn the_proxy_tab_shows_a_request_in_the_log_and_the_stats() {
    let proxy = Proxy::start().await;
    let endpoints = only(Server::Proxy, proxy.admin);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('5'));
    until(&mut app, &mut updates, |app| {
        app.proxy.connected && app.proxy.stats.is_some()
    })
    .await;
    assert!(app.proxy.records.is_empty());

    let answer = request_through(proxy.http).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    until(&mut app, &mut updates, |app| {
        let logged = app
            .proxy
            .records
            .iter()
            .any(|r| r.target.ends_with("/dashboard-test"));
        let counted = app
            .proxy
            .stats
            .as_ref()
            .is_some_and(|s| s.by_status.server_error == 1);
        logged && counted && app.server(Server::Proxy).latency.is_some()
    })
    .await;

    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(&app, frame.area()))
        .expect("draw");
    let text = format!("{}", terminal.backend());
    assert!(text.contains("502 GET"), "{text}");
    assert!(text.contains("/dashboard-test"), "{text}");
    insta::with_settings!({filters => vec![
        // The request rate, the open connections and the byte counts move
        // with the timing of polls.
        (r"Requests/s [\d.]+", "Requests/s [rate]"),
        (r"1s [\d.]+ · 60s [\d.]+", "1s [rate] · 60s [rate]"),
        (r"conns +\d+", "conns [n]"),
        (r"\d\d:\d\d:\d\d", "[time]"),
        (r"\d+(\.\d+)?(ms|s)\b", "[dur]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"[▁▂▃▄▅▆▇█]", " "),
        (r"\d+(\.\d)? (B|kB)", "[bytes]"),
        (r" {2,}", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });

    drop(connections);
    proxy.stop().await;
}
