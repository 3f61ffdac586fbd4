//! One open database: its shared writer thread, its pool of reader threads,
//! the connections of its pinned sessions, its cursors and backups, and the
//! change feed its writers publish.
//!
//! All SQLite work happens on these dedicated threads; async callers hand
//! them jobs and await the answer on a oneshot channel.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backroom_api::db::{Column, QueryResult, Statement, Value};
use backroom_frame::auth::Role;
use backroom_frame::body;
use backroom_frame::error::{Error, ErrorCode};
use backroom_frame::stream::ByteStream;
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle as TaskHandle;

use crate::Synchronous;
use crate::ctl::{CancelOnDrop, Ctl, Slot};
use crate::sql::{self, Access, SqlConn, sqlite_error};
use crate::vitals::{Gauge, Gauges};
use crate::writer::{Change, Ran, SavepointOp, WriteJob, Writer, WriterSettings, human};

/// Read jobs that may wait for a reader before callers are told `busy`.
const READ_QUEUE: usize = 4096;
/// Change events kept for slow subscribers before they lag.
const FEED_BACKLOG: usize = 4096;
/// Cursor pages buffered between the cursor's thread and the network.
const CURSOR_PAGES_AHEAD: usize = 2;
/// The pieces a blob is read and written in.
pub const BLOB_PIECE: usize = 128 * 1024;
/// SQLite VM steps between two checks of an inline read's budget.
const INLINE_STEPS: i32 = 1000;
/// The checks an inline read may pass before it is interrupted and sent to
/// the reader pool: about 100 000 VM steps, well under a millisecond.
const INLINE_BUDGET: i64 = 100;

/// How every database of a server is run.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub synchronous: Synchronous,
    pub readers: usize,
    pub writer: WriterSettings,
    /// About how many bytes of rows go into one cursor page.
    pub cursor_page_bytes: usize,
}

/// Work on a connection, or why it cannot run (its transaction ended).
pub type ReadJob = Box<dyn FnOnce(Result<(&mut SqlConn, &Arc<Slot>), Error>) + Send>;

/// Which connection a session's work runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The shared ones: the reader pool and the shared writer.
    Shared,
    /// The session's own connection (see [`crate::sessions`]).
    Pinned(SessionId),
}

/// Names one session (one client connection) for as long as it lives.
pub type SessionId = usize;

pub struct Engine {
    pub name: String,
    pub path: PathBuf,
    settings: EngineSettings,
    writer: Mutex<Option<Sender<WriteJob>>>,
    readers: Mutex<Option<SyncSender<ReadJob>>>,
    /// The connections of pinned sessions. Each thread holds a sender of the
    /// shared writer, so the shared writer ends after them.
    pinned: Mutex<HashMap<SessionId, Sender<WriteJob>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    feed: broadcast::Sender<Change>,
    /// Reader connections lent to callers' own threads for short reads.
    inline: Mutex<Vec<InlineConn>>,
}

/// A reader connection whose statements stop when their budget of VM
/// steps runs out.
struct InlineConn {
    conn: SqlConn,
    /// Budget checks left; below zero, the statement was interrupted.
    budget: Arc<AtomicI64>,
}

impl InlineConn {
    fn open(
        path: &Path,
        synchronous: Synchronous,
        gauges: &Arc<Gauges>,
    ) -> Result<InlineConn, Error> {
        let conn = SqlConn::open(path, Access::Reader, synchronous, false)?.counting(gauges);
        let budget = Arc::new(AtomicI64::new(INLINE_BUDGET));
        let left = budget.clone();
        conn.conn.progress_handler(
            INLINE_STEPS,
            Some(move || left.fetch_sub(1, Ordering::Relaxed) <= 0),
        );
        Ok(InlineConn { conn, budget })
    }
}

