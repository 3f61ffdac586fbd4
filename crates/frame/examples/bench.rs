//! The frame protocol benchmark's two ends, run as separate processes by
//! `cargo xtask bench frame`.
//!
//! ```text
//! bench server --listen ADDR [--stop-on-stdin-eof]
//! bench rtt    --addr ADDR [--conns N] [--depth D] [--secs S] [--warmup S]
//! bench stream --addr ADDR [--bytes N]
//! ```
//!
//! `server` prints `listening <addr>` once it accepts connections, and stops on
//! ctrl-c or SIGTERM, or with `--stop-on-stdin-eof` when its parent goes. The
//! client modes print one line of JSON with their figures.

// This is a command-line tool whose results are its standard output.
#![allow(clippy::print_stdout)]

use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use backroom_frame::body;
use backroom_frame::client::{Client, ClientConfig};
use backroom_frame::server::{self, Call, Reply, ServerConfig, Service};
use backroom_frame::stream::MAX_CHUNK;
use backroom_frame::{Error, ErrorCode};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// The service name both ends use.
const SERVICE: &str = "bench";

const USAGE: &str = "usage:
  bench server --listen ADDR [--stop-on-stdin-eof]
  bench rtt    --addr ADDR [--conns N] [--depth D] [--secs S] [--warmup S]
  bench stream --addr ADDR [--bytes N]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let Some((mode, rest)) = args.split_first() else {
        return Err(USAGE.to_owned());
    };
    let flags = Flags::parse(rest)?;
    // The load generator runs on one thread, as redis-benchmark does: with
    // two cores shared by both processes, hopping between worker threads
    // costs the client more than it gains. The server keeps the default.
    let runtime = match mode.as_str() {
        "rtt" | "stream" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    match mode.as_str() {
        "server" => {
            let listen = flags.required("listen")?;
            runtime.block_on(serve(&listen, flags.switch("stop-on-stdin-eof")))
        }
        "rtt" => {
            let plan = RttPlan {
                addr: flags.required("addr")?,
                conns: flags.number("conns", 1)?.max(1) as usize,
                depth: flags.number("depth", 1)?.max(1) as usize,
                measure: Duration::from_secs_f64(flags.seconds("secs", 5.0)?),
                warmup: Duration::from_secs_f64(flags.seconds("warmup", 0.5)?),
            };
            runtime.block_on(round_trips(plan))
        }
        "stream" => {
            let addr = flags.required("addr")?;
            let bytes = flags.number("bytes", 1 << 30)?;
            runtime.block_on(download(&addr, bytes))
        }
        other => Err(format!("unknown mode {other:?}\n{USAGE}")),
    }
}

/// Flags that take no value.
const SWITCHES: [&str; 1] = ["stop-on-stdin-eof"];

/// `--name value` pairs and `--switch`es, parsed by hand to keep the example
/// dependency-free.
struct Flags(Vec<(String, String)>);

impl Flags {
    fn parse(args: &[String]) -> Result<Flags, String> {
        let mut pairs = Vec::new();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let Some(name) = flag.strip_prefix("--") else {
                return Err(format!("unexpected argument {flag:?}\n{USAGE}"));
            };
            if SWITCHES.contains(&name) {
                pairs.push((name.to_owned(), String::new()));
                continue;
            }
            let value = args
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Flags(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn switch(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn required(&self, name: &str) -> Result<String, String> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, String> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name} wants a whole number, not {v:?}"))
        })
    }

    fn seconds(&self, name: &str, default: f64) -> Result<f64, String> {
        let secs = self.get(name).map_or(Ok(default), |v| {
            v.parse::<f64>()
                .map_err(|_| format!("--{name} wants seconds, not {v:?}"))
        })?;
        if !secs.is_finite() || secs < 0.0 {
            return Err(format!("--{name} wants a non-negative number of seconds"));
        }
        Ok(secs)
    }
}

// ---------------------------------------------------------------- server

/// Serves `bytes` (the stream benchmark) beside the runtime's built-in `ping`.
struct BenchService {
    /// One chunk of payload, shared by every piece of every download, so the
    /// server measures the protocol rather than its allocator.
    piece: Bytes,
}

#[derive(Serialize, Deserialize)]
struct BytesArgs {
    len: u64,
}

impl Service for BenchService {
    async fn call(&self, call: Call) -> Result<Reply, Error> {
        match call.method.as_str() {
            "bytes" => {
                let args: BytesArgs = call.args()?;
                Ok(Reply::Stream {
                    head: body::try_encode(&args.len)?,
                    body: Box::pin(Pieces {
                        piece: self.piece.clone(),
                        left: args.len,
                    }),
                })
            }
            other => Err(Error::new(
                ErrorCode::UnknownMethod,
                format!("the bench service has no method {other:?}"),
            )),
        }
    }
}

/// A download of `left` more bytes, cut from one reused buffer.
struct Pieces {
    piece: Bytes,
    left: u64,
}

impl futures_core::Stream for Pieces {
    type Item = Result<Bytes, Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let len = this.left.min(this.piece.len() as u64);
        this.left -= len;
        Poll::Ready(Some(Ok(this.piece.slice(..len as usize))))
    }
}

