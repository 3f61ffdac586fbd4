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
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use std::time::Duration;

use backroom_daemon::face::{Admitted, Limits, Refusal, accept_loop};
use futures_util::StreamExt;
use parking_lot::{Mutex, MutexGuard};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::cancel::CancelRequest;
use pgwire::tokio::server;
use tokio::net::{TcpListener, TcpStream};
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
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, (i32, CancellationToken)>> {
        self.by_pid.lock()
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
    let limits = Limits::from(&face.service.config().frame);
    let handshake = limits.handshake;
    let serve = |conn: Admitted| {
        let pid = face.next_pid.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(PgSession::new(face.clone(), pid));
        let (tls, stop) = (tls.clone(), stop.clone());
        async move {
            let (mut socket, peer, _places) = conn.into_parts();
            let opening = tokio::time::timeout(handshake, opening::refuse_bad_start(&mut socket));
            if !matches!(opening.await, Ok(false)) {
                tracing::debug!(%peer, "pg: refused a connection that did not start PostgreSQL's start-up in time");
                return;
            }
            // Dropped on stop: the session closes and rolls back what it had
            // open.
            let served = tokio::select! {
                served = process_socket(socket, tls, handshake, Handlers(session)) => served,
                () = stop.cancelled() => Ok(()),
            };
            if let Err(error) = served {
                tracing::debug!(%error, %peer, "pg: connection ended");
            }
        }
    };
    let refuse = |mut socket: TcpStream, refusal| async move {
        let why = match refusal {
            Refusal::Full { max } => format!("sorry, too many clients already ({max} connections)"),
            Refusal::OverCap { max } => format!(
                "sorry, too many clients already: this address holds {max} connections \
                 (max_connections_per_client)"
            ),
        };
        opening::refuse(&mut socket, "53300", why).await;
    };
    accept_loop("pg", listener, &limits, stop.clone(), serve, refuse).await;
}

/// pgwire's `process_socket` (the same TLS negotiation and message loop,
/// built from pgwire's own parts) over a [`Corked`] socket, so that each
/// answer leaves in one send. TLS and the whole start-up, authentication
/// included, must finish within `handshake` (the frame port's
/// `handshake_timeout`), where pgwire allows a minute.
async fn process_socket(
    socket: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handshake: Duration,
    handlers: Handlers,
) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + handshake;
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
