//! The proxy's configuration: the TOML file's keys, their defaults, and the
//! reloadable policy (ACL and proxy users) compiled from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use backroom_daemon::CommonConfig;
use backroom_frame::server::ServerConfig;
use serde::Deserialize;
use tokio::sync::Notify;

use crate::accesslog::{LogFormat, LogTarget};
use crate::acl::{Acl, AclConfig, DEFAULT_SAFE_PORTS, PortRange};
use crate::auth::{AuthConfig, ProxyAuth};
use crate::headers::ForwardedHeaders;

/// Timeouts, in seconds, as the `[timeouts]` table writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// One DNS lookup.
    pub dns: f64,
    /// One TCP connect to an origin.
    pub connect: f64,
    /// From the end of the request body to the origin's response headers.
    pub response_header: f64,
    /// Silence on a response body or a tunnel before it is cut; also how
    /// long an origin may take none of a request body.
    pub idle: f64,
    /// A client's time to send a request head; also closes idle keep-alive
    /// connections and slowloris clients.
    pub client_header: f64,
    /// Silence allowed in the middle of a request body.
    pub client_body: f64,
    /// How long a request with `Expect: 100-continue` waits for the
    /// origin's `100 Continue` (or final answer) before its body is sent
    /// anyway, for origins that ignore the expectation.
    pub expect_continue: f64,
    /// How long an unused upstream connection is kept in the pool.
    pub pool_idle: f64,
    /// How long shutdown waits for requests and tunnels before cutting them.
    pub drain: f64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            dns: 5.0,
            connect: 10.0,
            response_header: 60.0,
            idle: 300.0,
            client_header: 30.0,
            client_body: 60.0,
            expect_continue: 1.0,
            pool_idle: 90.0,
            drain: 10.0,
        }
    }
}

/// Turns a number of seconds from the file into a duration, refusing
/// negative, infinite and absurd values.
pub fn seconds(name: &str, secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(7 * 86_400))
        .ok_or_else(|| {
            format!("timeouts.{name} = {secs}: use a positive number of seconds up to a week")
        })
}

/// The proxy's own keys of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// The admin port's address.
    pub admin: Option<String>,
    pub allow_loopback: bool,
    /// Ports CONNECT may reach, beside 443.
    pub connect_ports: Vec<u16>,
    /// Ports plain `http://` requests may reach.
    pub safe_ports: Vec<PortRange>,
    pub max_client_connections: usize,
    /// Connections one client address may hold open at once.
    pub max_connections_per_client: usize,
    /// The largest request head, start line included, in bytes.
    pub max_header_bytes: usize,
    /// The most header fields in one request.
    pub max_headers: usize,
    /// The pseudonym this proxy writes in `Via`.
    pub via_name: String,
    pub forwarded: ForwardedHeaders,
    /// `off`, `stdout`, or a file path.
    pub access_log: String,
    pub log_format: LogFormat,
    /// Idle upstream connections kept per host.
    pub pool_max_idle_per_host: usize,
    pub timeouts: Timeouts,
    pub acl: AclConfig,
    pub auth: AuthConfig,
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            admin: None,
            allow_loopback: false,
            connect_ports: Vec::new(),
            safe_ports: DEFAULT_SAFE_PORTS.to_vec(),
            max_client_connections: 1024,
            max_connections_per_client: 256,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            via_name: "backroom-proxy".into(),
            forwarded: ForwardedHeaders::None,
            access_log: "off".into(),
            log_format: LogFormat::Squid,
            pool_max_idle_per_host: 1024,
            timeouts: Timeouts::default(),
            acl: AclConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// The whole config file: the keys every daemon shares, and the proxy's,
/// side by side at the top level.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    pub common: CommonConfig,
    pub proxy: ProxySettings,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))
    }

    /// Parses a config file's text; an unknown key anywhere is an error.
    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        let file = backroom_daemon::parse_config::<ProxySettings>(text)?;
        Ok(FileConfig {
            common: file.common,
            proxy: file.own,
        })
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The admin port's frame-protocol settings (auth, TLS, limits).
    pub admin: ServerConfig,
    pub proxy: ProxySettings,
    /// Where `reload` re-reads the ACL and users from.
    pub config_path: Option<PathBuf>,
    /// Notified (for example on SIGHUP) to reopen the access log file.
    pub reopen_log: Arc<Notify>,
    /// Notified (for example on SIGHUP) to re-read the ACL and proxy users
    /// from `config_path`, as the admin `reload` does.
    pub reload: Arc<Notify>,
}

