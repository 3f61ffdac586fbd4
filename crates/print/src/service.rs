//! The print service: spools submissions, answers the queue operations and
//! feeds the watchers.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backroom_api::print::{
    Event, HistoryArgs, Job, JobArgs, ListArgs, MoveArgs, PrinterArgs, PriorityArgs, PurgeArgs,
    SubmitArgs, Watching, method, vital,
};
use backroom_daemon::rate::Rate;
use backroom_frame::auth::{Identity, Role};
use backroom_frame::error::Error;
use backroom_frame::server::{Call, Reply, Service, Vital};
use backroom_frame::stream::ByteStream;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{Notify, broadcast, oneshot};

use crate::queue::{Arrival, Queue};

/// How many events a slow watcher may fall behind before it is told it lost
/// some.
const EVENT_BACKLOG: usize = 4096;

/// A clock that follows tokio's, so tests can move time with
/// `tokio::time::pause`, and that reads as wall time in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_ms: i64,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock {
            wall_ms,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.wall_ms.saturating_add(elapsed)
    }
}

/// A spooled submission and where its answer goes.
type Waiting = (Arrival, oneshot::Sender<Result<Job, Error>>);

/// What the service and the printer workers share.
pub struct Shared {
    /// A std mutex: it is only taken on the blocking pool, never across an
    /// await.
    pub queue: Mutex<Queue>,
    pub events: broadcast::Sender<Event>,
    /// One per printer worker: poked after every change of the queue.
    pub wakers: Vec<Arc<Notify>>,
    pub clock: Clock,
    pub docs: PathBuf,
    /// Bytes in the spool, documents being received included.
    pub spool_used: AtomicU64,
    pub max_spool_bytes: u64,
    pub doc_counter: AtomicU64,
    /// Spooled submissions waiting to be committed, with their answers.
    arrivals: Mutex<Vec<Waiting>>,
    /// The figures of `info`'s vital signs, read without the queue's lock.
    gauges: Gauges,
    /// Held by the one thread committing a batch of arrivals, from its
    /// checks to its answers, so that arrivals meanwhile gather into the
    /// next batch. It guards no data, only that order.
    committing: Mutex<()>,
}

/// The queue's figures as of its last change, for the vital signs: `info`
/// must not wait for the queue's lock, which is held across fsyncs.
#[derive(Default)]
struct Gauges {
    queued: AtomicU64,
    printing: AtomicU64,
    in_error: AtomicU64,
    /// Jobs that reached a finished state.
    finished: Rate,
}

impl Gauges {
    /// Takes the queue's figures after a change, and counts the jobs that
    /// `events` report finished.
    fn read(&self, queue: &Queue, events: &[Event]) {
        let load = queue.load();
        self.queued.store(load.queued, Ordering::Relaxed);
        self.printing.store(load.printing, Ordering::Relaxed);
        self.in_error.store(load.in_error, Ordering::Relaxed);
        let finished = events
            .iter()
            .filter(|e| matches!(e, Event::Job { job } if job.state.is_finished()))
            .count();
        if finished > 0 {
            self.finished.add(finished as u64);
        }
    }

    fn vitals(&self) -> Vec<Vital> {
        let in_error = self.in_error.load(Ordering::Relaxed);
        vec![
            Vital::count(vital::QUEUED, self.queued.load(Ordering::Relaxed)),
            Vital::count(vital::PRINTING, self.printing.load(Ordering::Relaxed)),
            Vital::count(vital::IN_ERROR, in_error).alert_if(in_error > 0),
            Vital::count(vital::FINISHED, self.finished.sum(60)),
        ]
    }
}

impl Shared {
    pub fn new(queue: Queue, docs: PathBuf, clock: Clock, printers: usize) -> Shared {
        let spool_used = AtomicU64::new(queue.spool_bytes());
        let max_spool_bytes = queue.policy().max_spool_bytes;
        let gauges = Gauges::default();
        gauges.read(&queue, &[]);
        Shared {
            queue: Mutex::new(queue),
            events: broadcast::channel(EVENT_BACKLOG).0,
            wakers: (0..printers).map(|_| Arc::new(Notify::new())).collect(),
            clock,
            docs,
            spool_used,
            max_spool_bytes,
            doc_counter: AtomicU64::new(0),
            arrivals: Mutex::new(Vec::new()),
            gauges,
            committing: Mutex::new(()),
        }
    }

