//! Streamed transfers (`read`, `write`, `upload_status`), the per-connection
//! transfer limit, quota charging, and the `watch` event stream.
//!
//! File IO runs on blocking threads one block at a time, handed over between
//! the network and the disk, so memory stays at a few blocks per transfer and
//! no thread is held while a slow client sends or reads.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use backroom_api::files::{
    AbortUploadArgs, Change, ChangeKind, ReadArgs, ReadHead, UploadStatus, UploadStatusArgs,
    WriteArgs, WriteMode, Written,
};
use backroom_frame::auth::Identity;
use backroom_frame::server::{BodyStream, Call, EventStream, Reply};
use backroom_frame::stream::ByteStream;
use backroom_frame::{Error, ErrorCode};
use bytes::Bytes;
use parking_lot::MutexGuard;
use tokio::sync::broadcast;

use crate::atomic::{self, TempFile};
use crate::ops;
use crate::paths::{RelPath, fs_error, open_parent};
use crate::rights::Access;
use crate::service::{State, blocking, checked};
use crate::uploads;
use crate::vitals::{Meter, Transfer};

/// What a transfer reads or writes per blocking trip: one default stream
/// window, eight protocol chunks. One trip per megabyte rather than per
/// chunk; the frame runtime cuts a download's blocks into chunks without
/// copying, and an upload's chunks are written together.
const BLOCK: usize = 1024 * 1024;
/// How long a resume or status waits for the same upload's earlier attempt.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// One of a connection's transfer slots, held for the transfer's life.
pub struct Slot {
    state: Arc<State>,
    connection: u64,
}

impl Slot {
    /// Takes a slot, or fails with `busy` when the connection has none free.
    pub fn take(state: &Arc<State>, connection: u64) -> Result<Slot, Error> {
        let max = state.limits.max_transfers_per_connection;
        let mut transfers = state.transfers.lock();
        let running = transfers.entry(connection).or_insert(0);
        if *running >= max {
            return Err(Error::busy(format!(
                "{max} transfers are already running on this connection; wait for one to finish"
            )));
        }
        *running += 1;
        Ok(Slot {
            state: state.clone(),
            connection,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut transfers = self.state.transfers.lock();
        if let Some(running) = transfers.get_mut(&self.connection) {
            *running -= 1;
            if *running == 0 {
                transfers.remove(&self.connection);
            }
        }
    }
}

pub async fn read(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: ReadArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Read)?;
    let slot = Slot::take(state, call.connection)?;
    let worker = state.clone();
    let (file, head) = blocking(move || {
        let (mut file, meta) = ops::open_file(&worker.root, &path)?;
        let size = meta.len();
        if args.offset > size {
            return Err(Error::bad_request(format!(
                "offset {} is beyond the end of {path} ({size} bytes)",
                args.offset
            )));
        }
        let length = args.length.unwrap_or(u64::MAX).min(size - args.offset);
        file.seek(SeekFrom::Start(args.offset))
            .map_err(|e| fs_error(e, &path))?;
        let head = ReadHead {
            size,
            offset: args.offset,
            length,
            modified_ms: ops::modified_ms(&meta),
        };
        Ok((file, head))
    })
    .await?;
    let body = download(slot, file, head.length);
    Ok(Reply::Stream {
        head: backroom_frame::body::try_encode(&head)?,
        body,
    })
}

/// Streams the next `length` bytes of `file`, from where it stands, one
/// block ahead of the reader, holding `slot` until the end.
pub fn download(slot: Slot, file: cap_std::fs::File, length: u64) -> BodyStream {
    let meter = slot.state.meter.clone();
    let mut download = Download {
        job: None,
        left: length,
        _active: meter.transfer(),
        meter,
        _slot: slot,
    };
    if download.left > 0 {
        download.job = Some(read_ahead(file.into_std(), chunk_len(download.left)));
    }
    Box::pin(futures_util::stream::unfold(
        download,
        |mut download| async move {
            let piece = download.next().await?;
            Some((piece, download))
        },
    ))
}

/// A read of one block on a blocking thread; it hands the file back.
type ReadJob = tokio::task::JoinHandle<(std::fs::File, std::io::Result<Vec<u8>>)>;

/// Reads up to `want` bytes into a fresh buffer. Through the standard file,
/// whose reads fill uninitialised memory, the buffer is never zeroed first
/// (a zeroing `vec![0; want]` was 8% of a download's CPU time).
fn read_ahead(mut file: std::fs::File, want: usize) -> ReadJob {
    tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(want);
        let read = Read::by_ref(&mut file)
            .take(want as u64)
            .read_to_end(&mut buf)
            .map(|_| buf);
        (file, read)
    })
}

