//! `backroom proxy ...` against a real backroom-proxy started in the test:
//! stats, the access log (recent and followed), tunnels, reload, and the
//! failures a user meets (a proxy that is down, a bad token, a bad id).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use backroom_api::proxy::{AccessRecord, ProxyClient};
use backroom_frame::auth::{Auth, Role, User, hash_token};
use backroom_frame::client::{ClientConfig, Subscription};
use backroom_frame::server::ServerConfig;
use backroom_proxy::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Nothing here should take long; a hang fails the test instead.
const PATIENCE: Duration = Duration::from_secs(10);

/// A backroom-proxy serving in this process; it stops when dropped.
struct Proxy {
    addr: SocketAddr,
    admin: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl Proxy {
    async fn start(config: Config) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(backroom_proxy::run(listener, admin, config, async move {
            let _ = stopped.await;
        }));
        Proxy {
            addr,
            admin: admin_addr,
            _stop: stop,
        }
    }

    async fn admin_client(&self, token: Option<&str>) -> ProxyClient {
        let mut config = ClientConfig::new(self.admin.to_string(), "proxy");
        config.token = token.map(str::to_owned);
        ProxyClient::connect(&config).await.expect("admin connects")
    }
}

fn config() -> Config {
    let mut config = Config::new(ServerConfig::new("proxy", "test"));
    config.proxy.allow_loopback = true;
    config
}

/// An origin that answers every request with `hello`, keeping connections
/// alive as the proxy's pool expects.
async fn hello_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                while read_head(&mut tcp).await.is_some() {
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                    if tcp.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// An origin for tunnels: it echoes what it reads.
async fn echo_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads one request or response head; `None` at end of stream.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A GET through the proxy; returns the whole response.
async fn get_through(proxy: &Proxy, url: &str) -> String {
    let mut tcp = TcpStream::connect(proxy.addr).await.expect("connect proxy");
    let host = url.trim_start_matches("http://").split('/').next();
    let request = format!(
        "GET {url} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or_default()
    );
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, tcp.read_to_string(&mut response))
        .await
        .expect("the proxy answers in time")
        .expect("read");
    response
}

/// Waits for the next access-log record.
async fn next_record(feed: &mut Subscription<AccessRecord>) -> AccessRecord {
    tokio::time::timeout(PATIENCE, feed.next())
        .await
        .expect("a record in time")
        .expect("the feed is open")
        .expect("the record decodes")
}

