//! The `backroom <server> ...` subcommands, one module per server.

pub mod db;
pub mod files;
pub mod print;
pub mod proxy;
