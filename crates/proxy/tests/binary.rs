//! The real `backroom-proxy` binary: readiness lines, flags, the config
//! file, password hashing, SIGHUP log reopening, and SIGKILL then restart.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Running {
    child: Child,
    proxy: String,
    admin: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary and reads its two readiness lines.
fn spawn(args: &[&str]) -> Running {
    spawn_at("127.0.0.1:0", args)
}

fn spawn_at(listen: &str, args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backroom-proxy"))
        .args(["--listen", listen, "--admin", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = |what: &str| {
        let line = lines.next().expect("a readiness line").expect("utf-8");
        let addr = line
            .strip_prefix(&format!("listening {what} "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addr.to_owned()
    };
    let proxy = next("proxy");
    let admin = next("admin");
    Running {
        child,
        proxy,
        admin,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("backroom-proxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// Polls a file the proxy process writes, for at most ten seconds.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} lacks {needle:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn the_binary_announces_both_ports_and_forwards() {
    let origin = hello_origin().await;
    let running = spawn(&["--allow-loopback"]);
    let (ok, body, err) =
        curl(&["-x", &format!("http://{}", running.proxy), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    let admin = backroom_api::proxy::ProxyClient::connect(
        &backroom_frame::client::ClientConfig::new(running.admin.clone(), "proxy"),
    )
    .await
    .expect("admin");
    assert_eq!(admin.stats().await.expect("stats").requests, 1);
}

#[tokio::test]
async fn without_allow_loopback_the_binary_refuses_loopback() {
    let origin = hello_origin().await;
    let running = spawn(&[]);
    let (ok, body, err) = curl(&[
        "-x",
        &format!("http://{}", running.proxy),
        "-w",
        "%{http_code}",
        &origin.url("/"),
    ])
    .await;
    assert!(ok, "{err}");
    assert!(body.ends_with("403"), "{body}");
}

#[tokio::test]
async fn a_hashed_password_from_the_binary_logs_in_and_sighup_reopens_the_log() {
    let origin = hello_origin().await;
    let mut hasher = Command::new(env!("CARGO_BIN_EXE_backroom-proxy"))
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hasher starts");
    hasher
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write");
    let out = hasher.wait_with_output().expect("hasher ends");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let dir = temp_dir("bin");
    let log = dir.join("access.log");
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "allow_loopback = true\naccess_log = {:?}\nlog_format = \"squid\"\n\
             [auth]\n[[auth.users]]\nname = \"ann\"\npassword_hash = {hash:?}\n",
            log.display().to_string()
        ),
    )
    .expect("config");
    let running = spawn(&["--config", config.to_str().expect("path")]);
    let proxy = format!("http://{}", running.proxy);
    let (ok, head, err) = curl(&["-x", &proxy, "-i", &origin.url("/first")]).await;
    assert!(ok, "{err}");
    assert_eq!(status_of(&head), 407, "{head}");
    let (ok, body, err) = curl(&[
        "-x",
        &proxy,
        "-U",
        "ann:correct horse",
        &origin.url("/second"),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
    let text = wait_for_line(&log, "/second");
    assert!(text.contains(" ann HIER_DIRECT/127.0.0.1 "), "{text}");

    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let pid = running.child.id().to_string();
    let status = Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The signal is handled asynchronously; retry the request until its line
    // shows in the new file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, _, err) = curl(&[
            "-x",
            &proxy,
            "-U",
            "ann:correct horse",
            &origin.url("/third"),
        ])
        .await;
        assert!(ok, "{err}");
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("/third")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new log file after SIGHUP"
        );
    }
    assert!(
        std::fs::read_to_string(&rotated)
            .expect("old")
            .contains("/second")
    );
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn after_sigkill_a_restart_serves_again() {
    let origin = hello_origin().await;
    let mut first = spawn(&["--allow-loopback"]);
    let port = first.proxy.clone();
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let (ok, _, _) = curl(&["-x", &format!("http://{port}"), &origin.url("/")]).await;
    assert!(!ok, "the killed proxy no longer answers");
    let second = spawn_at(&port, &["--allow-loopback"]);
    assert_eq!(second.proxy, port);
    let (ok, body, err) =
        curl(&["-x", &format!("http://{}", second.proxy), &origin.url("/")]).await;
    assert!(ok, "{err}");
    assert_eq!(body, "hello");
}
