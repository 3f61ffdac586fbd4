//! The database service's messages and its typed client.
//!
//! Statements travel as SQL text plus typed values; results come back with
//! their columns' declared types. Interactive transactions are bound to the
//! connection that began them, so a [`DbClient`] is one session: dropping it
//! rolls its open transaction back on the server. Errors travel as protocol
//! errors; SQLite's own failures keep SQLite's message and end with its result
//! code, for example `UNIQUE constraint failed: t.x (SQLITE_CONSTRAINT,
//! extended code 2067)`.

use backroom_frame::client::{Client, ClientConfig, Subscription, UploadCall};
use backroom_frame::error::Error;
use backroom_frame::stream::ByteStream;
use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};

/// The service name a database client asks for in `Hello`.
pub const SERVICE: &str = "db";
/// Where `backroom-db` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7703";
/// The database used when a request names none.
pub const DEFAULT_DB: &str = "main";
/// The name of backroom-db's PostgreSQL face in its readiness line.
pub const PG_FACE: &str = "pg";

/// The names of the database server's vital signs in `info`, written once
/// for the server and its readers. They count both faces.
pub mod vital {
    /// Statements run per second, over the last 10 s (a cursor counts as one).
    pub const STATEMENTS: &str = "statements";
    /// Transactions open now.
    pub const TRANSACTIONS: &str = "transactions";
    /// Autocommit statements waiting for (or in) a shared writer's group
    /// commit.
    pub const QUEUE: &str = "queue";
    /// Sessions holding a connection of their own (a transaction or
    /// connection state).
    pub const SESSIONS: &str = "sessions";
}

/// The method names of this service, written once for client and server.
/// Each names its argument and answer types.
pub mod method {
    /// `ExecArgs` → `QueryResult`.
    pub const QUERY: &str = "query";
    /// `ExecArgs` → `QueryResult`.
    pub const EXECUTE: &str = "execute";
    /// `BatchArgs` → `[QueryResult]`.
    pub const BATCH: &str = "batch";
    /// `BeginArgs` → `TxInfo`.
    pub const BEGIN: &str = "begin";
    /// nothing → nil.
    pub const COMMIT: &str = "commit";
    /// nothing → nil.
    pub const ROLLBACK: &str = "rollback";
    /// `ExecArgs` → `Description`.
    pub const DESCRIBE: &str = "describe";
    /// `SchemaArgs` → `Schema`.
    pub const SCHEMA: &str = "schema";
    /// `ExecArgs` → head `CursorHead`, then pages of rows as a download.
    pub const CURSOR: &str = "cursor";
    /// `BlobArgs` → head `BlobInfo`, then the value's bytes as a download.
    pub const BLOB_READ: &str = "blob_read";
    /// `BlobArgs` and the value's bytes as an upload → `BlobInfo`.
    pub const BLOB_WRITE: &str = "blob_write";
    /// nothing → `[DatabaseInfo]`.
    pub const LIST_DATABASES: &str = "list_databases";
    /// `DatabaseArgs` → `DatabaseInfo`.
    pub const CREATE_DATABASE: &str = "create_database";
    /// `DatabaseArgs` → nil.
    pub const DROP_DATABASE: &str = "drop_database";
    /// `BackupArgs` → head `BackupInfo`, then the file as a download.
    pub const BACKUP: &str = "backup";
    /// `BackupArgs` → `BackupInfo`.
    pub const BACKUP_TO_FILE: &str = "backup_to_file";
    /// `WatchArgs` → head `WatchArgs` (with `db` filled in), then `FeedEvent`s.
    pub const WATCH: &str = "watch";
}

/// One SQLite value. It travels as the plain MessagePack value of its type:
/// NULL as nil, an integer as int, a real as float (NaN and the infinities
/// included), text as str and a blob as bin. A decoder also takes a bool as
/// the integer 0 or 1, since SQLite stores booleans that way.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Real(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(v)
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Integer(v) => s.serialize_i64(*v),
            Value::Real(v) => s.serialize_f64(*v),
            Value::Text(v) => s.serialize_str(v),
            Value::Blob(v) => s.serialize_bytes(v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> serde::de::Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an SQLite value: nil, an integer, a float, a string or bytes")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Integer(i64::from(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map(Value::Integer).map_err(|_| {
            E::custom(format!(
                "integer {v} is out of SQLite's 64-bit signed range"
            ))
        })
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Real(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Blob(v.to_vec()))
    }

    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Blob(v))
    }
}

