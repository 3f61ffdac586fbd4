//! The print queue: every job and printer in memory, each change written to
//! the store before it is made in memory, so memory never runs ahead of disk.
//!
//! The queue is plain data behind one lock; the service and the printer
//! workers call it from the blocking pool, because each change waits for an
//! fsync. Methods report what changed as [`Event`]s for the watchers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use backroom_api::print::{
    ClassInfo, DEFAULT_PAGE, DEFAULT_PRIORITY, Event, HistoryArgs, Job, JobList, JobState,
    ListArgs, MAX_PRIORITY, MIN_PRIORITY, PrinterInfo, PrinterState, Printers, SubmitArgs,
    Validated,
};
use backroom_frame::auth::{Identity, Role};
use backroom_frame::error::Error;
use parking_lot::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::order::{Aging, Place, Rank};
use crate::store::{PrinterFlags, Record, Store};

/// What happens once a job has failed `max_attempts` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// Keep retrying, waiting the longest backoff between attempts.
    RetryJob,
    /// Give the job up: it ends `aborted` and the printer goes on.
    AbortJob,
    /// Stop the printer with the job at the head of its queue until an
    /// operator resumes it.
    StopPrinter,
}

impl std::str::FromStr for ErrorPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<ErrorPolicy, String> {
        match s {
            "retry-job" => Ok(ErrorPolicy::RetryJob),
            "abort-job" => Ok(ErrorPolicy::AbortJob),
            "stop-printer" => Ok(ErrorPolicy::StopPrinter),
            _ => Err(format!(
                "unknown error policy {s:?}: use retry-job, abort-job or stop-printer"
            )),
        }
    }
}

/// How many finished jobs the history keeps unless told otherwise.
pub const DEFAULT_HISTORY_JOBS: u64 = 10_000;

/// The queue's bounds and rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Jobs not yet finished, at most.
    pub max_jobs: u64,
    /// Bytes of documents in the spool, history included, at most.
    pub max_spool_bytes: u64,
    /// Finished jobs kept as history, at most: beyond it the oldest
    /// finished ones are purged, with their documents.
    pub history_jobs: u64,
    pub aging: Aging,
    /// Attempts before the error policy applies; at least 1.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub error_policy: ErrorPolicy,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_jobs: 100_000,
            max_spool_bytes: 4 << 30,
            history_jobs: DEFAULT_HISTORY_JOBS,
            aging: Aging {
                max_wait_ms: 10 * 60 * 1000,
            },
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            error_policy: ErrorPolicy::RetryJob,
        }
    }
}

impl Policy {
    /// The wait before the next attempt of a job that failed `attempts` times.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(20);
        self.retry_base
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
    }
}

/// A printer as the queue sees it.
#[derive(Debug, Clone)]
pub struct PrinterSlot {
    pub name: String,
    /// The device spec, for display.
    pub device: String,
    pub classes: Vec<String>,
    pub flags: PrinterFlags,
    pub current: Option<u64>,
    /// Waiting out a backoff after a device failure.
    pub retrying: bool,
    pub last_error: Option<String>,
}

impl PrinterSlot {
    fn available(&self) -> bool {
        self.current.is_none() && !self.flags.paused && !self.flags.stopped && !self.retrying
    }

    fn state(&self) -> PrinterState {
        if self.flags.stopped || self.retrying {
            PrinterState::Error
        } else if self.flags.paused {
            PrinterState::Paused
        } else if self.current.is_some() {
            PrinterState::Printing
        } else {
            PrinterState::Idle
        }
    }
}

/// A job handed to a printer's worker.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub job: Record,
    /// Cancelled when the job is cancelled while printing.
    pub cancel: CancellationToken,
}

/// How far a device got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub pages: u64,
}

/// The configured printers and classes.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Name and device spec of each printer, in configuration order.
    pub printers: Vec<(String, String)>,
    /// Name and members of each class.
    pub classes: Vec<(String, Vec<String>)>,
    pub default_printer: Option<String>,
}

/// Counts kept up to date as jobs change, so that the bounds and the
/// printers' queue lengths cost no scan of a long queue on every submission.
#[derive(Debug, Default)]
struct Tally {
    /// Jobs not yet finished.
    active: u64,
    /// Pending or held jobs, by the printer or class they were sent to.
    waiting: HashMap<String, u64>,
    /// Finished jobs by when they finished, oldest first: the history, and
    /// the order in which its bound purges it.
    finished: BTreeSet<(i64, u64)>,
}

impl Tally {
    fn of<'a>(jobs: impl Iterator<Item = &'a Record>) -> Tally {
        let mut tally = Tally::default();
        for job in jobs {
            tally.count(job, true);
        }
        tally
    }

    fn count(&mut self, job: &Record, add: bool) {
        let step = |n: &mut u64| {
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
        };
        if !job.state.is_finished() {
            step(&mut self.active);
        } else if add {
            self.finished.insert(history_key(job));
        } else {
            self.finished.remove(&history_key(job));
        }
        if matches!(job.state, JobState::Pending | JobState::Held) {
            step(self.waiting.entry(job.target.clone()).or_default());
        }
    }
}

/// Where a finished job stands in the history.
fn history_key(job: &Record) -> (i64, u64) {
    (job.finished_ms.unwrap_or(0), job.id)
}

/// The figures the print server's vital signs show, taken under the queue's
/// lock and read without it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Jobs pending or held.
    pub queued: u64,
    /// Printers printing a job now.
    pub printing: u64,
    /// Printers in error: retrying after a failure, or stopped.
    pub in_error: u64,
}

