//! The real `backroom-db` binary at start-up: it refuses unknown config keys
//! at their line, without a readiness line.

use backroom_daemon::testing::assert_config_key_refused;
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
