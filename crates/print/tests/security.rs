//! Bad and hostile input: each gets a typed error and the server keeps
//! serving.

mod common;

use backroom_api::print::{JobState, ListArgs, PrintClient, SubmitArgs, method};
use backroom_frame::ErrorCode;
use backroom_frame::auth::{Auth, Role, User, hash_token};
use bytes::Bytes;
use common::{Server, config, out_dir, printed, submit, wait_for_state};
use serde::Serialize;

async fn file_server(dir: &std::path::Path) -> Server {
    let spec = format!("lp=file:{}", out_dir(dir).display());
    Server::start(config(dir, &[&spec])).await
}

async fn refused(c: &PrintClient, args: &SubmitArgs) -> ErrorCode {
    c.submit(args, Bytes::from_static(b"doc"))
        .await
        .expect_err("refused")
        .code
}

#[tokio::test]
async fn bad_submissions_are_refused_with_typed_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = file_server(dir.path()).await;
    let c = server.client().await;
    let with = |f: &dyn Fn(&mut SubmitArgs)| {
        let mut args = SubmitArgs::new("doc");
        f(&mut args);
        args
    };
    let cases: Vec<(SubmitArgs, ErrorCode)> = vec![
        (with(&|a| a.priority = Some(0)), ErrorCode::BadRequest),
        (with(&|a| a.priority = Some(101)), ErrorCode::BadRequest),
        (with(&|a| a.copies = 0), ErrorCode::BadRequest),
        (with(&|a| a.copies = 1_000_000), ErrorCode::BadRequest),
        (with(&|a| a.name = String::new()), ErrorCode::BadRequest),
        (with(&|a| a.name = "a\nb".into()), ErrorCode::BadRequest),
        (
            with(&|a| a.name = "x".repeat(10_000)),
            ErrorCode::BadRequest,
        ),
        (
            with(&|a| a.printer = Some("nope".into())),
            ErrorCode::NotFound,
        ),
        (
            with(&|a| a.printer = Some("../lp".into())),
            ErrorCode::NotFound,
        ),
        (with(&|a| a.size = Some(u64::MAX)), ErrorCode::Busy),
    ];
    for (args, code) in cases {
        assert_eq!(refused(&c, &args).await, code, "{args:?}");
        assert_eq!(c.validate(&args).await.expect_err("invalid").code, code);
    }
    assert_eq!(
        c.list(&ListArgs {
            all: true,
            ..ListArgs::default()
        })
        .await
        .expect("list")
        .total,
        0
    );
    let spool = std::fs::read_dir(dir.path().join("spool/docs"))
        .expect("docs")
        .count();
    assert_eq!(spool, 0, "refused documents leave nothing behind");
    server.stop().await;
}

#[tokio::test]
async fn garbage_and_unknown_methods_get_errors_and_the_server_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = file_server(dir.path()).await;
    let c = server.client().await;
    let raw = c.client();
    let err = raw
        .call("shred_everything", backroom_frame::body::NIL.clone())
        .await
        .expect_err("unknown");
    assert_eq!(err.code, ErrorCode::UnknownMethod);
    let wrong_shape = backroom_frame::body::encode(&["not", "list", "arguments"]);
    let err = raw
        .call(method::LIST, wrong_shape)
        .await
        .expect_err("wrong shape");
    assert_eq!(err.code, ErrorCode::BadRequest);
    // Bytes that are not even MessagePack break the frame: the runtime drops
    // that connection with an error, and the server serves the next one.
    let broken = server.client().await;
    let err = broken
        .client()
        .call(method::LIST, Bytes::from_static(b"\xc1\xff\x00garbage"))
        .await
        .expect_err("garbage");
    assert_eq!(err.code, ErrorCode::BadRequest);
    #[derive(Serialize)]
    struct Huge {
        id: u64,
        priority: u64,
    }
    let err = raw
        .request::<_, ()>(
            method::SET_PRIORITY,
            &Huge {
                id: 1,
                priority: 1 << 40,
            },
        )
        .await
        .expect_err("huge");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = raw
        .request::<_, ()>(method::SUBMIT, &SubmitArgs::new("no stream"))
        .await
        .expect_err("stream");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let err = c.job(u64::MAX).await.expect_err("none");
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");
    assert_eq!(
        c.cancel(0).await.expect_err("none").code,
        ErrorCode::NotFound
    );
    assert_eq!(
        c.pause("../../etc").await.expect_err("none").code,
        ErrorCode::NotFound
    );
    assert_eq!(
        c.hold_all("nope").await.expect_err("none").code,
        ErrorCode::NotFound
    );
    let job = submit(&c, "after all that", 50, b"still serving").await;
    assert_eq!(job.state, JobState::Pending);
    server.stop().await;
}

#[tokio::test]
async fn a_job_name_with_dots_and_slashes_prints_inside_the_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = file_server(dir.path()).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let job = submit(&c, "../../escaped", 50, b"contained").await;
    wait_for_state(&mut events, job.id, JobState::Completed).await;
    let names = printed(&out_dir(dir.path()));
    assert_eq!(names, [format!("00000001_{}__.._escaped", job.id)]);
    assert!(!dir.path().join("escaped").exists());
    server.stop().await;
}

