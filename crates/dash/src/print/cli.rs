//! `backroom print ...`: the print queue from the command line, over the
//! typed client of `backroom-api`.
//!
//! Every command connects to the print server the dashboard's config
//! resolves (address, token, TLS), does one thing and prints its result for
//! people, or as JSON with `--json`. A failure becomes one line on stderr and
//! a non-zero exit.

// A command-line tool: printing to standard output is its job.
#![allow(clippy::print_stdout)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use backroom_api::print::{
    Event, HistoryArgs, Job, JobList, JobState, ListArgs, MAX_PRIORITY, MIN_PRIORITY, PrintClient,
    PrinterInfo, PrinterState, Printers, SubmitArgs,
};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::cli;
use crate::config::Settings;
use crate::print::tab::priority_label;
use crate::server::Server;
use crate::units;

/// The print queue: submit, list and manage jobs and printers.
#[derive(Debug, Parser)]
pub struct Args {
    /// The print server, as host:port; beats `--print` and the config file.
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Print results as JSON (one object per line for `watch`).
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub command: PrintCommand,
}

/// The priorities the server takes, checked before connecting.
fn priority_range() -> clap::builder::RangedI64ValueParser<u8> {
    clap::value_parser!(u8).range(i64::from(MIN_PRIORITY)..=i64::from(MAX_PRIORITY))
}