impl Engine {
    /// Opens (or creates) the database and starts its threads. Blocking.
    pub fn open(
        name: &str,
        path: &Path,
        settings: &EngineSettings,
        create: bool,
    ) -> Result<Engine, Error> {
        let gauges = &settings.writer.gauges;
        let writer_conn =
            SqlConn::open(path, Access::Writer, settings.synchronous, create)?.counting(gauges);
        let (feed, _) = broadcast::channel(FEED_BACKLOG);
        let (write_tx, write_rx) = std::sync::mpsc::channel();
        let writer = Writer::new(writer_conn, settings.writer.clone(), feed.clone(), None);
        let mut threads = Vec::new();
        threads.push(spawn(format!("db-{name}-writer"), move || {
            writer.run(write_rx)
        })?);
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<ReadJob>(READ_QUEUE);
        let read_rx = Arc::new(Mutex::new(read_rx));
        let mut inline = Vec::new();
        for i in 0..settings.readers.max(1) {
            inline.push(InlineConn::open(path, settings.synchronous, gauges)?);
            let conn =
                SqlConn::open(path, Access::Reader, settings.synchronous, false)?.counting(gauges);
            let queue = read_rx.clone();
            threads.push(spawn(format!("db-{name}-reader-{i}"), move || {
                serve_reads(conn, &queue)
            })?);
        }
        Ok(Engine {
            name: name.to_owned(),
            path: path.to_owned(),
            settings: settings.clone(),
            writer: Mutex::new(Some(write_tx)),
            readers: Mutex::new(Some(read_tx)),
            pinned: Mutex::new(HashMap::new()),
            threads: Mutex::new(threads),
            feed,
            inline: Mutex::new(inline),
        })
    }

    /// Stops taking jobs and hands back the threads, which end once their
    /// queued work is done. Join them off the async workers.
    pub fn close(&self) -> Vec<JoinHandle<()>> {
        self.pinned.lock().clear();
        self.writer.lock().take();
        self.readers.lock().take();
        std::mem::take(&mut *self.threads.lock())
    }

    /// Gives `session` a connection of its own, unless it has one. Blocking.
    pub fn pin(&self, session: SessionId) -> Result<(), Error> {
        // Held while the connection opens, so that two calls of one session
        // never open two connections.
        let mut pinned = self.pinned.lock();
        if pinned.contains_key(&session) {
            return Ok(());
        }
        let shared = self.writer.lock().clone().ok_or_else(|| self.dropped())?;
        let conn = SqlConn::open(
            &self.path,
            Access::Session,
            self.settings.synchronous,
            false,
        )?
        .counting(&self.settings.writer.gauges);
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = Writer::new(
            conn,
            self.settings.writer.clone(),
            self.feed.clone(),
            Some(shared),
        );
        // Not joined: it ends when its sender is dropped (by `unpin` or
        // `close`), and the shared writer, which is joined, outlives it.
        spawn(format!("db-{}-session", self.name), move || writer.run(rx))?;
        pinned.insert(session, tx);
        Ok(())
    }

    /// Ends `session`'s connection, rolling back its open transaction.
    pub fn unpin(&self, session: SessionId) {
        self.pinned.lock().remove(&session);
    }

