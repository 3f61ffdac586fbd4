//! `cargo xtask bench proxy`: backroom-proxy against tinyproxy and squid on
//! the same box, with direct-to-origin as the limit.
//!
//! wrk drives four paths with the same settings and the same small-response
//! origin (`crates/proxy/examples/hello_origin.rs`): through backroom-proxy,
//! through tinyproxy, through squid, and straight to the origin. Then one
//! CONNECT tunnel per path downloads a fixed number of bytes from a source
//! that xtask runs itself. Every peer is a separate process on a free
//! loopback port, with a throwaway config in a temp folder.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::Options;
use crate::json::{self, Value};
use crate::proc::{self, Guard};

/// The aims, as our figure over theirs.
const TINYPROXY_AIM: f64 = 2.0;
const SQUID_AIM: f64 = 2.0;
const DIRECT_AIM: f64 = 0.35;

/// The same wrk settings on every path.
const WRK_THREADS: u32 = 1;
pub const WRK_CONNECTIONS: u32 = 50;

pub const WRK_HINT: &str = "wrk is missing: apt-get install -y wrk";
const TINYPROXY_HINT: &str = "tinyproxy is missing: apt-get install -y tinyproxy";
const SQUID_HINT: &str = "squid is missing: apt-get install -y squid";

/// One measured wrk run.
fn phase(options: &Options) -> Duration {
    Duration::from_secs(if options.quick { 3 } else { 5 })
}

/// Rounds in which the paths take turns; each path's best round counts.
fn rounds(options: &Options) -> u32 {
    if options.quick { 1 } else { 3 }
}

fn warmup(options: &Options) -> Duration {
    Duration::from_secs(if options.quick { 1 } else { 2 })
}

fn tunnel_bytes(options: &Options) -> u64 {
    if options.quick { 256 << 20 } else { 1 << 30 }
}

/// Requests per second and latency percentiles of one wrk run.
#[derive(Debug, Clone, Copy)]
pub struct Http {
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Non-2xx/3xx answers and connect, write and timeout errors: a path
    /// with errors is suspect.
    pub errors: u64,
    /// Connections the peer closed after an answer, which wrk counts as
    /// read errors: tinyproxy closes after every response (no keep-alive).
    closes: u64,
}

/// The figures of one path: HTTP through it, and a tunnel through it.
struct Path4 {
    key: &'static str,
    label: &'static str,
    http: Option<Http>,
    tunnel_mib_s: Option<f64>,
}