#[tokio::test]
async fn operations_the_state_forbids_are_conflicts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = file_server(dir.path()).await;
    let c = server.client().await;
    let (_, mut events) = c.watch().await.expect("watch");
    let done = submit(&c, "done", 50, b"x").await;
    wait_for_state(&mut events, done.id, JobState::Completed).await;
    assert_eq!(
        c.cancel(done.id).await.expect_err("done").code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.hold(done.id).await.expect_err("done").code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.set_priority(done.id, 9).await.expect_err("done").code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.move_job(done.id, "lp").await.expect_err("done").code,
        ErrorCode::Conflict
    );
    c.pause("lp").await.expect("pause");
    let waiting = submit(&c, "waiting", 50, b"y").await;
    assert_eq!(
        c.restart(waiting.id).await.expect_err("pending").code,
        ErrorCode::Conflict
    );
    assert_eq!(
        c.set_priority(waiting.id, 0).await.expect_err("zero").code,
        ErrorCode::BadRequest
    );
    assert_eq!(
        c.move_job(waiting.id, "nope").await.expect_err("none").code,
        ErrorCode::NotFound
    );
    c.reject("lp").await.expect("reject");
    assert_eq!(
        refused(&c, &SubmitArgs::new("rejected")).await,
        ErrorCode::Conflict
    );
    c.accept("lp").await.expect("accept");
    assert_eq!(
        c.cancel(waiting.id).await.expect("cancel").state,
        JobState::Cancelled
    );
    server.stop().await;
}

#[tokio::test]
async fn a_full_queue_or_spool_answers_busy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = format!("lp=file:{}", out_dir(dir.path()).display());
    let mut config = config(dir.path(), &[&spec]);
    config.policy.max_jobs = 2;
    config.policy.max_spool_bytes = 1000;
    let server = Server::start(config).await;
    let c = server.client().await;
    c.pause("lp").await.expect("pause");
    submit(&c, "one", 50, b"1").await;
    submit(&c, "two", 50, b"2").await;
    let err = c
        .submit(&SubmitArgs::new("three"), Bytes::from_static(b"3"))
        .await
        .expect_err("full");
    assert_eq!(err.code, ErrorCode::Busy);
    assert!(err.message.contains("queue is full"), "{}", err.message);
    let cancelled = c.list(&ListArgs::default()).await.expect("list").jobs[0].id;
    c.cancel(cancelled).await.expect("cancel");
    // Room for a job again, but not for its bytes: refused as they arrive.
    let err = c
        .submit(&SubmitArgs::new("too big"), Bytes::from(vec![0; 5000]))
        .await
        .expect_err("spool full");
    assert_eq!(err.code, ErrorCode::Busy);
    assert!(err.message.contains("spool is full"), "{}", err.message);
    let spool = std::fs::read_dir(dir.path().join("spool/docs"))
        .expect("docs")
        .count();
    assert_eq!(spool, 2, "the refused document is gone");
    submit(&c, "fits", 50, &[0; 900]).await;
    server.stop().await;
}

#[tokio::test]
async fn a_document_shorter_or_longer_than_its_declared_size_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = file_server(dir.path()).await;
    let c = server.client().await;
    c.pause("lp").await.expect("pause");
    let mut short = SubmitArgs::new("short");
    short.size = Some(10);
    let err = c
        .submit(&short, Bytes::from_static(b"abc"))
        .await
        .expect_err("3 of 10 bytes");
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(
        err.message.contains("3 of its declared 10"),
        "{}",
        err.message
    );
    let mut long = SubmitArgs::new("long");
    long.size = Some(2);
    let err = c
        .submit(&long, Bytes::from_static(b"abc"))
        .await
        .expect_err("3 bytes for 2");
    assert_eq!(err.code, ErrorCode::BadRequest);
    let all = ListArgs {
        all: true,
        ..ListArgs::default()
    };
    assert_eq!(c.list(&all).await.expect("list").total, 0);
    let spool = std::fs::read_dir(dir.path().join("spool/docs"))
        .expect("docs")
        .count();
    assert_eq!(spool, 0, "refused documents leave nothing behind");
    let mut exact = SubmitArgs::new("exact");
    exact.size = Some(3);
    c.submit(&exact, Bytes::from_static(b"abc"))
        .await
        .expect("an exact size is queued");
    server.stop().await;
}

#[tokio::test]
async fn rights_follow_roles_and_ownership() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = format!("lp=file:{}", out_dir(dir.path()).display());
    let mut config = config(dir.path(), &[&spec]);
    let user = |name: &str, role| User {
        name: name.into(),
        token_sha256: hash_token(&format!("token-{name}")),
        role,
    };
    config.frame.auth = Auth::new(vec![
        user("ann", Role::ReadWrite),
        user("bob", Role::ReadWrite),
        user("eve", Role::ReadOnly),
        user("root", Role::Admin),
    ])
    .expect("auth")
    .into();
    let server = Server::start(config).await;
    let connect = |name: &str| PrintClient::connect(&server.addr, Some(format!("token-{name}")));
    let (ann, bob, eve, root) = (
        connect("ann").await.expect("ann"),
        connect("bob").await.expect("bob"),
        connect("eve").await.expect("eve"),
        connect("root").await.expect("root"),
    );
    root.pause("lp").await.expect("pause");
    let job = submit(&ann, "ann's", 50, b"a").await;
    assert_eq!(job.owner, "ann");
    assert_eq!(
        refused(&eve, &SubmitArgs::new("eve's")).await,
        ErrorCode::Forbidden
    );
    assert_eq!(
        bob.cancel(job.id).await.expect_err("not his").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        bob.set_priority(job.id, 99)
            .await
            .expect_err("not his")
            .code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ann.promote(job.id).await.expect_err("admin").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ann.resume("lp").await.expect_err("admin").code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ann.purge(0).await.expect_err("admin").code,
        ErrorCode::Forbidden
    );
    assert_eq!(eve.list(&ListArgs::default()).await.expect("read").total, 1);
    assert_eq!(
        ann.set_priority(job.id, 80).await.expect("own").priority,
        80
    );
    assert!(root.promote(job.id).await.expect("admin").promoted);
    assert_eq!(
        root.cancel(job.id).await.expect("admin").state,
        JobState::Cancelled
    );
    server.stop().await;
}