fn chunk_len(left: u64) -> usize {
    usize::try_from(left).map_or(BLOCK, |left| left.min(BLOCK))
}

/// A download in progress. Each block is read on a blocking thread, one
/// block ahead of the network; no thread waits on a slow client.
struct Download {
    job: Option<ReadJob>,
    left: u64,
    meter: Arc<Meter>,
    _active: Transfer,
    _slot: Slot,
}

impl Download {
    async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        let job = self.job.take()?;
        let piece = match job.await {
            Err(e) => Err(Error::internal(format!("a read task failed: {e}"))),
            Ok((_, Err(e))) => Err(Error::from(e)),
            Ok((_, Ok(buf))) if buf.is_empty() => {
                Err(Error::conflict("the file shrank while it was being read"))
            }
            Ok((file, Ok(buf))) => {
                self.left -= buf.len() as u64;
                self.meter.bytes_out.add(buf.len() as u64);
                if self.left > 0 {
                    self.job = Some(read_ahead(file, chunk_len(self.left)));
                }
                Ok(Bytes::from(buf))
            }
        };
        Some(piece)
    }
}

/// Checks an upload id: short, and safe in a file name.
fn check_upload_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "an upload id is 1 to 64 of A-Z, a-z, 0-9, _ and -",
        ))
    }
}

pub async fn upload_status(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: UploadStatusArgs = call.args()?;
    let path = checked(state, &call.identity, &args.path, Access::Write)?;
    check_upload_id(&args.upload_id)?;
    let _lock = UploadLock::acquire(state, &path, &args.upload_id).await?;
    let worker = state.clone();
    let status = blocking(move || {
        let (dir, name) = open_parent(&worker.root, &path)?;
        let (mode, received) =
            atomic::find_part(&dir, name, &args.upload_id).map_err(|e| fs_error(e, &path))?;
        let digest = match args.digest {
            Some(algorithm) => Some(
                atomic::digest_part(&dir, name, &args.upload_id, mode, algorithm)
                    .map_err(|e| fs_error(e, &path))?,
            ),
            None => None,
        };
        Ok(UploadStatus {
            received,
            mode,
            digest,
        })
    })
    .await?;
    Reply::value(&status)
}

/// An upload as its file thread starts it.
struct Begun {
    temp: TempFile,
    /// Whether the commit replaces an existing target.
    replace: bool,
    /// The size of the target it replaces, which then leaves the quota.
    replaced: u64,
    existed: bool,
}

