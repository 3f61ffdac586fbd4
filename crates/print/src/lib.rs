//! The backroom print server: a durable print queue with priority buffering.
//!
//! Documents are spooled to disk and fsynced, and jobs committed to SQLite,
//! before a submission is acknowledged. One worker per printer sends jobs to
//! its device in the order of [`order`]'s rule. [`run`] serves a [`Config`];
//! the `backroom-print` binary only parses flags into one.

mod device;
mod group;
mod ipp;
pub mod order;
pub mod queue;
mod service;
mod store;
mod worker;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backroom_frame::server::{self, ServerConfig, StartError};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::ipp::IppConfig;
pub use device::DeviceSpec;

/// What the binary's readiness line calls the IPP listener:
/// `listening ipp <addr>`.
pub const IPP_ANNOUNCE: &str = "ipp";

use crate::device::Device;
use crate::order::Aging;
use crate::queue::{ErrorPolicy, Layout, Policy, Queue};
use crate::service::{Clock, PrintService, Shared};
use crate::store::Store;

/// The device timeout of a printer that sets none.
pub const DEFAULT_DEVICE_TIMEOUT: Duration = Duration::from_secs(300);

/// One printer: a name and its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterConfig {
    pub name: String,
    pub device: DeviceSpec,
    /// How long an attempt may go without the device taking a byte or
    /// finishing before it fails by the error policy; zero waits for ever,
    /// `None` takes [`Config::device_timeout`].
    pub timeout: Option<Duration>,
}

impl std::str::FromStr for PrinterConfig {
    type Err = String;

    /// Parses `NAME=KIND:ARG`, as `--printer` takes it.
    fn from_str(s: &str) -> Result<PrinterConfig, String> {
        let (name, device) = s
            .split_once('=')
            .ok_or_else(|| format!("printer {s:?} is not NAME=KIND:ARG"))?;
        Ok(PrinterConfig {
            name: name.to_owned(),
            device: device.parse()?,
            timeout: None,
        })
    }
}

/// A class: a named pool of printers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassConfig {
    pub name: String,
    pub members: Vec<String>,
}

/// Everything a print server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The spool folder: the queue database and the documents.
    pub spool: PathBuf,
    pub frame: ServerConfig,
    pub printers: Vec<PrinterConfig>,
    pub classes: Vec<ClassConfig>,
    /// Where a job without a printer goes; the first printer by default.
    pub default_printer: Option<String>,
    pub policy: Policy,
    /// The device timeout of printers that set none; zero waits for ever.
    pub device_timeout: Duration,
    /// The IPP face's settings; it serves only when given a listener.
    pub ipp: IppConfig,
}

impl Config {
    /// A config with the runtime's and the queue's defaults and no printers.
    pub fn new(spool: impl Into<PathBuf>) -> Config {
        Config {
            spool: spool.into(),
            frame: ServerConfig::new(backroom_api::print::SERVICE, env!("CARGO_PKG_VERSION")),
            printers: Vec::new(),
            classes: Vec::new(),
            default_printer: None,
            policy: Policy::default(),
            device_timeout: DEFAULT_DEVICE_TIMEOUT,
            ipp: IppConfig::default(),
        }
    }

    fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for printer in &self.printers {
            check_printer_name(&printer.name)?;
            if !names.insert(printer.name.as_str()) {
                return Err(format!("printer {} is configured twice", printer.name));
            }
        }
        for class in &self.classes {
            check_printer_name(&class.name)?;
            if !names.insert(class.name.as_str()) {
                return Err(format!(
                    "class {} has the name of another printer or class",
                    class.name
                ));
            }
            if class.members.is_empty() {
                return Err(format!("class {} has no members", class.name));
            }
            if let Some(m) = class
                .members
                .iter()
                .find(|m| !self.printers.iter().any(|p| &p.name == *m))
            {
                return Err(format!(
                    "class {} names {m}, which is not a printer",
                    class.name
                ));
            }
        }
        if let Some(default) = &self.default_printer
            && !names.contains(default.as_str())
        {
            return Err(format!("the default printer {default} is not configured"));
        }
        if self.policy.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        Ok(())
    }
}

fn check_printer_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(format!(
            "printer name {name:?} must be 1 to 64 of A-Z a-z 0-9 - _ ."
        ));
    }
    Ok(())
}

/// A printer in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterEntry {
    pub name: String,
    /// `file:DIR`, `socket:HOST:PORT`, `command:CMD` or `sim:PPM`.
    pub device: String,
    /// This printer's device timeout in seconds; 0 waits for ever.
    pub timeout_secs: Option<u64>,
}

