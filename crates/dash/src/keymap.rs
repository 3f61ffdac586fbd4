//! The remappable keymap: which keys trigger which action, with defaults and
//! the `[keys]` table of the config file on top.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

/// Declares every action once, as a row of the table below, and derives
/// from it the [`Action`] enum and everything the keymap, the help overlay,
/// the footer and read-only mode ask of an action.
macro_rules! actions {
    ($($action:ident: $name:literal, [$($key:literal),*], $scope:expr, $changes:literal, $describe:literal;)*) => {
        /// Something a key can make the dashboard do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($action,)*
        }

        impl Action {
            /// Every action, in the order the help overlay lists them.
            pub const ALL: &'static [Action] = &[$(Action::$action,)*];

            /// The action's name in the config file's `[keys]` table.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$action => $name,)*
                }
            }

            /// What the action does, for the help overlay.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Action::$action => $describe,)*
                }
            }

            fn defaults(self) -> &'static [&'static str] {
                match self {
                    $(Action::$action => &[$($key),*],)*
                }
            }

            /// Where the action works, as a set of [`scope`] bits. Two
            /// actions may share a key when their scopes do not meet: the
            /// Print tab's keys and the DB tab's never compete. Confirmation
            /// keys live in the dialog's own mode, so they may share keys
            /// with any other action.
            pub fn scope(self) -> u8 {
                use scope::*;
                match self {
                    $(Action::$action => $scope,)*
                }
            }

            /// Whether the action asks a server to change something, and so
            /// is turned off in read-only mode. Running SQL is not one:
            /// whether a statement writes depends on its text, which the DB
            /// tab checks.
            pub fn changes_something(self) -> bool {
                match self {
                    $(Action::$action => $changes,)*
                }
            }
        }
    };
}

// One row per action: its enum variant, its name in `[keys]`, its default
// keys, where it works, whether it changes anything on a server, and what
// the help overlay says of it. Adding a key is adding a row.
#[rustfmt::skip]
actions! {
    Quit:         "quit",          ["q", "ctrl-c"],      EVERYWHERE,                       false, "quit";
    Help:         "help",          ["?"],                EVERYWHERE,                       false, "show or hide this help";
    NextTab:      "next-tab",      ["tab"],              EVERYWHERE,                       false, "next tab";
    PrevTab:      "prev-tab",      ["shift-tab"],        EVERYWHERE,                       false, "previous tab";
    Overview:     "overview",      ["1"],                EVERYWHERE,                       false, "Overview tab";
    Files:        "files",         ["2"],                EVERYWHERE,                       false, "Files tab";
    Print:        "print",         ["3"],                EVERYWHERE,                       false, "Print tab";
    Db:           "db",            ["4"],                EVERYWHERE,                       false, "DB tab";
    Proxy:        "proxy",         ["5"],                EVERYWHERE,                       false, "Proxy tab";
    Filter:       "filter",        ["/"],                OVERVIEW | FILES | PRINT | PROXY, false, "filter the list";
    Up:           "up",            ["up", "k"],          EVERYWHERE,                       false, "scroll up";
    Down:         "down",          ["down", "j"],        EVERYWHERE,                       false, "scroll down";
    ClearEvents:  "clear-events",  ["c"],                OVERVIEW,                         false, "clear the events (asks first)";
    Servers:      "servers",       ["i"],                OVERVIEW,                         false, "show where the servers are, or the events";
    SwitchPane:   "switch-pane",   ["left", "right"],    PRINT,                            false, "switch between the panes";
    Submit:       "submit",        ["a"],                PRINT,                            true,  "submit a local file to print";
    CancelJob:    "cancel-job",    ["x"],                PRINT,                            true,  "cancel the selected job (asks first)";
    Hold:         "hold",          ["h"],                PRINT,                            true,  "hold the selected job";
    Release:      "release",       ["r"],                PRINT,                            true,  "release the selected job";
    PriorityUp:   "priority-up",   ["+"],                PRINT,                            true,  "raise the selected job's priority";
    PriorityDown: "priority-down", ["-"],                PRINT,                            true,  "lower the selected job's priority";
    Promote:      "promote",       ["t"],                PRINT,                            true,  "promote the job to the front";
    MoveJob:      "move",          ["m"],                PRINT,                            true,  "move the job to another printer";
    Pause:        "pause",         ["p"],                PRINT,                            true,  "pause the selected printer";
    Resume:       "resume",        ["P"],                PRINT,                            true,  "resume the selected printer";
    Finished:     "finished",      ["F"],                PRINT,                            false, "show the finished jobs or the queue";
    Edit:         "edit",          ["e", "enter"],       DB,                               false, "edit SQL; in the schema: query table";
    RunQuery:     "run",           ["f5", "ctrl-enter"], DB,                               false, "run the SQL";
    ScrollLeft:   "scroll-left",   ["left"],             DB,                               false, "scroll the results left";
    ScrollRight:  "scroll-right",  ["right"],            DB,                               false, "scroll the results right";
    Schema:       "schema",        ["s"],                DB,                               false, "move to the schema browser and back";
    Refresh:      "refresh",       ["R"],                DB,                               false, "read the schema again";
    Follow:       "follow",        ["f"],                PROXY,                            false, "follow the newest requests";
    PauseLog:     "pause-log",     ["space"],            PROXY,                            false, "pause or resume the log";
    Open:         "open",          ["enter"],            FILES,                            false, "open the selected folder";
    Parent:       "parent",        ["backspace"],        FILES,                            false, "go up to the parent folder";
    Upload:       "upload",        ["u"],                FILES,                            true,  "upload a local file into this folder";
    Download:     "download",      ["d"],                FILES,                            false, "download the selected file";
    Mkdir:        "mkdir",         ["n"],                FILES,                            true,  "create a folder";
    Rename:       "rename",        ["r"],                FILES,                            true,  "rename the selected entry";
    Delete:       "delete",        ["x", "delete"],      FILES,                            true,  "delete the selected entry (asks first)";
    Checksum:     "checksum",      ["c"],                FILES,                            false, "SHA-256 of the selected file";
    Confirm:      "confirm",       ["y"],                DIALOG,                           false, "answer yes in a confirmation";
    Cancel:       "cancel",        ["n", "esc"],         DIALOG,                           false, "answer no in a confirmation";
}

