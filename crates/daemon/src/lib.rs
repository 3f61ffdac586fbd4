//! What every backroom daemon's binary shares: the common flags, the common
//! part of the config file, tracing and its log file, the readiness line,
//! and signals (SIGTERM and Ctrl-C to stop, SIGHUP to reopen and reload).
//!
//! It also holds what the servers' libraries share: [`face`], the plumbing
//! of the standard faces (accept loop, caps, TLS, HTTP serving, Basic
//! credentials), and [`rate`]'s rolling counts for their vital signs.
//!
//! Servers stay libraries with a `run(listener, config, shutdown)` entry
//! point; this crate only helps their thin `main`s agree with each other.

pub mod face;
mod keys;
pub mod logs;
pub mod rate;
#[cfg(feature = "test-support")]
pub mod testing;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use backroom_frame::auth::{Auth, AuthHandle, Role, User, hash_token};
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
    /// Append the log to this file instead of stderr; SIGHUP reopens it.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

/// The keys every daemon's config file may hold, beside its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonConfig {
    pub listen: Option<String>,
    #[serde(default)]
    pub users: Vec<User>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub handshake_timeout_secs: Option<u64>,
    pub max_frame: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub idle_timeout_secs: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
    pub log_file: Option<PathBuf>,
}

/// A daemon's config file: the common keys and the daemon's own keys `T`,
/// side by side at the top level.
#[derive(Debug, Clone, Default)]
pub struct ConfigFile<T> {
    pub common: CommonConfig,
    pub own: T,
}

