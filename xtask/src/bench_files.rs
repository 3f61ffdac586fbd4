//! `cargo xtask bench files`: the file server's download and upload speed
//! and its peak memory, beside nginx serving the same file to curl, vsftpd
//! taking the same upload from curl over FTP, and iperf3's loopback figure
//! as the limit.
//!
//! Every side runs as separate processes on loopback: the real
//! `backroom-files` release binary with the `backroom files get|put` client,
//! and the peers with curl. Each transfer is timed from the client's start
//! to its exit, so process start-up counts for everyone alike.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::{self, Options};
use crate::bench_proxy::{Http, WRK_CONNECTIONS, WRK_HINT, run_wrk};
use crate::json::{self, Value};
use crate::proc::{self, Guard};

/// What we aim for, as a fraction of the peer's figure.
const PEER_AIM: f64 = 1.0;
const IPERF_AIM: f64 = 0.8;

const NGINX_HINT: &str = "nginx is missing: apt-get install -y nginx-light";
const VSFTPD_HINT: &str = "vsftpd is missing: apt-get install -y vsftpd";
const CURL_HINT: &str = "curl is missing: apt-get install -y curl";

const FILE_NAME: &str = "big.bin";
/// The small file of the requests-per-second run.
const SMALL_NAME: &str = "small.bin";
/// Aims of the HTTP face against nginx: the same for a big GET, and at
/// least this share of its requests per second for small ones.
const HTTP_GET_AIM: f64 = 1.0;
const HTTP_RPS_AIM: f64 = 0.7;

/// 4 KiB that every server serves for the requests-per-second run.
fn small_file() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// How long each wrk run of small GETs lasts.
fn wrk_length(options: &Options) -> Duration {
    Duration::from_secs(if options.quick { 3 } else { 5 })
}

pub fn files(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let bins = build()?;
    let scratch = Scratch::new()?;
    let size: u64 = if options.quick { 256 << 20 } else { 1 << 30 };
    // The best of a few runs: loopback on shared cores is noisy, and the
    // best run is the one least disturbed by neighbours.
    let runs = if options.quick { 2 } else { 3 };
    let source = scratch.path.join(FILE_NAME);
    eprintln!("writing a {} MiB test file...", size >> 20);
    make_file(&source, size)?;
    let setup = Setup {
        scratch: &scratch.path,
        source: &source,
        size,
    };

    let mut notes = Vec::new();
    let mut ours = OurServer::start(&bins, &setup)?;
    let mut nginx = keep(Nginx::start(&setup), &mut notes);
    let mut vsftpd = keep(Vsftpd::start(&setup), &mut notes);
    let mut best = Best::default();
    // Each run measures every side in turn, so that a busy moment on the
    // shared cores is spread over all of them rather than hitting one.
    for run in 0..runs {
        for sink in [Sink::File, Sink::Null] {
            eprintln!("run {} of {runs}: downloads {}...", run + 1, sink.label());
            let mine = ours.get(&setup, sink)?;
            let (ours_best, nginx_best) = match sink {
                Sink::File => (&mut best.download, &mut best.nginx),
                Sink::Null => (&mut best.download_null, &mut best.nginx_null),
            };
            *ours_best = ours_best.max(mine);
            if let Some(server) = &nginx {
                match server.get(&setup, sink) {
                    Ok(speed) => *nginx_best = Some(nginx_best.unwrap_or(0.0).max(speed)),
                    Err(e) => {
                        notes.push(e);
                        nginx = None;
                    }
                }
            }
        }
        eprintln!("run {} of {runs}: HTTP GET and PUT...", run + 1);
        best.http_download = best.http_download.max(ours.http_get(&setup, Sink::File)?);
        best.http_upload = best.http_upload.max(ours.http_put(&setup, run)?);
        if proc::installed("wrk") {
            eprintln!("run {} of {runs}: 4 KiB GETs with wrk...", run + 1);
            let length = wrk_length(options);
            let mine = run_wrk(&ours.small_url(), None, length)?;
            best.http_small = Some(faster(best.http_small, mine));
            if let Some(server) = &nginx {
                let theirs = run_wrk(&server.small_url, None, length)?;
                best.nginx_small = Some(faster(best.nginx_small, theirs));
            }
        } else if run == 0 {
            notes.push(WRK_HINT.to_owned());
        }
        eprintln!("run {} of {runs}: uploads...", run + 1);
        best.upload = best.upload.max(ours.put(&setup, run)?);
        if let Some(server) = &vsftpd {
            match server.put(&setup, run) {
                Ok(speed) => best.vsftpd = Some(best.vsftpd.unwrap_or(0.0).max(speed)),
                Err(e) => {
                    notes.push(e);
                    vsftpd = None;
                }
            }
        }
        match measure_disk(&setup) {
            Ok(speed) => best.disk = Some(best.disk.unwrap_or(0.0).max(speed)),
            Err(e) => notes.push(e),
        }
    }
    ours.server.check_alive()?;
    let our_rss_kib = peak_rss_kib(ours.server.child().id());
    let nginx_rss_kib = nginx
        .as_mut()
        .and_then(|n| peak_rss_kib(n.server.child().id()));
    drop((ours, nginx, vsftpd));

    let iperf = keep(bench::measure_iperf(), &mut notes);
    notes.push(
        "our upload fsyncs the file and its directory before it answers; vsftpd does not"
            .to_owned(),
    );
    let report = Report {
        size,
        runs,
        best,
        iperf,
        peak_rss_kib: our_rss_kib,
        nginx_rss_kib,
        notes,
    };
    print_table(options, &report, started.elapsed());
    if options.json {
        println!("{}", summary(options, &report).render());
    }
    Ok(())
}