impl Action {
    fn in_dialog(self) -> bool {
        self.scope() == scope::DIALOG
    }
}

/// The bits of [`Action::scope`]: one per tab, and one for dialogs.
/// A tab's bit is `1 << Tab::index()`.
pub mod scope {
    pub const OVERVIEW: u8 = 1;
    pub const FILES: u8 = 2;
    pub const PRINT: u8 = 4;
    pub const DB: u8 = 8;
    pub const PROXY: u8 = 16;
    pub const EVERYWHERE: u8 = OVERVIEW | FILES | PRINT | DB | PROXY;
    pub const DIALOG: u8 = 32;
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("unknown action {s:?}; known: {}", names.join(", "))
            })
    }
}

/// One key with its modifiers, as written in the config file: `q`,
/// `ctrl-c`, `shift-tab`, `f5`, `enter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

impl Key {
    /// The key as the keymap compares it. Terminals disagree on whether a
    /// shifted character carries SHIFT (`?` arrives both ways), and crossterm
    /// reports Shift-Tab as BackTab with SHIFT, so both drop SHIFT.
    pub fn from_event(event: KeyEvent) -> Key {
        let mut modifiers =
            event.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(event.code, KeyCode::Char(_) | KeyCode::BackTab) {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        Key {
            code: event.code,
            modifiers,
        }
    }
}

impl FromStr for Key {
    type Err = String;

    fn from_str(s: &str) -> Result<Key, String> {
        let mut modifiers = KeyModifiers::NONE;
        let mut rest = s;
        // A lone "-" is a key of its own, not an empty modifier.
        while let Some((modifier, tail)) = rest.split_once('-').filter(|(_, t)| !t.is_empty()) {
            match modifier.to_ascii_lowercase().as_str() {
                "ctrl" => modifiers |= KeyModifiers::CONTROL,
                "alt" => modifiers |= KeyModifiers::ALT,
                "shift" => modifiers |= KeyModifiers::SHIFT,
                _ => break,
            }
            rest = tail;
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "tab" if modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" => KeyCode::Insert,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" => KeyCode::PageUp,
            "pagedown" => KeyCode::PageDown,
            f if f.len() > 1 && f.starts_with('f') => match f[1..].parse::<u8>() {
                Ok(n @ 1..=24) => KeyCode::F(n),
                _ => return Err(format!("unknown key {s:?}")),
            },
            _ => {
                let mut chars = rest.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return Err(format!("unknown key {s:?}")),
                }
            }
        };
        let mut key = Key { code, modifiers };
        if matches!(code, KeyCode::Char(_) | KeyCode::BackTab) {
            key.modifiers.remove(KeyModifiers::SHIFT);
        }
        Ok(key)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The `[keys]` table's value for one action: one key or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KeySpec {
    One(String),
    Many(Vec<String>),
}

impl KeySpec {
    fn keys(&self) -> &[String] {
        match self {
            KeySpec::One(key) => std::slice::from_ref(key),
            KeySpec::Many(keys) => keys,
        }
    }
}

/// Which key does what. Built from the defaults, with the config file's
/// `[keys]` table replacing the keys of the actions it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<(Key, Action)>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        // The defaults are constants; `defaults_bind_the_documented_keys`
        // proves them valid.
        Keymap::with_overrides(&BTreeMap::new()).expect("the default keymap is valid")
    }
}

