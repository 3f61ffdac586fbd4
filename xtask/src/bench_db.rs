//! `cargo xtask bench db`: backroom-db measured against PostgreSQL doing the
//! same work in the same run, with in-process rusqlite as the limit — point
//! selects by primary key, and durable single-row inserts.
//!
//! Our figures come from the real `backroom-db` binary, loaded by
//! `crates/db/examples/dbbench.rs`; both are built in release mode and run as
//! separate processes. PostgreSQL runs from a temporary `initdb` on a free
//! loopback port with its durable defaults (`fsync`, `synchronous_commit`),
//! loaded by `pgbench`.
//!
//! Then pgbench itself runs custom scripts (`-n -f`) against PostgreSQL and
//! against backroom-db's PostgreSQL face, in the same run: the same client
//! on both sides.

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

/// What a pgbench script does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// `SELECT abalance FROM pgbench_accounts WHERE aid = :aid`.
    Select,
    /// One durable single-row insert.
    Insert,
}

/// One pgbench run, made the same way against PostgreSQL and our face.
#[derive(Debug, Clone, Copy)]
struct PgbenchRun {
    key: &'static str,
    script: Script,
    /// pgbench's `-M`: `simple` or `prepared`.
    mode: &'static str,
    clients: u32,
}

const PGBENCH_RUNS: [PgbenchRun; 5] = [
    PgbenchRun {
        key: "pgbench_select_1_simple",
        script: Script::Select,
        mode: "simple",
        clients: 1,
    },
    PgbenchRun {
        key: "pgbench_select_1_prepared",
        script: Script::Select,
        mode: "prepared",
        clients: 1,
    },
    PgbenchRun {
        key: "pgbench_select_8_simple",
        script: Script::Select,
        mode: "simple",
        clients: 8,
    },
    PgbenchRun {
        key: "pgbench_select_8_prepared",
        script: Script::Select,
        mode: "prepared",
        clients: 8,
    },
    PgbenchRun {
        key: "pgbench_insert_16",
        script: Script::Insert,
        mode: "prepared",
        clients: 16,
    },
];

/// The tables of pgbench's scripts on our face: pgbench -i cannot build
/// them there (it uses COPY and PostgreSQL's own DDL). The load generator
/// has made `history` already, with the same columns.
fn face_setup() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS pgbench_accounts \
           (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER, filler TEXT); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
           INSERT OR IGNORE INTO pgbench_accounts SELECT i, 1, 0, '' FROM n; \
         CREATE TABLE IF NOT EXISTS history \
           (id INTEGER PRIMARY KEY, client INTEGER NOT NULL, value INTEGER NOT NULL);"
    )
}

struct PgbenchRow {
    run: PgbenchRun,
    ours: Option<f64>,
    pg: Option<f64>,
}

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

/// How long each phase measures, and its warm-up: a quick run takes
/// under a minute, a full one keeps the five seconds.
fn phase(options: &Options) -> (u64, f64) {
    if options.quick { (1, 0.25) } else { (5, 1.0) }
}

