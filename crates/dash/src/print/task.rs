//! The Print tab's task: lists the queue and printers, follows `watch`, and
//! runs the tab's requests, each in its own task so that a long submission
//! never holds up the events.

use backroom_api::print::{Event, Job, ListArgs, PrintClient, SubmitArgs};
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::driver::{self, Link};
use crate::outbox::Outlet;
use crate::print::tab::{LIST_LIMIT, Msg, Request};
use crate::server::Server;
use crate::update::{Timing, Update, UpdateKind};

/// Keeps the Print tab fed for as long as anybody listens to `updates`.
pub async fn run(config: ClientConfig, timing: Timing, updates: mpsc::Sender<Update>) {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    if !send(&updates, Msg::Attached(Outlet(requests_tx))).await {
        return;
    }
    let link = PrintLink {
        config,
        updates,
        requests,
    };
    driver::drive(link, timing).await;
}

/// The Print tab's link to its server.
struct PrintLink {
    config: ClientConfig,
    updates: mpsc::Sender<Update>,
    requests: mpsc::UnboundedReceiver<Request>,
}

impl Link for PrintLink {
    type Client = PrintClient;

    async fn connect(&mut self) -> Result<PrintClient, Error> {
        PrintClient::connect_with(&self.config).await
    }

    async fn serve(&mut self, client: &PrintClient) -> Option<Error> {
        follow(client, &self.updates, &mut self.requests).await
    }

    async fn down(&mut self, error: &Error, _: Instant, _: u32) -> bool {
        send(&self.updates, Msg::Lost(error.to_string())).await
    }

    /// Requests made while the server is down fail at once, not later.
    async fn wait(&mut self, retry_at: Instant) -> bool {
        let refuse = |request: Request| {
            let text = format!("cannot {}: not connected", request.describe());
            Some(UpdateKind::Print(Msg::Done(Err(text))))
        };
        driver::refuse_until(
            retry_at,
            &mut self.requests,
            &self.updates,
            Server::Print,
            refuse,
        )
        .await
    }
}

async fn send(updates: &mpsc::Sender<Update>, msg: Msg) -> bool {
    driver::send(updates, Server::Print, UpdateKind::Print(msg)).await
}

/// Subscribes, lists, then relays events and runs requests until the
/// connection fails (`Some`) or the UI goes away (`None`).
async fn follow(
    client: &PrintClient,
    updates: &mpsc::Sender<Update>,
    requests: &mut mpsc::UnboundedReceiver<Request>,
) -> Option<Error> {
    // Subscribing before listing means no change falls between the two.
    let mut events = match client.watch().await {
        Ok((_, events)) => events,
        Err(error) => return Some(error),
    };
    if let Err(error) = snapshot(client, updates).await? {
        return Some(error);
    }
    loop {
        tokio::select! {
            event = events.next() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => return Some(error),
                    None => return Some(Error::unavailable("the print server ended the watch")),
                };
                let lagged = matches!(event, Event::Lagged { .. });
                if !send(updates, Msg::Event(event)).await {
                    return None;
                }
                if lagged && let Err(error) = snapshot(client, updates).await? {
                    return Some(error);
                }
            }
            request = requests.recv() => {
                let request = request?;
                tokio::spawn(perform(client.clone(), request, updates.clone()));
            }
        }
    }
}

/// Lists the queue and the printers and sends them as one snapshot. The
/// outer `None` means the UI is gone.
async fn snapshot(
    client: &PrintClient,
    updates: &mpsc::Sender<Update>,
) -> Option<Result<(), Error>> {
    let listed = async {
        // Finished jobs too: the newest of them are the tab's history.
        let args = ListArgs {
            limit: LIST_LIMIT,
            all: true,
            ..ListArgs::default()
        };
        let list = client.list(&args).await?;
        let printers = client.printers().await?;
        Ok::<_, Error>(Msg::Snapshot {
            jobs: list.jobs,
            total: list.total,
            printers: printers.printers,
            default_printer: printers.default_printer,
        })
    };
    match listed.await {
        Ok(msg) => send(updates, msg).await.then_some(Ok(())),
        Err(error) => Some(Err(error)),
    }
}

/// Runs one request and reports how it went.
async fn perform(client: PrintClient, request: Request, updates: mpsc::Sender<Update>) {
    let what = request.describe();
    let result = match request {
        Request::Submit {
            path,
            name,
            priority,
            printer,
        } => {
            let msg = match submit(&client, path, name, priority, printer).await {
                Ok(job) => Msg::Submitted(job),
                Err(e) => Msg::Done(Err(format!("cannot {what}: {e}"))),
            };
            let _ = send(&updates, msg).await;
            return;
        }
        Request::Cancel(id) => client
            .cancel(id)
            .await
            .map(|_| format!("cancelled job {id}")),
        Request::Hold(id) => client.hold(id).await.map(|_| format!("held job {id}")),
        Request::Release(id) => client
            .release(id)
            .await
            .map(|_| format!("released job {id}")),
        Request::SetPriority { id, priority } => client
            .set_priority(id, priority)
            .await
            .map(|_| format!("job {id} now has priority {priority}")),
        Request::Promote(id) => client
            .promote(id)
            .await
            .map(|_| format!("promoted job {id}")),
        Request::Move { id, printer } => client
            .move_job(id, &printer)
            .await
            .map(|_| format!("moved job {id} to {printer}")),
        Request::Pause(printer) => client
            .pause(&printer)
            .await
            .map(|_| format!("paused {printer}")),
        Request::Resume(printer) => client
            .resume(&printer)
            .await
            .map(|_| format!("resumed {printer}")),
    };
    let msg = Msg::Done(result.map_err(|e| format!("cannot {what}: {e}")));
    let _ = send(&updates, msg).await;
}

/// Reads the local file off the async workers, then submits it.
async fn submit(
    client: &PrintClient,
    path: std::path::PathBuf,
    name: String,
    priority: u8,
    printer: Option<String>,
) -> Result<Job, String> {
    let shown = path.display().to_string();
    let read = tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .map_err(|e| format!("reading {shown} failed: {e}"))?;
    // The local disk's error, in plain words: no code of the protocol.
    let data = read.map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut args = SubmitArgs::new(name);
    args.priority = Some(priority);
    args.printer = printer;
    args.size = Some(data.len() as u64);
    client
        .submit(&args, Bytes::from(data))
        .await
        .map_err(|e| e.to_string())
}
