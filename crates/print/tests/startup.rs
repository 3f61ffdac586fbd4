//! The real `backroom-print` binary at start-up: it announces readiness only
//! when it will serve, and refuses unknown config keys at their line.

use std::path::Path;

use backroom_daemon::testing::{
    assert_config_key_refused, assert_refuses_public_address_without_users,
};
use tokio::process::Command;

fn print(spool: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    command.arg("--spool").arg(spool);
    command
}

#[tokio::test]
async fn a_public_address_without_users_refuses_to_start_without_a_readiness_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_refuses_public_address_without_users(print(dir.path())).await;
}

#[tokio::test]
async fn an_unknown_config_key_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("print.toml");
    let spool = dir.path().join("spool");
    for (text, key, line) in [
        ("max_jobs = 10\nbogus_key = 1\n", "bogus_key", 2),
        (
            "[[printers]]\nname = \"laser\"\ndevice = \"sim:60\"\nduplex = true\n",
            "duplex",
            4,
        ),
    ] {
        assert_config_key_refused(print(&spool), &config, text, key, line).await;
    }
}
