//! The blocking filesystem operations behind each method. Every function
//! works through the root's `Dir` capability and runs on a blocking thread.

use std::io::{self, Read};
use std::ops::ControlFlow;
use std::time::UNIX_EPOCH;

use backroom_api::files::{Algorithm, Checksum, Entry, FindResult, Found, Kind, Listing, Usage};
use backroom_frame::Error;
use cap_std::fs::{Dir, Metadata, MetadataExt};
use globset::{GlobBuilder, GlobMatcher};

use crate::atomic::{self, TempFile, is_reserved};
use crate::paths::{RelPath, fs_error, open_parent};

/// How deep `find` and `du` descend; deeper trees are reported as an error
/// rather than risk the stack.
const MAX_DEPTH: usize = 512;
/// The read size of checksums and copies.
const BLOCK: usize = 256 * 1024;

/// Describes a file from its (not followed) metadata.
pub fn entry(name: &str, meta: &Metadata) -> Entry {
    let kind = if meta.is_symlink() {
        Kind::Symlink
    } else if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    Entry {
        name: name.to_owned(),
        kind,
        size: meta.len(),
        modified_ms: modified_ms(meta),
        mode: meta.mode() & 0o7777,
    }
}

pub fn modified_ms(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Compiles a client's glob, refusing a malformed one.
pub fn glob(pattern: &str) -> Result<GlobMatcher, Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::bad_request(format!("invalid glob {pattern:?}: {e}")))
}

pub fn stat(root: &Dir, path: &RelPath) -> Result<Entry, Error> {
    let meta = root
        .symlink_metadata(path.as_fs())
        .map_err(|e| fs_error(e, path))?;
    Ok(entry(path.name(), &meta))
}

/// One page of a directory. Every name is read and sorted (the order must be
/// stable across pages), but only the page's entries are stat'ed.
pub fn list(
    root: &Dir,
    path: &RelPath,
    glob: Option<&GlobMatcher>,
    after: Option<&str>,
    limit: usize,
    visible: &dyn Fn(&RelPath) -> bool,
) -> Result<Listing, Error> {
    let dir = root.open_dir(path.as_fs()).map_err(|e| fs_error(e, path))?;
    let mut names = Vec::new();
    for item in dir.entries().map_err(|e| fs_error(e, path))? {
        let item = item.map_err(|e| fs_error(e, path))?;
        let Ok(name) = item.file_name().into_string() else {
            // A name that is not UTF-8 cannot be named in a request either.
            continue;
        };
        if !is_reserved(&name) && after.is_none_or(|a| name.as_str() > a) {
            names.push(name);
        }
    }
    names.sort_unstable();
    // The costlier filters run in order, only until the page is full.
    let mut page = names
        .into_iter()
        .filter(|name| glob.is_none_or(|g| g.is_match(name)))
        .filter(|name| visible(&path.join(name)));
    let names: Vec<String> = page.by_ref().take(limit).collect();
    let more = page.next().is_some();
    let mut entries = Vec::with_capacity(names.len());
    for name in &names {
        match dir.symlink_metadata(name) {
            Ok(meta) => entries.push(entry(name, &meta)),
            // Removed since it was listed: leave it out.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fs_error(e, &path.join(name))),
        }
    }
    let next = if more { names.last().cloned() } else { None };
    Ok(Listing { entries, next })
}

pub fn mkdir(root: &Dir, path: &RelPath, parents: bool) -> Result<(), Error> {
    if parents {
        root.create_dir_all(path.as_fs())
            .map_err(|e| fs_error(e, path))?;
        let (dir, _) = open_parent(root, path)?;
        return atomic::sync_dir(&dir).map_err(|e| fs_error(e, path));
    }
    let (dir, name) = open_parent(root, path)?;
    dir.create_dir(name).map_err(|e| fs_error(e, path))?;
    atomic::sync_dir(&dir).map_err(|e| fs_error(e, path))
}

