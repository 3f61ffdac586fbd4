//! `cargo xtask bench all`: every benchmark in one go, and one JSON line that
//! holds all their figures and ratios, for tracking from run to run.
//!
//! Each benchmark runs as a child process of this very binary
//! (`xtask bench NAME --json`), so that one that fails, or cannot run at all,
//! is recorded as such while the others still run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Options;
use crate::json::{self, Value};

/// What became of one benchmark.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// It ran and printed its figures.
    Ran(Value),
    /// It could not run, or ended without figures; the reason says why.
    Failed(String),
}

pub fn all(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| format!("cannot find xtask itself: {e}"))?;
    let mut outcomes = Vec::new();
    for (name, _) in crate::BENCHMARKS {
        eprintln!("bench all: {name}...");
        let began = Instant::now();
        let outcome = run_one(&exe, name, options);
        if let Outcome::Failed(reason) = &outcome {
            eprintln!("bench all: {name} did not run: {reason}");
        }
        outcomes.push((name, outcome, began.elapsed()));
    }
    print_table(options, &outcomes, started.elapsed());
    if options.json {
        let outcomes: Vec<(&str, Outcome)> = outcomes.into_iter().map(|(n, o, _)| (n, o)).collect();
        println!("{}", aggregate(options, &outcomes).render());
    }
    Ok(())
}

/// Runs `xtask bench NAME --json`, passing its table through, and keeps its
/// last line: the figures.
fn run_one(exe: &std::path::Path, name: &str, options: &Options) -> Outcome {
    let mut command = Command::new(exe);
    command.args(["bench", name, "--json"]);
    if options.quick {
        command.arg("--quick");
    }
    let mut child = match command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Outcome::Failed(format!("cannot start it: {e}")),
    };
    let held = match child.stdout.take() {
        Some(stdout) => {
            let lines = BufReader::new(stdout).lines().map_while(Result::ok);
            pass_through(lines, &mut std::io::stdout().lock())
        }
        None => None,
    };
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => return Outcome::Failed(format!("lost track of it: {e}")),
    };
    let judged = outcome(status.success(), &status.to_string(), held.as_deref());
    if let (Outcome::Failed(_), Some(line)) = (&judged, held) {
        println!("{line}");
    }
    judged
}

/// Copies every line to `out` as it comes, except the last one that is not
/// blank, which it returns: the JSON that the summary takes in. Blank lines
/// after that one are held back with it.
fn pass_through(lines: impl Iterator<Item = String>, out: &mut impl Write) -> Option<String> {
    let mut held: Option<String> = None;
    let mut blanks_after_held = 0;
    for line in lines {
        if line.trim().is_empty() {
            if held.is_some() {
                blanks_after_held += 1;
            } else {
                let _ = writeln!(out);
            }
            continue;
        }
        if let Some(previous) = held.replace(line) {
            let _ = writeln!(out, "{previous}");
            for _ in 0..blanks_after_held {
                let _ = writeln!(out);
            }
        }
        blanks_after_held = 0;
    }
    held
}

/// Judges a finished benchmark by its exit and its last line.
fn outcome(success: bool, status: &str, last_line: Option<&str>) -> Outcome {
    if !success {
        return Outcome::Failed(format!("it failed ({status})"));
    }
    match last_line.map(json::parse) {
        Some(Ok(value @ Value::Object(_))) => Outcome::Ran(value),
        _ => Outcome::Failed("it printed no figures".to_owned()),
    }
}

/// The benchmarks name their ratios `ratio`, `ratio_pg`, `rps_ratio` or
/// `vs_squid`; `aim_ratio` is the aim a ratio is held to, not a ratio.
fn is_ratio_key(key: &str) -> bool {
    !key.starts_with("aim")
        && (key.starts_with("ratio_") || key.ends_with("_ratio") || key.starts_with("vs_"))
}

/// Every ratio in a benchmark's figures, named by its path of keys, such as
/// `pipelined` (for a `ratio`) or `point_select.ratio_pg`.
fn ratios(prefix: &str, value: &Value, found: &mut Vec<(String, f64)>) {
    let Value::Object(members) = value else {
        return;
    };
    for (key, member) in members {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match member.as_f64() {
            Some(r) if key == "ratio" => found.push((prefix.to_owned(), r)),
            Some(r) if is_ratio_key(key) => found.push((path, r)),
            // A group such as the proxy's `vs_squid: {rps_ratio, ...}`.
            _ => ratios(&path, member, found),
        }
    }
}

/// The one object `--json` prints: each benchmark's own figures under its
/// name (or why it did not run), and every ratio gathered in one place.
fn aggregate(options: &Options, outcomes: &[(&str, Outcome)]) -> Value {
    let mut benchmarks = Vec::new();
    let mut all_ratios = Vec::new();
    let mut failed = Vec::new();
    for (name, outcome) in outcomes {
        match outcome {
            Outcome::Ran(figures) => {
                let mut found = Vec::new();
                ratios("", figures, &mut found);
                all_ratios.extend(
                    found
                        .into_iter()
                        .map(|(path, r)| (join_name(name, &path), Value::Number(r))),
                );
                benchmarks.push((name.to_string(), figures.clone()));
            }
            Outcome::Failed(reason) => {
                failed.push(Value::from(*name));
                let entry = json::object([
                    ("bench", Value::from(*name)),
                    ("ran", false.into()),
                    ("error", Value::from(reason.as_str())),
                ]);
                benchmarks.push((name.to_string(), entry));
            }
        }
    }
    json::object([
        ("bench", Value::from("all")),
        ("quick", options.quick.into()),
        ("benchmarks", Value::Object(benchmarks)),
        ("ratios", Value::Object(all_ratios)),
        ("failed", Value::Array(failed)),
    ])
}