/// The best speed of each transfer, in MiB/s.
#[derive(Debug, Default)]
struct Best {
    download: f64,
    download_null: f64,
    upload: f64,
    nginx: Option<f64>,
    nginx_null: Option<f64>,
    vsftpd: Option<f64>,
    /// `dd conv=fsync` into the scratch folder: a durable write's reference
    /// on this disk.
    disk: Option<f64>,
    /// The HTTP face: a GET of the test file with curl, into a file.
    http_download: f64,
    /// The HTTP face: a PUT of the test file with curl.
    http_upload: f64,
    /// 4 KiB GETs with wrk, from the HTTP face and from nginx: the run with
    /// the most requests per second of each.
    http_small: Option<Http>,
    nginx_small: Option<Http>,
}

/// Where a download goes: a file, as people use it, or /dev/null, which
/// leaves the network path alone to compare with iperf3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    File,
    Null,
}

impl Sink {
    fn label(self) -> &'static str {
        match self {
            Sink::File => "to a file",
            Sink::Null => "to /dev/null",
        }
    }

    /// Where to write, and whether there is a file to check afterwards.
    fn target(self, scratch: &Path, name: &str) -> (PathBuf, bool) {
        match self {
            Sink::File => (scratch.join(name), true),
            Sink::Null => (PathBuf::from("/dev/null"), false),
        }
    }
}
/// The wrk run with more requests per second.
fn faster(best: Option<Http>, run: Http) -> Http {
    match best {
        Some(best) if best.rps >= run.rps => best,
        _ => run,
    }
}

fn keep<T>(result: Result<T, String>, notes: &mut Vec<String>) -> Option<T> {
    result.map_err(|e| notes.push(e)).ok()
}

/// Where a run keeps its files, and what it moves.
struct Setup<'a> {
    scratch: &'a Path,
    source: &'a Path,
    size: u64,
}

/// A folder for the run's files, removed when the run ends.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let path =
            std::env::temp_dir().join(format!("backroom-bench-files-{}", std::process::id()));
        // A leftover of an earlier run with the same pid is ours to clear.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Writes `size` bytes that no layer could compress or deduplicate cheaply.
