//! The PostgreSQL face against real clients: tokio-postgres, psql, and
//! bytes a client should never send, all on the real binary.

use std::process::Stdio;
use std::time::Duration;

use backroom_api::db::{DbClient, FeedEvent, PG_FACE, WatchArgs};
use backroom_daemon::testing::{Daemon, connect_from};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;

struct Face {
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl Face {
    fn port(&self) -> String {
        let addr = self.daemon.addr(PG_FACE);
        addr.rsplit_once(':').expect("host:port").1.to_owned()
    }

    async fn connect(&self) -> tokio_postgres::Client {
        self.connect_as("postgres", None).await.expect("connects")
    }

    async fn connect_as(
        &self,
        user: &str,
        password: Option<&str>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = format!(
            "host=127.0.0.1 port={} user={user} dbname=main",
            self.port()
        );
        if let Some(password) = password {
            config.push_str(&format!(" password={password}"));
        }
        let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs psql with `args` and returns its stdout and stderr.
    async fn psql(&self, args: &[&str]) -> (String, String) {
        let out = Command::new("psql")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port(),
                "-d",
                "main",
                "-U",
                "ann",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("psql runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

async fn start(config: &str) -> Face {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("db.toml");
    std::fs::write(&file, config).expect("config written");
    let mut db = Command::new(env!("CARGO_BIN_EXE_backroom-db"));
    db.arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--pg", "127.0.0.1:0", "--config"])
        .arg(&file);
    let daemon = Daemon::start(db, &["db", PG_FACE]).await;
    Face { daemon, _dir: dir }
}

async fn open() -> Face {
    start("").await
}

#[tokio::test]
async fn the_extended_protocol_carries_typed_values_both_ways() {
    let face = open().await;
    let client = face.connect().await;
    client
        .batch_execute(
            "CREATE TABLE v (i INTEGER, f REAL, t TEXT, b BLOB); \
             CREATE TABLE n (i INTEGER)",
        )
        .await
        .expect("tables");
    let insert = client
        .prepare_typed(
            "INSERT INTO v VALUES ($1, $2, $3, $4)",
            &[Type::INT8, Type::FLOAT8, Type::TEXT, Type::BYTEA],
        )
        .await
        .expect("prepared");
    let blob: &[u8] = &[0, 255, 1];
    for i in [i64::MIN, i64::MAX] {
        let n = client
            .execute(&insert, &[&i, &1.5f64, &"héllo", &blob])
            .await
            .expect("inserted");
        assert_eq!(n, 1);
    }
    let none: Option<i64> = None;
    client
        .execute(
            &insert,
            &[&none, &None::<f64>, &None::<&str>, &None::<&[u8]>],
        )
        .await
        .expect("nulls");
    let rows = client
        .query("SELECT i, f, t, b FROM v ORDER BY rowid", &[])
        .await
        .expect("selected");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].get::<_, i64>(0), i64::MIN);
    assert_eq!(rows[1].get::<_, i64>(0), i64::MAX);
    assert_eq!(rows[0].get::<_, f64>(1), 1.5);
    assert_eq!(rows[0].get::<_, &str>(2), "héllo");
    assert_eq!(rows[0].get::<_, &[u8]>(3), blob);
    assert_eq!(rows[2].get::<_, Option<i64>>(0), None);
    assert_eq!(rows[2].get::<_, Option<&[u8]>>(3), None);
    let described = client
        .prepare("SELECT i, f, t, b FROM v WHERE i = $1")
        .await
        .expect("described");
    let types: Vec<Type> = described
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect();
    assert_eq!(types, [Type::INT8, Type::FLOAT8, Type::TEXT, Type::BYTEA]);
}

/// Creates `t`, begins, inserts 1, runs `then` (a SAVEPOINT, say), then
/// fails a duplicate insert (23505), which aborts the transaction: the
/// next statement is refused with 25P02.
async fn abort_a_transaction(client: &tokio_postgres::Client, then: &str) {
    client
        .batch_execute("CREATE TABLE t (a INTEGER PRIMARY KEY); BEGIN; INSERT INTO t VALUES (1)")
        .await
        .expect("table, begin, insert");
    client.batch_execute(then).await.expect("then");
    let error = client
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect_err("duplicate");
    assert_eq!(error.code().map(|c| c.code()), Some("23505"));
    let refused = client.batch_execute("SELECT 1").await.expect_err("refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("25P02"));
}

#[tokio::test]
async fn an_error_in_a_transaction_refuses_statements_until_rollback() {
    let face = open().await;
    let client = face.connect().await;
    abort_a_transaction(&client, "").await;
    client.batch_execute("ROLLBACK").await.expect("rollback");
    // A computed column has no declared type, so it is described as text.
    let count: String = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(count, "0", "the rollback undid the first insert");
}

#[tokio::test]
async fn a_rollback_to_a_savepoint_clears_the_error_and_the_transaction_goes_on() {
    let face = open().await;
    let client = face.connect().await;
    abort_a_transaction(&client, "SAVEPOINT a").await;
    // Through the extended protocol, as drivers send it.
    client
        .execute("ROLLBACK TO SAVEPOINT a", &[])
        .await
        .expect("rollback to");
    client
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .expect("the transaction goes on");
    client
        .batch_execute("RELEASE SAVEPOINT a; SAVEPOINT b; INSERT INTO t VALUES (3); ROLLBACK TO b")
        .await
        .expect("a savepoint rolled back without an error");
    let missing = client
        .batch_execute("RELEASE SAVEPOINT a")
        .await
        .expect_err("released already");
    assert_eq!(missing.code().map(|c| c.code()), Some("3B001"));
    client
        .batch_execute("ROLLBACK TO SAVEPOINT b")
        .await
        .expect("b still stands after the error");
    client.batch_execute("COMMIT").await.expect("commit");
    let rows = client
        .query("SELECT a FROM t ORDER BY a", &[])
        .await
        .expect("rows");
    let kept: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(kept, [1, 2]);
    let outside = client
        .batch_execute("SAVEPOINT c")
        .await
        .expect_err("no transaction");
    assert_eq!(outside.code().map(|c| c.code()), Some("25P01"));
}

#[tokio::test]
async fn a_change_rolled_back_to_a_savepoint_stays_out_of_the_feed() {
    let face = open().await;
    let client = face.connect().await;
    client
        .batch_execute("CREATE TABLE t (a INTEGER PRIMARY KEY)")
        .await
        .expect("table");
    let watcher = DbClient::connect(face.daemon.addr("db"), None)
        .await
        .expect("frame client");
    let mut feed = watcher
        .watch(&WatchArgs {
            db: None,
            table: "t".into(),
        })
        .await
        .expect("watch");
    client
        .batch_execute(
            "BEGIN; INSERT INTO t VALUES (1); SAVEPOINT a; INSERT INTO t VALUES (2); \
             SAVEPOINT b; INSERT INTO t VALUES (3); ROLLBACK TO a; INSERT INTO t VALUES (4); \
             COMMIT; INSERT INTO t VALUES (5)",
        )
        .await
        .expect("transaction");
    let mut rowids = Vec::new();
    while rowids.last() != Some(&5) {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("an event in time")
            .expect("feed open")
            .expect("event decodes");
        if let FeedEvent::Change { rowid, .. } = event {
            rowids.push(rowid);
        }
    }
    assert_eq!(rowids, [1, 4, 5]);
}

#[tokio::test]
async fn psql_rolls_back_to_a_savepoint_and_commits() {
    let face = open().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "CREATE TABLE s (a INTEGER PRIMARY KEY);\nBEGIN;\nINSERT INTO s VALUES (1);\n\
         SAVEPOINT sp;\nINSERT INTO s VALUES (1);\nSELECT 'refused';\n\
         ROLLBACK TO SAVEPOINT sp;\nINSERT INTO s VALUES (2);\nRELEASE SAVEPOINT sp;\n\
         COMMIT;\nSELECT count(*) AS n FROM s;\n",
    )
    .expect("script");
    let (out, err) = face
        .psql(&[
            "-v",
            "VERBOSITY=verbose",
            "-f",
            &script.display().to_string(),
        ])
        .await;
    assert!(err.contains("ERROR:  23505"), "{err}");
    assert!(err.contains("ERROR:  25P02"), "{err}");
    assert_eq!(err.matches("ERROR").count(), 2, "{err}");
    let tags: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.chars()
                .all(|c| c.is_ascii_uppercase() || c == ' ' || c.is_ascii_digit())
                && !l.trim().is_empty()
        })
        .collect();
    assert_eq!(
        tags,
        [
            "CREATE TABLE",
            "BEGIN",
            "INSERT 0 1",
            "SAVEPOINT",
            "ROLLBACK",
            "INSERT 0 1",
            "RELEASE",
            "COMMIT",
            " 2"
        ],
        "{out}"
    );
}

#[tokio::test]
async fn psql_describes_a_table_with_its_columns_and_indexes() {
    let face = open().await;
    face.psql(&[
        "-c",
        "CREATE TABLE trips (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x', \
         seats INTEGER, code TEXT UNIQUE); \
         CREATE INDEX trips_seats ON trips (seats, name) WHERE seats > 0",
    ])
    .await;
    let (out, err) = face.psql(&["-c", "\\d trips"]).await;
    assert!(err.is_empty(), "{err}");
    let expected = [
        "Table \"public.trips\"",
        " Column |  Type   | Collation | Nullable | Default ",
        " id     | INTEGER |           |          | ",
        " name   | TEXT    |           | not null | 'x'",
        " seats  | INTEGER |           |          | ",
        " code   | TEXT    |           |          | ",
        "Indexes:",
        "    \"sqlite_autoindex_trips_1\" UNIQUE CONSTRAINT, btree (code)",
        "    \"trips_seats\" btree (seats, name) WHERE seats > 0",
    ];
    for line in expected {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    let (out, _) = face.psql(&["-c", "\\di"]).await;
    assert!(
        out.contains("public | trips_seats              | index | ann   | trips"),
        "{out}"
    );
    let (_, err) = face.psql(&["-c", "\\d nosuch"]).await;
    assert_eq!(err.trim(), "Did not find any relation named \"nosuch\".");
}

#[tokio::test]
async fn a_cancel_request_interrupts_the_running_statement() {
    let face = open().await;
    let client = face.connect().await;
    let cancel = client.cancel_token();
    let running = tokio::spawn(async move {
        client
            .batch_execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT count(*) FROM c",
            )
            .await
    });
    // A cancel that arrives before the statement starts cancels nothing, as
    // in PostgreSQL, so it is sent again until the statement has ended.
    let error = loop {
        cancel.cancel_query(NoTls).await.expect("cancel sent");
        tokio::task::yield_now().await;
        if running.is_finished() {
            break running.await.expect("joined").expect_err("cancelled");
        }
    };
    assert_eq!(error.code().map(|c| c.code()), Some("57014"));
    let message = error.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("user request")),
        "cancelled, not timed out: {message:?}"
    );
}

