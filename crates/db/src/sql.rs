//! One SQLite connection as the server uses it: opening with the storage
//! settings, the rights check of each statement, binding typed parameters,
//! and turning rows and SQLite errors into the protocol's types.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use backroom_api::db::{Column, QueryResult, Statement, Value};
use backroom_frame::auth::Role;
use backroom_frame::error::{Error, ErrorCode};
use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::Synchronous;
use crate::vitals::Gauges;

/// How many distinct statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 256;
/// Past this many remembered rights checks, the memory is cleared.
const POLICY_CACHE: usize = 1024;

/// What the authorizer saw while a statement was prepared.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// Why the statement needs the admin role, if it does.
    admin: Option<String>,
    /// Why nobody may run it, if so.
    refused: Option<String>,
    /// The statement is BEGIN, COMMIT, ROLLBACK or a savepoint.
    transaction: bool,
    /// What connection state the statement creates (a TEMP object, a
    /// PRAGMA setting, an ATTACH), if it does: it must run on a session's
    /// own connection, never on a shared one.
    state: Option<String>,
}

/// The verdict on one SQL text, remembered per connection.
#[derive(Debug, Clone)]
pub struct Policy {
    pub readonly: bool,
    seen: Seen,
}

impl Policy {
    /// Whether the statement creates connection state (see [`Seen`]).
    pub fn creates_state(&self) -> bool {
        self.seen.state.is_some()
    }
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The shared writer of group commit.
    Writer,
    /// A shared, read-only connection of the reader pool or a cursor.
    Reader,
    /// One session's own connection: it may write and hold connection state.
    Session,
}

/// A connection with its rights checker.
pub struct SqlConn {
    pub conn: Connection,
    access: Access,
    seen: Arc<Mutex<Seen>>,
    policies: HashMap<String, Policy>,
    /// The folder of the server's databases, where ATTACH names resolve.
    data_dir: PathBuf,
    /// Where the statements run are counted, for the vital signs.
    gauges: Option<Arc<Gauges>>,
}

