//! The PostgreSQL face of the database server: psql, every PostgreSQL
//! driver and pgbench speak to the same engines as the frame protocol.
//!
//! `pgwire` does the wire format; this module translates. Each PostgreSQL
//! connection is one session of the engine: its reads go to the reader pool
//! and its autocommit writes to the shared writer (group commit), until it
//! begins a transaction or sets connection state; then it gets a connection
//! of its own, as a frame session does. See docs/db.md, "PostgreSQL".

mod catalog;
mod copy;
mod corked;
mod cursors;
mod opening;
mod rewrite;
mod savepoints;
mod session;
mod types;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use futures_util::StreamExt;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::cancel::CancelRequest;
use pgwire::tokio::server;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, FramedParts};
use tokio_util::sync::CancellationToken;

use crate::service::DbService;
use corked::Corked;
use session::PgSession;

/// The statements running on the face, by backend pid, for CancelRequest.
#[derive(Default)]
struct Running {
    // A std lock: held only to look up or swap an entry.
    by_pid: Mutex<HashMap<i32, (i32, CancellationToken)>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (i32, CancellationToken)>> {
        self.by_pid.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What every connection of the face shares.
struct Face {
    service: DbService,
    running: Running,
    next_pid: AtomicI32,
}

/// Serves the PostgreSQL protocol on `listener` until `stop` is cancelled;
/// then closes every PostgreSQL session, which rolls back what it had open.
pub async fn serve(listener: TcpListener, service: DbService, stop: CancellationToken) {
    let tls = service
        .config()
        .frame
        .tls
        .clone()
        .map(pgwire::tokio::TlsAcceptor::from);
    let face = Arc::new(Face {
        service,
        running: Running::default(),
        next_pid: AtomicI32::new(1),
    });
    let max = face.service.config().frame.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let mut sessions = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(%error, "pg: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            sessions.spawn(async move {
                let full = format!("sorry, too many clients already ({max} connections)");
                opening::refuse(&mut socket, "53300", full).await;
            });
            continue;
        };
        let pid = face.next_pid.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(PgSession::new(face.clone(), pid));
        let tls = tls.clone();
        sessions.spawn(async move {
            let _slot = slot;
            if opening::refuse_bad_start(&mut socket).await {
                tracing::debug!(%peer, "pg: refused a connection that did not start with PostgreSQL's start-up");
                return;
            }
            if let Err(error) = process_socket(socket, tls, Handlers(session)).await {
                tracing::debug!(%error, %peer, "pg: connection ended");
            }
        });
    }
    sessions.shutdown().await;
}

/// How long a client has to finish its start-up, as in pgwire.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// pgwire's `process_socket` (the same TLS negotiation, start-up deadline
/// and message loop, built from pgwire's own parts) over a [`Corked`]
/// socket, so that each answer leaves in one send.
async fn process_socket(
    socket: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: Handlers,
) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let negotiated = tokio::time::timeout_at(deadline, server::negotiate_tls(socket, tls)).await;
    let Ok(negotiated) = negotiated else {
        return Ok(());
    };
    let Some(framed) = negotiated? else {
        return Ok(());
    };
    let plain = framed.into_parts();
    let mut parts = FramedParts::new(Corked::new(plain.io), plain.codec);
    parts.read_buf = plain.read_buf;
    parts.write_buf = plain.write_buf;
    let mut socket = Framed::from_parts(parts);
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::time::timeout_at(deadline, socket.next())
                .await
                .ok()
                .flatten()
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else {
            return Ok(());
        };
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(is_extended) => is_extended,
            _ => message.is_extended_query(),
        };
        let handled = server::process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(error) = handled {
            server::process_error(&mut socket, error, is_extended).await?;
        }
    }
}

/// The handlers of one connection: all of them are its session.
struct Handlers(Arc<PgSession>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(CancelByKey(self.0.face()))
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.0.clone()
    }
}

/// Cancels the statement a (pid, secret key) pair names, through the
/// engine's interrupt: the statement's future is dropped, which interrupts
/// SQLite.
struct CancelByKey(Arc<Face>);

#[async_trait::async_trait]
impl CancelHandler for CancelByKey {
    async fn on_cancel_request(&self, request: CancelRequest) {
        // The key of a CancelRequest is decoded before any start-up, so it
        // may arrive as 4 bytes rather than an i32.
        let Some(secret) = request.secret_key.as_i32() else {
            return;
        };
        let running = self.0.running.lock();
        if let Some((key, token)) = running.get(&request.pid) {
            if *key == secret {
                token.cancel();
            }
        }
    }
}