/// psycopg2 fills parameters in on the client side, in PostgreSQL's literal
/// syntax: the rewrite of casts and literals is what it needs.
const PSYCOPG2_SCRIPT: &str = r#"
import sys, threading
import psycopg2
conn = psycopg2.connect(host="127.0.0.1", port=int(sys.argv[1]), dbname="main", user="py")
cur = conn.cursor()
cur.execute("CREATE TABLE p (i INTEGER, f REAL, t TEXT, b BLOB, ok BOOLEAN)")
conn.commit()
cur.execute("INSERT INTO p VALUES (%s, %s, %s, %s, %s)",
            (7, float("inf"), "it's", psycopg2.Binary(b"\x00\xff"), True))
cur.executemany("INSERT INTO p (i, t) VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
print("rowcount", cur.rowcount)
conn.commit()
cur.execute("SELECT i, f, t, b, ok FROM p WHERE i = %s", (7,))
i, f, t, b, ok = cur.fetchone()
print("row", i, f, t, bytes(b).hex(), ok)
cur.execute("INSERT INTO p (i) VALUES (100)")
conn.rollback()
cur.execute("SELECT count(*) FROM p WHERE i = 100")
print("rolled back", cur.fetchone()[0])
named = conn.cursor(name="trips")
named.itersize = 2
named.execute("SELECT i FROM p ORDER BY i")
print("named", [r[0] for r in named])
named.close()
conn.commit()
cur.execute("INSERT INTO p (i) VALUES (200)")
cur.execute("SAVEPOINT before_error")
try:
    cur.execute("INSERT INTO nosuch VALUES (1)")
except psycopg2.Error as e:
    print("failed", e.pgcode)
    cur.execute("ROLLBACK TO SAVEPOINT before_error")
cur.execute("INSERT INTO p (i) VALUES (201)")
conn.commit()
cur.execute("SELECT count(*) FROM p WHERE i >= 200")
print("kept after savepoint", cur.fetchone()[0])
conn.commit()
threading.Timer(0.3, conn.cancel).start()
try:
    cur.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c")
except psycopg2.Error as e:
    print("cancelled", e.pgcode)
"#;

#[tokio::test]
async fn psycopg2_params_executemany_a_transaction_a_savepoint_a_named_cursor_and_cancel() {
    let face = open().await;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PSYCOPG2_SCRIPT, &face.port()])
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("row 7 inf it's 00ff True"), "{stdout}");
    assert!(stdout.contains("rolled back 0"), "{stdout}");
    assert!(stdout.contains("named [1, 2, 3, 7]"), "{stdout}");
    assert!(stdout.contains("failed 42P01"), "{stdout}");
    assert!(stdout.contains("kept after savepoint 2"), "{stdout}");
    assert!(stdout.contains("cancelled 57014"), "{stdout}");
}

