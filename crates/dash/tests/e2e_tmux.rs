//! End to end: the real `backroom` binary in tmux, against real print and
//! file servers started in-process on loopback. Keys go in with
//! `tmux send-keys` and the screen comes back with `tmux capture-pane`; every
//! wait polls the screen for the text it expects, under one deadline.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backroom_print::PrinterConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The whole test finishes well within this, or something has hung.
const DEADLINE: Duration = Duration::from_secs(20);

/// How long to wait between two looks at the screen. This paces the
/// polling; it synchronises nothing.
const POLL: Duration = Duration::from_millis(50);

/// A private tmux server, killed when dropped, so that a failing test leaves
/// no tmux or `backroom` behind.
struct Tmux {
    socket: String,
    /// Where tmux put the socket, to remove it afterwards.
    socket_path: Option<String>,
    deadline: Instant,
}

impl Tmux {
    fn start(width: u16, height: u16, command: &[String]) -> Tmux {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut tmux = Tmux {
            socket: format!("backroom-e2e-{}-{nanos}", std::process::id()),
            socket_path: None,
            deadline: Instant::now() + DEADLINE,
        };
        let (width, height) = (width.to_string(), height.to_string());
        let mut args = vec![
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width,
            "-y",
            &height,
            "--",
        ];
        args.extend(command.iter().map(String::as_str));
        let output = tmux.run(&args);
        assert!(output.status.success(), "tmux new-session: {output:?}");
        let socket = tmux.run(&["display-message", "-p", "-t", "0", "#{socket_path}"]);
        let path = String::from_utf8_lossy(&socket.stdout).trim().to_string();
        tmux.socket_path = (socket.status.success() && !path.is_empty()).then_some(path);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env("TERM", "xterm-256color")
            .output()
            .expect("tmux runs")
    }

    /// Sends tmux key names (`Enter`, `Right`, `3`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        let output = self.run(&args);
        assert!(output.status.success(), "send-keys {keys:?}: {output:?}");
    }

    /// Types `text` as it is, not as key names.
    fn type_text(&self, text: &str) {
        let output = self.run(&["send-keys", "-t", "0", "-l", text]);
        assert!(output.status.success(), "send-keys -l: {output:?}");
    }

    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "0"]);
        if output.status.success() {
            String::from_utf8_lossy(&output.stdout).into_owned()
        } else {
            format!(
                "(no screen: {})",
                String::from_utf8_lossy(&output.stderr).trim()
            )
        }
    }

    /// Polls the screen until it holds every one of `texts`, and fails with
    /// the last screen once the test's deadline has passed.
    async fn wait_for(&self, texts: &[&str]) -> String {
        loop {
            let screen = self.screen();
            if texts.iter().all(|t| screen.contains(t)) {
                return screen;
            }
            assert!(
                Instant::now() < self.deadline,
                "timed out waiting for {texts:?}; the screen was:\n{screen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        // tmux leaves its socket file behind.
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A server task and the switch that stops it.
struct Running {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_print(dir: &Path) -> Running {
    let mut config = backroom_print::Config::new(dir.join("spool"));
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let printer = format!("laser=file:{}", out.display());
    config.printers = vec![printer.parse::<PrinterConfig>().expect("printer")];
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        backroom_print::run(listener, config, shutdown)
            .await
            .expect("the print server runs");
    });
    Running { addr, _stop: stop }
}

async fn start_files(root: &Path) -> Running {
    let config = backroom_files::Config::new(root);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        backroom_files::run(listener, config, shutdown)
            .await
            .expect("the files server runs");
    });
    Running { addr, _stop: stop }
}

/// A database server on `addr` (port 0 for any), with its files in `dir`,
/// and the task to wait on once it is told to stop.
async fn start_db(dir: &Path, addr: SocketAddr) -> (Running, tokio::task::JoinHandle<()>) {
    let config = backroom_db::Config::new(dir.join("data"));
    let listener = TcpListener::bind(addr).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        backroom_db::run(listener, config, shutdown)
            .await
            .expect("the db server runs");
    });
    (Running { addr, _stop: stop }, task)
}

