//! The print server's vital signs in `info`, and its bounded history of
//! finished jobs.

mod common;

use backroom_api::print::{Event, HistoryArgs, JobState, PrinterState, SubmitArgs, vital};
use backroom_frame::ErrorCode;
use backroom_frame::server::Info;
use bytes::Bytes;
use common::{Server, config, out_dir, submit, wait_for_state};
use tokio::net::TcpListener;

fn value(info: &Info, name: &str) -> f64 {
    info.vital(name)
        .unwrap_or_else(|| panic!("no vital sign {name} in {:?}", info.vitals))
        .value
}

#[tokio::test]
async fn info_shows_the_queue_and_a_held_job_raises_queued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = format!("lp=file:{}", out_dir(dir.path()).display());
    let server = Server::start(config(dir.path(), &[&spec])).await;
    let c = server.client().await;
    let before = c.client().info().await.expect("info");
    for name in [
        vital::QUEUED,
        vital::PRINTING,
        vital::IN_ERROR,
        vital::FINISHED,
    ] {
        assert_eq!(value(&before, name), 0.0, "{name}");
    }
    let mut held = SubmitArgs::new("held");
    held.hold = true;
    let job = c
        .submit(&held, Bytes::from_static(b"page"))
        .await
        .expect("submitted");
    let queued = c.client().info().await.expect("info");
    assert_eq!(value(&queued, vital::QUEUED), 1.0);
    let (_, mut events) = c.watch().await.expect("watch");
    c.release(job.id).await.expect("released");
    wait_for_state(&mut events, job.id, JobState::Completed).await;
    let printed = c.client().info().await.expect("info");
    assert_eq!(value(&printed, vital::QUEUED), 0.0);
    assert_eq!(value(&printed, vital::FINISHED), 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_printer_in_error_is_an_alert() {
    let dir = tempfile::tempdir().expect("temp dir");
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut config = config(dir.path(), &[&format!("net=socket:127.0.0.1:{port}")]);
    config.policy.max_attempts = 1;
    config.policy.error_policy = "stop-printer".parse().expect("policy");
    let server = Server::start(config).await;
    let c = server.client().await;
    let calm = c.client().info().await.expect("info");
    assert!(!calm.vital(vital::IN_ERROR).expect("in error").alert);
    let (_, mut events) = c.watch().await.expect("watch");
    submit(&c, "stuck", 50, b"data").await;
    loop {
        match events.next().await {
            Some(Ok(Event::Printer { printer })) if printer.state == PrinterState::Error => break,
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    }
    let info = c.client().info().await.expect("info");
    let in_error = info.vital(vital::IN_ERROR).expect("in error");
    assert_eq!(in_error.value, 1.0);
    assert!(in_error.alert);
    server.stop().await;
}

#[tokio::test]
async fn the_history_keeps_the_last_finished_jobs_and_purges_the_oldest_with_their_documents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = format!("lp=file:{}", out_dir(dir.path()).display());
    let mut config = config(dir.path(), &[&spec]);
    config.policy.history_jobs = 2;
    let server = Server::start(config).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let id = submit(&c, name, 50, b"page").await.id;
        wait_for_state(&mut events, id, JobState::Completed).await;
        ids.push(id);
    }
    let purged = loop {
        match events.next().await {
            Some(Ok(Event::Purged { id })) => break id,
            Some(Ok(_)) => {}
            other => panic!("the subscription ended: {other:?}"),
        }
    };
    assert_eq!(purged, ids[0]);
    let history = c.history(&HistoryArgs::default()).await.expect("history");
    let kept: Vec<u64> = history.jobs.iter().map(|j| j.id).collect();
    assert_eq!(kept, [ids[2], ids[1]]);
    assert_eq!(history.total, 2);
    let docs = std::fs::read_dir(dir.path().join("spool").join("docs"))
        .expect("docs")
        .count();
    assert_eq!(docs, 2);
    let pending = HistoryArgs {
        state: Some(JobState::Pending),
        ..HistoryArgs::default()
    };
    let refused = c.history(&pending).await.expect_err("not a finished state");
    assert_eq!(refused.code, ErrorCode::BadRequest);
    server.stop().await;
}
