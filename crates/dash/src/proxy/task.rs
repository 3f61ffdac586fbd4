//! The Proxy tab's task: follows the admin port's access log and polls its
//! statistics, which have no events of their own, at the poll interval.

use backroom_api::proxy::ProxyClient;
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::driver::{self, Link};
use crate::proxy::tab::Msg;
use crate::server::Server;
use crate::update::{Timing, Update, UpdateKind};

/// Keeps the Proxy tab fed for as long as anybody listens to `updates`.
pub async fn run(config: ClientConfig, timing: Timing, updates: mpsc::Sender<Update>) {
    let link = ProxyLink {
        config,
        timing,
        updates,
    };
    driver::drive(link, timing).await;
}

/// The Proxy tab's link to the admin port.
struct ProxyLink {
    config: ClientConfig,
    timing: Timing,
    updates: mpsc::Sender<Update>,
}

impl Link for ProxyLink {
    type Client = ProxyClient;

    async fn connect(&mut self) -> Result<ProxyClient, Error> {
        ProxyClient::connect(&self.config).await
    }

    async fn serve(&mut self, client: &ProxyClient) -> Option<Error> {
        follow(client, self.timing, &self.updates).await
    }

    async fn down(&mut self, error: &Error, _: Instant, _: u32) -> bool {
        send(&self.updates, Msg::Lost(error.to_string())).await
    }
}

async fn send(updates: &mpsc::Sender<Update>, msg: Msg) -> bool {
    driver::send(updates, Server::Proxy, UpdateKind::Proxy(msg)).await
}

/// Relays the log and the stats until the connection fails (`Some`) or the
/// UI goes away (`None`).
async fn follow(
    client: &ProxyClient,
    timing: Timing,
    updates: &mpsc::Sender<Update>,
) -> Option<Error> {
    let (recent, mut log) = match client.tail().await {
        Ok(tail) => tail,
        Err(error) => return Some(error),
    };
    if !send(updates, Msg::Recent(recent)).await {
        return None;
    }
    let mut ticker = tokio::time::interval(timing.poll);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            record = log.next() => match record {
                Some(Ok(record)) => Msg::Record(record),
                Some(Err(error)) => return Some(error),
                None => return Some(Error::unavailable("the proxy ended the log")),
            },
            _ = ticker.tick() => {
                let stats = tokio::time::timeout(timing.request_timeout, client.stats())
                    .await
                    .unwrap_or_else(|_| Err(Error::timeout("no answer to stats")));
                match stats {
                    Ok(stats) => Msg::Stats(stats),
                    Err(error) => return Some(error),
                }
            }
        };
        if !send(updates, msg).await {
            return None;
        }
    }
}