/// The keys of `backroom-print`'s config file beside the common ones; read
/// it with `backroom_daemon::load_config`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub spool: Option<PathBuf>,
    pub default_printer: Option<String>,
    pub max_jobs: Option<u64>,
    pub max_spool_bytes: Option<u64>,
    /// Finished jobs kept as history; beyond it the oldest are purged.
    pub history_jobs: Option<u64>,
    /// After this many seconds of waiting a job has the top priority; 0
    /// turns aging off.
    pub aging_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    /// `retry-job`, `abort-job` or `stop-printer`.
    pub error_policy: Option<String>,
    /// The device timeout of printers that set none, in seconds; 0 waits
    /// for ever.
    pub device_timeout_secs: Option<u64>,
    /// Where the IPP face listens; off when absent.
    pub ipp_listen: Option<String>,
    /// The longest document the IPP face takes, in bytes.
    pub ipp_max_document_bytes: Option<u64>,
    #[serde(default)]
    pub printers: Vec<PrinterEntry>,
    #[serde(default)]
    pub classes: Vec<ClassConfig>,
}

impl FileConfig {
    /// Applies this file's own keys to a config; printers from the file come
    /// before those from flags.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        let mut printers = Vec::new();
        for entry in &self.printers {
            printers.push(PrinterConfig {
                name: entry.name.clone(),
                device: entry.device.parse()?,
                timeout: entry.timeout_secs.map(Duration::from_secs),
            });
        }
        printers.append(&mut config.printers);
        config.printers = printers;
        config.classes.extend(self.classes.iter().cloned());
        if self.default_printer.is_some() {
            config.default_printer = self.default_printer.clone();
        }
        if let Some(secs) = self.device_timeout_secs {
            config.device_timeout = Duration::from_secs(secs);
        }
        let policy = &mut config.policy;
        if let Some(n) = self.max_jobs {
            policy.max_jobs = n;
        }
        if let Some(n) = self.max_spool_bytes {
            policy.max_spool_bytes = n;
        }
        if let Some(n) = self.history_jobs {
            policy.history_jobs = n;
        }
        if let Some(secs) = self.aging_secs {
            policy.aging = Aging {
                max_wait_ms: secs.saturating_mul(1000),
            };
        }
        if let Some(n) = self.max_attempts {
            policy.max_attempts = n;
        }
        if let Some(ms) = self.retry_base_ms {
            policy.retry_base = Duration::from_millis(ms);
        }
        if let Some(ms) = self.retry_max_ms {
            policy.retry_max = Duration::from_millis(ms);
        }
        if let Some(name) = &self.error_policy {
            policy.error_policy = name.parse::<ErrorPolicy>()?;
        }
        if let Some(n) = self.ipp_max_document_bytes {
            config.ipp.max_document_bytes = n;
        }
        Ok(())
    }
}

/// Why a print server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot use the spool {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the queue database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("cannot open printer {name}: {source}")]
    Device {
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
}

/// A queue loaded and recovered, with its devices open: ready to serve.
pub struct Prepared {
    shared: Arc<Shared>,
    devices: Vec<(String, Device)>,
    frame: ServerConfig,
    ipp: IppConfig,
}

/// Opens the spool and the queue, settles the jobs a previous run left
/// printing, and removes documents no job refers to (submissions that were
/// never acknowledged).
pub async fn prepare(config: Config) -> Result<Prepared, RunError> {
    config.check().map_err(RunError::Config)?;
    let clock = Clock::new();
    let now = clock.now_ms();
    let handle = tokio::task::spawn_blocking(move || open_blocking(config, now));
    let (queue, devices, config) = handle
        .await
        .map_err(|e| RunError::Config(format!("startup failed: {e}")))??;
    let docs = config.spool.join("docs");
    let shared = Arc::new(Shared::new(queue, docs, clock, devices.len()));
    Ok(Prepared {
        shared,
        devices,
        frame: config.frame,
        ipp: config.ipp,
    })
}

type Opened = (Queue, Vec<(String, Device)>, Config);

