//! One PostgreSQL connection as a session of the engine: its start-up and
//! authentication, its transaction and settings, and each statement run
//! through the engine and answered in PostgreSQL's terms.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backroom_api::db::{DEFAULT_DB, QueryResult, Statement, TxMode, Value};
use backroom_frame::auth::{Identity, Role};
use backroom_frame::error::Error;
use futures_util::{Sink, SinkExt, StreamExt};
use parking_lot::{Mutex, MutexGuard};
use pgwire::api::auth::StartupHandler;
use pgwire::api::auth::{
    ServerParameterProvider, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::CopyResponse;
use pgwire::api::results::{
    DescribePortalResponse, DescribeStatementResponse, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_DATABASE, METADATA_USER, PgWireConnectionState, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyOutResponse};
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::Execute;
use pgwire::messages::response::TransactionStatus;
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Face;
use super::catalog::{self, Catalog};
use super::copy;
use super::cursors::{self, CursorStatement, OpenCursor};
use super::rewrite::{self, Rewritten};
use super::savepoints;
use super::types::{self, error_info, fatal, refuse};
use crate::ctl::Ctl;
use crate::engine::{self, Engine, Lane, SessionId};
use crate::sql;
use crate::writer::{Ran, SavepointOp, WriteJob};

/// Transaction ids of the face: from the top half of the range, so they
/// never meet the frame protocol's, which count up from 1.
static NEXT_TX: AtomicU64 = AtomicU64::new(1 << 62);

/// The PostgreSQL version the face says it is, for drivers that check.
const PG_VERSION: &str = "15.0";

/// Who the session is, once it has started.
struct Started {
    identity: Identity,
    engine: Arc<Engine>,
}

#[derive(Default)]
struct State {
    started: Option<Arc<Started>>,
    tx: Option<u64>,
    /// The session has a connection of its own on its database.
    pinned: bool,
    settings: HashMap<String, String>,
    /// What Describe found for each SQL text, and the SQL SQLite runs for
    /// it, so that a prepared statement executed again costs one trip to
    /// the engine, not two, and is not rewritten again; cleared when this
    /// session changes the schema or a setting (a rewrite may read one).
    described: HashMap<String, Arc<Described>>,
    copy_in: Option<CopyIn>,
    /// Named cursors (DECLARE), by name.
    cursors: HashMap<String, OpenCursor>,
    /// The relations `\d NAME` looked up, by oid less [`catalog::FIRST_OID`].
    relations: Vec<String>,
    /// The transaction is aborted: statements are refused until ROLLBACK,
    /// or a ROLLBACK TO a savepoint.
    failed: bool,
}

/// A statement as the extended protocol runs it.
struct Described {
    /// The SQL SQLite runs: the client's, rewritten.
    sql: String,
    params: Vec<Type>,
    columns: Vec<backroom_api::db::Column>,
    /// It begins with SELECT or VALUES, so a portal may stream it.
    reads: bool,
}

/// Past this many described statements, the memory is cleared.
const DESCRIBED_CACHE: usize = 256;

pub struct PgSession {
    face: Arc<Face>,
    pid: i32,
    secret: i32,
    // A std lock: never held across an await.
    state: Mutex<State>,
    parser: Arc<NoopQueryParser>,
}

/// What one statement did.
enum Outcome {
    Rows(QueryResult, String),
    Done(Tag),
    Began,
    Ended(&'static str),
    /// `COPY ... FROM STDIN` waits for this many columns of data.
    CopyIn(usize),
    /// `COPY ... TO STDOUT`'s lines, ready to send.
    CopyOut {
        width: usize,
        rows: usize,
        lines: Vec<String>,
    },
}

/// A `COPY ... FROM STDIN` receiving its data.
struct CopyIn {
    spec: copy::Copy,
    width: usize,
    data: Vec<u8>,
}

/// The most data one `COPY ... FROM STDIN` may send: it is inserted in one
/// atomic write, so it is held whole until CopyDone.
const MAX_COPY_BYTES: usize = 256 * 1024 * 1024;

impl PgSession {
    pub fn new(face: Arc<Face>, pid: i32) -> PgSession {
        let secret = i32::from_ne_bytes(rand_bytes());
        PgSession {
            face,
            pid,
            secret,
            state: Mutex::new(State::default()),
            parser: Arc::new(NoopQueryParser::new()),
        }
    }

    pub fn face(&self) -> Arc<Face> {
        self.face.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The session's id in the engine: its own address, unique while it
    /// lives, and it unpins before it goes.
    fn id(&self) -> SessionId {
        std::ptr::from_ref(self) as SessionId
    }

    fn started(&self) -> PgWireResult<Arc<Started>> {
        self.lock()
            .started
            .clone()
            .ok_or_else(|| fatal("08P01", "the session has not started"))
    }

    fn timeout(&self) -> Duration {
        let config = self.face.service.config();
        let asked = self
            .lock()
            .settings
            .get("statement_timeout")
            .and_then(|v| v.trim_end_matches("ms").parse::<u64>().ok())
            .filter(|ms| *ms > 0);
        asked.map_or(config.statement_timeout, |ms| {
            Duration::from_millis(ms).min(config.max_statement_timeout)
        })
    }

    /// Runs `work`, unless a CancelRequest for this session comes first:
    /// then the work is dropped, which interrupts its statement.
    async fn cancellable<T>(
        &self,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let token = CancellationToken::new();
        self.face
            .running
            .lock()
            .insert(self.pid, (self.secret, token.clone()));
        let result = tokio::select! {
            result = work => result,
            () = token.cancelled() => Err(Error::cancelled("canceling statement due to user request")),
        };
        self.face.running.lock().remove(&self.pid);
        result
    }

    /// Runs one statement (already rewritten) with its parameters.
    async fn run(&self, sql: &str, params: Vec<Value>) -> PgWireResult<Outcome> {
        let words = keywords(sql);
        let first = words.first().map(String::as_str).unwrap_or("");
        let savepoint = matches!(first, "savepoint" | "release" | "rollback" | "abort")
            .then(|| savepoints::parse(sql))
            .flatten();
        let ends_tx =
            matches!(first, "commit" | "end" | "rollback" | "abort") && savepoint.is_none();
        let failed = self.lock().failed;
        let recovers = matches!(savepoint, Some(Ok(SavepointOp::RollbackTo(_))));
        if failed && !ends_tx && !recovers {
            return Err(refuse(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            ));
        }
        if matches!(first, "create" | "drop" | "alter" | "set" | "reset") {
            self.lock().described.clear();
        }
        if let Some(op) = savepoint {
            return self.savepoint(op.map_err(|e| refuse("42601", e))?).await;
        }
        match first {
            "begin" | "start" => return self.begin().await,
            "commit" | "end" if !failed => return self.commit().await,
            "commit" | "end" | "rollback" | "abort" => return self.rollback().await,
            "set" => return Ok(self.set(sql, &words)),
            "reset" => {
                if let Some(name) = words.get(1) {
                    self.lock().settings.remove(name);
                }
                return Ok(Outcome::Done(Tag::new("RESET")));
            }
            "show" => return Ok(self.show(&words)),
            "copy" => return self.copy(sql).await,
            "declare" | "fetch" | "close" => {
                let asked = cursors::parse(sql).map_err(|e| refuse("0A000", e))?;
                return self.cursor(asked).await;
            }
            "discard" | "deallocate" | "listen" | "unlisten" => {
                return Ok(Outcome::Done(Tag::new(&first.to_ascii_uppercase())));
            }
            _ => {}
        }
        if let Some(asked) = catalog::recognise(sql) {
            return self.catalog(asked).await;
        }
        let mut statement = Statement::new(sql);
        statement.params = params;
        let result = self
            .cancellable(self.statement(statement))
            .await
            .map_err(engine_error)?;
        let tag = command_tag(&words, &result);
        Ok(Outcome::Rows(result, tag))
    }

    /// Reads on the reader pool when the session has no connection of its
    /// own, and writes on the shared writer (or the session's connection);
    /// statements that set connection state move the session onto a
    /// connection of its own, as on the frame protocol.
    async fn statement(&self, statement: Statement) -> Result<QueryResult, Error> {
        let started = self
            .started()
            .map_err(|_| Error::bad_request("not started"))?;
        let role = started.identity.role;
        let engine = started.engine.clone();
        let timeout = self.timeout();
        let (tx, pinned) = {
            let state = self.lock();
            (state.tx, state.pinned)
        };
        let lane = if pinned {
            Lane::Pinned(self.id())
        } else {
            Lane::Shared
        };
        if lane == Lane::Shared {
            let max = self.face.service.config().max_result_bytes;
            let answer = engine
                .query_shared(statement.clone(), role, max, timeout)
                .await?;
            if let Some(result) = answer {
                return Ok(result);
            }
        }
        let ran = engine
            .exec(lane, tx, vec![statement], role, timeout)
            .await?;
        let statements = match ran {
            Ran::Done(mut results) => return results.pop().ok_or_else(no_result),
            Ran::NeedsSession(statements) if lane == Lane::Shared => statements,
            Ran::NeedsSession(_) => return Err(no_result()),
        };
        let pinned = self.pin(&engine).await?;
        match engine.exec(pinned, tx, statements, role, timeout).await? {
            Ran::Done(mut results) => results.pop().ok_or_else(no_result),
            Ran::NeedsSession(_) => Err(no_result()),
        }
    }

    async fn pin(&self, engine: &Arc<Engine>) -> Result<Lane, Error> {
        let session = self.id();
        let opening = engine.clone();
        tokio::task::spawn_blocking(move || opening.pin(session))
            .await
            .map_err(|e| Error::internal(format!("a blocking task failed: {e}")))??;
        self.lock().pinned = true;
        Ok(Lane::Pinned(session))
    }

    async fn begin(&self) -> PgWireResult<Outcome> {
        if self.lock().tx.is_some() {
            return Ok(Outcome::Began);
        }
        let started = self.started()?;
        let engine = started.engine.clone();
        let result = async {
            started.identity.require(Role::ReadWrite)?;
            let lane = self.pin(&engine).await?;
            let tx = NEXT_TX.fetch_add(1, Ordering::Relaxed);
            let ctl = Ctl::new();
            let (answer, rx) = oneshot::channel();
            engine.send_write(
                lane,
                WriteJob::Begin {
                    tx,
                    mode: TxMode::Deferred,
                    ctl: ctl.clone(),
                    answer,
                },
            )?;
            engine::wait(ctl, rx, self.timeout()).await?;
            self.lock().tx = Some(tx);
            Ok::<_, Error>(())
        };
        self.cancellable(result).await.map_err(engine_error)?;
        Ok(Outcome::Began)
    }

    /// SAVEPOINT, RELEASE and ROLLBACK TO in the session's transaction. A
    /// ROLLBACK TO that succeeds ends the aborted state, as in PostgreSQL.
    async fn savepoint(&self, op: SavepointOp) -> PgWireResult<Outcome> {
        let (tag, verb) = match &op {
            SavepointOp::Set(_) => ("SAVEPOINT", "SAVEPOINT"),
            SavepointOp::Release(_) => ("RELEASE", "RELEASE SAVEPOINT"),
            SavepointOp::RollbackTo(_) => ("ROLLBACK", "ROLLBACK TO SAVEPOINT"),
        };
        let Some(tx) = self.lock().tx else {
            return Err(refuse(
                "25P01",
                format!("{verb} can only be used in transaction blocks"),
            ));
        };
        let engine = self.started()?.engine.clone();
        let recovers = matches!(op, SavepointOp::RollbackTo(_));
        let done = engine.savepoint(Lane::Pinned(self.id()), tx, op, self.timeout());
        self.cancellable(done).await.map_err(|error| {
            if error.message.starts_with("no such savepoint") {
                refuse("3B001", error.message)
            } else {
                engine_error(error)
            }
        })?;
        if recovers {
            self.lock().failed = false;
        }
        Ok(Outcome::Done(Tag::new(tag)))
    }

    /// Notes whether the transaction is aborted (pgwire's status E) before a
    /// query or an Execute runs, and lets pgwire start from T: the status
    /// it reports after the statement is E again unless it failed, or a
    /// ROLLBACK TO made the transaction whole again, as only we know.
    fn enter<C: ClientInfo>(&self, client: &mut C) {
        let failed = client.transaction_status() == TransactionStatus::Error;
        self.lock().failed = failed;
        if failed {
            client.set_transaction_status(TransactionStatus::Transaction);
        }
    }

    async fn commit(&self) -> PgWireResult<Outcome> {
        self.finish(true).await
    }

    async fn rollback(&self) -> PgWireResult<Outcome> {
        self.finish(false).await
    }

    async fn finish(&self, commit: bool) -> PgWireResult<Outcome> {
        // Cursors end with their transaction, as PostgreSQL's WITHOUT HOLD.
        self.lock().cursors.clear();
        let Some(tx) = self.lock().tx.take() else {
            return Ok(Outcome::Ended(if commit { "COMMIT" } else { "ROLLBACK" }));
        };
        let engine = self.started()?.engine.clone();
        let lane = Lane::Pinned(self.id());
        let (answer, rx) = oneshot::channel();
        let job = if commit {
            WriteJob::Commit { tx, answer }
        } else {
            WriteJob::Rollback {
                tx,
                answer: Some(answer),
            }
        };
        let done = match engine.send_write(lane, job) {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| Err(Error::unavailable("the database stopped"))),
            Err(e) => Err(e),
        };
        done.map_err(engine_error)?;
        Ok(Outcome::Ended(if commit { "COMMIT" } else { "ROLLBACK" }))
    }

    /// `SET [SESSION | LOCAL] name { = | TO } value`, kept per session.
    fn set(&self, sql: &str, words: &[String]) -> Outcome {
        let rest: Vec<&String> = words[1..]
            .iter()
            .skip_while(|w| *w == "session" || *w == "local")
            .collect();
        if let Some(name) = rest.first() {
            let text = sql.split_once('=').map(|(_, v)| v.to_owned());
            let value = text.unwrap_or_else(|| {
                let lower = sql.to_ascii_lowercase();
                lower
                    .find(" to ")
                    .map(|at| sql[at + 4..].to_owned())
                    .unwrap_or_default()
            });
            let value = value.trim().trim_matches('\'').to_owned();
            self.lock().settings.insert((*name).clone(), value);
        }
        Outcome::Done(Tag::new("SET"))
    }

    fn show(&self, words: &[String]) -> Outcome {
        let name = words.get(1).cloned().unwrap_or_default();
        let value = self.setting(&name).unwrap_or_default();
        let result = QueryResult {
            columns: vec![backroom_api::db::Column {
                name: name.clone(),
                decl_type: Some("TEXT".into()),
            }],
            rows: vec![vec![Value::Text(value)]],
            rows_affected: 0,
            last_insert_rowid: 0,
            duration_us: 0,
        };
        Outcome::Rows(result, "SHOW".into())
    }

    /// A setting as `SHOW` and `current_setting` answer it.
    fn setting(&self, name: &str) -> Option<String> {
        if let Some(v) = self.lock().settings.get(name) {
            return Some(v.clone());
        }
        let fixed = server_parameters(self.lock().started.as_deref());
        fixed
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .or_else(|| match name {
                "transaction_isolation" | "default_transaction_isolation" => {
                    Some("serializable".into())
                }
                "statement_timeout" => Some("0".into()),
                "max_identifier_length" => Some("63".into()),
                _ => None,
            })
    }

    /// Runs each statement of a simple query until one fails, as
    /// PostgreSQL does. A COPY's data goes to the client as it comes.
    async fn simple<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut out = Vec::new();
        for statement in rewrite::split(query) {
            let rewritten = rewrite::rewrite(&statement, &Literals(self));
            match self.run(&rewritten.sql, Vec::new()).await {
                Ok(Outcome::CopyOut { width, rows, lines }) => {
                    send_copy_out(client, width, lines).await?;
                    out.push(Response::Execution(Tag::new("COPY").with_rows(rows)));
                }
                Ok(Outcome::CopyIn(width)) => {
                    out.push(Response::CopyIn(CopyResponse::new(
                        0,
                        width,
                        vec![0; width],
                    )));
                    break;
                }
                Ok(outcome) => out.push(respond(outcome, None, &Format::UnifiedText)?),
                Err(PgWireError::UserError(info)) => {
                    out.push(Response::Error(info));
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        if out.is_empty() {
            out.push(Response::EmptyQuery);
        }
        Ok(out)
    }

    /// DECLARE, FETCH and CLOSE on the engine's cursors. A named cursor
    /// runs on a connection of its own (the engine's shared lane), so that
    /// while it is open the session's other statements still run; it reads
    /// the committed database, not the session's uncommitted writes.
    async fn cursor(&self, asked: CursorStatement) -> PgWireResult<Outcome> {
        match asked {
            CursorStatement::Declare { name, query } => {
                let started = self.started()?;
                let engine = started.engine.clone();
                let sql = rewrite::rewrite(&query, &Literals(self)).sql;
                let opened = async {
                    let permit = self.face.service.stream_permit()?;
                    engine
                        .cursor(
                            Lane::Shared,
                            None,
                            Statement::new(sql),
                            started.identity.role,
                            self.face.service.config().max_statement_timeout,
                            permit,
                        )
                        .await
                };
                let (columns, pages) = self.cancellable(opened).await.map_err(engine_error)?;
                let open = OpenCursor {
                    columns,
                    pages,
                    buffered: Default::default(),
                    done: false,
                };
                self.lock().cursors.insert(name, open);
                Ok(Outcome::Done(Tag::new("DECLARE CURSOR")))
            }
            CursorStatement::Fetch { name, count } => {
                let missing = || refuse("34000", format!("cursor \"{name}\" does not exist"));
                let mut open = self.lock().cursors.remove(&name).ok_or_else(missing)?;
                let fetched = self.cancellable(open.fetch(count, decode_page)).await;
                let columns = open.columns.clone();
                self.lock().cursors.insert(name, open);
                let rows = fetched.map_err(engine_error)?;
                let result = QueryResult {
                    columns,
                    rows,
                    rows_affected: 0,
                    last_insert_rowid: 0,
                    duration_us: 0,
                };
                Ok(Outcome::Rows(result, "FETCH".into()))
            }
            CursorStatement::Close { name: None } => {
                self.lock().cursors.clear();
                Ok(Outcome::Done(Tag::new("CLOSE CURSOR ALL")))
            }
            CursorStatement::Close { name: Some(name) } => {
                if self.lock().cursors.remove(&name).is_none() {
                    return Err(refuse("34000", format!("cursor \"{name}\" does not exist")));
                }
                Ok(Outcome::Done(Tag::new("CLOSE CURSOR")))
            }
        }
    }

    /// Answers psql's catalog queries from SQLite's schema.
    async fn catalog(&self, asked: Catalog) -> PgWireResult<Outcome> {
        let user = self.started()?.identity.user.clone();
        let result = match asked {
            Catalog::Relations { views, name } => {
                self.schema_query(catalog::relations_sql(views, name.as_deref(), &user), None)
                    .await?
            }
            Catalog::Indexes { name } => {
                self.schema_query(catalog::indexes_sql(name.as_deref(), &user), None)
                    .await?
            }
            Catalog::Lookup { name } => self.lookup(name).await?,
            Catalog::Relation { oid } => {
                let name = self.relation(oid)?;
                self.schema_query(catalog::relation_sql(), Some(name))
                    .await?
            }
            Catalog::Columns { oid } => {
                let name = self.relation(oid)?;
                self.schema_query(catalog::COLUMNS_SQL.into(), Some(name))
                    .await?
            }
            Catalog::TableIndexes { oid } => {
                let name = self.relation(oid)?;
                self.schema_query(catalog::INDEXES_SQL.into(), Some(name))
                    .await?
            }
            Catalog::Nothing { oid } => {
                self.relation(oid)?;
                QueryResult {
                    columns: vec![text_column("none")],
                    rows: Vec::new(),
                    rows_affected: 0,
                    last_insert_rowid: 0,
                    duration_us: 0,
                }
            }
            Catalog::Databases => self.databases(&user).await?,
            Catalog::Unsupported => return Err(refuse("0A000", catalog::UNSUPPORTED)),
        };
        Ok(Outcome::Rows(result, "SELECT".into()))
    }

    /// Runs a query of SQLite's schema, with the relation's name as `?1`.
    async fn schema_query(&self, sql: String, name: Option<String>) -> PgWireResult<QueryResult> {
        let mut statement = Statement::new(sql);
        statement.params = name.into_iter().map(Value::Text).collect();
        self.cancellable(self.statement(statement))
            .await
            .map_err(engine_error)
    }

    /// `\d NAME`'s lookup: the relation's oid, given for this session.
    async fn lookup(&self, name: String) -> PgWireResult<QueryResult> {
        let found = self.schema_query(catalog::lookup_sql(), Some(name)).await?;
        let rows = match found.rows.into_iter().next() {
            Some(mut row) => {
                let Some(Value::Text(name)) = row.pop() else {
                    return Err(refuse("XX000", "the schema gave a relation without a name"));
                };
                let oid = self.oid_of(&name);
                vec![vec![
                    Value::Text(oid.to_string()),
                    Value::Text("public".into()),
                    Value::Text(name),
                ]]
            }
            None => Vec::new(),
        };
        Ok(QueryResult {
            columns: vec![
                text_column("oid"),
                text_column("nspname"),
                text_column("relname"),
            ],
            rows,
            rows_affected: 0,
            last_insert_rowid: 0,
            duration_us: 0,
        })
    }

    /// The oid this session gives relation `name`.
    fn oid_of(&self, name: &str) -> u32 {
        let mut state = self.lock();
        let at = match state.relations.iter().position(|n| n == name) {
            Some(at) => at,
            None => {
                state.relations.push(name.to_owned());
                state.relations.len() - 1
            }
        };
        catalog::FIRST_OID + at as u32
    }

    /// The relation an oid of this session names.
    fn relation(&self, oid: u32) -> PgWireResult<String> {
        let at = oid.checked_sub(catalog::FIRST_OID).map(|at| at as usize);
        at.and_then(|at| self.lock().relations.get(at).cloned())
            .ok_or_else(|| refuse("0A000", catalog::UNSUPPORTED))
    }

    /// The server's databases, as psql's `\l` shows them.
    async fn databases(&self, owner: &str) -> PgWireResult<QueryResult> {
        let dir = self.face.service.config().data.clone();
        let io = |e: std::io::Error| refuse("58030", format!("cannot list the databases: {e}"));
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io)?;
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let file = entry.file_name();
            if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".db")) {
                if sql::is_database_name(name) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        let rows = names
            .into_iter()
            .map(|n| {
                vec![
                    Value::Text(n),
                    Value::Text(owner.to_owned()),
                    Value::Text("UTF8".into()),
                ]
            })
            .collect();
        Ok(QueryResult {
            columns: vec![
                text_column("Name"),
                text_column("Owner"),
                text_column("Encoding"),
            ],
            rows,
            rows_affected: 0,
            last_insert_rowid: 0,
            duration_us: 0,
        })
    }

    /// Prepares `sql` without running it: its parameter count and columns.
    async fn prepare(&self, sql: &str) -> Result<(usize, Vec<backroom_api::db::Column>), Error> {
        let started = self
            .started()
            .map_err(|_| Error::bad_request("not started"))?;
        let engine = started.engine.clone();
        let lane = engine.lane(self.id());
        let tx = self.lock().tx;
        let sql = sql.to_owned();
        engine
            .read(lane, tx, self.timeout(), move |conn| {
                let stmt = conn.conn.prepare(&sql).map_err(sql::sqlite_error)?;
                Ok((stmt.parameter_count(), sql::columns(&stmt)))
            })
            .await
    }

    /// Starts `COPY ... FROM STDIN` or answers `COPY ... TO STDOUT` whole.
    async fn copy(&self, sql: &str) -> PgWireResult<Outcome> {
        let spec = copy::parse(sql).map_err(|e| refuse("0A000", e))?;
        let columns = if spec.columns.is_empty() {
            "*".to_owned()
        } else {
            spec.columns.join(", ")
        };
        let query = match (&spec.query, &spec.table) {
            (Some(query), _) => query.clone(),
            (None, Some(table)) => format!("SELECT {columns} FROM {table}"),
            (None, None) => return Err(refuse("42601", "COPY needs a table or a query")),
        };
        if spec.from_stdin {
            let (_, described) = self.prepare(&query).await.map_err(engine_error)?;
            let width = described.len();
            self.lock().copy_in = Some(CopyIn {
                spec,
                width,
                data: Vec::new(),
            });
            return Ok(Outcome::CopyIn(width));
        }
        let result = self
            .cancellable(self.statement(Statement::new(query)))
            .await
            .map_err(engine_error)?;
        let mut lines = Vec::with_capacity(result.rows.len() + 1);
        if spec.header && spec.csv {
            let names: Vec<Value> = result
                .columns
                .iter()
                .map(|c| Value::Text(c.name.clone()))
                .collect();
            lines.push(copy::encode_line(&names, true));
        }
        lines.extend(result.rows.iter().map(|r| copy::encode_line(r, spec.csv)));
        Ok(Outcome::CopyOut {
            width: result.columns.len(),
            rows: result.rows.len(),
            lines,
        })
    }

    /// Inserts what a `COPY ... FROM STDIN` received, atomically.
    async fn copy_done(&self) -> PgWireResult<usize> {
        let Some(pending) = self.lock().copy_in.take() else {
            return Err(refuse("08P01", "CopyDone without a COPY in progress"));
        };
        let text = String::from_utf8(pending.data)
            .map_err(|_| refuse("22021", "COPY data is not valid UTF-8"))?;
        let rows = copy::decode(&text, pending.spec.csv, pending.spec.header)
            .map_err(|e| refuse("22P04", e))?;
        let table = pending.spec.table.unwrap_or_default();
        let target = if pending.spec.columns.is_empty() {
            table
        } else {
            format!("{table} ({})", pending.spec.columns.join(", "))
        };
        let slots: Vec<String> = (1..=pending.width).map(|i| format!("?{i}")).collect();
        let sql = format!("INSERT INTO {target} VALUES ({})", slots.join(", "));
        let mut statements = Vec::with_capacity(rows.len());
        for (line, row) in rows.into_iter().enumerate() {
            if row.len() != pending.width {
                return Err(refuse(
                    "22P04",
                    format!(
                        "COPY data line {}: {} fields, the table takes {}",
                        line + 1,
                        row.len(),
                        pending.width
                    ),
                ));
            }
            let mut statement = Statement::new(sql.clone());
            statement.params = row;
            statements.push(statement);
        }
        let count = statements.len();
        if count == 0 {
            return Ok(0);
        }
        let started = self.started()?;
        let engine = started.engine.clone();
        let lane = engine.lane(self.id());
        let tx = self.lock().tx;
        let ran = engine.exec(lane, tx, statements, started.identity.role, self.timeout());
        match self.cancellable(ran).await.map_err(engine_error)? {
            Ran::Done(_) => Ok(count),
            Ran::NeedsSession(_) => Err(engine_error(no_result())),
        }
    }

    /// Streams a read-only statement's rows through an engine cursor, so a
    /// portal executed with a row limit holds a few pages at a time, however
    /// large its result.
    async fn portal_rows(
        &self,
        sql: &str,
        params: Vec<Value>,
        fields: Vec<FieldInfo>,
    ) -> PgWireResult<Response> {
        let started = self.started()?;
        let engine = started.engine.clone();
        let lane = engine.lane(self.id());
        let tx = self.lock().tx;
        let mut statement = Statement::new(sql);
        statement.params = params;
        let opened = async {
            let permit = self.face.service.stream_permit()?;
            engine
                .cursor(
                    lane,
                    tx,
                    statement,
                    started.identity.role,
                    self.timeout(),
                    permit,
                )
                .await
        };
        let (_, pages) = self.cancellable(opened).await.map_err(engine_error)?;
        let fields = Arc::new(fields);
        let rows = futures_util::stream::unfold(
            (pages, fields.clone()),
            |(mut pages, fields)| async move {
                let page = pages.next().await?;
                let rows: Vec<PgWireResult<DataRow>> = match page.and_then(|p| decode_page(&p)) {
                    Ok(rows) => rows.iter().map(|r| types::encode_row(&fields, r)).collect(),
                    Err(e) => vec![Err(engine_error(e))],
                };
                Some((futures_util::stream::iter(rows), (pages, fields)))
            },
        )
        .flatten();
        Ok(Response::Query(QueryResponse::new(fields, rows)))
    }

    /// Parameter and column types of a statement, without running it.
    async fn describe(&self, stored: &StoredStatement<String>) -> PgWireResult<Arc<Described>> {
        let key = &stored.statement;
        if let Some(found) = self.lock().described.get(key) {
            return Ok(found.clone());
        }
        let Rewritten { sql, param_types } = rewrite::rewrite(&stored.statement, &Literals(self));
        let described = self.prepare(&sql).await;
        let ((count, columns), known) = match described {
            Ok(d) => (d, true),
            // A statement the face answers itself (SET, BEGIN ...) or one
            // SQLite cannot prepare yet describes as no data.
            Err(_) => ((stored.parameter_types.len(), Vec::new()), false),
        };
        let params: Vec<Type> = (1..=count)
            .map(|n| types::param_type(&stored.parameter_types, &param_types, n))
            .collect();
        let reads = matches!(
            keywords(&sql).first().map(String::as_str),
            Some("select" | "values")
        );
        let found = Arc::new(Described {
            sql,
            params,
            columns,
            reads,
        });
        if known {
            let mut state = self.lock();
            if state.described.len() >= DESCRIBED_CACHE {
                state.described.clear();
            }
            state.described.insert(key.clone(), found.clone());
        }
        Ok(found)
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        // Closing the session's connection rolls back what it had open.
        let state = self.lock();
        if let (true, Some(started)) = (state.pinned, &state.started) {
            started.engine.unpin(self.id());
        }
    }
}

fn engine_error(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&error)))
}

