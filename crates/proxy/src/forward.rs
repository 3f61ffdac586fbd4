//! One client request, from the ACL to the origin's last byte: forwarding of
//! absolute-form `http://` requests, upgrades, and CONNECT tunnels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backroom_api::proxy::{AccessRecord, TunnelInfo};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Shared;
use crate::auth::Verdict;
use crate::body::{BoxError, ClientBody, Finisher, LoggedBody, ProxyBody, Upload};
use crate::headers;
use crate::interim::{ClientIo, InterimSender};
use crate::tunnels::{Counters, Ends};
use crate::upstream::{self, UpstreamAddr};

/// What every path of one request needs to answer and to log.
struct Exchange {
    shared: Arc<Shared>,
    finisher: Finisher,
}

impl Exchange {
    /// An answer from the proxy itself, with a short body that says why.
    fn reply(mut self, status: StatusCode, why: &str) -> Response<ProxyBody> {
        self.finisher.record.status = status.as_u16();
        let body = format!(
            "{} {}: {why}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut response = Response::new(LoggedBody::full(body, Some(self.finisher)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers::add_via(
            headers,
            http::Version::HTTP_11,
            &self.shared.settings.via_name,
        );
        response
    }

    /// A refusal after which the connection must not be reused, because the
    /// rest of the client's bytes cannot be trusted.
    fn reply_and_close(self, status: StatusCode, why: &str) -> Response<ProxyBody> {
        let mut response = self.reply(status, why);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn header_text(req: &Request<Incoming>, name: header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// Serves one request from `peer`. Never fails: every problem is an answer.
/// `interim` relays the origin's 1xx responses to the client until the
/// final response is handed back.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    interim: InterimSender,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let target = match req.method() {
        &Method::CONNECT => req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        _ => req.uri().to_string(),
    };
    let finisher = Finisher {
        shared: shared.clone(),
        record: AccessRecord {
            time_ms: now_ms(),
            client: peer.ip().to_canonical().to_string(),
            user: "-".into(),
            method: req.method().to_string(),
            target,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0,
            upstream: "-".into(),
            user_agent: header_text(&req, header::USER_AGENT),
            referer: header_text(&req, header::REFERER),
        },
        started: Instant::now(),
        host: None,
        bytes_in: Arc::new(AtomicU64::new(0)),
        bytes_out: Arc::new(AtomicU64::new(0)),
    };
    let exchange = Exchange { shared, finisher };
    let is_connect = req.method() == Method::CONNECT;
    let mut response = admit(exchange, peer, &interim, req).await;
    interim.seal();
    if is_connect && !response.status().is_success() {
        // The client may already have sent bytes meant for the tunnel; they
        // must never be read as a request.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The checks every request passes before it goes anywhere.
async fn admit(
    mut ex: Exchange,
    peer: SocketAddr,
    interim: &InterimSender,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let policy = ex.shared.policy();
    if let Err(denied) = policy.acl.check_client(peer.ip()) {
        return ex.reply(StatusCode::FORBIDDEN, &denied.0);
    }
    let credentials = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .map(|v| v.as_bytes());
    match policy.auth.check(credentials).await {
        Verdict::Open => {}
        Verdict::User(user) => ex.finisher.record.user = user,
        verdict @ (Verdict::Missing | Verdict::Failed(_)) => {
            if let Verdict::Failed(user) = &verdict {
                let user = user.as_deref().unwrap_or("(unreadable)");
                tracing::warn!(client = %peer, %user, "proxy login failed");
                ex.finisher.record.user = user.to_owned();
            }
            let challenge = policy.auth.challenge();
            let mut response = ex.reply(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "this proxy needs a user name and password (Basic proxy auth)",
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::PROXY_AUTHENTICATE, value);
            }
            return response;
        }
    }
    if headers::has_looped(req.headers(), &ex.shared.settings.via_name) {
        return ex.reply(
            StatusCode::LOOP_DETECTED,
            "this request has already passed through this proxy",
        );
    }
    if req.method() == Method::CONNECT {
        return connect(ex, req).await;
    }
    forward(ex, peer, interim, req).await
}

/// Forwards an absolute-form request to its origin and streams the answer.
async fn forward(
    ex: Exchange,
    peer: SocketAddr,
    interim: &InterimSender,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let uri = req.uri().clone();
    let Some(scheme) = uri.scheme_str() else {
        let why = format!(
            "this is an HTTP forward proxy, and {} is not a full URL. Point your client at this \
             proxy instead of requesting from it: curl -x http://<this proxy> http://example.com/, \
             or set http_proxy and https_proxy",
            uri
        );
        return ex.reply(StatusCode::BAD_REQUEST, &why);
    };
    if !scheme.eq_ignore_ascii_case("http") {
        let why = format!(
            "this proxy forwards http:// URLs only; for {scheme}:// use a CONNECT tunnel \
             (clients do this for https_proxy)"
        );
        return ex.reply(StatusCode::BAD_REQUEST, &why);
    }
    let (Some(host), Some(uri_host)) = (upstream::bare_host(&uri), uri.host()) else {
        return ex.reply(StatusCode::BAD_REQUEST, "the URL has no host");
    };
    // The Host header names the target without any userinfo of the URL.
    let host_header = match uri.port() {
        Some(port) => format!("{uri_host}:{port}"),
        None => uri_host.to_owned(),
    };
    let port = uri.port_u16().unwrap_or(80);
    let method = req.method().clone();
    let mut ex = ex;
    ex.finisher.host = Some(host.clone());
    let safe_ports = &ex.shared.settings.safe_ports;
    if !safe_ports.iter().any(|range| range.contains(port)) {
        let safe: Vec<String> = safe_ports.iter().map(ToString::to_string).collect();
        let why = format!(
            "port {port} is not a safe port for plain HTTP; safe ports: {}",
            safe.join(", ")
        );
        return ex.reply(StatusCode::FORBIDDEN, &why);
    }
    let policy = ex.shared.policy();
    if let Err(denied) = policy.acl.check_destination(&host, port, method.as_str()) {
        return ex.reply(StatusCode::FORBIDDEN, &denied.0);
    }
    if method == Method::OPTIONS || method == Method::TRACE {
        match headers::max_forwards(req.headers()) {
            Some(0) => return answer_max_forwards(ex, &req),
            Some(n) => {
                req.headers_mut()
                    .insert(header::MAX_FORWARDS, HeaderValue::from(n - 1));
            }
            None => {}
        }
    }
    let upgrade = headers::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    // A 1xx must never reach an HTTP/1.0 client (RFC 9110 §15.2).
    let relay = (req.version() >= http::Version::HTTP_11).then(|| interim.clone());
    let (mut parts, body) = req.into_parts();
    let settings = &ex.shared.settings;
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::add_via(&mut parts.headers, parts.version, &settings.via_name);
    headers::add_forwarded(&mut parts.headers, settings.forwarded, peer.ip());
    if let Ok(value) = HeaderValue::from_str(&host_header) {
        parts.headers.insert(header::HOST, value);
    }
    parts.version = http::Version::HTTP_11;
    // The expectation goes on to the origin, whose answer the client gets:
    // a 100 lets the body go, a final answer (a 413, say) goes back before
    // the client sends a byte of it.
    let upload = Arc::new(Upload::new(headers::expects_continue(&parts.headers)));
    let body = ClientBody::new(
        body,
        ex.finisher.bytes_in.clone(),
        upload.clone(),
        settings.client_body_timeout,
        settings.continue_timeout,
    );
    let mut outgoing = Request::from_parts(parts, body);
    let continued = upload.expectation.as_ref().map(|e| e.continued.clone());
    if relay.is_some() || continued.is_some() {
        hyper::ext::on_informational(&mut outgoing, move |interim| match interim.status() {
            // The client's own 100 comes from hyper when the body is first read.
            StatusCode::CONTINUE => {
                if let Some(continued) = &continued {
                    continued.cancel();
                }
            }
            status => {
                if let Some(relay) = &relay {
                    relay.send(status, interim.headers());
                }
            }
        });
    }

    let limit = settings.response_header_timeout;
    let sent = await_head(ex.shared.client.request(outgoing), &upload, limit);
    let mut response = match sent.await {
        None => {
            let why = format!(
                "{host}:{port} sent no response headers within {limit:?} of the end of the request"
            );
            return ex.reply(StatusCode::GATEWAY_TIMEOUT, &why);
        }
        Some(Err(error)) => return upstream_failed(ex, &host, port, &error, &upload),
        Some(Ok(response)) => response,
    };
    if let Some(addr) = response.extensions().get::<UpstreamAddr>() {
        ex.finisher.record.upstream = addr.0.to_string();
    }
    let status = response.status();
    ex.finisher.record.status = status.as_u16();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return ex.reply(
                StatusCode::BAD_GATEWAY,
                "the origin switched protocols unasked",
            );
        };
        let origin_upgrade = hyper::upgrade::on(&mut response);
        let (mut parts, _) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, true);
        headers::add_via(
            &mut parts.headers,
            http::Version::HTTP_11,
            &ex.shared.settings.via_name,
        );
        let shared = ex.shared.clone();
        let info = TunnelInfo {
            id: 0,
            client: ex.finisher.record.client.clone(),
            user: ex.finisher.record.user.clone(),
            target: uri.to_string(),
            upstream: ex.finisher.record.upstream.clone(),
            opened_ms: ex.finisher.record.time_ms,
            bytes_in: 0,
            bytes_out: 0,
        };
        shared.spawn_tunnel(info, ex.finisher, async move {
            let (client, origin) = tokio::try_join!(client_upgrade, origin_upgrade).ok()?;
            Some(Ends::Streams {
                client: Box::new(TokioIo::new(client)),
                origin: Box::new(TokioIo::new(origin)),
            })
        });
        return Response::from_parts(parts, LoggedBody::full(Bytes::new(), None));
    }
    let (mut parts, body) = response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, false);
    headers::add_via(
        &mut parts.headers,
        http::Version::HTTP_11,
        &ex.shared.settings.via_name,
    );
    let body = body.map_err(|e| -> BoxError { Box::new(e) }).boxed();
    let idle = ex.shared.settings.idle_timeout;
    let mut body = LoggedBody::new(body, Some(ex.finisher)).with_idle_timeout(idle);
    if let Some(expectation) = &upload.expectation {
        body = body.cancel_on_end(expectation.answered.clone());
    }
    Response::from_parts(parts, body)
}

