//! `backroom db ...`: the database server from the command line — one-off
//! statements, batches, an interactive shell, the schema, backups and the
//! change feed — over the typed client of `backroom-api`.
//!
//! Every command connects to the database server the dashboard's config
//! resolves (address, token, TLS), with `--addr` over it. Results print as
//! aligned tables, or as JSON with `--json`. A failure becomes one line on
//! stderr and a non-zero exit.

// A command-line tool: printing to standard output is its job.
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use backroom_api::db::{
    BackupArgs, BatchArgs, BeginArgs, BlobArgs, BlobInfo, ChangeOp, Column, DEFAULT_DB,
    DatabaseInfo, DbClient, ExecArgs, FeedEvent, QueryResult, Schema, SchemaArgs, Statement,
    TxMode, Value, WatchArgs,
};
use backroom_frame::client::ClientConfig;
use backroom_frame::error::ErrorCode;
use clap::{Parser, Subcommand};

use crate::cli;
use crate::config::Settings;
use crate::server::Server;

/// The database server: run SQL, open a shell, read the schema, back up and
/// follow changes.
#[derive(Debug, Parser)]
pub struct Args {
    /// The database server, as host:port; beats the config file.
    #[arg(long, global = true, value_name = "ADDR")]
    pub addr: Option<String>,
    /// The database to use (default `main`). `--db`, its old name, still
    /// works here, but everywhere else `--db` is the server's address.
    #[arg(long = "database", alias = "db", global = true, value_name = "NAME")]
    pub db: Option<String>,
    /// Print results as JSON (one object per line for `shell` and `watch`).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: DbCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Run one statement; read-only ones run on a reader.
    Query {
        sql: String,
        /// A parameter, in order: 42, 1.5, null, x'00ff', 'text' or text;
        /// `:name=value` binds by name.
        #[arg(long = "param", value_name = "V", allow_hyphen_values = true)]
        params: Vec<String>,
    },
    /// Run one statement on the writer.
    Exec {
        sql: String,
        /// As for `query`.
        #[arg(long = "param", value_name = "V", allow_hyphen_values = true)]
        params: Vec<String>,
    },
    /// Run a file of statements atomically: all commit or none do.
    Batch { file: PathBuf },
    /// An interactive SQL shell; reads statements from stdin when it is not
    /// a terminal (`backroom db shell < script.sql`).
    Shell,
    /// List the tables and views.
    Tables,
    /// Print the schema, or one table's (with its indexes) or view's.
    Schema { table: Option<String> },
    /// Copy a consistent snapshot of the database to a local file (admin).
    Backup { out: PathBuf },
    /// Follow a table's committed inserts, updates and deletes.
    Watch { table: String },
    /// List the server's databases and their sizes.
    Databases,
    /// Create a database (admin).
    Create { name: String },
    /// Drop a database and delete its files (admin); `main` cannot go.
    Drop { name: String },
    /// Write one value from a file, or read one into a file, in pieces
    /// (SQLite's incremental blob I/O), however large it is.
    Blob {
        #[command(subcommand)]
        action: BlobCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Replace the value of COLUMN in row ROWID of TABLE with FILE's bytes.
    Put {
        table: String,
        column: String,
        rowid: i64,
        file: PathBuf,
    },
    /// Copy the value of COLUMN in row ROWID of TABLE into the new file FILE.
    Get {
        table: String,
        column: String,
        rowid: i64,
        file: PathBuf,
    },
}

impl BlobCommand {
    fn args(&self, db: &Option<String>, bytes: Option<u64>) -> BlobArgs {
        let (BlobCommand::Put {
            table,
            column,
            rowid,
            ..
        }
        | BlobCommand::Get {
            table,
            column,
            rowid,
            ..
        }) = self;
        BlobArgs {
            db: db.clone(),
            table: table.clone(),
            column: column.clone(),
            rowid: *rowid,
            bytes,
            timeout_ms: None,
        }
    }
}

/// Runs one `backroom db` command to its end.
pub fn run(args: Args, settings: &Settings) -> ExitCode {
    // Multi-threaded, with one worker, so the connection's keepalive runs
    // while the shell waits for the user to type.
    cli::run(Server::Db, 1, |runtime| {
        if let Some(name) = args.db.as_deref().filter(|name| name.contains(':')) {
            bail!("--database {name:?} looks like an address; give the server with --addr");
        }
        let endpoint = cli::endpoint(settings, Server::Db, args.addr.as_deref())?;
        let db = args.db.or(endpoint.database);
        let config = endpoint.client;
        match args.command {
            DbCommand::Shell => shell(runtime, &config, db, args.json),
            command => runtime.block_on(execute(command, &config, db, args.json)),
        }
    })
}

async fn connect(config: &ClientConfig) -> anyhow::Result<DbClient> {
    DbClient::connect_with(config)
        .await
        .map_err(|e| cli::connect_error(Server::Db, config, &e))
}

async fn execute(
    command: DbCommand,
    config: &ClientConfig,
    db: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    // Local mistakes are reported before connecting.
    let prepared = match &command {
        DbCommand::Batch { file } => Some(read_batch(file)?),
        _ => None,
    };
    // A file this command creates, removed again if the command fails.
    let new_file = match &command {
        DbCommand::Backup { out }
        | DbCommand::Blob {
            action: BlobCommand::Get { file: out, .. },
        } => Some((create_new_file(out)?, out.clone())),
        _ => None,
    };
    let put_file = match &command {
        DbCommand::Blob {
            action: BlobCommand::Put { file, .. },
        } => Some(File::open(file).with_context(|| format!("cannot open {}", file.display()))?),
        _ => None,
    };
    let client = match connect(config).await {
        Ok(client) => client,
        Err(e) => {
            if let Some((file, out)) = new_file {
                drop(file);
                let _ = std::fs::remove_file(out);
            }
            return Err(e);
        }
    };
    let mode = if json { Mode::Json } else { Mode::Table };
    match command {
        DbCommand::Query { sql, params } => {
            let args = exec_args(&db, statement(sql, &params)?);
            query_or_stream(&client, &args, mode).await?;
        }
        DbCommand::Exec { sql, params } => {
            let args = exec_args(&db, statement(sql.clone(), &params)?);
            let result = client.execute(&args).await?;
            print!("{}", mode.result(&result, &sql));
        }
        DbCommand::Batch { file } => {
            let statements = prepared.unwrap_or_default();
            let count = statements.len();
            let results = client
                .batch(&BatchArgs {
                    db: db.clone(),
                    statements,
                    timeout_ms: None,
                })
                .await
                .with_context(|| format!("{}: nothing was committed", file.display()))?;
            print!("{}", mode.batch(&results, count));
        }
        // `run` gives the shell its own loop outside the runtime.
        DbCommand::Shell => bail!("the shell runs outside the command dispatcher"),
        DbCommand::Tables => {
            let schema = client.schema(&schema_args(&db, None)).await?;
            print!("{}", mode.tables(&schema));
        }
        DbCommand::Schema { table } => {
            let schema = client.schema(&schema_args(&db, table.clone())).await?;
            if let Some(table) = table {
                if schema.tables.is_empty() && schema.views.is_empty() {
                    bail!("no table or view named {table:?}");
                }
            }
            print!("{}", mode.schema(&schema));
        }
        DbCommand::Backup { out } => {
            let (file, _) = new_file.ok_or_else(|| anyhow!("the backup file was not created"))?;
            if let Err(e) = backup(&client, &db, file, &out, mode).await {
                let _ = std::fs::remove_file(&out);
                return Err(e);
            }
        }
        DbCommand::Blob { action } => match (&action, put_file, new_file) {
            (BlobCommand::Put { file: path, .. }, Some(file), _) => {
                put_blob(&client, action.args(&db, None), file, path, mode).await?;
            }
            (BlobCommand::Get { .. }, _, Some((file, out))) => {
                if let Err(e) = get_blob(&client, action.args(&db, None), file, &out, mode).await {
                    let _ = std::fs::remove_file(&out);
                    return Err(e);
                }
            }
            _ => bail!("the blob's file was not opened"),
        },
        DbCommand::Watch { table } => watch(&client, db, table, mode).await?,
        DbCommand::Databases => {
            let databases = client.list_databases().await?;
            print!("{}", mode.databases(&databases));
        }
        DbCommand::Create { name } => {
            let info = client.create_database(&name).await?;
            println!("created database {}", info.name);
        }
        DbCommand::Drop { name } => {
            client.drop_database(&name).await?;
            println!("dropped database {name}");
        }
    }
    Ok(())
}

/// Runs a statement with `query`, and streams its rows through a cursor
/// when the result is too large to come back whole.
async fn query_or_stream(client: &DbClient, args: &ExecArgs, mode: Mode) -> anyhow::Result<()> {
    match client.query(args).await {
        Ok(result) => {
            print!("{}", mode.result(&result, &args.statement.sql));
            Ok(())
        }
        Err(e) if e.code == ErrorCode::TooLarge => stream_rows(client, args, mode).await,
        Err(e) => Err(e.into()),
    }
}

/// Prints a cursor's rows page by page, so memory stays bounded however
/// many there are. The table's widths are measured on the first page.
async fn stream_rows(client: &DbClient, args: &ExecArgs, mode: Mode) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut cursor = client.cursor(args).await?;
    let mut layout: Option<Layout> = None;
    let mut count = 0u64;
    if mode == Mode::Json {
        print!("{{\"columns\":{},\"rows\":[", columns_json(&cursor.columns));
    }
    while let Some(page) = cursor.next_page().await? {
        let mut out = String::new();
        for row in &page {
            match mode {
                Mode::Json => {
                    if count > 0 {
                        out.push(',');
                    }
                    let row = serde_json::Value::Array(row.iter().map(value_json).collect());
                    out.push_str(&row.to_string());
                }
                Mode::Table => {
                    let layout = layout.get_or_insert_with(|| {
                        let layout = Layout::new(&cursor.columns, &page);
                        out.push_str(&layout.header());
                        layout
                    });
                    out.push_str(&layout.row(row));
                }
            }
            count += 1;
        }
        print!("{out}");
    }
    match mode {
        // A cursor runs read-only statements: nothing was inserted, and the
        // duration is the whole stream's, as the client saw it.
        Mode::Json => println!(
            "],\"rows_affected\":0,\"last_insert_rowid\":0,\"duration_us\":{},\"streamed\":true}}",
            started.elapsed().as_micros()
        ),
        Mode::Table => {
            if layout.is_none() {
                print!("{}", Layout::new(&cursor.columns, &[]).header());
            }
            print!("{}", row_count(count));
        }
    }
    Ok(())
}

