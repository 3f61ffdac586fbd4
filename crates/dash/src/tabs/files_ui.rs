//! Drawing the Files tab: the directory list with sizes and modified times,
//! the transfers with progress bars, and the line under them.

use std::time::{Duration, UNIX_EPOCH};

use backroom_api::files::{Entry, Kind};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Gauge, Row, Table, Widget};

use crate::app::{App, Tab};
use crate::server::Server;
use crate::tabs::files::{FilesTab, Transfer};
use crate::tabs::print_ui;
use crate::tabs::proxy_ui::format_bytes;
use crate::ui;

/// Draws the Files tab into `area`.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let state = app.server(Server::Files);
    let tab = &app.files;
    if !state.is_connected() || !tab.loaded {
        let note = if state.is_connected() {
            "listing…"
        } else {
            "The files show once the file server answers."
        };
        ui::render_connection(app, Tab::Files, state, note, area, buf);
        return;
    }
    let transfers_height = if tab.transfers.is_empty() {
        0
    } else {
        tab.transfers.len() as u16 + 2
    };
    let bottom_height = match &tab.prompt {
        Some(prompt) => prompt.fields.len() as u16 + 2,
        None => 1,
    };
    let [list, transfers, bottom] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Length(transfers_height),
        Constraint::Length(bottom_height),
    ])
    .areas(area);
    render_list(tab, list, buf);
    if transfers_height > 0 {
        render_transfers(tab, transfers, buf);
    }
    match &tab.prompt {
        Some(prompt) => print_ui::render_prompt(prompt, bottom, buf),
        None => print_ui::render_status_line(&tab.filter, tab.status.as_ref(), bottom, buf),
    }
}

fn render_list(tab: &FilesTab, area: Rect, buf: &mut Buffer) {
    let count = if tab.filter.is_active() {
        format!(" {} of {} ", tab.visible().count(), tab.entries.len())
    } else {
        format!(" {} ", tab.entries.len())
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().cyan())
        .title(Line::from(format!(" /{} ", tab.cwd)).bold())
        .title(Line::from(count).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    if tab.entries.is_empty() {
        Line::from("this folder is empty").dim().render(inner, buf);
        return;
    }
    let rows_shown = inner.height.saturating_sub(1).max(1) as usize;
    let selected = tab.selected_index().unwrap_or(0);
    let skip = (selected + 1).saturating_sub(rows_shown);
    let rows: Vec<Row> = tab
        .visible()
        .enumerate()
        .skip(skip)
        .take(rows_shown)
        .map(|(i, entry)| {
            let row = entry_row(entry);
            if i == selected { row.reversed() } else { row }
        })
        .collect();
    let header = Row::new(["name", "size", "modified (UTC)"])
        .bold()
        .dark_gray();
    Table::new(
        rows,
        [
            Constraint::Fill(1),
            Constraint::Length(10),
            Constraint::Length(16),
        ],
    )
    .header(header)
    .render(inner, buf);
}

fn entry_row(entry: &Entry) -> Row<'static> {
    let (name, size) = match entry.kind {
        Kind::Dir => (
            Span::raw(format!("{}/", entry.name)).bold().blue(),
            String::new(),
        ),
        Kind::Symlink => (Span::raw(format!("{}@", entry.name)).cyan(), String::new()),
        Kind::File | Kind::Other => (Span::raw(entry.name.clone()), format_bytes(entry.size)),
    };
    Row::new([
        Cell::from(name),
        Cell::from(Line::from(size).right_aligned()),
        Cell::from(format_date(entry.modified_ms)),
    ])
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_date(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let days = secs / 86_400;
    let clock = ui::format_clock(UNIX_EPOCH + Duration::from_secs(secs as u64));
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {}", &clock[..5])
}

/// The calendar date of a count of days since 1970-01-01 (Howard
/// Hinnant's algorithm), to avoid a date crate for one column.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn render_transfers(tab: &FilesTab, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Line::from(" Transfers ").bold());
    let inner = block.inner(area);
    block.render(area, buf);
    for (i, transfer) in tab.transfers.iter().enumerate() {
        let y = inner.y + i as u16;
        if y >= inner.bottom() {
            break;
        }
        let row = Rect {
            y,
            height: 1,
            ..inner
        };
        render_transfer(transfer, row, buf);
    }
}

fn render_transfer(transfer: &Transfer, area: Rect, buf: &mut Buffer) {
    let arrow = if transfer.upload { "↑" } else { "↓" };
    let [label, bar] = Layout::horizontal([Constraint::Length(24), Constraint::Min(0)]).areas(area);
    let name: String = transfer.name.chars().take(21).collect();
    Line::from(format!("{arrow} {name}")).render(label, buf);
    match &transfer.result {
        None => {
            let ratio = if transfer.total == 0 {
                0.0
            } else {
                (transfer.done as f64 / transfer.total as f64).min(1.0)
            };
            Gauge::default()
                .ratio(ratio)
                .label(format!(
                    "{} of {}",
                    format_bytes(transfer.done),
                    format_bytes(transfer.total)
                ))
                .gauge_style(Style::new().cyan())
                .render(bar, buf);
        }
        Some(Ok(text)) => Line::from(format!("✓ {text}")).green().render(bar, buf),
        Some(Err(text)) => Line::from(format!("✗ {text}")).red().render(bar, buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(format_date(0), "1970-01-01 00:00");
        // 2026-11-23 10:41:59 UTC.
        assert_eq!(format_date(1_795_430_519_000), "2026-11-23 10:41");
        assert_eq!(format_date(951_782_400_000), "2000-02-29 00:00");
    }
}
