//! The DB tab's task: one database session, since a transaction belongs to
//! the connection that began it. It runs the tab's requests in order and
//! sends each outcome back.

use backroom_api::db::{BeginArgs, DbClient, ExecArgs, SchemaArgs, Statement};
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::db::tab::{Msg, Request};
use crate::driver::{self, Link};
use crate::outbox::Outlet;
use crate::server::Server;
use crate::update::{Timing, Update, UpdateKind};

/// Keeps a session open for the DB tab for as long as the UI listens.
/// `database` is the one its statements run on; the server's `main` when
/// `None`.
pub async fn run(
    config: ClientConfig,
    database: Option<String>,
    timing: Timing,
    updates: mpsc::Sender<Update>,
) {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    if !send(&updates, Msg::Attached(Outlet(requests_tx))).await {
        return;
    }
    let session = Session {
        config,
        database,
        timing,
        updates,
        requests,
        pending: None,
    };
    driver::drive(session, timing).await;
}

/// The DB tab's link to its server.
struct Session {
    config: ClientConfig,
    database: Option<String>,
    timing: Timing,
    updates: mpsc::Sender<Update>,
    requests: mpsc::UnboundedReceiver<Request>,
    /// A request that found the connection closed, to run on the next one.
    pending: Option<Request>,
}

impl Link for Session {
    type Client = DbClient;

    async fn connect(&mut self) -> Result<DbClient, Error> {
        let connected = DbClient::connect_with(&self.config).await;
        if let (Err(error), Some(request)) = (&connected, self.pending.take()) {
            let msg = Msg::Failed {
                sql: describe(&request),
                error: format!("not connected to the database server: {error}"),
            };
            send(&self.updates, msg).await;
        }
        connected
    }

    async fn serve(&mut self, client: &DbClient) -> Option<Error> {
        serve(self, client).await
    }

    async fn down(&mut self, error: &Error, _: Instant, _: u32) -> bool {
        send(&self.updates, Msg::Lost(error.to_string())).await
    }

    /// A request made while the server is down is not refused: it is kept
    /// for the connection that is tried at once, and fails only if that
    /// attempt does.
    async fn wait(&mut self, retry_at: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(retry_at) => true,
            request = self.requests.recv() => {
                self.pending = request;
                self.pending.is_some()
            }
        }
    }
}

async fn send(updates: &mpsc::Sender<Update>, msg: Msg) -> bool {
    driver::send(updates, Server::Db, UpdateKind::Db(msg)).await
}

fn describe(request: &Request) -> String {
    match request {
        Request::Run(sql) => sql.clone(),
        Request::Begin => "BEGIN".into(),
        Request::Commit => "COMMIT".into(),
        Request::Rollback => "ROLLBACK".into(),
        Request::Schema => "(schema)".into(),
    }
}

/// Runs requests until the connection breaks (`Some`) or the UI goes away
/// (`None`). The connection is checked before each request and at every
/// poll, so a request never goes to a connection the server has left: it
/// waits for the next one instead.
async fn serve(session: &mut Session, client: &DbClient) -> Option<Error> {
    let database = session.database.clone();
    let database = database.as_deref();
    let updates = session.updates.clone();
    if !send(&updates, Msg::Connected).await {
        return None;
    }
    if !refresh_schema(client, database, &updates).await {
        return None;
    }
    let mut ticker = tokio::time::interval(session.timing.poll);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let request = match session.pending.take() {
            Some(request) => request,
            None => tokio::select! {
                request = session.requests.recv() => request?,
                _ = ticker.tick() => match client.client().closed() {
                    Some(error) => return Some(error),
                    None => continue,
                },
            },
        };
        if let Some(error) = client.client().closed() {
            session.pending = Some(request);
            return Some(error);
        }
        let schema_changes = matches!(&request, Request::Run(_) | Request::Commit);
        let msg = perform(client, database, request).await;
        let failed = matches!(msg, Msg::Failed { .. });
        if !send(&updates, msg).await {
            return None;
        }
        if let Some(error) = client.client().closed() {
            return Some(error);
        }
        if schema_changes && !failed && !refresh_schema(client, database, &updates).await {
            return None;
        }
    }
}

/// Sends the schema, or nothing when it cannot be read; `false` once the UI
/// is gone.
async fn refresh_schema(
    client: &DbClient,
    database: Option<&str>,
    updates: &mpsc::Sender<Update>,
) -> bool {
    let args = SchemaArgs {
        db: database.map(str::to_owned),
        ..SchemaArgs::default()
    };
    match client.schema(&args).await {
        Ok(schema) => send(updates, Msg::Schema(schema)).await,
        Err(error) => {
            tracing::debug!(%error, "cannot read the schema");
            true
        }
    }
}

async fn perform(client: &DbClient, database: Option<&str>, request: Request) -> Msg {
    let sql = describe(&request);
    let outcome = match request {
        Request::Run(text) => {
            let args = ExecArgs {
                db: database.map(str::to_owned),
                statement: Statement::new(text.clone()),
                ..ExecArgs::default()
            };
            return match client.query(&args).await {
                Ok(result) => Msg::Result { sql: text, result },
                Err(error) => Msg::Failed {
                    sql: text,
                    error: error.to_string(),
                },
            };
        }
        Request::Begin => client
            .begin(&BeginArgs {
                db: database.map(str::to_owned),
                ..BeginArgs::default()
            })
            .await
            .map(|tx| (true, format!("transaction {} open on {}", tx.id, tx.db))),
        Request::Commit => client
            .commit()
            .await
            .map(|()| (false, "committed".to_string())),
        Request::Rollback => client
            .rollback()
            .await
            .map(|()| (false, "rolled back".to_string())),
        Request::Schema => {
            return match client.schema(&SchemaArgs::default()).await {
                Ok(schema) => Msg::Schema(schema),
                Err(error) => Msg::Failed {
                    sql,
                    error: error.to_string(),
                },
            };
        }
    };
    match outcome {
        Ok((open, text)) => Msg::Transaction { open, text },
        Err(error) => Msg::Failed {
            sql,
            error: error.to_string(),
        },
    }
}
