//! `cargo xtask bench frame`: the frame protocol measured against peers that
//! do the same job well — redis for small round trips, iperf3 for bulk bytes.
//!
//! Our figures come from `crates/frame/examples/bench.rs`, built in release
//! mode and run as two processes, a server and a client, like the peers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::{self, Value};
use crate::proc::{self, Guard};

/// What we aim for, as a fraction of the peer's figure.
const RTT_AIM: f64 = 1.0;
const STREAM_AIM: f64 = 0.7;

const REDIS_HINT: &str =
    "redis-server or redis-benchmark is missing: apt-get install -y redis-server redis-tools";
const IPERF_HINT: &str = "iperf3 is missing: apt-get install -y iperf3";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Short phases and a smaller download: under a minute in all.
    pub quick: bool,
    /// End with one line of JSON holding every figure.
    pub json: bool,
}

impl Options {
    pub fn parse(flags: &[&str]) -> Result<Options, String> {
        let mut options = Options {
            quick: false,
            json: false,
        };
        for flag in flags {
            match *flag {
                "--quick" => options.quick = true,
                "--json" => options.json = true,
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(options)
    }

    /// How long each round-trip phase measures, after its warm-up.
    fn phase(&self) -> Duration {
        Duration::from_secs(if self.quick { 2 } else { 5 })
    }

    fn stream_bytes(&self) -> u64 {
        if self.quick { 256 << 20 } else { 1 << 30 }
    }
}

/// One round-trip workload, run the same way against us and against redis.
#[derive(Debug, Clone, Copy)]
struct Workload {
    key: &'static str,
    label: &'static str,
    conns: u32,
    depth: u32,
}

const WORKLOADS: [Workload; 2] = [
    Workload {
        key: "pipelined",
        label: "pipelined",
        conns: 1,
        depth: 64,
    },
    Workload {
        key: "connections",
        label: "unpipelined",
        conns: 16,
        depth: 1,
    },
];

/// Requests per second and latency percentiles of one run.
#[derive(Debug, Clone, Copy)]
struct RoundTrips {
    rps: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

struct RttRow {
    workload: Workload,
    ours: RoundTrips,
    redis: Option<RoundTrips>,
}

struct StreamRow {
    bytes: u64,
    ours_mib_s: f64,
    iperf_mib_s: Option<f64>,
}

pub fn frame(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let bench = build_bench()?;
    let mut notes = Vec::new();

    let (ours_rtt, ours_stream) = measure_ours(&bench, options)?;

    let redis = measure_redis(options).unwrap_or_else(|e| {
        notes.push(e);
        Vec::new()
    });
    let rows: Vec<RttRow> = WORKLOADS
        .iter()
        .zip(ours_rtt)
        .map(|(workload, ours)| RttRow {
            workload: *workload,
            ours,
            redis: redis
                .iter()
                .find(|(key, _)| *key == workload.key)
                .map(|(_, r)| *r),
        })
        .collect();

    let iperf_mib_s = measure_iperf().map(Some).unwrap_or_else(|e| {
        notes.push(e);
        None
    });
    let stream = StreamRow {
        bytes: options.stream_bytes(),
        ours_mib_s: ours_stream,
        iperf_mib_s,
    };

    print_table(options, &rows, &stream, &notes, started.elapsed());
    if options.json {
        println!("{}", summary(options, &rows, &stream, &notes).render());
    }
    Ok(())
}

/// Builds the bench example in release mode and returns its path.
fn build_bench() -> Result<PathBuf, String> {
    eprintln!("building the bench example (release)...");
    proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-frame",
        "--example",
        "bench",
    ])?
    .executable("example", "bench")
}

// ------------------------------------------------------------------ ours

/// Runs our server, then each workload and the download against it.
fn measure_ours(bench: &Path, options: &Options) -> Result<(Vec<RoundTrips>, f64), String> {
    let (_server, addr) = start_our_server(bench)?;
    let mut rtt = Vec::new();
    for workload in WORKLOADS {
        eprintln!(
            "frame: {} round trips, {} conn x depth {}...",
            workload.label, workload.conns, workload.depth
        );
        let line = run_client(
            bench,
            &[
                "rtt",
                "--addr",
                &addr,
                "--conns",
                &workload.conns.to_string(),
                "--depth",
                &workload.depth.to_string(),
                "--secs",
                &options.phase().as_secs_f64().to_string(),
                "--warmup",
                "0.5",
            ],
        )?;
        rtt.push(RoundTrips {
            rps: number(&line, "rps")?,
            p50_us: Some(number(&line, "p50_us")?),
            p99_us: Some(number(&line, "p99_us")?),
        });
    }
    eprintln!("frame: download of {} MiB...", options.stream_bytes() >> 20);
    let bytes = options.stream_bytes().to_string();
    let line = run_client(bench, &["stream", "--addr", &addr, "--bytes", &bytes])?;
    Ok((rtt, number(&line, "mib_s")?))
}

/// Starts `bench server` on a port of its choosing and reads which one.
fn start_our_server(bench: &Path) -> Result<(Guard, String), String> {
    Guard::spawn_announced(
        "the bench server",
        Command::new(bench)
            .args(["server", "--listen", "127.0.0.1:0", "--stop-on-stdin-eof"])
            // The server stops when this pipe closes, so it cannot outlive
            // us even if we are killed before the guard's drop runs.
            .stdin(Stdio::piped()),
        "listening ",
        Duration::from_secs(10),
    )
}

/// Runs one bench client to its end and parses its JSON line.
fn run_client(bench: &Path, args: &[&str]) -> Result<Value, String> {
    let output = Command::new(bench)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the bench client: {e}"))?;
    if !output.status.success() {
        return Err(format!("bench {} failed ({})", args[0], output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    json::parse(last.unwrap_or_default())
        .map_err(|e| format!("bench {} printed no figures: {e}", args[0]))
}

fn number(value: &Value, key: &str) -> Result<f64, String> {
    value
        .get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("the bench output has no number {key:?}"))
}

// ----------------------------------------------------------------- redis

/// Runs redis-benchmark's PING with each workload's shape against a private
/// redis-server.
fn measure_redis(options: &Options) -> Result<Vec<(&'static str, RoundTrips)>, String> {
    if !proc::installed("redis-server") || !proc::installed("redis-benchmark") {
        return Err(REDIS_HINT.to_owned());
    }
    let port = proc::free_port()?;
    let mut server = Guard::spawn(
        "redis-server",
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    proc::wait_for_port(port, Duration::from_secs(5))
        .map_err(|e| format!("redis-server did not start: {e}"))?;
    server.check_alive()?;
    let mut results = Vec::new();
    for workload in WORKLOADS {
        eprintln!(
            "redis: PING, {} conn x pipeline {}...",
            workload.conns, workload.depth
        );
        // redis-benchmark counts requests, not seconds: a short run tells us
        // how many fill one phase.
        let probe = redis_benchmark(port, workload, 20_000 * u64::from(workload.depth))?;
        let wanted = probe.rps * options.phase().as_secs_f64();
        let requests = (wanted as u64).clamp(10_000, 200_000_000);
        results.push((workload.key, redis_benchmark(port, workload, requests)?));
    }
    Ok(results)
}

fn redis_benchmark(port: u16, workload: Workload, requests: u64) -> Result<RoundTrips, String> {
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &workload.conns.to_string()])
        .args(["-P", &workload.depth.to_string()])
        .args(["-n", &requests.to_string()])
        .args(["-t", "ping_mbulk", "--csv"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run redis-benchmark: {e}"))?;
    if !output.status.success() {
        return Err(format!("redis-benchmark failed ({})", output.status));
    }
    parse_redis_csv(&String::from_utf8_lossy(&output.stdout))
}

/// Reads redis-benchmark's `--csv` output. Redis 6 and later print a header
/// and latency percentiles; older ones print just `"TEST","rps"`.
fn parse_redis_csv(csv: &str) -> Result<RoundTrips, String> {
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split(',')
                .map(|f| f.trim().trim_matches('"'))
                .collect()
        })
        .collect();
    let header = rows.iter().find(|row| row.first() == Some(&"test"));
    let data = rows
        .iter()
        .find(|row| row.first().is_some_and(|t| t.starts_with("PING")))
        .ok_or_else(|| format!("redis-benchmark printed no PING figures: {csv:?}"))?;
    let column = |name: &str, fallback: Option<usize>| {
        let index = header.map_or(fallback, |h| h.iter().position(|c| *c == name));
        index
            .and_then(|i| data.get(i))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rps = column("rps", Some(1)).ok_or("redis-benchmark printed no rps")?;
    Ok(RoundTrips {
        rps,
        p50_us: column("p50_latency_ms", None).map(|ms| ms * 1000.0),
        p99_us: column("p99_latency_ms", None).map(|ms| ms * 1000.0),
    })
}

// ---------------------------------------------------------------- iperf3

/// iperf3's loopback throughput, in MiB/s.
pub(crate) fn measure_iperf() -> Result<f64, String> {
    if !proc::installed("iperf3") {
        return Err(IPERF_HINT.to_owned());
    }
    eprintln!("iperf3: 3 s over loopback...");
    let port = proc::free_port()?.to_string();
    let mut server = Guard::spawn(
        "the iperf3 server",
        Command::new("iperf3")
            .args(["-s", "-1", "-p", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    // Probing the port would count as iperf3's one test, so retry the client
    // instead while the server is still coming up.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = Instant::now();
        let output = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port, "-t", "3", "-J"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run iperf3: {e}"))?;
        let report = json::parse(&String::from_utf8_lossy(&output.stdout));
        let bps = report.as_ref().ok().and_then(|r| {
            r.path(&["end", "sum_received", "bits_per_second"])
                .and_then(Value::as_f64)
        });
        if let (true, Some(bps)) = (output.status.success(), bps) {
            return Ok((bps / 8.0 / (1024.0 * 1024.0) * 10.0).round() / 10.0);
        }
        let quick_refusal = attempt.elapsed() < Duration::from_secs(1);
        if !quick_refusal || Instant::now() >= deadline {
            let why = report
                .ok()
                .and_then(|r| r.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| output.status.to_string());
            return Err(format!("iperf3 failed: {why}"));
        }
        server.check_alive()?;
        std::thread::sleep(Duration::from_millis(100));
    }
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

fn verdict(ratio: Option<f64>, aim: f64) -> String {
    match ratio {
        None => format!(">= {aim:.1}x  (no peer)"),
        Some(r) if r >= aim => format!(">= {aim:.1}x  met"),
        Some(_) => format!(">= {aim:.1}x  BELOW"),
    }
}

fn print_table(
    options: &Options,
    rows: &[RttRow],
    stream: &StreamRow,
    notes: &[String],
    took: Duration,
) {
    let mode = if options.quick { "quick" } else { "full" };
    println!();
    println!(
        "frame protocol benchmark ({mode}, {:.0} s)",
        took.as_secs_f64()
    );
    println!();
    println!(
        "{:<14}{:>6}{:>6}{:>11}{:>9}{:>9}{:>11}{:>9}{:>9}{:>8}  aim",
        "round trips",
        "conns",
        "depth",
        "rps",
        "p50 us",
        "p99 us",
        "redis rps",
        "p50 us",
        "p99 us",
        "ratio"
    );
    for row in rows {
        let redis = row.redis;
        let r = ratio(row.ours.rps, redis.map(|r| r.rps));
        println!(
            "{:<14}{:>6}{:>6}{:>11.0}{:>9}{:>9}{:>11}{:>9}{:>9}{:>8}  {}",
            row.workload.label,
            row.workload.conns,
            row.workload.depth,
            row.ours.rps,
            fmt_opt(row.ours.p50_us, 1),
            fmt_opt(row.ours.p99_us, 1),
            fmt_opt(redis.map(|r| r.rps), 0),
            fmt_opt(redis.and_then(|r| r.p50_us), 1),
            fmt_opt(redis.and_then(|r| r.p99_us), 1),
            fmt_ratio(r),
            verdict(r, RTT_AIM),
        );
    }
    println!();
    println!(
        "{:<14}{:>12}{:>11}{:>14}{:>8}  aim",
        "stream", "MiB", "MiB/s", "iperf3 MiB/s", "ratio"
    );
    let r = ratio(stream.ours_mib_s, stream.iperf_mib_s);
    println!(
        "{:<14}{:>12}{:>11.1}{:>14}{:>8}  {}",
        "download",
        stream.bytes >> 20,
        stream.ours_mib_s,
        fmt_opt(stream.iperf_mib_s, 1),
        fmt_ratio(r),
        verdict(r, STREAM_AIM),
    );
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("note: {note}");
        }
    }
    println!();
}

/// Every figure, as the one JSON object that `--json` prints last.
fn summary(options: &Options, rows: &[RttRow], stream: &StreamRow, notes: &[String]) -> Value {
    let mut members = vec![
        ("bench".to_owned(), Value::from("frame")),
        ("quick".to_owned(), Value::from(options.quick)),
    ];
    for row in rows {
        let redis = row.redis;
        let figures = json::object([
            ("conns", f64::from(row.workload.conns).into()),
            ("depth", f64::from(row.workload.depth).into()),
            ("rps", row.ours.rps.into()),
            ("p50_us", row.ours.p50_us.into()),
            ("p99_us", row.ours.p99_us.into()),
            ("redis_rps", redis.map(|r| r.rps).into()),
            ("redis_p50_us", redis.and_then(|r| r.p50_us).into()),
            ("redis_p99_us", redis.and_then(|r| r.p99_us).into()),
            ("ratio", ratio(row.ours.rps, redis.map(|r| r.rps)).into()),
            ("aim", RTT_AIM.into()),
        ]);
        members.push((row.workload.key.to_owned(), figures));
    }
    let figures = json::object([
        ("bytes", (stream.bytes as f64).into()),
        ("mib_s", stream.ours_mib_s.into()),
        ("iperf3_mib_s", stream.iperf_mib_s.into()),
        ("ratio", ratio(stream.ours_mib_s, stream.iperf_mib_s).into()),
        ("aim", STREAM_AIM.into()),
    ]);
    members.push(("stream".to_owned(), figures));
    let notes = notes.iter().map(|n| Value::from(n.as_str())).collect();
    members.push(("notes".to_owned(), Value::Array(notes)));
    Value::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_redis_csv_with_percentiles() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"PING_MBULK\",\"749063.69\",\"0.077\",\"0.024\",\"0.079\",\"0.111\",\"0.151\",\"1.599\"\n";
        let figures = parse_redis_csv(csv).unwrap();
        assert_eq!(figures.rps, 749063.69);
        assert_eq!(figures.p50_us, Some(79.0));
        assert_eq!(figures.p99_us, Some(151.0));
    }

    #[test]
    fn reads_old_redis_csv_without_header() {
        let figures = parse_redis_csv("\"PING_BULK\",\"81234.56\"\n").unwrap();
        assert_eq!(figures.rps, 81234.56);
        assert_eq!(figures.p50_us, None);
    }

    #[test]
    fn flags_are_checked() {
        let options = Options::parse(&["--json", "--quick"]).unwrap();
        assert!(options.quick && options.json);
        assert!(Options::parse(&["--fast"]).is_err());
    }
}
