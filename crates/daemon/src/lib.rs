//! What every backroom daemon's binary shares: the common flags, the common
//! part of the config file, tracing, the readiness line and signals.
//!
//! Servers stay libraries with a `run(listener, config, shutdown)` entry
//! point; this crate only helps their thin `main`s agree with each other.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use backroom_frame::auth::{Auth, Role, User, hash_token};
use backroom_frame::server::ServerConfig;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;

/// The flags every daemon takes. Flags override the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// The address to listen on, as host:port (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// A TOML config file; see the server's page in docs/.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A token that gives its holder the admin role. Prefer users with hashed
    /// tokens in the config file; this is for quick starts.
    #[arg(long, env = "BACKROOM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A PEM certificate chain: serve over TLS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Allow listening beyond loopback with no users configured.
    #[arg(long)]
    pub insecure: bool,
}

/// The keys every daemon's config file may hold, beside its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonConfig {
    pub listen: Option<String>,
    #[serde(default)]
    pub users: Vec<User>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
    pub max_connections: Option<usize>,
    pub max_frame: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub idle_timeout_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
}

/// Reads a TOML config file, or the defaults when there is none.
pub fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> anyhow::Result<T> {
    let Some(path) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Where to listen and how to serve, from flags over file over defaults.
pub struct Settings {
    pub listen: String,
    pub frame: ServerConfig,
}

/// Merges flags, the config file and defaults into the runtime's config.
pub fn settings(
    service: &str,
    version: &str,
    default_listen: &str,
    args: &CommonArgs,
    file: &CommonConfig,
) -> anyhow::Result<Settings> {
    let mut frame = ServerConfig::new(service, version);
    let mut users = file.users.clone();
    if let Some(token) = &args.token {
        users.push(User {
            name: "admin".into(),
            token_sha256: hash_token(token),
            role: Role::Admin,
        });
    }
    frame.auth = Auth::new(users).map_err(anyhow::Error::msg)?.into();
    frame.insecure = args.insecure || file.insecure;
    let cert = args.tls_cert.as_ref().or(file.tls_cert.as_ref());
    let key = args.tls_key.as_ref().or(file.tls_key.as_ref());
    frame.tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            Some(backroom_frame::tls::server_config(cert, key).map_err(anyhow::Error::msg)?)
        }
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key"),
    };
    if let Some(n) = file.max_connections {
        frame.max_connections = n;
    }
    if let Some(n) = file.max_frame {
        frame.limits.max_frame = n;
    }
    if let Some(n) = file.max_in_flight {
        frame.limits.max_in_flight = n;
    }
    if let Some(secs) = file.idle_timeout_secs {
        frame.limits.idle_timeout_ms = secs * 1000;
    }
    if let Some(secs) = file.drain_timeout_secs {
        frame.drain_timeout = Duration::from_secs(secs);
    }
    let listen = args
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| default_listen.to_owned());
    Ok(Settings { listen, frame })
}

/// Binds the listener, saying which address failed and why.
pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Prints the readiness line, `listening <what> <addr>`, that scripts and the
/// demo wait for. It is the one line a daemon writes to stdout.
pub fn announce(what: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening {what} {addr}")?;
    out.flush()?;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on Ctrl-C or SIGTERM: the start of a graceful shutdown.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted; shutting down"),
        () = term => tracing::info!("terminated; shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let file: CommonConfig = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            idle_timeout_secs = 5
            [[users]]
            name = "ann"
            token_sha256 = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
            role = "read-only"
            "#,
        )
        .expect("parses");
        let defaults =
            settings("x", "1", "127.0.0.1:1", &CommonArgs::default(), &file).expect("ok");
        assert_eq!(defaults.listen, "127.0.0.1:9000");
        assert_eq!(defaults.frame.limits.idle_timeout_ms, 5000);
        assert!(!defaults.frame.auth.current().is_open());

        let args = CommonArgs {
            listen: Some("127.0.0.1:0".into()),
            token: Some("t".into()),
            ..CommonArgs::default()
        };
        let flagged = settings("x", "1", "127.0.0.1:1", &args, &file).expect("ok");
        assert_eq!(flagged.listen, "127.0.0.1:0");
        let admin = flagged
            .frame
            .auth
            .current()
            .authenticate(Some("t"))
            .expect("token works");
        assert_eq!(admin.role, Role::Admin);
    }

    #[test]
    fn a_bad_token_hash_in_the_file_is_an_error() {
        let file: CommonConfig = toml::from_str(
            r#"
            [[users]]
            name = "ann"
            token_sha256 = "plaintext"
            role = "admin"
            "#,
        )
        .expect("parses");
        let err = settings("x", "1", "127.0.0.1:1", &CommonArgs::default(), &file)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("user ann"), "{err}");
    }
}
