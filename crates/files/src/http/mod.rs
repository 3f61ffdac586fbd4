//! The HTTP face of the file server: browsers, curl and the intranet's web
//! pages reach the same root as the frame protocol, through the same
//! engine: users and roles, per-path rules, quotas, confinement, atomic
//! writes and watch events all live there, once. Each request becomes calls
//! on the engine's operations (`ops`, `transfer`, the service's
//! `make_dir`, `remove_path`), never on the frame service. See the HTTP
//! section of docs/files.md for what it speaks and what it refuses.

mod conditional;
mod dav;
mod form;
mod listing;
mod live;
mod methods;
mod url;
mod xml;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backroom_api::files::{WriteArgs, WriteMode};
use backroom_daemon::face;
use backroom_frame::auth::{AuthHandle, Identity, Role};
use backroom_frame::{Error, ErrorCode};
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{
    ACCEPT_RANGES, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HOST, LAST_MODIFIED, LOCATION, ORIGIN,
    WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::conditional::{Decision, Part, Validators};
use self::url::Target;
use crate::ops;
use crate::paths::RelPath;
use crate::rights::Access;
use crate::service::{State, blocking, checked, make_dir, remove_path};
use crate::transfer::{self, Chunks, Slot};

/// What the binary's readiness line calls the HTTP listener:
/// `listening http <addr>`.
pub const HTTP_ANNOUNCE: &str = "http";

/// The user name of requests without credentials on public paths.
pub const ANONYMOUS: &str = "anonymous";
/// The HTTP connections' keys in the per-connection transfer limit start
/// here, above any frame connection number.
const CONNECTION_BASE: u64 = 1 << 62;

/// The HTTP face's settings.
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    /// Folders whose HTML is the intranet's own: served without the
    /// `sandbox` policy that every other user-uploaded page gets.
    pub sites: Vec<String>,
    /// Folders anyone may read without credentials.
    pub public: Vec<String>,
}

impl HttpConfig {
    /// Checks every folder named, so that a typo fails at startup.
    pub fn check(&self) -> Result<(), String> {
        parse_all(&self.sites, "http_sites").and(parse_all(&self.public, "http_public"))?;
        Ok(())
    }
}

fn parse_all(paths: &[String], key: &str) -> Result<Vec<RelPath>, String> {
    paths
        .iter()
        .map(|p| RelPath::parse(p).map_err(|e| format!("{key}: {p:?}: {}", e.message)))
        .collect()
}

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What every HTTP connection shares.
struct Face {
    state: Arc<State>,
    auth: AuthHandle,
    sites: Vec<RelPath>,
    public: Vec<RelPath>,
    connections: AtomicU64,
    /// Cancelled when the face stops: ends the event streams.
    stop: CancellationToken,
    /// WebDAV's dead properties and locks.
    dav: dav::Store,
}

/// Serves HTTP on `listener` until `stop` is cancelled, then lets each
/// connection finish its request for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    frame: backroom_frame::server::ServerConfig,
    config: HttpConfig,
    stop: CancellationToken,
) {
    let http = Arc::new(Face {
        state,
        auth: frame.auth.clone(),
        sites: parse_all(&config.sites, "http_sites").unwrap_or_default(),
        public: parse_all(&config.public, "http_public").unwrap_or_default(),
        connections: AtomicU64::new(CONNECTION_BASE),
        stop: stop.clone(),
        dav: dav::Store::default(),
    });
    // With the server's certificate, this port speaks HTTPS, as the frame
    // port speaks TLS: tokens never cross the network in the clear.
    let limits = Arc::new(face::Limits::from(&frame));
    let plaintext = limits.tls.is_none();
    let serve = |conn| {
        let (http, limits, stop) = (http.clone(), limits.clone(), stop.clone());
        let connection = http.connections.fetch_add(1, Ordering::Relaxed);
        async move {
            let handle = move |request| http.clone().handle(request, connection);
            face::serve_http(HTTP_ANNOUNCE, conn, &limits, stop, handle).await;
        }
    };
    let refuse = |tcp, refusal| async move {
        let (status, text) = face::http_refusal(refusal);
        face::refuse_http(tcp, plaintext, status, &text).await;
    };
    face::accept_loop(
        HTTP_ANNOUNCE,
        listener,
        &limits,
        stop.clone(),
        serve,
        refuse,
    )
    .await;
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|e| match e {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|e| match e {}).boxed_unsync()
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut text = text.into();
    text.push('\n');
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The HTTP status of an engine error.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::Busy | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_answer(e: &Error) -> Response<Body> {
    answer(status_of(e.code), e.message.clone())
}

fn unauthorized() -> Response<Body> {
    let mut response = answer(
        StatusCode::UNAUTHORIZED,
        "log in with your user name and your token as the password",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"backroom-files\", charset=\"UTF-8\""),
    );
    response
}

