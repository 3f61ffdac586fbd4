//! `cargo xtask bench db`: backroom-db measured against PostgreSQL doing the
//! same work in the same run, with in-process rusqlite as the limit — point
//! selects by primary key, and durable single-row inserts.
//!
//! Our figures come from the real `backroom-db` binary, loaded by
//! `crates/db/examples/dbbench.rs`; both are built in release mode and run as
//! separate processes. PostgreSQL runs from a temporary `initdb` on a free
//! loopback port with its durable defaults (`fsync`, `synchronous_commit`),
//! loaded by `pgbench`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Options;
use crate::json::{self, Value};
use crate::proc::{self, Guard};

const PG_HINT: &str = "PostgreSQL is missing: apt-get install -y postgresql";
/// The rows of the table point selects read: pgbench's scale 1.
const ROWS: u64 = 100_000;

/// One workload, run the same way against us, PostgreSQL and rusqlite.
#[derive(Debug, Clone, Copy)]
struct Workload {
    key: &'static str,
    label: &'static str,
    insert: bool,
    clients: u32,
    /// Our aim as a fraction of PostgreSQL's figure, where the issue sets one.
    aim: Option<f64>,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        key: "select_1",
        label: "point select",
        insert: false,
        clients: 1,
        aim: None,
    },
    Workload {
        key: "select_8",
        label: "point select",
        insert: false,
        clients: 8,
        aim: Some(1.0),
    },
    Workload {
        key: "insert_1",
        label: "durable insert",
        insert: true,
        clients: 1,
        aim: None,
    },
    Workload {
        key: "insert_16",
        label: "durable insert",
        insert: true,
        clients: 16,
        aim: Some(1.0),
    },
];

/// Operations per second and, where known, latency percentiles.
#[derive(Debug, Clone, Copy)]
struct Figures {
    ops_s: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

struct Row {
    workload: Workload,
    ours: Figures,
    pg: Option<Figures>,
    sqlite: Option<Figures>,
}

/// How long each phase measures, and its warm-up.
fn phase(options: &Options) -> (u64, f64) {
    if options.quick { (2, 0.5) } else { (5, 1.0) }
}

pub fn db(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let built = build()?;
    let scratch = Scratch::new()?;
    let mut notes = Vec::new();

    // Every system is set up first, then each workload runs on the three
    // back to back: on a shared machine the load drifts, and it should
    // drift over all three alike rather than over one system's phases.
    let (_server, addr) = start_ours(&built, &scratch.0)?;
    let pg = Pg::start(&scratch.0).map_err(|e| notes.push(e)).ok();
    let limit = scratch.0.join("rusqlite");
    let limit = limit.to_str().ok_or("the temporary path is not UTF-8")?;
    let mut rows = Vec::new();
    for workload in WORKLOADS {
        let what = format!("{}, {} client(s)", workload.label, workload.clients);
        eprintln!("backroom-db: {what}...");
        let mode = if workload.insert { "insert" } else { "select" };
        let ours = measure(&built, options, mode, "--addr", &addr, workload)?;
        let pg_figures = pg.as_ref().and_then(|pg| {
            eprintln!("postgres: {what}...");
            pg.measure(options, workload)
                .map_err(|e| notes.push(format!("postgres: {e}")))
                .ok()
        });
        eprintln!("rusqlite: {what}...");
        let mode = if workload.insert {
            "sqlite-insert"
        } else {
            "sqlite-select"
        };
        let sqlite = measure(&built, options, mode, "--dir", limit, workload)
            .map_err(|e| notes.push(format!("rusqlite: {e}")))
            .ok();
        rows.push(Row {
            workload,
            ours,
            pg: pg_figures,
            sqlite,
        });
    }
    drop(pg);
    print_table(options, &rows, &notes, started.elapsed());
    if options.json {
        println!("{}", summary(options, &rows, &notes).render());
    }
    Ok(())
}

/// A temporary folder for the databases, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("backroom-bench-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ----------------------------------------------------------------- build

struct Built {
    server: PathBuf,
    load: PathBuf,
}

/// Builds `backroom-db` and the load generator in release mode, once.
fn build() -> Result<Built, String> {
    eprintln!("building backroom-db and its load generator (release)...");
    let built = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-db",
        "--bin",
        "backroom-db",
        "--example",
        "dbbench",
    ])?;
    Ok(Built {
        server: built.executable("bin", "backroom-db")?,
        load: built.executable("example", "dbbench")?,
    })
}