    /// Where `session`'s work on this database runs.
    pub fn lane(&self, session: SessionId) -> Lane {
        if self.pinned.lock().contains_key(&session) {
            Lane::Pinned(session)
        } else {
            Lane::Shared
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// Queues a job for the shared writer, or a pinned session's connection.
    pub fn send_write(&self, lane: Lane, job: WriteJob) -> Result<(), Error> {
        let sender = match lane {
            Lane::Shared => self.writer.lock().clone(),
            Lane::Pinned(session) => self.pinned.lock().get(&session).cloned(),
        };
        let sender = sender.ok_or_else(|| self.dropped())?;
        sender.send(job).map_err(|_| self.dropped())
    }

    /// Runs statements on the shared writer or a pinned session's
    /// connection (in its transaction `tx`, or atomically on their own) and
    /// waits for them, interrupting them at `timeout`.
    pub async fn exec(
        &self,
        lane: Lane,
        tx: Option<u64>,
        statements: Vec<Statement>,
        role: Role,
        timeout: Duration,
    ) -> Result<Ran, Error> {
        let gauges = &self.settings.writer.gauges;
        let _waiting = (lane == Lane::Shared && tx.is_none()).then(|| gauges.count(Gauge::Queue));
        let ctl = Ctl::new();
        let (answer, rx) = oneshot::channel();
        let job = WriteJob::Exec {
            tx,
            statements,
            role,
            ctl: ctl.clone(),
            answer,
        };
        self.send_write(lane, job)?;
        wait(ctl, rx, timeout).await
    }

    /// Sets, releases or rolls back to a savepoint of transaction `tx` on a
    /// pinned session's connection, and waits for it.
    pub async fn savepoint(
        &self,
        lane: Lane,
        tx: u64,
        op: SavepointOp,
        timeout: Duration,
    ) -> Result<(), Error> {
        let ctl = Ctl::new();
        let (answer, rx) = oneshot::channel();
        let job = WriteJob::Savepoint {
            tx,
            op,
            ctl: ctl.clone(),
            answer,
        };
        self.send_write(lane, job)?;
        wait(ctl, rx, timeout).await
    }

    /// Runs `work` on a reader, or on a pinned session's connection (in its
    /// transaction `tx`), and waits for it, interrupting it at the deadline
    /// or when the caller goes away.
    pub async fn read<T, F>(
        &self,
        lane: Lane,
        tx: Option<u64>,
        timeout: Duration,
        work: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqlConn) -> Result<T, Error> + Send + 'static,
    {
        let ctl = Ctl::new();
        let (answer, rx) = oneshot::channel();
        let job_ctl = ctl.clone();
        let job: ReadJob = Box::new(move |on| {
            let (conn, slot) = match claim(on, &job_ctl) {
                Ok(claimed) => claimed,
                Err(e) => {
                    let _ = answer.send(Err(e));
                    return;
                }
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(Error::internal("the statement failed unexpectedly")));
            slot.finish();
            let _ = answer.send(result);
        });
        match lane {
            Lane::Shared => self.send_read(job)?,
            Lane::Pinned(_) => self.send_write(lane, WriteJob::Read { tx, job })?,
        }
        wait(ctl, rx, timeout).await
    }

    /// Runs a read-only statement on the shared readers: `None` when
    /// SQLite says it writes or it creates connection state, so it must go
    /// to a writer. It runs first on the caller's own thread (see
    /// [`Engine::read_inline`]), and on the reader pool when that does not
    /// fit.
    pub async fn query_shared(
        &self,
        statement: Statement,
        role: Role,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Option<QueryResult>, Error> {
        let work = move |conn: &mut SqlConn| {
            let policy = conn.policy(&statement.sql, role)?;
            if !policy.readonly || policy.creates_state() {
                return Ok(None);
            }
            conn.run(&statement, role, max_bytes).map(Some)
        };
        if let Some(answer) = self.read_inline(work.clone()) {
            return answer;
        }
        self.read(Lane::Shared, None, timeout, work).await
    }

    /// Runs `work` at once on the caller's thread, on a reader connection
    /// of its own, sparing the hop to a reader thread and back, which
    /// costs more than a point select itself. This is the one place SQLite
    /// runs on an async worker, so it is bounded: the statement may take
    /// [`INLINE_BUDGET`] checks of [`INLINE_STEPS`] VM steps (well under a
    /// millisecond), and past them it is interrupted and `None` says to run
    /// it on the reader pool, as a read can run twice. `None` too when
    /// every inline connection is in use.
    fn read_inline<T>(
        &self,
        work: impl FnOnce(&mut SqlConn) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        let mut lent = self.inline.lock().pop()?;
        lent.budget.store(INLINE_BUDGET, Ordering::Relaxed);
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(&mut lent.conn)))
            .unwrap_or_else(|_| Err(Error::internal("the statement failed unexpectedly")));
        let finished = lent.budget.load(Ordering::Relaxed) >= 0;
        self.inline.lock().push(lent);
        finished.then_some(result)
    }

    fn send_read(&self, job: ReadJob) -> Result<(), Error> {
        let readers = self.readers.lock();
        let sender = readers.as_ref().ok_or_else(|| self.dropped())?;
        sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Error::busy(format!(
                "{READ_QUEUE} reads are already queued on {}; retry later",
                self.name
            )),
            TrySendError::Disconnected(_) => self.dropped(),
        })
    }

    /// Streams a read-only statement's rows one page at a time: from a
    /// thread and connection of its own, or on a pinned session's
    /// connection (in its transaction `tx`). The statement waits while the
    /// client is behind, so the server holds at most a few pages of any
    /// result; it is interrupted at `timeout`, or when the pages are dropped.
    pub async fn cursor(
        &self,
        lane: Lane,
        tx: Option<u64>,
        statement: Statement,
        role: Role,
        timeout: Duration,
        permit: OwnedSemaphorePermit,
    ) -> Result<(Vec<Column>, CursorPages), Error> {
        let page_bytes = self.settings.cursor_page_bytes;
        self.settings.writer.gauges.statements.add(1);
        self.stream(lane, tx, timeout, permit, move |conn, _, head, pages| {
            stream_rows(conn, &statement, role, page_bytes, head, pages);
        })
        .await
    }

    /// Streams one value's bytes with SQLite's incremental blob I/O, so a
    /// value of any size travels in small pieces.
    pub async fn blob(
        &self,
        lane: Lane,
        tx: Option<u64>,
        place: BlobPlace,
        timeout: Duration,
        permit: OwnedSemaphorePermit,
    ) -> Result<(u64, CursorPages), Error> {
        self.stream(
            lane,
            tx,
            timeout,
            permit,
            move |conn, deadline, head, pages| {
                stream_blob(conn, &place, deadline, head, pages);
            },
        )
        .await
    }

    /// Runs `produce` where `lane` says, handing it a head to answer first
    /// and a channel of pieces, bounded so that it waits for the client.
    async fn stream<H, P>(
        &self,
        lane: Lane,
        tx: Option<u64>,
        timeout: Duration,
        permit: OwnedSemaphorePermit,
        produce: P,
    ) -> Result<(H, CursorPages), Error>
    where
        H: Send + 'static,
        P: FnOnce(&mut SqlConn, Instant, oneshot::Sender<Result<H, Error>>, &Pieces)
            + Send
            + 'static,
    {
        let ctl = Ctl::new();
        let (head_tx, head_rx) = oneshot::channel();
        let (pages_tx, pages) = mpsc::channel(CURSOR_PAGES_AHEAD);
        let deadline = Instant::now() + timeout;
        let job_ctl = ctl.clone();
        let job: ReadJob = Box::new(move |on| {
            let _permit = permit;
            let (conn, slot) = match claim(on, &job_ctl) {
                Ok(claimed) => claimed,
                Err(e) => {
                    let _ = head_tx.send(Err(e));
                    return;
                }
            };
            produce(conn, deadline, head_tx, &pages_tx);
            slot.finish();
        });
        let timer = tokio::spawn({
            let ctl = ctl.clone();
            async move {
                tokio::time::sleep_until(deadline.into()).await;
                ctl.cancel();
            }
        });
        let pages = CursorPages {
            pages,
            ctl,
            timer,
            deadline,
            timeout,
        };
        match lane {
            Lane::Shared => {
                let path = self.path.clone();
                let synchronous = self.settings.synchronous;
                spawn(
                    format!("db-{}-stream", self.name),
                    move || match SqlConn::open(&path, Access::Reader, synchronous, false) {
                        Ok(mut conn) => {
                            let slot = Slot::new(conn.conn.get_interrupt_handle());
                            job(Ok((&mut conn, &slot)));
                        }
                        Err(e) => job(Err(e)),
                    },
                )?;
            }
            Lane::Pinned(_) => self.send_write(lane, WriteJob::Read { tx, job })?,
        }
        let head = head_rx
            .await
            .map_err(|_| Error::internal("the stream ended early"))?
            .map_err(|e| pages.explain(e))?;
        Ok((head, pages))
    }

    /// Copies the database, consistently, to `dest`. Blocking.
    pub fn backup_to(&self, dest: &Path) -> Result<(), Error> {
        let source = SqlConn::open(&self.path, Access::Reader, self.settings.synchronous, false)?;
        let mut target = rusqlite::Connection::open(dest).map_err(sqlite_error)?;
        let backup =
            rusqlite::backup::Backup::new(&source.conn, &mut target).map_err(sqlite_error)?;
        // One step copies every page under one read transaction: a snapshot.
        match backup.step(-1).map_err(sqlite_error)? {
            rusqlite::backup::StepResult::Done => Ok(()),
            other => Err(Error::busy(format!("the backup did not finish: {other:?}"))),
        }
    }

    fn dropped(&self) -> Error {
        Error::not_found(format!("database {} was dropped", self.name))
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, Error> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map_err(|e| Error::internal(format!("cannot start a database thread: {e}")))
}

