//! The pieces every view draws with: the connection card of a tab whose
//! server is not there yet, the prompt, the status line, and how times and
//! latencies are written. A leaf: it knows the server state and nothing of
//! any tab.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Paragraph, Widget, Wrap};
use tokio::time::Instant;

use crate::app::{Link, ServerState};
use crate::filter::Filter;
use crate::prompt::Prompt;

/// The result of a tab's last request, shown under its main pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub ok: bool,
    pub text: String,
}

pub fn link_mark(link: &Link) -> (&'static str, Color) {
    match link {
        Link::Connected => ("●", Color::Green),
        Link::Connecting => ("◌", Color::Yellow),
        Link::Reconnecting { .. } => ("○", Color::Red),
    }
}

/// A tab that has nothing of its own to show yet: its server's address,
/// connection and `info`, and a note saying why.
/// What a tab shows in place of its contents while they cannot be shown.
#[derive(Debug)]
pub struct Card {
    pub title: &'static str,
    /// Connected, but the tab's own session is not ready yet.
    pub loading: &'static str,
    /// Not connected: what shows once the server answers.
    pub waiting: &'static str,
}

/// Draws `card` with the connection's state in place of a tab that is not
/// `ready` (or whose server is not connected), and says whether it did.
pub fn render_unready(
    card: &Card,
    ready: bool,
    state: &ServerState,
    now: Instant,
    area: Rect,
    buf: &mut Buffer,
) -> bool {
    if state.is_connected() && ready {
        return false;
    }
    let note = if state.is_connected() {
        card.loading
    } else {
        card.waiting
    };
    render_connection(card.title, state, now, note, area, buf);
    true
}

fn render_connection(
    title: &str,
    state: &ServerState,
    now: Instant,
    note: &str,
    area: Rect,
    buf: &mut Buffer,
) {
    let (_, color) = link_mark(&state.link);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(color))
        .title(Line::from(format!(" {title} ")).bold());
    let transport = if state.tls { "TLS" } else { "plain TCP" };
    let mut lines = vec![
        Line::from(format!(
            "{} server at {} ({transport})",
            state.server.name(),
            state.addr
        )),
        Line::default(),
    ];
    lines.extend(connection_lines(state, now));
    lines.push(Line::default());
    lines.push(Line::from(note.to_string()).italic());
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block)
        .render(area, buf);
}

pub fn connection_lines(state: &ServerState, now: Instant) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    match &state.link {
        Link::Connected => {
            let mut facts = vec![Span::raw("connected").green().bold()];
            if let Some(version) = &state.version {
                facts.push(Span::raw(format!(" · version {version}")));
            }
            if let Some(latency) = state.latency {
                facts.push(Span::raw(format!(" · latency {}", format_latency(latency))));
            }
            if let Some(session) = &state.session {
                facts.push(Span::raw(format!(" · session {session}")).dim());
            }
            lines.push(Line::from(facts));
        }
        Link::Connecting => lines.push(Line::from("connecting…").yellow().bold()),
        Link::Reconnecting {
            error,
            retry_at,
            attempt,
        } => {
            lines.push(Line::from(vec![
                Span::raw("reconnecting").red().bold(),
                Span::raw(format!(
                    " · {} (attempt {attempt})",
                    retry_label(*retry_at, now)
                )),
            ]));
            lines.push(Line::from(format!("last error: {error}")).dim());
        }
    }
    if let Some(info) = &state.info {
        let stale = if state.is_connected() {
            ""
        } else {
            " (when last seen)"
        };
        lines.push(Line::from(format!(
            "up {} · {} connections · {} requests served{stale}",
            format_uptime(info.uptime_ms),
            info.connections,
            info.requests_served
        )));
    }
    lines
}

/// `in 3s`, or `trying now` while an attempt is under way.
pub fn retry_label(retry_at: Option<Instant>, now: Instant) -> String {
    match retry_at {
        None => "trying now".into(),
        Some(at) => {
            let left = at.saturating_duration_since(now);
            format!("in {}s", left.as_millis().div_ceil(1000))
        }
    }
}

pub fn format_latency(latency: Duration) -> String {
    let micros = latency.as_micros();
    if micros < 10_000 {
        format!("{:.1}ms", micros as f64 / 1000.0)
    } else if micros < 1_000_000 {
        format!("{}ms", micros / 1000)
    } else {
        format!("{:.1}s", latency.as_secs_f64())
    }
}

pub fn format_uptime(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days}d {hours:02}h")
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// The time of day in UTC, `HH:MM:SS`.
pub fn format_clock(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let of_day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

pub fn render_prompt<T>(prompt: &Prompt<T>, area: Rect, buf: &mut Buffer) {
    let width = prompt
        .fields
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0);
    let lines: Vec<Line> = prompt
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let mut spans = vec![
                Span::raw(format!("{:>width$}: ", field.label)).bold(),
                Span::raw(field.value.clone()),
            ];
            if i == prompt.focus {
                spans.push(Span::raw(" ").reversed());
            }
            Line::from(spans)
        })
        .collect();
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_type(BorderType::Double)
                .border_style(Style::new().cyan())
                .title(Line::from(format!(" {} ", prompt.title)).bold()),
        )
        .render(area, buf);
}

/// The bottom line of a tab: its filter while one is in use, otherwise the
/// result of its last request.
pub fn render_status_line(filter: &Filter, status: Option<&Status>, area: Rect, buf: &mut Buffer) {
    if filter.is_editing() || filter.is_active() {
        filter.render(area, buf);
        return;
    }
    match status {
        Some(status) if status.ok => Line::from(status.text.clone()).green(),
        Some(status) => Line::from(status.text.clone()).red(),
        None => Line::from(""),
    }
    .render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_shown_with_sensible_precision() {
        assert_eq!(format_latency(Duration::from_micros(420)), "0.4ms");
        assert_eq!(format_latency(Duration::from_micros(12_700)), "12ms");
        assert_eq!(format_latency(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn uptime_shows_its_two_largest_units() {
        assert_eq!(format_uptime(9_000), "9s");
        assert_eq!(format_uptime(249_000), "4m 09s");
        assert_eq!(format_uptime(7_500_000), "2h 05m");
        assert_eq!(format_uptime(3 * 86_400_000 + 4 * 3_600_000), "3d 04h");
    }

    #[test]
    fn the_clock_is_utc_time_of_day() {
        let at = UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3600 * 13 + 60 * 7 + 5);
        assert_eq!(format_clock(at), "13:07:05");
    }

    #[test]
    fn the_retry_label_rounds_up_and_says_when_trying() {
        let now = Instant::now();
        assert_eq!(
            retry_label(Some(now + Duration::from_millis(2100)), now),
            "in 3s"
        );
        assert_eq!(
            retry_label(Some(now), now + Duration::from_secs(1)),
            "in 0s"
        );
        assert_eq!(retry_label(None, now), "trying now");
    }
}