/// Removes a file, a symlink (not its target) or a directory.
pub fn remove(root: &Dir, path: &RelPath, recursive: bool) -> Result<(), Error> {
    let (dir, name) = open_parent(root, path)?;
    let meta = dir.symlink_metadata(name).map_err(|e| fs_error(e, path))?;
    let removed = if !meta.is_dir() {
        dir.remove_file(name)
    } else if recursive {
        dir.remove_dir_all(name)
    } else {
        dir.remove_dir(name)
    };
    removed.map_err(|e| match e.kind() {
        io::ErrorKind::DirectoryNotEmpty => Error::conflict(format!(
            "{path} is a directory that is not empty; remove it recursively"
        )),
        _ => fs_error(e, path),
    })?;
    atomic::sync_dir(&dir).map_err(|e| fs_error(e, path))
}

/// Moves a file or directory, atomically, without replacing unless asked.
pub fn rename(root: &Dir, from: &RelPath, to: &RelPath, overwrite: bool) -> Result<(), Error> {
    if to.starts_with(from) {
        return Err(Error::bad_request(format!(
            "cannot move {from} into itself ({to})"
        )));
    }
    let (from_dir, from_name) = open_parent(root, from)?;
    let (to_dir, to_name) = open_parent(root, to)?;
    let moved = if overwrite {
        rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(io::Error::from)
    } else {
        atomic::rename_noreplace(&from_dir, from_name, &to_dir, to_name)
    };
    moved.map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            Error::conflict(format!("{to} already exists; ask to overwrite it"))
        }
        io::ErrorKind::NotFound => Error::not_found(format!("{from} does not exist")),
        _ => fs_error(e, from),
    })?;
    atomic::sync_dir(&to_dir).map_err(|e| fs_error(e, to))?;
    atomic::sync_dir(&from_dir).map_err(|e| fs_error(e, from))
}

/// Opens a regular file for reading, following symlinks only within the root.
pub fn open_file(root: &Dir, path: &RelPath) -> Result<(cap_std::fs::File, Metadata), Error> {
    let file = root.open(path.as_fs()).map_err(|e| fs_error(e, path))?;
    let meta = file.metadata().map_err(|e| fs_error(e, path))?;
    if !meta.is_file() {
        return Err(Error::bad_request(format!("{path} is not a file")));
    }
    Ok((file, meta))
}

/// Copies a file through a temp file beside the destination, so the copy
/// appears whole or not at all. `check` may refuse before any byte moves.
pub fn copy(
    root: &Dir,
    from: &RelPath,
    to: &RelPath,
    overwrite: bool,
    check: &dyn Fn(u64) -> Result<(), Error>,
) -> Result<u64, Error> {
    let followed = root.metadata(from.as_fs()).map_err(|e| fs_error(e, from))?;
    if followed.is_dir() {
        return copy_tree(root, from, to, check);
    }
    let (mut source, meta) = open_file(root, from)?;
    check(meta.len())?;
    let (dir, name) = open_parent(root, to)?;
    if !overwrite && dir.symlink_metadata(name).is_ok() {
        return Err(Error::conflict(format!(
            "{to} already exists; ask to overwrite it"
        )));
    }
    let mut temp = TempFile::create(dir, name).map_err(|e| fs_error(e, to))?;
    let mut buf = vec![0; BLOCK];
    loop {
        let n = source.read(&mut buf).map_err(|e| fs_error(e, from))?;
        if n == 0 {
            break;
        }
        temp.write(&buf[..n]).map_err(|e| fs_error(e, to))?;
    }
    temp.commit(overwrite).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            Error::conflict(format!("{to} already exists; ask to overwrite it"))
        }
        _ => fs_error(e, to),
    })
}

