//! The methods of the database service: each parses its arguments, checks
//! rights, hands the SQLite work to a database's threads, and encodes the
//! reply.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backroom_api::db::{
    BackupArgs, BackupInfo, BatchArgs, BeginArgs, BlobArgs, BlobInfo, CursorHead, DEFAULT_DB,
    DatabaseArgs, DatabaseInfo, Description, ExecArgs, FeedEvent, Index, QueryResult, Schema,
    SchemaArgs, Statement, Table, TableColumn, Trigger, TxInfo, View, WatchArgs, method,
};
use backroom_frame::auth::{Identity, Role};
use backroom_frame::body;
use backroom_frame::error::{Error, ErrorCode};
use backroom_frame::server::{BodyStream, Call, EventStream, Reply, Service, Vital};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, broadcast, oneshot};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::ctl::Ctl;
use crate::engine::{self, BlobPlace, Engine, EngineSettings, Lane};
use crate::sessions::{self, Bound, Sessions};
use crate::sql::{self, SqlConn, sqlite_error};
use crate::writer::{Apply, Ran, WriteJob, WriterSettings};

/// The most statements one batch may hold.
const MAX_BATCH: usize = 10_000;
/// The size of the pieces a backup is streamed in.
const BACKUP_CHUNK: usize = 128 * 1024;

static NEXT_TX: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
pub struct DbService(Arc<Inner>);

struct Inner {
    config: Config,
    settings: EngineSettings,
    // An async lock: opening a database happens while it is held, so two
    // callers never open the same file twice (two writers would be wrong).
    databases: Mutex<HashMap<String, Arc<Engine>>>,
    sessions: Sessions,
    cursors: Arc<Semaphore>,
    reaper: CancellationToken,
}

impl Service for DbService {
    async fn call(&self, call: Call) -> Result<Reply, Error> {
        let this = &self.0;
        if call.method == method::BLOB_WRITE {
            // It takes the call, for its upload.
            return Reply::value(&this.blob_write(call).await?);
        }
        match call.method.as_str() {
            method::QUERY => Reply::value(&this.statement(&call, true).await?),
            method::EXECUTE => Reply::value(&this.statement(&call, false).await?),
            method::BATCH => Reply::value(&this.batch(&call).await?),
            method::BEGIN => Reply::value(&this.begin(&call).await?),
            method::COMMIT => Reply::value(&this.finish(&call, true).await?),
            method::ROLLBACK => Reply::value(&this.finish(&call, false).await?),
            method::DESCRIBE => Reply::value(&this.describe(&call).await?),
            method::SCHEMA => Reply::value(&this.schema(&call).await?),
            method::CURSOR => this.cursor(&call).await,
            method::BLOB_READ => this.blob_read(&call).await,
            method::LIST_DATABASES => Reply::value(&this.list_databases(&call).await?),
            method::CREATE_DATABASE => Reply::value(&this.create_database(&call).await?),
            method::DROP_DATABASE => Reply::value(&this.drop_database(&call).await?),
            method::BACKUP => this.backup(&call).await,
            method::BACKUP_TO_FILE => Reply::value(&this.backup_to_file(&call).await?),
            method::WATCH => this.watch(&call).await,
            other => Err(Error::unknown_method(other)),
        }
    }

    fn vitals(&self) -> Vec<Vital> {
        self.0.settings.writer.gauges.vitals()
    }
}

impl DbService {
    /// Opens the default database and starts the reaper of abandoned
    /// transactions.
    pub async fn start(config: Config) -> Result<DbService, Error> {
        let settings = EngineSettings {
            synchronous: config.synchronous,
            readers: config.readers,
            writer: WriterSettings {
                tx_idle_timeout: config.tx_idle_timeout,
                max_result_bytes: config.max_result_bytes,
                gauges: Arc::default(),
            },
            cursor_page_bytes: config.cursor_page_bytes,
        };
        let inner = Arc::new(Inner {
            cursors: Arc::new(Semaphore::new(config.max_cursors)),
            config,
            settings,
            databases: Mutex::new(HashMap::new()),
            sessions: Sessions::default(),
            reaper: CancellationToken::new(),
        });
        inner.open(DEFAULT_DB, true).await?;
        tokio::spawn(reap(Arc::downgrade(&inner), inner.reaper.clone()));
        Ok(DbService(inner))
    }