impl Keymap {
    /// The defaults, with each action named in `table` bound to its keys
    /// instead. A key bound to two actions of the same mode is an error,
    /// since one of them could never be reached.
    pub fn with_overrides(table: &BTreeMap<String, KeySpec>) -> Result<Keymap, String> {
        let mut chosen: BTreeMap<Action, Vec<Key>> = BTreeMap::new();
        for &action in Action::ALL {
            let keys = action
                .defaults()
                .iter()
                .map(|k| k.parse())
                .collect::<Result<Vec<Key>, String>>()?;
            chosen.insert(action, keys);
        }
        for (name, spec) in table {
            let action: Action = name.parse()?;
            let keys = spec
                .keys()
                .iter()
                .map(|k| k.parse().map_err(|e| format!("[keys] {name}: {e}")))
                .collect::<Result<Vec<Key>, String>>()?;
            if keys.is_empty() {
                return Err(format!("[keys] {name}: an action needs at least one key"));
            }
            chosen.insert(action, keys);
        }
        let mut bindings: Vec<(Key, Action)> = Vec::new();
        for (action, keys) in chosen {
            for key in keys {
                let clash = bindings
                    .iter()
                    .find(|(k, a)| *k == key && a.scope() & action.scope() != 0);
                if let Some((_, other)) = clash {
                    return Err(format!(
                        "[keys]: {key} is bound to both {} and {}",
                        other.name(),
                        action.name()
                    ));
                }
                bindings.push((key, action));
            }
        }
        Ok(Keymap { bindings })
    }

    /// The normal-mode action of a key press, if it has one.
    pub fn action(&self, event: KeyEvent) -> Option<Action> {
        self.find(event, false)
    }

    /// The action of a key press among `allowed`, the actions of the
    /// current tab; keys shared by other tabs' actions do not get in the way.
    pub fn action_among(&self, event: KeyEvent, allowed: &[Action]) -> Option<Action> {
        let key = Key::from_event(event);
        self.bindings
            .iter()
            .find(|(k, a)| *k == key && allowed.contains(a))
            .map(|(_, a)| *a)
    }

    /// The action of a key press while a confirmation dialog is open.
    pub fn dialog_action(&self, event: KeyEvent) -> Option<Action> {
        self.find(event, true)
    }

    fn find(&self, event: KeyEvent, in_dialog: bool) -> Option<Action> {
        let key = Key::from_event(event);
        self.bindings
            .iter()
            .find(|(k, a)| *k == key && a.in_dialog() == in_dialog)
            .map(|(_, a)| *a)
    }

