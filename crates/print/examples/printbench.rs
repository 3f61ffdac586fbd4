//! The print server's load generator for `cargo xtask bench print`.
//!
//! It talks to a running `backroom-print` over the protocol, like any client:
//!
//! - `submit`: 8 (or `--conns`) submitters send small documents for
//!   `--secs` seconds; every job counts only once it is acknowledged, that
//!   is durably spooled.
//! - `fill`: submits until `--total` jobs are waiting.
//! - `latency`: times listing the queue's first page and changing a job's
//!   priority, with the queue as it is.
//! - `pause`: pauses a printer, so that submitted jobs stay queued.
//! - `ipp-submit`: as `submit`, with IPP Print-Job requests over HTTP/1.1
//!   keep-alive connections to `--uri`: the same client for backroom's IPP
//!   face and for CUPS.
//! - `ipp-list`: times Get-Jobs for the first page (100 jobs) at `--uri`.
//!
//! Each prints one line of JSON on stdout; progress goes to stderr.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backroom_api::print::{JobState, ListArgs, PrintClient, SubmitArgs};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, IppVersion, Operation};
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;

#[derive(Debug, Parser)]
struct Args {
    #[command(subcommand)]
    command: Mode,
}

/// How hard a submit run pushes.
#[derive(Debug, clap::Args)]
struct Load {
    #[arg(long, default_value_t = 8)]
    conns: usize,
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    #[arg(long, default_value_t = 1024)]
    size: usize,
}

#[derive(Debug, Subcommand)]
enum Mode {
    Submit {
        #[arg(long)]
        addr: String,
        #[command(flatten)]
        load: Load,
    },
    Fill {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        total: u64,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 1024)]
        size: usize,
    },
    Latency {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 200)]
        reps: usize,
    },
    IppSubmit {
        /// The printer, as `ipp://HOST:PORT/printers/NAME`.
        #[arg(long)]
        uri: String,
        #[command(flatten)]
        load: Load,
    },
    IppList {
        #[arg(long)]
        uri: String,
        #[arg(long, default_value_t = 200)]
        reps: usize,
    },
    /// Pauses a printer, so that the jobs stay queued.
    Pause {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        printer: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Mode::Submit { addr, load } => submit(&addr, load).await,
        Mode::Fill {
            addr,
            total,
            conns,
            size,
        } => fill(&addr, total, conns, size).await,
        Mode::Latency { addr, reps } => latency(&addr, reps).await,
        Mode::IppSubmit { uri, load } => ipp_submit(&uri, load).await,
        Mode::IppList { uri, reps } => ipp_list(&uri, reps).await,
        Mode::Pause { addr, printer } => {
            connect(&addr).await?.pause(&printer).await?;
            println!("{{\"paused\":true}}");
            Ok(())
        }
    }
}

fn document(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

async fn connect(addr: &str) -> anyhow::Result<PrintClient> {
    PrintClient::connect(addr, None)
        .await
        .with_context(|| format!("cannot connect to {addr}"))
}

/// Submitters that each send one job at a time until `stop` is set, and
/// record each job's time from request to acknowledgement.
async fn submitters(
    addr: &str,
    conns: usize,
    size: usize,
    stop: Arc<AtomicBool>,
    limit: Option<Arc<AtomicU64>>,
) -> anyhow::Result<Vec<Duration>> {
    let doc = document(size);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client = connect(addr).await?;
        let (doc, stop, limit) = (doc.clone(), stop.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut args = SubmitArgs::new("bench.txt");
            args.size = Some(doc.len() as u64);
            while !stop.load(Ordering::Relaxed) {
                // A budget of jobs to send, when filling the queue.
                if let Some(left) = &limit
                    && left
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let start = Instant::now();
                client.submit(&args, doc.clone()).await?;
                times.push(start.elapsed());
            }
            anyhow::Ok(times)
        }));
    }
    join_times(tasks).await
}

