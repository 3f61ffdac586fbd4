//! WebDAV (RFC 4918, classes 1 and 2) over the engine: PROPFIND at depth 0
//! and 1, PROPPATCH, COPY and MOVE with `Overwrite`, LOCK and UNLOCK, and
//! the `If` header. Dead properties and locks are kept in memory by the
//! face: they last until the server restarts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use backroom_frame::Error;
use parking_lot::{Mutex, MutexGuard};

use super::conditional::Validators;
use super::xml::{DAV, Node, escape};
use crate::paths::RelPath;

/// The longest lock granted; a client asking for longer (or `Infinite`)
/// gets this, and refreshes.
const MAX_LOCK: Duration = Duration::from_secs(3600);

/// What PROPFIND asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    All,
    Names,
    Some(Vec<(String, String)>),
}

/// Reads a PROPFIND body; an empty one is `allprop`.
pub fn wanted(body: Option<&Node>) -> Result<Wanted, Error> {
    let Some(root) = body else {
        return Ok(Wanted::All);
    };
    if !root.is(DAV, "propfind") {
        return Err(Error::bad_request("a PROPFIND body is a DAV:propfind"));
    }
    if root.child("propname").is_some() {
        return Ok(Wanted::Names);
    }
    if let Some(prop) = root.child("prop") {
        let names = prop
            .children
            .iter()
            .map(|c| (c.ns.clone(), c.name.clone()))
            .collect();
        return Ok(Wanted::Some(names));
    }
    if root.child("allprop").is_some() {
        return Ok(Wanted::All);
    }
    Err(Error::bad_request(
        "a DAV:propfind names prop, propname or allprop",
    ))
}

/// A resource's dead properties: (namespace, name) to text.
pub type Dead = BTreeMap<(String, String), String>;

/// One PROPPATCH instruction: set a value, or remove (`None`).
pub type Patch = ((String, String), Option<String>);

/// Reads a PROPPATCH body, in document order.
pub fn patches(body: Option<&Node>) -> Result<Vec<Patch>, Error> {
    let root = body
        .filter(|r| r.is(DAV, "propertyupdate"))
        .ok_or_else(|| Error::bad_request("a PROPPATCH body is a DAV:propertyupdate"))?;
    let mut out = Vec::new();
    for action in &root.children {
        let set = match (action.ns.as_str(), action.name.as_str()) {
            (DAV, "set") => true,
            (DAV, "remove") => false,
            _ => continue,
        };
        for prop in action.children.iter().filter(|c| c.is(DAV, "prop")) {
            for p in &prop.children {
                let value = set.then(|| p.text.clone());
                out.push(((p.ns.clone(), p.name.clone()), value));
            }
        }
    }
    Ok(out)
}

/// A lock, as LOCK granted it.
#[derive(Debug, Clone)]
pub struct Lock {
    pub token: String,
    pub path: RelPath,
    pub infinite: bool,
    pub exclusive: bool,
    /// The client's `DAV:owner`, as text.
    pub owner: String,
    pub timeout: Duration,
    expires: Instant,
}

impl Lock {
    /// Whether this lock covers `path`: its own path, or below it at
    /// depth infinity.
    pub fn covers(&self, path: &RelPath) -> bool {
        *path == self.path || (self.infinite && path.starts_with(&self.path))
    }

    /// The `DAV:activelock` of this lock, for `href` of its root.
    pub fn xml(&self, href: &str) -> String {
        format!(
            "<D:activelock><D:locktype><D:write/></D:locktype>\
             <D:lockscope><D:{}/></D:lockscope><D:depth>{}</D:depth>\
             <D:owner>{}</D:owner><D:timeout>Second-{}</D:timeout>\
             <D:locktoken><D:href>{}</D:href></D:locktoken>\
             <D:lockroot><D:href>{}</D:href></D:lockroot></D:activelock>",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            if self.infinite { "infinity" } else { "0" },
            escape(&self.owner),
            self.timeout.as_secs(),
            escape(&self.token),
            escape(href),
        )
    }
}

/// What a LOCK body asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    pub exclusive: bool,
    pub owner: String,
}

/// Reads a LOCK body: `None` for a refresh (no body).
pub fn lock_request(body: Option<&Node>) -> Result<Option<LockRequest>, Error> {
    let Some(root) = body else {
        return Ok(None);
    };
    if !root.is(DAV, "lockinfo") {
        return Err(Error::bad_request("a LOCK body is a DAV:lockinfo"));
    }
    let scope = root
        .child("lockscope")
        .and_then(|s| s.children.first())
        .ok_or_else(|| Error::bad_request("a DAV:lockinfo needs a lockscope"))?;
    let owner = root.child("owner").map(owner_text).unwrap_or_default();
    Ok(Some(LockRequest {
        exclusive: scope.is(DAV, "exclusive"),
        owner,
    }))
}

