//! Access control, proxy auth, limits and hostile clients: every refusal is
//! a clean answer, and the proxy keeps serving everyone else.

mod common;

use std::time::Duration;

use backroom_daemon::testing::connect_from;
use backroom_proxy::acl::{AclConfig, Action, RuleConfig};
use backroom_proxy::auth::{AuthConfig, UserConfig, hash_password_with};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

/// A client that keeps working while others misbehave.
async fn still_serves(proxy: &Proxy, origin: &Origin) {
    let (ok, body, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
}

#[tokio::test]
async fn a_denied_destination_gets_403_naming_the_rule() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.acl = AclConfig {
        rules: vec![RuleConfig {
            name: Some("no-posts-here".into()),
            action: Action::Deny,
            hosts: vec!["127.0.0.1".into()],
            ports: vec![origin.addr.port()],
            methods: vec!["POST".into()],
        }],
        ..AclConfig::default()
    };
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "-d",
        "x",
        &origin.url("/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("no-posts-here"), "{body}");
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_default_policy_applies_when_no_rule_matches() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.acl = AclConfig {
        default: Action::Deny,
        rules: vec![RuleConfig {
            name: Some("only-example".into()),
            action: Action::Allow,
            hosts: vec!["*.example.test".into()],
            ports: vec![],
            methods: vec![],
        }],
        ..AclConfig::default()
    };
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-w", "%{http_code}", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("default policy is deny"), "{body}");
    assert_eq!(origin.accepted(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn loopback_destinations_are_refused_without_allow_loopback() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.allow_loopback = false;
    cfg.proxy.connect_ports = vec![origin.addr.port()];
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-w", "%{http_code}", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("loopback"), "{body}");
    // "localhost" resolves to loopback, and is caught after resolution.
    let by_name = format!("http://localhost:{}/", origin.addr.port());
    let (_, body, _) = curl(&["-x", &proxy.url(), "-w", "%{http_code}", &by_name]).await;
    assert!(body.ends_with("403"), "{body}");
    let tunnel = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr);
    let (response, _) = raw(proxy.addr, tunnel.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(status_of(&response), 403, "{response}");
    let metadata = "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n";
    let (response, _) = raw(proxy.addr, metadata.as_bytes(), LIMIT).await;
    assert_eq!(status_of(&response), 403, "{response}");
    assert!(response.contains("link-local"), "{response}");
    assert_eq!(origin.accepted(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_outside_client_allow_is_refused() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.acl = AclConfig {
        client_allow: vec!["10.0.0.0/8".into()],
        ..AclConfig::default()
    };
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-w", "%{http_code}", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("client_allow"), "{body}");
    proxy.shutdown().await;
}

fn auth_config() -> AuthConfig {
    AuthConfig {
        realm: Some("office".into()),
        users: vec![UserConfig {
            name: "ann".into(),
            password_hash: hash_password_with("s3cret", b"test-salt-bytes!", 64, 1).expect("hash"),
        }],
    }
}

#[tokio::test]
async fn auth_gives_407_then_200_with_credentials() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.auth = auth_config();
    let proxy = start(cfg).await;
    let (ok, head, err) = curl(&["-x", &proxy.url(), "-i", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(status_of(&head), 407, "{head}");
    assert!(head.contains("Basic realm=\"office\""), "{head}");
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-U", "ann:s3cret", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    let (ok, head, err) = curl(&[
        "-x",
        &proxy.url(),
        "-i",
        "-U",
        "ann:wrong",
        &origin.url("/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(status_of(&head), 407, "{head}");
    assert_eq!(origin.accepted(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn credentials_are_not_forwarded_to_the_origin() {
    let origin = origin(|req| async move {
        text(if req.headers().contains_key("proxy-authorization") {
            "leaked"
        } else {
            "clean"
        })
    })
    .await;
    let mut cfg = config();
    cfg.proxy.auth = auth_config();
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-U", "ann:s3cret", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "clean");
    proxy.shutdown().await;
}

/// Sends a hostile request and returns (status, closed).
async fn attempt(proxy: &Proxy, request: &str) -> (u16, bool, String) {
    let (response, closed) = raw(proxy.addr, request.as_bytes(), LIMIT).await;
    (status_of(&response), closed, response)
}

#[tokio::test]
async fn conflicting_content_lengths_get_400_and_a_closed_connection() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        origin.url("/")
    );
    let (status, closed, response) = attempt(&proxy, &request).await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    assert_eq!(origin.accepted(), 0);
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let origin = origin(|req| async move { text(req.uri().path().to_owned()) }).await;
    let proxy = start(config()).await;
    // The classic CL.TE attack: a front end that trusted Content-Length
    // would pass "GET /smuggled" on as a second request.
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET {} HTTP/1.1\r\nHost: x\r\n\r\n",
        origin.url("/first"),
        origin.url("/smuggled")
    );
    let (response, closed) = raw(proxy.addr, request.as_bytes(), LIMIT).await;
    assert!(
        closed,
        "the connection is closed after a request framed two ways"
    );
    // hyper reads such a request by Transfer-Encoding alone, drops the
    // Content-Length and closes after answering (RFC 9112 §6.1), and the
    // proxy re-frames the body upstream: the smuggled request goes nowhere.
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(response.contains("/first"), "{response}");
    assert!(!response.contains("/smuggled"), "{response}");
    assert_eq!(origin.accepted(), 1);
    let hello = hello_origin().await;
    still_serves(&proxy, &hello).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_bad_chunk_size_gets_400_and_a_closed_connection() {
    let origin = origin(|req| async move {
        use http_body_util::BodyExt;
        match req.into_body().collect().await {
            Ok(_) => text("complete"),
            Err(_) => text("broken"),
        }
    })
    .await;
    let proxy = start(config()).await;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        origin.url("/")
    );
    let (status, closed, response) = attempt(&proxy, &request).await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    let huge = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        origin.url("/")
    );
    let (status, closed, response) = attempt(&proxy, &huge).await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    let hello = hello_origin().await;
    still_serves(&proxy, &hello).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn obs_fold_and_garbage_get_400() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let folded = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n  folded\r\n\r\n",
        origin.url("/")
    );
    let (status, closed, response) = attempt(&proxy, &folded).await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    let (status, closed, response) = attempt(&proxy, "\x16\x03\x01garbage\r\n\r\n").await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    let te = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        origin.url("/")
    );
    let (status, closed, response) = attempt(&proxy, &te).await;
    assert_eq!(status, 400, "{response}");
    assert!(closed);
    assert_eq!(origin.accepted(), 0);
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn too_many_or_too_large_headers_get_431() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.max_headers = 20;
    cfg.proxy.max_header_bytes = 4096;
    let proxy = start(cfg).await;
    let mut many = format!("GET {} HTTP/1.1\r\nHost: x\r\n", origin.url("/"));
    for i in 0..30 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (status, closed, response) = attempt(&proxy, &many).await;
    assert_eq!(status, 431, "{response}");
    assert!(closed);
    let big = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        origin.url("/"),
        "a".repeat(8000)
    );
    let (status, closed, response) = attempt(&proxy, &big).await;
    assert_eq!(status, 431, "{response}");
    assert!(closed);
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.timeouts.client_header = 0.5;
    let proxy = start(cfg).await;
    let mut slow = TcpStream::connect(proxy.addr).await.expect("connect");
    slow.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: x\r\nX-A: ")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut slow, LIMIT).await;
    assert!(closed, "the slow client is disconnected");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn client_connections_are_capped() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.max_client_connections = 1;
    let proxy = start(cfg).await;
    let mut holder = TcpStream::connect(proxy.addr).await.expect("connect");
    let first = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    holder.write_all(first.as_bytes()).await.expect("write");
    read_until(&mut holder, "hello").await;
    // The one slot is taken: a second client waits in the backlog.
    let waiting = tokio::spawn({
        let url = proxy.url();
        let target = origin.url("/");
        async move { curl(&["-x", &url, &target]).await }
    });
    let mut waiting = waiting;
    let blocked = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(
        blocked.is_err(),
        "the second client was served while the slot was taken"
    );
    drop(holder);
    let (ok, body, err) = waiting.await.expect("curl task");
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    let origin = origin(|req| async move {
        use http_body_util::BodyExt;
        let _ = req.into_body().collect().await;
        text("done")
    })
    .await;
    let mut cfg = config();
    cfg.proxy.timeouts.client_body = 0.6;
    // Shorter than client_body: it starts only once the body is complete,
    // so it never turns the client's silence into a 504.
    cfg.proxy.timeouts.response_header = 0.2;
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part",
        origin.url("/")
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let (response, closed) = read_until_close(&mut tcp, LIMIT).await;
    assert_eq!(status_of(&response), 408, "{response}");
    assert!(closed);
    proxy.shutdown().await;
}

#[tokio::test]
async fn bytes_behind_a_refused_connect_are_never_read_as_a_request() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.allow_loopback = false;
    let proxy = start(cfg).await;
    let smuggled = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    // A port CONNECT may not reach (403), and an allowed port on a
    // destination the address policy refuses (403 from the dialer).
    for target in ["127.0.0.1:25", "127.0.0.1:443"] {
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n{smuggled}");
        let (response, closed) = raw(proxy.addr, request.as_bytes(), LIMIT).await;
        assert_eq!(status_of(&response), 403, "{response}");
        assert!(closed, "the connection is closed after a refused CONNECT");
        assert_eq!(response.matches("HTTP/1.1").count(), 1, "{response}");
    }
    // An unreachable destination (502).
    let closed_port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![closed_port];
    let open = start(cfg).await;
    let target = format!("127.0.0.1:{closed_port}");
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n{smuggled}");
    let (response, closed) = raw(open.addr, request.as_bytes(), LIMIT).await;
    assert_eq!(status_of(&response), 502, "{response}");
    assert!(closed, "the connection is closed after a failed CONNECT");
    assert_eq!(response.matches("HTTP/1.1").count(), 1, "{response}");
    assert_eq!(origin.accepted(), 0);
    still_serves(&open, &origin).await;
    open.shutdown().await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn plain_http_to_a_port_outside_safe_ports_is_refused() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    // Port 25 is SMTP: by default (squid's Safe_ports) plain HTTP never goes
    // there, while the high ports of loopback origins stay allowed.
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "http://127.0.0.1:25/",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("port 25 is not a safe port"), "{body}");
    assert!(body.contains("1025-65535"), "{body}");
    still_serves(&proxy, &origin).await;
    proxy.shutdown().await;

    let mut cfg = config();
    cfg.proxy.safe_ports = vec![backroom_proxy::acl::PortRange::single(80)];
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-w", "%{http_code}", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
    assert!(body.contains("safe ports: 80\n"), "{body}");
    assert_eq!(
        origin.accepted(),
        1,
        "only the first proxy reached the origin"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn one_address_over_its_connection_cap_gets_429_while_others_are_served() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.max_connections_per_client = 2;
    let proxy = start(cfg).await;
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    // Two kept-alive connections from 127.0.0.1, each served once, so both
    // are surely counted.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from("127.0.0.1", &proxy.addr.to_string()).await;
        tcp.write_all(request.as_bytes()).await.expect("write");
        read_until(&mut tcp, "hello").await;
        holders.push(tcp);
    }
    let mut third = connect_from("127.0.0.1", &proxy.addr.to_string()).await;
    third.write_all(request.as_bytes()).await.expect("write");
    let (response, closed) = read_until_close(&mut third, LIMIT).await;
    assert_eq!(status_of(&response), 429, "{response}");
    assert!(
        response.contains("max_connections_per_client"),
        "{response}"
    );
    assert!(closed);
    // Another address is served while 127.0.0.1 holds its cap.
    let mut other = connect_from("127.0.0.2", &proxy.addr.to_string()).await;
    other.write_all(request.as_bytes()).await.expect("write");
    read_until(&mut other, "hello").await;
    drop(holders);
    proxy.shutdown().await;
}