/// The credentials a request presents: a token, and with Basic the user
/// name it must belong to.
fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    if let Some((_, token)) = bearer {
        return Some((None, token.trim().to_owned()));
    }
    let (user, token) = face::basic_credentials(headers)?;
    Some((Some(user), token))
}

/// Whether a method only reads.
fn reads(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || method.as_str() == "PROPFIND"
}

/// The host and port of an `Origin` (`scheme://host[:port]`).
fn origin_host(origin: &str) -> Option<&str> {
    origin.split_once("://").map(|(_, host)| host)
}

/// A request's query flags and numbers (`?json`, `?sort=size`).
#[derive(Debug, Default)]
struct Query {
    json: bool,
    sort: Option<String>,
    descending: bool,
    events: bool,
    changes: bool,
    since: Option<u64>,
    wait: Option<u64>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let mut query = Query::default();
        for pair in raw.unwrap_or("").split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "json" => query.json = true,
                "sort" => query.sort = Some(value.to_owned()),
                "order" => query.descending = value == "desc",
                "events" => query.events = true,
                "changes" => query.changes = true,
                "since" => query.since = value.parse().ok(),
                "wait" => query.wait = value.parse().ok(),
                _ => {}
            }
        }
        query
    }
}

/// A file found for a GET: its handle, size and validators, and its
/// contents when it is small.
struct Found {
    file: cap_std::fs::File,
    size: u64,
    validators: Validators,
    path: RelPath,
    small: Option<Bytes>,
}

/// What a GET names.
enum Looked {
    File(Found),
    Dir { index: bool },
}

/// Files up to this size are read whole when opened and sent in one piece:
/// a small GET then costs one trip to a blocking thread, not three.
const SMALL_FILE: u64 = 64 * 1024;

/// Opens a file for a GET. Blocking.
fn open_found(state: &State, path: RelPath) -> Result<Found, Error> {
    use std::io::Read;
    let (mut file, meta) = ops::open_file(&state.root, &path)?;
    let size = meta.len();
    let ino = cap_std::fs::MetadataExt::ino(&meta);
    let validators = Validators::new(ino, size, ops::modified_ms(&meta));
    let small = if size <= SMALL_FILE {
        let mut whole = Vec::with_capacity(size as usize);
        file.read_to_end(&mut whole)
            .map_err(|e| crate::paths::fs_error(e, &path))?;
        // A file that grew since the stat is sent as it was then.
        whole.truncate(size as usize);
        Some(Bytes::from(whole))
    } else {
        None
    };
    Ok(Found {
        file,
        size,
        validators,
        path,
        small,
    })
}

