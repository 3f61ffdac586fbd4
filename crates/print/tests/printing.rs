//! A print server in-process: devices, order, bounds, failures and events.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use backroom_api::print::{Event, JobState, ListArgs, PrinterState, SubmitArgs};
use backroom_frame::ErrorCode;
use bytes::Bytes;
use common::{Server, config, out_dir, printed, printed_id, submit, wait_for_state};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn the_socket_printer_sends_exactly_the_submitted_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let printer = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = printer.local_addr().expect("addr").port();
    let server = Server::start(config(
        dir.path(),
        &[&format!("net=socket:127.0.0.1:{port}")],
    ))
    .await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let document = pattern(300_000);
    let job = submit(&c, "report.pdf", 50, &document).await;
    assert_eq!(job.size, document.len() as u64);
    let (mut conn, _) = printer.accept().await.expect("the printer is called");
    let mut received = Vec::new();
    conn.read_to_end(&mut received).await.expect("read");
    assert_eq!(received, document);
    let done = wait_for_state(&mut events, job.id, JobState::Completed).await;
    assert_eq!((done.attempts, done.bytes_done), (1, document.len() as u64));
    assert_eq!(done.device.as_deref(), Some("net"));
    assert!(done.started_ms.is_some() && done.finished_ms >= done.started_ms);
    server.stop().await;
}

#[tokio::test]
async fn jobs_print_by_priority_then_in_submission_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir(dir.path());
    let spec = format!("lp=file:{}", out.display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    c.pause("lp").await.expect("pause");
    let (_, mut events) = c.watch().await.expect("watch");
    let mut ids = Vec::new();
    for (name, priority) in [("a", 10), ("b", 90), ("c", 50), ("d", 90), ("e", 10)] {
        ids.push(submit(&c, name, priority, name.as_bytes()).await.id);
    }
    let raised = c.set_priority(ids[4], 95).await.expect("priority");
    assert_eq!(raised.priority, 95);
    let promoted = c.promote(ids[0]).await.expect("promote");
    assert!(promoted.promoted);
    let listed: Vec<u64> = c
        .list(&ListArgs::default())
        .await
        .expect("list")
        .jobs
        .iter()
        .map(|j| j.id)
        .collect();
    let expected = [ids[0], ids[4], ids[1], ids[3], ids[2]];
    assert_eq!(listed, expected);
    c.resume("lp").await.expect("resume");
    wait_for_state(&mut events, ids[2], JobState::Completed).await;
    let order: Vec<u64> = printed(&out).iter().map(|n| printed_id(n)).collect();
    assert_eq!(order, expected);
    assert_eq!(
        std::fs::read(out.join(&printed(&out)[0])).expect("read"),
        b"a"
    );
    server.stop().await;
}

#[tokio::test]
async fn hold_and_release_work_per_job_and_in_bulk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir(dir.path());
    let spec = format!("lp=file:{}", out.display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    c.pause("lp").await.expect("pause");
    let (_, mut events) = c.watch().await.expect("watch");
    let mut held = SubmitArgs::new("held from the start");
    held.hold = true;
    let first = c
        .submit(&held, Bytes::from_static(b"1"))
        .await
        .expect("submit");
    assert_eq!(first.state, JobState::Held);
    let second = submit(&c, "second", 50, b"2").await;
    assert_eq!(c.hold(second.id).await.expect("hold").state, JobState::Held);
    let third = submit(&c, "third", 50, b"3").await;
    assert_eq!(c.hold_all("lp").await.expect("hold all").count, 1);
    let state = ListArgs {
        state: Some(JobState::Held),
        ..ListArgs::default()
    };
    assert_eq!(c.list(&state).await.expect("list").total, 3);
    c.resume("lp").await.expect("resume");
    assert_eq!(
        c.release(second.id).await.expect("release").state,
        JobState::Pending
    );
    wait_for_state(&mut events, second.id, JobState::Completed).await;
    assert_eq!(printed(&out).len(), 1, "the held jobs wait");
    assert_eq!(c.release_all("lp").await.expect("release all").count, 2);
    wait_for_state(&mut events, third.id, JobState::Completed).await;
    let order: Vec<u64> = printed(&out).iter().map(|n| printed_id(n)).collect();
    assert_eq!(order, [second.id, first.id, third.id]);
    server.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_the_job_is_aborted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut config = config(dir.path(), &[&format!("net=socket:127.0.0.1:{port}")]);
    config.policy.max_attempts = 3;
    config.policy.error_policy = "abort-job".parse().expect("policy");
    let server = Server::start(config).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "doomed", 50, b"data").await;
    let next = submit(&c, "next", 50, b"data").await;
    let aborted = wait_for_state(&mut events, job.id, JobState::Aborted).await;
    assert_eq!(aborted.attempts, 3);
    assert!(
        aborted
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot connect"))
    );
    let waiting = c.job(next.id).await.expect("job");
    assert_ne!(waiting.state, JobState::Completed);
    assert!(waiting.attempts <= 3);
    server.stop().await;
}

