//! The WebDAV methods of the face: each parses its request, checks the
//! `If` header and the locks, calls the engine, and answers as RFC 4918
//! says. The property and lock logic lives in `dav`.

use std::sync::Arc;

use backroom_api::files::{MoveArgs, WriteArgs, WriteMode};
use backroom_frame::auth::Identity;
use backroom_frame::{Error, ErrorCode};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::dav::{self, If, Lock, Resource};
use super::url::{self, Target};
use super::{Body, Face, answer, blocking, full, status_only};
use crate::ops;
use crate::paths::{RelPath, fs_error};
use crate::rights::Access;
use crate::service::{checked, copy_path, make_dir, move_path, remove_path};
use crate::transfer::{self, Chunks};

/// The largest XML body read (PROPFIND, PROPPATCH, LOCK).
const MAX_XML_BYTES: usize = 1 << 20;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn xml_answer(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    response
}

async fn xml_body(request: Request<Incoming>) -> Result<Option<super::xml::Node>, Error> {
    let body = Limited::new(request.into_body(), MAX_XML_BYTES)
        .collect()
        .await
        .map_err(|e| Error::bad_request(format!("the request body: {e}")))?
        .to_bytes();
    super::xml::parse(&body)
}

/// An upload of no bytes: LOCK on a name that does not exist makes it an
/// empty file.
struct NoBytes;

impl Chunks for NoBytes {
    async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        Ok(None)
    }
}

/// The facts PROPFIND reports, read from the file's (followed) metadata.
struct Stat {
    path: RelPath,
    dir: bool,
    size: u64,
    ino: u64,
    modified_ms: i64,
}

fn stat(root: &cap_std::fs::Dir, path: &RelPath) -> Result<Stat, Error> {
    let meta = root.metadata(path.as_fs()).map_err(|e| fs_error(e, path))?;
    Ok(Stat {
        path: path.clone(),
        dir: meta.is_dir(),
        size: meta.len(),
        ino: cap_std::fs::MetadataExt::ino(&meta),
        modified_ms: ops::modified_ms(&meta),
    })
}

impl Face {
    /// Checks a change of `path` against the `If` header and the locks: a
    /// false `If` is 412, a lock whose token the request does not submit
    /// is 423. `tree` counts the locks below `path` too (DELETE, MOVE's
    /// source); `members` those of its folder (a name added or removed).
    pub(super) async fn may_change(
        &self,
        headers: &HeaderMap,
        path: &RelPath,
        tree: bool,
        members: bool,
    ) -> Result<Option<Response<Body>>, Error> {
        let mut locks = self.dav.covering(path, tree);
        if let Some((parent, _)) = path.split_last().filter(|_| members) {
            locks.extend(self.dav.covering(&parent, false));
        }
        let condition = header(headers, "if").map(If::parse).transpose()?;
        if let Some(condition) = &condition {
            let etag = self.current(path).await?.map(|v| v.etag);
            let held: Vec<String> = locks.iter().map(|l| l.token.clone()).collect();
            if !condition.holds(etag.as_deref(), &held) {
                return Ok(Some(answer(
                    StatusCode::PRECONDITION_FAILED,
                    "the If header does not hold",
                )));
            }
        }
        let submitted: Vec<&str> = condition.iter().flat_map(If::tokens).collect();
        if locks.iter().any(|l| !submitted.contains(&l.token.as_str())) {
            return Ok(Some(answer(
                StatusCode::LOCKED,
                "the resource is locked; submit its lock token in If",
            )));
        }
        Ok(None)
    }