    /// Runs `op` on the queue on the blocking pool (its changes wait for an
    /// fsync), then publishes its events and wakes the printers.
    pub async fn with_queue<T, F>(self: &Arc<Self>, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Queue, i64, &mut Vec<Event>) -> Result<T, Error> + Send + 'static,
    {
        let now = self.clock.now_ms();
        let shared = self.clone();
        let (result, events) = tokio::task::spawn_blocking(move || {
            let mut events = Vec::new();
            let mut queue = shared.queue.lock();
            let result = op(&mut queue, now, &mut events);
            shared.gauges.read(&queue, &events);
            let unlinked = queue.unlinked();
            drop(queue);
            shared.remove_documents(unlinked);
            (result, events)
        })
        .await
        .map_err(|e| Error::internal(format!("a queue operation failed: {e}")))?;
        self.publish(events);
        result
    }

    /// Queues a spooled submission. Submissions that arrive while a commit
    /// is in flight wait, and the first to get the commit lock commits them
    /// all in one transaction: one fsync for many jobs.
    pub async fn enqueue(self: &Arc<Self>, arrival: Arrival) -> Result<Job, Error> {
        let (reply, answer) = oneshot::channel();
        self.arrivals.lock().push((arrival, reply));
        let now = self.clock.now_ms();
        let shared = self.clone();
        let events = tokio::task::spawn_blocking(move || shared.commit_arrivals(now))
            .await
            .map_err(|e| Error::internal(format!("a queue operation failed: {e}")))?;
        self.publish(events);
        answer
            .await
            .map_err(|_| Error::internal("the queue dropped a submission"))?
    }

    /// Commits every arrival waiting, unless an earlier committer took them
    /// already, and answers each. The queue's lock is held to check the
    /// batch and to show it, not across the commit's fsync, so that lists
    /// and the next submissions' checks go on meanwhile. Blocks: run it on
    /// the blocking pool.
    fn commit_arrivals(&self, now: i64) -> Vec<Event> {
        let _committing = self.committing.lock();
        let batch = std::mem::take(&mut *self.arrivals.lock());
        if batch.is_empty() {
            return Vec::new();
        }
        let (arrivals, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let mut admitted = self.queue.lock().admit(&arrivals, now);
        let written = admitted.write();
        let mut events = Vec::new();
        let mut queue = self.queue.lock();
        let answers = queue.install(admitted, written, now, &mut events);
        self.gauges.read(&queue, &events);
        drop(queue);
        for (answer, reply) in answers.into_iter().zip(replies) {
            let _ = reply.send(answer);
        }
        events
    }

    /// Tells the watchers what changed, and the printers to look again.
    fn publish(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        for event in events {
            // No watcher is no error.
            let _ = self.events.send(event);
        }
        self.wake_printers();
    }

    pub fn wake_printers(&self) {
        for waker in &self.wakers {
            waker.notify_one();
        }
    }

    /// Removes the documents of purged jobs, whose rows are already gone
    /// (a crash before this leaves files that the next start-up sweeps), and
    /// gives their room back to the spool.
    fn remove_documents(&self, unlinked: Vec<(String, u64)>) {
        for (doc, size) in unlinked {
            if let Err(e) = std::fs::remove_file(self.docs.join(&doc)) {
                tracing::warn!(%doc, error = %e, "cannot remove a purged document");
            }
            self.unreserve(size);
        }
    }

    fn unreserve(&self, bytes: u64) {
        self.spool_used.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn next_doc_name(&self) -> String {
        let n = self.doc_counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:x}-{:x}-{n:x}.prn",
            self.clock.now_ms(),
            std::process::id()
        )
    }
}

/// Where the bytes of a submitted document come from: a frame upload, or the
/// body of an IPP request.
pub trait Upload: Send {
    /// The next piece of the document, or `None` at its end.
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send;
}

impl Upload for ByteStream {
    fn chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send {
        ByteStream::chunk(self)
    }
}

/// The service the frame runtime calls.
pub struct PrintService {
    pub shared: Arc<Shared>,
}

