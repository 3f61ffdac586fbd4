//! Durability of the real binary: every acknowledged commit survives a
//! SIGKILL under write load, and the server restarts on the same data.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backroom_api::db::{DbClient, Statement, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const CLIENTS: i64 = 8;
/// Acknowledged rows to reach before the kill.
const BEFORE_KILL: usize = 2000;

/// Starts the binary on a free port and reads its readiness line.
async fn spawn(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backroom-db"))
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn backroom-db");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("readiness in time")
        .expect("read stdout")
        .expect("a readiness line");
    let addr = line
        .strip_prefix("listening db ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
        .to_owned();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_a_sigkill_under_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let (mut child, addr) = spawn(&data).await;
    let setup = DbClient::connect(&addr, None).await.expect("connect");
    setup
        .execute_main(Statement::new(
            "CREATE TABLE acked (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
        ))
        .await
        .expect("create");

    let acked = Arc::new(Mutex::new(Vec::new()));
    let (count_tx, mut count_rx) = watch::channel(0usize);
    let count_tx = Arc::new(count_tx);
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let db = DbClient::connect(&addr, None).await.expect("connect");
        let acked = acked.clone();
        let count_tx = count_tx.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let id = c * 1_000_000 + i;
                let insert = Statement::new("INSERT INTO acked VALUES (?, ?)")
                    .bind(id)
                    .bind(vec![c as u8; 512]);
                if db.execute_main(insert).await.is_err() {
                    // The server is gone: this write was never acknowledged.
                    return;
                }
                let total = {
                    let mut acked = acked.lock().expect("lock");
                    acked.push(id);
                    acked.len()
                };
                count_tx.send_replace(total);
            }
        }));
    }
    count_rx
        .wait_for(|n| *n >= BEFORE_KILL)
        .await
        .expect("writers make progress");
    // SIGKILL: no shutdown, no flush, no checkpoint.
    child.start_kill().expect("kill");
    child.wait().await.expect("reaped");
    for writer in writers {
        writer.await.expect("writer task");
    }
    let acked: Vec<i64> = acked.lock().expect("lock").clone();
    assert!(acked.len() >= BEFORE_KILL);

    let (_child, addr) = spawn(&data).await;
    let db = DbClient::connect(&addr, None).await.expect("reconnect");
    let mut stored = HashSet::new();
    let mut cursor = db
        .cursor(&backroom_api::db::ExecArgs {
            statement: Statement::new("SELECT id FROM acked"),
            ..Default::default()
        })
        .await
        .expect("cursor");
    while let Some(page) = cursor.next_page().await.expect("page") {
        for row in page {
            match row.as_slice() {
                [Value::Integer(id)] => stored.insert(*id),
                other => panic!("unexpected row {other:?}"),
            };
        }
    }
    let lost: Vec<i64> = acked
        .into_iter()
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
}

#[tokio::test]
async fn the_binary_refuses_a_config_with_unknown_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("db.toml");
    std::fs::write(&config, "synchronus = \"normal\"\n").expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_backroom-db"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("synchronus"), "{stderr}");
}
