//! The backroom database server: SQLite over the network, with interactive
//! transactions, cursors, group commit, backups and a change feed.
//!
//! [`run`] serves a data directory on a listener; `main.rs` is the thin
//! binary around it. Each database is one file `DIR/<name>.db`, served by one
//! writer thread and a pool of reader threads (see [`engine`]).

mod ctl;
mod engine;
mod pg;
mod service;
mod sessions;
mod sql;
mod vitals;
mod writer;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use backroom_frame::server::ServerConfig;
use serde::Deserialize;
use tokio::net::TcpListener;

/// How hard SQLite works to make each commit durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is fsynced before it is acknowledged.
    #[default]
    Full,
    /// WAL commits are fsynced at checkpoints: a power cut may lose the last
    /// commits, a crash of the server alone does not.
    Normal,
}

impl Synchronous {
    fn as_pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The folder of the database files; created if missing.
    pub data: PathBuf,
    pub frame: ServerConfig,
    pub synchronous: Synchronous,
    /// Reader threads (and connections) per database.
    pub readers: usize,
    /// An interactive transaction idle this long is rolled back.
    pub tx_idle_timeout: Duration,
    /// The timeout of a statement whose request sets none.
    pub statement_timeout: Duration,
    /// The longest timeout a request may ask for.
    pub max_statement_timeout: Duration,
    /// The largest result `query` returns whole; larger ones need a cursor.
    pub max_result_bytes: usize,
    pub cursor_page_bytes: usize,
    /// Cursors open at once, server-wide; each has a thread of its own.
    pub max_cursors: usize,
    /// How often connections that left are looked for, to roll back their
    /// transactions.
    pub reap_interval: Duration,
}

impl Config {
    pub fn new(data: impl Into<PathBuf>) -> Config {
        Config {
            data: data.into(),
            frame: ServerConfig::new(backroom_api::db::SERVICE, env!("CARGO_PKG_VERSION")),
            synchronous: Synchronous::Full,
            readers: 4,
            tx_idle_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(30),
            max_statement_timeout: Duration::from_secs(600),
            max_result_bytes: 8 * 1024 * 1024,
            cursor_page_bytes: 256 * 1024,
            max_cursors: 64,
            reap_interval: Duration::from_millis(200),
        }
    }
}

/// The database server's own keys of its config file, beside the common
/// ones; read it with `backroom_daemon::load_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub synchronous: Option<Synchronous>,
    pub readers: Option<usize>,
    pub tx_idle_timeout_secs: Option<u64>,
    pub statement_timeout_secs: Option<u64>,
    pub max_statement_timeout_secs: Option<u64>,
    pub max_result_bytes: Option<usize>,
    pub max_cursors: Option<usize>,
    /// The address of the PostgreSQL face; off when absent.
    pub pg_listen: Option<String>,
}

impl FileConfig {
    /// Applies the file's keys over `config`'s defaults, refusing values
    /// that cannot work.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        if let Some(s) = self.synchronous {
            config.synchronous = s;
        }
        if let Some(n) = self.readers {
            if n == 0 || n > 256 {
                return Err(format!("readers = {n}: use 1 to 256"));
            }
            config.readers = n;
        }
        let secs = |name: &str, v: Option<u64>, into: &mut Duration| {
            match v {
                Some(0) => return Err(format!("{name} must be at least 1")),
                Some(s) => *into = Duration::from_secs(s),
                None => {}
            }
            Ok(())
        };
        secs(
            "tx_idle_timeout_secs",
            self.tx_idle_timeout_secs,
            &mut config.tx_idle_timeout,
        )?;
        secs(
            "statement_timeout_secs",
            self.statement_timeout_secs,
            &mut config.statement_timeout,
        )?;
        secs(
            "max_statement_timeout_secs",
            self.max_statement_timeout_secs,
            &mut config.max_statement_timeout,
        )?;
        if config.statement_timeout > config.max_statement_timeout {
            return Err("statement_timeout_secs exceeds max_statement_timeout_secs".into());
        }
        if let Some(n) = self.max_result_bytes {
            if n < 1024 {
                return Err(format!("max_result_bytes = {n}: use at least 1024"));
            }
            config.max_result_bytes = n;
        }
        if let Some(n) = self.max_cursors {
            config.max_cursors = n.max(1);
        }
        Ok(())
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot use the data directory {path}: {source}")]
    Data {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the default database: {0}")]
    Open(backroom_frame::Error),
    #[error(transparent)]
    Start(#[from] backroom_frame::server::StartError),
}

/// Serves the databases of `config.data` on `listener` until `shutdown`
/// completes; then drains requests, rolls back open transactions and stops
/// every database thread.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_pg(listener, None, config, shutdown).await
}

/// [`run`], with the PostgreSQL face on `pg` when given: it serves the same
/// databases and stops with the server.
pub async fn run_with_pg(
    listener: TcpListener,
    pg: Option<TcpListener>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&config.data).map_err(|source| RunError::Data {
        path: config.data.clone(),
        source,
    })?;
    let frame = config.frame.clone();
    let service = service::DbService::start(config)
        .await
        .map_err(RunError::Open)?;
    let cleanup = service.clone();
    let stop_pg = tokio_util::sync::CancellationToken::new();
    let pg = pg.map(|listener| tokio::spawn(pg::serve(listener, service.clone(), stop_pg.clone())));
    let served = backroom_frame::server::run(listener, frame, service, shutdown).await;
    stop_pg.cancel();
    if let Some(pg) = pg {
        let _ = pg.await;
    }
    cleanup.stop().await;
    served?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
        listen = "0.0.0.0:7703"
        data = "/var/lib/backroom/db"
        synchronous = "normal"
        readers = 8
        tx_idle_timeout_secs = 10
        statement_timeout_secs = 5
        max_statement_timeout_secs = 60
        max_result_bytes = 1048576
        max_cursors = 16
        pg_listen = "127.0.0.1:5433"
        idle_timeout_secs = 120

        [[users]]
        name = "ann"
        token_sha256 = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        role = "admin"
    "#;

    #[test]
    fn the_sample_config_applies_every_key() {
        let file = backroom_daemon::parse_config::<FileConfig>(SAMPLE).expect("parses");
        assert_eq!(file.common.listen.as_deref(), Some("0.0.0.0:7703"));
        assert_eq!(file.common.users.len(), 1);
        assert_eq!(file.common.idle_timeout_secs, Some(120));
        let file = file.own;
        assert_eq!(file.pg_listen.as_deref(), Some("127.0.0.1:5433"));
        let mut config = Config::new("x");
        file.apply(&mut config).expect("valid");
        assert_eq!(config.synchronous, Synchronous::Normal);
        assert_eq!(config.readers, 8);
        assert_eq!(config.tx_idle_timeout, Duration::from_secs(10));
        assert_eq!(config.statement_timeout, Duration::from_secs(5));
        assert_eq!(config.max_statement_timeout, Duration::from_secs(60));
        assert_eq!(config.max_result_bytes, 1 << 20);
        assert_eq!(config.max_cursors, 16);
    }

    #[test]
    fn impossible_values_are_refused() {
        for bad in [
            "readers = 0",
            "tx_idle_timeout_secs = 0",
            "statement_timeout_secs = 700",
            "max_result_bytes = 10",
        ] {
            let file: FileConfig = toml::from_str(bad).expect("parses");
            assert!(file.apply(&mut Config::new("x")).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused() {
        assert!(toml::from_str::<FileConfig>("synchronus = \"full\"").is_err());
    }
}
