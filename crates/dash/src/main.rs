//! `backroom`: opens the dashboard over the suite's four servers.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use backroom_dash::app::{App, Clock};
use backroom_dash::cli;
use backroom_dash::config::{self, Flags, Settings};
use backroom_dash::driver;
use backroom_dash::server::Server;
use backroom_dash::tui;
use backroom_dash::update::Timing;
use clap::{Parser, Subcommand};
use crossterm::event::EventStream;
use tokio::sync::mpsc;

/// The backroom suite's terminal dashboard and command line.
#[derive(Debug, Parser)]
#[command(name = "backroom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    dash: DashFlags,
    /// The token for every server; overrides the config file's tokens.
    #[arg(long, global = true, env = "BACKROOM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML config file to read instead of ~/.config/backroom/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Where the servers are, and whether the dashboard may change anything.
/// They come before a service's subcommand (`backroom --print ADDR print
/// jobs`), whose own `--addr` does the same; they are not repeated in every
/// subcommand's help.
#[derive(Debug, Default, clap::Args)]
struct DashFlags {
    /// The file server, as host:port.
    #[arg(long, value_name = "ADDR")]
    files: Option<String>,
    /// The print server, as host:port.
    #[arg(long, value_name = "ADDR")]
    print: Option<String>,
    /// The database server, as host:port.
    // Its own id: `backroom db --db NAME` is a database, and clap shares
    // the values of arguments with one id between a command and its
    // subcommands.
    #[arg(long = "db", id = "db_addr", value_name = "ADDR")]
    db: Option<String>,
    /// The proxy's admin address (not its HTTP port), as host:port.
    #[arg(long, value_name = "ADDR")]
    proxy_admin: Option<String>,
    /// Turn off every dashboard key that changes something on a server.
    #[arg(long)]
    read_only: bool,
}

impl DashFlags {
    /// `backroom --files A dash --print B`: each flag from wherever it was
    /// given, the later place winning.
    fn or(self, earlier: DashFlags) -> DashFlags {
        DashFlags {
            files: self.files.or(earlier.files),
            print: self.print.or(earlier.print),
            db: self.db.or(earlier.db),
            proxy_admin: self.proxy_admin.or(earlier.proxy_admin),
            read_only: self.read_only || earlier.read_only,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the dashboard (also what `backroom` alone does).
    Dash(DashFlags),
    /// The database server: run SQL, a shell, the schema, backups, changes.
    Db(backroom_dash::db::cli::Args),
    /// The file server: list, transfer, search and watch files.
    Files(backroom_dash::files::cli::Args),
    /// The print queue: submit, list and manage jobs and printers.
    Print(backroom_dash::print::cli::Args),
    /// The proxy's admin port: stats, the access log, tunnels, reload.
    Proxy(backroom_dash::proxy::cli::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (command, dash) = match cli.command {
        Some(Command::Dash(flags)) => (None, flags.or(cli.dash)),
        command => (command, cli.dash),
    };
    let flags = Flags {
        files: dash.files,
        print: dash.print,
        db: dash.db,
        proxy_admin: dash.proxy_admin,
        token: cli.token,
        config: cli.config,
    };
    // Settle the config before touching the terminal, so a mistake in it is
    // printed plainly instead of behind an alternate screen. A command
    // resolves only the server it talks to.
    let (server, servers): (&str, &[Server]) = match &command {
        None | Some(Command::Dash(_)) => ("", &Server::ALL),
        Some(Command::Files(_)) => ("files", &[Server::Files]),
        Some(Command::Print(_)) => ("print", &[Server::Print]),
        Some(Command::Proxy(_)) => ("proxy", &[Server::Proxy]),
        Some(Command::Db(_)) => ("db", &[Server::Db]),
    };
    let settings = match config::resolve(&flags, config::user_config_path().as_deref(), servers) {
        Ok(settings) => settings,
        Err(error) => return cli::fail(server, &error),
    };
    match command {
        None | Some(Command::Dash(_)) => {
            let settings = Settings {
                read_only: settings.read_only || dash.read_only,
                ..settings
            };
            match dashboard(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => cli::fail("", &error),
            }
        }
        Some(Command::Files(args)) => backroom_dash::files::cli::run(args, &settings),
        Some(Command::Db(args)) => backroom_dash::db::cli::run(args, &settings),
        Some(Command::Print(args)) => backroom_dash::print::cli::run(args, &settings),
        Some(Command::Proxy(args)) => backroom_dash::proxy::cli::run(args, &settings),
    }
}

/// Runs the dashboard until the user quits, with the terminal restored
/// afterwards whatever happened.
fn dashboard(settings: Settings) -> anyhow::Result<()> {
    // Without a terminal there is nothing to draw on, and taking one over
    // would only leave escape codes in a pipe or a log.
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the dashboard needs a terminal; for scripts, use a subcommand (backroom --help)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (updates_tx, updates) = mpsc::channel(256);
        let _connections = driver::spawn_all(&settings.endpoints, Timing::default(), updates_tx);
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
        let Some(Command::Dash(after)) = before.command else {
            panic!("dash parsed as {:?}", before.command);
        };
        assert_eq!(before.dash.files.as_deref(), Some("h:1"));
        assert_eq!(after.proxy_admin.as_deref(), Some("h:4"));
        let bare = Cli::try_parse_from(["backroom"]).expect("parses");
        assert!(bare.command.is_none());
    }
}