fn begin(state: &State, who: &str, path: &RelPath, args: &WriteArgs) -> Result<Begun, Error> {
    let (dir, name) = open_parent(&state.root, path)?;
    let existing = dir.symlink_metadata(name).ok();
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Error::conflict(format!("{path} is a directory")));
    }
    let root = &state.root;
    let (temp, mode) = match (args.mode, &args.upload_id) {
        (WriteMode::Resume, Some(id)) => {
            let (temp, mode) =
                TempFile::resume_part(dir, name, id, args.offset).map_err(|e| fs_error(e, path))?;
            let registered = uploads::registered(root, path, id).map_err(|e| fs_error(e, path))?;
            (temp.registered(registered), mode)
        }
        (WriteMode::Resume, None) => {
            return Err(Error::bad_request("resume needs the upload id"));
        }
        (mode, Some(id)) => {
            let temp = TempFile::start_part(dir, name, id, mode).map_err(|e| fs_error(e, path))?;
            match uploads::record(root, path, id, who, mode) {
                Ok(registered) => (temp.registered(registered), mode),
                Err(e) => {
                    temp.discard();
                    return Err(fs_error(e, path));
                }
            }
        }
        (mode, None) => (
            TempFile::create(dir, name).map_err(|e| fs_error(e, path))?,
            mode,
        ),
    };
    let replace = mode == WriteMode::Overwrite;
    if !replace && existing.is_some() {
        temp.discard();
        return Err(Error::conflict(format!(
            "{path} already exists; write it with overwrite"
        )));
    }
    let replaced = match &existing {
        Some(meta) if replace => meta.len(),
        _ => 0,
    };
    Ok(Begun {
        temp,
        replace,
        replaced,
        existed: existing.is_some(),
    })
}

/// Where an upload's bytes come from: the frame protocol's stream, or
/// another face's request body.
pub trait Chunks: Send {
    /// The next piece, or `None` at the end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send;
}

impl Chunks for ByteStream {
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send {
        ByteStream::chunk(self)
    }
}

pub async fn write(state: &Arc<State>, mut call: Call) -> Result<Reply, Error> {
    let args: WriteArgs = call.args()?;
    let upload = call.take_upload()?;
    let written = write_from(state, call.identity.clone(), call.connection, args, upload).await?;
    Reply::value(&written)
}