/// An owner is text or an href; either is kept as text.
fn owner_text(owner: &Node) -> String {
    match owner.child("href") {
        Some(href) => href.text.trim().to_owned(),
        None => owner.text.trim().to_owned(),
    }
}

/// `Timeout: Second-N` (or `Infinite`), capped at [`MAX_LOCK`].
pub fn timeout(header: Option<&str>) -> Duration {
    header
        .and_then(|h| h.split(',').next())
        .and_then(|t| t.trim().strip_prefix("Second-"))
        .and_then(|n| n.parse().ok())
        .map_or(MAX_LOCK, |n: u64| Duration::from_secs(n).min(MAX_LOCK))
}

/// One condition of an `If` header list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    Token(String),
    Etag(String),
}

/// An `If` header (RFC 4918 §10.4): lists of conditions, each maybe
/// negated. Resource tags are read but every list is checked against the
/// request's own resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct If {
    lists: Vec<Vec<(bool, Condition)>>,
}

impl If {
    pub fn parse(raw: &str) -> Result<If, Error> {
        let malformed = || Error::bad_request("the If header is malformed");
        let mut lists = Vec::new();
        let mut rest = raw.trim();
        while !rest.is_empty() {
            if let Some(tagged) = rest.strip_prefix('<') {
                let end = tagged.find('>').ok_or_else(malformed)?;
                rest = tagged[end + 1..].trim_start();
                continue;
            }
            let inner = rest.strip_prefix('(').ok_or_else(malformed)?;
            let end = inner.find(')').ok_or_else(malformed)?;
            lists.push(conditions(&inner[..end]).ok_or_else(malformed)?);
            rest = inner[end + 1..].trim_start();
        }
        if lists.is_empty() {
            return Err(malformed());
        }
        Ok(If { lists })
    }

    /// Every lock token the header names, negated or not: submitting a
    /// token is what lets its owner change a locked resource.
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.lists.iter().flatten().filter_map(|(_, c)| match c {
            Condition::Token(t) => Some(t.as_str()),
            Condition::Etag(_) => None,
        })
    }

    /// Whether some list holds for a resource with `etag` whose covering
    /// locks hold `tokens`.
    pub fn holds(&self, etag: Option<&str>, tokens: &[String]) -> bool {
        self.lists.iter().any(|list| {
            list.iter().all(|(not, condition)| {
                let is = match condition {
                    Condition::Token(t) => tokens.iter().any(|held| held == t),
                    Condition::Etag(e) => etag == Some(e.as_str()),
                };
                is != *not
            })
        })
    }
}

fn conditions(mut text: &str) -> Option<Vec<(bool, Condition)>> {
    let mut out = Vec::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return Some(out);
        }
        let not = match text.strip_prefix("Not") {
            Some(after) => {
                text = after.trim_start();
                true
            }
            None => false,
        };
        let (close, token) = match text.chars().next()? {
            '<' => ('>', true),
            '[' => (']', false),
            _ => return None,
        };
        let end = text.find(close)?;
        let inner = text[1..end].to_owned();
        out.push((
            not,
            if token {
                Condition::Token(inner)
            } else {
                Condition::Etag(inner)
            },
        ));
        text = &text[end + 1..];
    }
}

/// The face's dead properties and locks. Std locks: never held across an
/// await.
#[derive(Default)]
pub struct Store {
    props: Mutex<HashMap<RelPath, Dead>>,
    locks: Mutex<Vec<Lock>>,
    issued: AtomicU64,
}