/// Copies a directory tree into a hidden temp directory beside the
/// destination, then renames it into place: the copy appears whole or not at
/// all. It never merges into or replaces an existing directory. Symlinks are
/// copied as links; sockets and devices are left out.
fn copy_tree(
    root: &Dir,
    from: &RelPath,
    to: &RelPath,
    check: &dyn Fn(u64) -> Result<(), Error>,
) -> Result<u64, Error> {
    if to.starts_with(from) {
        return Err(Error::bad_request(format!(
            "cannot copy {from} into itself ({to})"
        )));
    }
    let everything = |_: &RelPath| true;
    check(du(root, from, &everything)?.bytes)?;
    let (dir, name) = open_parent(root, to)?;
    if dir.symlink_metadata(name).is_ok() {
        return Err(Error::conflict(format!(
            "{to} already exists; copy does not merge or replace directories"
        )));
    }
    let temp = atomic::TempDir::create(&dir).map_err(|e| fs_error(e, to))?;
    let source = open_tree(root, from)?;
    let bytes = copy_contents(&source, temp.dir(), from, 0)?;
    temp.commit(name).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => Error::conflict(format!("{to} already exists")),
        _ => fs_error(e, to),
    })?;
    Ok(bytes)
}

fn copy_contents(src: &Dir, dst: &Dir, at: &RelPath, depth: usize) -> Result<u64, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::bad_request(format!(
            "{at} is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let mut bytes = 0;
    for item in src.entries().map_err(|e| fs_error(e, at))? {
        let item = item.map_err(|e| fs_error(e, at))?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if is_reserved(&name) {
            continue;
        }
        let path = at.join(&name);
        let failed = |e| fs_error(e, &path);
        let meta = src.symlink_metadata(&name).map_err(failed)?;
        if meta.is_dir() {
            dst.create_dir(&name).map_err(failed)?;
            let (sub_src, sub_dst) = (src.open_dir(&name), dst.open_dir(&name));
            bytes += copy_contents(
                &sub_src.map_err(failed)?,
                &sub_dst.map_err(failed)?,
                &path,
                depth + 1,
            )?;
        } else if meta.is_symlink() {
            let target = src.read_link_contents(&name).map_err(failed)?;
            dst.symlink_contents(target, &name).map_err(failed)?;
        } else if meta.is_file() {
            let mut from = src.open(&name).map_err(failed)?.into_std();
            let to = dst
                .open_with(
                    &name,
                    cap_std::fs::OpenOptions::new().write(true).create_new(true),
                )
                .map_err(failed)?;
            let mut to = to.into_std();
            bytes += io::copy(&mut from, &mut to).map_err(failed)?;
            to.sync_all().map_err(failed)?;
        }
    }
    atomic::sync_dir(dst).map_err(|e| fs_error(e, at))?;
    Ok(bytes)
}

pub fn checksum(root: &Dir, path: &RelPath, algorithm: Algorithm) -> Result<Checksum, Error> {
    let (mut file, _) = open_file(root, path)?;
    let (hex, size) = backroom_api::files::digest(&mut file, algorithm, u64::MAX)
        .map_err(|e| fs_error(e, path))?;
    Ok(Checksum {
        algorithm,
        hex,
        size,
    })
}

/// Walks a subtree without following symlinks, in sorted order, skipping the
/// server's temp files and subtrees that `visible` hides.
fn walk(
    dir: &Dir,
    at: &RelPath,
    depth: usize,
    visible: &dyn Fn(&RelPath) -> bool,
    visit: &mut dyn FnMut(&RelPath, &Metadata) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::bad_request(format!(
            "{at} is nested more than {MAX_DEPTH} levels deep"
        )));
    }
    let mut items = Vec::new();
    for item in dir.entries().map_err(|e| fs_error(e, at))? {
        let item = item.map_err(|e| fs_error(e, at))?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        if !is_reserved(&name) {
            items.push(name);
        }
    }
    items.sort_unstable();
    for name in items {
        let path = at.join(&name);
        if !visible(&path) {
            continue;
        }
        let meta = match dir.symlink_metadata(&name) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fs_error(e, &path)),
        };
        if visit(&path, &meta).is_break() {
            return Ok(ControlFlow::Break(()));
        }
        if meta.is_dir() {
            let sub = match dir.open_dir(&name) {
                Ok(sub) => sub,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(fs_error(e, &path)),
            };
            if walk(&sub, &path, depth + 1, visible, visit)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
    }
    Ok(ControlFlow::Continue(()))
}