#[derive(Debug, Subcommand)]
pub enum PrintCommand {
    /// Queue a document; prints the job id once it is durably spooled.
    Submit {
        /// The document to print.
        file: PathBuf,
        /// 1 (lowest) to 100 (highest); the server's default is 50.
        #[arg(long, value_name = "N", value_parser = priority_range())]
        priority: Option<u8>,
        /// A printer or class; the server's default printer otherwise.
        #[arg(long, value_name = "P")]
        printer: Option<String>,
        /// Queue the job held, until `release`.
        #[arg(long)]
        hold: bool,
        #[arg(long, value_name = "N", default_value_t = 1)]
        copies: u32,
        /// The job's name; the file's name by default.
        #[arg(long, value_name = "S")]
        name: Option<String>,
        /// Check the job without queueing it.
        #[arg(long)]
        validate: bool,
    },
    /// The queue in dispatch order: printing jobs, then waiting ones.
    #[command(visible_alias = "queue", visible_alias = "list")]
    Jobs {
        /// Finished jobs too, newest first after the queue.
        #[arg(long)]
        all: bool,
        /// Only the jobs that printed, the last to finish first: the
        /// server's history.
        #[arg(long, conflicts_with_all = ["all", "state"])]
        completed: bool,
        /// Only jobs in this state (pending, held, printing, completed,
        /// cancelled, aborted).
        #[arg(long)]
        state: Option<JobState>,
        #[arg(long)]
        owner: Option<String>,
        /// Only jobs sent to or printed on this printer or class.
        #[arg(long)]
        printer: Option<String>,
        /// At most this many jobs; the server's default is 100.
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// One job in full.
    Info { id: u64 },
    /// Cancel a pending, held or printing job.
    Cancel { id: u64 },
    /// Hold a job, or with --printer every pending job of a printer or class.
    Hold {
        #[arg(required_unless_present = "printer", conflicts_with = "printer")]
        id: Option<u64>,
        #[arg(long, value_name = "P")]
        printer: Option<String>,
    },
    /// Release a held job, or with --printer every held job of a printer or
    /// class.
    Release {
        #[arg(required_unless_present = "printer", conflicts_with = "printer")]
        id: Option<u64>,
        #[arg(long, value_name = "P")]
        printer: Option<String>,
    },
    /// Set a job's priority (1 to 100); the queue reorders at once.
    Priority {
        id: u64,
        #[arg(value_parser = priority_range())]
        priority: u8,
    },
    /// Move a job to the front of its queue.
    Promote { id: u64 },
    /// Send a waiting job to another printer or class.
    Move { id: u64, printer: String },
    /// Print a completed, cancelled or aborted job again.
    Restart { id: u64 },
    /// The printers and classes, with state, current job and queue length.
    Printers,
    /// Stop a printer from starting jobs (the current one finishes).
    Pause { printer: String },
    /// Let a paused or stopped printer print again.
    Resume { printer: String },
    /// Let a printer take new jobs again.
    Accept { printer: String },
    /// Refuse new jobs for a printer; its queue still prints.
    Reject { printer: String },
    /// Remove finished jobs, with their documents, older than an age.
    Purge {
        /// Age in seconds.
        #[arg(long, value_name = "SECS")]
        older_than: u64,
    },
    /// Follow queue, printer and progress events until Ctrl-C.
    Watch {
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

/// Runs one `backroom print` command to its end.
pub fn run(args: Args, settings: &Settings) -> ExitCode {
    cli::run(Server::Print, 1, |runtime| {
        runtime.block_on(execute(args, settings))
    })
}

async fn execute(args: Args, settings: &Settings) -> anyhow::Result<()> {
    let config = cli::endpoint(settings, Server::Print, args.addr.as_deref())?.client;
    // A missing document is the user's mistake, not the server's: say so
    // before connecting.
    let document = match &args.command {
        PrintCommand::Submit {
            file,
            validate: false,
            ..
        } => Some(open_document(file)?),
        _ => None,
    };
    let client = PrintClient::connect_with(&config)
        .await
        .map_err(|e| cli::connect_error(Server::Print, &config, &e))?;
    let out = Output { json: args.json };
    match args.command {
        PrintCommand::Submit {
            file,
            priority,
            printer,
            hold,
            copies,
            name,
            ..
        } => {
            let name = name.unwrap_or_else(|| default_name(&file));
            let mut submit = SubmitArgs::new(name);
            submit.priority = priority;
            submit.printer = printer;
            submit.hold = hold;
            submit.copies = copies;
            match document {
                Some(document) => submit_document(&client, submit, document, &file, out).await,
                None => {
                    let checked = client.validate(&submit).await.context("invalid job")?;
                    out.value(&checked, || {
                        format!(
                            "ok: would print on {} at priority {}",
                            checked.printer, checked.priority
                        )
                    })
                }
            }
        }
        PrintCommand::Jobs {
            all,
            completed,
            state,
            owner,
            printer,
            limit,
        } => {
            let jobs = if completed {
                let history = HistoryArgs {
                    state: Some(JobState::Completed),
                    owner,
                    printer,
                    limit,
                };
                client.history(&history).await
            } else {
                let list = ListArgs {
                    state,
                    all,
                    owner,
                    printer,
                    limit,
                };
                client.list(&list).await
            };
            let jobs = jobs.context("cannot list jobs")?;
            out.value(&jobs, || jobs_table(&jobs))
        }
        PrintCommand::Info { id } => {
            let job = client.job(id).await.with_context(|| format!("job {id}"))?;
            out.value(&job, || job_details(&job))
        }
        PrintCommand::Cancel { id } => job_done(out, "cancel", id, client.cancel(id).await),
        PrintCommand::Hold { id: Some(id), .. } => job_done(out, "hold", id, client.hold(id).await),
        PrintCommand::Release { id: Some(id), .. } => {
            job_done(out, "release", id, client.release(id).await)
        }
        PrintCommand::Hold {
            id: None,
            printer: Some(printer),
        } => {
            let count = client
                .hold_all(&printer)
                .await
                .with_context(|| format!("cannot hold the jobs of {printer}"))?;
            out.value(&count, || format!("held {} jobs on {printer}", count.count))
        }
        PrintCommand::Release {
            id: None,
            printer: Some(printer),
        } => {
            let count = client
                .release_all(&printer)
                .await
                .with_context(|| format!("cannot release the jobs of {printer}"))?;
            out.value(&count, || {
                format!("released {} jobs on {printer}", count.count)
            })
        }
        PrintCommand::Hold { .. } | PrintCommand::Release { .. } => {
            Err(anyhow!("give a job id or --printer"))
        }
        PrintCommand::Priority { id, priority } => job_done(
            out,
            "set the priority of",
            id,
            client.set_priority(id, priority).await,
        ),
        PrintCommand::Promote { id } => job_done(out, "promote", id, client.promote(id).await),
        PrintCommand::Move { id, printer } => {
            job_done(out, "move", id, client.move_job(id, &printer).await)
        }
        PrintCommand::Restart { id } => job_done(out, "restart", id, client.restart(id).await),
        PrintCommand::Printers => {
            let printers = client.printers().await.context("cannot list printers")?;
            out.value(&printers, || printers_table(&printers))
        }
        PrintCommand::Pause { printer } => {
            printer_done(out, "pause", &printer, client.pause(&printer).await)
        }
        PrintCommand::Resume { printer } => {
            printer_done(out, "resume", &printer, client.resume(&printer).await)
        }
        PrintCommand::Accept { printer } => printer_done(
            out,
            "accept jobs on",
            &printer,
            client.accept(&printer).await,
        ),
        PrintCommand::Reject { printer } => printer_done(
            out,
            "reject jobs on",
            &printer,
            client.reject(&printer).await,
        ),
        PrintCommand::Purge { older_than } => {
            let count = client
                .purge(older_than)
                .await
                .context("cannot purge history")?;
            out.value(&count, || format!("purged {} finished jobs", count.count))
        }
        PrintCommand::Watch { count } => watch(&client, &config.addr, out, count).await,
    }
}

/// A document opened for streaming, with its size.
struct Document {
    file: std::fs::File,
    size: u64,
}

fn open_document(path: &Path) -> anyhow::Result<Document> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        return Err(anyhow!("{} is a folder, not a document", path.display()));
    }
    Ok(Document {
        file,
        size: meta.len(),
    })
}

fn default_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".to_owned())
}

