//! Whole screens on `TestBackend`, from states built with the same updates
//! the server tasks send, against committed insta snapshots.

use std::time::{Duration, UNIX_EPOCH};

use backroom_dash::app::{App, Clock};
use backroom_dash::config::{self, Flags};
use backroom_dash::server::Server;
use backroom_dash::update::{Update, UpdateKind};
use backroom_frame::server::{Info, Vital};
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
    let settings = config::resolve(&Flags::default(), None, &Server::ALL).expect("defaults");
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
    sample_with_vitals(
        app,
        server,
        latency_us,
        uptime_ms,
        connections,
        served,
        Vec::new(),
    );
}

fn sample_with_vitals(
    app: &mut App,
    server: Server,
    latency_us: u64,
    uptime_ms: u64,
    connections: u64,
    served: u64,
    vitals: Vec<Vital>,
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
                vitals,
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
    let vital = |name: &str, value: f64, unit: &str, alert: bool| Vital {
        name: name.into(),
        value,
        unit: unit.into(),
        alert,
    };
    sample_with_vitals(
        &mut app,
        Server::Files,
        420,
        7_524_000,
        4,
        served,
        vec![
            vital("in", 3_355_443.0, "B/s", false),
            vital("out", 0.0, "B/s", false),
            vital("transfers", 1.0, "", false),
            vital("free", 2_147_483_648.0, "B", false),
        ],
    );
    sample_with_vitals(
        &mut app,
        Server::Print,
        12_700,
        249_000,
        2,
        98,
        vec![
            vital("queued", 3.0, "", false),
            vital("printing", 1.0, "", false),
            vital("in error", 1.0, "", true),
        ],
    );
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
fn a_vital_sign_that_calls_for_attention_is_in_the_error_colour() {
    let terminal = screen(&busy_suite(), 80, 24);
    let buffer = terminal.backend().buffer();
    let (x, y) = (0..buffer.area.height)
        .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
        .find(|&(x, y)| {
            let row: String = (x..buffer.area.width.min(x + 8))
                .map(|x| buffer[(x, y)].symbol())
                .collect();
            row == "in error"
        })
        .expect("the print card shows its printers in error");
    assert_eq!(buffer[(x, y)].fg, ratatui::style::Color::Red);
    let queued = (0..buffer.area.width)
        .find(|&x| buffer[(x, y - 2)].symbol() == "q")
        .expect("queued is two lines up");
    assert_ne!(buffer[(queued, y - 2)].fg, ratatui::style::Color::Red);
}

#[test]
fn the_servers_view_lists_every_address_and_how_to_use_the_proxy() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "[files.faces]\nhttp = \"127.0.0.1:8080\"\n\n\
         [proxy]\naddr = \"127.0.0.1:7704\"\n[proxy.faces]\nhttp = \"127.0.0.1:3128\"\n",
    )
    .expect("config");
    let flags = Flags {
        config: Some(file),
        ..Flags::default()
    };
    let settings = config::resolve(&flags, None, &Server::ALL).expect("settings");
    let mut app = App::new(&settings.endpoints, settings.keymap, clock());
    app.handle_key(key('i'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
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

/// A print queue with one job printing, a promoted one, a held one and a
/// plain one, on two printers, one of them paused.
fn print_suite() -> App {
    use backroom_api::print::{Job, JobState, PrinterInfo, PrinterState};
    use backroom_dash::print::tab::Msg;
    let mut app = busy_suite();
    let now_ms = app
        .clock
        .wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let job = |id: u64, name: &str, priority: u8, state: JobState, age_s: i64| Job {
        id,
        name: name.into(),
        owner: "alice".into(),
        printer: "laser".into(),
        device: None,
        priority,
        effective_priority: priority,
        promoted: false,
        copies: 1,
        state,
        size: 20_000,
        submitted_ms: now_ms - age_s * 1000,
        started_ms: None,
        finished_ms: None,
        attempts: 0,
        last_error: None,
        bytes_done: 0,
        pages_done: 0,
    };
    let mut printing = job(12, "quarterly-report.pdf", 50, JobState::Printing, 340);
    printing.device = Some("laser".into());
    printing.started_ms = Some(now_ms - 20_000);
    printing.bytes_done = 12_000;
    let mut promoted = job(15, "boarding-pass.pdf", 20, JobState::Pending, 30);
    promoted.promoted = true;
    promoted.owner = "bob".into();
    let mut aged = job(13, "minutes.txt", 40, JobState::Pending, 7200);
    aged.effective_priority = 61;
    let held = job(14, "poster-a2.png", 80, JobState::Held, 90);
    let printer =
        |name: &str, device: &str, state: PrinterState, current: Option<u64>| PrinterInfo {
            name: name.into(),
            device: device.into(),
            state,
            accepting: true,
            stopped: false,
            current_job: current,
            queue_len: 0,
            last_error: None,
            classes: vec![],
        };
    send(
        &mut app,
        Server::Print,
        UpdateKind::Print(Msg::Snapshot {
            jobs: vec![printing, promoted, held, aged],
            total: 4,
            printers: vec![
                printer("laser", "sim:30", PrinterState::Printing, Some(12)),
                printer("inkjet", "file:/srv/out", PrinterState::Paused, None),
            ],
            default_printer: Some("laser".into()),
        }),
    );
    app.handle_key(key('3'));
    app
}

#[test]
fn print_tab_shows_the_queue_in_dispatch_order_and_the_printers() {
    insta::assert_snapshot!(screen(&print_suite(), 80, 24).backend());
}

#[test]
fn a_narrow_print_tab_keeps_the_job_names_and_drops_the_owners() {
    let text = format!("{}", screen(&print_suite(), 60, 24).backend());
    assert!(text.contains("quarterly-rep"), "{text}");
    assert!(text.contains("boarding-pass"), "{text}");
    assert!(!text.contains("alice"), "{text}");
}

#[test]
fn print_tab_asks_before_cancelling_a_job() {
    let mut app = print_suite();
    app.handle_key(key('j'));
    app.handle_key(key('x'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn print_tab_prompts_for_a_file_and_a_priority() {
    let mut app = print_suite();
    app.handle_key(key('a'));
    for c in "/home/alice/memo.txt".chars() {
        app.handle_key(key(c));
    }
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn print_tab_filters_the_queue_and_selects_printers() {
    let mut app = print_suite();
    app.handle_key(key('/'));
    for c in "pdf".chars() {
        app.handle_key(key(c));
    }
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    app.handle_key(KeyEvent::new(KeyCode::Right, KeyModifiers::NONE));
    app.handle_key(key('j'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn print_tab_help_lists_its_keys() {
    let mut app = print_suite();
    app.handle_key(key('?'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn read_only_marks_the_header_and_leaves_changing_keys_out_of_the_footer() {
    let mut app = print_suite();
    app.read_only = true;
    app.handle_key(key('x'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn print_tab_of_a_down_server_says_reconnecting() {
    let mut app = busy_suite();
    down(
        &mut app,
        Server::Print,
        "unavailable: cannot connect to 127.0.0.1:7702: Connection refused (os error 111)",
        Duration::from_millis(1900),
        2,
    );
    app.handle_key(key('3'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn the_print_tab_never_panics_at_any_small_size() {
    let mut app = print_suite();
    for step in 0..3 {
        match step {
            1 => app.handle_key(key('a')),
            2 => {
                app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
                app.handle_key(key('?'));
            }
            _ => {}
        }
        for width in 0..=90 {
            for height in [0, 1, 2, 5, 14, 15, 16, 17, 24] {
                screen(&app, width, height);
            }
        }
    }
}

/// The DB tab, connected, with a schema of two tables and the result of a
/// query with more columns than fit.
fn db_suite() -> App {
    use backroom_api::db::{Column, QueryResult, Schema, Table, TableColumn, Value};
    use backroom_dash::db::tab::Msg;
    let mut app = busy_suite();
    connected(&mut app, Server::Db, "0.4.0");
    sample(&mut app, Server::Db, 300, 60_000, 1, 10);
    let column = |name: &str, decl_type: &str, primary_key: u32| TableColumn {
        name: name.into(),
        decl_type: decl_type.into(),
        not_null: false,
        default: None,
        primary_key,
    };
    let table = |name: &str, columns: Vec<TableColumn>| Table {
        name: name.into(),
        sql: None,
        columns,
    };
    send(&mut app, Server::Db, UpdateKind::Db(Msg::Connected));
    send(
        &mut app,
        Server::Db,
        UpdateKind::Db(Msg::Schema(Schema {
            tables: vec![
                table(
                    "customers",
                    vec![
                        column("id", "INTEGER", 1),
                        column("name", "TEXT", 0),
                        column("email", "TEXT", 0),
                    ],
                ),
                table("orders", vec![column("id", "INTEGER", 1)]),
            ],
            indexes: vec![],
            views: vec![],
            triggers: vec![],
        })),
    );
    let names = ["id", "name", "email", "city", "joined", "notes"];
    let columns = names
        .iter()
        .map(|n| Column {
            name: (*n).into(),
            decl_type: None,
        })
        .collect();
    let rows = (1..=3)
        .map(|i| {
            vec![
                Value::Integer(i),
                Value::Text(format!("Customer number {i}")),
                Value::Text(format!("customer{i}@example.com")),
                Value::Text("Lyon".into()),
                Value::Text("2026-01-0{i}".replace("{i}", &i.to_string())),
                Value::Null,
            ]
        })
        .collect();
    app.handle_key(key('4'));
    app.handle_key(key('e'));
    for c in "SELECT * FROM customers".chars() {
        app.handle_key(key(c));
    }
    app.handle_key(KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE));
    send(
        &mut app,
        Server::Db,
        UpdateKind::Db(Msg::Result {
            sql: "SELECT * FROM customers".into(),
            result: QueryResult {
                columns,
                rows,
                rows_affected: 0,
                last_insert_rowid: 0,
                duration_us: 420,
            },
        }),
    );
    app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    app
}

#[test]
fn db_tab_shows_results_with_fitted_columns_and_the_schema() {
    insta::assert_snapshot!(screen(&db_suite(), 80, 24).backend());
}

#[test]
fn db_tab_scrolls_the_results_sideways() {
    let mut app = db_suite();
    app.handle_key(KeyEvent::new(KeyCode::Right, KeyModifiers::NONE));
    app.handle_key(KeyEvent::new(KeyCode::Right, KeyModifiers::NONE));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn db_tab_shows_an_error_in_place_and_an_open_transaction() {
    use backroom_dash::db::tab::Msg;
    let mut app = db_suite();
    send(
        &mut app,
        Server::Db,
        UpdateKind::Db(Msg::Transaction {
            open: true,
            text: "transaction 1 open on main".into(),
        }),
    );
    app.handle_key(key('e'));
    app.db.set_text("INSERT INTO orders VALUES (1)");
    app.handle_key(KeyEvent::new(KeyCode::F(5), KeyModifiers::NONE));
    send(
        &mut app,
        Server::Db,
        UpdateKind::Db(Msg::Failed {
            sql: "INSERT INTO orders VALUES (1)".into(),
            error: "conflict: UNIQUE constraint failed: orders.id (SQLITE_CONSTRAINT, extended code 1555)".into(),
        }),
    );
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn db_tab_says_when_keys_go_to_the_sql_and_scrolls_a_long_line() {
    let mut app = db_suite();
    app.handle_key(key('e'));
    let long = format!(
        "SELECT * FROM customers WHERE notes = '{}END'",
        "x".repeat(80)
    );
    app.db.set_text(&long);
    app.handle_key(KeyEvent::new(KeyCode::End, KeyModifiers::NONE));
    let text = format!("{}", screen(&app, 80, 24).backend());
    assert!(text.contains("editing, esc leaves"), "{text}");
    assert!(
        text.contains("END'"),
        "the cursor's end of the line shows:\n{text}"
    );
    app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    let text = format!("{}", screen(&app, 80, 24).backend());
    assert!(!text.contains("editing"), "{text}");
}

#[test]
fn db_tab_results_stop_at_the_last_row_and_count_one_row_as_one() {
    use backroom_api::db::QueryResult;
    use backroom_dash::db::tab::Msg;
    let mut app = db_suite();
    for _ in 0..10 {
        app.handle_key(key('j'));
    }
    let text = format!("{}", screen(&app, 80, 24).backend());
    assert!(text.contains("rows 1-3 of 3"), "{text}");
    send(
        &mut app,
        Server::Db,
        UpdateKind::Db(Msg::Result {
            sql: "DELETE FROM orders WHERE id = 1".into(),
            result: QueryResult {
                columns: vec![],
                rows: vec![],
                rows_affected: 1,
                last_insert_rowid: 0,
                duration_us: 420,
            },
        }),
    );
    let text = format!("{}", screen(&app, 80, 24).backend());
    assert!(text.contains("1 row affected"), "{text}");
}

#[test]
fn db_tab_help_lists_its_keys() {
    let mut app = db_suite();
    app.handle_key(key('?'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn the_db_tab_never_panics_at_any_small_size() {
    let mut app = db_suite();
    for step in 0..2 {
        if step == 1 {
            app.handle_key(key('s'));
            app.handle_key(key('j'));
        }
        for width in 0..=90 {
            for height in [0, 1, 2, 5, 14, 15, 16, 17, 24] {
                screen(&app, width, height);
            }
        }
    }
}

/// The Proxy tab, connected, with a few seconds of traffic.
fn proxy_suite() -> App {
    use backroom_api::proxy::{AccessRecord, HostCount, Stats, StatusClasses};
    use backroom_dash::proxy::tab::Msg;
    let mut app = busy_suite();
    connected(&mut app, Server::Proxy, "0.1.0");
    sample(&mut app, Server::Proxy, 500, 3_600_000, 3, 900);
    let start_ms = app
        .clock
        .wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        - 60_000;
    let record = |i: u64, method: &str, target: &str, status: u16, bytes_out: u64| AccessRecord {
        time_ms: start_ms + i * 7_000,
        client: "10.0.0.7:5100".into(),
        user: "-".into(),
        method: method.into(),
        target: target.into(),
        status,
        bytes_in: 0,
        bytes_out,
        duration_ms: 10 + i * 3,
        upstream: "-".into(),
        user_agent: String::new(),
        referer: String::new(),
    };
    send(
        &mut app,
        Server::Proxy,
        UpdateKind::Proxy(Msg::Recent(vec![
            record(0, "GET", "http://intranet.lan/", 200, 5_300),
            record(1, "CONNECT", "mail.example.com:443", 200, 88_000),
            record(2, "GET", "http://intranet.lan/missing", 404, 120),
        ])),
    );
    send(
        &mut app,
        Server::Proxy,
        UpdateKind::Proxy(Msg::Record(record(
            3,
            "POST",
            "http://printer.lan/scan",
            502,
            0,
        ))),
    );
    for (i, rate) in [0.0, 1.0, 3.0, 2.0, 6.0, 4.0, 1.0, 2.0]
        .into_iter()
        .enumerate()
    {
        send(
            &mut app,
            Server::Proxy,
            UpdateKind::Proxy(Msg::Stats(Stats {
                uptime_ms: 3_600_000,
                requests: 40 + i as u64,
                by_status: StatusClasses {
                    informational: 0,
                    success: 38,
                    redirection: 1,
                    client_error: 2,
                    server_error: 1,
                },
                bytes_in: 20_480,
                bytes_out: 3_500_000,
                active_connections: 3,
                active_tunnels: 1,
                rate_1s: rate,
                rate_10s: rate * 1.2,
                rate_60s: 0.7,
                top_hosts: vec![
                    HostCount {
                        host: "intranet.lan".into(),
                        requests: 30,
                    },
                    HostCount {
                        host: "mail.example.com".into(),
                        requests: 9,
                    },
                ],
            })),
        );
    }
    app.handle_key(key('5'));
    app
}

#[test]
fn proxy_tab_shows_stats_and_the_live_log() {
    insta::assert_snapshot!(screen(&proxy_suite(), 80, 24).backend());
}

#[test]
fn proxy_tab_pauses_and_filters_the_log() {
    use backroom_dash::proxy::tab::Msg;
    let mut app = proxy_suite();
    app.handle_key(key(' '));
    let mut late = app.proxy.records[0].clone();
    late.target = "http://late.lan/".into();
    send(
        &mut app,
        Server::Proxy,
        UpdateKind::Proxy(Msg::Record(late)),
    );
    app.handle_key(key('/'));
    for c in "intranet".chars() {
        app.handle_key(key(c));
    }
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn the_proxy_tab_never_panics_at_any_small_size() {
    let mut app = proxy_suite();
    for step in 0..2 {
        if step == 1 {
            app.handle_key(key('?'));
        }
        for width in 0..=90 {
            for height in [0, 1, 2, 5, 14, 15, 16, 17, 24] {
                screen(&app, width, height);
            }
        }
    }
}

/// The Files tab, connected, in a folder with a subfolder and files, and
/// an upload under way.
fn files_suite() -> App {
    use backroom_api::files::{Entry, Kind};
    use backroom_dash::files::tab::{Msg, Transfer};
    let mut app = busy_suite();
    let entry = |name: &str, kind: Kind, size: u64| Entry {
        name: name.into(),
        kind,
        size,
        modified_ms: 1_795_430_519_000,
        mode: 0o644,
    };
    send(
        &mut app,
        Server::Files,
        UpdateKind::Files(Msg::Listing {
            path: String::new(),
            entries: vec![
                entry("minutes-2026-11.txt", Kind::File, 4_210),
                entry("scans", Kind::Dir, 0),
                entry("budget.xlsx", Kind::File, 1_350_000),
                entry("archive", Kind::Dir, 0),
            ],
        }),
    );
    app.files.transfers.push(Transfer {
        id: 1,
        upload: true,
        name: "holiday-photos.zip".into(),
        done: 30_000_000,
        total: 80_000_000,
        result: None,
    });
    app.handle_key(key('2'));
    app
}

#[test]
fn files_tab_lists_folders_first_with_sizes_times_and_transfers() {
    insta::assert_snapshot!(screen(&files_suite(), 80, 24).backend());
}

#[test]
fn files_tab_asks_before_deleting_a_folder() {
    let mut app = files_suite();
    app.handle_key(key('x'));
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn files_tab_prompts_for_a_folder_name() {
    let mut app = files_suite();
    app.handle_key(key('n'));
    for c in "invoices".chars() {
        app.handle_key(key(c));
    }
    insta::assert_snapshot!(screen(&app, 80, 24).backend());
}

#[test]
fn the_files_tab_never_panics_at_any_small_size() {
    let mut app = files_suite();
    for step in 0..2 {
        if step == 1 {
            app.handle_key(key('?'));
        }
        for width in 0..=90 {
            for height in [0, 1, 2, 5, 14, 15, 16, 17, 24] {
                screen(&app, width, height);
            }
        }
    }
}
