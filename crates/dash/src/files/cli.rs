//! `backroom files ...`: the file server from the command line, through the
//! typed client in `backroom_api::files`.
//!
//! Every command prints its result on stdout (text, or one JSON object per
//! line with `--json`) and any failure as one line on stderr, with a non-zero
//! exit code. Transfers stream through a thread that does the local file IO,
//! so memory stays bounded whatever the file size.

// A command-line front end: printing its results on stdout is its job.
#![allow(clippy::print_stdout)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use backroom_api::files::{
    Algorithm, Change, ChangeKind, Entry, FilesClient, FindArgs, Kind, ListArgs, MoveArgs, Origin,
    ReadArgs, WriteArgs, WriteMode, Written,
};
use backroom_frame::error::{Error, ErrorCode};
use bytes::{Bytes, BytesMut};
use indicatif::ProgressBar;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::mpsc;

use crate::cli;
use crate::config::Settings;
use crate::server::Server;
use crate::units;

/// How much local IO one chunk of a transfer moves: large enough that the
/// per-chunk costs vanish, small enough that a few in flight cost little.
const CHUNK: usize = 1 << 20;
/// Chunks queued between the network and the local file thread.
const QUEUE: usize = 4;

/// `backroom files [--addr ADDR] [--json] <command>`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file server, as host:port; the same as the global `--files`.
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Print each result as one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Report transfer progress on stderr even when it is not a terminal,
    /// as a line at every tenth (a terminal gets a progress bar anyway).
    #[arg(long)]
    pub progress: bool,
    #[command(subcommand)]
    pub command: FilesCommand,
}