#[tokio::test]
async fn a_portal_with_a_row_limit_streams_a_result_larger_than_any_whole_one() {
    // 64 KiB is far less than 150 000 rows: only a cursor can carry them.
    let face = start("max_result_bytes = 65536\n").await;
    let mut client = face.connect().await;
    client
        .batch_execute(
            "CREATE TABLE big (x INTEGER); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) \
             INSERT INTO big SELECT i FROM n",
        )
        .await
        .expect("filled");
    let tx = client.transaction().await.expect("begin");
    let portal = tx
        .bind("SELECT x FROM big ORDER BY x", &[])
        .await
        .expect("bound");
    let (mut seen, mut last) = (0usize, 0i64);
    loop {
        let rows = tx.query_portal(&portal, 1000).await.expect("a page");
        assert!(rows.len() <= 1000);
        for row in &rows {
            let x: i64 = row.get(0);
            assert_eq!(x, last + 1, "in order, none missing");
            last = x;
        }
        seen += rows.len();
        if rows.len() < 1000 {
            break;
        }
    }
    assert_eq!(seen, 150_000);
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn psql_runs_several_statements_and_shows_sqlstates() {
    let face = open().await;
    let (out, err) = face
        .psql(&[
            "-c",
            "CREATE TABLE t (a INTEGER NOT NULL); INSERT INTO t VALUES (1), (2); \
             UPDATE t SET a = a + 1; SELECT count(*) AS n FROM t",
        ])
        .await;
    assert!(err.is_empty(), "{err}");
    assert!(out.contains(" n \n"), "{out}");
    assert!(out.contains(" 2\n(1 row)"), "{out}");
    let (_, err) = face
        .psql(&[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "INSERT INTO t VALUES (NULL)",
        ])
        .await;
    assert!(err.contains("ERROR:  23502"), "{err}");
    let (_, err) = face
        .psql(&["-v", "VERBOSITY=verbose", "-c", "SELEC 1"])
        .await;
    assert!(err.contains("ERROR:  42601"), "{err}");
}

#[tokio::test]
async fn psql_copies_csv_in_and_out() {
    let face = open().await;
    face.psql(&["-c", "CREATE TABLE c (id INTEGER, name TEXT, note TEXT)"])
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "1,ann,\"a, b\"\n2,bob,\n3,\"c\"\"d\",x\n").expect("written");
    let (out, err) = face
        .psql(&["-c", &format!("\\copy c from '{}' csv", input.display())])
        .await;
    assert_eq!(out.trim(), "COPY 3", "{err}");
    let output = dir.path().join("out.csv");
    let (out, err) = face
        .psql(&[
            "-c",
            &format!("\\copy c to '{}' csv header", output.display()),
        ])
        .await;
    assert_eq!(out.trim(), "COPY 3", "{err}");
    let copied = std::fs::read_to_string(&output).expect("read back");
    assert_eq!(
        copied,
        "id,name,note\n1,ann,\"a, b\"\n2,bob,\n3,\"c\"\"d\",x\n"
    );
    let (out, _) = face
        .psql(&["-t", "-c", "SELECT count(*) FROM c WHERE note IS NULL"])
        .await;
    assert_eq!(out.trim(), "1", "an empty unquoted CSV field is NULL");
}

