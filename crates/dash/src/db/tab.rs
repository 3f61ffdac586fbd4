//! The DB tab's state: a multi-line SQL editor with history, the last
//! result or error, the schema, and whether a transaction is open.

use backroom_api::db::{QueryResult, Schema, Value};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::keymap::Action;
use crate::outbox::Outlet;

/// How many statements the history keeps.
pub const HISTORY_CAPACITY: usize = 200;

/// The widest a result column gets; longer values are cut with `…`.
pub const MAX_COLUMN_WIDTH: usize = 40;

/// Something the tab asks the database server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run one statement (reads on a reader, writes on the writer).
    Run(String),
    Begin,
    Commit,
    Rollback,
    /// Read the schema again.
    Schema,
}

impl Request {
    /// The request for what the editor holds: BEGIN, COMMIT and ROLLBACK
    /// become the server's transaction methods, since it refuses them as SQL.
    pub fn from_sql(sql: &str) -> Request {
        let words: Vec<String> = sql
            .trim()
            .trim_end_matches(';')
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["begin"] | ["begin", "transaction"] => Request::Begin,
            ["commit"] | ["end"] | ["commit", "transaction"] | ["end", "transaction"] => {
                Request::Commit
            }
            ["rollback"] | ["rollback", "transaction"] => Request::Rollback,
            _ => Request::Run(sql.trim().to_string()),
        }
    }
}

/// Why a statement is not run in read-only mode.
pub const READ_ONLY_REFUSAL: &str =
    "read-only: only SELECT, EXPLAIN, PRAGMA without a value, and WITH … SELECT run";

impl Request {
    /// Whether the request surely changes nothing, judged from the text
    /// alone, since the client cannot ask SQLite. Errs on the side of
    /// refusing: one statement only; SELECT and EXPLAIN; a PRAGMA that sets
    /// nothing (no `=` and no `(`); and a WITH whose body writes nowhere.
    /// Transactions are refused too: there is nothing for them to guard.
    pub fn is_read_only(&self) -> bool {
        match self {
            Request::Schema => true,
            Request::Run(sql) => is_read_only_sql(sql),
            Request::Begin | Request::Commit | Request::Rollback => false,
        }
    }
}

fn is_read_only_sql(sql: &str) -> bool {
    let sql = sql.trim().trim_end_matches(';').trim();
    if sql.contains(';') {
        return false;
    }
    let lower = sql.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    match words.first().copied() {
        Some("select" | "explain") => true,
        Some("pragma") => !lower.contains('=') && !lower.contains('('),
        Some("with") => {
            words.contains(&"select")
                && !words
                    .iter()
                    .any(|w| matches!(*w, "insert" | "update" | "delete" | "replace"))
        }
        _ => false,
    }
}

/// News from the DB task.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Attached(Outlet<Request>),
    /// The task connected: a new session, so no transaction is open.
    Connected,
    Schema(Schema),
    /// A statement ran.
    Result {
        sql: String,
        result: QueryResult,
    },
    /// A transaction method succeeded.
    Transaction {
        open: bool,
        text: String,
    },
    /// A request failed; `rolled_back` when the server ended a transaction.
    Failed {
        sql: String,
        error: String,
    },
    /// The connection broke; the task reconnects.
    Lost(String),
}

/// Which part of the tab has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Focus {
    Editor,
    /// Where the tab starts, so that tab and number keys work on arrival.
    #[default]
    Results,
    Schema,
}

/// What the results pane shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Output {
    #[default]
    Nothing,
    Rows {
        sql: String,
        columns: Vec<String>,
        /// The values as shown, one string per cell.
        rows: Vec<Vec<String>>,
        /// The fitted width of each column.
        widths: Vec<usize>,
        rows_affected: u64,
        duration_us: u64,
    },
    Message(String),
    Error {
        sql: String,
        error: String,
    },
}

/// The DB tab's state.
#[derive(Debug, Clone, Default)]
pub struct DbTab {
    pub connected: bool,
    /// The editor's lines; never empty.
    pub lines: Vec<String>,
    /// The cursor: line, and character within it.
    pub row: usize,
    pub col: usize,
    pub focus: Focus,
    /// Statements run, oldest first.
    pub history: Vec<String>,
    /// Where Ctrl-P/Ctrl-N stand in the history; `None` while editing anew.
    pub history_at: Option<usize>,
    pub output: Output,
    /// The first row and column shown.
    pub scroll_row: usize,
    pub scroll_col: usize,
    pub running: bool,
    pub tx_open: bool,
    pub schema: Option<Schema>,
    pub schema_selected: usize,
    /// The database the statements run on, when it is not the server's
    /// `main`.
    pub database: Option<String>,
}

