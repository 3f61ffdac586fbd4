//! The load generator of `cargo xtask bench db`: point selects and durable
//! single-row inserts against a running `backroom-db`, and the same work on
//! in-process rusqlite, the limit any SQLite server can reach.
//!
//! ```text
//! dbbench setup         --addr ADDR [--rows N]
//! dbbench select        --addr ADDR [--clients N] [--rows N] [--secs S] [--warmup S]
//! dbbench insert        --addr ADDR [--clients N] [--secs S] [--warmup S]
//! dbbench sqlite-select --dir DIR   [--clients N] [--rows N] [--secs S] [--warmup S]
//! dbbench sqlite-insert --dir DIR   [--clients N] [--secs S] [--warmup S]
//! ```
//!
//! The measuring modes print one line of JSON: `ops_s`, `p50_us`, `p99_us`
//! and `errors`.

// This is a command-line tool whose results are its standard output.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use backroom_api::db::{BatchArgs, DbClient, ExecArgs, Statement};

const USAGE: &str = "usage:
  dbbench setup         --addr ADDR [--rows N]
  dbbench select        --addr ADDR [--clients N] [--rows N] [--secs S] [--warmup S]
  dbbench insert        --addr ADDR [--clients N] [--secs S] [--warmup S]
  dbbench sqlite-select --dir DIR   [--clients N] [--rows N] [--secs S] [--warmup S]
  dbbench sqlite-insert --dir DIR   [--clients N] [--secs S] [--warmup S]";

const SELECT_SQL: &str = "SELECT id, balance, filler FROM accounts WHERE id = ?1";
const INSERT_SQL: &str = "INSERT INTO history (client, value) VALUES (?1, ?2)";
const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, filler TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY, client INTEGER NOT NULL, value INTEGER NOT NULL)",
];
/// pgbench's `accounts` at scale 1 has 100 000 rows; ours matches it.
const DEFAULT_ROWS: u64 = 100_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dbbench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `--name value` flags after the mode.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut pairs = Vec::new();
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected {flag:?}\n{USAGE}"))?;
            let value = rest
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Flags(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name} {v:?} is not a number"))
        })
    }

    fn seconds(&self, name: &str, default: f64) -> Result<Duration, String> {
        let secs = self.get(name).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .map_err(|_| format!("--{name} {v:?} is not a number"))
        })?;
        Duration::try_from_secs_f64(secs).map_err(|e| format!("--{name}: {e}"))
    }
}

/// How long to measure, after how long a warm-up, with how many clients.
#[derive(Debug, Clone, Copy)]
struct Plan {
    clients: usize,
    rows: u64,
    warmup: Duration,
    measure: Duration,
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((mode, rest)) = args.split_first() else {
        return Err(USAGE.to_owned());
    };
    let flags = Flags::parse(rest)?;
    let plan = Plan {
        clients: flags.number("clients", 1)?.max(1) as usize,
        rows: flags.number("rows", DEFAULT_ROWS)?.max(1),
        warmup: flags.seconds("warmup", 0.5)?,
        measure: flags.seconds("secs", 5.0)?,
    };
    // The load generator runs on one thread, as pgbench does with -j 1:
    // with two cores shared with the server, more threads cost more than
    // they give.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let figures = match mode.as_str() {
        "setup" => {
            let addr = flags.required("addr")?;
            return runtime.block_on(setup(&addr, plan.rows));
        }
        "select" => runtime.block_on(remote(&flags.required("addr")?, plan, Work::Select))?,
        "insert" => runtime.block_on(remote(&flags.required("addr")?, plan, Work::Insert))?,
        "sqlite-select" => local(&PathBuf::from(flags.required("dir")?), plan, Work::Select)?,
        "sqlite-insert" => local(&PathBuf::from(flags.required("dir")?), plan, Work::Insert)?,
        other => return Err(format!("unknown mode {other:?}\n{USAGE}")),
    };
    println!("{}", figures.json());
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Select,
    Insert,
}

/// Operations per second and latency percentiles of one run.
struct Figures {
    ops_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

impl Figures {
    fn from_latencies(mut latencies: Vec<u32>, errors: u64, measured: Duration) -> Figures {
        latencies.sort_unstable();
        let at = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let i = ((latencies.len() - 1) as f64 * q).round() as usize;
            f64::from(latencies[i])
        };
        Figures {
            ops_s: latencies.len() as f64 / measured.as_secs_f64(),
            p50_us: at(0.50),
            p99_us: at(0.99),
            errors,
        }
    }

    fn json(&self) -> String {
        format!(
            "{{\"ops_s\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1},\"errors\":{}}}",
            self.ops_s, self.p50_us, self.p99_us, self.errors
        )
    }
}

/// A tiny xorshift: the keys need spread, not quality, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------- remote

