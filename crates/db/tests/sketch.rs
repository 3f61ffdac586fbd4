//! The Python client sketch of `docs/protocol.md`, copied from the page,
//! against the real `backroom-db` binary: a query with native values.

use backroom_daemon::testing::{Daemon, run_python_sketch};
use tokio::process::Command;

#[tokio::test]
async fn the_python_sketch_queries_with_native_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut db = Command::new(env!("CARGO_BIN_EXE_backroom-db"));
    db.arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    let daemon = Daemon::start(db, &["db"]).await;
    let printed = run_python_sketch(daemon.addr("db"), "db").await;
    assert!(
        printed.contains("row: [1, 'a', None, b'\\x00', 1.5]\n"),
        "{printed}"
    );
}
