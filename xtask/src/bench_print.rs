//! `cargo xtask bench print`: how fast the print server durably accepts
//! jobs, against CUPS taking the same jobs with `lp`; the same over IPP, with
//! one client (Print-Job on kept-alive connections) against backroom's IPP
//! face and against CUPS; and how fast the queue answers with 100k jobs
//! waiting, over our protocol and over IPP (Get-Jobs).
//!
//! Everything runs as separate processes: the release `backroom-print`, its
//! load generator (`crates/print/examples/printbench.rs`), the `backroom` CLI, and
//! a private `cupsd` on a free loopback port with a throwaway config.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bench::Options;
use crate::json::{self, Value};
use crate::proc::{self, Guard};

/// Our submit rate over CUPS's, at least.
const SUBMIT_AIM: f64 = 20.0;
/// Listing the first page and changing a priority, at most, in ms.
const LATENCY_AIM_MS: f64 = 10.0;
/// How many jobs wait while the latencies are measured.
const QUEUED: u64 = 100_000;
/// Concurrent submitters, ours and CUPS's alike.
const SUBMITTERS: usize = 8;
/// The document size.
const DOC_BYTES: usize = 1024;

const CUPS_HINT: &str = "cupsd or lp is missing: apt-get install -y cups cups-client";

/// The programs this benchmark runs.
struct Binaries {
    server: PathBuf,
    bench: PathBuf,
    /// The `backroom` CLI, if it built: without it the run goes on, minus
    /// the one-process-per-job figure.
    cli: Result<PathBuf, String>,
}