/// A cursor page: its length as a big-endian u32, then the rows.
fn decode_page(page: &[u8]) -> Result<Vec<Vec<Value>>, Error> {
    let body = page
        .get(4..)
        .ok_or_else(|| Error::internal("a cursor page without its length"))?;
    backroom_frame::body::decode(body)
}

/// Sends a `COPY ... TO STDOUT`'s lines, between its response and its end.
async fn send_copy_out<C>(client: &mut C, width: usize, lines: Vec<String>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let head = CopyOutResponse::new(0, width as i16, vec![0; width]);
    client
        .feed(PgWireBackendMessage::CopyOutResponse(head))
        .await?;
    for line in lines {
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(line.into())))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    Ok(())
}

/// A result column of text.
fn text_column(name: &str) -> backroom_api::db::Column {
    backroom_api::db::Column {
        name: name.into(),
        decl_type: Some("TEXT".into()),
    }
}

fn no_result() -> Error {
    Error::internal("the writer returned no result")
}

/// The session functions, answered from the session.
struct Literals<'s>(&'s PgSession);

impl rewrite::Session for Literals<'_> {
    fn version(&self) -> String {
        format!(
            "PostgreSQL {PG_VERSION} (backroom {}, SQLite {})",
            env!("CARGO_PKG_VERSION"),
            rusqlite::version()
        )
    }

    fn database(&self) -> String {
        self.0
            .lock()
            .started
            .as_ref()
            .map(|s| s.engine.name.clone())
            .unwrap_or_default()
    }

    fn user(&self) -> String {
        self.0
            .lock()
            .started
            .as_ref()
            .map(|s| s.identity.user.clone())
            .unwrap_or_default()
    }

    fn setting(&self, name: &str) -> Option<String> {
        self.0.setting(name)
    }
}

