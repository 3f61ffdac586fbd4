//! The Python client sketch of `docs/protocol.md`, copied from the page,
//! against the real `backroom-print` binary: a submit.

use backroom_daemon::testing::{Daemon, run_python_sketch};
use tokio::process::Command;

#[tokio::test]
async fn the_python_sketch_submits_a_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let mut print = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    print
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .arg("--printer")
        .arg(format!("lp=file:{}", out.display()))
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    let daemon = Daemon::start(print, &["print"]).await;
    let printed = run_python_sketch(daemon.addr("print"), "print").await;
    assert!(printed.contains("job: 1 memo 6 bytes\n"), "{printed}");
}