fn open_tree(root: &Dir, path: &RelPath) -> Result<Dir, Error> {
    root.open_dir(path.as_fs()).map_err(|e| fs_error(e, path))
}

/// The apparent size of a subtree. A file counts as itself.
pub fn du(root: &Dir, path: &RelPath, visible: &dyn Fn(&RelPath) -> bool) -> Result<Usage, Error> {
    let top = root
        .symlink_metadata(path.as_fs())
        .map_err(|e| fs_error(e, path))?;
    if !top.is_dir() {
        return Ok(Usage {
            bytes: top.len(),
            files: 1,
            dirs: 0,
        });
    }
    let mut usage = Usage {
        bytes: 0,
        files: 0,
        dirs: 1,
    };
    // Stopping early is the visitor's own doing; nothing to report.
    let _: ControlFlow<()> = walk(&open_tree(root, path)?, path, 0, visible, &mut |_, meta| {
        if meta.is_dir() {
            usage.dirs += 1;
        } else {
            usage.files += 1;
            usage.bytes += meta.len();
        }
        ControlFlow::Continue(())
    })?;
    Ok(usage)
}

/// How `find` matches a path.
pub enum Matcher {
    Substring(String),
    Glob { glob: GlobMatcher, whole_path: bool },
}

impl Matcher {
    pub fn new(pattern: &str, is_glob: bool) -> Result<Matcher, Error> {
        if pattern.is_empty() {
            return Err(Error::bad_request("find needs a non-empty pattern"));
        }
        if !is_glob {
            return Ok(Matcher::Substring(pattern.to_owned()));
        }
        Ok(Matcher::Glob {
            glob: glob(pattern)?,
            whole_path: pattern.contains('/'),
        })
    }

    fn matches(&self, below: &str, name: &str) -> bool {
        match self {
            Matcher::Substring(s) => name.contains(s.as_str()),
            Matcher::Glob { glob, whole_path } => {
                glob.is_match(if *whole_path { below } else { name })
            }
        }
    }
}

/// Searches a subtree, stopping after `limit` matches.
pub fn find(
    root: &Dir,
    path: &RelPath,
    matcher: &Matcher,
    limit: usize,
    visible: &dyn Fn(&RelPath) -> bool,
) -> Result<FindResult, Error> {
    let mut matches = Vec::new();
    let mut truncated = false;
    let base = path.components().len();
    // Stopping early is the visitor's own doing; nothing to report.
    let _: ControlFlow<()> = walk(
        &open_tree(root, path)?,
        path,
        0,
        visible,
        &mut |at, meta| {
            let below = at.components()[base..].join("/");
            if !matcher.matches(&below, at.name()) {
                return ControlFlow::Continue(());
            }
            if matches.len() == limit {
                truncated = true;
                return ControlFlow::Break(());
            }
            let e = entry(at.name(), meta);
            matches.push(Found {
                path: at.to_string(),
                kind: e.kind,
                size: e.size,
            });
            ControlFlow::Continue(())
        },
    )?;
    Ok(FindResult { matches, truncated })
}

/// Removes what interrupted uploads left: every non-resumable temp file (no
/// upload is in flight at startup) and resumable ones older than `keep`.
/// Returns how many files it removed.
pub fn sweep(root: &Dir, keep: std::time::Duration) -> Result<u64, Error> {
    let mut removed = 0;
    sweep_dir(root, &RelPath::root(), keep, 0, &mut removed)?;
    Ok(removed)
}

