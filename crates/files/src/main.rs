//! `backroom-files`: serves a directory over the backroom protocol.

use std::path::PathBuf;

use anyhow::Context;
use backroom_daemon::{CommonArgs, Reload};
use backroom_files::{Config, FileConfig};
use clap::Parser;

/// The backroom file server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The directory to serve; created if it is missing.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Also serve the root over HTTP and WebDAV on this address, as
    /// host:port; off unless given here or as http_listen in the config file.
    #[arg(long, value_name = "ADDR")]
    http: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = backroom_daemon::load_config::<FileConfig>(args.common.config.as_deref())?;
    let settings = backroom_daemon::settings(
        backroom_api::files::SERVICE,
        env!("CARGO_PKG_VERSION"),
        backroom_api::files::DEFAULT_ADDR,
        &args.common,
        &file.common,
    )?;
    let logs = backroom_daemon::init_tracing(settings.log_file.as_deref())?;
    let root = args
        .root
        .or_else(|| file.own.root.clone())
        .context("no root to serve: pass --root DIR or set root in the config file")?;
    let mut config = Config::new(root);
    config.frame = settings.frame;
    file.own.apply(&mut config).map_err(anyhow::Error::msg)?;
    let reload = Reload::new::<FileConfig>(logs, &args.common, &config.frame);
    backroom_daemon::on_hangup(move || reload.run());
    let prepared = backroom_files::prepare(config).await?;
    let listener = backroom_daemon::bind(&settings.listen).await?;
    let http = match args.http.or(file.own.http_listen) {
        Some(addr) => Some(backroom_daemon::bind(&addr).await?),
        None => None,
    };
    let mut ready = vec![(backroom_api::files::SERVICE, listener.local_addr()?)];
    if let Some(http) = &http {
        prepared.check_http(http)?;
        ready.push((backroom_files::http::HTTP_ANNOUNCE, http.local_addr()?));
    }
    prepared
        .serve_with_http(listener, http, backroom_daemon::ready_until_signal(&ready))
        .await?;
    Ok(())
}
