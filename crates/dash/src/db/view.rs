//! Drawing the DB tab: the SQL editor, the summary line, the results (or
//! the error, in place) and the schema browser.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Row, Table, Widget, Wrap};

use crate::app::{Clock, ServerState};
use crate::db::tab::{DbTab, Focus, Output};
use crate::widgets;

/// The schema browser's width.
const SCHEMA_WIDTH: u16 = 24;

/// What the tab says until its server answers and its session is ready.
const CARD: widgets::Card = widgets::Card {
    title: "DB",
    loading: "opening a session…",
    waiting: "The SQL editor opens once the database server answers.",
};

/// Draws the DB tab into `area`.
pub fn render(tab: &DbTab, state: &ServerState, clock: &Clock, area: Rect, buf: &mut Buffer) {
    if widgets::render_unready(&CARD, tab.connected, state, clock.now, area, buf) {
        return;
    }
    let [main, schema] =
        Layout::horizontal([Constraint::Min(20), Constraint::Length(SCHEMA_WIDTH)]).areas(area);
    let editor_height = (tab.lines.len() as u16 + 2).clamp(3, 8);
    let [editor, summary, results] = Layout::vertical([
        Constraint::Length(editor_height),
        Constraint::Length(1),
        Constraint::Min(3),
    ])
    .areas(main);
    render_editor(tab, editor, buf);
    summary_line(tab).render(summary, buf);
    render_results(tab, results, buf);
    render_schema(tab, schema, buf);
}

fn focus_block(title: &str, focused: bool) -> Block<'static> {
    let border = if focused {
        Style::new().cyan()
    } else {
        Style::new().dark_gray()
    };
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(border)
        .title(Line::from(format!(" {title} ")).bold())
}

fn render_editor(tab: &DbTab, area: Rect, buf: &mut Buffer) {
    let focused = tab.focus == Focus::Editor;
    let mut title = match &tab.database {
        Some(database) => format!("SQL on {database}"),
        None => "SQL".to_owned(),
    };
    // Keys typed now land in the SQL: the title says so, and how to leave.
    if focused {
        title.push_str(" · editing, esc leaves");
    }
    let mut block = focus_block(&title, focused);
    if let Some(at) = tab.history_at {
        block = block.title(
            Line::from(format!(" history {}/{} ", at + 1, tab.history.len())).right_aligned(),
        );
    }
    let inner = block.inner(area);
    block.render(area, buf);
    // Keep the cursor in view, down and sideways: a long line scrolls
    // rather than being cut off.
    let skip = (tab.row + 1).saturating_sub(inner.height as usize);
    let left = if focused {
        (tab.col + 1).saturating_sub(inner.width as usize)
    } else {
        0
    };
    let lines: Vec<Line> = tab
        .lines
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, line)| {
            let line: String = line.chars().skip(left).collect();
            if focused && i == tab.row {
                cursor_line(&line, tab.col - left)
            } else {
                Line::from(line)
            }
        })
        .collect();
    if tab.text().is_empty() && !focused {
        Line::from("press e to write SQL").dim().render(inner, buf);
        return;
    }
    Paragraph::new(lines).render(inner, buf);
}

fn cursor_line(line: &str, col: usize) -> Line<'static> {
    let before: String = line.chars().take(col).collect();
    let at: String = line.chars().nth(col).map_or(" ".into(), String::from);
    let after: String = line.chars().skip(col + 1).collect();
    Line::from(vec![
        Span::raw(before),
        Span::raw(at).reversed(),
        Span::raw(after),
    ])
}

fn summary_line(tab: &DbTab) -> Line<'static> {
    let mut spans = Vec::new();
    if tab.tx_open {
        spans.push(Span::raw(" ● transaction open ").black().on_yellow());
        spans.push(Span::raw(" "));
    }
    if tab.running {
        spans.push(Span::raw("running…").yellow());
        return Line::from(spans);
    }
    match &tab.output {
        Output::Rows {
            rows,
            rows_affected,
            duration_us,
            columns,
            ..
        } => {
            let what = if columns.is_empty() {
                format!("{} affected", rows_text(*rows_affected))
            } else {
                rows_text(rows.len() as u64)
            };
            spans.push(Span::raw(what).green());
            spans.push(Span::raw(format!(" · {}", format_duration(*duration_us))).dim());
        }
        Output::Message(text) => spans.push(Span::raw(text.clone()).green()),
        Output::Error { .. } => spans.push(Span::raw("error").red().bold()),
        Output::Nothing => spans.push(Span::raw("F5 or ctrl-enter runs the SQL").dim()),
    }
    Line::from(spans)
}