fn exec_args(db: &Option<String>, statement: Statement) -> ExecArgs {
    ExecArgs {
        db: db.clone(),
        statement,
        timeout_ms: None,
    }
}

fn schema_args(db: &Option<String>, table: Option<String>) -> SchemaArgs {
    SchemaArgs {
        db: db.clone(),
        table,
    }
}

// ------------------------------------------------------------ parameters

/// A statement with its `--param` values bound.
fn statement(sql: String, params: &[String]) -> anyhow::Result<Statement> {
    let mut statement = Statement::new(sql);
    for param in params {
        let named = param
            .strip_prefix([':', '@', '$'])
            .and_then(|rest| rest.split_once('='))
            .filter(|(name, _)| is_identifier(name));
        match named {
            Some((name, value)) => {
                statement = statement.bind_named(format!(":{name}"), parse_value(value)?);
            }
            None => statement = statement.bind(parse_value(param)?),
        }
    }
    Ok(statement)
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Reads a parameter as SQL would: integers, reals, `null` and `x'hex'`
/// blobs are typed; `'quoted'` is text as written; anything else is text.
pub fn parse_value(text: &str) -> anyhow::Result<Value> {
    if text.eq_ignore_ascii_case("null") {
        return Ok(Value::Null);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::Integer(i));
    }
    let looks_numeric = text.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c));
    if looks_numeric {
        if let Ok(r) = text.parse::<f64>() {
            if r.is_finite() {
                return Ok(Value::Real(r));
            }
        }
    }
    if let Some(hex) = text
        .strip_prefix("x'")
        .or_else(|| text.strip_prefix("X'"))
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return parse_hex(hex).map(Value::Blob).ok_or_else(|| {
            anyhow!("invalid blob {text:?}: use x'' with an even number of hex digits")
        });
    }
    if let Some(quoted) = text
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        return Ok(Value::Text(quoted.to_owned()));
    }
    Ok(Value::Text(text.to_owned()))
}

