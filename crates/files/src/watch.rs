//! The change feed behind `watch`: the server publishes its own changes, and
//! a `notify` watcher on the root reports what other programs do on disk.
//!
//! A change the server makes also shows up on disk, often before the server
//! has finished it (a rename is seen before the directory's fsync returns).
//! So the server announces a change with [`Hub::expect`] before it touches
//! the disk, disk events on those paths are dropped as echoes for a short
//! window, and each change is reported once, with the server as its origin.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backroom_api::files::{Change, ChangeKind, Origin};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::atomic::is_reserved;

/// Events a slow subscriber may fall behind by before it gets `overflow`.
const BACKLOG: usize = 4096;
/// How long after a server change its disk echo is dropped.
const ECHO_WINDOW: Duration = Duration::from_secs(2);
/// A disk `modified` this soon after another event on the same path is the
/// same change seen twice (inotify reports a write and its close, or a
/// `touch` as create, attributes and close).
const COALESCE_WINDOW: Duration = Duration::from_millis(250);
/// Bound on the remembered paths of both windows.
const MEMORY: usize = 8192;

/// Recent changes, to drop echoes and repeats. The lock is std: it is taken
/// on notify's thread and in handlers, never across an await.
#[derive(Default)]
struct Recent {
    /// Paths the server is changing or has just changed.
    by_server: HashMap<String, Instant>,
    /// Folders whose whole tree the server is changing (a recursive remove,
    /// a folder copy): their contents' events are echoes too.
    trees_by_server: HashMap<String, Instant>,
    by_disk: HashMap<String, Instant>,
}

impl Recent {
    fn remember(map: &mut HashMap<String, Instant>, path: &str, now: Instant, window: Duration) {
        if map.len() >= MEMORY {
            map.retain(|_, at| now.duration_since(*at) < window);
        }
        if map.len() < MEMORY {
            map.insert(path.to_owned(), now);
        }
    }

    fn within(map: &HashMap<String, Instant>, path: &str, now: Instant, window: Duration) -> bool {
        map.get(path)
            .is_some_and(|at| now.duration_since(*at) < window)
    }

    /// Whether the server is changing `path` or has just changed it.
    fn by_server(&self, path: &str, now: Instant) -> bool {
        Recent::within(&self.by_server, path, now, ECHO_WINDOW)
            || ancestors(path).any(|p| Recent::within(&self.trees_by_server, p, now, ECHO_WINDOW))
    }

    /// Whether a disk change should be reported, remembering it if so.
    fn admit_disk(&mut self, change: &Change, now: Instant) -> bool {
        let paths = [Some(change.path.as_str()), change.to.as_deref()];
        let echo = paths.iter().flatten().any(|p| self.by_server(p, now));
        if echo {
            return false;
        }
        let repeat = change.kind == ChangeKind::Modified
            && Recent::within(&self.by_disk, &change.path, now, COALESCE_WINDOW);
        Recent::remember(&mut self.by_disk, &change.path, now, COALESCE_WINDOW);
        !repeat
    }
}

/// `a/b/c`, then `a/b`, then `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(parent, _)| parent))
}

/// How many recent changes the journal keeps for `Last-Event-ID` resumes
/// and long polls.
const JOURNAL: usize = 1024;

/// The recent changes, numbered from 1 in the order they were sent, so that
/// a client that reconnects asks for what came after the last it saw.
pub struct Journal {
    /// The newest number, shared with those who wait for the next. Its lock
    /// is std: taken only to push or copy, never across an await.
    recent: Mutex<(u64, VecDeque<(u64, Change)>)>,
    latest: tokio::sync::watch::Sender<u64>,
}

/// What the journal holds after a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The changes after it, with their numbers.
    pub changes: Vec<(u64, Change)>,
    /// The newest number, to ask from next time.
    pub latest: u64,
    /// Changes after it fell out of the journal: list the folder again.
    pub gap: bool,
}

impl Journal {
    fn new() -> Journal {
        Journal {
            recent: Mutex::new((0, VecDeque::with_capacity(JOURNAL))),
            latest: tokio::sync::watch::Sender::new(0),
        }
    }

    fn record(&self, change: &Change) {
        let latest = {
            let mut recent = self.recent.lock();
            recent.0 += 1;
            let n = recent.0;
            if recent.1.len() == JOURNAL {
                recent.1.pop_front();
            }
            recent.1.push_back((n, change.clone()));
            n
        };
        self.latest.send_replace(latest);
    }

