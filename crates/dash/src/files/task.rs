//! The Files tab's task: lists the directory being browsed, lists it again
//! when `watch` reports a change in it, and runs the tab's requests, each
//! transfer in its own task with progress sent as it goes.

use std::path::PathBuf;

use backroom_api::files::{
    Algorithm, ChangeKind, FilesClient, ListArgs, MoveArgs, ReadArgs, WriteArgs, WriteMode,
};
use backroom_frame::Error;
use backroom_frame::client::ClientConfig;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::driver::{self, Link};
use crate::files::tab::{Msg, Request, parent};
use crate::outbox::Outlet;
use crate::server::Server;
use crate::update::{Timing, Update, UpdateKind};

/// The size of each piece of an upload, and so of its progress steps.
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Keeps the Files tab fed for as long as anybody listens to `updates`.
pub async fn run(config: ClientConfig, timing: Timing, updates: mpsc::Sender<Update>) {
    let (requests_tx, requests) = mpsc::unbounded_channel();
    if !send(&updates, Msg::Attached(Outlet(requests_tx))).await {
        return;
    }
    let link = FilesLink {
        config,
        updates,
        requests,
        cwd: String::new(),
    };
    driver::drive(link, timing).await;
}

/// The Files tab's link to its server.
struct FilesLink {
    config: ClientConfig,
    updates: mpsc::Sender<Update>,
    requests: mpsc::UnboundedReceiver<Request>,
    /// The folder the tab shows, which survives reconnects.
    cwd: String,
}

impl Link for FilesLink {
    type Client = FilesClient;

    async fn connect(&mut self) -> Result<FilesClient, Error> {
        FilesClient::connect_with(&self.config).await
    }

    async fn serve(&mut self, client: &FilesClient) -> Option<Error> {
        follow(client, &self.updates, &mut self.requests, &mut self.cwd).await
    }

    async fn down(&mut self, error: &Error, _: Instant, _: u32) -> bool {
        send(&self.updates, Msg::Lost(error.to_string())).await
    }

    /// Requests made while the server is down fail at once; a change of
    /// folder is kept for the next connection.
    async fn wait(&mut self, retry_at: Instant) -> bool {
        let cwd = &mut self.cwd;
        let refuse = |request| {
            let msg = match request {
                Request::List(path) => {
                    *cwd = path;
                    return None;
                }
                Request::Upload { id, .. } | Request::Download { id, .. } => Msg::Finished {
                    id,
                    result: Err("not connected".into()),
                },
                _ => Msg::Done(Err("not connected to the file server".into())),
            };
            Some(UpdateKind::Files(msg))
        };
        driver::refuse_until(
            retry_at,
            &mut self.requests,
            &self.updates,
            Server::Files,
            refuse,
        )
        .await
    }
}

async fn send(updates: &mpsc::Sender<Update>, msg: Msg) -> bool {
    driver::send(updates, Server::Files, UpdateKind::Files(msg)).await
}

/// Watches the whole tree, lists `cwd`, then relays changes and runs
/// requests until the connection fails (`Some`) or the UI goes (`None`).
async fn follow(
    client: &FilesClient,
    updates: &mpsc::Sender<Update>,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    cwd: &mut String,
) -> Option<Error> {
    let mut changes = match client.watch("").await {
        Ok((_, changes)) => changes,
        Err(error) => return Some(error),
    };
    if let Err(error) = list(client, cwd, updates).await? {
        return Some(error);
    }
    loop {
        tokio::select! {
            change = changes.next() => {
                let change = match change {
                    Some(Ok(change)) => change,
                    Some(Err(error)) => return Some(error),
                    None => return Some(Error::unavailable("the file server ended the watch")),
                };
                let news = Msg::Changed(change.clone());
                if !send(updates, news).await {
                    return None;
                }
                let here = parent(&change.path) == *cwd
                    || change.to.as_deref().is_some_and(|to| parent(to) == *cwd)
                    || change.kind == ChangeKind::Overflow;
                if here && let Err(error) = list(client, cwd, updates).await? {
                    return Some(error);
                }
            }
            request = requests.recv() => {
                match request? {
                    Request::List(path) => {
                        *cwd = path;
                        if let Err(error) = list(client, cwd, updates).await? {
                            // A folder that went away is news, not a broken link.
                            if !send(updates, Msg::Done(Err(error.to_string()))).await {
                                return None;
                            }
                        }
                    }
                    request => {
                        tokio::spawn(perform(client.clone(), request, updates.clone()));
                    }
                }
            }
        }
    }
}

