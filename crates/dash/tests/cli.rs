//! What every `backroom` command shares, run as the real binary: how a
//! mistake is reported, and what happens without a terminal.

use std::process::{Command, Output, Stdio};

fn backroom(args: &[&str], home: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backroom"))
        .args(args)
        .env("HOME", home)
        .env_remove("BACKROOM_TOKEN")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("backroom runs")
}

#[test]
fn a_missing_config_file_is_one_line_and_never_a_backtrace() {
    let home = tempfile::tempdir().expect("home");
    for args in [
        &["--config", "/no/such/backroom.toml"][..],
        &["--config", "/no/such/backroom.toml", "db", "tables"][..],
        &["--config", "/no/such/backroom.toml", "files", "ls"][..],
    ] {
        let out = backroom(args, home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("backroom"), "{args:?}: {stderr}");
        assert!(stderr.contains("/no/such/backroom.toml"), "{stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
}

#[test]
fn without_a_terminal_the_dashboard_says_so_and_writes_no_escape_codes() {
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("empty.toml");
    std::fs::write(&config, "").expect("config");
    let out = backroom(&["--config", config.to_str().expect("utf-8")], home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("needs a terminal"), "{stderr}");
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "escape codes: {out:?}"
    );
}

#[test]
fn a_subcommands_help_lists_its_own_flags_not_the_dashboards() {
    let home = tempfile::tempdir().expect("home");
    let out = backroom(&["files", "get", "--help"], home.path());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(help.contains("--token"), "{help}");
    for flag in ["--read-only", "--proxy-admin", "--print <ADDR>"] {
        assert!(!help.contains(flag), "{flag} in:\n{help}");
    }
}
