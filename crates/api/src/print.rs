//! The print service's messages and its typed client.
//!
//! A job is submitted with its document as the request's stream and is
//! acknowledged only once it is durably spooled. Errors travel as protocol
//! errors: `busy` when the queue or the spool is full, `not_found` for an
//! unknown job or printer, `conflict` for an operation the job's state does
//! not allow.

use backroom_frame::client::{Client, ClientConfig, Subscription, UploadCall};
use backroom_frame::error::Error;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The service name a print client asks for in `Hello`.
pub const SERVICE: &str = "print";
/// Where `backroom-print` listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7702";
/// The priority of a job submitted without one.
pub const DEFAULT_PRIORITY: u8 = 50;
/// The lowest and highest priorities.
pub const MIN_PRIORITY: u8 = 1;
pub const MAX_PRIORITY: u8 = 100;
/// How many jobs `list` returns when the caller sets no limit.
pub const DEFAULT_PAGE: u32 = 100;

/// The method names of this service, written once for client and server.
/// Each names its argument and answer types.
pub mod method {
    /// `SubmitArgs` and the document as an upload → `Job`.
    pub const SUBMIT: &str = "submit";
    /// `SubmitArgs` → `Validated`.
    pub const VALIDATE: &str = "validate";
    /// `ListArgs` → `JobList`.
    pub const LIST: &str = "list";
    /// `HistoryArgs` → `JobList`: finished jobs only, the last to finish
    /// first.
    pub const HISTORY: &str = "history";
    /// `JobArgs` → `Job`.
    pub const JOB: &str = "job";
    /// `JobArgs` → `Job`.
    pub const CANCEL: &str = "cancel";
    /// `JobArgs` → `Job`.
    pub const HOLD: &str = "hold";
    /// `JobArgs` → `Job`.
    pub const RELEASE: &str = "release";
    /// `JobArgs` → `Job`.
    pub const PROMOTE: &str = "promote";
    /// `JobArgs` → `Job`.
    pub const RESTART: &str = "restart";
    /// `PriorityArgs` → `Job`.
    pub const SET_PRIORITY: &str = "set_priority";
    /// `MoveArgs` → `Job`.
    pub const MOVE: &str = "move";
    /// `PrinterArgs` → `Count`.
    pub const HOLD_ALL: &str = "hold_all";
    /// `PrinterArgs` → `Count`.
    pub const RELEASE_ALL: &str = "release_all";
    /// nothing → `Printers`.
    pub const PRINTERS: &str = "printers";
    /// `PrinterArgs` → `PrinterInfo`.
    pub const PAUSE: &str = "pause";
    /// `PrinterArgs` → `PrinterInfo`.
    pub const RESUME: &str = "resume";
    /// `PrinterArgs` → `PrinterInfo`.
    pub const ACCEPT: &str = "accept";
    /// `PrinterArgs` → `PrinterInfo`.
    pub const REJECT: &str = "reject";
    /// `PurgeArgs` → `Count`.
    pub const PURGE: &str = "purge";
    /// nothing → head `Watching`, then `Event`s.
    pub const WATCH: &str = "watch";
}

/// The names of the print server's vital signs in `info`, written once for
/// the server and its readers.
pub mod vital {
    /// Jobs pending or held.
    pub const QUEUED: &str = "queued";
    /// Printers printing a job now.
    pub const PRINTING: &str = "printing";
    /// Printers in error (retrying or stopped); an alert when above 0.
    pub const IN_ERROR: &str = "in error";
    /// Jobs finished (completed, cancelled or aborted) in the last minute.
    pub const FINISHED: &str = "finished";
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Held,
    Printing,
    Completed,
    Cancelled,
    Aborted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Held => "held",
            JobState::Printing => "printing",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Aborted => "aborted",
        }
    }

    /// Whether the job is done: it stays only as history.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Aborted
        )
    }
}