/// One statement: SQL and its parameters.
///
/// `params` bind by position: the first value to `?1` (or the first `?`),
/// the second to `?2`, and so on. `named` bind by name: a map from name to
/// value, where a name may be given with or without its `:`, `@` or `$`
/// prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
    #[serde(default)]
    pub named: BTreeMap<String, Value>,
}

impl Statement {
    pub fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            ..Statement::default()
        }
    }

    /// Adds a positional parameter.
    pub fn bind(mut self, value: impl Into<Value>) -> Statement {
        self.params.push(value.into());
        self
    }

    /// Adds a named parameter.
    pub fn bind_named(mut self, name: impl Into<String>, value: impl Into<Value>) -> Statement {
        self.named.insert(name.into(), value.into());
        self
    }
}

/// Arguments of `query`, `execute`, `describe` and `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecArgs {
    /// The database; `None` means [`DEFAULT_DB`].
    #[serde(default)]
    pub db: Option<String>,
    pub statement: Statement,
    /// Interrupts the statement after this long; `None` means the server's
    /// default, and the server's maximum caps it.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A result column: its name and the type it was declared with, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub decl_type: Option<String>,
}

/// What a statement produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    pub rows_affected: u64,
    pub last_insert_rowid: i64,
    /// Time spent in SQLite, in microseconds.
    pub duration_us: u64,
}

/// Arguments of `batch`: statements that commit together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchArgs {
    #[serde(default)]
    pub db: Option<String>,
    pub statements: Vec<Statement>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// How a transaction takes its locks; SQLite's `BEGIN` modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxMode {
    #[default]
    Deferred,
    Immediate,
    Exclusive,
}

impl TxMode {
    pub fn as_sql(self) -> &'static str {
        match self {
            TxMode::Deferred => "BEGIN DEFERRED",
            TxMode::Immediate => "BEGIN IMMEDIATE",
            TxMode::Exclusive => "BEGIN EXCLUSIVE",
        }
    }
}

/// Arguments of `begin`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BeginArgs {
    #[serde(default)]
    pub db: Option<String>,
    #[serde(default)]
    pub mode: TxMode,
    /// How long to wait for the writer when another transaction holds it.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The transaction a connection holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    pub id: u64,
    pub db: String,
    /// The server rolls the transaction back after this long without a call.
    pub idle_timeout_ms: u64,
}

/// A statement's shape, found without running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// One entry per parameter slot; `None` for a bare `?`.
    pub params: Vec<Option<String>>,
    pub columns: Vec<Column>,
    /// Whether SQLite reports the statement as read-only.
    pub readonly: bool,
}

/// Arguments of `schema`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaArgs {
    #[serde(default)]
    pub db: Option<String>,
    /// Only this table, its indexes, or this view.
    #[serde(default)]
    pub table: Option<String>,
}

/// A column of a table, as `PRAGMA table_info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    pub name: String,
    pub decl_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// The column's position in the primary key, from 1; 0 when not in it.
    pub primary_key: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub sql: Option<String>,
    pub columns: Vec<TableColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    pub table: String,
    pub unique: bool,
    pub sql: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub name: String,
    pub sql: Option<String>,
    pub columns: Vec<TableColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub name: String,
    pub table: String,
    pub sql: Option<String>,
}

/// Tables, indexes, views and triggers of a database, with the caller's
/// session's TEMP objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: Vec<Table>,
    pub indexes: Vec<Index>,
    pub views: Vec<View>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
}

/// Arguments of `create_database` and `drop_database`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseArgs {
    pub name: String,
}

/// One database of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub name: String,
    /// The size of the main file, without its write-ahead log.
    pub bytes: u64,
}

/// Arguments of `backup` (streamed) and `backup_to_file`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupArgs {
    #[serde(default)]
    pub db: Option<String>,
    /// For `backup_to_file`: a plain file name in the server's backup folder.
    #[serde(default)]
    pub file: Option<String>,
}

/// What a backup produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub db: String,
    pub bytes: u64,
    /// Where `backup_to_file` wrote, on the server.
    pub path: Option<String>,
}

/// Arguments of `watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchArgs {
    #[serde(default)]
    pub db: Option<String>,
    pub table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One event of a change feed, sent only after its transaction committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeedEvent {
    Change {
        table: String,
        op: ChangeOp,
        rowid: i64,
    },
    /// The subscriber fell behind and this many events were dropped.
    Lagged { missed: u64 },
}