impl SqlConn {
    /// Opens `path` with WAL, foreign keys and the configured durability.
    pub fn open(
        path: &Path,
        access: Access,
        synchronous: Synchronous,
        create: bool,
    ) -> Result<SqlConn, Error> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
            .map_err(sqlite_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!(
                "{} refused WAL mode (it stays in {mode})",
                path.display()
            )));
        }
        let pragmas = [
            ("synchronous", synchronous.as_pragma()),
            ("foreign_keys", "ON"),
            ("busy_timeout", "5000"),
            (
                "query_only",
                if access == Access::Reader {
                    "ON"
                } else {
                    "OFF"
                },
            ),
        ];
        for (name, value) in pragmas {
            conn.pragma_update(None, name, value)
                .map_err(sqlite_error)?;
        }
        // Defensive mode stops SQL from corrupting the file on purpose
        // (writable_schema and the like), whoever sends it.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(sqlite_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let recorder = seen.clone();
        let data_dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        let attachable = data_dir.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            authorize(&recorder, &attachable, access, ctx)
        }));
        Ok(SqlConn {
            conn,
            access,
            seen,
            policies: HashMap::new(),
            data_dir,
            gauges: None,
        })
    }

    /// Whether any of `statements` creates connection state. A statement
    /// that cannot be judged yet (it names a table an earlier one creates)
    /// counts as not: running it reports its error, or refuses it on a
    /// shared connection.
    pub fn creates_state(&mut self, statements: &[Statement], role: Role) -> bool {
        statements
            .iter()
            .any(|s| self.policy(&s.sql, role).is_ok_and(|p| p.creates_state()))
    }

    /// Prepares `sql` once, uncached, so the authorizer sees it, and
    /// remembers what it needs. Cached statements are not re-authorized by
    /// SQLite, which is why the verdict is kept here. Rights are judged
    /// before a failed prepare is reported, so a refused statement is
    /// refused whatever SQLite would have said about it.
    pub fn policy(&mut self, sql: &str, role: Role) -> Result<Policy, Error> {
        let policy = match self.policies.get(sql) {
            Some(policy) => policy.clone(),
            None => {
                let data_dir = self.data_dir.clone();
                let judged = attach_by_name(sql, &data_dir);
                let policy = self.judge(&judged, role)?;
                if self.policies.len() >= POLICY_CACHE {
                    self.policies.clear();
                }
                self.policies.insert(sql.to_owned(), policy.clone());
                policy
            }
        };
        if let Some(reason) = &policy.seen.admin {
            if role < Role::Admin {
                return Err(Error::forbidden(format!("{reason} needs the admin role")));
            }
        }
        Ok(policy)
    }

    fn judge(&mut self, sql: &str, role: Role) -> Result<Policy, Error> {
        let mut prepared = self.prepare_seen(sql);
        if prepared.0.is_err() && prepared.1.refused.is_none() && prepared.1.state.is_none() {
            // Another connection may have changed the schema, and not every
            // failure makes SQLite reload it (REINDEX of an index it does not
            // know yet does not): reading the schema table does, so try once
            // more after it.
            let reloaded =
                self.conn
                    .query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()));
            if reloaded.is_ok() {
                prepared = self.prepare_seen(sql);
            }
        }
        let (prepared, seen) = prepared;
        if let Some(reason) = &seen.refused {
            return Err(Error::forbidden(reason.clone()));
        }
        if let Some(reason) = &seen.admin {
            if role < Role::Admin {
                return Err(Error::forbidden(format!("{reason} needs the admin role")));
            }
        }
        if seen.state.is_some() && self.access != Access::Session {
            // The authorizer refused it here, before SQLite could apply it
            // (some PRAGMAs take effect while they are prepared): it runs on
            // a session's own connection, which judges it again.
            return Ok(Policy {
                readonly: false,
                seen,
            });
        }
        Ok(Policy {
            readonly: prepared.map_err(sqlite_error)?,
            seen,
        })
    }

    /// Prepares `sql` and returns whether it is read-only, with what the
    /// authorizer saw.
    fn prepare_seen(&mut self, sql: &str) -> (rusqlite::Result<bool>, Seen) {
        *self.seen.lock() = Seen::default();
        let prepared = self.conn.prepare(sql).map(|stmt| stmt.readonly());
        let seen = std::mem::take(&mut *self.seen.lock());
        (prepared, seen)
    }

    /// Checks a user statement against the caller's role.
    pub fn permit(&mut self, sql: &str, role: Role) -> Result<Policy, Error> {
        let policy = self.policy(sql, role)?;
        if policy.seen.transaction {
            return Err(Error::bad_request(
                "transaction statements are not run as SQL here: use the begin, commit and \
                 rollback methods (or batch for an atomic group)",
            ));
        }
        if !policy.readonly && role < Role::ReadWrite {
            return Err(Error::forbidden(
                "this user is read-only and the statement writes",
            ));
        }
        if let Some(what) = &policy.seen.state {
            if self.access != Access::Session {
                return Err(Error::conflict(format!(
                    "{what} changes this session's connection: send it as a statement of \
                     its own, not inside a batch"
                )));
            }
        }
        Ok(policy)
    }

    /// Runs a user statement after the rights check. `max_bytes` bounds the
    /// rows collected, so one query cannot exhaust the server's memory.
    /// Counts the statements this connection runs into `gauges`.
    pub fn counting(mut self, gauges: &Arc<Gauges>) -> SqlConn {
        self.gauges = Some(gauges.clone());
        self
    }

    pub fn run(
        &mut self,
        statement: &Statement,
        role: Role,
        max_bytes: usize,
    ) -> Result<QueryResult, Error> {
        if let Some(gauges) = &self.gauges {
            gauges.statements.add(1);
        }
        let policy = self.permit(&statement.sql, role)?;
        let sql = attach_by_name(&statement.sql, &self.data_dir);
        let started = Instant::now();
        let changes_before = self.conn.total_changes();
        let mut stmt = self.conn.prepare_cached(&sql).map_err(sqlite_error)?;
        bind(&mut stmt, statement)?;
        // The first step re-prepares a statement whose schema changed, so
        // the columns are read after it, never before.
        let mut columns_seen = None;
        let mut width = 0;
        let mut rows_out = Vec::new();
        let mut bytes = 0usize;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(sqlite_error)? {
            if columns_seen.is_none() {
                let seen = columns(row.as_ref());
                width = seen.len();
                columns_seen = Some(seen);
            }
            let mut out = Vec::with_capacity(width);
            for i in 0..width {
                let value = row.get_ref(i).map_err(sqlite_error)?;
                bytes += value_size(value);
                out.push(to_value(value));
            }
            if bytes > max_bytes {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!(
                        "the result exceeds {max_bytes} bytes: page through it with cursor, \
                         or narrow the query"
                    ),
                ));
            }
            rows_out.push(out);
        }
        drop(rows);
        let columns = columns_seen.unwrap_or_else(|| columns(&stmt));
        drop(stmt);
        // changes() keeps the count of the last INSERT, UPDATE or DELETE, so
        // a statement that changed no row (DDL, say) would report an older
        // one's: only a moved total says this statement changed rows.
        let changed = self.conn.total_changes() != changes_before;
        let rows_affected = if policy.readonly || !changed {
            0
        } else {
            self.conn.changes()
        };
        Ok(QueryResult {
            columns,
            rows: rows_out,
            rows_affected,
            last_insert_rowid: self.conn.last_insert_rowid(),
            duration_us: started.elapsed().as_micros() as u64,
        })
    }

    /// Prepares a user statement for a cursor after the rights check,
    /// refusing statements that write.
    pub fn prepare_read<'c>(
        &'c mut self,
        statement: &Statement,
        role: Role,
    ) -> Result<rusqlite::Statement<'c>, Error> {
        if !self.permit(&statement.sql, role)?.readonly {
            return Err(Error::bad_request(
                "a cursor runs read-only statements only; use execute to write",
            ));
        }
        let sql = attach_by_name(&statement.sql, &self.data_dir);
        let mut stmt = self.conn.prepare(&sql).map_err(sqlite_error)?;
        bind(&mut stmt, statement)?;
        Ok(stmt)
    }
}

