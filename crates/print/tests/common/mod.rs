//! Helpers shared by the print server's integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use backroom_api::print::{Event, Job, JobState, PrintClient, SubmitArgs};
use backroom_frame::client::Subscription;
use backroom_print::{Config, PrinterConfig};
use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this test's runtime.
pub struct Server {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            backroom_print::run(listener, config, shutdown)
                .await
                .expect("server runs");
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> PrintClient {
        PrintClient::connect(&self.addr, None)
            .await
            .expect("connect")
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

/// A config with fast retries and no aging, spooling under `dir`.
pub fn config(dir: &Path, printers: &[&str]) -> Config {
    let mut config = Config::new(dir.join("spool"));
    config.printers = printers
        .iter()
        .map(|p| p.parse::<PrinterConfig>().expect("printer"))
        .collect();
    config.policy.aging.max_wait_ms = 0;
    config.policy.retry_base = Duration::from_millis(1);
    config.policy.retry_max = Duration::from_millis(4);
    config
}

pub fn out_dir(dir: &Path) -> PathBuf {
    dir.join("out")
}

pub async fn submit(c: &PrintClient, name: &str, priority: u8, data: &[u8]) -> Job {
    let mut args = SubmitArgs::new(name);
    args.priority = Some(priority);
    c.submit(&args, Bytes::copy_from_slice(data))
        .await
        .expect("submitted")
}

/// Waits for an event about job `id` that satisfies `done`.
pub async fn wait_for_job(
    events: &mut Subscription<Event>,
    id: u64,
    done: impl Fn(&Job) -> bool,
) -> Job {
    let wait = async {
        loop {
            match events.next().await {
                Some(Ok(Event::Job { job })) if job.id == id && done(&job) => return job,
                Some(Ok(_)) => {}
                other => panic!("the subscription ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the job got there in time")
}

/// Waits until job `id` reaches `state`.
pub async fn wait_for_state(events: &mut Subscription<Event>, id: u64, state: JobState) -> Job {
    wait_for_job(events, id, |job| job.state == state).await
}

/// The names of the files a `file:` printer wrote, in print order.
pub fn printed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The job id in a printed file's name, `<seq>_<id>_<name>`.
pub fn printed_id(name: &str) -> u64 {
    name.split('_')
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("not a printed file name: {name}"))
}

/// Whether any live (not zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
}

/// Waits until process group `pgid` has no live process: a SIGKILL is
/// delivered at once, but a process dies when it is next scheduled. False
/// if some process still lives after 10 s.
pub fn group_gone(pgid: i32) -> bool {
    let started = std::time::Instant::now();
    while group_alive(pgid) {
        if started.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