fn make_file(path: &Path, size: u64) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // xorshift64: fast, and far from any repeating pattern.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).map_err(fail)?;
        left -= n as u64;
    }
    file.flush().map_err(fail)
}

/// Flushes dirty pages, so that one run's writes are not flushed during the
/// next run's timing.
fn sync() {
    let _ = Command::new("sync").status();
}

/// Runs a client to its end and returns how long it took.
fn timed(name: &str, command: &mut Command) -> Result<Duration, String> {
    sync();
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let took = started.elapsed();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "{name} failed ({}): {}",
            output.status,
            stderr.trim()
        ));
    }
    Ok(took)
}

fn mib_s(bytes: u64, took: Duration) -> f64 {
    let value = bytes as f64 / (1024.0 * 1024.0) / took.as_secs_f64().max(1e-9);
    (value * 10.0).round() / 10.0
}

/// Checks that a transfer produced the whole file, then removes it.
fn check_and_remove(path: &Path, size: u64) -> Result<(), String> {
    let got = std::fs::metadata(path)
        .map_err(|e| format!("{} is missing after the transfer: {e}", path.display()))?
        .len();
    let _ = std::fs::remove_file(path);
    if got != size {
        return Err(format!("{} holds {got} bytes, not {size}", path.display()));
    }
    Ok(())
}

/// How fast this disk takes the test file when it must reach the disk, as
/// our uploads must: `dd` with `conv=fsync`. A reference, not a bound: dd
/// flushes once at the end, while a network upload's pages are already
/// being written back as it goes.
fn measure_disk(setup: &Setup) -> Result<f64, String> {
    eprintln!("disk: dd conv=fsync...");
    let target = setup.scratch.join("dd.bin");
    let took = timed(
        "dd",
        Command::new("dd")
            .arg(format!("if={}", setup.source.display()))
            .arg(format!("of={}", target.display()))
            .args(["bs=1M", "conv=fsync", "status=none"]),
    )?;
    check_and_remove(&target, setup.size)?;
    Ok(mib_s(setup.size, took))
}

/// The peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ----------------------------------------------------------------- build

struct Binaries {
    server: PathBuf,
    cli: PathBuf,
}

/// Builds the server and the `backroom` client in release mode.
fn build() -> Result<Binaries, String> {
    eprintln!("building backroom-files and backroom (release)...");
    let built = proc::build(&[
        "build",
        "--release",
        "-p",
        "backroom-files",
        "-p",
        "backroom-dash",
    ])?;
    Ok(Binaries {
        server: built.executable("bin", "backroom-files")?,
        cli: built.executable("bin", "backroom")?,
    })
}

// ------------------------------------------------------------------ ours

/// The real `backroom-files`, and `backroom files` as its client.
struct OurServer {
    server: Guard,
    addr: String,
    /// The HTTP face's address.
    http: String,
    root: PathBuf,
    cli: PathBuf,
    config_home: PathBuf,
}

impl OurServer {
    fn start(bins: &Binaries, setup: &Setup) -> Result<OurServer, String> {
        let root = setup.scratch.join("files-root");
        std::fs::create_dir_all(&root).map_err(|e| format!("cannot create the root: {e}"))?;
        link_or_copy(setup.source, &root.join(FILE_NAME))?;
        std::fs::write(root.join(SMALL_NAME), small_file())
            .map_err(|e| format!("cannot write the small file: {e}"))?;
        let (server, addr, http) = start_our_server(&bins.server, &root)?;
        Ok(OurServer {
            server,
            addr,
            http,
            root,
            cli: bins.cli.clone(),
            config_home: setup.scratch.join("config"),
        })
    }