fn parse_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------ statements

/// Splits SQL text into complete statements, each without its `;`, and the
/// incomplete rest. Quotes, comments and trigger bodies (`BEGIN ... END;`)
/// do not end a statement; statements holding only comments are dropped.
pub fn split_statements(text: &str) -> (Vec<String>, String) {
    let mut statements = Vec::new();
    let mut scanner = Scanner::default();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        if scanner.step(c, next) == Step::Skip {
            chars.next();
        }
        if scanner.ended {
            let piece = text[start..i].trim();
            if scanner.content {
                statements.push(piece.to_owned());
            }
            start = i + c.len_utf8();
            scanner = Scanner::default();
        }
    }
    let rest = &text[start..];
    let rest = if scanner.content {
        rest.to_owned()
    } else {
        String::new()
    };
    (statements, rest)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Lex {
    #[default]
    Normal,
    Quote(char),
    LineComment,
    BlockComment,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Next,
    /// The next character was part of this token (`--`, `/*`, `*/`, `''`).
    Skip,
}

/// The state of one statement being scanned.
#[derive(Debug, Default)]
struct Scanner {
    lex: Lex,
    /// The statement's first words, upper-cased, to spot CREATE TRIGGER.
    words: Vec<String>,
    word: String,
    /// The last complete word, cleared by punctuation: `END` before `;`
    /// closes a trigger body.
    last_word: Option<String>,
    /// Something other than whitespace and comments was seen.
    content: bool,
    ended: bool,
}

impl Scanner {
    fn step(&mut self, c: char, next: Option<char>) -> Step {
        match self.lex {
            Lex::Quote(q) => {
                if c == q {
                    if next == Some(q) && q != ']' {
                        return Step::Skip;
                    }
                    self.lex = Lex::Normal;
                }
                Step::Next
            }
            Lex::LineComment => {
                if c == '\n' {
                    self.lex = Lex::Normal;
                }
                Step::Next
            }
            Lex::BlockComment => {
                if c == '*' && next == Some('/') {
                    self.lex = Lex::Normal;
                    return Step::Skip;
                }
                Step::Next
            }
            Lex::Normal => self.normal(c, next),
        }
    }

    fn normal(&mut self, c: char, next: Option<char>) -> Step {
        if c.is_alphanumeric() || c == '_' {
            self.content = true;
            self.word.push(c.to_ascii_uppercase());
            return Step::Next;
        }
        self.finish_word();
        match c {
            '-' if next == Some('-') => {
                self.lex = Lex::LineComment;
                return Step::Skip;
            }
            '/' if next == Some('*') => {
                self.lex = Lex::BlockComment;
                return Step::Skip;
            }
            ';' => {
                let trigger_open = self.in_trigger() && self.last_word.as_deref() != Some("END");
                if !trigger_open {
                    self.ended = true;
                }
            }
            _ if c.is_whitespace() => return Step::Next,
            '\'' | '"' | '`' => self.lex = Lex::Quote(c),
            '[' => self.lex = Lex::Quote(']'),
            _ => {}
        }
        self.content |= c != ';';
        self.last_word = None;
        Step::Next
    }

    fn finish_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word);
        if self.words.len() < 3 {
            self.words.push(word.clone());
        }
        self.last_word = Some(word);
    }

    fn in_trigger(&self) -> bool {
        match self.words.as_slice() {
            [create, trigger, ..] if create == "CREATE" && trigger == "TRIGGER" => true,
            [create, temp, trigger] => {
                create == "CREATE"
                    && (temp == "TEMP" || temp == "TEMPORARY")
                    && trigger == "TRIGGER"
            }
            _ => false,
        }
    }
}