pub fn db(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let built = build()?;
    let scratch = Scratch::new()?;
    let mut notes = Vec::new();

    // Every system is set up first, then each workload runs on the three
    // back to back: on a shared machine the load drifts, and it should
    // drift over all three alike rather than over one system's phases.
    let (_server, addr, face_port) = start_ours(&built, &scratch.0)?;
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
        let mode = if workload.insert {
            "sqlite-insert"
        } else {
            "sqlite-select"
        };
        // The limit is not a ratio the issue tracks: quick runs leave it.
        let sqlite = (!options.quick)
            .then(|| {
                eprintln!("rusqlite: {what}...");
                measure(&built, options, mode, "--dir", limit, workload)
                    .map_err(|e| notes.push(format!("rusqlite: {e}")))
                    .ok()
            })
            .flatten();
        rows.push(Row {
            workload,
            ours,
            pg: pg_figures,
            sqlite,
        });
    }
    let pgbench_rows = match &pg {
        Some(pg) => pgbench_both(options, pg, face_port, &mut notes),
        None => Vec::new(),
    };
    drop(pg);
    print_table(options, &rows, &notes, started.elapsed());
    print_pgbench(&pgbench_rows);
    if options.json {
        println!(
            "{}",
            summary(options, &rows, &pgbench_rows, &notes).render()
        );
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
fn start_ours(built: &Built, scratch: &Path) -> Result<(Guard, String, u16), String> {
    let face_port = proc::free_port()?;
    let (server, addr) = start_server(built, &scratch.join("ours"), face_port)?;
    eprintln!("backroom-db: filling {ROWS} rows...");
    run_load(
        &built.load,
        &["setup", "--addr", &addr, "--rows", &ROWS.to_string()],
    )?;
    Ok((server, addr, face_port))
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
/// default (`synchronous = "full"`), and reads where it listens; its
/// PostgreSQL face listens on `face_port`.
fn start_server(built: &Built, data: &Path, face_port: u16) -> Result<(Guard, String), String> {
    Guard::spawn_announced(
        "backroom-db",
        Command::new(&built.server)
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--pg", &format!("127.0.0.1:{face_port}")])
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
    select_script: PathBuf,
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
        let select_script = scratch.join("select.sql");
        std::fs::write(
            &select_script,
            format!(
                "\\set aid random(1, {ROWS})\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n"
            ),
        )
        .map_err(|e| format!("cannot write the pgbench script: {e}"))?;
        Ok(Pg {
            cluster,
            insert_script,
            select_script,
        })
    }

    /// pgbench (or psql) against our PostgreSQL face, database `main`.
    fn face_client(&self, name: &str, port: u16) -> Command {
        let mut command = Command::new(self.cluster.bin.join(name));
        command.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "bench"]);
        command
    }

    /// One custom-script pgbench run with `command` as the client.
    fn run_script(
        &self,
        mut command: Command,
        options: &Options,
        run: PgbenchRun,
        db: &str,
    ) -> Result<f64, String> {
        let (secs, _) = phase(options);
        let script = match run.script {
            Script::Select => &self.select_script,
            Script::Insert => &self.insert_script,
        };
        command.args(["-n", "-M", run.mode, "-j", "1"]);
        command.args(["-c", &run.clients.to_string(), "-T", &secs.to_string()]);
        command.arg("-f").arg(script).arg(db);
        pgbench(&mut command).map(|f| f.ops_s)
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

/// Runs every pgbench script against PostgreSQL and against our face,
/// each run on both back to back.
fn pgbench_both(
    options: &Options,
    pg: &Pg,
    face_port: u16,
    notes: &mut Vec<String>,
) -> Vec<PgbenchRow> {
    eprintln!("backroom-db (pg face): creating pgbench's tables...");
    let setup = quiet(
        pg.face_client("psql", face_port)
            .args(["-q", "-c", &face_setup(), "main"]),
        "psql setup on the PostgreSQL face",
    );
    if let Err(e) = setup {
        notes.push(e);
        return Vec::new();
    }
    let mut rows = Vec::new();
    for run in PGBENCH_RUNS {
        let what = format!("pgbench {} -M {} -c {}", run.key, run.mode, run.clients);
        eprintln!("backroom-db (pg face): {what}...");
        let ours = pg
            .run_script(pg.face_client("pgbench", face_port), options, run, "main")
            .map_err(|e| notes.push(format!("pg face: {e}")))
            .ok();
        eprintln!("postgres: {what}...");
        let theirs = pg
            .run_script(pg.cluster.client("pgbench"), options, run, "postgres")
            .map_err(|e| notes.push(format!("postgres: {e}")))
            .ok();
        rows.push(PgbenchRow {
            run,
            ours,
            pg: theirs,
        });
    }
    rows
}

fn print_pgbench(rows: &[PgbenchRow]) {
    if rows.is_empty() {
        return;
    }
    println!("pgbench -n -f, the same client against both (transactions/s):");
    println!();
    println!(
        "{:<16}{:>10}{:>8}{:>14}{:>11}{:>8}",
        "script", "-M", "clients", "pg face tps", "pg tps", "vs pg"
    );
    for row in rows {
        let label = match row.run.script {
            Script::Select => "point select",
            Script::Insert => "durable insert",
        };
        let theirs = row.pg;
        println!(
            "{:<16}{:>10}{:>8}{:>14}{:>11}{:>8}",
            label,
            row.run.mode,
            row.run.clients,
            fmt_opt(row.ours, 0),
            fmt_opt(theirs, 0),
            fmt_ratio(row.ours.and_then(|o| ratio(o, theirs))),
        );
    }
    println!();
}

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
fn summary(options: &Options, rows: &[Row], pgbench: &[PgbenchRow], notes: &[String]) -> Value {
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
    for row in pgbench {
        let figures = json::object([
            ("clients", f64::from(row.run.clients).into()),
            ("mode", Value::from(row.run.mode)),
            ("face_tps", row.ours.into()),
            ("pg_tps", row.pg.into()),
            ("ratio_pg", row.ours.and_then(|o| ratio(o, row.pg)).into()),
        ]);
        members.push((row.run.key.to_owned(), figures));
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