/// Writes `upload` to `args.path` as `who`: rights, limits, quotas, the
/// temp file and its atomic commit, and the change event. `connection`
/// names the caller's connection for the per-connection transfer limit.
pub async fn write_from(
    state: &Arc<State>,
    who: Arc<Identity>,
    connection: u64,
    args: WriteArgs,
    mut upload: impl Chunks,
) -> Result<Written, Error> {
    let path = checked(state, &who, &args.path, Access::Write)?;
    if path.is_root() {
        return Err(Error::bad_request("write needs a file path"));
    }
    if let Some(id) = &args.upload_id {
        check_upload_id(id)?;
    }
    if args.mode != WriteMode::Resume && args.offset != 0 {
        return Err(Error::bad_request("an offset is only for resume"));
    }
    let max = state.limits.max_upload_bytes;
    if let (Some(max), Some(size)) = (max, args.size) {
        if size > max {
            return Err(too_large(max));
        }
    }
    let _slot = Slot::take(state, connection)?;
    let _active = state.meter.transfer();
    let lock = match &args.upload_id {
        Some(id) => Some(UploadLock::acquire(state, &path, id).await?),
        None => None,
    };

    let (worker, writer, target) = (state.clone(), who.clone(), path.clone());
    let declared = args.size;
    let (begun, mut charge, lock) = blocking(move || {
        let begun = begin(&worker, &writer.user, &target, &args)?;
        let mut charge = Charge::new(&worker, &writer, &target, begun.replaced)?;
        let already = begun.temp.written();
        let upfront = declared.map_or(already, |size| size.max(already));
        if let Err(e) = charge.check(upfront).and_then(|()| charge.add(already)) {
            begun.temp.discard();
            return Err(e);
        }
        Ok((begun, charge, lock))
    })
    .await?;
    let Begun {
        temp,
        replace,
        existed,
        ..
    } = begun;

    let mut total = temp.written();
    // The temp file travels to a blocking thread for each block of chunks
    // and back, so no thread waits on a slow client. Its lock travels after
    // it, so that if this handler is dropped mid-write the file closes first.
    let mut job = (temp, lock);
    let mut pieces = Pieces::default();
    let mut interrupted = None;
    let refused = loop {
        let data = match upload.chunk().await {
            Ok(Some(data)) => data,
            Ok(None) => break None,
            Err(e) => {
                interrupted = Some(e);
                break None;
            }
        };
        total += data.len() as u64;
        state.meter.bytes_in.add(data.len() as u64);
        if let Some(max) = max.filter(|&max| total > max) {
            break Some(too_large(max));
        }
        if let Some(size) = declared.filter(|&size| total > size) {
            break Some(Error::bad_request(format!(
                "the upload sent more than its declared {size} bytes"
            )));
        }
        if let Err(e) = charge.add(data.len() as u64) {
            break Some(e);
        }
        if pieces.push(data) < BLOCK {
            continue;
        }
        let written;
        (job, written) = pieces.write(job).await?;
        if let Err(e) = written {
            // A write that failed (a full disk above all) leaves nothing
            // worth resuming: rolled back below, so the space is free for
            // the next upload.
            break Some(fs_error(e, &path));
        }
    };
    // What is gathered still goes to disk, unless the upload is refused
    // anyway: an interrupted resumable upload keeps every byte it received.
    let refused = match refused {
        Some(error) => Some(error),
        None => {
            let written;
            (job, written) = pieces.write(job).await?;
            written.err().map(|e| fs_error(e, &path))
        }
    };
    let (temp, lock) = job;
    if let Some(error) = refused {
        // Rolled back: even a resumable upload loses its bytes.
        blocking(move || {
            temp.discard();
            drop(lock);
            Ok(())
        })
        .await?;
        return Err(error);
    }
    if let Some(error) = interrupted {
        return Err(error);
    }
    if let Some(size) = declared.filter(|&size| total != size) {
        // Ended early: like an interruption, a resumable upload keeps its
        // bytes for a resume.
        return Err(Error::bad_request(format!(
            "the upload ended after {total} of its declared {size} bytes"
        )));
    }
    let target = path.clone();
    state.hub.expect(&path.to_string(), None, false);
    let size = blocking(move || {
        let committed = temp.commit(replace);
        drop(lock);
        committed.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                Error::conflict(format!("{target} was created while it was being uploaded"))
            }
            _ => fs_error(e, &target),
        })
    })
    .await?;
    drop(charge);
    let kind = if existed {
        ChangeKind::Modified
    } else {
        ChangeKind::Created
    };
    tracing::info!(user = %who.user, %path, size, "wrote");
    state.hub.publish(kind, path.to_string(), None);
    Ok(Written {
        path: path.to_string(),
        size,
    })
}

/// An upload's temp file on its way to and from a blocking write, its lock
/// after it.
type WriteJob = (TempFile, Option<UploadLock>);

/// Chunks of an upload received but not yet written.
#[derive(Default)]
struct Pieces {
    gathered: Vec<Bytes>,
    len: usize,
}

impl Pieces {
    /// Adds a chunk; returns how many bytes are gathered.
    fn push(&mut self, data: Bytes) -> usize {
        self.len += data.len();
        self.gathered.push(data);
        self.len
    }

    /// Writes what is gathered on a blocking thread and hands the temp file
    /// back with the write's outcome.
    async fn write(&mut self, job: WriteJob) -> Result<(WriteJob, std::io::Result<()>), Error> {
        if self.gathered.is_empty() {
            return Ok((job, Ok(())));
        }
        let gathered = std::mem::take(&mut self.gathered);
        self.len = 0;
        let (mut temp, lock) = job;
        tokio::task::spawn_blocking(move || {
            let written = gathered.iter().try_for_each(|piece| temp.write(piece));
            ((temp, lock), written)
        })
        .await
        .map_err(|e| Error::internal(format!("the upload's write task failed: {e}")))
    }
}

