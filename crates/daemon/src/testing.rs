//! Test support for the daemons' real binaries: start one and read its
//! readiness lines, and check what SIGHUP does to it. Behind the
//! `test-support` feature, which only dev-dependencies enable, so no
//! daemon's own build holds this code.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use backroom_frame::ErrorCode;
use backroom_frame::auth::hash_token;
use backroom_frame::client::{Client, ClientConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};

/// A daemon's binary, running until it is killed or dropped.
pub struct Daemon {
    child: Child,
    /// Each readiness line's `<what>` and `<addr>`.
    addrs: Vec<(String, String)>,
    /// Kept open: the daemon's stdout must not become a broken pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Daemon {
    /// Spawns `command`, then waits for one readiness line,
    /// `listening <what> <addr>`, for each of `announces`, in that order.
    pub async fn start(command: Command, announces: &[&str]) -> Daemon {
        Daemon::start_with_stderr(command, announces, Stdio::null()).await
    }

    /// [`Daemon::start`], with the daemon's stderr going to `stderr`.
    pub async fn start_with_stderr(
        mut command: Command,
        announces: &[&str],
        stderr: Stdio,
    ) -> Daemon {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the daemon");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut addrs = Vec::new();
        for what in announces {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
                .await
                .expect("ready in time")
                .expect("read stdout");
            let addr = line
                .trim()
                .strip_prefix(&format!("listening {what} "))
                .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
            assert!(!addr.ends_with(":0"), "the real port: {addr}");
            addrs.push((what.to_string(), addr.to_owned()));
        }
        Daemon {
            child,
            addrs,
            _stdout: stdout,
        }
    }

    /// The address the readiness line `what` announced.
    pub fn addr(&self, what: &str) -> &str {
        self.addrs
            .iter()
            .find(|(announced, _)| announced == what)
            .map(|(_, addr)| addr.as_str())
            .unwrap_or_else(|| panic!("no readiness line for {what}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL: no destructor, no flush, no goodbye.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("reaped");
    }
}

/// What a daemon that refused to start printed.
#[derive(Debug)]
pub struct Refusal {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end and asserts that it refused to start: it exited
/// with a failure and printed no readiness line.
pub async fn assert_refuses_to_start(mut command: Command) -> Refusal {
    let run = command.stdin(Stdio::null()).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the daemon exits rather than serving")
        .expect("run the daemon");
    let refusal = Refusal {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!output.status.success(), "{refusal:?}");
    assert!(
        !refusal.stdout.contains("listening"),
        "no readiness line: {refusal:?}"
    );
    refusal
}

/// Asserts that `command` (a daemon's binary and its own flags), on a public
/// address and with no users, refuses to start, pointing at `--insecure`.
pub async fn assert_refuses_public_address_without_users(mut command: Command) {
    command.args(["--listen", "0.0.0.0:0"]);
    let refusal = assert_refuses_to_start(command).await;
    assert!(refusal.stderr.contains("--insecure"), "{refusal:?}");
}

/// Writes `text` to `config`, then asserts that `command` (a daemon's binary
/// and its own flags) with that `--config` refuses to start, naming `key`
/// and its `line`.
pub async fn assert_config_key_refused(
    mut command: Command,
    config: &Path,
    text: &str,
    key: &str,
    line: usize,
) {
    std::fs::write(config, text).expect("write config");
    command
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config);
    let refusal = assert_refuses_to_start(command).await;
    assert!(refusal.stderr.contains(key), "{refusal:?}");
    assert!(
        refusal.stderr.contains(&format!("line {line}")),
        "{refusal:?}"
    );
}

/// What differs between the daemons in [`assert_sighup_rotates`].
pub struct Hangup<'a> {
    /// The service of the frame port whose tokens rotate; it also names the
    /// files.
    pub service: &'a str,
    /// The `<what>` of that port's readiness line.
    pub port: &'a str,
    /// The `<what>` of the readiness lines before it, in the order they come.
    pub before: &'a [&'a str],
    /// What the log says before the rotation.
    pub serving: &'a str,
    /// What the new log must say after SIGHUP, beside "reloaded the users".
    pub reloaded: &'a [&'a str],
}

