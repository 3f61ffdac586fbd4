//! Drawing the dashboard. Everything here reads the [`App`] and writes a
//! buffer; nothing here changes state or looks at the clock.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Sparkline, Tabs, Widget, Wrap};
use tokio::time::Instant;

use backroom_frame::server::Info;

use crate::app::{App, Event, Link, ServerState, Tab};
use crate::confirm::ConfirmDialog;
use crate::db::tab::Focus;
use crate::keymap::Action;
use crate::print::tab::Pane;
use crate::server::Server;
use crate::units;
use crate::update::Level;
use crate::widgets::{format_clock, format_latency, format_uptime, link_mark, retry_label};
use crate::{db, files, print, proxy};

/// Below this size the layout cannot be read, so it is not drawn.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            render_too_small(area, buf);
            return;
        }
        let [header, tabs, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_tabs(self, tabs, buf);
        match self.tab.server() {
            None => render_overview(self, body, buf),
            Some(Server::Print) => print::view::render(
                &self.print,
                self.server(Server::Print),
                &self.clock,
                body,
                buf,
            ),
            Some(Server::Db) => {
                db::view::render(&self.db, self.server(Server::Db), &self.clock, body, buf)
            }
            Some(Server::Proxy) => proxy::view::render(
                &self.proxy,
                self.server(Server::Proxy),
                &self.clock,
                body,
                buf,
            ),
            Some(Server::Files) => files::view::render(
                &self.files,
                self.server(Server::Files),
                &self.clock,
                body,
                buf,
            ),
        }
        render_footer(self, footer, buf);
        if self.help {
            render_help(self, body, buf);
        }
        if let Some(confirm) = &self.confirm {
            ConfirmDialog {
                confirm,
                keymap: &self.keymap,
            }
            .render(body, buf);
        }
    }
}

fn render_too_small(area: Rect, buf: &mut Buffer) {
    let text = Text::from(vec![
        Line::from("terminal too small").bold(),
        Line::from(format!(
            "need {MIN_WIDTH}×{MIN_HEIGHT}, have {}×{}",
            area.width, area.height
        )),
    ]);
    let y = area.y + area.height.saturating_sub(2) / 2;
    let rect = Rect {
        y,
        height: area.height.min(2),
        ..area
    };
    Paragraph::new(text)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .render(rect, buf);
}

/// The chips take their own width with a space between, so four
/// "reconnecting" chips still fit in 80 columns.
fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let chips: Vec<Line> = app.servers.iter().map(chip_line).collect();
    let areas = Layout::horizontal(chips.iter().map(|c| Constraint::Length(c.width() as u16)))
        .spacing(1)
        .flex(Flex::Start)
        .split(area);
    for (chip, at) in chips.into_iter().zip(areas.iter()) {
        chip.render(*at, buf);
    }
}

/// A server's chip: a status dot, its name, and version and latency when
/// connected.
fn chip_line(state: &ServerState) -> Line<'static> {
    let (dot, color) = link_mark(&state.link);
    let mut spans = vec![
        Span::styled(format!("{dot} "), Style::new().fg(color)),
        Span::raw(state.server.name()).bold(),
        Span::raw(" "),
    ];
    match &state.link {
        Link::Connected => {
            if let Some(version) = &state.version {
                spans.push(Span::raw(format!("{version} ")));
            }
            if let Some(latency) = state.latency {
                spans.push(Span::raw(format_latency(latency)).dim());
            }
        }
        Link::Connecting => spans.push(Span::raw("connecting").fg(color)),
        Link::Reconnecting { .. } => spans.push(Span::raw("reconnecting").fg(color)),
    }
    Line::from(spans)
}