    /// The database named `name` (`None`: the default), opened on first
    /// use; for the server's other faces, which share its engines.
    pub async fn engine(&self, name: Option<&str>) -> Result<Arc<Engine>, Error> {
        self.0.engine(name).await
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// A slot among the streams open at once, server-wide.
    pub fn stream_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.0.stream_permit()
    }

    /// Stops the reaper and every database, rolling back open transactions.
    pub async fn stop(&self) {
        self.0.reaper.cancel();
        let engines: Vec<Arc<Engine>> = self
            .0
            .databases
            .lock()
            .await
            .drain()
            .map(|(_, e)| e)
            .collect();
        for engine in engines {
            join(engine.close()).await;
        }
    }
}

/// Rolls back the transactions of connections that went away.
async fn reap(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    let Some(every) = inner.upgrade().map(|i| i.config.reap_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        for ended in inner.sessions.reap() {
            if let Some(bound) = &ended.tx {
                tracing::info!(tx = bound.tx, db = %bound.engine.name, "connection left; rolling back its transaction");
            }
            // Closing the session's connections rolls back what is open.
            for engine in ended.pinned {
                engine.unpin(ended.id);
            }
        }
    }
}

async fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    let _ = joined.await;
}

/// Database names are plain, so they map to a file name and nothing else.
fn check_name(name: &str) -> Result<(), Error> {
    if sql::is_database_name(name) {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "invalid database name {name:?}: use 1 to 64 letters, digits, '_' or '-', \
         starting with a letter or digit"
    )))
}

/// Backup file names are plain names inside the backup folder.
fn check_file_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "invalid backup file name {name:?}: use a plain name of letters, digits, '_', '-' \
         and '.', not starting with '.'"
    )))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal(format!("a blocking task failed: {e}")))?
}

impl Inner {
    fn path(&self, name: &str) -> PathBuf {
        self.config.data.join(format!("{name}.db"))
    }

    /// Opens a database into the registry; the registry lock is held.
    async fn open(&self, name: &str, create: bool) -> Result<Arc<Engine>, Error> {
        let mut databases = self.databases.lock().await;
        if let Some(engine) = databases.get(name) {
            return Ok(engine.clone());
        }
        let path = self.path(name);
        let settings = self.settings.clone();
        let owned = name.to_owned();
        let engine = blocking(move || {
            if !create && !path.exists() {
                return Err(Error::not_found(format!("no database named {owned:?}")));
            }
            Engine::open(&owned, &path, &settings, create)
        })
        .await?;
        let engine = Arc::new(engine);
        databases.insert(name.to_owned(), engine.clone());
        Ok(engine)
    }

    async fn engine(&self, name: Option<&str>) -> Result<Arc<Engine>, Error> {
        let name = name.unwrap_or(DEFAULT_DB);
        check_name(name)?;
        if let Some(engine) = self.databases.lock().await.get(name) {
            return Ok(engine.clone());
        }
        self.open(name, false).await
    }

    fn timeout(&self, ms: Option<u64>) -> Result<Duration, Error> {
        match ms {
            None => Ok(self.config.statement_timeout),
            Some(0) => Err(Error::bad_request("timeout_ms must be at least 1")),
            Some(ms) => Ok(Duration::from_millis(ms).min(self.config.max_statement_timeout)),
        }
    }

    /// The caller's transaction, when it holds one on this database.
    fn bound(&self, identity: &Arc<Identity>, engine: &Arc<Engine>) -> Option<u64> {
        self.sessions
            .get(identity)
            .filter(|b| Arc::ptr_eq(&b.engine, engine))
            .map(|b| b.tx)
    }

    /// Where the caller's work on `engine` runs, and in which transaction.
    fn route(&self, identity: &Arc<Identity>, engine: &Arc<Engine>) -> (Lane, Option<u64>) {
        (
            engine.lane(sessions::id(identity)),
            self.bound(identity, engine),
        )
    }

    /// Gives the caller's session a connection of its own on `engine`.
    async fn pin(&self, identity: &Arc<Identity>, engine: &Arc<Engine>) -> Result<Lane, Error> {
        let session = sessions::id(identity);
        let opening = engine.clone();
        blocking(move || opening.pin(session)).await?;
        self.sessions.pin(identity, engine);
        Ok(Lane::Pinned(session))
    }

