//! `cargo xtask demo --headless`: one scripted step per client-server
//! pattern, driven through the `backroom` CLI (and, for the proxy, raw HTTP
//! as a browser speaks it), with a transcript a person can follow.
//!
//! Each step prints the commands it runs with their output, then its checks.
//! The scenario fails if any check does.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::demo::{self, Suite};
use crate::demo_http::{self, HttpResponse};
use crate::demo_origin;
use crate::json::{self, Value};
use crate::proc;

type Step = fn(&Suite, &mut Transcript) -> Result<(), String>;

pub fn run(suite: &Suite, big_mib: u64) -> Result<(), String> {
    let steps: [(&str, Step); 6] = [
        (
            "request/response: files put, get and checksum",
            request_response,
        ),
        ("RPC: a typed query to the database server", rpc),
        (
            "pub/sub push: the print queue's events while jobs print by priority",
            pub_sub,
        ),
        ("streaming: a large file, with progress", |suite, t| {
            let mib = t.big_mib;
            streaming(suite, t, mib)
        }),
        (
            "the travel-agent race: 50 agents, 10 seats",
            travel_agent_race,
        ),
        ("the proxy: GET, CONNECT and a live SSE stream", proxy),
    ];
    let mut transcript = Transcript {
        big_mib,
        failed_checks: 0,
        failed_steps: Vec::new(),
    };
    println!(
        "backroom demo, headless: every `backroom` command below runs as\n  \
         backroom --config {} ...\nin {}\n",
        suite.config.display(),
        suite.data.display()
    );
    for (n, (title, step)) in steps.iter().enumerate() {
        println!("── step {} of {}: {title}", n + 1, steps.len());
        let failed_before = transcript.failed_checks;
        if let Err(e) = step(suite, &mut transcript) {
            transcript.check(false, &e);
        }
        if demo::stopping() {
            return Err("interrupted".into());
        }
        if transcript.failed_checks > failed_before {
            transcript.failed_steps.push(n + 1);
        }
        println!();
    }
    let passed = steps.len() - transcript.failed_steps.len();
    println!("{passed} of {} steps passed", steps.len());
    if transcript.failed_steps.is_empty() {
        Ok(())
    } else {
        Err(format!("steps {:?} failed", transcript.failed_steps))
    }
}

/// What has been printed and checked so far.
struct Transcript {
    big_mib: u64,
    failed_checks: usize,
    failed_steps: Vec<usize>,
}

impl Transcript {
    fn command(&self, shown: &str) {
        println!("  $ {shown}");
    }

    fn output(&self, text: &str) {
        for line in text.lines() {
            println!("    {line}");
        }
    }

    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            println!("  ✓ {what}");
        } else {
            println!("  ✗ {what}");
            self.failed_checks += 1;
        }
    }

    /// Runs `backroom ARGS` and shows it with its output; fails unless it
    /// succeeds.
    fn backroom(&self, suite: &Suite, args: &[&str]) -> Result<String, String> {
        self.command(&shown_command(args));
        let out = suite.ok(args)?;
        self.output(&out);
        Ok(out)
    }
}

/// `backroom ARGS` as a shell would need it typed.
fn shown_command(args: &[&str]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|arg| {
            if arg.is_empty() || arg.contains([' ', '*', '(', ')', '\'', '<', '>', ';']) {
                format!("\"{arg}\"")
            } else {
                (*arg).to_owned()
            }
        })
        .collect();
    format!("backroom {}", quoted.join(" "))
}

// ------------------------------------------------------------ 1

