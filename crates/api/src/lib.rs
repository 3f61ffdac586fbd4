//! Each backroom service's typed requests, responses and events, and the typed
//! clients for them. Depends on `backroom-frame` only, so the dashboard and
//! scripts can talk to every server without linking any server.

pub mod db;
pub mod files;
pub mod print;
pub mod proxy;