#[tokio::test]
async fn psql_lists_tables_and_databases_and_refuses_other_catalog_queries_in_one_line() {
    let face = open().await;
    face.psql(&[
        "-c",
        "CREATE TABLE trips (id INTEGER); CREATE VIEW soon AS SELECT 1",
    ])
    .await;
    let (out, err) = face.psql(&["-c", "\\dt"]).await;
    assert!(out.contains("public | trips | table | ann"), "{out}{err}");
    assert!(!out.contains("soon"), "\\dt lists tables only: {out}");
    let (out, _) = face.psql(&["-c", "\\d"]).await;
    assert!(out.contains("public | soon  | view  | ann"), "{out}");
    let (out, _) = face.psql(&["-c", "\\l"]).await;
    assert!(out.contains(" main | ann   | UTF8"), "{out}");
    let (_, err) = face.psql(&["-c", "\\df"]).await;
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("PostgreSQL's catalog"), "{err}");
}

#[tokio::test]
async fn settings_are_kept_per_session_and_shown() {
    let face = open().await;
    let client = face.connect().await;
    let other = face.connect().await;
    client
        .batch_execute("SET application_name = 'ledger'; SET extra_float_digits TO 3")
        .await
        .expect("set");
    let shown = client
        .simple_query("SHOW application_name")
        .await
        .expect("shown");
    let value = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(value.as_deref(), Some("ledger"));
    let row = other
        .query_one("SELECT current_setting('application_name'), version()", &[])
        .await
        .expect("asked");
    assert_eq!(
        row.get::<_, String>(0),
        "",
        "the other session's own setting"
    );
    assert!(
        row.get::<_, String>(1)
            .starts_with("PostgreSQL 15.0 (backroom")
    );
}

