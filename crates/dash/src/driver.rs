//! The one reconnect driver: every connection the dashboard keeps (each
//! server's status chip and each tab's own session) is a [`Link`] that
//! [`drive`] connects, serves and reconnects with backoff.
//!
//! The UI never waits on a server: it only reads [`Update`]s from a channel.

use std::future::Future;
use std::time::Duration;

use backroom_frame::Error;
use backroom_frame::client::{Client, ClientConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Endpoint;
use crate::server::Server;
use crate::update::{Timing, Update, UpdateKind};
use crate::{db, files, print, proxy};

/// One connection kept up by [`drive`]: how to open it, what to do with it
/// while it lasts, and what to tell the UI when it is down.
///
/// Every method that talks to the UI returns `false` (or `None` for
/// [`Link::serve`]) once the UI has gone, which ends the task.
pub trait Link: Send {
    type Client: Send + Sync;

    /// Opens one connection.
    fn connect(&mut self) -> impl Future<Output = Result<Self::Client, Error>> + Send;

    /// Uses a connection until it fails (`Some(why)`) or the UI goes away
    /// (`None`).
    fn serve(&mut self, client: &Self::Client) -> impl Future<Output = Option<Error>> + Send;

    /// Says that the link is down and will be tried again at `retry_at`.
    fn down(
        &mut self,
        error: &Error,
        retry_at: Instant,
        attempt: u32,
    ) -> impl Future<Output = bool> + Send;

    /// Says that attempt number `attempt` begins.
    fn attempt(&mut self, attempt: u32) -> impl Future<Output = bool> + Send {
        let _ = attempt;
        async { true }
    }

    /// Waits for `retry_at`. A link that takes requests overrides this to
    /// answer the ones that arrive while it is down.
    fn wait(&mut self, retry_at: Instant) -> impl Future<Output = bool> + Send {
        async move {
            tokio::time::sleep_until(retry_at).await;
            true
        }
    }
}

/// Keeps `link` connected for as long as the UI listens: connects, serves,
/// and after a failure waits with doubling delays before trying again. A
/// connection that had lasted is tried again at once, so a server restart
/// costs one handshake, not a backoff.
pub async fn drive<L: Link>(mut link: L, timing: Timing) {
    let mut delay = timing.backoff_min;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if !link.attempt(attempt).await {
            return;
        }
        let error = match link.connect().await {
            Ok(client) => {
                attempt = 0;
                let since = Instant::now();
                let Some(error) = link.serve(&client).await else {
                    return;
                };
                delay = if since.elapsed() >= timing.backoff_min {
                    Duration::ZERO
                } else {
                    timing.backoff_min
                };
                error
            }
            Err(error) => error,
        };
        tracing::debug!(%error, attempt, ?delay, "link down; retrying");
        let retry_at = Instant::now() + delay;
        if !link.down(&error, retry_at, attempt.max(1)).await || !link.wait(retry_at).await {
            return;
        }
        delay = (delay * 2).clamp(timing.backoff_min, timing.backoff_max);
    }
}

/// Sends one update; `false` once the UI has gone.
pub async fn send(updates: &mpsc::Sender<Update>, server: Server, kind: UpdateKind) -> bool {
    updates.send(Update { server, kind }).await.is_ok()
}

/// Waits for `retry_at` on behalf of a link that takes requests: each
/// request that arrives meanwhile is answered at once with what `refuse`
/// makes of it (nothing, for one that only changes the link's state), so
/// that no key waits on a server that is down. `false` once the UI or the
/// requests' sender has gone.
pub async fn refuse_until<R>(
    retry_at: Instant,
    requests: &mut mpsc::UnboundedReceiver<R>,
    updates: &mpsc::Sender<Update>,
    server: Server,
    mut refuse: impl FnMut(R) -> Option<UpdateKind> + Send,
) -> bool {
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(retry_at) => return true,
            request = requests.recv() => {
                let Some(request) = request else { return false };
                if let Some(kind) = refuse(request)
                    && !send(updates, server, kind).await
                {
                    return false;
                }
            }
        }
    }
}

/// The running server tasks. Dropping it stops them all.
#[derive(Debug)]
pub struct Connections {
    _tasks: JoinSet<()>,
}

/// Starts one status task per endpoint, each sending its news to `updates`,
/// and each server's tab task.
pub fn spawn_all(
    endpoints: &[Endpoint],
    timing: Timing,
    updates: mpsc::Sender<Update>,
) -> Connections {
    let mut tasks = JoinSet::new();
    for endpoint in endpoints {
        let chip = Chip {
            server: endpoint.server,
            config: endpoint.client.clone(),
            timing,
            updates: updates.clone(),
        };
        tasks.spawn(drive(chip, timing));
        let config = endpoint.client.clone();
        match endpoint.server {
            Server::Print => tasks.spawn(print::task::run(config, timing, updates.clone())),
            Server::Db => {
                let database = endpoint.database.clone();
                tasks.spawn(db::task::run(config, database, timing, updates.clone()))
            }
            Server::Proxy => tasks.spawn(proxy::task::run(config, timing, updates.clone())),
            Server::Files => tasks.spawn(files::task::run(config, timing, updates.clone())),
        };
    }
    Connections { _tasks: tasks }
}

/// A server's status chip: connects, then polls `ping` and `info`.
struct Chip {
    server: Server,
    config: ClientConfig,
    timing: Timing,
    updates: mpsc::Sender<Update>,
}

impl Chip {
    async fn send(&self, kind: UpdateKind) -> bool {
        send(&self.updates, self.server, kind).await
    }
}

impl Link for Chip {
    type Client = Client;

    async fn attempt(&mut self, attempt: u32) -> bool {
        self.send(UpdateKind::Connecting { attempt }).await
    }

    async fn connect(&mut self) -> Result<Client, Error> {
        Client::connect(&self.config).await
    }

    async fn serve(&mut self, client: &Client) -> Option<Error> {
        let welcome = client.welcome();
        let connected = UpdateKind::Connected {
            version: welcome.server_version.clone(),
            session: welcome.session.clone(),
        };
        if !self.send(connected).await {
            return None;
        }
        let mut ticker = tokio::time::interval(self.timing.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let kind = match sample(client, self.timing.request_timeout).await {
                Ok(kind) => kind,
                Err(error) => return Some(error),
            };
            if !self.send(kind).await {
                return None;
            }
        }
    }

    async fn down(&mut self, error: &Error, retry_at: Instant, attempt: u32) -> bool {
        let down = UpdateKind::Down {
            error: error.to_string(),
            retry_at,
            attempt,
        };
        self.send(down).await
    }
}

/// One poll: the ping's round trip and `info`, within `limit`.
async fn sample(client: &Client, limit: Duration) -> Result<UpdateKind, Error> {
    tokio::time::timeout(limit, async {
        let latency = client.ping().await?;
        let info = client.info().await?;
        Ok(UpdateKind::Sample { latency, info })
    })
    .await
    .unwrap_or_else(|_| {
        Err(Error::timeout(format!(
            "no answer to ping and info within {limit:?}"
        )))
    })
}
