//! The files service: one place per method that parses its arguments, checks
//! rights, runs the blocking operation and encodes the reply.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use backroom_api::files::{
    ChangeKind, ChecksumArgs, DEFAULT_PAGE, FindArgs, ListArgs, MkdirArgs, MoveArgs, PathArgs,
    RemoveArgs, Uploads, Watching, Written, method,
};
use backroom_frame::Error;
use backroom_frame::auth::Identity;
use backroom_frame::server::{Call, Reply, Service, Vital};
use cap_std::fs::Dir;
use parking_lot::Mutex;

use crate::Limits;
use crate::ops;
use crate::paths::RelPath;
use crate::rights::{Access, Rights};
use crate::transfer;
use crate::vitals::Meter;
use crate::watch::Hub;

/// The most matches one `find` returns.
const MAX_FIND: u32 = 10_000;
/// The largest `list` page.
const MAX_PAGE: u32 = 10_000;

/// What every request of one server shares.
pub struct State {
    pub root: Dir,
    pub hub: Hub,
    pub rights: Rights,
    pub limits: Limits,
    /// Transfers running per connection, keyed by the runtime's connection
    /// number. A std lock: never held across an await.
    pub transfers: Mutex<HashMap<u64, u32>>,
    /// Bytes that uploads in flight have written but not committed, per user,
    /// counted against the user's quotas. A std lock, as above.
    pub reserved: Mutex<HashMap<String, u64>>,
    /// One lock per resumable upload (path and id), held from its start
    /// until its temp file is committed or closed, so that a resume or a
    /// status never meets a file thread still writing. A std lock around
    /// the map; the per-upload locks are async.
    pub uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The counters of the vital signs, bumped by both faces' transfers.
    pub meter: Arc<Meter>,
}

impl State {
    pub fn new(root: Dir, canonical: PathBuf, rights: Rights, limits: Limits) -> State {
        State {
            meter: Arc::new(Meter::new(&root)),
            root,
            hub: Hub::new(canonical),
            rights,
            limits,
            transfers: Mutex::default(),
            reserved: Mutex::default(),
            uploads: Mutex::default(),
        }
    }

    /// Removes the leftovers of interrupted uploads; logs and carries on if
    /// part of the tree cannot be read.
    pub async fn sweep(self: &Arc<State>) {
        let state = self.clone();
        let keep = self.limits.keep_partial;
        let swept = blocking(move || {
            let removed = ops::sweep(&state.root, keep)?;
            let pruned = crate::uploads::prune(&state.root)
                .map_err(|e| crate::paths::fs_error(e, &RelPath::root()))?;
            Ok(removed + pruned)
        });
        match swept.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed the temp files of interrupted uploads"),
            Err(e) => {
                tracing::warn!(error = %e, "could not sweep the temp files of interrupted uploads")
            }
        }
    }

    /// Whether the caller may see `path` at all.
    pub fn visible(&self, who: &Identity, path: &RelPath) -> bool {
        self.rights.access(who, path) > Access::None
    }
}

/// Runs blocking filesystem work off the async workers.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a filesystem task failed: {e}")))?
}

/// The [`Service`] that serves one root.
pub struct FilesService(pub Arc<State>);

impl Service for FilesService {
    async fn call(&self, call: Call) -> Result<Reply, Error> {
        let state = &self.0;
        match call.method.as_str() {
            method::LIST => list(state, &call).await,
            method::STAT => stat(state, &call).await,
            method::READ => transfer::read(state, &call).await,
            method::WRITE => transfer::write(state, call).await,
            method::UPLOAD_STATUS => transfer::upload_status(state, &call).await,
            method::UPLOADS => uploads(state, &call).await,
            method::ABORT_UPLOAD => transfer::abort_upload(state, &call).await,
            method::MKDIR => mkdir(state, &call).await,
            method::REMOVE => remove(state, &call).await,
            method::RENAME | method::MOVE => rename(state, &call).await,
            method::COPY => copy(state, &call).await,
            method::CHECKSUM => checksum(state, &call).await,
            method::FIND => find(state, &call).await,
            method::DU => du(state, &call).await,
            method::WATCH => watch(state, &call).await,
            other => Err(Error::unknown_method(other)),
        }
    }