/// The first words of a statement, lower case, comments skipped.
fn keywords(sql: &str) -> Vec<String> {
    let mut text = sql.trim_start();
    loop {
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(4)
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The command tag PostgreSQL gives a statement; drivers read row counts
/// from it.
fn command_tag(words: &[String], result: &QueryResult) -> String {
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "insert" => "INSERT 0".into(),
        "update" | "delete" => first.to_ascii_uppercase(),
        "create" | "drop" | "alter" => {
            let object = words[1..]
                .iter()
                .find(|w| {
                    !matches!(
                        w.as_str(),
                        "temp" | "temporary" | "unique" | "virtual" | "if" | "or" | "replace"
                    )
                })
                .cloned()
                .unwrap_or_default();
            format!("{} {}", first, object).to_ascii_uppercase()
        }
        _ if !result.columns.is_empty() => "SELECT".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// A statement's outcome as pgwire's response.
fn respond(
    outcome: Outcome,
    described: Option<Vec<FieldInfo>>,
    format: &Format,
) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Began => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::Ended(tag) => Response::TransactionEnd(Tag::new(tag)),
        Outcome::Done(tag) => Response::Execution(tag),
        Outcome::CopyIn(_) | Outcome::CopyOut { .. } => {
            return Err(refuse(
                "0A000",
                "COPY runs in the simple query protocol only (as psql sends it)",
            ));
        }
        Outcome::Rows(result, tag) if result.columns.is_empty() => {
            Response::Execution(tag_of(&tag, &result))
        }
        Outcome::Rows(result, tag) => {
            let fields = Arc::new(
                described
                    .unwrap_or_else(|| types::fields(&result.columns, Some(&result.rows), format)),
            );
            let rows: Vec<PgWireResult<_>> = result
                .rows
                .iter()
                .map(|row| types::encode_row(&fields, row))
                .collect();
            let mut response = QueryResponse::new(fields, futures_util::stream::iter(rows));
            response.set_command_tag(&tag);
            Response::Query(response)
        }
    })
}

