//! The IPP face of the print server: the Internet Printing Protocol
//! (RFC 8011, versions 1.0 to 2.0) over HTTP/1.1, so that desktops, phones
//! and CUPS's own tools print to backroom-print.
//!
//! It is an adapter: every operation becomes calls on the same queue the
//! frame protocol uses, with the same jobs, priorities, holds, classes,
//! rights and events. The `ipp` crate parses each request's head and encodes
//! each answer; hyper serves HTTP, chunked bodies included. See the IPP
//! section of docs/print.md for what it speaks and what it refuses.

mod attrs;
mod message;
mod ops;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use backroom_api::print::Printers;
use backroom_daemon::face;
use backroom_frame::auth::{AuthHandle, Identity};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Response, StatusCode as HttpStatus};
use http_body_util::Full;
use hyper::body::Incoming;
use ipp::model::{IppVersion, StatusCode};
use parking_lot::{Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service::Shared;

use self::attrs::Site;
use self::message::{Answer, Document, HeadError};

/// The face's name in its log lines.
const FACE: &str = "ipp";
/// The MIME type of IPP messages.
const IPP_MIME: &str = "application/ipp";

/// How the face is set up, beside the queue it shares.
#[derive(Debug, Clone)]
pub struct IppConfig {
    /// A document longer than this is refused with
    /// `client-error-request-entity-too-large`.
    pub max_document_bytes: u64,
}

impl Default for IppConfig {
    fn default() -> IppConfig {
        IppConfig {
            max_document_bytes: 1 << 30,
        }
    }
}

/// What every IPP connection shares.
pub struct Face {
    shared: Arc<Shared>,
    auth: AuthHandle,
    config: IppConfig,
    /// Seconds since the epoch when the face started.
    started: i64,
    /// The printers, classes and default printer, which are fixed at start:
    /// names and URIs come from here without a trip to the queue. Their
    /// states here are stale; the printer operations ask the queue.
    layout: Printers,
    /// How long a client may send nothing in the middle of a request.
    idle: Duration,
    /// `ipps` when the face speaks TLS, else `ipp`: the scheme of its URIs.
    scheme: &'static str,
    /// Jobs made by Create-Job that wait for Send-Document, each with
    /// whether it was asked to be held. A std mutex: it is never held across
    /// an await.
    incoming: Mutex<HashMap<u64, bool>>,
}

/// Serves IPP on `listener` until `stop` is cancelled, then lets each
/// connection finish its request for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    frame: backroom_frame::server::ServerConfig,
    config: IppConfig,
    stop: CancellationToken,
) {
    let tls = frame.tls.is_some();
    let layout = match shared.with_queue(|q, _, _| Ok(q.printers())).await {
        Ok(layout) => layout,
        Err(e) => {
            tracing::error!(error = %e, "ipp: cannot read the printers; not serving IPP");
            return;
        }
    };
    let ipp = Arc::new(Face {
        started: shared.clock.now_ms() / 1000,
        scheme: if tls { "ipps" } else { "ipp" },
        layout,
        idle: Duration::from_millis(frame.limits.idle_timeout_ms),
        shared,
        auth: frame.auth.clone(),
        config,
        incoming: Mutex::new(HashMap::new()),
    });
    let limits = Arc::new(face::Limits::from(&frame));
    let serve = |conn: face::Admitted| {
        let (ipp, limits, stop) = (ipp.clone(), limits.clone(), stop.clone());
        // The address the client reached, for the URIs in the answers.
        let local = conn
            .tcp
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        async move {
            let handle = move |request| {
                let (ipp, local) = (ipp.clone(), local.clone());
                async move { ipp.handle(request, &local).await }
            };
            face::serve_http(FACE, conn, &limits, stop, handle).await;
        }
    };
    let refuse = |tcp, refusal| async move {
        let (status, text) = face::http_refusal(refusal);
        face::refuse_http(tcp, !tls, status, &text).await;
    };
    face::accept_loop(FACE, listener, &limits, stop.clone(), serve, refuse).await;
}

