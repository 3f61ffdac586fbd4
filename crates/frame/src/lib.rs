//! The backroom wire protocol, which every backroom service speaks.
//!
//! - [`codec`] turns bytes into [`message::Message`]s and back, without IO.
//! - [`server`] runs a [`server::Service`] on a listener: handshake, auth,
//!   multiplexed requests, streams, subscriptions and graceful shutdown.
//! - [`client`] is the other end, used by typed clients and the dashboard.
//!
//! `docs/protocol.md` specifies the bytes; this crate knows no service.

pub mod auth;
pub mod body;
pub mod client;
pub mod codec;
pub mod error;
pub mod io;
pub mod message;
pub mod msgpack;
pub mod server;
pub mod stream;
pub mod tls;

pub use error::{Error, ErrorCode};