    fn vitals(&self) -> Vec<Vital> {
        self.0.meter.vitals()
    }
}

/// Parses a path and checks the caller's access to it.
pub fn checked(state: &State, who: &Identity, raw: &str, needed: Access) -> Result<RelPath, Error> {
    let path = RelPath::parse(raw)?;
    state.rights.require(who, &path, needed)?;
    Ok(path)
}

async fn list(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: ListArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let glob = args.glob.as_deref().map(ops::glob).transpose()?;
    let limit = match args.limit {
        0 => DEFAULT_PAGE,
        n => n.min(MAX_PAGE),
    } as usize;
    let (state, who) = (state.clone(), call.identity.clone());
    let listing = blocking(move || {
        let visible = |p: &RelPath| state.visible(&who, p);
        ops::list(
            &state.root,
            &path,
            glob.as_ref(),
            args.after.as_deref(),
            limit,
            &visible,
        )
    })
    .await?;
    Reply::value(&listing)
}

async fn uploads(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let (state, who) = (state.clone(), call.identity.clone());
    let uploads = blocking(move || crate::uploads::list(&state.root, &who)).await?;
    Reply::value(&Uploads { uploads })
}

async fn stat(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: PathArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let state = state.clone();
    let entry = blocking(move || ops::stat(&state.root, &path)).await?;
    Reply::value(&entry)
}

async fn mkdir(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: MkdirArgs = call.args()?;
    make_dir(state, &call.identity, &args.path, args.parents).await?;
    Reply::value(&())
}

/// Makes a directory as `who`, with `parents` making the missing ones too.
pub async fn make_dir(
    state: &Arc<State>,
    who: &Identity,
    raw: &str,
    parents: bool,
) -> Result<(), Error> {
    let path = checked(state, who, raw, Access::Write)?;
    let worker = state.clone();
    let target = path.clone();
    let made = blocking(move || {
        let made = if parents {
            missing_dirs(&worker.root, &target)
        } else {
            vec![target.clone()]
        };
        for dir in &made {
            worker.hub.expect(&dir.to_string(), None, false);
        }
        ops::mkdir(&worker.root, &target, parents).map(|()| made)
    })
    .await?;
    tracing::info!(user = %who.user, %path, "made a directory");
    // Every folder made, parents first, is the server's change: its disk
    // echo must not be reported as another program's.
    for dir in made {
        state
            .hub
            .publish(ChangeKind::Created, dir.to_string(), None);
    }
    Ok(())
}

/// The directories that `mkdir` with parents will make for `path`: the first
/// missing component and every one below it, outermost first.
fn missing_dirs(root: &Dir, path: &RelPath) -> Vec<RelPath> {
    let mut prefix = RelPath::root();
    let mut missing = Vec::new();
    for name in path.components() {
        prefix = prefix.join(name);
        if !missing.is_empty() || root.symlink_metadata(prefix.as_fs()).is_err() {
            missing.push(prefix.clone());
        }
    }
    missing
}

async fn remove(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: RemoveArgs = call.args()?;
    remove_path(state, &call.identity, &args.path, args.recursive).await?;
    Reply::value(&())
}

/// Removes a file or directory as `who`; a directory with contents needs
/// `recursive`, and write access to its whole tree.
pub async fn remove_path(
    state: &Arc<State>,
    who: &Identity,
    raw: &str,
    recursive: bool,
) -> Result<(), Error> {
    let path = RelPath::parse(raw)?;
    state.rights.require_tree(who, &path, Access::Write)?;
    let worker = state.clone();
    let target = path.clone();
    state.hub.expect(&path.to_string(), None, recursive);
    blocking(move || ops::remove(&worker.root, &target, recursive)).await?;
    tracing::info!(user = %who.user, %path, recursive, "removed");
    state
        .hub
        .publish(ChangeKind::Removed, path.to_string(), None);
    Ok(())
}

async fn rename(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: MoveArgs = call.args()?;
    move_path(state, &call.identity, &args).await?;
    Reply::value(&())
}

