//! The real `backroom-proxy` binary on SIGHUP: it reopens `--log-file`,
//! reloads the admin port's users of `--config` for new connections, and
//! reloads the ACL and proxy users as the admin `reload` method does.

use backroom_daemon::testing::{Hangup, assert_sighup_rotates};
use tokio::process::Command;

#[tokio::test]
async fn sighup_reopens_the_log_file_and_rotates_the_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_backroom-proxy"));
    proxy.args(["--admin", "127.0.0.1:0"]);
    let hangup = Hangup {
        port: "admin",
        before: &["proxy"],
        serving: "proxy serving",
        reloaded: &["reloaded the ACL and proxy users"],
        ..Hangup::new("proxy")
    };
    assert_sighup_rotates(proxy, dir.path(), &hangup).await;
}