    /// The changes after number `after`.
    pub fn since(&self, after: u64) -> Since {
        let recent = self.recent.lock();
        let oldest = recent.1.front().map_or(recent.0 + 1, |(n, _)| *n);
        Since {
            changes: recent
                .1
                .iter()
                .filter(|(n, _)| *n > after)
                .cloned()
                .collect(),
            latest: recent.0,
            gap: after.saturating_add(1) < oldest && after < recent.0,
        }
    }

    /// The newest number.
    pub fn latest(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Wakes when a change is recorded after the ones seen.
    pub fn waiter(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

/// Sends a change to the subscribers and the journal.
#[derive(Clone)]
struct Feed {
    tx: broadcast::Sender<Change>,
    journal: Arc<Journal>,
}

impl Feed {
    fn send(&self, change: Change) {
        self.journal.record(&change);
        // No subscriber is not an error.
        let _ = self.tx.send(change);
    }
}

/// The change feed of one root.
pub struct Hub {
    feed: Feed,
    root: PathBuf,
    recent: Arc<Mutex<Recent>>,
    /// The disk watcher once started; `Err` records why it could not start.
    disk: Mutex<Option<Result<RecommendedWatcher, String>>>,
}

impl Hub {
    /// `root` must be canonical: notify reports paths under it as given.
    pub fn new(root: PathBuf) -> Hub {
        let (tx, _) = broadcast::channel(BACKLOG);
        Hub {
            feed: Feed {
                tx,
                journal: Arc::new(Journal::new()),
            },
            root,
            recent: Arc::default(),
            disk: Mutex::new(None),
        }
    }

    /// Says that the server is about to change `path` (and `to`, for a
    /// rename), or with `tree` everything under `path` too, so that the disk
    /// events it causes are not reported as other programs' changes.
    pub fn expect(&self, path: &str, to: Option<&str>, tree: bool) {
        let now = Instant::now();
        let mut recent = self.recent.lock();
        Recent::remember(&mut recent.by_server, path, now, ECHO_WINDOW);
        if let Some(to) = to {
            Recent::remember(&mut recent.by_server, to, now, ECHO_WINDOW);
        }
        if tree {
            Recent::remember(&mut recent.trees_by_server, path, now, ECHO_WINDOW);
        }
    }

    /// Reports a change the server made.
    pub fn publish(&self, kind: ChangeKind, path: String, to: Option<String>) {
        let now = Instant::now();
        {
            let mut recent = self.recent.lock();
            Recent::remember(&mut recent.by_server, &path, now, ECHO_WINDOW);
            if let Some(to) = &to {
                Recent::remember(&mut recent.by_server, to, now, ECHO_WINDOW);
            }
        }
        self.feed.send(Change {
            kind,
            path,
            to,
            origin: Origin::Server,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.tx.subscribe()
    }

    /// The numbered recent changes, for clients that resume.
    pub fn journal(&self) -> &Journal {
        &self.feed.journal
    }

    /// Starts the disk watcher on first use. Blocking: a recursive watch
    /// walks the whole tree. Returns whether disk changes are being seen.
    pub fn ensure_disk(&self) -> bool {
        let mut disk = self.disk.lock();
        if disk.is_none() {
            let started = self.start_disk();
            if let Err(e) = &started {
                tracing::warn!(error = %e, "cannot watch the root for changes on disk; watch sees the server's changes only");
            }
            *disk = Some(started);
        }
        matches!(*disk, Some(Ok(_)))
    }

    fn start_disk(&self) -> Result<RecommendedWatcher, String> {
        let feed = self.feed.clone();
        let root = self.root.clone();
        let recent = self.recent.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(error = %e, "disk watcher error");
                    feed.send(overflow());
                    return;
                }
            };
            let now = Instant::now();
            for change in disk_changes(&root, &event) {
                if recent.lock().admit_disk(&change, now) {
                    feed.send(change);
                }
            }
        };
        // Following symlinks would watch, and report names from, whatever
        // tree a link points at, inside the root or not.
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut watcher = RecommendedWatcher::new(handler, config).map_err(|e| e.to_string())?;
        watcher
            .watch(&self.root, RecursiveMode::Recursive)
            .map_err(|e| e.to_string())?;
        Ok(watcher)
    }
}

fn overflow() -> Change {
    Change {
        kind: ChangeKind::Overflow,
        path: String::new(),
        to: None,
        origin: Origin::Disk,
    }
}

/// A path on disk as a client path, or `None` if it is outside the root, not
/// UTF-8, or one of the server's temp files.
fn client_path(root: &Path, path: &Path) -> Option<String> {
    let below = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for part in below.components() {
        let part = part.as_os_str().to_str()?;
        if is_reserved(part) {
            return None;
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// Translates one notify event into the feed's changes.
fn disk_changes(root: &Path, event: &notify::Event) -> Vec<Change> {
    let kind = match event.kind {
        EventKind::Create(_) => ChangeKind::Created,
        EventKind::Remove(_) => ChangeKind::Removed,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Metadata(_)) => ChangeKind::Modified,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            return renamed(root, event).into_iter().collect();
        }
        // Data writes are reported once, at close; the single halves of a
        // rename are reported by its `Both`.
        _ => return Vec::new(),
    };
    event
        .paths
        .iter()
        .filter_map(|p| client_path(root, p))
        .map(|path| Change {
            kind,
            path,
            to: None,
            origin: Origin::Disk,
        })
        .collect()
}

fn renamed(root: &Path, event: &notify::Event) -> Option<Change> {
    let [from, to] = event.paths.as_slice() else {
        return None;
    };
    let to = client_path(root, to)?;
    // A temp file renamed into place is a write of the target.
    let Some(from) = client_path(root, from) else {
        return Some(Change {
            kind: ChangeKind::Modified,
            path: to,
            to: None,
            origin: Origin::Disk,
        });
    };
    Some(Change {
        kind: ChangeKind::Renamed,
        path: from,
        to: Some(to),
        origin: Origin::Disk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, path: &str) -> Change {
        Change {
            kind,
            path: path.into(),
            to: None,
            origin: Origin::Disk,
        }
    }

    #[test]
    fn a_servers_own_change_is_not_echoed_from_disk() {
        let mut recent = Recent::default();
        let now = Instant::now();
        Recent::remember(&mut recent.by_server, "a.txt", now, ECHO_WINDOW);
        assert!(!recent.admit_disk(&change(ChangeKind::Modified, "a.txt"), now));
        assert!(recent.admit_disk(&change(ChangeKind::Modified, "b.txt"), now));
        let later = now + ECHO_WINDOW * 2;
        assert!(recent.admit_disk(&change(ChangeKind::Removed, "a.txt"), later));
    }

    #[test]
    fn a_disk_event_seen_before_the_server_finished_is_an_echo_too() {
        let hub = Hub::new(PathBuf::from("/srv/root"));
        hub.expect("new/r2.pdf", None, false);
        hub.expect("old", None, true);
        let now = Instant::now();
        let mut recent = hub.recent.lock();
        assert!(!recent.admit_disk(&change(ChangeKind::Created, "new/r2.pdf"), now));
        assert!(!recent.admit_disk(&change(ChangeKind::Removed, "old/a/b.txt"), now));
        assert!(!recent.admit_disk(&change(ChangeKind::Removed, "old"), now));
        assert!(recent.admit_disk(&change(ChangeKind::Created, "new/other.pdf"), now));
        assert!(recent.admit_disk(&change(ChangeKind::Created, "older"), now));
    }

    #[test]
    fn the_journal_numbers_changes_and_reports_a_gap() {
        let hub = Hub::new(PathBuf::from("/srv/root"));
        assert_eq!(hub.journal().since(0).latest, 0);
        for i in 0..JOURNAL + 2 {
            hub.publish(ChangeKind::Created, format!("f{i}"), None);
        }
        let last = (JOURNAL + 2) as u64;
        let recent = hub.journal().since(last - 1);
        assert_eq!(recent.latest, last);
        assert!(!recent.gap);
        assert_eq!(recent.changes.len(), 1);
        assert_eq!(recent.changes[0].1.path, format!("f{}", JOURNAL + 1));
        assert!(hub.journal().since(0).gap, "the first two fell out");
        assert!(!hub.journal().since(2).gap);
        assert!(hub.journal().since(last).changes.is_empty());
    }

    #[test]
    fn ancestors_run_from_the_path_up() {
        assert_eq!(
            ancestors("a/b/c").collect::<Vec<_>>(),
            ["a/b/c", "a/b", "a"]
        );
        assert_eq!(ancestors("a").collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn repeated_modifications_are_coalesced() {
        let mut recent = Recent::default();
        let now = Instant::now();
        assert!(recent.admit_disk(&change(ChangeKind::Created, "t"), now));
        assert!(!recent.admit_disk(&change(ChangeKind::Modified, "t"), now));
        assert!(recent.admit_disk(&change(ChangeKind::Removed, "t"), now));
    }

    #[test]
    fn temp_files_and_outside_paths_are_not_reported() {
        let root = Path::new("/srv/root");
        assert_eq!(
            client_path(root, Path::new("/srv/root/a/b")),
            Some("a/b".into())
        );
        assert_eq!(
            client_path(root, Path::new("/srv/root/a/.backroom-tmp-1")),
            None
        );
        assert_eq!(client_path(root, Path::new("/etc/passwd")), None);
        assert_eq!(client_path(root, root), None);
    }
}
