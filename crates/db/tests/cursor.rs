//! Cursors stream large results in pages while the server's memory stays
//! bounded. This file is its own test binary, so the resident set measured
//! belongs to this test alone.

mod common;

use backroom_api::db::{BatchArgs, ExecArgs, Value};
use common::{admin, exec, start, stmt};

const ROWS: i64 = 1_000_000;

/// The resident set of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_walks_a_million_rows_in_bounded_memory() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    exec(&db, "CREATE TABLE big (id INTEGER PRIMARY KEY, pad TEXT)").await;
    let fill = BatchArgs {
        statements: vec![
            stmt(
                "INSERT INTO big WITH RECURSIVE c(x) AS \
                 (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?1) \
                 SELECT x, printf('%.60d', x) FROM c",
            )
            .bind(ROWS),
        ],
        timeout_ms: Some(120_000),
        ..BatchArgs::default()
    };
    db.batch(&fill).await.expect("fill");
    let before = rss();
    let mut cursor = db
        .cursor(&ExecArgs {
            statement: stmt("SELECT id, pad FROM big ORDER BY id"),
            ..ExecArgs::default()
        })
        .await
        .expect("cursor");
    assert_eq!(cursor.columns[0].name, "id");
    let mut seen = 0i64;
    let mut peak = before;
    let mut pages = 0;
    while let Some(page) = cursor.next_page().await.expect("page") {
        for row in &page {
            seen += 1;
            assert_eq!(row[0], Value::Integer(seen));
        }
        pages += 1;
        if pages % 16 == 0 {
            peak = peak.max(rss());
        }
    }
    assert_eq!(seen, ROWS);
    // The rows are about 70 MB on the wire; a server that buffered them
    // would grow by at least that much.
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 40 * 1024 * 1024,
        "the resident set grew by {growth} bytes"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_larger_than_a_frame_reads_back_through_a_cursor() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    let max_frame = db.client().welcome().limits.max_frame as i64;
    let size = max_frame + 4 * 1024 * 1024;
    exec(&db, "CREATE TABLE b (x BLOB)").await;
    db.execute_main(stmt("INSERT INTO b VALUES (randomblob(?))").bind(size))
        .await
        .expect("stored");
    let whole = db
        .query_main(stmt("SELECT x FROM b"))
        .await
        .expect_err("too large for one reply");
    assert_eq!(whole.code, backroom_frame::ErrorCode::TooLarge, "{whole}");
    let mut cursor = db
        .cursor(&ExecArgs {
            statement: stmt("SELECT x, length(x) FROM b"),
            ..ExecArgs::default()
        })
        .await
        .expect("cursor");
    let page = cursor.next_page().await.expect("page").expect("a row");
    match page[0].as_slice() {
        [Value::Blob(blob), Value::Integer(length)] => {
            assert_eq!(blob.len() as i64, size);
            assert_eq!(*length, size);
        }
        other => panic!("{other:?}"),
    }
    assert!(cursor.next_page().await.expect("end").is_none());
    server.stop().await;
}