fn request_response(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    let text = "Hello from the headless demo.\nThis file went up and came back.\n";
    demo::write_file(&suite.data.join("sample/hello.txt"), text)?;
    let _ = fs::remove_file(suite.data.join("sample/hello-back.txt"));
    t.backroom(suite, &["files", "mkdir", "--parents", "demo"])?;
    t.backroom(
        suite,
        &[
            "files",
            "put",
            "--overwrite",
            "sample/hello.txt",
            "demo/hello.txt",
        ],
    )?;
    t.backroom(
        suite,
        &["files", "get", "demo/hello.txt", "sample/hello-back.txt"],
    )?;
    let back = fs::read(suite.data.join("sample/hello-back.txt"))
        .map_err(|e| format!("cannot read the downloaded copy: {e}"))?;
    t.check(
        back == text.as_bytes(),
        "the downloaded copy is byte for byte the uploaded file",
    );
    let remote = t.backroom(suite, &["files", "sum", "demo/hello.txt"])?;
    compare_digest(t, &suite.data.join("sample/hello.txt"), remote.trim())
}

/// Checks the server's SHA-256 against `sha256sum` of the local file.
fn compare_digest(t: &mut Transcript, local: &Path, remote: &str) -> Result<(), String> {
    if !proc::installed("sha256sum") {
        t.check(
            remote.len() == 64 && remote.bytes().all(|b| b.is_ascii_hexdigit()),
            "the server's digest is a SHA-256 (sha256sum is not installed to compare)",
        );
        return Ok(());
    }
    let out = demo::run(
        std::process::Command::new("sha256sum").arg(local),
        Duration::from_secs(120),
    )?;
    let local_digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    t.check(
        out.status.success() && local_digest == remote,
        &format!("the server's SHA-256 equals sha256sum's here ({local_digest})"),
    );
    Ok(())
}

// ------------------------------------------------------------ 2

fn rpc(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    let sql = "SELECT destination, departs, price_eur, count(*) - count(holder) AS free_seats \
               FROM trips JOIN seats ON seats.trip_id = trips.id \
               GROUP BY trips.id ORDER BY departs";
    t.backroom(suite, &["db", "--db", "holidays", "query", sql])?;
    let out = suite.ok(&["db", "--db", "holidays", "--json", "query", sql])?;
    let result = json::parse(out.trim())?;
    let rows = match result.get("rows") {
        Some(Value::Array(rows)) => rows.len(),
        _ => 0,
    };
    t.check(
        rows == 3,
        &format!("the typed reply holds the 3 seeded trips ({rows} rows)"),
    );
    let columns = match result.get("columns") {
        Some(Value::Array(columns)) => columns.len(),
        _ => 0,
    };
    t.check(columns == 4, "with the 4 columns asked for, by name");
    Ok(())
}

// ------------------------------------------------------------ 3

fn pub_sub(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    t.backroom(suite, &["print", "pause", "laser"])?;
    t.command("backroom print watch &");
    let mut watch = suite
        .cli(&["print", "watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the watch: {e}"))?;
    let result = watch_jobs_print(suite, t, &mut watch);
    let _ = watch.kill();
    let _ = watch.wait();
    // Whatever happened, leave the printer printing for the dashboard.
    let _ = suite.ok(&["print", "resume", "laser"]);
    result
}

fn watch_jobs_print(suite: &Suite, t: &mut Transcript, watch: &mut Child) -> Result<(), String> {
    let events = demo::lines_of(watch.stdout.take().ok_or("the watch has no stdout")?);
    let said = demo::lines_of(watch.stderr.take().ok_or("the watch has no stderr")?);
    // The watch says so once it is subscribed: no later event is missed.
    let first = said
        .recv_timeout(Duration::from_secs(20))
        .map_err(|_| "the watch did not start")?;
    t.output(&first);

    let mut submitted = Vec::new();
    for (name, priority) in [("minutes", "10"), ("invoice", "90"), ("newsletter", "50")] {
        let file = format!("sample/{name}.txt");
        demo::write_file(&suite.data.join(&file), demo::pages_of(name, 1))?;
        let id = t.backroom(
            suite,
            &[
                "print",
                "submit",
                &file,
                "--printer",
                "laser",
                "--priority",
                priority,
            ],
        )?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("submit printed {id:?}, not a job id"))?;
        submitted.push((id, priority));
    }
    t.backroom(suite, &["print", "jobs", "--printer", "laser"])?;
    t.backroom(suite, &["print", "resume", "laser"])?;

    let ids: BTreeSet<u64> = submitted.iter().map(|(id, _)| *id).collect();
    let completed = completions(t, &events, &ids)?;
    let by_priority = |order: &[u64]| -> Vec<String> {
        order
            .iter()
            .map(|id| {
                let priority = submitted
                    .iter()
                    .find(|(job, _)| job == id)
                    .map_or("?", |(_, p)| p);
                format!("job {id} (priority {priority})")
            })
            .collect()
    };
    let mut expected: Vec<(u64, u8)> = submitted
        .iter()
        .map(|(id, p)| (*id, p.parse().unwrap_or(0)))
        .collect();
    expected.sort_by_key(|(_, priority)| std::cmp::Reverse(*priority));
    let expected: Vec<u64> = expected.into_iter().map(|(id, _)| id).collect();
    t.check(
        completed == expected,
        &format!(
            "pushed events show the jobs printed highest priority first: {}",
            by_priority(&completed).join(", ")
        ),
    );
    Ok(())
}