impl Config {
    /// A config with every default, for `admin`.
    pub fn new(admin: ServerConfig) -> Config {
        Config {
            admin,
            proxy: ProxySettings::default(),
            config_path: None,
            reopen_log: Arc::new(Notify::new()),
            reload: Arc::new(Notify::new()),
        }
    }

    /// The ports CONNECT may reach: 443 and the configured ones.
    pub fn connect_ports(&self) -> Vec<u16> {
        let mut ports = vec![443];
        ports.extend(&self.proxy.connect_ports);
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub fn log_target(&self) -> LogTarget {
        LogTarget::parse(&self.proxy.access_log)
    }
}

/// What a reload swaps: who may use the proxy, and where they may go.
#[derive(Debug)]
pub struct Policy {
    pub acl: Acl,
    pub auth: Arc<ProxyAuth>,
}

impl Policy {
    pub fn new(acl: &AclConfig, auth: &AuthConfig) -> Result<Policy, String> {
        Ok(Policy {
            acl: Acl::new(acl)?,
            auth: Arc::new(ProxyAuth::new(auth)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_with_the_shared_keys() {
        let file = FileConfig::parse(
            r#"
            listen = "127.0.0.1:3128"
            admin = "127.0.0.1:7704"
            connect_ports = [8443]
            forwarded = "x-forwarded-for"
            access_log = "stdout"
            log_format = "combined"
            [timeouts]
            connect = 2.5
            [acl]
            client_allow = ["10.0.0.0/8"]
            default = "deny"
            [[acl.rules]]
            name = "web"
            action = "allow"
            ports = [80, 443]
            [auth]
            realm = "office"
            "#,
        )
        .expect("parses");
        assert_eq!(file.common.listen.as_deref(), Some("127.0.0.1:3128"));
        assert_eq!(file.proxy.admin.as_deref(), Some("127.0.0.1:7704"));
        assert_eq!(file.proxy.forwarded, ForwardedHeaders::XForwardedFor);
        assert_eq!(file.proxy.log_format, LogFormat::Combined);
        assert_eq!(file.proxy.timeouts.connect, 2.5);
        assert_eq!(file.proxy.timeouts.dns, 5.0);
        assert_eq!(file.proxy.acl.rules.len(), 1);
        Policy::new(&file.proxy.acl, &file.proxy.auth).expect("policy");
        let mut config = Config::new(ServerConfig::new("proxy", "0"));
        config.proxy = file.proxy;
        assert_eq!(config.connect_ports(), [443, 8443]);
        assert_eq!(config.log_target(), LogTarget::Stdout);
    }

    #[test]
    fn an_unknown_key_anywhere_is_refused_at_its_line() {
        for (text, key, line) in [
            (
                "admin = \"127.0.0.1:7704\"\nbogus_key = 1\n",
                "bogus_key",
                2,
            ),
            (
                "[timeouts]\nconnect = 2\nidle_timout = 5\n",
                "idle_timout",
                3,
            ),
            (
                "[[users]]\nname = \"ann\"\ntoken_sha256 = \"sha256:00\"\nrole = \"admin\"\nx = 1\n",
                "x",
                5,
            ),
        ] {
            let err = FileConfig::parse(text).expect_err("refused").to_string();
            assert!(err.contains(key), "{err}");
            assert!(err.contains(&format!("line {line}")), "{err}");
        }
    }

    #[test]
    fn nonsense_timeouts_are_refused() {
        assert!(seconds("idle", -1.0).is_err());
        assert!(seconds("idle", 0.0).is_err());
        assert!(seconds("idle", f64::NAN).is_err());
        assert!(seconds("idle", 1e12).is_err());
        assert_eq!(
            seconds("idle", 0.25).expect("ok"),
            Duration::from_millis(250)
        );
    }
}