impl Face {
    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        connection: u64,
    ) -> Response<Body> {
        let mut response = match self.route(request, connection).await {
            Ok(response) => response,
            Err(e) => error_answer(&e),
        };
        response
            .headers_mut()
            .insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        response
    }

    /// Who sends the request: a user by token (Basic or Bearer); on a
    /// server without users, anyone, as an admin (as the frame port); or,
    /// for a read of a public folder, the anonymous reader. `None`: 401.
    fn identify(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &RelPath,
    ) -> Option<Arc<Identity>> {
        let auth = self.auth.current();
        if auth.is_open() {
            return Some(Arc::new(Identity {
                user: ANONYMOUS.into(),
                role: Role::Admin,
            }));
        }
        match credentials(headers) {
            Some((user, token)) => match auth.authenticate(Some(&token)) {
                Ok(who) if user.is_none_or(|u| u == who.user) => Some(Arc::new(who)),
                _ => None,
            },
            None if reads(method) && self.public.iter().any(|p| path.starts_with(p)) => {
                Some(Arc::new(Identity {
                    user: ANONYMOUS.into(),
                    role: Role::ReadOnly,
                }))
            }
            None => None,
        }
    }

    async fn route(
        self: &Arc<Self>,
        request: Request<Incoming>,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let target = url::decode(request.uri().path())?;
        let method = request.method().clone();
        if !reads(&method) && !same_origin(request.headers()) {
            return Ok(answer(
                StatusCode::FORBIDDEN,
                "a cross-site request may not change files",
            ));
        }
        let Some(who) = self.identify(request.headers(), &method, &target.path) else {
            return Ok(unauthorized());
        };
        let query = Query::parse(request.uri().query());
        match method {
            Method::GET | Method::HEAD => {
                self.get(&request, &who, target, &query, connection).await
            }
            Method::PUT => self.put(request, who, target, connection).await,
            Method::DELETE => self.delete(&request, &who, target).await,
            Method::POST => self.post(request, who, target, connection).await,
            Method::OPTIONS => Ok(options()),
            ref m => match m.as_str() {
                "MKCOL" => self.mkcol(request, &who, target).await,
                "PROPFIND" => self.propfind(request, &who, target).await,
                "PROPPATCH" => self.proppatch(request, &who, target).await,
                "COPY" => self.transfer(request, &who, target, false).await,
                "MOVE" => self.transfer(request, &who, target, true).await,
                "LOCK" => self.lock(request, &who, target, connection).await,
                "UNLOCK" => self.unlock(request.headers(), &who, target),
                _ => Ok(not_allowed()),
            },
        }
    }

    async fn get(
        &self,
        request: &Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
        query: &Query,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let path = checked(&self.state, who, &target.path.to_string(), Access::Read)?;
        let state = self.state.clone();
        let at = path.clone();
        // One trip to a blocking thread finds what the path is and, for a
        // file, opens it (and reads it whole if it is small).
        let looked = blocking(move || {
            let meta = state
                .root
                .metadata(at.as_fs())
                .map_err(|e| crate::paths::fs_error(e, &at))?;
            if !meta.is_dir() {
                return Ok(Looked::File(open_found(&state, at)?));
            }
            let index = state
                .root
                .metadata(at.join(listing::INDEX).as_fs())
                .is_ok_and(|m| m.is_file());
            Ok(Looked::Dir { index })
        })
        .await?;
        let head = request.method() == Method::HEAD;
        let index = match looked {
            Looked::File(found) => {
                return self
                    .send_file(request.headers(), found, head, connection)
                    .await;
            }
            Looked::Dir { index } => index,
        };
        if query.events || query.changes {
            return self.live(request, who, path, query).await;
        }
        match index {
            _ if !target.slash => Ok(redirect(&url::encode(&path, true))),
            true if !query.json => {
                let found = self.open(&path.join(listing::INDEX)).await?;
                self.send_file(request.headers(), found, head, connection)
                    .await
            }
            _ => {
                let page = listing::Page {
                    sort: listing::Sort::parse(query.sort.as_deref()),
                    descending: query.descending,
                    writer: self.state.rights.access(who, &path) >= Access::Write,
                };
                let entries = self.entries(who, &path).await?;
                let response = if query.json {
                    listing::json(&entries)
                } else {
                    listing::html(&path, entries, &page)
                };
                let mut response = response?;
                if head {
                    *response.body_mut() = empty();
                }
                Ok(response)
            }
        }
    }

    /// A folder's changes, as an event stream or a long poll.
    async fn live(
        &self,
        request: &Request<Incoming>,
        who: &Arc<Identity>,
        path: RelPath,
        query: &Query,
    ) -> Result<Response<Body>, Error> {
        // Changes by other programs too, from the first watcher on.
        let state = self.state.clone();
        blocking(move || Ok(state.hub.ensure_disk())).await?;
        let (state, who) = (self.state.clone(), who.clone());
        if query.events {
            let last = request
                .headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            return Ok(live::events(state, who, path, last, self.stop.clone()));
        }
        let wait = Duration::from_secs(query.wait.unwrap_or(30));
        live::changes(state, who, path, query.since, wait).await
    }

    /// The entries of a folder the caller may see, every page of them.
    async fn entries(
        &self,
        who: &Arc<Identity>,
        path: &RelPath,
    ) -> Result<Vec<backroom_api::files::Entry>, Error> {
        let (state, who, path) = (self.state.clone(), who.clone(), path.clone());
        blocking(move || {
            let visible = |p: &RelPath| state.visible(&who, p);
            let mut entries = Vec::new();
            let mut after = None;
            loop {
                let page = ops::list(&state.root, &path, None, after.as_deref(), 10_000, &visible)?;
                entries.extend(page.entries);
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok(entries),
                }
            }
        })
        .await
    }

    async fn open(&self, path: &RelPath) -> Result<Found, Error> {
        let (state, path) = (self.state.clone(), path.clone());
        blocking(move || open_found(&state, path)).await
    }

    /// The validators of a file, `None` if there is none at `path`.
    async fn current(&self, path: &RelPath) -> Result<Option<Validators>, Error> {
        match self.open(path).await {
            Ok(found) => Ok(Some(found.validators)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn send_file(
        &self,
        headers: &HeaderMap,
        found: Found,
        head: bool,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let path = found.path.clone();
        let mut response = Response::new(empty());
        let out = response.headers_mut();
        out.insert(ETAG, header_value(&found.validators.etag)?);
        out.insert(
            LAST_MODIFIED,
            header_value(&found.validators.last_modified())?,
        );
        out.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        match conditional::evaluate(headers, Some(&found.validators), true) {
            Decision::Proceed => {}
            Decision::NotModified => {
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(response);
            }
            Decision::Failed => {
                *response.status_mut() = StatusCode::PRECONDITION_FAILED;
                return Ok(response);
            }
        }
        let mime = mime_guess::from_path(path.name()).first_or_octet_stream();
        out.insert(CONTENT_TYPE, header_value(mime.essence_str())?);
        if self.sandboxed(&path, &mime) {
            out.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox"));
        }
        let (start, length) = match conditional::part(headers, found.size, &found.validators) {
            Part::Whole => (0, found.size),
            Part::Range { start, length } => {
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                let end = start + length - 1;
                let range = format!("bytes {start}-{end}/{}", found.size);
                response
                    .headers_mut()
                    .insert(CONTENT_RANGE, header_value(&range)?);
                (start, length)
            }
            Part::Unsatisfiable => {
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let range = format!("bytes */{}", found.size);
                response
                    .headers_mut()
                    .insert(CONTENT_RANGE, header_value(&range)?);
                return Ok(response);
            }
        };
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(length));
        if head || length == 0 {
            return Ok(response);
        }
        if let Some(whole) = found.small {
            let end = usize::try_from(start + length).unwrap_or(whole.len());
            let start = usize::try_from(start).unwrap_or(0);
            let piece = whole.slice(start..end.min(whole.len()));
            self.state.meter.bytes_out.add(piece.len() as u64);
            *response.body_mut() = full(piece);
            return Ok(response);
        }
        let slot = Slot::take(&self.state, connection)?;
        let mut file = found.file;
        let at = found.path.clone();
        let file = blocking(move || {
            use std::io::Seek;
            file.seek(std::io::SeekFrom::Start(start))
                .map_err(|e| crate::paths::fs_error(e, &at))?;
            Ok(file)
        })
        .await?;
        let stream = transfer::download(slot, file, length).map(|piece| {
            piece
                .map(Frame::data)
                .map_err(|e| std::io::Error::other(e.message))
        });
        *response.body_mut() = BodyExt::boxed_unsync(StreamBody::new(stream));
        Ok(response)
    }

    /// Whether a page is served with `Content-Security-Policy: sandbox`:
    /// any HTML, SVG or XML outside the configured site folders, so that an
    /// uploaded page cannot script the intranet's origin.
    fn sandboxed(&self, path: &RelPath, mime: &mime_guess::Mime) -> bool {
        let active = matches!(
            mime.subtype().as_str(),
            "html" | "xhtml+xml" | "svg+xml" | "xml"
        );
        active && !self.sites.iter().any(|site| path.starts_with(site))
    }

    async fn put(
        &self,
        request: Request<Incoming>,
        who: Arc<Identity>,
        target: Target,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let path = target.path;
        let current = self.current(&path).await?;
        let changes = self.may_change(request.headers(), &path, false, current.is_none());
        if let Some(refusal) = changes.await? {
            return Ok(refusal);
        }
        match conditional::evaluate(request.headers(), current.as_ref(), false) {
            Decision::Proceed => {}
            _ => {
                return Ok(answer(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition failed",
                ));
            }
        }
        let create_only = request
            .headers()
            .get(http::header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == b"*");
        let mut args = WriteArgs::new(
            path.to_string(),
            if create_only {
                WriteMode::CreateNew
            } else {
                WriteMode::Overwrite
            },
        );
        args.size = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = RequestBody(request.into_body());
        match transfer::write_from(&self.state, who, connection, args, body).await {
            Ok(_) => {}
            // RFC 4918 §9.7.1: a missing parent folder is a conflict.
            Err(e) if e.code == ErrorCode::NotFound => {
                return Ok(answer(StatusCode::CONFLICT, e.message));
            }
            Err(e) => return Err(e),
        }
        let status = if current.is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        };
        let mut response = Response::new(empty());
        *response.status_mut() = status;
        if let Some(validators) = self.current(&path).await? {
            response
                .headers_mut()
                .insert(ETAG, header_value(&validators.etag)?);
        }
        Ok(response)
    }

    /// The listing's forms: `multipart/form-data` uploads its files into
    /// the folder, a form-encoded `folder=NAME` makes a folder there. Both
    /// answer with a redirect back to the listing.
    async fn post(
        &self,
        request: Request<Incoming>,
        who: Arc<Identity>,
        target: Target,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let folder = target.path;
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if content_type.starts_with("multipart/form-data") {
            let boundary = multer::parse_boundary(&content_type)
                .map_err(|e| Error::bad_request(format!("a multipart form: {e}")))?;
            let body = http_body_util::BodyDataStream::new(request.into_body());
            let mut form = multer::Multipart::new(body, boundary);
            while let Some(field) = form.next_field().await.map_err(form_error)? {
                let Some(name) = field.file_name().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let name = form::plain_name(name)?;
                let args = WriteArgs::new(folder.join(&name).to_string(), WriteMode::Overwrite);
                transfer::write_from(&self.state, who.clone(), connection, args, FormFile(field))
                    .await?;
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let body = Limited::new(request.into_body(), form::MAX_FORM_BYTES)
                .collect()
                .await
                .map_err(|e| Error::bad_request(format!("the form: {e}")))?
                .to_bytes();
            let name = form::field(&body, "folder")
                .ok_or_else(|| Error::bad_request("the form needs a folder name"))?;
            let name = form::plain_name(&name)?;
            make_dir(&self.state, &who, &folder.join(&name).to_string(), false).await?;
        } else {
            return Ok(answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST takes the listing's forms",
            ));
        }
        let mut response = redirect(&url::encode(&folder, true));
        *response.status_mut() = StatusCode::SEE_OTHER;
        Ok(response)
    }

    async fn delete(
        &self,
        request: &Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
    ) -> Result<Response<Body>, Error> {
        if target.path.is_root() {
            return Err(Error::forbidden("the root itself cannot be removed"));
        }
        if request.headers().contains_key(http::header::IF_MATCH) {
            let current = self.current(&target.path).await?;
            if conditional::evaluate(request.headers(), current.as_ref(), false)
                != Decision::Proceed
            {
                return Ok(answer(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition failed",
                ));
            }
        }
        if let Some(refusal) = self
            .may_change(request.headers(), &target.path, true, true)
            .await?
        {
            return Ok(refusal);
        }
        remove_path(&self.state, who, &target.path.to_string(), true).await?;
        self.dav.forget(&target.path);
        Ok(status_only(StatusCode::NO_CONTENT))
    }

    async fn mkcol(
        &self,
        request: Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
    ) -> Result<Response<Body>, Error> {
        // RFC 4918 §9.3: a body we do not understand is 415.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
        if declared
            || request
                .headers()
                .contains_key(http::header::TRANSFER_ENCODING)
        {
            return Ok(answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "MKCOL takes no body",
            ));
        }
        if target.path.is_root() {
            return Ok(answer(StatusCode::METHOD_NOT_ALLOWED, "the root exists"));
        }
        if let Some(refusal) = self
            .may_change(request.headers(), &target.path, false, true)
            .await?
        {
            return Ok(refusal);
        }
        match make_dir(&self.state, who, &target.path.to_string(), false).await {
            Ok(()) => Ok(status_only(StatusCode::CREATED)),
            // RFC 4918 §9.3.1: an existing name is 405, a missing parent 409.
            Err(e) if e.code == ErrorCode::Conflict => {
                Ok(answer(StatusCode::METHOD_NOT_ALLOWED, e.message))
            }
            Err(e) if e.code == ErrorCode::NotFound => Ok(answer(StatusCode::CONFLICT, e.message)),
            Err(e) => Err(e),
        }
    }
}

