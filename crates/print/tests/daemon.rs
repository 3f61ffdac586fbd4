//! The real `backroom-print` binary: readiness line, SIGKILL with jobs
//! pending, held and printing, and restart; a command printer's processes
//! killed by the restart.

mod common;

use std::path::Path;
use std::time::Duration;

use backroom_api::print::{Event, HistoryArgs, JobState, ListArgs, PrintClient, SubmitArgs};
use backroom_daemon::testing::Daemon;
use bytes::Bytes;
use common::{printed, printed_id, wait_for_state};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::Command;

/// Starts the binary on a free port and waits for its readiness line.
async fn start(spool: &Path, config: &Path, printer: &str) -> Daemon {
    let mut print = Command::new(env!("CARGO_BIN_EXE_backroom-print"));
    print
        .arg("--spool")
        .arg(spool)
        .arg("--config")
        .arg(config)
        .args(["--printer", printer, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn");
    Daemon::start(print, &["print"]).await
}

async fn client(daemon: &Daemon) -> PrintClient {
    PrintClient::connect(daemon.addr("print"), None)
        .await
        .expect("connect")
}

async fn submit(c: &PrintClient, name: &str, priority: u8, hold: bool, data: Vec<u8>) -> u64 {
    let mut args = SubmitArgs::new(name);
    args.priority = Some(priority);
    args.hold = hold;
    c.submit(&args, Bytes::from(data))
        .await
        .expect("accepted")
        .id
}

#[tokio::test]
async fn sigkill_loses_no_accepted_job_and_keeps_the_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let config = dir.path().join("print.toml");
    // No aging, so the order after the restart depends on nothing but the
    // queue; one attempt left after the interrupted one.
    std::fs::write(
        &config,
        "aging_secs = 0\nmax_attempts = 5\nerror_policy = \"retry-job\"\n",
    )
    .expect("config");
    let device = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = device.local_addr().expect("addr").port();

    let daemon = start(&spool, &config, &format!("lp=socket:127.0.0.1:{port}")).await;
    let c = client(&daemon).await;
    let (_, mut events) = c.watch().await.expect("watch");
    // The first job blocks on a device that reads a little, then stalls.
    let big: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
    let printing = submit(&c, "printing", 100, false, big.clone()).await;
    let (mut conn, _) = device.accept().await.expect("the printer is called");
    let mut first = [0; 4096];
    conn.read_exact(&mut first).await.expect("first bytes");
    wait_for_state(&mut events, printing, JobState::Printing).await;
    let mut expected_pending = Vec::new();
    let mut held = Vec::new();
    for (n, priority) in [30u8, 70, 30, 90, 70, 10, 50, 90].into_iter().enumerate() {
        let hold = n % 3 == 2;
        let id = submit(
            &c,
            &format!("job-{n}"),
            priority,
            hold,
            vec![b'0' + n as u8; 10],
        )
        .await;
        if hold {
            held.push(id);
        } else {
            expected_pending.push((priority, id));
        }
    }
    // Highest priority first, FIFO within a priority.
    expected_pending.sort_by_key(|&(priority, id)| (std::cmp::Reverse(priority), id));
    let mut expected: Vec<u64> = vec![printing];
    expected.extend(expected_pending.iter().map(|&(_, id)| id));
    // Paused, so after the restart nothing prints until it is checked; the
    // job printing now goes on printing.
    c.pause("lp").await.expect("pause");
    let before = c.list(&ListArgs::default()).await.expect("list");
    daemon.kill().await;
    drop(conn);

    // Restart on a file printer of the same name: the queue is the same.
    let out = dir.path().join("out");
    let daemon = start(&spool, &config, &format!("lp=file:{}", out.display())).await;
    let c = client(&daemon).await;
    let (_, mut events) = c.watch().await.expect("watch");
    let after = c.list(&ListArgs::default()).await.expect("list");
    assert_eq!(after.total, before.total, "no job lost or added");
    let interrupted = c.job(printing).await.expect("job");
    assert_eq!(interrupted.attempts, 1, "the interrupted attempt counts");
    assert!(
        interrupted
            .last_error
            .is_some_and(|e| e.contains("interrupted"))
    );
    let pending: Vec<u64> = after
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Pending)
        .map(|j| j.id)
        .collect();
    assert_eq!(pending, expected, "pending order after the restart");
    for job in &after.jobs {
        let was = before
            .jobs
            .iter()
            .find(|b| b.id == job.id)
            .expect("was there");
        assert_eq!((job.priority, &job.name), (was.priority, &was.name));
    }
    let mut still_held: Vec<u64> = after
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Held)
        .map(|j| j.id)
        .collect();
    still_held.sort_unstable();
    assert_eq!(still_held, held);

    c.resume("lp").await.expect("resume");
    let last = *expected.last().expect("jobs");
    wait_for_state(&mut events, last, JobState::Completed).await;
    let order: Vec<u64> = printed(&out).iter().map(|n| printed_id(n)).collect();
    assert_eq!(order, expected, "each pending job printed once, in order");
    let reprinted = std::fs::read(out.join(&printed(&out)[0])).expect("read");
    assert!(reprinted == big, "the interrupted job prints whole");
    daemon.kill().await;
}