    /// Runs statements on the shared writer, or on the session's own
    /// connection when it has one or they create connection state.
    async fn write_routed(
        &self,
        identity: &Arc<Identity>,
        engine: &Arc<Engine>,
        statements: Vec<Statement>,
        timeout: Duration,
    ) -> Result<Vec<QueryResult>, Error> {
        let role = identity.role;
        let (lane, tx) = self.route(identity, engine);
        let ran = engine.exec(lane, tx, statements, role, timeout).await?;
        let refused = || Error::internal("a session's own connection refused its statement");
        let statements = match ran {
            Ran::Done(results) => return Ok(results),
            Ran::NeedsSession(statements) if lane == Lane::Shared => statements,
            Ran::NeedsSession(_) => return Err(refused()),
        };
        let pinned = self.pin(identity, engine).await?;
        match engine.exec(pinned, tx, statements, role, timeout).await? {
            Ran::Done(results) => Ok(results),
            Ran::NeedsSession(_) => Err(refused()),
        }
    }

    /// `query` tries a reader first and moves to the writer only when SQLite
    /// says the statement writes; `execute` goes to the writer at once. A
    /// session with a connection of its own runs both there.
    async fn statement(&self, call: &Call, read_first: bool) -> Result<QueryResult, Error> {
        let args: ExecArgs = call.args()?;
        let timeout = self.timeout(args.timeout_ms)?;
        let role = call.identity.role;
        let engine = self.engine(args.db.as_deref()).await?;
        if read_first && engine.lane(sessions::id(&call.identity)) == Lane::Shared {
            let max = self.config.max_result_bytes;
            let read = engine
                .query_shared(args.statement.clone(), role, max, timeout)
                .await?;
            if let Some(result) = read {
                return Ok(result);
            }
        }
        let mut results = self
            .write_routed(&call.identity, &engine, vec![args.statement], timeout)
            .await?;
        results
            .pop()
            .ok_or_else(|| Error::internal("the writer returned no result"))
    }