/// Shows the watch's lines as they come, until every job in `ids` has
/// completed, and returns the jobs in the order they completed.
fn completions(
    t: &Transcript,
    events: &Receiver<String>,
    ids: &BTreeSet<u64>,
) -> Result<Vec<u64>, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut completed = Vec::new();
    while completed.len() < ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match events.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) if !left.is_zero() && !demo::stopping() => continue,
            Err(_) => {
                return Err(format!(
                    "only {} of {} jobs completed in time",
                    completed.len(),
                    ids.len()
                ));
            }
        };
        let mut words = line.split_whitespace();
        // Job changes tell the story; printer and progress events repeat it.
        if line.starts_with("job ") && !line.contains(" progress ") {
            println!("    watch│ {line}");
        }
        if let (Some("job"), Some(id), Some("completed")) =
            (words.next(), words.next(), words.next())
        {
            if let Ok(id) = id.parse::<u64>() {
                if ids.contains(&id) {
                    completed.push(id);
                }
            }
        }
    }
    t.output("");
    Ok(completed)
}

// ------------------------------------------------------------ 4

fn streaming(suite: &Suite, t: &mut Transcript, mib: u64) -> Result<(), String> {
    let local = suite.data.join("sample/big.bin");
    write_pattern(&local, mib)?;
    let size = mib << 20;
    t.output(&format!("(sample/big.bin: {mib} MiB of generated data)"));
    let up = with_progress(
        suite,
        t,
        &[
            "files",
            "--progress",
            "put",
            "--overwrite",
            "sample/big.bin",
            "demo/big.bin",
        ],
    )?;
    let down = with_progress(
        suite,
        t,
        &[
            "files",
            "--progress",
            "get",
            "demo/big.bin",
            "sample/big-back.bin",
        ],
    )?;
    let back = fs::metadata(suite.data.join("sample/big-back.bin"))
        .map_err(|e| format!("cannot read the downloaded copy: {e}"))?
        .len();
    t.check(
        back == size,
        &format!(
            "{mib} MiB went up at {:.0} MiB/s and came back at {:.0} MiB/s, whole",
            mib as f64 / up.as_secs_f64(),
            mib as f64 / down.as_secs_f64()
        ),
    );
    let remote = t.backroom(suite, &["files", "sum", "demo/big.bin"])?;
    compare_digest(t, &suite.data.join("sample/big-back.bin"), remote.trim())?;
    let _ = fs::remove_file(&local);
    let _ = fs::remove_file(suite.data.join("sample/big-back.bin"));
    Ok(())
}

/// Writes `mib` MiB of a pattern that does not repeat within a chunk.
fn write_pattern(path: &Path, mib: u64) -> Result<(), String> {
    let mut file =
        fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, byte) in block.iter_mut().enumerate() {
            *byte = (j as u64 ^ (j as u64 >> 8) ^ i).to_le_bytes()[0];
        }
        file.write_all(&block)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs a transfer, showing its progress lines as they arrive, and returns
