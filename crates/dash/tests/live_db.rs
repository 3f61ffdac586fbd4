//! The DB tab against the real database server, started in-process on
//! loopback: SQL typed in the editor runs, its rows and the schema show,
//! a transaction shows as open until rolled back, and errors show in place.

use std::net::SocketAddr;

use backroom_dash::app::{App, Clock};
use backroom_dash::db::tab::Output;
use backroom_dash::driver;
use backroom_dash::server::Server;
use backroom_dash::update::Update;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

mod common;
use common::{code, key, only, timing, until};

struct DbServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl DbServer {
    async fn start(dir: &std::path::Path) -> DbServer {
        let config = backroom_db::Config::new(dir.join("data"));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_db::run(listener, config, shutdown)
                .await
                .expect("the db server runs");
        });
        DbServer { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task");
    }
}

/// Types `sql` into the empty editor, runs it with F5 and waits for the
/// outcome.
async fn run_sql(app: &mut App, updates: &mut mpsc::Receiver<Update>, sql: &str) {
    app.handle_key(key('e'));
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    for c in sql.chars() {
        app.handle_key(key(c));
    }
    app.handle_key(code(KeyCode::F(5)));
    assert!(app.db.running, "{sql} is running");
    until(app, updates, |app| !app.db.running).await;
    app.handle_key(code(KeyCode::Esc));
}

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    format!("{}", terminal.backend())
}

#[tokio::test]
async fn the_db_tab_runs_sql_and_shows_rows_schema_transactions_and_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = DbServer::start(tmp.path()).await;
    let endpoints = only(Server::Db, server.addr);
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('4'));
    until(&mut app, &mut updates, |app| {
        let db = app.server(Server::Db);
        app.db.connected && app.db.schema.is_some() && db.is_connected() && db.latency.is_some()
    })
    .await;

    run_sql(
        &mut app,
        &mut updates,
        "CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT)",
    )
    .await;
    // The schema is read again after a statement that may change it.
    until(&mut app, &mut updates, |app| {
        app.db
            .schema
            .as_ref()
            .is_some_and(|s| s.tables.iter().any(|t| t.name == "pets"))
    })
    .await;

    run_sql(&mut app, &mut updates, "BEGIN").await;
    assert!(app.db.tx_open, "{:?}", app.db.output);
    run_sql(
        &mut app,
        &mut updates,
        "INSERT INTO pets (name) VALUES ('Rex'), ('Tom')",
    )
    .await;
    run_sql(
        &mut app,
        &mut updates,
        "SELECT id, name FROM pets ORDER BY id",
    )
    .await;
    let Output::Rows { rows, .. } = &app.db.output else {
        panic!("rows expected: {:?}", app.db.output);
    };
    assert_eq!(rows, &[vec!["1", "Rex"], vec!["2", "Tom"]]);
    let text = screen(&app);
    assert!(text.contains("transaction open"), "{text}");
    insta::with_settings!({filters => vec![
        (r"\d+(\.\d+)?(µs|ms|s)\b", "[dur]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r" {2,}", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });

    run_sql(&mut app, &mut updates, "ROLLBACK").await;
    assert!(!app.db.tx_open);
    run_sql(&mut app, &mut updates, "SELECT count(*) FROM pets").await;
    let Output::Rows { rows, .. } = &app.db.output else {
        panic!("rows expected: {:?}", app.db.output);
    };
    assert_eq!(rows, &[vec!["0"]], "the rollback undid the insert");

    run_sql(&mut app, &mut updates, "SELECT nope FROM pets").await;
    let Output::Error { error, .. } = &app.db.output else {
        panic!("an error expected: {:?}", app.db.output);
    };
    assert!(error.contains("nope"), "{error}");
    assert!(screen(&app).contains("no such column"), "{}", screen(&app));

    // History: Ctrl-P brings back the last statement.
    app.handle_key(key('e'));
    app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    app.handle_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::CONTROL));
    assert_eq!(app.db.text(), "SELECT nope FROM pets");

    drop(connections);
    server.stop().await;
}

#[tokio::test]
async fn the_db_tab_works_on_the_database_its_config_names() {
    let tmp = tempfile::tempdir().expect("tmp");
    let server = DbServer::start(tmp.path()).await;
    let admin = backroom_api::db::DbClient::connect(&server.addr.to_string(), None)
        .await
        .expect("connect");
    admin.create_database("holidays").await.expect("create");
    let mut endpoints = only(Server::Db, server.addr);
    endpoints[0].database = Some("holidays".into());
    let (updates_tx, mut updates) = mpsc::channel(64);
    let connections = driver::spawn_all(&endpoints, timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    app.handle_key(key('4'));
    until(&mut app, &mut updates, |app| {
        app.db.connected && app.db.schema.is_some()
    })
    .await;
    assert!(screen(&app).contains("SQL on holidays"));

    run_sql(&mut app, &mut updates, "CREATE TABLE seats (id INTEGER)").await;
    until(&mut app, &mut updates, |app| {
        app.db
            .schema
            .as_ref()
            .is_some_and(|s| s.tables.iter().any(|t| t.name == "seats"))
    })
    .await;
    let main = admin
        .query_main(backroom_api::db::Statement::new(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'seats'",
        ))
        .await
        .expect("query main");
    assert_eq!(main.rows, vec![vec![backroom_api::db::Value::Integer(0)]]);

    drop(connections);
    drop(admin);
    server.stop().await;
}
