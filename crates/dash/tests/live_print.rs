//! The Print tab against the real print server, started in-process on
//! loopback: the queue and printers arrive, and keys pause a printer,
//! submit a local file and cancel the job, each seen back through `watch`.

use std::net::SocketAddr;

use backroom_api::print::{JobState, PrinterState};
use backroom_dash::app::{App, Clock};
use backroom_dash::driver;
use backroom_dash::server::Server;
use backroom_print::{Config, PrinterConfig};
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod common;
use common::{code, key, only, timing, until};

struct PrintServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PrintServer {
    async fn start(dir: &std::path::Path) -> PrintServer {
        let mut config = Config::new(dir.join("spool"));
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        let printer = format!("laser=file:{}", out.display());
        config.printers = vec![printer.parse::<PrinterConfig>().expect("printer")];
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_print::run(listener, config, shutdown)
                .await
                .expect("the print server runs");
        });
        PrintServer { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    format!("{}", terminal.backend())
}

#[tokio::test]
async fn the_print_tab_shows_a_job_submitted_from_it_and_cancels_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = PrintServer::start(tmp.path()).await;
    let endpoints = only(Server::Print, server.addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('3'));
    until(&mut app, &mut updates, |app| {
        let print = app.server(Server::Print);
        app.print.loaded && print.is_connected() && print.latency.is_some()
    })
    .await;
    assert_eq!(app.print.printers.len(), 1);
    assert!(app.print.jobs.is_empty());

    // Pause the printer, so the job stays in the queue to be looked at.
    app.handle_key(code(KeyCode::Right));
    app.handle_key(key('p'));
    until(&mut app, &mut updates, |app| {
        app.print.printers[0].state == PrinterState::Paused
    })
    .await;

    let document = tmp.path().join("memo.txt");
    std::fs::write(&document, "hello, printer\n").expect("document");
    app.handle_key(code(KeyCode::Left));
    app.handle_key(key('a'));
    for c in document.display().to_string().chars() {
        app.handle_key(key(c));
    }
    app.handle_key(code(KeyCode::Enter));
    app.handle_key(code(KeyCode::Backspace));
    app.handle_key(code(KeyCode::Backspace));
    for c in "75".chars() {
        app.handle_key(key(c));
    }
    // The printer field holds the default printer already.
    app.handle_key(code(KeyCode::Enter));
    app.handle_key(code(KeyCode::Enter));
    // The watch event and the request's answer race; wait for both.
    until(&mut app, &mut updates, |app| {
        let submitted = app
            .print
            .status
            .as_ref()
            .is_some_and(|s| s.text.starts_with("submitted"));
        submitted && app.print.jobs.iter().any(|j| j.name == "memo.txt")
    })
    .await;
    let job = &app.print.jobs[0];
    assert_eq!((job.priority, job.state), (75, JobState::Pending));

    let text = screen(&app);
    assert!(text.contains("memo.txt"), "{text}");
    insta::with_settings!({filters => vec![
        (r"\d+(\.\d)?m?s\b", "[dur]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"file:\S+", "file:[dir]"),
        (r"paused +\d+", "paused [n]"),
        (r" {2,}", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });

    app.handle_key(key('x'));
    app.handle_key(key('y'));
    until(&mut app, &mut updates, |app| {
        let cancelled = app
            .print
            .status
            .as_ref()
            .is_some_and(|s| s.text.starts_with("cancelled"));
        cancelled && app.print.jobs.is_empty()
    })
    .await;

    drop(connections);
    server.stop().await;
}

#[tokio::test]
async fn a_request_to_a_down_print_server_fails_at_once_with_a_reason() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let endpoints = only(Server::Print, addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let _connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('3'));
    until(&mut app, &mut updates, |app| app.outbox.print.is_some()).await;
    app.handle_key(code(KeyCode::Right));
    app.print.printers.push(backroom_api::print::PrinterInfo {
        name: "laser".into(),
        device: "sim:1".into(),
        state: PrinterState::Idle,
        accepting: true,
        stopped: false,
        current_job: None,
        queue_len: 0,
        last_error: None,
        classes: vec![],
    });
    app.handle_key(key('p'));
    until(&mut app, &mut updates, |app| app.print.status.is_some()).await;
    let status = app.print.status.clone().expect("a status");
    assert!(!status.ok, "{status:?}");
    assert!(status.text.contains("pause laser"), "{status:?}");
    let text = screen(&app);
    assert!(
        text.contains("reconnecting") || text.contains("connecting"),
        "{text}"
    );
}

#[tokio::test]
async fn a_job_that_prints_at_once_leaves_a_notice_and_stays_in_the_history() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = PrintServer::start(tmp.path()).await;
    let endpoints = only(Server::Print, server.addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('3'));
    until(&mut app, &mut updates, |app| app.print.loaded).await;

    let document = tmp.path().join("quick.txt");
    std::fs::write(&document, "printed at once\n").expect("document");
    app.handle_key(key('a'));
    for c in document.display().to_string().chars() {
        app.handle_key(key(c));
    }
    app.handle_key(code(KeyCode::Enter));
    app.handle_key(code(KeyCode::Enter));
    let prompt = app.print.prompt.as_ref().expect("the form is open");
    assert_eq!(
        prompt.value(2),
        "laser",
        "the printer field holds the default"
    );
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| {
        let printed = app
            .print
            .status
            .as_ref()
            .is_some_and(|s| s.ok && s.text.contains("printed on laser"));
        printed && app.print.jobs.is_empty()
    })
    .await;
    assert_eq!(app.print.finished[0].name, "quick.txt");
    assert_eq!(app.print.finished[0].state, JobState::Completed);

    app.handle_key(key('F'));
    let text = screen(&app);
    assert!(text.contains("Finished"), "{text}");
    assert!(
        text.contains("quick.txt") && text.contains("completed"),
        "{text}"
    );

    drop(connections);
    server.stop().await;
}
