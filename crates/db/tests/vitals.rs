//! The database server's vital signs in `info`: statements per second, open
//! transactions, the shared writer's queue and sessions with a connection of
//! their own.

mod common;

use std::time::Duration;

use backroom_api::db::{BeginArgs, DbClient, vital};
use common::{admin, exec, query, start};

async fn value(client: &DbClient, name: &str) -> f64 {
    let info = client.client().info().await.expect("info");
    info.vital(name)
        .unwrap_or_else(|| panic!("no vital sign {name} in {:?}", info.vitals))
        .value
}

#[tokio::test]
async fn statements_and_a_transaction_move_the_vital_signs() {
    let server = start(|_| {}).await;
    let db = admin(&server).await;
    assert_eq!(value(&db, vital::STATEMENTS).await, 0.0);
    assert_eq!(value(&db, vital::TRANSACTIONS).await, 0.0);
    assert_eq!(value(&db, vital::SESSIONS).await, 0.0);
    exec(&db, "CREATE TABLE t (x)").await;
    query(&db, "SELECT count(*) FROM t").await;
    assert!(value(&db, vital::STATEMENTS).await > 0.0);

    db.begin(&BeginArgs::default()).await.expect("begin");
    assert_eq!(value(&db, vital::TRANSACTIONS).await, 1.0);
    assert_eq!(value(&db, vital::SESSIONS).await, 1.0, "its own connection");
    db.commit().await.expect("commit");
    assert_eq!(value(&db, vital::TRANSACTIONS).await, 0.0);
    server.stop().await;
}

#[tokio::test]
async fn a_write_behind_a_transaction_is_in_the_writer_queue() {
    let server = start(|_| {}).await;
    let holder = admin(&server).await;
    exec(&holder, "CREATE TABLE t (x)").await;
    holder.begin(&BeginArgs::default()).await.expect("begin");
    let writer = admin(&server).await;
    let waiting = tokio::spawn(async move {
        exec(&writer, "INSERT INTO t VALUES (1)").await;
    });
    let observer = admin(&server).await;
    // The write reaches the server in its own time: each `info` is a round
    // trip, so this waits without sleeping.
    let queued = tokio::time::timeout(Duration::from_secs(10), async {
        while value(&observer, vital::QUEUE).await < 1.0 {}
    })
    .await;
    assert!(
        queued.is_ok(),
        "the write never queued behind the transaction"
    );
    holder.commit().await.expect("commit");
    waiting.await.expect("the write ran");
    assert_eq!(value(&observer, vital::QUEUE).await, 0.0);
    server.stop().await;
}