/// The largest cursor page a client takes. A page holds at least one row, so
/// it must hold the largest row: SQLite's default limit is 1 000 000 000
/// bytes per value. The page travels in the protocol's stream chunks, so a
/// page larger than a frame is fine; only the client holds it whole.
pub const MAX_CURSOR_PAGE: usize = 1 << 31;

/// Arguments of `blob_read` and `blob_write`: one value, by its table,
/// column and rowid, read or written in pieces with SQLite's incremental
/// blob I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobArgs {
    #[serde(default)]
    pub db: Option<String>,
    pub table: String,
    pub column: String,
    pub rowid: i64,
    /// For `blob_write`: the length of the upload. The value becomes a blob
    /// of exactly this many bytes.
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The head of a `blob_read` reply (the bytes follow as a stream), and the
/// answer of `blob_write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    pub bytes: u64,
}

/// The head of a `cursor` reply; the rows follow as pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorHead {
    pub columns: Vec<Column>,
}

/// Splits a cursor's byte stream into pages of rows.
///
/// Each page is a big-endian `u32` length, then that many bytes holding one
/// MessagePack array of rows.
pub struct Cursor {
    pub columns: Vec<Column>,
    stream: ByteStream,
    buffer: BytesMut,
    max_page: usize,
}

impl Cursor {
    /// The next page of rows; `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Vec<Value>>>, Error> {
        loop {
            if let Some(page) = self.take_page()? {
                return Ok(Some(page));
            }
            match self.stream.chunk().await? {
                Some(data) => self.buffer.extend_from_slice(&data),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Err(Error::bad_request("the cursor stream ended mid-page")),
            }
        }
    }

    fn take_page(&mut self) -> Result<Option<Vec<Vec<Value>>>, Error> {
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]) as usize;
        if len > self.max_page {
            return Err(Error::bad_request(format!(
                "a cursor page of {len} bytes exceeds the {} byte limit",
                self.max_page
            )));
        }
        if self.buffer.len() < 4 + len {
            return Ok(None);
        }
        self.buffer.advance(4);
        let page = self.buffer.split_to(len);
        backroom_frame::body::decode(&page).map(Some)
    }
}

/// A connection to a database server: one session.
#[derive(Debug)]
pub struct DbClient {
    client: Client,
}