/// The connection a job was handed, claimed for the job's `ctl`; or why the
/// job cannot run: its transaction ended, or it was cancelled before it
/// started.
fn claim<'c>(
    on: Result<(&'c mut SqlConn, &'c Arc<Slot>), Error>,
    ctl: &Ctl,
) -> Result<(&'c mut SqlConn, &'c Arc<Slot>), Error> {
    let (conn, slot) = on?;
    if !ctl.start(slot) {
        return Err(Error::cancelled("cancelled before it ran"));
    }
    Ok((conn, slot))
}

fn serve_reads(mut conn: SqlConn, queue: &Mutex<Receiver<ReadJob>>) {
    let slot = Slot::new(conn.conn.get_interrupt_handle());
    loop {
        // The lock is held only while waiting for the next job.
        let job = queue.lock().recv();
        match job {
            Ok(job) => job(Ok((&mut conn, &slot))),
            Err(_) => return,
        }
    }
}

/// Waits for a job's answer, cancelling the job when `timeout` passes or the
/// caller's future is dropped.
pub async fn wait<T>(
    ctl: Arc<Ctl>,
    mut rx: oneshot::Receiver<Result<T, Error>>,
    timeout: Duration,
) -> Result<T, Error> {
    let guard = CancelOnDrop::new(ctl.clone());
    let result = match tokio::time::timeout(timeout, &mut rx).await {
        Ok(answer) => answer.unwrap_or_else(|_| Err(stopped())),
        Err(_) => {
            let late = interrupted_at(timeout);
            if ctl.cancel() {
                // It was running: its thread answers as soon as it stops.
                match rx.await {
                    Ok(Err(e)) if e.code == ErrorCode::Cancelled => Err(late),
                    Ok(result) => result,
                    Err(_) => Err(stopped()),
                }
            } else {
                Err(Error::timeout(format!(
                    "the statement waited longer than its {} timeout for its turn and did not run",
                    human(timeout)
                )))
            }
        }
    };
    guard.disarm();
    result
}