fn tag_of(tag: &str, result: &QueryResult) -> Tag {
    let rows = usize::try_from(result.rows_affected).unwrap_or(0);
    match tag {
        "INSERT 0" => Tag::new("INSERT").with_oid(0).with_rows(rows),
        "UPDATE" | "DELETE" => Tag::new(tag).with_rows(rows),
        "SELECT" => Tag::new(tag).with_rows(result.rows.len()),
        other => Tag::new(other),
    }
}

/// The ParameterStatus values sent at start-up.
fn server_parameters(started: Option<&Started>) -> Vec<(String, String)> {
    let version = format!(
        "{PG_VERSION} (backroom {}, SQLite {})",
        env!("CARGO_PKG_VERSION"),
        rusqlite::version()
    );
    let user = started.map(|s| s.identity.user.clone()).unwrap_or_default();
    let superuser = started.is_some_and(|s| s.identity.role == Role::Admin);
    [
        ("server_version", version),
        ("server_encoding", "UTF8".into()),
        ("client_encoding", "UTF8".into()),
        ("DateStyle", "ISO, MDY".into()),
        ("IntervalStyle", "postgres".into()),
        ("TimeZone", "UTC".into()),
        ("integer_datetimes", "on".into()),
        ("standard_conforming_strings", "on".into()),
        ("is_superuser", if superuser { "on" } else { "off" }.into()),
        ("session_authorization", user),
        ("application_name", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

struct Parameters(Option<Arc<Started>>);

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, _client: &C) -> Option<HashMap<String, String>> {
        Some(server_parameters(self.0.as_deref()).into_iter().collect())
    }
}

fn rand_bytes() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (hasher.finish() as u32).to_ne_bytes()
}

