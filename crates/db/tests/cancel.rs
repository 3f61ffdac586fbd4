//! Cancelling running statements: by the client, and by their timeout.

mod common;

use std::time::Duration;

use backroom_api::db::ExecArgs;
use backroom_frame::ErrorCode;
use common::{admin, exec, scalar, start, stmt};

/// Never ends on its own.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[tokio::test]
async fn a_cancelled_query_frees_its_reader_and_the_connection_stays_usable() {
    // One reader: the next read can only run once the endless one stopped.
    let server = start(|c| c.readers = 1).await;
    let db = admin(&server).await;
    let endless = db.query_main(stmt(ENDLESS));
    // Dropping the request future cancels it on the server.
    let cut = tokio::time::timeout(Duration::from_millis(300), endless).await;
    assert!(cut.is_err(), "the endless query cannot finish");
    let next = tokio::time::timeout(Duration::from_secs(20), scalar(&db, "SELECT 5")).await;
    assert_eq!(next.expect("the reader was freed"), 5);
    server.stop().await;
}

#[tokio::test]
async fn a_query_past_its_timeout_is_interrupted_with_a_clear_error() {
    let server = start(|c| c.readers = 1).await;
    let db = admin(&server).await;
    let args = ExecArgs {
        statement: stmt(ENDLESS),
        timeout_ms: Some(200),
        ..ExecArgs::default()
    };
    let err = db.query(&args).await.expect_err("times out");
    assert_eq!(err.code, ErrorCode::Timeout);
    assert!(err.message.contains("200 ms timeout"), "{err}");
    assert_eq!(scalar(&db, "SELECT 6").await, 6);
    server.stop().await;
}

#[tokio::test]
async fn a_runaway_write_times_out_and_the_writer_keeps_serving() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE t (x)").await;
    let args = ExecArgs {
        statement: stmt(
            "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT x FROM c",
        ),
        timeout_ms: Some(200),
        ..ExecArgs::default()
    };
    let err = db.execute(&args).await.expect_err("times out");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    exec(&db, "INSERT INTO t VALUES (-1)").await;
    assert_eq!(scalar(&db, "SELECT count(*) FROM t").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_cursor_past_its_timeout_is_interrupted_with_a_clear_error() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let rows = ExecArgs {
        statement: stmt(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
        ),
        timeout_ms: Some(300),
        ..ExecArgs::default()
    };
    let mut cursor = db.cursor(&rows).await.expect("the first rows come at once");
    let err = loop {
        match cursor.next_page().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("an endless statement ended"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert!(err.message.contains("300 ms timeout"), "{err}");
    // A statement that has no first row before its deadline fails at once.
    let count = ExecArgs {
        statement: stmt(ENDLESS),
        timeout_ms: Some(300),
        ..ExecArgs::default()
    };
    let err = db.cursor(&count).await.err().expect("times out");
    assert_eq!(err.code, ErrorCode::Timeout, "{err}");
    assert_eq!(scalar(&db, "SELECT 7").await, 7);
    server.stop().await;
}
