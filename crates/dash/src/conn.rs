//! One task per server that connects with backoff, measures latency, polls
//! `info`, and tells the UI what happened as messages.
//!
//! The UI never waits on a server: it only reads [`Update`]s from a channel.

use std::time::Duration;

use backroom_frame::Error;
use backroom_frame::client::{Client, ClientConfig};
use backroom_frame::server::Info;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Endpoint;
use crate::server::Server;
use crate::tabs::{db, db_task, files, files_task, print, print_task, proxy, proxy_task};

/// News about one server, sent from its task to the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub server: Server,
    pub kind: UpdateKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpdateKind {
    /// A connection attempt has begun.
    Connecting { attempt: u32 },
    /// The handshake succeeded.
    Connected { version: String, session: String },
    /// A poll's results: the ping's round trip and `info`.
    Sample { latency: Duration, info: Info },
    /// The server cannot be reached, or the connection broke; the task tries
    /// again at `retry_at`.
    Down {
        error: String,
        retry_at: Instant,
        attempt: u32,
    },
    /// News for the Print tab from its own task.
    Print(print::Msg),
    /// News for the DB tab from its own task.
    Db(db::Msg),
    /// News for the Proxy tab from its own task.
    Proxy(proxy::Msg),
    /// News for the Files tab from its own task.
    Files(files::Msg),
}

/// How often to poll and how to back off.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between two polls of a connected server.
    pub poll: Duration,
    /// The first delay before retrying; it doubles on each failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a poll may take before the connection counts as broken.
    pub request_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            poll: Duration::from_secs(2),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// The running server tasks. Dropping it stops them all.
#[derive(Debug)]
pub struct Connections {
    _tasks: JoinSet<()>,
}

/// Starts one task per endpoint, each sending its news to `updates`, and
/// for each server whose tab is built, the tab's own task.
pub fn spawn_all(
    endpoints: &[Endpoint],
    timing: Timing,
    updates: mpsc::Sender<Update>,
) -> Connections {
    let mut tasks = JoinSet::new();
    for endpoint in endpoints {
        tasks.spawn(watch(
            endpoint.server,
            endpoint.client.clone(),
            timing,
            updates.clone(),
        ));
        let config = endpoint.client.clone();
        match endpoint.server {
            Server::Print => {
                tasks.spawn(print_task::run(config, timing, updates.clone()));
            }
            Server::Db => {
                let database = endpoint.database.clone();
                tasks.spawn(db_task::run(config, database, timing, updates.clone()));
            }
            Server::Proxy => {
                tasks.spawn(proxy_task::run(config, timing, updates.clone()));
            }
            Server::Files => {
                tasks.spawn(files_task::run(config, timing, updates.clone()));
            }
        }
    }
    Connections { _tasks: tasks }
}

/// Keeps one server connected for as long as anybody listens to `updates`.
pub async fn watch(
    server: Server,
    config: ClientConfig,
    timing: Timing,
    updates: mpsc::Sender<Update>,
) {
    let send = |kind| {
        let updates = updates.clone();
        async move { updates.send(Update { server, kind }).await.is_ok() }
    };
    let mut delay = timing.backoff_min;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if !send(UpdateKind::Connecting { attempt }).await {
            return;
        }
        let error = match Client::connect(&config).await {
            Ok(client) => {
                let welcome = client.welcome();
                let connected = UpdateKind::Connected {
                    version: welcome.server_version.clone(),
                    session: welcome.session.clone(),
                };
                if !send(connected).await {
                    return;
                }
                attempt = 0;
                delay = timing.backoff_min;
                match poll(server, &client, timing, &updates).await {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        tracing::debug!(%server, %error, attempt, ?delay, "server down; retrying");
        let retry_at = Instant::now() + delay;
        let down = UpdateKind::Down {
            error: error.to_string(),
            retry_at,
            attempt: attempt.max(1),
        };
        if !send(down).await {
            return;
        }
        tokio::time::sleep_until(retry_at).await;
        delay = (delay * 2).min(timing.backoff_max);
    }
}

/// Polls a connected server until it fails, returning why; `None` once the
/// UI has gone away.
async fn poll(
    server: Server,
    client: &Client,
    timing: Timing,
    updates: &mpsc::Sender<Update>,
) -> Option<Error> {
    let mut ticker = tokio::time::interval(timing.poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let sample = tokio::time::timeout(timing.request_timeout, async {
            let latency = client.ping().await?;
            let info = client.info().await?;
            Ok::<_, Error>(UpdateKind::Sample { latency, info })
        })
        .await
        .unwrap_or_else(|_| {
            Err(Error::timeout(format!(
                "no answer to ping and info within {:?}",
                timing.request_timeout
            )))
        });
        let kind = match sample {
            Ok(kind) => kind,
            Err(error) => return Some(error),
        };
        if updates.send(Update { server, kind }).await.is_err() {
            return None;
        }
    }
}