/// An empty config file, so that the user's own config never leaks in.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("config.toml"), "").expect("write config");
        Home { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `backroom --config <home's empty file> <args>` to its end.
async fn backroom(home: &Home, args: &[&str]) -> Output {
    backroom_with(&home.config(), args).await
}

/// Runs `backroom --config <file> <args>` to its end, off the async workers
/// so that the in-process proxy keeps serving.
async fn backroom_with(config: &Path, args: &[&str]) -> Output {
    let mut command = command(config, args);
    let run = tokio::task::spawn_blocking(move || command.output().expect("run backroom"));
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("backroom finishes in time")
        .expect("the runner does not panic")
}

fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backroom"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("BACKROOM_TOKEN")
        .stdin(Stdio::null());
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure is exactly one line on stderr, and exit status 1.
fn assert_one_line_failure(output: &Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}{}", stdout(output));
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("backroom proxy: "), "{err}");
    assert!(err.contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_a_proxied_request() {
    let origin = hello_origin().await;
    let proxy = Proxy::start(config()).await;
    // The subscription lasts as long as its client.
    let watcher = proxy.admin_client(None).await;
    let mut feed = watcher.log().await.expect("log");
    let response = get_through(&proxy, &format!("http://{origin}/a")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    next_record(&mut feed).await;

    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "stats"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("requests     1  (1xx 0, 2xx 1, 3xx 0, 4xx 0, 5xx 0)"),
        "{text}"
    );
    assert!(text.contains("  127.0.0.1  1"), "{text}");

    // The proxy's flags work after the command too.
    let output = backroom(&home, &["proxy", "stats", "--json", "--addr", &admin]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let stats: backroom_api::proxy::Stats =
        serde_json::from_str(&stdout(&output)).expect("stats JSON");
    assert_eq!((stats.requests, stats.by_status.success), (1, 1));
    assert_eq!(stats.bytes_out, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_admin_flag_and_the_config_file_find_the_proxy_too() {
    let proxy = Proxy::start(config()).await;
    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["--proxy-admin", &admin, "proxy", "stats"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("top hosts    none yet"));

    let file = home.path().join("proxy.toml");
    std::fs::write(&file, format!("[proxy]\naddr = \"{admin}\"\n")).expect("write");
    let output = backroom_with(&file, &["proxy", "tunnels"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "no open tunnels\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_prints_the_latest_records_and_exits() {
    let origin = hello_origin().await;
    let proxy = Proxy::start(config()).await;
    // The subscription lasts as long as its client.
    let watcher = proxy.admin_client(None).await;
    let mut feed = watcher.log().await.expect("log");
    for path in ["/first", "/second"] {
        get_through(&proxy, &format!("http://{origin}{path}")).await;
        next_record(&mut feed).await;
    }
    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "log"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains(&format!(
            " 127.0.0.1 - GET http://{origin}/first 200 in=0 out=5 "
        )),
        "{text}"
    );
    assert!(lines[1].contains(&format!("http://{origin}/second 200")));
    assert!(lines[1].ends_with(&format!("upstream={origin}")), "{text}");

    let output = backroom(&home, &["proxy", "--addr", &admin, "--json", "log"]).await;
    let records: Vec<AccessRecord> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record per line"))
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].target, format!("http://{origin}/second"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_prints_new_records_as_requests_end() {
    let origin = hello_origin().await;
    let proxy = Proxy::start(config()).await;
    // The subscription lasts as long as its client.
    let watcher = proxy.admin_client(None).await;
    let mut feed = watcher.log().await.expect("log");
    get_through(&proxy, &format!("http://{origin}/before")).await;
    next_record(&mut feed).await;

    let home = Home::new();
    let admin = proxy.admin.to_string();
    let mut child = command(
        &home.config(),
        &["proxy", "--addr", &admin, "log", "--follow"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn backroom");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let mut next_line = async || {
        tokio::time::timeout(PATIENCE, lines.recv())
            .await
            .expect("a line in time")
            .expect("backroom still runs")
    };
    // The recent record shows that the command has subscribed, so the next
    // request can only reach it through the live feed.
    assert!(next_line().await.contains("/before 200"));
    get_through(&proxy, &format!("http://{origin}/after")).await;
    let live = next_line().await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        live.contains(&format!("GET http://{origin}/after 200")),
        "{live}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_are_listed_and_closed_by_id() {
    let echo = echo_origin().await;
    let mut cfg = config();
    cfg.proxy.connect_ports = vec![echo.port()];
    let proxy = Proxy::start(cfg).await;
    // The subscription lasts as long as its client.
    let watcher = proxy.admin_client(None).await;
    let mut feed = watcher.log().await.expect("log");
    let mut tunnel = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n");
    tunnel.write_all(request.as_bytes()).await.expect("send");
    let head = read_head(&mut tunnel).await.expect("head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    tunnel.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    tunnel.read_exact(&mut echoed).await.expect("echo");

    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "tunnels"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("ID  CLIENT"), "{text}");
    assert!(text.contains(&echo.to_string()), "{text}");
    assert!(text.contains("4 B"), "{text}");

    let output = backroom(&home, &["proxy", "--addr", &admin, "--json", "tunnels"]).await;
    let listed: Vec<backroom_api::proxy::TunnelInfo> =
        serde_json::from_str(&stdout(&output)).expect("tunnels JSON");
    assert_eq!(listed.len(), 1);
    let id = listed[0].id.to_string();

    let output = backroom(&home, &["proxy", "--addr", &admin, "close-tunnel", &id]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("closed tunnel {id}\n"));
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, tunnel.read_to_end(&mut rest))
        .await
        .expect("the tunnel closes in time")
        .expect("read");
    // The record is written once the tunnel is gone from the list.
    assert_eq!(next_record(&mut feed).await.method, "CONNECT");
    let output = backroom(&home, &["proxy", "--addr", &admin, "tunnels"]).await;
    assert_eq!(stdout(&output), "no open tunnels\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_an_unknown_tunnel_fails_with_one_line() {
    let proxy = Proxy::start(config()).await;
    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "close-tunnel", "999"]).await;
    assert_one_line_failure(&output, "no open tunnel has id 999");

    let output = backroom(&home, &["proxy", "--addr", &admin, "close-tunnel", "abc"]).await;
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(stderr(&output).contains("invalid value 'abc'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reads_the_proxy_config_file() {
    let home = Home::new();
    let file = home.path().join("proxy.toml");
    std::fs::write(
        &file,
        "[acl]\nclient_deny = [\"10.0.0.0/8\"]\n\
         [[acl.rules]]\nname = \"web\"\naction = \"allow\"\nports = [80, 443]\n",
    )
    .expect("write");
    let mut cfg = config();
    cfg.config_path = Some(file.clone());
    let proxy = Proxy::start(cfg).await;
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "reload"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "reloaded: 1 rules, 0 users, 0 client allow and 1 client deny ranges\n"
    );

    std::fs::write(&file, "[acl\n").expect("break the file");
    let output = backroom(&home, &["proxy", "--addr", &admin, "reload"]).await;
    assert_one_line_failure(&output, "reload refused, the old policy stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_without_a_config_file_is_refused() {
    let proxy = Proxy::start(config()).await;
    let home = Home::new();
    let admin = proxy.admin.to_string();
    let output = backroom(&home, &["proxy", "--addr", &admin, "reload"]).await;
    assert_one_line_failure(&output, "started without --config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_is_down_gives_one_line() {
    // A port that was just free, and that nothing listens on now.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .to_string();
    let home = Home::new();
    let output = backroom(&home, &["proxy", "--addr", &addr, "stats"]).await;
    assert_one_line_failure(
        &output,
        &format!("cannot reach the proxy's admin port at {addr}"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_decides_what_the_cli_may_do() {
    let mut cfg = config();
    let users = ["viewer", "boss"]
        .into_iter()
        .zip([Role::ReadOnly, Role::Admin])
        .map(|(name, role)| User {
            name: name.into(),
            token_sha256: hash_token(&format!("{name}-token")),
            role,
        })
        .collect();
    cfg.admin.auth = Auth::new(users).expect("auth").into();
    let proxy = Proxy::start(cfg).await;
    let home = Home::new();
    let admin = proxy.admin.to_string();

    let output = backroom(&home, &["proxy", "--addr", &admin, "stats"]).await;
    assert_one_line_failure(&output, "needs a token");
    let output = backroom(
        &home,
        &["--token", "wrong", "proxy", "--addr", &admin, "stats"],
    )
    .await;
    assert_one_line_failure(&output, "the token is not valid");

    let viewer = ["--token", "viewer-token", "proxy", "--addr", &admin];
    let output = backroom(&home, &[&viewer[..], &["stats"]].concat()).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let output = backroom(&home, &[&viewer[..], &["close-tunnel", "1"]].concat()).await;
    assert_one_line_failure(&output, "this needs admin");

    let boss = ["proxy", "--addr", &admin, "--token", "boss-token"];
    let output = backroom(&home, &[&boss[..], &["close-tunnel", "1"]].concat()).await;
    assert_one_line_failure(&output, "no open tunnel has id 1");
}