/// Holds a resumable upload's lock. It travels with the upload's temp file,
/// always after it in a tuple, so the temp file is closed (dropped) first,
/// even when the handler is dropped while a blocking step still runs.
pub struct UploadLock {
    state: Arc<State>,
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl UploadLock {
    /// Waits for the upload's previous attempt to let go: briefly for one
    /// that is closing, but not for one still streaming elsewhere.
    async fn acquire(state: &Arc<State>, path: &RelPath, id: &str) -> Result<UploadLock, Error> {
        let key = lock_key(&path.to_string(), id);
        let lock = {
            let mut uploads = state.uploads.lock();
            uploads.entry(key.clone()).or_default().clone()
        };
        let guard = tokio::time::timeout(LOCK_WAIT, lock.lock_owned())
            .await
            .map_err(|_| {
                Error::busy(format!(
                    "upload {id:?} of {path} is still running; retry once it ends"
                ))
            })?;
        Ok(UploadLock {
            state: state.clone(),
            key,
            guard: Some(guard),
        })
    }
}

/// The key of upload `id` of `path` in [`State::uploads`].
fn lock_key(path: &str, id: &str) -> String {
    format!("{path}\0{id}")
}

/// Whether upload `id` of `path` is in flight (its lock is taken or
/// awaited): its bytes are then charged as it goes.
fn in_flight(state: &State, path: &str, id: &str) -> bool {
    state.uploads.lock().contains_key(&lock_key(path, id))
}

/// `abort_upload`: removes one of the caller's interrupted uploads (an
/// admin: anyone's), waiting briefly for an attempt that is closing.
pub async fn abort_upload(state: &Arc<State>, call: &Call) -> Result<Reply, Error> {
    let args: AbortUploadArgs = call.args()?;
    let (worker, who) = (state.clone(), call.identity.clone());
    let (path, upload_id) = blocking(move || uploads::find(&worker.root, &who, &args.id)).await?;
    let _lock = UploadLock::acquire(state, &path, &upload_id).await?;
    let worker = state.clone();
    let target = path.clone();
    blocking(move || uploads::abort(&worker.root, &target, &upload_id)).await?;
    tracing::info!(user = %call.identity.user, %path, "aborted an upload");
    Reply::value(&())
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut uploads = self.state.uploads.lock();
        // Only the map holds it now: nobody waits, so forget it.
        if uploads
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            uploads.remove(&self.key);
        }
    }
}

fn too_large(max: u64) -> Error {
    Error::new(
        ErrorCode::TooLarge,
        format!("uploads may be at most {max} bytes"),
    )
}

/// What an upload has charged to its user's quotas; released on drop, by
/// which time committed bytes are on disk and counted there.
struct Charge {
    state: Arc<State>,
    user: String,
    /// Each quota's limit and the usage it had at the start, less any file
    /// the upload replaces.
    quotas: Vec<(RelPath, u64, u64)>,
    charged: u64,
}

impl Charge {
    /// Measures the usage under each of the user's quotas that contain
    /// `path`. Blocking: it walks those subtrees.
    fn new(
        state: &Arc<State>,
        who: &Identity,
        path: &RelPath,
        replaced: u64,
    ) -> Result<Charge, Error> {
        let mut quotas = Vec::new();
        let running = |path: &str, id: &str| in_flight(state, path, id);
        for quota in state.rights.quotas(&who.user, path) {
            // The walk leaves out the server's temp files: add what
            // interrupted resumable uploads hold there.
            let used = ops::du(&state.root, &quota.path, &|_| true)?.bytes
                + uploads::held_under(&state.root, &quota.path, &running);
            quotas.push((
                quota.path.clone(),
                quota.bytes,
                used.saturating_sub(replaced),
            ));
        }
        Ok(Charge {
            state: state.clone(),
            user: who.user.clone(),
            quotas,
            charged: 0,
        })
    }