/// What a statement asks of the session: transaction control becomes the
/// server's methods, anything else runs as SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Begin(TxMode),
    Commit,
    Rollback,
    Sql,
}

pub fn classify(sql: &str) -> Control {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_ascii_uppercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["BEGIN"] | ["BEGIN", "TRANSACTION", ..] | ["BEGIN", "DEFERRED", ..] => {
            Control::Begin(TxMode::Deferred)
        }
        ["BEGIN", "IMMEDIATE", ..] => Control::Begin(TxMode::Immediate),
        ["BEGIN", "EXCLUSIVE", ..] => Control::Begin(TxMode::Exclusive),
        ["COMMIT" | "END"] | ["COMMIT" | "END", "TRANSACTION", ..] => Control::Commit,
        ["ROLLBACK"] | ["ROLLBACK", "TRANSACTION"] => Control::Rollback,
        ["ROLLBACK", "TRANSACTION", next] if *next != "TO" => Control::Rollback,
        _ => Control::Sql,
    }
}

/// A batch file's statements. BEGIN and COMMIT are dropped, since a batch
/// commits atomically anyway (so dumps load as they are); ROLLBACK has no
/// meaning there and is refused.
fn read_batch(path: &Path) -> anyhow::Result<Vec<Statement>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut pieces, rest) = split_statements(&text);
    if !rest.trim().is_empty() {
        pieces.push(rest.trim().to_owned());
    }
    let mut statements = Vec::new();
    for sql in pieces {
        match classify(&sql) {
            Control::Begin(_) | Control::Commit => {}
            Control::Rollback => bail!(
                "{}: a batch cannot hold ROLLBACK; it commits all or nothing",
                path.display()
            ),
            Control::Sql => statements.push(Statement::new(sql)),
        }
    }
    if statements.is_empty() {
        bail!("{} holds no statement", path.display());
    }
    Ok(statements)
}

// ---------------------------------------------------------------- output

/// How results print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Table,
    Json,
}

impl Mode {
    /// `sql` is the statement that produced `result`: SQLite's last insert
    /// rowid belongs to the connection, so it means something only after an
    /// INSERT.
    fn result(self, result: &QueryResult, sql: &str) -> String {
        match self {
            Mode::Json => format!("{}\n", result_json(result)),
            Mode::Table => table_text(result, inserts(sql)),
        }
    }

    fn batch(self, results: &[QueryResult], count: usize) -> String {
        match self {
            Mode::Json => {
                let all: Vec<serde_json::Value> = results.iter().map(result_json).collect();
                format!("{}\n", serde_json::Value::Array(all))
            }
            Mode::Table => {
                let mut out = String::new();
                for result in results.iter().filter(|r| !r.columns.is_empty()) {
                    out.push_str(&table_text(result, false));
                }
                let affected: u64 = results.iter().map(|r| r.rows_affected).sum();
                out.push_str(&format!(
                    "committed {count} statement{}, {affected} row{} affected\n",
                    plural(count as u64),
                    plural(affected)
                ));
                out
            }
        }
    }

    fn tables(self, schema: &Schema) -> String {
        let mut names: Vec<&str> = schema
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .chain(schema.views.iter().map(|v| v.name.as_str()))
            .collect();
        names.sort_unstable();
        match self {
            Mode::Json => format!("{}\n", serde_json::json!(names)),
            Mode::Table => names.iter().map(|n| format!("{n}\n")).collect(),
        }
    }

    fn databases(self, databases: &[DatabaseInfo]) -> String {
        match self {
            Mode::Json => databases
                .iter()
                .map(|d| {
                    format!(
                        "{}\n",
                        serde_json::json!({"name": d.name, "bytes": d.bytes})
                    )
                })
                .collect(),
            Mode::Table => databases
                .iter()
                .map(|d| format!("{}\t{} bytes\n", d.name, d.bytes))
                .collect(),
        }
    }

    /// What a blob command did.
    fn blob(self, did: &str, args: &BlobArgs, bytes: u64, file: &Path) -> String {
        match self {
            Mode::Json => format!(
                "{}\n",
                serde_json::json!({
                    "table": args.table,
                    "column": args.column,
                    "rowid": args.rowid,
                    "bytes": bytes,
                    "file": file.display().to_string(),
                })
            ),
            Mode::Table => format!(
                "{did} {bytes} bytes: {}.{} rowid {}, {}\n",
                args.table,
                args.column,
                args.rowid,
                file.display()
            ),
        }
    }

    fn schema(self, schema: &Schema) -> String {
        match self {
            Mode::Json => match serde_json::to_string(schema) {
                Ok(text) => format!("{text}\n"),
                Err(e) => format!("{{\"error\":{}}}\n", serde_json::json!(e.to_string())),
            },
            Mode::Table => {
                let sql = schema
                    .tables
                    .iter()
                    .map(|t| &t.sql)
                    .chain(schema.indexes.iter().map(|i| &i.sql))
                    .chain(schema.views.iter().map(|v| &v.sql))
                    .chain(schema.triggers.iter().map(|t| &t.sql));
                sql.flatten().map(|s| format!("{s};\n")).collect()
            }
        }
    }
}