/// The error of a statement interrupted at its deadline.
fn interrupted_at(timeout: Duration) -> Error {
    Error::timeout(format!(
        "the statement did not finish within its {} timeout and was interrupted",
        human(timeout)
    ))
}

fn stopped() -> Error {
    Error::unavailable("the database stopped before answering")
}

/// The pages of a cursor; dropping them interrupts the cursor's statement.
pub struct CursorPages {
    pages: mpsc::Receiver<Result<Bytes, Error>>,
    ctl: Arc<Ctl>,
    /// Interrupts the statement at its deadline.
    timer: TaskHandle<()>,
    deadline: Instant,
    timeout: Duration,
}

impl CursorPages {
    pub async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        let page = self.pages.recv().await?;
        Some(page.map_err(|e| self.explain(e)))
    }

    /// An interrupt after the deadline is the statement's timeout.
    fn explain(&self, error: Error) -> Error {
        if error.code == ErrorCode::Cancelled && Instant::now() >= self.deadline {
            interrupted_at(self.timeout)
        } else {
            error
        }
    }
}

impl Drop for CursorPages {
    fn drop(&mut self) {
        self.ctl.cancel();
        self.timer.abort();
    }
}

type CursorHead = oneshot::Sender<Result<Vec<Column>, Error>>;
/// Where a stream's pieces go, in order.
type Pieces = mpsc::Sender<Result<Bytes, Error>>;

/// One value: the table, column and rowid SQLite's blob I/O opens.
#[derive(Debug, Clone)]
pub struct BlobPlace {
    pub table: String,
    pub column: String,
    pub rowid: i64,
}

/// An upload awaited from a database thread, until its deadline.
pub struct Upload {
    pub stream: ByteStream,
    pub runtime: tokio::runtime::Handle,
    pub timeout: Duration,
    pub deadline: Instant,
}

impl Upload {
    fn next(&mut self) -> Result<Option<Bytes>, Error> {
        let (deadline, stream) = (self.deadline, &mut self.stream);
        let piece = self.runtime.block_on(async move {
            tokio::time::timeout_at(deadline.into(), stream.chunk()).await
        });
        piece.map_err(|_| interrupted_at(self.timeout))?
    }
}

/// Replaces the value at `place` with the `size` bytes of `upload`, written
/// in place with SQLite's incremental blob I/O, so the server never holds
/// more than a piece of it. Runs on a writer's thread, inside a savepoint.
pub fn write_blob(
    conn: &mut SqlConn,
    place: &BlobPlace,
    size: u64,
    role: Role,
    mut upload: Upload,
) -> Result<(), Error> {
    let length = i64::try_from(size)
        .map_err(|_| Error::new(ErrorCode::TooLarge, "a blob that large cannot be stored"))?;
    let sql = format!(
        "UPDATE {} SET {} = zeroblob(?1) WHERE rowid = ?2",
        quote(&place.table),
        quote(&place.column)
    );
    let sized = conn.run(&Statement::new(sql).bind(length).bind(place.rowid), role, 0)?;
    if sized.rows_affected != 1 {
        return Err(Error::not_found(format!(
            "{} has no row with rowid {}",
            place.table, place.rowid
        )));
    }
    let mut blob = conn
        .conn
        .blob_open(
            rusqlite::MAIN_DB,
            place.table.as_str(),
            place.column.as_str(),
            place.rowid,
            false,
        )
        .map_err(sqlite_error)?;
    let mut offset = 0usize;
    while let Some(piece) = upload.next()? {
        if (offset + piece.len()) as u64 > size {
            return Err(Error::bad_request(format!(
                "the upload is longer than the {size} bytes it announced"
            )));
        }
        blob.write_at(&piece, offset).map_err(sqlite_error)?;
        offset += piece.len();
    }
    if offset as u64 != size {
        return Err(Error::bad_request(format!(
            "the upload ended after {offset} of the {size} bytes it announced"
        )));
    }
    Ok(())
}