impl Store {
    fn props(&self) -> MutexGuard<'_, HashMap<RelPath, Dead>> {
        self.props.lock()
    }

    fn locks(&self) -> MutexGuard<'_, Vec<Lock>> {
        let mut locks = self.locks.lock();
        let now = Instant::now();
        locks.retain(|l| l.expires > now);
        locks
    }

    pub fn dead(&self, path: &RelPath) -> Dead {
        self.props().get(path).cloned().unwrap_or_default()
    }

    /// Applies a PROPPATCH, all or nothing: DAV: properties are live and
    /// refused.
    pub fn patch(&self, path: &RelPath, patches: &[Patch]) -> Result<(), (String, String)> {
        if let Some((name, _)) = patches.iter().find(|((ns, _), _)| ns == DAV) {
            return Err(name.clone());
        }
        let mut props = self.props();
        let entry = props.entry(path.clone()).or_default();
        for (name, value) in patches {
            match value {
                Some(v) => entry.insert(name.clone(), v.clone()),
                None => entry.remove(name),
            };
        }
        Ok(())
    }

    /// Forgets the properties and locks at and under `path`.
    pub fn forget(&self, path: &RelPath) {
        self.props().retain(|p, _| !p.starts_with(path));
        self.locks().retain(|l| !l.path.starts_with(path));
    }

    /// Copies the properties at and under `from` to `to`, replacing those
    /// there.
    pub fn copy(&self, from: &RelPath, to: &RelPath) {
        let mut props = self.props();
        props.retain(|p, _| !p.starts_with(to));
        let copied: Vec<_> = props
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, v)| (rebase(p, from, to), v.clone()))
            .collect();
        props.extend(copied);
    }

    /// Moves the properties (a MOVE's locks do not follow, RFC 4918 §9.9.4).
    pub fn rename(&self, from: &RelPath, to: &RelPath) {
        self.copy(from, to);
        self.forget(from);
    }

    /// The locks that cover `path`, or with `tree` also lie below it.
    pub fn covering(&self, path: &RelPath, tree: bool) -> Vec<Lock> {
        self.locks()
            .iter()
            .filter(|l| l.covers(path) || (tree && l.path.starts_with(path)))
            .cloned()
            .collect()
    }

    /// Grants a lock unless one in the way conflicts: any exclusive lock,
    /// or any lock when this one is exclusive.
    pub fn grant(
        &self,
        path: &RelPath,
        infinite: bool,
        request: &LockRequest,
        timeout: Duration,
    ) -> Option<Lock> {
        let mut locks = self.locks();
        let conflict = locks.iter().any(|l| {
            let overlaps = l.covers(path) || (infinite && l.path.starts_with(path));
            overlaps && (l.exclusive || request.exclusive)
        });
        if conflict {
            return None;
        }
        let lock = Lock {
            token: self.token(),
            path: path.clone(),
            infinite,
            exclusive: request.exclusive,
            owner: request.owner.clone(),
            timeout,
            expires: Instant::now() + timeout,
        };
        locks.push(lock.clone());
        Some(lock)
    }

    /// Refreshes the lock `token` if it covers `path`.
    pub fn refresh(&self, path: &RelPath, token: &str, timeout: Duration) -> Option<Lock> {
        let mut locks = self.locks();
        let lock = locks
            .iter_mut()
            .find(|l| l.token == token && l.covers(path))?;
        lock.timeout = timeout;
        lock.expires = Instant::now() + timeout;
        Some(lock.clone())
    }

    /// Removes the lock `token` if it covers `path`.
    pub fn unlock(&self, path: &RelPath, token: &str) -> bool {
        let mut locks = self.locks();
        let before = locks.len();
        locks.retain(|l| !(l.token == token && l.covers(path)));
        locks.len() != before
    }

    /// A new lock token: unique, in the `urn:uuid:` form RFC 4918 suggests.
    fn token(&self) -> String {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let seed = format!("{n}-{now}-{}", std::process::id());
        let hex = blake3::hash(seed.as_bytes()).to_hex();
        format!(
            "urn:uuid:{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }
}

fn rebase(path: &RelPath, from: &RelPath, to: &RelPath) -> RelPath {
    path.components()[from.components().len()..]
        .iter()
        .fold(to.clone(), |at, part| at.join(part))
}

/// What PROPFIND reports of one resource.
pub struct Resource {
    pub href: String,
    pub dir: bool,
    pub size: u64,
    pub validators: Validators,
    pub mime: String,
    pub dead: Dead,
    pub locks: Vec<(Lock, String)>,
}

impl Resource {
    /// The live properties: name, then value XML.
    fn live(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![
            (
                "resourcetype",
                if self.dir {
                    "<D:collection/>".to_owned()
                } else {
                    String::new()
                },
            ),
            ("getlastmodified", self.validators.last_modified()),
            (
                "supportedlock",
                "<D:lockentry><D:lockscope><D:exclusive/></D:lockscope>\
                 <D:locktype><D:write/></D:locktype></D:lockentry>\
                 <D:lockentry><D:lockscope><D:shared/></D:lockscope>\
                 <D:locktype><D:write/></D:locktype></D:lockentry>"
                    .to_owned(),
            ),
            (
                "lockdiscovery",
                self.locks.iter().map(|(l, href)| l.xml(href)).collect(),
            ),
        ];
        if !self.dir {
            props.push(("getcontentlength", self.size.to_string()));
            props.push(("getetag", escape(&self.validators.etag)));
            props.push(("getcontenttype", escape(&self.mime)));
        }
        props
    }

    /// This resource's `DAV:response` to `wanted`.
    pub fn response(&self, wanted: &Wanted, out: &mut String) {
        let live = self.live();
        let _ = write!(out, "<D:response><D:href>{}</D:href>", escape(&self.href));
        let mut found = String::new();
        let mut missing = String::new();
        match wanted {
            Wanted::All | Wanted::Names => {
                let names = matches!(wanted, Wanted::Names);
                for (name, value) in &live {
                    if names {
                        let _ = write!(found, "<D:{name}/>");
                    } else {
                        let _ = write!(found, "<D:{name}>{value}</D:{name}>");
                    }
                }
                for ((ns, name), value) in &self.dead {
                    let value = if names { "" } else { value };
                    dead(ns, name, value, &mut found);
                }
            }
            Wanted::Some(asked) => {
                for (ns, name) in asked {
                    let live_value = (ns == DAV)
                        .then(|| live.iter().find(|(n, _)| n == name))
                        .flatten();
                    if let Some((name, value)) = live_value {
                        let _ = write!(found, "<D:{name}>{value}</D:{name}>");
                    } else if let Some(value) = self.dead.get(&(ns.clone(), name.clone())) {
                        dead(ns, name, value, &mut found);
                    } else {
                        dead(ns, name, "", &mut missing);
                    }
                }
            }
        }
        propstat(&found, "200 OK", out);
        propstat(&missing, "404 Not Found", out);
        out.push_str("</D:response>");
    }
}

fn dead(ns: &str, name: &str, value: &str, out: &mut String) {
    if ns.is_empty() {
        let _ = write!(out, "<{name} xmlns=\"\">{}</{name}>", escape(value));
    } else {
        let _ = write!(
            out,
            "<Z:{name} xmlns:Z=\"{}\">{}</Z:{name}>",
            escape(ns),
            escape(value)
        );
    }
}

pub fn propstat(props: &str, status: &str, out: &mut String) {
    if props.is_empty() {
        return;
    }
    let _ = write!(
        out,
        "<D:propstat><D:prop>{props}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
    );
}

/// Wraps responses in a `DAV:multistatus` document.
pub fn multistatus(responses: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <D:multistatus xmlns:D=\"DAV:\">{responses}</D:multistatus>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_headers_parse_and_hold() {
        let h = If::parse("(<urn:uuid:a> [\"e1\"]) (Not <DAV:no-lock>)").expect("parses");
        assert_eq!(
            h.tokens().collect::<Vec<_>>(),
            ["urn:uuid:a", "DAV:no-lock"]
        );
        assert!(h.holds(Some("\"e1\""), &["urn:uuid:a".into()]));
        assert!(h.holds(None, &[]), "the second list: not DAV:no-lock");
        let tagged = If::parse("<http://h/a> (<urn:uuid:b>)").expect("parses");
        assert!(!tagged.holds(None, &[]));
        assert!(If::parse("(<urn:uuid:a>").is_err());
        assert!(If::parse("junk").is_err());
    }

    #[test]
    fn an_exclusive_lock_excludes_every_other_and_shared_ones_share() {
        let store = Store::default();
        let a = RelPath::parse("a").expect("path");
        let below = RelPath::parse("a/b").expect("path");
        let shared = LockRequest {
            exclusive: false,
            owner: "ann".into(),
        };
        let exclusive = LockRequest {
            exclusive: true,
            owner: "bob".into(),
        };
        let first = store.grant(&a, true, &shared, MAX_LOCK).expect("granted");
        assert!(store.grant(&a, false, &shared, MAX_LOCK).is_some());
        assert!(store.grant(&below, false, &exclusive, MAX_LOCK).is_none());
        assert_eq!(store.covering(&below, false).len(), 1);
        assert!(store.unlock(&below, &first.token));
        assert!(!store.unlock(&below, &first.token));
    }

    #[test]
    fn properties_follow_a_copy_and_a_move() {
        let store = Store::default();
        let (a, b, c) = (
            RelPath::parse("a").expect("a"),
            RelPath::parse("b").expect("b"),
            RelPath::parse("c").expect("c"),
        );
        let name = ("urn:x".to_owned(), "colour".to_owned());
        store
            .patch(&a.join("f"), &[(name.clone(), Some("red".into()))])
            .expect("patched");
        store.copy(&a, &b);
        store.rename(&a, &c);
        assert_eq!(
            store.dead(&b.join("f")).get(&name).map(String::as_str),
            Some("red")
        );
        assert_eq!(
            store.dead(&c.join("f")).get(&name).map(String::as_str),
            Some("red")
        );
        assert!(store.dead(&a.join("f")).is_empty());
        let live = (DAV.to_owned(), "getetag".to_owned());
        assert!(store.patch(&a, &[(live, Some("x".into()))]).is_err());
    }
}