#[tokio::test]
async fn a_command_that_never_exits_times_out_by_the_error_policy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = config(dir.path(), &["hang=command:cat > /dev/null; sleep 1000"]);
    config.printers[0].timeout = Some(Duration::from_millis(300));
    config.policy.max_attempts = 2;
    config.policy.error_policy = "abort-job".parse().expect("policy");
    let server = Server::start(config).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "stuck", 50, b"data").await;
    let aborted = wait_for_state(&mut events, job.id, JobState::Aborted).await;
    assert_eq!(aborted.attempts, 2, "each attempt timed out");
    let error = aborted.last_error.unwrap_or_default();
    assert!(error.contains("did not finish"), "{error}");
    assert!(
        std::fs::read_dir(dir.path().join("spool/running"))
            .expect("running")
            .next()
            .is_none(),
        "no command is left recorded as running"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failing_device_stops_the_printer_under_stop_printer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut config = config(dir.path(), &[&format!("net=socket:127.0.0.1:{port}")]);
    config.policy.max_attempts = 2;
    config.policy.error_policy = "stop-printer".parse().expect("policy");
    let server = Server::start(config).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "stuck", 50, b"data").await;
    let stopped = loop {
        match events.next().await {
            Some(Ok(Event::Printer { printer })) if printer.stopped => break printer,
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    };
    assert_eq!(stopped.state, PrinterState::Error);
    assert!(stopped.last_error.is_some());
    let job = c.job(job.id).await.expect("job");
    assert_eq!((job.state, job.attempts), (JobState::Pending, 2));
    let printers = c.printers().await.expect("printers");
    assert!(printers.printers[0].stopped);
    assert_eq!(printers.printers[0].queue_len, 1);
    server.stop().await;
}

#[tokio::test]
async fn cancelling_a_printing_job_stops_the_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let printer = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = printer.local_addr().expect("addr").port();
    let server = Server::start(config(
        dir.path(),
        &[&format!("net=socket:127.0.0.1:{port}")],
    ))
    .await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    // Far more than socket buffers hold: the device blocks until it is read.
    let job = submit(&c, "long", 50, &pattern(16 << 20)).await;
    let (mut conn, _) = printer.accept().await.expect("the printer is called");
    let mut first = [0; 1024];
    conn.read_exact(&mut first).await.expect("the first bytes");
    wait_for_state(&mut events, job.id, JobState::Printing).await;
    let cancelled = c.cancel(job.id).await.expect("cancel");
    assert_eq!(cancelled.state, JobState::Cancelled);
    // The device hangs up: the rest of the stream ends well short of it all.
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    assert!(rest.len() + 1024 < 16 << 20, "read {} bytes", rest.len());
    let idle = loop {
        match events.next().await {
            Some(Ok(Event::Printer { printer })) if printer.current_job.is_none() => break printer,
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    };
    assert_eq!(idle.state, PrinterState::Idle);
    assert_eq!(c.job(job.id).await.expect("job").state, JobState::Cancelled);
    server.stop().await;
}

/// Waits until job `id` has handed its whole document (`size` bytes) to
/// the device.
async fn wait_until_taken(
    events: &mut backroom_frame::client::Subscription<Event>,
    id: u64,
    size: u64,
) {
    let taken = async {
        loop {
            match events.next().await {
                Some(Ok(Event::Progress {
                    id: of, bytes_done, ..
                })) if of == id && bytes_done == size => return,
                Some(Ok(_)) => {}
                other => panic!("the subscription ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), taken)
        .await
        .expect("the device took the document");
}

#[tokio::test]
async fn a_cancelled_or_stopped_command_leaves_no_process_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid = dir.path().join("pid");
    // The shell writes its id (its group's) and waits in a child, as the
    // issue's `cat >/dev/null; sleep 1000` does.
    let spec = format!(
        "lp=command:echo $$ > '{}'; cat > /dev/null; sleep 1000",
        pid.display()
    );
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    // Larger than a pipe's buffer: once it is all taken, the id is written.
    let size = 256 * 1024;
    let read_pgid = || -> i32 {
        std::fs::read_to_string(&pid)
            .expect("the command wrote its id")
            .trim()
            .parse()
            .expect("a pid")
    };

    let job = submit(&c, "cancelled", 50, &pattern(size)).await;
    wait_until_taken(&mut events, job.id, size as u64).await;
    let pgid = read_pgid();
    c.cancel(job.id).await.expect("cancel");
    // Off the runtime: the worker must run to stop the device.
    let gone = tokio::task::spawn_blocking(move || common::group_gone(pgid));
    assert!(gone.await.expect("wait"), "a cancel kills the whole group");

    std::fs::remove_file(&pid).expect("remove the id");
    let job = submit(&c, "stopped", 50, &pattern(size)).await;
    wait_until_taken(&mut events, job.id, size as u64).await;
    let pgid = read_pgid();
    server.stop().await;
    assert!(common::group_gone(pgid), "a shutdown kills the whole group");
}

#[tokio::test]
async fn eight_submitters_each_job_prints_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir(dir.path());
    let spec = format!("lp=file:{}", out.display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    // Read events while the submitters run, so none are lost to a backlog.
    let watcher = tokio::spawn(async move {
        let mut completed = HashSet::new();
        while completed.len() < 1600 {
            let event = tokio::time::timeout(Duration::from_secs(60), events.next())
                .await
                .expect("progress in time");
            match event {
                Some(Ok(Event::Job { job })) if job.state == JobState::Completed => {
                    assert!(completed.insert(job.id), "job {} completed twice", job.id);
                }
                Some(Ok(Event::Lagged { missed })) => panic!("lost {missed} events"),
                Some(Ok(_)) => {}
                other => panic!("the subscription ended: {other:?}"),
            }
        }
        completed
    });
    let mut tasks = Vec::new();
    for submitter in 0..8 {
        let c = server.client().await;
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..200 {
                let name = format!("s{submitter}-{n}");
                ids.push(
                    submit(&c, &name, 1 + (n % 100) as u8, name.as_bytes())
                        .await
                        .id,
                );
            }
            ids
        }));
    }
    let mut submitted = HashSet::new();
    for task in tasks {
        submitted.extend(task.await.expect("submitter"));
    }
    assert_eq!(submitted.len(), 1600);
    let completed = watcher.await.expect("watcher");
    assert_eq!(completed, submitted);
    let ids: Vec<u64> = printed(&out).iter().map(|n| printed_id(n)).collect();
    assert_eq!(ids.len(), 1600, "one file per job");
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), submitted);
    server.stop().await;
}