/// An identifier as SQL quotes it.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Sends the value at `place` in pieces of [`BLOB_PIECE`] bytes, after its
/// length. Blob I/O is not interrupted by SQLite, so the deadline is checked
/// between pieces.
fn stream_blob(
    conn: &mut SqlConn,
    place: &BlobPlace,
    deadline: Instant,
    head: oneshot::Sender<Result<u64, Error>>,
    pieces: &Pieces,
) {
    let opened = conn.conn.blob_open(
        rusqlite::MAIN_DB,
        place.table.as_str(),
        place.column.as_str(),
        place.rowid,
        true,
    );
    let blob = match opened {
        Ok(blob) => blob,
        Err(e) => {
            let _ = head.send(Err(sqlite_error(e)));
            return;
        }
    };
    if head.send(Ok(blob.len() as u64)).is_err() {
        return;
    }
    let mut buf = vec![0u8; BLOB_PIECE];
    let mut offset = 0;
    while offset < blob.len() {
        if Instant::now() >= deadline {
            let _ = pieces.blocking_send(Err(Error::cancelled("interrupted")));
            return;
        }
        let n = BLOB_PIECE.min(blob.len() - offset);
        if let Err(e) = blob.read_at_exact(&mut buf[..n], offset) {
            let _ = pieces.blocking_send(Err(sqlite_error(e)));
            return;
        }
        offset += n;
        if pieces
            .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
            .is_err()
        {
            return;
        }
    }
}

/// Runs the statement on `conn`, sending its columns to `head` after the
/// first step (which re-prepares a statement whose schema changed), then
/// its rows in pages of about `page_bytes`.
fn stream_rows(
    conn: &mut SqlConn,
    statement: &Statement,
    role: Role,
    page_bytes: usize,
    head: CursorHead,
    pages: &Pieces,
) {
    let mut stmt = match conn.prepare_read(statement, role) {
        Ok(stmt) => stmt,
        Err(e) => {
            let _ = head.send(Err(e));
            return;
        }
    };
    let mut head = Some(head);
    let mut width = 0;
    let mut page: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0;
    let mut rows = stmt.raw_query();
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                let error = sqlite_error(e);
                match head.take() {
                    Some(head) => drop(head.send(Err(error))),
                    None => drop(pages.blocking_send(Err(error))),
                }
                return;
            }
        };
        if let Some(head) = head.take() {
            let columns = sql::columns(row.as_ref());
            width = columns.len();
            if head.send(Ok(columns)).is_err() {
                return;
            }
        }
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            match row.get_ref(i) {
                Ok(value) => {
                    bytes += sql::value_size(value);
                    out.push(sql::to_value(value));
                }
                Err(e) => {
                    let _ = pages.blocking_send(Err(sqlite_error(e)));
                    return;
                }
            }
        }
        page.push(out);
        if bytes >= page_bytes {
            if pages.blocking_send(encode_page(&page)).is_err() {
                return;
            }
            page.clear();
            bytes = 0;
        }
    }
    drop(rows);
    if let Some(head) = head.take() {
        let _ = head.send(Ok(sql::columns(&stmt)));
        return;
    }
    if !page.is_empty() {
        let _ = pages.blocking_send(encode_page(&page));
    }
}

/// A page on the wire: its length as a big-endian u32, then the rows.
fn encode_page(rows: &[Vec<Value>]) -> Result<Bytes, Error> {
    let encoded = body::try_encode(rows)?;
    let len = u32::try_from(encoded.len())
        .map_err(|_| Error::new(ErrorCode::TooLarge, "a cursor page exceeds 4 GiB"))?;
    let mut out = BytesMut::with_capacity(4 + encoded.len());
    out.put_u32(len);
    out.extend_from_slice(&encoded);
    Ok(out.freeze())
}