pub fn proxy(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    if !proc::installed("wrk") {
        return Err(WRK_HINT.to_owned());
    }
    let (proxy_bin, origin_bin) = build()?;
    let dir = TempDir::new()?;
    let mut notes = Vec::new();

    let (_origin, origin) = start_announcing(&origin_bin, &["127.0.0.1:0"], &["origin"])?;
    let origin = origin[0];
    let source = Source::start(tunnel_bytes(options))?;
    let script = dir.path.join("proxy.lua");
    std::fs::write(&script, wrk_script(origin))
        .map_err(|e| format!("cannot write the wrk script: {e}"))?;

    // Every path is up before any is measured, so that rounds can take
    // turns and a burst of other work on the machine hits no path alone.
    let mut targets = vec![start_ours(&proxy_bin, &source)?];
    let connect_port = source.addr.port();
    let peers: [(&'static str, PeerStart); 2] = [
        (
            "tinyproxy",
            Box::new(move |dir, port| start_tinyproxy(dir, port, connect_port)),
        ),
        ("squid", Box::new(start_squid)),
    ];
    for (name, start) in peers {
        match start_peer(name, &dir.path, start) {
            Ok(target) => targets.push(target),
            Err(e) => notes.push(e),
        }
    }
    targets.push(Target {
        key: "direct",
        label: "direct",
        proxy: None,
        _process: None,
    });

    let mut paths: Vec<Path4> = targets
        .iter()
        .map(|t| Path4 {
            key: t.key,
            label: t.label,
            http: None,
            tunnel_mib_s: None,
        })
        .collect();
    for target in &targets {
        eprintln!("{}: warming up...", target.label);
        run_wrk(&target.url(origin), target.script(&script), warmup(options))?;
    }
    for round in 1..=rounds(options) {
        for (target, path) in targets.iter().zip(&mut paths) {
            eprintln!("{}: wrk, round {round}...", target.label);
            let http = run_wrk(&target.url(origin), target.script(&script), phase(options))?;
            if path.http.is_none_or(|best| http.rps > best.rps) {
                path.http = Some(http);
            }
            eprintln!(
                "{}: a CONNECT tunnel download, round {round}...",
                target.label
            );
            let mib_s = download(source.addr, target.proxy, source.bytes)?;
            path.tunnel_mib_s = Some(path.tunnel_mib_s.map_or(mib_s, |best| best.max(mib_s)));
        }
    }
    for path in &paths {
        if let Some(http) = path.http.filter(|h| h.errors > 0) {
            notes.push(format!(
                "{}: wrk saw {} non-2xx answers or socket errors",
                path.label, http.errors
            ));
        }
        if let Some(http) = path.http.filter(|h| h.closes > 0) {
            notes.push(format!(
                "{}: closed the connection after {} answers (no keep-alive; wrk calls these \
                 read errors and reconnects)",
                path.label, http.closes
            ));
        }
    }
    for missing in ["tinyproxy", "squid"] {
        if !paths.iter().any(|p| p.key == missing) {
            paths.push(empty(missing, missing));
        }
    }
    paths.sort_by_key(|p| ORDER.iter().position(|k| *k == p.key));

    print_table(options, &paths, source.bytes, &notes, started.elapsed());
    if options.json {
        println!(
            "{}",
            summary(options, &paths, source.bytes, &notes).render()
        );
    }
    Ok(())
}

/// The order of the table.
const ORDER: [&str; 4] = ["backroom", "tinyproxy", "squid", "direct"];

/// How a peer is started: in a folder for its config, on a given port.
type PeerStart = Box<dyn FnOnce(&Path, u16) -> Result<Guard, String>>;

/// One path wrk and the tunnel download go through.
struct Target {
    key: &'static str,
    label: &'static str,
    /// The proxy's address; `None` goes straight to the origin.
    proxy: Option<SocketAddr>,
    /// The proxy's process, stopped when the target goes.
    _process: Option<Guard>,
}

impl Target {
    /// What wrk connects to: the proxy, or the origin itself.
    fn url(&self, origin: SocketAddr) -> String {
        format!("http://{}/", self.proxy.unwrap_or(origin))
    }

    /// Through a proxy, wrk needs the script that makes its requests
    /// absolute-form.
    fn script<'a>(&self, script: &'a Path) -> Option<&'a Path> {
        self.proxy.map(|_| script)
    }
}

fn empty(key: &'static str, label: &'static str) -> Path4 {
    Path4 {
        key,
        label,
        http: None,
        tunnel_mib_s: None,
    }
}

// ----------------------------------------------------------------- build

/// Builds backroom-proxy and the hello origin in release mode, once.
fn build() -> Result<(PathBuf, PathBuf), String> {
    eprintln!("building backroom-proxy and the hello origin (release)...");
    let built = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-proxy",
        "--bin",
        "backroom-proxy",
        "--example",
        "hello_origin",
    ])?;
    Ok((
        built.executable("bin", "backroom-proxy")?,
        built.executable("example", "hello_origin")?,
    ))
}