fn open_blocking(config: Config, now: i64) -> Result<Opened, RunError> {
    let spool_error = |source| RunError::Spool {
        path: config.spool.clone(),
        source,
    };
    let docs = config.spool.join("docs");
    std::fs::create_dir_all(&docs).map_err(spool_error)?;
    let store = Store::open(&config.spool.join("queue.db"))?;
    let layout = Layout {
        printers: config
            .printers
            .iter()
            .map(|p| (p.name.clone(), p.device.to_string()))
            .collect(),
        classes: config
            .classes
            .iter()
            .map(|c| (c.name.clone(), c.members.clone()))
            .collect(),
        default_printer: config.default_printer.clone(),
    };
    let queue = Queue::open(store, layout, config.policy.clone(), now)?;
    let known: HashSet<&str> = queue.documents().collect();
    for entry in std::fs::read_dir(&docs).map_err(spool_error)? {
        let entry = entry.map_err(spool_error)?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| known.contains(n)) {
            tracing::info!(file = ?name, "removing a document no job refers to");
            std::fs::remove_file(entry.path()).map_err(spool_error)?;
        }
    }
    // Before any printer prints again: a command that a killed run left
    // running must not print its job beside the reprint.
    let running = config.spool.join("running");
    group::kill_leftovers(&running).map_err(spool_error)?;
    let mut devices = Vec::new();
    for printer in &config.printers {
        let device = Device::open(printer.device.clone()).map_err(|source| RunError::Device {
            name: printer.name.clone(),
            source,
        })?;
        let timeout = printer.timeout.unwrap_or(config.device_timeout);
        let device = device
            .with_timeout(Some(timeout).filter(|t| !t.is_zero()))
            .recording_at(running.join(format!("{}.pgid", printer.name)));
        devices.push((printer.name.clone(), device));
    }
    Ok((queue, devices, config))
}

impl Prepared {
    /// Refuses an IPP listener beyond loopback when anyone could use it: no
    /// users and no `insecure`, as for the frame port. The binary asks before
    /// it announces the listener.
    pub fn check_ipp(&self, listener: &TcpListener) -> Result<(), RunError> {
        let addr = listener.local_addr().map_err(StartError::Io)?;
        self.frame
            .auth
            .current()
            .check_bind(addr, self.frame.insecure)
            .map_err(StartError::Insecure)?;
        Ok(())
    }

    /// Serves until `shutdown`, with one worker per printer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        self.serve_with_ipp(listener, None, shutdown).await
    }

    /// Serves the frame protocol on `listener` and, when given, IPP on
    /// `ipp`, both over the same queue, until `shutdown`.
    pub async fn serve_with_ipp(
        self,
        listener: TcpListener,
        ipp: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), RunError> {
        if let Some(ipp) = &ipp {
            self.check_ipp(ipp)?;
        }
        let faces = CancellationToken::new();
        let ipp = ipp.map(|listener| {
            tokio::spawn(ipp::serve(
                listener,
                self.shared.clone(),
                self.frame.clone(),
                self.ipp.clone(),
                faces.clone(),
            ))
        });
        let shutdown = async {
            shutdown.await;
            faces.cancel();
        };
        let stop = CancellationToken::new();
        let mut workers = Vec::new();
        for ((name, device), waker) in self.devices.into_iter().zip(&self.shared.wakers) {
            workers.push(tokio::spawn(worker::run(
                self.shared.clone(),
                name,
                device,
                waker.clone(),
                stop.clone(),
            )));
        }
        let service = PrintService {
            shared: self.shared.clone(),
        };
        let served = server::run(listener, self.frame, service, shutdown).await;
        faces.cancel();
        if let Some(ipp) = ipp {
            let _ = ipp.await;
        }
        stop.cancel();
        for worker in workers {
            let _ = worker.await;
        }
        served?;
        Ok(())
    }
}

/// Serves `config` on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    prepare(config).await?.serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_timeouts_come_from_the_printer_else_the_top_level() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("print.toml");
        let text = "device_timeout_secs = 60\n\
                    [[printers]]\nname = \"a\"\ndevice = \"sim:30\"\ntimeout_secs = 5\n\
                    [[printers]]\nname = \"b\"\ndevice = \"sim:30\"\n";
        std::fs::write(&path, text).expect("write");
        let file = backroom_daemon::load_config::<FileConfig>(Some(&path))
            .expect("parses")
            .own;
        let mut config = Config::new(dir.path());
        assert_eq!(config.device_timeout, DEFAULT_DEVICE_TIMEOUT);
        file.apply(&mut config).expect("applies");
        assert_eq!(config.device_timeout, Duration::from_secs(60));
        let timeouts: Vec<_> = config.printers.iter().map(|p| p.timeout).collect();
        assert_eq!(timeouts, [Some(Duration::from_secs(5)), None]);
    }
}
