//! Where the servers are and how to reach them: flags over a config file
//! over the loopback defaults, and the config file's format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use backroom_frame::client::ClientConfig;
use serde::Deserialize;

use crate::keymap::{KeySpec, Keymap};
use crate::server::Server;

/// The config file, `~/.config/backroom/config.toml` or `--config FILE`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The token for every server that has none of its own.
    pub token: Option<String>,
    pub files: Option<ServerEntry>,
    pub print: Option<ServerEntry>,
    pub db: Option<ServerEntry>,
    /// The proxy's admin address, not its HTTP port.
    pub proxy: Option<ServerEntry>,
    #[serde(default)]
    pub keys: BTreeMap<String, KeySpec>,
    /// Turn off every key that changes something, as `--read-only` does.
    #[serde(default)]
    pub read_only: bool,
}

/// One server's table in the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// `host:port`.
    pub addr: Option<String>,
    pub token: Option<String>,
    /// A PEM file of CA certificates: connect over TLS, trusting these.
    /// A relative path is taken from the config file's folder.
    pub tls_ca: Option<PathBuf>,
    /// Only under `[db]`: the database the DB tab and `backroom db` use
    /// (`main` by default).
    pub database: Option<String>,
    /// The server's other listeners, by name (`http`, `ipp`, `pg`), for the
    /// Overview's servers view; the proxy's `http` is the port browsers
    /// and `curl -x` use.
    #[serde(default)]
    pub faces: BTreeMap<String, String>,
}

impl FileConfig {
    fn entry(&self, server: Server) -> Option<&ServerEntry> {
        match server {
            Server::Files => self.files.as_ref(),
            Server::Print => self.print.as_ref(),
            Server::Db => self.db.as_ref(),
            Server::Proxy => self.proxy.as_ref(),
        }
    }
}

/// What the command line says, before the file and defaults fill the gaps.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub files: Option<String>,
    pub print: Option<String>,
    pub db: Option<String>,
    pub proxy_admin: Option<String>,
    /// The token for every server; it beats the file's tokens.
    pub token: Option<String>,
    /// Read this file instead of the one in the home folder.
    pub config: Option<PathBuf>,
}

impl Flags {
    fn addr(&self, server: Server) -> Option<&String> {
        match server {
            Server::Files => self.files.as_ref(),
            Server::Print => self.print.as_ref(),
            Server::Db => self.db.as_ref(),
            Server::Proxy => self.proxy_admin.as_ref(),
        }
    }
}

/// How to reach one server, resolved.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub server: Server,
    /// How the client connects: address, service name, token and TLS.
    pub client: ClientConfig,
    /// Where the TLS roots came from, to show on screen.
    pub tls_ca: Option<PathBuf>,
    /// The database to use, for the database server; the server's `main`
    /// when `None`.
    pub database: Option<String>,
    /// The server's other listeners, by name, from the config file.
    pub faces: BTreeMap<String, String>,
}

/// Everything the dashboard needs to start, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// One per server asked for, in the order of [`Server::ALL`].
    pub endpoints: Vec<Endpoint>,
    pub keymap: Keymap,
    /// The file the settings came from, if any.
    pub source: Option<PathBuf>,
    /// From the file's `read_only`; `--read-only` can only turn it on.
    pub read_only: bool,
}

/// The per-user config file: `$XDG_CONFIG_HOME/backroom/config.toml`, else
/// `~/.config/backroom/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".config"))
        })?;
    Some(base.join("backroom").join("config.toml"))
}

/// Parses a config file's text. `path` is only for messages.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<FileConfig> {
    toml::from_str(text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Merges the flags, the config file and the defaults, for the `servers` a
/// command talks to: the others get no endpoint, so that their TLS CA files
/// are never read.
///
/// `--config FILE` must exist; the user's file is read only when there is no
/// `--config`, and may be missing.
pub fn resolve(
    flags: &Flags,
    user_file: Option<&Path>,
    servers: &[Server],
) -> anyhow::Result<Settings> {
    let (file, source) = match (&flags.config, user_file) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            (parse(&text, path)?, Some(path.clone()))
        }
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => (parse(&text, path)?, Some(path.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (FileConfig::default(), None),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read config file {}", path.display()));
            }
        },
        (None, None) => (FileConfig::default(), None),
    };
    let base = source
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let endpoints = Server::ALL
        .into_iter()
        .filter(|server| servers.contains(server))
        .map(|server| endpoint(server, flags, &file, &base))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keymap = Keymap::with_overrides(&file.keys).map_err(|e| {
        let place = source
            .as_deref()
            .map_or_else(String::new, |p| format!(" in {}", p.display()));
        anyhow::anyhow!("{e}{place}")
    })?;
    Ok(Settings {
        endpoints,
        keymap,
        source,
        read_only: file.read_only,
    })
}

