//! The thread that serves one writable connection: the shared writer of a
//! database (group commit for the autocommit writes of every unpinned
//! session), or one pinned session's own connection (its transactions, its
//! TEMP objects and settings).
//!
//! Autocommit writes that are queued together share one SQLite transaction,
//! each inside its own savepoint, so each stays atomic on its own and a
//! failing one is rolled back alone. Nobody is answered before the shared
//! COMMIT returns, so an acknowledged write is a durable one.
//!
//! A session's connection writes only while it holds a lease on the shared
//! writer: the shared writer parks until the lease ends, so writes stay
//! serialised on the database and no one waits on SQLite's busy handler.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use backroom_api::db::{ChangeOp, QueryResult, Statement, TxMode};
use backroom_frame::auth::Role;
use backroom_frame::error::Error;
use parking_lot::Mutex;
use rusqlite::hooks::Action;
use tokio::sync::{broadcast, oneshot};

use crate::ctl::{Ctl, Slot};
use crate::engine::ReadJob;
use crate::sql::{SqlConn, sqlite_error};
use crate::vitals::{Counted, Gauge, Gauges};

/// The most autocommit writes that share one commit.
const MAX_GROUP: usize = 256;

/// A committed row change, for the change feed.
#[derive(Debug, Clone)]
pub struct Change {
    pub table: String,
    pub op: ChangeOp,
    pub rowid: i64,
}

pub type Answer<T> = oneshot::Sender<Result<T, Error>>;
/// A write the server runs on a writer's connection.
pub type Apply = Box<dyn FnOnce(&mut SqlConn) -> Result<(), Error> + Send>;
type Outcome = Result<Ran, Error>;

/// What became of statements sent to a writer.
#[derive(Debug)]
pub enum Ran {
    Done(Vec<QueryResult>),
    /// They create connection state, so they did not run on the shared
    /// writer, which hands them back: the session must get a connection of
    /// its own.
    NeedsSession(Vec<Statement>),
}

/// What the writer is asked to do.
pub enum WriteJob {
    /// Statements that run atomically: in the open transaction `tx`, or
    /// alone (grouped with other autocommit writes) when `tx` is `None`.
    Exec {
        tx: Option<u64>,
        statements: Vec<Statement>,
        role: Role,
        ctl: Arc<Ctl>,
        answer: Answer<Ran>,
    },
    /// Work on the connection itself (a cursor, `describe`, `schema`), in
    /// the open transaction `tx` when there is one.
    Read {
        tx: Option<u64>,
        job: ReadJob,
    },
    /// A write of the server's own (a blob from an upload), atomic like a
    /// statement: in the open transaction `tx`, or in one of its own.
    Apply {
        tx: Option<u64>,
        ctl: Arc<Ctl>,
        work: Apply,
        answer: Answer<()>,
    },
    /// A session's connection asks to write: the shared writer answers when
    /// it is free, then parks until `release` is dropped.
    Lease {
        ctl: Arc<Ctl>,
        granted: Answer<()>,
        release: Receiver<()>,
    },
    Begin {
        tx: u64,
        mode: TxMode,
        ctl: Arc<Ctl>,
        answer: Answer<()>,
    },
    Commit {
        tx: u64,
        answer: Answer<()>,
    },
    /// A rollback the client asked for (`answer` set), or one the server
    /// decided because the client left (no answer): then it also forgets why
    /// the transaction ended, if it already had.
    Rollback {
        tx: u64,
        answer: Option<Answer<()>>,
    },
    /// A client's savepoint in its open transaction `tx`. It runs as it
    /// is, not inside the savepoint each statement runs in, so that it
    /// outlives the statement that set it.
    Savepoint {
        tx: u64,
        op: SavepointOp,
        ctl: Arc<Ctl>,
        answer: Answer<()>,
    },
}

/// What a client does with a savepoint of its transaction (SQL's
/// `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SavepointOp {
    Set(String),
    Release(String),
    RollbackTo(String),
}

impl SavepointOp {
    /// The statement SQLite runs, with the name quoted.
    fn sql(&self) -> String {
        let (verb, name) = match self {
            SavepointOp::Set(name) => ("SAVEPOINT", name),
            SavepointOp::Release(name) => ("RELEASE", name),
            SavepointOp::RollbackTo(name) => ("ROLLBACK TO", name),
        };
        format!("{verb} \"{}\"", name.replace('"', "\"\""))
    }
}

