//! The workspace's automation: `cargo xtask <command>`.
//!
//! Nearly dependency-free on purpose, so that it compiles in a moment:
//! arguments are parsed by hand, JSON is read and written by the small `json`
//! module, and the one dependency is `ctrlc`, for the demo's signals.

// This is a command-line tool: printing to standard output is its job.
#![allow(clippy::print_stdout)]

mod bench;
mod bench_all;
mod bench_dash;
mod bench_db;
mod bench_files;
mod bench_print;
mod bench_proxy;
mod ci;
mod demo;
mod demo_http;
mod demo_origin;
mod demo_scenario;
mod json;
mod proc;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci                                 cargo fmt --check, clippy -D warnings, and the tests
  demo [--data DIR]                  the suite on loopback with sample data, in the dashboard
  demo --headless [--big-mib N]      the same, driven through one scripted step per pattern
                                     (--debug: use the debug build `cargo test` makes)
  bench frame [--quick] [--json]     the frame protocol against redis and iperf3
  bench db [--quick] [--json]        backroom-db point selects and durable inserts against PostgreSQL and rusqlite
  bench files [--quick] [--json]     backroom-files against nginx and vsftpd (with curl) and iperf3
  bench print [--quick] [--json]     backroom-print's accepted jobs/s against CUPS lp, and queue latency at 100k jobs
  bench proxy [--quick] [--json]     backroom-proxy against tinyproxy, squid and direct, with wrk
  bench dash [--quick] [--json]      the dashboard: Print tab render time with 10k jobs, and idle CPU
  bench all [--quick] [--json]       every benchmark above in turn; --json ends with one line holding
                                     every benchmark's figures and all their ratios";

/// The exit code of a command line that could not be understood.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => report(ci::run()),
        ["demo", flags @ ..] => match demo::Options::parse(flags) {
            Ok(options) => report(demo::demo(&options)),
            Err(e) => usage_error(&format!("demo: {e}")),
        },
        ["bench", name, flags @ ..] => {
            let Some(run) = benchmark(name) else {
                return usage_error(&format!("no benchmark named {name:?}"));
            };
            match bench::Options::parse(flags) {
                Ok(options) => report(run(&options)),
                Err(e) => usage_error(&format!("bench {name}: {e}")),
            }
        }
        ["bench"] => usage_error("name a benchmark"),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        [] => usage_error("no command given"),
        [other, ..] => usage_error(&format!("unknown command {other:?}")),
    }
}

/// A benchmark: it measures, prints its figures, and fails only if it cannot.
type Benchmark = fn(&bench::Options) -> Result<(), String>;

/// Every benchmark, by name, in the order `bench all` runs them.
const BENCHMARKS: [(&str, Benchmark); 6] = [
    ("frame", bench::frame),
    ("files", bench_files::files),
    ("db", bench_db::db),
    ("proxy", bench_proxy::proxy),
    ("print", bench_print::print),
    ("dash", bench_dash::dash),
];

/// The benchmark called `name`, if there is one; `all` runs every one.
fn benchmark(name: &str) -> Option<Benchmark> {
    if name == "all" {
        return Some(bench_all::all);
    }
    BENCHMARKS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, run)| *run)
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
    ExitCode::from(USAGE_ERROR)
}