fn sweep_dir(
    dir: &Dir,
    at: &RelPath,
    keep: std::time::Duration,
    depth: usize,
    removed: &mut u64,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    for item in dir.entries().map_err(|e| fs_error(e, at))? {
        let item = item.map_err(|e| fs_error(e, at))?;
        let Ok(name) = item.file_name().into_string() else {
            continue;
        };
        let Ok(meta) = dir.symlink_metadata(&name) else {
            continue;
        };
        if meta.is_dir() && name.starts_with(atomic::TEMP_PREFIX) {
            // A directory copy that never finished.
            if dir.remove_dir_all(&name).is_ok() {
                *removed += 1;
            }
            continue;
        }
        if meta.is_dir() {
            if let Ok(sub) = dir.open_dir(&name) {
                sweep_dir(&sub, &at.join(&name), keep, depth + 1, removed)?;
            }
            continue;
        }
        let stale = name.starts_with(atomic::TEMP_PREFIX)
            || (name.starts_with(atomic::PART_PREFIX) && older_than(&meta, keep));
        if stale && dir.remove_file(&name).is_ok() {
            *removed += 1;
        }
    }
    Ok(())
}

fn older_than(meta: &Metadata, keep: std::time::Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|t| t.into_std().elapsed().ok())
        .is_some_and(|age| age > keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn root() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).expect("open");
        (tmp, dir)
    }

    #[test]
    fn the_sweep_removes_temp_files_and_keeps_fresh_resumable_parts() {
        let (tmp, dir) = root();
        let sub = tmp.path().join("a/b");
        std::fs::create_dir_all(&sub).expect("dirs");
        std::fs::write(sub.join(".backroom-tmp-1-2-3"), "half").expect("temp");
        std::fs::create_dir(sub.join(".backroom-tmp-1-4-dir")).expect("temp dir");
        std::fs::write(sub.join(".backroom-tmp-1-4-dir/x"), "x").expect("in temp dir");
        std::fs::write(sub.join(".backroom-part-n-00"), "part").expect("part");
        std::fs::write(sub.join("kept.txt"), "mine").expect("file");

        let removed = sweep(&dir, Duration::from_secs(3600)).expect("sweep");
        assert_eq!(removed, 2);
        let mut left: Vec<_> = std::fs::read_dir(&sub)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        left.sort();
        assert_eq!(left, [".backroom-part-n-00", "kept.txt"]);

        assert_eq!(sweep(&dir, Duration::ZERO).expect("sweep"), 1);
        assert!(sub.join("kept.txt").exists());
    }

    #[test]
    fn a_conflicting_rename_leaves_both_files() {
        let (tmp, dir) = root();
        std::fs::write(tmp.path().join("a"), "a").expect("a");
        std::fs::write(tmp.path().join("b"), "b").expect("b");
        let err = atomic::rename_noreplace(&dir, "a", &dir, "b").expect_err("exists");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("b")).expect("b"),
            "b"
        );
        assert!(tmp.path().join("a").exists());
    }

    #[test]
    fn a_dropped_temp_file_removes_itself_unless_resumable() {
        let (tmp, dir) = root();
        let mut temp = TempFile::create(dir.try_clone().expect("dir"), "t").expect("temp");
        temp.write(b"data").expect("write");
        drop(temp);
        let mut part = TempFile::start_part(
            dir.try_clone().expect("dir"),
            "t",
            "id",
            backroom_api::files::WriteMode::Overwrite,
        )
        .expect("part");
        part.write(b"data").expect("write");
        drop(part);
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with(atomic::PART_PREFIX), "{names:?}");
        let (mode, held) = atomic::find_part(&dir, "t", "id").expect("found");
        assert_eq!((mode, held), (backroom_api::files::WriteMode::Overwrite, 4));
    }
}
