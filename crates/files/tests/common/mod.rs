//! Starts a files server in-process on loopback, over a fresh temp root.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use backroom_api::files::FilesClient;
use backroom_files::Config;
use backroom_frame::auth::{Auth, Role, User, hash_token};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestServer {
    pub addr: SocketAddr,
    /// What the server serves: `dir/root`. `dir` itself lies outside it.
    pub root: PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with open access (everyone is admin).
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server whose config `tune` adjusts; its root is already set.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        // Created here, not by the server task, so tests may seed it at once.
        std::fs::create_dir_all(&root).expect("root");
        let mut config = Config::new(&root);
        tune(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_files::run(listener, config, shutdown)
                .await
                .expect("server runs");
        });
        TestServer {
            addr,
            root,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> FilesClient {
        FilesClient::connect(&self.addr.to_string(), None)
            .await
            .expect("connect")
    }

    pub async fn client_as(&self, token: &str) -> FilesClient {
        FilesClient::connect(&self.addr.to_string(), Some(token.into()))
            .await
            .expect("connect")
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// Users `ann` (admin), `rw` (read-write) and `ro` (read-only), whose tokens
/// are their names.
pub fn users() -> Auth {
    let user = |name: &str, role| User {
        name: name.into(),
        token_sha256: hash_token(name),
        role,
    };
    Auth::new(vec![
        user("ann", Role::Admin),
        user("rw", Role::ReadWrite),
        user("ro", Role::ReadOnly),
    ])
    .expect("valid users")
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
