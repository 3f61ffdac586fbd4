//! `backroom-db`: serves SQLite databases over the backroom protocol.

use std::path::PathBuf;

use anyhow::Context;
use backroom_daemon::{CommonArgs, Reload};
use backroom_db::{Config, FileConfig};
use clap::Parser;

/// The backroom database server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The directory of the database files (`<name>.db`); created if missing.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Also speak the PostgreSQL protocol on this address (psql, drivers,
    /// pgbench); off unless given here or as `pg_listen` in the config.
    #[arg(long, value_name = "ADDR")]
    pg: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let file = backroom_daemon::load_config::<FileConfig>(args.common.config.as_deref())?;
    let settings = backroom_daemon::settings(
        backroom_api::db::SERVICE,
        env!("CARGO_PKG_VERSION"),
        backroom_api::db::DEFAULT_ADDR,
        &args.common,
        &file.common,
    )?;
    let logs = backroom_daemon::init_tracing(settings.log_file.as_deref())?;
    let data = args
        .data
        .or_else(|| file.own.data.clone())
        .context("no data directory: pass --data DIR or set data in the config file")?;
    let mut config = Config::new(data);
    config.frame = settings.frame;
    file.own.apply(&mut config).map_err(anyhow::Error::msg)?;
    let reload = Reload::new::<FileConfig>(logs, &args.common, &config.frame);
    backroom_daemon::on_hangup(move || reload.run());
    let listener = backroom_daemon::bind(&settings.listen).await?;
    let pg = match args.pg.or_else(|| file.own.pg_listen.clone()) {
        Some(addr) => {
            let pg = backroom_daemon::bind(&addr).await?;
            let auth = config.frame.auth.current();
            auth.check_bind(pg.local_addr()?, config.frame.insecure)
                .map_err(anyhow::Error::msg)?;
            Some(pg)
        }
        None => None,
    };
    // The readiness lines go out once the default database is open: `run`
    // opens it before it polls this future.
    let mut ready = vec![(backroom_api::db::SERVICE, listener.local_addr()?)];
    if let Some(pg) = &pg {
        ready.push((backroom_api::db::PG_FACE, pg.local_addr()?));
    }
    backroom_db::run_with_pg(
        listener,
        pg,
        config,
        backroom_daemon::ready_until_signal(&ready),
    )
    .await?;
    Ok(())
}
