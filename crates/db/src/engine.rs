//! One open database: its writer thread, its pool of reader threads, its
//! cursors and backups, and the change feed its writer publishes.
//!
//! All SQLite work happens on these dedicated threads; async callers hand
//! them jobs and await the answer on a oneshot channel.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use backroom_api::db::{Column, Statement, Value};
use backroom_frame::auth::Role;
use backroom_frame::body;
use backroom_frame::error::{Error, ErrorCode};
use bytes::{BufMut, Bytes, BytesMut};
use rusqlite::InterruptHandle;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc, oneshot};

use crate::Synchronous;
use crate::ctl::{CancelOnDrop, Ctl, Slot};
use crate::sql::{self, Access, SqlConn, sqlite_error};
use crate::writer::{Change, WriteJob, Writer, WriterSettings, human};

/// Read jobs that may wait for a reader before callers are told `busy`.
const READ_QUEUE: usize = 4096;
/// Change events kept for slow subscribers before they lag.
const FEED_BACKLOG: usize = 4096;
/// Cursor pages buffered between the cursor's thread and the network.
const CURSOR_PAGES_AHEAD: usize = 2;

/// How every database of a server is run.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub synchronous: Synchronous,
    pub readers: usize,
    pub writer: WriterSettings,
    /// About how many bytes of rows go into one cursor page.
    pub cursor_page_bytes: usize,
}

type ReadJob = Box<dyn FnOnce(&mut SqlConn, &Arc<Slot>) + Send>;

pub struct Engine {
    pub name: String,
    pub path: PathBuf,
    settings: EngineSettings,
    writer: Mutex<Option<Sender<WriteJob>>>,
    readers: Mutex<Option<SyncSender<ReadJob>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    feed: broadcast::Sender<Change>,
}

