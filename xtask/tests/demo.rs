//! `cargo xtask demo --headless` end to end: the four servers as real
//! processes on loopback, seeded and driven through the `backroom` CLI, one
//! step per client-server pattern.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the headless demo on the debug build `cargo test` has just made,
/// keeping its data in `data`.
fn headless_demo(data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--headless", "--debug", "--big-mib", "32", "--data"])
        .arg(data)
        .env_remove("BACKROOM_TOKEN")
        .output()
        .expect("runs xtask")
}

fn assert_every_step_passed(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("6 of 6 steps passed"), "{stdout}");
    assert!(!stdout.contains("  ✗ "), "{stdout}");
    assert!(stdout.matches("  ✓ ").count() >= 12, "{stdout}");
    for server in ["proxy", "db", "print", "files"] {
        assert!(
            stderr.contains(&format!("stopped {server}\n")),
            "{server} was not stopped gracefully: {stderr}"
        );
    }
}

#[test]
fn the_headless_demo_passes_every_step_and_again_on_the_data_it_kept() {
    let data = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-headless");
    let _ = std::fs::remove_dir_all(&data);

    let first = headless_demo(&data);
    assert_every_step_passed(&first);
    for kept in ["db/holidays.db", "files/shared/welcome.txt", "dash.toml"] {
        assert!(data.join(kept).exists(), "{kept} was not kept");
    }

    // A second run seeds over the first one's data and sells the seats again.
    let second = headless_demo(&data);
    assert_every_step_passed(&second);
    let _ = std::fs::remove_dir_all(&data);
}