/// Every submitter's latencies, or the first failure.
async fn join_times(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>>,
) -> anyhow::Result<Vec<Duration>> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

async fn submit(addr: &str, load: Load) -> anyhow::Result<()> {
    let Load { conns, secs, size } = load;
    let addr = addr.to_owned();
    timed(Duration::from_secs_f64(secs), move |stop| {
        let addr = addr.clone();
        async move { submitters(&addr, conns, size, stop, None).await }
    })
    .await
}

/// Runs `submitters` for a short warm-up, so that connections and the
/// database's first pages are not in the figure, then for `secs`, and
/// prints the rate and the latencies of the second run.
async fn timed<F, R>(secs: Duration, submitters: F) -> anyhow::Result<()>
where
    F: Fn(Arc<AtomicBool>) -> R,
    R: std::future::Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let warm = tokio::spawn(submitters(stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    warm.await??;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let run = tokio::spawn(submitters(stop.clone()));
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut times = run.await??;
    let took = started.elapsed().as_secs_f64();
    times.sort();
    println!(
        "{{\"jobs\":{},\"secs\":{took:.3},\"jobs_per_s\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        times.len(),
        times.len() as f64 / took,
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
    );
    Ok(())
}

async fn waiting(client: &PrintClient) -> anyhow::Result<u64> {
    let list = ListArgs {
        limit: 1,
        ..ListArgs::default()
    };
    Ok(client.list(&list).await?.total)
}

async fn fill(addr: &str, total: u64, conns: usize, size: usize) -> anyhow::Result<()> {
    let client = connect(addr).await?;
    let already = waiting(&client).await?;
    let missing = total.saturating_sub(already);
    eprintln!("bench: queueing {missing} more jobs to have {total} waiting...");
    let started = Instant::now();
    let budget = Arc::new(AtomicU64::new(missing));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = submitters(addr, conns, size, stop, Some(budget)).await?;
    let took = started.elapsed().as_secs_f64();
    let now = waiting(&client).await?;
    if now < total {
        bail!("only {now} jobs are waiting, not {total}");
    }
    println!(
        "{{\"queued\":{now},\"sent\":{},\"secs\":{took:.3}}}",
        sent.len()
    );
    Ok(())
}

async fn latency(addr: &str, reps: usize) -> anyhow::Result<()> {
    let client = connect(addr).await?;
    let queued = waiting(&client).await?;
    // Jobs spread over the queue, to change priorities all over it.
    let mut ids = Vec::new();
    let page = client.list(&ListArgs::default()).await?;
    if page.jobs.is_empty() {
        bail!("the queue is empty");
    }
    let first = page.jobs.iter().map(|j| j.id).min().unwrap_or(1);
    for i in 0..reps as u64 {
        ids.push(first + (i * 7919) % queued.max(1));
    }
    let mut list_times = Vec::new();
    for _ in 0..reps {
        let start = Instant::now();
        let page = client.list(&ListArgs::default()).await?;
        list_times.push(start.elapsed());
        if page.jobs.is_empty() {
            bail!("the first page came back empty");
        }
    }
    let mut priority_times = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let priority = 1 + (i % 100) as u8;
        let start = Instant::now();
        let job = client.set_priority(*id, priority).await?;
        priority_times.push(start.elapsed());
        if job.priority != priority || job.state != JobState::Pending {
            bail!("job {id} did not take priority {priority}: {job:?}");
        }
    }
    list_times.sort();
    priority_times.sort();
    println!(
        "{{\"queued\":{queued},\"reps\":{reps},\"list_p50_ms\":{:.3},\"list_p99_ms\":{:.3},\"priority_p50_ms\":{:.3},\"priority_p99_ms\":{:.3}}}",
        ms(percentile(&list_times, 0.50)),
        ms(percentile(&list_times, 0.99)),
        ms(percentile(&priority_times, 0.50)),
        ms(percentile(&priority_times, 0.99)),
    );
    Ok(())
}

