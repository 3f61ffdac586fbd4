//! The Python client sketch of `docs/protocol.md`, copied from the page,
//! against the real `backroom-files` binary: an upload and a download.

use backroom_daemon::testing::{Daemon, run_python_sketch};
use tokio::process::Command;

#[tokio::test]
async fn the_python_sketch_uploads_and_downloads_a_file() {
    let root = tempfile::tempdir().expect("temp dir");
    let mut files = Command::new(env!("CARGO_BIN_EXE_backroom-files"));
    files
        .arg("--root")
        .arg(root.path())
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    let daemon = Daemon::start(files, &["files"]).await;
    let printed = run_python_sketch(daemon.addr("files"), "files").await;
    assert!(
        printed.contains("written: {'path': 'hello.txt', 'size': 6}\n"),
        "{printed}"
    );
    assert!(printed.contains("read: 6 bytes b'hello\\n'\n"), "{printed}");
    assert_eq!(
        std::fs::read(root.path().join("hello.txt")).expect("on disk"),
        b"hello\n"
    );
}
