//! The database service's methods over loopback: values, parameters,
//! batches, errors, rights, describe, schema, databases, backups and the
//! change feed.

mod common;

use std::time::Duration;

use backroom_api::db::{
    BackupArgs, BatchArgs, ChangeOp, Column, DEFAULT_DB, ExecArgs, FeedEvent, SchemaArgs,
    Statement, Value, WatchArgs, method,
};
use backroom_frame::ErrorCode;
use bytes::Bytes;
use common::{READER, WRITER, admin, connect, exec, on, query, scalar, start, stmt};

#[tokio::test]
async fn values_round_trip_with_their_types() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(
        &db,
        "CREATE TABLE v (i INTEGER, r REAL, t TEXT, b BLOB, n ANY)",
    )
    .await;
    let values = [
        Value::Integer(i64::MIN),
        Value::Real(-1.5e300),
        Value::Text("zoë ✈ 東京 \u{0}end".into()),
        Value::Blob((0..=255).collect()),
        Value::Null,
    ];
    let insert = values
        .iter()
        .fold(stmt("INSERT INTO v VALUES (?, ?, ?, ?, ?)"), |s, v| {
            s.bind(v.clone())
        });
    let inserted = db.execute_main(insert).await.expect("insert");
    assert_eq!(inserted.rows_affected, 1);
    assert_eq!(inserted.last_insert_rowid, 1);
    let max = stmt("INSERT INTO v (i) VALUES (?1)").bind(i64::MAX);
    assert_eq!(
        db.execute_main(max).await.expect("max").last_insert_rowid,
        2
    );
    let read = query(&db, "SELECT i, r, t, b, n FROM v ORDER BY rowid").await;
    assert_eq!(read.rows[0], values.to_vec());
    assert_eq!(read.rows[1][0], Value::Integer(i64::MAX));
    assert_eq!(read.rows_affected, 0);
    let decl: Vec<Option<&str>> = read
        .columns
        .iter()
        .map(|c| c.decl_type.as_deref())
        .collect();
    assert_eq!(
        decl,
        [
            Some("INTEGER"),
            Some("REAL"),
            Some("TEXT"),
            Some("BLOB"),
            Some("ANY")
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn parameters_bind_by_position_number_and_name() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let numbered = stmt("SELECT ?2 - ?1, ?2").bind(10).bind(15);
    let got = db.query_main(numbered).await.expect("numbered");
    assert_eq!(got.rows, [[Value::Integer(5), Value::Integer(15)]]);
    let named = stmt("SELECT :a || @b || $c")
        .bind_named("a", "x")
        .bind_named("@b", "y")
        .bind_named("c", "z");
    let got = db.query_main(named).await.expect("named");
    assert_eq!(got.rows, [[Value::Text("xyz".into())]]);
    assert_eq!(got.columns[0].decl_type, None);

    let missing = db
        .query_main(stmt("SELECT ?, ?").bind(1))
        .await
        .expect_err("too few");
    assert_eq!(missing.code, ErrorCode::BadRequest);
    assert!(missing.message.contains("2 parameter"), "{missing}");
    let unknown = db
        .query_main(stmt("SELECT :a").bind_named("b", 1))
        .await
        .expect_err("unknown name");
    assert!(unknown.message.contains("\"b\""), "{unknown}");
    server.stop().await;
}

#[tokio::test]
async fn a_statement_that_changes_no_row_reports_none() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    assert_eq!(exec(&db, "INSERT INTO t VALUES (1)").await.rows_affected, 1);
    for sql in [
        "CREATE TABLE u (y)",
        "CREATE INDEX tx ON t (x)",
        "DROP TABLE u",
    ] {
        assert_eq!(exec(&db, sql).await.rows_affected, 0, "{sql}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_syntax_error_returns_sqlites_message_and_the_connection_stays_usable() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let err = db
        .query_main(stmt("SELEC 1"))
        .await
        .expect_err("syntax error");
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(
        err.message.contains("near \"SELEC\": syntax error"),
        "{err}"
    );
    assert!(err.message.contains("SQLITE_ERROR"), "{err}");
    assert_eq!(scalar(&db, "SELECT 41 + 1").await, 42);
    server.stop().await;
}

#[tokio::test]
async fn a_read_past_the_inline_budget_is_answered_from_the_reader_pool() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    // Far more VM steps than a read may take on the connection's own task:
    // it is interrupted there and runs again, whole, on a reader thread.
    let long = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                WHERE i < 300000) SELECT count(*) FROM n";
    assert_eq!(scalar(&db, long).await, 300_000);
    assert_eq!(scalar(&db, "SELECT 41 + 1").await, 42);
    server.stop().await;
}