impl WriteJob {
    fn is_autocommit(&self) -> bool {
        matches!(self, WriteJob::Exec { tx: None, .. })
    }

    /// The transaction the job belongs to, if any.
    fn tx(&self) -> Option<u64> {
        match self {
            WriteJob::Exec { tx, .. } | WriteJob::Read { tx, .. } | WriteJob::Apply { tx, .. } => {
                *tx
            }
            WriteJob::Begin { .. } | WriteJob::Lease { .. } => None,
            WriteJob::Commit { tx, .. }
            | WriteJob::Rollback { tx, .. }
            | WriteJob::Savepoint { tx, .. } => Some(*tx),
        }
    }
}

/// How the writer runs.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub tx_idle_timeout: Duration,
    pub max_result_bytes: usize,
    /// The server's counters, for its vital signs.
    pub gauges: Arc<Gauges>,
}

struct OpenTx {
    id: u64,
    deadline: Instant,
    /// The client's savepoints, innermost last, each with how many
    /// change-feed entries were pending when it was set, so that ROLLBACK
    /// TO drops the entries it undid.
    savepoints: Vec<(String, usize)>,
    /// Held for the whole transaction on a session's connection.
    _lease: Option<Lease>,
    _counted: Counted,
}

/// The shared writer stays parked while this lives.
struct Lease {
    _release: Sender<()>,
}

pub struct Writer {
    conn: SqlConn,
    slot: Arc<Slot>,
    settings: WriterSettings,
    /// Filled by SQLite's update hook; emptied on commit or rollback.
    changes: Arc<Mutex<Vec<Change>>>,
    feed: broadcast::Sender<Change>,
    /// Jobs that arrived while a transaction held the writer.
    waiting: VecDeque<WriteJob>,
    open: Option<OpenTx>,
    /// Why transactions ended without their client asking, until it
    /// commits or rolls back.
    ended: HashMap<u64, Error>,
    /// On a session's connection: the shared writer, to lease it before
    /// writing. `None` on the shared writer itself.
    shared: Option<Sender<WriteJob>>,
}

impl Writer {
    /// A writer over `conn`; `shared` is the shared writer to lease when
    /// `conn` is a session's own connection.
    pub fn new(
        conn: SqlConn,
        settings: WriterSettings,
        feed: broadcast::Sender<Change>,
        shared: Option<Sender<WriteJob>>,
    ) -> Writer {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let sink = changes.clone();
        conn.conn
            .update_hook(Some(move |action: Action, db: &str, table: &str, rowid| {
                // The feed follows this database's tables, not a session's
                // TEMP tables or attached databases.
                if db != "main" {
                    return;
                }
                let op = match action {
                    Action::SQLITE_INSERT => ChangeOp::Insert,
                    Action::SQLITE_UPDATE => ChangeOp::Update,
                    Action::SQLITE_DELETE => ChangeOp::Delete,
                    _ => return,
                };
                sink.lock().push(Change {
                    table: table.to_owned(),
                    op,
                    rowid,
                });
            }));
        let slot = Slot::new(conn.conn.get_interrupt_handle());
        Writer {
            conn,
            slot,
            settings,
            changes,
            feed,
            waiting: VecDeque::new(),
            open: None,
            ended: HashMap::new(),
            shared,
        }
    }

    /// Serves jobs until every sender is gone, then rolls back what is open.
    pub fn run(mut self, jobs: Receiver<WriteJob>) {
        let gauges = &self.settings.gauges;
        let _session = self.shared.is_some().then(|| gauges.count(Gauge::Sessions));
        while let Some(job) = self.next_job(&jobs) {
            self.handle(job, &jobs);
        }
        if self.open.take().is_some() {
            self.rollback_open();
        }
    }