#[tokio::test]
async fn a_class_job_goes_to_the_first_idle_member() {
    let dir = tempfile::tempdir().expect("temp dir");
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let specs = [
        format!("one=file:{}", one.display()),
        format!("two=file:{}", two.display()),
    ];
    let mut config = config(dir.path(), &[&specs[0], &specs[1]]);
    config.classes.push(backroom_print::ClassConfig {
        name: "pool".into(),
        members: vec!["one".into(), "two".into()],
    });
    let server = Server::start(config).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let mut args = SubmitArgs::new("pooled");
    args.printer = Some("pool".into());
    let job = c
        .submit(&args, Bytes::from_static(b"x"))
        .await
        .expect("submit");
    assert_eq!(job.printer, "pool");
    let done = wait_for_state(&mut events, job.id, JobState::Completed).await;
    assert_eq!(done.device.as_deref(), Some("one"));
    c.pause("one").await.expect("pause");
    let job = c
        .submit(&args, Bytes::from_static(b"y"))
        .await
        .expect("submit");
    let done = wait_for_state(&mut events, job.id, JobState::Completed).await;
    assert_eq!(done.device.as_deref(), Some("two"), "one is paused");
    assert_eq!(printed(&two).len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn events_follow_a_job_from_queue_to_paper() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir(dir.path());
    let spec = format!("lp=file:{}", out.display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "watched", 50, &pattern(200_000)).await;
    let mut seen = Vec::new();
    let mut bytes = 0;
    let mut printer_states = Vec::new();
    while seen.last() != Some(&JobState::Completed) {
        match events.next().await {
            Some(Ok(Event::Job { job: j })) if j.id == job.id => seen.push(j.state),
            Some(Ok(Event::Progress { id, bytes_done, .. })) if id == job.id => {
                assert!(bytes_done > bytes, "progress grows");
                bytes = bytes_done;
            }
            Some(Ok(Event::Printer { printer })) => printer_states.push(printer.state),
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [JobState::Pending, JobState::Printing, JobState::Completed]
    );
    assert_eq!(bytes, 200_000);
    assert!(printer_states.contains(&PrinterState::Printing));
    // The printer's own change follows the job's.
    loop {
        match events.next().await {
            Some(Ok(Event::Printer { printer })) => {
                assert_eq!(printer.state, PrinterState::Idle);
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn history_restarts_and_purges() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = out_dir(dir.path());
    let spec = format!("lp=file:{}", out.display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "again", 50, b"twice").await;
    wait_for_state(&mut events, job.id, JobState::Completed).await;
    let restarted = c.restart(job.id).await.expect("restart");
    assert_eq!(
        (restarted.state, restarted.attempts),
        (JobState::Pending, 0)
    );
    wait_for_state(&mut events, job.id, JobState::Completed).await;
    assert_eq!(printed(&out).len(), 2);
    let all = ListArgs {
        all: true,
        ..ListArgs::default()
    };
    assert_eq!(c.list(&all).await.expect("list").total, 1);
    assert_eq!(c.list(&ListArgs::default()).await.expect("list").total, 0);
    assert_eq!(c.purge(3600).await.expect("purge").count, 0, "too recent");
    assert_eq!(c.purge(0).await.expect("purge").count, 1);
    assert_eq!(
        c.job(job.id).await.expect_err("gone").code,
        ErrorCode::NotFound
    );
    let docs = std::fs::read_dir(dir.path().join("spool/docs"))
        .expect("docs")
        .count();
    assert_eq!(docs, 0, "the document went with its job");
    server.stop().await;
}
