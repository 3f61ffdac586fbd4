//! `backroom-print`: the print server's binary.

use std::path::PathBuf;

use anyhow::Context;
use backroom_daemon::{CommonArgs, Reload};
use backroom_print::{Config, FileConfig, PrinterConfig};
use clap::Parser;

/// The backroom print server: a durable print queue with priority buffering.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The spool folder (queue database and documents); created if missing.
    #[arg(long)]
    spool: Option<PathBuf>,
    /// A printer, as NAME=KIND:ARG with KIND one of file, socket, command,
    /// sim. Repeat for more printers.
    #[arg(long = "printer", value_name = "NAME=KIND:ARG")]
    printers: Vec<PrinterConfig>,
    /// Also serve IPP (desktops, phones, CUPS's lp) on this address, as
    /// host:port; off unless given here or as ipp_listen in the config file.
    #[arg(long, value_name = "ADDR")]
    ipp: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = backroom_daemon::load_config::<FileConfig>(args.common.config.as_deref())?;
    let settings = backroom_daemon::settings(
        backroom_api::print::SERVICE,
        env!("CARGO_PKG_VERSION"),
        backroom_api::print::DEFAULT_ADDR,
        &args.common,
        &file.common,
    )?;
    let logs = backroom_daemon::init_tracing(settings.log_file.as_deref())?;
    let spool = args
        .spool
        .or_else(|| file.own.spool.clone())
        .context("no spool folder: pass --spool DIR or set spool in the config file")?;
    let mut config = Config::new(spool);
    config.frame = settings.frame;
    config.printers = args.printers;
    file.own.apply(&mut config).map_err(anyhow::Error::msg)?;
    let reload = Reload::new::<FileConfig>(logs, &args.common, &config.frame);
    backroom_daemon::on_hangup(move || reload.run());
    let prepared = backroom_print::prepare(config).await?;
    let listener = backroom_daemon::bind(&settings.listen).await?;
    let ipp = match args.ipp.or(file.own.ipp_listen) {
        Some(addr) => Some(backroom_daemon::bind(&addr).await?),
        None => None,
    };
    let mut ready = vec![(backroom_api::print::SERVICE, listener.local_addr()?)];
    if let Some(ipp) = &ipp {
        ready.push((backroom_print::IPP_ANNOUNCE, ipp.local_addr()?));
    }
    prepared
        .serve_with_ipp(listener, ipp, backroom_daemon::ready_until_signal(&ready))
        .await?;
    Ok(())
}
