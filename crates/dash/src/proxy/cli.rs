//! `backroom proxy ...`: the proxy's admin port from the command line —
//! statistics, the access log (recent or followed), tunnels, and reload.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::anyhow;
use backroom_api::proxy::{AccessRecord, ProxyClient, Reloaded, Stats, TunnelInfo};
use clap::Subcommand;
use serde::Serialize;

use crate::cli;
use crate::config::Settings;
use crate::server::Server;
use crate::units;

/// `backroom proxy [--addr ADMIN_ADDR] [--json] <command>`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The proxy's admin address (not its HTTP port), as host:port; beats
    /// --proxy-admin and the config file.
    #[arg(long, global = true, value_name = "ADMIN_ADDR")]
    pub addr: Option<String>,
    /// Print JSON instead of text: one object, or one per line for `log`.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ProxyCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Requests by status class, bytes, active connections and tunnels,
    /// rates, and the busiest hosts.
    Stats,
    /// The latest access-log records; with --follow, then every new one.
    Log {
        /// Keep printing records as requests end, until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// The open CONNECT tunnels.
    Tunnels,
    /// Close one CONNECT tunnel, by the id `tunnels` shows.
    CloseTunnel {
        /// The tunnel's id.
        id: u64,
    },
    /// Re-read the ACL and users from the proxy's config file.
    Reload,
}

/// Runs one command against the proxy's admin port to its end.
pub fn run(args: Args, settings: &Settings) -> ExitCode {
    cli::run(Server::Proxy, 1, |runtime| execute(runtime, args, settings))
}

fn execute(
    runtime: &tokio::runtime::Runtime,
    args: Args,
    settings: &Settings,
) -> anyhow::Result<()> {
    let config = cli::endpoint(settings, Server::Proxy, args.addr.as_deref())?.client;
    runtime.block_on(async {
        let client = ProxyClient::connect(&config)
            .await
            .map_err(|e| cli::connect_error(Server::Proxy, &config, &e))?;
        let mut out = Out::new(args.json);
        let result = match args.command {
            ProxyCommand::Stats => stats(&client, &mut out).await,
            ProxyCommand::Log { follow } => {
                if follow && std::io::stderr().is_terminal() {
                    eprintln!(
                        "following the access log at {}; Ctrl-C to stop",
                        config.addr
                    );
                }
                log(&client, &mut out, follow).await
            }
            ProxyCommand::Tunnels => tunnels(&client, &mut out).await,
            ProxyCommand::CloseTunnel { id } => close_tunnel(&client, &mut out, id).await,
            ProxyCommand::Reload => reload(&client, &mut out).await,
        };
        match result {
            // A reader that went away (`| head`) is the end, not an error.
            Err(Failure::Output) => Ok(()),
            Err(Failure::Call(e)) => Err(e),
            Ok(()) => Ok(()),
        }
    })
}

/// Why a command stopped.
enum Failure {
    /// Whoever reads standard output has gone: stop quietly.
    Output,
    /// The proxy refused or the connection failed: one line for the user.
    Call(anyhow::Error),
}

impl From<backroom_frame::Error> for Failure {
    fn from(e: backroom_frame::Error) -> Failure {
        Failure::Call(anyhow!("{e}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Failure::Output;
        }
        Failure::Call(anyhow!("cannot write to standard output: {e}"))
    }
}

/// Standard output, as text or as JSON.
struct Out {
    json: bool,
    stdout: std::io::Stdout,
}

impl Out {
    fn new(json: bool) -> Out {
        Out {
            json,
            stdout: std::io::stdout(),
        }
    }

    fn line(&mut self, text: &str) -> Result<(), Failure> {
        let mut lock = self.stdout.lock();
        writeln!(lock, "{text}")?;
        // `log --follow` must show each record as it comes, even in a pipe.
        lock.flush()?;
        Ok(())
    }

