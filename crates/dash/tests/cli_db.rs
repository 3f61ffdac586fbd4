//! `backroom db ...` against a real database server: the server library runs
//! in this process on a loopback port, and each command runs the built
//! `backroom` binary.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backroom_db::Config;
use backroom_frame::auth::{Auth, Role, User, hash_token};
use serde_json::Value;
use tokio::sync::oneshot;

const ADMIN: &str = "admin-token";
const READER: &str = "reader-token";

/// A database server on its own thread and runtime, so that the tests can
/// block on the CLI's processes. It stops when dropped.
struct Server {
    addr: String,
    dir: tempfile::TempDir,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        Server::start_in(tempfile::tempdir().expect("temp dir"), |_| {})
    }

    /// Serves `dir/data`, which may hold databases already, with the
    /// defaults changed by `adjust`.
    fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Server {
        let mut config = Config::new(dir.path().join("data"));
        adjust(&mut config);
        let user = |name: &str, token: &str, role| User {
            name: name.into(),
            token_sha256: hash_token(token),
            role,
        };
        config.frame.auth = Auth::new(vec![
            user("ann", ADMIN, Role::Admin),
            user("rob", READER, Role::ReadOnly),
        ])
        .expect("users")
        .into();
        let (addr, stop, thread) = serve(config.clone(), "127.0.0.1:0");
        Server {
            addr,
            dir,
            config,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the server, then serves the same folder on the same address.
    fn restart(&mut self) {
        self.halt();
        let (_, stop, thread) = serve(self.config.clone(), &self.addr);
        self.stop = Some(stop);
        self.thread = Some(thread);
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// `backroom db --addr <this server> --token admin <args>`.
    fn cli(&self, args: &[&str]) -> Command {
        self.cli_as(ADMIN, args)
    }

    fn cli_as(&self, token: &str, args: &[&str]) -> Command {
        let mut command = backroom(self.dir.path());
        command
            .args(["db", "--addr", &self.addr, "--token", token])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        output(self.cli(args))
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// Runs `backroom db shell` with `script` on stdin.
    fn shell(&self, extra: &[&str], script: &str) -> Output {
        let mut command = self.cli(&[]);
        command.args(extra).arg("shell");
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        command.stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the shell");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(script.as_bytes())
            .expect("write the script");
        drop(stdin);
        child.wait_with_output().expect("the shell ends")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Runs the server on its own thread and runtime, listening on `bind`.
fn serve(config: Config, bind: &str) -> (String, oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let bind = bind.to_owned();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(&bind).await.expect("bind");
            let addr = listener.local_addr().expect("addr").to_string();
            addr_tx.send(addr).expect("send addr");
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_db::run(listener, config, shutdown)
                .await
                .expect("server runs");
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the server started");
    (addr, stop, thread)
}

/// The built binary, with a config folder of its own so that the user's
/// config file and token never leak in.
fn backroom(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom"));
    command
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("BACKROOM_TOKEN")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null());
    command
}

fn output(mut command: Command) -> Output {
    command.output().expect("run backroom")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure: non-zero, nothing on stdout, one line on stderr holding
/// `needle`.
fn assert_fails_with(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded: {}", stdout(out));
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text:?}"))
}

fn seed(server: &Server) {
    server.ok(&[
        "exec",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)",
    ]);
    server.ok(&[
        "exec",
        "INSERT INTO t (name, score) VALUES (?, ?), (?, ?)",
        "--param",
        "ann",
        "--param",
        "9.5",
        "--param",
        "bob",
        "--param",
        "10",
    ]);
}

#[test]
fn exec_and_query_print_aligned_tables() {
    let server = Server::start();
    let created = server.ok(&["exec", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"]);
    assert_eq!(created, "0 rows affected\n");
    let inserted = server.ok(&[
        "exec",
        "INSERT INTO t (name) VALUES (:n)",
        "--param",
        ":n=zoë",
    ]);
    assert_eq!(inserted, "1 row affected, last insert rowid 1\n");
    server.ok(&["exec", "INSERT INTO t (id, name) VALUES (1000, NULL)"]);
    let table = server.ok(&["query", "SELECT id, name FROM t ORDER BY id"]);
    assert_eq!(
        table,
        "  id | name\n-----+-----\n   1 | zoë\n1000 | NULL\n(2 rows)\n"
    );
}

#[test]
fn json_output_keeps_every_type() {
    let server = Server::start();
    let out = server.ok(&[
        "--json",
        "query",
        "SELECT ? AS i, ? AS r, ? AS b, ? AS s, ? AS n, ? AS q",
        "--param",
        "-9223372036854775808",
        "--param",
        "-0.25",
        "--param",
        "x'00ff'",
        "--param",
        "✈ zoë",
        "--param",
        "null",
        "--param",
        "'42'",
    ]);
    let result = json(&out);
    assert_eq!(
        result["rows"],
        serde_json::json!([[i64::MIN, -0.25, {"blob": "00ff"}, "✈ zoë", null, "42"]])
    );
    assert_eq!(result["columns"][0]["name"], "i");
}

#[test]
fn a_syntax_error_is_one_line_with_sqlites_message() {
    let server = Server::start();
    let out = server.run(&["query", "SELEC 1"]);
    assert_fails_with(&out, "syntax error");
}

#[test]
fn a_read_only_token_is_refused_a_write() {
    let server = Server::start();
    seed(&server);
    let out = output(server.cli_as(READER, &["exec", "DELETE FROM t"]));
    assert_fails_with(&out, "forbidden");
    let count = server.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[2]]));
}

#[test]
fn a_batch_file_commits_all_or_nothing() {
    let server = Server::start();
    seed(&server);
    let dir = server.dir.path();
    let bad = dir.join("bad.sql");
    std::fs::write(
        &bad,
        "BEGIN;\nINSERT INTO t (name) VALUES ('carl');\nINSERT INTO t (id) VALUES (1);\nCOMMIT;\n",
    )
    .expect("write");
    let out = server.run(&["batch", bad.to_str().expect("utf-8")]);
    assert_fails_with(&out, "UNIQUE constraint failed");
    assert!(stderr(&out).contains("nothing was committed"));
    let good = dir.join("good.sql");
    std::fs::write(
        &good,
        "-- a dump-like file\nINSERT INTO t (name) VALUES ('carl;');\nUPDATE t SET score = 1\n  WHERE name = 'carl;';\n",
    )
    .expect("write");
    let done = server.ok(&["batch", good.to_str().expect("utf-8")]);
    assert_eq!(done, "committed 2 statements, 2 rows affected\n");
    let count = server.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[3]]));
}