impl Engine {
    /// Opens (or creates) the database and starts its threads. Blocking.
    pub fn open(
        name: &str,
        path: &Path,
        settings: &EngineSettings,
        create: bool,
    ) -> Result<Engine, Error> {
        let writer_conn = SqlConn::open(path, Access::Writer, settings.synchronous, create)?;
        let (feed, _) = broadcast::channel(FEED_BACKLOG);
        let (write_tx, write_rx) = std::sync::mpsc::channel();
        let writer = Writer::new(writer_conn, settings.writer.clone(), feed.clone());
        let mut threads = Vec::new();
        threads.push(spawn(format!("db-{name}-writer"), move || {
            writer.run(write_rx)
        })?);
        let (read_tx, read_rx) = std::sync::mpsc::sync_channel::<ReadJob>(READ_QUEUE);
        let read_rx = Arc::new(Mutex::new(read_rx));
        for i in 0..settings.readers.max(1) {
            let conn = SqlConn::open(path, Access::Reader, settings.synchronous, false)?;
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
            threads: Mutex::new(threads),
            feed,
        })
    }

    /// Stops taking jobs and hands back the threads, which end once their
    /// queued work is done. Join them off the async workers.
    pub fn close(&self) -> Vec<JoinHandle<()>> {
        lock(&self.writer).take();
        lock(&self.readers).take();
        std::mem::take(&mut *lock(&self.threads))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    /// Queues a job for the writer.
    pub fn send_write(&self, job: WriteJob) -> Result<(), Error> {
        let writer = lock(&self.writer);
        let sender = writer.as_ref().ok_or_else(|| self.dropped())?;
        sender.send(job).map_err(|_| self.dropped())
    }

    /// Runs `work` on a reader and waits for it, interrupting it at the
    /// deadline or when the caller goes away.
    pub async fn read<T, F>(&self, timeout: Duration, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqlConn) -> Result<T, Error> + Send + 'static,
    {
        let ctl = Ctl::new();
        let (answer, rx) = oneshot::channel();
        let job_ctl = ctl.clone();
        let job: ReadJob = Box::new(move |conn, slot| {
            if !job_ctl.start(slot) {
                let _ = answer.send(Err(Error::cancelled("cancelled before it ran")));
                return;
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(Error::internal("the statement failed unexpectedly")));
            slot.finish();
            let _ = answer.send(result);
        });
        {
            let readers = lock(&self.readers);
            let sender = readers.as_ref().ok_or_else(|| self.dropped())?;
            sender.try_send(job).map_err(|e| match e {
                TrySendError::Full(_) => Error::busy(format!(
                    "{READ_QUEUE} reads are already queued on {}; retry later",
                    self.name
                )),
                TrySendError::Disconnected(_) => self.dropped(),
            })?;
        }
        wait(ctl, rx, timeout).await
    }

    /// Streams a read-only statement's rows from a thread of its own, one
    /// page at a time; the thread waits while the client is behind, so the
    /// server holds at most a few pages of any result.
    pub async fn cursor(
        &self,
        statement: Statement,
        role: Role,
        permit: OwnedSemaphorePermit,
    ) -> Result<(Vec<Column>, CursorPages), Error> {
        let (head_tx, head_rx) = oneshot::channel();
        let (pages_tx, pages) = mpsc::channel(CURSOR_PAGES_AHEAD);
        let path = self.path.clone();
        let settings = self.settings.clone();
        spawn(format!("db-{}-cursor", self.name), move || {
            let _permit = permit;
            run_cursor(&path, &settings, &statement, role, head_tx, pages_tx);
        })?;
        let (columns, interrupt) = head_rx
            .await
            .map_err(|_| Error::internal("the cursor thread ended early"))??;
        Ok((
            columns,
            CursorPages {
                pages,
                interrupt: Some(interrupt),
            },
        ))
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

fn serve_reads(mut conn: SqlConn, queue: &Mutex<Receiver<ReadJob>>) {
    let slot = Slot::new(conn.conn.get_interrupt_handle());
    loop {
        // The lock is held only while waiting for the next job.
        let job = lock(queue).recv();
        match job {
            Ok(job) => job(&mut conn, &slot),
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
            let late = Error::timeout(format!(
                "the statement did not finish within its {} timeout and was interrupted",
                human(timeout)
            ));
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

fn stopped() -> Error {
    Error::unavailable("the database stopped before answering")
}

/// The pages of a cursor; dropping them interrupts the cursor's statement.
pub struct CursorPages {
    pages: mpsc::Receiver<Result<Bytes, Error>>,
    interrupt: Option<InterruptHandle>,
}

impl CursorPages {
    pub async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        self.pages.recv().await
    }
}

impl Drop for CursorPages {
    fn drop(&mut self) {
        if let Some(interrupt) = self.interrupt.take() {
            interrupt.interrupt();
        }
    }
}

type CursorHead = oneshot::Sender<Result<(Vec<Column>, InterruptHandle), Error>>;

fn run_cursor(
    path: &Path,
    settings: &EngineSettings,
    statement: &Statement,
    role: Role,
    head: CursorHead,
    pages: mpsc::Sender<Result<Bytes, Error>>,
) {
    let opened = SqlConn::open(path, Access::Reader, settings.synchronous, false);
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(e) => {
            let _ = head.send(Err(e));
            return;
        }
    };
    let checked = conn.permit(&statement.sql, role).and_then(|policy| {
        if policy.readonly {
            Ok(())
        } else {
            Err(Error::bad_request(
                "a cursor runs read-only statements only; use execute to write",
            ))
        }
    });
    if let Err(e) = checked {
        let _ = head.send(Err(e));
        return;
    }
    let interrupt = conn.conn.get_interrupt_handle();
    let mut stmt = match conn.conn.prepare(&statement.sql).map_err(sqlite_error) {
        Ok(stmt) => stmt,
        Err(e) => {
            let _ = head.send(Err(e));
            return;
        }
    };
    if let Err(e) = sql::bind(&mut stmt, statement) {
        let _ = head.send(Err(e));
        return;
    }
    let columns = sql::columns(&stmt);
    let width = columns.len();
    if head.send(Ok((columns, interrupt))).is_err() {
        return;
    }
    let mut rows = stmt.raw_query();
    let mut page: Vec<Vec<Value>> = Vec::new();
    let mut bytes = 0;
    loop {
        let row = match rows.next() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                let _ = pages.blocking_send(Err(sqlite_error(e)));
                return;
            }
        };
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
        if bytes >= settings.cursor_page_bytes {
            if pages.blocking_send(encode_page(&page)).is_err() {
                return;
            }
            page.clear();
            bytes = 0;
        }
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

/// These locks guard plain data, so a poisoned one is recovered.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