/// Whether a statement is an INSERT or REPLACE.
fn inserts(sql: &str) -> bool {
    let first = sql
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_ascii_uppercase);
    matches!(first.as_deref(), Some("INSERT" | "REPLACE"))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn value_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Integer(i) => serde_json::json!(i),
        Value::Real(r) if !r.is_finite() => serde_json::json!(real_text(*r)),
        Value::Real(r) => serde_json::json!(r),
        Value::Text(t) => serde_json::json!(t),
        // JSON has no bytes: a blob is an object, so no text is mistaken
        // for one.
        Value::Blob(b) => serde_json::json!({ "blob": to_hex(b) }),
    }
}

fn columns_json(columns: &[Column]) -> serde_json::Value {
    let columns = columns
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "type": c.decl_type }))
        .collect();
    serde_json::Value::Array(columns)
}

fn result_json(result: &QueryResult) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = result
        .rows
        .iter()
        .map(|row| serde_json::Value::Array(row.iter().map(value_json).collect()))
        .collect();
    serde_json::json!({
        "columns": columns_json(&result.columns),
        "rows": rows,
        "rows_affected": result.rows_affected,
        "last_insert_rowid": result.last_insert_rowid,
        "duration_us": result.duration_us,
    })
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => real_text(*r),
        Value::Text(t) => t
            .escape_debug()
            .to_string()
            .replace("\\\"", "\"")
            .replace("\\'", "'"),
        Value::Blob(b) => format!("x'{}'", to_hex(b)),
    }
}

/// A real as psql shows one: `Infinity`, `-Infinity` and `NaN` by name
/// (JSON has no numbers for them), and very large or small magnitudes in
/// exponent form (`1e+300`), not as hundreds of digits.
fn real_text(r: f64) -> String {
    if r.is_nan() {
        return "NaN".to_owned();
    }
    if r.is_infinite() {
        return if r > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    let magnitude = r.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let text = format!("{r:e}");
        return match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        };
    }
    r.to_string()
}

/// A result as people read it: an aligned table and a row count, or what a
/// write did.
fn table_text(result: &QueryResult, inserted: bool) -> String {
    if result.columns.is_empty() {
        let mut line = format!(
            "{} row{} affected",
            result.rows_affected,
            plural(result.rows_affected)
        );
        if inserted && result.rows_affected > 0 {
            line.push_str(&format!(", last insert rowid {}", result.last_insert_rowid));
        }
        return line + "\n";
    }
    let layout = Layout::new(&result.columns, &result.rows);
    let mut out = layout.header();
    for row in &result.rows {
        out.push_str(&layout.row(row));
    }
    out.push_str(&row_count(result.rows.len() as u64));
    out
}

fn row_count(n: u64) -> String {
    format!("({n} row{})\n", plural(n))
}

/// Column names, widths and alignment, measured on the rows at hand (the
/// first page, when a cursor streams them).
struct Layout {
    names: Vec<String>,
    widths: Vec<usize>,
    /// A column of numbers is right-aligned, its name too.
    numeric: Vec<bool>,
}

impl Layout {
    fn new(columns: &[Column], rows: &[Vec<Value>]) -> Layout {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let mut widths: Vec<usize> = names.iter().map(|h| h.chars().count()).collect();
        let mut numeric = vec![true; names.len()];
        let mut any_number = vec![false; names.len()];
        for row in rows {
            for (i, value) in row.iter().enumerate().take(names.len()) {
                widths[i] = widths[i].max(cell(value).chars().count());
                match value {
                    Value::Integer(_) | Value::Real(_) => any_number[i] = true,
                    Value::Null => {}
                    _ => numeric[i] = false,
                }
            }
        }
        let numeric = numeric
            .iter()
            .zip(&any_number)
            .map(|(n, a)| *n && *a)
            .collect();
        Layout {
            names,
            widths,
            numeric,
        }
    }

    fn line(cells: Vec<String>) -> String {
        cells.join(" | ").trim_end().to_owned() + "\n"
    }

    fn header(&self) -> String {
        let names = self
            .names
            .iter()
            .zip(self.widths.iter().zip(&self.numeric))
            .map(|(h, (w, right))| pad(h, *w, *right))
            .collect();
        let rule: Vec<String> = self.widths.iter().map(|w| "-".repeat(*w)).collect();
        Layout::line(names) + &rule.join("-+-") + "\n"
    }

    fn row(&self, row: &[Value]) -> String {
        Layout::line(
            row.iter()
                .zip(&self.widths)
                .map(|(v, w)| {
                    pad(
                        &cell(v),
                        *w,
                        matches!(v, Value::Integer(_) | Value::Real(_)),
                    )
                })
                .collect(),
        )
    }
}

fn pad(text: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(text.chars().count()));
    if right {
        format!("{fill}{text}")
    } else {
        format!("{text}{fill}")
    }
}

// ---------------------------------------------------------------- backup

/// Creates the backup's target before connecting, refusing to overwrite a
/// file, so a wrong path fails at once.
/// Creates `out` for a download, refusing to overwrite what is there.
fn create_new_file(out: &Path) -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                anyhow!("{} already exists; not overwriting it", out.display())
            }
            _ => anyhow!("cannot create {}: {e}", out.display()),
        })
}

