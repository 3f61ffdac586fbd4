//! Open tunnels (CONNECT and upgraded connections): the registry the admin
//! port lists and closes, and the two-way relay with live byte counts:
//! spliced in the kernel between two sockets, copied otherwise.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backroom_api::proxy::TunnelInfo;
use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use rustix::pipe::{self, PipeFlags, SpliceFlags};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The copy buffer of one direction of one tunnel that is not spliced.
const BUFFER: usize = 16 * 1024;
/// The pipe of one direction of a spliced tunnel: 1 MiB, the most an
/// unprivileged process may ask for by default (`/proc/sys/fs/pipe-max-size`).
const PIPE_SIZE: usize = 1 << 20;

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
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Single inserts and removes leave the map consistent after a panic.
        self.open.lock()
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

/// Any stream a tunnel can carry: an upgraded connection's end.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The two ends of a tunnel.
pub enum Ends {
    /// Both ends are TCP sockets, as for CONNECT: the kernel moves the bytes
    /// from one socket to the other through a pipe (splice(2)), so they are
    /// never copied into the proxy. `early` are bytes the client sent behind
    /// its request head, which hyper had already read; they go first.
    Sockets {
        client: TcpStream,
        origin: TcpStream,
        early: Bytes,
    },
    /// Any other pair (an upgrade's ends): copied through a buffer.
    Streams {
        client: Box<dyn Stream>,
        origin: Box<dyn Stream>,
    },
}

/// Carries a tunnel both ways until both sides finish, `close` fires, or
/// neither side sends anything for `idle`.
pub async fn relay(ends: Ends, counters: &Counters, idle: Duration, close: &CancellationToken) {
    match ends {
        Ends::Sockets {
            client,
            mut origin,
            early,
        } => {
            let sent = tokio::time::timeout(idle, origin.write_all(&early));
            tokio::select! {
                sent = sent => if !matches!(sent, Ok(Ok(()))) { return },
                () = close.cancelled() => return,
            }
            counters.up.fetch_add(early.len() as u64, Ordering::Relaxed);
            match (Pipe::new(), Pipe::new()) {
                (Ok(up), Ok(down)) => {
                    splice_sockets(client, origin, [up, down], counters, idle, close).await;
                }
                // Out of file descriptors for pipes: copying needs none.
                _ => splice(client, origin, counters, idle, close).await,
            }
        }
        Ends::Streams { client, origin } => splice(client, origin, counters, idle, close).await,
    }
}

/// Copies both ways through a buffer until both sides finish, `close`
/// fires, or neither side sends anything for `idle`.
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
    let activity = Notify::new();
    let up = pump(&mut client_read, &mut origin_write, &counters.up, &activity);
    let down = pump(
        &mut origin_read,
        &mut client_write,
        &counters.down,
        &activity,
    );
    supervise(async { tokio::join!(up, down) }, &activity, idle, close).await;
}

/// Moves bytes between two sockets in the kernel, one pipe per direction.
async fn splice_sockets(
    client: TcpStream,
    origin: TcpStream,
    [up_pipe, down_pipe]: [Pipe; 2],
    counters: &Counters,
    idle: Duration,
    close: &CancellationToken,
) {
    let (client_read, mut client_write) = client.into_split();
    let (origin_read, mut origin_write) = origin.into_split();
    let activity = Notify::new();
    let up = pump_spliced(
        &client_read,
        &mut origin_write,
        &up_pipe,
        &counters.up,
        &activity,
    );
    let down = pump_spliced(
        &origin_read,
        &mut client_write,
        &down_pipe,
        &counters.down,
        &activity,
    );
    supervise(async { tokio::join!(up, down) }, &activity, idle, close).await;
}