    fn json(&mut self, value: &impl Serialize) -> Result<(), Failure> {
        let text = serde_json::to_string(value)
            .map_err(|e| Failure::Call(anyhow!("cannot render JSON: {e}")))?;
        self.line(&text)
    }
}

async fn stats(client: &ProxyClient, out: &mut Out) -> Result<(), Failure> {
    let stats = client.stats().await?;
    if out.json {
        return out.json(&stats);
    }
    for line in stats_lines(&stats) {
        out.line(&line)?;
    }
    Ok(())
}

fn stats_lines(s: &Stats) -> Vec<String> {
    let c = &s.by_status;
    let mut lines = vec![
        format!("uptime       {}", duration(s.uptime_ms)),
        format!(
            "requests     {}  (1xx {}, 2xx {}, 3xx {}, 4xx {}, 5xx {})",
            s.requests, c.informational, c.success, c.redirection, c.client_error, c.server_error
        ),
        format!(
            "bytes        in {}, out {}",
            units::bytes(s.bytes_in),
            units::bytes(s.bytes_out)
        ),
        format!(
            "active       {} connections, {} tunnels",
            s.active_connections, s.active_tunnels
        ),
        format!(
            "rate         {:.1}/s over 1 s, {:.1}/s over 10 s, {:.1}/s over 60 s",
            s.rate_1s, s.rate_10s, s.rate_60s
        ),
    ];
    if s.top_hosts.is_empty() {
        lines.push("top hosts    none yet".to_owned());
        return lines;
    }
    lines.push("top hosts".to_owned());
    let width = s.top_hosts.iter().map(|h| h.host.len()).max().unwrap_or(0);
    for host in &s.top_hosts {
        lines.push(format!("  {:<width$}  {}", host.host, host.requests));
    }
    lines
}

async fn log(client: &ProxyClient, out: &mut Out, follow: bool) -> Result<(), Failure> {
    let (recent, mut feed) = client.tail().await?;
    for record in &recent {
        log_record(out, record)?;
    }
    if !follow {
        return Ok(());
    }
    while let Some(record) = feed.next().await {
        log_record(out, &record?)?;
    }
    Err(Failure::Call(anyhow!(
        "the proxy ended the log feed (it is shutting down or the connection dropped)"
    )))
}

fn log_record(out: &mut Out, record: &AccessRecord) -> Result<(), Failure> {
    if out.json {
        return out.json(record);
    }
    out.line(&log_line(record))
}

/// One record on one line: time, client, user, method, target, status,
/// bytes in and out, duration, upstream.
fn log_line(r: &AccessRecord) -> String {
    format!(
        "{}  {} {} {} {} {} in={} out={} {}ms upstream={}",
        units::utc_millisecond(i64::try_from(r.time_ms).unwrap_or(i64::MAX)),
        r.client,
        r.user,
        r.method,
        r.target,
        r.status,
        r.bytes_in,
        r.bytes_out,
        r.duration_ms,
        r.upstream
    )
}

async fn tunnels(client: &ProxyClient, out: &mut Out) -> Result<(), Failure> {
    let tunnels = client.tunnels().await?;
    if out.json {
        return out.json(&tunnels);
    }
    if tunnels.is_empty() {
        return out.line("no open tunnels");
    }
    for line in tunnel_table(&tunnels, now_ms()) {
        out.line(&line)?;
    }
    Ok(())
}

fn tunnel_table(tunnels: &[TunnelInfo], now_ms: u64) -> Vec<String> {
    let rows: Vec<[String; 8]> = tunnels
        .iter()
        .map(|t| {
            [
                t.id.to_string(),
                t.client.clone(),
                t.user.clone(),
                t.target.clone(),
                t.upstream.clone(),
                duration(now_ms.saturating_sub(t.opened_ms)),
                units::bytes(t.bytes_in),
                units::bytes(t.bytes_out),
            ]
        })
        .collect();
    let header = [
        "ID", "CLIENT", "USER", "TARGET", "UPSTREAM", "OPEN FOR", "IN", "OUT",
    ]
    .map(str::to_owned);
    let mut widths = header.each_ref().map(String::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    std::iter::once(&header)
        .chain(&rows)
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

async fn close_tunnel(client: &ProxyClient, out: &mut Out, id: u64) -> Result<(), Failure> {
    client.close_tunnel(id).await?;
    if out.json {
        return out.json(&serde_json::json!({ "closed": id }));
    }
    out.line(&format!("closed tunnel {id}"))
}

async fn reload(client: &ProxyClient, out: &mut Out) -> Result<(), Failure> {
    let reloaded = client.reload().await?;
    if out.json {
        return out.json(&reloaded);
    }
    out.line(&reload_line(&reloaded))
}

fn reload_line(r: &Reloaded) -> String {
    format!(
        "reloaded: {} rules, {} users, {} client allow and {} client deny ranges",
        r.rules, r.users, r.client_allow, r.client_deny
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `1h 02m 03s`, `4m 05s` or `6s`.
fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use backroom_api::proxy::{HostCount, StatusClasses};

    use super::*;

    #[test]
    fn durations_read_like_a_person_wrote_them() {
        assert_eq!(duration(6_400), "6s");
        assert_eq!(duration(245_000), "4m 05s");
        assert_eq!(duration(3_723_000), "1h 02m 03s");
    }

    #[test]
    fn stats_show_classes_and_top_hosts() {
        let stats = Stats {
            requests: 3,
            by_status: StatusClasses {
                success: 2,
                server_error: 1,
                ..StatusClasses::default()
            },
            top_hosts: vec![HostCount {
                host: "example.com".into(),
                requests: 2,
            }],
            ..Stats::default()
        };
        let text = stats_lines(&stats).join("\n");
        assert!(text.contains("requests     3  (1xx 0, 2xx 2, 3xx 0, 4xx 0, 5xx 1)"));
        assert!(text.contains("  example.com  2"), "{text}");
    }

    #[test]
    fn the_tunnel_table_lines_up() {
        let tunnel = TunnelInfo {
            id: 7,
            client: "127.0.0.1".into(),
            user: "-".into(),
            target: "example.com:443".into(),
            upstream: "93.184.216.34:443".into(),
            opened_ms: 1_000,
            bytes_in: 10,
            bytes_out: 2048,
        };
        let lines = tunnel_table(&[tunnel], 66_000);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("ID  CLIENT"), "{}", lines[0]);
        assert!(lines[1].starts_with("7   127.0.0.1"), "{}", lines[1]);
        assert!(lines[1].contains("1m 05s") && lines[1].ends_with("2.0 KiB"));
    }
}