impl DbClient {
    /// Connects to a database server.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<DbClient, Error> {
        let mut config = ClientConfig::new(addr, SERVICE);
        config.token = token;
        DbClient::connect_with(&config).await
    }

    /// Connects with a full client config (TLS, retries).
    pub async fn connect_with(config: &ClientConfig) -> Result<DbClient, Error> {
        Client::connect(config)
            .await
            .map(|client| DbClient { client })
    }

    /// The underlying protocol client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs a statement, read-only ones on a reader. Inside a transaction it
    /// runs in the transaction.
    pub async fn query(&self, args: &ExecArgs) -> Result<QueryResult, Error> {
        self.client.request(method::QUERY, args).await
    }

    /// Runs a statement on the writer.
    pub async fn execute(&self, args: &ExecArgs) -> Result<QueryResult, Error> {
        self.client.request(method::EXECUTE, args).await
    }

    /// Runs `statement` on the default database with the default timeout.
    pub async fn query_main(&self, statement: Statement) -> Result<QueryResult, Error> {
        self.query(&ExecArgs {
            statement,
            ..ExecArgs::default()
        })
        .await
    }

    /// Executes `statement` on the default database with the default timeout.
    pub async fn execute_main(&self, statement: Statement) -> Result<QueryResult, Error> {
        self.execute(&ExecArgs {
            statement,
            ..ExecArgs::default()
        })
        .await
    }

    pub async fn batch(&self, args: &BatchArgs) -> Result<Vec<QueryResult>, Error> {
        self.client.request(method::BATCH, args).await
    }

    pub async fn begin(&self, args: &BeginArgs) -> Result<TxInfo, Error> {
        self.client.request(method::BEGIN, args).await
    }

    pub async fn commit(&self) -> Result<(), Error> {
        self.client.request(method::COMMIT, &()).await
    }

    pub async fn rollback(&self) -> Result<(), Error> {
        self.client.request(method::ROLLBACK, &()).await
    }

    pub async fn describe(&self, args: &ExecArgs) -> Result<Description, Error> {
        self.client.request(method::DESCRIBE, args).await
    }

    pub async fn schema(&self, args: &SchemaArgs) -> Result<Schema, Error> {
        self.client.request(method::SCHEMA, args).await
    }

    /// Streams a read-only statement's rows in pages.
    pub async fn cursor(&self, args: &ExecArgs) -> Result<Cursor, Error> {
        let (head, stream): (CursorHead, ByteStream) =
            self.client.download(method::CURSOR, args).await?;
        Ok(Cursor {
            columns: head.columns,
            stream,
            buffer: BytesMut::new(),
            max_page: MAX_CURSOR_PAGE,
        })
    }

    /// Streams one value's bytes, however large.
    pub async fn blob_read(&self, args: &BlobArgs) -> Result<(BlobInfo, ByteStream), Error> {
        self.client.download(method::BLOB_READ, args).await
    }

    /// Starts writing one value of `args.bytes` bytes: `send` them, then
    /// `finish::<BlobInfo>()`. The row must exist; the value is replaced.
    pub async fn blob_write(&self, args: &BlobArgs) -> Result<UploadCall, Error> {
        self.client.upload(method::BLOB_WRITE, args).await
    }

    pub async fn list_databases(&self) -> Result<Vec<DatabaseInfo>, Error> {
        self.client.request(method::LIST_DATABASES, &()).await
    }

    pub async fn create_database(&self, name: &str) -> Result<DatabaseInfo, Error> {
        let args = DatabaseArgs { name: name.into() };
        self.client.request(method::CREATE_DATABASE, &args).await
    }

    pub async fn drop_database(&self, name: &str) -> Result<(), Error> {
        let args = DatabaseArgs { name: name.into() };
        self.client.request(method::DROP_DATABASE, &args).await
    }

    /// Streams a consistent copy of a database file.
    pub async fn backup(&self, args: &BackupArgs) -> Result<(BackupInfo, ByteStream), Error> {
        self.client.download(method::BACKUP, args).await
    }

    /// Writes a consistent copy into the server's backup folder.
    pub async fn backup_to_file(&self, args: &BackupArgs) -> Result<BackupInfo, Error> {
        self.client.request(method::BACKUP_TO_FILE, args).await
    }

    /// Follows a table's committed inserts, updates and deletes.
    pub async fn watch(&self, args: &WatchArgs) -> Result<Subscription<FeedEvent>, Error> {
        self.client.subscribe(method::WATCH, args).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_plain_messagepack() {
        let values = vec![
            Value::Null,
            Value::Integer(-1),
            Value::Real(1.5),
            Value::Text("a".into()),
            Value::Blob(vec![0]),
        ];
        let body = backroom_frame::body::encode(&values);
        // fixarray(5) nil -1 float64(1.5) "a" bin8(1) 00
        assert_eq!(
            &body[..],
            b"\x95\xc0\xff\xcb\x3f\xf8\0\0\0\0\0\0\xa1a\xc4\x01\x00".as_slice()
        );
        let back: Vec<Value> = backroom_frame::body::decode(&body).expect("decodes");
        assert_eq!(back, values);
    }

    #[test]
    fn extreme_values_round_trip() {
        let values = vec![
            Value::Integer(i64::MIN),
            Value::Integer(i64::MAX),
            Value::Real(f64::INFINITY),
            Value::Text("zoë ✈".into()),
            Value::Blob(vec![0, 255, 7]),
        ];
        let body = backroom_frame::body::encode(&values);
        let back: Vec<Value> = backroom_frame::body::decode(&body).expect("decodes");
        assert_eq!(back, values);
        let nan = backroom_frame::body::encode(&Value::Real(f64::NAN));
        let back: Value = backroom_frame::body::decode(&nan).expect("decodes");
        assert!(matches!(back, Value::Real(r) if r.is_nan()), "{back:?}");
    }

    #[test]
    fn an_integer_beyond_i64_is_refused() {
        let body = backroom_frame::body::encode(&u64::MAX);
        let err = backroom_frame::body::decode::<Value>(&body).unwrap_err();
        assert!(err.message.contains("out of SQLite"), "{}", err.message);
    }

    #[test]
    fn named_parameters_are_a_map() {
        let statement = Statement::new("SELECT :a").bind_named(":a", 1);
        let body = backroom_frame::body::encode(&statement.named);
        assert_eq!(&body[..], b"\x81\xa2:a\x01".as_slice());
    }

    #[test]
    fn feed_events_carry_their_kind_as_a_tag() {
        let event = FeedEvent::Lagged { missed: 3 };
        let body = backroom_frame::body::encode(&event);
        assert_eq!(
            &body[..],
            b"\x82\xa4kind\xa6lagged\xa6missed\x03".as_slice()
        );
    }
}
