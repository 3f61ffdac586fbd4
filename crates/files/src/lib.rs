//! The backroom file server: a root directory served over the frame protocol,
//! with paths confined by a directory capability, atomic and resumable
//! transfers, a change feed, per-path rights and per-user quotas.
//!
//! [`run`] serves a [`Config`] on a listener; the `backroom-files` binary only
//! parses flags into one. [`Prepared::serve_with_http`] also serves the root
//! over HTTP on a second listener.

mod atomic;
pub mod http;
mod ops;
mod paths;
pub mod rights;
mod service;
mod transfer;
mod uploads;
mod vitals;
mod watch;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backroom_frame::server::{self, ServerConfig, StartError};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::http::HttpConfig;
use crate::rights::{QuotaConfig, Rights, RuleConfig};

/// The transfer limits of a server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest file one `write` may produce; `None` for no limit.
    pub max_upload_bytes: Option<u64>,
    /// How many `read`s and `write`s one connection may run at once.
    pub max_transfers_per_connection: u32,
    /// How long an interrupted resumable upload is kept across restarts.
    pub keep_partial: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_upload_bytes: None,
            max_transfers_per_connection: 4,
            keep_partial: Duration::from_secs(24 * 3600),
        }
    }
}

/// Everything a files server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory served; created if missing.
    pub root: PathBuf,
    pub frame: ServerConfig,
    pub rights: Rights,
    pub limits: Limits,
    /// The HTTP face's settings; it serves only when given a listener.
    pub http: HttpConfig,
}

impl Config {
    /// A config with the runtime's defaults, open access and no rules.
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            frame: ServerConfig::new(backroom_api::files::SERVICE, env!("CARGO_PKG_VERSION")),
            rights: Rights::default(),
            limits: Limits::default(),
            http: HttpConfig::default(),
        }
    }
}

/// The keys of `backroom-files`'s config file beside the common ones; read
/// it with `backroom_daemon::load_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub root: Option<PathBuf>,
    pub max_upload_bytes: Option<u64>,
    pub max_transfers_per_connection: Option<u32>,
    pub keep_partial_hours: Option<u64>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub quotas: Vec<QuotaConfig>,
    /// Where the HTTP face listens; off when absent.
    pub http_listen: Option<String>,
    /// Folders whose HTML pages are the intranet's own (see [`HttpConfig`]).
    #[serde(default)]
    pub http_sites: Vec<String>,
    /// Folders anyone may read over HTTP without credentials.
    #[serde(default)]
    pub http_public: Vec<String>,
}

impl FileConfig {
    /// Applies this file's own keys to a config.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        config.rights = Rights::new(&self.rules, &self.quotas)?;
        config.limits.max_upload_bytes = self.max_upload_bytes;
        if let Some(n) = self.max_transfers_per_connection {
            if n == 0 {
                return Err("max_transfers_per_connection must be at least 1".into());
            }
            config.limits.max_transfers_per_connection = n;
        }
        if let Some(hours) = self.keep_partial_hours {
            config.limits.keep_partial = Duration::from_secs(hours.saturating_mul(3600));
        }
        config.http = HttpConfig {
            sites: self.http_sites.clone(),
            public: self.http_public.clone(),
        };
        config.http.check()
    }
}

/// Why a files server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot use {path} as the root: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A root made ready to serve: created if missing, opened, and swept of what
/// interrupted uploads left behind (see [`Limits::keep_partial`]).
pub struct Prepared {
    state: Arc<service::State>,
    frame: ServerConfig,
    http: HttpConfig,
}

/// Prepares the root. A binary calls this before it binds and announces, so
/// its readiness line means the server can answer at once.
pub async fn prepare(config: Config) -> Result<Prepared, RunError> {
    let root_error = |source| RunError::Root {
        path: config.root.clone(),
        source,
    };
    std::fs::create_dir_all(&config.root).map_err(root_error)?;
    let canonical = std::fs::canonicalize(&config.root).map_err(root_error)?;
    let dir = cap_std::fs::Dir::open_ambient_dir(&canonical, cap_std::ambient_authority())
        .map_err(root_error)?;
    let state = Arc::new(service::State::new(
        dir,
        canonical,
        config.rights,
        config.limits,
    ));
    state.sweep().await;
    Ok(Prepared {
        state,
        frame: config.frame,
        http: config.http,
    })
}