fn value<T: Serialize>(result: Result<T, Error>) -> Result<Reply, Error> {
    Reply::value(&result?)
}

impl Service for PrintService {
    async fn call(&self, mut call: Call) -> Result<Reply, Error> {
        let who = (*call.identity).clone();
        match call.method.as_str() {
            method::SUBMIT => {
                let args: SubmitArgs = call.args()?;
                let upload = call.take_upload()?;
                value(self.submit(args, who, upload).await)
            }
            method::VALIDATE => {
                who.require(Role::ReadWrite)?;
                let args: SubmitArgs = call.args()?;
                let used = self.shared.spool_used.load(Ordering::Acquire);
                value(self.read(move |q, _| q.validate(&args, used)).await)
            }
            method::LIST => {
                let args: ListArgs = call.args()?;
                value(self.read(move |q, now| Ok(q.list(&args, now))).await)
            }
            method::HISTORY => {
                let args: HistoryArgs = call.args()?;
                value(self.read(move |q, now| q.history(&args, now)).await)
            }
            method::JOB => {
                let JobArgs { id } = call.args()?;
                value(self.read(move |q, now| q.job(id, now)).await)
            }
            method::CANCEL => self.job_op(&call, who, Queue::cancel).await,
            method::HOLD => self.job_op(&call, who, Queue::hold).await,
            method::RELEASE => self.job_op(&call, who, Queue::release).await,
            method::PROMOTE => self.job_op(&call, who, Queue::promote).await,
            method::RESTART => self.job_op(&call, who, Queue::restart).await,
            method::SET_PRIORITY => {
                let PriorityArgs { id, priority } = call.args()?;
                let op = move |q: &mut Queue, now, ev: &mut Vec<Event>| {
                    q.set_priority(id, priority, &who, now, ev)
                };
                value(self.shared.with_queue(op).await)
            }
            method::MOVE => {
                let MoveArgs { id, printer } = call.args()?;
                let op = move |q: &mut Queue, now, ev: &mut Vec<Event>| {
                    q.move_to(id, &printer, &who, now, ev)
                };
                value(self.shared.with_queue(op).await)
            }
            method::HOLD_ALL | method::RELEASE_ALL => {
                who.require(Role::Admin)?;
                let hold = call.method == method::HOLD_ALL;
                let PrinterArgs { printer } = call.args()?;
                let op = move |q: &mut Queue, now, ev: &mut Vec<Event>| {
                    q.hold_all(&printer, hold, now, ev)
                        .map(|count| backroom_api::print::Count { count })
                };
                value(self.shared.with_queue(op).await)
            }
            method::PRINTERS => value(self.read(|q, _| Ok(q.printers())).await),
            method::PAUSE | method::RESUME | method::ACCEPT | method::REJECT => {
                self.printer_op(&call, who).await
            }
            method::PURGE => {
                who.require(Role::Admin)?;
                let PurgeArgs { older_than_secs } = call.args()?;
                value(self.purge(Duration::from_secs(older_than_secs)).await)
            }
            method::WATCH => self.watch().await,
            other => Err(Error::unknown_method(other)),
        }
    }

    fn vitals(&self) -> Vec<Vital> {
        self.shared.gauges.vitals()
    }
}

type JobOp =
    fn(&mut Queue, u64, &Identity, i64, &mut Vec<Event>) -> Result<backroom_api::print::Job, Error>;

impl PrintService {
    /// A read of the queue; it waits behind any write in progress.
    async fn read<T, F>(&self, op: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Queue, i64) -> Result<T, Error> + Send + 'static,
    {
        self.shared.with_queue(move |q, now, _| op(q, now)).await
    }

    async fn job_op(&self, call: &Call, who: Identity, op: JobOp) -> Result<Reply, Error> {
        let JobArgs { id } = call.args()?;
        value(
            self.shared
                .with_queue(move |q, now, ev| op(q, id, &who, now, ev))
                .await,
        )
    }

    async fn printer_op(&self, call: &Call, who: Identity) -> Result<Reply, Error> {
        who.require(Role::Admin)?;
        let PrinterArgs { printer } = call.args()?;
        let method = call.method.clone();
        let op = move |q: &mut Queue, _, ev: &mut Vec<Event>| {
            q.set_flags(
                &printer,
                |flags| match method.as_str() {
                    method::PAUSE => flags.paused = true,
                    method::RESUME => {
                        flags.paused = false;
                        flags.stopped = false;
                    }
                    method::ACCEPT => flags.accepting = true,
                    _ => flags.accepting = false,
                },
                ev,
            )
        };
        value(self.shared.with_queue(op).await)
    }

