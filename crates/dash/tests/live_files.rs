//! The Files tab against the real file server, started in-process on
//! loopback: the listing arrives, keys make a folder, upload and download
//! a file with progress, checksum and delete it, and a change made by
//! another client shows through `watch`.

use std::net::SocketAddr;
use std::path::Path;

use backroom_api::files::{FilesClient, Kind, WriteArgs, WriteMode};
use backroom_dash::app::{App, Clock};
use backroom_dash::driver;
use backroom_dash::server::Server;
use bytes::Bytes;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod common;
use common::{code, key, only, timing, until};

struct FilesServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl FilesServer {
    async fn start(root: &Path) -> FilesServer {
        std::fs::create_dir_all(root).expect("root");
        let config = backroom_files::Config::new(root);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_files::run(listener, config, shutdown)
                .await
                .expect("the file server runs");
        });
        FilesServer { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

fn type_in(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle_key(key(c));
    }
}

fn listed(app: &App, name: &str) -> bool {
    app.files.entries.iter().any(|e| e.name == name)
}

fn status_says(app: &App, start: &str) -> bool {
    app.files
        .status
        .as_ref()
        .is_some_and(|s| s.text.starts_with(start))
}

fn select(app: &mut App, name: &str) {
    for _ in 0..app.files.entries.len() {
        app.handle_key(key('k'));
    }
    for _ in 0..app.files.entries.len() {
        if app.files.selected.as_deref() == Some(name) {
            return;
        }
        app.handle_key(key('j'));
    }
    assert_eq!(app.files.selected.as_deref(), Some(name));
}

#[tokio::test]
async fn the_files_tab_browses_transfers_and_follows_changes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    let server = FilesServer::start(&root).await;
    let endpoints = only(Server::Files, server.addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('2'));
    until(&mut app, &mut updates, |app| {
        app.files.loaded && app.server(Server::Files).is_connected()
    })
    .await;
    assert!(app.files.entries.is_empty());

    // A folder made from the tab appears from the watch event.
    app.handle_key(key('n'));
    type_in(&mut app, "reports");
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| listed(app, "reports")).await;
    assert_eq!(app.files.entries[0].kind, Kind::Dir);

    // Into it, and upload a local file there.
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| {
        app.files.cwd == "reports" && app.files.loaded
    })
    .await;
    let local = tmp.path().join("q3.csv");
    let data = "quarter,total\n".repeat(20_000);
    std::fs::write(&local, &data).expect("local file");
    app.handle_key(key('u'));
    type_in(&mut app, &local.display().to_string());
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| {
        let finished = app.files.transfers.iter().any(|t| t.result.is_some());
        finished && listed(app, "q3.csv")
    })
    .await;
    let upload = &app.files.transfers[0];
    assert_eq!(
        upload.result,
        Some(Ok(format!(
            "uploaded reports/q3.csv ({} bytes)",
            data.len()
        )))
    );
    assert_eq!(
        (upload.done, upload.total),
        (data.len() as u64, data.len() as u64)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("reports/q3.csv")).expect("stored"),
        data
    );

    // Download it back, with its progress, to a local path.
    let back = tmp.path().join("back.csv");
    select(&mut app, "q3.csv");
    app.handle_key(key('d'));
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_in(&mut app, &back.display().to_string());
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| {
        app.files
            .transfers
            .iter()
            .filter(|t| t.result.is_some())
            .count()
            == 2
    })
    .await;
    let download = &app.files.transfers[1];
    assert!(matches!(&download.result, Some(Ok(_))), "{download:?}");
    assert_eq!(std::fs::read_to_string(&back).expect("downloaded"), data);

    app.handle_key(key('c'));
    until(&mut app, &mut updates, |app| status_says(app, "sha256")).await;

    // Another client's change shows without any key.
    let other = FilesClient::connect(&server.addr.to_string(), None)
        .await
        .expect("connect");
    other
        .write_all(
            &WriteArgs::new("reports/notes.txt", WriteMode::CreateNew),
            Bytes::from_static(b"hello"),
        )
        .await
        .expect("write");
    until(&mut app, &mut updates, |app| listed(app, "notes.txt")).await;

    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(&app, frame.area()))
        .expect("draw");
    let text = format!("{}", terminal.backend());
    assert!(text.contains("/reports"), "{text}");
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\d \d\d:\d\d", "[date]"),
        (r"\d+(\.\d)?m?s\b", "[dur]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"to /[^│]*│", "to [path]│"),
        (r"sha256 [0-9a-f]+", "sha256 [hex]"),
        (r" {2,}", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });

    // Delete asks first; yes removes it, and the list follows.
    select(&mut app, "notes.txt");
    app.handle_key(key('x'));
    assert!(app.confirm.is_some());
    app.handle_key(key('y'));
    until(&mut app, &mut updates, |app| !listed(app, "notes.txt")).await;

    // Backspace goes back up, with the folder left selected.
    app.handle_key(code(KeyCode::Backspace));
    until(&mut app, &mut updates, |app| {
        app.files.cwd.is_empty() && app.files.loaded
    })
    .await;
    assert_eq!(app.files.selected.as_deref(), Some("reports"));

    drop(connections);
    server.stop().await;
}

#[tokio::test]
async fn a_local_file_that_cannot_be_read_is_not_called_a_bad_request() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("root");
    let server = FilesServer::start(&root).await;
    let endpoints = only(Server::Files, server.addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('2'));
    until(&mut app, &mut updates, |app| app.files.loaded).await;
    app.handle_key(key('u'));
    let missing = tmp.path().join("no-such-file.txt");
    type_in(&mut app, &missing.display().to_string());
    app.handle_key(code(KeyCode::Enter));
    until(&mut app, &mut updates, |app| {
        app.files.transfers.iter().any(|t| t.result.is_some())
    })
    .await;
    let Some(Err(error)) = &app.files.transfers[0].result else {
        panic!("the upload failed: {:?}", app.files.transfers);
    };
    assert!(error.starts_with("cannot open"), "{error}");
    assert!(!error.contains("bad_request"), "{error}");
    drop(connections);
    server.stop().await;
}