    pub(super) async fn propfind(
        &self,
        request: Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
    ) -> Result<Response<Body>, Error> {
        let depth_one = match header(request.headers(), "depth") {
            Some("0") => false,
            Some("1") => true,
            _ => {
                let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
                     <D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>\n";
                return Ok(xml_answer(StatusCode::FORBIDDEN, body.to_owned()));
            }
        };
        let path = checked(&self.state, who, &target.path.to_string(), Access::Read)?;
        let wanted = dav::wanted(xml_body(request).await?.as_ref())?;
        let (state, viewer, at) = (self.state.clone(), who.clone(), path.clone());
        let stats = blocking(move || {
            let top = stat(&state.root, &at)?;
            let mut stats = Vec::new();
            if top.dir && depth_one {
                let visible = |p: &RelPath| state.visible(&viewer, p);
                let mut after = None;
                loop {
                    let page =
                        ops::list(&state.root, &at, None, after.as_deref(), 10_000, &visible)?;
                    for entry in &page.entries {
                        // A name that vanished or dangles is left out.
                        if let Ok(child) = stat(&state.root, &at.join(&entry.name)) {
                            stats.push(child);
                        }
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
            stats.insert(0, top);
            Ok(stats)
        })
        .await?;
        let mut responses = String::new();
        for stat in stats {
            self.resource(stat).response(&wanted, &mut responses);
        }
        Ok(xml_answer(
            StatusCode::MULTI_STATUS,
            dav::multistatus(&responses),
        ))
    }

    fn resource(&self, stat: Stat) -> Resource {
        let locks = self
            .dav
            .covering(&stat.path, false)
            .into_iter()
            .map(|l| {
                let href = url::encode(&l.path, false);
                (l, href)
            })
            .collect();
        let mime = mime_guess::from_path(stat.path.name())
            .first_or_octet_stream()
            .essence_str()
            .to_owned();
        Resource {
            href: url::encode(&stat.path, stat.dir),
            dir: stat.dir,
            size: stat.size,
            validators: super::conditional::Validators::new(stat.ino, stat.size, stat.modified_ms),
            mime,
            dead: self.dav.dead(&stat.path),
            locks,
        }
    }

    pub(super) async fn proppatch(
        &self,
        request: Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
    ) -> Result<Response<Body>, Error> {
        let path = checked(&self.state, who, &target.path.to_string(), Access::Write)?;
        if let Some(refusal) = self
            .may_change(request.headers(), &path, false, false)
            .await?
        {
            return Ok(refusal);
        }
        let patches = dav::patches(xml_body(request).await?.as_ref())?;
        let (state, at) = (self.state.clone(), path.clone());
        let stat = blocking(move || stat(&state.root, &at)).await?;
        let mut names = String::new();
        let mut out = format!(
            "<D:response><D:href>{}</D:href>",
            super::xml::escape(&url::encode(&path, stat.dir))
        );
        match self.dav.patch(&path, &patches) {
            Ok(()) => {
                for ((ns, name), _) in &patches {
                    names.push_str(&empty_prop(ns, name));
                }
                dav::propstat(&names, "200 OK", &mut out);
            }
            Err(live) => {
                let mut others = String::new();
                for ((ns, name), _) in &patches {
                    if (ns, name) != (&live.0, &live.1) {
                        others.push_str(&empty_prop(ns, name));
                    }
                }
                dav::propstat(&empty_prop(&live.0, &live.1), "403 Forbidden", &mut out);
                dav::propstat(&others, "424 Failed Dependency", &mut out);
            }
        }
        out.push_str("</D:response>");
        Ok(xml_answer(StatusCode::MULTI_STATUS, dav::multistatus(&out)))
    }

    /// The destination of a COPY or MOVE: a path on this server.
    fn destination(&self, headers: &HeaderMap) -> Result<Result<Target, Response<Body>>, Error> {
        let raw = header(headers, "destination")
            .ok_or_else(|| Error::bad_request("COPY and MOVE need a Destination"))?;
        let uri: http::Uri = raw
            .parse()
            .map_err(|_| Error::bad_request("the Destination is not a URI"))?;
        if let (Some(authority), Some(host)) = (uri.authority(), header(headers, HOST.as_str())) {
            if authority.as_str() != host {
                return Ok(Err(answer(
                    StatusCode::BAD_GATEWAY,
                    "the Destination is on another server",
                )));
            }
        }
        Ok(Ok(url::decode(uri.path())?))
    }

    /// COPY (`moving` false) or MOVE.
    pub(super) async fn transfer(
        &self,
        request: Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
        moving: bool,
    ) -> Result<Response<Body>, Error> {
        let headers = request.headers();
        let to = match self.destination(headers)? {
            Ok(to) => to.path,
            Err(refusal) => return Ok(refusal),
        };
        let from = target.path;
        if from == to || from.is_root() || to.is_root() {
            return Ok(answer(
                StatusCode::FORBIDDEN,
                "the source and destination overlap",
            ));
        }
        let overwrite = header(headers, "overwrite") != Some("F");
        if moving {
            if let Some(refusal) = self.may_change(headers, &from, true, true).await? {
                return Ok(refusal);
            }
        }
        if let Some(refusal) = self.may_change(headers, &to, true, true).await? {
            return Ok(refusal);
        }
        let (state, at) = (self.state.clone(), to.clone());
        let existed = blocking(move || Ok(state.root.symlink_metadata(at.as_fs()).is_ok())).await?;
        if existed && !overwrite {
            return Ok(answer(
                StatusCode::PRECONDITION_FAILED,
                "the destination exists and Overwrite is F",
            ));
        }
        let shallow = !moving && header(headers, "depth") == Some("0");
        let (state, at) = (self.state.clone(), from.clone());
        let source = blocking(move || stat(&state.root, &at)).await?;
        if existed {
            checked(&self.state, who, &to.to_string(), Access::Write)?;
            remove_path(&self.state, who, &to.to_string(), true).await?;
            self.dav.forget(&to);
        }
        let done = if shallow && source.dir {
            make_dir(&self.state, who, &to.to_string(), false).await
        } else {
            let args = MoveArgs {
                from: from.to_string(),
                to: to.to_string(),
                overwrite: false,
            };
            if moving {
                move_path(&self.state, who, &args).await
            } else {
                copy_path(&self.state, who, args).await.map(|_| ())
            }
        };
        match done {
            Ok(()) => {}
            // RFC 4918 §9.8.5: a missing parent of the destination is 409.
            Err(e) if e.code == ErrorCode::NotFound => {
                return Ok(answer(StatusCode::CONFLICT, e.message));
            }
            Err(e) => return Err(e),
        }
        if moving {
            self.dav.rename(&from, &to);
        } else if !shallow {
            self.dav.copy(&from, &to);
        }
        Ok(status_only(if existed {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        }))
    }

    pub(super) async fn lock(
        &self,
        request: Request<Incoming>,
        who: &Arc<Identity>,
        target: Target,
        connection: u64,
    ) -> Result<Response<Body>, Error> {
        let path = checked(&self.state, who, &target.path.to_string(), Access::Write)?;
        let headers = request.headers().clone();
        let infinite = header(&headers, "depth") != Some("0");
        let timeout = dav::timeout(header(&headers, "timeout"));
        let asked = dav::lock_request(xml_body(request).await?.as_ref())?;
        let Some(asked) = asked else {
            return self.refresh(&headers, &path, timeout);
        };
        let (state, at) = (self.state.clone(), path.clone());
        let exists = blocking(move || Ok(state.root.metadata(at.as_fs()).is_ok())).await?;
        // Locks on the resource itself conflict or share in `grant`; a new
        // name is a change of its folder, which may be locked.
        if !exists {
            if let Some(refusal) = self.may_change(&headers, &path, false, true).await? {
                return Ok(refusal);
            }
        }
        let Some(lock) = self.dav.grant(&path, infinite, &asked, timeout) else {
            return Ok(answer(StatusCode::LOCKED, "a conflicting lock is held"));
        };
        let mut status = StatusCode::OK;
        if !exists {
            let args = WriteArgs::new(path.to_string(), WriteMode::CreateNew);
            if let Err(e) =
                transfer::write_from(&self.state, who.clone(), connection, args, NoBytes).await
            {
                self.dav.unlock(&path, &lock.token);
                if e.code == ErrorCode::NotFound {
                    return Ok(answer(StatusCode::CONFLICT, e.message));
                }
                return Err(e);
            }
            status = StatusCode::CREATED;
        }
        let mut response = lock_answer(status, &lock, &url::encode(&path, false));
        response.headers_mut().insert(
            "lock-token",
            super::header_value(&format!("<{}>", lock.token))?,
        );
        Ok(response)
    }

    fn refresh(
        &self,
        headers: &HeaderMap,
        path: &RelPath,
        timeout: std::time::Duration,
    ) -> Result<Response<Body>, Error> {
        let condition = header(headers, "if")
            .map(If::parse)
            .transpose()?
            .ok_or_else(|| Error::bad_request("a LOCK refresh names its token in If"))?;
        let refreshed = condition
            .tokens()
            .find_map(|token| self.dav.refresh(path, token, timeout));
        match refreshed {
            Some(lock) => Ok(lock_answer(
                StatusCode::OK,
                &lock,
                &url::encode(&lock.path, false),
            )),
            None => Ok(answer(
                StatusCode::PRECONDITION_FAILED,
                "no lock of that token covers this resource",
            )),
        }
    }

    pub(super) fn unlock(
        &self,
        headers: &HeaderMap,
        who: &Arc<Identity>,
        target: Target,
    ) -> Result<Response<Body>, Error> {
        let path = checked(&self.state, who, &target.path.to_string(), Access::Write)?;
        let token = header(headers, "lock-token")
            .map(|t| t.trim().trim_start_matches('<').trim_end_matches('>'))
            .ok_or_else(|| Error::bad_request("UNLOCK needs a Lock-Token"))?;
        if self.dav.unlock(&path, token) {
            Ok(status_only(StatusCode::NO_CONTENT))
        } else {
            Ok(answer(
                StatusCode::CONFLICT,
                "no lock of that token covers this resource",
            ))
        }
    }
}

fn empty_prop(ns: &str, name: &str) -> String {
    let mut out = String::new();
    if ns.is_empty() {
        out.push_str(&format!("<{name} xmlns=\"\"/>"));
    } else {
        out.push_str(&format!(
            "<Z:{name} xmlns:Z=\"{}\"/>",
            super::xml::escape(ns)
        ));
    }
    out
}

fn lock_answer(status: StatusCode, lock: &Lock, href: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <D:prop xmlns:D=\"DAV:\"><D:lockdiscovery>{}</D:lockdiscovery></D:prop>\n",
        lock.xml(href)
    );
    xml_answer(status, body)
}