    async fn batch(&self, call: &Call) -> Result<Vec<QueryResult>, Error> {
        let args: BatchArgs = call.args()?;
        if args.statements.is_empty() {
            return Err(Error::bad_request("a batch needs at least one statement"));
        }
        if args.statements.len() > MAX_BATCH {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!("a batch holds at most {MAX_BATCH} statements"),
            ));
        }
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        self.write_routed(&call.identity, &engine, args.statements, timeout)
            .await
    }

    /// Begins a transaction on the session's own connection, which holds
    /// the shared writer until the transaction ends.
    async fn begin(&self, call: &Call) -> Result<TxInfo, Error> {
        let args: BeginArgs = call.args()?;
        call.identity.require(Role::ReadWrite)?;
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let tx = NEXT_TX.fetch_add(1, Ordering::Relaxed);
        // Bound before it begins: if this call is dropped midway, the reaper
        // or the idle timeout still finds the transaction.
        self.sessions.bind(
            &call.identity,
            Bound {
                tx,
                engine: engine.clone(),
            },
        )?;
        let begun = match self.pin(&call.identity, &engine).await {
            Ok(lane) => {
                let ctl = Ctl::new();
                let (answer, rx) = oneshot::channel();
                let job = WriteJob::Begin {
                    tx,
                    mode: args.mode,
                    ctl: ctl.clone(),
                    answer,
                };
                match engine.send_write(lane, job) {
                    Ok(()) => engine::wait(ctl, rx, timeout).await,
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        if let Err(error) = begun {
            self.sessions.unbind(&call.identity, tx);
            return Err(error);
        }
        Ok(TxInfo {
            id: tx,
            db: engine.name.clone(),
            idle_timeout_ms: self.config.tx_idle_timeout.as_millis() as u64,
        })
    }

    /// Commits or rolls back the caller's transaction; either way the
    /// connection is free for a new one afterwards.
    async fn finish(&self, call: &Call, commit: bool) -> Result<(), Error> {
        let () = call.args()?;
        let Some(bound) = self.sessions.get(&call.identity) else {
            return Err(Error::conflict("this connection holds no transaction"));
        };
        let (answer, rx) = oneshot::channel();
        let job = if commit {
            WriteJob::Commit {
                tx: bound.tx,
                answer,
            }
        } else {
            WriteJob::Rollback {
                tx: bound.tx,
                answer: Some(answer),
            }
        };
        let lane = bound.engine.lane(sessions::id(&call.identity));
        let result = match bound.engine.send_write(lane, job) {
            Ok(()) => rx.await.unwrap_or_else(|_| {
                Err(Error::unavailable("the database stopped before answering"))
            }),
            Err(e) => Err(e),
        };
        self.sessions.unbind(&call.identity, bound.tx);
        result
    }

    async fn describe(&self, call: &Call) -> Result<Description, Error> {
        let args: ExecArgs = call.args()?;
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let (lane, tx) = self.route(&call.identity, &engine);
        let sql = args.statement.sql;
        let role = call.identity.role;
        engine
            .read(lane, tx, timeout, move |conn| {
                let readonly = conn.policy(&sql, role)?.readonly;
                // Never a cached statement: one prepared before a schema
                // change would show the old columns.
                let stmt = conn.conn.prepare(&sql).map_err(sqlite_error)?;
                let params = (1..=stmt.parameter_count())
                    .map(|i| stmt.parameter_name(i).map(str::to_owned))
                    .collect();
                Ok(Description {
                    params,
                    columns: sql::columns(&stmt),
                    readonly,
                })
            })
            .await
    }

    async fn schema(&self, call: &Call) -> Result<Schema, Error> {
        let args: SchemaArgs = call.args()?;
        let timeout = self.config.statement_timeout;
        let engine = self.engine(args.db.as_deref()).await?;
        let (lane, tx) = self.route(&call.identity, &engine);
        engine
            .read(lane, tx, timeout, move |conn| {
                read_schema(conn, args.table.as_deref()).map_err(sqlite_error)
            })
            .await
    }

    /// A slot among the streams (cursors and blob reads) open at once.
    fn stream_permit(&self) -> Result<OwnedSemaphorePermit, Error> {
        self.cursors.clone().try_acquire_owned().map_err(|_| {
            Error::busy(format!(
                "{} cursors are open on this server; retry when one ends",
                self.config.max_cursors
            ))
        })
    }

    async fn cursor(&self, call: &Call) -> Result<Reply, Error> {
        let args: ExecArgs = call.args()?;
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let (lane, tx) = self.route(&call.identity, &engine);
        let permit = self.stream_permit()?;
        let role = call.identity.role;
        let (columns, pages) = engine
            .cursor(lane, tx, args.statement, role, timeout, permit)
            .await?;
        let head = body::try_encode(&CursorHead { columns })?;
        Ok(Reply::Stream {
            head,
            body: pieces(pages),
        })
    }

    async fn blob_read(&self, call: &Call) -> Result<Reply, Error> {
        let args: BlobArgs = call.args()?;
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let (lane, tx) = self.route(&call.identity, &engine);
        let permit = self.stream_permit()?;
        let place = blob_place(args);
        let (bytes, pages) = engine.blob(lane, tx, place, timeout, permit).await?;
        let head = body::try_encode(&BlobInfo { bytes })?;
        Ok(Reply::Stream {
            head,
            body: pieces(pages),
        })
    }

    /// Writes one value from the call's upload, atomically: in the
    /// session's transaction, or in a transaction of its own.
    async fn blob_write(&self, mut call: Call) -> Result<BlobInfo, Error> {
        let args: BlobArgs = call.args()?;
        let role = call.identity.role;
        call.identity.require(Role::ReadWrite)?;
        let Some(bytes) = args.bytes else {
            return Err(Error::bad_request(
                "blob_write needs the length of its upload in bytes",
            ));
        };
        let timeout = self.timeout(args.timeout_ms)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let (lane, tx) = self.route(&call.identity, &engine);
        let upload = call.take_upload()?;
        let runtime = tokio::runtime::Handle::current();
        let deadline = std::time::Instant::now() + timeout;
        let place = blob_place(args);
        let work: Apply = Box::new(move |conn| {
            let upload = engine::Upload {
                stream: upload,
                runtime,
                timeout,
                deadline,
            };
            engine::write_blob(conn, &place, bytes, role, upload)
        });
        let ctl = Ctl::new();
        let (answer, rx) = oneshot::channel();
        let job = WriteJob::Apply {
            tx,
            ctl: ctl.clone(),
            work,
            answer,
        };
        engine.send_write(lane, job)?;
        engine::wait(ctl, rx, timeout).await?;
        Ok(BlobInfo { bytes })
    }

    async fn list_databases(&self, call: &Call) -> Result<Vec<DatabaseInfo>, Error> {
        let () = call.args()?;
        let dir = self.config.data.clone();
        blocking(move || {
            let mut out = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let file = entry.file_name();
                let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".db")) else {
                    continue;
                };
                if check_name(name).is_err() {
                    continue;
                }
                out.push(DatabaseInfo {
                    name: name.to_owned(),
                    bytes: entry.metadata()?.len(),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn create_database(&self, call: &Call) -> Result<DatabaseInfo, Error> {
        let args: DatabaseArgs = call.args()?;
        call.identity.require(Role::Admin)?;
        check_name(&args.name)?;
        let path = self.path(&args.name);
        if tokio::fs::try_exists(&path).await? {
            return Err(Error::conflict(format!(
                "database {:?} already exists",
                args.name
            )));
        }
        self.open(&args.name, true).await?;
        let bytes = tokio::fs::metadata(&path).await?.len();
        Ok(DatabaseInfo {
            name: args.name,
            bytes,
        })
    }

    async fn drop_database(&self, call: &Call) -> Result<(), Error> {
        let args: DatabaseArgs = call.args()?;
        call.identity.require(Role::Admin)?;
        check_name(&args.name)?;
        if args.name == DEFAULT_DB {
            return Err(Error::conflict("the default database cannot be dropped"));
        }
        let path = self.path(&args.name);
        let mut databases = self.databases.lock().await;
        if let Some(engine) = databases.remove(&args.name) {
            join(engine.close()).await;
        } else if !tokio::fs::try_exists(&path).await? {
            return Err(Error::not_found(format!(
                "no database named {:?}",
                args.name
            )));
        }
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match tokio::fs::remove_file(&file).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        drop(databases);
        tracing::info!(db = %args.name, user = %call.identity.user, "database dropped");
        Ok(())
    }

    /// Takes a consistent copy into a temporary file next to the databases.
    async fn snapshot(
        &self,
        engine: Arc<Engine>,
        dir: &Path,
    ) -> Result<tempfile::NamedTempFile, Error> {
        let dir = dir.to_owned();
        blocking(move || {
            let file = tempfile::Builder::new()
                .prefix(".backup-")
                .tempfile_in(&dir)?;
            engine.backup_to(file.path())?;
            file.as_file().sync_all()?;
            Ok(file)
        })
        .await
    }

    async fn backup(&self, call: &Call) -> Result<Reply, Error> {
        let args: BackupArgs = call.args()?;
        call.identity.require(Role::Admin)?;
        if args.file.is_some() {
            return Err(Error::bad_request(
                "backup streams the copy; use backup_to_file to write it on the server",
            ));
        }
        let engine = self.engine(args.db.as_deref()).await?;
        let name = engine.name.clone();
        let copy = self.snapshot(engine, &self.config.data).await?;
        let file = tokio::fs::File::open(copy.path()).await?;
        let bytes = file.metadata().await?.len();
        let head = body::try_encode(&BackupInfo {
            db: name,
            bytes,
            path: None,
        })?;
        // The temporary file lives in the stream's state: it is removed when
        // the stream ends or the client cancels.
        let body: BodyStream = Box::pin(futures_util::stream::unfold(
            Some((file, copy)),
            |state| async move {
                let (mut file, copy) = state?;
                let mut buf = vec![0u8; BACKUP_CHUNK];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok(Bytes::from(buf)), Some((file, copy))))
                    }
                    Err(e) => Some((Err(Error::from(e)), None)),
                }
            },
        ));
        Ok(Reply::Stream { head, body })
    }

    async fn backup_to_file(&self, call: &Call) -> Result<BackupInfo, Error> {
        let args: BackupArgs = call.args()?;
        call.identity.require(Role::Admin)?;
        let Some(file) = args.file else {
            return Err(Error::bad_request("backup_to_file needs a file name"));
        };
        check_file_name(&file)?;
        let engine = self.engine(args.db.as_deref()).await?;
        let name = engine.name.clone();
        let dir = self.config.data.join("backups");
        tokio::fs::create_dir_all(&dir).await?;
        let dest = dir.join(&file);
        let copy = self.snapshot(engine, &dir).await?;
        let bytes = copy.as_file().metadata()?.len();
        let target = dest.clone();
        blocking(move || {
            copy.persist_noclobber(&target).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::conflict(format!(
                        "the backup file {} already exists",
                        target.display()
                    ))
                } else {
                    Error::from(e.error)
                }
            })?;
            Ok(())
        })
        .await?;
        Ok(BackupInfo {
            db: name,
            bytes,
            path: Some(dest.display().to_string()),
        })
    }

    async fn watch(&self, call: &Call) -> Result<Reply, Error> {
        let args: WatchArgs = call.args()?;
        if args.table.is_empty() {
            return Err(Error::bad_request("watch needs a table name"));
        }
        let engine = self.engine(args.db.as_deref()).await?;
        let changes = engine.subscribe();
        let head = body::try_encode(&WatchArgs {
            db: Some(engine.name.clone()),
            table: args.table.clone(),
        })?;
        let table = args.table;
        let events: EventStream =
            Box::pin(futures_util::stream::unfold(changes, move |mut changes| {
                let table = table.clone();
                async move {
                    loop {
                        let event = match changes.recv().await {
                            Ok(c) if c.table.eq_ignore_ascii_case(&table) => FeedEvent::Change {
                                table: c.table,
                                op: c.op,
                                rowid: c.rowid,
                            },
                            Ok(_) => continue,
                            Err(broadcast::error::RecvError::Lagged(missed)) => {
                                FeedEvent::Lagged { missed }
                            }
                            Err(broadcast::error::RecvError::Closed) => return None,
                        };
                        return Some((body::encode(&event), changes));
                    }
                }
            }));
        Ok(Reply::Subscription { head, events })
    }
}

