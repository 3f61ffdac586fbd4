//! Child processes, ports and paths: the plumbing the commands share.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::json::{self, Value};

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The variables `cargo run` sets to describe xtask itself. They must not
/// reach a nested cargo: build scripts such as ring's declare
/// `rerun-if-env-changed` on some of them, so a nested build would see them
/// change and rebuild half the dependency tree every time.
const CARGO_RUN_VARS: [&str; 6] = [
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "OUT_DIR",
];

/// The cargo that runs us, so that a pinned toolchain stays pinned, with an
/// environment as if it were started from the shell.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        if CARGO_RUN_VARS.iter().any(|prefix| name.starts_with(prefix)) {
            command.env_remove(&key);
        }
    }
    command
}

/// What a `cargo build --message-format=json` run made.
pub struct Built {
    messages: Vec<Value>,
}

/// Runs `cargo ARGS --message-format=json-render-diagnostics` in the
/// workspace, with cargo's own progress and diagnostics on our stderr.
pub fn build(args: &[&str]) -> Result<Built, String> {
    let output = cargo()
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo {}` failed ({})",
            args.join(" "),
            output.status
        ));
    }
    Ok(Built::from_lines(&String::from_utf8_lossy(&output.stdout)))
}

impl Built {
    /// The messages among cargo's `lines`; what is not JSON is skipped.
    fn from_lines(lines: &str) -> Built {
        let messages = lines
            .lines()
            .filter_map(|line| json::parse(line).ok())
            .collect();
        Built { messages }
    }

    /// The executable of the target `name` of `kind` (`bin`, `example`),
    /// not its test harness.
    pub fn executable(&self, kind: &str, name: &str) -> Result<PathBuf, String> {
        self.messages
            .iter()
            .find_map(|message| artifact(message, kind, name))
            .ok_or_else(|| format!("cargo built no {kind} named {name}"))
    }
}

fn artifact(message: &Value, kind: &str, name: &str) -> Option<PathBuf> {
    if message.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let target = message.get("target")?;
    let kinds = matches!(target.get("kind"), Some(Value::Array(kinds))
        if kinds.iter().any(|k| k.as_str() == Some(kind)));
    let test = matches!(message.path(&["profile", "test"]), Some(Value::Bool(true)));
    if target.get("name")?.as_str()? != name || !kinds || test {
        return None;
    }
    message.get("executable")?.as_str().map(PathBuf::from)
}

/// Whether `program` is on the `PATH`.
pub fn installed(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// A loopback port that was free a moment ago, for a peer that cannot be
/// told to pick its own. The listener closes before the port is returned, so
/// another process could take it in between; on loopback that is rare enough.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Waits until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, within: Duration) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nothing listens on {addr} after {within:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process that is killed and reaped when the guard goes, so that an
/// error or a panic halfway through a benchmark leaves no server behind.
pub struct Guard {
    name: String,
    child: Child,
}

impl Guard {
    pub fn spawn(name: &str, command: &mut Command) -> Result<Guard, String> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Guard {
            name: name.to_owned(),
            child,
        })
    }

    /// Starts a server that prints its readiness line, `<prefix><addr>`, and
    /// returns it with the address once it has said where it listens.
    pub fn spawn_announced(
        name: &str,
        command: &mut Command,
        prefix: &str,
        within: Duration,
    ) -> Result<(Guard, String), String> {
        let (mut server, lines) = Guard::spawn_reading(name, command, 1, within)?;
        let line = lines.into_iter().next().unwrap_or_default();
        match line.trim().strip_prefix(prefix) {
            Some(addr) => Ok((server, addr.to_owned())),
            None => {
                server.check_alive()?;
                Err(format!(
                    "{name} said {:?}, not `{prefix}<addr>`",
                    line.trim()
                ))
            }
        }
    }

    /// Starts one of our servers and reads the `listening <what> <addr>`
    /// lines it prints, one per name in `what`, in order.
    pub fn spawn_listening(
        name: &str,
        command: &mut Command,
        what: &[&str],
        within: Duration,
    ) -> Result<(Guard, Vec<SocketAddr>), String> {
        let (mut server, lines) = Guard::spawn_reading(name, command, what.len(), within)?;
        let mut addrs = Vec::new();
        for (line, expected) in lines.iter().zip(what) {
            let addr = line
                .strip_prefix("listening ")
                .and_then(|rest| rest.strip_prefix(expected))
                .and_then(|rest| rest.trim().parse().ok());
            match addr {
                Some(addr) => addrs.push(addr),
                None => {
                    server.check_alive()?;
                    return Err(format!(
                        "{name} said {line:?}, not `listening {expected} <addr>`"
                    ));
                }
            }
        }
        Ok((server, addrs))
    }

    /// Starts `command` with its stdout piped and returns it with the first
    /// `count` lines it prints.
    fn spawn_reading(
        name: &str,
        command: &mut Command,
        count: usize,
        within: Duration,
    ) -> Result<(Guard, Vec<String>), String> {
        let mut server = Guard::spawn(name, command.stdout(Stdio::piped()))?;
        let stdout = server
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{name} has no stdout"))?;
        // Read on a thread so that a server that never prints cannot hang us.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().take(count) {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + within;
        let mut lines = Vec::with_capacity(count);
        while lines.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    server.check_alive()?;
                    return Err(format!("{name} did not say where it listens"));
                }
            }
        }
        Ok((server, lines))
    }

    /// Asks the child to stop with SIGTERM and waits for it, killing it if
    /// it has not gone within `within`.
    pub fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        let pid = self.child.id().to_string();
        // `kill` keeps xtask free of a libc binding for one call.
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        if sent.is_ok_and(|status| status.success()) {
            let deadline = Instant::now() + within;
            while Instant::now() < deadline {
                if let Some(status) = self.try_status()? {
                    return Ok(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        self.child
            .wait()
            .map_err(|e| format!("cannot wait for {}: {e}", self.name))
    }

    fn try_status(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("cannot watch {}: {e}", self.name))
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Fails if the child has already exited, which usually means it could
    /// not start (a taken port, a bad flag).
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!("{} exited early ({status})", self.name)),
            Ok(None) => Ok(()),
            Err(e) => Err(format!("cannot watch {}: {e}", self.name)),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_in_cargo_messages() {
        let built = Built::from_lines(concat!(
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"backroom"},"profile":{"test":true},"executable":"/t/deps/backroom-1234"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"backroom"},"profile":{"test":false},"executable":"/t/backroom"}"#,
            "\n",
            "not json\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["example"],"name":"bench"},"profile":{"test":false},"executable":"/t/examples/bench"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        ));
        assert_eq!(
            built.executable("bin", "backroom"),
            Ok(PathBuf::from("/t/backroom"))
        );
        assert_eq!(
            built.executable("example", "bench"),
            Ok(PathBuf::from("/t/examples/bench"))
        );
        assert!(built.executable("bin", "bench").is_err());
        assert!(built.executable("bin", "backroom-files").is_err());
    }
}