    /// Spools a document and queues it: the one way into the queue, for
    /// every face.
    pub async fn submit(
        &self,
        args: SubmitArgs,
        who: Identity,
        upload: impl Upload,
    ) -> Result<backroom_api::print::Job, Error> {
        who.require(Role::ReadWrite)?;
        let used = self.shared.spool_used.load(Ordering::Acquire);
        let checked = args.clone();
        self.read(move |q, _| q.validate(&checked, used)).await?;
        let (doc, mut spooled) = self.receive(upload, args.size).await?;
        let arrival = Arrival {
            args,
            owner: who.user.clone(),
            doc,
            size: spooled.reserved,
        };
        // A task of its own: a client that gives up now must not take the
        // document from under a commit already under way.
        let shared = self.shared.clone();
        let committed = tokio::spawn(async move {
            let answer = shared.enqueue(arrival).await;
            if answer.is_ok() {
                spooled.keep();
            }
            answer
        });
        committed
            .await
            .map_err(|e| Error::internal(format!("queueing the job failed: {e}")))?
    }

    /// Streams a new document into the spool, durably; it is removed again
    /// unless the queue takes it (`Spooled::keep`).
    async fn receive(
        &self,
        upload: impl Upload,
        declared: Option<u64>,
    ) -> Result<(String, Spooled), Error> {
        let doc = self.shared.next_doc_name();
        let path = self.shared.docs.join(&doc);
        let mut spooled = Spooled {
            shared: self.shared.clone(),
            path: Some(path.clone()),
            reserved: 0,
        };
        spool(&mut spooled, &path, upload, declared).await?;
        Ok((doc, spooled))
    }

    /// Spools a document for a waiting job that has none yet, then holds or
    /// releases the job.
    pub async fn attach(
        &self,
        id: u64,
        hold: bool,
        who: Identity,
        upload: impl Upload,
    ) -> Result<backroom_api::print::Job, Error> {
        who.require(Role::ReadWrite)?;
        let (doc, mut spooled) = self.receive(upload, None).await?;
        let size = spooled.reserved;
        let docs = self.shared.docs.clone();
        // A task of its own, as for `submit`: a client that gives up must not
        // take the document from under the commit.
        let shared = self.shared.clone();
        let committed = tokio::spawn(async move {
            let op = move |q: &mut Queue, now, ev: &mut Vec<Event>| {
                q.attach(id, (&doc, size), hold, &who, now, ev)
            };
            let answer = shared.with_queue(op).await;
            let (job, old) = answer?;
            spooled.keep();
            if let Err(e) = std::fs::remove_file(docs.join(&old)) {
                tracing::warn!(doc = %old, error = %e, "cannot remove a replaced document");
            }
            Ok(job)
        });
        committed
            .await
            .map_err(|e| Error::internal(format!("queueing the document failed: {e}")))?
    }

    async fn purge(&self, age: Duration) -> Result<backroom_api::print::Count, Error> {
        let op = move |q: &mut Queue, now, ev: &mut Vec<Event>| {
            let count = q.purge(age, now, ev)?;
            Ok(backroom_api::print::Count { count })
        };
        self.shared.with_queue(op).await
    }

    async fn watch(&self) -> Result<Reply, Error> {
        // Subscribed first: an event after the head's snapshot is never lost.
        let rx = self.shared.events.subscribe();
        let last_job = self.read(|q, _| Ok(q.last_job())).await?;
        let head = backroom_frame::body::try_encode(&Watching { last_job })?;
        let events = futures_util::stream::unfold(rx, |mut rx| async move {
            let event = match rx.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => Event::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((backroom_frame::body::encode(&event), rx))
        });
        Ok(Reply::Subscription {
            head,
            events: Box::pin(events),
        })
    }
}

/// A document being spooled: removed, and its room given back, unless the
/// queue takes it.
struct Spooled {
    shared: Arc<Shared>,
    path: Option<PathBuf>,
    reserved: u64,
}

