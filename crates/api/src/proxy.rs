//! The proxy service's admin messages and typed client: statistics, the live
//! access log, tunnels and config reload of `backroom-proxy`'s admin port.

use backroom_frame::Error;
use backroom_frame::client::{Client, ClientConfig, Subscription};
use serde::{Deserialize, Serialize};

/// The service name the proxy's admin port answers to.
pub const SERVICE: &str = "proxy";

/// The names of the proxy's vital signs in its admin port's `info`, written
/// once for the server and its readers.
pub mod vital {
    /// Requests (and tunnels) finished per second, over the last 10 s.
    pub const REQUESTS: &str = "requests";
    /// CONNECT tunnels open now.
    pub const TUNNELS: &str = "tunnels";
    /// The share of the last 10 s's requests answered with a 5xx status,
    /// in percent; an alert above [`SERVER_ERRORS_ALERT_PERCENT`].
    pub const SERVER_ERRORS: &str = "5xx";
    /// Client connections open now on the proxy port.
    pub const CONNECTIONS: &str = "connections";
    /// The share of 5xx answers above which [`SERVER_ERRORS`] is an alert.
    pub const SERVER_ERRORS_ALERT_PERCENT: f64 = 5.0;
}

/// The admin port's method names, written once for client and server. Each
/// names its argument and answer types.
pub mod method {
    /// nothing → `Stats`.
    pub const STATS: &str = "stats";
    /// nothing → head `[AccessRecord]` (the latest, oldest first), then
    /// `AccessRecord` events.
    pub const LOG: &str = "log";
    /// nothing → `[TunnelInfo]`.
    pub const TUNNELS: &str = "tunnels";
    /// `CloseTunnel` → nil.
    pub const CLOSE_TUNNEL: &str = "close_tunnel";
    /// nothing → `Reloaded`.
    pub const RELOAD: &str = "reload";
}

/// Responses counted by the first digit of their status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    pub informational: u64,
    pub success: u64,
    pub redirection: u64,
    pub client_error: u64,
    pub server_error: u64,
}

/// How many requests went to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCount {
    pub host: String,
    pub requests: u64,
}

/// What `stats` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_ms: u64,
    /// Requests and tunnels finished since start.
    pub requests: u64,
    pub by_status: StatusClasses,
    /// Bytes received from clients (request bodies and tunnel uploads).
    pub bytes_in: u64,
    /// Bytes sent to clients (response bodies and tunnel downloads).
    pub bytes_out: u64,
    pub active_connections: u64,
    pub active_tunnels: u64,
    /// Finished requests per second over the last 1, 10 and 60 seconds.
    pub rate_1s: f64,
    pub rate_10s: f64,
    pub rate_60s: f64,
    /// The busiest destination hosts, busiest first.
    pub top_hosts: Vec<HostCount>,
}

/// One access-log record: a request or a tunnel, once it has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub client: String,
    /// The proxy-auth user, or `-` when there is none.
    pub user: String,
    pub method: String,
    /// The absolute URI, or `host:port` for a tunnel.
    pub target: String,
    pub status: u16,
    /// Bytes of body (or tunnel payload) received from the client.
    pub bytes_in: u64,
    /// Bytes of body (or tunnel payload) sent to the client.
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// The upstream socket address, or `-` when none was reached.
    pub upstream: String,
    pub user_agent: String,
    pub referer: String,
}

/// One open CONNECT tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelInfo {
    pub id: u64,
    pub client: String,
    pub user: String,
    /// `host:port` as the client asked.
    pub target: String,
    pub upstream: String,
    pub opened_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The argument of `close_tunnel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseTunnel {
    pub id: u64,
}

/// What `reload` answers: the counts of what is now in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    pub rules: u64,
    pub users: u64,
    pub client_allow: u64,
    pub client_deny: u64,
}

/// A typed client of the proxy's admin port.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    client: Client,
}

impl ProxyClient {
    /// Connects to the admin port at `config.addr`.
    pub async fn connect(config: &ClientConfig) -> Result<ProxyClient, Error> {
        Client::connect(config).await.map(ProxyClient::from_client)
    }

    /// Wraps a connection already made to the proxy service.
    pub fn from_client(client: Client) -> ProxyClient {
        ProxyClient { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn stats(&self) -> Result<Stats, Error> {
        self.client.request(method::STATS, &()).await
    }

    /// Follows the access log: every record from now on, as it is written.
    /// The subscription's head holds the latest records; see [`Self::tail`].
    pub async fn log(&self) -> Result<Subscription<AccessRecord>, Error> {
        self.client.subscribe(method::LOG, &()).await
    }

    /// The latest access-log records (up to 100, oldest first), then every
    /// record after them, with no gap and no repeat between the two.
    pub async fn tail(&self) -> Result<(Vec<AccessRecord>, Subscription<AccessRecord>), Error> {
        let sub = self.log().await?;
        let recent = backroom_frame::body::decode(&sub.head)?;
        Ok((recent, sub))
    }

    pub async fn tunnels(&self) -> Result<Vec<TunnelInfo>, Error> {
        self.client.request(method::TUNNELS, &()).await
    }

    /// Closes one tunnel; `not_found` when no tunnel has that id.
    pub async fn close_tunnel(&self, id: u64) -> Result<(), Error> {
        self.client
            .request(method::CLOSE_TUNNEL, &CloseTunnel { id })
            .await
    }

    /// Re-reads the ACL and auth sections of the proxy's config file.
    pub async fn reload(&self) -> Result<Reloaded, Error> {
        self.client.request(method::RELOAD, &()).await
    }
}
