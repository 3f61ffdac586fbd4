//! Times drawing the Print tab with a queue of many jobs on a 120×40
//! `TestBackend`, for `cargo xtask bench dash`. Prints one line of JSON:
//! `{"jobs":…,"frames":…,"mean_ms":…,"p99_ms":…}`.
//!
//! Usage: `render_bench [JOBS] [FRAMES]` (defaults 10000 and 500).

// A benchmark's output is its point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backroom_api::print::{Job, JobState, PrinterInfo, PrinterState};
use backroom_dash::app::{App, Clock, Tab};
use backroom_dash::keymap::Keymap;
use backroom_dash::print::tab::Msg;
use backroom_dash::server::Server;
use backroom_dash::update::{Update, UpdateKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn job(id: u64, now_ms: i64) -> Job {
    let state = match id % 10 {
        0 => JobState::Held,
        1 if id < 3 => JobState::Printing,
        _ => JobState::Pending,
    };
    let priority = (id % 100) as u8 + 1;
    Job {
        id,
        name: format!("document-{id}.pdf"),
        owner: ["alice", "bob", "carol"][(id % 3) as usize].into(),
        printer: "laser".into(),
        device: None,
        priority,
        effective_priority: priority,
        promoted: id % 97 == 0,
        copies: 1,
        state,
        size: 10_000 + id,
        submitted_ms: now_ms - (id as i64) * 1000,
        started_ms: (state == JobState::Printing).then_some(now_ms),
        finished_ms: None,
        attempts: 0,
        last_error: None,
        bytes_done: if state == JobState::Printing {
            4_000
        } else {
            0
        },
        pages_done: 0,
    }
}

fn printer(name: &str, state: PrinterState) -> PrinterInfo {
    PrinterInfo {
        name: name.into(),
        device: "sim:30".into(),
        state,
        accepting: true,
        stopped: false,
        current_job: None,
        queue_len: 0,
        last_error: None,
        classes: vec![],
    }
}

/// A dashboard on the Print tab, connected, with `jobs` jobs queued.
fn app(jobs: u64) -> App {
    let mut app = App::new(&[], Keymap::default(), Clock::now());
    app.tab = Tab::Print;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let connected = UpdateKind::Connected {
        version: "0.0.0".into(),
        session: "bench".into(),
    };
    let snapshot = UpdateKind::Print(Msg::Snapshot {
        jobs: (1..=jobs).map(|id| job(id, now_ms)).collect(),
        total: jobs,
        printers: vec![
            printer("laser", PrinterState::Printing),
            printer("inkjet", PrinterState::Idle),
        ],
        default_printer: Some("laser".into()),
    });
    for kind in [connected, snapshot] {
        app.apply(Update {
            server: Server::Print,
            kind,
        });
    }
    app
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let frames: usize = args.next().map_or(Ok(500), |a| a.parse())?;
    let app = app(jobs);
    let mut terminal = Terminal::new(TestBackend::new(120, 40))?;
    // Warm up, so the first frame's allocations are not counted.
    for _ in 0..10 {
        terminal.draw(|frame| frame.render_widget(&app, frame.area()))?;
    }
    // A bench of the wrong screen would measure nothing.
    let screen = format!("{}", terminal.backend());
    anyhow::ensure!(
        screen.contains("document-"),
        "the queue is not on screen:\n{screen}"
    );
    let mut times: Vec<Duration> = Vec::with_capacity(frames);
    for _ in 0..frames {
        let started = Instant::now();
        terminal.draw(|frame| frame.render_widget(&app, frame.area()))?;
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / frames.max(1) as f64;
    let p99 = times
        .get((frames * 99 / 100).min(frames.saturating_sub(1)))
        .map_or(0.0, |d| ms(*d));
    println!("{{\"jobs\":{jobs},\"frames\":{frames},\"mean_ms\":{mean:.4},\"p99_ms\":{p99:.4}}}");
    Ok(())
}