impl std::str::FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<JobState, String> {
        [
            JobState::Pending,
            JobState::Held,
            JobState::Printing,
            JobState::Completed,
            JobState::Cancelled,
            JobState::Aborted,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
        .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// One print job, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub owner: String,
    /// The printer or class the job was sent to.
    pub printer: String,
    /// The printer that printed (or is printing) it, once one did.
    pub device: Option<String>,
    /// The priority set by the submitter or an operator, 1 to 100.
    pub priority: u8,
    /// The priority the queue orders by now: `priority` plus aging.
    pub effective_priority: u8,
    /// Whether an operator promoted the job to the front of its queue.
    pub promoted: bool,
    pub copies: u32,
    pub state: JobState,
    /// The document's size in bytes.
    pub size: u64,
    /// Times in milliseconds since the Unix epoch.
    pub submitted_ms: i64,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// How many times printing started.
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Progress of the current or last attempt.
    pub bytes_done: u64,
    pub pages_done: u64,
}

/// Arguments of `submit` (the document follows as the stream) and `validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitArgs {
    /// A label for people; also ends the file name of a `file:` printer.
    pub name: String,
    /// 1 to 100; `None` means [`DEFAULT_PRIORITY`].
    #[serde(default)]
    pub priority: Option<u8>,
    /// 1 to 100.
    #[serde(default = "one")]
    pub copies: u32,
    /// Queue the job held: it waits for `release`.
    #[serde(default)]
    pub hold: bool,
    /// A printer or class; `None` means the server's default printer.
    #[serde(default)]
    pub printer: Option<String>,
    /// The document's size, if known: lets the server refuse a document that
    /// does not fit before any byte is sent.
    #[serde(default)]
    pub size: Option<u64>,
}

fn one() -> u32 {
    1
}

impl SubmitArgs {
    /// A job of one copy at the default priority on the default printer.
    pub fn new(name: impl Into<String>) -> SubmitArgs {
        SubmitArgs {
            name: name.into(),
            priority: None,
            copies: 1,
            hold: false,
            printer: None,
            size: None,
        }
    }
}

/// What `validate` answers: where the job would go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validated {
    pub printer: String,
    pub priority: u8,
}

/// Arguments of `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListArgs {
    /// Only jobs in this state. Without it, only jobs not yet finished,
    /// unless `all` is set.
    #[serde(default)]
    pub state: Option<JobState>,
    /// Finished jobs too.
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub owner: Option<String>,
    /// Jobs sent to this printer or class, or printed on this printer.
    #[serde(default)]
    pub printer: Option<String>,
    /// At most this many jobs; 0 means [`DEFAULT_PAGE`].
    #[serde(default)]
    pub limit: u32,
}

/// The answer to `list`: jobs not yet finished in dispatch order first (the
/// printing ones, then the queue), then finished jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// How many jobs matched in all, beyond the limit too.
    pub total: u64,
}

/// Arguments of `history`: the finished jobs (completed, cancelled or
/// aborted) that the server keeps, at most its `history_jobs`, the last to
/// finish first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryArgs {
    /// Only jobs in this finished state.
    #[serde(default)]
    pub state: Option<JobState>,
    #[serde(default)]
    pub owner: Option<String>,
    /// Jobs sent to this printer or class, or printed on this printer.
    #[serde(default)]
    pub printer: Option<String>,
    /// At most this many jobs; 0 means [`DEFAULT_PAGE`].
    #[serde(default)]
    pub limit: u32,
}

/// Arguments of the requests that name one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobArgs {
    pub id: u64,
}

/// Arguments of `set_priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorityArgs {
    pub id: u64,
    pub priority: u8,
}

/// Arguments of `move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveArgs {
    pub id: u64,
    /// A printer or class.
    pub printer: String,
}

/// Arguments of the requests that name one printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterArgs {
    pub printer: String,
}