fn http_answer(status: HttpStatus, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn ipp_answer(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(IPP_MIME));
    response
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = http_answer(
        HttpStatus::UNAUTHORIZED,
        "log in with your user name and your token as the password\n",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Basic realm=\"backroom-print\", charset=\"UTF-8\""),
    );
    response
}

/// Whether this IPP version is one the face speaks: 1.0, 1.1 and 2.x.
fn speaks(version: IppVersion) -> bool {
    matches!(version.0 >> 8, 1 | 2)
}

impl Face {
    fn incoming(&self) -> MutexGuard<'_, HashMap<u64, bool>> {
        // Every holder leaves the map whole, so a poisoned lock is still good.
        self.incoming.lock()
    }

    /// Who the request comes from: `Ok(None)` on a server without users,
    /// where `requesting-user-name` is trusted as CUPS trusts it locally;
    /// else the user of HTTP Basic, whose password is their token.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Identity>, ()> {
        let auth = self.auth.current();
        if auth.is_open() {
            return Ok(None);
        }
        let (user, token) = face::basic_credentials(headers).ok_or(())?;
        match auth.authenticate(Some(&token)) {
            Ok(who) if who.user == user => Ok(Some(who)),
            _ => Err(()),
        }
    }

    async fn handle(
        self: Arc<Self>,
        request: http::Request<Incoming>,
        local: &str,
    ) -> Response<Full<Bytes>> {
        if request.method() != Method::POST {
            let mut response = http_answer(
                HttpStatus::METHOD_NOT_ALLOWED,
                "this is an IPP printer: POST application/ipp requests\n",
            );
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return response;
        }
        let Ok(authenticated) = self.authenticate(request.headers()) else {
            return unauthorized();
        };
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(local)
            .to_owned();
        let declared: Option<u64> = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut body = request.into_body();
        let head = match message::read_head(&mut body, self.idle).await {
            Ok(head) => head,
            Err(e) => return ipp_answer(head_refusal(e)),
        };
        let version = head.header.version;
        let request_id = head.header.request_id;
        if !speaks(version) {
            let answer = Answer::refuse(
                StatusCode::ServerErrorVersionNotSupported,
                "this printer speaks IPP 1.0, 1.1 and 2.0",
            );
            return ipp_answer(answer.encode(IppVersion::v1_1(), request_id));
        }
        if request_id == 0 {
            let answer = Answer::refuse(
                StatusCode::ClientErrorBadRequest,
                "the request-id must not be 0",
            );
            return ipp_answer(answer.encode(version, request_id));
        }
        let now = self.shared.clock.now_ms() / 1000;
        let site = Site {
            scheme: self.scheme,
            host,
            started: self.started,
            now,
            authentication: if authenticated.is_some() {
                "basic"
            } else {
                "requesting-user-name"
            },
        };
        let document = Document::new(
            head.rest,
            body,
            (self.config.max_document_bytes, self.idle),
            declared.map(|d| d.saturating_sub(head.len as u64)),
        );
        let ipp_request = ops::Request {
            operation: head.header.operation_or_status,
            attributes: head.attributes,
            site,
            authenticated,
        };
        let answer = ops::answer(&self, ipp_request, document).await;
        ipp_answer(answer.encode(version, request_id))
    }
}

fn head_refusal(e: HeadError) -> Bytes {
    let message = match e {
        HeadError::Truncated => "the IPP message ends before its attributes do".to_owned(),
        HeadError::Invalid(e) => format!("not a valid IPP message: {e}"),
        HeadError::TooLong => format!(
            "the IPP attributes are longer than {} bytes",
            message::MAX_HEAD
        ),
        HeadError::Broken(e) => format!("the request broke off: {e}"),
    };
    Answer::refuse(StatusCode::ClientErrorBadRequest, message).encode(IppVersion::v1_1(), 0)
}
