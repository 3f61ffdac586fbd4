//! The dashboard's state as plain data, and the two ways it changes: a key
//! press and a server update. Drawing lives in `ui` and only reads this.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use backroom_frame::server::Info;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::time::Instant;

use crate::config::Endpoint;
use crate::confirm::{Answer, Confirm};
use crate::db::{self, tab::DbTab};
use crate::files::{self, tab::FilesTab};
use crate::filter::{Filter, FilterOutcome};
use crate::keymap::{Action, Keymap};
use crate::outbox::{Outbox, Request};
use crate::print::{self, tab::PrintTab};
use crate::prompt::PromptOutcome;
use crate::proxy::tab::ProxyTab;
use crate::server::Server;
use crate::update::{Level, Update, UpdateKind};

/// How many events the Overview keeps; older ones fall off.
pub const EVENT_CAPACITY: usize = 1000;

/// How many activity samples each server keeps for its sparkline.
pub const ACTIVITY_CAPACITY: usize = 240;

/// The requests each poll adds to a server's count by itself (the previous
/// poll's `info` and this poll's `ping`), which the activity leaves out.
const OWN_REQUESTS_PER_POLL: u64 = 2;

/// The dashboard's tabs, in the order of their number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Files,
    Print,
    Db,
    Proxy,
}

impl Tab {
    pub const ALL: [Tab; 5] = [Tab::Overview, Tab::Files, Tab::Print, Tab::Db, Tab::Proxy];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Overview => "Overview",
            Tab::Files => "Files",
            Tab::Print => "Print",
            Tab::Db => "DB",
            Tab::Proxy => "Proxy",
        }
    }

    /// The server a tab is about; the Overview is about all of them.
    pub fn server(self) -> Option<Server> {
        match self {
            Tab::Overview => None,
            Tab::Files => Some(Server::Files),
            Tab::Print => Some(Server::Print),
            Tab::Db => Some(Server::Db),
            Tab::Proxy => Some(Server::Proxy),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn offset(self, by: isize) -> Tab {
        let n = Tab::ALL.len() as isize;
        Tab::ALL[(self.index() as isize + by).rem_euclid(n) as usize]
    }

    /// The keys that do something on this tab, in the help overlay's order:
    /// the actions whose scope holds the tab.
    pub fn actions(self) -> Vec<Action> {
        let here = 1 << self.index();
        Action::ALL
            .iter()
            .copied()
            .filter(|action| action.scope() & here != 0)
            .collect()
    }
}

/// The time as the app sees it. The loop sets it; tests pin it, so that
/// drawing is a pure function of the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub now: Instant,
    pub wall: SystemTime,
}

impl Clock {
    pub fn now() -> Clock {
        Clock {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// Where the dashboard stands with one server.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// The first attempt is under way.
    Connecting,
    Connected,
    /// The server is down or refused us; `retry_at` is `None` while an
    /// attempt is under way.
    Reconnecting {
        error: String,
        retry_at: Option<Instant>,
        attempt: u32,
    },
}

/// What the dashboard knows about one server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerState {
    pub server: Server,
    pub addr: String,
    pub tls: bool,
    /// The server's other listeners, by name, as the config file gives them.
    pub faces: BTreeMap<String, String>,
    pub link: Link,
    /// The last version the server announced; kept while it is down.
    pub version: Option<String>,
    /// The server's id for the current connection, as its logs show it.
    pub session: Option<String>,
    pub latency: Option<Duration>,
    /// The last `info`; kept while the server is down, shown as stale.
    pub info: Option<Info>,
    /// Requests served per poll, oldest first.
    pub activity: VecDeque<u64>,
    /// The previous poll's request count, to take differences from.
    last_served: Option<u64>,
    /// The last connect error put in the events, so that a retry failing
    /// the same way does not repeat it.
    last_logged_error: Option<String>,
}

impl ServerState {
    pub fn new(server: Server, addr: impl Into<String>, tls: bool) -> ServerState {
        ServerState {
            server,
            addr: addr.into(),
            tls,
            faces: BTreeMap::new(),
            link: Link::Connecting,
            version: None,
            session: None,
            latency: None,
            info: None,
            activity: VecDeque::new(),
            last_served: None,
            last_logged_error: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }
}

/// One line of the Overview's stream of recent events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub server: Server,
    pub level: Level,
    pub text: String,
}

impl Event {
    /// The text the filter looks at: the server's name and the message.
    pub fn searchable(&self) -> String {
        format!("{} {}", self.server, self.text)
    }
}

/// What a confirmed dialog runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    ClearEvents,
    /// Hand a tab's request to its task.
    Send(Request),
}