    /// `backroom files ARGS`, with no user config or token from outside.
    fn cli(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.cli);
        command
            .env("XDG_CONFIG_HOME", &self.config_home)
            .env_remove("BACKROOM_TOKEN")
            .args(["--files", &self.addr, "files"])
            .args(args);
        command
    }

    fn get(&self, setup: &Setup, sink: Sink) -> Result<f64, String> {
        let (local, check) = sink.target(setup.scratch, "down-ours.bin");
        let took = timed(
            "backroom files get",
            &mut self.cli(&["get", FILE_NAME, &local.display().to_string()]),
        )?;
        if check {
            check_and_remove(&local, setup.size)?;
        }
        Ok(mib_s(setup.size, took))
    }

    fn put(&self, setup: &Setup, run: u32) -> Result<f64, String> {
        let name = format!("up-{run}.bin");
        let source = setup.source.display().to_string();
        let took = timed(
            "backroom files put",
            &mut self.cli(&["put", &source, &name]),
        )?;
        check_and_remove(&self.root.join(&name), setup.size)?;
        Ok(mib_s(setup.size, took))
    }
}

impl OurServer {
    /// A GET of the test file from the HTTP face with curl, as nginx's.
    fn http_get(&self, setup: &Setup, sink: Sink) -> Result<f64, String> {
        let (local, check) = sink.target(setup.scratch, "down-http.bin");
        let url = format!("http://{}/{FILE_NAME}", self.http);
        let took = timed(
            "curl",
            Command::new("curl")
                .args(["-sS", "--fail", "-o"])
                .arg(&local)
                .arg(&url),
        )?;
        if check {
            check_and_remove(&local, setup.size)?;
        }
        Ok(mib_s(setup.size, took))
    }

    /// A PUT of the test file to the HTTP face with curl.
    fn http_put(&self, setup: &Setup, run: u32) -> Result<f64, String> {
        let name = format!("up-http-{run}.bin");
        let url = format!("http://{}/{name}", self.http);
        let took = timed(
            "curl -T",
            Command::new("curl")
                .args(["-sS", "--fail", "-o", "/dev/null", "-T"])
                .arg(setup.source)
                .arg(&url),
        )?;
        check_and_remove(&self.root.join(&name), setup.size)?;
        Ok(mib_s(setup.size, took))
    }

    fn small_url(&self) -> String {
        format!("http://{}/{SMALL_NAME}", self.http)
    }
}

/// A hard link where the file system allows one, else a copy: every server
/// then serves the very same bytes, hot in the page cache.
fn link_or_copy(from: &Path, to: &Path) -> Result<(), String> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy the test file to {}: {e}", to.display()))
}

/// Starts `backroom-files` on a port of its choosing and reads which one
/// from its readiness line.
/// Starts `backroom-files` with its HTTP face, on ports of its choosing,
/// and reads which from its readiness lines: the frame port, then HTTP.
fn start_our_server(bin: &Path, root: &Path) -> Result<(Guard, String, String), String> {
    let (server, addrs) = Guard::spawn_listening(
        "backroom-files",
        Command::new(bin)
            .arg("--root")
            .arg(root)
            .args(["--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .env_remove("BACKROOM_TOKEN")
            .stdin(Stdio::null())
            .stderr(Stdio::null()),
        &["files", "http"],
        Duration::from_secs(30),
    )?;
    Ok((server, addrs[0].to_string(), addrs[1].to_string()))
}

// ----------------------------------------------------------------- nginx

/// nginx serving the same file over HTTP, fetched by curl.
struct Nginx {
    server: Guard,
    url: String,
    small_url: String,
}

impl Nginx {
    fn start(setup: &Setup) -> Result<Nginx, String> {
        if !proc::installed("nginx") {
            return Err(NGINX_HINT.to_owned());
        }
        if !proc::installed("curl") {
            return Err(CURL_HINT.to_owned());
        }
        let prefix = setup.scratch.join("nginx");
        let www = prefix.join("www");
        std::fs::create_dir_all(&www)
            .map_err(|e| format!("cannot create {}: {e}", www.display()))?;
        link_or_copy(setup.source, &www.join(FILE_NAME))?;
        std::fs::write(www.join(SMALL_NAME), small_file())
            .map_err(|e| format!("cannot write the small file: {e}"))?;
        let port = proc::free_port()?;
        // One process that serves: its memory is the server's, like ours.
        let conf = format!(
            "daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {www};
    }}
}}
",
            prefix = prefix.display(),
            www = www.display(),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("cannot write the nginx config: {e}"))?;
        let mut server = Guard::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(prefix.join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        proc::wait_for_port(port, Duration::from_secs(5))
            .map_err(|e| format!("nginx did not start: {e}"))?;
        server.check_alive()?;
        Ok(Nginx {
            server,
            url: format!("http://127.0.0.1:{port}/{FILE_NAME}"),
            small_url: format!("http://127.0.0.1:{port}/{SMALL_NAME}"),
        })
    }

    fn get(&self, setup: &Setup, sink: Sink) -> Result<f64, String> {
        let (local, check) = sink.target(setup.scratch, "down-nginx.bin");
        let took = timed(
            "curl",
            Command::new("curl")
                .args(["-sS", "--fail", "-o"])
                .arg(&local)
                .arg(&self.url),
        )?;
        if check {
            check_and_remove(&local, setup.size)?;
        }
        Ok(mib_s(setup.size, took))
    }
}