impl Prepared {
    /// Serves until `shutdown` completes, then drains.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        self.serve_with_http(listener, None, shutdown).await
    }

    /// Refuses an HTTP listener beyond loopback when anyone could use it:
    /// no users and no `insecure`, as for the frame port. The binary asks
    /// before it announces the listener.
    pub fn check_http(&self, listener: &tokio::net::TcpListener) -> Result<(), RunError> {
        let addr = listener.local_addr().map_err(StartError::Io)?;
        self.frame
            .auth
            .current()
            .check_bind(addr, self.frame.insecure)
            .map_err(StartError::Insecure)?;
        Ok(())
    }

    /// Serves the frame protocol on `listener` and, when given, HTTP on
    /// `http`, both over the same root, until `shutdown`.
    pub async fn serve_with_http(
        self,
        listener: tokio::net::TcpListener,
        http: Option<tokio::net::TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        if let Some(http) = &http {
            self.check_http(http)?;
        }
        let faces = CancellationToken::new();
        let http = http.map(|listener| {
            tokio::spawn(crate::http::serve(
                listener,
                self.state.clone(),
                self.frame.clone(),
                self.http.clone(),
                faces.clone(),
            ))
        });
        let shutdown = async {
            shutdown.await;
            faces.cancel();
        };
        let service = service::FilesService(self.state);
        let served = server::run(listener, self.frame, service, shutdown).await;
        faces.cancel();
        if let Some(http) = http {
            let _ = http.await;
        }
        served?;
        Ok(())
    }
}

/// Prepares the root, then serves it until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    prepare(config).await?.serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use backroom_frame::auth::{Identity, Role};

    /// The sample of docs/files.md, kept in step with it.
    const SAMPLE: &str = r#"
        listen = "0.0.0.0:7701"
        root = "/srv/backroom/files"
        max_upload_bytes = 10_737_418_240
        max_transfers_per_connection = 4
        keep_partial_hours = 48
        http_listen = "0.0.0.0:8080"
        http_sites = ["intranet"]
        http_public = ["intranet"]

        [[users]]
        name = "ann"
        token_sha256 = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
        role = "admin"

        [[users]]
        name = "bob"
        token_sha256 = "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"
        role = "read-write"

        [[rules]]
        path = "finance"
        users = ["*"]
        access = "none"

        [[rules]]
        path = "finance"
        users = ["ann"]
        access = "write"

        [[rules]]
        path = "archive"
        users = ["bob"]
        access = "read"

        [[quotas]]
        user = "bob"
        path = "home/bob"
        bytes = 53_687_091_200
    "#;

    #[test]
    fn the_documented_sample_config_parses_and_applies() {
        let file = backroom_daemon::parse_config::<FileConfig>(SAMPLE).expect("parses");
        assert_eq!(file.common.users.len(), 2);
        let file = file.own;
        assert_eq!(file.http_listen.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(
            file.root.as_deref(),
            Some(std::path::Path::new("/srv/backroom/files"))
        );
        let mut config = Config::new("/unused");
        file.apply(&mut config).expect("applies");
        assert_eq!(config.limits.max_upload_bytes, Some(10 << 30));
        assert_eq!(config.limits.keep_partial, Duration::from_secs(48 * 3600));
        assert_eq!(config.http.sites, ["intranet"]);
        let bob = Identity {
            user: "bob".into(),
            role: Role::ReadWrite,
        };
        let finance = crate::paths::RelPath::parse("finance/q1").expect("path");
        assert_eq!(config.rights.access(&bob, &finance), rights::Access::None);
        let home = crate::paths::RelPath::parse("home/bob/x").expect("path");
        assert_eq!(config.rights.quotas("bob", &home).len(), 1);
    }

    #[test]
    fn zero_transfers_per_connection_is_refused() {
        let file: FileConfig = toml::from_str("max_transfers_per_connection = 0").expect("parses");
        let err = file
            .apply(&mut Config::new("/unused"))
            .expect_err("refused");
        assert!(err.contains("max_transfers_per_connection"), "{err}");
    }
}