async fn backup(
    client: &DbClient,
    db: &Option<String>,
    mut file: File,
    out: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    let args = BackupArgs {
        db: db.clone(),
        file: None,
    };
    let (info, stream) = client.backup(&args).await?;
    save(stream, &mut file, out, info.bytes).await?;
    match mode {
        Mode::Json => println!(
            "{}",
            serde_json::json!({ "db": info.db, "bytes": info.bytes, "path": out.display().to_string() })
        ),
        Mode::Table => println!(
            "backed up {} ({} bytes) to {}",
            info.db,
            info.bytes,
            out.display()
        ),
    }
    Ok(())
}

/// Writes a download of `bytes` bytes into `file` (named `out`), with a
/// progress bar on a terminal, checks its length and syncs it to disk.
async fn save(
    mut stream: backroom_frame::stream::ByteStream,
    file: &mut File,
    out: &Path,
    bytes: u64,
) -> anyhow::Result<()> {
    let bar = cli::progress_bar(bytes);
    let mut written = 0u64;
    while let Some(chunk) = stream.chunk().await? {
        file.write_all(&chunk)
            .with_context(|| format!("cannot write {}", out.display()))?;
        written += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(written);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if written != bytes {
        bail!("the stream ended after {written} of {bytes} bytes");
    }
    // The copy is only safe once it is on disk.
    file.sync_all()
        .with_context(|| format!("cannot sync {}", out.display()))
}

/// `blob put`: uploads the file in pieces, announcing its length first.
async fn put_blob(
    client: &DbClient,
    mut args: BlobArgs,
    mut file: File,
    path: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    let bytes = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    args.bytes = Some(bytes);
    let mut upload = client.blob_write(&args).await?;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        upload
            .send(bytes::Bytes::copy_from_slice(&buf[..n]))
            .await?;
    }
    let info: BlobInfo = upload.finish().await?;
    print!("{}", mode.blob("wrote", &args, info.bytes, path));
    Ok(())
}

/// `blob get`: streams the value into the new file.
async fn get_blob(
    client: &DbClient,
    args: BlobArgs,
    mut file: File,
    out: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    let (info, stream) = client.blob_read(&args).await?;
    save(stream, &mut file, out, info.bytes).await?;
    print!("{}", mode.blob("read", &args, info.bytes, out));
    Ok(())
}

// ----------------------------------------------------------------- watch

async fn watch(
    client: &DbClient,
    db: Option<String>,
    table: String,
    mode: Mode,
) -> anyhow::Result<()> {
    // The feed accepts any name; a typo would wait forever in silence.
    let schema = client
        .schema(&schema_args(&db, Some(table.clone())))
        .await?;
    if !schema
        .tables
        .iter()
        .any(|t| t.name.eq_ignore_ascii_case(&table))
    {
        bail!("no table named {table:?}");
    }
    let mut feed = client.watch(&WatchArgs { db, table }).await?;
    eprintln!("watching; Ctrl-C stops");
    while let Some(event) = feed.next().await {
        match event? {
            FeedEvent::Change { table, op, rowid } => {
                let op = match op {
                    ChangeOp::Insert => "insert",
                    ChangeOp::Update => "update",
                    ChangeOp::Delete => "delete",
                };
                match mode {
                    Mode::Json => println!(
                        "{}",
                        serde_json::json!({ "table": table, "op": op, "rowid": rowid })
                    ),
                    Mode::Table => println!("{op} {table} rowid {rowid}"),
                }
            }
            FeedEvent::Lagged { missed } => {
                eprintln!("fell behind: {missed} changes were not shown")
            }
        }
    }
    bail!("the server ended the change feed")
}

// ----------------------------------------------------------------- shell

/// What the shell does after a line.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// One shell session: one connection, so BEGIN on one line and COMMIT on a
/// later one are the same transaction.
struct Session {
    client: DbClient,
    /// How to connect again after the server went away.
    config: ClientConfig,
    db: Option<String>,
    mode: Mode,
    buffer: String,
    in_tx: bool,
}

const SHELL_HELP: &str = "\
Statements end with ';' and may span lines. BEGIN [IMMEDIATE|EXCLUSIVE],
COMMIT and ROLLBACK work across lines.
  .tables              list the tables and views
  .schema [TABLE]      print the schema
  .mode table|json     how results print
  .help                this text
  .quit                leave (an open transaction is rolled back)";

impl Session {
    fn prompt(&self) -> String {
        let name = self.db.as_deref().unwrap_or(DEFAULT_DB);
        let tx = if self.in_tx { "*" } else { "" };
        if self.buffer.trim().is_empty() {
            format!("{name}{tx}> ")
        } else {
            format!("{:>width$}> ", "...", width = name.len() + tx.len())
        }
    }

    /// Takes one line of input: a dot command, or SQL that may complete
    /// statements, each of which runs at once.
    async fn line(&mut self, line: &str) -> anyhow::Result<Flow> {
        if self.buffer.trim().is_empty() && line.trim_start().starts_with('.') {
            self.buffer.clear();
            return self.dot(line.trim()).await;
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        let (statements, rest) = split_statements(&self.buffer);
        self.buffer = rest;
        for sql in statements {
            self.statement(&sql).await?;
        }
        Ok(Flow::Continue)
    }

    /// Runs what is left in the buffer when the input ends without a `;`.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let rest = std::mem::take(&mut self.buffer);
        if !rest.trim().is_empty() {
            self.statement(rest.trim()).await?;
        }
        Ok(())
    }