// ---------------------------------------------------------------- vsftpd

/// vsftpd taking anonymous uploads over FTP from curl.
struct Vsftpd {
    _server: Guard,
    port: u16,
    incoming: PathBuf,
}

impl Vsftpd {
    fn start(setup: &Setup) -> Result<Vsftpd, String> {
        let program = ["vsftpd", "/usr/sbin/vsftpd"]
            .into_iter()
            .find(|p| proc::installed(p) || Path::new(p).is_file())
            .ok_or_else(|| VSFTPD_HINT.to_owned())?;
        if !proc::installed("curl") {
            return Err(CURL_HINT.to_owned());
        }
        let base = setup.scratch.join("vsftpd");
        let ftp_root = base.join("root");
        let incoming = ftp_root.join("incoming");
        let empty = base.join("empty");
        for dir in [&incoming, &empty] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        // vsftpd refuses a writable anonymous root, and writes uploads as
        // the `ftp` user: only the upload folder is open to it.
        set_mode(&ftp_root, 0o755)?;
        set_mode(&incoming, 0o777)?;
        let port = proc::free_port()?;
        // Anonymous upload on loopback only, without the sandboxes that need
        // namespaces a container may not grant.
        let conf = format!(
            "listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
anon_umask=022
no_anon_password=YES
anon_root={root}
secure_chroot_dir={empty}
connect_from_port_20=NO
pasv_enable=YES
xferlog_enable=NO
dirmessage_enable=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
",
            root = ftp_root.display(),
            empty = empty.display(),
        );
        let conf_path = base.join("vsftpd.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("cannot write the vsftpd config: {e}"))?;
        let log_path = base.join("vsftpd.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create the vsftpd log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot share the vsftpd log: {e}"))?;
        let mut server = Guard::spawn(
            "vsftpd",
            Command::new(program)
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err),
        )?;
        let started = proc::wait_for_port(port, Duration::from_secs(5));
        if let Err(e) = started.and_then(|()| server.check_alive()) {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("vsftpd did not start: {e} {}", said.trim()));
        }
        Ok(Vsftpd {
            _server: server,
            port,
            incoming,
        })
    }

    fn put(&self, setup: &Setup, run: u32) -> Result<f64, String> {
        let name = format!("up-{run}.bin");
        let url = format!("ftp://127.0.0.1:{}/incoming/{name}", self.port);
        let took = timed(
            "curl -T (FTP)",
            Command::new("curl")
                .args(["-sS", "--fail", "-T"])
                .arg(setup.source)
                .arg(&url),
        )?;
        check_and_remove(&self.incoming.join(&name), setup.size)?;
        Ok(mib_s(setup.size, took))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

// ---------------------------------------------------------------- report

struct Report {
    size: u64,
    runs: u32,
    best: Best,
    iperf: Option<f64>,
    peak_rss_kib: Option<u64>,
    nginx_rss_kib: Option<u64>,
    notes: Vec<String>,
}

/// Ours over theirs, to three decimals.
fn ratio(ours: f64, theirs: Option<f64>) -> Option<f64> {
    theirs
        .filter(|t| *t > 0.0)
        .map(|t| (ours / t * 1000.0).round() / 1000.0)
}

fn fmt_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
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

fn fmt_rss(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

fn print_table(options: &Options, report: &Report, took: Duration) {
    let mode = if options.quick { "quick" } else { "full" };
    let best = &report.best;
    println!();
    println!(
        "file server benchmark ({mode}, {} MiB file, best of {}, {:.0} s)",
        report.size >> 20,
        report.runs,
        took.as_secs_f64()
    );
    println!();
    println!(
        "{:<22}{:>8}{:>8}{:>8}{:>8}  {:<18}{:>8}{:>8}  aim",
        "transfer", "MiB/s", "peer", "MiB/s", "ratio", "aim", "iperf3", "ratio"
    );
    let rows = [
        ("download to a file", best.download, "nginx", best.nginx),
        (
            "download to /dev/null",
            best.download_null,
            "nginx",
            best.nginx_null,
        ),
        ("upload", best.upload, "vsftpd", best.vsftpd),
    ];
    for (label, mine, peer, theirs) in rows {
        let r = ratio(mine, theirs);
        let limit = ratio(mine, report.iperf);
        println!(
            "{label:<22}{mine:>8.1}{peer:>8}{:>8}{:>8}  {:<18}{:>8}{:>8}  {}",
            fmt_opt(theirs),
            fmt_ratio(r),
            verdict(r, PEER_AIM),
            fmt_opt(report.iperf),
            fmt_ratio(limit),
            verdict(limit, IPERF_AIM),
        );
    }
    println!();
    let http = ratio(best.http_download, best.nginx);
    println!(
        "HTTP GET (curl, to a file)  {:.1} MiB/s   nginx {}   ratio {}   aim {}",
        best.http_download,
        fmt_opt(best.nginx),
        fmt_ratio(http),
        verdict(http, HTTP_GET_AIM),
    );
    let rps = |h: Option<Http>| h.map(|h| h.rps);
    let p99 =
        |h: Option<Http>| h.map_or("-".to_owned(), |h| format!("{:.2} ms", h.p99_us / 1000.0));
    let small = ratio(rps(best.http_small).unwrap_or(0.0), rps(best.nginx_small));
    println!(
        "HTTP 4 KiB GETs (wrk, {} connections)  {} req/s (p99 {})   nginx {} req/s (p99 {})   ratio {}   aim {}",
        WRK_CONNECTIONS,
        fmt_opt(rps(best.http_small)),
        p99(best.http_small),
        fmt_opt(rps(best.nginx_small)),
        p99(best.nginx_small),
        fmt_ratio(small),
        verdict(small, HTTP_RPS_AIM),
    );
    println!(
        "HTTP PUT (curl -T)  {:.1} MiB/s   beside our protocol's upload {:.1} MiB/s ({})",
        best.http_upload,
        best.upload,
        fmt_ratio(ratio(best.http_upload, Some(best.upload))),
    );
    println!();
    println!(
        "disk      dd conv=fsync {} MiB/s (a durable write's reference); our upload {}",
        fmt_opt(best.disk),
        fmt_ratio(ratio(best.upload, best.disk))
    );
    println!(
        "peak RSS  backroom-files {}   nginx {}",
        fmt_rss(report.peak_rss_kib),
        fmt_rss(report.nginx_rss_kib)
    );
    if !report.notes.is_empty() {
        println!();
        for note in &report.notes {
            println!("note: {note}");
        }
    }
    println!();
}

/// Every figure, as the one JSON object that `--json` prints last.
fn summary(options: &Options, report: &Report) -> Value {
    let best = &report.best;
    let kib = |k: Option<u64>| Value::from(k.map(|k| k as f64));
    let download = json::object([
        ("mib_s", best.download.into()),
        ("nginx_mib_s", best.nginx.into()),
        ("ratio", ratio(best.download, best.nginx).into()),
        ("aim", PEER_AIM.into()),
        ("iperf3_ratio", ratio(best.download, report.iperf).into()),
        ("iperf3_aim", IPERF_AIM.into()),
    ]);
    let download_null = json::object([
        ("mib_s", best.download_null.into()),
        ("nginx_mib_s", best.nginx_null.into()),
        ("ratio", ratio(best.download_null, best.nginx_null).into()),
        ("aim", PEER_AIM.into()),
        (
            "iperf3_ratio",
            ratio(best.download_null, report.iperf).into(),
        ),
        ("iperf3_aim", IPERF_AIM.into()),
    ]);
    let upload = json::object([
        ("mib_s", best.upload.into()),
        ("vsftpd_mib_s", best.vsftpd.into()),
        ("ratio", ratio(best.upload, best.vsftpd).into()),
        ("aim", PEER_AIM.into()),
        ("iperf3_ratio", ratio(best.upload, report.iperf).into()),
        ("iperf3_aim", IPERF_AIM.into()),
    ]);
    let wrk = |h: Option<Http>| {
        json::object([
            ("rps", h.map(|h| h.rps).into()),
            ("p50_us", h.map(|h| h.p50_us).into()),
            ("p99_us", h.map(|h| h.p99_us).into()),
        ])
    };
    let http = json::object([
        ("get_mib_s", best.http_download.into()),
        ("get_nginx_mib_s", best.nginx.into()),
        ("get_ratio", ratio(best.http_download, best.nginx).into()),
        ("get_aim", HTTP_GET_AIM.into()),
        ("small", wrk(best.http_small)),
        ("small_nginx", wrk(best.nginx_small)),
        (
            "small_ratio",
            ratio(
                best.http_small.map_or(0.0, |h| h.rps),
                best.nginx_small.map(|h| h.rps),
            )
            .into(),
        ),
        ("small_aim", HTTP_RPS_AIM.into()),
        ("put_mib_s", best.http_upload.into()),
        (
            "put_frame_ratio",
            ratio(best.http_upload, Some(best.upload)).into(),
        ),
    ]);
    let notes = report
        .notes
        .iter()
        .map(|n| Value::from(n.as_str()))
        .collect();
    json::object([
        ("bench", Value::from("files")),
        ("quick", Value::from(options.quick)),
        ("bytes", (report.size as f64).into()),
        ("runs", f64::from(report.runs).into()),
        ("download", download),
        ("download_null", download_null),
        ("upload", upload),
        ("http", http),
        ("iperf3_mib_s", report.iperf.into()),
        ("disk_fsync_mib_s", best.disk.into()),
        ("upload_disk_ratio", ratio(best.upload, best.disk).into()),
        ("peak_rss_kib", kib(report.peak_rss_kib)),
        ("nginx_peak_rss_kib", kib(report.nginx_rss_kib)),
        ("notes", Value::Array(notes)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_mib_per_second_to_one_decimal() {
        assert_eq!(mib_s(512 << 20, Duration::from_secs(2)), 256.0);
        assert_eq!(mib_s(1 << 20, Duration::from_secs(3)), 0.3);
    }

    #[test]
    fn ratios_need_a_peer() {
        assert_eq!(ratio(1.0, None), None);
        assert_eq!(ratio(3.0, Some(2.0)), Some(1.5));
        assert!(verdict(Some(0.5), 0.8).ends_with("BELOW"));
    }
}