/// What to do on the file server. Remote paths are relative to its root.
#[derive(Debug, clap::Subcommand)]
pub enum FilesCommand {
    /// List a directory (the root by default).
    Ls {
        #[arg(default_value = "")]
        path: String,
    },
    /// Describe one file or directory.
    Stat { path: String },
    /// Download REMOTE into LOCAL (`-` for stdout).
    Get {
        remote: String,
        local: PathBuf,
        /// Continue an interrupted download: keep LOCAL's bytes and fetch
        /// the rest.
        #[arg(long)]
        resume: bool,
    },
    /// Upload LOCAL to REMOTE; it appears there whole or not at all.
    Put {
        local: PathBuf,
        remote: String,
        /// Replace REMOTE if it exists.
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Continue an interrupted upload of the same file to the same place.
        #[arg(long)]
        resume: bool,
    },
    /// Remove a file, or a directory with -r.
    Rm {
        path: String,
        /// Remove a directory and everything in it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename or move FROM to TO.
    Mv {
        from: String,
        to: String,
        /// Replace TO if it is an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Copy FROM to TO on the server.
    Cp {
        from: String,
        to: String,
        /// Replace TO if it is an existing file.
        #[arg(long)]
        overwrite: bool,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        /// Create missing parents too, and accept an existing directory.
        #[arg(short, long)]
        parents: bool,
    },
    /// Print a file's digest, computed on the server.
    Sum {
        path: String,
        #[arg(long, value_enum, default_value_t = Algo::Sha256)]
        algo: Algo,
    },
    /// Search names under PATH: a substring, or a glob if PATTERN has one of
    /// `* ? [ {`.
    Find {
        pattern: String,
        #[arg(default_value = "")]
        path: String,
        /// At most this many matches.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// The disk usage of a subtree.
    Du {
        #[arg(default_value = "")]
        path: String,
    },
    /// Print changes under PATH as they happen, until Ctrl-C.
    Watch {
        #[arg(default_value = "")]
        path: String,
    },
    /// List your interrupted resumable uploads (an admin: everyone's):
    /// ID, bytes held, start time (UTC), owner and path.
    Uploads,
    /// Abort an interrupted upload by the ID `uploads` shows, freeing the
    /// bytes it holds (they count against quotas).
    Abort { id: String },
}

/// The digest `sum` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algo {
    Sha256,
    Blake3,
}

/// Runs one `backroom files` command to its end.
pub fn run(args: Args, settings: &Settings) -> ExitCode {
    cli::run(Server::Files, 2, |runtime| {
        let config = cli::endpoint(settings, Server::Files, args.addr.as_deref())?.client;
        let out = Output {
            json: args.json,
            progress: args.progress,
        };
        runtime.block_on(async move {
            let files = FilesClient::connect_with(&config)
                .await
                .map_err(|e| cli::connect_error(Server::Files, &config, &e))?;
            execute(&files, args.command, out).await
        })
    })
}

/// How results are printed.
#[derive(Debug, Clone, Copy)]
struct Output {
    json: bool,
    /// Progress lines even when stderr is not a terminal.
    progress: bool,
}

async fn execute(files: &FilesClient, command: FilesCommand, out: Output) -> anyhow::Result<()> {
    match command {
        FilesCommand::Ls { path } => ls(files, &path, out).await,
        FilesCommand::Stat { path } => {
            let entry = files
                .stat(&path)
                .await
                .map_err(|e| fail("stat", &path, e))?;
            print_stat(&path, &entry, out);
            Ok(())
        }
        FilesCommand::Get {
            remote,
            local,
            resume,
        } => get(files, &remote, &local, resume, out).await,
        FilesCommand::Put {
            local,
            remote,
            overwrite,
            resume,
        } => {
            let mode = if overwrite {
                WriteMode::Overwrite
            } else {
                WriteMode::CreateNew
            };
            put(files, &local, &remote, mode, resume, out).await
        }
        FilesCommand::Rm { path, recursive } => {
            files
                .remove(&path, recursive)
                .await
                .map_err(|e| fail("rm", &path, e))?;
            out.done("removed", &path);
            Ok(())
        }
        FilesCommand::Mv {
            from,
            to,
            overwrite,
        } => {
            let args = MoveArgs {
                from,
                to,
                overwrite,
            };
            files
                .rename(&args)
                .await
                .map_err(|e| fail("mv", &args.from, e))?;
            out.done("moved", &args.to);
            Ok(())
        }
        FilesCommand::Cp {
            from,
            to,
            overwrite,
        } => {
            let args = MoveArgs {
                from,
                to,
                overwrite,
            };
            files
                .copy(&args)
                .await
                .map_err(|e| fail("cp", &args.from, e))?;
            out.done("copied", &args.to);
            Ok(())
        }
        FilesCommand::Mkdir { path, parents } => {
            files
                .mkdir(&path, parents)
                .await
                .map_err(|e| fail("mkdir", &path, e))?;
            out.done("created", &path);
            Ok(())
        }
        FilesCommand::Sum { path, algo } => sum(files, &path, algo, out).await,
        FilesCommand::Find {
            pattern,
            path,
            limit,
        } => find(files, pattern, path, limit, out).await,
        FilesCommand::Du { path } => {
            let usage = files.du(&path).await.map_err(|e| fail("du", &path, e))?;
            if out.json {
                let usage = json!({
                    "path": path,
                    "bytes": usage.bytes,
                    "files": usage.files,
                    "dirs": usage.dirs,
                });
                println!("{usage}");
            } else {
                println!(
                    "{}\t{} bytes\t{} files\t{} dirs\t{}",
                    units::bytes(usage.bytes),
                    usage.bytes,
                    usage.files,
                    usage.dirs,
                    shown(&path)
                );
            }
            Ok(())
        }
        FilesCommand::Watch { path } => watch(files, &path, out).await,
        FilesCommand::Uploads => uploads(files, out).await,
        FilesCommand::Abort { id } => {
            files
                .abort_upload(&id)
                .await
                .map_err(|e| anyhow!("abort {id}: {}", describe(&e)))?;
            out.done("aborted", &id);
            Ok(())
        }
    }
}

async fn uploads(files: &FilesClient, out: Output) -> anyhow::Result<()> {
    let list = files
        .uploads()
        .await
        .map_err(|e| anyhow!("uploads: {}", describe(&e)))?;
    for upload in &list.uploads {
        if out.json {
            println!("{}", serde_json::to_string(upload)?);
        } else {
            println!(
                "{}  {:>12}  {}  {}  {}",
                upload.id,
                upload.received,
                units::utc_minute(upload.started_ms),
                upload.owner,
                upload.path
            );
        }
    }
    Ok(())
}

impl Output {
    /// Reports a command that has nothing to print but its success: silent
    /// in text, like the coreutils, and an object in JSON.
    fn done(self, what: &str, path: &str) {
        if self.json {
            println!("{}", json!({ what: path }));
        }
    }
}

// ------------------------------------------------------------- errors

/// One line about a failed request on `path`.
fn fail(verb: &str, path: &str, error: Error) -> anyhow::Error {
    anyhow!("{verb} {}: {}", shown(path), describe(&error))
}

/// The server's message with its stable code, which scripts can match on.
fn describe(error: &Error) -> String {
    format!("{} ({})", error.message, error.code)
}

/// A remote path as people read it: the root is `/`.
fn shown(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

// ----------------------------------------------------------------- ls

async fn ls(files: &FilesClient, path: &str, out: Output) -> anyhow::Result<()> {
    let mut args = ListArgs {
        path: path.to_owned(),
        ..ListArgs::default()
    };
    let mut first = true;
    loop {
        let page = match files.list(&args).await {
            Ok(page) => page,
            // `ls FILE` describes the file, as ls does.
            Err(e) if first && e.code != ErrorCode::Unavailable => match files.stat(path).await {
                Ok(entry) if entry.kind != Kind::Dir => {
                    print_entry(&entry, out);
                    return Ok(());
                }
                _ => return Err(fail("ls", path, e)),
            },
            Err(e) => return Err(fail("ls", path, e)),
        };
        first = false;
        for entry in &page.entries {
            print_entry(entry, out);
        }
        match page.next {
            Some(next) => args.after = Some(next),
            None => return Ok(()),
        }
    }
}

fn print_entry(entry: &Entry, out: Output) {
    if out.json {
        println!("{}", entry_json(entry));
        return;
    }
    let slash = if entry.kind == Kind::Dir { "/" } else { "" };
    println!(
        "{} {:>12} {}  {}{slash}",
        mode_string(entry.kind, entry.mode),
        entry.size,
        units::utc_minute(entry.modified_ms),
        entry.name
    );
}

fn print_stat(path: &str, entry: &Entry, out: Output) {
    if out.json {
        println!("{}", entry_json(entry));
        return;
    }
    println!("path:     {}", shown(path));
    println!("kind:     {}", kind_name(entry.kind));
    println!("size:     {} ({})", entry.size, units::bytes(entry.size));
    println!(
        "mode:     {:04o} ({})",
        entry.mode & 0o7777,
        mode_string(entry.kind, entry.mode)
    );
    println!("modified: {} UTC", units::utc_minute(entry.modified_ms));
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    json!({
        "name": entry.name,
        "kind": kind_name(entry.kind),
        "size": entry.size,
        "modified_ms": entry.modified_ms,
        "mode": entry.mode,
    })
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Other => "other",
    }
}

/// `drwxr-xr-x`, as ls prints it.
fn mode_string(kind: Kind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        Kind::File => '-',
        Kind::Dir => 'd',
        Kind::Symlink => 'l',
        Kind::Other => '?',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

// ---------------------------------------------------------------- get

async fn get(
    files: &FilesClient,
    remote: &str,
    local: &Path,
    resume: bool,
    out: Output,
) -> anyhow::Result<()> {
    let to_stdout = local == Path::new("-");
    if to_stdout && resume {
        bail!("get {remote}: --resume needs a local file, not stdout");
    }
    let local = if !to_stdout && local.is_dir() {
        local.join(remote_name(remote)?)
    } else {
        local.to_path_buf()
    };
    // A resumed download needs its offset before it asks. A fresh one
    // opens (and truncates) LOCAL only once the server has agreed to send,
    // so a failed get never destroys an existing file.
    let (mut file, offset) = if resume {
        let (file, offset) = open_download(&local, true)?;
        (Some(file), offset)
    } else {
        (None, 0)
    };
    let args = ReadArgs {
        path: remote.to_owned(),
        offset,
        length: None,
    };
    let (head, mut stream) = files.read(&args).await.map_err(|e| {
        if offset > 0 && e.code == ErrorCode::BadRequest {
            anyhow!(
                "get {remote}: {} already holds {offset} bytes, more than {remote} has; it is not a partial download of it",
                local.display()
            )
        } else {
            fail("get", remote, e)
        }
    })?;
    if !to_stdout && file.is_none() {
        file = Some(open_download(&local, false)?.0);
    }
    let progress = Progress::new(format!("get {remote}"), head.size, offset, out);
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
    let writer = match file {
        Some(file) => spawn_writer(file, rx),
        None => spawn_writer(std::io::stdout(), rx),
    };
    let mut received = 0u64;
    let streamed = async {
        while let Some(chunk) = stream.chunk().await? {
            received += chunk.len() as u64;
            progress.advance(chunk.len());
            if tx.send(chunk).await.is_err() {
                // The writer stopped on an error, which its join reports.
                break;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    drop(tx);
    let written = writer
        .join()
        .map_err(|_| anyhow!("get {remote}: the writer thread panicked"))?;
    progress.finish();
    streamed.map_err(|e| fail("get", remote, e))?;
    written.with_context(|| format!("get {remote}: cannot write {}", local.display()))?;
    if received != head.length {
        bail!(
            "get {remote}: the download ended after {received} of {} bytes; run again with --resume",
            head.length
        );
    }
    if !to_stdout {
        report_transfer(out, "got", remote, &local, offset + received, offset);
    }
    Ok(())
}

/// The last component of a remote path, to name a download into a folder.
fn remote_name(remote: &str) -> anyhow::Result<&str> {
    remote
        .rsplit('/')
        .find(|part| !part.is_empty())
        .ok_or_else(|| anyhow!("get {}: not a file name", shown(remote)))
}

/// Opens the download's target: truncated, or with `resume` kept and
/// appended to.
fn open_download(local: &Path, resume: bool) -> anyhow::Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    if !resume {
        options.truncate(true);
    }
    let mut file = options
        .open(local)
        .with_context(|| format!("cannot open {} for writing", local.display()))?;
    let offset = if resume {
        file.seek(SeekFrom::End(0))
            .with_context(|| format!("cannot seek in {}", local.display()))?
    } else {
        0
    };
    Ok((file, offset))
}

/// Writes what arrives on `rx` on a thread of its own, so the async side
/// never blocks on the disk. It stops at the first error.
fn spawn_writer<W: Write + Send + 'static>(
    mut sink: W,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        while let Some(chunk) = rx.blocking_recv() {
            sink.write_all(&chunk)?;
        }
        sink.flush()
    })
}

// ---------------------------------------------------------------- put

async fn put(
    files: &FilesClient,
    local: &Path,
    remote: &str,
    mode: WriteMode,
    resume: bool,
    out: Output,
) -> anyhow::Result<()> {
    let mut file = File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", local.display()))?;
    if !meta.is_file() {
        bail!("put {}: not a regular file", local.display());
    }
    let size = meta.len();
    let upload_id = upload_id(remote, &meta);
    let mut args = WriteArgs {
        path: remote.to_owned(),
        mode,
        upload_id: Some(upload_id.clone()),
        offset: 0,
        size: Some(size),
    };
    if resume {
        args.offset = resumable_offset(files, local, remote, &upload_id, size).await?;
        if args.offset > 0 {
            args.mode = WriteMode::Resume;
        }
    }
    file.seek(SeekFrom::Start(args.offset))
        .with_context(|| format!("cannot seek in {}", local.display()))?;
    let progress = Progress::new(format!("put {remote}"), size, args.offset, out);
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let reader = spawn_reader(file, tx);
    let sent = async {
        let mut upload = files.write(&args).await?;
        while let Some(chunk) = rx.recv().await {
            let len = chunk.len();
            upload.send(chunk).await?;
            progress.advance(len);
        }
        upload.finish::<Written>().await
    }
    .await;
    // Closing the channel stops the reader if the upload failed early.
    drop(rx);
    let read = reader
        .join()
        .map_err(|_| anyhow!("put {remote}: the reader thread panicked"))?;
    progress.finish();
    read.with_context(|| format!("put {remote}: cannot read {}", local.display()))?;
    let written = sent.map_err(|e| {
        if e.code == ErrorCode::Conflict && mode == WriteMode::CreateNew && !resume {
            anyhow!(
                "put {remote}: {} ({}; pass --overwrite to replace it)",
                e.message,
                e.code
            )
        } else {
            fail("put", remote, e)
        }
    })?;
    report_transfer(out, "put", &written.path, local, written.size, args.offset);
    Ok(())
}

/// Where `put --resume` may continue: the bytes the server holds of the
/// interrupted upload, if they are provably LOCAL's first bytes (the
/// server's digest of them equals LOCAL's digest of as many bytes); else 0,
/// a fresh upload, and a note on stderr that says why.
async fn resumable_offset(
    files: &FilesClient,
    local: &Path,
    remote: &str,
    upload_id: &str,
    size: u64,
) -> anyhow::Result<u64> {
    let algorithm = Algorithm::Blake3;
    let status = match files
        .upload_status(remote, upload_id, Some(algorithm))
        .await
    {
        Ok(status) => status,
        Err(e) if e.code == ErrorCode::NotFound => {
            eprintln!(
                "put {remote}: no interrupted upload of this file to resume; starting afresh"
            );
            return Ok(0);
        }
        Err(e) => return Err(fail("put", remote, e)),
    };
    if status.received > size {
        eprintln!(
            "put {remote}: the interrupted upload holds more than {} has; starting afresh",
            local.display()
        );
        return Ok(0);
    }
    let path = local.to_owned();
    let received = status.received;
    let (ours, read) = tokio::task::spawn_blocking(move || {
        backroom_api::files::digest(&mut File::open(path)?, algorithm, received)
    })
    .await
    .map_err(|e| anyhow!("put {remote}: the digest task failed: {e}"))?
    .with_context(|| format!("put {remote}: cannot read {}", local.display()))?;
    if read != received || status.digest.as_deref() != Some(ours.as_str()) {
        eprintln!(
            "put {remote}: the {received} bytes on the server are not the first bytes of {}; \
             starting afresh",
            local.display()
        );
        return Ok(0);
    }
    Ok(received)
}

/// Reads the file in chunks on a thread of its own and queues them, so the
/// async side never blocks on the disk.
fn spawn_reader(
    mut file: File,
    tx: mpsc::Sender<Bytes>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    std::thread::spawn(move || {
        loop {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.truncate(n);
            if tx.blocking_send(buf.freeze()).is_err() {
                // The upload stopped; its error is the one to report.
                return Ok(());
            }
        }
    })
}

/// The upload id of LOCAL going to REMOTE: the same for the same file (by
/// size and modification time) and target, so `put --resume` finds the
/// interrupted upload, and a different one once the file has changed.
pub fn upload_id(remote: &str, meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let key = format!("{remote}\0{}\0{modified}", meta.len());
    // Two FNV-1a passes with different offsets: 128 bits, stable across
    // builds (std's hasher promises no such thing).
    let fnv = |basis: u64| {
        key.bytes().fold(basis, |hash, b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "cli-{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

fn report_transfer(out: Output, verb: &str, remote: &str, local: &Path, size: u64, resumed: u64) {
    if out.json {
        let report = json!({
            verb: remote,
            "local": local.display().to_string(),
            "size": size,
            "resumed_at": resumed,
        });
        println!("{report}");
    } else if resumed > 0 {
        println!("{verb} {remote}: {size} bytes (resumed at {resumed})");
    } else {
        println!("{verb} {remote}: {size} bytes");
    }
}

/// Transfer progress on stderr: a bar on a terminal, a line at every tenth
/// with `--progress` elsewhere, and nothing otherwise.
enum Progress {
    Hidden,
    Bar(ProgressBar),
    Lines(Mutex<ProgressLines>),
}

/// Where a transfer reported in lines has got to.
struct ProgressLines {
    label: String,
    total: u64,
    done: u64,
    /// Bytes done before this run (a resumed transfer), left out of the rate.
    resumed: u64,
    /// The next tenth to report, 1 to 10.
    next_tenth: u64,
    started: Instant,
}

impl Progress {
    fn new(label: String, total: u64, done: u64, out: Output) -> Progress {
        if let Some(bar) = cli::progress_bar(total) {
            bar.set_position(done);
            return Progress::Bar(bar);
        }
        if !out.progress || total == 0 {
            return Progress::Hidden;
        }
        Progress::Lines(Mutex::new(ProgressLines {
            label,
            total,
            done,
            resumed: done,
            next_tenth: done * 10 / total + 1,
            started: Instant::now(),
        }))
    }

    fn advance(&self, bytes: usize) {
        match self {
            Progress::Hidden => {}
            Progress::Bar(bar) => bar.inc(bytes as u64),
            Progress::Lines(lines) => {
                let mut lines = lines.lock();
                lines.advance(bytes as u64);
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl ProgressLines {
    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.next_tenth > 10 || self.done * 10 < self.next_tenth * self.total {
            return;
        }
        self.next_tenth = self.done * 10 / self.total + 1;
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = ((self.done - self.resumed) as f64 / seconds) as u64;
        eprintln!(
            "{}: {:>3}% {} of {}, {}/s",
            self.label,
            self.done * 100 / self.total,
            units::bytes(self.done),
            units::bytes(self.total),
            units::bytes(rate)
        );
    }
}

// --------------------------------------------------------- sum, find

async fn sum(files: &FilesClient, path: &str, algo: Algo, out: Output) -> anyhow::Result<()> {
    let algorithm = match algo {
        Algo::Sha256 => Algorithm::Sha256,
        Algo::Blake3 => Algorithm::Blake3,
    };
    let digest = files
        .checksum(path, algorithm)
        .await
        .map_err(|e| fail("sum", path, e))?;
    if out.json {
        let name = match algo {
            Algo::Sha256 => "sha256",
            Algo::Blake3 => "blake3",
        };
        let digest = json!({
            "path": path,
            "algorithm": name,
            "hex": digest.hex,
            "size": digest.size,
        });
        println!("{digest}");
    } else {
        println!("{}", digest.hex);
    }
    Ok(())
}

async fn find(
    files: &FilesClient,
    pattern: String,
    path: String,
    limit: u32,
    out: Output,
) -> anyhow::Result<()> {
    let glob = pattern.contains(['*', '?', '[', '{']);
    let args = FindArgs {
        path,
        pattern,
        glob,
        limit,
    };
    let found = files
        .find(&args)
        .await
        .map_err(|e| fail("find", &args.path, e))?;
    for m in &found.matches {
        if out.json {
            let found = json!({ "path": m.path, "kind": kind_name(m.kind), "size": m.size });
            println!("{found}");
        } else {
            let slash = if m.kind == Kind::Dir { "/" } else { "" };
            println!("{}{slash}", m.path);
        }
    }
    if found.truncated {
        eprintln!(
            "backroom files: find: stopped at {} matches; narrow the pattern or raise --limit",
            found.matches.len()
        );
    }
    // Like grep: nothing found is a failure a script can test for.
    if found.matches.is_empty() {
        bail!(
            "find: nothing under {} matches {:?}",
            shown(&args.path),
            args.pattern
        );
    }
    Ok(())
}

// -------------------------------------------------------------- watch

async fn watch(files: &FilesClient, path: &str, out: Output) -> anyhow::Result<()> {
    let (watching, mut changes) = files
        .watch(path)
        .await
        .map_err(|e| fail("watch", path, e))?;
    // The line on stderr says the subscription is live: scripts and tests
    // wait for it before they change anything.
    if watching.disk {
        eprintln!("watching {} (Ctrl-C to stop)", shown(&watching.path));
    } else {
        eprintln!(
            "watching {} (Ctrl-C to stop); the server cannot see changes by other programs, only its own",
            shown(&watching.path)
        );
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            change = changes.next() => match change {
                Some(Ok(change)) => print_change(&change, out),
                Some(Err(e)) => return Err(fail("watch", path, e)),
                None => bail!("watch {}: the server ended the watch", shown(path)),
            },
        }
    }
}

fn print_change(change: &Change, out: Output) {
    let kind = match change.kind {
        ChangeKind::Created => "created",
        ChangeKind::Modified => "modified",
        ChangeKind::Removed => "removed",
        ChangeKind::Renamed => "renamed",
        ChangeKind::Overflow => "overflow",
    };
    let origin = match change.origin {
        Origin::Server => "server",
        Origin::Disk => "disk",
    };
    if out.json {
        let change = json!({
            "kind": kind,
            "path": change.path,
            "to": change.to,
            "origin": origin,
        });
        println!("{change}");
        return;
    }
    match &change.to {
        Some(to) => println!("{kind:<9}{origin:<8}{} -> {to}", change.path),
        None => println!("{kind:<9}{origin:<8}{}", change.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(Kind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(Kind::File, 0o640), "-rw-r-----");
    }

    #[test]
    fn upload_ids_are_valid_and_depend_on_the_target() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").expect("write");
        let meta = std::fs::metadata(&path).expect("meta");
        let a = upload_id("a/f", &meta);
        assert_eq!(a, upload_id("a/f", &meta));
        assert_ne!(a, upload_id("b/f", &meta));
        assert!(a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }
}