/// Runs both directions of a tunnel, and ends it early when `close` fires or
/// nothing has moved for `idle`.
async fn supervise(
    both: impl Future,
    activity: &Notify,
    idle: Duration,
    close: &CancellationToken,
) {
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
async fn pump<R, W>(from: &mut R, to: &mut W, count: &AtomicU64, activity: &Notify)
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

/// One direction between sockets: socket to pipe, pipe to socket, count,
/// and pass the end of stream on.
async fn pump_spliced(
    from: &OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    pipe: &Pipe,
    count: &AtomicU64,
    activity: &Notify,
) {
    loop {
        let n = match fill(from, pipe).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if drain(pipe, to, n).await.is_err() {
            break;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        activity.notify_one();
    }
    let _ = to.shutdown().await;
}

/// Moves what the socket has (up to a pipe's worth) into the empty pipe.
async fn fill(from: &OwnedReadHalf, pipe: &Pipe) -> io::Result<usize> {
    let socket: &TcpStream = from.as_ref();
    loop {
        socket.readable().await?;
        // The pipe is empty here, so "would block" means the socket is.
        let moved = socket.try_io(Interest::READABLE, || {
            Ok(pipe::splice(
                socket,
                None,
                &pipe.write,
                None,
                pipe.size,
                SPLICE,
            )?)
        });
        match moved {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            moved => return moved,
        }
    }
}

/// Moves all `n` bytes in the pipe into the socket.
async fn drain(pipe: &Pipe, to: &OwnedWriteHalf, mut n: usize) -> io::Result<()> {
    let socket: &TcpStream = to.as_ref();
    while n > 0 {
        socket.writable().await?;
        // The pipe holds `n` bytes, so "would block" means the socket is full.
        let moved = socket.try_io(Interest::WRITABLE, || {
            Ok(pipe::splice(&pipe.read, None, socket, None, n, SPLICE)?)
        });
        match moved {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(moved) => n -= moved,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Never wait on the pipe, and move pages rather than copy them where the
/// kernel can.
const SPLICE: SpliceFlags = SpliceFlags::NONBLOCK.union(SpliceFlags::MOVE);

/// The pipe one direction of a spliced tunnel passes through.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// What one splice may move: the pipe's capacity.
    size: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A larger pipe moves more per system call; where the system caps
        // pipes lower, the default (64 KiB) still works.
        let size = pipe::fcntl_setpipe_size(&write, PIPE_SIZE)
            .or_else(|_| pipe::fcntl_getpipe_size(&write))?;
        Ok(Pipe { read, write, size })
    }
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

    /// A connected pair of loopback sockets.
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let near = TcpStream::connect(listener.local_addr().expect("addr"));
        let (near, far) = tokio::join!(near, listener.accept());
        (near.expect("connect"), far.expect("accept").0)
    }

    #[tokio::test]
    async fn sockets_are_spliced_both_ways_and_counted_with_their_early_bytes() {
        let (client, mut client_far) = socket_pair().await;
        let (origin, mut origin_far) = socket_pair().await;
        let counters = Counters::default();
        let close = CancellationToken::new();
        let ends = Ends::Sockets {
            client,
            origin,
            early: Bytes::from_static(b"early"),
        };
        let run = relay(ends, &counters, Duration::from_secs(30), &close);
        let down: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
        let drive = async {
            let up = async {
                client_far.write_all(b" and more").await.expect("write");
                client_far.shutdown().await.expect("half-close");
                let mut got = Vec::new();
                client_far.read_to_end(&mut got).await.expect("read");
                got
            };
            let across = async {
                let mut got = Vec::new();
                origin_far.read_to_end(&mut got).await.expect("read");
                origin_far.write_all(&down).await.expect("write");
                origin_far.shutdown().await.expect("half-close");
                got
            };
            tokio::join!(up, across)
        };
        let ((), (at_client, at_origin)) = tokio::join!(run, drive);
        assert_eq!(at_origin, b"early and more");
        assert!(at_client == down, "the download came through changed");
        assert_eq!(counters.up.load(Ordering::Relaxed), 14);
        assert_eq!(counters.down.load(Ordering::Relaxed), 3 << 20);
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