    /// The keys of an action, in the order they were given.
    pub fn keys(&self, action: Action) -> impl Iterator<Item = Key> + '_ {
        self.bindings
            .iter()
            .filter(move |(_, a)| *a == action)
            .map(|(k, _)| *k)
    }

    /// The keys of an action as one label, such as `q/ctrl-c`.
    pub fn label(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys(action).map(|k| k.to_string()).collect();
        keys.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    fn table(entries: &[(&str, KeySpec)]) -> BTreeMap<String, KeySpec> {
        entries
            .iter()
            .map(|(name, spec)| (name.to_string(), spec.clone()))
            .collect()
    }

    #[test]
    fn defaults_bind_the_documented_keys() {
        let keymap = Keymap::default();
        let cases = [
            (press(KeyCode::Char('q'), KeyModifiers::NONE), Action::Quit),
            (
                press(KeyCode::Char('c'), KeyModifiers::CONTROL),
                Action::Quit,
            ),
            (press(KeyCode::Char('?'), KeyModifiers::NONE), Action::Help),
            (press(KeyCode::Tab, KeyModifiers::NONE), Action::NextTab),
            (
                press(KeyCode::BackTab, KeyModifiers::SHIFT),
                Action::PrevTab,
            ),
            (
                press(KeyCode::Char('1'), KeyModifiers::NONE),
                Action::Overview,
            ),
            (press(KeyCode::Char('5'), KeyModifiers::NONE), Action::Proxy),
            (
                press(KeyCode::Char('/'), KeyModifiers::NONE),
                Action::Filter,
            ),
        ];
        for (event, action) in cases {
            assert_eq!(keymap.action(event), Some(action), "{event:?}");
        }
        assert_eq!(
            keymap.action(press(KeyCode::Char('z'), KeyModifiers::NONE)),
            None
        );
    }

    #[test]
    fn a_shifted_character_matches_with_or_without_the_shift_flag() {
        let keymap = Keymap::default();
        assert_eq!(
            keymap.action(press(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Some(Action::Help)
        );
    }

    #[test]
    fn ctrl_c_is_not_the_same_key_as_c() {
        let keymap = Keymap::default();
        assert_eq!(
            keymap.action(press(KeyCode::Char('c'), KeyModifiers::NONE)),
            Some(Action::ClearEvents)
        );
        assert_eq!(
            keymap.action(press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn the_keys_table_replaces_an_actions_keys() {
        let keymap =
            Keymap::with_overrides(&table(&[("quit", KeySpec::One("z".into()))])).expect("valid");
        assert_eq!(
            keymap.action(press(KeyCode::Char('z'), KeyModifiers::NONE)),
            Some(Action::Quit)
        );
        assert_eq!(
            keymap.action(press(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(keymap.label(Action::Quit), "z");
    }

    #[test]
    fn an_action_can_take_several_keys() {
        let keymap = Keymap::with_overrides(&table(&[(
            "help",
            KeySpec::Many(vec!["f1".into(), "g".into()]),
        )]))
        .expect("valid");
        assert_eq!(
            keymap.action(press(KeyCode::F(1), KeyModifiers::NONE)),
            Some(Action::Help)
        );
        assert_eq!(
            keymap.action(press(KeyCode::Char('g'), KeyModifiers::NONE)),
            Some(Action::Help)
        );
        assert_eq!(keymap.label(Action::Help), "f1/g");
    }

    #[test]
    fn a_key_bound_twice_in_one_mode_is_refused() {
        let err = Keymap::with_overrides(&table(&[("help", KeySpec::One("q".into()))]))
            .expect_err("q is quit's");
        assert!(err.contains("help") && err.contains("quit"), "{err}");
    }

    #[test]
    fn dialog_keys_may_reuse_normal_keys() {
        let keymap = Keymap::with_overrides(&table(&[("confirm", KeySpec::One("c".into()))]))
            .expect("dialogs are their own mode");
        let c = press(KeyCode::Char('c'), KeyModifiers::NONE);
        assert_eq!(keymap.action(c), Some(Action::ClearEvents));
        assert_eq!(keymap.dialog_action(c), Some(Action::Confirm));
    }

    #[test]
    fn unknown_actions_and_keys_are_refused() {
        let err = Keymap::with_overrides(&table(&[("launch", KeySpec::One("l".into()))]))
            .expect_err("no such action");
        assert!(err.contains("launch"), "{err}");
        let err = Keymap::with_overrides(&table(&[("quit", KeySpec::One("ctrl-nope".into()))]))
            .expect_err("no such key");
        assert!(err.contains("ctrl-nope"), "{err}");
        let err = Keymap::with_overrides(&table(&[("quit", KeySpec::Many(vec![]))]))
            .expect_err("no keys");
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn key_names_round_trip_through_display() {
        for name in [
            "q",
            "ctrl-c",
            "alt-x",
            "shift-tab",
            "tab",
            "enter",
            "esc",
            "f5",
            "space",
            "-",
        ] {
            let key: Key = name.parse().expect(name);
            assert_eq!(key.to_string(), name);
        }
    }

    #[test]
    fn tabs_may_share_a_key_and_each_tab_gets_its_own_action() {
        let keymap = Keymap::default();
        let x = press(KeyCode::Char('x'), KeyModifiers::NONE);
        let print = [Action::Quit, Action::CancelJob, Action::Hold];
        let files = [Action::Quit, Action::Delete, Action::Upload];
        assert_eq!(keymap.action_among(x, &print), Some(Action::CancelJob));
        assert_eq!(keymap.action_among(x, &files), Some(Action::Delete));
        assert_eq!(keymap.action_among(x, &[Action::Quit]), None);
    }

    #[test]
    fn a_tab_key_may_not_take_a_key_that_works_everywhere() {
        let err = Keymap::with_overrides(&table(&[("delete", KeySpec::One("q".into()))]))
            .expect_err("q quits everywhere");
        assert!(err.contains("quit") && err.contains("delete"), "{err}");
        Keymap::with_overrides(&table(&[("delete", KeySpec::One("h".into()))]))
            .expect("hold is Print's, delete is Files'");
    }
}
