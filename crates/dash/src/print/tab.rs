//! The Print tab's state: the live queue in dispatch order, the printers,
//! and what its keys ask the print server to do.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::path::PathBuf;

use backroom_api::print::{
    DEFAULT_PRIORITY, Event, Job, JobState, MAX_PRIORITY, MIN_PRIORITY, PrinterInfo,
};

use crate::filter::Filter;
use crate::keymap::Action;
use crate::outbox::Outlet;
use crate::prompt::Prompt;
use crate::update::Level;
use crate::widgets::Status;

/// How many jobs the tab lists when it (re)connects.
pub const LIST_LIMIT: u32 = 10_000;

/// How many finished jobs the tab keeps for its history.
pub const HISTORY: usize = 200;

/// How much one press of priority +/- changes a job's priority.
pub const PRIORITY_STEP: u8 = 10;

/// Something the tab asks the print server to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read `path` on this machine and submit it as job `name`.
    Submit {
        path: PathBuf,
        name: String,
        priority: u8,
        /// A printer or class; the server's default when `None`.
        printer: Option<String>,
    },
    Cancel(u64),
    Hold(u64),
    Release(u64),
    SetPriority {
        id: u64,
        priority: u8,
    },
    Promote(u64),
    Move {
        id: u64,
        printer: String,
    },
    Pause(String),
    Resume(String),
}

impl Request {
    /// What the request does, in a few words, for the status line.
    pub fn describe(&self) -> String {
        match self {
            Request::Submit { name, .. } => format!("submit {name}"),
            Request::Cancel(id) => format!("cancel job {id}"),
            Request::Hold(id) => format!("hold job {id}"),
            Request::Release(id) => format!("release job {id}"),
            Request::SetPriority { id, priority } => {
                format!("set job {id} to priority {priority}")
            }
            Request::Promote(id) => format!("promote job {id}"),
            Request::Move { id, printer } => format!("move job {id} to {printer}"),
            Request::Pause(printer) => format!("pause {printer}"),
            Request::Resume(printer) => format!("resume {printer}"),
        }
    }
}

/// News from the print task.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// The task is running and takes requests here.
    Attached(Outlet<Request>),
    /// The queue and printers as listed right after subscribing.
    Snapshot {
        jobs: Vec<Job>,
        total: u64,
        printers: Vec<PrinterInfo>,
        default_printer: Option<String>,
    },
    /// One event of the `watch` subscription.
    Event(Event),
    /// A request finished: `Ok` with what happened, or the server's error.
    Done(Result<String, String>),
    /// A job submitted from the tab was spooled.
    Submitted(Job),
    /// The subscription broke; the task reconnects.
    Lost(String),
}

/// Which pane the keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Queue,
    Printers,
}

/// What an open prompt is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptFor {
    Submit,
    Move(u64),
}

/// What a key on the Print tab leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Send(Request),
    /// Send only after a yes: (title, question, request).
    Confirm(String, String, Request),
}

/// The Print tab's state.
#[derive(Debug, Clone, Default)]
pub struct PrintTab {
    /// Whether a snapshot has arrived since the task connected.
    pub loaded: bool,
    /// Jobs not yet finished, in dispatch order.
    pub jobs: Vec<Job>,
    /// Finished jobs, newest first, at most [`HISTORY`].
    pub finished: Vec<Job>,
    /// Whether the queue pane shows the finished jobs instead.
    pub show_finished: bool,
    /// How many unfinished jobs the server had when listed, beyond the page.
    pub listed_total: u64,
    /// When each promoted job was promoted, by the tab's own count: the
    /// newest promotion goes first.
    promotions: HashMap<u64, u64>,
    promotion_count: u64,
    pub printers: Vec<PrinterInfo>,
    pub default_printer: Option<String>,
    pub pane: Pane,
    /// The selected job, kept by id so that it stays put as the queue moves.
    pub selected_job: Option<u64>,
    pub selected_printer: usize,
    pub filter: Filter,
    pub prompt: Option<Prompt<PromptFor>>,
    pub status: Option<Status>,
}