    fn reserved(&self) -> MutexGuard<'_, std::collections::HashMap<String, u64>> {
        self.state.reserved.lock()
    }

    /// Fails if `more` bytes would not fit, without charging them.
    fn check(&self, more: u64) -> Result<(), Error> {
        let pending = self.reserved().get(&self.user).copied().unwrap_or(0);
        self.fits(pending.saturating_add(more))
    }

    fn fits(&self, pending: u64) -> Result<(), Error> {
        for (path, limit, used) in &self.quotas {
            let total = used.saturating_add(pending);
            if total > *limit {
                let shown = if path.is_root() {
                    "/".to_owned()
                } else {
                    path.to_string()
                };
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!(
                        "quota exceeded: user {} may store {limit} bytes under {shown}, \
                         this would make {total}",
                        self.user
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Charges `more` bytes, or fails if they do not fit.
    fn add(&mut self, more: u64) -> Result<(), Error> {
        if self.quotas.is_empty() || more == 0 {
            return Ok(());
        }
        let state = self.state.clone();
        let mut reserved = state.reserved.lock();
        let pending = reserved.get(&self.user).copied().unwrap_or(0);
        self.fits(pending.saturating_add(more))?;
        *reserved.entry(self.user.clone()).or_insert(0) += more;
        self.charged += more;
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.charged == 0 {
            return;
        }
        let charged = self.charged;
        let mut reserved = self.reserved();
        if let Some(pending) = reserved.get_mut(&self.user) {
            *pending = pending.saturating_sub(charged);
            if *pending == 0 {
                reserved.remove(&self.user);
            }
        }
    }
}

/// Fails with a quota error if adding `bytes` at `path` would exceed one of
/// the user's quotas. Blocking.
pub fn check_added_bytes(
    state: &Arc<State>,
    who: &Identity,
    path: &RelPath,
    bytes: u64,
) -> Result<(), Error> {
    Charge::new(state, who, path, 0)?.check(bytes)
}

/// A move into a quota's subtree from outside it adds the moved bytes to
/// that quota. Blocking.
pub fn check_move_quota(
    state: &Arc<State>,
    who: &Identity,
    from: &RelPath,
    to: &RelPath,
) -> Result<(), Error> {
    let entering = state
        .rights
        .quotas(&who.user, to)
        .into_iter()
        .any(|q| !from.starts_with(&q.path));
    if !entering {
        return Ok(());
    }
    let moved = ops::du(&state.root, from, &|_| true)?.bytes;
    let mut charge = Charge::new(state, who, to, 0)?;
    charge.quotas.retain(|(path, _, _)| !from.starts_with(path));
    charge.check(moved)
}

/// The events of one `watch`: changes at or under `path` that the caller may
/// see, and `overflow` when the subscriber fell behind.
pub fn change_stream(
    state: Arc<State>,
    who: Arc<Identity>,
    path: RelPath,
    changes: broadcast::Receiver<Change>,
) -> EventStream {
    let shows = move |change: &Change| shows(&state, &who, &path, change);
    Box::pin(futures_util::stream::unfold(
        (changes, shows),
        |(mut changes, shows)| async move {
            loop {
                let change = match changes.recv().await {
                    Ok(change) if shows(&change) => change,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => Change {
                        kind: ChangeKind::Overflow,
                        path: String::new(),
                        to: None,
                        origin: backroom_api::files::Origin::Server,
                    },
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                let body = backroom_frame::body::encode(&change);
                return Some((body, (changes, shows)));
            }
        },
    ))
}

/// Whether a watcher of `path` as `who` is told of `change`: it touches
/// `path` or what lies under it, where `who` may look. `overflow` is for
/// everyone.
pub fn shows(state: &State, who: &Identity, path: &RelPath, change: &Change) -> bool {
    if change.kind == ChangeKind::Overflow {
        return true;
    }
    let prefix = path.to_string();
    let under = |p: &str| {
        prefix.is_empty()
            || p == prefix
            || p.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    [Some(change.path.as_str()), change.to.as_deref()]
        .into_iter()
        .flatten()
        .any(|p| under(p) && RelPath::parse(p).is_ok_and(|rel| state.visible(who, &rel)))
}
