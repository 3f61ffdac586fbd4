//! backroom-proxy: an HTTP/1.1 forward proxy on hyper, with CONNECT tunnels,
//! upgrades, ACLs, Basic proxy auth, an access log, upstream keep-alive, and
//! an admin port that speaks the frame protocol.
//!
//! [`run`] serves both listeners until shutdown, then drains.

pub mod accesslog;
pub mod acl;
mod admin;
pub mod auth;
mod body;
pub mod config;
mod forward;
pub mod headers;
mod interim;
pub mod stats;
pub mod tunnels;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backroom_daemon::face;
use backroom_frame::server::ClientCap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::RwLock;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accesslog::AccessLog;
use crate::acl::PortRange;
use crate::body::ClientBody;
use crate::config::Config;
use crate::config::{Policy, seconds};
use crate::headers::ForwardedHeaders;
use crate::interim::{ClientIo, Interim};
use crate::stats::Stats;
use crate::tunnels::Tunnels;
use crate::upstream::{Connector, Dialer};

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("cannot open the access log: {0}")]
    AccessLog(std::io::Error),
    #[error("cannot read a listener's address: {0}")]
    Io(#[from] std::io::Error),
    #[error("the admin port: {0}")]
    Admin(#[from] backroom_frame::server::StartError),
}

/// The settings every request reads, resolved once at start.
pub(crate) struct Settings {
    via_name: String,
    forwarded: ForwardedHeaders,
    connect_ports: Vec<u16>,
    /// Ports plain HTTP may reach.
    safe_ports: Vec<PortRange>,
    response_header_timeout: Duration,
    idle_timeout: Duration,
    /// Silence allowed in the middle of a request body.
    client_body_timeout: Duration,
    /// How long a body with `Expect: 100-continue` waits for the origin's
    /// `100 Continue` before it is sent anyway.
    continue_timeout: Duration,
}

/// What every connection, request and admin call shares.
pub(crate) struct Shared {
    settings: Settings,
    /// Swapped whole by `reload`; readers clone the `Arc` and let go at once.
    policy: RwLock<Arc<Policy>>,
    client: Client<Connector, ClientBody>,
    dialer: Arc<Dialer>,
    stats: Stats,
    log: AccessLog,
    tunnels: Arc<Tunnels>,
    tunnel_tasks: TaskTracker,
    config_path: Option<PathBuf>,
}

impl Shared {
    fn policy(&self) -> Arc<Policy> {
        self.policy.read().clone()
    }

    fn set_policy(&self, policy: Policy) {
        *self.policy.write() = Arc::new(policy);
    }
}

/// Serves the proxy on `proxy` and the admin port on `admin` until
/// `shutdown` completes. Then it stops accepting, lets requests in flight
/// finish, and closes tunnels still open at the drain deadline.
pub async fn run(
    proxy: TcpListener,
    admin: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let timeouts = &config.proxy.timeouts;
    let t = |name, secs| seconds(name, secs).map_err(StartError::Config);
    let dialer = Arc::new(Dialer {
        dns_timeout: t("dns", timeouts.dns)?,
        connect_timeout: t("connect", timeouts.connect)?,
        allow_loopback: config.proxy.allow_loopback,
    });
    let client_header_timeout = t("client_header", timeouts.client_header)?;
    let drain = t("drain", timeouts.drain)?;
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(t("pool_idle", timeouts.pool_idle)?)
        .pool_max_idle_per_host(config.proxy.pool_max_idle_per_host)
        .set_host(false)
        // RFC 9112 §5.2 lets a proxy replace an origin's obs-fold with
        // spaces, as squid does, rather than fail the response.
        .http1_allow_obsolete_multiline_headers_in_responses(true)
        .build(Connector::new(dialer.clone(), t("idle", timeouts.idle)?));
    let policy = Policy::new(&config.proxy.acl, &config.proxy.auth).map_err(StartError::Config)?;
    let log = AccessLog::start(&config.log_target(), config.proxy.log_format)
        .map_err(StartError::AccessLog)?;
    if config.proxy.max_header_bytes < 1024 || config.proxy.max_headers == 0 {
        return Err(StartError::Config(
            "max_header_bytes must be at least 1024 and max_headers at least 1".into(),
        ));
    }
    if config.proxy.max_connections_per_client == 0 {
        return Err(StartError::Config(
            "max_connections_per_client must be at least 1".into(),
        ));
    }
    if config.proxy.safe_ports.is_empty() {
        return Err(StartError::Config(
            "safe_ports is empty: list the ports plain HTTP may reach, or \"1-65535\" for all"
                .into(),
        ));
    }
    let shared = Arc::new(Shared {
        settings: Settings {
            via_name: config.proxy.via_name.clone(),
            forwarded: config.proxy.forwarded,
            connect_ports: config.connect_ports(),
            safe_ports: config.proxy.safe_ports.clone(),
            response_header_timeout: t("response_header", timeouts.response_header)?,
            idle_timeout: t("idle", timeouts.idle)?,
            client_body_timeout: t("client_body", timeouts.client_body)?,
            continue_timeout: t("expect_continue", timeouts.expect_continue)?,
        },
        policy: RwLock::new(Arc::new(policy)),
        client,
        dialer,
        stats: Stats::default(),
        log,
        tunnels: Arc::new(Tunnels::default()),
        tunnel_tasks: TaskTracker::new(),
        config_path: config.config_path.clone(),
    });

    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(client_header_timeout)
        .max_headers(config.proxy.max_headers)
        .max_header_size(config.proxy.max_header_bytes)
        .max_buf_size(config.proxy.max_header_bytes.max(8192))
        .keep_alive(true);

    let admin_addr = admin.local_addr()?;
    config
        .admin
        .auth
        .current()
        .check_bind(admin_addr, config.admin.insecure)
        .map_err(StartError::Config)?;
    let addr = proxy.local_addr()?;
    let open_to_all =
        config.proxy.acl.client_allow.is_empty() && config.proxy.auth.users.is_empty();
    if open_to_all && !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "the proxy listens beyond loopback with no client_allow and no users: anyone who \
             reaches it can use it"
        );
    }

    // Said before the admin port answers, so that whoever sees the admin
    // port up also finds this line in the log.
    tracing::info!(%addr, "proxy serving");
    let stop = CancellationToken::new();
    let admin_service = admin::Admin {
        shared: shared.clone(),
    };
    let admin_task = tokio::spawn(backroom_frame::server::run(
        admin,
        config.admin.clone(),
        admin_service,
        stop.clone().cancelled_owned(),
    ));
    let reopen = config.reopen_log.clone();
    let log_shared = shared.clone();
    let reopen_task = tokio::spawn(async move {
        loop {
            reopen.notified().await;
            // Queueing the reopen may wait for room behind a slow disk.
            let shared = log_shared.clone();
            let _ = tokio::task::spawn_blocking(move || shared.log.reopen()).await;
        }
    });
    let reload = config.reload.clone();
    let reload_shared = shared.clone();
    let reload_task = tokio::spawn(async move {
        loop {
            reload.notified().await;
            // Without a config file a signal has nothing to reload; only the
            // admin method, which has a caller to tell, reports that.
            if reload_shared.config_path.is_none() {
                continue;
            }
            if let Err(e) = admin::reload(&reload_shared).await {
                tracing::error!(error = %e, "cannot reload the ACL and proxy users");
            }
        }
    });

    let connections = TaskTracker::new();
    let force = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(config.proxy.max_client_connections.max(1)));
    let per_client = ClientCap::new(config.proxy.max_connections_per_client);
    accept_loop(
        &proxy,
        &shared,
        &http,
        &slots,
        &per_client,
        &connections,
        &stop,
        &force,
        shutdown,
    )
    .await;
    drop(proxy);

    tracing::info!(%addr, "shutting down: draining requests");
    stop.cancel();
    connections.close();
    shared.tunnel_tasks.close();
    let deadline = tokio::time::Instant::now() + drain;
    let _ = tokio::time::timeout_at(deadline, connections.wait()).await;
    force.cancel();
    let _ = tokio::time::timeout_at(deadline, shared.tunnel_tasks.wait()).await;
    let open = shared.tunnels.count();
    if open > 0 {
        tracing::info!(open, "closing tunnels at the drain deadline");
    }
    shared.tunnels.close_all();
    connections.wait().await;
    shared.tunnel_tasks.wait().await;
    reopen_task.abort();
    reload_task.abort();
    match admin_task.await {
        Ok(result) => result?,
        Err(e) => tracing::error!(error = %e, "the admin server task failed"),
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    http: &http1::Builder,
    slots: &Arc<Semaphore>,
    per_client: &Arc<ClientCap>,
    connections: &TaskTracker,
    stop: &CancellationToken,
    force: &CancellationToken,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit,
            () = &mut shutdown => return,
        };
        let Ok(permit) = permit else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(client_slot) = per_client.admit(peer.ip()) else {
            drop(permit);
            tracing::debug!(%peer, "refused: the address holds max_connections_per_client");
            connections.spawn(refuse_over_cap(tcp, per_client.limit()));
            continue;
        };
        let shared = shared.clone();
        let http = http.clone();
        let stop = stop.clone();
        let force = force.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _client_slot = client_slot;
            shared
                .stats
                .active_connections
                .fetch_add(1, Ordering::Relaxed);
            serve_connection(&shared, &http, tcp, peer, &stop, &force).await;
            shared
                .stats
                .active_connections
                .fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Answers a client over its address's cap with a short 429 and closes,
/// without reading its request: it holds no connection slot meanwhile.
async fn refuse_over_cap(tcp: TcpStream, limit: usize) {
    let why = format!(
        "429 Too Many Requests: this address already has {limit} connections open to the \
         proxy (max_connections_per_client)"
    );
    face::refuse_http(tcp, true, "429 Too Many Requests", &why).await;
}

/// Serves one client connection: on shutdown it finishes the request in
/// flight and closes; at the drain deadline it is cut.
async fn serve_connection(
    shared: &Arc<Shared>,
    http: &http1::Builder,
    tcp: TcpStream,
    peer: SocketAddr,
    stop: &CancellationToken,
    force: &CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let service_shared = shared.clone();
    let interim = Arc::new(Interim::default());
    let io = ClientIo::new(tcp, interim.clone());
    let service =
        service_fn(move |req| forward::handle(service_shared.clone(), peer, interim.begin(), req));
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                result = connection.as_mut() => result,
                () = force.cancelled() => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
}