// ------------------------------------------------------------------ ours

/// Starts our server and fills the table the point selects read.
fn start_ours(built: &Built, scratch: &Path) -> Result<(Guard, String), String> {
    let (server, addr) = start_server(built, &scratch.join("ours"))?;
    eprintln!("backroom-db: filling {ROWS} rows...");
    run_load(
        &built.load,
        &["setup", "--addr", &addr, "--rows", &ROWS.to_string()],
    )?;
    Ok((server, addr))
}

/// Runs one measuring mode of the load generator and reads its figures.
fn measure(
    built: &Built,
    options: &Options,
    mode: &str,
    place_flag: &str,
    place: &str,
    workload: Workload,
) -> Result<Figures, String> {
    let (secs, warmup) = phase(options);
    let line = run_load(
        &built.load,
        &[
            mode,
            place_flag,
            place,
            "--clients",
            &workload.clients.to_string(),
            "--rows",
            &ROWS.to_string(),
            "--secs",
            &secs.to_string(),
            "--warmup",
            &warmup.to_string(),
        ],
    )?;
    if number(&line, "errors")? > 0.0 {
        return Err(format!(
            "dbbench {mode} saw {} failed requests",
            number(&line, "errors")?
        ));
    }
    Ok(Figures {
        ops_s: number(&line, "ops_s")?,
        p50_us: Some(number(&line, "p50_us")?),
        p99_us: Some(number(&line, "p99_us")?),
    })
}

/// Starts the real server on a port of its choosing, with its durable
/// default (`synchronous = "full"`), and reads where it listens.
fn start_server(built: &Built, data: &Path) -> Result<(Guard, String), String> {
    Guard::spawn_announced(
        "backroom-db",
        Command::new(&built.server)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null()),
        "listening db ",
        Duration::from_secs(20),
    )
}

/// Runs the load generator to its end and parses its JSON line.
fn run_load(load: &Path, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(load)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run dbbench: {e}"))?;
    if !output.status.success() {
        return Err(format!("dbbench {} failed ({})", args[0], output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(last) => json::parse(last).map_err(|e| format!("dbbench {} printed {e}", args[0])),
        None => Ok(Value::Null),
    }
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("the dbbench output has no number {key:?}"))
}

// -------------------------------------------------------------- postgres

/// Where `initdb`, `pg_ctl` and `pgbench` are: on the PATH, or in Debian's
/// versioned folder.
fn pg_bin() -> Option<PathBuf> {
    if proc::installed("initdb") && proc::installed("pg_ctl") && proc::installed("pgbench") {
        return Some(PathBuf::new());
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pgbench").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

/// A private PostgreSQL cluster, stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    port: u16,
}

impl Cluster {
    /// A command for a server tool, run as `postgres` when we are root,
    /// since initdb and postgres refuse to run as root.
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn start(bin: PathBuf, dir: &Path) -> Result<Cluster, String> {
        let as_postgres = running_as_root();
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if as_postgres {
            quiet(
                Command::new("chown").args(["-R", "postgres:"]).arg(dir),
                "chown",
            )?;
        }
        let cluster = Cluster {
            bin,
            data: dir.join("data"),
            as_postgres,
            port: proc::free_port()?,
        };
        eprintln!(
            "postgres: initdb and start on 127.0.0.1:{}...",
            cluster.port
        );
        quiet(
            cluster.tool("initdb").arg("-D").arg(&cluster.data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ]),
            "initdb",
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=64",
            cluster.port,
            dir.display()
        );
        quiet(
            cluster
                .tool("pg_ctl")
                .arg("-D")
                .arg(&cluster.data)
                .arg("-l")
                .arg(dir.join("log"))
                .args(["-o", &options, "-w", "-t", "60", "start"]),
            "pg_ctl start",
        )?;
        Ok(cluster)
    }

    /// `pgbench` (or `psql`) against this cluster.
    fn client(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ]);
        command
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a setup step, showing its output only if it fails.
fn quiet(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&output.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!("{what} failed ({}): {last}", output.status))
}