fn blob_place(args: BlobArgs) -> BlobPlace {
    BlobPlace {
        table: args.table,
        column: args.column,
        rowid: args.rowid,
    }
}

/// A stream's pieces as a reply body.
fn pieces(pages: engine::CursorPages) -> BodyStream {
    Box::pin(futures_util::stream::unfold(pages, |mut pages| async {
        pages.next().await.map(|page| (page, pages))
    }))
}

fn read_schema(conn: &mut SqlConn, only: Option<&str>) -> rusqlite::Result<Schema> {
    let mut schema = Schema::default();
    // A session's TEMP objects are its own schema too.
    let mut objects = conn.conn.prepare_cached(
        "SELECT type, name, tbl_name, sql FROM \
           (SELECT * FROM sqlite_schema UNION ALL SELECT * FROM sqlite_temp_schema) \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
           AND (?1 IS NULL OR name = ?1 OR tbl_name = ?1) \
         ORDER BY name",
    )?;
    let rows: Vec<(String, String, String, Option<String>)> = objects
        .query_map([only], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    drop(objects);
    for (kind, name, table, sql) in rows {
        match kind.as_str() {
            "table" => schema.tables.push(Table {
                columns: table_columns(conn, &name)?,
                name,
                sql,
            }),
            "view" => schema.views.push(View {
                columns: table_columns(conn, &name)?,
                name,
                sql,
            }),
            "index" => {
                let unique = index_is_unique(conn, &table, &name)?;
                schema.indexes.push(Index {
                    name,
                    table,
                    unique,
                    sql,
                });
            }
            "trigger" => schema.triggers.push(Trigger { name, table, sql }),
            _ => {}
        }
    }
    Ok(schema)
}

fn table_columns(conn: &SqlConn, table: &str) -> rusqlite::Result<Vec<TableColumn>> {
    let mut stmt = conn.conn.prepare_cached(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
    )?;
    stmt.query_map([table], |r| {
        Ok(TableColumn {
            name: r.get(0)?,
            decl_type: r.get(1)?,
            not_null: r.get(2)?,
            default: r.get(3)?,
            primary_key: r.get(4)?,
        })
    })?
    .collect()
}

fn index_is_unique(conn: &SqlConn, table: &str, index: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn
        .conn
        .prepare_cached("SELECT \"unique\" FROM pragma_index_list(?1) WHERE name = ?2")?;
    let unique: Option<bool> = stmt
        .query_map([table, index], |r| r.get(0))?
        .next()
        .transpose()?;
    Ok(unique.unwrap_or(false))
}