/// `ATTACH [DATABASE] 'name' AS alias`, naming a database of this server,
/// becomes the same ATTACH of that database's file in the data folder.
/// Anything else is left alone (and the authorizer refuses any other file).
fn attach_by_name<'s>(sql: &'s str, data_dir: &Path) -> Cow<'s, str> {
    let start = sql.trim_start();
    if !start
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("attach"))
    {
        return Cow::Borrowed(sql);
    }
    let words: Vec<&str> = sql
        .trim()
        .trim_end_matches(';')
        .split_whitespace()
        .collect();
    let (name, alias) = match words.as_slice() {
        [attach, name, as_, alias]
            if attach.eq_ignore_ascii_case("attach") && as_.eq_ignore_ascii_case("as") =>
        {
            (*name, *alias)
        }
        [attach, database, name, as_, alias]
            if attach.eq_ignore_ascii_case("attach")
                && database.eq_ignore_ascii_case("database")
                && as_.eq_ignore_ascii_case("as") =>
        {
            (*name, *alias)
        }
        _ => return Cow::Borrowed(sql),
    };
    let Some(name) = name.strip_prefix('\'').and_then(|n| n.strip_suffix('\'')) else {
        return Cow::Borrowed(sql);
    };
    if !is_database_name(name) {
        return Cow::Borrowed(sql);
    }
    let file = data_dir.join(format!("{name}.db")).display().to_string();
    Cow::Owned(format!(
        "ATTACH DATABASE '{}' AS {alias}",
        file.replace('\'', "''")
    ))
}

/// Database names are plain, so they map to a file name and nothing else.
pub fn is_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `file` is a database of this server that exists, as
/// [`attach_by_name`] spells it.
fn is_own_database(file: &str, data_dir: &Path) -> bool {
    let path = Path::new(file);
    let named = path
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_suffix(".db"))
        .is_some_and(is_database_name);
    named && path.parent() == Some(data_dir) && path.is_file()
}

