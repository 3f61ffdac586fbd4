//! The dashboard against real sockets: a closed port, a server that never
//! answers, and a real frame server that comes and goes.

use std::net::SocketAddr;
use std::time::Duration;

use backroom_dash::app::{App, Clock, Link, Tab};
use backroom_dash::config::{self, Endpoint, Flags};
use backroom_dash::driver;
use backroom_dash::server::Server;
use backroom_dash::tui;
use backroom_dash::update::{Timing, Update, UpdateKind};
use backroom_frame::Error;
use backroom_frame::server::{self, Call, Reply, ServerConfig, Service};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use futures_util::Stream;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Every test finishes well within this, or it has hung.
const LIMIT: Duration = Duration::from_secs(20);

/// Fast timings, so reconnects happen within a test's patience.
fn timing() -> Timing {
    Timing {
        poll: Duration::from_millis(50),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
    }
}

/// The endpoints of the defaults, with `files` at `addr`.
fn endpoints_with_files_at(addr: SocketAddr) -> Vec<Endpoint> {
    let flags = Flags {
        files: Some(addr.to_string()),
        ..Flags::default()
    };
    config::resolve(&flags, None, &Server::ALL)
        .expect("settings")
        .endpoints
}

fn files_only(endpoints: &[Endpoint]) -> Vec<Endpoint> {
    endpoints
        .iter()
        .filter(|e| e.server == Server::Files)
        .cloned()
        .collect()
}

/// An address where nothing listens.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

fn key(c: char) -> TermEvent {
    TermEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Terminal input fed from a channel.
fn input(
    rx: mpsc::UnboundedReceiver<TermEvent>,
) -> impl Stream<Item = std::io::Result<TermEvent>> + Unpin {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok(event), rx))
    }))
}

fn screen_text(terminal: &Terminal<TestBackend>) -> String {
    format!("{}", terminal.backend())
}

/// Waits for the update that satisfies `want`, applying every update on the
/// way to `app`.
async fn until(
    app: &mut App,
    updates: &mut mpsc::Receiver<Update>,
    want: impl Fn(&Update) -> bool,
) -> Update {
    loop {
        let update = updates.recv().await.expect("the server task runs");
        app.apply(update.clone());
        if want(&update) {
            return update;
        }
    }
}

fn is_down(update: &Update) -> bool {
    matches!(update.kind, UpdateKind::Down { .. })
}

#[tokio::test]
async fn a_down_server_shows_reconnecting_while_keys_keep_working() {
    let endpoints = endpoints_with_files_at(closed_port().await);
    let (from_tasks, mut task_updates) = mpsc::channel(16);
    let _connections = driver::spawn_all(&files_only(&endpoints), timing(), from_tasks);
    let (to_app, app_updates) = mpsc::channel(16);
    let (keys, key_rx) = mpsc::unbounded_channel();
    // Hand the app the task's news up to its first failure, then the keys;
    // the loop applies server news before keys, so the order holds.
    let forward = tokio::spawn(async move {
        loop {
            let update = task_updates.recv().await.expect("the files task runs");
            let down = is_down(&update);
            to_app.send(update).await.expect("the app runs");
            if down {
                break;
            }
        }
        for c in ['2', 'q'] {
            keys.send(key(c)).expect("the app runs");
        }
        to_app
    });
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    let run = tui::run(&mut terminal, &mut app, input(key_rx), app_updates);
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("never blocks")
        .expect("runs");
    let _keep_open = forward.await.expect("forwarder");

    assert!(app.quit);
    assert_eq!(app.tab, Tab::Files);
    assert!(matches!(
        app.server(Server::Files).link,
        Link::Reconnecting { .. }
    ));
    let text = screen_text(&terminal);
    assert!(text.contains("○ files reconnecting"), "{text}");
    assert!(
        text.contains("Connection refused") || text.contains("cannot connect"),
        "{text}"
    );
    assert!(
        text.contains("The files show once the file server answers."),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_does_not_freeze_the_ui() {
    // The kernel completes the TCP handshake for a listener that never
    // accepts, so the client waits on a Hello nobody reads.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoints = endpoints_with_files_at(silent.local_addr().expect("addr"));
    let (updates_tx, updates) = mpsc::channel(16);
    let _connections = driver::spawn_all(&files_only(&endpoints), timing(), updates_tx);
    let (keys, key_rx) = mpsc::unbounded_channel();
    for c in ['3', '?', 'q'] {
        keys.send(key(c)).expect("queued");
    }
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    let run = tui::run(&mut terminal, &mut app, input(key_rx), updates);
    tokio::time::timeout(LIMIT, run)
        .await
        .expect("never blocks")
        .expect("runs");
    assert_eq!(app.tab, Tab::Print);
    assert!(app.help);
    assert_ne!(app.server(Server::Files).link, Link::Connected);
    drop(silent);
}

/// A frame service that knows only the built-ins.
struct Builtins;

impl Service for Builtins {
    async fn call(&self, call: Call) -> Result<Reply, Error> {
        Err(Error::unknown_method(&call.method))
    }
}

struct FilesServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), server::StartError>>,
}

