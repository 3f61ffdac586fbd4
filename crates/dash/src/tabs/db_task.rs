//! The DB tab's task: one database session, since a transaction belongs to
//! the connection that began it. It runs the tab's requests in order and
//! sends each outcome back.

use backroom_api::db::{BeginArgs, DbClient, ExecArgs, SchemaArgs, Statement};
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conn::{Timing, Update, UpdateKind};
use crate::server::Server;
use crate::tabs::Outlet;
use crate::tabs::db::{Msg, Request};

/// Keeps a session open for the DB tab for as long as the UI listens.
/// `database` is the one its statements run on; the server's `main` when
/// `None`.
pub async fn run(
    config: ClientConfig,
    database: Option<String>,
    timing: Timing,
    updates: mpsc::Sender<Update>,
) {
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    if !send(&updates, Msg::Attached(Outlet(requests_tx))).await {
        return;
    }
    let mut delay = timing.backoff_min;
    loop {
        let error = match DbClient::connect_with(&config).await {
            Ok(client) => {
                delay = timing.backoff_min;
                match serve(&client, database.as_deref(), &updates, &mut requests).await {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        if !send(&updates, Msg::Lost(error.to_string())).await {
            return;
        }
        let retry_at = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(retry_at) => break,
                request = requests.recv() => {
                    let Some(request) = request else { return };
                    let msg = Msg::Failed {
                        sql: describe(&request),
                        error: "not connected to the database server".into(),
                    };
                    if !send(&updates, msg).await {
                        return;
                    }
                }
            }
        }
        delay = (delay * 2).min(timing.backoff_max);
    }
}

async fn send(updates: &mpsc::Sender<Update>, msg: Msg) -> bool {
    let update = Update {
        server: Server::Db,
        kind: UpdateKind::Db(msg),
    };
    updates.send(update).await.is_ok()
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
/// (`None`).
async fn serve(
    client: &DbClient,
    database: Option<&str>,
    updates: &mpsc::Sender<Update>,
    requests: &mut mpsc::UnboundedReceiver<Request>,
) -> Option<Error> {
    if !send(updates, Msg::Connected).await {
        return None;
    }
    if !refresh_schema(client, database, updates).await {
        return None;
    }
    loop {
        let request = requests.recv().await?;
        let schema_changes = matches!(&request, Request::Run(_) | Request::Commit);
        let msg = perform(client, database, request).await;
        let failed = matches!(msg, Msg::Failed { .. });
        if !send(updates, msg).await {
            return None;
        }
        if let Some(error) = client.client().closed() {
            return Some(error);
        }
        if schema_changes && !failed && !refresh_schema(client, database, updates).await {
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