/// Records what needs more than the caller may have, and what changes the
/// connection's state. Only `load_extension`, ATTACH of anything but a
/// database of this server, and connection state on a shared connection are
/// denied outright; the rest is judged against the caller's role later,
/// because the verdict is cached per SQL text and roles differ per call.
fn authorize(
    seen: &Mutex<Seen>,
    data_dir: &Path,
    access: Access,
    ctx: AuthContext<'_>,
) -> Authorization {
    let mut seen = seen.lock();
    let verdict = record(&mut seen, data_dir, ctx);
    if seen.state.is_some() && access != Access::Session {
        // Connection state never lands on a shared connection.
        return Authorization::Deny;
    }
    verdict
}

fn record(seen: &mut Seen, data_dir: &Path, ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Attach { filename } if is_own_database(filename, data_dir) => {
            seen.admin = Some("ATTACH".into());
            seen.state = Some("ATTACH".into());
        }
        AuthAction::Attach { .. } | AuthAction::Unknown { code: ATTACH, .. } => {
            seen.refused = Some(
                "ATTACH takes the name of a database of this server, as in \
                 ATTACH 'name' AS alias, never a path"
                    .into(),
            );
            return Authorization::Deny;
        }
        AuthAction::Detach { .. } => {
            seen.admin = Some("DETACH".into());
            seen.state = Some("DETACH".into());
        }
        AuthAction::Pragma {
            pragma_name,
            pragma_value: Some(_),
        } if !READ_PRAGMAS.contains(&pragma_name.to_ascii_lowercase().as_str()) => {
            seen.admin = Some(format!("setting PRAGMA {pragma_name}"));
            seen.state = Some(format!("PRAGMA {pragma_name}"));
        }
        AuthAction::CreateTempIndex { .. }
        | AuthAction::CreateTempTable { .. }
        | AuthAction::CreateTempTrigger { .. }
        | AuthAction::CreateTempView { .. }
        | AuthAction::DropTempIndex { .. }
        | AuthAction::DropTempTable { .. }
        | AuthAction::DropTempTrigger { .. }
        | AuthAction::DropTempView { .. } => seen.state = Some("a TEMP object".into()),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => seen.transaction = true,
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            seen.refused = Some("load_extension is disabled on this server".into());
            return Authorization::Deny;
        }
        _ => {}
    }
    Authorization::Allow
}

/// PRAGMAs whose argument says what to read, not a value to set (the
/// `pragma_table_info(...)` functions prepare them too).
const READ_PRAGMAS: [&str; 10] = [
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// SQLite's authorizer code for ATTACH, seen with no file name when the
/// file is not a literal.
const ATTACH: i32 = 24;

/// Binds positional then named parameters, refusing a count that does not
/// match, since SQLite would silently bind NULL to what is missing.
pub fn bind(stmt: &mut rusqlite::Statement<'_>, statement: &Statement) -> Result<(), Error> {
    let slots = stmt.parameter_count();
    let given = statement.params.len();
    if given > slots || (statement.named.is_empty() && given != slots) {
        return Err(Error::bad_request(format!(
            "the statement has {slots} parameter(s), {given} positional value(s) were given"
        )));
    }
    for (i, value) in statement.params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, to_sql(value))
            .map_err(sqlite_error)?;
    }
    for (name, value) in &statement.named {
        let index = parameter_index(stmt, name)?;
        stmt.raw_bind_parameter(index, to_sql(value))
            .map_err(sqlite_error)?;
    }
    Ok(())
}

fn parameter_index(stmt: &rusqlite::Statement<'_>, name: &str) -> Result<usize, Error> {
    let candidates: Vec<String> = if name.starts_with([':', '@', '$']) {
        vec![name.to_owned()]
    } else {
        [":", "@", "$"]
            .iter()
            .map(|p| format!("{p}{name}"))
            .collect()
    };
    for candidate in &candidates {
        if let Some(index) = stmt.parameter_index(candidate).map_err(sqlite_error)? {
            return Ok(index);
        }
    }
    Err(Error::bad_request(format!(
        "the statement has no parameter named {name:?}"
    )))
}