impl<'a> Hangup<'a> {
    /// A daemon with one port, announced as `service`, that logs "serving".
    pub fn new(service: &'a str) -> Hangup<'a> {
        Hangup {
            service,
            port: service,
            before: &[],
            serving: "serving",
            reloaded: &[],
        }
    }
}

/// Starts `command` (a daemon's binary and its own flags) on loopback with a
/// `--config` in `dir` whose user is ann and a `--log-file` there. Then it
/// renames the log away, makes bob the user and sends SIGHUP, and asserts
/// that within seconds bob gets in, ann does not, and the new log (not the
/// old one) says what was reloaded.
pub async fn assert_sighup_rotates(mut command: Command, dir: &Path, hangup: &Hangup<'_>) {
    let config = dir.join(format!("{}.toml", hangup.service));
    let log = dir.join(format!("{}.log", hangup.service));
    write_config(&config, "ann");
    command
        .arg("--config")
        .arg(&config)
        .arg("--log-file")
        .arg(&log)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info");
    let announces: Vec<&str> = hangup.before.iter().copied().chain([hangup.port]).collect();
    let mut daemon = Daemon::start(command, &announces).await;
    let addr = daemon.addr(hangup.port).to_owned();
    let admitted = |name| admitted(&addr, hangup.service, name);
    assert!(admitted("ann").await);
    assert!(!admitted("bob").await);

    let rotated = dir.join(format!("{}.log.1", hangup.service));
    std::fs::rename(&log, &rotated).expect("rotate the log");
    write_config(&config, "bob");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("reloaded the users")
            && hangup.reloaded.iter().all(|line| text.contains(line))
            && admitted("bob").await
            && !admitted("ann").await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reload after SIGHUP; the new log holds {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = std::fs::read_to_string(&rotated).expect("the rotated log");
    assert!(old.contains(hangup.serving), "{old}");
    assert!(!old.contains("reloaded the users"), "{old}");
    assert_eq!(
        daemon.child.try_wait().expect("status"),
        None,
        "still running"
    );
}

/// A config file whose one user is `name`, holding the token `<name>-token`.
fn write_config(path: &Path, name: &str) {
    let hash = hash_token(&format!("{name}-token"));
    let text =
        format!("[[users]]\nname = \"{name}\"\ntoken_sha256 = \"{hash}\"\nrole = \"admin\"\n");
    std::fs::write(path, text).expect("write config");
}

/// Whether a new connection to `service` with `name`'s token gets in; any
/// refusal other than `unauthorized` fails the test.
async fn admitted(addr: &str, service: &str, name: &str) -> bool {
    let mut config = ClientConfig::new(addr, service);
    config.token = Some(format!("{name}-token"));
    match Client::connect(&config).await {
        Ok(_) => true,
        Err(e) if e.code == ErrorCode::Unauthorized => false,
        Err(e) => panic!("connect as {name}: {e}"),
    }
}

/// The Python client sketch of `docs/protocol.md` §16, exactly as the page
/// shows it.
pub fn python_sketch() -> String {
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let text = std::fs::read_to_string(page).expect("docs/protocol.md");
    let section = text
        .split_once("## 16. A Python client sketch")
        .expect("section 16")
        .1;
    let code = section.split_once("```python\n").expect("its code").1;
    code.split_once("\n```\n")
        .expect("the code's end")
        .0
        .to_owned()
}

/// Runs the sketch with Debian's `/usr/bin/python3` and its `msgpack` module
/// (the package `python3-msgpack`, which CI installs) against the daemon at
/// `addr`, as `python3 sketch.py HOST PORT SERVICE`, and returns what it
/// printed; fails if it fails, or if it did not see the daemon's version
/// (every crate's, from the workspace) and the unknown-method error.
pub async fn run_python_sketch(addr: &str, service: &str) -> String {
    use tokio::io::AsyncWriteExt;

    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let mut child = Command::new("/usr/bin/python3")
        .args(["-", host, port, service])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("/usr/bin/python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(python_sketch().as_bytes())
        .await
        .expect("write the sketch");
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the sketch ends in time")
        .expect("the sketch's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the sketch failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let info = format!("info: {service} {}\n", env!("CARGO_PKG_VERSION"));
    assert!(stdout.contains(&info), "{stdout}");
    let unknown = "as expected: unknown_method: no method named \"no_such_method\"\n";
    assert!(stdout.contains(unknown), "{stdout}");
    stdout
}

/// A TCP connection to `addr` from `local`, a loopback address of its own
/// (`127.0.0.2` and up), so that a test can be a second client host.
pub async fn connect_from(local: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("a local address"))
        .expect("bind");
    let addr = addr.parse().expect("a server address");
    socket.connect(addr).await.expect("connect")
}

/// Reads an HTTP answer's head (to its blank line), or all that comes before
/// the connection closes.
async fn http_head(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") && tcp.read(&mut byte).await.expect("read") == 1 {
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("an answer in time");
    String::from_utf8_lossy(&head).into_owned()
}

/// Checks an HTTP face whose `max_connections_per_client` is 2: with two
/// connections of 127.0.0.1 served and kept open, a third from 127.0.0.1 is
/// refused with 429, while 127.0.0.2 is served. `request` is a whole
/// request the face answers.
pub async fn assert_http_face_caps_each_address(addr: &str, request: &str) {
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect_from("127.0.0.1", addr).await;
        tcp.write_all(request.as_bytes()).await.expect("write");
        let head = http_head(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 "), "{head}");
        assert!(!head.starts_with("HTTP/1.1 429"), "{head}");
        holders.push(tcp);
    }
    let mut third = connect_from("127.0.0.1", addr).await;
    let mut refusal = String::new();
    let read = third.read_to_string(&mut refusal);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the refusal and the close in time")
        .expect("read");
    assert!(refusal.starts_with("HTTP/1.1 429"), "{refusal}");
    assert!(refusal.contains("max_connections_per_client"), "{refusal}");
    let mut other = connect_from("127.0.0.2", addr).await;
    other.write_all(request.as_bytes()).await.expect("write");
    let head = http_head(&mut other).await;
    assert!(head.starts_with("HTTP/1.1 "), "{head}");
    assert!(
        !head.starts_with("HTTP/1.1 429"),
        "another address is served: {head}"
    );
    drop(holders);
}