/// `1 row`, `2 rows`.
fn rows_text(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// Microseconds as `850µs`, `12.3ms` or `1.20s`.
pub fn format_duration(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1_000_000.0)
    }
}

fn render_results(tab: &DbTab, area: Rect, buf: &mut Buffer) {
    let block = focus_block("Results", tab.focus == Focus::Results);
    let inner = block.inner(area);
    match &tab.output {
        Output::Rows {
            columns,
            rows,
            widths,
            ..
        } if !columns.is_empty() => {
            // The last page stays full: scrolling stops at the last row.
            let visible = inner.height.saturating_sub(1) as usize;
            let top = tab.scroll_row.min(rows.len().saturating_sub(visible));
            let shown = format!(
                " rows {}-{} of {} · column {} of {} ",
                (top + 1).min(rows.len()),
                (top + visible).min(rows.len()),
                rows.len(),
                tab.scroll_col + 1,
                columns.len()
            );
            block
                .title(Line::from(shown).right_aligned())
                .render(area, buf);
            render_rows(tab.scroll_col, top, columns, rows, widths, inner, buf);
        }
        Output::Error { sql, error } => {
            block.render(area, buf);
            let mut lines = vec![Line::from(error.clone()).red()];
            if !sql.is_empty() {
                lines.push(Line::default());
                lines.push(Line::from(format!("in: {}", sql.replace('\n', " "))).dim());
            }
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .render(inner, buf);
        }
        Output::Rows { sql, .. } => {
            block.render(area, buf);
            Line::from(format!("done: {}", sql.replace('\n', " ")))
                .dim()
                .render(inner, buf);
        }
        Output::Message(_) | Output::Nothing => block.render(area, buf),
    }
}

fn render_rows(
    scroll_col: usize,
    top: usize,
    columns: &[String],
    rows: &[Vec<String>],
    widths: &[usize],
    area: Rect,
    buf: &mut Buffer,
) {
    let first = scroll_col.min(columns.len().saturating_sub(1));
    // Columns keep their fitted width; those that do not fit wait for a
    // sideways scroll instead of being squeezed, and the last one shown
    // takes what room is left.
    let mut room = area.width as usize;
    let mut fitted = Vec::new();
    for width in &widths[first..] {
        if room == 0 {
            break;
        }
        let shown = (*width).min(room);
        fitted.push(shown);
        room = room.saturating_sub(shown + 2);
    }
    let last = first + fitted.len();
    let header = Row::new(columns[first..last].iter().cloned())
        .bold()
        .dark_gray();
    let visible = area.height.saturating_sub(1) as usize;
    let body: Vec<Row> = rows
        .iter()
        .skip(top)
        .take(visible)
        .map(|row| {
            Row::new(row.iter().skip(first).zip(&fitted).map(|(cell, width)| {
                if cell.chars().count() > *width {
                    let cut: String = cell.chars().take(width.saturating_sub(1)).collect();
                    format!("{cut}…")
                } else {
                    cell.clone()
                }
            }))
        })
        .collect();
    let constraints = fitted.iter().map(|w| Constraint::Length(*w as u16));
    Table::new(body, constraints)
        .header(header)
        .column_spacing(2)
        .render(area, buf);
}

fn render_schema(tab: &DbTab, area: Rect, buf: &mut Buffer) {
    let focused = tab.focus == Focus::Schema;
    let block = focus_block("Schema", focused);
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(schema) = &tab.schema else {
        Line::from("no schema yet").dim().render(inner, buf);
        return;
    };
    if schema.tables.is_empty() {
        Line::from("no tables").dim().render(inner, buf);
        return;
    }
    let mut lines = Vec::new();
    for (i, table) in schema.tables.iter().enumerate() {
        let selected = i == tab.schema_selected;
        let mark = if selected { "▾ " } else { "▸ " };
        let name = Line::from(format!("{mark}{}", table.name)).bold();
        lines.push(if selected && focused {
            name.reversed()
        } else {
            name
        });
        if selected {
            for column in &table.columns {
                let key = if column.primary_key > 0 { "⚷" } else { " " };
                lines.push(Line::from(vec![
                    Span::raw(format!("  {key}{} ", column.name)),
                    Span::raw(column.decl_type.to_lowercase()).dim(),
                ]));
            }
        }
    }
    // Keep the selected table in view.
    let selected_line = schema.tables.iter().take(tab.schema_selected).count();
    let skip = selected_line.saturating_sub(inner.height.saturating_sub(1) as usize);
    Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(format_duration(850), "850µs");
        assert_eq!(format_duration(12_345), "12.3ms");
        assert_eq!(format_duration(1_200_000), "1.20s");
    }
}