/// Arguments of `purge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeArgs {
    /// Finished jobs that finished at least this long ago go, with their
    /// documents.
    pub older_than_secs: u64,
}

/// How many jobs a bulk operation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub count: u64,
}

/// What a printer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    Idle,
    Printing,
    Paused,
    /// The device failed: the printer is waiting to retry, or stopped by the
    /// `stop-printer` policy until `resume`.
    Error,
}

/// One printer, as `printers` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterInfo {
    pub name: String,
    /// The device, as configured: `file:DIR`, `socket:HOST:PORT`, ...
    pub device: String,
    pub state: PrinterState,
    /// Whether new jobs are accepted.
    pub accepting: bool,
    /// Stopped by the error policy: only `resume` restarts it.
    pub stopped: bool,
    pub current_job: Option<u64>,
    /// Jobs waiting for this printer (pending or held, classes excluded).
    pub queue_len: u64,
    pub last_error: Option<String>,
    /// The classes this printer belongs to.
    pub classes: Vec<String>,
}

/// A named group of printers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    pub name: String,
    pub members: Vec<String>,
}

/// The answer to `printers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printers {
    pub printers: Vec<PrinterInfo>,
    pub classes: Vec<ClassInfo>,
    pub default_printer: Option<String>,
}

/// One event of a `watch` subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A job was queued or changed: its state, priority, place or printer.
    Job { job: Job },
    /// A finished job was purged from history.
    Purged { id: u64 },
    /// A printer changed state.
    Printer { printer: PrinterInfo },
    /// A printing job made progress.
    Progress {
        id: u64,
        bytes_done: u64,
        pages_done: u64,
    },
    /// The watcher fell behind and this many events were lost: list again.
    Lagged { missed: u64 },
}

/// The acknowledgement of `watch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watching {
    /// The newest job id at the time of subscribing.
    pub last_job: u64,
}

/// A typed client of the print service.
#[derive(Debug, Clone)]
pub struct PrintClient {
    client: Client,
}

impl PrintClient {
    /// Connects to a print server.
    pub async fn connect(addr: &str, token: Option<String>) -> Result<PrintClient, Error> {
        let mut config = ClientConfig::new(addr, SERVICE);
        config.token = token;
        PrintClient::connect_with(&config).await
    }

    /// Connects with a full client config (TLS, retries).
    pub async fn connect_with(config: &ClientConfig) -> Result<PrintClient, Error> {
        Client::connect(config)
            .await
            .map(|client| PrintClient { client })
    }

    /// The underlying protocol client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Starts a submission: `send` the document, then `finish::<Job>()`.
    pub async fn submit_stream(&self, args: &SubmitArgs) -> Result<UploadCall, Error> {
        self.client.upload(method::SUBMIT, args).await
    }

    /// Submits a document held in memory; answers once it is durably queued.
    pub async fn submit(&self, args: &SubmitArgs, document: Bytes) -> Result<Job, Error> {
        let mut upload = self.submit_stream(args).await?;
        if document.is_empty() {
            return upload.finish().await;
        }
        match upload.send(document).await {
            Ok(()) => upload.finish().await,
            // The server refused mid-stream; its answer says why.
            Err(e) => Err(upload.finish::<Job>().await.err().unwrap_or(e)),
        }
    }

    /// Checks a job without queueing it.
    pub async fn validate(&self, args: &SubmitArgs) -> Result<Validated, Error> {
        self.client.request(method::VALIDATE, args).await
    }

    pub async fn list(&self, args: &ListArgs) -> Result<JobList, Error> {
        self.client.request(method::LIST, args).await
    }

    /// Finished jobs, the last to finish first.
    pub async fn history(&self, args: &HistoryArgs) -> Result<JobList, Error> {
        self.client.request(method::HISTORY, args).await
    }