impl PrintTab {
    /// Applies news from the print task.
    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Attached(_) => {}
            Msg::Snapshot {
                jobs,
                total,
                printers,
                default_printer,
            } => self.load(jobs, total, printers, default_printer),
            Msg::Event(event) => self.apply_event(event),
            Msg::Done(Ok(text)) => self.status = Some(Status { ok: true, text }),
            Msg::Submitted(job) => self.submitted(&job),
            Msg::Done(Err(text)) => self.status = Some(Status { ok: false, text }),
            // The connection's own state says why on the tab.
            Msg::Lost(_) => self.loaded = false,
        }
    }

    fn load(
        &mut self,
        jobs: Vec<Job>,
        total: u64,
        printers: Vec<PrinterInfo>,
        default_printer: Option<String>,
    ) {
        self.loaded = true;
        self.listed_total = total;
        let (finished, jobs): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| j.state.is_finished());
        self.jobs = jobs;
        self.finished = finished;
        self.finished.truncate(HISTORY);
        // `list` puts the newest promotion first; count so that it stays so.
        self.promotions.clear();
        let promoted: Vec<u64> = self
            .jobs
            .iter()
            .filter(|j| j.promoted)
            .map(|j| j.id)
            .collect();
        for id in promoted.into_iter().rev() {
            self.promotion_count += 1;
            self.promotions.insert(id, self.promotion_count);
        }
        self.sort();
        self.printers = printers;
        self.default_printer = default_printer;
        self.selected_printer = self
            .selected_printer
            .min(self.printers.len().saturating_sub(1));
        self.keep_selection();
    }

    /// What a message from the print task puts in the Overview's events:
    /// a job that joins the queue, and a job that finishes. Read before
    /// the message is applied, so that a job new to the tab is known as
    /// such.
    pub fn news(&self, msg: &Msg) -> Option<(Level, String)> {
        let Msg::Event(Event::Job { job }) = msg else {
            return None;
        };
        let known = self.jobs.iter().any(|j| j.id == job.id);
        let printer = job.device.as_deref().unwrap_or(&job.printer);
        let (level, what) = match job.state {
            JobState::Completed => (Level::Info, format!("printed on {printer}")),
            JobState::Aborted => (Level::Error, format!("aborted on {printer}")),
            JobState::Cancelled => (Level::Warn, "cancelled".to_string()),
            _ if !known && !self.finished.iter().any(|j| j.id == job.id) => (
                Level::Info,
                format!("submitted by {} to {printer}", job.owner),
            ),
            _ => return None,
        };
        Some((level, format!("job {} {} {what}", job.id, job.name)))
    }

    /// Says that a job was submitted, unless it has printed already: the
    /// answer to `submit` can come after the job's last event, and the
    /// newer news is the one to keep.
    fn submitted(&mut self, job: &Job) {
        let status = match self.finished.iter().find(|j| j.id == job.id) {
            Some(finished) => completion(finished),
            None => Status {
                ok: true,
                text: format!(
                    "submitted {} as job {} to {}",
                    job.name, job.id, job.printer
                ),
            },
        };
        self.status = Some(status);
    }

    fn apply_event(&mut self, event: Event) {
        match event {
            Event::Job { job } => self.upsert(job),
            Event::Purged { id } => {
                self.jobs.retain(|j| j.id != id);
                self.finished.retain(|j| j.id != id);
            }
            Event::Printer { printer } => {
                match self.printers.iter_mut().find(|p| p.name == printer.name) {
                    Some(known) => *known = printer,
                    None => self.printers.push(printer),
                }
            }
            Event::Progress {
                id,
                bytes_done,
                pages_done,
            } => {
                if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) {
                    job.bytes_done = bytes_done;
                    job.pages_done = pages_done;
                }
            }
            // The task lists again and sends a fresh snapshot.
            Event::Lagged { .. } => {}
        }
        self.keep_selection();
    }

    fn upsert(&mut self, job: Job) {
        if job.promoted {
            if !self.promotions.contains_key(&job.id) {
                self.promotion_count += 1;
                self.promotions.insert(job.id, self.promotion_count);
            }
        } else {
            self.promotions.remove(&job.id);
        }
        let at = self.jobs.iter().position(|j| j.id == job.id);
        if job.state.is_finished() && !self.finished.iter().any(|j| j.id == job.id) {
            // A cancel is already answered by its own request's status.
            if job.state != JobState::Cancelled {
                self.status = Some(completion(&job));
            }
            self.finished.insert(0, job.clone());
            self.finished.truncate(HISTORY);
        }
        match (at, job.state.is_finished()) {
            (Some(i), true) => {
                self.jobs.remove(i);
                self.promotions.remove(&job.id);
            }
            (Some(i), false) => self.jobs[i] = job,
            (None, true) => {}
            (None, false) => self.jobs.push(job),
        }
        self.sort();
    }

    /// The server's dispatch rule, as far as events tell it: printing jobs
    /// first, then promoted jobs (newest promotion first), then effective
    /// priority, then submission order.
    fn sort(&mut self) {
        let promotions = &self.promotions;
        self.jobs.sort_by_key(|job| {
            let printing = job.state == JobState::Printing;
            (
                !printing,
                if printing {
                    job.started_ms.unwrap_or(0)
                } else {
                    0
                },
                Reverse(promotions.get(&job.id).copied().unwrap_or(0)),
                Reverse(job.effective_priority),
                job.id,
            )
        });
    }

    /// The jobs that pass the filter, in dispatch order.
    pub fn visible_jobs(&self) -> impl Iterator<Item = &Job> + '_ {
        // Without a query every job passes, and a long queue is not
        // formatted for nothing on every frame.
        let active = self.filter.is_active();
        let shown = if self.show_finished {
            &self.finished
        } else {
            &self.jobs
        };
        shown
            .iter()
            .filter(move |job| !active || self.filter.matches(&searchable(job)))
    }

    /// The position of the selected job among the visible ones.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected_job?;
        self.visible_jobs().position(|j| j.id == id)
    }

    /// The selected job of the queue; none while the history is shown, as
    /// a finished job takes no action.
    pub fn selected(&self) -> Option<&Job> {
        let id = self.selected_job?;
        if self.show_finished {
            return None;
        }
        self.jobs.iter().find(|j| j.id == id)
    }

    pub fn selected_printer(&self) -> Option<&PrinterInfo> {
        self.printers.get(self.selected_printer)
    }

    /// Keeps a selection on a visible job: the same one if it is still
    /// there, otherwise the first.
    pub fn keep_selection(&mut self) {
        if self.selected_index().is_none() {
            let first = self.visible_jobs().next().map(|j| j.id);
            self.selected_job = first;
        }
    }

    fn move_selection(&mut self, by: isize) {
        if self.pane == Pane::Printers {
            let last = self.printers.len().saturating_sub(1) as isize;
            self.selected_printer = (self.selected_printer as isize + by).clamp(0, last) as usize;
            return;
        }
        let ids: Vec<u64> = self.visible_jobs().map(|j| j.id).collect();
        let Some(last) = ids.len().checked_sub(1) else {
            return;
        };
        let at = self.selected_index().unwrap_or(0) as isize;
        let to = (at + by).clamp(0, last as isize) as usize;
        self.selected_job = Some(ids[to]);
    }

    /// Runs one of the tab's actions.
    pub fn perform(&mut self, action: Action) -> Effect {
        match action {
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::SwitchPane => {
                self.pane = match self.pane {
                    Pane::Queue => Pane::Printers,
                    Pane::Printers => Pane::Queue,
                }
            }
            Action::Filter => self.filter.start(),
            Action::Finished => {
                self.show_finished = !self.show_finished;
                self.selected_job = None;
                self.keep_selection();
            }
            Action::Submit => {
                let priority = DEFAULT_PRIORITY.to_string();
                let printer = self.default_printer.clone().unwrap_or_default();
                self.prompt = Some(Prompt::new(
                    "Submit a local file",
                    &[("file", ""), ("priority", &priority), ("printer", &printer)],
                    PromptFor::Submit,
                ));
            }
            Action::Pause | Action::Resume => return self.printer_effect(action),
            _ => return self.job_effect(action),
        }
        Effect::None
    }

    fn printer_effect(&self, action: Action) -> Effect {
        let Some(printer) = self.selected_printer() else {
            return Effect::None;
        };
        let name = printer.name.clone();
        match action {
            Action::Pause => Effect::Send(Request::Pause(name)),
            _ => Effect::Send(Request::Resume(name)),
        }
    }

    fn job_effect(&mut self, action: Action) -> Effect {
        let Some(job) = self.selected() else {
            return Effect::None;
        };
        let (id, priority) = (job.id, job.priority);
        let request = match action {
            Action::CancelJob => {
                let question = format!("Cancel job {id} ({}) of {}?", job.name, job.owner);
                return Effect::Confirm("Cancel job".into(), question, Request::Cancel(id));
            }
            Action::Hold => Request::Hold(id),
            Action::Release => Request::Release(id),
            Action::PriorityUp => Request::SetPriority {
                id,
                priority: priority.saturating_add(PRIORITY_STEP).min(MAX_PRIORITY),
            },
            Action::PriorityDown => Request::SetPriority {
                id,
                priority: priority.saturating_sub(PRIORITY_STEP).max(MIN_PRIORITY),
            },
            Action::Promote => Request::Promote(id),
            Action::MoveJob => {
                let printer = job.printer.clone();
                self.prompt = Some(Prompt::new(
                    format!("Move job {id}"),
                    &[("printer", &printer)],
                    PromptFor::Move(id),
                ));
                return Effect::None;
            }
            _ => return Effect::None,
        };
        Effect::Send(request)
    }

    /// Turns a filled-in prompt into its request, or says what is wrong.
    pub fn finish_prompt(&mut self) -> Option<Request> {
        let prompt = self.prompt.take()?;
        match prompt.purpose {
            PromptFor::Submit => {
                let path = PathBuf::from(prompt.value(0));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.is_empty() {
                    self.fail("give the path of a local file to print");
                    return None;
                }
                let priority = match prompt.value(1).parse::<u8>() {
                    Ok(p) if (MIN_PRIORITY..=MAX_PRIORITY).contains(&p) => p,
                    _ => {
                        self.fail("the priority is a number from 1 to 100");
                        return None;
                    }
                };
                let printer = Some(prompt.value(2).trim().to_string()).filter(|p| !p.is_empty());
                Some(Request::Submit {
                    path,
                    name,
                    priority,
                    printer,
                })
            }
            PromptFor::Move(id) => {
                let printer = prompt.value(0).to_string();
                if printer.is_empty() {
                    self.fail("give a printer or class to move the job to");
                    return None;
                }
                Some(Request::Move { id, printer })
            }
        }
    }

    fn fail(&mut self, text: &str) {
        self.status = Some(Status {
            ok: false,
            text: text.into(),
        });
    }

    /// Forgets what only a live connection can keep true.
    pub fn disconnected(&mut self) {
        self.loaded = false;
    }
}