/// A request body as the engine's upload source.
struct RequestBody(Incoming);

impl Chunks for RequestBody {
    async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::new(
                        ErrorCode::Cancelled,
                        format!("the request body ended early: {e}"),
                    ));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }
}

/// One file of a multipart form as the engine's upload source.
struct FormFile<'r>(multer::Field<'r>);

impl Chunks for FormFile<'_> {
    async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        self.0.chunk().await.map_err(form_error)
    }
}

fn form_error(e: multer::Error) -> Error {
    Error::bad_request(format!("the multipart form: {e}"))
}

/// Whether a request that changes files comes from our own pages, or from
/// a client that is no browser: a browser names the page's origin, and it
/// must be this server.
fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    origin_host(origin).is_some_and(|o| Some(o) == host)
}

fn header_value(text: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(text).map_err(|e| Error::internal(format!("a header value: {e}")))
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = status_only(StatusCode::MOVED_PERMANENTLY);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

fn allowed() -> HeaderValue {
    HeaderValue::from_static(
        "OPTIONS, GET, HEAD, POST, PUT, DELETE, MKCOL, PROPFIND, PROPPATCH, COPY, MOVE, LOCK, UNLOCK",
    )
}

fn not_allowed() -> Response<Body> {
    let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response.headers_mut().insert(ALLOW, allowed());
    response
}

fn options() -> Response<Body> {
    let mut response = status_only(StatusCode::OK);
    response.headers_mut().insert(ALLOW, allowed());
    response
        .headers_mut()
        .insert("dav", HeaderValue::from_static("1, 2"));
    response
        .headers_mut()
        .insert("ms-author-via", HeaderValue::from_static("DAV"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn a_cross_site_origin_is_refused_and_our_own_or_none_passes() {
        let host = ("host", "files.office:8080");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://files.office:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
    }

    #[test]
    fn basic_and_bearer_credentials_are_read() {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:secret");
        let h = headers(&[("authorization", &format!("Basic {basic}"))]);
        assert_eq!(credentials(&h), Some((Some("ann".into()), "secret".into())));
        let h = headers(&[("authorization", "Bearer secret")]);
        assert_eq!(credentials(&h), Some((None, "secret".into())));
        assert_eq!(
            credentials(&headers(&[("authorization", "Digest x")])),
            None
        );
    }
}