#[test]
fn a_missing_batch_file_fails_before_connecting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = backroom(dir.path());
    // Nothing listens on port 1: the file is checked first.
    command.args(["db", "--addr", "127.0.0.1:1", "batch", "/no/such/file.sql"]);
    assert_fails_with(&output(command), "cannot read /no/such/file.sql");
}

#[test]
fn a_server_that_is_down_is_one_clear_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = format!("127.0.0.1:{port}");
    let mut command = backroom(dir.path());
    command.args(["db", "--addr", &addr, "tables"]);
    assert_fails_with(
        &output(command),
        &format!("cannot reach the db server at {addr}"),
    );
}

#[test]
fn the_config_file_gives_the_address_and_token() {
    let server = Server::start();
    let dir = server.dir.path();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!("[db]\naddr = \"{}\"\ntoken = \"{ADMIN}\"\n", server.addr),
    )
    .expect("write");
    let mut command = backroom(dir);
    command.args([
        "--config",
        file.to_str().expect("utf-8"),
        "db",
        "exec",
        "CREATE TABLE c (x)",
    ]);
    let out = output(command);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(server.ok(&["tables"]), "c\n");
}

#[test]
fn database_names_a_database_and_an_address_there_is_refused() {
    let server = Server::start();
    let out = server.run(&["--database", "nope", "tables"]);
    assert_fails_with(&out, "no database named \"nope\"");
    let out = server.run(&["--db", "nope", "tables"]);
    assert_fails_with(&out, "no database named \"nope\"");
    let out = server.run(&["--db", "127.0.0.1:7703", "tables"]);
    assert_fails_with(&out, "give the server with --addr");
}

