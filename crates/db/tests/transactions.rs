//! Interactive transactions and concurrent writers: the travel agent, the
//! rollback of abandoned and idle transactions, isolation and group commit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backroom_api::db::{BeginArgs, DbClient, Statement, TxMode, Value};
use backroom_frame::ErrorCode;
use common::{WRITER, admin, connect, exec, query, scalar, start, stmt};
use tokio::task::JoinSet;

const CLIENTS: usize = 50;
const SEATS: i64 = 10;

/// A holiday with its last seats, and a table of who got one.
async fn holiday(db: &DbClient) {
    exec(
        db,
        "CREATE TABLE holiday (id INTEGER PRIMARY KEY, seats INTEGER NOT NULL CHECK (seats >= 0))",
    )
    .await;
    exec(db, "CREATE TABLE booking (client INTEGER UNIQUE)").await;
    db.execute_main(stmt("INSERT INTO holiday VALUES (1, ?)").bind(SEATS))
        .await
        .expect("seed");
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Booked,
    SoldOut,
}

/// Books with one conditional UPDATE: the seat count is checked and taken in
/// the same statement.
async fn book_conditionally(db: DbClient, client: i64) -> Outcome {
    let batch = backroom_api::db::BatchArgs {
        statements: vec![
            stmt("UPDATE holiday SET seats = seats - 1 WHERE id = 1 AND seats > 0"),
            stmt("INSERT INTO booking SELECT ?1 WHERE changes() = 1").bind(client),
        ],
        ..Default::default()
    };
    let results = db.batch(&batch).await.expect("booking batch");
    match results[0].rows_affected {
        1 => Outcome::Booked,
        0 => Outcome::SoldOut,
        n => panic!("{n} rows updated"),
    }
}

/// Books inside BEGIN IMMEDIATE: read the seats, decide, write, commit.
async fn book_in_transaction(db: DbClient, client: i64) -> Outcome {
    let begin = BeginArgs {
        mode: TxMode::Immediate,
        timeout_ms: Some(60_000),
        ..BeginArgs::default()
    };
    db.begin(&begin).await.expect("begin");
    let seats = scalar(&db, "SELECT seats FROM holiday WHERE id = 1").await;
    if seats == 0 {
        db.rollback().await.expect("rollback");
        return Outcome::SoldOut;
    }
    exec(&db, "UPDATE holiday SET seats = seats - 1 WHERE id = 1").await;
    db.execute_main(stmt("INSERT INTO booking VALUES (?)").bind(client))
        .await
        .expect("record booking");
    db.commit().await.expect("commit");
    Outcome::Booked
}

async fn race<F, Fut>(book: F)
where
    F: Fn(DbClient, i64) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    holiday(&db).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(&server, WRITER).await);
    }
    let mut set = JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        set.spawn(book(client, i as i64));
    }
    let mut booked = 0;
    let mut sold_out = 0;
    while let Some(outcome) = set.join_next().await {
        match outcome.expect("client task") {
            Outcome::Booked => booked += 1,
            Outcome::SoldOut => sold_out += 1,
        }
    }
    assert_eq!(booked, SEATS);
    assert_eq!(sold_out, CLIENTS as i64 - SEATS);
    assert_eq!(scalar(&db, "SELECT seats FROM holiday").await, 0);
    assert_eq!(scalar(&db, "SELECT count(*) FROM booking").await, SEATS);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn travel_agent_sells_exactly_ten_seats_with_a_conditional_update() {
    race(book_conditionally).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn travel_agent_sells_exactly_ten_seats_with_immediate_transactions() {
    race(book_in_transaction).await;
}

#[tokio::test]
async fn uncommitted_writes_are_invisible_to_others_until_commit() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    let other = admin(&server).await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    exec(&db, "INSERT INTO t VALUES (1)").await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 1);
    assert_eq!(scalar(&other, "SELECT count(*) FROM t").await, 0);
    db.commit().await.expect("commit");
    assert_eq!(scalar(&other, "SELECT count(*) FROM t").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_transaction_is_rolled_back_when_its_connection_drops() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    let leaver = admin(&server).await;
    leaver.begin(&BeginArgs::default()).await.expect("begin");
    exec(&leaver, "INSERT INTO t VALUES ('abandoned')").await;
    drop(leaver);
    // This write waits for the writer, which the abandoned transaction holds
    // until the server notices the connection is gone.
    exec(&db, "INSERT INTO t VALUES ('kept')").await;
    let rows = query(&db, "SELECT x FROM t").await.rows;
    assert_eq!(rows, [[Value::Text("kept".into())]]);
    server.stop().await;
}

