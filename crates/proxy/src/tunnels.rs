//! Open tunnels (CONNECT and upgraded connections): the registry the admin
//! port lists and closes, and the two-way copy with live byte counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backroom_api::proxy::TunnelInfo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The copy buffer of one direction of one tunnel.
const BUFFER: usize = 16 * 1024;

/// Byte counts of one tunnel, shared with its access-log record.
#[derive(Debug, Default)]
pub struct Counters {
    /// From the client towards the origin.
    pub up: AtomicU64,
    /// From the origin towards the client.
    pub down: AtomicU64,
}

struct Entry {
    info: TunnelInfo,
    counters: Arc<Counters>,
    close: CancellationToken,
}

/// Every open tunnel. The lock guards a map touched once per tunnel event and
/// is never held across an await.
#[derive(Default)]
pub struct Tunnels {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
    /// Set by `close_all`: a tunnel that registers later is closed at once,
    /// so shutdown never waits on a tunnel that raced it.
    closing: std::sync::atomic::AtomicBool,
}

/// Removes its tunnel from the registry when the tunnel ends, however it ends.
pub struct Registration {
    pub id: u64,
    pub close: CancellationToken,
    tunnels: Arc<Tunnels>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tunnels.lock().remove(&self.id);
    }
}

impl Tunnels {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        // Single inserts and removes leave the map consistent after a panic.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(
        self: &Arc<Self>,
        mut info: TunnelInfo,
        counters: Arc<Counters>,
    ) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        info.id = id;
        let close = CancellationToken::new();
        let mut open = self.lock();
        if self.closing.load(Ordering::Relaxed) {
            close.cancel();
        }
        open.insert(
            id,
            Entry {
                info,
                counters,
                close: close.clone(),
            },
        );
        drop(open);
        Registration {
            id,
            close,
            tunnels: self.clone(),
        }
    }

    pub fn list(&self) -> Vec<TunnelInfo> {
        let mut all: Vec<TunnelInfo> = self
            .lock()
            .values()
            .map(|e| TunnelInfo {
                bytes_in: e.counters.up.load(Ordering::Relaxed),
                bytes_out: e.counters.down.load(Ordering::Relaxed),
                ..e.info.clone()
            })
            .collect();
        all.sort_by_key(|t| t.id);
        all
    }

    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Closes one tunnel; false when there is no such tunnel.
    pub fn close(&self, id: u64) -> bool {
        match self.lock().get(&id) {
            Some(entry) => {
                entry.close.cancel();
                true
            }
            None => false,
        }
    }

    pub fn close_all(&self) {
        let open = self.lock();
        self.closing.store(true, Ordering::Relaxed);
        for entry in open.values() {
            entry.close.cancel();
        }
    }
}

/// Copies both ways until both sides finish, `close` fires, or neither side
/// sends anything for `idle`.
pub async fn splice<A, B>(
    client: A,
    origin: B,
    counters: &Counters,
    idle: Duration,
    close: &CancellationToken,
) where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut origin_read, mut origin_write) = tokio::io::split(origin);
    let activity = tokio::sync::Notify::new();
    let up = pump(&mut client_read, &mut origin_write, &counters.up, &activity);
    let down = pump(
        &mut origin_read,
        &mut client_write,
        &counters.down,
        &activity,
    );
    let both = async { tokio::join!(up, down) };
    let watchdog = async {
        loop {
            if tokio::time::timeout(idle, activity.notified())
                .await
                .is_err()
            {
                return;
            }
        }
    };
    tokio::select! {
        _ = both => {}
        () = watchdog => tracing::debug!("tunnel idle; closing"),
        () = close.cancelled() => tracing::debug!("tunnel closed on request"),
    }
}

/// One direction: read, write, count, and pass the end of stream on.
async fn pump<R, W>(from: &mut R, to: &mut W, count: &AtomicU64, activity: &tokio::sync::Notify)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.notify_one();
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> TunnelInfo {
        TunnelInfo {
            id: 0,
            client: "127.0.0.1:1".into(),
            user: "-".into(),
            target: "example.test:443".into(),
            upstream: "10.0.0.1:443".into(),
            opened_ms: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    #[tokio::test]
    async fn splice_copies_both_ways_and_counts() {
        let (client, mut client_far) = tokio::io::duplex(64);
        let (origin, mut origin_far) = tokio::io::duplex(64);
        let counters = Counters::default();
        let close = CancellationToken::new();
        let run = splice(client, origin, &counters, Duration::from_secs(30), &close);
        let drive = async {
            client_far.write_all(b"hello").await.expect("write");
            let mut got = [0u8; 5];
            origin_far.read_exact(&mut got).await.expect("read");
            assert_eq!(&got, b"hello");
            origin_far.write_all(b"hi").await.expect("write");
            let mut got = [0u8; 2];
            client_far.read_exact(&mut got).await.expect("read");
            assert_eq!(&got, b"hi");
            drop(client_far);
            drop(origin_far);
        };
        tokio::join!(run, drive);
        assert_eq!(counters.up.load(Ordering::Relaxed), 5);
        assert_eq!(counters.down.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_registered_tunnel_is_listed_closed_and_forgotten() {
        let tunnels = Arc::new(Tunnels::default());
        let registration = tunnels.register(info(), Arc::new(Counters::default()));
        assert_eq!(tunnels.list()[0].id, registration.id);
        assert!(!registration.close.is_cancelled());
        assert!(tunnels.close(registration.id));
        assert!(registration.close.is_cancelled());
        assert!(!tunnels.close(registration.id + 1));
        drop(registration);
        assert_eq!(tunnels.count(), 0);
    }

    #[test]
    fn a_tunnel_registered_after_close_all_is_closed_at_once() {
        let tunnels = Arc::new(Tunnels::default());
        tunnels.close_all();
        let late = tunnels.register(info(), Arc::new(Counters::default()));
        assert!(late.close.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_is_closed() {
        let (client, _client_far) = tokio::io::duplex(64);
        let (origin, _origin_far) = tokio::io::duplex(64);
        let counters = Counters::default();
        let close = CancellationToken::new();
        // With time paused, this returns only through the idle watchdog.
        splice(client, origin, &counters, Duration::from_secs(5), &close).await;
        assert_eq!(counters.up.load(Ordering::Relaxed), 0);
    }
}
