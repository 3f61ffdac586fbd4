//! Drawing the Files tab: the directory list with sizes and modified times,
//! the transfers with progress bars, and the line under them.

use backroom_api::files::{Entry, Kind};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Cell, Gauge, Row, Table, Widget};

use crate::app::{Clock, ServerState};
use crate::files::tab::{FilesTab, Transfer};
use crate::units;
use crate::widgets;

/// What the tab says until its server answers and its session is ready.
const CARD: widgets::Card = widgets::Card {
    title: "Files",
    loading: "listing…",
    waiting: "The files show once the file server answers.",
};

/// Draws the Files tab into `area`.
pub fn render(tab: &FilesTab, state: &ServerState, clock: &Clock, area: Rect, buf: &mut Buffer) {
    if widgets::render_unready(&CARD, tab.loaded, state, clock.now, area, buf) {
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
        Some(prompt) => widgets::render_prompt(prompt, bottom, buf),
        None => widgets::render_status_line(&tab.filter, tab.status.as_ref(), bottom, buf),
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
        Kind::File | Kind::Other => (Span::raw(entry.name.clone()), units::bytes(entry.size)),
    };
    Row::new([
        Cell::from(name),
        Cell::from(Line::from(size).right_aligned()),
        Cell::from(units::utc_minute(entry.modified_ms.max(0))),
    ])
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
                    units::bytes(transfer.done),
                    units::bytes(transfer.total)
                ))
                .gauge_style(Style::new().cyan())
                .render(bar, buf);
        }
        Some(Ok(text)) => Line::from(format!("✓ {text}")).green().render(bar, buf),
        Some(Err(text)) => Line::from(format!("✗ {text}")).red().render(bar, buf),
    }
}
