//! The real `backroom-files` binary at start-up: it announces readiness only
//! when it will serve, refuses unknown config keys at their line, and logs
//! refused logins as warnings without colour codes on a pipe.

use std::path::Path;

use backroom_daemon::testing::{
    Daemon, assert_config_key_refused, assert_refuses_public_address_without_users,
    assert_refuses_to_start,
};
use backroom_frame::ErrorCode;
use backroom_frame::client::{Client, ClientConfig};
use tokio::process::Command;

fn files(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
    command.arg("--root").arg(root);
    command
}

#[tokio::test]
async fn a_public_address_without_users_refuses_to_start_without_a_readiness_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_refuses_public_address_without_users(files(dir.path())).await;
}

#[tokio::test]
async fn invalid_limits_refuse_to_start_without_a_readiness_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("files.toml");
    std::fs::write(&config, "max_frame = 10\n").expect("write config");
    let mut command = files(&dir.path().join("root"));
    command
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let refusal = assert_refuses_to_start(command).await;
    assert!(refusal.stderr.contains("max_frame"), "{refusal:?}");
}

#[tokio::test]
async fn an_unknown_config_key_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("files.toml");
    let root = dir.path().join("root");
    for (text, key, line) in [
        (
            "root = \"/tmp\"\nidle_timout_secs = 5\n",
            "idle_timout_secs",
            2,
        ),
        (
            "[[rules]]\npath = \"a\"\nusers = [\"*\"]\naccess = \"read\"\nrecursive = true\n",
            "recursive",
            5,
        ),
    ] {
        assert_config_key_refused(files(&root), &config, text, key, line).await;
    }
}

#[tokio::test]
async fn a_refused_login_is_a_warning_with_the_peer_and_no_colour_codes_on_a_pipe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut command = files(&dir.path().join("root"));
    command
        .args(["--listen", "127.0.0.1:0", "--token", "right"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR");
    let daemon = Daemon::start_with_stderr(command, &["files"], stderr.into()).await;
    let mut config = ClientConfig::new(daemon.addr("files"), backroom_api::files::SERVICE);
    config.token = Some("wrong".into());
    let err = Client::connect(&config).await.expect_err("refused");
    assert_eq!(err.code, ErrorCode::Unauthorized, "{err}");

    // The server logs a refusal before it sends it, so it is there now.
    let log = std::fs::read_to_string(&stderr_path).expect("read stderr");
    let line = log
        .lines()
        .find(|line| line.contains("handshake refused"))
        .expect("the refusal line");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("the token is not valid"), "{line}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes on a pipe: {log:?}"
    );
}