/// The notice for a job that has just finished: it left the queue, so the
/// status line says where it went.
fn completion(job: &Job) -> Status {
    let printer = job.device.as_deref().unwrap_or(&job.printer);
    let (ok, how) = match job.state {
        JobState::Completed => (true, format!("printed on {printer}")),
        JobState::Cancelled => (true, "cancelled".to_string()),
        _ => (false, format!("aborted on {printer}")),
    };
    let mut text = format!("job {} ({}) {how}", job.id, job.name);
    if let Some(error) = job.last_error.as_deref().filter(|_| !ok) {
        text.push_str(&format!(": {error}"));
    }
    Status { ok, text }
}

/// A job's priority as the dashboard and the command line both write it:
/// `50`, `30→65` once aging has raised it, with `⇡` in front when promoted.
pub fn priority_label(job: &Job) -> String {
    let mut label = job.priority.to_string();
    if job.effective_priority != job.priority && !job.state.is_finished() {
        label = format!("{label}→{}", job.effective_priority);
    }
    if job.promoted {
        label = format!("⇡{label}");
    }
    label
}

/// The text the filter looks at: name, owner, printer and state.
pub fn searchable(job: &Job) -> String {
    format!(
        "{} {} {} {} {}",
        job.id,
        job.name,
        job.owner,
        job.printer,
        job.state.as_str()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use backroom_api::print::PrinterState;

    use super::*;

    pub fn job(id: u64, name: &str, priority: u8, state: JobState) -> Job {
        Job {
            id,
            name: name.into(),
            owner: "anonymous".into(),
            printer: "lp".into(),
            device: None,
            priority,
            effective_priority: priority,
            promoted: false,
            copies: 1,
            state,
            size: 1000,
            submitted_ms: 0,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            last_error: None,
            bytes_done: 0,
            pages_done: 0,
        }
    }

    pub fn printer(name: &str, state: PrinterState) -> PrinterInfo {
        PrinterInfo {
            name: name.into(),
            device: "sim:10".into(),
            state,
            accepting: true,
            stopped: false,
            current_job: None,
            queue_len: 0,
            last_error: None,
            classes: vec![],
        }
    }

    fn loaded(jobs: Vec<Job>) -> PrintTab {
        let mut tab = PrintTab::default();
        tab.apply(Msg::Snapshot {
            total: jobs.len() as u64,
            jobs,
            printers: vec![printer("lp", PrinterState::Idle)],
            default_printer: Some("lp".into()),
        });
        tab
    }

    fn ids(tab: &PrintTab) -> Vec<u64> {
        tab.jobs.iter().map(|j| j.id).collect()
    }

    #[test]
    fn the_queue_is_in_dispatch_order() {
        let mut printing = job(4, "d", 1, JobState::Printing);
        printing.started_ms = Some(5);
        let tab = loaded(vec![
            job(1, "a", 50, JobState::Pending),
            job(2, "b", 90, JobState::Held),
            job(3, "c", 50, JobState::Pending),
            printing,
        ]);
        assert_eq!(ids(&tab), [4, 2, 1, 3]);
    }

    #[test]
    fn a_job_event_adds_moves_and_finishes_jobs() {
        let mut tab = loaded(vec![job(1, "a", 50, JobState::Pending)]);
        tab.apply(Msg::Event(Event::Job {
            job: job(2, "b", 80, JobState::Pending),
        }));
        assert_eq!(ids(&tab), [2, 1], "a higher priority goes first");
        let mut promoted = job(1, "a", 50, JobState::Pending);
        promoted.promoted = true;
        tab.apply(Msg::Event(Event::Job { job: promoted }));
        assert_eq!(ids(&tab), [1, 2], "a promotion goes to the front");
        tab.apply(Msg::Event(Event::Job {
            job: job(1, "a", 50, JobState::Completed),
        }));
        assert_eq!(ids(&tab), [2], "finished jobs leave the queue");
        tab.apply(Msg::Event(Event::Purged { id: 2 }));
        assert!(tab.jobs.is_empty());
    }

    #[test]
    fn the_newest_promotion_goes_first() {
        let mut tab = loaded(vec![
            job(1, "a", 50, JobState::Pending),
            job(2, "b", 50, JobState::Pending),
        ]);
        for id in [1, 2] {
            let mut promoted = job(id, "x", 50, JobState::Pending);
            promoted.promoted = true;
            tab.apply(Msg::Event(Event::Job { job: promoted }));
        }
        assert_eq!(ids(&tab), [2, 1]);
    }

    #[test]
    fn progress_updates_the_job_and_printer_events_the_printer() {
        let mut tab = loaded(vec![job(1, "a", 50, JobState::Printing)]);
        tab.apply(Msg::Event(Event::Progress {
            id: 1,
            bytes_done: 500,
            pages_done: 2,
        }));
        assert_eq!((tab.jobs[0].bytes_done, tab.jobs[0].pages_done), (500, 2));
        tab.apply(Msg::Event(Event::Printer {
            printer: printer("lp", PrinterState::Paused),
        }));
        assert_eq!(tab.printers[0].state, PrinterState::Paused);
    }

    #[test]
    fn the_selection_follows_its_job_as_the_queue_moves() {
        let mut tab = loaded(vec![
            job(1, "a", 50, JobState::Pending),
            job(2, "b", 40, JobState::Pending),
        ]);
        tab.perform(Action::Down);
        assert_eq!(tab.selected_job, Some(2));
        tab.apply(Msg::Event(Event::Job {
            job: job(3, "c", 90, JobState::Pending),
        }));
        assert_eq!(tab.selected_job, Some(2));
        assert_eq!(tab.selected_index(), Some(2));
    }

    #[test]
    fn job_keys_ask_for_the_selected_job() {
        let mut tab = loaded(vec![job(7, "memo", 50, JobState::Pending)]);
        assert_eq!(tab.perform(Action::Hold), Effect::Send(Request::Hold(7)));
        assert_eq!(
            tab.perform(Action::PriorityUp),
            Effect::Send(Request::SetPriority {
                id: 7,
                priority: 60
            })
        );
        assert!(matches!(
            tab.perform(Action::CancelJob),
            Effect::Confirm(_, _, Request::Cancel(7))
        ));
        assert_eq!(
            tab.perform(Action::Promote),
            Effect::Send(Request::Promote(7))
        );
    }

    #[test]
    fn priority_stays_within_its_bounds() {
        let mut tab = loaded(vec![job(1, "a", 95, JobState::Pending)]);
        assert_eq!(
            tab.perform(Action::PriorityUp),
            Effect::Send(Request::SetPriority {
                id: 1,
                priority: 100
            })
        );
        let mut tab = loaded(vec![job(1, "a", 5, JobState::Pending)]);
        assert_eq!(
            tab.perform(Action::PriorityDown),
            Effect::Send(Request::SetPriority { id: 1, priority: 1 })
        );
    }

    #[test]
    fn printer_keys_act_on_the_selected_printer() {
        let mut tab = loaded(vec![]);
        tab.perform(Action::SwitchPane);
        assert_eq!(
            tab.perform(Action::Pause),
            Effect::Send(Request::Pause("lp".into()))
        );
        assert_eq!(
            tab.perform(Action::Resume),
            Effect::Send(Request::Resume("lp".into()))
        );
    }

    #[test]
    fn job_keys_do_nothing_on_an_empty_queue() {
        let mut tab = loaded(vec![]);
        assert_eq!(tab.perform(Action::CancelJob), Effect::None);
    }

    #[test]
    fn a_submit_prompt_needs_a_file_and_a_valid_priority() {
        let mut tab = loaded(vec![]);
        tab.perform(Action::Submit);
        assert!(tab.finish_prompt().is_none());
        assert!(tab.status.as_ref().is_some_and(|s| !s.ok));
        tab.perform(Action::Submit);
        if let Some(prompt) = &mut tab.prompt {
            prompt.fields[0].value = "/tmp/report.pdf".into();
            prompt.fields[1].value = "101".into();
        }
        assert!(tab.finish_prompt().is_none(), "101 is out of range");
        tab.perform(Action::Submit);
        if let Some(prompt) = &mut tab.prompt {
            prompt.fields[0].value = "/tmp/report.pdf".into();
            prompt.fields[1].value = "70".into();
            prompt.fields[2].value = "colour".into();
        }
        assert_eq!(
            tab.finish_prompt(),
            Some(Request::Submit {
                path: "/tmp/report.pdf".into(),
                name: "report.pdf".into(),
                priority: 70,
                printer: Some("colour".into()),
            })
        );
    }

    #[test]
    fn a_finished_job_leaves_a_notice_and_joins_the_history() {
        let mut tab = loaded(vec![job(7, "memo", 50, JobState::Printing)]);
        let mut done = job(7, "memo", 50, JobState::Completed);
        done.device = Some("laser".into());
        tab.apply(Msg::Event(Event::Job { job: done.clone() }));
        assert!(tab.jobs.is_empty());
        assert_eq!(tab.finished, [done.clone()]);
        let status = tab.status.clone().expect("a notice");
        assert!(
            status.ok && status.text == "job 7 (memo) printed on laser",
            "{status:?}"
        );
        // The answer to submit arriving late does not hide the notice.
        tab.apply(Msg::Submitted(done));
        assert_eq!(tab.status, Some(status));
        tab.perform(Action::Finished);
        assert_eq!(tab.visible_jobs().map(|j| j.id).collect::<Vec<_>>(), [7]);
        assert!(tab.selected().is_none(), "a finished job takes no action");
    }

    #[test]
    fn jobs_joining_and_leaving_the_queue_are_news_for_the_overview() {
        let mut tab = loaded(vec![]);
        let new = Msg::Event(Event::Job {
            job: job(3, "memo", 50, JobState::Pending),
        });
        let (_, text) = tab.news(&new).expect("a new job is news");
        assert_eq!(text, "job 3 memo submitted by anonymous to lp");
        tab.apply(new.clone());
        assert_eq!(tab.news(&new), None, "a change to a known job is not");
        let done = Msg::Event(Event::Job {
            job: job(3, "memo", 50, JobState::Completed),
        });
        let (_, text) = tab.news(&done).expect("a printed job is news");
        assert_eq!(text, "job 3 memo printed on lp");
    }

    #[test]
    fn one_priority_label_for_the_dashboard_and_the_command_line() {
        let mut aged = job(1, "a", 30, JobState::Pending);
        aged.effective_priority = 65;
        aged.promoted = true;
        assert_eq!(priority_label(&aged), "⇡30→65");
        assert_eq!(priority_label(&job(2, "b", 50, JobState::Pending)), "50");
    }

    #[test]
    fn the_filter_narrows_the_queue_and_the_selection_stays_visible() {
        let mut tab = loaded(vec![
            job(1, "memo", 50, JobState::Pending),
            job(2, "report", 40, JobState::Pending),
        ]);
        tab.filter.start();
        for c in "report".chars() {
            tab.filter.handle_key(crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::Char(c),
                crossterm::event::KeyModifiers::NONE,
            ));
        }
        tab.keep_selection();
        let visible: Vec<u64> = tab.visible_jobs().map(|j| j.id).collect();
        assert_eq!(visible, [2]);
        assert_eq!(tab.selected_job, Some(2));
    }
}