    fn next_job(&mut self, jobs: &Receiver<WriteJob>) -> Option<WriteJob> {
        loop {
            let Some(open) = &self.open else {
                return match self.waiting.pop_front() {
                    Some(job) => Some(job),
                    None => jobs.recv().ok(),
                };
            };
            let wait = open.deadline.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(wait) {
                Ok(job) => return Some(job),
                Err(RecvTimeoutError::Timeout) => self.expire(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn expire(&mut self) {
        let Some(open) = self.open.take() else { return };
        self.rollback_open();
        let idle = self.settings.tx_idle_timeout;
        let reason = format!("transaction rolled back after {} idle", human(idle));
        tracing::info!(tx = open.id, "{reason}");
        self.ended.insert(open.id, Error::timeout(reason));
    }

    fn handle(&mut self, job: WriteJob, jobs: &Receiver<WriteJob>) {
        if let Some(open) = &self.open {
            if job.tx() == Some(open.id) {
                return self.in_transaction(job);
            }
            if job.tx().is_none() {
                // Autocommit writes and other BEGINs wait for the writer.
                self.waiting.push_back(job);
                return;
            }
        }
        match job {
            WriteJob::Exec {
                tx: None,
                statements,
                role,
                ctl,
                answer,
            } if self.reads_alone(&statements, role) => {
                let _ = answer.send(self.read_alone(&statements, role, &ctl));
            }
            WriteJob::Exec { tx: None, .. } => self.group_commit(job, jobs),
            WriteJob::Read { tx: None, job } => job(Ok((&mut self.conn, &self.slot))),
            WriteJob::Read { tx: Some(tx), job } => job(Err(self.gone(tx, false))),
            WriteJob::Apply {
                tx: None,
                ctl,
                work,
                answer,
            } => self.apply_alone(&ctl, work, answer),
            WriteJob::Apply {
                tx: Some(tx),
                answer,
                ..
            } => {
                let _ = answer.send(Err(self.gone(tx, false)));
            }
            WriteJob::Lease {
                ctl,
                granted,
                release,
            } => self.lend(&ctl, granted, &release),
            WriteJob::Begin {
                tx,
                mode,
                ctl,
                answer,
            } => self.begin(tx, mode, &ctl, answer),
            WriteJob::Exec {
                tx: Some(tx),
                answer,
                ..
            } => {
                let _ = answer.send(Err(self.gone(tx, false)));
            }
            WriteJob::Commit { tx, answer } => {
                let _ = answer.send(Err(self.gone(tx, true)));
            }
            WriteJob::Rollback { tx, answer } => {
                let error = self.gone(tx, true);
                if let Some(answer) = answer {
                    let _ = answer.send(Err(error));
                }
            }
            WriteJob::Savepoint { tx, answer, .. } => {
                let _ = answer.send(Err(self.gone(tx, false)));
            }
        }
    }

    /// The error for a transaction that is not open, saying why it ended
    /// until the client commits or rolls back, which unbinds it.
    fn gone(&mut self, tx: u64, last: bool) -> Error {
        let reason = if last {
            self.ended.remove(&tx)
        } else {
            self.ended.get(&tx).cloned()
        };
        reason.unwrap_or_else(|| Error::conflict(format!("transaction {tx} is not open")))
    }

    /// Whether statements run on this session's connection without the
    /// shared writer: when none of them writes.
    fn reads_alone(&mut self, statements: &[Statement], role: Role) -> bool {
        self.shared.is_some()
            && statements
                .iter()
                .all(|s| self.conn.policy(&s.sql, role).is_ok_and(|p| p.readonly))
    }

    /// Runs read-only statements (and ATTACH, DETACH, PRAGMA settings, which
    /// SQLite refuses or ignores inside a transaction) one by one.
    fn read_alone(&mut self, statements: &[Statement], role: Role, ctl: &Ctl) -> Outcome {
        if !ctl.start(&self.slot) {
            return Err(Error::cancelled(
                "the statement was cancelled before it ran",
            ));
        }
        let max = self.settings.max_result_bytes;
        let results: Result<Vec<_>, Error> = statements
            .iter()
            .map(|s| self.conn.run(s, role, max))
            .collect();
        self.slot.finish();
        results.map(Ran::Done)
    }

    /// Parks the shared writer while a session's connection writes.
    fn lend(&mut self, ctl: &Ctl, granted: Answer<()>, release: &Receiver<()>) {
        if !ctl.start(&self.slot) {
            let _ = granted.send(Err(Error::cancelled("cancelled before it ran")));
            return;
        }
        self.slot.finish();
        if granted.send(Ok(())).is_ok() {
            // Err only: the lease ends when its holder drops the sender.
            let _ = release.recv();
        }
    }

    /// Leases the shared writer, when this is a session's connection.
    fn lease(&self, ctl: Arc<Ctl>) -> Result<Option<Lease>, Error> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        let (granted, answer) = oneshot::channel();
        let (hold, release) = std::sync::mpsc::channel();
        let closed = || Error::unavailable("the database stopped before answering");
        shared
            .send(WriteJob::Lease {
                ctl,
                granted,
                release,
            })
            .map_err(|_| closed())?;
        answer.blocking_recv().map_err(|_| closed())??;
        Ok(Some(Lease { _release: hold }))
    }

    fn begin(&mut self, tx: u64, mode: TxMode, ctl: &Arc<Ctl>, answer: Answer<()>) {
        let lease = match self.lease(ctl.clone()) {
            Ok(lease) => lease,
            Err(e) => {
                let _ = answer.send(Err(e));
                return;
            }
        };
        if !ctl.start(&self.slot) {
            let _ = answer.send(Err(Error::cancelled("begin was cancelled")));
            return;
        }
        let result = self
            .conn
            .conn
            .execute_batch(mode.as_sql())
            .map_err(sqlite_error);
        self.slot.finish();
        if result.is_ok() {
            self.open = Some(OpenTx {
                id: tx,
                deadline: Instant::now() + self.settings.tx_idle_timeout,
                savepoints: Vec::new(),
                _lease: lease,
                _counted: self.settings.gauges.count(Gauge::Transactions),
            });
        }
        if answer.send(result).is_err() {
            // The client gave up while we began: nobody holds the transaction.
            if self.open.take().is_some() {
                self.rollback_open();
            }
        }
    }

    fn in_transaction(&mut self, job: WriteJob) {
        let Some(open) = &mut self.open else { return };
        open.deadline = Instant::now() + self.settings.tx_idle_timeout;
        let id = open.id;
        match job {
            WriteJob::Exec {
                statements,
                role,
                ctl,
                answer,
                ..
            } => {
                let result = self.guarded(&statements, role, &ctl);
                self.note_if_ended(id, &result);
                let _ = answer.send(result.map(Ran::Done));
            }
            WriteJob::Read { job, .. } => job(Ok((&mut self.conn, &self.slot))),
            WriteJob::Apply {
                ctl, work, answer, ..
            } => {
                let result = self.in_savepoint(&ctl, |conn| apply(work, conn));
                self.note_if_ended(id, &result);
                let _ = answer.send(result);
            }
            WriteJob::Commit { answer, .. } => {
                self.open = None;
                let _ = answer.send(self.commit());
            }
            WriteJob::Rollback { answer, .. } => {
                self.open = None;
                self.rollback_open();
                if let Some(answer) = answer {
                    let _ = answer.send(Ok(()));
                }
            }
            WriteJob::Savepoint {
                op, ctl, answer, ..
            } => {
                let result = self.client_savepoint(&op, &ctl);
                self.note_if_ended(id, &result);
                let _ = answer.send(result);
            }
            WriteJob::Begin { .. } | WriteJob::Lease { .. } => {}
        }
    }

    /// Runs a client's SAVEPOINT, RELEASE or ROLLBACK TO in the open
    /// transaction, and keeps the change feed's pending entries in step.
    fn client_savepoint(&mut self, op: &SavepointOp, ctl: &Ctl) -> Result<(), Error> {
        if !ctl.start(&self.slot) {
            return Err(Error::cancelled(
                "the statement was cancelled before it ran",
            ));
        }
        let ran = self
            .conn
            .conn
            .execute_batch(&op.sql())
            .map_err(sqlite_error);
        self.slot.finish();
        ran?;
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        // SQLite matches savepoint names without regard to ASCII case.
        let find = |name: &str| {
            open.savepoints
                .iter()
                .rposition(|(set, _)| set.eq_ignore_ascii_case(name))
        };
        match op {
            SavepointOp::Set(name) => {
                let pending = self.changes.lock().len();
                open.savepoints.push((name.clone(), pending));
            }
            SavepointOp::Release(name) => {
                if let Some(at) = find(name) {
                    open.savepoints.truncate(at);
                }
            }
            SavepointOp::RollbackTo(name) => {
                if let Some(at) = find(name) {
                    self.changes.lock().truncate(open.savepoints[at].1);
                    open.savepoints.truncate(at + 1);
                }
            }
        }
        Ok(())
    }

    /// Notes that SQLite itself ended transaction `id` after a failure (an
    /// interrupt or a full disk does), so that the client hears of it.
    fn note_if_ended<T>(&mut self, id: u64, result: &Result<T, Error>) {
        let Err(error) = result else { return };
        if !self.conn.conn.is_autocommit() {
            return;
        }
        self.open = None;
        self.changes.lock().clear();
        let reason = format!("transaction rolled back by SQLite after: {error}");
        self.ended.insert(id, Error::conflict(reason));
    }

    /// Commits the open transaction and publishes its changes; on failure
    /// rolls it back, so a failed commit never leaves it half open.
    fn commit(&mut self) -> Result<(), Error> {
        match self.conn.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.publish();
                Ok(())
            }
            Err(e) => {
                let error = sqlite_error(e);
                self.rollback_open();
                Err(Error::new(
                    error.code,
                    format!(
                        "commit failed and the transaction was rolled back: {}",
                        error.message
                    ),
                ))
            }
        }
    }

    fn rollback_open(&mut self) {
        if !self.conn.conn.is_autocommit() {
            if let Err(e) = self.conn.conn.execute_batch("ROLLBACK") {
                tracing::error!(error = %e, "rollback failed");
            }
        }
        self.changes.lock().clear();
    }

    fn publish(&mut self) {
        let changes = std::mem::take(&mut *self.changes.lock());
        for change in changes {
            // No subscriber is not an error.
            let _ = self.feed.send(change);
        }
    }

    /// Runs statements inside a savepoint, claimed by `ctl`, so that a
    /// failure undoes exactly them and their change-feed entries.
    fn guarded(
        &mut self,
        statements: &[Statement],
        role: Role,
        ctl: &Ctl,
    ) -> Result<Vec<QueryResult>, Error> {
        let max = self.settings.max_result_bytes;
        let batch = statements.len() > 1;
        self.in_savepoint(ctl, |conn| {
            let mut results = Vec::with_capacity(statements.len());
            for (i, statement) in statements.iter().enumerate() {
                let result = conn.run(statement, role, max).map_err(|error| {
                    if !batch {
                        return error;
                    }
                    Error::new(
                        error.code,
                        format!("statement {} of the batch failed: {}", i + 1, error.message),
                    )
                })?;
                results.push(result);
            }
            Ok(results)
        })
    }

    /// Runs `work` inside a savepoint, claimed by `ctl`, so that a failure
    /// undoes exactly its writes and their change-feed entries.
    fn in_savepoint<T>(
        &mut self,
        ctl: &Ctl,
        work: impl FnOnce(&mut SqlConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if !ctl.start(&self.slot) {
            return Err(Error::cancelled(
                "the statement was cancelled before it ran",
            ));
        }
        let result = self.savepoint(work);
        self.slot.finish();
        result
    }

    fn savepoint<T>(
        &mut self,
        work: impl FnOnce(&mut SqlConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mark = self.changes.lock().len();
        self.conn
            .conn
            .execute_batch("SAVEPOINT backroom_stmt")
            .map_err(sqlite_error)?;
        let result = match work(&mut self.conn) {
            Ok(result) => result,
            Err(error) => {
                self.changes.lock().truncate(mark);
                if !self.conn.conn.is_autocommit() {
                    let _ = self
                        .conn
                        .conn
                        .execute_batch("ROLLBACK TO backroom_stmt; RELEASE backroom_stmt");
                }
                return Err(error);
            }
        };
        self.conn
            .conn
            .execute_batch("RELEASE backroom_stmt")
            .map_err(sqlite_error)?;
        Ok(result)
    }

    /// Runs a write that cannot share a group (it consumes an upload) in a
    /// transaction of its own, holding the lease when this is a session's
    /// connection.
    fn apply_alone(&mut self, ctl: &Arc<Ctl>, work: Apply, answer: Answer<()>) {
        let result = self.lease(ctl.clone()).and_then(|_lease| {
            self.conn
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(sqlite_error)?;
            match self.in_savepoint(ctl, |conn| apply(work, conn)) {
                Ok(()) => self.commit(),
                Err(error) => {
                    self.rollback_open();
                    Err(error)
                }
            }
        });
        let _ = answer.send(result);
    }

    /// Runs `first` and every autocommit write queued behind it in one
    /// transaction, then answers them all after the one COMMIT.
    fn group_commit(&mut self, first: WriteJob, jobs: &Receiver<WriteJob>) {
        let mut group = Vec::new();
        for job in self.gather(first, jobs) {
            let WriteJob::Exec {
                statements,
                role,
                ctl,
                answer,
                ..
            } = job
            else {
                continue;
            };
            if self.shared.is_none() && self.conn.creates_state(&statements, role) {
                let _ = answer.send(Ok(Ran::NeedsSession(statements)));
                continue;
            }
            group.push(Pending {
                statements,
                role,
                ctl,
                answer,
            });
        }
        if group.is_empty() {
            return;
        }
        let _lease = match self.lease(Ctl::new()) {
            Ok(lease) => lease,
            Err(error) => {
                for job in group {
                    let _ = job.answer.send(Err(error.clone()));
                }
                return;
            }
        };
        while !group.is_empty() {
            group = self.commit_round(group);
        }
    }

    /// `first` and the autocommit writes queued right behind it.
    fn gather(&mut self, first: WriteJob, jobs: &Receiver<WriteJob>) -> Vec<WriteJob> {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            let next = match self.waiting.front() {
                Some(job) if job.is_autocommit() => self.waiting.pop_front(),
                Some(_) => None,
                None => match jobs.try_recv() {
                    Ok(job) if job.is_autocommit() => Some(job),
                    Ok(job) => {
                        self.waiting.push_back(job);
                        None
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => None,
                },
            };
            match next {
                Some(job) => group.push(job),
                None => break,
            }
        }
        group
    }

    /// Runs `group` in one transaction and answers it after the COMMIT. A
    /// write whose failure ends the shared transaction (`INSERT OR
    /// ROLLBACK`, an interrupt) gets its error alone; the writes it undid,
    /// and those after it, are handed back to run again in a new one.
    fn commit_round(&mut self, group: Vec<Pending>) -> Vec<Pending> {
        if let Err(e) = self.conn.conn.execute_batch("BEGIN IMMEDIATE") {
            let error = sqlite_error(e);
            for job in group {
                let _ = job.answer.send(Err(error.clone()));
            }
            return Vec::new();
        }
        let mut done: Vec<(Pending, Result<Vec<QueryResult>, Error>)> =
            Vec::with_capacity(group.len());
        let mut rest = group.into_iter();
        while let Some(job) = rest.next() {
            let result = self.guarded(&job.statements, job.role, &job.ctl);
            if result.is_err() && self.conn.conn.is_autocommit() {
                self.changes.lock().clear();
                let _ = job.answer.send(result.map(Ran::Done));
                let mut again: Vec<Pending> = done.into_iter().map(|(job, _)| job).collect();
                again.extend(rest);
                return again;
            }
            done.push((job, result));
        }
        let committed = self.commit();
        for (job, result) in done {
            let result = match (&committed, result) {
                (Err(e), Ok(_)) => Err(e.clone()),
                (_, result) => result,
            };
            let _ = job.answer.send(result.map(Ran::Done));
        }
        Vec::new()
    }
}

/// Runs `work`; a panic in it fails it alone, not the writer's thread.
fn apply(work: Apply, conn: &mut SqlConn) -> Result<(), Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(Error::internal("the write failed unexpectedly")))
}

/// An autocommit write waiting for its group's commit.
struct Pending {
    statements: Vec<Statement>,
    role: Role,
    ctl: Arc<Ctl>,
    answer: Answer<Ran>,
}

/// A duration as people say it: `30 s`, or `250 ms` when not whole seconds.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