pub fn columns(stmt: &rusqlite::Statement<'_>) -> Vec<Column> {
    stmt.columns()
        .into_iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            decl_type: c.decl_type().map(str::to_owned),
        })
        .collect()
}

fn to_sql(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Null => Sql::Null,
        Value::Integer(v) => Sql::Integer(*v),
        Value::Real(v) => Sql::Real(*v),
        Value::Text(v) => Sql::Text(v.clone()),
        Value::Blob(v) => Sql::Blob(v.clone()),
    }
}

pub fn to_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Integer(v),
        ValueRef::Real(v) => Value::Real(v),
        // SQLite may hold text that is not UTF-8; it is shown, not refused.
        ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
        ValueRef::Blob(v) => Value::Blob(v.to_vec()),
    }
}

/// About what a value costs on the wire.
pub fn value_size(value: ValueRef<'_>) -> usize {
    match value {
        ValueRef::Null => 8,
        ValueRef::Integer(_) | ValueRef::Real(_) => 16,
        ValueRef::Text(v) | ValueRef::Blob(v) => 8 + v.len(),
    }
}

/// SQLite's failure as a protocol error: SQLite's message, then its code.
pub fn sqlite_error(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as Sqlite;
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let code = match failure.code {
                Sqlite::ConstraintViolation => ErrorCode::Conflict,
                Sqlite::DatabaseBusy | Sqlite::DatabaseLocked => ErrorCode::Busy,
                Sqlite::OperationInterrupted => ErrorCode::Cancelled,
                Sqlite::ReadOnly | Sqlite::AuthorizationForStatementDenied => ErrorCode::Forbidden,
                Sqlite::TooBig => ErrorCode::TooLarge,
                Sqlite::Unknown | Sqlite::TypeMismatch | Sqlite::ParameterOutOfRange => {
                    ErrorCode::BadRequest
                }
                _ => ErrorCode::Internal,
            };
            let text = message.unwrap_or_else(|| failure.to_string());
            Error::new(
                code,
                format!(
                    "{text} ({}, extended code {})",
                    code_name(failure.extended_code),
                    failure.extended_code
                ),
            )
        }
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => Error::bad_request(format!(
            "{msg} at offset {offset} ({}, extended code {})",
            code_name(error.extended_code),
            error.extended_code
        )),
        rusqlite::Error::MultipleStatement => {
            Error::bad_request("one statement per call: send several as a batch")
        }
        rusqlite::Error::InvalidParameterName(name) => {
            Error::bad_request(format!("the statement has no parameter named {name:?}"))
        }
        other => Error::bad_request(other.to_string()),
    }
}

/// The name of SQLite's primary result code, as its documentation spells it.
fn code_name(extended: i32) -> String {
    let name = match extended & 0xff {
        1 => "SQLITE_ERROR",
        2 => "SQLITE_INTERNAL",
        3 => "SQLITE_PERM",
        4 => "SQLITE_ABORT",
        5 => "SQLITE_BUSY",
        6 => "SQLITE_LOCKED",
        7 => "SQLITE_NOMEM",
        8 => "SQLITE_READONLY",
        9 => "SQLITE_INTERRUPT",
        10 => "SQLITE_IOERR",
        11 => "SQLITE_CORRUPT",
        13 => "SQLITE_FULL",
        14 => "SQLITE_CANTOPEN",
        18 => "SQLITE_TOOBIG",
        19 => "SQLITE_CONSTRAINT",
        20 => "SQLITE_MISMATCH",
        21 => "SQLITE_MISUSE",
        23 => "SQLITE_AUTH",
        25 => "SQLITE_RANGE",
        26 => "SQLITE_NOTADB",
        other => return format!("SQLite code {other}"),
    };
    name.to_owned()
}