/// Lists `path` (every page) and sends it; the outer `None` means the UI
/// is gone.
async fn list(
    client: &FilesClient,
    path: &str,
    updates: &mpsc::Sender<Update>,
) -> Option<Result<(), Error>> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let args = ListArgs {
            path: path.to_string(),
            after: after.take(),
            ..ListArgs::default()
        };
        let page = match client.list(&args).await {
            Ok(page) => page,
            Err(error) => return Some(Err(error)),
        };
        entries.extend(page.entries);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let msg = Msg::Listing {
        path: path.to_string(),
        entries,
    };
    send(updates, msg).await.then_some(Ok(()))
}

/// Runs one request other than a listing and reports how it went.
async fn perform(client: FilesClient, request: Request, updates: mpsc::Sender<Update>) {
    let msg = match request {
        Request::Upload { id, local, remote } => {
            let result = upload(&client, id, &local, &remote, &updates).await;
            Msg::Finished { id, result }
        }
        Request::Download { id, remote, local } => {
            let result = download(&client, id, &remote, &local, &updates).await;
            Msg::Finished { id, result }
        }
        Request::Mkdir(path) => done(client.mkdir(&path, false).await, format!("created {path}")),
        Request::Rename { from, to } => {
            let args = MoveArgs {
                from: from.clone(),
                to: to.clone(),
                overwrite: false,
            };
            done(
                client.rename(&args).await,
                format!("renamed {from} to {to}"),
            )
        }
        Request::Remove { path, recursive } => done(
            client.remove(&path, recursive).await,
            format!("deleted {path}"),
        ),
        Request::Checksum(path) => Msg::Done(
            client
                .checksum(&path, Algorithm::Sha256)
                .await
                .map(|sum| format!("sha256 {}  {path}", sum.hex))
                .map_err(|e| format!("cannot checksum {path}: {e}")),
        ),
        Request::List(_) => return,
    };
    let _ = send(&updates, msg).await;
}

fn done(result: Result<(), Error>, text: String) -> Msg {
    Msg::Done(result.map(|()| text).map_err(|e| e.to_string()))
}

/// Streams a local file up in pieces, reporting each.
async fn upload(
    client: &FilesClient,
    id: u64,
    local: &PathBuf,
    remote: &str,
    updates: &mpsc::Sender<Update>,
) -> Result<String, String> {
    let shown = local.display().to_string();
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let total = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    let mut args = WriteArgs::new(remote, WriteMode::CreateNew);
    args.size = Some(total);
    let mut call = client.write(&args).await.map_err(server_said)?;
    let mut done = 0;
    let mut buffer = vec![0; UPLOAD_CHUNK];
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .map_err(|e| format!("cannot read {shown}: {e}"))?;
        if n == 0 {
            break;
        }
        call.send(Bytes::copy_from_slice(&buffer[..n]))
            .await
            .map_err(server_said)?;
        done += n as u64;
        let _ = send(updates, Msg::Progress { id, done, total }).await;
    }
    let written: backroom_api::files::Written = call.finish().await.map_err(server_said)?;
    Ok(format!(
        "uploaded {} ({} bytes)",
        written.path, written.size
    ))
}

/// Streams a remote file down into a local one, reporting each piece.
async fn download(
    client: &FilesClient,
    id: u64,
    remote: &str,
    local: &PathBuf,
    updates: &mpsc::Sender<Update>,
) -> Result<String, String> {
    let shown = local.display().to_string();
    let args = ReadArgs {
        path: remote.to_string(),
        ..ReadArgs::default()
    };
    let (head, mut stream) = client.read(&args).await.map_err(server_said)?;
    let mut file = tokio::fs::File::create_new(local)
        .await
        .map_err(|e| format!("cannot create {shown}: {e}"))?;
    let total = head.length;
    let mut done = 0;
    while let Some(chunk) = stream.chunk().await.map_err(server_said)? {
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot write {shown}: {e}"))?;
        done += chunk.len() as u64;
        let _ = send(updates, Msg::Progress { id, done, total }).await;
    }
    file.sync_all()
        .await
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    Ok(format!("downloaded {remote} to {shown} ({done} bytes)"))
}

/// A failure on the server's side, with its error code; a local one (the
/// disk here) is said in plain words, with no code of the protocol.
fn server_said(error: Error) -> String {
    error.to_string()
}
