//! Starts an in-process database server on loopback for the tests.

#![allow(dead_code)]

use std::time::Duration;

use backroom_api::db::{DbClient, ExecArgs, QueryResult, Statement, Value};
use backroom_db::Config;
use backroom_frame::auth::{Auth, Role, User, hash_token};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN: &str = "admin-token";
pub const WRITER: &str = "writer-token";
pub const READER: &str = "reader-token";

pub struct Server {
    pub addr: String,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops the server and waits until it has rolled back and closed all.
    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the server and hands back its directory, for a restart.
    pub async fn stop_keeping_data(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task ends cleanly");
        self.dir
    }
}

fn users() -> Auth {
    let user = |name: &str, token: &str, role| User {
        name: name.into(),
        token_sha256: hash_token(token),
        role,
    };
    Auth::new(vec![
        user("ann", ADMIN, Role::Admin),
        user("wes", WRITER, Role::ReadWrite),
        user("rob", READER, Role::ReadOnly),
    ])
    .expect("valid users")
}

/// Starts a server with three users (admin, read-write, read-only) after
/// `adjust` has changed the defaults.
pub async fn start(adjust: impl FnOnce(&mut Config)) -> Server {
    start_in(tempfile::tempdir().expect("temp dir"), adjust).await
}

/// Starts a server on `dir/data`, which may hold databases already.
pub async fn start_in(dir: TempDir, adjust: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::new(dir.path().join("data"));
    config.frame.auth = users().into();
    adjust(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        backroom_db::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("the server runs");
    });
    Server {
        addr,
        dir,
        stop: Some(stop),
        task,
    }
}

pub async fn connect(server: &Server, token: &str) -> DbClient {
    DbClient::connect(&server.addr, Some(token.into()))
        .await
        .expect("connects")
}

pub async fn admin(server: &Server) -> DbClient {
    connect(server, ADMIN).await
}

pub fn stmt(sql: &str) -> Statement {
    Statement::new(sql)
}

pub async fn exec(client: &DbClient, sql: &str) -> QueryResult {
    client
        .execute_main(stmt(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub async fn query(client: &DbClient, sql: &str) -> QueryResult {
    client
        .query_main(stmt(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The single integer a query returns.
pub async fn scalar(client: &DbClient, sql: &str) -> i64 {
    match query(client, sql).await.rows.as_slice() {
        [row] => match row.as_slice() {
            [Value::Integer(v)] => *v,
            other => panic!("{sql}: not one integer: {other:?}"),
        },
        other => panic!("{sql}: not one row: {other:?}"),
    }
}

pub fn on(db: &str, statement: Statement) -> ExecArgs {
    ExecArgs {
        db: Some(db.into()),
        statement,
        timeout_ms: None,
    }
}