async fn serve(listen: &str, stop_on_stdin_eof: bool) -> Result<(), String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let config = ServerConfig::new(SERVICE, env!("CARGO_PKG_VERSION"));
    let service = BenchService {
        piece: Bytes::from(vec![0xa5; MAX_CHUNK]),
    };
    // The harness waits for this line before it starts measuring.
    println!("listening {addr}");
    let parent_gone = async move {
        if stop_on_stdin_eof {
            stdin_closed().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let stop = async move {
        tokio::select! {
            () = stop_signal() => {}
            () = parent_gone => {}
        }
    };
    server::run(listener, config, service, stop)
        .await
        .map_err(|e| format!("the server failed: {e}"))
}

/// Completes once standard input reaches its end: when the harness that holds
/// the other end of the pipe exits, however it exits, the server follows.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Tokio's own stdin needs a feature the workspace does not enable, and one
    // parked thread is cheap.
    std::thread::spawn(move || {
        let mut sink = [0u8; 256];
        while let Ok(n) = std::io::Read::read(&mut std::io::stdin(), &mut sink) {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(());
    });
    let _ = rx.await;
}

/// Completes on ctrl-c or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

// ----------------------------------------------------------- round trips

#[derive(Clone)]
struct RttPlan {
    addr: String,
    conns: usize,
    depth: usize,
    warmup: Duration,
    measure: Duration,
}

/// The measured window, shared by every connection's driver.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

impl Window {
    fn holds(&self, started: Instant, ended: Instant) -> bool {
        started >= self.from && ended <= self.until
    }
}

async fn round_trips(plan: RttPlan) -> Result<(), String> {
    let mut clients = Vec::with_capacity(plan.conns);
    for _ in 0..plan.conns {
        clients.push(connect(&plan.addr).await?);
    }
    let from = Instant::now() + plan.warmup;
    let window = Window {
        from,
        until: from + plan.measure,
    };
    let mut drivers = tokio::task::JoinSet::new();
    for client in clients {
        drivers.spawn(drive(client, plan.depth, window));
    }
    let mut latencies = Vec::new();
    while let Some(joined) = drivers.join_next().await {
        let mine = joined.map_err(|e| format!("a connection's driver panicked: {e}"))??;
        latencies.extend(mine);
    }
    latencies.sort_unstable();
    let secs = plan.measure.as_secs_f64();
    println!(
        "{{\"conns\":{},\"depth\":{},\"secs\":{secs:.3},\"requests\":{},\"rps\":{:.1},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        plan.conns,
        plan.depth,
        latencies.len(),
        latencies.len() as f64 / secs,
        percentile_us(&latencies, 0.50),
        percentile_us(&latencies, 0.99),
    );
    Ok(())
}

/// Keeps `depth` pings in flight on one connection until the window closes,
/// and returns the latencies, in nanoseconds, of those inside the window.
async fn drive(client: Client, depth: usize, window: Window) -> Result<Vec<u64>, String> {
    // One lane per ping in flight, each pinging in turn: the load generator
    // allocates nothing per ping, as redis-benchmark does not.
    let mut lanes: FuturesUnordered<_> = (0..depth).map(|_| lane(&client, window)).collect();
    let mut latencies = Vec::new();
    while let Some(mine) = lanes.next().await {
        latencies.extend(mine?);
    }
    Ok(latencies)
}

/// Pings, one after the other, until the window closes.
async fn lane(client: &Client, window: Window) -> Result<Vec<u64>, String> {
    let mut latencies = Vec::new();
    loop {
        // Two clock reads per ping and no more: at half a million pings a
        // second the clock is a visible share of the client's time.
        let started = Instant::now();
        client
            .call("ping", body::NIL.clone())
            .await
            .map_err(|e| format!("ping failed: {e}"))?;
        let ended = Instant::now();
        if window.holds(started, ended) {
            latencies.push((ended - started).as_nanos() as u64);
        }
        if ended >= window.until {
            return Ok(latencies);
        }
    }
}

/// The nearest-rank percentile of sorted nanoseconds, in microseconds.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

// ---------------------------------------------------------------- stream

async fn download(addr: &str, bytes: u64) -> Result<(), String> {
    let client = connect(addr).await?;
    // A first, small download lets TCP open its windows before we time one.
    fetch(&client, bytes.min(32 << 20)).await?;
    let started = Instant::now();
    fetch(&client, bytes).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"bytes\":{bytes},\"secs\":{secs:.4},\"mib_s\":{:.1}}}",
        bytes as f64 / (1024.0 * 1024.0) / secs
    );
    Ok(())
}

/// Downloads `len` bytes and checks that exactly that many arrived.
async fn fetch(client: &Client, len: u64) -> Result<(), String> {
    let (announced, mut stream) = client
        .download::<_, u64>("bytes", &BytesArgs { len })
        .await
        .map_err(|e| format!("download failed: {e}"))?;
    let mut got = 0u64;
    while let Some(chunk) = stream
        .chunk()
        .await
        .map_err(|e| format!("download broke off after {got} bytes: {e}"))?
    {
        got += chunk.len() as u64;
    }
    if announced != len || got != len {
        return Err(format!(
            "asked for {len} bytes, the server announced {announced} and sent {got}"
        ));
    }
    Ok(())
}

async fn connect(addr: &str) -> Result<Client, String> {
    let mut config = ClientConfig::new(addr, SERVICE);
    config.client_name = "frame-bench".into();
    config.retries = 3;
    Client::connect(&config)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}