#[tokio::test]
async fn a_constraint_violation_is_a_conflict_with_sqlites_code() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE u (x INTEGER UNIQUE)").await;
    exec(&db, "INSERT INTO u VALUES (1)").await;
    let err = db
        .execute_main(stmt("INSERT INTO u VALUES (1)"))
        .await
        .expect_err("duplicate");
    assert_eq!(err.code, ErrorCode::Conflict);
    assert!(
        err.message
            .contains("UNIQUE constraint failed: u.x (SQLITE_CONSTRAINT, extended code 2067)"),
        "{err}"
    );
    exec(&db, "INSERT INTO u VALUES (2)").await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM u").await, 2);
    server.stop().await;
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE p (id INTEGER PRIMARY KEY)").await;
    exec(&db, "CREATE TABLE c (p INTEGER REFERENCES p(id))").await;
    let err = db
        .execute_main(stmt("INSERT INTO c VALUES (7)"))
        .await
        .expect_err("orphan");
    assert!(err.message.contains("FOREIGN KEY"), "{err}");
    assert_eq!(
        scalar(&db, "SELECT journal_mode = 'wal' FROM pragma_journal_mode").await,
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn a_batch_is_atomic() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x INTEGER PRIMARY KEY)").await;
    let failing = BatchArgs {
        statements: vec![
            stmt("INSERT INTO t VALUES (1)"),
            stmt("INSERT INTO t VALUES (2)"),
            stmt("INSERT INTO t VALUES (1)"),
        ],
        ..BatchArgs::default()
    };
    let err = db.batch(&failing).await.expect_err("duplicate key");
    assert!(err.message.starts_with("statement 3 of the batch"), "{err}");
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 0);

    let good = BatchArgs {
        statements: vec![
            stmt("INSERT INTO t VALUES (1)"),
            stmt("INSERT INTO t VALUES (2) RETURNING x * 10"),
        ],
        ..BatchArgs::default()
    };
    let results = db.batch(&good).await.expect("batch");
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].rows, [[Value::Integer(20)]]);
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 2);
    server.stop().await;
}