/// Waits for the origin's response head. First the request body streams,
/// for as long as the client keeps sending it (its silences are bounded by
/// `timeouts.client_body`, a 408) and the origin keeps taking it (bounded by
/// `timeouts.idle`, a 504); `timeouts.response_header` starts once all of it
/// has gone, so a long upload is never cut for being long. `None` when the
/// origin sent no head in time.
async fn await_head<F: Future>(request: F, upload: &Upload, limit: Duration) -> Option<F::Output> {
    let mut request = std::pin::pin!(request);
    // A request without a body, the common case, skips the race.
    if !upload.is_finished() {
        tokio::select! {
            answer = &mut request => return Some(answer),
            () = upload.finished() => {}
        }
    }
    tokio::time::timeout(limit, request).await.ok()
}

/// Maps a failed exchange with the origin to a status and a reason.
fn upstream_failed(
    ex: Exchange,
    host: &str,
    port: u16,
    error: &hyper_util::client::legacy::Error,
    upload: &Upload,
) -> Response<ProxyBody> {
    if upload.malformed.load(Ordering::Relaxed) {
        return ex.reply_and_close(StatusCode::BAD_REQUEST, "the request body is malformed");
    }
    if upload.stalled.load(Ordering::Relaxed) {
        let why = "the request body stopped arriving before it was complete";
        return ex.reply_and_close(StatusCode::REQUEST_TIMEOUT, why);
    }
    if let Some(connect) = upstream::find_connect_error(error) {
        return ex.reply(connect.status(), &connect.to_string());
    }
    if let Some(stalled) = upstream::find_origin_stalled(error) {
        // The rest of the client's body may still be on its way: the
        // connection cannot carry another request.
        let why = format!("{host}:{port} {stalled}");
        return ex.reply_and_close(StatusCode::GATEWAY_TIMEOUT, &why);
    }
    let mut cause = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        cause = format!("{cause}: {e}");
        source = e.source();
    }
    tracing::debug!(%host, port, error = %cause, "upstream exchange failed");
    let why = format!(
        "{host}:{port} closed the connection or answered with something that is not HTTP ({cause})"
    );
    ex.reply(StatusCode::BAD_GATEWAY, &why)
}