/// The tab titles, and at the right end of their row the `read-only`
/// marker, where the chips cannot crowd it out.
fn render_tabs(app: &App, area: Rect, buf: &mut Buffer) {
    let area = if app.read_only {
        let marker = Line::from(" read-only ").black().on_yellow().bold();
        let width = (marker.width() as u16).min(area.width);
        let [rest, at] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(width)]).areas(area);
        marker.render(at, buf);
        rest
    } else {
        area
    };
    let titles = Tab::ALL
        .iter()
        .enumerate()
        .map(|(i, tab)| format!("{} {}", i + 1, tab.title()));
    Tabs::new(titles)
        .select(app.tab.index())
        .highlight_style(Style::new().reversed().bold())
        .padding(" ", " ")
        .render(area, buf);
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let keys = &app.keymap;
    let prompting = (app.tab == Tab::Print && app.print.prompt.is_some())
        || (app.tab == Tab::Files && app.files.prompt.is_some());
    let editing_sql = app.tab == Tab::Db && app.db.focus == Focus::Editor;
    let hints: Vec<(String, &str)> = if app.confirm.is_some() {
        vec![
            (keys.label(Action::Confirm), "yes"),
            (keys.label(Action::Cancel), "no"),
        ]
    } else if editing_sql {
        vec![
            (first_key(app, Action::RunQuery), "run"),
            ("esc".into(), "leave editor"),
            ("ctrl-p/n".into(), "history"),
            ("ctrl-c".into(), "quit"),
        ]
    } else if prompting {
        vec![
            ("enter".into(), "next/submit"),
            ("tab".into(), "next field"),
            ("esc".into(), "cancel"),
        ]
    } else if app.filter.is_editing()
        || app.print.filter.is_editing()
        || app.proxy.filter.is_editing()
        || app.files.filter.is_editing()
    {
        vec![
            ("enter".into(), "keep filter"),
            ("esc".into(), "clear filter"),
            ("ctrl-u".into(), "erase"),
        ]
    } else if app.help {
        vec![
            (format!("{}/esc", keys.label(Action::Help)), "close help"),
            (keys.label(Action::Quit), "quit"),
        ]
    } else {
        let mut hints = vec![
            (tab_keys_label(app), "tabs"),
            (keys.label(Action::Help), "help"),
        ];
        match app.tab {
            Tab::Overview => {
                hints.push((keys.label(Action::Filter), "filter"));
                hints.push((keys.label(Action::ClearEvents), "clear"));
                let servers = if app.show_servers {
                    "events"
                } else {
                    "servers"
                };
                hints.push((keys.label(Action::Servers), servers));
            }
            Tab::Print if app.print.pane == Pane::Printers => {
                hints.push((keys.label(Action::Pause), "pause"));
                hints.push((keys.label(Action::Resume), "resume"));
                hints.push((keys.label(Action::SwitchPane), "queue"));
            }
            Tab::Print => {
                hints.push((keys.label(Action::Filter), "filter"));
                hints.push((keys.label(Action::Submit), "submit"));
                hints.push((keys.label(Action::CancelJob), "cancel"));
            }
            Tab::Db => {
                hints.push((first_key(app, Action::Edit), "edit"));
                hints.push((first_key(app, Action::RunQuery), "run"));
                hints.push((keys.label(Action::Schema), "schema"));
            }
            Tab::Proxy => {
                hints.push((keys.label(Action::Filter), "filter"));
                let pause = if app.proxy.paused { "resume" } else { "pause" };
                hints.push((keys.label(Action::PauseLog), pause));
                hints.push((keys.label(Action::Follow), "follow"));
            }
            Tab::Files => {
                hints.push((keys.label(Action::Filter), "filter"));
                hints.push((keys.label(Action::Upload), "upload"));
                hints.push((first_key(app, Action::Delete), "delete"));
            }
        }
        // Read-only mode leaves out the hints of keys that are off.
        if app.read_only {
            hints.retain(|(_, what)| !CHANGING_HINTS.contains(what));
        }
        hints.push((keys.label(Action::Quit), "quit"));
        hints
    };
    let mut spans = Vec::new();
    for (key, what) in hints {
        spans.push(Span::raw(format!(" {key} ")).reversed());
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans).render(area, buf);
}

/// The footer hints of keys that change something, left out when read-only.
const CHANGING_HINTS: [&str; 6] = ["submit", "cancel", "pause", "resume", "upload", "delete"];

/// An action's first key, where the footer has no room for them all.
fn first_key(app: &App, action: Action) -> String {
    app.keymap
        .keys(action)
        .next()
        .map(|k| k.to_string())
        .unwrap_or_default()
}

/// `1-5` when the tab keys are the defaults, otherwise each tab's keys.
fn tab_keys_label(app: &App) -> String {
    let actions = [
        Action::Overview,
        Action::Files,
        Action::Print,
        Action::Db,
        Action::Proxy,
    ];
    let labels: Vec<String> = actions.iter().map(|a| app.keymap.label(*a)).collect();
    if labels == ["1", "2", "3", "4", "5"] {
        "1-5".into()
    } else {
        labels.join(",")
    }
}