#[tokio::test]
async fn fifty_psql_sessions_race_for_ten_seats_and_ten_are_sold() {
    let face = open().await;
    face.psql(&["-c", "CREATE TABLE booking (who TEXT)"]).await;
    let book = "BEGIN; \
        INSERT INTO booking (who) SELECT 'x' WHERE (SELECT count(*) FROM booking) < 10; \
        COMMIT;";
    let args = ["-c", book];
    let runs: Vec<_> = (0..50).map(|_| face.psql(&args)).collect();
    let answers = futures_util::future::join_all(runs).await;
    let sold = answers
        .iter()
        .filter(|(out, _)| out.contains("INSERT 0 1"))
        .count();
    let sold_out = answers
        .iter()
        .filter(|(out, _)| out.contains("INSERT 0 0"))
        .count();
    assert_eq!((sold, sold_out), (10, 40), "{answers:?}");
    let (out, _) = face
        .psql(&["-t", "-c", "SELECT count(*) FROM booking"])
        .await;
    assert_eq!(out.trim(), "10");
}

/// Sends `bytes` on a fresh connection and returns what the server answers
/// before it closes (or within a second).
async fn exchange(face: &Face, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(face.daemon.addr(PG_FACE))
        .await
        .expect("connects");
    socket.write_all(bytes).await.expect("sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.read_to_end(&mut answer)).await;
    answer
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_the_server_keeps_serving() {
    let face = open().await;
    // SSLRequest without TLS configured: the answer is N.
    let answer = exchange(&face, &[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await;
    assert_eq!(answer.first(), Some(&b'N'));
    // An unknown protocol version, garbage, and a 1 GB start-up length are
    // each refused with PostgreSQL's FATAL error and SQLSTATE.
    let fatal = |answer: &[u8], code: &str| {
        let text = String::from_utf8_lossy(answer);
        assert_eq!(answer.first(), Some(&b'E'), "{text}");
        assert!(text.contains("FATAL") && text.contains(code), "{text}");
    };
    fatal(&exchange(&face, &[0, 0, 0, 8, 0, 9, 0, 0]).await, "0A000");
    fatal(&exchange(&face, b"GET / HTTP/1.1\r\n\r\n").await, "08P01");
    fatal(
        &exchange(&face, &[0x40, 0, 0, 0, 0, 3, 0, 0]).await,
        "08P01",
    );
    let client = face.connect().await;
    // A Bind with the wrong number of parameters is a clear error.
    let statement = client
        .prepare("SELECT $1::int8 + $2::int8")
        .await
        .expect("prepared");
    assert_eq!(statement.params(), [Type::INT8, Type::INT8]);
    let error = client
        .query_typed("SELECT $1::int8 + $2::int8", &[(&1i64, Type::INT8)])
        .await
        .expect_err("refused");
    assert_eq!(error.code().map(|c| c.code()), Some("08P01"), "{error}");
    let one: String = client
        .query_one("SELECT 1", &[])
        .await
        .expect("still serving")
        .get(0);
    assert_eq!(one, "1");
}

#[tokio::test]
async fn the_token_is_the_password_and_a_wrong_one_is_refused() {
    let hash = backroom_frame::auth::hash_token("ann-secret");
    let face = start(&format!(
        "[[users]]\nname = \"ann\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n"
    ))
    .await;
    let Err(error) = face.connect_as("ann", Some("wrong")).await else {
        panic!("a wrong password is refused");
    };
    assert_eq!(error.code().map(|c| c.code()), Some("28P01"));
    let client = face
        .connect_as("ann", Some("ann-secret"))
        .await
        .expect("connects");
    let user: String = client
        .query_one("SELECT current_user", &[])
        .await
        .expect("asked")
        .get(0);
    assert_eq!(user, "ann");
}

#[tokio::test]
async fn a_client_that_never_sends_its_password_is_closed_after_the_handshake_timeout() {
    let hash = backroom_frame::auth::hash_token("ann-secret");
    let face = start(&format!(
        "handshake_timeout_secs = 1\n\
         [[users]]\nname = \"ann\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n"
    ))
    .await;
    let mut startup = vec![0, 3, 0, 0];
    startup.extend_from_slice(b"user\0ann\0database\0main\0\0");
    let mut message = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&startup);
    let mut socket = TcpStream::connect(face.daemon.addr(PG_FACE))
        .await
        .expect("connects");
    socket.write_all(&message).await.expect("sent");
    // The server asks for the password; the client never answers, and the
    // server closes the connection on its own, well before this bound.
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the server kept the connection open");
    assert_eq!(answer.first(), Some(&b'R'), "asked for the password first");
    let client = face
        .connect_as("ann", Some("ann-secret"))
        .await
        .expect("others still connect");
    assert!(client.simple_query("SELECT 1").await.is_ok());
}

#[tokio::test]
async fn psql_sends_the_token_over_tls_when_the_daemon_has_a_certificate() {
    let certs = tempfile::tempdir().expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_path, key_path) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert written");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key written");
    let hash = backroom_frame::auth::hash_token("ann-secret");
    let face = start(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\n\
         [[users]]\nname = \"ann\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n",
        cert_path.display().to_string(),
        key_path.display().to_string(),
    ))
    .await;
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} dbname=main user=ann sslmode=require",
            face.port()
        ))
        .args(["-X", "-t", "-c", "SELECT current_user"])
        .env("PGPASSWORD", "ann-secret")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("psql runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.trim(), "ann", "{stderr}");
}