/// A loopback port with nothing listening, for the servers not started.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_switches_tabs_and_submits_a_print_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let print = start_print(dir.path()).await;
    let files_root = dir.path().join("files");
    std::fs::create_dir_all(files_root.join("e2e-folder")).expect("a folder to list");
    let files = start_files(&files_root).await;
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("empty config");
    let document = dir.path().join("e2e-memo.txt");
    std::fs::write(&document, "printed end to end\n").expect("document");
    let command = vec![
        env!("CARGO_BIN_EXE_backroom").to_string(),
        "--config".into(),
        config.display().to_string(),
        "--print".into(),
        print.addr.to_string(),
        "--files".into(),
        files.addr.to_string(),
        "--db".into(),
        closed_port().await.to_string(),
        "--proxy-admin".into(),
        closed_port().await.to_string(),
    ];
    let tmux = Tmux::start(100, 30, &command);

    tmux.wait_for(&["1 Overview", "● files", "● print", "Events"])
        .await;
    // The real servers' vital signs reach their cards.
    let free = format!("{} ", backroom_api::files::vital::FREE);
    let queued = format!("{} 0", backroom_api::print::vital::QUEUED);
    tmux.wait_for(&[&free, &queued]).await;
    tmux.keys(&["2"]);
    tmux.wait_for(&["e2e-folder/", "modified"]).await;
    tmux.keys(&["4"]);
    tmux.wait_for(&["db server at"]).await;
    tmux.keys(&["5"]);
    tmux.wait_for(&["proxy server at"]).await;
    tmux.keys(&["1"]);
    tmux.wait_for(&["╭ Events"]).await;
    tmux.keys(&["3"]);
    tmux.wait_for(&["╭ Queue", "laser"]).await;

    // Pause the printer first, so the job waits in the queue to be seen
    // instead of printing and leaving it at once.
    tmux.keys(&["Right"]);
    tmux.wait_for(&["pause", "resume"]).await;
    tmux.keys(&["p"]);
    tmux.wait_for(&["paused"]).await;
    tmux.keys(&["Left"]);
    tmux.wait_for(&["submit"]).await;
    tmux.keys(&["a"]);
    tmux.wait_for(&["Submit a local file"]).await;
    tmux.type_text(&document.display().to_string());
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(&["e2e-memo.txt", "pending"]).await;
    assert!(
        !screen.contains("Submit a local file"),
        "the prompt closed:\n{screen}"
    );
    tmux.keys(&["q"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_after_the_db_server_restarts_succeeds_at_the_first_try() {
    let dir = tempfile::tempdir().expect("temp dir");
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let (first, first_task) = start_db(dir.path(), any_port).await;
    let addr = first.addr;
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").expect("empty config");
    let command = vec![
        env!("CARGO_BIN_EXE_backroom").to_string(),
        "--config".into(),
        config.display().to_string(),
        "--db".into(),
        addr.to_string(),
        "--print".into(),
        closed_port().await.to_string(),
        "--files".into(),
        closed_port().await.to_string(),
        "--proxy-admin".into(),
        closed_port().await.to_string(),
    ];
    let tmux = Tmux::start(100, 30, &command);
    tmux.wait_for(&["● db"]).await;
    tmux.keys(&["4"]);
    tmux.wait_for(&["╭ SQL", "╭ Results"]).await;

    // Restart the server on the same port under the open DB tab.
    drop(first);
    first_task.await.expect("the first server stops");
    tmux.wait_for(&["○ db"]).await;
    let (_second, _second_task) = start_db(dir.path(), addr).await;
    tmux.wait_for(&["● db"]).await;

    tmux.keys(&["e"]);
    tmux.type_text("SELECT 6 * 7 AS answer");
    tmux.keys(&["F5"]);
    let screen = tmux.wait_for(&["answer", "42", "1 row"]).await;
    assert!(
        !screen.contains("goodbye") && !screen.contains("not connected"),
        "the first query after the restart failed:\n{screen}"
    );
    tmux.keys(&["Escape", "q"]);
}
