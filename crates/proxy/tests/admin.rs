//! The admin port: stats, the live log, tunnels, reload, bad calls, and
//! graceful shutdown.

mod common;

use std::time::Duration;

use backroom_api::proxy::{ProxyClient, method, vital};
use backroom_frame::ErrorCode;
use backroom_frame::client::Client;
use backroom_proxy::accesslog::LogFormat;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn admin(proxy: &Proxy) -> ProxyClient {
    ProxyClient::connect(&proxy.admin_config())
        .await
        .expect("admin connects")
}

/// A TCP server on loopback that echoes what it reads, for tunnels.
async fn echo_server() -> std::net::SocketAddr {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = echo.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn stats_count_requests_by_class_and_host() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let admin = admin(&proxy).await;
    let mut log = admin.log().await.expect("subscribe");
    for _ in 0..2 {
        let (ok, _, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
        assert!(ok, "{err}");
    }
    let (ok, _, err) = curl(&["-x", &proxy.url(), "http://no-such-host.invalid/"]).await;
    assert!(ok, "{err}");
    // The log feed tells us the three records exist before we read stats.
    let mut sent = 0;
    for _ in 0..3 {
        sent += log
            .next()
            .await
            .expect("record")
            .expect("decodes")
            .bytes_out;
    }
    let stats = admin.stats().await.expect("stats");
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.by_status.success, 2);
    assert_eq!(stats.by_status.server_error, 1);
    // Two "hello"s and the proxy's own 502 page.
    assert!(sent > 10);
    assert_eq!(stats.bytes_out, sent);
    assert_eq!(stats.top_hosts[0].host, "127.0.0.1");
    assert_eq!(stats.top_hosts[0].requests, 2);
    assert!(stats.rate_60s > 0.0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn info_shows_the_request_rate_the_5xx_share_and_open_tunnels() {
    let origin = hello_origin().await;
    let echo_addr = echo_server().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![echo_addr.port()];
    let proxy = start(cfg).await;
    let admin = admin(&proxy).await;
    let calm = admin.client().info().await.expect("info");
    let share = calm.vital(vital::SERVER_ERRORS).expect("5xx");
    assert_eq!((share.value, share.alert), (0.0, false));
    let mut log = admin.log().await.expect("subscribe");
    // Kept open after its answer: an idle keep-alive connection.
    let mut kept = TcpStream::connect(proxy.addr).await.expect("connect");
    let get = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    kept.write_all(get.as_bytes()).await.expect("write");
    let head = read_until(&mut kept, "hello").await;
    assert_eq!(status_of(&head), 200, "{head}");
    let (ok, _, err) = curl(&["-x", &proxy.url(), "http://no-such-host.invalid/"]).await;
    assert!(ok, "{err}");
    for _ in 0..2 {
        log.next().await.expect("record").expect("decodes");
    }
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", echo_addr);
    tcp.write_all(request.as_bytes()).await.expect("write");
    read_until(&mut tcp, "\r\n\r\n").await;
    tcp.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    tcp.read_exact(&mut echoed).await.expect("echo");

    let info = admin.client().info().await.expect("info");
    let value = |name: &str| info.vital(name).expect(name).value;
    assert!(
        (value(vital::REQUESTS) - 0.2).abs() < 1e-9,
        "two requests over 10 s"
    );
    let share = info.vital(vital::SERVER_ERRORS).expect("5xx");
    assert!((share.value - 50.0).abs() < 1e-9, "{}", share.value);
    assert!(share.alert, "one answer in two was a 502");
    assert_eq!(value(vital::TUNNELS), 1.0);
    // The keep-alive one at least; curl's may still be closing.
    assert!(value(vital::CONNECTIONS) >= 1.0);
    drop((tcp, kept));
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_log_feed_shows_each_request_as_it_ends() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let admin = admin(&proxy).await;
    let mut log = admin.log().await.expect("subscribe");
    let (ok, _, err) = curl(&[
        "-x",
        &proxy.url(),
        "-A",
        "test-agent",
        "-d",
        "abc",
        &origin.url("/p?q=1"),
    ])
    .await;
    assert!(ok, "{err}");
    let record = log.next().await.expect("record").expect("decodes");
    assert_eq!(record.method, "POST");
    assert_eq!(record.target, origin.url("/p?q=1"));
    assert_eq!(record.status, 200);
    assert_eq!(record.client, "127.0.0.1");
    assert_eq!(record.user, "-");
    assert_eq!((record.bytes_in, record.bytes_out), (3, 5));
    assert_eq!(record.upstream, origin.addr.to_string());
    assert_eq!(record.user_agent, "test-agent");
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_access_log_file_gets_one_line_per_request() {
    let origin = hello_origin().await;
    let dir = std::env::temp_dir().join(format!("backroom-proxy-alog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("access.log");
    let mut cfg = config();
    cfg.proxy.access_log = path.display().to_string();
    cfg.proxy.log_format = LogFormat::Common;
    let proxy = start(cfg).await;
    let (ok, _, err) = curl(&["-x", &proxy.url(), &origin.url("/a")]).await;
    assert!(ok, "{err}");
    // Shutdown drops the log, whose thread flushes and ends.
    proxy.shutdown().await;
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let line = text.lines().next().expect("one line");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains(&format!("\"GET {} HTTP/1.1\" 200 5", origin.url("/a"))),
        "{line}"
    );
}

#[tokio::test]
async fn tunnels_are_listed_and_can_be_closed() {
    let echo_addr = echo_server().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![echo_addr.port()];
    let proxy = start(cfg).await;
    let admin = admin(&proxy).await;
    let mut log = admin.log().await.expect("subscribe");
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", echo_addr);
    tcp.write_all(request.as_bytes()).await.expect("write");
    let head = read_until(&mut tcp, "\r\n\r\n").await;
    assert_eq!(status_of(&head), 200, "{head}");
    tcp.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    tcp.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"ping");

    let tunnels = admin.tunnels().await.expect("tunnels");
    assert_eq!(tunnels.len(), 1);
    assert_eq!(tunnels[0].target, echo_addr.to_string());
    assert_eq!((tunnels[0].bytes_in, tunnels[0].bytes_out), (4, 4));
    assert_eq!(admin.stats().await.expect("stats").active_tunnels, 1);

    let missing = admin
        .close_tunnel(tunnels[0].id + 100)
        .await
        .expect_err("no such tunnel");
    assert_eq!(missing.code, ErrorCode::NotFound);
    admin.close_tunnel(tunnels[0].id).await.expect("closes");
    let (_, closed) = read_until_close(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "the client side of the tunnel is closed");
    let record = log.next().await.expect("record").expect("decodes");
    assert_eq!(record.method, "CONNECT");
    assert_eq!((record.bytes_in, record.bytes_out), (4, 4));
    assert!(admin.tunnels().await.expect("tunnels").is_empty());
    proxy.shutdown().await;
}

#[tokio::test]
async fn reload_swaps_the_acl_without_dropping_connections() {
    let origin = hello_origin().await;
    let dir = std::env::temp_dir().join(format!("backroom-proxy-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, "[acl]\ndefault = \"allow\"\n").expect("write");
    let mut cfg = config();
    cfg.config_path = Some(path.clone());
    let proxy = start(cfg).await;
    let admin = admin(&proxy).await;

    // A keep-alive client connection that must survive the reload.
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let get = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    tcp.write_all(get.as_bytes()).await.expect("write");
    read_until(&mut tcp, "hello").await;

    let rules = "[acl]\ndefault = \"allow\"\n[[acl.rules]]\nname = \"locked\"\naction = \"deny\"\nhosts = [\"127.0.0.1\"]\n";
    std::fs::write(&path, rules).expect("write");
    let reloaded = admin.reload().await.expect("reload");
    assert_eq!(reloaded.rules, 1);

    tcp.write_all(get.as_bytes())
        .await
        .expect("same connection");
    let answer = read_until(&mut tcp, "locked").await;
    assert_eq!(status_of(&answer), 403, "{answer}");

    std::fs::write(&path, "[acl]\ndefault = \"maybe\"\n").expect("write");
    let refused = admin.reload().await.expect_err("bad file");
    assert_eq!(refused.code, ErrorCode::BadRequest);
    assert!(
        refused.message.contains("old policy stays"),
        "{}",
        refused.message
    );
    let _ = std::fs::remove_dir_all(&dir);
    proxy.shutdown().await;
}

#[tokio::test]
async fn reload_without_a_config_file_is_a_bad_request() {
    let proxy = start(config()).await;
    let error = admin(&proxy).await.reload().await.expect_err("no file");
    assert_eq!(error.code, ErrorCode::BadRequest);
    proxy.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_and_bad_arguments_get_typed_errors() {
    let proxy = start(config()).await;
    let client = Client::connect(&proxy.admin_config())
        .await
        .expect("connect");
    let unknown = client
        .request::<_, ()>("explode", &())
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code, ErrorCode::UnknownMethod);
    let extra = client
        .request::<_, ()>(method::STATS, &("surprise", 1))
        .await
        .expect_err("extra args");
    assert_eq!(extra.code, ErrorCode::BadRequest);
    let bad_id = client
        .request::<_, ()>(method::CLOSE_TUNNEL, &"seven")
        .await
        .expect_err("bad id");
    assert_eq!(bad_id.code, ErrorCode::BadRequest);
    let huge = client
        .request::<_, ()>(
            method::CLOSE_TUNNEL,
            &backroom_api::proxy::CloseTunnel { id: u64::MAX },
        )
        .await
        .expect_err("huge id");
    assert_eq!(huge.code, ErrorCode::NotFound);
    // The connection still works after every refusal.
    ProxyClient::from_client(client)
        .stats()
        .await
        .expect("stats");
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_a_request_in_flight() {
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let (arrived_tx, arrived_rx) = tokio::sync::oneshot::channel::<()>();
    let gates = std::sync::Arc::new(std::sync::Mutex::new(Some((arrived_tx, release_rx))));
    let origin = origin(move |_req| {
        let gates = gates.clone();
        async move {
            let taken = gates.lock().expect("lock").take();
            if let Some((arrived, release)) = taken {
                let _ = arrived.send(());
                let _ = release.await;
            }
            text("late but whole")
        }
    })
    .await;
    let proxy = start(config()).await;
    let url = proxy.url();
    let target = origin.url("/slow");
    let request = tokio::spawn(async move { curl(&["-x", &url, &target]).await });
    arrived_rx.await.expect("the request reached the origin");
    let mut proxy = proxy;
    let _ = proxy.stop.take().expect("stop").send(());
    let _ = release_tx.send(());
    let (ok, body, err) = request.await.expect("curl task");
    assert!(ok, "{err}");
    assert_eq!(body, "late but whole");
    proxy.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_tunnels_at_the_deadline() {
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = sink.accept().await {
            held.push(tcp);
        }
    });
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![sink_addr.port()];
    cfg.proxy.timeouts.drain = 0.5;
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", sink_addr);
    tcp.write_all(request.as_bytes()).await.expect("write");
    read_until(&mut tcp, "\r\n\r\n").await;
    let started = std::time::Instant::now();
    proxy.shutdown().await;
    let (_, closed) = read_until_close(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_open_admin_port_beyond_loopback_is_refused_at_start() {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let result = backroom_proxy::run(proxy, admin, config(), std::future::pending()).await;
    let error = result.expect_err("refused");
    assert!(error.to_string().contains("without auth"), "{error}");
}
