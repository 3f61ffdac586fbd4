//! `cargo xtask demo`: the whole suite on loopback with sample data, opened
//! in the dashboard, or driven through a scripted scenario (`--headless`).
//!
//! The four servers run as real processes on free ports, with their data in
//! a fresh temporary folder (or `--data DIR`), their logs in its `logs/`, and
//! a random admin token. Seeding goes through the `backroom` CLI, as a user's
//! would. Whatever ends the demo (the dashboard quitting, the scenario
//! finishing, Ctrl-C, SIGTERM or a hang-up), the servers get SIGTERM and are
//! waited for, so none is left behind.

use std::fs;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::demo_http::http_get;
use crate::demo_origin::Origin;
use crate::json::{self, Value};
use crate::proc::{self, Guard};

/// How `cargo xtask demo` was asked to run.
pub struct Options {
    headless: bool,
    data: Option<PathBuf>,
    debug: bool,
    big_mib: u64,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Options, String> {
        let mut options = Options {
            headless: false,
            data: None,
            debug: false,
            big_mib: 256,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match *arg {
                "--headless" => options.headless = true,
                "--debug" => options.debug = true,
                "--data" => {
                    let dir = args.next().ok_or("--data needs a folder")?;
                    options.data = Some(PathBuf::from(dir));
                }
                "--big-mib" => {
                    let n = args.next().ok_or("--big-mib needs a number")?;
                    options.big_mib = n
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--big-mib {n:?} is not a positive number"))?;
                }
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(options)
    }
}

/// Set by Ctrl-C, SIGTERM or SIGHUP: every wait in the demo gives up, and the
/// suite stops as it would at the end.
static STOPPING: AtomicBool = AtomicBool::new(false);

pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// How long a server has to stop after SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(15);
/// How long a server has to print its readiness line.
const START_WITHIN: Duration = Duration::from_secs(30);

pub fn demo(options: &Options) -> Result<(), String> {
    if !options.headless && !std::io::stdout().is_terminal() {
        return Err("the dashboard needs a terminal: run in one, or pass --headless".into());
    }
    ctrlc::set_handler(|| STOPPING.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let bins = Binaries::build(options.debug)?;
    let data = DataDir::new(options.data.as_deref())?;
    let mut suite = Suite::start(&bins, &data.path, options.headless)?;
    let result = suite
        .seed(options.headless)
        .and_then(|()| {
            if options.headless {
                crate::demo_scenario::run(&suite, options.big_mib)
            } else {
                suite.dashboard(&bins.backroom)
            }
        })
        .and_then(|()| interrupted());
    let stopped = suite.stop();
    if data.temporary {
        eprintln!("removing {}", data.path.display());
    } else {
        eprintln!("the data stays in {}", data.path.display());
    }
    result.and(stopped)
}

/// An error if the demo was interrupted: the work was not finished.
fn interrupted() -> Result<(), String> {
    if stopping() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

// ------------------------------------------------------------ binaries

/// The suite's five executables.
struct Binaries {
    files: PathBuf,
    print: PathBuf,
    db: PathBuf,
    proxy: PathBuf,
    backroom: PathBuf,
}

impl Binaries {
    /// Builds the suite: in release mode, or with `debug` in the dev profile
    /// with the workspace's tests, so that after `cargo test --workspace`
    /// every unit is already fresh and nothing is rebuilt.
    fn build(debug: bool) -> Result<Binaries, String> {
        let mut args = vec!["build"];
        if debug {
            args.extend(["--workspace", "--bins", "--tests"]);
        } else {
            args.push("--release");
            for package in [
                "backroom-files",
                "backroom-print",
                "backroom-db",
                "backroom-proxy",
                "backroom-dash",
            ] {
                args.extend(["-p", package]);
            }
            args.push("--bins");
        }
        eprintln!(
            "building the suite ({})...",
            if debug { "debug" } else { "release" }
        );
        let built = proc::build(&args)?;
        Ok(Binaries {
            files: built.executable("bin", "backroom-files")?,
            print: built.executable("bin", "backroom-print")?,
            db: built.executable("bin", "backroom-db")?,
            proxy: built.executable("bin", "backroom-proxy")?,
            backroom: built.executable("bin", "backroom")?,
        })
    }
}

// ------------------------------------------------------------ data

/// Where the servers keep their data: a fresh temporary folder that goes
/// when the demo ends, or the user's `--data DIR`, kept for the next run.
struct DataDir {
    path: PathBuf,
    temporary: bool,
}

impl DataDir {
    fn new(kept: Option<&Path>) -> Result<DataDir, String> {
        let (path, temporary) = match kept {
            Some(path) => (
                std::path::absolute(path).unwrap_or(path.to_path_buf()),
                false,
            ),
            None => {
                let path =
                    std::env::temp_dir().join(format!("backroom-demo-{}", std::process::id()));
                let _ = fs::remove_dir_all(&path);
                (path, true)
            }
        };
        for sub in ["files", "print", "db", "printed", "logs", "sample"] {
            create_dir(&path.join(sub))?;
        }
        Ok(DataDir { path, temporary })
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn create_dir(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

// ------------------------------------------------------------ suite

/// The four servers, the origin, and how to reach them.
pub struct Suite {
    pub data: PathBuf,
    /// The dashboard and CLI config: every address and the token.
    pub config: PathBuf,
    pub backroom: PathBuf,
    pub origin: Origin,
    pub files: SocketAddr,
    /// The file server's HTTP and WebDAV face, for browsers and mounts.
    pub files_http: SocketAddr,
    pub print: SocketAddr,
    /// The print server's IPP face, for `lp -h` and desktops.
    pub ipp: SocketAddr,
    pub db: SocketAddr,
    /// The database server's PostgreSQL face, for psql and drivers.
    pub pg: SocketAddr,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// In start order; stopped in reverse.
    servers: Vec<(&'static str, Guard)>,
}

/// The simulated printer's pages per minute: slow enough to watch in the
/// dashboard, fast enough for the scenario.
const fn sim_ppm(headless: bool) -> u32 {
    if headless { 600 } else { 6 }
}

impl Suite {
    fn start(bins: &Binaries, data: &Path, headless: bool) -> Result<Suite, String> {
        let token = random_token()?;
        let origin = Origin::start()?;
        let print_config = data.join("print.toml");
        write_file(
            &print_config,
            format!(
                "default_printer = \"office\"\n\n\
                 [[printers]]\nname = \"laser\"\ndevice = \"sim:{}\"\n\n\
                 [[printers]]\nname = \"archive\"\ndevice = {}\n\n\
                 [[classes]]\nname = \"office\"\nmembers = [\"laser\", \"archive\"]\n",
                sim_ppm(headless),
                toml_string(&format!("file:{}", data.join("printed").display())),
            ),
        )?;
        let proxy_config = data.join("proxy.toml");
        write_file(
            &proxy_config,
            format!(
                "allow_loopback = true\nconnect_ports = [{}]\naccess_log = {}\n\
                 log_format = \"combined\"\n",
                origin.addr.port(),
                toml_string(&data.join("logs").join("access.log").display().to_string()),
            ),
        )?;

        let mut servers = Vec::new();
        let mut start = |name: &'static str, program: &Path, args: &[&str], what: &[&str]| {
            let addrs = start_server(&mut servers, data, &token, name, program, args, what);
            if let Ok(addrs) = &addrs {
                let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                eprintln!("started {name} on {}", shown.join(" and "));
            }
            addrs
        };
        let dir = |sub: &str| data.join(sub).display().to_string();
        let files = start(
            "files",
            &bins.files,
            &["--root", &dir("files"), "--http", "127.0.0.1:0"],
            &["files", "http"],
        )?;
        let print = start(
            "print",
            &bins.print,
            &[
                "--spool",
                &dir("print"),
                "--config",
                &print_config.display().to_string(),
                "--ipp",
                "127.0.0.1:0",
            ],
            &["print", "ipp"],
        )?;
        let db = start(
            "db",
            &bins.db,
            &["--data", &dir("db"), "--pg", "127.0.0.1:0"],
            &["db", "pg"],
        )?;
        let proxy = start(
            "proxy",
            &bins.proxy,
            &[
                "--admin",
                "127.0.0.1:0",
                "--config",
                &proxy_config.display().to_string(),
            ],
            &["proxy", "admin"],
        )?;

        let config = data.join("dash.toml");
        write_file(
            &config,
            format!(
                "token = {}\n\n[files]\naddr = \"{}\"\nfaces = {{ http = \"{}\" }}\n\n\
                 [print]\naddr = \"{}\"\nfaces = {{ ipp = \"{}\" }}\n\n\
                 [db]\naddr = \"{}\"\ndatabase = \"holidays\"\nfaces = {{ pg = \"{}\" }}\n\n\
                 [proxy]\naddr = \"{}\"\nfaces = {{ http = \"{}\" }}\n",
                toml_string(&token),
                files[0],
                files[1],
                print[0],
                print[1],
                db[0],
                db[1],
                proxy[1],
                proxy[0],
            ),
        )?;
        Ok(Suite {
            data: data.to_path_buf(),
            config,
            backroom: bins.backroom.clone(),
            origin,
            files: files[0],
            files_http: files[1],
            print: print[0],
            ipp: print[1],
            db: db[0],
            pg: db[1],
            proxy: proxy[0],
            admin: proxy[1],
            servers,
        })
    }

    /// `backroom --config <the demo's config> ARGS...` in the data folder.
    pub fn cli(&self, args: &[&str]) -> Command {
        self.cli_runner().command(args)
    }

    fn cli_runner(&self) -> Cli {
        Cli {
            backroom: self.backroom.clone(),
            config: self.config.clone(),
            data: self.data.clone(),
        }
    }

    /// Runs `backroom ARGS...` to its end and fails unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> Result<String, String> {
        let output = run(&mut self.cli(args), Duration::from_secs(60))?;
        if !output.status.success() {
            return Err(format!(
                "`backroom {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Sample data in every server, through the CLI.
    fn seed(&self, headless: bool) -> Result<(), String> {
        eprintln!("seeding sample data...");
        self.seed_files()?;
        self.seed_db()?;
        if !headless {
            self.seed_print()?;
        }
        // A first request through the proxy, so its log is not empty.
        http_get(self.proxy, &format!("http://{}/hello", self.origin.addr))?;
        Ok(())
    }

    fn seed_files(&self) -> Result<(), String> {
        let sample = self.data.join("sample");
        let docs: [(&str, String); 5] = [
            (
                "welcome.txt",
                "Welcome to the backroom demo.\nEverything here lives on the file server.\n".into(),
            ),
            (
                "handbook/printing.md",
                "# Printing\n\nSend jobs to `office`: the first idle printer takes them.\n".into(),
            ),
            (
                "handbook/booking.md",
                "# Booking trips\n\nSeats are sold from the `holidays` database.\n".into(),
            ),
            ("reports/q3.csv", report()),
            ("reports/minutes-2026-11-20.txt", minutes()),
        ];
        self.ok(&["files", "mkdir", "--parents", "shared/handbook"])?;
        self.ok(&["files", "mkdir", "--parents", "shared/reports"])?;
        self.ok(&["files", "mkdir", "--parents", "incoming"])?;
        for (name, text) in docs {
            let local = sample.join(name.replace('/', "-"));
            write_file(&local, text)?;
            self.ok(&[
                "files",
                "put",
                "--overwrite",
                &local.display().to_string(),
                &format!("shared/{name}"),
            ])?;
        }
        Ok(())
    }

    fn seed_db(&self) -> Result<(), String> {
        let listed = self.ok(&["db", "--json", "databases"])?;
        let exists = listed
            .lines()
            .filter_map(|line| json::parse(line).ok())
            .any(|db| db.get("name").and_then(Value::as_str) == Some("holidays"));
        if !exists {
            self.ok(&["db", "create", "holidays"])?;
        }
        let script = self.data.join("sample").join("holidays.sql");
        write_file(&script, HOLIDAYS_SQL)?;
        self.ok(&[
            "db",
            "--db",
            "holidays",
            "batch",
            &script.display().to_string(),
        ])?;
        Ok(())
    }

    /// A queue to look at: jobs of several priorities on the slow laser,
    /// two on the class (the archive printer takes them at once), and a
    /// held one.
    fn seed_print(&self) -> Result<(), String> {
        let sample = self.data.join("sample");
        for (name, pages, priority, printer) in [
            ("invoice-0042.txt", 1, "90", "laser"),
            ("newsletter.txt", 4, "30", "laser"),
            ("timetable.txt", 2, "50", "laser"),
            ("poster.txt", 3, "70", "laser"),
            ("minutes.txt", 2, "10", "laser"),
            ("receipt-0107.txt", 1, "50", "office"),
            ("receipt-0108.txt", 1, "50", "office"),
        ] {
            let local = sample.join(name);
            write_file(&local, pages_of(name, pages))?;
            self.ok(&[
                "print",
                "submit",
                &local.display().to_string(),
                "--priority",
                priority,
                "--printer",
                printer,
            ])?;
        }
        let held = sample.join("draft.txt");
        write_file(&held, pages_of("draft.txt", 1))?;
        self.ok(&[
            "print",
            "submit",
            &held.display().to_string(),
            "--hold",
            "--printer",
            "laser",
        ])?;
        Ok(())
    }

    /// Prints where everything is, then runs the dashboard until it quits,
    /// with a little traffic through the proxy meanwhile.
    fn dashboard(&self, backroom: &Path) -> Result<(), String> {
        eprintln!(
            "\nthe backroom demo is running:\n  \
             files   {}\n  \
             http    http://{}/   (files in a browser, or mounted over WebDAV; user\n          \
             admin, the password is the token in {})\n  \
             print   {}   (printers laser and archive, class office)\n  \
             ipp     {}   (try: lp -h {} -U admin -d office FILE; the password is\n          \
             the token in {})\n  \
             db      {}   (databases main and holidays)\n  \
             pg      {}   (try: psql \"host={} port={} dbname=holidays user=admin\";\n          \
             the password is the token in {})\n  \
             proxy   {}   admin {}\n  \
             origin  http://{}/   (try: curl -x http://{} http://{}/events)\n  \
             data    {}   (logs in logs/)\n  \
             CLI     {} --config {} files ls shared\n\n\
             opening the dashboard; q quits it and stops the suite...",
            self.files,
            self.files_http,
            self.config.display(),
            self.print,
            self.ipp,
            self.ipp,
            self.config.display(),
            self.db,
            self.pg,
            self.pg.ip(),
            self.pg.port(),
            self.config.display(),
            self.proxy,
            self.admin,
            self.origin.addr,
            self.proxy,
            self.origin.addr,
            self.data.display(),
            backroom.display(),
            self.config.display(),
        );
        let traffic = Traffic::start(self);
        let mut dash = Guard::spawn(
            "the dashboard",
            Command::new(backroom)
                .arg("--config")
                .arg(&self.config)
                .env_remove("BACKROOM_TOKEN"),
        )?;
        let status = loop {
            if let Some(status) = dash
                .child()
                .try_wait()
                .map_err(|e| format!("cannot watch the dashboard: {e}"))?
            {
                break status;
            }
            if stopping() {
                break dash.terminate(STOP_WITHIN)?;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        drop(traffic);
        if status.success() || stopping() {
            Ok(())
        } else {
            Err(format!("the dashboard failed ({status})"))
        }
    }

    /// SIGTERM to each server, last started first, and a wait for each.
    fn stop(&mut self) -> Result<(), String> {
        let mut failed = Vec::new();
        while let Some((name, mut server)) = self.servers.pop() {
            match server.terminate(STOP_WITHIN) {
                Ok(status) if stopped_cleanly(status) => eprintln!("stopped {name}"),
                Ok(status) => failed.push(format!("{name} stopped with {status}")),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// How to run the `backroom` command line against the demo's servers, for
/// a thread of its own.
struct Cli {
    backroom: PathBuf,
    config: PathBuf,
    data: PathBuf,
}

impl Cli {
    /// `backroom --config <the demo's config> ARGS...` in the data folder,
    /// with nothing from the user's environment that could point it
    /// elsewhere.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.backroom);
        command
            .current_dir(&self.data)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("BACKROOM_TOKEN")
            .stdin(Stdio::null());
        command
    }
}

/// A server that shut down on SIGTERM exits 0; one killed by it was busy
/// elsewhere, which after a Ctrl-C (it got SIGINT too) is fine as well.
fn stopped_cleanly(status: ExitStatus) -> bool {
    status.success() || stopping()
}

/// Starts one server with its stderr in `logs/<name>.log`, and records it.
fn start_server(
    servers: &mut Vec<(&'static str, Guard)>,
    data: &Path,
    token: &str,
    name: &'static str,
    program: &Path,
    args: &[&str],
    what: &[&str],
) -> Result<Vec<SocketAddr>, String> {
    let log_path = data.join("logs").join(format!("{name}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let (server, addrs) = Guard::spawn_listening(
        name,
        Command::new(program)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("BACKROOM_TOKEN", token)
            .stdin(Stdio::null())
            .stderr(log),
        what,
        START_WITHIN,
    )
    .map_err(|e| format!("{e} (see {})", log_path.display()))?;
    servers.push((name, server));
    Ok(addrs)
}

/// 32 random bytes in hex: the demo's admin token for every server.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read random bytes for the token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const HOLIDAYS_SQL: &str = "\
CREATE TABLE IF NOT EXISTS trips (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    departs TEXT NOT NULL,
    price_eur INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seats (
    id INTEGER PRIMARY KEY,
    trip_id INTEGER NOT NULL REFERENCES trips(id),
    seat TEXT NOT NULL,
    holder TEXT,
    UNIQUE (trip_id, seat)
);
INSERT OR IGNORE INTO trips VALUES
    (1, 'Lisbon', '2027-05-12', 420),
    (2, 'Reykjavik', '2027-02-03', 690),
    (3, 'Kyoto', '2027-04-01', 1150);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
INSERT OR IGNORE INTO seats (trip_id, seat) SELECT 1, 'L' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6)
INSERT OR IGNORE INTO seats (trip_id, seat) SELECT 2, 'R' || i FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8)
INSERT OR IGNORE INTO seats (trip_id, seat) SELECT 3, 'K' || i FROM n;
";

fn report() -> String {
    let mut csv = String::from("month,printed_pages,files_uploaded,proxy_requests\n");
    for (month, pages) in [("2026-07", 1840), ("2026-08", 960), ("2026-09", 2210)] {
        csv.push_str(&format!("{month},{pages},{},{}\n", pages / 7, pages * 31));
    }
    csv
}

fn minutes() -> String {
    "Minutes, 20 November 2026\n\n\
     1. The new print queue keeps jobs through power cuts.\n\
     2. Trip bookings move to the holidays database.\n\
     3. Next meeting: bring your own mug.\n"
        .into()
}

/// A document of `pages` pages (form feeds between them), for the printers.
pub fn pages_of(name: &str, pages: usize) -> String {
    (1..=pages)
        .map(|page| format!("{name}\npage {page} of {pages}\n"))
        .collect::<Vec<_>>()
        .join("\x0c")
}

// ------------------------------------------------------------ processes

/// Runs `command` to its end, with its output captured, within `within`
/// (it is killed after that) or until the demo is interrupted.
pub fn run(command: &mut Command, within: Duration) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("cannot wait for {shown}: {e}"))?
        {
            break status;
        }
        if stopping() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(if stopping() {
                "interrupted".into()
            } else {
                format!("{shown} did not finish within {within:?}")
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads a pipe to its end on a thread of its own.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

// ------------------------------------------------------------ traffic

/// Something happening while the dashboard is open, so that its tabs move:
/// a GET through the proxy every two seconds, and a print job every twenty.
/// Stops when dropped.
struct Traffic {
    stop: std::sync::Arc<AtomicBool>,
}

impl Traffic {
    /// Ticks of the traffic thread between two print jobs.
    const PRINT_EVERY: usize = 10;

    fn start(suite: &Suite) -> Traffic {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let (proxy, origin) = (suite.proxy, suite.origin.addr);
        let cli = suite.cli_runner();
        let document = suite.data.join("sample").join("notice.txt");
        let shown = document.display().to_string();
        std::thread::spawn(move || {
            let pages = ["/", "/hello", "/missing"];
            let priorities = ["20", "80", "50"];
            for (tick, page) in pages.iter().cycle().enumerate() {
                for _ in 0..20 {
                    if flag.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = http_get(proxy, &format!("http://{origin}{page}"));
                if tick % Traffic::PRINT_EVERY == 0 {
                    let priority = priorities[tick / Traffic::PRINT_EVERY % priorities.len()];
                    let notice = pages_of(&format!("notice {tick}"), 2);
                    if write_file(&document, notice).is_ok() {
                        let _ = cli
                            .command(&["print", "submit", &shown, "--printer", "laser"])
                            .args(["--priority", priority])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            }
        });
        Traffic { stop }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Lines of a child's pipe as they come, for output shown live.
pub fn lines_of(pipe: impl Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_every_flag_and_refuse_strangers() {
        let options =
            Options::parse(&["--headless", "--data", "d", "--big-mib", "8", "--debug"]).unwrap();
        assert!(options.headless && options.debug);
        assert_eq!(options.data.as_deref(), Some(Path::new("d")));
        assert_eq!(options.big_mib, 8);
        assert!(Options::parse(&["--big-mib", "0"]).is_err());
        assert!(Options::parse(&["--data"]).is_err());
        assert!(Options::parse(&["--fast"]).is_err());
    }

    #[test]
    fn toml_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\u000ay""#);
    }

    #[test]
    fn documents_have_a_form_feed_between_pages() {
        assert_eq!(pages_of("d", 2), "d\npage 1 of 2\n\x0cd\npage 2 of 2\n");
    }
}