    pub async fn job(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::JOB, &JobArgs { id }).await
    }

    pub async fn cancel(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::CANCEL, &JobArgs { id }).await
    }

    pub async fn hold(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::HOLD, &JobArgs { id }).await
    }

    pub async fn release(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::RELEASE, &JobArgs { id }).await
    }

    /// Holds every pending job sent to `printer` (a printer or class).
    pub async fn hold_all(&self, printer: &str) -> Result<Count, Error> {
        self.client
            .request(method::HOLD_ALL, &printer_args(printer))
            .await
    }

    /// Releases every held job sent to `printer` (a printer or class).
    pub async fn release_all(&self, printer: &str) -> Result<Count, Error> {
        self.client
            .request(method::RELEASE_ALL, &printer_args(printer))
            .await
    }

    pub async fn set_priority(&self, id: u64, priority: u8) -> Result<Job, Error> {
        self.client
            .request(method::SET_PRIORITY, &PriorityArgs { id, priority })
            .await
    }

    pub async fn promote(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::PROMOTE, &JobArgs { id }).await
    }

    pub async fn move_job(&self, id: u64, printer: &str) -> Result<Job, Error> {
        let args = MoveArgs {
            id,
            printer: printer.into(),
        };
        self.client.request(method::MOVE, &args).await
    }

    pub async fn restart(&self, id: u64) -> Result<Job, Error> {
        self.client.request(method::RESTART, &JobArgs { id }).await
    }

    pub async fn printers(&self) -> Result<Printers, Error> {
        self.client.request(method::PRINTERS, &()).await
    }

    pub async fn pause(&self, printer: &str) -> Result<PrinterInfo, Error> {
        self.client
            .request(method::PAUSE, &printer_args(printer))
            .await
    }

    pub async fn resume(&self, printer: &str) -> Result<PrinterInfo, Error> {
        self.client
            .request(method::RESUME, &printer_args(printer))
            .await
    }

    pub async fn accept(&self, printer: &str) -> Result<PrinterInfo, Error> {
        self.client
            .request(method::ACCEPT, &printer_args(printer))
            .await
    }

    pub async fn reject(&self, printer: &str) -> Result<PrinterInfo, Error> {
        self.client
            .request(method::REJECT, &printer_args(printer))
            .await
    }

    pub async fn purge(&self, older_than_secs: u64) -> Result<Count, Error> {
        self.client
            .request(method::PURGE, &PurgeArgs { older_than_secs })
            .await
    }

    /// Subscribes to queue, printer and progress events.
    pub async fn watch(&self) -> Result<(Watching, Subscription<Event>), Error> {
        let sub = self.client.subscribe(method::WATCH, &()).await?;
        let head = backroom_frame::body::decode(&sub.head)?;
        Ok((head, sub))
    }
}

fn printer_args(printer: &str) -> PrinterArgs {
    PrinterArgs {
        printer: printer.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_submit_arguments_may_be_left_out() {
        #[derive(Serialize)]
        struct Minimal<'a> {
            name: &'a str,
        }
        let body = backroom_frame::body::encode(&Minimal { name: "memo" });
        let args: SubmitArgs = backroom_frame::body::decode(&body).expect("decodes");
        assert_eq!(args, SubmitArgs::new("memo"));
    }

    #[test]
    fn events_carry_their_kind_as_a_tag() {
        let event = Event::Progress {
            id: 7,
            bytes_done: 10,
            pages_done: 1,
        };
        let body = backroom_frame::body::encode(&event);
        assert!(String::from_utf8_lossy(&body).contains("progress"));
        let back: Event = backroom_frame::body::decode(&body).expect("decodes");
        assert_eq!(back, event);
    }

    #[test]
    fn states_parse_from_their_names() {
        for state in [
            "pending",
            "held",
            "printing",
            "completed",
            "cancelled",
            "aborted",
        ] {
            let parsed: JobState = state.parse().expect("parses");
            assert_eq!(parsed.as_str(), state);
        }
        assert!("done".parse::<JobState>().is_err());
    }
}