/// Creates the tables and fills `accounts` with `rows` rows, in batches.
async fn setup(addr: &str, rows: u64) -> Result<(), String> {
    let client = DbClient::connect(addr, None)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    for sql in SCHEMA {
        client
            .execute_main(Statement::new(sql))
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    let filler = "x".repeat(84);
    let mut id = 1;
    while id <= rows {
        let end = (id + 5_000).min(rows + 1);
        let statements = (id..end)
            .map(|i| {
                Statement::new(
                    "INSERT OR REPLACE INTO accounts (id, balance, filler) VALUES (?1, 0, ?2)",
                )
                .bind(i as i64)
                .bind(filler.as_str())
            })
            .collect();
        let args = BatchArgs {
            statements,
            ..BatchArgs::default()
        };
        client
            .batch(&args)
            .await
            .map_err(|e| format!("filling accounts: {e}"))?;
        id = end;
    }
    Ok(())
}

/// Runs `plan.clients` connections against the server, each one request at
/// a time, and counts the answers that came within the measured window.
async fn remote(addr: &str, plan: Plan, work: Work) -> Result<Figures, String> {
    let mut clients = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        let client = DbClient::connect(addr, None)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        clients.push(client);
    }
    let started = Instant::now();
    let measure_from = started + plan.warmup;
    let until = measure_from + plan.measure;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, client)| {
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                loop {
                    let begun = Instant::now();
                    if begun >= until {
                        break;
                    }
                    let statement = match work {
                        Work::Select => {
                            Statement::new(SELECT_SQL).bind((rng.next() % plan.rows + 1) as i64)
                        }
                        Work::Insert => Statement::new(INSERT_SQL)
                            .bind(n as i64)
                            .bind((rng.next() >> 1) as i64),
                    };
                    let args = ExecArgs {
                        statement,
                        ..ExecArgs::default()
                    };
                    let answer = match work {
                        Work::Select => client.query(&args).await.map(|r| r.rows.len() == 1),
                        Work::Insert => client.execute(&args).await.map(|r| r.rows_affected == 1),
                    };
                    let done = Instant::now();
                    if begun < measure_from || done > until {
                        continue;
                    }
                    match answer {
                        Ok(true) => latencies.push(micros(done - begun)),
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.map_err(|e| format!("a client failed: {e}"))?;
        latencies.extend(l);
        errors += e;
    }
    Ok(Figures::from_latencies(latencies, errors, plan.measure))
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

// ----------------------------------------------------------------- local

/// Opens a connection configured as the server configures its own: WAL,
/// `synchronous=FULL`, a busy timeout so writers queue instead of failing.
fn open(path: &Path) -> Result<rusqlite::Connection, String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| format!("open: {e}"))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(|e| format!("pragmas: {e}"))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| format!("busy timeout: {e}"))?;
    Ok(conn)
}

/// The same work on in-process rusqlite: one thread and connection per
/// client, each statement prepared once.
fn local(dir: &Path, plan: Plan, work: Work) -> Result<Figures, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("limit.db");
    let conn = open(&path)?;
    for sql in SCHEMA {
        conn.execute(sql, []).map_err(|e| format!("{sql}: {e}"))?;
    }
    let have: u64 = conn
        .query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))
        .map_err(|e| format!("count: {e}"))?;
    if have < plan.rows {
        let filler = "x".repeat(84);
        let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
        {
            let mut insert = tx
                .prepare("INSERT OR REPLACE INTO accounts (id, balance, filler) VALUES (?1, 0, ?2)")
                .map_err(|e| e.to_string())?;
            for id in 1..=plan.rows {
                insert
                    .execute(rusqlite::params![id as i64, filler])
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    drop(conn);
    let started = Instant::now();
    let measure_from = started + plan.warmup;
    let until = measure_from + plan.measure;
    let threads: Vec<_> = (0..plan.clients)
        .map(|n| {
            let path = path.clone();
            std::thread::spawn(move || local_client(&path, n, plan, work, measure_from, until))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for thread in threads {
        let (l, e) = thread
            .join()
            .map_err(|_| "a rusqlite client panicked".to_owned())??;
        latencies.extend(l);
        errors += e;
    }
    Ok(Figures::from_latencies(latencies, errors, plan.measure))
}

fn local_client(
    path: &Path,
    n: usize,
    plan: Plan,
    work: Work,
    measure_from: Instant,
    until: Instant,
) -> Result<(Vec<u32>, u64), String> {
    let conn = open(path)?;
    let sql = match work {
        Work::Select => SELECT_SQL,
        Work::Insert => INSERT_SQL,
    };
    let mut statement = conn.prepare(sql).map_err(|e| e.to_string())?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1));
    let mut latencies = Vec::new();
    let mut errors = 0;
    loop {
        let begun = Instant::now();
        if begun >= until {
            break;
        }
        let ok = match work {
            Work::Select => {
                let id = (rng.next() % plan.rows + 1) as i64;
                statement
                    .query_row([id], |r| {
                        let _: (i64, i64, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                        Ok(())
                    })
                    .is_ok()
            }
            Work::Insert => statement
                .execute(rusqlite::params![n as i64, (rng.next() >> 1) as i64])
                .is_ok(),
        };
        let done = Instant::now();
        if begun < measure_from || done > until {
            continue;
        }
        if ok {
            latencies.push(micros(done - begun));
        } else {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}