impl Spooled {
    /// Accepted: the queue now owns the document and its bytes.
    fn keep(&mut self) {
        self.path = None;
        self.reserved = 0;
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Small and rare (a refused or broken submission): a blocking
            // unlink here is cheaper than a task.
            let _ = std::fs::remove_file(path);
        }
        self.shared.unreserve(self.reserved);
    }
}

/// Streams the upload to disk and makes it durable: the file's data and its
/// directory entry are fsynced before the job is acknowledged. A document
/// that sends more or fewer bytes than its `declared` size is refused, as
/// files' `write` refuses it.
///
/// The file is created at once, so that a document on its way is in the
/// spool. Then it reads one chunk ahead, so that the last chunk is written
/// and made durable in one trip to the blocking pool: a small document costs
/// two trips where creating, writing and the two fsyncs took four.
async fn spool(
    spooled: &mut Spooled,
    path: &Path,
    mut upload: impl Upload,
    declared: Option<u64>,
) -> Result<(), Error> {
    let created = std::fs::File::create;
    let mut file = blocking(path, "create", created, path.to_path_buf()).await?;
    let mut current = upload.chunk().await?;
    loop {
        let ended = current.is_none();
        let chunk = current.unwrap_or_default();
        let more = chunk.len() as u64;
        if let Some(size) = declared.filter(|&size| spooled.reserved + more > size) {
            return Err(Error::bad_request(format!(
                "the document sent more than its declared {size} bytes"
            )));
        }
        reserve_bytes(&spooled.shared, more)?;
        spooled.reserved += more;
        let ahead = if ended { None } else { upload.chunk().await? };
        let last = ahead.is_none();
        if let Some(size) = declared.filter(|&size| last && spooled.reserved != size) {
            return Err(Error::bad_request(format!(
                "the document ended after {} of its declared {size} bytes",
                spooled.reserved
            )));
        }
        let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let write = move |mut file: std::fs::File| {
            write_chunk(&mut file, &chunk, last.then_some(folder.as_path())).map(|()| file)
        };
        file = blocking(path, "write", write, file).await?;
        if last {
            return Ok(());
        }
        current = ahead;
    }
}

/// Appends a chunk to the spooled document; after the last chunk, given
/// the document's `folder`, fsyncs the file and the folder.
fn write_chunk(
    file: &mut std::fs::File,
    chunk: &[u8],
    folder: Option<&Path>,
) -> std::io::Result<()> {
    file.write_all(chunk)?;
    if let Some(folder) = folder {
        file.sync_all()?;
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

/// Runs `op` on `input` on the blocking pool; an error is logged and says
/// what it could not do to the document at `path`.
async fn blocking<I, T>(
    path: &Path,
    what: &str,
    op: impl FnOnce(I) -> std::io::Result<T> + Send + 'static,
    input: I,
) -> Result<T, Error>
where
    I: Send + 'static,
    T: Send + 'static,
{
    let done = tokio::task::spawn_blocking(move || op(input))
        .await
        .map_err(|e| Error::internal(format!("spooling failed: {e}")))?;
    done.map_err(|e| {
        tracing::error!(path = %path.display(), error = %e, "spooling failed");
        Error::internal(format!("cannot {what} the spooled document: {e}"))
    })
}

/// Reserves room for `more` bytes in the spool, or refuses with `busy`. It
/// takes no queue lock, so a full spool answers at once even while a long
/// fsync holds the queue.
fn reserve_bytes(shared: &Shared, more: u64) -> Result<(), Error> {
    let max = shared.max_spool_bytes;
    let mut used = shared.spool_used.load(Ordering::Acquire);
    loop {
        if used.saturating_add(more) > max {
            return Err(Error::busy(format!(
                "the spool is full: it holds {used} of {max} bytes and this document needs \
                 {more} more; wait for jobs to print or purge history"
            )));
        }
        match shared.spool_used.compare_exchange(
            used,
            used + more,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(()),
            Err(now) => used = now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_clock_follows_tokio_time_so_aging_can_be_tested() {
        let clock = Clock::new();
        let start = clock.now_ms();
        tokio::time::advance(Duration::from_secs(600)).await;
        assert_eq!(clock.now_ms() - start, 600_000);
    }
}
