//! The workspace's automation: `cargo xtask <command>`.
//!
//! Dependency-free on purpose, so that it compiles in a moment: arguments are
//! parsed by hand and JSON is read and written by the small `json` module.

// This is a command-line tool: printing to standard output is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_dash;
mod bench_db;
mod bench_files;
mod bench_print;
mod bench_proxy;
mod ci;
mod json;
mod proc;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                                 cargo fmt --check, clippy -D warnings, and the tests
  demo                               the demo (arrives with the demo issue)
  bench frame [--quick] [--json]     the frame protocol against redis and iperf3
  bench db [--quick] [--json]        backroom-db point selects and durable inserts against PostgreSQL and rusqlite
  bench files [--quick] [--json]     backroom-files against nginx and vsftpd (with curl) and iperf3
  bench print [--quick] [--json]     backroom-print's accepted jobs/s against CUPS lp, and queue latency at 100k jobs
  bench proxy [--quick] [--json]     backroom-proxy against tinyproxy, squid and direct, with wrk
  bench dash [--quick] [--json]      the dashboard: Print tab render time with 10k jobs, and idle CPU";

/// The exit code of a command that is not built yet.
const NOT_YET: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => report(ci::run()),
        ["demo"] => {
            println!("cargo xtask demo arrives with the demo issue; it is not built yet.");
            ExitCode::from(NOT_YET)
        }
        ["bench", "frame", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench::frame(&options)),
            Err(e) => usage_error(&e),
        },
        ["bench", "db", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench_db::db(&options)),
            Err(e) => usage_error(&e.replace("bench frame", "bench db")),
        },
        ["bench", "files", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench_files::files(&options)),
            Err(e) => usage_error(&e.replace("bench frame", "bench files")),
        },
        ["bench", "print", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench_print::print(&options)),
            Err(e) => usage_error(&e.replace("bench frame", "bench print")),
        },
        ["bench", "proxy", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench_proxy::proxy(&options)),
            Err(e) => usage_error(&e.replace("bench frame", "bench proxy")),
        },
        ["bench", "dash", flags @ ..] => match bench::Options::parse(flags) {
            Ok(options) => report(bench_dash::dash(&options)),
            Err(e) => usage_error(&e.replace("bench frame", "bench dash")),
        },
        ["bench", ..] => usage_error("cargo xtask bench knows one benchmark: frame"),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        [] => usage_error("no command given"),
        [other, ..] => usage_error(&format!("unknown command {other:?}")),
    }
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("xtask: {message}\n\n{USAGE}");
    ExitCode::from(NOT_YET)
}
