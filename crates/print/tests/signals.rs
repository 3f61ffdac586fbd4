//! The real `backroom-print` binary on SIGHUP: it reopens `--log-file` and
//! reloads the users of `--config` for new connections.

use backroom_daemon::testing::{Hangup, assert_sighup_rotates};
use tokio::process::Command;

#[tokio::test]
async fn sighup_reopens_the_log_file_and_rotates_the_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut print = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    print
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .arg("--printer")
        .arg(format!("lp=file:{}", dir.path().join("out").display()));
    assert_sighup_rotates(print, dir.path(), &Hangup::new("print")).await;
}