impl FilesServer {
    async fn start(at: &str) -> FilesServer {
        let listener = TcpListener::bind(at).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(
            listener,
            ServerConfig::new("files", "9.8.7"),
            Builtins,
            async {
                let _ = stopped.await;
            },
        ));
        FilesServer { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("server task").expect("server ran");
    }
}

#[tokio::test]
async fn a_live_server_turns_its_chip_connected_with_its_version() {
    let server = FilesServer::start("127.0.0.1:0").await;
    let endpoints = endpoints_with_files_at(server.addr);
    let (updates_tx, mut updates) = mpsc::channel(16);
    let _connections = driver::spawn_all(&files_only(&endpoints), timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    let seen = tokio::time::timeout(LIMIT, async {
        until(&mut app, &mut updates, |u| {
            matches!(u.kind, UpdateKind::Sample { .. })
        })
        .await
    })
    .await
    .expect("a sample arrives");
    let UpdateKind::Sample { info, .. } = seen.kind else {
        unreachable!("until returns a sample");
    };
    assert_eq!(
        (info.service.as_str(), info.version.as_str()),
        ("files", "9.8.7")
    );

    let files = app.server(Server::Files);
    assert_eq!(files.link, Link::Connected);
    assert_eq!(files.version.as_deref(), Some("9.8.7"));
    assert!(files.latency.is_some());

    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(&app, frame.area()))
        .expect("draw");
    let text = screen_text(&terminal);
    assert!(text.contains("● files 9.8.7 "), "{text}");
    // Durations, the port and the request count vary from run to run, and
    // so does the padding after them; runs of spaces are collapsed last.
    insta::with_settings!({filters => vec![
        (r"\d+(\.\d)?m?s\b", "[dur]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\d\d:\d\d:\d\d", "[time]"),
        (r"reqs \d+", "reqs [n]"),
        (r" {2,}", " "),
    ]}, {
        insta::assert_snapshot!(text);
    });
    server.stop().await;
}

#[tokio::test]
async fn the_chip_goes_reconnecting_when_the_server_stops_and_back_when_it_returns() {
    let server = FilesServer::start("127.0.0.1:0").await;
    let addr = server.addr;
    let endpoints = endpoints_with_files_at(addr);
    let (updates_tx, mut updates) = mpsc::channel(16);
    let _connections = driver::spawn_all(&files_only(&endpoints), timing(), updates_tx);
    let mut app = App::new(&endpoints, Default::default(), Clock::now());
    tokio::time::timeout(LIMIT, async {
        until(&mut app, &mut updates, |u| {
            matches!(u.kind, UpdateKind::Sample { .. })
        })
        .await;
        server.stop().await;
        until(&mut app, &mut updates, is_down).await;
        assert!(matches!(
            app.server(Server::Files).link,
            Link::Reconnecting { .. }
        ));
        let last = app.events.back().expect("an event");
        assert!(last.text.starts_with("disconnected"), "{last:?}");

        let again = FilesServer::start(&addr.to_string()).await;
        until(&mut app, &mut updates, |u| {
            matches!(u.kind, UpdateKind::Connected { .. })
        })
        .await;
        assert_eq!(app.server(Server::Files).link, Link::Connected);
        again.stop().await;
    })
    .await
    .expect("reconnects in time");
    let texts: Vec<&str> = app.events.iter().map(|e| e.text.as_str()).collect();
    // A retry may fail while the port is closed, which adds a "cannot
    // connect" between the two; the rest is fixed.
    assert!(
        texts.first().is_some_and(|t| t.starts_with("connected")),
        "{texts:?}"
    );
    assert!(
        texts.get(1).is_some_and(|t| t.starts_with("disconnected")),
        "{texts:?}"
    );
    assert!(
        texts.last().is_some_and(|t| t.starts_with("connected")),
        "{texts:?}"
    );
}