/// Starts one of our binaries and reads the `listening <what> <addr>` lines
/// it prints, one per name in `what`, in order.
fn start_announcing(
    program: &Path,
    args: &[&str],
    what: &[&str],
) -> Result<(Guard, Vec<SocketAddr>), String> {
    let name = program.file_name().map_or_else(
        || "a server".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    Guard::spawn_listening(
        &name,
        Command::new(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stderr(Stdio::null()),
        what,
        Duration::from_secs(10),
    )
}

// ------------------------------------------------------------------ paths

fn start_ours(proxy_bin: &Path, source: &Source) -> Result<Target, String> {
    let connect_port = source.addr.port().to_string();
    let (process, addrs) = start_announcing(
        proxy_bin,
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--allow-loopback",
            "--connect-port",
            &connect_port,
        ],
        &["proxy", "admin"],
    )?;
    Ok(Target {
        key: "backroom",
        label: "backroom-proxy",
        proxy: Some(addrs[0]),
        _process: Some(process),
    })
}

/// Starts a peer on a free port and waits until it accepts connections.
fn start_peer(name: &'static str, dir: &Path, start: PeerStart) -> Result<Target, String> {
    let port = proc::free_port()?;
    let mut process = start(dir, port)?;
    proc::wait_for_port(port, Duration::from_secs(15))
        .map_err(|e| format!("{name} did not start: {e}"))?;
    process.check_alive()?;
    Ok(Target {
        key: name,
        label: name,
        proxy: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        _process: Some(process),
    })
}

/// Tells wrk to send absolute-form requests for the origin, which is what a
/// forward proxy expects; wrk itself connects to the proxy's address.
fn wrk_script(origin: SocketAddr) -> String {
    format!("wrk.path = \"http://{origin}/\"\nwrk.headers[\"Host\"] = \"{origin}\"\n")
}

// -------------------------------------------------------------------- peers

fn start_tinyproxy(dir: &Path, port: u16, connect_port: u16) -> Result<Guard, String> {
    if !proc::installed("tinyproxy") {
        return Err(TINYPROXY_HINT.to_owned());
    }
    let config = dir.join("tinyproxy.conf");
    let text = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 1024\n\
         LogLevel Critical\nLogFile \"{log}\"\nAllow 127.0.0.1\n\
         ConnectPort 443\nConnectPort {connect_port}\n",
        log = dir.join("tinyproxy.log").display()
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write tinyproxy.conf: {e}"))?;
    eprintln!("tinyproxy: starting on 127.0.0.1:{port}...");
    Guard::spawn(
        "tinyproxy",
        Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

fn start_squid(dir: &Path, port: u16) -> Result<Guard, String> {
    let squid = ["squid", "/usr/sbin/squid"]
        .into_iter()
        .find(|p| proc::installed(p) || Path::new(p).is_file())
        .ok_or_else(|| SQUID_HINT.to_owned())?;
    let config = dir.join("squid.conf");
    // No cache, no access log, no DNS for IP literals: squid as a plain
    // forwarding proxy, which is what we are compared on.
    let text = format!(
        "http_port 127.0.0.1:{port}\n\
         http_access allow all\n\
         cache deny all\n\
         access_log none\n\
         cache_store_log none\n\
         cache_log {dir}/squid-cache.log\n\
         pid_filename {dir}/squid.pid\n\
         coredump_dir {dir}\n\
         netdb_filename none\n\
         shutdown_lifetime 0 seconds\n\
         max_filedescriptors 4096\n\
         workers 1\n",
        dir = dir.display()
    );
    std::fs::write(&config, text).map_err(|e| format!("cannot write squid.conf: {e}"))?;
    eprintln!("squid: starting on 127.0.0.1:{port}...");
    Guard::spawn(
        "squid",
        Command::new(squid)
            .arg("-N")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

// ---------------------------------------------------------------------- wrk

pub fn run_wrk(url: &str, script: Option<&Path>, length: Duration) -> Result<Http, String> {
    let mut command = Command::new("wrk");
    command
        .args(["-t", &WRK_THREADS.to_string()])
        .args(["-c", &WRK_CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", length.as_secs())])
        .arg("--latency");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("wrk failed ({}): {}", output.status, text.trim()));
    }
    parse_wrk(&text)
}

/// Reads wrk's report: `Requests/sec:`, the `--latency` percentiles, and
/// any error lines.
fn parse_wrk(text: &str) -> Result<Http, String> {
    let mut rps = None;
    let (mut p50_us, mut p99_us) = (None, None);
    let (mut errors, mut closes) = (0, 0);
    for line in text.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("Requests/sec:") {
            rps = value.trim().parse::<f64>().ok();
        } else if let Some(value) = line.strip_prefix("50%") {
            p50_us = latency_us(value.trim());
        } else if let Some(value) = line.strip_prefix("99%") {
            p99_us = latency_us(value.trim());
        } else if let Some(value) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += value.trim().parse::<u64>().unwrap_or(1);
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            for count in counts.split(',') {
                let mut words = count.split_whitespace();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n = n.parse::<u64>().unwrap_or(1);
                if kind == "read" {
                    closes += n;
                } else {
                    errors += n;
                }
            }
        }
    }
    match (rps, p50_us, p99_us) {
        (Some(rps), Some(p50_us), Some(p99_us)) => Ok(Http {
            rps,
            p50_us,
            p99_us,
            errors,
            closes,
        }),
        _ => Err(format!("wrk printed no figures: {text:?}")),
    }
}

/// `812.00us`, `1.23ms` or `2.00s`, in microseconds.
fn latency_us(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" => 1_000_000.0,
        "m" => 60_000_000.0,
        _ => return None,
    };
    Some(number * scale)
}

// ------------------------------------------------------------------ tunnels

/// A TCP server that sends `bytes` bytes to each connection, then closes:
/// the far end of every tunnel.
struct Source {
    addr: SocketAddr,
    bytes: u64,
}

impl Source {
    fn start(bytes: u64) -> Result<Source, String> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| format!("cannot bind the tunnel source: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot read the tunnel source's address: {e}"))?;
        // The thread ends with the process; each download is one connection.
        std::thread::spawn(move || {
            let chunk = vec![0x5a_u8; 256 * 1024];
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let chunk = chunk.clone();
                std::thread::spawn(move || {
                    let mut left = bytes;
                    while left > 0 {
                        let n = chunk.len().min(left as usize);
                        if tcp.write_all(&chunk[..n]).is_err() {
                            return;
                        }
                        left -= n as u64;
                    }
                });
            }
        });
        Ok(Source { addr, bytes })
    }
}