#[test]
fn tables_and_schema_describe_the_database() {
    let server = Server::start();
    seed(&server);
    server.ok(&["exec", "CREATE INDEX t_name ON t (name)"]);
    server.ok(&["exec", "CREATE VIEW v AS SELECT name FROM t"]);
    assert_eq!(server.ok(&["tables"]), "t\nv\n");
    assert_eq!(
        json(&server.ok(&["--json", "tables"])),
        serde_json::json!(["t", "v"])
    );
    let schema = server.ok(&["schema", "t"]);
    assert_eq!(
        schema,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL);\n\
         CREATE INDEX t_name ON t (name);\n"
    );
    let out = server.run(&["schema", "missing"]);
    assert_fails_with(&out, "no table or view named \"missing\"");
}

#[test]
fn the_shell_runs_a_script_with_transactions_across_lines() {
    let server = Server::start();
    seed(&server);
    let script = "\
-- rolled back
BEGIN;
INSERT INTO t (name)
  VALUES ('gone');
ROLLBACK;
BEGIN IMMEDIATE;
UPDATE t SET score = score + 1
  WHERE name = 'ann'; UPDATE t SET name = 'bo;b' WHERE name = 'bob';
COMMIT;
.tables
.mode json
SELECT name, score FROM t ORDER BY id;
";
    let out = server.shell(&[], script);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "1 row affected, last insert rowid 3",
            "1 row affected",
            "1 row affected"
        ]
    );
    assert_eq!(lines[3], "t");
    let rows = json(lines[4]);
    assert_eq!(
        rows["rows"],
        serde_json::json!([["ann", 10.5], ["bo;b", 10.0]])
    );
    assert_eq!(lines.len(), 5, "{text}");
}

#[test]
fn a_shell_script_stops_at_its_first_error() {
    let server = Server::start();
    seed(&server);
    let out = server.shell(&[], "SELECT 1;\n\nSELEC 2;\nDELETE FROM t;\n");
    assert_fails_with(&out, "line 3");
    assert!(stderr(&out).contains("syntax error"), "{}", stderr(&out));
    let count = server.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[2]]));
}

#[test]
fn a_shell_script_ending_inside_a_transaction_is_rolled_back() {
    let server = Server::start();
    seed(&server);
    let out = server.shell(&[], "BEGIN;\nDELETE FROM t;\n");
    assert_fails_with(&out, "ended inside a transaction; it was rolled back");
    let count = server.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[2]]));
}

#[test]
fn backup_writes_a_copy_another_server_can_serve() {
    let server = Server::start();
    seed(&server);
    let copy_dir = tempfile::tempdir().expect("temp dir");
    let data = copy_dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let out = data.join("main.db");
    let printed = server.ok(&["backup", out.to_str().expect("utf-8")]);
    assert!(printed.starts_with("backed up main ("), "{printed}");
    let bytes = std::fs::read(&out).expect("the copy");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let restored = Server::start_in(copy_dir, |_| {});
    let count = restored.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[2]]));
}

#[test]
fn backup_refuses_to_overwrite_and_needs_admin() {
    let server = Server::start();
    let existing = server.dir.path().join("existing.db");
    std::fs::write(&existing, b"keep me").expect("write");
    let out = server.run(&["backup", existing.to_str().expect("utf-8")]);
    assert_fails_with(&out, "already exists; not overwriting it");
    assert_eq!(std::fs::read(&existing).expect("kept"), b"keep me");

    let target = server.dir.path().join("copy.db");
    let out = output(server.cli_as(READER, &["backup", target.to_str().expect("utf-8")]));
    assert_fails_with(&out, "forbidden");
    assert!(!target.exists(), "a refused backup leaves no file");

    let out = server.run(&["backup", "/no/such/dir/copy.db"]);
    assert_fails_with(&out, "cannot create /no/such/dir/copy.db");
}

