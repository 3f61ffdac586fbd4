//! `backroom`: opens the dashboard over the suite's four servers.

use std::path::PathBuf;

use anyhow::Context;
use backroom_dash::app::{App, Clock};
use backroom_dash::config::{self, Flags, Settings};
use backroom_dash::conn::{self, Timing};
use backroom_dash::server::Server;
use backroom_dash::tui;
use clap::{Parser, Subcommand};
use crossterm::event::EventStream;
use tokio::sync::mpsc;

/// The backroom suite's terminal dashboard.
#[derive(Debug, Parser)]
#[command(name = "backroom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The file server, as host:port.
    #[arg(long, global = true, value_name = "ADDR")]
    files: Option<String>,
    /// The print server, as host:port.
    #[arg(long, global = true, value_name = "ADDR")]
    print: Option<String>,
    /// The database server, as host:port.
    #[arg(long, global = true, value_name = "ADDR")]
    db: Option<String>,
    /// The proxy's admin address (not its HTTP port), as host:port.
    #[arg(long, global = true, value_name = "ADDR")]
    proxy_admin: Option<String>,
    /// The token for every server; overrides the config file's tokens.
    #[arg(long, global = true, env = "BACKROOM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML config file to read instead of ~/.config/backroom/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Turn off every dashboard key that changes something on a server.
    #[arg(long, global = true)]
    read_only: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the dashboard (also what `backroom` alone does).
    Dash,
    /// The database server: run SQL, a shell, the schema, backups, changes.
    Db(backroom_dash::cli::db::Args),
    /// The file server: list, transfer, search and watch files.
    Files(backroom_dash::cli::files::Args),
    /// The print queue: submit, list and manage jobs and printers.
    Print(backroom_dash::cli::print::Args),
    /// The proxy's admin port: stats, the access log, tunnels, reload.
    Proxy(backroom_dash::cli::proxy::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let flags = Flags {
        files: cli.files,
        print: cli.print,
        db: cli.db,
        proxy_admin: cli.proxy_admin,
        token: cli.token,
        config: cli.config,
    };
    // Settle the config before touching the terminal, so a mistake in it is
    // printed plainly instead of behind an alternate screen. A command
    // resolves only the server it talks to; `backroom db` does so itself.
    let servers: &[Server] = match &cli.command {
        None | Some(Command::Dash) => &Server::ALL,
        Some(Command::Files(_)) => &[Server::Files],
        Some(Command::Print(_)) => &[Server::Print],
        Some(Command::Proxy(_)) => &[Server::Proxy],
        Some(Command::Db(_)) => &[],
    };
    let settings = config::resolve(&flags, config::user_config_path().as_deref(), servers)?;
    match cli.command {
        None | Some(Command::Dash) => dashboard(Settings {
            read_only: settings.read_only || cli.read_only,
            ..settings
        }),
        Some(Command::Files(args)) => {
            std::process::exit(backroom_dash::cli::files::main(args, &settings))
        }
        Some(Command::Db(args)) => backroom_dash::cli::db::run(args, &flags),
        Some(Command::Print(args)) => backroom_dash::cli::print::run(args, &settings),
        Some(Command::Proxy(args)) => backroom_dash::cli::proxy::run(args, &settings),
    }
}

/// Runs the dashboard until the user quits, with the terminal restored
/// afterwards whatever happened.
fn dashboard(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (updates_tx, updates) = mpsc::channel(256);
        let _connections = conn::spawn_all(&settings.endpoints, Timing::default(), updates_tx);
        let mut app = App::new(&settings.endpoints, settings.keymap, Clock::now());
        app.read_only = settings.read_only;
        let mut terminal = match ratatui::try_init() {
            Ok(terminal) => terminal,
            Err(e) => {
                // Raw mode may be on even though the alternate screen failed.
                ratatui::restore();
                return Err(anyhow::Error::new(e).context("cannot take over the terminal"));
            }
        };
        let result = tui::run(&mut terminal, &mut app, EventStream::new(), updates).await;
        ratatui::restore();
        result
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_flags_work_before_and_after_dash() {
        let before =
            Cli::try_parse_from(["backroom", "--files", "h:1", "dash", "--proxy-admin", "h:4"])
                .expect("parses");
        assert!(matches!(before.command, Some(Command::Dash)));
        assert_eq!(before.files.as_deref(), Some("h:1"));
        assert_eq!(before.proxy_admin.as_deref(), Some("h:4"));
        let bare = Cli::try_parse_from(["backroom"]).expect("parses");
        assert!(bare.command.is_none());
    }
}