/// Downloads everything the source sends, through a CONNECT tunnel when a
/// proxy is given; returns MiB/s from the tunnel's opening to the last byte.
fn download(source: SocketAddr, proxy: Option<SocketAddr>, bytes: u64) -> Result<f64, String> {
    let mut tcp = TcpStream::connect(proxy.unwrap_or(source))
        .map_err(|e| format!("cannot connect for the tunnel download: {e}"))?;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
    let started = Instant::now();
    if proxy.is_some() {
        let request = format!("CONNECT {source} HTTP/1.1\r\nHost: {source}\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("cannot send CONNECT: {e}"))?;
        let head = read_head(&mut tcp)?;
        let status = head.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(format!("CONNECT was answered {:?}", head.lines().next()));
        }
    }
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < bytes {
        let n = tcp
            .read(&mut buf)
            .map_err(|e| format!("the tunnel download failed after {got} bytes: {e}"))?;
        if n == 0 {
            return Err(format!("the tunnel closed after {got} of {bytes} bytes"));
        }
        got += n as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((bytes as f64 / (1024.0 * 1024.0) / secs * 10.0).round() / 10.0)
}

/// Reads a response head, byte by byte so that no tunnel byte is eaten.
fn read_head(tcp: &mut TcpStream) -> Result<String, String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("the proxy closed before answering CONNECT".to_owned()),
            Err(e) => return Err(format!("no answer to CONNECT: {e}")),
        }
        if head.len() > 64 * 1024 {
            return Err("the answer to CONNECT has no end".to_owned());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

// ------------------------------------------------------------------ temp dir

/// A folder for the peers' configs and logs, removed at the end. Squid
/// drops root for its own user, so the folder is open to everyone.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let path = std::env::temp_dir().join(format!("xtask-bench-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {path:?}: {e}"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let open = std::fs::Permissions::from_mode(0o777);
            std::fs::set_permissions(&path, open)
                .map_err(|e| format!("cannot open up {path:?}: {e}"))?;
        }
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ------------------------------------------------------------------- report