fn render_overview(app: &App, area: Rect, buf: &mut Buffer) {
    // Every card is as tall as the one with the most vital signs, with the
    // events keeping at least a few lines.
    let vitals = app
        .servers
        .iter()
        .filter_map(|s| s.info.as_ref().map(|info| info.vitals.len()))
        .max()
        .unwrap_or(0) as u16;
    let sparkline = if area.height >= 16 { 2 } else { 0 };
    let card_height = (2 + CARD_FACTS + vitals + sparkline).min(area.height.saturating_sub(5));
    let [cards, events] =
        Layout::vertical([Constraint::Length(card_height), Constraint::Min(0)]).areas(area);
    let count = app.servers.len().max(1) as u32;
    let columns =
        Layout::horizontal(vec![Constraint::Ratio(1, count); count as usize]).split(cards);
    for (state, column) in app.servers.iter().zip(columns.iter()) {
        render_server_card(state, app.clock.now, *column, buf);
    }
    if app.show_servers {
        render_servers(app, events, buf);
    } else {
        render_events(app, events, buf);
    }
}

/// Where every server listens, as the config resolved it: the address the
/// dashboard and the CLI use, and the other faces, with the line that sends
/// a request through the proxy's HTTP port.
fn render_servers(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Line::from(" Servers ").bold());
    let mut lines = Vec::new();
    for state in &app.servers {
        let transport = if state.tls { "TLS" } else { "plain TCP" };
        let what = if state.server == Server::Proxy {
            "admin"
        } else {
            "frame"
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{:<6}", state.server.name())).bold(),
            Span::raw(format!("{what} {} ({transport})", state.addr)),
        ]));
        for (face, addr) in &state.faces {
            lines.push(Line::from(format!("      {face} {addr}")));
        }
        if state.server == Server::Proxy {
            lines.push(proxy_line(state.faces.get(PROXY_HTTP_FACE)));
        }
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block)
        .render(area, buf);
}

/// The name of the proxy's HTTP listener among its faces.
pub const PROXY_HTTP_FACE: &str = "http";

fn proxy_line(http: Option<&String>) -> Line<'static> {
    match http {
        Some(addr) => Line::from(format!("      try: curl -x http://{addr} http://example.com/")),
        None => Line::from(format!(
            "      the proxy's HTTP port is not configured: [proxy.faces] {PROXY_HTTP_FACE} = \"HOST:PORT\""
        ))
        .dim(),
    }
}

/// The lines every card has before its vital signs: status, uptime,
/// connections and requests.
const CARD_FACTS: u16 = 4;

/// One server's card on the Overview: status, `info` with the server's own
/// vital signs as it sends them, and a sparkline of its requests.
fn render_server_card(state: &ServerState, now: Instant, area: Rect, buf: &mut Buffer) {
    let (_, color) = link_mark(&state.link);
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(color))
        .title(Line::from(format!(" {} ", state.server.name())).bold());
    let inner = block.inner(area);
    block.render(area, buf);
    let mut lines = vec![status_line(state, now)];
    match &state.info {
        Some(info) => lines.extend(info_lines(info, state.is_connected())),
        None => lines.push(Line::from("no info yet").dim()),
    }
    let height = (lines.len() as u16).min(inner.height);
    let [text, spark] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(0)]).areas(inner);
    Paragraph::new(lines).render(text, buf);
    render_activity(state, spark, buf);
}

/// `info` as card lines, dimmed when it is from before the server went
/// away; a vital sign that calls for attention is in the error colour.
fn info_lines(info: &Info, fresh: bool) -> Vec<Line<'static>> {
    let style = if fresh {
        Style::new()
    } else {
        Style::new().dim()
    };
    let mut lines = vec![
        Line::styled(format!("up {}", format_uptime(info.uptime_ms)), style),
        Line::styled(format!("conns {}", info.connections), style),
        Line::styled(format!("reqs {}", info.requests_served), style),
    ];
    for vital in &info.vitals {
        let text = format!("{} {}", vital.name, units::vital(vital.value, &vital.unit));
        let style = if vital.alert {
            style.red().bold()
        } else {
            style
        };
        lines.push(Line::styled(text, style));
    }
    lines
}

fn status_line(state: &ServerState, now: Instant) -> Line<'static> {
    match &state.link {
        Link::Connected => Line::from(vec![
            Span::raw("connected ").green(),
            Span::raw(state.latency.map(format_latency).unwrap_or_default()).dim(),
        ]),
        Link::Connecting => Line::from("connecting…").yellow(),
        Link::Reconnecting { retry_at, .. } => Line::from(vec![
            Span::raw("reconnecting ").red(),
            Span::raw(retry_label(*retry_at, now)).dim(),
        ]),
    }
}