fn endpoint(
    server: Server,
    flags: &Flags,
    file: &FileConfig,
    base: &Path,
) -> anyhow::Result<Endpoint> {
    let entry = file.entry(server).cloned().unwrap_or_default();
    let addr = flags
        .addr(server)
        .cloned()
        .or(entry.addr)
        .unwrap_or_else(|| server.default_addr().to_owned());
    let mut client = ClientConfig::new(addr, server.name());
    client.token = flags
        .token
        .clone()
        .or(entry.token)
        .or_else(|| file.token.clone());
    client.client_name = format!("backroom-dash/{}", env!("CARGO_PKG_VERSION"));
    // The dashboard retries on its own schedule, so one attempt is one try,
    // and a server that accepts but never answers costs little.
    client.retries = 0;
    client.connect_timeout = Duration::from_secs(3);
    if entry.database.is_some() && server != Server::Db {
        anyhow::bail!(
            "[{}] database: only the [db] table names a database",
            server.name()
        );
    }
    let tls_ca = entry.tls_ca.map(|ca| base.join(ca));
    if let Some(ca) = &tls_ca {
        let tls = backroom_frame::tls::client_config(ca)
            .map_err(|e| anyhow::anyhow!("[{}] tls_ca: {e}", server.name()))?;
        client.tls = Some(tls);
    }
    Ok(Endpoint {
        server,
        client,
        tls_ca,
        database: entry.database,
        faces: entry.faces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        path
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn addrs(settings: &Settings) -> Vec<&str> {
        settings
            .endpoints
            .iter()
            .map(|e| e.client.addr.as_str())
            .collect()
    }

    #[test]
    fn with_nothing_given_the_loopback_defaults_apply() {
        let settings = resolve(&Flags::default(), None, &Server::ALL).expect("defaults");
        assert_eq!(
            addrs(&settings),
            [
                "127.0.0.1:7701",
                "127.0.0.1:7702",
                "127.0.0.1:7703",
                "127.0.0.1:7704"
            ]
        );
        let services: Vec<&str> = settings
            .endpoints
            .iter()
            .map(|e| e.client.service.as_str())
            .collect();
        assert_eq!(services, ["files", "print", "db", "proxy"]);
        assert!(
            settings
                .endpoints
                .iter()
                .all(|e| e.client.token.is_none() && e.client.tls.is_none())
        );
    }

    #[test]
    fn a_missing_user_file_is_no_error_but_a_missing_config_flag_file_is() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let absent = dir.join("absent.toml");
        let settings = resolve(&Flags::default(), Some(&absent), &Server::ALL).expect("optional");
        assert!(settings.source.is_none());
        let flags = Flags {
            config: Some(absent.clone()),
            ..Flags::default()
        };
        let err = resolve(&flags, None, &Server::ALL).expect_err("required");
        assert!(format!("{err:#}").contains("absent.toml"), "{err:#}");
    }

    #[test]
    fn flags_beat_the_config_flag_file_which_beats_the_user_file() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let user = write(
            dir,
            "user.toml",
            "[files]\naddr = \"10.0.0.1:1\"\n[print]\naddr = \"10.0.0.1:2\"\n[db]\naddr = \"10.0.0.1:3\"\n",
        );
        let chosen = write(
            dir,
            "chosen.toml",
            "token = \"shared\"\n[files]\naddr = \"files.lan:7701\"\n[print]\naddr = \"print.lan:7702\"\ntoken = \"p\"\n",
        );
        let from_user = resolve(&Flags::default(), Some(&user), &Server::ALL).expect("user file");
        assert_eq!(
            addrs(&from_user)[..3],
            ["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"]
        );

        let flags = Flags {
            files: Some("127.0.0.1:9".into()),
            config: Some(chosen),
            ..Flags::default()
        };
        let settings = resolve(&flags, Some(&user), &Server::ALL).expect("chosen file");
        assert_eq!(
            addrs(&settings),
            [
                "127.0.0.1:9",
                "print.lan:7702",
                "127.0.0.1:7703",
                "127.0.0.1:7704"
            ],
            "the user file is not read when --config is given"
        );
        let tokens: Vec<Option<&str>> = settings
            .endpoints
            .iter()
            .map(|e| e.client.token.as_deref())
            .collect();
        assert_eq!(
            tokens,
            [Some("shared"), Some("p"), Some("shared"), Some("shared")]
        );

        let flags = Flags {
            token: Some("flag".into()),
            ..flags
        };
        let settings = resolve(&flags, None, &Server::ALL).expect("token flag");
        assert!(
            settings
                .endpoints
                .iter()
                .all(|e| e.client.token.as_deref() == Some("flag"))
        );
    }

    #[test]
    fn the_proxy_admin_flag_sets_the_proxy_address() {
        let flags = Flags {
            proxy_admin: Some("127.0.0.1:8888".into()),
            ..Flags::default()
        };
        let settings = resolve(&flags, None, &Server::ALL).expect("flag");
        assert_eq!(addrs(&settings)[3], "127.0.0.1:8888");
    }

    #[test]
    fn read_only_comes_from_the_file_and_is_off_by_default() {
        let dir = temp_dir();
        let on = write(dir.path(), "on.toml", "read_only = true\n");
        let off = write(dir.path(), "off.toml", "");
        for (path, expected) in [(on, true), (off, false)] {
            let flags = Flags {
                config: Some(path),
                ..Flags::default()
            };
            let settings = resolve(&flags, None, &Server::ALL).expect("resolves");
            assert_eq!(settings.read_only, expected);
        }
    }

    #[test]
    fn keys_from_the_file_remap_actions() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let path = write(
            dir,
            "keys.toml",
            "[keys]\nquit = \"z\"\nhelp = [\"f1\", \"?\"]\n",
        );
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let settings = resolve(&flags, None, &Server::ALL).expect("keys");
        assert_eq!(settings.keymap.label(crate::keymap::Action::Quit), "z");
        assert_eq!(settings.keymap.label(crate::keymap::Action::Help), "f1/?");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_file() {
        let tmp = temp_dir();
        let dir = tmp.path();
        for (name, text, needle) in [
            ("typo.toml", "[files]\nadress = \"x\"\n", "adress"),
            ("clash.toml", "[keys]\nhelp = \"q\"\n", "clash.toml"),
            ("server.toml", "[gopher]\naddr = \"x\"\n", "gopher"),
        ] {
            let flags = Flags {
                config: Some(write(dir, name, text)),
                ..Flags::default()
            };
            let err = resolve(&flags, None, &Server::ALL).expect_err(name);
            let message = format!("{err:#}");
            assert!(message.contains(needle), "{name}: {message}");
        }
    }

    #[test]
    fn only_the_db_table_names_a_database() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let good = write(dir, "db.toml", "[db]\ndatabase = \"holidays\"\n");
        let flags = Flags {
            config: Some(good),
            ..Flags::default()
        };
        let settings = resolve(&flags, None, &Server::ALL).expect("valid");
        let databases: Vec<Option<&str>> = settings
            .endpoints
            .iter()
            .map(|e| e.database.as_deref())
            .collect();
        assert_eq!(databases, [None, None, Some("holidays"), None]);

        let bad = write(dir, "files.toml", "[files]\ndatabase = \"holidays\"\n");
        let flags = Flags {
            config: Some(bad),
            ..Flags::default()
        };
        let err = resolve(&flags, None, &Server::ALL).expect_err("refused");
        assert!(format!("{err:#}").contains("[files] database"), "{err:#}");
    }

    #[test]
    fn only_the_servers_a_command_uses_have_their_tls_ca_read() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let path = write(dir, "tls.toml", "[files]\ntls_ca = \"no-such-ca.pem\"\n");
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let db = resolve(&flags, None, &[Server::Db]).expect("the files CA is not read");
        let servers: Vec<Server> = db.endpoints.iter().map(|e| e.server).collect();
        assert_eq!(servers, [Server::Db]);
        let err = resolve(&flags, None, &Server::ALL).expect_err("the dashboard reads it");
        assert!(format!("{err:#}").contains("[files] tls_ca"), "{err:#}");
    }

    #[test]
    fn an_unreadable_tls_ca_is_an_error_naming_the_server() {
        let tmp = temp_dir();
        let dir = tmp.path();
        let path = write(dir, "tls.toml", "[db]\ntls_ca = \"no-such-ca.pem\"\n");
        let flags = Flags {
            config: Some(path),
            ..Flags::default()
        };
        let err = resolve(&flags, None, &Server::ALL).expect_err("no CA file");
        let message = format!("{err:#}");
        assert!(
            message.contains("[db]") && message.contains("no-such-ca.pem"),
            "{message}"
        );
        assert!(
            message.contains(&dir.display().to_string()),
            "relative to the file: {message}"
        );
    }
}