/// A running cluster ready for both workloads.
struct Pg {
    cluster: Cluster,
    insert_script: PathBuf,
}

impl Pg {
    fn start(scratch: &Path) -> Result<Pg, String> {
        let Some(bin) = pg_bin() else {
            return Err(PG_HINT.to_owned());
        };
        let cluster = Cluster::start(bin, &scratch.join("pg"))?;
        eprintln!("postgres: pgbench -i (scale 1, {ROWS} rows)...");
        quiet(
            cluster
                .client("pgbench")
                .args(["-i", "-s", "1", "-q", "postgres"]),
            "pgbench -i",
        )?;
        quiet(
            cluster.client("psql").args([
                "-q",
                "-c",
                "CREATE TABLE history (id bigserial PRIMARY KEY, client int NOT NULL, value bigint NOT NULL)",
                "postgres",
            ]),
            "psql",
        )?;
        // The same statement as ours: one row, its key assigned by the server.
        let insert_script = scratch.join("insert.sql");
        std::fs::write(
            &insert_script,
            "\\set v random(1, 1000000000)\nINSERT INTO history (client, value) VALUES (:client_id, :v);\n",
        )
        .map_err(|e| format!("cannot write the pgbench script: {e}"))?;
        Ok(Pg {
            cluster,
            insert_script,
        })
    }

    fn measure(&self, options: &Options, workload: Workload) -> Result<Figures, String> {
        let (secs, _) = phase(options);
        let mut command = self.cluster.client("pgbench");
        command.args(["-n", "-M", "prepared", "-j", "1"]);
        command.args(["-c", &workload.clients.to_string(), "-T", &secs.to_string()]);
        if workload.insert {
            command.arg("-f").arg(&self.insert_script);
        } else {
            command.arg("-S");
        }
        command.arg("postgres");
        pgbench(&mut command)
    }
}

fn pgbench(command: &mut Command) -> Result<Figures, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pgbench: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed ({}): {}",
            output.status,
            text.trim()
        ));
    }
    parse_pgbench(&text)
}

/// Reads `tps = N (without initial connection time)` and the average
/// latency from pgbench's report; pgbench prints no percentiles.
fn parse_pgbench(text: &str) -> Result<Figures, String> {
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let ops_s = field("tps = ").ok_or_else(|| format!("pgbench printed no tps: {text:?}"))?;
    Ok(Figures {
        ops_s,
        p50_us: field("latency average = ").map(|ms| ms * 1000.0),
        p99_us: None,
    })
}

// ---------------------------------------------------------------- report