/// How much of the document goes in one message.
const CHUNK: usize = 256 * 1024;

/// Streams the document to the server, never holding it whole, with a
/// progress bar when someone is watching stderr.
async fn submit_document(
    client: &PrintClient,
    mut args: SubmitArgs,
    mut document: Document,
    path: &Path,
    out: Output,
) -> anyhow::Result<()> {
    // The size lets the server refuse a document that cannot fit before a
    // byte is sent.
    args.size = Some(document.size);
    let refused = || "the print server refused the job";
    let mut upload = client.submit_stream(&args).await.context(refused())?;
    let bar = cli::progress_bar(document.size);
    let mut buf = vec![0u8; CHUNK];
    loop {
        // A blocking read: the runtime serves this one upload only, and a
        // local read of one chunk is short next to sending it.
        let n = document
            .file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        if let Err(e) = upload.send(Bytes::copy_from_slice(&buf[..n])).await {
            // The server may have said why it stopped the upload.
            let why = upload.finish::<Job>().await.err().unwrap_or(e);
            return Err(anyhow!(why)).context(refused());
        }
        if let Some(bar) = &bar {
            bar.inc(n as u64);
        }
    }
    let job: Job = upload.finish().await.context(refused())?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    out.value(&job, || job.id.to_string())
}

/// The answer to an operation on one job: its new state, or one line saying
/// why not.
fn job_done(
    out: Output,
    verb: &str,
    id: u64,
    answer: Result<Job, backroom_frame::error::Error>,
) -> anyhow::Result<()> {
    let job = answer.with_context(|| format!("cannot {verb} job {id}"))?;
    out.value(&job, || {
        format!(
            "job {} {} priority {} on {}",
            job.id,
            job.state.as_str(),
            job.priority,
            job.printer
        )
    })
}

fn printer_done(
    out: Output,
    verb: &str,
    name: &str,
    answer: Result<PrinterInfo, backroom_frame::error::Error>,
) -> anyhow::Result<()> {
    let printer = answer.with_context(|| format!("cannot {verb} printer {name}"))?;
    out.value(&printer, || {
        format!(
            "printer {} {}{}",
            printer.name,
            printer_state(printer.state),
            if printer.accepting {
                ""
            } else {
                ", rejecting jobs"
            }
        )
    })
}

/// Follows the server's events; Ctrl-C ends it quietly.
async fn watch(
    client: &PrintClient,
    addr: &str,
    out: Output,
    count: Option<u64>,
) -> anyhow::Result<()> {
    let (_, mut events) = client.watch().await.context("cannot watch the queue")?;
    // Said once subscribed, so a script that waits for this line knows no
    // later event will be missed.
    eprintln!("watching the print queue at {addr}; Ctrl-C to stop");
    let mut seen = 0;
    let mut stdout = std::io::stdout();
    while count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event = match event {
            Some(event) => event.context("the watch failed")?,
            None => return Err(anyhow!("the print server ended the watch")),
        };
        let line = if out.json {
            serde_json::to_string(&event)?
        } else {
            event_line(&event)
        };
        // A closed pipe (`| head`) ends the watch without fuss.
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
        seen += 1;
    }
    Ok(())
}

/// How results are printed: for people, or as JSON.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    fn value<T: Serialize>(self, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
        let text = if self.json {
            serde_json::to_string(value)?
        } else {
            human()
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").context("cannot write the output")
    }
}