#[async_trait]
impl StartupHandler for PgSession {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let name = client
                    .metadata()
                    .get(METADATA_DATABASE)
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_DB.to_owned());
                if !sql::is_database_name(&name) {
                    return Err(fatal(
                        "3D000",
                        format!("database \"{name}\" does not exist"),
                    ));
                }
                let engine =
                    self.face.service.engine(Some(&name)).await.map_err(|_| {
                        fatal("3D000", format!("database \"{name}\" does not exist"))
                    })?;
                let config = self.face.service.config();
                let auth = config.frame.auth.current();
                let loopback = client.socket_addr().ip().is_loopback();
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                if auth.is_open() {
                    if !loopback && !config.frame.insecure {
                        return Err(fatal(
                            "28000",
                            "this server has no users and takes connections from loopback only",
                        ));
                    }
                    let identity = Identity {
                        user: if user.is_empty() {
                            "anonymous".into()
                        } else {
                            user
                        },
                        role: Role::Admin,
                    };
                    return self.finish_startup(client, identity, engine).await;
                }
                if !loopback && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "the password (a backroom token) is accepted over TLS or loopback only: \
                         connect with sslmode=require",
                    ));
                }
                self.lock().started = Some(Arc::new(Started {
                    identity: Identity {
                        user,
                        role: Role::ReadOnly,
                    },
                    engine,
                }));
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let pending = self.started()?;
                let auth = self.face.service.config().frame.auth.current();
                let wrong = || {
                    fatal(
                        "28P01",
                        format!(
                            "password authentication failed for user \"{}\"",
                            pending.identity.user
                        ),
                    )
                };
                let identity = auth
                    .authenticate(Some(&password.password))
                    .map_err(|_| wrong())?;
                if identity.user != pending.identity.user {
                    return Err(wrong());
                }
                self.finish_startup(client, identity, pending.engine.clone())
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