/// The newest activity samples that fit, as a sparkline.
fn render_activity(state: &ServerState, area: Rect, buf: &mut Buffer) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let skip = state.activity.len().saturating_sub(area.width as usize);
    let data: Vec<u64> = state.activity.iter().skip(skip).copied().collect();
    let style = if state.is_connected() {
        Style::new().cyan()
    } else {
        Style::new().dark_gray()
    };
    Sparkline::default()
        .data(&data)
        .style(style)
        .render(area, buf);
}

fn render_events(app: &App, area: Rect, buf: &mut Buffer) {
    let matching = app.visible_events().count();
    let count = if app.filter.is_active() {
        format!(" {matching} of {} ", app.events.len())
    } else {
        format!(" {} ", app.events.len())
    };
    let block = Block::bordered()
        .border_type(BorderType::Rounded)
        .title(Line::from(" Events ").bold())
        .title(Line::from(count).right_aligned());
    let inner = block.inner(area);
    block.render(area, buf);
    let show_filter = app.filter.is_editing() || app.filter.is_active();
    let [list, filter] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(u16::from(show_filter)),
    ])
    .areas(inner);
    let lines: Vec<Line> = app
        .visible_events()
        .skip(app.scroll)
        .take(list.height as usize)
        .map(event_line)
        .collect();
    if lines.is_empty() {
        let empty = if app.events.is_empty() {
            "no events yet"
        } else {
            "no events match the filter"
        };
        Line::from(empty).dim().render(list, buf);
    } else {
        Paragraph::new(lines).render(list, buf);
    }
    if show_filter {
        (&app.filter).render(filter, buf);
    }
}

fn event_line(event: &Event) -> Line<'static> {
    let color = match event.level {
        Level::Info => Color::Green,
        Level::Warn => Color::Yellow,
        Level::Error => Color::Red,
    };
    Line::from(vec![
        Span::raw(format_clock(event.at)).dim(),
        Span::raw(" "),
        Span::styled(
            format!("{:<5}", event.server.name()),
            Style::new().fg(color).bold(),
        ),
        Span::raw(" "),
        Span::raw(event.text.clone()),
    ])
}

fn render_help(app: &App, area: Rect, buf: &mut Buffer) {
    let entries = help_entries(app);
    let width = entries
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = entries
        .iter()
        .map(|(label, what)| {
            Line::from(vec![
                Span::raw(format!("{label:>width$}")).bold().cyan(),
                Span::raw("  "),
                Span::raw(what.clone()),
            ])
        })
        .collect();
    // The note goes only where it fits: a long list of keys comes first.
    if app.actions().contains(&Action::Filter) && lines.len() + 4 <= area.height as usize {
        lines.push(Line::default());
        lines.push(Line::from("while filtering: enter keeps, esc clears").dim());
    }
    let height = (lines.len() as u16 + 2).min(area.height);
    let box_width = 56.min(area.width);
    let rect = Rect {
        x: area.x + (area.width - box_width) / 2,
        y: area.y + (area.height - height) / 2,
        width: box_width,
        height,
    };
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(
            Block::bordered()
                .border_type(BorderType::Double)
                .title(Line::from(format!(" Keys: {} ", app.tab.title())).bold()),
        )
        .render(rect, buf);
}

/// The help overlay's rows: each action's keys and what it does, with the
/// five tab keys on one row when they are the defaults.
fn help_entries(app: &App) -> Vec<(String, String)> {
    let keys = &app.keymap;
    let tabs_label = tab_keys_label(app);
    let mut entries = Vec::new();
    for action in app.actions() {
        let is_tab_key = matches!(
            action,
            Action::Overview | Action::Files | Action::Print | Action::Db | Action::Proxy
        );
        if is_tab_key && tabs_label == "1-5" {
            if action == Action::Overview {
                entries.push((
                    tabs_label.clone(),
                    "Overview, Files, Print, DB, Proxy".into(),
                ));
            }
            continue;
        }
        entries.push((keys.label(action), action.describe().to_string()));
    }
    entries
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::server::Server;

    #[test]
    fn a_chip_says_reconnecting_for_a_down_server() {
        let mut state = ServerState::new(Server::Print, "127.0.0.1:1", false);
        state.link = Link::Reconnecting {
            error: "unavailable: refused".into(),
            retry_at: None,
            attempt: 3,
        };
        assert_eq!(chip_line(&state).to_string(), "○ print reconnecting");
        state.link = Link::Connected;
        state.version = Some("1.2.3".into());
        state.latency = Some(Duration::from_micros(800));
        assert_eq!(chip_line(&state).to_string(), "● print 1.2.3 0.8ms");
    }
}