/// The whole dashboard state.
#[derive(Debug, Clone)]
pub struct App {
    pub tab: Tab,
    /// One per server, in the order of [`Server::ALL`].
    pub servers: Vec<ServerState>,
    /// Newest last.
    pub events: VecDeque<Event>,
    pub keymap: Keymap,
    /// The Overview's event filter.
    pub filter: Filter,
    /// How many matching events, from the newest, are scrolled past.
    pub scroll: usize,
    pub help: bool,
    pub confirm: Option<Confirm<Command>>,
    pub quit: bool,
    pub clock: Clock,
    pub print: PrintTab,
    pub db: DbTab,
    pub proxy: ProxyTab,
    pub files: FilesTab,
    /// Requests from keys, waiting for the loop to send them.
    pub outbox: Outbox,
    /// Every key that changes something is off (`--read-only`).
    pub read_only: bool,
    /// Whether the Overview shows where the servers are instead of the
    /// events.
    pub show_servers: bool,
}

impl App {
    pub fn new(endpoints: &[Endpoint], keymap: Keymap, clock: Clock) -> App {
        let database = endpoints
            .iter()
            .find(|e| e.server == Server::Db)
            .and_then(|e| e.database.clone());
        let servers = Server::ALL
            .into_iter()
            .map(|server| {
                let endpoint = endpoints.iter().find(|e| e.server == server);
                let addr = endpoint.map_or(server.default_addr(), |e| e.client.addr.as_str());
                let tls = endpoint.is_some_and(|e| e.client.tls.is_some());
                let mut state = ServerState::new(server, addr, tls);
                state.faces = endpoint.map(|e| e.faces.clone()).unwrap_or_default();
                state
            })
            .collect();
        App {
            tab: Tab::Overview,
            servers,
            events: VecDeque::new(),
            keymap,
            filter: Filter::default(),
            scroll: 0,
            help: false,
            confirm: None,
            quit: false,
            clock,
            print: PrintTab::default(),
            db: DbTab {
                database,
                ..DbTab::new()
            },
            proxy: ProxyTab::default(),
            files: FilesTab::new(std::env::current_dir().unwrap_or_default()),
            outbox: Outbox::default(),
            read_only: false,
            show_servers: false,
        }
    }

    /// The keys that work on the current tab: the tab's actions, less those
    /// that change something when the dashboard is read-only.
    pub fn actions(&self) -> Vec<Action> {
        let mut actions = self.tab.actions();
        if self.read_only {
            actions.retain(|a| !a.changes_something());
        }
        actions
    }

    pub fn server(&self, server: Server) -> &ServerState {
        &self.servers[server.index()]
    }

