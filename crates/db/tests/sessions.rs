//! The session model: whatever a session does to its connection's state
//! (TEMP objects, PRAGMA settings, ATTACH, an open transaction) is its own,
//! and every answer is labelled with the columns it really has.

mod common;

use backroom_api::db::{BeginArgs, DbClient, ExecArgs, QueryResult, SchemaArgs, Statement, Value};
use backroom_frame::ErrorCode;
use common::{WRITER, admin, connect, exec, query, scalar, start, stmt};
use tokio::task::JoinSet;

fn names(result: &backroom_api::db::QueryResult) -> Vec<String> {
    result.columns.iter().map(|c| c.name.clone()).collect()
}

fn args(sql: &str) -> ExecArgs {
    ExecArgs {
        statement: stmt(sql),
        ..ExecArgs::default()
    }
}

#[tokio::test]
async fn columns_follow_a_table_recreated_in_another_order() {
    // One reader, so the statement it cached before the change is the one
    // asked again after it.
    let server = start(|c| c.readers = 1).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE acct (owner TEXT, balance INTEGER)").await;
    exec(&db, "INSERT INTO acct VALUES ('ann', 10)").await;
    assert_eq!(
        names(&query(&db, "SELECT * FROM acct").await),
        ["owner", "balance"]
    );
    exec(&db, "DROP TABLE acct").await;
    exec(&db, "CREATE TABLE acct (balance INTEGER, owner TEXT)").await;
    exec(&db, "INSERT INTO acct VALUES (10, 'ann')").await;
    for _ in 0..3 {
        let result = query(&db, "SELECT * FROM acct").await;
        assert_eq!(names(&result), ["balance", "owner"]);
        assert_eq!(
            result.rows,
            [[Value::Integer(10), Value::Text("ann".into())]]
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn columns_follow_dropped_added_and_renamed_columns() {
    let server = start(|c| c.readers = 1).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE w (a, b, c)").await;
    exec(&db, "INSERT INTO w VALUES (1, 2, 3)").await;
    assert_eq!(names(&query(&db, "SELECT * FROM w").await), ["a", "b", "c"]);
    exec(&db, "ALTER TABLE w DROP COLUMN b").await;
    let result = query(&db, "SELECT * FROM w").await;
    assert_eq!(names(&result), ["a", "c"]);
    assert_eq!(result.rows, [[Value::Integer(1), Value::Integer(3)]]);
    exec(&db, "ALTER TABLE w ADD COLUMN d DEFAULT 4").await;
    assert_eq!(names(&query(&db, "SELECT * FROM w").await), ["a", "c", "d"]);
    exec(&db, "ALTER TABLE w RENAME COLUMN a TO z").await;
    assert_eq!(names(&query(&db, "SELECT * FROM w").await), ["z", "c", "d"]);
    // The writer's cached statements follow too.
    exec(&db, "SELECT * FROM w").await;
    exec(&db, "ALTER TABLE w DROP COLUMN d").await;
    assert_eq!(names(&exec(&db, "SELECT * FROM w").await), ["z", "c"]);
    server.stop().await;
}

#[tokio::test]
async fn reindex_runs_through_query() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    exec(&db, "CREATE INDEX ti ON t (x)").await;
    query(&db, "REINDEX ti").await;
    server.stop().await;
}

#[tokio::test]
async fn a_temporary_view_is_selected_and_dropped_through_query() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    query(&db, "CREATE TEMP VIEW view2 AS SELECT 42 AS answer").await;
    for _ in 0..4 {
        assert_eq!(scalar(&db, "SELECT answer FROM view2").await, 42);
    }
    query(&db, "DROP VIEW view2").await;
    let err = db
        .query_main(stmt("SELECT answer FROM view2"))
        .await
        .expect_err("dropped");
    assert!(err.message.contains("no such table"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_cursor_in_a_transaction_reads_the_transactions_rows() {
    let server = start(|_| {}).await;
    let db = connect(&server, WRITER).await;
    exec(&db, "CREATE TABLE big (x)").await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    exec(
        &db,
        "INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
         WHERE x < 5000) SELECT x FROM c",
    )
    .await;
    let mut cursor = db.cursor(&args("SELECT x FROM big")).await.expect("cursor");
    let mut seen = 0;
    while let Some(page) = cursor.next_page().await.expect("page") {
        seen += page.len();
    }
    assert_eq!(seen, 5000);
    exec(&db, "CREATE TABLE fresh (y)").await;
    let described = db
        .describe(&args("SELECT y FROM fresh"))
        .await
        .expect("describe sees the transaction's table");
    assert_eq!(described.columns[0].name, "y");
    let schema = db.schema(&SchemaArgs::default()).await.expect("schema");
    assert!(schema.tables.iter().any(|t| t.name == "fresh"));
    db.rollback().await.expect("rollback");
    assert_eq!(scalar(&db, "SELECT count(*) FROM big").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_temporary_trigger_fires_for_its_own_session_only() {
    let server = start(|_| {}).await;
    let spy = admin(&server).await;
    let other = connect(&server, WRITER).await;
    exec(&spy, "CREATE TABLE t (x)").await;
    exec(&spy, "CREATE TABLE seen (x)").await;
    exec(
        &spy,
        "CREATE TEMP TRIGGER spy AFTER INSERT ON main.t \
         BEGIN INSERT INTO seen VALUES (new.x); END",
    )
    .await;
    exec(&other, "INSERT INTO t VALUES (1)").await;
    assert_eq!(scalar(&other, "SELECT count(*) FROM seen").await, 0);
    exec(&spy, "INSERT INTO t VALUES (2)").await;
    assert_eq!(scalar(&other, "SELECT count(*) FROM seen").await, 1);
    let schema = spy.schema(&SchemaArgs::default()).await.expect("schema");
    assert!(
        schema.triggers.iter().any(|t| t.name == "spy"),
        "{schema:?}"
    );
    let theirs = other.schema(&SchemaArgs::default()).await.expect("schema");
    assert!(theirs.triggers.is_empty(), "{theirs:?}");
    server.stop().await;
}

#[tokio::test]
async fn query_only_set_by_one_session_leaves_the_others_writing() {
    let server = start(|_| {}).await;
    let careful = admin(&server).await;
    let other = connect(&server, WRITER).await;
    exec(&careful, "CREATE TABLE t (x)").await;
    exec(&careful, "PRAGMA query_only = ON").await;
    for i in 0..4 {
        other
            .execute_main(stmt("INSERT INTO t VALUES (?)").bind(i))
            .await
            .expect("the other session still writes");
    }
    let err = careful
        .execute_main(stmt("INSERT INTO t VALUES (9)"))
        .await
        .expect_err("this session is query-only");
    assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
    assert_eq!(scalar(&careful, "SELECT count(*) FROM t").await, 4);
    server.stop().await;
}

async fn like(db: &DbClient) -> i64 {
    scalar(db, "SELECT 'a' LIKE 'A'").await
}

#[tokio::test]
async fn case_sensitive_like_belongs_to_the_session_that_set_it() {
    let server = start(|_| {}).await;
    let strict = admin(&server).await;
    let other = admin(&server).await;
    query(&strict, "PRAGMA case_sensitive_like = ON").await;
    for _ in 0..8 {
        assert_eq!(like(&strict).await, 0);
        assert_eq!(like(&other).await, 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn attach_reaches_the_servers_own_databases_by_name_only() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    db.create_database("other").await.expect("create");
    db.execute(&common::on("other", stmt("CREATE TABLE t (a)")))
        .await
        .expect("table in other");
    exec(&db, "ATTACH 'other' AS o").await;
    exec(&db, "INSERT INTO o.t VALUES (1)").await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM o.t").await, 1);
    let other = admin(&server).await;
    let err = other
        .query_main(stmt("SELECT count(*) FROM o.t"))
        .await
        .expect_err("the attachment is the first session's");
    assert!(err.message.contains("no such table"), "{err}");
    let outside = server.dir.path().join("outside.db");
    for sql in [
        format!("ATTACH '{}' AS x", outside.display()),
        "ATTACH '../other' AS x".to_owned(),
        "ATTACH 'missing' AS x".to_owned(),
        "ATTACH 'oth' || 'er' AS x".to_owned(),
    ] {
        let err = db.execute_main(stmt(&sql)).await.expect_err(&sql);
        assert_eq!(err.code, ErrorCode::Forbidden, "{sql}: {err}");
        assert!(err.message.contains("never a path"), "{sql}: {err}");
    }
    assert!(!outside.exists());
    db.begin(&BeginArgs::default()).await.expect("begin");
    let err = db
        .execute_main(stmt(&format!("ATTACH '{}' AS y", outside.display())))
        .await
        .expect_err("refused inside a transaction too");
    assert_eq!(err.code, ErrorCode::Forbidden, "{err}");
    db.rollback().await.expect("rollback");
    assert!(!outside.exists());
    server.stop().await;
}

#[tokio::test]
async fn a_sessions_temporary_table_ends_with_it() {
    let server = start(|_| {}).await;
    let first = admin(&server).await;
    exec(&first, "CREATE TEMP TABLE scratch (x)").await;
    exec(&first, "INSERT INTO scratch VALUES (1)").await;
    assert_eq!(scalar(&first, "SELECT count(*) FROM scratch").await, 1);
    drop(first);
    let second = admin(&server).await;
    let err = second
        .query_main(stmt("SELECT count(*) FROM scratch"))
        .await
        .expect_err("not the second session's");
    assert!(err.message.contains("no such table"), "{err}");
    server.stop().await;
}

/// Sessions with a TEMP table and PRAGMA settings of their own.
const PINNED: i64 = 16;
/// Sessions with neither, on the pooled path, working alongside.
const POOLED: i64 = 4;
/// Operations per session: a bounded count, not a time; a multiple of 12.
const ROUNDS: i64 = 120;

/// Runs `statement` through `query` and checks that its columns are those a
/// fresh `describe` reports.
async fn described(db: &DbClient, statement: Statement) -> QueryResult {
    let sql = statement.sql.clone();
    let result = db
        .query_main(statement)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let fresh = db.describe(&args(&sql)).await.expect("describe");
    let described: Vec<String> = fresh.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names(&result), described, "{sql}");
    result
}

/// One pinned session: its TEMP table `mine` (named like everyone's, with a
/// column named after the session) and its LIKE setting must stay its own.
async fn pinned_session(db: DbClient, s: i64) {
    let column = format!("c{s}");
    exec(
        &db,
        &format!("CREATE TEMP TABLE mine (id INTEGER PRIMARY KEY, {column} INTEGER)"),
    )
    .await;
    let strict = s % 2 == 0;
    let setting = if strict { "ON" } else { "OFF" };
    exec(&db, &format!("PRAGMA case_sensitive_like = {setting}")).await;
    let mut mine = 0;
    for i in 0..ROUNDS {
        match i % 4 {
            0 => {
                exec(&db, &format!("INSERT INTO mine ({column}) VALUES ({s})")).await;
                mine += 1;
                db.execute_main(stmt("INSERT INTO shared VALUES (?, ?)").bind(s).bind(i))
                    .await
                    .expect("shared insert");
            }
            1 => {
                let result = described(&db, stmt("SELECT * FROM mine")).await;
                assert_eq!(names(&result), ["id", column.as_str()]);
                assert_eq!(result.rows.len(), mine);
                assert!(result.rows.iter().all(|r| r[1] == Value::Integer(s)));
            }
            2 => {
                let result = described(&db, stmt("SELECT 'a' LIKE 'A' AS folded")).await;
                assert_eq!(
                    result.rows,
                    [[Value::Integer(i64::from(!strict))]],
                    "session {s}"
                );
            }
            _ => {
                db.begin(&BeginArgs::default()).await.expect("begin");
                exec(&db, &format!("INSERT INTO mine ({column}) VALUES ({s})")).await;
                mine += 1;
                let result = described(&db, stmt("SELECT count(*) AS n FROM mine")).await;
                assert_eq!(result.rows, [[Value::Integer(mine as i64)]]);
                db.commit().await.expect("commit");
            }
        }
    }
}

/// One pooled session: it sees no TEMP table and SQLite's default LIKE.
async fn pooled_session(db: DbClient, s: i64) {
    for i in 0..ROUNDS {
        match i % 3 {
            0 => {
                db.execute_main(stmt("INSERT INTO shared VALUES (?, ?)").bind(s).bind(i))
                    .await
                    .expect("shared insert");
            }
            1 => {
                let result = described(&db, stmt("SELECT 'a' LIKE 'A' AS folded")).await;
                assert_eq!(result.rows, [[Value::Integer(1)]], "pooled session {s}");
            }
            _ => {
                let err = db
                    .query_main(stmt("SELECT * FROM mine"))
                    .await
                    .expect_err("no TEMP table of another session");
                assert!(err.message.contains("no such table"), "{err}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_sessions_never_see_each_others_state() {
    let server = start(|_| {}).await;
    let setup = admin(&server).await;
    exec(
        &setup,
        "CREATE TABLE shared (session INTEGER, round INTEGER)",
    )
    .await;
    let mut set = JoinSet::new();
    for s in 0..PINNED {
        set.spawn(pinned_session(admin(&server).await, s));
    }
    for s in PINNED..PINNED + POOLED {
        set.spawn(pooled_session(connect(&server, WRITER).await, s));
    }
    while let Some(done) = set.join_next().await {
        done.expect("a session's checks");
    }
    // ROUNDS is a multiple of 12, so these divisions are exact.
    let pinned_writes = ROUNDS / 4;
    let pooled_writes = ROUNDS / 3;
    assert_eq!(
        scalar(&setup, "SELECT count(*) FROM shared").await,
        PINNED * pinned_writes + POOLED * pooled_writes
    );
    server.stop().await;
}