/// how long it took.
fn with_progress(suite: &Suite, t: &Transcript, args: &[&str]) -> Result<Duration, String> {
    t.command(&shown_command(args));
    let started = Instant::now();
    let mut child = suite
        .cli(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run backroom: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let progress = demo::lines_of(child.stderr.take().ok_or("no stderr")?);
    let mut said = Vec::new();
    for line in progress {
        println!("    {line}");
        said.push(line);
    }
    let mut out = String::new();
    let _ = stdout.read_to_string(&mut out);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for backroom: {e}"))?;
    let took = started.elapsed();
    t.output(&out);
    if !status.success() {
        // The last line is the error; the ones before it, progress.
        let why = said.last().map_or("", String::as_str);
        return Err(format!("`{}` failed: {why}", shown_command(args)));
    }
    Ok(took)
}

// ------------------------------------------------------------ 5

const AGENTS: usize = 50;
const SEATS: u64 = 10;

fn travel_agent_race(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    t.backroom(
        suite,
        &[
            "db",
            "--db",
            "holidays",
            "exec",
            "UPDATE seats SET holder = NULL WHERE trip_id = 1",
        ],
    )?;
    let book = "UPDATE seats SET holder = :agent WHERE id = \
                (SELECT id FROM seats WHERE trip_id = 1 AND holder IS NULL ORDER BY id LIMIT 1)";
    t.command(&format!(
        "{} --param :agent=agent-NN    # {AGENTS} of these at once, NN = 01..{AGENTS}",
        shown_command(&["db", "--db", "holidays", "exec", book])
    ));
    let started = Instant::now();
    let mut agents = Vec::new();
    for n in 1..=AGENTS {
        let param = format!(":agent=agent-{n:02}");
        let child = suite
            .cli(&["db", "--db", "holidays", "exec", book, "--param", &param])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start agent {n}: {e}"))?;
        agents.push(child);
    }
    let (mut sold, mut sold_out, mut failed) = (0, 0, Vec::new());
    for (n, agent) in agents.into_iter().enumerate() {
        let out = agent
            .wait_with_output()
            .map_err(|e| format!("cannot wait for agent {}: {e}", n + 1))?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            failed.push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        } else if said.starts_with("1 row affected") {
            sold += 1;
        } else if said.starts_with("0 rows affected") {
            sold_out += 1;
        } else {
            failed.push(format!("agent {} said {said:?}", n + 1));
        }
    }
    t.output(&format!(
        "{AGENTS} agents in {} ms: {sold} booked a seat, {sold_out} found the trip sold out, {} failed",
        started.elapsed().as_millis(),
        failed.len()
    ));
    for failure in &failed {
        t.output(failure);
    }
    t.backroom(
        suite,
        &[
            "db",
            "--db",
            "holidays",
            "query",
            "SELECT seat, holder FROM seats WHERE trip_id = 1 ORDER BY id",
        ],
    )?;
    let counts = suite.ok(&[
        "db",
        "--db",
        "holidays",
        "--json",
        "query",
        "SELECT count(holder), count(DISTINCT holder) FROM seats WHERE trip_id = 1",
    ])?;
    let row = json::parse(counts.trim())?;
    let cell = |i: usize| {
        row.path(&["rows"])
            .and_then(|rows| match rows {
                Value::Array(rows) => rows.first(),
                _ => None,
            })
            .and_then(|first| match first {
                Value::Array(cells) => cells.get(i),
                _ => None,
            })
            .and_then(Value::as_f64)
            .unwrap_or(-1.0)
    };
    t.check(
        sold == SEATS && sold_out == AGENTS as u64 - SEATS && failed.is_empty(),
        &format!(
            "exactly {SEATS} bookings succeeded and the other {} were told no",
            AGENTS as u64 - SEATS
        ),
    );
    t.check(
        cell(0) == SEATS as f64 && cell(1) == SEATS as f64,
        &format!("the database holds {SEATS} sold seats with {SEATS} different holders"),
    );
    Ok(())
}

