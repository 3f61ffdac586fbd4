//! Drawing the Print tab: the queue table, the printers pane and the line
//! under them (a prompt, the filter or the last request's outcome).

use std::time::UNIX_EPOCH;

use backroom_api::print::{Job, JobState, PrinterInfo, PrinterState};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Row, Table, Widget};

use crate::app::{Clock, ServerState};
use crate::print::tab::{Pane, PrintTab, priority_label};
use crate::widgets;

/// What the tab says until its server answers and its session is ready.
const CARD: widgets::Card = widgets::Card {
    title: "Print",
    loading: "loading the queue…",
    waiting: "The queue shows once the print server answers.",
};

/// Draws the Print tab into `area`.
pub fn render(tab: &PrintTab, state: &ServerState, clock: &Clock, area: Rect, buf: &mut Buffer) {
    if widgets::render_unready(&CARD, tab.loaded, state, clock.now, area, buf) {
        return;
    }
    let printers_height = (tab.printers.len() as u16 + 3).clamp(4, 8);
    let bottom_height = match &tab.prompt {
        Some(prompt) => prompt.fields.len() as u16 + 2,
        None => 1,
    };
    let [queue, printers, bottom] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(printers_height),
        Constraint::Length(bottom_height),
    ])
    .areas(area);
    let now_ms = clock
        .wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    render_queue(tab, now_ms, queue, buf);
    render_printers(tab, printers, buf);
    match &tab.prompt {
        Some(prompt) => widgets::render_prompt(prompt, bottom, buf),
        None => widgets::render_status_line(&tab.filter, tab.status.as_ref(), bottom, buf),
    }
}

fn pane_block(title: String, count: String, focused: bool) -> Block<'static> {
    let border = if focused {
        Style::new().cyan()
    } else {
        Style::new().dark_gray()
    };
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(border)
        .title(Line::from(title).bold())
        .title(Line::from(count).right_aligned())
}

fn render_queue(tab: &PrintTab, now_ms: i64, area: Rect, buf: &mut Buffer) {
    let (title, shown, empty) = if tab.show_finished {
        (" Finished ", tab.finished.len(), "no job has finished yet")
    } else {
        (" Queue ", tab.jobs.len(), "the queue is empty")
    };
    let visible = tab.visible_jobs().count();
    let count = if tab.filter.is_active() {
        format!(" {visible} of {shown} ")
    } else {
        format!(" {shown} ")
    };
    let block = pane_block(title.into(), count, tab.pane == Pane::Queue);
    let inner = block.inner(area);
    block.render(area, buf);
    if shown == 0 {
        Line::from(empty).dim().render(inner, buf);
        return;
    }
    // Only the rows on screen are built, so a queue of 10k jobs draws as
    // fast as one of ten.
    let rows_shown = inner.height.saturating_sub(1).max(1) as usize;
    let selected = tab.selected_index().unwrap_or(0);
    let skip = (selected + 1).saturating_sub(rows_shown);
    // A narrow queue drops the owner and the progress, never the name.
    let wide = inner.width >= WIDE_QUEUE;
    let rows: Vec<Row> = tab
        .visible_jobs()
        .enumerate()
        .skip(skip)
        .take(rows_shown)
        .map(|(i, job)| {
            let row = job_row(job, now_ms, wide);
            if i == selected && tab.pane == Pane::Queue {
                row.reversed()
            } else {
                row
            }
        })
        .collect();
    let columns = QUEUE_COLUMNS.iter().filter(|c| wide || !c.wide_only);
    let header = Row::new(columns.clone().map(|c| c.title))
        .bold()
        .dark_gray();
    Table::new(rows, columns.map(|c| c.width))
        .header(header)
        .render(inner, buf);
}

/// One column of the queue.
struct Column {
    title: &'static str,
    width: Constraint,
    /// Shown only when the queue is at least [`WIDE_QUEUE`] wide.
    wide_only: bool,
}

const fn column(title: &'static str, width: Constraint, wide_only: bool) -> Column {
    Column {
        title,
        width,
        wide_only,
    }
}

/// The queue's columns, in [`job_row`]'s order.
const QUEUE_COLUMNS: [Column; 8] = [
    column("id", Constraint::Length(5), false),
    column("name", Constraint::Min(8), false),
    column("owner", Constraint::Length(9), true),
    column("printer", Constraint::Length(8), false),
    column("pri", Constraint::Length(7), false),
    column("state", Constraint::Length(9), false),
    column("progress", Constraint::Length(12), true),
    column("age", Constraint::Length(5), false),
];

