//! `backroom print ...` against a real print server: the server library runs
//! in this process on a loopback port, and each command runs the built
//! `backroom` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backroom_api::print::{Event, Job, JobState, PrintClient};
use backroom_frame::auth::{Role, User, hash_token};
use backroom_frame::client::Subscription;
use backroom_print::{Config, PrinterConfig};
use serde_json::Value;
use tokio::sync::oneshot;

/// A print server on its own thread and runtime, so that the tests can block
/// on the CLI's processes. It stops when dropped.
struct Server {
    addr: String,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts a server whose printers are `NAME=KIND:ARG`, where `{out}`
    /// stands for this server's output folder.
    fn start(printers: &[&str]) -> Server {
        Server::start_with(printers, |_| {})
    }

    fn start_with(printers: &[&str], adjust: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        let mut config = Config::new(dir.path().join("spool"));
        config.printers = printers
            .iter()
            .map(|p| {
                p.replace("{out}", &out.display().to_string())
                    .parse::<PrinterConfig>()
                    .expect("printer")
            })
            .collect();
        // No aging, so the order depends on priorities alone.
        config.policy.aging.max_wait_ms = 0;
        adjust(&mut config);
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let addr = listener.local_addr().expect("addr").to_string();
                addr_tx.send(addr).expect("send addr");
                let shutdown = async {
                    let _ = stopped.await;
                };
                backroom_print::run(listener, config, shutdown)
                    .await
                    .expect("server runs");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server started");
        Server {
            addr,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Writes a document to print and returns its path.
    fn document(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).expect("write document");
        path
    }

    /// Runs `backroom --print ADDR print ARGS...`.
    fn print(&self, args: &[&str]) -> Output {
        backroom(&["--print", &self.addr, "print"], args, self.dir.path())
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.print(args);
        assert!(
            output.status.success(),
            "backroom print {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// Runs a command with `--json` that must succeed and parses its output.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.ok(&all).trim()).expect("JSON output")
    }

    /// Submits a document and returns the job id the CLI printed.
    fn submit(&self, name: &str, extra: &[&str]) -> u64 {
        let path = self.document(name, name.as_bytes());
        let path = path.display().to_string();
        let mut args = vec!["submit", path.as_str()];
        args.extend_from_slice(extra);
        self.ok(&args).trim().parse().expect("a job id")
    }

    /// The ids of `jobs --json`, in the order listed.
    fn queue(&self, extra: &[&str]) -> Vec<u64> {
        let mut args = vec!["jobs"];
        args.extend_from_slice(extra);
        let list = self.json(&args);
        ids(&list["jobs"])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs the `backroom` binary with no config file and no token from the
/// environment, so the test sees only what it passes.
fn backroom(global: &[&str], args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_backroom"))
        .args(global)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("BACKROOM_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run backroom")
}

fn ids(jobs: &Value) -> Vec<u64> {
    jobs.as_array()
        .expect("an array of jobs")
        .iter()
        .map(|job| job["id"].as_u64().expect("an id"))
        .collect()
}

/// Asserts a failure: a non-zero exit, nothing on stdout, and one line on
/// stderr that contains `needle`.
fn assert_one_line_failure(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
}

/// A typed client on a small runtime of its own, to watch what the CLI did.
struct Watcher {
    runtime: tokio::runtime::Runtime,
    events: Subscription<Event>,
    _client: PrintClient,
}

impl Watcher {
    fn new(addr: &str) -> Watcher {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (client, events) = runtime.block_on(async {
            let client = PrintClient::connect(addr, None).await.expect("connect");
            let (_, events) = client.watch().await.expect("watch");
            (client, events)
        });
        Watcher {
            runtime,
            events,
            _client: client,
        }
    }

    /// Waits until job `id` reaches `state`.
    fn wait_for(&mut self, id: u64, state: JobState) -> Job {
        let events = &mut self.events;
        self.runtime.block_on(async {
            let wait = async {
                loop {
                    match events.next().await {
                        Some(Ok(Event::Job { job })) if job.id == id && job.state == state => {
                            return job;
                        }
                        Some(Ok(_)) => {}
                        other => panic!("the watch ended: {other:?}"),
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait)
                .await
                .expect("the job got there in time")
        })
    }
}

#[test]
fn submit_prints_the_job_id_and_the_printer_gets_the_bytes() {
    let server = Server::start(&["office=file:{out}"]);
    let mut watcher = Watcher::new(&server.addr);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let path = server.document("report.txt", &data);
    let stdout = server.ok(&["submit", &path.display().to_string()]);
    let id: u64 = stdout.trim().parse().expect("only the job id");
    let job = watcher.wait_for(id, JobState::Completed);
    assert_eq!(job.name, "report.txt");
    assert_eq!(job.size, data.len() as u64);
    let printed: Vec<PathBuf> = std::fs::read_dir(server.out())
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert!(
        printed[0]
            .display()
            .to_string()
            .ends_with(&format!("_{id}_report.txt"))
    );
    assert_eq!(std::fs::read(&printed[0]).expect("printed"), data);
}

#[test]
fn submit_options_reach_the_job() {
    let server = Server::start(&["office=file:{out}", "annex=file:{out}"]);
    let id = server.submit(
        "a.txt",
        &[
            "--priority",
            "80",
            "--printer",
            "annex",
            "--hold",
            "--copies",
            "2",
            "--name",
            "memo",
        ],
    );
    let job = server.json(&["info", &id.to_string()]);
    assert_eq!(job["name"], "memo");
    assert_eq!(job["priority"], 80);
    assert_eq!(job["printer"], "annex");
    assert_eq!(job["state"], "held");
    assert_eq!(job["copies"], 2);
    let human = server.ok(&["info", &id.to_string()]);
    assert!(human.contains("state       held"), "{human}");
    assert!(human.contains("priority    80"), "{human}");
}

#[test]
fn the_queue_lists_in_dispatch_order_and_priority_and_promote_reorder_it() {
    let server = Server::start(&["office=file:{out}"]);
    let paused = server.ok(&["pause", "office"]);
    assert!(paused.contains("printer office paused"), "{paused}");
    let low = server.submit("low", &["--priority", "10"]);
    let mid = server.submit("mid", &["--priority", "50"]);
    let high = server.submit("high", &["--priority", "90"]);
    assert_eq!(server.queue(&[]), [high, mid, low]);

    let changed = server.ok(&["priority", &low.to_string(), "95"]);
    assert!(changed.contains("priority 95"), "{changed}");
    assert_eq!(server.queue(&[]), [low, high, mid]);

    server.ok(&["promote", &mid.to_string()]);
    assert_eq!(server.queue(&[]), [mid, low, high]);
    assert_eq!(server.queue(&["--limit", "1"]), [mid]);

    let table = server.ok(&["jobs"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("ID") && lines[0].contains("STATE"),
        "{table}"
    );
    assert!(
        lines[1].contains(&mid.to_string()) && lines[1].contains("⇡50"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
}

#[test]
fn hold_release_cancel_and_restart_move_a_job_through_its_states() {
    let server = Server::start(&["office=file:{out}"]);
    server.ok(&["pause", "office"]);
    let id = server.submit("doc", &[]);
    let id_arg = id.to_string();
    assert!(server.ok(&["hold", &id_arg]).contains("held"));
    assert!(server.ok(&["release", &id_arg]).contains("pending"));
    assert!(server.ok(&["cancel", &id_arg]).contains("cancelled"));
    assert!(server.queue(&[]).is_empty());
    assert_eq!(server.queue(&["--all"]), [id]);
    assert_eq!(server.queue(&["--state", "cancelled"]), [id]);

    let mut watcher = Watcher::new(&server.addr);
    assert!(server.ok(&["restart", &id_arg]).contains("pending"));
    server.ok(&["resume", "office"]);
    watcher.wait_for(id, JobState::Completed);
}

#[test]
fn hold_and_release_by_printer_count_the_jobs() {
    let server = Server::start(&["office=file:{out}", "annex=file:{out}"]);
    server.ok(&["pause", "office"]);
    server.submit("a", &[]);
    server.submit("b", &[]);
    let held = server.ok(&["hold", "--printer", "office"]);
    assert_eq!(held.trim(), "held 2 jobs on office");
    assert_eq!(server.queue(&["--state", "held"]).len(), 2);
    let released = server.json(&["release", "--printer", "office"]);
    assert_eq!(released["count"], 2);
    assert_eq!(server.queue(&["--state", "pending"]).len(), 2);
}

#[test]
fn move_sends_a_waiting_job_to_another_printer() {
    let server = Server::start(&["office=file:{out}", "annex=file:{out}"]);
    server.ok(&["pause", "office"]);
    server.ok(&["pause", "annex"]);
    let id = server.submit("doc", &["--printer", "office"]);
    let moved = server.json(&["move", &id.to_string(), "annex"]);
    assert_eq!(moved["printer"], "annex");
    assert_eq!(server.queue(&["--printer", "annex"]), [id]);
    assert!(server.queue(&["--printer", "office"]).is_empty());
}

#[test]
fn printers_show_state_and_queue_and_pause_and_resume_change_them() {
    let server = Server::start(&["office=file:{out}", "annex=file:{out}"]);
    server.ok(&["pause", "office"]);
    server.submit("doc", &[]);
    let printers = server.json(&["printers"]);
    let office = &printers["printers"][0];
    assert_eq!(office["name"], "office");
    assert_eq!(office["state"], "paused");
    assert_eq!(office["queue_len"], 1);
    assert_eq!(printers["printers"][1]["state"], "idle");

    let table = server.ok(&["printers"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("office"))
        .expect("a row for office");
    assert!(row.contains("paused") && row.contains("file:"), "{table}");

    let resumed = server.json(&["resume", "office"]);
    assert_ne!(resumed["state"], "paused");
    assert!(server.ok(&["reject", "annex"]).contains("rejecting jobs"));
    let refused = server.print(&[
        "submit",
        &server.document("x", b"x").display().to_string(),
        "--printer",
        "annex",
    ]);
    assert_one_line_failure(&refused, "conflict");
}

#[test]
fn watch_prints_events_as_they_happen() {
    let server = Server::start(&["office=file:{out}"]);
    server.ok(&["pause", "office"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_backroom"))
        .args(["--print", &server.addr, "print", "--json", "watch"])
        .args(["--count", "1"])
        .env("XDG_CONFIG_HOME", server.dir.path().join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run watch");
    // The note on stderr says the subscription is live.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut note = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut note).expect("read the note");
    assert!(note.starts_with("watching the print queue"), "{note}");
    let id = server.submit("memo", &[]);
    let output = child
        .wait_with_output()
        .expect("watch ends after one event");
    assert!(output.status.success());
    let event: Value = serde_json::from_slice(&output.stdout).expect("one JSON event on one line");
    assert_eq!(event["kind"], "job");
    assert_eq!(event["job"]["id"], id);
    assert_eq!(event["job"]["state"], "pending");
}

#[test]
fn validate_checks_a_job_without_queueing_it() {
    let server = Server::start(&["office=file:{out}"]);
    let path = server.dir.path().join("never-read");
    let answer = server.ok(&["submit", &path.display().to_string(), "--validate"]);
    assert!(answer.contains("would print on office"), "{answer}");
    assert!(server.queue(&["--all"]).is_empty());
}

#[test]
fn a_missing_file_or_a_folder_is_one_line_and_nothing_is_queued() {
    let server = Server::start(&["office=file:{out}"]);
    let missing = server.dir.path().join("absent.pdf");
    let output = server.print(&["submit", &missing.display().to_string()]);
    assert_one_line_failure(&output, "cannot open");
    assert_one_line_failure(&output, "absent.pdf");
    let folder = server.print(&["submit", &server.dir.path().display().to_string()]);
    assert_one_line_failure(&folder, "is a folder");
    assert!(server.queue(&["--all"]).is_empty());
}

#[test]
fn a_server_that_is_down_is_one_line_and_a_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let output = backroom(&["print", "--addr", &addr], &["jobs"], dir.path());
    assert_one_line_failure(&output, "cannot reach the print server at");
    assert_one_line_failure(&output, &addr);
}

#[test]
fn jobs_completed_lists_the_jobs_that_printed() {
    let server = Server::start(&["office=file:{out}"]);
    let mut watcher = Watcher::new(&server.addr);
    let printed = server.submit("printed.txt", &[]);
    watcher.wait_for(printed, JobState::Completed);
    server.ok(&["pause", "office"]);
    let waiting = server.submit("waiting.txt", &[]);
    assert_eq!(server.queue(&["--completed"]), [printed]);
    assert_eq!(server.queue(&[]), [waiting]);
}

#[test]
fn unknown_jobs_bad_priorities_and_unknown_printers_are_refused_in_one_line() {
    let server = Server::start(&["office=file:{out}"]);
    server.ok(&["pause", "office"]);
    assert_one_line_failure(&server.print(&["info", "999"]), "not_found");
    assert_one_line_failure(&server.print(&["cancel", "999"]), "cannot cancel job 999");
    let id = server.submit("doc", &[]).to_string();
    for args in [
        &["priority", &id, "0"][..],
        &["submit", "doc", "--priority", "500"],
    ] {
        let refused = server.print(args);
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{args:?}");
        assert!(said.contains("not in 1..=100"), "{args:?}: {said}");
    }
    assert_one_line_failure(&server.print(&["move", &id, "nowhere"]), "not_found");
    assert_one_line_failure(&server.print(&["pause", "nowhere"]), "nowhere");
    assert_one_line_failure(&server.print(&["restart", &id]), "conflict");
}

#[test]
fn a_full_queue_refuses_a_submission_with_busy() {
    let server = Server::start_with(&["office=file:{out}"], |c| c.policy.max_jobs = 1);
    server.ok(&["pause", "office"]);
    server.submit("first", &[]);
    let path = server.document("second", b"second");
    let output = server.print(&["submit", &path.display().to_string()]);
    assert_one_line_failure(&output, "busy");
    assert_eq!(server.queue(&["--all"]).len(), 1);
}

#[test]
fn the_token_reaches_the_server_and_a_wrong_one_is_refused() {
    let server = Server::start_with(&["office=file:{out}"], |c| {
        c.frame.auth = backroom_frame::auth::Auth::new(vec![User {
            name: "ann".into(),
            token_sha256: hash_token("s3cret"),
            role: Role::ReadWrite,
        }])
        .expect("auth")
        .into();
    });
    let path = server.document("doc", b"doc").display().to_string();
    let ok = backroom(
        &["--print", &server.addr, "--token", "s3cret", "print"],
        &["--json", "submit", &path, "--hold"],
        server.dir.path(),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let job: Value = serde_json::from_slice(&ok.stdout).expect("JSON job");
    assert_eq!(job["owner"], "ann");

    let wrong = backroom(
        &["--print", &server.addr, "--token", "wrong", "print"],
        &["jobs"],
        server.dir.path(),
    );
    assert_one_line_failure(&wrong, "cannot reach the print server");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !said.contains("pass --token"),
        "a token was passed, so the hint is not to pass one: {said}"
    );
    let not_admin = backroom(
        &["--print", &server.addr, "--token", "s3cret", "print"],
        &["pause", "office"],
        server.dir.path(),
    );
    assert_one_line_failure(&not_admin, "forbidden");
}