/// Jobs per second of one submit run.
#[derive(Debug, Clone, Copy)]
struct Rate {
    jobs: f64,
    secs: f64,
    per_s: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

struct Latencies {
    queued: f64,
    fill_secs: f64,
    list_p50_ms: f64,
    list_p99_ms: f64,
    priority_p50_ms: f64,
    priority_p99_ms: f64,
}

/// CUPS's figures: `lp` processes, and the IPP client's Print-Job.
struct Cups {
    lp: Rate,
    ipp: Result<Rate, String>,
}

struct Results {
    ours: Rate,
    ours_cli: Option<Rate>,
    ours_ipp: Option<Rate>,
    cups: Option<Rate>,
    cups_ipp: Option<Rate>,
    latencies: Latencies,
    /// Get-Jobs of the first page over IPP, p50 and p99 in ms.
    ipp_list: Option<(f64, f64)>,
}

fn phase(options: &Options) -> Duration {
    Duration::from_secs(if options.quick { 3 } else { 10 })
}

pub fn print(options: &Options) -> Result<(), String> {
    let binaries = build()?;
    // Timed from here: the build's length says nothing about the server.
    let started = Instant::now();
    let work = Workdir::new()?;
    let mut notes = Vec::new();

    let (_server, addr, ipp) = start_server(&binaries, &work)?;
    let ipp_uri = format!("ipp://{ipp}/printers/bench");
    run_bench(
        &binaries.bench,
        &["pause", "--addr", &addr, "--printer", "bench"],
    )?;

    eprintln!(
        "print: {SUBMITTERS} submitters, {DOC_BYTES} B documents, {} s...",
        phase(options).as_secs()
    );
    let ours = submit_rate(&binaries.bench, "submit", "--addr", &addr, options)?;

    eprintln!(
        "print: IPP Print-Job, {SUBMITTERS} connections, {} s...",
        phase(options).as_secs()
    );
    let ours_ipp = submit_rate(&binaries.bench, "ipp-submit", "--uri", &ipp_uri, options)
        .map(Some)
        .unwrap_or_else(|e| {
            notes.push(format!("backroom's IPP face: {e}"));
            None
        });

    let doc = work.path.join("doc.txt");
    std::fs::write(&doc, document()).map_err(|e| format!("cannot write {}: {e}", doc.display()))?;

    let ours_cli = match &binaries.cli {
        Ok(cli) => {
            eprintln!("print: `backroom print submit`, one process per job, like lp...");
            processes(phase(options), |_| {
                let mut command = Command::new(cli);
                command
                    .args(["--config", &work.cli_config(), "print", "--addr", &addr])
                    .args(["submit", &doc.display().to_string()]);
                command
            })
            .map_err(|e| format!("backroom print submit: {e}"))
        }
        Err(e) => Err(e.clone()),
    }
    .map(Some)
    .unwrap_or_else(|e| {
        notes.push(e);
        None
    });

    let cups = measure_cups(options, &work, &doc, &binaries.bench)
        .map(Some)
        .unwrap_or_else(|e| {
            notes.push(e);
            None
        });
    let (cups, cups_ipp) = match cups {
        Some(Cups { lp, ipp }) => {
            let ipp = ipp
                .map_err(|e| notes.push(format!("CUPS over IPP: {e}")))
                .ok();
            (Some(lp), ipp)
        }
        None => (None, None),
    };

    eprintln!("print: filling the queue to {QUEUED} jobs...");
    let filled = run_bench(
        &binaries.bench,
        &[
            "fill",
            "--addr",
            &addr,
            "--total",
            &QUEUED.to_string(),
            "--size",
            &DOC_BYTES.to_string(),
        ],
    )?;
    eprintln!("print: list and priority latencies...");
    let reps = if options.quick { "200" } else { "1000" };
    let line = run_bench(
        &binaries.bench,
        &["latency", "--addr", &addr, "--reps", reps],
    )?;
    eprintln!("print: IPP Get-Jobs latency...");
    let ipp_list = run_bench(
        &binaries.bench,
        &["ipp-list", "--uri", &ipp_uri, "--reps", reps],
    )
    .and_then(|line| Ok((number(&line, "p50_ms")?, number(&line, "p99_ms")?)))
    .map(Some)
    .unwrap_or_else(|e| {
        notes.push(format!("IPP Get-Jobs: {e}"));
        None
    });
    let latencies = Latencies {
        queued: number(&line, "queued")?,
        fill_secs: number(&filled, "secs")?,
        list_p50_ms: number(&line, "list_p50_ms")?,
        list_p99_ms: number(&line, "list_p99_ms")?,
        priority_p50_ms: number(&line, "priority_p50_ms")?,
        priority_p99_ms: number(&line, "priority_p99_ms")?,
    };

    let results = Results {
        ours,
        ours_cli,
        ours_ipp,
        cups,
        cups_ipp,
        latencies,
        ipp_list,
    };
    print_table(options, &results, &notes, started.elapsed());
    if options.json {
        println!("{}", summary(options, &results, &notes).render());
    }
    Ok(())
}

fn document() -> Vec<u8> {
    (0..DOC_BYTES).map(|i| b'a' + (i % 26) as u8).collect()
}

// ----------------------------------------------------------------- build

/// Builds the server and its load generator, then the CLI, in release
/// mode.
fn build() -> Result<Binaries, String> {
    eprintln!("building backroom-print and its bench example (release)...");
    let built = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-print",
        "--bin",
        "backroom-print",
        "--example",
        "printbench",
    ])?;
    eprintln!("building backroom, the CLI (release)...");
    let cli = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-dash",
        "--bin",
        "backroom",
    ])
    .and_then(|cli| cli.executable("bin", "backroom"))
    .map_err(|e| format!("no `backroom print submit` figure: {e}"));
    Ok(Binaries {
        server: built.executable("bin", "backroom-print")?,
        bench: built.executable("example", "printbench")?,
        cli,
    })
}

// ------------------------------------------------------------------ ours

/// A folder under `target/` for the spools: on the disk the workspace is
/// on, since a tmpfs would make every fsync free. Removed when dropped.
struct Workdir {
    path: PathBuf,
}

impl Workdir {
    fn new() -> Result<Workdir, String> {
        let path = proc::workspace_root()
            .join("target")
            .join("bench-print")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        std::fs::write(path.join("cli.toml"), "")
            .map_err(|e| format!("cannot write the CLI config: {e}"))?;
        Ok(Workdir { path })
    }