/// The inner width from which the queue shows every column.
const WIDE_QUEUE: u16 = 76;

fn job_row(job: &Job, now_ms: i64, wide: bool) -> Row<'static> {
    let cells = [
        Cell::from(job.id.to_string()),
        Cell::from(job.name.clone()),
        Cell::from(job.owner.clone()),
        Cell::from(job.device.clone().unwrap_or_else(|| job.printer.clone())),
        Cell::from(priority_label(job)),
        Cell::from(Span::styled(job.state.as_str(), state_style(job.state))),
        Cell::from(progress(job)),
        Cell::from(format_age(now_ms.saturating_sub(job.submitted_ms))),
    ];
    Row::new(
        cells
            .into_iter()
            .zip(&QUEUE_COLUMNS)
            .filter(|(_, c)| wide || !c.wide_only)
            .map(|(cell, _)| cell),
    )
}

fn state_style(state: JobState) -> Style {
    match state {
        JobState::Printing => Style::new().green().bold(),
        JobState::Held => Style::new().yellow(),
        JobState::Pending => Style::new(),
        JobState::Completed | JobState::Cancelled | JobState::Aborted => Style::new().dim(),
    }
}

/// A small bar and percentage of the bytes sent to the printer.
pub fn progress(job: &Job) -> String {
    if job.state != JobState::Printing && job.bytes_done == 0 {
        return String::new();
    }
    let percent = (job.bytes_done.saturating_mul(100))
        .checked_div(job.size)
        .unwrap_or(100)
        .min(100);
    let filled = (percent / 20) as usize;
    format!(
        "{}{} {percent:>3}%",
        "█".repeat(filled),
        "░".repeat(5 - filled)
    )
}

/// How long ago, in its largest unit: `42s`, `5m`, `3h`, `2d`.
pub fn format_age(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn render_printers(tab: &PrintTab, area: Rect, buf: &mut Buffer) {
    let default = tab.default_printer.as_deref().unwrap_or("");
    let block = pane_block(
        " Printers ".into(),
        format!(" default {default} "),
        tab.pane == Pane::Printers,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    if tab.printers.is_empty() {
        Line::from("no printers configured")
            .dim()
            .render(inner, buf);
        return;
    }
    let rows: Vec<Row> = tab
        .printers
        .iter()
        .enumerate()
        .map(|(i, printer)| {
            let row = printer_row(printer);
            if i == tab.selected_printer && tab.pane == Pane::Printers {
                row.reversed()
            } else {
                row
            }
        })
        .collect();
    let header = Row::new(["name", "state", "job", "queue", "device", "last error"])
        .bold()
        .dark_gray();
    Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(13),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Fill(2),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .render(inner, buf);
}

fn printer_row(printer: &PrinterInfo) -> Row<'static> {
    let (state, color) = match printer.state {
        PrinterState::Idle => ("idle", Color::Green),
        PrinterState::Printing => ("printing", Color::Cyan),
        PrinterState::Paused => ("paused", Color::Yellow),
        PrinterState::Error => ("error", Color::Red),
    };
    let mut state = state.to_string();
    if printer.stopped {
        state.push_str(" stopped");
    }
    if !printer.accepting {
        state.push_str(" ✗");
    }
    Row::new([
        Cell::from(printer.name.clone()),
        Cell::from(Span::styled(state, Style::new().fg(color))),
        Cell::from(
            printer
                .current_job
                .map(|j| j.to_string())
                .unwrap_or_default(),
        ),
        Cell::from(printer.queue_len.to_string()),
        Cell::from(printer.device.clone()),
        Cell::from(printer.last_error.clone().unwrap_or_default()).red(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::tab::tests::job;

    #[test]
    fn progress_is_a_bar_and_a_percentage_while_printing() {
        let mut printing = job(1, "a", 50, JobState::Printing);
        printing.bytes_done = 420;
        assert_eq!(progress(&printing), "██░░░  42%");
        assert_eq!(progress(&job(2, "b", 50, JobState::Pending)), "");
    }

    #[test]
    fn age_uses_its_largest_unit() {
        assert_eq!(format_age(42_000), "42s");
        assert_eq!(format_age(300_000), "5m");
        assert_eq!(format_age(3 * 86_400_000), "3d");
        assert_eq!(format_age(-5), "0s");
    }
}