/// Answers an OPTIONS or TRACE whose Max-Forwards reached zero here, as the
/// final recipient (RFC 9110 §7.6.2).
fn answer_max_forwards(mut ex: Exchange, req: &Request<Incoming>) -> Response<ProxyBody> {
    let status = StatusCode::OK;
    ex.finisher.record.status = status.as_u16();
    let via = ex.shared.settings.via_name.clone();
    let mut response = if req.method() == Method::TRACE {
        let mut echo = format!("{} {} {:?}\r\n", req.method(), req.uri(), req.version());
        for (name, value) in req.headers() {
            // Credentials must not be reflected, so a script cannot read them.
            if name == header::PROXY_AUTHORIZATION
                || name == header::AUTHORIZATION
                || name == header::COOKIE
            {
                continue;
            }
            echo.push_str(&format!(
                "{}: {}\r\n",
                name,
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        echo.push_str("\r\n");
        let mut response = Response::new(LoggedBody::full(echo, Some(ex.finisher)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("message/http"),
        );
        response
    } else {
        let mut response = Response::new(LoggedBody::full(Bytes::new(), Some(ex.finisher)));
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static(
                "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT",
            ),
        );
        response
    };
    headers::add_via(response.headers_mut(), http::Version::HTTP_11, &via);
    response
}

/// Opens a CONNECT tunnel to an allowed port, answers 200, then splices.
async fn connect(mut ex: Exchange, req: Request<Incoming>) -> Response<ProxyBody> {
    let uri: &Uri = req.uri();
    let (Some(host), Some(port)) = (upstream::bare_host(uri), uri.port_u16()) else {
        return ex.reply(
            StatusCode::BAD_REQUEST,
            "CONNECT needs host:port, such as example.com:443",
        );
    };
    ex.finisher.host = Some(host.clone());
    let ports = &ex.shared.settings.connect_ports;
    if !ports.contains(&port) {
        let allowed: Vec<String> = ports.iter().map(u16::to_string).collect();
        let why = format!(
            "CONNECT to port {port} is not allowed; allowed ports: {}",
            allowed.join(", ")
        );
        return ex.reply(StatusCode::FORBIDDEN, &why);
    }
    let policy = ex.shared.policy();
    if let Err(denied) = policy.acl.check_destination(&host, port, "CONNECT") {
        return ex.reply(StatusCode::FORBIDDEN, &denied.0);
    }
    let (tcp, addr) = match ex.shared.dialer.dial(&host, port).await {
        Ok(pair) => pair,
        Err(error) => return ex.reply(error.status(), &error.to_string()),
    };
    ex.finisher.record.upstream = addr.to_string();
    ex.finisher.record.status = StatusCode::OK.as_u16();
    let info = TunnelInfo {
        id: 0,
        client: ex.finisher.record.client.clone(),
        user: ex.finisher.record.user.clone(),
        target: ex.finisher.record.target.clone(),
        upstream: addr.to_string(),
        opened_ms: ex.finisher.record.time_ms,
        bytes_in: 0,
        bytes_out: 0,
    };
    let shared = ex.shared.clone();
    shared.spawn_tunnel(info, ex.finisher, async move {
        let client = hyper::upgrade::on(req).await.ok()?;
        Some(client_socket(client, tcp))
    });
    Response::new(LoggedBody::full(Bytes::new(), None))
}

/// The ends of a CONNECT tunnel: the client's socket itself when hyper
/// hands it back whole, so that the kernel can splice the two sockets.
fn client_socket(client: Upgraded, origin: TcpStream) -> Ends {
    match client.downcast::<TokioIo<ClientIo>>() {
        Ok(parts) => Ends::Sockets {
            client: parts.io.into_inner().into_tcp(),
            origin,
            early: parts.read_buf,
        },
        Err(client) => Ends::Streams {
            client: Box::new(TokioIo::new(client)),
            origin: Box::new(origin),
        },
    }
}

impl Shared {
    /// Runs a tunnel once both ends are ready, registered for the admin port
    /// and for shutdown; its record is written when it ends.
    fn spawn_tunnel(
        self: &Arc<Self>,
        info: TunnelInfo,
        finisher: Finisher,
        ends: impl Future<Output = Option<Ends>> + Send + 'static,
    ) {
        let shared = self.clone();
        self.tunnel_tasks.spawn(async move {
            let Some(ends) = ends.await else {
                return;
            };
            let counters = Arc::new(Counters::default());
            let registration = shared.tunnels.register(info, counters.clone());
            shared.stats.active_tunnels.fetch_add(1, Ordering::Relaxed);
            let idle: Duration = shared.settings.idle_timeout;
            crate::tunnels::relay(ends, &counters, idle, &registration.close).await;
            shared.stats.active_tunnels.fetch_sub(1, Ordering::Relaxed);
            finisher
                .bytes_in
                .store(counters.up.load(Ordering::Relaxed), Ordering::Relaxed);
            finisher
                .bytes_out
                .store(counters.down.load(Ordering::Relaxed), Ordering::Relaxed);
            drop(registration);
            drop(finisher);
        });
    }
}