    /// An empty config for the CLI, so that the user's own is not read.
    fn cli_config(&self) -> String {
        self.path.join("cli.toml").display().to_string()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Starts `backroom-print` with one `file:` printer, paused by the caller so
/// that the jobs stay queued, and room for every job the run submits. Returns
/// its frame address and its IPP address.
fn start_server(binaries: &Binaries, work: &Workdir) -> Result<(Guard, String, String), String> {
    let config = work.path.join("print.toml");
    let text = format!(
        "spool = \"{}\"\nmax_jobs = 10000000\nmax_spool_bytes = 68719476736\n\n\
         [[printers]]\nname = \"bench\"\ndevice = \"file:{}\"\n",
        work.path.join("spool").display(),
        work.path.join("out").display()
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write the config: {e}"))?;
    let (server, addrs) = Guard::spawn_listening(
        "backroom-print",
        Command::new(&binaries.server)
            .args(["--config", &config.display().to_string()])
            .args(["--listen", "127.0.0.1:0", "--ipp", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit()),
        &["print", "ipp"],
        Duration::from_secs(30),
    )?;
    Ok((server, addrs[0].to_string(), addrs[1].to_string()))
}

/// A submit run of the load generator: `mode` is `submit` (our protocol,
/// `--addr`) or `ipp-submit` (IPP Print-Job, `--uri`).
fn submit_rate(
    bench: &Path,
    mode: &str,
    flag: &str,
    target: &str,
    options: &Options,
) -> Result<Rate, String> {
    let line = run_bench(
        bench,
        &[
            mode,
            flag,
            target,
            "--conns",
            &SUBMITTERS.to_string(),
            "--secs",
            &phase(options).as_secs_f64().to_string(),
            "--size",
            &DOC_BYTES.to_string(),
        ],
    )?;
    Ok(Rate {
        jobs: number(&line, "jobs")?,
        secs: number(&line, "secs")?,
        per_s: number(&line, "jobs_per_s")?,
        p50_ms: Some(number(&line, "p50_ms")?),
        p99_ms: Some(number(&line, "p99_ms")?),
    })
}

/// Runs the load generator to its end and parses its JSON line.
fn run_bench(bench: &Path, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(bench)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the print bench: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "print bench {} failed ({})",
            args[0], output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    json::parse(last.unwrap_or_default())
        .map_err(|e| format!("print bench {} printed no figures: {e}", args[0]))
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("the bench output has no number {key:?}"))
}

/// Runs `SUBMITTERS` loops, each starting one process per job and waiting
/// for it, for `length`; counts the processes that succeeded.
fn processes(length: Duration, command: impl Fn(usize) -> Command + Sync) -> Result<Rate, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = AtomicU64::new(0);
    let failure = std::sync::Mutex::new(None::<String>);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..SUBMITTERS {
            let (stop, done, failure, command) = (&stop, &done, &failure, &command);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let output = command(worker)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .output();
                    match output {
                        Ok(o) if o.status.success() => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(o) => {
                            let why = String::from_utf8_lossy(&o.stderr).trim().to_owned();
                            *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
                            stop.store(true, Ordering::Relaxed);
                        }
                        Err(e) => {
                            *failure.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(e.to_string());
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        // The clock runs here; the workers finish the job they are on.
        while !stop.load(Ordering::Relaxed) && started.elapsed() < length {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    if let Some(why) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(why);
    }
    let secs = started.elapsed().as_secs_f64();
    let jobs = done.load(Ordering::Relaxed) as f64;
    Ok(Rate {
        jobs,
        secs,
        per_s: jobs / secs,
        p50_ms: None,
        p99_ms: None,
    })
}

// ------------------------------------------------------------------ CUPS

/// A private cupsd: its own root, spool and logs, listening on a free
/// loopback port, with one raw queue whose device is `/dev/null`; measured
/// with `lp`, then with the load generator's IPP Print-Job.
fn measure_cups(
    options: &Options,
    work: &Workdir,
    doc: &Path,
    bench: &Path,
) -> Result<Cups, String> {
    for program in ["cupsd", "lp", "lpadmin", "cupsdisable"] {
        if !proc::installed(program) && !Path::new("/usr/sbin").join(program).is_file() {
            return Err(CUPS_HINT.to_owned());
        }
    }
    let root = work.path.join("cups");
    for dir in ["spool", "tmp", "cache", "state", "log"] {
        std::fs::create_dir_all(root.join(dir))
            .map_err(|e| format!("cannot create the CUPS folders: {e}"))?;
    }
    let port = proc::free_port()?;
    let server = format!("127.0.0.1:{port}");
    let r = root.display();
    let files = format!(
        "ServerRoot {r}\nRequestRoot {r}/spool\nTempDir {r}/tmp\nCacheDir {r}/cache\n\
         StateDir {r}/state\nAccessLog {r}/log/access_log\nErrorLog {r}/log/error_log\n\
         PageLog {r}/log/page_log\nServerBin /usr/lib/cups\nDataDir /usr/share/cups\n\
         FileDevice Yes\nSystemGroup root\n"
    );
    // MaxJobs 0: CUPS refuses jobs past 500 waiting by default. The policy
    // lets anyone on loopback do anything: this cupsd lives for one run.
    let conf = format!(
        "Listen {server}\nLogLevel warn\nMaxJobs 0\nPreserveJobHistory No\n\
         PreserveJobFiles No\nBrowsing No\nWebInterface No\n\
         <Location />\n  Order allow,deny\n  Allow all\n</Location>\n\
         <Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
    );
    let write = |name: &str, text: &str| {
        std::fs::write(root.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write("cups-files.conf", &files)?;
    write("cupsd.conf", &conf)?;
    let cupsd = if proc::installed("cupsd") {
        PathBuf::from("cupsd")
    } else {
        PathBuf::from("/usr/sbin/cupsd")
    };
    let mut daemon = Guard::spawn(
        "cupsd",
        Command::new(cupsd)
            .arg("-f")
            .args(["-c", &root.join("cupsd.conf").display().to_string()])
            .args(["-s", &root.join("cups-files.conf").display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    proc::wait_for_port(port, Duration::from_secs(10))
        .map_err(|e| format!("cupsd did not start: {e}"))?;
    daemon.check_alive()?;
    let admin = |program: &str, args: &[&str]| -> Result<(), String> {
        let output = Command::new(sbin(program))
            .args(["-h", &server])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    };
    admin("lpadmin", &["-p", "bench", "-v", "file:/dev/null", "-E"])?;
    // Stopped like ours is paused: the jobs are accepted and stay queued, so
    // both sides measure acceptance alone.
    admin("cupsdisable", &["bench"])?;
    eprintln!(
        "cups: lp, {SUBMITTERS} submitters, {} s...",
        phase(options).as_secs()
    );
    let doc = doc.display().to_string();
    let lp = processes(phase(options), |_| {
        let mut command = Command::new("lp");
        command.args(["-h", &server, "-d", "bench", &doc]);
        command
    })?;
    daemon.check_alive()?;
    eprintln!(
        "cups: IPP Print-Job, {SUBMITTERS} connections, {} s...",
        phase(options).as_secs()
    );
    let uri = format!("ipp://{server}/printers/bench");
    let ipp = submit_rate(bench, "ipp-submit", "--uri", &uri, options);
    daemon.check_alive()?;
    Ok(Cups { lp, ipp })
}

/// Admin programs live in /usr/sbin, which is not always on a user's PATH.
fn sbin(program: &str) -> PathBuf {
    if proc::installed(program) {
        PathBuf::from(program)
    } else {
        Path::new("/usr/sbin").join(program)
    }
}

// ---------------------------------------------------------------- report

fn ratio(ours: f64, theirs: Option<f64>) -> Option<f64> {
    theirs
        .filter(|t| *t > 0.0)
        .map(|t| (ours / t * 100.0).round() / 100.0)
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn verdict_ratio(ratio: Option<f64>) -> String {
    match ratio {
        None => format!(">= {SUBMIT_AIM:.0}x  (no CUPS)"),
        Some(r) if r >= SUBMIT_AIM => format!(">= {SUBMIT_AIM:.0}x  met"),
        Some(_) => format!(">= {SUBMIT_AIM:.0}x  BELOW"),
    }
}

fn verdict_ms(p99: f64) -> String {
    if p99 < LATENCY_AIM_MS {
        format!("p99 < {LATENCY_AIM_MS:.0} ms  met")
    } else {
        format!("p99 < {LATENCY_AIM_MS:.0} ms  ABOVE")
    }
}

fn header(title: &str) {
    println!(
        "{:<34}{:>9}{:>8}{:>10}{:>9}{:>9}{:>9}  aim",
        title, "jobs", "secs", "jobs/s", "p50 ms", "p99 ms", "vs cups"
    );
}

/// One rate, and its ratio to CUPS's rate `cups` when there is one.
fn row(label: &str, rate: &Rate, cups: Option<f64>, aim: String) {
    println!(
        "{:<34}{:>9.0}{:>8.1}{:>10.0}{:>9}{:>9}{:>9}  {}",
        label,
        rate.jobs,
        rate.secs,
        rate.per_s,
        fmt_opt(rate.p50_ms, 2),
        fmt_opt(rate.p99_ms, 2),
        ratio(rate.per_s, cups).map_or_else(|| "-".to_owned(), |r| format!("{r:.1}x")),
        aim
    );
}

fn print_table(options: &Options, results: &Results, notes: &[String], took: Duration) {
    let mode = if options.quick { "quick" } else { "full" };
    let cups = results.cups.map(|c| c.per_s);
    println!();
    println!(
        "print server benchmark ({mode}, {:.0} s after the build)",
        took.as_secs_f64()
    );
    println!();
    header("durably accepted jobs, 1 KiB, x8");
    row(
        "backroom-print (8 connections)",
        &results.ours,
        cups,
        verdict_ratio(ratio(results.ours.per_s, cups)),
    );
    if let Some(cli) = &results.ours_cli {
        row(
            "backroom print submit (process/job)",
            cli,
            cups,
            String::new(),
        );
    }
    if let Some(c) = &results.cups {
        row("CUPS lp (process/job)", c, cups, String::new());
    }
    println!();
    let cups_ipp = results.cups_ipp.map(|c| c.per_s);
    header("IPP Print-Job, 1 KiB, x8");
    if let Some(ours) = &results.ours_ipp {
        row(
            "backroom-print IPP face",
            ours,
            cups_ipp,
            verdict_ratio(ratio(ours.per_s, cups_ipp)),
        );
    }
    if let Some(c) = &results.cups_ipp {
        row("CUPS cupsd", c, cups_ipp, String::new());
    }
    println!();
    let l = &results.latencies;
    println!(
        "with {:.0} jobs queued (filled in {:.1} s){:>10}{:>9}  aim",
        l.queued, l.fill_secs, "p50 ms", "p99 ms"
    );
    for (label, p50, p99) in [
        ("list the first page", l.list_p50_ms, l.list_p99_ms),
        ("change a priority", l.priority_p50_ms, l.priority_p99_ms),
    ] {
        println!("{label:<46}{p50:>10.2}{p99:>9.2}  {}", verdict_ms(p99));
    }
    if let Some((p50, p99)) = results.ipp_list {
        let label = "IPP Get-Jobs, the first page";
        println!("{label:<46}{p50:>10.2}{p99:>9.2}  {}", verdict_ms(p99));
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("note: {note}");
        }
    }
    println!();
}

fn rate_json(rate: Option<&Rate>) -> Value {
    match rate {
        None => Value::Null,
        Some(r) => json::object([
            ("jobs", r.jobs.into()),
            ("secs", r.secs.into()),
            ("jobs_per_s", r.per_s.into()),
            ("p50_ms", r.p50_ms.into()),
            ("p99_ms", r.p99_ms.into()),
        ]),
    }
}

fn summary(options: &Options, results: &Results, notes: &[String]) -> Value {
    let cups = results.cups.map(|c| c.per_s);
    let l = &results.latencies;
    let notes = notes.iter().map(|n| Value::from(n.as_str())).collect();
    json::object([
        ("bench", Value::from("print")),
        ("quick", options.quick.into()),
        ("submitters", (SUBMITTERS as f64).into()),
        ("doc_bytes", (DOC_BYTES as f64).into()),
        ("ours", rate_json(Some(&results.ours))),
        ("ours_cli", rate_json(results.ours_cli.as_ref())),
        ("cups", rate_json(results.cups.as_ref())),
        ("ours_ipp", rate_json(results.ours_ipp.as_ref())),
        ("cups_ipp", rate_json(results.cups_ipp.as_ref())),
        (
            "ratio_ipp",
            ratio(
                results.ours_ipp.map_or(0.0, |r| r.per_s),
                results.cups_ipp.map(|c| c.per_s),
            )
            .into(),
        ),
        ("ratio", ratio(results.ours.per_s, cups).into()),
        (
            "ratio_cli",
            ratio(results.ours_cli.map_or(0.0, |r| r.per_s), cups).into(),
        ),
        ("aim_ratio", SUBMIT_AIM.into()),
        (
            "queue",
            json::object([
                ("queued", l.queued.into()),
                ("fill_secs", l.fill_secs.into()),
                ("list_p50_ms", l.list_p50_ms.into()),
                ("list_p99_ms", l.list_p99_ms.into()),
                ("priority_p50_ms", l.priority_p50_ms.into()),
                ("priority_p99_ms", l.priority_p99_ms.into()),
                (
                    "ipp_list_p50_ms",
                    results.ipp_list.map(|(p50, _)| p50).into(),
                ),
                (
                    "ipp_list_p99_ms",
                    results.ipp_list.map(|(_, p99)| p99).into(),
                ),
                ("aim_ms", LATENCY_AIM_MS.into()),
            ]),
        ),
        ("notes", Value::Array(notes)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_need_a_peer() {
        assert_eq!(ratio(3000.0, Some(150.0)), Some(20.0));
        assert_eq!(ratio(3000.0, None), None);
        assert_eq!(ratio(3000.0, Some(0.0)), None);
    }
}
