//! Child processes, ports and paths: the plumbing the commands share.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
        let mut server = Guard::spawn(name, command.stdout(Stdio::piped()))?;
        let stdout = server
            .child
            .stdout
            .take()
            .ok_or_else(|| format!("{name} has no stdout"))?;
        // Read on a thread so that a server that never prints cannot hang us.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(within)
            .map_err(|_| format!("{name} did not say where it listens"))?;
        let Some(addr) = line.trim().strip_prefix(prefix) else {
            server.check_alive()?;
            return Err(format!(
                "{name} said {:?}, not `{prefix}<addr>`",
                line.trim()
            ));
        };
        let addr = addr.to_owned();
        Ok((server, addr))
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
