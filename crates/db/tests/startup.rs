//! The real `backroom-db` binary at start-up: it refuses unknown config keys
//! at their line, without a readiness line, and warns of failed TLS
//! handshakes.

use std::time::{Duration, Instant};

use backroom_daemon::testing::{Daemon, assert_config_key_refused};
use backroom_frame::ErrorCode;
use backroom_frame::client::{Client, ClientConfig};
use tokio::process::Command;

#[tokio::test]
async fn an_unknown_config_key_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("db.toml");
    let hash = backroom_frame::auth::hash_token("t");
    let users = format!(
        "readers = 2\n[[users]]\nname = \"ann\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n\
         password = \"x\"\n"
    );
    for (text, key, line) in [
        (
            "readers = 2\n\nidle_timout_secs = 5\n".to_owned(),
            "idle_timout_secs",
            3,
        ),
        (users, "password", 6),
    ] {
        let mut db = Command::new(env!("CARGO_BIN_EXE_backroom-db"));
        db.arg("--data").arg(dir.path().join("data"));
        assert_config_key_refused(db, &config, &text, key, line).await;
    }
}

#[tokio::test]
async fn a_failed_tls_handshake_is_a_warning_with_the_peer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let mut db = Command::new(env!("CARGO_BIN_EXE_backroom-db"));
    db.arg("--data")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env("RUST_LOG", "info");
    let daemon = Daemon::start_with_stderr(db, &["db"], stderr.into()).await;

    let plaintext = ClientConfig::new(daemon.addr("db"), backroom_api::db::SERVICE);
    let err = Client::connect(&plaintext).await.expect_err("refused");
    assert_eq!(err.code, ErrorCode::WrongService, "{err}");
    assert!(err.message.contains("speaks TLS"), "{err}");

    // The server warns after it has sent its TLS alert, so the line may
    // come a moment after the client's error.
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let log = std::fs::read_to_string(&stderr_path).expect("read stderr");
        if let Some(line) = log.lines().find(|l| l.contains("TLS handshake failed")) {
            break line.to_owned();
        }
        assert!(Instant::now() < deadline, "no TLS failure logged: {log:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
}
