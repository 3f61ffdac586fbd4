//! What every `backroom <service> ...` command shares: its endpoint, its
//! runtime, its connection error, its progress bar, and how it ends.
//!
//! A service's `cli::run` resolves its [`Endpoint`] with [`endpoint`], does
//! its work inside [`run`], and returns the [`ExitCode`] that `run` makes of
//! the outcome. A failure is always one line on stderr, `backroom <service>:
//! <why>`, and status 1: never a backtrace, whatever `RUST_BACKTRACE` says,
//! and never a `process::exit` inside the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use backroom_frame::error::ErrorCode;

use crate::config::{Endpoint, Settings};
use crate::server::Server;

/// Runs one command of `server` on a runtime of `threads` workers and turns
/// its outcome into the process's exit status.
pub fn run(
    server: Server,
    threads: usize,
    command: impl FnOnce(&tokio::runtime::Runtime) -> anyhow::Result<()>,
) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime");
    let outcome = runtime.and_then(|runtime| command(&runtime));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(server.name(), &error),
    }
}

/// Prints `backroom <what>: <error on one line>` and returns status 1.
pub fn fail(what: &str, error: &anyhow::Error) -> ExitCode {
    let what = if what.is_empty() {
        "backroom".to_string()
    } else {
        format!("backroom {what}")
    };
    eprintln!("{what}: {}", one_line(error));
    ExitCode::FAILURE
}

/// `server`'s endpoint as the flags and the config file resolved it, with
/// the command's own `--addr` over it.
pub fn endpoint(
    settings: &Settings,
    server: Server,
    addr: Option<&str>,
) -> anyhow::Result<Endpoint> {
    let mut endpoint = settings
        .endpoints
        .iter()
        .find(|e| e.server == server)
        .cloned()
        .ok_or_else(|| anyhow!("no {server} server is configured"))?;
    if let Some(addr) = addr {
        endpoint.client.addr = addr.to_string();
    }
    Ok(endpoint)
}

/// Why connecting to `server` at `config` failed, in words that say what to
/// do: a refused token is not the same mistake as a missing one.
pub fn connect_error(server: Server, config: &ClientConfig, error: &Error) -> anyhow::Error {
    let hint = match (error.code, &config.token) {
        (ErrorCode::Unauthorized, None) => "; pass --token or set BACKROOM_TOKEN",
        (ErrorCode::Unauthorized, Some(_)) => "; check --token, BACKROOM_TOKEN or the config file",
        _ => "",
    };
    let what = match server {
        Server::Proxy => "the proxy's admin port".to_string(),
        server => format!("the {server} server"),
    };
    anyhow!("cannot reach {what} at {}: {error}{hint}", config.addr)
}

/// The error and its causes on one line, without repeats: a cause that a
/// context already quotes is left out, and the drawing a TOML parse error
/// makes of the offending line (under a `|` gutter) is dropped.
pub fn one_line(error: &anyhow::Error) -> String {
    let is_drawing = |line: &str| {
        let rest = line.trim_start_matches(|c: char| c.is_ascii_digit() || c == ' ');
        rest.starts_with('|')
    };
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let words: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !is_drawing(line))
            .collect();
        let text = words.join(": ");
        if parts.iter().any(|part| part.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// A progress bar on stderr for `len` bytes, or none when stderr is not a
/// terminal (a script's log wants no bar).
pub fn progress_bar(len: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_errors_fold_onto_one_line() {
        let toml = "bad_request: invalid config: TOML parse error at line 1, column 5\n  |\n1 | [acl\n  |     ^\nunclosed table, expected `]`\n";
        assert_eq!(
            one_line(&anyhow!(toml)),
            "bad_request: invalid config: TOML parse error at line 1, column 5: unclosed table, expected `]`"
        );
        assert_eq!(one_line(&anyhow!("plain")), "plain");
    }

    #[test]
    fn a_cause_quoted_by_its_context_is_not_repeated() {
        let error = anyhow!("refused").context("cannot reload: refused");
        assert_eq!(one_line(&error), "cannot reload: refused");
    }

    #[test]
    fn a_refused_token_is_not_called_missing() {
        let mut config = ClientConfig::new("127.0.0.1:1", "files");
        let refused = Error::new(ErrorCode::Unauthorized, "bad token");
        let missing = connect_error(Server::Files, &config, &refused).to_string();
        assert!(missing.contains("pass --token"), "{missing}");
        config.token = Some("wrong".into());
        let wrong = connect_error(Server::Files, &config, &refused).to_string();
        assert!(wrong.contains("check --token"), "{wrong}");
        assert!(!wrong.contains("pass --token"), "{wrong}");
    }
}
