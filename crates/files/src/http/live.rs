//! Live folders: `?events` streams a folder's changes as Server-Sent Events
//! (with `id:`, so that `Last-Event-ID` resumes), and `?changes&since=N`
//! is the long poll for clients without SSE. Both read the engine's
//! numbered journal of changes, filtered as `watch` filters them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use backroom_api::files::{Change, ChangeKind, Origin};
use backroom_frame::Error;
use backroom_frame::auth::Identity;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Body, full};
use crate::paths::RelPath;
use crate::service::State;
use crate::transfer::shows;

/// How often an idle event stream sends a comment, so that proxies and
/// browsers keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// The longest a long poll waits.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// One watcher's view of the journal.
struct Reader {
    state: Arc<State>,
    who: Arc<Identity>,
    path: RelPath,
    after: u64,
    waiter: watch::Receiver<u64>,
}

impl Reader {
    fn new(state: Arc<State>, who: Arc<Identity>, path: RelPath, after: Option<u64>) -> Reader {
        let journal = state.hub.journal();
        let waiter = journal.waiter();
        let after = after.unwrap_or_else(|| journal.latest());
        Reader {
            state,
            who,
            path,
            after,
            waiter,
        }
    }

    /// The changes this watcher may see since the last call, and whether
    /// some were lost (the reader then lists the folder again).
    fn next(&mut self) -> (Vec<(u64, Change)>, bool) {
        self.waiter.borrow_and_update();
        let since = self.state.hub.journal().since(self.after);
        self.after = since.latest;
        let changes = since
            .changes
            .into_iter()
            .filter(|(_, c)| shows(&self.state, &self.who, &self.path, c))
            .collect();
        (changes, since.gap)
    }

    /// Waits until a change is recorded; `false` once the journal is gone.
    async fn changed(&mut self) -> bool {
        self.waiter.changed().await.is_ok()
    }
}

fn overflow() -> Change {
    Change {
        kind: ChangeKind::Overflow,
        path: String::new(),
        to: None,
        origin: Origin::Server,
    }
}

/// One change as an SSE event.
fn event(id: u64, change: &Change) -> Bytes {
    let data = serde_json::to_string(change).unwrap_or_default();
    Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
}

/// The event stream of `path`, from after `last` (the client's
/// `Last-Event-ID`) or from now. It ends when the face stops.
pub fn events(
    state: Arc<State>,
    who: Arc<Identity>,
    path: RelPath,
    last: Option<u64>,
    stop: CancellationToken,
) -> Response<Body> {
    let reader = Reader::new(state, who, path, last);
    // The first bytes tell the client the stream is open and how soon to
    // reconnect.
    let pending = VecDeque::from([Bytes::from_static(b"retry: 2000\n: open\n\n")]);
    let stream = futures_util::stream::unfold(
        (reader, pending, stop),
        |(mut reader, mut pending, stop)| async move {
            loop {
                if let Some(bytes) = pending.pop_front() {
                    return Some((Ok(Frame::data(bytes)), (reader, pending, stop)));
                }
                let (changes, gap) = reader.next();
                if gap {
                    pending.push_back(event(reader.after, &overflow()));
                }
                pending.extend(changes.iter().map(|(id, c)| event(*id, c)));
                if !pending.is_empty() {
                    continue;
                }
                tokio::select! {
                    () = stop.cancelled() => return None,
                    alive = reader.changed() => if !alive { return None },
                    () = tokio::time::sleep(KEEPALIVE) => {
                        pending.push_back(Bytes::from_static(b": keep-alive\n\n"));
                    }
                }
            }
        },
    );
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The long poll: the changes after `since` as soon as there are any, or
/// none once `wait` has passed. Without `since`, it answers at once with the
/// number to start from.
pub async fn changes(
    state: Arc<State>,
    who: Arc<Identity>,
    path: RelPath,
    since: Option<u64>,
    wait: Duration,
) -> Result<Response<Body>, Error> {
    let mut reader = Reader::new(state, who, path, since);
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    let (changes, gap) = loop {
        let (changes, gap) = reader.next();
        if since.is_none() || gap || !changes.is_empty() {
            break (changes, gap);
        }
        match tokio::time::timeout_at(deadline, reader.changed()).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break (changes, gap),
        }
    };
    let changes: Vec<_> = changes
        .into_iter()
        .map(|(id, change)| serde_json::json!({ "id": id, "change": change }))
        .collect();
    let body = serde_json::json!({
        "next": reader.after,
        "overflow": gap,
        "changes": changes,
    });
    let body = serde_json::to_vec(&body)
        .map_err(|e| Error::internal(format!("encode the changes: {e}")))?;
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