// ------------------------------------------------------------ 6

fn proxy(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    let origin = suite.origin.addr;
    let url = format!("http://{origin}/hello");
    t.command(&format!("curl -x http://{} {url}", suite.proxy));
    let got = demo_http::http_get(suite.proxy, &url)?;
    show_response(t, &got);
    let via = header(&got.head, "via");
    t.check(
        got.status == 200 && got.body == demo_origin::HELLO.as_bytes() && via.is_some(),
        &format!(
            "GET came back 200 with the origin's body, Via: {}",
            via.unwrap_or("(missing)")
        ),
    );

    connect_tunnel(suite, t)?;
    sse(suite, t)?;

    t.backroom(suite, &["proxy", "stats"])?;
    let log = suite.ok(&["proxy", "log"])?;
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    t.command("backroom proxy log | tail -3");
    t.output(&tail.iter().rev().copied().collect::<Vec<_>>().join("\n"));
    t.check(
        log.contains("CONNECT") && log.contains("/events"),
        "the access log has the CONNECT tunnel and the event stream",
    );
    Ok(())
}

fn connect_tunnel(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    let origin = suite.origin.addr;
    t.command(&format!(
        "curl -p -x http://{} http://{origin}/hello    # through a CONNECT tunnel",
        suite.proxy
    ));
    let mut tunnel = demo_http::connect(suite.proxy)?;
    write!(
        tunnel,
        "CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n\r\n"
    )
    .map_err(|e| format!("cannot send CONNECT: {e}"))?;
    let head = demo_http::read_head(&mut tunnel)?;
    t.output(&format!(
        "proxy:  {}",
        head.lines().next().unwrap_or_default()
    ));
    write!(
        tunnel,
        "GET /hello HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot write into the tunnel: {e}"))?;
    let inner = demo_http::read_response(tunnel)?;
    t.output(&format!(
        "origin: {}    (through the tunnel)",
        inner.head.lines().next().unwrap_or_default()
    ));
    t.output(&String::from_utf8_lossy(&inner.body));
    t.check(
        head.starts_with("HTTP/1.1 200") && inner.status == 200,
        "CONNECT opened a tunnel, and the origin answered through it",
    );
    Ok(())
}

fn sse(suite: &Suite, t: &mut Transcript) -> Result<(), String> {
    const EVENTS: u64 = 3;
    let url = format!(
        "http://{}/events?count={EVENTS}&lockstep",
        suite.origin.addr
    );
    t.command(&format!("curl -N -x http://{} '{url}'", suite.proxy));
    t.output("(the origin sends each event only after this client has read the one before)");
    let mut stream = demo_http::connect(suite.proxy)?;
    write!(
        stream,
        "GET {url} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
        suite.origin.addr
    )
    .map_err(|e| format!("cannot send to the proxy: {e}"))?;
    let head = demo_http::read_head(&mut stream)?;
    t.output(head.lines().next().unwrap_or_default());
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut arrived = 0;
    while arrived < EVENTS {
        let n = stream
            .read(&mut buf)
            .map_err(|e| format!("event {} never arrived: {e}", arrived + 1))?;
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        while arrived < EVENTS
            && demo_http::find(&seen, format!("data: tick {}\n", arrived + 1).as_bytes()).is_some()
        {
            arrived += 1;
            t.output(&format!(
                "data: tick {arrived}    (arrived at {} ms)",
                started.elapsed().as_millis()
            ));
            suite.origin.ack(arrived);
        }
    }
    t.check(
        arrived == EVENTS,
        &format!("all {EVENTS} events arrived one by one, live, through the proxy"),
    );
    Ok(())
}

fn show_response(t: &Transcript, response: &HttpResponse) {
    t.output(response.head.lines().next().unwrap_or_default());
    if let Some(via) = header(&response.head, "via") {
        t.output(&format!("Via: {via}"));
    }
    t.output(&String::from_utf8_lossy(&response.body));
}

/// A header's value, by case-insensitive name.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}