#[tokio::test]
async fn the_history_bound_holds_across_a_sigkill_and_a_lowered_history_jobs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let config = dir.path().join("print.toml");
    std::fs::write(&config, "history_jobs = 3\n").expect("config");
    let printer = format!("lp=file:{}", dir.path().join("out").display());
    let daemon = start(&spool, &config, &printer).await;
    let c = client(&daemon).await;
    let (_, mut events) = c.watch().await.expect("watch");
    let mut ids = Vec::new();
    for n in 0..3u8 {
        let id = submit(&c, &format!("job-{n}"), 50, false, vec![n; 10]).await;
        wait_for_state(&mut events, id, JobState::Completed).await;
        ids.push(id);
    }
    let kept = c.history(&HistoryArgs::default()).await.expect("history");
    assert_eq!(kept.total, 3);
    daemon.kill().await;

    std::fs::write(&config, "history_jobs = 1\n").expect("config");
    let daemon = start(&spool, &config, &printer).await;
    let c = client(&daemon).await;
    let kept = c.history(&HistoryArgs::default()).await.expect("history");
    let kept: Vec<u64> = kept.jobs.iter().map(|j| j.id).collect();
    assert_eq!(kept, [ids[2]], "only the last job to finish stays");
    let docs = std::fs::read_dir(spool.join("docs")).expect("docs").count();
    assert_eq!(docs, 1, "the purged jobs' documents are gone");
    daemon.kill().await;
}

/// Whether process `pid` is alive: it exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn a_command_left_printing_by_a_sigkill_dies_before_the_reprint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let config = dir.path().join("print.toml");
    std::fs::write(&config, "aging_secs = 0\n").expect("config");
    let (go, log) = (dir.path().join("go"), dir.path().join("printed"));
    // The command takes the document, then prints (appends the job id to
    // the log) only once the test says go.
    let printer = format!(
        "lp=command:cat > /dev/null; while [ ! -e '{}' ]; do sleep 0.05; done; \
         echo \"$BACKROOM_JOB_ID\" >> '{}'",
        go.display(),
        log.display()
    );
    let daemon = start(&spool, &config, &printer).await;
    let c = client(&daemon).await;
    let (_, mut events) = c.watch().await.expect("watch");
    let id = submit(&c, "memo", 50, false, vec![b'x'; 1000]).await;
    let taken = async {
        loop {
            match events.next().await {
                Some(Ok(Event::Progress {
                    id: of, bytes_done, ..
                })) if of == id && bytes_done == 1000 => return,
                Some(Ok(_)) => {}
                other => panic!("the subscription ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), taken)
        .await
        .expect("the command took the document");
    let record = std::fs::read_to_string(spool.join("running/lp.pgid")).expect("recorded");
    let pgid: i32 = record
        .split_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .expect("a process group id");
    daemon.kill().await;
    assert!(alive(pgid), "the command outlives the server");

    let daemon = start(&spool, &config, &printer).await;
    assert!(
        !alive(pgid),
        "the restart killed the old command before it served"
    );
    let c = client(&daemon).await;
    let (_, mut events) = c.watch().await.expect("watch");
    std::fs::write(&go, b"").expect("go");
    let job = wait_for_state(&mut events, id, JobState::Completed).await;
    assert_eq!(job.attempts, 2, "the interrupted attempt and the reprint");
    assert_eq!(
        std::fs::read_to_string(&log).expect("printed"),
        format!("{id}\n"),
        "the reprint is the only print"
    );
    daemon.kill().await;
}

#[tokio::test]
async fn the_binary_refuses_a_bad_printer_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_backroom-print"))
        .arg("--spool")
        .arg(dir.path())
        .args(["--printer", "lp=fax:1", "--listen", "127.0.0.1:0"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown device kind"), "{stderr}");
}