    /// The events that pass the filter, newest first.
    pub fn visible_events(&self) -> impl Iterator<Item = &Event> + '_ {
        self.events
            .iter()
            .rev()
            .filter(|e| self.filter.matches(&e.searchable()))
    }

    /// Applies one server's news.
    pub fn apply(&mut self, update: Update) {
        let Update { server, kind } = update;
        let kind = match kind {
            UpdateKind::Print(msg) => {
                let news = self.print.news(&msg);
                self.news(server, news);
                return self.apply_print(msg);
            }
            UpdateKind::Db(db::tab::Msg::Attached(outlet)) => {
                self.outbox.db = Some(outlet);
                return;
            }
            UpdateKind::Db(msg) => return self.db.apply(msg),
            UpdateKind::Proxy(msg) => {
                let news = self.proxy.news(&msg);
                self.news(server, news);
                return self.proxy.apply(msg);
            }
            UpdateKind::Files(files::tab::Msg::Attached(outlet)) => {
                self.outbox.files = Some(outlet);
                return;
            }
            UpdateKind::Files(msg) => {
                self.news(server, files::tab::news(&msg));
                return self.files.apply(msg);
            }
            kind => kind,
        };
        let state = &mut self.servers[server.index()];
        let event = match kind {
            UpdateKind::Connecting { attempt } => {
                if let Link::Reconnecting { retry_at, .. } = &mut state.link {
                    *retry_at = None;
                } else if attempt <= 1 && !state.is_connected() {
                    state.link = Link::Connecting;
                }
                None
            }
            UpdateKind::Connected { version, session } => {
                state.link = Link::Connected;
                state.last_served = None;
                state.last_logged_error = None;
                let text = format!("connected to {}, version {version}", state.addr);
                state.version = Some(version);
                state.session = Some(session);
                Some((Level::Info, text))
            }
            UpdateKind::Sample { latency, info } => {
                state.latency = Some(latency);
                if let Some(last) = state.last_served {
                    let served = info
                        .requests_served
                        .saturating_sub(last + OWN_REQUESTS_PER_POLL);
                    if state.activity.len() == ACTIVITY_CAPACITY {
                        state.activity.pop_front();
                    }
                    state.activity.push_back(served);
                }
                state.last_served = Some(info.requests_served);
                state.info = Some(info);
                None
            }
            UpdateKind::Print(_)
            | UpdateKind::Db(_)
            | UpdateKind::Proxy(_)
            | UpdateKind::Files(_) => None,
            UpdateKind::Down {
                error,
                retry_at,
                attempt,
            } => {
                let was_connected = state.is_connected();
                let repeated = state.last_logged_error.as_deref() == Some(error.as_str());
                state.link = Link::Reconnecting {
                    error: error.clone(),
                    retry_at: Some(retry_at),
                    attempt,
                };
                state.latency = None;
                state.session = None;
                if was_connected {
                    state.last_logged_error = Some(error.clone());
                    Some((Level::Warn, format!("disconnected: {error}")))
                } else if !repeated {
                    state.last_logged_error = Some(error.clone());
                    Some((Level::Error, format!("cannot connect: {error}")))
                } else {
                    None
                }
            }
        };
        self.news(server, event);
    }

    /// Puts a tab's news in the Overview's events.
    fn news(&mut self, server: Server, news: Option<(Level, String)>) {
        if let Some((level, text)) = news {
            let at = self.clock.wall;
            self.push_event(Event {
                at,
                server,
                level,
                text,
            });
        }
    }

    fn apply_print(&mut self, msg: print::tab::Msg) {
        match msg {
            print::tab::Msg::Attached(outlet) => self.outbox.print = Some(outlet),
            msg => self.print.apply(msg),
        }
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() == EVENT_CAPACITY {
            self.events.pop_front();
        }
        let visible = self.filter.matches(&event.searchable());
        self.events.push_back(event);
        // Someone reading older events keeps their place as new ones arrive.
        if self.scroll > 0 && visible {
            self.scroll += 1;
        }
    }

    /// Applies one terminal key press.
    pub fn handle_key(&mut self, key: KeyEvent) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if let Some(confirm) = &self.confirm {
            match confirm.answer(&self.keymap, key) {
                Answer::Yes(command) => {
                    self.confirm = None;
                    self.run(command);
                }
                Answer::No => self.confirm = None,
                Answer::Pending => {}
            }
            return;
        }
        // Ctrl-C quits whatever the keymap and mode say, as in every
        // terminal program; nobody should be trapped.
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        if self.tab == Tab::Db && self.db.focus == db::tab::Focus::Editor {
            let run = self.keymap.action_among(key, &[Action::RunQuery]).is_some();
            if let Some(request) = self.db.edit_key(key, run) {
                self.queue_db(request);
            }
            return;
        }
        if self.tab == Tab::Files && self.files.prompt.is_some() {
            self.files_prompt_key(key);
            return;
        }
        if self.tab == Tab::Print && self.print.prompt.is_some() {
            self.prompt_key(key);
            return;
        }
        if self.filter.is_editing() {
            if self.filter.handle_key(key) != FilterOutcome::Moved {
                self.scroll = 0;
            }
            return;
        }
        if self.print.filter.is_editing() {
            self.print.filter.handle_key(key);
            self.print.keep_selection();
            return;
        }
        if self.files.filter.is_editing() {
            self.files.filter.handle_key(key);
            self.files.keep_selection();
            return;
        }
        if self.proxy.filter.is_editing() {
            if self.proxy.filter.handle_key(key) != FilterOutcome::Moved {
                self.proxy.scroll = 0;
            }
            return;
        }
        let actions = self.actions();
        let Some(action) = self.keymap.action_among(key, &actions) else {
            if self.help && key.code == KeyCode::Esc {
                self.help = false;
            }
            return;
        };
        if !actions.contains(&action) {
            return;
        }
        if self.help && !matches!(action, Action::Help | Action::Quit) {
            return;
        }
        self.perform(action);
    }

    /// A key for the Print tab's open prompt.
    fn prompt_key(&mut self, key: KeyEvent) {
        let Some(prompt) = &mut self.print.prompt else {
            return;
        };
        match prompt.handle_key(key) {
            PromptOutcome::Editing => {}
            PromptOutcome::Cancelled => self.print.prompt = None,
            PromptOutcome::Submitted => {
                if let Some(request) = self.print.finish_prompt() {
                    self.outbox.queued.push(Request::Print(request));
                }
            }
        }
    }

    /// A key for the Files tab's open prompt.
    fn files_prompt_key(&mut self, key: KeyEvent) {
        let Some(prompt) = &mut self.files.prompt else {
            return;
        };
        match prompt.handle_key(key) {
            PromptOutcome::Editing => {}
            PromptOutcome::Cancelled => self.files.prompt = None,
            PromptOutcome::Submitted => {
                if let Some(request) = self.files.finish_prompt() {
                    self.outbox.queued.push(Request::Files(request));
                }
            }
        }
    }

    /// Queues a DB request, unless the dashboard is read-only and the
    /// request may write: then the refusal shows in place of the results.
    fn queue_db(&mut self, request: db::tab::Request) {
        if self.read_only && !request.is_read_only() {
            self.db.running = false;
            self.db.output = db::tab::Output::Error {
                sql: self.db.text().trim().to_string(),
                error: db::tab::READ_ONLY_REFUSAL.to_string(),
            };
            return;
        }
        self.outbox.queued.push(Request::Db(request));
    }

    fn perform_on_files(&mut self, action: Action) {
        match self.files.perform(action) {
            files::tab::Effect::None => {}
            files::tab::Effect::Send(request) => self.outbox.queued.push(Request::Files(request)),
            files::tab::Effect::Confirm(title, question, request) => {
                let command = Command::Send(Request::Files(request));
                self.confirm = Some(Confirm::new(title, question, command));
            }
        }
    }

    /// Whether `action` belongs to the current tab's own contents.
    fn is_tab_action(&self, action: Action) -> bool {
        self.tab != Tab::Overview
            && !matches!(
                action,
                Action::Quit
                    | Action::Help
                    | Action::NextTab
                    | Action::PrevTab
                    | Action::Overview
                    | Action::Files
                    | Action::Print
                    | Action::Db
                    | Action::Proxy
            )
    }

    fn perform_on_print(&mut self, action: Action) {
        match self.print.perform(action) {
            print::tab::Effect::None => {}
            print::tab::Effect::Send(request) => self.outbox.queued.push(Request::Print(request)),
            print::tab::Effect::Confirm(title, question, request) => {
                let command = Command::Send(Request::Print(request));
                self.confirm = Some(Confirm::new(title, question, command));
            }
        }
    }

    fn perform(&mut self, action: Action) {
        if self.is_tab_action(action) {
            match self.tab {
                Tab::Db => {
                    if let Some(request) = self.db.perform(action) {
                        self.queue_db(request);
                    }
                }
                Tab::Proxy => self.proxy.perform(action),
                Tab::Files => self.perform_on_files(action),
                _ => self.perform_on_print(action),
            }
            return;
        }
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = !self.help,
            Action::NextTab => self.tab = self.tab.offset(1),
            Action::PrevTab => self.tab = self.tab.offset(-1),
            Action::Overview => self.tab = Tab::Overview,
            Action::Files => self.tab = Tab::Files,
            Action::Print => self.tab = Tab::Print,
            Action::Db => self.tab = Tab::Db,
            Action::Proxy => self.tab = Tab::Proxy,
            Action::Filter => self.filter.start(),
            Action::Up => self.scroll = self.scroll.saturating_sub(1),
            Action::Down => {
                let last = self.visible_events().count().saturating_sub(1);
                self.scroll = (self.scroll + 1).min(last);
            }
            Action::Servers => self.show_servers = !self.show_servers,
            Action::ClearEvents => {
                let question = format!(
                    "Clear all {} recent events from the Overview?",
                    self.events.len()
                );
                self.confirm = Some(Confirm::new("Clear events", question, Command::ClearEvents));
            }
            _ => {}
        }
    }

    fn run(&mut self, command: Command) {
        match command {
            Command::Send(request) => self.outbox.queued.push(request),
            Command::ClearEvents => {
                self.events.clear();
                self.scroll = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tabs_scope_bit_is_its_index() {
        use crate::keymap::scope;
        let bits = [
            scope::OVERVIEW,
            scope::FILES,
            scope::PRINT,
            scope::DB,
            scope::PROXY,
        ];
        for (tab, bit) in Tab::ALL.into_iter().zip(bits) {
            assert_eq!(1 << tab.index(), bit, "{}", tab.title());
        }
    }

    fn app() -> App {
        App::new(&[], Keymap::default(), Clock::now())
    }

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn info(requests_served: u64) -> Info {
        Info {
            service: "files".into(),
            version: "1.0.0".into(),
            uptime_ms: 1000,
            connections: 1,
            requests_served,
            vitals: Vec::new(),
        }
    }

    fn update(server: Server, kind: UpdateKind) -> Update {
        Update { server, kind }
    }

    fn down(app: &App, error: &str) -> UpdateKind {
        UpdateKind::Down {
            error: error.into(),
            retry_at: app.clock.now + Duration::from_secs(2),
            attempt: 1,
        }
    }

    fn connected() -> UpdateKind {
        UpdateKind::Connected {
            version: "1.0.0".into(),
            session: "s1".into(),
        }
    }

    #[test]
    fn number_keys_and_tab_keys_switch_tabs() {
        let mut app = app();
        app.handle_key(key('3'));
        assert_eq!(app.tab, Tab::Print);
        app.handle_key(code(KeyCode::Tab));
        assert_eq!(app.tab, Tab::Db);
        app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(app.tab, Tab::Files);
        app.handle_key(key('5'));
        app.handle_key(code(KeyCode::Tab));
        assert_eq!(app.tab, Tab::Overview, "Tab wraps around");
        app.handle_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(app.tab, Tab::Proxy, "Shift-Tab wraps around");
    }

    #[test]
    fn q_and_ctrl_c_quit() {
        let mut app = app();
        app.handle_key(key('q'));
        assert!(app.quit);
        let mut app = self::app();
        app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.quit);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut app = app();
        let mut release = key('q');
        release.kind = KeyEventKind::Release;
        app.handle_key(release);
        assert!(!app.quit);
    }

    #[test]
    fn help_toggles_and_swallows_other_keys_while_open() {
        let mut app = app();
        app.handle_key(key('?'));
        assert!(app.help);
        app.handle_key(key('3'));
        assert_eq!(app.tab, Tab::Overview, "keys behind the overlay do nothing");
        app.handle_key(code(KeyCode::Esc));
        assert!(!app.help);
        app.handle_key(key('?'));
        app.handle_key(key('?'));
        assert!(!app.help);
    }

    #[test]
    fn overview_keys_do_nothing_on_other_tabs() {
        let mut app = app();
        app.handle_key(key('2'));
        app.handle_key(key('/'));
        assert!(!app.filter.is_editing());
        app.handle_key(key('c'));
        assert!(app.confirm.is_none());
    }

    #[test]
    fn typing_a_filter_takes_the_keys_that_are_otherwise_actions() {
        let mut app = app();
        app.apply(update(Server::Files, connected()));
        app.apply(update(Server::Db, connected()));
        app.handle_key(key('/'));
        for c in "q2db".chars() {
            app.handle_key(key(c));
        }
        assert!(!app.quit && app.tab == Tab::Overview);
        assert_eq!(app.filter.query(), "q2db");
        for _ in 0..4 {
            app.handle_key(code(KeyCode::Backspace));
        }
        app.handle_key(key('d'));
        app.handle_key(key('b'));
        app.handle_key(code(KeyCode::Enter));
        let shown: Vec<Server> = app.visible_events().map(|e| e.server).collect();
        assert_eq!(shown, [Server::Db], "only the db event mentions db");
    }

    #[test]
    fn ctrl_c_quits_even_while_typing_a_filter() {
        let mut app = app();
        app.handle_key(key('/'));
        app.handle_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(app.quit);
    }

    #[test]
    fn clearing_events_asks_first_and_no_keeps_them() {
        let mut app = app();
        app.apply(update(Server::Files, connected()));
        app.handle_key(key('c'));
        assert!(app.confirm.is_some());
        app.handle_key(key('q'));
        assert!(
            !app.quit && app.confirm.is_some(),
            "the dialog swallows other keys"
        );
        app.handle_key(key('n'));
        assert!(app.confirm.is_none());
        assert_eq!(app.events.len(), 1);
        app.handle_key(key('c'));
        app.handle_key(key('y'));
        assert!(app.confirm.is_none());
        assert!(app.events.is_empty());
    }

    #[test]
    fn a_down_server_is_reconnecting_and_its_repeated_errors_are_logged_once() {
        let mut app = app();
        for _ in 0..3 {
            let kind = down(&app, "unavailable: refused");
            app.apply(update(Server::Print, kind));
            app.apply(update(Server::Print, UpdateKind::Connecting { attempt: 2 }));
        }
        assert!(matches!(
            app.server(Server::Print).link,
            Link::Reconnecting { retry_at: None, .. }
        ));
        assert_eq!(app.events.len(), 1, "{:?}", app.events);
        assert_eq!(app.events[0].level, Level::Error);
        let kind = down(&app, "unauthorized: bad token");
        app.apply(update(Server::Print, kind));
        assert_eq!(app.events.len(), 2, "a new error is news");
    }

    #[test]
    fn losing_a_connected_server_is_a_warning_and_keeps_its_last_info() {
        let mut app = app();
        app.apply(update(Server::Db, connected()));
        app.apply(update(
            Server::Db,
            UpdateKind::Sample {
                latency: Duration::from_millis(1),
                info: info(10),
            },
        ));
        let kind = down(&app, "unavailable: the server closed the connection");
        app.apply(update(Server::Db, kind));
        let db = app.server(Server::Db);
        assert!(matches!(db.link, Link::Reconnecting { .. }));
        assert_eq!(db.info.as_ref().map(|i| i.requests_served), Some(10));
        assert_eq!(db.latency, None);
        let last = app.events.back().expect("an event");
        assert_eq!(
            (last.level, last.text.starts_with("disconnected")),
            (Level::Warn, true)
        );
    }

    #[test]
    fn activity_counts_requests_between_polls_without_the_polls_own() {
        let mut app = app();
        app.apply(update(Server::Files, connected()));
        for served in [5, 7, 19, 21] {
            app.apply(update(
                Server::Files,
                UpdateKind::Sample {
                    latency: Duration::from_millis(1),
                    info: info(served),
                },
            ));
        }
        let activity: Vec<u64> = app.server(Server::Files).activity.iter().copied().collect();
        assert_eq!(activity, [0, 10, 0]);
    }

    #[test]
    fn scrolling_stays_within_the_events_and_keeps_its_place() {
        let mut app = app();
        for server in Server::ALL {
            app.apply(update(server, connected()));
        }
        for _ in 0..10 {
            app.handle_key(key('j'));
        }
        assert_eq!(app.scroll, 3);
        app.apply(update(Server::Files, down(&app, "unavailable: gone")));
        assert_eq!(app.scroll, 4, "the same event stays in view");
        app.handle_key(key('k'));
        assert_eq!(app.scroll, 3);
    }

    #[test]
    fn the_event_list_is_bounded() {
        let mut app = app();
        for i in 0..EVENT_CAPACITY + 5 {
            let kind = down(&app, &format!("error {i}"));
            app.apply(update(Server::Files, kind));
        }
        assert_eq!(app.events.len(), EVENT_CAPACITY);
        assert!(app.events[0].text.ends_with("error 5"));
    }

    fn print_tab_with_a_job() -> App {
        let mut app = app();
        app.handle_key(key('3'));
        let job =
            crate::print::tab::tests::job(7, "memo", 50, backroom_api::print::JobState::Pending);
        app.apply(update(
            Server::Print,
            UpdateKind::Print(print::tab::Msg::Snapshot {
                jobs: vec![job],
                total: 1,
                printers: vec![],
                default_printer: None,
            }),
        ));
        app
    }

    #[test]
    fn cancelling_a_job_asks_first_and_only_yes_sends_it() {
        let mut app = print_tab_with_a_job();
        app.handle_key(key('x'));
        assert!(app.confirm.is_some());
        assert!(app.outbox.queued.is_empty(), "nothing is sent before yes");
        app.handle_key(key('n'));
        assert!(app.outbox.queued.is_empty());
        app.handle_key(key('x'));
        app.handle_key(key('y'));
        assert_eq!(
            app.outbox.queued,
            [Request::Print(print::tab::Request::Cancel(7))]
        );
    }

    #[test]
    fn a_prompt_takes_every_key_until_it_is_submitted() {
        let mut app = print_tab_with_a_job();
        app.handle_key(key('a'));
        for c in "/tmp/q3.txt".chars() {
            app.handle_key(key(c));
        }
        assert_eq!(
            app.tab,
            Tab::Print,
            "typing 3 and q does not switch or quit"
        );
        assert!(!app.quit);
        app.handle_key(code(KeyCode::Enter));
        app.handle_key(code(KeyCode::Enter));
        app.handle_key(code(KeyCode::Enter));
        assert!(app.print.prompt.is_none());
        assert_eq!(
            app.outbox.queued,
            [Request::Print(print::tab::Request::Submit {
                path: "/tmp/q3.txt".into(),
                name: "q3.txt".into(),
                priority: 50,
                printer: None,
            })]
        );
    }

    #[test]
    fn print_keys_do_nothing_on_the_overview() {
        let mut app = print_tab_with_a_job();
        app.handle_key(key('1'));
        app.handle_key(key('h'));
        app.handle_key(key('x'));
        assert!(app.outbox.queued.is_empty() && app.confirm.is_none());
    }

    #[test]
    fn the_outbox_sends_to_the_attached_task() {
        let mut app = print_tab_with_a_job();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        app.apply(update(
            Server::Print,
            UpdateKind::Print(print::tab::Msg::Attached(crate::outbox::Outlet(tx))),
        ));
        app.handle_key(key('h'));
        app.outbox.flush();
        assert_eq!(rx.try_recv().ok(), Some(print::tab::Request::Hold(7)));
        assert!(app.outbox.queued.is_empty());
    }

    #[test]
    fn read_only_turns_off_every_print_key_that_changes_something() {
        let mut app = print_tab_with_a_job();
        app.read_only = true;
        for c in ['a', 'x', 'h', 'r', '+', '-', 't', 'm'] {
            app.handle_key(key(c));
        }
        app.handle_key(code(KeyCode::Right));
        app.handle_key(key('p'));
        app.handle_key(key('P'));
        assert!(app.outbox.queued.is_empty(), "{:?}", app.outbox.queued);
        assert!(app.confirm.is_none() && app.print.prompt.is_none());
        app.handle_key(key('1'));
        assert_eq!(
            app.tab,
            Tab::Overview,
            "keys that change nothing still work"
        );
    }

    #[test]
    fn read_only_turns_off_the_files_keys_that_change_something() {
        let mut app = app();
        app.read_only = true;
        app.handle_key(key('2'));
        for c in ['u', 'n', 'r', 'x'] {
            app.handle_key(key(c));
            assert!(app.files.prompt.is_none(), "{c} opens no prompt");
        }
        app.handle_key(code(KeyCode::Delete));
        assert!(app.confirm.is_none() && app.outbox.queued.is_empty());
    }

    #[test]
    fn read_only_runs_selects_but_refuses_writes_in_place() {
        let mut app = app();
        app.read_only = true;
        app.handle_key(key('4'));
        app.handle_key(key('e'));
        for c in "DELETE FROM t".chars() {
            app.handle_key(key(c));
        }
        app.handle_key(code(KeyCode::F(5)));
        assert!(app.outbox.queued.is_empty());
        assert!(
            !app.db.running,
            "a refused statement leaves the editor usable"
        );
        assert!(
            matches!(&app.db.output, db::tab::Output::Error { error, .. } if error.starts_with("read-only"))
        );
        app.handle_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
        for c in "SELECT 1".chars() {
            app.handle_key(key(c));
        }
        app.handle_key(code(KeyCode::F(5)));
        assert_eq!(
            app.outbox.queued,
            [Request::Db(db::tab::Request::Run("SELECT 1".into()))]
        );
    }

    #[test]
    fn read_only_leaves_the_changing_keys_out_of_the_help() {
        let mut app = app();
        app.tab = Tab::Print;
        assert!(app.actions().contains(&Action::Submit));
        app.read_only = true;
        assert!(!app.actions().iter().any(|a| a.changes_something()));
        assert!(app.actions().contains(&Action::Filter));
    }

    #[test]
    fn the_db_editor_takes_tab_keys_as_text_until_esc() {
        let mut app = app();
        app.handle_key(key('4'));
        app.handle_key(key('e'));
        for c in "SELECT 1, 'q'".chars() {
            app.handle_key(key(c));
        }
        assert_eq!((app.tab, app.quit), (Tab::Db, false));
        assert_eq!(app.db.text(), "SELECT 1, 'q'");
        app.handle_key(code(KeyCode::F(5)));
        assert_eq!(
            app.outbox.queued,
            [Request::Db(db::tab::Request::Run("SELECT 1, 'q'".into()))]
        );
        app.handle_key(code(KeyCode::Esc));
        app.handle_key(key('1'));
        assert_eq!(app.tab, Tab::Overview, "outside the editor keys are keys");
    }

    #[test]
    fn deleting_a_file_asks_first() {
        let mut app = app();
        app.handle_key(key('2'));
        app.apply(update(
            Server::Files,
            UpdateKind::Files(files::tab::Msg::Listing {
                path: String::new(),
                entries: vec![backroom_api::files::Entry {
                    name: "a.txt".into(),
                    kind: backroom_api::files::Kind::File,
                    size: 1,
                    modified_ms: 0,
                    mode: 0o644,
                }],
            }),
        ));
        app.handle_key(key('x'));
        assert!(app.confirm.is_some() && app.outbox.queued.is_empty());
        app.handle_key(key('y'));
        assert_eq!(
            app.outbox.queued,
            [Request::Files(files::tab::Request::Remove {
                path: "a.txt".into(),
                recursive: false
            })]
        );
    }
}
