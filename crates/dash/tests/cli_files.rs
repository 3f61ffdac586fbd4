//! `backroom files ...`: the built binary against a real files server,
//! started in-process on loopback over a temp root.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backroom_api::files::{FilesClient, WriteArgs, WriteMode};
use backroom_frame::auth::{Auth, Role, User, hash_token};
use bytes::Bytes;

/// A files server on its own runtime, stopped when dropped.
struct Server {
    addr: SocketAddr,
    /// What the server serves: `dir/root`. `dir/local` is the client's side.
    root: PathBuf,
    local: PathBuf,
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start() -> Server {
        Server::start_with(|_| {})
    }

    fn start_with(tune: impl FnOnce(&mut backroom_files::Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        let local = dir.path().join("local");
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&local).expect("local");
        let mut config = backroom_files::Config::new(&root);
        tune(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(async move {
            backroom_files::run(listener, config, std::future::pending())
                .await
                .expect("server runs");
        });
        Server {
            addr,
            root,
            local,
            dir,
            runtime,
        }
    }

    /// `backroom --files ADDR files ARGS...`.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = backroom(self.dir.path());
        command
            .args(["--files", &self.addr.to_string(), "files"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs backroom")
    }

    /// Runs a command that must succeed, and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    fn client(&self) -> FilesClient {
        self.runtime
            .block_on(FilesClient::connect(&self.addr.to_string(), None))
            .expect("connect")
    }

    fn local(&self, name: &str) -> String {
        self.local.join(name).display().to_string()
    }
}

/// The binary, with an environment that holds no config or token of the
/// person running the tests.
fn backroom(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom"));
    command
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home)
        .env_remove("BACKROOM_TOKEN")
        .stdin(Stdio::null());
    command
}

/// Asserts a failure: a non-zero exit and exactly one line on stderr that
/// holds `needle`.
fn assert_fails_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("backroom files: "), "{stderr:?}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 9) as u8))
        .collect()
}

