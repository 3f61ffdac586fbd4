//! Whole screens on `TestBackend`, from states built with the same updates
//! the server tasks send, against committed insta snapshots.

use std::time::{Duration, UNIX_EPOCH};

use backroom_dash::app::{App, Clock};
use backroom_dash::config::{self, Flags};
use backroom_dash::conn::{Update, UpdateKind};
use backroom_dash::server::Server;
use backroom_frame::server::Info;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::time::Instant;

/// A clock pinned to 09:30:00 UTC, so event times never change.
fn clock() -> Clock {
    Clock {
        now: Instant::now(),
        wall: UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 9 * 3600 + 30 * 60),
    }
}

fn app() -> App {
    let settings = config::resolve(&Flags::default(), None).expect("defaults");
    App::new(&settings.endpoints, settings.keymap, clock())
}

fn send(app: &mut App, server: Server, kind: UpdateKind) {
    app.apply(Update { server, kind });
}

fn connected(app: &mut App, server: Server, version: &str) {
    send(
        app,
        server,
        UpdateKind::Connected {
            version: version.into(),
            session: "s".into(),
        },
    );
}

fn sample(
    app: &mut App,
    server: Server,
    latency_us: u64,
    uptime_ms: u64,
    connections: u64,
    served: u64,
) {
    send(
        app,
        server,
        UpdateKind::Sample {
            latency: Duration::from_micros(latency_us),
            info: Info {
                service: server.name().into(),
                version: "0.0.0".into(),
                uptime_ms,
                connections,
                requests_served: served,
            },
        },
    );
}

fn down(app: &mut App, server: Server, error: &str, retry_in: Duration, attempt: u32) {
    let retry_at = app.clock.now + retry_in;
    send(
        app,
        server,
        UpdateKind::Down {
            error: error.into(),
            retry_at,
            attempt,
        },
    );
}

/// A suite where files and print are up and busy, db is down and the proxy
/// has not answered yet.
fn busy_suite() -> App {
    let mut app = app();
    connected(&mut app, Server::Files, "0.3.1");
    connected(&mut app, Server::Print, "0.2.0");
    let mut served = 100;
    for (i, burst) in [3, 8, 20, 14, 30, 5, 0, 12, 40, 22, 9, 17]
        .into_iter()
        .enumerate()
    {
        served += burst + 2;
        sample(
            &mut app,
            Server::Files,
            420,
            7_500_000 + i as u64 * 2000,
            4,
            served,
        );
        sample(
            &mut app,
            Server::Print,
            12_700,
            249_000,
            2,
            50 + i as u64 * 4,
        );
    }
    down(
        &mut app,
        Server::Db,
        "unavailable: cannot connect to 127.0.0.1:7703: Connection refused (os error 111)",
        Duration::from_millis(3900),
        4,
    );
    app
}

fn screen(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    terminal
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

#[test]
fn overview_at_startup_shows_every_server_connecting() {
    insta::assert_snapshot!(screen(&app(), 80, 24).backend());
}

#[test]
fn overview_shows_info_activity_and_events() {
    insta::assert_snapshot!(screen(&busy_suite(), 80, 24).backend());
}

#[test]
fn a_server_tab_shows_reconnecting_with_the_next_try() {
    let mut app = busy_suite();
    app.handle_key(key('4'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn a_server_tab_shows_a_connected_servers_version_and_latency() {
    let mut app = busy_suite();
    app.handle_key(key('2'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn help_lists_the_keys_of_the_overview() {
    let mut app = busy_suite();
    app.handle_key(key('?'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn help_on_a_server_tab_lists_only_its_keys() {
    let mut app = busy_suite();
    app.handle_key(key('5'));
    app.handle_key(key('?'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn clearing_events_shows_a_confirmation() {
    let mut app = busy_suite();
    app.handle_key(key('c'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn a_filter_being_typed_narrows_the_events() {
    let mut app = busy_suite();
    app.handle_key(key('/'));
    for c in "db".chars() {
        app.handle_key(key(c));
    }
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn a_tiny_terminal_says_it_is_too_small() {
    insta::assert_snapshot!(screen(&busy_suite(), 40, 8).backend());
}

#[test]
fn drawing_never_panics_at_any_small_size() {
    let mut app = busy_suite();
    for overlay in 0..3 {
        match overlay {
            1 => app.handle_key(key('?')),
            2 => {
                app.handle_key(key('?'));
                app.handle_key(key('c'));
            }
            _ => {}
        }
        for width in 0..=90 {
            for height in [0, 1, 2, 5, 14, 15, 16, 17, 24] {
                let terminal = screen(&app, width, height);
                assert_eq!(terminal.backend().buffer().area.width, width);
            }
        }
    }
}

#[test]
fn a_wide_terminal_uses_the_room() {
    let terminal = screen(&busy_suite(), 120, 30);
    let text = format!("{}", terminal.backend());
    assert!(
        text.contains("connected to 127.0.0.1:7701, version 0.3.1"),
        "{text}"
    );
    assert!(text.contains("● files 0.3.1 0.4ms"), "{text}");
}

#[test]
fn four_reconnecting_chips_fit_in_80_columns() {
    let mut app = app();
    for server in Server::ALL {
        down(
            &mut app,
            server,
            "unavailable: refused",
            Duration::from_secs(1),
            1,
        );
    }
    let terminal = screen(&app, 80, 24);
    let header: String = (0..80)
        .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
        .collect();
    assert_eq!(
        header,
        "○ files reconnecting ○ print reconnecting ○ db reconnecting ○ proxy reconnecting"
    );
}
