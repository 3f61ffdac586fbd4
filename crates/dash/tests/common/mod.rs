//! What the live tab tests share: quick connection timing, key events, the
//! endpoint of the one server under test, and waiting for the app's state.

// Each test file uses only some of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use backroom_dash::app::App;
use backroom_dash::config::{self, Endpoint, Flags};
use backroom_dash::server::Server;
use backroom_dash::update::{Timing, Update};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;

/// Every step finishes well within this, or it has hung.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Polls and retries fast enough that a test never waits long on them.
pub fn timing() -> Timing {
    Timing {
        poll: Duration::from_millis(50),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(5),
    }
}

/// The endpoint of `server` at `addr`, resolved as the dashboard resolves it.
pub fn only(server: Server, addr: SocketAddr) -> Vec<Endpoint> {
    let addr = Some(addr.to_string());
    let flags = match server {
        Server::Files => Flags {
            files: addr,
            ..Flags::default()
        },
        Server::Print => Flags {
            print: addr,
            ..Flags::default()
        },
        Server::Db => Flags {
            db: addr,
            ..Flags::default()
        },
        Server::Proxy => Flags {
            proxy_admin: addr,
            ..Flags::default()
        },
    };
    config::resolve(&flags, None, &[server])
        .expect("settings")
        .endpoints
}

pub fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

pub fn code(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

/// Applies updates until the app satisfies `want`, handing queued requests
/// to their tasks as the event loop does.
pub async fn until(
    app: &mut App,
    updates: &mut mpsc::Receiver<Update>,
    want: impl Fn(&App) -> bool,
) {
    let wait = async {
        app.outbox.flush();
        while !want(app) {
            let update = updates.recv().await.expect("the tasks run");
            app.apply(update);
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .expect("the state arrives in time");
}