    /// Connects again when the server went away since the last statement
    /// (it restarted, say). A transaction that was open is lost with the old
    /// connection: that is an error of its own, and the statement does not
    /// run, since it was meant for the transaction.
    async fn reconnect_if_lost(&mut self) -> anyhow::Result<()> {
        // A ping has no effect, so a failed one proves the connection dead
        // even when its end has not been noticed yet; a failed statement
        // could not be retried, as it may have run.
        let alive = match self.client.client().closed() {
            Some(reason) => Err(reason),
            None => self.client.client().ping().await.map(drop),
        };
        let Err(reason) = alive else {
            return Ok(());
        };
        self.client = connect(&self.config).await?;
        eprintln!("reconnected to {} ({reason})", self.config.addr);
        if std::mem::take(&mut self.in_tx) {
            bail!(
                "the connection to the server was lost, and with it the open transaction, \
                 which the server rolled back; this statement did not run"
            );
        }
        Ok(())
    }

    async fn statement(&mut self, sql: &str) -> anyhow::Result<()> {
        self.reconnect_if_lost().await?;
        match classify(sql) {
            Control::Begin(mode) => {
                self.client
                    .begin(&BeginArgs {
                        db: self.db.clone(),
                        mode,
                        timeout_ms: None,
                    })
                    .await?;
                self.in_tx = true;
            }
            Control::Commit => {
                // Whatever the answer, the server has let the transaction go.
                let done = self.client.commit().await;
                self.in_tx = false;
                done?;
            }
            Control::Rollback => {
                let done = self.client.rollback().await;
                self.in_tx = false;
                done?;
            }
            Control::Sql => {
                let args = exec_args(&self.db, Statement::new(sql));
                query_or_stream(&self.client, &args, self.mode).await?;
                let _ = std::io::stdout().flush();
            }
        }
        Ok(())
    }

    async fn dot(&mut self, command: &str) -> anyhow::Result<Flow> {
        let mut words = command.split_whitespace();
        let name = words.next().unwrap_or_default();
        let arg = words.next().map(str::to_owned);
        match name {
            ".tables" => {
                self.reconnect_if_lost().await?;
                let schema = self.client.schema(&schema_args(&self.db, None)).await?;
                print!("{}", self.mode.tables(&schema));
            }
            ".schema" => {
                self.reconnect_if_lost().await?;
                let schema = self.client.schema(&schema_args(&self.db, arg)).await?;
                print!("{}", self.mode.schema(&schema));
            }
            ".mode" => match arg.as_deref() {
                Some("table") => self.mode = Mode::Table,
                Some("json") => self.mode = Mode::Json,
                _ => bail!(".mode takes table or json"),
            },
            ".help" => println!("{SHELL_HELP}"),
            ".quit" | ".exit" => return Ok(Flow::Quit),
            other => bail!("unknown command {other}; .help lists them"),
        }
        let _ = std::io::stdout().flush();
        Ok(Flow::Continue)
    }

    /// Ends the session, rolling back (and saying so) a transaction still open.
    async fn close(&mut self) -> anyhow::Result<()> {
        if !self.in_tx {
            return Ok(());
        }
        if self.client.client().closed().is_some() {
            self.in_tx = false;
            bail!(
                "the connection to the server was lost, and the server rolled back the open transaction"
            );
        }
        self.in_tx = false;
        let _ = self.client.rollback().await;
        bail!("the input ended inside a transaction; it was rolled back")
    }
}

fn shell(
    runtime: &tokio::runtime::Runtime,
    config: &ClientConfig,
    db: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let client = runtime.block_on(connect(config))?;
    let mut session = Session {
        client,
        config: config.clone(),
        db,
        mode: if json { Mode::Json } else { Mode::Table },
        buffer: String::new(),
        in_tx: false,
    };
    if std::io::stdin().is_terminal() {
        interactive(runtime, &mut session)
    } else {
        script(runtime, &mut session)
    }
}

/// Statements from a pipe or file: the first error stops the script, as
/// nothing after it can be trusted to mean what it meant.
fn script(runtime: &tokio::runtime::Runtime, session: &mut Session) -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    for (number, line) in stdin.lines().enumerate() {
        let line = line.context("cannot read stdin")?;
        let flow = runtime
            .block_on(session.line(&line))
            .with_context(|| format!("line {}", number + 1))?;
        if flow == Flow::Quit {
            break;
        }
    }
    runtime.block_on(async {
        session.flush().await?;
        session.close().await
    })
}

