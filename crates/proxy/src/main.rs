//! The `backroom-proxy` binary: flags, config file, tracing, listeners and
//! signals around `backroom_proxy::run`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use backroom_daemon::logs::Logs;
use backroom_daemon::{CommonArgs, Reload};
use backroom_proxy::config::{Config, FileConfig, ProxySettings};
use clap::Parser;

/// An HTTP forward proxy with CONNECT, ACLs, proxy auth and an access log.
#[derive(Debug, Parser)]
#[command(name = "backroom-proxy", version)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// The admin port (frame protocol), as host:port.
    #[arg(long)]
    admin: Option<String>,
    /// Allow destinations on loopback (127.0.0.0/8, ::1).
    #[arg(long)]
    allow_loopback: bool,
    /// Another port CONNECT may reach, beside 443; repeat for more.
    #[arg(long = "connect-port", value_name = "PORT")]
    connect_ports: Vec<u16>,
    /// Read a password from stdin, print its argon2 hash for the config
    /// file's [[auth.users]], and exit.
    #[arg(long, exclusive = true)]
    hash_password: bool,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:3128";
const DEFAULT_ADMIN: &str = "127.0.0.1:7704";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.hash_password {
        return hash_password();
    }
    let file: FileConfig = match &args.common.config {
        Some(path) => FileConfig::load(path).map_err(anyhow::Error::msg)?,
        None => FileConfig::default(),
    };
    let settings = backroom_daemon::settings(
        "proxy",
        env!("CARGO_PKG_VERSION"),
        DEFAULT_LISTEN,
        &args.common,
        &file.common,
    )?;
    let logs = backroom_daemon::init_tracing(settings.log_file.as_deref())?;
    let mut config = Config::new(settings.frame);
    config.proxy = file.proxy;
    config.config_path = args.common.config.clone().map(absolute);
    config.proxy.allow_loopback |= args.allow_loopback;
    config.proxy.connect_ports.extend(args.connect_ports);
    let admin_addr = args
        .admin
        .clone()
        .or_else(|| config.proxy.admin.clone())
        .unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
    on_hangup(logs, &args.common, &config);

    let proxy = backroom_daemon::bind(&settings.listen).await?;
    let admin = backroom_daemon::bind(&admin_addr).await?;
    // `run` polls this future once its start-up checks have passed.
    let ready = [
        ("proxy", proxy.local_addr()?),
        ("admin", admin.local_addr()?),
    ];
    backroom_proxy::run(
        proxy,
        admin,
        config,
        backroom_daemon::ready_until_signal(&ready),
    )
    .await?;
    Ok(())
}

/// A reload must find the file even if the working directory changes.
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// SIGHUP reopens the daemon log and reloads the admin port's users, then
/// has the proxy reopen its access log and reload its ACL and proxy users.
fn on_hangup(logs: Logs, common: &CommonArgs, config: &Config) {
    let reload = Reload::new::<ProxySettings>(logs, common, &config.admin);
    let reopen_access_log = config.reopen_log.clone();
    let reload_policy = config.reload.clone();
    backroom_daemon::on_hangup(move || {
        reload.run();
        reopen_access_log.notify_one();
        reload_policy.notify_one();
    });
}

fn hash_password() -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "the password on stdin is empty");
    let mut salt = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .context("cannot read random bytes for the salt")?;
    let hash = backroom_proxy::auth::hash_password(password, &salt).map_err(anyhow::Error::msg)?;
    #[allow(clippy::print_stdout)]
    {
        println!("{hash}");
    }
    Ok(())
}
