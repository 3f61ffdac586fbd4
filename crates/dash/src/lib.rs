//! The backroom dashboard: one terminal UI over the file, print, database
//! and proxy servers.
//!
//! - [`config`] resolves where the servers are (flags, file, defaults).
//! - [`conn`] runs one task per server that connects, polls and reconnects,
//!   and reports to the UI as messages.
//! - [`app`] is the state as plain data; [`ui`] draws it; [`tui`] is the
//!   event loop that joins them.
//! - [`keymap`], [`filter`] and [`confirm`] are the pieces every tab shares.
//! - [`tabs`] holds each server tab's state, its task and its drawing.
//! - [`units`] formats sizes and dates for the tabs and the subcommands.

pub mod app;
pub mod cli;
pub mod config;
pub mod confirm;
pub mod conn;
pub mod filter;
pub mod keymap;
pub mod server;
pub mod tabs;
pub mod tui;
pub mod ui;
pub mod units;