/// One IPP connection: HTTP/1.1 kept alive, one request at a time.
struct IppConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    uri: http::Uri,
}

impl IppConnection {
    async fn open(uri: &str) -> anyhow::Result<IppConnection> {
        let uri: http::Uri = uri.parse().context("not an ipp:// URI")?;
        let host = uri.host().context("the URI has no host")?;
        let port = uri.port_u16().unwrap_or(631);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(IppConnection { sender, uri })
    }

    /// Sends one request and returns its IPP status.
    async fn call(&mut self, request: IppRequestResponse, document: &[u8]) -> anyhow::Result<u16> {
        let mut body = request.to_bytes().to_vec();
        body.extend_from_slice(document);
        let host = self
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let http = http::Request::post(self.uri.path())
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/ipp")
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(http).await?;
        if !response.status().is_success() {
            bail!("HTTP {}", response.status());
        }
        let answer = response.into_body().collect().await?.to_bytes();
        let status = answer
            .get(2..4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .context("a short IPP answer")?;
        Ok(status)
    }

    fn request(&self, operation: Operation) -> anyhow::Result<IppRequestResponse> {
        let mut request =
            IppRequestResponse::new(IppVersion::v1_1(), operation, Some(self.uri.clone()))?;
        let user = IppValue::new_name_without_language("bench")?;
        add(&mut request, "requesting-user-name", user)?;
        Ok(request)
    }
}

/// Adds an operation attribute to `request`.
fn add(request: &mut IppRequestResponse, name: &str, value: IppValue) -> anyhow::Result<()> {
    let attribute = IppAttribute::with_name(name, value)?;
    request
        .attributes_mut()
        .add(DelimiterTag::OperationAttributes, attribute);
    Ok(())
}

async fn ipp_submitters(
    uri: &str,
    conns: usize,
    size: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let doc = document(size);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut conn = IppConnection::open(uri).await?;
        let (doc, stop) = (doc.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut request = conn.request(Operation::PrintJob)?;
                let name = IppValue::new_name_without_language("bench.txt")?;
                add(&mut request, "job-name", name)?;
                let start = Instant::now();
                let status = conn.call(request, &doc).await?;
                if status >= 0x0100 {
                    bail!("Print-Job answered 0x{status:04x}");
                }
                times.push(start.elapsed());
            }
            anyhow::Ok(times)
        }));
    }
    join_times(tasks).await
}

async fn ipp_submit(uri: &str, load: Load) -> anyhow::Result<()> {
    let Load { conns, secs, size } = load;
    let uri = uri.to_owned();
    timed(Duration::from_secs_f64(secs), move |stop| {
        let uri = uri.clone();
        async move { ipp_submitters(&uri, conns, size, stop).await }
    })
    .await
}

async fn ipp_list(uri: &str, reps: usize) -> anyhow::Result<()> {
    let mut conn = IppConnection::open(uri).await?;
    let mut times = Vec::new();
    for _ in 0..reps {
        let mut request = conn.request(Operation::GetJobs)?;
        add(&mut request, "limit", IppValue::Integer(100))?;
        let wanted = [
            "job-id",
            "job-name",
            "job-priority",
            "job-state",
            "job-originating-user-name",
        ]
        .iter()
        .map(|k| IppValue::new_keyword(*k))
        .collect::<Result<Vec<_>, _>>()?;
        add(
            &mut request,
            "requested-attributes",
            IppValue::Array(wanted),
        )?;
        let start = Instant::now();
        let status = conn.call(request, &[]).await?;
        times.push(start.elapsed());
        if status >= 0x0100 {
            bail!("Get-Jobs answered 0x{status:04x}");
        }
    }
    times.sort();
    println!(
        "{{\"reps\":{reps},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        ms(percentile(&times, 0.50)),
        ms(percentile(&times, 0.99)),
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