#[test]
fn watch_prints_committed_changes() {
    let server = Server::start();
    seed(&server);
    let mut child = server
        .cli(&["watch", "t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    // The notice comes once the subscription stands, so the insert below
    // cannot be missed.
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut notice = String::new();
    err.read_line(&mut notice).expect("the notice");
    assert!(notice.contains("watching"), "{notice:?}");
    server.ok(&["exec", "INSERT INTO t (id, name) VALUES (77, 'w')"]);
    server.ok(&["exec", "DELETE FROM t WHERE id = 77"]);
    // Read on a thread, so a change that never comes fails the test in
    // bounded time instead of hanging it.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let lines: Vec<String> = (0..2)
        .map_while(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines, ["insert t rowid 77", "delete t rowid 77"]);
}

#[test]
fn watch_of_a_missing_table_fails() {
    let server = Server::start();
    let out = server.run(&["watch", "nope"]);
    assert_fails_with(&out, "no table named \"nope\"");
}

#[test]
fn a_result_too_large_for_query_streams_through_a_cursor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(dir, |config| config.max_result_bytes = 1024);
    let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 5000) \
               SELECT x, 'row ' || x AS label FROM n";
    let table = server.ok(&["query", sql]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5003, "header, rule, rows, count");
    assert_eq!(lines[2], "   1 | row 1");
    assert_eq!(lines[5001], "5000 | row 5000");
    assert_eq!(lines[5002], "(5000 rows)");
    let streamed = json(&server.ok(&["--json", "query", sql]));
    let rows = streamed["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 5000);
    assert_eq!(rows[4999], serde_json::json!([5000, "row 5000"]));
    // The same keys as a result that came back whole.
    assert_eq!(streamed["last_insert_rowid"], 0);
    assert!(streamed["duration_us"].is_u64(), "{streamed}");
}

#[test]
fn special_and_huge_reals_print_as_psql_shows_them() {
    let server = Server::start();
    let sql = "SELECT 9e999 AS up, -9e999 AS down, 1e300 AS big";
    let table = server.ok(&["query", sql]);
    let row = table.lines().nth(2).expect("a row");
    assert_eq!(
        row.split('|').map(str::trim).collect::<Vec<_>>(),
        ["Infinity", "-Infinity", "1e+300"]
    );
    let result = json(&server.ok(&["--json", "query", sql]));
    assert_eq!(
        result["rows"],
        serde_json::json!([["Infinity", "-Infinity", 1e300]])
    );
}

#[test]
fn ddl_after_a_write_reports_no_rows_affected() {
    let server = Server::start();
    seed(&server);
    assert_eq!(
        server.ok(&["exec", "CREATE TABLE u (x)"]),
        "0 rows affected\n"
    );
}

/// A shell whose stdin the test writes line by line, reading each answer.
struct LiveShell {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl LiveShell {
    fn start(server: &Server) -> LiveShell {
        let mut command = server.cli(&["--json", "shell"]);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the shell");
        let stdin = child.stdin.take().expect("stdin");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        LiveShell { child, stdin, out }
    }

    /// Sends one statement and reads the one line it prints.
    fn ask(&mut self, sql: &str) -> Value {
        self.send(sql);
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the answer");
        json(&line)
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the shell");
        self.stdin.flush().expect("flush");
    }

    fn finish(self) -> Output {
        drop(self.stdin);
        let mut output = self.child.wait_with_output().expect("the shell ends");
        let mut rest = Vec::new();
        let mut out = self.out;
        std::io::Read::read_to_end(&mut out, &mut rest).expect("stdout");
        output.stdout = rest;
        output
    }
}

#[test]
fn the_shell_reconnects_on_the_next_statement_after_a_restart() {
    let mut server = Server::start();
    seed(&server);
    let mut shell = LiveShell::start(&server);
    let count = "SELECT count(*) FROM t;";
    assert_eq!(shell.ask(count)["rows"], serde_json::json!([[2]]));
    server.restart();
    assert_eq!(shell.ask(count)["rows"], serde_json::json!([[2]]));
    let out = shell.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("reconnected"), "{}", stderr(&out));
}

#[test]
fn the_shell_says_a_transaction_was_lost_with_the_server() {
    let mut server = Server::start();
    seed(&server);
    let mut shell = LiveShell::start(&server);
    shell.send("BEGIN;");
    assert_eq!(shell.ask("DELETE FROM t;")["rows_affected"], 2);
    server.restart();
    shell.send("SELECT count(*) FROM t;");
    let out = shell.finish();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 3"), "{err}");
    assert!(
        err.contains("lost, and with it the open transaction"),
        "{err}"
    );
    let count = server.ok(&["--json", "query", "SELECT count(*) FROM t"]);
    assert_eq!(json(&count)["rows"], serde_json::json!([[2]]));
}

#[test]
fn databases_are_created_listed_used_and_dropped() {
    let server = Server::start();
    assert_eq!(
        server.ok(&["create", "holidays"]),
        "created database holidays\n"
    );
    server.ok(&[
        "--db",
        "holidays",
        "exec",
        "CREATE TABLE seats (id INTEGER)",
    ]);
    let listed = server.ok(&["--json", "databases"]);
    let names: Vec<String> = listed
        .lines()
        .map(|line| json(line)["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["holidays", "main"]);

    let out = output(server.cli_as(READER, &["create", "other"]));
    assert_fails_with(&out, "forbidden");
    assert_eq!(
        server.ok(&["drop", "holidays"]),
        "dropped database holidays\n"
    );
    let out = output(server.cli(&["--db", "holidays", "tables"]));
    assert_fails_with(&out, "no database named");
    let out = output(server.cli(&["drop", "main"]));
    assert!(!out.status.success(), "main was dropped");
}

#[test]
fn the_config_files_database_is_the_default_for_db_commands() {
    let server = Server::start();
    server.ok(&["create", "holidays"]);
    server.ok(&[
        "--db",
        "holidays",
        "exec",
        "CREATE TABLE seats (id INTEGER)",
    ]);
    let dir = server.dir.path();
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        format!(
            "[db]\naddr = \"{}\"\ntoken = \"{ADMIN}\"\ndatabase = \"holidays\"\n",
            server.addr
        ),
    )
    .expect("write");
    let tables = |extra: &[&str]| {
        let mut command = backroom(dir);
        command
            .args(["--config", file.to_str().expect("utf-8"), "db"])
            .args(extra)
            .arg("tables");
        let out = output(command);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(tables(&[]), "seats\n");
    assert_eq!(tables(&["--db", "main"]), "", "--db beats the file");
}

#[test]
fn blob_put_and_get_copy_a_value_larger_than_a_frame_through_files() {
    let server = Server::start();
    server.ok(&[
        "exec",
        "CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB)",
    ]);
    server.ok(&["exec", "INSERT INTO files (id) VALUES (1)"]);
    let size = 17 * 1024 * 1024 + 5;
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    let source = server.dir.path().join("in.bin");
    std::fs::write(&source, &data).expect("write the source");
    let source = source.display().to_string();
    let put = server.ok(&["blob", "put", "files", "data", "1", &source]);
    assert_eq!(
        put,
        format!("wrote {size} bytes: files.data rowid 1, {source}\n")
    );
    let length = server.ok(&["--json", "query", "SELECT length(data) FROM files"]);
    assert_eq!(json(&length)["rows"], serde_json::json!([[size]]));
    let copy = server.dir.path().join("out.bin");
    let copy_name = copy.display().to_string();
    server.ok(&["blob", "get", "files", "data", "1", &copy_name]);
    assert!(
        std::fs::read(&copy).expect("the copy") == data,
        "the copy differs"
    );
    let again = server.run(&["blob", "get", "files", "data", "1", &copy_name]);
    assert_fails_with(&again, "already exists");
    let missing = server.dir.path().join("missing.bin").display().to_string();
    let out = server.run(&["blob", "get", "files", "data", "9", &missing]);
    assert_fails_with(&out, "no such rowid");
    assert!(!Path::new(&missing).exists(), "a failed get leaves no file");
}

#[test]
fn a_large_result_inside_a_shell_transaction_streams_the_transactions_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(dir, |config| config.max_result_bytes = 1024);
    server.ok(&["exec", "CREATE TABLE big (x)"]);
    let script = "\
BEGIN;
INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c;
SELECT x FROM big;
ROLLBACK;
";
    let out = server.shell(&["--json"], script);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let streamed = json(text.lines().nth(1).expect("the SELECT's line"));
    assert_eq!(streamed["streamed"], true, "{streamed}");
    assert_eq!(streamed["rows"].as_array().expect("rows").len(), 5000);
}