/// Ours over theirs, to three decimals: finer than the noise already.
fn ratio(ours: f64, theirs: Option<f64>) -> Option<f64> {
    theirs
        .filter(|t| *t > 0.0)
        .map(|t| (ours / t * 1000.0).round() / 1000.0)
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn fmt_ratio(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

fn verdict(ratio: Option<f64>, aim: Option<f64>) -> String {
    match (ratio, aim) {
        (_, None) => String::new(),
        (None, Some(aim)) => format!(">= {aim:.1}x pg  (no peer)"),
        (Some(r), Some(aim)) if r >= aim => format!(">= {aim:.1}x pg  met"),
        (Some(_), Some(aim)) => format!(">= {aim:.1}x pg  BELOW"),
    }
}

fn print_table(options: &Options, rows: &[Row], notes: &[String], took: Duration) {
    let mode = if options.quick { "quick" } else { "full" };
    println!();
    println!("database benchmark ({mode}, {:.0} s)", took.as_secs_f64());
    println!();
    println!(
        "{:<16}{:>8}{:>11}{:>9}{:>9}{:>11}{:>8}{:>8}{:>13}{:>8}  aim",
        "workload",
        "clients",
        "ops/s",
        "p50 us",
        "p99 us",
        "pg ops/s",
        "avg us",
        "vs pg",
        "rusqlite/s",
        "of lim",
    );
    for row in rows {
        let vs_pg = ratio(row.ours.ops_s, row.pg.map(|p| p.ops_s));
        let of_limit = ratio(row.ours.ops_s, row.sqlite.map(|s| s.ops_s));
        println!(
            "{:<16}{:>8}{:>11.0}{:>9}{:>9}{:>11}{:>8}{:>8}{:>13}{:>8}  {}",
            row.workload.label,
            row.workload.clients,
            row.ours.ops_s,
            fmt_opt(row.ours.p50_us, 0),
            fmt_opt(row.ours.p99_us, 0),
            fmt_opt(row.pg.map(|p| p.ops_s), 0),
            fmt_opt(row.pg.and_then(|p| p.p50_us), 0),
            fmt_ratio(vs_pg),
            fmt_opt(row.sqlite.map(|s| s.ops_s), 0),
            fmt_ratio(of_limit),
            verdict(vs_pg, row.workload.aim),
        );
    }
    println!();
    println!("durable: backroom-db synchronous=full; postgres fsync=on, synchronous_commit=on;");
    println!("rusqlite in-process, WAL, synchronous=FULL, one thread and connection per client.");
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("note: {note}");
        }
    }
    println!();
}

/// Every figure, as the one JSON object that `--json` prints last.
fn summary(options: &Options, rows: &[Row], notes: &[String]) -> Value {
    let mut members = vec![
        ("bench".to_owned(), Value::from("db")),
        ("quick".to_owned(), Value::from(options.quick)),
    ];
    for row in rows {
        let figures = json::object([
            ("clients", f64::from(row.workload.clients).into()),
            ("ops_s", row.ours.ops_s.into()),
            ("p50_us", row.ours.p50_us.into()),
            ("p99_us", row.ours.p99_us.into()),
            ("pg_ops_s", row.pg.map(|p| p.ops_s).into()),
            ("pg_avg_us", row.pg.and_then(|p| p.p50_us).into()),
            ("rusqlite_ops_s", row.sqlite.map(|s| s.ops_s).into()),
            (
                "ratio_pg",
                ratio(row.ours.ops_s, row.pg.map(|p| p.ops_s)).into(),
            ),
            (
                "ratio_rusqlite",
                ratio(row.ours.ops_s, row.sqlite.map(|s| s.ops_s)).into(),
            ),
            ("aim", row.workload.aim.into()),
        ]);
        members.push((row.workload.key.to_owned(), figures));
    }
    let notes = notes.iter().map(|n| Value::from(n.as_str())).collect();
    members.push(("notes".to_owned(), Value::Array(notes)));
    Value::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_reports() {
        let text = "transaction type: <builtin: select only>\n\
                    number of clients: 8\n\
                    latency average = 0.231 ms\n\
                    initial connection time = 12.5 ms\n\
                    tps = 34567.890123 (without initial connection time)\n";
        let figures = parse_pgbench(text).unwrap();
        assert_eq!(figures.ops_s, 34567.890123);
        assert_eq!(figures.p50_us, Some(231.0));
        assert!(parse_pgbench("nothing").is_err());
    }

    #[test]
    fn only_the_aimed_rows_get_a_verdict() {
        assert_eq!(verdict(Some(1.2), None), "");
        assert!(verdict(Some(1.2), Some(1.0)).ends_with("met"));
        assert!(verdict(Some(0.5), Some(1.0)).ends_with("BELOW"));
    }
}
