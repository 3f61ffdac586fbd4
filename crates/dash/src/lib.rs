//! The backroom client: one terminal UI and one command line over the file,
//! print, database and proxy servers.
//!
//! - [`config`] resolves where the servers are (flags, file, defaults).
//! - [`driver`] keeps every connection up with one reconnect loop, and
//!   [`update`] is what the connections tell the UI.
//! - [`app`] is the state as plain data; [`ui`] draws it; [`tui`] is the
//!   event loop that joins them.
//! - [`keymap`], [`filter`], [`confirm`], [`prompt`], [`outbox`] and
//!   [`widgets`] are the pieces every tab shares.
//! - [`cli`] runs a `backroom <service> ...` command.
//! - One module per service ([`files`], [`print`], [`db`], [`proxy`]), each
//!   with the same four files: `cli`, `tab`, `task` and `view`.
//! - [`units`] formats sizes and dates for the tabs and the subcommands.

pub mod app;
pub mod cli;
pub mod config;
pub mod confirm;
pub mod db;
pub mod driver;
pub mod files;
pub mod filter;
pub mod keymap;
pub mod outbox;
pub mod print;
pub mod prompt;
pub mod proxy;
pub mod server;
pub mod tui;
pub mod ui;
pub mod units;
pub mod update;
pub mod widgets;