#[tokio::test]
async fn a_read_only_user_is_refused_a_write_but_may_read() {
    let server = start(|_| {}).await;
    exec(&admin(&server).await, "CREATE TABLE t (x)").await;
    let reader = connect(&server, READER).await;
    for sql in ["INSERT INTO t VALUES (1)", "DROP TABLE t"] {
        let err = reader.execute_main(stmt(sql)).await.expect_err("refused");
        assert_eq!(err.code, ErrorCode::Forbidden, "{sql}: {err}");
        let err = reader.query_main(stmt(sql)).await.expect_err("refused");
        assert_eq!(err.code, ErrorCode::Forbidden, "{sql}: {err}");
    }
    let batch = BatchArgs {
        statements: vec![stmt("SELECT 1"), stmt("DELETE FROM t")],
        ..BatchArgs::default()
    };
    assert_eq!(
        reader.batch(&batch).await.expect_err("refused").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        reader
            .begin(&Default::default())
            .await
            .expect_err("refused")
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(scalar(&reader, "SELECT count(*) FROM t").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn attach_and_durability_pragmas_need_admin_and_load_extension_is_refused() {
    let server = start(|_| {}).await;
    let writer = connect(&server, WRITER).await;
    let admin = admin(&server).await;
    for sql in [
        "ATTACH DATABASE 'main' AS x",
        "PRAGMA synchronous = OFF",
        "PRAGMA journal_mode = DELETE",
    ] {
        let err = writer.execute_main(stmt(sql)).await.expect_err(sql);
        assert_eq!(err.code, ErrorCode::Forbidden, "{sql}: {err}");
        assert!(err.message.contains("admin"), "{sql}: {err}");
    }
    exec(&admin, "PRAGMA user_version = 7").await;
    assert_eq!(scalar(&writer, "PRAGMA user_version").await, 7);
    for client in [&writer, &admin] {
        let err = client
            .query_main(stmt("SELECT load_extension('/tmp/evil.so')"))
            .await
            .expect_err("refused");
        assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
        assert!(err.message.contains("load_extension"), "{err}");
    }
    assert_eq!(scalar(&writer, "SELECT 1").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn transaction_statements_are_refused_as_sql() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    for sql in ["BEGIN", "COMMIT", "SAVEPOINT a"] {
        let err = db.execute_main(stmt(sql)).await.expect_err(sql);
        assert_eq!(err.code, ErrorCode::BadRequest, "{sql}: {err}");
        assert!(err.message.contains("begin, commit"), "{err}");
    }
    assert_eq!(scalar(&db, "SELECT 1").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn several_statements_in_one_call_are_refused() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    let err = db
        .execute_main(stmt("SELECT 1; DROP TABLE t"))
        .await
        .expect_err("two statements");
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_result_too_large_for_one_reply_asks_for_a_cursor() {
    let server = start(|c| c.max_result_bytes = 64 * 1024).await;
    let db = admin(&server).await;
    let err = db
        .query_main(stmt(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
             SELECT x, 'padding padding padding' FROM c",
        ))
        .await
        .expect_err("too large");
    assert_eq!(err.code, ErrorCode::TooLarge);
    assert!(err.message.contains("cursor"), "{err}");
    assert_eq!(scalar(&db, "SELECT 2").await, 2);
    server.stop().await;
}

#[tokio::test]
async fn describe_reports_parameters_and_columns_without_running() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)").await;
    let args = ExecArgs {
        statement: stmt("SELECT id, name, 1 AS one FROM t WHERE id = :id OR name = ?"),
        ..ExecArgs::default()
    };
    let desc = db.describe(&args).await.expect("describe");
    assert_eq!(desc.params, [Some(":id".to_owned()), None]);
    assert_eq!(
        desc.columns,
        [
            Column {
                name: "id".into(),
                decl_type: Some("INTEGER".into())
            },
            Column {
                name: "name".into(),
                decl_type: Some("TEXT".into())
            },
            Column {
                name: "one".into(),
                decl_type: None
            },
        ]
    );
    assert!(desc.readonly);
    let args = ExecArgs {
        statement: stmt("DELETE FROM t"),
        ..ExecArgs::default()
    };
    assert!(!db.describe(&args).await.expect("describe").readonly);
    exec(&db, "INSERT INTO t VALUES (1, 'kept')").await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn schema_lists_tables_columns_indexes_and_views() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(
        &db,
        "CREATE TABLE trips (id INTEGER PRIMARY KEY, dest TEXT NOT NULL DEFAULT 'Rome')",
    )
    .await;
    exec(&db, "CREATE UNIQUE INDEX trips_dest ON trips (dest)").await;
    exec(&db, "CREATE VIEW romes AS SELECT id FROM trips").await;
    let schema = db.schema(&SchemaArgs::default()).await.expect("schema");
    assert_eq!(schema.tables.len(), 1);
    let trips = &schema.tables[0];
    assert_eq!(trips.name, "trips");
    assert_eq!(trips.columns[0].primary_key, 1);
    assert_eq!(trips.columns[1].name, "dest");
    assert!(trips.columns[1].not_null);
    assert_eq!(trips.columns[1].default.as_deref(), Some("'Rome'"));
    assert_eq!(schema.indexes.len(), 1);
    assert!(schema.indexes[0].unique);
    assert_eq!(schema.indexes[0].table, "trips");
    assert_eq!(schema.views[0].name, "romes");
    assert_eq!(schema.views[0].columns[0].name, "id");
    let only = db
        .schema(&SchemaArgs {
            db: None,
            table: Some("romes".into()),
        })
        .await
        .expect("schema of one");
    assert!(only.tables.is_empty());
    assert_eq!(only.views.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn admins_create_list_and_drop_databases() {
    let server = start(|_| {}).await;
    let admin = admin(&server).await;
    let writer = connect(&server, WRITER).await;
    assert_eq!(
        writer
            .create_database("sales")
            .await
            .expect_err("not admin")
            .code,
        ErrorCode::Forbidden
    );
    admin.create_database("sales").await.expect("create");
    assert_eq!(
        admin
            .create_database("sales")
            .await
            .expect_err("twice")
            .code,
        ErrorCode::Conflict
    );
    writer
        .execute(&on("sales", stmt("CREATE TABLE s (x)")))
        .await
        .expect("use it");
    let names: Vec<String> = admin
        .list_databases()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["main", "sales"]);
    assert_eq!(
        writer
            .drop_database("sales")
            .await
            .expect_err("not admin")
            .code,
        ErrorCode::Forbidden
    );
    admin.drop_database("sales").await.expect("drop");
    let gone = writer
        .query(&on("sales", stmt("SELECT 1")))
        .await
        .expect_err("dropped");
    assert_eq!(gone.code, ErrorCode::NotFound);
    assert_eq!(
        admin
            .drop_database(DEFAULT_DB)
            .await
            .expect_err("main")
            .code,
        ErrorCode::Conflict
    );
    assert!(!server.dir.path().join("data/sales.db").exists());
    server.stop().await;
}

#[tokio::test]
async fn hostile_names_and_bodies_get_typed_errors_and_the_server_keeps_serving() {
    let server = start(|_| {}).await;
    let admin = admin(&server).await;
    for name in [
        "../etc/passwd",
        "a/b",
        "",
        ".hidden",
        "x".repeat(65).as_str(),
    ] {
        let err = admin.create_database(name).await.expect_err(name);
        assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
        let err = admin
            .query(&on(name, stmt("SELECT 1")))
            .await
            .expect_err(name);
        assert_eq!(err.code, ErrorCode::BadRequest, "{name:?}: {err}");
    }
    for file in ["../escape.db", "/tmp/abs.db", ".hidden", "a/b"] {
        let args = BackupArgs {
            db: None,
            file: Some(file.into()),
        };
        let err = admin.backup_to_file(&args).await.expect_err(file);
        assert_eq!(err.code, ErrorCode::BadRequest, "{file:?}: {err}");
    }
    let client = admin.client();
    let err = client
        .call("no_such_method", backroom_frame::body::NIL.clone())
        .await
        .expect_err("unknown");
    assert_eq!(err.code, ErrorCode::UnknownMethod);
    for body in [
        backroom_frame::body::encode("not a map"),
        backroom_frame::body::encode(&[1, 2, 3]),
        Bytes::from_static(b"\xc0"),
    ] {
        let err = client
            .call(method::QUERY, body)
            .await
            .expect_err("wrong shape");
        assert_eq!(err.code, ErrorCode::BadRequest, "{err}");
    }
    let huge = ExecArgs {
        statement: stmt("SELECT ?").bind("x".repeat(4 * 1024 * 1024)),
        timeout_ms: Some(u64::MAX),
        ..ExecArgs::default()
    };
    let echoed = admin.query(&huge).await.expect("a big value is fine");
    assert_eq!(echoed.rows[0][0], Value::Text("x".repeat(4 * 1024 * 1024)));
    let zero = ExecArgs {
        timeout_ms: Some(0),
        ..huge
    };
    assert_eq!(
        admin.query(&zero).await.expect_err("zero").code,
        ErrorCode::BadRequest
    );
    assert_eq!(scalar(&admin, "SELECT 7").await, 7);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_backup_is_a_consistent_database() {
    let server = start(|_| {}).await;
    let admin = admin(&server).await;
    exec(&admin, "CREATE TABLE t (x)").await;
    exec(&admin, "INSERT INTO t VALUES (1), (2), (3)").await;
    let writer = connect(&server, WRITER).await;
    let refused = writer.backup(&BackupArgs::default()).await;
    assert_eq!(refused.err().map(|e| e.code), Some(ErrorCode::Forbidden));
    let (info, stream) = admin.backup(&BackupArgs::default()).await.expect("backup");
    let bytes = stream.collect(64 * 1024 * 1024).await.expect("bytes");
    assert_eq!(info.bytes, bytes.len() as u64);
    let out = server.dir.path().join("copy.db");
    std::fs::write(&out, &bytes).expect("write copy");
    let copy = rusqlite::Connection::open(&out).expect("open copy");
    let sum: i64 = copy
        .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
        .expect("sum");
    assert_eq!(sum, 6);
    let leftovers: Vec<_> = std::fs::read_dir(server.dir.path().join("data"))
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary backups remain");
    server.stop().await;
}

#[tokio::test]
async fn a_backup_to_a_file_lands_in_the_backup_folder() {
    let server = start(|_| {}).await;
    let admin = admin(&server).await;
    exec(&admin, "CREATE TABLE t (x)").await;
    exec(&admin, "INSERT INTO t VALUES (42)").await;
    let args = BackupArgs {
        db: None,
        file: Some("nightly.db".into()),
    };
    let info = admin.backup_to_file(&args).await.expect("backup");
    let path = server.dir.path().join("data/backups/nightly.db");
    assert_eq!(info.path.as_deref(), Some(path.to_str().expect("utf-8")));
    let copy = rusqlite::Connection::open(&path).expect("open copy");
    let x: i64 = copy
        .query_row("SELECT x FROM t", [], |r| r.get(0))
        .expect("row");
    assert_eq!(x, 42);
    assert_eq!(
        admin.backup_to_file(&args).await.expect_err("exists").code,
        ErrorCode::Conflict
    );
    server.stop().await;
}

#[tokio::test]
async fn the_change_feed_sends_committed_changes_only() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x INTEGER UNIQUE)").await;
    exec(&db, "CREATE TABLE other (y)").await;
    let watcher = admin(&server).await;
    let mut feed = watcher
        .watch(&WatchArgs {
            db: None,
            table: "t".into(),
        })
        .await
        .expect("watch");
    // A rolled-back transaction, a failed statement and another table's
    // write must all stay out of the feed.
    db.begin(&Default::default()).await.expect("begin");
    exec(&db, "INSERT INTO t VALUES (100)").await;
    db.rollback().await.expect("rollback");
    exec(&db, "INSERT INTO t VALUES (1)").await;
    db.execute_main(stmt("INSERT INTO t VALUES (1)"))
        .await
        .expect_err("duplicate");
    exec(&db, "INSERT INTO other VALUES (1)").await;
    exec(&db, "UPDATE t SET x = 2 WHERE x = 1").await;
    exec(&db, "DELETE FROM t WHERE x = 2").await;
    exec(&db, "INSERT INTO t VALUES (5)").await;
    exec(&db, "DELETE FROM t WHERE x = 5").await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let event = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("an event in time")
            .expect("feed open")
            .expect("event decodes");
        seen.push(event);
    }
    let change = |op, rowid| FeedEvent::Change {
        table: "t".into(),
        op,
        rowid,
    };
    assert_eq!(
        seen,
        [
            change(ChangeOp::Insert, 1),
            change(ChangeOp::Update, 1),
            change(ChangeOp::Delete, 1),
            change(ChangeOp::Insert, 1),
            change(ChangeOp::Delete, 1),
        ]
    );
    exec(&db, "DROP TABLE t").await;
    assert!(
        db.schema(&SchemaArgs::default())
            .await
            .expect("schema")
            .tables
            .iter()
            .all(|t| t.name != "t")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_statement_on_a_named_database_stays_there() {
    let server = start(|_| {}).await;
    let admin = admin(&server).await;
    admin.create_database("b").await.expect("create");
    admin
        .execute(&on("b", stmt("CREATE TABLE only_b (x)")))
        .await
        .expect("create table");
    let err = admin
        .query_main(Statement::new("SELECT * FROM only_b"))
        .await
        .expect_err("not in main");
    assert!(err.message.contains("no such table"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_cursor_takes_read_only_statements_and_can_be_abandoned() {
    let server = start(|c| c.cursor_page_bytes = 1024).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    let write = ExecArgs {
        statement: stmt("DELETE FROM t"),
        ..ExecArgs::default()
    };
    let refused = db.cursor(&write).await;
    assert_eq!(refused.err().map(|e| e.code), Some(ErrorCode::BadRequest));
    let bad = ExecArgs {
        statement: stmt("SELEC x"),
        ..ExecArgs::default()
    };
    let refused = db.cursor(&bad).await;
    assert_eq!(refused.err().map(|e| e.code), Some(ErrorCode::BadRequest));

    let reader = connect(&server, READER).await;
    let endless = ExecArgs {
        statement: stmt(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        ),
        ..ExecArgs::default()
    };
    let mut cursor = reader.cursor(&endless).await.expect("cursor");
    let first = cursor.next_page().await.expect("page").expect("rows");
    assert_eq!(first[0], [Value::Integer(1)]);
    drop(cursor);
    assert_eq!(scalar(&reader, "SELECT 3").await, 3);
    server.stop().await;
}

#[tokio::test]
async fn storage_is_wal_with_full_sync_by_default_and_normal_when_configured() {
    let full = start(|_| {}).await;
    let db = admin(&full).await;
    assert_eq!(scalar(&db, "PRAGMA synchronous").await, 2);
    assert_eq!(scalar(&db, "PRAGMA foreign_keys").await, 1);
    full.stop().await;
    let normal = start(|c| c.synchronous = backroom_db::Synchronous::Normal).await;
    let db = admin(&normal).await;
    assert_eq!(scalar(&db, "PRAGMA synchronous").await, 1);
    normal.stop().await;
}