/// Ours over theirs, to three decimals.
fn ratio(ours: Option<f64>, theirs: Option<f64>) -> Option<f64> {
    match (ours, theirs) {
        (Some(o), Some(t)) if t > 0.0 => Some((o / t * 1000.0).round() / 1000.0),
        _ => None,
    }
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// `2.13x (aim 2.0x, met)`.
fn verdict(ratio: Option<f64>, aim: f64) -> String {
    match ratio {
        None => format!("-  (aim {aim:.1}x, no figure)"),
        Some(r) if r >= aim => format!("{r:.2}x (aim {aim:.1}x, met)"),
        Some(r) => format!("{r:.2}x (aim {aim:.1}x, BELOW)"),
    }
}

fn find<'a>(paths: &'a [Path4], key: &str) -> Option<&'a Path4> {
    paths.iter().find(|p| p.key == key)
}

/// Our figure over each other path's, with that path's aim.
fn comparisons(
    paths: &[Path4],
    figure: impl Fn(&Path4) -> Option<f64>,
) -> Vec<(&str, Option<f64>, f64)> {
    let ours = find(paths, "backroom").and_then(&figure);
    [
        ("tinyproxy", TINYPROXY_AIM),
        ("squid", SQUID_AIM),
        ("direct", DIRECT_AIM),
    ]
    .into_iter()
    .map(|(key, aim)| (key, ratio(ours, find(paths, key).and_then(&figure)), aim))
    .collect()
}

fn print_table(
    options: &Options,
    paths: &[Path4],
    tunnel_bytes: u64,
    notes: &[String],
    took: Duration,
) {
    let mode = if options.quick { "quick" } else { "full" };
    println!();
    println!(
        "proxy benchmark ({mode}, {:.0} s): wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{}s and \
         a {} MiB tunnel download per path, best of {} interleaved rounds",
        took.as_secs_f64(),
        phase(options).as_secs(),
        tunnel_bytes >> 20,
        rounds(options)
    );
    println!();
    println!(
        "{:<16}{:>11}{:>10}{:>10}{:>8}{:>9}{:>14}",
        "path", "rps", "p50 us", "p99 us", "errors", "closes", "tunnel MiB/s"
    );
    for path in paths {
        let http = path.http;
        println!(
            "{:<16}{:>11}{:>10}{:>10}{:>8}{:>9}{:>14}",
            path.label,
            fmt_opt(http.map(|h| h.rps), 0),
            fmt_opt(http.map(|h| h.p50_us), 0),
            fmt_opt(http.map(|h| h.p99_us), 0),
            http.map_or_else(|| "-".to_owned(), |h| h.errors.to_string()),
            http.map_or_else(|| "-".to_owned(), |h| h.closes.to_string()),
            fmt_opt(path.tunnel_mib_s, 1),
        );
    }
    println!();
    println!("backroom-proxy over each path:");
    let rps = comparisons(paths, |p| p.http.map(|h| h.rps));
    let tunnel = comparisons(paths, |p| p.tunnel_mib_s);
    let ours_p99 = find(paths, "backroom")
        .and_then(|p| p.http)
        .map(|h| h.p99_us);
    for ((key, rps_ratio, aim), (_, tunnel_ratio, _)) in rps.iter().zip(&tunnel) {
        let p99 = find(paths, key).and_then(|p| p.http).map(|h| h.p99_us);
        let p99_note = match (ours_p99, p99, *key) {
            (_, _, "direct") | (None, _, _) | (_, None, _) => String::new(),
            (Some(o), Some(t), _) if o <= t => ", p99 no worse".to_owned(),
            (Some(_), Some(_), _) => ", p99 WORSE".to_owned(),
        };
        println!(
            "  vs {:<10} rps {}{p99_note}; tunnel {}",
            key,
            verdict(*rps_ratio, *aim),
            fmt_opt(*tunnel_ratio, 2) + "x"
        );
    }
    if !notes.is_empty() {
        println!();
        for note in notes {
            println!("note: {note}");
        }
    }
    println!();
}