fn join_name(bench: &str, path: &str) -> String {
    if path.is_empty() {
        bench.to_owned()
    } else {
        format!("{bench}.{path}")
    }
}

fn print_table(options: &Options, outcomes: &[(&str, Outcome, Duration)], took: Duration) {
    let mode = if options.quick { "quick" } else { "full" };
    println!();
    println!("all benchmarks ({mode}, {:.0} s)", took.as_secs_f64());
    println!();
    println!("{:<8}{:>8}  result", "bench", "secs");
    for (name, outcome, took) in outcomes {
        let result = match outcome {
            Outcome::Ran(figures) => {
                let mut found = Vec::new();
                ratios("", figures, &mut found);
                let listed: Vec<String> = found
                    .iter()
                    .map(|(path, r)| format!("{} {r:.2}x", join_name(name, path)))
                    .collect();
                if listed.is_empty() {
                    "ran".to_owned()
                } else {
                    listed.join(", ")
                }
            }
            Outcome::Failed(reason) => format!("DID NOT RUN: {reason}"),
        };
        println!("{name:<8}{:>8.0}  {result}", took.as_secs_f64());
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            quick: true,
            json: true,
        }
    }

    #[test]
    fn every_ratio_is_gathered_under_its_benchmark_and_path() {
        let frame = json::parse(
            r#"{"bench":"frame","pipelined":{"rps":5,"ratio":1.1},"stream":{"ratio":0.9},"notes":[]}"#,
        )
        .unwrap();
        let files = json::parse(
            r#"{"bench":"files","download":{"devnull":{"ratio":1.02,"iperf3_ratio":0.4}}}"#,
        )
        .unwrap();
        let proxy = json::parse(
            r#"{"bench":"proxy","wrk":{"vs_squid":2.1,"rps":5},"vs_direct":{"rps_ratio":0.3,"aim":0.35}}"#,
        )
        .unwrap();
        let print = json::parse(r#"{"bench":"print","ratio":20.4,"aim_ratio":20}"#).unwrap();
        let summary = aggregate(
            &options(),
            &[
                ("frame", Outcome::Ran(frame.clone())),
                ("files", Outcome::Ran(files)),
                ("proxy", Outcome::Ran(proxy)),
                ("print", Outcome::Ran(print)),
            ],
        );
        assert_eq!(summary.path(&["benchmarks", "frame"]), Some(&frame));
        let ratio = |key: &str| summary.path(&["ratios", key]).and_then(Value::as_f64);
        assert_eq!(ratio("frame.pipelined"), Some(1.1));
        assert_eq!(ratio("frame.stream"), Some(0.9));
        assert_eq!(ratio("files.download.devnull"), Some(1.02));
        assert_eq!(ratio("files.download.devnull.iperf3_ratio"), Some(0.4));
        assert_eq!(ratio("proxy.wrk.vs_squid"), Some(2.1));
        assert_eq!(ratio("proxy.wrk.rps"), None);
        assert_eq!(ratio("proxy.vs_direct.rps_ratio"), Some(0.3));
        assert_eq!(ratio("print"), Some(20.4));
        assert_eq!(ratio("print.aim_ratio"), None);
        assert_eq!(summary.get("failed"), Some(&Value::Array(Vec::new())));
    }

    #[test]
    fn a_benchmark_that_cannot_run_is_recorded_and_the_rest_kept() {
        let dash = json::parse(r#"{"bench":"dash","render_ms":0.2}"#).unwrap();
        let summary = aggregate(
            &options(),
            &[
                (
                    "proxy",
                    Outcome::Failed("it failed (exit status: 1)".into()),
                ),
                ("dash", Outcome::Ran(dash.clone())),
            ],
        );
        assert_eq!(
            summary
                .path(&["benchmarks", "proxy", "error"])
                .and_then(Value::as_str),
            Some("it failed (exit status: 1)")
        );
        assert_eq!(summary.path(&["benchmarks", "dash"]), Some(&dash));
        assert_eq!(
            summary.get("failed"),
            Some(&Value::Array(vec![Value::from("proxy")]))
        );
        // The line parses back: it is what a tracker reads.
        assert_eq!(json::parse(&summary.render()).unwrap(), summary);
    }

    #[test]
    fn a_benchmarks_table_passes_through_in_order_without_its_json_line() {
        let printed = [
            "",
            "title",
            "",
            "row 1",
            "row 2",
            "",
            "{\"bench\":\"x\"}",
            "",
        ];
        let mut out = Vec::new();
        let last = pass_through(printed.iter().map(|l| l.to_string()), &mut out);
        assert_eq!(last.as_deref(), Some("{\"bench\":\"x\"}"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\ntitle\n\nrow 1\nrow 2\n\n"
        );
    }

    #[test]
    fn a_run_is_judged_by_its_exit_and_its_last_line() {
        let line = Some(r#"{"bench":"db"}"#);
        assert!(matches!(outcome(true, "ok", line), Outcome::Ran(_)));
        assert!(matches!(
            outcome(false, "exit status: 1", line),
            Outcome::Failed(reason) if reason.contains("exit status: 1")
        ));
        assert!(matches!(
            outcome(true, "ok", Some("note: redis is missing")),
            Outcome::Failed(_)
        ));
        assert!(matches!(outcome(true, "ok", None), Outcome::Failed(_)));
    }
}
