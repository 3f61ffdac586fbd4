//! The HTTP face against the real binary with real clients: litmus (the
//! WebDAV conformance suite), rclone (a sync client over WebDAV) and
//! headless Chromium (a browser, on a listing and on a site folder).

use std::path::Path;
use std::process::Output;

use backroom_daemon::testing::Daemon;
use tokio::process::Command;

/// The binary with open access on loopback, serving `root` over HTTP.
async fn start(root: &Path, config: Option<&Path>) -> Daemon {
    let mut files = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
    files
        .arg("--root")
        .arg(root)
        .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    if let Some(config) = config {
        files.arg("--config").arg(config);
    }
    Daemon::start(files, &["files", "http"]).await
}

async fn run(command: &mut Command) -> Output {
    tokio::time::timeout(
        std::time::Duration::from_secs(300),
        command.kill_on_drop(true).output(),
    )
    .await
    .expect("finishes in time")
    .expect("runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn litmus_passes_basic_copymove_props_locks_and_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let daemon = start(&root, None).await;
    let url = format!("http://{}/", daemon.addr("http"));
    let output = run(Command::new("litmus")
        .arg(&url)
        .env("TESTS", "basic copymove props locks http")
        .current_dir(dir.path()))
    .await;
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        let summary = format!("summary for `{suite}'");
        let line = report
            .lines()
            .find(|l| l.contains(&summary))
            .unwrap_or_else(|| panic!("{suite} ran: {report}"));
        assert!(line.contains(" 0 failed"), "{line}");
    }
}

/// A remote named `dav` for rclone, from the environment.
fn rclone(url: &str, config: &Path) -> Command {
    let mut command = Command::new("rclone");
    command
        .arg("--config")
        .arg(config)
        .env("RCLONE_CONFIG_DAV_TYPE", "webdav")
        .env("RCLONE_CONFIG_DAV_URL", url)
        .env("RCLONE_CONFIG_DAV_VENDOR", "other");
    command
}

#[tokio::test]
async fn rclone_copies_a_tree_up_and_back_and_checks_it_clean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    let daemon = start(&root, None).await;
    let url = format!("http://{}/", daemon.addr("http"));
    let config = dir.path().join("rclone.conf");
    std::fs::write(&config, "").expect("config");

    let tree = dir.path().join("tree");
    for i in 0..1000 {
        let folder = tree.join(format!("d{:02}", i % 20));
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join(format!("f{i}.txt")), format!("file {i}\n")).expect("file");
    }
    // 64 MiB rather than 256: the same streaming path, in a fraction of
    // CI's time on a debug build.
    std::fs::write(tree.join("big.bin"), common_pattern(64 << 20)).expect("big");

    let up = run(rclone(&url, &config).arg("copy").arg(&tree).arg("dav:tree")).await;
    assert!(up.status.success(), "{}", text(&up));
    let back = dir.path().join("back");
    let down = run(rclone(&url, &config).arg("copy").arg("dav:tree").arg(&back)).await;
    assert!(down.status.success(), "{}", text(&down));
    let remote = run(rclone(&url, &config)
        .args(["check", "--download"])
        .arg(&tree)
        .arg("dav:tree"))
    .await;
    assert!(remote.status.success(), "{}", text(&remote));
    let local = run(rclone(&url, &config).arg("check").arg(&tree).arg(&back)).await;
    assert!(local.status.success(), "{}", text(&local));
    assert_eq!(
        std::fs::read(root.join("tree/d07/f7.txt")).expect("on the server"),
        b"file 7\n"
    );
}

fn common_pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8))
        .collect()
}

/// Chromium's DOM of `url`, as its headless mode dumps it.
async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile");
    let output = run(Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url))
    .await;
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn chromium_shows_a_listing_and_a_site_folder_as_its_page() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("intranet")).expect("site");
    std::fs::write(
        root.join("intranet/index.html"),
        "<html><head><link rel=stylesheet href=style.css></head>\
         <body><h1 id=welcome>Office intranet</h1></body></html>",
    )
    .expect("page");
    std::fs::write(root.join("intranet/style.css"), "h1{color:teal}").expect("css");
    std::fs::write(root.join("minutes.txt"), "minutes").expect("file");
    std::fs::write(root.join("<b>bold.txt"), "x").expect("file");
    let config = dir.path().join("files.toml");
    std::fs::write(&config, "http_sites = [\"intranet\"]\n").expect("config");
    let daemon = start(&root, Some(&config)).await;
    let base = format!("http://{}", daemon.addr("http"));

    let listing = dump_dom(&format!("{base}/")).await;
    assert!(listing.contains("minutes.txt"), "{listing}");
    assert!(listing.contains("intranet/"), "{listing}");
    assert!(listing.contains("&lt;b&gt;bold.txt"), "{listing}");
    assert!(!listing.contains("<b>bold"), "{listing}");

    let site = dump_dom(&format!("{base}/intranet/")).await;
    assert!(
        site.contains("<h1 id=\"welcome\">Office intranet</h1>"),
        "{site}"
    );
}