/// The REPL: line editing and history by rustyline; an error is shown and
/// the session goes on; Ctrl-C drops the statement being typed or cancels
/// the one running.
fn interactive(runtime: &tokio::runtime::Runtime, session: &mut Session) -> anyhow::Result<()> {
    use rustyline::error::ReadlineError;

    let mut editor = rustyline::DefaultEditor::new().context("cannot open the terminal")?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!("backroom db shell; .help for help, Ctrl-D to leave");
    let mut typed = StatementLines::default();
    loop {
        match editor.readline(&session.prompt()) {
            Ok(line) => {
                let outcome = runtime.block_on(async {
                    tokio::select! {
                        outcome = session.line(&line) => outcome,
                        _ = tokio::signal::ctrl_c() => Err(anyhow!("cancelled")),
                    }
                });
                if outcome.is_err() {
                    session.buffer.clear();
                }
                if let Some(entry) = typed.push(&line, session.buffer.trim().is_empty()) {
                    let _ = editor.add_history_entry(entry);
                }
                match outcome {
                    Ok(Flow::Quit) => break,
                    Ok(Flow::Continue) => {}
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            Err(ReadlineError::Interrupted) => {
                session.buffer.clear();
                typed = StatementLines::default();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(anyhow!("cannot read the terminal: {e}")),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    runtime.block_on(session.close())
}

/// The lines of the statement being typed in the shell, so that history
/// recalls a statement whole rather than one of its lines.
#[derive(Debug, Default)]
struct StatementLines {
    lines: Vec<String>,
}

impl StatementLines {
    /// Adds a line; once the statement is `complete` (nothing of it is left
    /// waiting for a `;`), returns the history entry for all its lines.
    fn push(&mut self, line: &str, complete: bool) -> Option<String> {
        if !line.trim().is_empty() {
            self.lines.push(line.to_string());
        }
        if !complete || self.lines.is_empty() {
            return None;
        }
        let entry = self.lines.join("\n");
        self.lines.clear();
        Some(entry)
    }
}

/// `$XDG_STATE_HOME/backroom/db_history`, else under `~/.local/state`.
fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("state"))
        })?;
    let dir = base.join("backroom");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("db_history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_history_keeps_a_statement_whole() {
        let mut typed = StatementLines::default();
        assert_eq!(typed.push("SELECT name", false), None);
        assert_eq!(typed.push("FROM pets", false), None);
        assert_eq!(
            typed.push("WHERE id = 1;", true).as_deref(),
            Some("SELECT name\nFROM pets\nWHERE id = 1;")
        );
        assert_eq!(typed.push(".tables", true).as_deref(), Some(".tables"));
        assert_eq!(typed.push("", true), None);
    }

    #[test]
    fn statements_split_on_semicolons_outside_quotes_and_comments() {
        let (done, rest) = split_statements(
            "SELECT ';' AS a; -- a; comment\nSELECT \"x;\" /* ; */ FROM t;\nINSERT INTO t",
        );
        assert_eq!(
            done,
            [
                "SELECT ';' AS a",
                "-- a; comment\nSELECT \"x;\" /* ; */ FROM t"
            ]
        );
        assert_eq!(rest.trim(), "INSERT INTO t");
    }

    #[test]
    fn a_trigger_body_does_not_end_at_its_inner_semicolons() {
        let sql = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE n SET c = c + 1;\n  DELETE FROM x;\nEND;";
        let (done, rest) = split_statements(sql);
        assert_eq!(done.len(), 1, "{done:?}");
        assert!(done[0].ends_with("END"));
        assert!(rest.is_empty());
        let (open, rest) =
            split_statements("CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;");
        assert!(open.is_empty());
        assert!(!rest.is_empty());
    }

    #[test]
    fn comment_only_pieces_are_dropped() {
        let (done, rest) = split_statements("-- nothing\n;  ;\n/* x */");
        assert!(done.is_empty() && rest.is_empty(), "{done:?} {rest:?}");
    }

    #[test]
    fn transaction_control_is_recognised() {
        assert_eq!(classify("begin"), Control::Begin(TxMode::Deferred));
        assert_eq!(
            classify("BEGIN IMMEDIATE TRANSACTION"),
            Control::Begin(TxMode::Immediate)
        );
        assert_eq!(classify("end transaction"), Control::Commit);
        assert_eq!(classify("Rollback"), Control::Rollback);
        assert_eq!(classify("ROLLBACK TO sp"), Control::Sql);
        assert_eq!(classify("ROLLBACK TRANSACTION TO sp"), Control::Sql);
        assert_eq!(classify("SELECT 1"), Control::Sql);
    }

    #[test]
    fn reals_print_as_psql_prints_them() {
        assert_eq!(real_text(f64::INFINITY), "Infinity");
        assert_eq!(real_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(real_text(f64::NAN), "NaN");
        assert_eq!(real_text(1e300), "1e+300");
        assert_eq!(real_text(-2.5e-300), "-2.5e-300");
        assert_eq!(real_text(1.5), "1.5");
        assert_eq!(real_text(0.0), "0");
        assert_eq!(
            value_json(&Value::Real(f64::INFINITY)),
            serde_json::json!("Infinity")
        );
    }

    #[test]
    fn parameters_are_typed_like_sql_literals() {
        assert_eq!(parse_value("42").ok(), Some(Value::Integer(42)));
        assert_eq!(
            parse_value("-9223372036854775808").ok(),
            Some(Value::Integer(i64::MIN))
        );
        assert_eq!(parse_value("1.5").ok(), Some(Value::Real(1.5)));
        assert_eq!(parse_value("NULL").ok(), Some(Value::Null));
        assert_eq!(parse_value("x'00ff'").ok(), Some(Value::Blob(vec![0, 255])));
        assert_eq!(parse_value("'42'").ok(), Some(Value::Text("42".into())));
        assert_eq!(parse_value("inf").ok(), Some(Value::Text("inf".into())));
        assert_eq!(parse_value("zoë").ok(), Some(Value::Text("zoë".into())));
        assert!(parse_value("x'0'").is_err());
    }

    #[test]
    fn named_parameters_bind_by_name() {
        let s = statement("SELECT :a, ?".into(), &[":a=1".into(), "b=c".into()]).expect("binds");
        assert_eq!(s.named.len(), 1);
        assert_eq!(s.named.get(":a"), Some(&Value::Integer(1)));
        assert_eq!(s.params, [Value::Text("b=c".into())]);
    }
}
