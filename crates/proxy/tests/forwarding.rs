//! Forwarding through the proxy with real clients (curl) and raw sockets:
//! methods, bodies, CONNECT, upgrades, streaming, headers and errors.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn curl_gets_through_the_proxy() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    proxy.shutdown().await;
}

#[tokio::test]
async fn curl_posts_a_body_through_the_proxy() {
    let origin = origin(|req| async move {
        let method = req.method().to_string();
        let body = req.into_body().collect().await.expect("body").to_bytes();
        text(format!("{method} {}", String::from_utf8_lossy(&body)))
    })
    .await;
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-d",
        "name=ann&x=1",
        &origin.url("/form"),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(body, "POST name=ann&x=1");
    for method in ["PUT", "DELETE", "PATCH", "PURGE"] {
        let (ok, body, err) = curl(&[
            "-x",
            &proxy.url(),
            "-X",
            method,
            "-d",
            "b",
            &origin.url("/"),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(body, format!("{method} b"));
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn head_requests_get_headers_without_a_body() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let (ok, head, err) = curl(&["-x", &proxy.url(), "-I", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 5"),
        "{head}"
    );
    assert!(!head.contains("hello"), "{head}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_large_upload_streams_through_with_chunked_framing() {
    let origin = origin(|req| async move {
        let body = req.into_body().collect().await.expect("body").to_bytes();
        text(body.len().to_string())
    })
    .await;
    let proxy = start(config()).await;
    let dir = std::env::temp_dir().join(format!("backroom-proxy-upload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("big");
    std::fs::write(&file, vec![b'x'; 3 * 1024 * 1024]).expect("write");
    let data = format!("@{}", file.display());
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &origin.url("/up"),
    ])
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{err}");
    assert_eq!(body, (3 * 1024 * 1024).to_string());
    proxy.shutdown().await;
}

#[tokio::test]
async fn curl_tunnels_through_connect_to_an_allowed_port() {
    let origin = hello_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.addr.port()];
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-p", "-x", &proxy.url(), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    proxy.shutdown().await;
}

/// An origin that echoes every byte of each connection until the client
/// stops sending, then closes.
async fn echo_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = tcp.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_tunnel_carries_early_bytes_then_megabytes_both_ways_and_the_end_of_stream() {
    let origin = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![origin.port()];
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    // The first tunnel bytes ride in the same write as the request head, so
    // hyper reads them before the tunnel opens.
    let request = format!("CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\nearly:");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("the response head"));
    }
    assert_eq!(status_of(&String::from_utf8_lossy(&head)), 200);
    let payload: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let (mut read, mut write) = tcp.into_split();
    let send = async {
        write.write_all(&payload).await.expect("send");
        write.shutdown().await.expect("half-close");
    };
    let receive = async {
        let mut echoed = Vec::new();
        tokio::time::timeout(LIMIT, read.read_to_end(&mut echoed))
            .await
            .expect("the origin's end of stream reaches the client")
            .expect("receive");
        echoed
    };
    let ((), echoed) = tokio::join!(send, receive);
    assert_eq!(&echoed[..6], b"early:");
    assert!(echoed[6..] == payload[..], "the payload came back changed");
    proxy.shutdown().await;
}

#[tokio::test]
async fn connect_to_a_port_not_allowed_is_refused() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let request = format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", origin.addr);
    let (response, _) = raw(proxy.addr, request.as_bytes(), Duration::from_millis(500)).await;
    assert_eq!(status_of(&response), 403, "{response}");
    assert!(response.contains("allowed ports: 443"), "{response}");
    assert_eq!(origin.accepted(), 0);
    proxy.shutdown().await;
}

/// An origin that accepts a WebSocket upgrade and echoes every byte.
async fn echo_upgrade_origin() -> Origin {
    origin(|mut req| async move {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut response =
            Response::new(http_body_util::Empty::new().map_err(|n| match n {}).boxed());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert("connection", "Upgrade".parse().expect("value"));
        headers.insert("upgrade", "websocket".parse().expect("value"));
        headers.insert(
            "sec-websocket-accept",
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".parse().expect("value"),
        );
        response
    })
    .await
}

#[tokio::test]
async fn a_websocket_echo_works_through_the_proxy() {
    let origin = echo_upgrade_origin().await;
    let proxy = start(config()).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        origin.url("/chat"),
        origin.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    let head = read_until(&mut tcp, "\r\n\r\n").await;
    assert_eq!(status_of(&head), 101, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // A masked text frame "hi", as a browser would send it.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    tcp.write_all(&frame).await.expect("write frame");
    let mut echoed = [0u8; 8];
    tokio::time::timeout(LIMIT, tcp.read_exact(&mut echoed))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(echoed, frame);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_sse_event_arrives_before_the_stream_ends() {
    let (release_tx, release_rx) = mpsc::channel::<()>(1);
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let origin = origin(move |_req| {
        let release_rx = release_rx.clone();
        async move {
            let mut release = release_rx.lock().await.take().expect("one stream");
            let first = futures_util::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from("data: one\n\n")))
            });
            let tail = futures_util::stream::once(async move {
                let _ = release.recv().await;
                Ok::<_, Infallible>(Frame::data(Bytes::from("data: two\n\n")))
            });
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(first.chain(tail))));
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().expect("value"));
            response
        }
    })
    .await;
    let proxy = start(config()).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
        origin.url("/events"),
        origin.addr
    );
    tcp.write_all(request.as_bytes()).await.expect("write");
    // The origin holds the rest of the stream until we release it, so the
    // first event can only arrive if the proxy forwards it live.
    let first = read_until(&mut tcp, "data: one").await;
    assert!(!first.contains("data: two"));
    release_tx.send(()).await.expect("release");
    read_until(&mut tcp, "data: two").await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_via_is_added() {
    let origin = origin(|req| async move {
        let mut seen: Vec<String> = req
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
            .collect();
        seen.sort();
        let mut response = text(seen.join("\n"));
        let headers = response.headers_mut();
        headers.insert("connection", "x-origin-hop".parse().expect("value"));
        headers.insert("x-origin-hop", "1".parse().expect("value"));
        headers.insert("keep-alive", "timeout=5".parse().expect("value"));
        headers.insert("proxy-authenticate", "Basic".parse().expect("value"));
        headers.insert("x-end-to-end", "kept".parse().expect("value"));
        response
    })
    .await;
    let proxy = start(config()).await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive, X-Client-Hop\r\nX-Client-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: x-sum\r\n\
         Upgrade: h2c\r\nX-Kept: yes\r\nConnection: close\r\n\r\n",
        origin.url("/"),
        origin.addr
    );
    let (response, _) = raw(proxy.addr, request.as_bytes(), LIMIT).await;
    let lower = response.to_ascii_lowercase();
    let (head, body) = lower.split_once("\r\n\r\n").expect("head and body");
    for gone in [
        "x-client-hop",
        "keep-alive",
        "proxy-connection",
        "te:",
        "trailer",
        "upgrade",
    ] {
        assert!(!body.contains(gone), "{gone} reached the origin:\n{body}");
    }
    assert!(body.contains("x-kept: yes"), "{body}");
    assert!(body.contains("via: 1.1 backroom-proxy"), "{body}");
    assert!(body.contains(&format!("host: {}", origin.addr)), "{body}");
    for gone in ["x-origin-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!head.contains(gone), "{gone} reached the client:\n{head}");
    }
    assert!(head.contains("x-end-to-end: kept"), "{head}");
    assert!(head.contains("via: 1.1 backroom-proxy"), "{head}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn forwarded_headers_are_added_when_asked() {
    let origin = origin(|req| async move {
        let get = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        text(format!("{} | {}", get("forwarded"), get("x-forwarded-for")))
    })
    .await;
    let mut cfg = config();
    cfg.proxy.forwarded = backroom_proxy::headers::ForwardedHeaders::Both;
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "for=127.0.0.1 | 127.0.0.1");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_origin_form_request_gets_a_helpful_400() {
    let proxy = start(config()).await;
    let (response, _) = raw(
        proxy.addr,
        b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        LIMIT,
    )
    .await;
    assert_eq!(status_of(&response), 400, "{response}");
    assert!(response.contains("curl -x"), "{response}");
    let (https, _) = raw(
        proxy.addr,
        b"GET https://example.test/ HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
        LIMIT,
    )
    .await;
    assert_eq!(status_of(&https), 400, "{https}");
    assert!(https.contains("CONNECT"), "{https}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_closed_upstream_is_a_502_that_says_why() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-w",
        "%{http_code}",
        &format!("http://{addr}/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("502"), "{body}");
    assert!(body.contains("cannot connect"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_unresolvable_host_is_a_502() {
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-w",
        "%{http_code}",
        "http://no-such-host.invalid/",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("502"), "{body}");
    assert!(body.contains("cannot resolve"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_stalled_upstream_is_a_504() {
    // Accepts and reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let mut cfg = config();
    cfg.proxy.timeouts.response_header = 0.3;
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-w",
        "%{http_code}",
        &format!("http://{addr}/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("504"), "{body}");
    assert!(body.contains("no response headers"), "{body}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    for _ in 0..3 {
        let (ok, body, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
        assert!(ok, "{err}");
        assert_eq!(body, "hello");
    }
    assert_eq!(
        origin.accepted(),
        1,
        "three client connections shared one upstream connection"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn max_forwards_zero_is_answered_by_the_proxy() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let request = format!(
        "OPTIONS {} HTTP/1.1\r\nHost: {}\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n",
        origin.url("/"),
        origin.addr
    );
    let (response, _) = raw(proxy.addr, request.as_bytes(), LIMIT).await;
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(
        response.to_ascii_lowercase().contains("allow: get"),
        "{response}"
    );
    let trace = format!(
        "TRACE {} HTTP/1.1\r\nHost: {}\r\nMax-Forwards: 0\r\nProxy-Authorization: Basic c2VjcmV0\r\nX-Probe: 7\r\nConnection: close\r\n\r\n",
        origin.url("/t"),
        origin.addr
    );
    let (response, _) = raw(proxy.addr, trace.as_bytes(), LIMIT).await;
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(response.contains("x-probe: 7"), "{response}");
    assert!(
        !response.contains("c2VjcmV0"),
        "credentials are not echoed: {response}"
    );
    assert_eq!(origin.accepted(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn max_forwards_is_decremented_on_the_way() {
    let origin = origin(|req| async move {
        text(
            req.headers()
                .get("max-forwards")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default(),
        )
    })
    .await;
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-X",
        "OPTIONS",
        "-H",
        "Max-Forwards: 3",
        &origin.url("/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(body, "2");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_response_body_that_goes_silent_is_cut_after_the_idle_timeout() {
    let origin = origin(|_req| async {
        let first = futures_util::stream::once(async {
            Ok::<_, Infallible>(Frame::data(Bytes::from("first")))
        });
        let never = futures_util::stream::pending();
        Response::new(BodyExt::boxed(StreamBody::new(first.chain(never))))
    })
    .await;
    let mut cfg = config();
    cfg.proxy.timeouts.idle = 0.3;
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", origin.url("/"));
    tcp.write_all(request.as_bytes()).await.expect("write");
    read_until(&mut tcp, "first").await;
    let (rest, closed) = read_until_close(&mut tcp, LIMIT).await;
    assert!(closed, "the silent response is cut");
    assert!(
        !rest.contains("0\r\n\r\n"),
        "the body was not ended cleanly: {rest:?}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_request_that_already_passed_here_is_a_loop() {
    let origin = hello_origin().await;
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Via: 1.1 backroom-proxy",
        "-w",
        "%{http_code}",
        &origin.url("/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("508"), "{body}");
    assert_eq!(origin.accepted(), 0);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_ipv6_literal_target_is_forwarded_with_a_bracketed_host() {
    let listener = TcpListener::bind("[::1]:0").await.expect("bind ::1");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned();
                        Ok::<_, Infallible>(text(host))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    let proxy = start(config()).await;
    let url = format!("http://[::1]:{port}/");
    let (ok, body, err) = curl(&["-x", &proxy.url(), "-g", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(body, format!("[::1]:{port}"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_response_with_content_length_and_chunked_is_read_by_chunked() {
    // RFC 9112 §6.3: Transfer-Encoding wins, and the stale Content-Length
    // must not frame the forwarded body.
    let origin = scripted_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let proxy = start(config()).await;
    let (ok, body, err) = curl(&["-x", &proxy.url(), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_obs_folded_response_header_is_unfolded_with_spaces() {
    let origin = scripted_origin(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Folded: first\r\n  second\r\n\r\nhello",
    )
    .await;
    let proxy = start(config()).await;
    let (ok, response, err) = curl(&["-x", &proxy.url(), "-i", &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(status_of(&response), 200, "{response}");
    let folded = response
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("x-folded:"))
        .unwrap_or_else(|| panic!("no X-Folded in {response:?}"));
    assert!(
        folded.contains("first") && folded.contains("second"),
        "{folded:?}"
    );
    assert!(response.ends_with("hello"), "{response}");
    proxy.shutdown().await;
}

/// An origin that reads the whole request body and answers its length.
async fn body_length_origin() -> Origin {
    origin(|req| async move {
        let body = req.into_body().collect().await.expect("body").to_bytes();
        text(format!("{} bytes", body.len()))
    })
    .await
}

#[tokio::test]
async fn an_upload_longer_than_the_response_header_timeout_gets_through() {
    let origin = body_length_origin().await;
    let mut cfg = config();
    cfg.proxy.timeouts.response_header = 0.3;
    cfg.proxy.timeouts.client_body = 10.0;
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Length: 8192\r\nConnection: close\r\n\r\n",
        origin.url("/upload")
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    // A slow client: the upload lasts at least 1.2 s, four times the
    // response_header timeout, while the client never goes silent for long.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        tcp.write_all(&[b'x'; 1024]).await.expect("chunk");
    }
    let (response, _) = read_until_close(&mut tcp, LIMIT).await;
    assert_eq!(status_of(&response), 200, "{response}");
    assert!(response.ends_with("8192 bytes"), "{response}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_response_header_timeout_starts_when_the_body_is_sent() {
    // Reads the whole request, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (got_body, mut body_arrived) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let got_body = got_body.clone();
            tokio::spawn(async move {
                read_until(&mut tcp, "the-end").await;
                let _ = got_body.send(());
                let mut buf = [0u8; 64];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let mut cfg = config();
    cfg.proxy.timeouts.response_header = 0.3;
    let proxy = start(cfg).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!(
        "POST http://{addr}/ HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tokio::time::sleep(Duration::from_millis(400)).await;
    tcp.write_all(b"the-end").await.expect("body");
    let sent = tokio::time::Instant::now();
    let (response, _) = read_until_close(&mut tcp, LIMIT).await;
    assert_eq!(status_of(&response), 504, "{response}");
    assert!(response.contains("of the end of the request"), "{response}");
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "{:?}",
        sent.elapsed()
    );
    let arrived = tokio::time::timeout(LIMIT, body_arrived.recv()).await;
    assert!(
        matches!(arrived, Ok(Some(()))),
        "the origin got the whole body"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_origin_that_stops_taking_the_body_is_a_504() {
    // Reads the request head, then nothing more.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await;
            held.push(tcp);
        }
    });
    let mut cfg = config();
    cfg.proxy.timeouts.idle = 0.5;
    let proxy = start(cfg).await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut read, mut write) = tcp.into_split();
    let head = format!(
        "POST http://{addr}/ HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    write.write_all(head.as_bytes()).await.expect("head");
    // Sends until every buffer between here and the origin is full.
    let sender = tokio::spawn(async move {
        let chunk = vec![0u8; 64 * 1024];
        while write.write_all(&chunk).await.is_ok() {}
    });
    let mut out = Vec::new();
    let ended = tokio::time::timeout(LIMIT, read.read_to_end(&mut out)).await;
    let response = String::from_utf8_lossy(&out);
    assert!(ended.is_ok(), "the proxy closes the connection: {response}");
    assert_eq!(status_of(&response), 504, "{response}");
    assert!(response.contains("took no request body"), "{response}");
    sender.abort();
    proxy.shutdown().await;
}

/// A config whose proxy waits long for an origin's 100 Continue, so that an
/// answer cannot come from the proxy giving up.
fn patient_config() -> backroom_proxy::config::Config {
    let mut cfg = config();
    cfg.proxy.timeouts.expect_continue = 30.0;
    cfg
}

/// Sends the head of a PUT of `length` bytes with `Expect: 100-continue`,
/// and no body.
async fn send_expecting_head(proxy: &Proxy, url: &str, length: usize) -> TcpStream {
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let head = format!(
        "PUT {url} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp
}

#[tokio::test]
async fn an_origin_refusing_an_expect_100_continue_upload_answers_before_the_body() {
    let origin = origin(|req| async move {
        let declared = req.headers().get("content-length").cloned();
        let expect = req.headers().get("expect").cloned();
        let mut response = text(format!("too large: {declared:?}, expect {expect:?}"));
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        response
    })
    .await;
    let proxy = start(patient_config()).await;
    let mut tcp = send_expecting_head(&proxy, &origin.url("/big"), 5_000_000).await;
    // The client sends nothing more: the origin's 413 must come first, with
    // no 100 Continue before it.
    let response = read_until(&mut tcp, "too large").await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("expect Some(\"100-continue\")"),
        "{response}"
    );
    // The body it never sent cannot be told apart from a next request.
    let (_, closed) = read_until_close(&mut tcp, LIMIT).await;
    assert!(closed, "the proxy closes the connection after the answer");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_expect_100_continue_upload_goes_through_when_the_origin_continues() {
    let origin = body_length_origin().await;
    let proxy = start(patient_config()).await;
    let mut tcp = send_expecting_head(&proxy, &origin.url("/"), 5).await;
    // hyper's origin answers 100 when it starts reading the body.
    let interim = read_until(&mut tcp, "\r\n\r\n").await;
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    tcp.write_all(b"hello").await.expect("body");
    let response = read_until(&mut tcp, "5 bytes").await;
    assert!(response.contains("200 OK"), "{response}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_origin_that_ignores_expect_100_continue_still_gets_the_body() {
    // Reads the head and the body, never says 100 Continue.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_until(&mut tcp, "the-body").await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ngot")
                    .await;
                let mut buf = [0u8; 64];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let mut cfg = config();
    cfg.proxy.timeouts.expect_continue = 0.2;
    let proxy = start(cfg).await;
    let (ok, body, err) = curl(&[
        "-x",
        &proxy.url(),
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "30",
        "--data-binary",
        "the-body",
        &format!("http://{addr}/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(body, "got");
    proxy.shutdown().await;
}

const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n\
    HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

#[tokio::test]
async fn early_hints_reach_the_client_before_the_response() {
    let hinting = scripted_origin(EARLY_HINTS).await;
    let plain = origin(|_req| async { text("plain") }).await;
    let proxy = start(config()).await;
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", hinting.url("/"));
    tcp.write_all(request.as_bytes()).await.expect("write");
    let response = read_until(&mut tcp, "hello").await;
    assert!(
        response.starts_with("HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{response}"
    );
    // The next request on the same connection gets only its own answer.
    let request = format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", plain.url("/"));
    tcp.write_all(request.as_bytes()).await.expect("write");
    let next = read_until(&mut tcp, "plain").await;
    assert!(next.starts_with("HTTP/1.1 200 OK\r\n"), "{next}");
    assert!(!next.contains("103"), "{next}");
    // A 1xx never goes to an HTTP/1.0 client (RFC 9110 §15.2).
    let old = format!("GET {} HTTP/1.0\r\nHost: x\r\n\r\n", hinting.url("/"));
    let (response, _) = raw(proxy.addr, old.as_bytes(), LIMIT).await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn curl_sees_early_hints_through_the_proxy() {
    let hinting = scripted_origin(EARLY_HINTS).await;
    let proxy = start(config()).await;
    let (ok, response, err) = curl(&["-x", &proxy.url(), "-i", &hinting.url("/")]).await;
    assert!(ok, "{err}");
    assert!(
        response.starts_with("HTTP/1.1 103 Early Hints"),
        "{response}"
    );
    assert!(response.ends_with("hello"), "{response}");
    proxy.shutdown().await;
}
