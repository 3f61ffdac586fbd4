//! The real `backroom-proxy` binary on SIGHUP: it reopens `--log-file`,
//! reloads the admin port's users of `--config` for new connections, and
//! reloads the ACL and proxy users as the admin `reload` method does.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use backroom_api::proxy::ProxyClient;
use backroom_frame::ErrorCode;
use backroom_frame::auth::hash_token;
use backroom_frame::client::ClientConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A config file whose one user is `name`, holding the token `<name>-token`.
fn write_config(path: &Path, name: &str) {
    let hash = hash_token(&format!("{name}-token"));
    let text =
        format!("[[users]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n");
    std::fs::write(path, text).expect("write config");
}

/// Whether a new admin connection with `name`'s token gets in; any refusal other
/// than `unauthorized` fails the test.
async fn admitted(addr: &str, name: &str) -> bool {
    let mut config = ClientConfig::new(addr, "proxy");
    config.token = Some(format!("{name}-token"));
    match ProxyClient::connect(&config).await {
        Ok(_) => true,
        Err(e) if e.code == ErrorCode::Unauthorized => false,
        Err(e) => panic!("connect as {name}: {e}"),
    }
}

#[tokio::test]
async fn sighup_reopens_the_log_file_and_rotates_the_tokens() {
    let dir = std::env::temp_dir().join(format!("backroom-proxy-signals-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("proxy.toml");
    let log = dir.join("proxy.log");
    write_config(&config, "ann");
    let mut child = Command::new(env!("CARGO_BIN_EXE_backroom-proxy"))
        .arg("--config")
        .arg(&config)
        .arg("--log-file")
        .arg(&log)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn backroom-proxy");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    for _ in ["proxy", "admin"] {
        line.clear();
        tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
            .await
            .expect("ready in time")
            .expect("read stdout");
    }
    let addr = line
        .trim()
        .strip_prefix("listening admin ")
        .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
    assert!(admitted(addr, "ann").await);
    assert!(!admitted(addr, "bob").await);

    let rotated = dir.join("proxy.log.1");
    std::fs::rename(&log, &rotated).expect("rotate the log");
    write_config(&config, "bob");
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("reloaded the users")
            && text.contains("reloaded the ACL and proxy users")
            && admitted(addr, "bob").await
            && !admitted(addr, "ann").await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload after SIGHUP; the new log holds {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = std::fs::read_to_string(&rotated).expect("the rotated log");
    assert!(old.contains("proxy serving"), "{old}");
    assert!(!old.contains("reloaded the users"), "{old}");
    assert_eq!(child.try_wait().expect("status"), None, "still running");
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