pub struct Queue {
    /// Shared with the committer of new jobs, which writes them without
    /// holding the queue's lock (see [`Queue::admit`]). Taken inside the
    /// queue's lock or alone, never the other way round.
    store: Arc<Mutex<Store>>,
    /// Changed only through `put` and `forget`, which keep `tally`.
    jobs: BTreeMap<u64, Record>,
    tally: Tally,
    printers: Vec<PrinterSlot>,
    classes: Vec<(String, Vec<String>)>,
    default_printer: Option<String>,
    policy: Policy,
    next_seq: u64,
    next_front: u64,
    cancels: HashMap<u64, CancellationToken>,
    /// Documents (and their sizes) of jobs purged from the queue, for the
    /// caller to remove once the change is committed: see [`Queue::unlinked`].
    unlinked: Vec<(String, u64)>,
}

fn db(e: rusqlite::Error) -> Error {
    tracing::error!(error = %e, "queue database failed");
    Error::internal(format!("the queue database failed: {e}"))
}

impl Queue {
    /// Loads the queue and settles the jobs a stopped server left printing,
    /// by the error policy.
    pub fn open(
        store: Store,
        layout: Layout,
        policy: Policy,
        now: i64,
    ) -> Result<Queue, rusqlite::Error> {
        let mut printers = Vec::new();
        for (name, device) in &layout.printers {
            let flags = store.load_printer(name)?.unwrap_or_default();
            let classes = layout
                .classes
                .iter()
                .filter(|(_, members)| members.contains(name))
                .map(|(class, _)| class.clone())
                .collect();
            printers.push(PrinterSlot {
                name: name.clone(),
                device: device.clone(),
                classes,
                flags,
                current: None,
                retrying: false,
                last_error: None,
            });
        }
        let jobs: BTreeMap<u64, Record> = store
            .load_jobs()?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        let next_seq = jobs.values().map(|j| j.seq).max().unwrap_or(0) + 1;
        let next_front = jobs.values().map(|j| j.front).max().unwrap_or(0) + 1;
        let tally = Tally::of(jobs.values());
        let mut queue = Queue {
            store: Arc::new(Mutex::new(store)),
            jobs,
            tally,
            printers,
            classes: layout.classes,
            default_printer: layout.default_printer,
            policy,
            next_seq,
            next_front,
            cancels: HashMap::new(),
            unlinked: Vec::new(),
        };
        queue.recover(now)?;
        // A lowered `history_jobs` applies at once; the documents go with
        // the start-up sweep of documents no job refers to.
        queue.trim_history(&mut Vec::new())?;
        queue.unlinked.clear();
        Ok(queue)
    }

