//! The real `backroom-print` binary at start-up: it announces readiness only
//! when it will serve, and refuses unknown config keys at their line.

use std::path::Path;

use backroom_daemon::testing::assert_refuses_to_start;
use tokio::process::Command;

fn print(spool: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    command.arg("--spool").arg(spool);
    command
}

#[tokio::test]
async fn a_public_address_without_users_refuses_to_start_without_a_readiness_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = print(dir.path());
    command.args(["--listen", "0.0.0.0:0"]);
    let refusal = assert_refuses_to_start(command).await;
    assert!(refusal.stderr.contains("--insecure"), "{refusal:?}");
}

#[tokio::test]
async fn an_unknown_config_key_is_refused_at_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("print.toml");
    for (text, key, line) in [
        ("max_jobs = 10\nbogus_key = 1\n", "bogus_key", 2),
        (
            "[[printers]]\nname = \"laser\"\ndevice = \"sim:60\"\nduplex = true\n",
            "duplex",
            4,
        ),
    ] {
        std::fs::write(&config, text).expect("write config");
        let mut command = print(&dir.path().join("spool"));
        command
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&config);
        let refusal = assert_refuses_to_start(command).await;
        assert!(refusal.stderr.contains(key), "{refusal:?}");
        assert!(
            refusal.stderr.contains(&format!("line {line}")),
            "{refusal:?}"
        );
    }
}