#[tokio::test]
async fn an_idle_transaction_is_rolled_back_and_the_next_use_says_so() {
    let server = start(|c| c.tx_idle_timeout = Duration::from_millis(300)).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    exec(&db, "INSERT INTO t VALUES (1)").await;
    // Another client's write is served once the idle transaction expires.
    let other = admin(&server).await;
    exec(&other, "INSERT INTO t VALUES (2)").await;
    let err = db
        .execute_main(stmt("INSERT INTO t VALUES (3)"))
        .await
        .expect_err("expired");
    assert_eq!(err.code, ErrorCode::Timeout);
    assert_eq!(err.message, "transaction rolled back after 300 ms idle");
    let err = db.commit().await.expect_err("expired");
    assert_eq!(err.message, "transaction rolled back after 300 ms idle");
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 1);
    db.begin(&BeginArgs::default())
        .await
        .expect("a new transaction after the old one is cleared");
    db.rollback().await.expect("rollback");
    server.stop().await;
}

#[tokio::test]
async fn one_transaction_per_connection_and_commit_needs_one() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    assert_eq!(
        db.commit().await.expect_err("none").code,
        ErrorCode::Conflict
    );
    db.begin(&BeginArgs::default()).await.expect("begin");
    let err = db.begin(&BeginArgs::default()).await.expect_err("twice");
    assert_eq!(err.code, ErrorCode::Conflict);
    db.rollback().await.expect("rollback");
    server.stop().await;
}

#[tokio::test]
async fn a_statement_error_inside_a_transaction_keeps_the_transaction() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x UNIQUE)").await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    exec(&db, "INSERT INTO t VALUES (1)").await;
    db.execute_main(stmt("INSERT INTO t VALUES (1)"))
        .await
        .expect_err("duplicate");
    db.execute_main(stmt("SELEC")).await.expect_err("syntax");
    exec(&db, "INSERT INTO t VALUES (2)").await;
    db.commit().await.expect("commit");
    assert_eq!(scalar(&db, "SELECT sum(x) FROM t").await, 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_commit_together_and_a_failing_one_fails_alone() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x INTEGER PRIMARY KEY)").await;
    let clients: Vec<Arc<DbClient>> = {
        let mut v = Vec::new();
        for _ in 0..8 {
            v.push(Arc::new(connect(&server, WRITER).await));
        }
        v
    };
    let mut set = JoinSet::new();
    for (c, client) in clients.iter().enumerate() {
        for i in 0..50i64 {
            let client = client.clone();
            // Every key 0 is inserted by all clients: exactly one succeeds.
            let key = if i == 0 { 0 } else { (c as i64) * 1000 + i };
            set.spawn(async move {
                client
                    .execute_main(Statement::new("INSERT INTO t VALUES (?)").bind(key))
                    .await
                    .map(|_| key)
            });
        }
    }
    let mut ok = 0;
    let mut conflicts = 0;
    while let Some(done) = set.join_next().await {
        match done.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(e.code, ErrorCode::Conflict, "{e}");
                conflicts += 1;
            }
        }
    }
    assert_eq!(conflicts, 7);
    assert_eq!(ok, 8 * 50 - 7);
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 8 * 50 - 7);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_rolls_back_open_transactions_and_keeps_commits() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    exec(&db, "INSERT INTO t VALUES ('committed')").await;
    db.begin(&BeginArgs::default()).await.expect("begin");
    exec(&db, "INSERT INTO t VALUES ('open')").await;
    let dir = server.stop_keeping_data().await;
    drop(db);
    let server = common::start_in(dir, |_| {}).await;
    let db = admin(&server).await;
    let rows = query(&db, "SELECT x FROM t").await.rows;
    assert_eq!(rows, [[Value::Text("committed".into())]]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_ends_the_group_transaction_never_fails_the_others() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x INTEGER PRIMARY KEY)").await;
    exec(&db, "INSERT INTO t VALUES (0)").await;
    let mut set = JoinSet::new();
    // One client keeps ending the shared transaction with a conflicting
    // INSERT OR ROLLBACK, while eight others write.
    let spoiler = Arc::new(connect(&server, WRITER).await);
    for _ in 0..100 {
        let spoiler = spoiler.clone();
        set.spawn(async move {
            let err = spoiler
                .execute_main(stmt("INSERT OR ROLLBACK INTO t VALUES (0)"))
                .await
                .expect_err("conflicts");
            assert_eq!(err.code, ErrorCode::Conflict, "{err}");
            None
        });
    }
    for c in 1..=8i64 {
        let client = Arc::new(connect(&server, WRITER).await);
        for i in 0..100i64 {
            let client = client.clone();
            set.spawn(async move {
                let key = c * 1000 + i;
                client
                    .execute_main(Statement::new("INSERT INTO t VALUES (?)").bind(key))
                    .await
                    .map_err(|e| e.to_string())
                    .err()
            });
        }
    }
    let mut failed = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Some(error) = done.expect("task") {
            failed.push(error);
        }
    }
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 1 + 8 * 100);
    server.stop().await;
}