impl DbTab {
    pub fn new() -> DbTab {
        DbTab {
            lines: vec![String::new()],
            ..DbTab::default()
        }
    }

    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Replaces the editor's text, with the cursor at its end.
    pub fn set_text(&mut self, text: &str) {
        self.lines = text.split('\n').map(str::to_string).collect();
        if self.lines.is_empty() {
            self.lines.push(String::new());
        }
        self.row = self.lines.len() - 1;
        self.col = self.lines[self.row].chars().count();
    }

    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Attached(_) => {}
            Msg::Connected => {
                self.connected = true;
                self.tx_open = false;
                self.running = false;
            }
            Msg::Schema(schema) => {
                let tables = schema.tables.len();
                self.schema = Some(schema);
                self.schema_selected = self.schema_selected.min(tables.saturating_sub(1));
            }
            Msg::Result { sql, result } => {
                self.running = false;
                self.show(sql, result);
            }
            Msg::Transaction { open, text } => {
                self.running = false;
                self.tx_open = open;
                self.output = Output::Message(text);
            }
            Msg::Failed { sql, error } => {
                self.running = false;
                if error.contains("rolled back") {
                    self.tx_open = false;
                }
                self.output = Output::Error { sql, error };
            }
            Msg::Lost(error) => {
                let had_tx = self.tx_open;
                self.connected = false;
                self.running = false;
                self.tx_open = false;
                if had_tx {
                    self.output = Output::Error {
                        sql: String::new(),
                        error: format!(
                            "the connection broke, so the open transaction was rolled back: {error}"
                        ),
                    };
                }
            }
        }
    }

    fn show(&mut self, sql: String, result: QueryResult) {
        let columns: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
        let rows: Vec<Vec<String>> = result
            .rows
            .iter()
            .map(|row| row.iter().map(show_value).collect())
            .collect();
        let widths = fit_widths(&columns, &rows);
        self.scroll_row = 0;
        self.scroll_col = 0;
        self.output = Output::Rows {
            sql,
            columns,
            rows,
            widths,
            rows_affected: result.rows_affected,
            duration_us: result.duration_us,
        };
    }

    /// The request to run what the editor holds, remembered in the history.
    pub fn run(&mut self) -> Option<Request> {
        let sql = self.text();
        if sql.trim().is_empty() || self.running {
            return None;
        }
        if self.history.last() != Some(&sql) {
            if self.history.len() == HISTORY_CAPACITY {
                self.history.remove(0);
            }
            self.history.push(sql.clone());
        }
        self.history_at = None;
        self.running = true;
        Some(Request::from_sql(&sql))
    }

    /// A key while the editor has focus. Returns the request a run key
    /// asked for; `run` says whether the key is one.
    pub fn edit_key(&mut self, key: KeyEvent, run: bool) -> Option<Request> {
        if run {
            return self.run();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => self.focus = Focus::Results,
            KeyCode::Char('p') if ctrl => self.recall(-1),
            KeyCode::Char('n') if ctrl => self.recall(1),
            KeyCode::Char('u') if ctrl => self.set_text(""),
            KeyCode::Char(c) if !ctrl => self.insert(c),
            KeyCode::Tab => {
                self.insert(' ');
                self.insert(' ');
            }
            KeyCode::Enter => self.newline(),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Left => self.left(),
            KeyCode::Right => self.right(),
            KeyCode::Up => self.vertical(-1),
            KeyCode::Down => self.vertical(1),
            KeyCode::Home => self.col = 0,
            KeyCode::End => self.col = self.line_len(),
            _ => {}
        }
        None
    }

    fn line_len(&self) -> usize {
        self.lines[self.row].chars().count()
    }

    fn byte_at(&self, col: usize) -> usize {
        let line = &self.lines[self.row];
        line.char_indices().nth(col).map_or(line.len(), |(i, _)| i)
    }

    fn insert(&mut self, c: char) {
        let at = self.byte_at(self.col);
        self.lines[self.row].insert(at, c);
        self.col += 1;
    }

    fn newline(&mut self) {
        let at = self.byte_at(self.col);
        let rest = self.lines[self.row].split_off(at);
        self.row += 1;
        self.lines.insert(self.row, rest);
        self.col = 0;
    }

    fn backspace(&mut self) {
        if self.col > 0 {
            self.col -= 1;
            let at = self.byte_at(self.col);
            self.lines[self.row].remove(at);
        } else if self.row > 0 {
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.col = self.line_len();
            self.lines[self.row].push_str(&line);
        }
    }

    fn left(&mut self) {
        if self.col > 0 {
            self.col -= 1;
        } else if self.row > 0 {
            self.row -= 1;
            self.col = self.line_len();
        }
    }

    fn right(&mut self) {
        if self.col < self.line_len() {
            self.col += 1;
        } else if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.col = 0;
        }
    }

    fn vertical(&mut self, by: isize) {
        let last = self.lines.len() as isize - 1;
        self.row = (self.row as isize + by).clamp(0, last) as usize;
        self.col = self.col.min(self.line_len());
    }

    /// Steps through the history: -1 is older, 1 is newer; past the newest
    /// the editor empties.
    fn recall(&mut self, by: isize) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() as isize - 1;
        let at = match self.history_at {
            None if by < 0 => last,
            None => return,
            Some(at) => at as isize + by,
        };
        if at > last {
            self.history_at = None;
            self.set_text("");
            return;
        }
        let at = at.max(0) as usize;
        self.history_at = Some(at);
        let text = self.history[at].clone();
        self.set_text(&text);
    }

    /// Runs one of the tab's actions outside the editor.
    pub fn perform(&mut self, action: Action) -> Option<Request> {
        match action {
            Action::Edit if self.focus == Focus::Schema => self.query_selected_table(),
            Action::Edit => self.focus = Focus::Editor,
            Action::RunQuery => return self.run(),
            Action::Schema => {
                self.focus = match self.focus {
                    Focus::Schema => Focus::Results,
                    _ => Focus::Schema,
                }
            }
            Action::Refresh => return Some(Request::Schema),
            Action::Up | Action::Down => {
                let by = if action == Action::Up { -1 } else { 1 };
                self.scroll(by);
            }
            Action::ScrollLeft => self.scroll_col = self.scroll_col.saturating_sub(1),
            Action::ScrollRight => {
                if let Output::Rows { columns, .. } = &self.output {
                    self.scroll_col = (self.scroll_col + 1).min(columns.len().saturating_sub(1));
                }
            }
            _ => {}
        }
        None
    }

    fn scroll(&mut self, by: isize) {
        if self.focus == Focus::Schema {
            let tables = self.schema.as_ref().map_or(0, |s| s.tables.len());
            let last = tables.saturating_sub(1) as isize;
            self.schema_selected = (self.schema_selected as isize + by).clamp(0, last) as usize;
            return;
        }
        if let Output::Rows { rows, .. } = &self.output {
            let last = rows.len().saturating_sub(1) as isize;
            self.scroll_row = (self.scroll_row as isize + by).clamp(0, last) as usize;
        }
    }

    /// Enter on a table of the schema puts a query of it in the editor.
    fn query_selected_table(&mut self) {
        let Some(table) = self
            .schema
            .as_ref()
            .and_then(|s| s.tables.get(self.schema_selected))
        else {
            return;
        };
        let sql = format!("SELECT * FROM \"{}\" LIMIT 100", table.name);
        self.set_text(&sql);
        self.focus = Focus::Editor;
    }
}