/// Moves `args.from` to `args.to` as `who`.
pub async fn move_path(
    state: &Arc<State>,
    who: &Arc<Identity>,
    args: &MoveArgs,
) -> Result<(), Error> {
    let from = RelPath::parse(&args.from)?;
    let to = checked(state, who, &args.to, Access::Write)?;
    state.rights.require_tree(who, &from, Access::Write)?;
    let (worker, mover) = (state.clone(), who.clone());
    let (source, target, overwrite) = (from.clone(), to.clone(), args.overwrite);
    state
        .hub
        .expect(&from.to_string(), Some(&to.to_string()), false);
    blocking(move || {
        transfer::check_move_quota(&worker, &mover, &source, &target)?;
        ops::rename(&worker.root, &source, &target, overwrite)
    })
    .await?;
    tracing::info!(user = %who.user, %from, %to, "renamed");
    state
        .hub
        .publish(ChangeKind::Renamed, from.to_string(), Some(to.to_string()));
    Ok(())
}

async fn copy(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: MoveArgs = call.args()?;
    let written = copy_path(state, &call.identity, args).await?;
    Reply::value(&written)
}

/// Copies `args.from` to `args.to` as `who`.
pub async fn copy_path(
    state: &Arc<State>,
    who: &Arc<Identity>,
    args: MoveArgs,
) -> Result<Written, Error> {
    let from = RelPath::parse(&args.from)?;
    // A directory copy must not carry out what the caller may not read.
    state.rights.require_tree(who, &from, Access::Read)?;
    let to = checked(state, who, &args.to, Access::Write)?;
    let (worker, copier) = (state.clone(), who.clone());
    let target = to.clone();
    state.hub.expect(&to.to_string(), None, true);
    let (size, existed) = blocking(move || {
        let existed = worker.root.symlink_metadata(target.as_fs()).is_ok();
        let check = |size| transfer::check_added_bytes(&worker, &copier, &target, size);
        let size = ops::copy(&worker.root, &from, &target, args.overwrite, &check)?;
        Ok((size, existed))
    })
    .await?;
    let kind = if existed {
        ChangeKind::Modified
    } else {
        ChangeKind::Created
    };
    tracing::info!(user = %who.user, to = %to, size, "copied");
    state.hub.publish(kind, to.to_string(), None);
    Ok(Written {
        path: to.to_string(),
        size,
    })
}

async fn checksum(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: ChecksumArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let _slot = transfer::Slot::take(state, call.connection)?;
    let worker = state.clone();
    let sum = blocking(move || ops::checksum(&worker.root, &path, args.algorithm)).await?;
    Reply::value(&sum)
}

async fn find(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: FindArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let matcher = ops::Matcher::new(&args.pattern, args.glob)?;
    let limit = match args.limit {
        0 => 1000,
        n => n.min(MAX_FIND),
    } as usize;
    let (state, who) = (state.clone(), call.identity.clone());
    let found = blocking(move || {
        let visible = |p: &RelPath| state.visible(&who, p);
        ops::find(&state.root, &path, &matcher, limit, &visible)
    })
    .await?;
    Reply::value(&found)
}

async fn du(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: PathArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let (state, who) = (state.clone(), call.identity.clone());
    let usage = blocking(move || {
        let visible = |p: &RelPath| state.visible(&who, p);
        ops::du(&state.root, &path, &visible)
    })
    .await?;
    Reply::value(&usage)
}

async fn watch(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: PathArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let worker = state.clone();
    let target = path.clone();
    blocking(move || ops::stat(&worker.root, &target)).await?;
    // Subscribe before the disk watcher starts, so nothing falls between.
    let changes = state.hub.subscribe();
    let worker = state.clone();
    let disk = blocking(move || Ok(worker.hub.ensure_disk())).await?;
    let head = backroom_frame::body::try_encode(&Watching {
        path: path.to_string(),
        disk,
    })?;
    let events = transfer::change_stream(state.clone(), call.identity.clone(), path, changes);
    Ok(Reply::Subscription { head, events })
}