impl PgSession {
    async fn finish_startup<C>(
        &self,
        client: &mut C,
        identity: Identity,
        engine: Arc<Engine>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Arc::new(Started { identity, engine });
        self.lock().started = Some(started.clone());
        client.set_pid_and_secret_key(self.pid, SecretKey::I32(self.secret));
        finish_authentication(client, &Parameters(Some(started))).await
    }
}

#[async_trait]
impl CopyHandler for PgSession {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut state = self.lock();
        let Some(pending) = state.copy_in.as_mut() else {
            return Err(refuse("08P01", "CopyData without a COPY in progress"));
        };
        if pending.data.len() + data.data.len() > MAX_COPY_BYTES {
            state.copy_in = None;
            return Err(refuse(
                "54000",
                format!("a COPY sends at most {MAX_COPY_BYTES} bytes: split the import"),
            ));
        }
        pending.data.extend_from_slice(&data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let count = self.copy_done().await?;
        let tag = Tag::new("COPY").with_rows(count);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.lock().copy_in = None;
        refuse("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}

#[async_trait]
impl SimpleQueryHandler for PgSession {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // An empty query leaves the status as it was.
        if !rewrite::split(&query.query).is_empty() {
            self.enter(client);
        }
        self._on_query(client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.simple(client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for PgSession {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.enter(client);
        self._on_execute(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let failed = self.lock().failed;
        let described = self.describe(&portal.statement).await?;
        if portal.parameter_len() != described.params.len() {
            return Err(refuse(
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement requires {}",
                    portal.parameter_len(),
                    described.params.len()
                ),
            ));
        }
        let params = described
            .params
            .iter()
            .enumerate()
            .map(|(i, ty)| types::param(portal, i, ty))
            .collect::<PgWireResult<Vec<_>>>()?;
        let columns = &described.columns;
        if max_rows > 0 && described.reads && !failed && !columns.is_empty() {
            let fields = types::fields(columns, None, &portal.result_column_format);
            return self.portal_rows(&described.sql, params, fields).await;
        }
        match self.run(&described.sql, params).await {
            Ok(outcome) => {
                let described = (!columns.is_empty())
                    .then(|| types::fields(columns, None, &portal.result_column_format));
                respond(outcome, described, &portal.result_column_format)
            }
            Err(error) => {
                if self.lock().tx.is_some() {
                    client.set_transaction_status(TransactionStatus::Error);
                }
                Err(error)
            }
        }
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        stmt: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let described = self.describe(stmt).await?;
        let fields = types::fields(&described.columns, None, &Format::UnifiedBinary);
        Ok(DescribeStatementResponse::new(
            described.params.clone(),
            fields,
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let described = self.describe(&portal.statement).await?;
        Ok(DescribePortalResponse::new(types::fields(
            &described.columns,
            None,
            &portal.result_column_format,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(columns: usize, rows: usize, affected: u64) -> QueryResult {
        QueryResult {
            columns: (0..columns)
                .map(|i| backroom_api::db::Column {
                    name: format!("c{i}"),
                    decl_type: None,
                })
                .collect(),
            rows: vec![vec![]; rows],
            rows_affected: affected,
            last_insert_rowid: 0,
            duration_us: 0,
        }
    }

    fn tag(sql: &str, r: &QueryResult) -> String {
        let cc: pgwire::messages::response::CommandComplete =
            tag_of(&command_tag(&keywords(sql), r), r).into();
        cc.tag
    }

    #[test]
    fn command_tags_are_postgresqls() {
        assert_eq!(
            tag("INSERT INTO t VALUES (1)", &result(0, 0, 1)),
            "INSERT 0 1"
        );
        assert_eq!(tag("update t set a = 1", &result(0, 0, 3)), "UPDATE 3");
        assert_eq!(tag("DELETE FROM t", &result(0, 0, 2)), "DELETE 2");
        assert_eq!(tag("SELECT 1", &result(1, 5, 0)), "SELECT 5");
        assert_eq!(tag("CREATE TABLE t (a)", &result(0, 0, 0)), "CREATE TABLE");
        assert_eq!(
            tag(
                "create unique index if not exists i on t(a)",
                &result(0, 0, 0)
            ),
            "CREATE INDEX"
        );
        assert_eq!(tag("-- hi\nDROP TABLE t", &result(0, 0, 0)), "DROP TABLE");
    }
}