#[tokio::test]
async fn connections_past_max_connections_are_refused_with_53300() {
    let face = start("max_connections = 2\n").await;
    let _first = face.connect().await;
    let _second = face.connect().await;
    let Err(error) = face.connect_as("third", None).await else {
        panic!("a third connection is refused");
    };
    assert_eq!(error.code().map(|c| c.code()), Some("53300"), "{error}");
}

#[tokio::test]
async fn an_address_over_its_connection_cap_is_refused_with_53300_while_others_are_served() {
    let face = start("max_connections_per_client = 2\n").await;
    let _first = face.connect().await;
    let _second = face.connect().await;
    let Err(error) = face.connect_as("third", None).await else {
        panic!("a third connection from 127.0.0.1 is refused");
    };
    assert_eq!(error.code().map(|c| c.code()), Some("53300"), "{error}");
    let message = error.as_db_error().map(|e| e.message()).unwrap_or_default();
    assert!(message.contains("max_connections_per_client"), "{message}");
    let other = connect_from("127.0.0.2", face.daemon.addr(PG_FACE)).await;
    let config: tokio_postgres::Config = "user=postgres dbname=main".parse().expect("config");
    let (client, connection) = config.connect_raw(other, NoTls).await.expect("served");
    tokio::spawn(connection);
    let row = client.query_one("SELECT 1", &[]).await.expect("query");
    assert_eq!(row.get::<_, String>(0), "1");
}

#[tokio::test]
async fn an_unknown_database_is_3d000() {
    let face = open().await;
    let config = format!("host=127.0.0.1 port={} user=x dbname=nope", face.port());
    let Err(error) = tokio_postgres::connect(&config, NoTls).await else {
        panic!("an unknown database is refused");
    };
    assert_eq!(error.code().map(|c| c.code()), Some("3D000"));
}