fn printer_state(state: PrinterState) -> &'static str {
    match state {
        PrinterState::Idle => "idle",
        PrinterState::Printing => "printing",
        PrinterState::Paused => "paused",
        PrinterState::Error => "error",
    }
}

/// The priority as `set` or, when aging lifted it, `set→effective`; a `^`
/// marks a promoted job.
fn jobs_table(list: &JobList) -> String {
    let mut lines = vec![format!(
        "{:>8}  {:<10} {:>7}  {:<12} {:<12} {:>9}  NAME",
        "ID", "STATE", "PRI", "PRINTER", "OWNER", "SIZE"
    )];
    for job in &list.jobs {
        lines.push(format!(
            "{:>8}  {:<10} {:>7}  {:<12} {:<12} {:>9}  {}",
            job.id,
            job.state.as_str(),
            priority_label(job),
            job.device.as_deref().unwrap_or(&job.printer),
            job.owner,
            units::bytes(job.size),
            job.name
        ));
    }
    let shown = list.jobs.len() as u64;
    if shown < list.total {
        lines.push(format!("({shown} of {} jobs shown)", list.total));
    } else if shown == 0 {
        lines.push("(no jobs)".to_owned());
    }
    lines.join("\n")
}

fn job_details(job: &Job) -> String {
    let mut lines = vec![
        format!("id          {}", job.id),
        format!("name        {}", job.name),
        format!("owner       {}", job.owner),
        format!("state       {}", job.state.as_str()),
        format!(
            "priority    {} (effective {}){}",
            job.priority,
            job.effective_priority,
            if job.promoted { ", promoted" } else { "" }
        ),
        format!("printer     {}", job.printer),
    ];
    if let Some(device) = &job.device {
        lines.push(format!("device      {device}"));
    }
    lines.push(format!("copies      {}", job.copies));
    lines.push(format!(
        "size        {} ({} bytes)",
        units::bytes(job.size),
        job.size
    ));
    lines.push(format!(
        "submitted   {}",
        units::utc_second(job.submitted_ms)
    ));
    if let Some(ms) = job.started_ms {
        lines.push(format!("started     {}", units::utc_second(ms)));
    }
    if let Some(ms) = job.finished_ms {
        lines.push(format!("finished    {}", units::utc_second(ms)));
    }
    lines.push(format!("attempts    {}", job.attempts));
    lines.push(format!(
        "progress    {} bytes, {} pages",
        job.bytes_done, job.pages_done
    ));
    if let Some(error) = &job.last_error {
        lines.push(format!("last error  {error}"));
    }
    lines.join("\n")
}

fn printers_table(printers: &Printers) -> String {
    let mut lines = vec![format!(
        "{:<14} {:<9} {:<9} {:>6} {:>8}  DEVICE",
        "PRINTER", "STATE", "ACCEPTS", "QUEUE", "JOB"
    )];
    for p in &printers.printers {
        let default = printers.default_printer.as_deref() == Some(p.name.as_str());
        let state = if p.stopped {
            "stopped"
        } else {
            printer_state(p.state)
        };
        lines.push(format!(
            "{:<14} {:<9} {:<9} {:>6} {:>8}  {}{}",
            format!("{}{}", p.name, if default { "*" } else { "" }),
            state,
            if p.accepting { "yes" } else { "no" },
            p.queue_len,
            p.current_job
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            p.device,
            p.last_error
                .as_deref()
                .map_or_else(String::new, |e| format!("  ({e})"))
        ));
    }
    for class in &printers.classes {
        lines.push(format!(
            "class {}: {}",
            class.name,
            class.members.join(", ")
        ));
    }
    lines.join("\n")
}

fn event_line(event: &Event) -> String {
    match event {
        Event::Job { job } => format!(
            "job {} {} priority {} on {} ({})",
            job.id,
            job.state.as_str(),
            priority_label(job),
            job.device.as_deref().unwrap_or(&job.printer),
            job.name
        ),
        Event::Purged { id } => format!("job {id} purged"),
        Event::Printer { printer } => format!(
            "printer {} {}{}",
            printer.name,
            printer_state(printer.state),
            printer
                .current_job
                .map_or_else(String::new, |id| format!(" job {id}"))
        ),
        Event::Progress {
            id,
            bytes_done,
            pages_done,
        } => format!("job {id} progress {bytes_done} bytes, {pages_done} pages"),
        Event::Lagged { missed } => {
            format!("(missed {missed} events: run `backroom print jobs` to catch up)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