/// Every figure, as the one JSON object that `--json` prints last.
fn summary(options: &Options, paths: &[Path4], tunnel_bytes: u64, notes: &[String]) -> Value {
    let mut members = vec![
        ("bench".to_owned(), Value::from("proxy")),
        ("quick".to_owned(), Value::from(options.quick)),
        ("wrk_threads".to_owned(), f64::from(WRK_THREADS).into()),
        (
            "wrk_connections".to_owned(),
            f64::from(WRK_CONNECTIONS).into(),
        ),
        (
            "seconds".to_owned(),
            (phase(options).as_secs() as f64).into(),
        ),
        ("rounds".to_owned(), f64::from(rounds(options)).into()),
        ("tunnel_bytes".to_owned(), (tunnel_bytes as f64).into()),
    ];
    for path in paths {
        let http = path.http;
        let figures = json::object([
            ("rps", http.map(|h| h.rps).into()),
            ("p50_us", http.map(|h| h.p50_us).into()),
            ("p99_us", http.map(|h| h.p99_us).into()),
            ("errors", http.map(|h| h.errors as f64).into()),
            ("closes", http.map(|h| h.closes as f64).into()),
            ("tunnel_mib_s", path.tunnel_mib_s.into()),
        ]);
        members.push((path.key.to_owned(), figures));
    }
    let rps = comparisons(paths, |p| p.http.map(|h| h.rps));
    let tunnel = comparisons(paths, |p| p.tunnel_mib_s);
    for ((key, rps_ratio, aim), (_, tunnel_ratio, _)) in rps.iter().zip(&tunnel) {
        let figures = json::object([
            ("rps_ratio", (*rps_ratio).into()),
            ("aim", (*aim).into()),
            ("tunnel_ratio", (*tunnel_ratio).into()),
        ]);
        members.push((format!("vs_{key}"), figures));
    }
    let notes = notes.iter().map(|n| Value::from(n.as_str())).collect();
    members.push(("notes".to_owned(), Value::Array(notes)));
    Value::Object(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report_with_latency_and_errors() {
        let report = "Running 3s test @ http://127.0.0.1:1/\n\
              2 threads and 50 connections\n\
              Latency Distribution\n\
                 50%  812.00us\n\
                 75%    1.10ms\n\
                 90%    1.50ms\n\
                 99%    2.25ms\n\
              30000 requests in 3.00s, 2.5MB read\n\
              Socket errors: connect 0, read 2, write 0, timeout 1\n\
              Non-2xx or 3xx responses: 4\n\
            Requests/sec:  10000.50\n\
            Transfer/sec:    850.00KB\n";
        let http = parse_wrk(report).unwrap();
        assert_eq!(http.rps, 10000.5);
        assert_eq!(http.p50_us, 812.0);
        assert_eq!(http.p99_us, 2250.0);
        assert_eq!((http.errors, http.closes), (5, 2));
    }

    #[test]
    fn a_report_without_figures_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1\n").is_err());
        assert_eq!(latency_us("2.00s"), Some(2_000_000.0));
        assert_eq!(latency_us("fast"), None);
    }

    #[test]
    fn the_script_sends_absolute_form_requests() {
        let origin: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let script = wrk_script(origin);
        assert!(script.contains("wrk.path = \"http://127.0.0.1:8080/\""));
        assert!(script.contains("wrk.headers[\"Host\"] = \"127.0.0.1:8080\""));
    }
}
