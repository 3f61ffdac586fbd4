//! Drawing the Proxy tab: the statistics panes (request rate, status codes,
//! traffic, top hosts) above the live access log.

use std::time::{Duration, UNIX_EPOCH};

use backroom_api::proxy::{AccessRecord, Stats};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Sparkline, Widget};

use crate::app::{Clock, ServerState};
use crate::proxy::tab::ProxyTab;
use crate::units;
use crate::widgets;

/// What the tab says until its server answers and its session is ready.
const CARD: widgets::Card = widgets::Card {
    title: "Proxy",
    loading: "subscribing to the access log…",
    waiting: "The access log and statistics show once the proxy's admin port answers.",
};

/// Draws the Proxy tab into `area`.
pub fn render(tab: &ProxyTab, state: &ServerState, clock: &Clock, area: Rect, buf: &mut Buffer) {
    if widgets::render_unready(&CARD, tab.connected, state, clock.now, area, buf) {
        return;
    }
    let [top, log] = Layout::vertical([Constraint::Length(8), Constraint::Min(3)]).areas(area);
    let [rate, status, traffic, hosts] = Layout::horizontal([
        Constraint::Min(16),
        Constraint::Length(16),
        Constraint::Length(20),
        Constraint::Length(24),
    ])
    .areas(top);
    let stats = tab.stats.clone().unwrap_or_default();
    render_rate(tab, &stats, rate, buf);
    render_status(&stats, status, buf);
    render_traffic(&stats, traffic, buf);
    render_hosts(&stats, hosts, buf);
    render_log(tab, log, buf);
}

fn pane(title: &str) -> Block<'static> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().dark_gray())
        .title(Line::from(format!(" {title} ")).bold().white())
}

fn render_rate(tab: &ProxyTab, stats: &Stats, area: Rect, buf: &mut Buffer) {
    // Over ten seconds: light but steady traffic rounds to 0 over one.
    let block = pane(&format!("Requests/s {:.1}", stats.rate_10s));
    let inner = block.inner(area);
    block.render(area, buf);
    let [numbers, spark] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    Line::from(format!(
        "1s {:.1} · 60s {:.1}",
        stats.rate_1s, stats.rate_60s
    ))
    .dim()
    .render(numbers, buf);
    let skip = tab.rates.len().saturating_sub(spark.width as usize);
    let data: Vec<u64> = tab.rates.iter().skip(skip).copied().collect();
    Sparkline::default()
        .data(&data)
        .style(Style::new().cyan())
        .render(spark, buf);
}

fn render_status(stats: &Stats, area: Rect, buf: &mut Buffer) {
    let classes = &stats.by_status;
    let rows = [
        ("1xx", classes.informational, Color::Gray),
        ("2xx", classes.success, Color::Green),
        ("3xx", classes.redirection, Color::Cyan),
        ("4xx", classes.client_error, Color::Yellow),
        ("5xx", classes.server_error, Color::Red),
    ];
    let lines: Vec<Line> = rows
        .iter()
        .map(|(label, count, color)| {
            Line::from(vec![
                Span::styled(format!("{label} "), Style::new().fg(*color).bold()),
                Span::raw(format!("{count:>9}")),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(pane("Status"))
        .render(area, buf);
}

fn render_traffic(stats: &Stats, area: Rect, buf: &mut Buffer) {
    let lines = vec![
        Line::from(format!("requests {:>9}", stats.requests)),
        Line::from(format!("in       {:>9}", units::bytes(stats.bytes_in))),
        Line::from(format!("out      {:>9}", units::bytes(stats.bytes_out))),
        Line::from(format!("conns    {:>9}", stats.active_connections)),
        Line::from(format!("tunnels  {:>9}", stats.active_tunnels)),
    ];
    Paragraph::new(lines)
        .block(pane("Traffic"))
        .render(area, buf);
}

fn render_hosts(stats: &Stats, area: Rect, buf: &mut Buffer) {
    let block = pane("Top hosts");
    let inner = block.inner(area);
    block.render(area, buf);
    if stats.top_hosts.is_empty() {
        Line::from("none yet").dim().render(inner, buf);
        return;
    }
    let width = inner.width as usize;
    let lines: Vec<Line> = stats
        .top_hosts
        .iter()
        .take(inner.height as usize)
        .map(|host| {
            let count = host.requests.to_string();
            let room = width.saturating_sub(count.len() + 1);
            let name: String = host.host.chars().take(room).collect();
            Line::from(vec![
                Span::raw(format!("{name:<room$} ")),
                Span::raw(count).bold(),
            ])
        })
        .collect();
    Paragraph::new(lines).render(inner, buf);
}

fn render_log(tab: &ProxyTab, area: Rect, buf: &mut Buffer) {
    let mode = if tab.paused {
        format!(" paused · {} new ", tab.held.len())
    } else if tab.scroll > 0 {
        format!(" scrolled back {} ", tab.scroll)
    } else {
        " following ".to_string()
    };
    let count = if tab.filter.is_active() {
        format!(" {} of {} ", tab.visible().count(), tab.records.len())
    } else {
        format!(" {} ", tab.records.len())
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Line::from(" Access log ").bold())
        .title(Line::from(mode).right_aligned().yellow())
        .title(Line::from(count).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    let show_filter = tab.filter.is_editing() || tab.filter.is_active();
    let [list, filter] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::from(show_filter)),
    ])
    .areas(inner);
    let lines: Vec<Line> = tab
        .visible()
        .skip(tab.scroll)
        .take(list.height as usize)
        .map(record_line)
        .collect();
    if lines.is_empty() {
        let empty = if tab.records.is_empty() {
            "no requests yet"
        } else {
            "no requests match the filter"
        };
        Line::from(empty).dim().render(list, buf);
    } else {
        Paragraph::new(lines).render(list, buf);
    }
    if show_filter {
        (&tab.filter).render(filter, buf);
    }
}

fn record_line(record: &AccessRecord) -> Line<'static> {
    let color = match record.status {
        200..=299 => Color::Green,
        300..=399 => Color::Cyan,
        400..=499 => Color::Yellow,
        _ => Color::Red,
    };
    let at = UNIX_EPOCH + Duration::from_millis(record.time_ms);
    Line::from(vec![
        Span::raw(widgets::format_clock(at)).dim(),
        Span::raw(" "),
        Span::styled(record.status.to_string(), Style::new().fg(color).bold()),
        Span::raw(format!(" {:<7} ", record.method)),
        Span::raw(format!(
            "{:>8} {:>6} ",
            units::bytes(record.bytes_out),
            format!("{}ms", record.duration_ms)
        ))
        .dim(),
        Span::raw(record.target.clone()),
    ])
}