/// Reads a TOML config file, or the defaults when there is none.
pub fn load_config<T: DeserializeOwned + Default>(
    path: Option<&Path>,
) -> anyhow::Result<ConfigFile<T>> {
    let Some(path) = path else {
        return Ok(ConfigFile::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_config(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Parses a config file's text into the common keys and the daemon's `T`.
///
/// Every key must be known: a top-level key to [`CommonConfig`] or to `T`,
/// and a key of a table to the struct of that table (which says
/// `deny_unknown_fields`). The error points at the key's own line. This is
/// done without `#[serde(flatten)]`, which would hide unknown keys and every
/// line number: the top-level keys are checked against both structs' field
/// names, then each struct reads the keys it knows from the same document.
pub fn parse_config<T: DeserializeOwned>(text: &str) -> Result<ConfigFile<T>, toml::de::Error> {
    let document = toml::de::DeTable::parse(text)?;
    let with_input = |mut e: toml::de::Error| {
        e.set_input(Some(text));
        e
    };
    let known: Vec<&str> = keys::field_names::<CommonConfig>()
        .iter()
        .chain(keys::field_names::<T>())
        .copied()
        .collect();
    keys::check_top_level(toml::de::Deserializer::from(document.clone()), &known)
        .map_err(with_input)?;
    let common = keys::known_only(&document, keys::field_names::<CommonConfig>());
    let own = keys::known_only(&document, keys::field_names::<T>());
    Ok(ConfigFile {
        common: CommonConfig::deserialize(toml::de::Deserializer::from(common))
            .map_err(with_input)?,
        own: T::deserialize(toml::de::Deserializer::from(own)).map_err(with_input)?,
    })
}

/// Where to listen, how to serve and where to log, from flags over file
/// over defaults.
pub struct Settings {
    pub listen: String,
    pub frame: ServerConfig,
    /// Where the log goes instead of stderr.
    pub log_file: Option<PathBuf>,
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
    frame.auth = auth(args, file)?.into();
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
    if let Some(n) = file.max_connections_per_client {
        frame.max_connections_per_client = n;
    }
    if let Some(secs) = file.handshake_timeout_secs {
        anyhow::ensure!(secs > 0, "handshake_timeout_secs must be at least 1");
        frame.handshake_timeout = Duration::from_secs(secs);
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
    let log_file = args.log_file.clone().or_else(|| file.log_file.clone());
    Ok(Settings {
        listen,
        frame,
        log_file,
    })
}

/// The file's users, plus an admin holding the `--token` flag's token.
fn auth(args: &CommonArgs, file: &CommonConfig) -> anyhow::Result<Auth> {
    let mut users = file.users.clone();
    if let Some(token) = &args.token {
        users.push(User {
            name: "admin".into(),
            token_sha256: hash_token(token),
            role: Role::Admin,
        });
    }
    Auth::new(users).map_err(anyhow::Error::msg)
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

/// The `shutdown` future every daemon hands its server's `run`: when first
/// polled it prints the readiness lines, one per `(what, addr)`, then it
/// completes on SIGTERM or Ctrl-C.
///
/// A server's `run` polls its shutdown future only once its start-up checks
/// have passed and it is serving, so the readiness line never announces a
/// server that is about to refuse to run.
pub async fn ready_until_signal(ready: &[(&str, SocketAddr)]) {
    for (what, addr) in ready {
        if let Err(e) = announce(what, *addr) {
            tracing::error!(error = %e, "cannot print the readiness line");
        }
    }
    shutdown_signal().await;
}

/// Logs to stderr, or appends to `log_file`, filtered by `RUST_LOG`
/// (default `info`). Colours only on a terminal, and not when `NO_COLOR` is
/// set (see no-color.org). The returned [`Logs`](logs::Logs) reopens the
/// file; give it to [`Reload`].
pub fn init_tracing(log_file: Option<&Path>) -> anyhow::Result<logs::Logs> {
    let logs = match log_file {
        Some(path) => logs::Logs::file(path)
            .with_context(|| format!("cannot open the log file {}", path.display()))?,
        None => logs::Logs::default(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = colour(
        log_file.is_none() && std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(logs.clone())
        .with_ansi(ansi)
        .init();
    Ok(logs)
}

/// Whether the log may use ANSI colours: only on a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
fn colour(to_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    to_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// What SIGHUP does to a running daemon: reopen its log file, then re-read
/// the users of its config file for new connections (token rotation).
/// Every other setting needs a restart. Failures are logged, never fatal:
/// the old log file or the old users stay.
#[derive(Clone)]
pub struct Reload {
    logs: logs::Logs,
    /// The flags: `--config` says where to read, `--token` adds its admin.
    args: CommonArgs,
    auth: AuthHandle,
    read_common: Arc<ReadCommon>,
}

/// Reads a config file as the daemon's own type and keeps its common part.
type ReadCommon = dyn Fn(&Path) -> anyhow::Result<CommonConfig> + Send + Sync;

impl Reload {
    /// Reloads the users of `frame` from `--config`, parsed whole with the
    /// daemon's own keys `F` (so a typo anywhere refuses the reload).
    pub fn new<F: DeserializeOwned + Default + 'static>(
        logs: logs::Logs,
        args: &CommonArgs,
        frame: &ServerConfig,
    ) -> Reload {
        Reload {
            logs,
            args: args.clone(),
            auth: frame.auth.clone(),
            read_common: Arc::new(|path| load_config::<F>(Some(path)).map(|file| file.common)),
        }
    }

    /// Reopens the log file, then reloads the users. This is blocking work.
    pub fn run(&self) {
        self.reopen_logs();
        self.reload_users();
    }

    fn reopen_logs(&self) {
        let Some(path) = self.logs.path() else {
            return;
        };
        match self.logs.reopen() {
            Ok(()) => tracing::info!(log_file = %path.display(), "reopened the log file"),
            Err(e) => tracing::error!(
                log_file = %path.display(),
                error = %e,
                "cannot reopen the log file; logging on to the old one"
            ),
        }
    }

    fn reload_users(&self) {
        let Some(path) = &self.args.config else {
            return;
        };
        match self.read_users(path) {
            Ok(users) => tracing::info!(
                config = %path.display(),
                users,
                "reloaded the users from the config file; other settings need a restart"
            ),
            Err(e) => tracing::error!(
                config = %path.display(),
                error = format!("{e:#}"),
                "cannot reload the users; the old ones stay"
            ),
        }
    }

    /// Replaces the users and says how many the file lists.
    fn read_users(&self, path: &Path) -> anyhow::Result<usize> {
        let file = (self.read_common)(path)?;
        let auth = auth(&self.args, &file)?;
        // The server checked at start that open access was allowed where it
        // listens; it cannot check again, so a reload never opens it.
        anyhow::ensure!(
            !auth.is_open() || self.auth.current().is_open(),
            "the file lists no users, which would let anyone in; restart to do that"
        );
        self.auth.replace(auth);
        Ok(file.users.len())
    }
}

/// Runs `action` on a blocking thread at every SIGHUP, one at a time, for as
/// long as the runtime lives. The handler is installed before this returns,
/// so call it before announcing readiness: an early SIGHUP would otherwise
/// kill the process.
pub fn on_hangup(action: impl Fn() + Send + Sync + 'static) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; nothing will be reloaded");
                return;
            }
        };
        let action = Arc::new(action);
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let action = action.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || action()).await {
                    tracing::error!(error = %e, "the SIGHUP handler failed");
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(action);
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
    fn the_log_file_flag_overrides_the_file() {
        let file: CommonConfig =
            toml::from_str(r#"log_file = "/var/log/from-file.log""#).expect("parses");
        let from_file =
            settings("x", "1", "127.0.0.1:1", &CommonArgs::default(), &file).expect("ok");
        assert_eq!(
            from_file.log_file.as_deref(),
            Some(Path::new("/var/log/from-file.log"))
        );
        let args = CommonArgs {
            log_file: Some("/tmp/from-flag.log".into()),
            ..CommonArgs::default()
        };
        let flagged = settings("x", "1", "127.0.0.1:1", &args, &file).expect("ok");
        assert_eq!(
            flagged.log_file.as_deref(),
            Some(Path::new("/tmp/from-flag.log"))
        );
    }

    /// A `Reload` of a fresh server whose config file at `path` holds `toml`.
    fn reload_from(path: &Path, toml: &str, args: CommonArgs) -> (Reload, AuthHandle) {
        std::fs::write(path, toml).expect("write config");
        let args = CommonArgs {
            config: Some(path.to_owned()),
            ..args
        };
        let file = load_config::<NoOwnKeys>(Some(path)).expect("config").common;
        let settings = settings("x", "1", "127.0.0.1:1", &args, &file).expect("settings");
        let auth = settings.frame.auth.clone();
        let reload = Reload::new::<NoOwnKeys>(logs::Logs::default(), &args, &settings.frame);
        (reload, auth)
    }

    /// A daemon with only the common keys.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoOwnKeys {}

    /// A daemon's own keys, for the tests of the shared top level.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OwnKeys {
        root: Option<String>,
        #[serde(default)]
        printers: Vec<Printer>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Printer {
        name: String,
    }

    /// The error for `text`, rendered as a person reads it.
    fn refusal(text: &str) -> String {
        parse_config::<OwnKeys>(text)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn common_and_own_keys_share_the_top_level() {
        let file = parse_config::<OwnKeys>(
            "listen = \"127.0.0.1:9\"\nroot = \"/srv\"\nmax_connections_per_client = 3\n\
             [[printers]]\nname = \"laser\"\n",
        )
        .expect("parses");
        assert_eq!(file.common.listen.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(file.common.max_connections_per_client, Some(3));
        assert_eq!(file.own.root.as_deref(), Some("/srv"));
        assert_eq!(file.own.printers[0].name, "laser");
    }

    #[test]
    fn an_unknown_top_level_key_is_refused_at_its_line() {
        for key in ["bogus_key", "idle_timout_secs"] {
            let err = refusal(&format!("root = \"/srv\"\n\n{key} = 5\n"));
            assert!(err.contains("line 3"), "{err}");
            assert!(err.contains(&format!("unknown key `{key}`")), "{err}");
            assert!(
                err.contains("idle_timeout_secs") && err.contains("root"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_unknown_key_in_a_table_of_either_part_is_refused_at_its_line() {
        let user = format!(
            "root = \"/srv\"\n[[users]]\nname = \"ann\"\ntoken_sha256 = \"{}\"\n\
             role = \"admin\"\nshell = \"/bin/sh\"\n",
            hash_token("t")
        );
        let err = refusal(&user);
        assert!(err.contains("line 6") && err.contains("shell"), "{err}");
        let err = refusal("[[printers]]\nname = \"laser\"\ncolour = true\n");
        assert!(err.contains("line 3") && err.contains("colour"), "{err}");
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn a_zero_handshake_timeout_is_refused() {
        let file: CommonConfig = toml::from_str("handshake_timeout_secs = 0").expect("parses");
        let err = settings("x", "1", "127.0.0.1:1", &CommonArgs::default(), &file)
            .err()
            .expect("refused");
        assert!(err.to_string().contains("handshake_timeout_secs"), "{err}");
    }

    fn user_toml(name: &str) -> String {
        format!(
            "[[users]]\nname = \"{name}\"\ntoken_sha256 = \"{}\"\nrole = \"read-only\"\n",
            hash_token(name)
        )
    }

    fn temp_config(test: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "backroom-daemon-{}-{test}.toml",
            std::process::id()
        ))
    }

    #[test]
    fn a_reload_replaces_the_file_users_and_keeps_the_token_admin() {
        let path = temp_config("replace");
        let args = CommonArgs {
            token: Some("flag-token".into()),
            ..CommonArgs::default()
        };
        let (reload, auth) = reload_from(&path, &user_toml("ann"), args);
        std::fs::write(&path, user_toml("bob")).expect("rewrite");
        reload.run();
        let users = auth.current();
        assert!(users.authenticate(Some("ann")).is_err());
        assert_eq!(users.authenticate(Some("bob")).expect("bob").user, "bob");
        let admin = users.authenticate(Some("flag-token")).expect("admin");
        assert_eq!(admin.role, Role::Admin);
        std::fs::remove_file(&path).expect("clean up");
    }

    #[test]
    fn an_invalid_file_or_no_users_keeps_the_old_users() {
        let path = temp_config("keep");
        let (reload, auth) = reload_from(&path, &user_toml("ann"), CommonArgs::default());
        for broken in [
            "[[users]]\nname = ",
            "",
            "[[users]]\nname = \"x\"\ntoken_sha256 = \"plain\"\nrole = \"admin\"\n",
        ] {
            std::fs::write(&path, broken).expect("rewrite");
            reload.run();
            let users = auth.current();
            assert_eq!(
                users.authenticate(Some("ann")).expect("ann stays").user,
                "ann",
                "{broken:?}"
            );
        }
        std::fs::remove_file(&path).expect("clean up");
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