#[test]
fn ls_lists_entries_sorted_with_kind_size_and_mode() {
    let server = Server::start();
    std::fs::create_dir(server.root.join("docs")).expect("dir");
    std::fs::write(server.root.join("b.txt"), b"hello").expect("file");
    std::fs::write(server.root.join("a.txt"), b"").expect("file");

    let out = server.ok(&["ls"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("-rw") && lines[0].ends_with("  a.txt"));
    assert!(lines[1].contains(" 5 ") && lines[1].ends_with("  b.txt"));
    assert!(lines[2].starts_with('d') && lines[2].ends_with("  docs/"));

    // `ls FILE` describes the file, as ls does.
    let one = server.ok(&["ls", "b.txt"]);
    assert!(one.trim_end().ends_with("  b.txt"), "{one}");
}

#[test]
fn json_prints_one_object_per_line() {
    let server = Server::start();
    std::fs::write(server.root.join("a \"q\".txt"), b"abc").expect("file");
    let out = server.ok(&["--json", "ls"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let entry: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(entry["name"], "a \"q\".txt", "{out}");
    assert_eq!(entry["kind"], "file", "{out}");
    assert_eq!(entry["size"], 3, "{out}");
    assert!(entry["modified_ms"].is_u64(), "{out}");
    let du = server.ok(&["--json", "du"]);
    let du: serde_json::Value = serde_json::from_str(du.trim()).expect("JSON");
    assert_eq!(
        du,
        serde_json::json!({"path": "", "bytes": 3, "files": 1, "dirs": 1})
    );
}

#[test]
fn stat_describes_one_file() {
    let server = Server::start();
    std::fs::write(server.root.join("report.pdf"), pattern(2048)).expect("file");
    let out = server.ok(&["stat", "report.pdf"]);
    assert!(out.contains("kind:     file"), "{out}");
    assert!(out.contains("size:     2048 (2.0 KiB)"), "{out}");
    assert!(out.contains("modified: "), "{out}");
}

#[test]
fn put_then_get_round_trips_the_bytes_and_sum_prints_the_digest() {
    let server = Server::start();
    let data = pattern(3 << 20);
    std::fs::write(server.local.join("big.bin"), &data).expect("local");

    let put = server.ok(&["put", &server.local("big.bin"), "big.bin"]);
    assert_eq!(put.trim(), format!("put big.bin: {} bytes", data.len()));
    assert_eq!(
        std::fs::read(server.root.join("big.bin")).expect("on disk"),
        data
    );

    let get = server.ok(&["get", "big.bin", &server.local("back.bin")]);
    assert_eq!(get.trim(), format!("got big.bin: {} bytes", data.len()));
    assert_eq!(
        std::fs::read(server.local.join("back.bin")).expect("back"),
        data
    );

    // A folder as LOCAL receives the file under its own name.
    std::fs::write(server.root.join("abc.txt"), b"abc").expect("file");
    let sub = server.local.join("into");
    std::fs::create_dir(&sub).expect("dir");
    server.ok(&["get", "abc.txt", &sub.display().to_string()]);
    assert_eq!(std::fs::read(sub.join("abc.txt")).expect("into"), b"abc");

    // `-` is stdout.
    assert_eq!(server.ok(&["get", "abc.txt", "-"]), "abc");

    let sha = server.ok(&["sum", "abc.txt"]);
    assert_eq!(
        sha.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let blake = server.ok(&["sum", "abc.txt", "--algo", "blake3"]);
    assert_eq!(
        blake.trim(),
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
}

#[test]
fn put_does_not_replace_a_file_unless_told_to() {
    let server = Server::start();
    std::fs::write(server.root.join("a.txt"), b"old").expect("remote");
    std::fs::write(server.local.join("a.txt"), b"new").expect("local");

    let refused = server.run(&["put", &server.local("a.txt"), "a.txt"]);
    assert_fails_with(&refused, "--overwrite");
    assert_eq!(
        std::fs::read(server.root.join("a.txt")).expect("kept"),
        b"old"
    );

    server.ok(&["put", &server.local("a.txt"), "a.txt", "--overwrite"]);
    assert_eq!(
        std::fs::read(server.root.join("a.txt")).expect("new"),
        b"new"
    );
}

#[test]
fn get_resume_fetches_only_the_missing_tail() {
    let server = Server::start();
    let data = pattern(1 << 20);
    std::fs::write(server.root.join("f.bin"), &data).expect("remote");
    let half = data.len() / 2;
    std::fs::write(server.local.join("f.bin"), &data[..half]).expect("partial");

    let out = server.ok(&["get", "f.bin", &server.local("f.bin"), "--resume"]);
    assert_eq!(
        out.trim(),
        format!("got f.bin: {} bytes (resumed at {half})", data.len())
    );
    assert_eq!(
        std::fs::read(server.local.join("f.bin")).expect("whole"),
        data
    );
    let sum = server.ok(&["sum", "f.bin"]);
    assert_eq!(sum.trim().len(), 64);
}

#[test]
fn put_resume_continues_an_interrupted_upload() {
    let server = Server::start();
    let data = pattern(1 << 20);
    let local = server.local.join("up.bin");
    std::fs::write(&local, &data).expect("local");
    let meta = std::fs::metadata(&local).expect("meta");
    let id = backroom_dash::files::cli::upload_id("up.bin", &meta);
    let half = data.len() / 2;

    // An upload that ends short of its declared size keeps its bytes for a
    // resume, exactly as far as it got.
    let client = server.client();
    let interrupted = server.runtime.block_on(async {
        let mut args = WriteArgs::new("up.bin", WriteMode::CreateNew);
        args.upload_id = Some(id);
        args.size = Some(data.len() as u64);
        let mut upload = client.write(&args).await?;
        upload.send(Bytes::copy_from_slice(&data[..half])).await?;
        upload.finish::<backroom_api::files::Written>().await
    });
    assert!(interrupted.is_err(), "{interrupted:?}");
    assert!(!server.root.join("up.bin").exists());

    let out = server.ok(&["put", &local.display().to_string(), "up.bin", "--resume"]);
    assert_eq!(
        out.trim(),
        format!("put up.bin: {} bytes (resumed at {half})", data.len())
    );
    assert_eq!(
        std::fs::read(server.root.join("up.bin")).expect("whole"),
        data
    );
}

#[test]
fn put_resume_of_another_file_with_the_same_size_and_mtime_starts_afresh() {
    let server = Server::start();
    let (a, b) = (vec![b'A'; 1 << 20], vec![b'B'; 1 << 20]);
    let (local_a, local_b) = (server.local.join("A"), server.local.join("B"));
    std::fs::write(&local_a, &a).expect("A");
    std::fs::write(&local_b, &b).expect("B");
    let mtime = std::fs::metadata(&local_a)
        .expect("meta")
        .modified()
        .expect("mtime");
    std::fs::File::options()
        .write(true)
        .open(&local_b)
        .expect("open B")
        .set_modified(mtime)
        .expect("touch -r A B");
    let meta_a = std::fs::metadata(&local_a).expect("meta A");
    let meta_b = std::fs::metadata(&local_b).expect("meta B");
    let id = backroom_dash::files::cli::upload_id("d.bin", &meta_a);
    assert_eq!(id, backroom_dash::files::cli::upload_id("d.bin", &meta_b));

    // `put A d.bin`, interrupted halfway.
    let client = server.client();
    let half = a.len() / 2;
    let interrupted = server.runtime.block_on(async {
        let mut args = WriteArgs::new("d.bin", WriteMode::CreateNew);
        args.upload_id = Some(id);
        args.size = Some(a.len() as u64);
        let mut upload = client.write(&args).await?;
        upload.send(Bytes::copy_from_slice(&a[..half])).await?;
        upload.finish::<backroom_api::files::Written>().await
    });
    assert!(interrupted.is_err(), "{interrupted:?}");

    let output = server.run(&["put", &server.local("B"), "d.bin", "--resume"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("starting afresh"), "{stderr:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("put d.bin: {} bytes", b.len()),
        "not resumed"
    );
    assert_eq!(
        std::fs::read(server.root.join("d.bin")).expect("whole"),
        b,
        "B alone, not half of each"
    );
}

#[test]
fn uploads_lists_an_interrupted_put_and_abort_removes_it() {
    let server = Server::start();
    let data = pattern(1 << 20);
    let client = server.client();
    let interrupted = server.runtime.block_on(async {
        let mut args = WriteArgs::new("big.bin", WriteMode::CreateNew);
        args.upload_id = Some("cli-test".into());
        args.size = Some(data.len() as u64);
        let mut upload = client.write(&args).await?;
        upload.send(Bytes::copy_from_slice(&data[..1000])).await?;
        upload.finish::<backroom_api::files::Written>().await
    });
    assert!(interrupted.is_err(), "{interrupted:?}");

    let listed = server.ok(&["uploads"]);
    let fields: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(fields.len(), 6, "{listed:?}");
    let id = fields[0];
    assert_eq!(
        (fields[1], fields[4], fields[5]),
        ("1000", "anonymous", "big.bin"),
        "{listed:?}"
    );
    let json = server.ok(&["--json", "uploads"]);
    assert!(json.contains(&format!("\"id\":\"{id}\"")), "{json}");
    assert!(json.contains("\"received\":1000"), "{json}");

    server.ok(&["abort", id]);
    assert_eq!(server.ok(&["uploads"]), "");
    assert_fails_with(&server.run(&["abort", id]), "not_found");
    let left: Vec<_> = std::fs::read_dir(&server.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with(".backroom-part"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn mkdir_cp_mv_and_rm_change_the_tree() {
    let server = Server::start();
    server.ok(&["mkdir", "-p", "a/b"]);
    assert!(server.root.join("a/b").is_dir());
    assert_fails_with(&server.run(&["mkdir", "a"]), "a");

    std::fs::write(server.root.join("a/b/f.txt"), b"f").expect("file");
    server.ok(&["cp", "a/b/f.txt", "a/g.txt"]);
    assert_eq!(
        std::fs::read(server.root.join("a/g.txt")).expect("copy"),
        b"f"
    );
    assert_fails_with(&server.run(&["cp", "a/b/f.txt", "a/g.txt"]), "conflict");

    server.ok(&["mv", "a/g.txt", "h.txt"]);
    assert!(!server.root.join("a/g.txt").exists());
    assert!(server.root.join("h.txt").is_file());

    assert_fails_with(&server.run(&["rm", "a"]), "a");
    assert!(server.root.join("a/b/f.txt").exists());
    server.ok(&["rm", "-r", "a"]);
    assert!(!server.root.join("a").exists());
    server.ok(&["rm", "h.txt"]);
    assert!(!server.root.join("h.txt").exists());
}

#[test]
fn find_and_du_report_the_subtree() {
    let server = Server::start();
    std::fs::create_dir_all(server.root.join("p/q")).expect("dirs");
    std::fs::write(server.root.join("p/report-1.txt"), b"12345").expect("file");
    std::fs::write(server.root.join("p/q/report-2.pdf"), b"123").expect("file");
    std::fs::write(server.root.join("p/q/notes.txt"), b"1").expect("file");

    let by_name = server.ok(&["find", "report"]);
    assert_eq!(
        by_name.lines().collect::<Vec<_>>(),
        ["p/q/report-2.pdf", "p/report-1.txt"].map(String::from),
        "{by_name}"
    );
    let by_glob = server.ok(&["find", "*.txt", "p/q"]);
    assert_eq!(by_glob.trim(), "p/q/notes.txt");

    let du = server.ok(&["du", "p"]);
    assert_eq!(du.trim(), "9 B\t9 bytes\t3 files\t2 dirs\tp", "{du}");
}

#[test]
fn find_with_no_match_says_so_and_fails_like_grep() {
    let server = Server::start();
    std::fs::write(server.root.join("notes.txt"), b"1").expect("file");
    let out = server.run(&["find", "*.pdf"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        stderr.starts_with("backroom files: find: nothing under / matches"),
        "{stderr}"
    );
}

#[test]
fn watch_prints_an_external_touch_and_rm_and_stops_on_ctrl_c() {
    let server = Server::start();
    let mut child: Child = server
        .command(&["watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout = lines_of(child.stdout.take().expect("stdout"));
    let stderr = lines_of(child.stderr.take().expect("stderr"));
    let ready = next_line(&stderr);
    assert!(ready.starts_with("watching /"), "{ready}");

    std::fs::write(server.root.join("touched.txt"), b"").expect("touch");
    let created = next_line(&stdout);
    assert_eq!(created, "created  disk    touched.txt");
    std::fs::remove_file(server.root.join("touched.txt")).expect("rm");
    let removed = next_line(&stdout);
    assert_eq!(removed, "removed  disk    touched.txt");

    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "Ctrl-C ends the watch cleanly: {exit}");
}

/// Lines read on a thread, so a test can wait for one with a bound.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a line within 10 s")
}

#[test]
fn a_missing_remote_file_is_one_line_and_a_failure() {
    let server = Server::start();
    // A failed get leaves an existing local file alone.
    std::fs::write(server.local.join("keep.txt"), b"mine").expect("local");
    let output = server.run(&["get", "nope.txt", &server.local("keep.txt")]);
    assert_fails_with(&output, "not_found");
    assert_eq!(
        std::fs::read(server.local.join("keep.txt")).expect("kept"),
        b"mine"
    );
    assert_fails_with(&server.run(&["stat", "nope.txt"]), "nope.txt");
}

#[test]
fn a_missing_local_file_is_one_line_and_a_failure() {
    let server = Server::start();
    let output = server.run(&["put", &server.local("absent.bin"), "x.bin"]);
    assert_fails_with(&output, "absent.bin");
    assert!(!server.root.join("x.bin").exists());
}

#[test]
fn paths_outside_the_root_are_refused() {
    let server = Server::start();
    std::fs::write(server.dir.path().join("secret.txt"), b"s").expect("outside");
    assert_fails_with(&server.run(&["stat", "../secret.txt"]), "forbidden");
    // A leading `/` is the served root: /etc/passwd is a file there, absent.
    assert_fails_with(&server.run(&["get", "/etc/passwd", "-"]), "not_found");
    assert_fails_with(&server.run(&["get", "/../secret.txt", "-"]), "forbidden");
    std::fs::write(server.local.join("x"), b"x").expect("local");
    assert_fails_with(
        &server.run(&["put", &server.local("x"), "a/../../escaped"]),
        "forbidden",
    );
    assert!(!server.dir.path().join("escaped").exists());
}

#[test]
fn a_read_only_user_is_refused_a_write() {
    let server = Server::start_with(|config| {
        let user = User {
            name: "reader".into(),
            token_sha256: hash_token("ro-token"),
            role: Role::ReadOnly,
        };
        config.frame.auth = Auth::new(vec![user]).expect("users").into();
    });
    std::fs::write(server.root.join("a.txt"), b"a").expect("file");
    std::fs::write(server.local.join("b.txt"), b"b").expect("local");

    assert_eq!(
        server.ok(&["--token", "ro-token", "get", "a.txt", "-"]),
        "a"
    );
    let refused = server.run(&[
        "--token",
        "ro-token",
        "put",
        &server.local("b.txt"),
        "b.txt",
    ]);
    assert_fails_with(&refused, "forbidden");
    assert!(!server.root.join("b.txt").exists());
    assert_fails_with(&server.run(&["ls"]), "--token");
}

#[test]
fn a_server_that_is_down_is_one_clear_line() {
    let home = tempfile::tempdir().expect("temp dir");
    // A port that was just free, so nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let output = backroom(home.path())
        .args(["files", "--addr", &format!("127.0.0.1:{port}"), "ls"])
        .output()
        .expect("runs");
    assert_fails_with(&output, &format!("127.0.0.1:{port}"));
}

#[test]
fn progress_prints_a_line_at_every_tenth_when_asked() {
    let server = Server::start();
    let data = pattern(8 << 20);
    std::fs::write(server.local.join("big.bin"), &data).expect("local");

    let quiet = server.run(&["put", &server.local("big.bin"), "quiet.bin"]);
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "no progress unless asked");

    let put = server.run(&["--progress", "put", &server.local("big.bin"), "big.bin"]);
    assert!(put.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&put.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    let percents: Vec<&str> = lines
        .iter()
        .map(|line| {
            line.strip_prefix("put big.bin: ")
                .and_then(|rest| rest.split('%').next())
                .unwrap_or_else(|| panic!("not a progress line: {line:?}"))
                .trim()
        })
        .collect();
    assert_eq!(percents.last(), Some(&"100"), "{lines:?}");
    assert!(percents.len() >= 5 && percents.len() <= 10, "{lines:?}");
    assert!(
        lines[lines.len() - 1].contains("8.0 MiB of 8.0 MiB"),
        "{lines:?}"
    );

    let get = server.run(&["--progress", "get", "big.bin", &server.local("back.bin")]);
    assert!(get.status.success());
    let last = String::from_utf8_lossy(&get.stderr)
        .lines()
        .last()
        .map(str::to_owned);
    assert!(
        last.as_deref()
            .is_some_and(|l| l.starts_with("get big.bin: 100% ")),
        "{last:?}"
    );
}
