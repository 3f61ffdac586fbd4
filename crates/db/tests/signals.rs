//! The real `backroom-db` binary on SIGHUP: it reopens `--log-file` and
//! reloads the users of `--config` for new connections.

use backroom_daemon::testing::{Hangup, assert_sighup_rotates};
use tokio::process::Command;

#[tokio::test]
async fn sighup_reopens_the_log_file_and_rotates_the_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut db = Command::new(env!("CARGO_BIN_EXE_backroom-db"));
    db.arg("--data").arg(dir.path().join("data"));
    assert_sighup_rotates(db, dir.path(), &Hangup::new("db")).await;
}