    fn recover(&mut self, now: i64) -> Result<(), rusqlite::Error> {
        let interrupted: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Printing)
            .map(|j| j.id)
            .collect();
        let mut changed = Vec::new();
        for id in interrupted {
            let Some(mut job) = self.jobs.get(&id).cloned() else {
                continue;
            };
            job.last_error = Some("interrupted: the server stopped while printing".into());
            let stop = self.fail_job(&mut job, now);
            tracing::warn!(
                id,
                attempts = job.attempts,
                state = job.state.as_str(),
                "recovered a job that was printing"
            );
            if stop && let Some(slot) = self.slot_mut(job.device.as_deref().unwrap_or("")) {
                slot.flags.stopped = true;
                let (name, flags) = (slot.name.clone(), slot.flags);
                self.store().save_printer(&name, flags)?;
            }
            changed.push(job);
        }
        self.store().update(&changed.iter().collect::<Vec<_>>())?;
        for job in changed {
            self.put(job);
        }
        Ok(())
    }

    /// Keeps `job` in memory, replacing its old self, and the tally with it.
    fn put(&mut self, job: Record) {
        if let Some(old) = self.jobs.remove(&job.id) {
            self.tally.count(&old, false);
        }
        self.tally.count(&job, true);
        self.jobs.insert(job.id, job);
    }

    fn forget(&mut self, id: u64) -> Option<Record> {
        let job = self.jobs.remove(&id)?;
        self.tally.count(&job, false);
        Some(job)
    }

    /// Applies the outcome of a failed attempt to `job`. Returns whether the
    /// printer must stop.
    fn fail_job(&self, job: &mut Record, now: i64) -> bool {
        if job.attempts < self.policy.max_attempts {
            job.state = JobState::Pending;
            return false;
        }
        match self.policy.error_policy {
            ErrorPolicy::RetryJob => {
                job.state = JobState::Pending;
                false
            }
            ErrorPolicy::AbortJob => {
                job.state = JobState::Aborted;
                job.finished_ms = Some(now);
                false
            }
            ErrorPolicy::StopPrinter => {
                job.state = JobState::Pending;
                true
            }
        }
    }

    /// Purges the oldest finished jobs beyond `history_jobs`, as `purge`
    /// does. The tally keeps the history in order, so this costs nothing
    /// until the bound is reached, and then one delete per finished job.
    fn trim_history(&mut self, events: &mut Vec<Event>) -> Result<(), rusqlite::Error> {
        let keep = usize::try_from(self.policy.history_jobs).unwrap_or(usize::MAX);
        let over = self.tally.finished.len().saturating_sub(keep);
        if over == 0 {
            return Ok(());
        }
        let oldest: Vec<u64> = self
            .tally
            .finished
            .iter()
            .take(over)
            .map(|&(_, id)| id)
            .collect();
        self.forget_finished(&oldest, events)?;
        tracing::debug!(
            purged = over,
            kept = keep,
            "purged the oldest finished jobs"
        );
        Ok(())
    }

    /// Deletes finished jobs from the store, then from memory; their
    /// documents wait in `unlinked`.
    fn forget_finished(
        &mut self,
        ids: &[u64],
        events: &mut Vec<Event>,
    ) -> Result<(), rusqlite::Error> {
        self.store().delete(ids)?;
        for &id in ids {
            if let Some(job) = self.forget(id) {
                self.unlinked.push((job.doc, job.size));
                events.push(Event::Purged { id });
            }
        }
        Ok(())
    }

    /// Takes the documents (and sizes) of the jobs purged since the last
    /// call: their rows are gone, so the files may be removed.
    pub fn unlinked(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.unlinked)
    }

    /// Finished jobs kept as history.
    pub fn history_len(&self) -> u64 {
        self.tally.finished.len() as u64
    }

    /// What the vital signs show.
    pub fn load(&self) -> Load {
        let count = |f: fn(&PrinterSlot) -> bool| self.printers.iter().filter(|s| f(s)).count();
        Load {
            queued: self.tally.waiting.values().sum(),
            printing: count(|s| s.current.is_some()) as u64,
            in_error: count(|s| s.state() == PrinterState::Error) as u64,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Bytes of every document in the spool.
    pub fn spool_bytes(&self) -> u64 {
        self.jobs.values().map(|j| j.size).sum()
    }

    /// The document file names the queue refers to.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.jobs.values().map(|j| j.doc.as_str())
    }

    /// The newest job's id, 0 when there is none.
    pub fn last_job(&self) -> u64 {
        self.jobs.keys().next_back().copied().unwrap_or(0)
    }

    fn active_jobs(&self) -> u64 {
        self.tally.active
    }

    fn slot(&self, name: &str) -> Option<&PrinterSlot> {
        self.printers.iter().find(|p| p.name == name)
    }

    fn slot_mut(&mut self, name: &str) -> Option<&mut PrinterSlot> {
        self.printers.iter_mut().find(|p| p.name == name)
    }

    fn class(&self, name: &str) -> Option<&[String]> {
        self.classes
            .iter()
            .find(|(class, _)| class == name)
            .map(|(_, members)| members.as_slice())
    }

    /// Resolves a printer or class name for a new or moved job.
    fn destination(&self, name: Option<&str>) -> Result<String, Error> {
        let name = match name {
            Some(name) => name,
            None => self
                .default_printer
                .as_deref()
                .or_else(|| self.printers.first().map(|p| p.name.as_str()))
                .ok_or_else(|| Error::not_found("this server has no printers"))?,
        };
        let accepting = if let Some(slot) = self.slot(name) {
            slot.flags.accepting
        } else if let Some(members) = self.class(name) {
            members
                .iter()
                .any(|m| self.slot(m).is_some_and(|s| s.flags.accepting))
        } else {
            return Err(Error::not_found(format!(
                "no printer or class named {name:?}"
            )));
        };
        if !accepting {
            return Err(Error::conflict(format!(
                "printer {name} is not accepting jobs"
            )));
        }
        Ok(name.to_owned())
    }

    /// Checks a submission against the rules and the bounds.
    pub fn validate(&self, args: &SubmitArgs, spool_used: u64) -> Result<Validated, Error> {
        let checked = self.check_job(args)?;
        self.check_room(self.active_jobs())?;
        if let Some(size) = args.size {
            self.check_spool(spool_used, size)?;
        }
        Ok(checked)
    }

    fn check_job(&self, args: &SubmitArgs) -> Result<Validated, Error> {
        check_name(&args.name)?;
        let priority = args.priority.unwrap_or(DEFAULT_PRIORITY);
        check_priority(priority)?;
        if !(1..=100).contains(&args.copies) {
            return Err(Error::bad_request(format!(
                "copies must be 1 to 100, not {}",
                args.copies
            )));
        }
        let printer = self.destination(args.printer.as_deref())?;
        Ok(Validated { printer, priority })
    }

    fn check_room(&self, active: u64) -> Result<(), Error> {
        if active >= self.policy.max_jobs {
            return Err(Error::busy(format!(
                "the queue is full: {active} jobs wait, the limit is {}; try again later",
                self.policy.max_jobs
            )));
        }
        Ok(())
    }

    /// Refuses `more` bytes that would take the spool past its bound.
    fn check_spool(&self, used: u64, more: u64) -> Result<(), Error> {
        let max = self.policy.max_spool_bytes;
        if used.saturating_add(more) > max {
            return Err(Error::busy(format!(
                "the spool is full: it holds {used} of {max} bytes and this document needs \
                 {more} more; wait for jobs to print or purge history"
            )));
        }
        Ok(())
    }

    /// Checks a batch of durably spooled documents, each on its own, and
    /// makes records for those admitted, in queue order. Nothing is
    /// written yet: [`Admitted::write`] commits them without the queue's
    /// lock, then [`Queue::install`] makes them visible. One batch at a time
    /// goes through these three steps.
    pub fn admit(&mut self, arrivals: &[Arrival], now: i64) -> Admitted {
        let mut active = self.active_jobs();
        let mut records = Vec::new();
        let mut placed: Vec<Result<usize, Error>> = Vec::with_capacity(arrivals.len());
        for arrival in arrivals {
            let admitted = self
                .check_job(&arrival.args)
                .and_then(|checked| self.check_room(active).map(|()| checked));
            let checked = match admitted {
                Ok(checked) => checked,
                Err(e) => {
                    placed.push(Err(e));
                    continue;
                }
            };
            active += 1;
            placed.push(Ok(records.len()));
            let seq = self.next_seq + records.len() as u64;
            records.push(new_record(arrival, checked, seq, now));
        }
        // Taken now, so that a failed commit leaves a gap in the order, never
        // two jobs with one place.
        self.next_seq += records.len() as u64;
        Admitted {
            store: self.store.clone(),
            placed,
            records,
        }
    }

    /// Puts a written batch in the queue and gives each submission its
    /// answer.
    pub fn install(
        &mut self,
        batch: Admitted,
        written: Result<(), Error>,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Vec<Result<Job, Error>> {
        let Admitted {
            placed, records, ..
        } = batch;
        if let Err(e) = written {
            return placed
                .into_iter()
                .map(|p| p.and_then(|_| Err(e.clone())))
                .collect();
        }
        let views: Vec<Job> = records.iter().map(|r| self.view(r, now)).collect();
        for record in records {
            self.put(record);
        }
        events.extend(views.iter().map(|job| Event::Job { job: job.clone() }));
        if !views.is_empty() {
            self.printer_events(None, events);
        }
        placed
            .into_iter()
            .map(|p| p.map(|i| views[i].clone()))
            .collect()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A failed write rolls its transaction back: the store stays whole.
        self.store.lock()
    }

    /// The job as a client sees it.
    pub fn view(&self, job: &Record, now: i64) -> Job {
        let effective_priority = match job.state {
            JobState::Pending | JobState::Held => {
                self.policy
                    .aging
                    .effective(job.priority, job.queued_ms, now)
            }
            _ => job.priority,
        };
        Job {
            id: job.id,
            name: job.name.clone(),
            owner: job.owner.clone(),
            printer: job.target.clone(),
            device: job.device.clone(),
            priority: job.priority,
            effective_priority,
            promoted: job.front > 0,
            copies: job.copies,
            state: job.state,
            size: job.size,
            submitted_ms: job.submitted_ms,
            started_ms: job.started_ms,
            finished_ms: job.finished_ms,
            attempts: job.attempts,
            last_error: job.last_error.clone(),
            bytes_done: job.bytes_done,
            pages_done: job.pages_done,
        }
    }

    pub fn job(&self, id: u64, now: i64) -> Result<Job, Error> {
        self.get(id).map(|job| self.view(job, now))
    }

    fn get(&self, id: u64) -> Result<&Record, Error> {
        self.jobs
            .get(&id)
            .ok_or_else(|| Error::not_found(format!("no job {id}")))
    }

    /// A job the caller may change: their own, or anyone's for an admin.
    fn owned(&self, id: u64, who: &Identity) -> Result<Record, Error> {
        who.require(Role::ReadWrite)?;
        let job = self.get(id)?;
        if job.owner != who.user && who.role < Role::Admin {
            return Err(Error::forbidden(format!(
                "job {id} belongs to {}; only its owner or an admin may change it",
                job.owner
            )));
        }
        Ok(job.clone())
    }

    /// Writes changed jobs, then takes them into memory.
    fn commit(
        &mut self,
        changed: Vec<Record>,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        if changed.is_empty() {
            return Ok(());
        }
        self.store()
            .update(&changed.iter().collect::<Vec<_>>())
            .map_err(db)?;
        for job in changed {
            events.push(Event::Job {
                job: self.view(&job, now),
            });
            self.put(job);
        }
        self.trim_history(events).map_err(db)?;
        self.printer_events(None, events);
        Ok(())
    }

    fn commit_one(&mut self, job: Record, now: i64, events: &mut Vec<Event>) -> Result<Job, Error> {
        let id = job.id;
        self.commit(vec![job], now, events)?;
        self.job(id, now)
    }

    pub fn cancel(
        &mut self,
        id: u64,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        let mut job = self.owned(id, who)?;
        if job.state.is_finished() {
            return Err(Error::conflict(format!(
                "job {id} is already {}",
                job.state.as_str()
            )));
        }
        job.state = JobState::Cancelled;
        job.finished_ms = Some(now);
        let view = self.commit_one(job, now, events)?;
        // The worker sees the token, stops the device, and finds the job
        // already cancelled.
        if let Some(token) = self.cancels.get(&id) {
            token.cancel();
        }
        Ok(view)
    }

    fn waiting(&self, job: &Record) -> Result<(), Error> {
        match job.state {
            JobState::Pending | JobState::Held => Ok(()),
            state => Err(Error::conflict(format!(
                "job {} is {}; only a pending or held job can be changed",
                job.id,
                state.as_str()
            ))),
        }
    }

    pub fn hold(
        &mut self,
        id: u64,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        job.state = JobState::Held;
        self.commit_one(job, now, events)
    }

    pub fn release(
        &mut self,
        id: u64,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        if job.state == JobState::Held {
            job.state = JobState::Pending;
            job.queued_ms = now;
        }
        self.commit_one(job, now, events)
    }

    /// Holds or releases every waiting job sent to `printer`, in one
    /// transaction.
    pub fn hold_all(
        &mut self,
        printer: &str,
        hold: bool,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<u64, Error> {
        if self.slot(printer).is_none() && self.class(printer).is_none() {
            return Err(Error::not_found(format!(
                "no printer or class named {printer:?}"
            )));
        }
        let (from, to) = if hold {
            (JobState::Pending, JobState::Held)
        } else {
            (JobState::Held, JobState::Pending)
        };
        let changed: Vec<Record> = self
            .jobs
            .values()
            .filter(|j| j.target == printer && j.state == from)
            .map(|j| {
                let mut j = j.clone();
                j.state = to;
                if !hold {
                    j.queued_ms = now;
                }
                j
            })
            .collect();
        let count = changed.len() as u64;
        self.commit(changed, now, events)?;
        Ok(count)
    }

    pub fn set_priority(
        &mut self,
        id: u64,
        priority: u8,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        check_priority(priority)?;
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        job.priority = priority;
        self.commit_one(job, now, events)
    }

    pub fn promote(
        &mut self,
        id: u64,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        who.require(Role::Admin)?;
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        job.front = self.next_front;
        let view = self.commit_one(job, now, events)?;
        self.next_front += 1;
        Ok(view)
    }

    pub fn move_to(
        &mut self,
        id: u64,
        printer: &str,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        job.target = self.destination(Some(printer))?;
        self.commit_one(job, now, events)
    }

    /// Replaces the document of a job still waiting, and holds or releases
    /// it: how a job created before its document (IPP's Create-Job) gets
    /// it. Returns the job and the document it had.
    pub fn attach(
        &mut self,
        id: u64,
        (doc, size): (&str, u64),
        hold: bool,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<(Job, String), Error> {
        let mut job = self.owned(id, who)?;
        self.waiting(&job)?;
        self.store().set_document(id, doc, size).map_err(db)?;
        let old = std::mem::replace(&mut job.doc, doc.to_owned());
        job.size = size;
        let hold_state = if hold {
            JobState::Held
        } else {
            JobState::Pending
        };
        if job.state != hold_state {
            job.state = hold_state;
            job.queued_ms = now;
        }
        Ok((self.commit_one(job, now, events)?, old))
    }

    /// Queues a finished job again, at the back of its priority.
    pub fn restart(
        &mut self,
        id: u64,
        who: &Identity,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Job, Error> {
        let mut job = self.owned(id, who)?;
        if !job.state.is_finished() {
            return Err(Error::conflict(format!(
                "job {id} is {}; only a finished job can be restarted",
                job.state.as_str()
            )));
        }
        if self.slot(&job.target).is_none() && self.class(&job.target).is_none() {
            return Err(Error::conflict(format!(
                "job {id} was sent to {}, which no longer exists",
                job.target
            )));
        }
        self.check_room(self.active_jobs())?;
        job.state = JobState::Pending;
        job.device = None;
        job.started_ms = None;
        job.finished_ms = None;
        job.attempts = 0;
        job.last_error = None;
        job.bytes_done = 0;
        job.pages_done = 0;
        job.queued_ms = now;
        job.seq = self.next_seq;
        job.front = 0;
        let view = self.commit_one(job, now, events)?;
        self.next_seq += 1;
        Ok(view)
    }

    /// Forgets finished jobs older than `age`; returns how many. Their
    /// documents wait in [`Queue::unlinked`].
    pub fn purge(
        &mut self,
        age: Duration,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<u64, Error> {
        let cutoff = now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        let old: Vec<u64> = self
            .tally
            .finished
            .range(..=(cutoff, u64::MAX))
            .map(|&(_, id)| id)
            .collect();
        self.forget_finished(&old, events).map_err(db)?;
        Ok(old.len() as u64)
    }

    pub fn list(&self, args: &ListArgs, now: i64) -> JobList {
        let limit = if args.limit == 0 {
            DEFAULT_PAGE
        } else {
            args.limit
        } as usize;
        let matches = |j: &&Record| {
            let state_ok = match args.state {
                Some(state) => j.state == state,
                None => args.all || !j.state.is_finished(),
            };
            state_ok && belongs(j, args.owner.as_deref(), args.printer.as_deref())
        };
        let mut printing = Vec::new();
        let mut waiting = Vec::new();
        let mut finished = 0usize;
        for job in self.jobs.values().filter(matches) {
            match job.state {
                JobState::Printing => printing.push(job),
                JobState::Pending | JobState::Held => waiting.push(job),
                _ => finished += 1,
            }
        }
        let total = (printing.len() + waiting.len() + finished) as u64;
        printing.sort_by_key(|j| (j.started_ms, j.id));
        let aging = self.policy.aging;
        // Each rank is worked out once, not at every comparison, and only
        // the page is sorted: listing stays fast with a long queue.
        let mut ranked: Vec<(Rank, &Record)> = waiting
            .into_iter()
            .map(|j| (place(j).rank(aging, now), j))
            .collect();
        let room = limit.saturating_sub(printing.len());
        if ranked.len() > room && room > 0 {
            ranked.select_nth_unstable_by_key(room - 1, |(rank, _)| *rank);
            ranked.truncate(room);
        }
        ranked.sort_unstable_by_key(|(rank, _)| *rank);
        let mut jobs: Vec<Job> = printing
            .into_iter()
            .chain(ranked.into_iter().map(|(_, j)| j))
            .take(limit)
            .map(|j| self.view(j, now))
            .collect();
        if jobs.len() < limit {
            let rest = limit - jobs.len();
            jobs.extend(
                self.jobs
                    .values()
                    .rev()
                    .filter(|j| j.state.is_finished())
                    .filter(matches)
                    .take(rest)
                    .map(|j| self.view(j, now)),
            );
        }
        JobList { jobs, total }
    }

    /// Finished jobs, the last to finish first, straight from the tally's
    /// ordered history.
    pub fn history(&self, args: &HistoryArgs, now: i64) -> Result<JobList, Error> {
        if let Some(state) = args.state.filter(|s| !s.is_finished()) {
            return Err(Error::bad_request(format!(
                "the history holds finished jobs only, never {} ones",
                state.as_str()
            )));
        }
        let limit = match args.limit {
            0 => DEFAULT_PAGE,
            n => n,
        } as usize;
        let matching = self
            .tally
            .finished
            .iter()
            .rev()
            .filter_map(|(_, id)| self.jobs.get(id))
            .filter(|j| args.state.is_none_or(|s| j.state == s))
            .filter(|j| belongs(j, args.owner.as_deref(), args.printer.as_deref()));
        let mut jobs = Vec::new();
        let mut total = 0u64;
        for job in matching {
            if jobs.len() < limit {
                jobs.push(self.view(job, now));
            }
            total += 1;
        }
        Ok(JobList { jobs, total })
    }

    fn printer_view(&self, slot: &PrinterSlot) -> PrinterInfo {
        let queue_len = self.tally.waiting.get(&slot.name).copied().unwrap_or(0);
        PrinterInfo {
            name: slot.name.clone(),
            device: slot.device.clone(),
            state: slot.state(),
            accepting: slot.flags.accepting,
            stopped: slot.flags.stopped,
            current_job: slot.current,
            queue_len,
            last_error: slot.last_error.clone(),
            classes: slot.classes.clone(),
        }
    }

    fn printer_events(&self, only: Option<&str>, events: &mut Vec<Event>) {
        for slot in &self.printers {
            if only.is_none_or(|name| name == slot.name) {
                events.push(Event::Printer {
                    printer: self.printer_view(slot),
                });
            }
        }
    }

    pub fn printers(&self) -> Printers {
        Printers {
            printers: self.printers.iter().map(|s| self.printer_view(s)).collect(),
            classes: self
                .classes
                .iter()
                .map(|(name, members)| ClassInfo {
                    name: name.clone(),
                    members: members.clone(),
                })
                .collect(),
            default_printer: self
                .default_printer
                .clone()
                .or_else(|| self.printers.first().map(|p| p.name.clone())),
        }
    }

    /// Changes a printer's lasting flags: pause, resume, accept, reject.
    pub fn set_flags(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut PrinterFlags),
        events: &mut Vec<Event>,
    ) -> Result<PrinterInfo, Error> {
        let slot = self
            .slot(name)
            .ok_or_else(|| Error::not_found(format!("no printer named {name:?}")))?;
        let mut flags = slot.flags;
        change(&mut flags);
        self.store().save_printer(name, flags).map_err(db)?;
        if let Some(slot) = self.slot_mut(name) {
            slot.flags = flags;
        }
        self.printer_events(Some(name), events);
        let slot = self
            .slot(name)
            .ok_or_else(|| Error::not_found(format!("no printer named {name:?}")))?;
        Ok(self.printer_view(slot))
    }

    /// Whether `printer` may take `job` now: a class job goes to the first
    /// available member of its class.
    fn routes_to(&self, job: &Record, printer: &str) -> bool {
        if job.target == printer {
            return true;
        }
        let Some(members) = self.class(&job.target) else {
            return false;
        };
        for member in members {
            if member == printer {
                return true;
            }
            if self.slot(member).is_some_and(PrinterSlot::available) {
                return false;
            }
        }
        false
    }

    /// Hands the next job to `printer`'s worker, if the printer may print and
    /// a job waits for it.
    pub fn take_next(
        &mut self,
        printer: &str,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Option<Dispatch>, Error> {
        if !self.slot(printer).is_some_and(PrinterSlot::available) {
            return Ok(None);
        }
        let aging = self.policy.aging;
        let best = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Pending && self.routes_to(j, printer))
            .min_by_key(|j| place(j).rank(aging, now));
        let Some(best) = best else {
            return Ok(None);
        };
        let mut job = best.clone();
        job.state = JobState::Printing;
        job.device = Some(printer.to_owned());
        job.started_ms = Some(now);
        job.finished_ms = None;
        job.attempts += 1;
        job.bytes_done = 0;
        job.pages_done = 0;
        let id = job.id;
        if let Some(slot) = self.slot_mut(printer) {
            slot.current = Some(id);
        }
        if let Err(e) = self.commit(vec![job.clone()], now, events) {
            if let Some(slot) = self.slot_mut(printer) {
                slot.current = None;
            }
            return Err(e);
        }
        let cancel = CancellationToken::new();
        self.cancels.insert(id, cancel.clone());
        Ok(Some(Dispatch { job, cancel }))
    }

    /// Records how an attempt ended. Returns the backoff the printer must
    /// wait before it prints again, after a failure.
    pub fn finish(
        &mut self,
        printer: &str,
        id: u64,
        progress: Progress,
        outcome: Result<(), String>,
        now: i64,
        events: &mut Vec<Event>,
    ) -> Result<Option<Duration>, Error> {
        self.cancels.remove(&id);
        if let Some(slot) = self.slot_mut(printer) {
            slot.current = None;
        }
        let Some(mut job) = self.jobs.get(&id).cloned() else {
            return Ok(None);
        };
        if job.state != JobState::Printing {
            // Cancelled while printing: already recorded.
            self.printer_events(Some(printer), events);
            return Ok(None);
        }
        job.bytes_done = progress.bytes;
        job.pages_done = progress.pages;
        let mut backoff = None;
        let mut stop = false;
        match outcome {
            Ok(()) => {
                job.state = JobState::Completed;
                job.finished_ms = Some(now);
                job.last_error = None;
            }
            Err(message) => {
                tracing::warn!(id, printer, attempts = job.attempts, error = %message, "print attempt failed");
                job.last_error = Some(message);
                stop = self.fail_job(&mut job, now);
                if job.state == JobState::Pending && !stop {
                    backoff = Some(self.policy.backoff(job.attempts));
                }
            }
        }
        let last_error = job.last_error.clone();
        if stop {
            let mut flags = self.slot(printer).map(|s| s.flags).unwrap_or_default();
            flags.stopped = true;
            self.store().save_printer(printer, flags).map_err(db)?;
            if let Some(slot) = self.slot_mut(printer) {
                slot.flags = flags;
            }
        }
        if let Some(slot) = self.slot_mut(printer) {
            slot.retrying = backoff.is_some();
            slot.last_error = last_error;
        }
        self.commit(vec![job], now, events)?;
        Ok(backoff)
    }

    /// Ends a printer's backoff: it may print again.
    pub fn end_backoff(&mut self, printer: &str, events: &mut Vec<Event>) {
        if let Some(slot) = self.slot_mut(printer) {
            slot.retrying = false;
        }
        self.printer_events(Some(printer), events);
    }
}

/// A submission whose document is durably spooled, ready to be queued.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub args: SubmitArgs,
    pub owner: String,
    /// The document's file name in the spool.
    pub doc: String,
    pub size: u64,
}

/// A batch of new jobs checked by [`Queue::admit`], not yet written.
pub struct Admitted {
    store: Arc<Mutex<Store>>,
    /// Per submission: its index in `records`, or why it was refused.
    placed: Vec<Result<usize, Error>>,
    records: Vec<Record>,
}

impl Admitted {
    /// Commits the batch's jobs in one transaction (one fsync for all of
    /// them) and gives them their ids. Blocks; holds the store, not the
    /// queue, so the queue answers reads meanwhile.
    pub fn write(&mut self) -> Result<(), Error> {
        let mut store = self.store.lock();
        store.insert_all(&mut self.records).map_err(db)
    }
}

fn new_record(arrival: &Arrival, checked: Validated, seq: u64, now: i64) -> Record {
    Record {
        id: 0,
        name: arrival.args.name.clone(),
        owner: arrival.owner.clone(),
        target: checked.printer,
        device: None,
        priority: checked.priority,
        copies: arrival.args.copies,
        state: if arrival.args.hold {
            JobState::Held
        } else {
            JobState::Pending
        },
        size: arrival.size,
        doc: arrival.doc.clone(),
        submitted_ms: now,
        queued_ms: now,
        started_ms: None,
        finished_ms: None,
        attempts: 0,
        last_error: None,
        bytes_done: 0,
        pages_done: 0,
        seq,
        front: 0,
    }
}

/// Whether `job` is `owner`'s and was sent to or printed on `printer`, for
/// the filters that set them.
fn belongs(job: &Record, owner: Option<&str>, printer: Option<&str>) -> bool {
    owner.is_none_or(|o| job.owner == o)
        && printer.is_none_or(|p| job.target == p || job.device.as_deref() == Some(p))
}

fn place(job: &Record) -> Place {
    Place {
        front: job.front,
        priority: job.priority,
        queued_ms: job.queued_ms,
        seq: job.seq,
    }
}

fn check_priority(priority: u8) -> Result<(), Error> {
    if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&priority) {
        return Err(Error::bad_request(format!(
            "priority must be {MIN_PRIORITY} to {MAX_PRIORITY}, not {priority}"
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::bad_request("a job name must be 1 to 255 bytes long"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_request(
            "a job name may not hold control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn admin() -> Identity {
        Identity {
            user: "ann".into(),
            role: Role::Admin,
        }
    }

    /// A batch through the three steps of a commit, as the service runs them.
    fn insert_many(q: &mut Queue, arrivals: &[Arrival], now: i64) -> Vec<Result<Job, Error>> {
        let mut batch = q.admit(arrivals, now);
        let written = batch.write();
        q.install(batch, written, now, &mut Vec::new())
    }

    fn open(dir: &std::path::Path, policy: Policy) -> Queue {
        let store = Store::open(&dir.join("queue.db")).expect("store");
        let layout = Layout {
            printers: vec![("lp".into(), "sim:60".into())],
            classes: Vec::new(),
            default_printer: None,
        };
        Queue::open(store, layout, policy, 0).expect("queue")
    }

    fn submit(q: &mut Queue, priority: u8, now: i64) -> u64 {
        let mut args = SubmitArgs::new(format!("job at {now}"));
        args.priority = Some(priority);
        let arrival = Arrival {
            args,
            owner: "ann".into(),
            doc: format!("{now}-{priority}.prn"),
            size: 1,
        };
        let mut answers = insert_many(q, &[arrival], now);
        answers.pop().expect("one answer").expect("insert").id
    }

    /// The rule as docs/print.md states it, written out again on its own.
    fn expected_next(waiting: &[(u64, u8, i64)], now: i64, max_wait_ms: i64) -> u64 {
        let effective = |priority: u8, queued: i64| {
            if max_wait_ms == 0 {
                i64::from(priority)
            } else {
                (i64::from(priority) + (now - queued) * 99 / max_wait_ms).min(100)
            }
        };
        waiting
            .iter()
            .max_by(|a, b| {
                effective(a.1, a.2)
                    .cmp(&effective(b.1, b.2))
                    .then(b.0.cmp(&a.0))
            })
            .map(|j| j.0)
            .expect("a job waits")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn dispatch_follows_the_documented_rule(
            submissions in prop::collection::vec((1u8..=100, 0i64..50_000), 1..9),
            changes in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=100, 0i64..50_000), 0..5),
            aging_secs in prop_oneof![Just(0i64), 1i64..120],
        ) {
            let dir = tempfile::tempdir().expect("temp dir");
            let max_wait_ms = aging_secs * 1000;
            let policy = Policy {
                aging: Aging { max_wait_ms: max_wait_ms as u64 },
                ..Policy::default()
            };
            let mut q = open(dir.path(), policy);
            let mut submissions = submissions;
            submissions.sort_by_key(|s| s.1);
            // The model: id, priority, queued at.
            let mut model: Vec<(u64, u8, i64)> = Vec::new();
            let mut changes = changes;
            changes.sort_by_key(|c| c.2);
            let mut changes = changes.into_iter().peekable();
            for (priority, at) in submissions {
                while let Some((index, new, when)) = changes.next_if(|c| c.2 <= at) {
                    if model.is_empty() {
                        continue;
                    }
                    let len = model.len();
                    let job = &mut model[index.index(len)];
                    job.1 = new;
                    q.set_priority(job.0, new, &admin(), when, &mut Vec::new()).expect("priority");
                }
                let id = submit(&mut q, priority, at);
                model.push((id, priority, at));
            }
            let mut now = 60_000;
            while !model.is_empty() {
                let mut events = Vec::new();
                let taken = q.take_next("lp", now, &mut events).expect("take").expect("a job");
                let expected = expected_next(&model, now, max_wait_ms);
                prop_assert_eq!(taken.job.id, expected, "at {} of {:?}", now, model);
                if max_wait_ms > 0 {
                    // The aging guarantee: nothing queued later goes before a
                    // job that has waited the maximum.
                    let starved = model.iter().filter(|j| now - j.2 >= max_wait_ms).map(|j| j.0).min();
                    if let Some(starved) = starved {
                        prop_assert!(taken.job.id <= starved);
                    }
                }
                q.finish("lp", taken.job.id, Progress::default(), Ok(()), now, &mut events).expect("finish");
                model.retain(|j| j.0 != taken.job.id);
                now += 7_000;
            }
        }
    }

    #[test]
    fn a_batch_admits_each_submission_on_its_own() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = Policy {
            max_jobs: 2,
            ..Policy::default()
        };
        let mut q = open(dir.path(), policy);
        let arrival = |name: &str, priority: u8| {
            let mut args = SubmitArgs::new(name);
            args.priority = Some(priority);
            Arrival {
                args,
                owner: "ann".into(),
                doc: format!("{name}.prn"),
                size: 1,
            }
        };
        let batch = [
            arrival("ok", 50),
            arrival("bad priority", 0),
            arrival("also ok", 50),
            arrival("one too many", 50),
        ];
        let answers = insert_many(&mut q, &batch, 1);
        let codes: Vec<Option<backroom_frame::ErrorCode>> = answers
            .iter()
            .map(|a| a.as_ref().err().map(|e| e.code))
            .collect();
        use backroom_frame::ErrorCode::{BadRequest, Busy};
        assert_eq!(codes, [None, Some(BadRequest), None, Some(Busy)]);
        let ids: Vec<u64> = answers.iter().flatten().map(|j| j.id).collect();
        assert_eq!(ids.len(), 2);
        assert_eq!(q.list(&ListArgs::default(), 2).total, 2);
    }

    #[test]
    fn promote_priority_and_hold_reorder_the_queue_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = Policy {
            aging: Aging { max_wait_ms: 0 },
            ..Policy::default()
        };
        let mut q = open(dir.path(), policy);
        let ev = &mut Vec::new();
        let a = submit(&mut q, 50, 1);
        let b = submit(&mut q, 50, 2);
        let c = submit(&mut q, 10, 3);
        let order = |q: &Queue| -> Vec<u64> {
            q.list(&ListArgs::default(), 10)
                .jobs
                .iter()
                .filter(|j| j.state == JobState::Pending)
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(order(&q), [a, b, c]);
        q.set_priority(b, 60, &admin(), 4, ev).expect("priority");
        assert_eq!(order(&q), [b, a, c]);
        q.promote(c, &admin(), 5, ev).expect("promote");
        assert_eq!(order(&q), [c, b, a]);
        assert_eq!(q.hold_all("lp", true, 6, ev).expect("hold all"), 3);
        assert!(q.take_next("lp", 7, ev).expect("take").is_none());
        assert_eq!(q.hold_all("lp", false, 8, ev).expect("release all"), 3);
        let next = q.take_next("lp", 9, ev).expect("take").expect("job");
        assert_eq!(next.job.id, c, "promotion outlives hold and release");
    }

    #[test]
    fn the_tally_agrees_with_the_jobs_through_changes_purges_and_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let check = |q: &Queue| {
            let scan = Tally::of(q.jobs.values());
            assert_eq!(q.tally.active, scan.active);
            assert_eq!(
                q.tally.waiting.get("lp").copied().unwrap_or(0),
                scan.waiting.get("lp").copied().unwrap_or(0)
            );
            assert_eq!(q.printers().printers[0].queue_len, q.tally.waiting["lp"]);
        };
        let mut q = open(dir.path(), Policy::default());
        let ev = &mut Vec::new();
        let a = submit(&mut q, 50, 1);
        let b = submit(&mut q, 50, 2);
        submit(&mut q, 50, 3);
        check(&q);
        assert_eq!((q.tally.active, q.tally.waiting["lp"]), (3, 3));
        q.hold(a, &admin(), 4, ev).expect("hold");
        q.cancel(b, &admin(), 5, ev).expect("cancel");
        check(&q);
        assert_eq!((q.tally.active, q.tally.waiting["lp"]), (2, 2));
        let taken = q.take_next("lp", 6, ev).expect("take").expect("a job");
        check(&q);
        assert_eq!(taken.job.state, JobState::Printing);
        assert_eq!((q.tally.active, q.tally.waiting["lp"]), (2, 1));
        q.purge(Duration::ZERO, 7, ev).expect("purge");
        check(&q);
        drop(q);
        let q = open(dir.path(), Policy::default());
        check(&q);
        assert_eq!(q.tally.active, 2, "the printing job is settled, not lost");
    }

    #[test]
    fn a_failed_attempt_keeps_the_job_at_the_head_and_backs_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = Policy {
            max_attempts: 2,
            error_policy: ErrorPolicy::AbortJob,
            ..Policy::default()
        };
        let mut q = open(dir.path(), policy);
        let ev = &mut Vec::new();
        let first = submit(&mut q, 50, 1);
        let second = submit(&mut q, 50, 2);
        let taken = q.take_next("lp", 3, ev).expect("take").expect("job");
        let failed = Err("paper jam".to_owned());
        let backoff = q.finish("lp", first, Progress::default(), failed.clone(), 4, ev);
        assert_eq!(backoff.expect("finish"), Some(Duration::from_secs(1)));
        assert!(
            q.take_next("lp", 5, ev).expect("take").is_none(),
            "backing off"
        );
        q.end_backoff("lp", ev);
        let again = q.take_next("lp", 6, ev).expect("take").expect("job");
        assert_eq!((again.job.id, again.job.attempts), (taken.job.id, 2));
        let backoff = q.finish("lp", first, Progress::default(), failed, 7, ev);
        assert_eq!(backoff.expect("finish"), None);
        let job = q.job(first, 8).expect("job");
        assert_eq!(job.state, JobState::Aborted);
        assert_eq!(job.last_error.as_deref(), Some("paper jam"));
        let next = q.take_next("lp", 9, ev).expect("take").expect("job");
        assert_eq!(next.job.id, second);
    }

    #[test]
    fn a_restart_settles_an_interrupted_job_by_the_policy() {
        let dir = tempfile::tempdir().expect("temp dir");
        let policy = Policy {
            max_attempts: 1,
            error_policy: ErrorPolicy::StopPrinter,
            ..Policy::default()
        };
        let id = {
            let mut q = open(dir.path(), policy.clone());
            let id = submit(&mut q, 50, 1);
            q.take_next("lp", 2, &mut Vec::new()).expect("take");
            id
        };
        let q = open(dir.path(), policy);
        let job = q.job(id, 3).expect("job");
        assert_eq!((job.state, job.attempts), (JobState::Pending, 1));
        assert!(job.last_error.is_some_and(|e| e.contains("interrupted")));
        let printer = &q.printers().printers[0];
        assert!(printer.stopped);
        assert_eq!(printer.state, PrinterState::Error);
    }
}