/// A value as the results table shows it.
pub fn show_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(r) => r.to_string(),
        Value::Text(t) => t.replace('\n', "⏎"),
        Value::Blob(b) => {
            let hex: String = b.iter().take(8).map(|byte| format!("{byte:02x}")).collect();
            let more = if b.len() > 8 { "…" } else { "" };
            format!("x'{hex}{more}' ({} bytes)", b.len())
        }
    }
}

/// Each column as wide as its widest value or name, at most
/// [`MAX_COLUMN_WIDTH`].
pub fn fit_widths(columns: &[String], rows: &[Vec<String>]) -> Vec<usize> {
    columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|cell| cell.chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN_WIDTH)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use backroom_api::db::Column;

    use super::*;

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn code(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_in(tab: &mut DbTab, text: &str) {
        for c in text.chars() {
            let key = if c == '\n' {
                code(KeyCode::Enter)
            } else {
                key(c)
            };
            tab.edit_key(key, false);
        }
    }

    #[test]
    fn the_editor_takes_several_lines_and_joins_them_on_backspace() {
        let mut tab = DbTab::new();
        tab.perform(Action::Edit);
        assert_eq!(tab.focus, Focus::Editor);
        type_in(&mut tab, "SELECT 1\nFROM t");
        assert_eq!(tab.lines, ["SELECT 1", "FROM t"]);
        tab.edit_key(code(KeyCode::Home), false);
        tab.edit_key(code(KeyCode::Backspace), false);
        assert_eq!(tab.text(), "SELECT 1FROM t");
        tab.edit_key(key(' '), false);
        assert_eq!(tab.text(), "SELECT 1 FROM t");
    }

    #[test]
    fn only_statements_that_surely_read_count_as_read_only() {
        for sql in [
            "SELECT * FROM t",
            "  select 1;",
            "EXPLAIN QUERY PLAN SELECT 1",
            "PRAGMA table_info",
            "WITH x AS (SELECT 1) SELECT * FROM x",
        ] {
            assert!(Request::from_sql(sql).is_read_only(), "{sql}");
        }
        for sql in [
            "DELETE FROM t",
            "PRAGMA journal_mode = wal",
            "PRAGMA user_version(3)",
            "WITH x AS (SELECT 1) DELETE FROM t",
            "SELECT 1; DROP TABLE t",
            "BEGIN",
            "create table t (a)",
        ] {
            assert!(!Request::from_sql(sql).is_read_only(), "{sql}");
        }
    }

    #[test]
    fn running_remembers_the_statement_and_ctrl_p_recalls_it() {
        let mut tab = DbTab::new();
        type_in(&mut tab, "SELECT 1");
        assert_eq!(
            tab.edit_key(code(KeyCode::F(5)), true),
            Some(Request::Run("SELECT 1".into()))
        );
        tab.apply(Msg::Failed {
            sql: "SELECT 1".into(),
            error: "x".into(),
        });
        tab.set_text("SELECT 2");
        tab.run();
        tab.set_text("");
        tab.edit_key(ctrl('p'), false);
        assert_eq!(tab.text(), "SELECT 2");
        tab.edit_key(ctrl('p'), false);
        assert_eq!(tab.text(), "SELECT 1");
        tab.edit_key(ctrl('n'), false);
        tab.edit_key(ctrl('n'), false);
        assert_eq!(tab.text(), "", "past the newest the editor is empty");
    }

    #[test]
    fn nothing_runs_while_a_statement_is_running() {
        let mut tab = DbTab::new();
        tab.set_text("SELECT 1");
        assert!(tab.run().is_some());
        assert!(tab.run().is_none());
    }

    #[test]
    fn transaction_statements_become_methods() {
        assert_eq!(Request::from_sql(" begin; "), Request::Begin);
        assert_eq!(Request::from_sql("COMMIT"), Request::Commit);
        assert_eq!(Request::from_sql("Rollback Transaction"), Request::Rollback);
        assert_eq!(
            Request::from_sql("begin_table"),
            Request::Run("begin_table".into())
        );
    }

    #[test]
    fn the_transaction_indicator_follows_begin_commit_and_timeouts() {
        let mut tab = DbTab::new();
        tab.apply(Msg::Transaction {
            open: true,
            text: "began".into(),
        });
        assert!(tab.tx_open);
        tab.apply(Msg::Failed {
            sql: "INSERT".into(),
            error: "timeout: transaction rolled back after 30 s idle".into(),
        });
        assert!(!tab.tx_open);
        tab.apply(Msg::Transaction {
            open: true,
            text: "began".into(),
        });
        tab.apply(Msg::Lost("gone".into()));
        assert!(!tab.tx_open);
        assert!(matches!(tab.output, Output::Error { .. }));
    }

    #[test]
    fn results_fit_their_columns_and_scroll_within_them() {
        let mut tab = DbTab::new();
        tab.focus = Focus::Results;
        let result = QueryResult {
            columns: vec![
                Column {
                    name: "id".into(),
                    decl_type: None,
                },
                Column {
                    name: "name".into(),
                    decl_type: None,
                },
            ],
            rows: vec![
                vec![Value::Integer(1), Value::Text("a long name".into())],
                vec![Value::Integer(22), Value::Null],
            ],
            rows_affected: 0,
            last_insert_rowid: 0,
            duration_us: 10,
        };
        tab.apply(Msg::Result {
            sql: "SELECT".into(),
            result,
        });
        let Output::Rows { widths, rows, .. } = &tab.output else {
            panic!("rows expected");
        };
        assert_eq!(widths, &[2, 11]);
        assert_eq!(rows[1][1], "NULL");
        for _ in 0..5 {
            tab.perform(Action::ScrollRight);
            tab.perform(Action::Down);
        }
        assert_eq!((tab.scroll_col, tab.scroll_row), (1, 1));
        tab.perform(Action::ScrollLeft);
        assert_eq!(tab.scroll_col, 0);
    }

    #[test]
    fn values_show_plainly() {
        assert_eq!(show_value(&Value::Null), "NULL");
        assert_eq!(show_value(&Value::Text("a\nb".into())), "a⏎b");
        assert_eq!(
            show_value(&Value::Blob(vec![1, 2, 255])),
            "x'0102ff' (3 bytes)"
        );
    }
}
