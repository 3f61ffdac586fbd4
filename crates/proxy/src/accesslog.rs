//! The access log: one line per request or tunnel, in squid, common,
//! combined or JSON format, written to a file or stdout by a dedicated
//! thread, and fed live to admin subscribers.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use backroom_api::proxy::AccessRecord;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::broadcast;

/// Records that may wait for a slow live subscriber before it lags.
const FEED_CAPACITY: usize = 1024;
/// The latest records kept for `backroom proxy log`, which shows them
/// before following the feed, as `tail` does.
pub const RECENT_CAPACITY: usize = 100;
/// Lines that may wait for a slow disk before new ones are dropped (and
/// counted), so a stuck disk cannot eat the proxy's memory.
const WRITE_BACKLOG: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Squid's native format, which log analysers for Squid read.
    #[default]
    Squid,
    /// The Common Log Format.
    Common,
    /// The Common Log Format with referer and user agent.
    Combined,
    /// One JSON object per line, with every field.
    Json,
}

/// Where the lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogTarget {
    #[default]
    Off,
    Stdout,
    File(PathBuf),
}

impl LogTarget {
    /// `off`, `stdout`, or a file path.
    pub fn parse(s: &str) -> LogTarget {
        match s {
            "" | "off" | "none" => LogTarget::Off,
            "stdout" | "-" => LogTarget::Stdout,
            path => LogTarget::File(PathBuf::from(path)),
        }
    }
}

enum Command {
    Line(String),
    Reopen,
}

/// The log's handle: cheap to share, never blocks the caller.
pub struct AccessLog {
    format: LogFormat,
    writer: Option<mpsc::SyncSender<Command>>,
    dropped: AtomicU64,
    /// Shared, not copied: each record is built once per request and only
    /// read after that, by the ring, the feed and its subscribers.
    feed: broadcast::Sender<Arc<AccessRecord>>,
    /// The latest records. Sends to `feed` happen under this lock too, so a
    /// subscriber gets the recent records and then the feed with no gap and
    /// no repeat. A std mutex: it is held for a push and a send, never
    /// across an await.
    recent: Mutex<VecDeque<Arc<AccessRecord>>>,
}

impl AccessLog {
    /// Opens the target (failing now if it cannot be opened) and starts the
    /// writer thread.
    pub fn start(target: &LogTarget, format: LogFormat) -> io::Result<AccessLog> {
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let writer = match target {
            LogTarget::Off => None,
            LogTarget::Stdout => Some(spawn_writer(Sink::Stdout(io::stdout()), None)?),
            LogTarget::File(path) => {
                let file = open(path)?;
                Some(spawn_writer(
                    Sink::File(BufWriter::new(file)),
                    Some(path.clone()),
                )?)
            }
        };
        Ok(AccessLog {
            format,
            writer,
            dropped: AtomicU64::new(0),
            feed,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CAPACITY)),
        })
    }

    /// Writes one record and shows it to live subscribers.
    pub fn emit(&self, record: AccessRecord) {
        if let Some(writer) = &self.writer {
            let line = Command::Line(format_line(&record, self.format));
            if let Err(mpsc::TrySendError::Full(_)) = writer.try_send(line) {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "the access log cannot keep up; dropping lines");
                }
            }
        }
        let record = Arc::new(record);
        let mut recent = self.recent.lock();
        if recent.len() == RECENT_CAPACITY {
            recent.pop_front();
        }
        recent.push_back(record.clone());
        // No subscriber is the usual case, not an error.
        let _ = self.feed.send(record);
    }

    /// Reopens the file, after a rotation moved it away.
    pub fn reopen(&self) {
        if let Some(writer) = &self.writer {
            // A reopen must not be lost to a full backlog: wait for room.
            let _ = writer.send(Command::Reopen);
        }
    }

    /// The latest records, oldest first, and every record after them.
    pub fn subscribe(&self) -> (Vec<AccessRecord>, broadcast::Receiver<Arc<AccessRecord>>) {
        let recent = self.recent.lock();
        let records = recent.iter().map(|r| AccessRecord::clone(r)).collect();
        (records, self.feed.subscribe())
    }
}

fn open(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

enum Sink {
    Stdout(io::Stdout),
    File(BufWriter<File>),
}

impl Sink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => {
                let mut out = out.lock();
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Sink::File(file) => {
                file.write_all(line.as_bytes())?;
                file.write_all(b"\n")
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(file) => file.flush(),
        }
    }
}

/// The writer thread owns the file: logging never blocks an async worker.
/// It flushes whenever it has caught up, so lines appear promptly but a
/// burst is written in large pieces.
fn apply(sink: &mut Sink, path: Option<&std::path::Path>, command: Command) {
    match command {
        Command::Line(line) => {
            if let Err(e) = sink.write_line(&line) {
                tracing::warn!(error = %e, "cannot write the access log");
            }
        }
        Command::Reopen => {
            let _ = sink.flush();
            let Some(path) = path else { return };
            match open(path) {
                Ok(file) => {
                    *sink = Sink::File(BufWriter::new(file));
                    tracing::info!(path = %path.display(), "reopened the access log");
                }
                Err(e) => tracing::error!(
                    path = %path.display(), error = %e,
                    "cannot reopen the access log; still writing to the old file"
                ),
            }
        }
    }
}

fn spawn_writer(mut sink: Sink, path: Option<PathBuf>) -> io::Result<mpsc::SyncSender<Command>> {
    let (tx, rx) = mpsc::sync_channel::<Command>(WRITE_BACKLOG);
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(command) = next {
                    apply(&mut sink, path.as_deref(), command);
                    next = rx.try_recv().ok();
                }
                if let Err(e) = sink.flush() {
                    tracing::warn!(error = %e, "cannot flush the access log");
                }
            }
            let _ = sink.flush();
        })?;
    Ok(tx)
}

/// Renders one record in the chosen format.
pub fn format_line(r: &AccessRecord, format: LogFormat) -> String {
    match format {
        LogFormat::Squid => {
            let code = if matches!(r.status, 403 | 407) {
                "TCP_DENIED"
            } else if r.method == "CONNECT" {
                "TCP_TUNNEL"
            } else {
                "TCP_MISS"
            };
            let hierarchy = if r.upstream == "-" {
                "HIER_NONE/-".to_owned()
            } else {
                format!("HIER_DIRECT/{}", upstream_ip(&r.upstream))
            };
            format!(
                "{}.{:03} {:>6} {} {code}/{:03} {} {} {} {} {hierarchy} -",
                r.time_ms / 1000,
                r.time_ms % 1000,
                r.duration_ms,
                r.client,
                r.status,
                r.bytes_out,
                r.method,
                r.target,
                r.user
            )
        }
        LogFormat::Common => common(r),
        LogFormat::Combined => format!(
            "{} \"{}\" \"{}\"",
            common(r),
            quote(&r.referer),
            quote(&r.user_agent)
        ),
        LogFormat::Json => serde_json::to_string(r).unwrap_or_default(),
    }
}

fn common(r: &AccessRecord) -> String {
    format!(
        "{} - {} [{}] \"{} {} HTTP/1.1\" {} {}",
        r.client,
        r.user,
        clf_time(r.time_ms),
        r.method,
        quote(&r.target),
        r.status,
        r.bytes_out
    )
}

/// Escapes what would break a quoted log field.
fn quote(s: &str) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn upstream_ip(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((ip, _)) => ip.trim_start_matches('[').trim_end_matches(']'),
        None => addr,
    }
}

/// `10/Oct/2000:13:55:36 +0000`, the time format of the Common Log Format.
fn clf_time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let at = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX);
    at.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time_ms: 971_185_336_123,
            client: "127.0.0.1".into(),
            user: "ann".into(),
            method: "GET".into(),
            target: "http://example.test/a\"b".into(),
            status: 200,
            bytes_in: 5,
            bytes_out: 2326,
            duration_ms: 42,
            upstream: "10.0.0.7:80".into(),
            user_agent: "curl/8".into(),
            referer: String::new(),
        }
    }

    #[test]
    fn subscribers_get_the_latest_records_then_the_feed() {
        let log = AccessLog::start(&LogTarget::Off, LogFormat::Squid).expect("start");
        for status in 0..RECENT_CAPACITY as u16 + 5 {
            log.emit(AccessRecord { status, ..record() });
        }
        let (recent, mut feed) = log.subscribe();
        assert_eq!(recent.len(), RECENT_CAPACITY);
        assert_eq!(recent[0].status, 5, "the oldest records made room");
        assert_eq!(
            recent[RECENT_CAPACITY - 1].status,
            RECENT_CAPACITY as u16 + 4
        );
        log.emit(record());
        assert_eq!(feed.try_recv().expect("live").status, 200);
        assert!(feed.try_recv().is_err(), "nothing from before is repeated");
    }

    #[test]
    fn squid_lines_look_like_squids() {
        let line = format_line(&record(), LogFormat::Squid);
        assert_eq!(
            line,
            "971185336.123     42 127.0.0.1 TCP_MISS/200 2326 GET http://example.test/a\"b ann HIER_DIRECT/10.0.0.7 -"
        );
    }

    #[test]
    fn common_and_combined_lines_quote_their_fields() {
        let common = format_line(&record(), LogFormat::Common);
        assert_eq!(
            common,
            "127.0.0.1 - ann [10/Oct/2000:13:42:16 +0000] \"GET http://example.test/a\\\"b HTTP/1.1\" 200 2326"
        );
        let combined = format_line(&record(), LogFormat::Combined);
        assert!(combined.ends_with(" \"-\" \"curl/8\""), "{combined}");
    }

    #[test]
    fn json_lines_round_trip() {
        let line = format_line(&record(), LogFormat::Json);
        let back: AccessRecord = serde_json::from_str(&line).expect("json");
        assert_eq!(back, record());
    }

    #[test]
    fn dates_convert_across_leap_years() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400_000), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(clf_time(1_763_856_936_000), "23/Nov/2025:00:15:36 +0000");
    }

    #[test]
    fn the_file_is_reopened_after_rotation() {
        let dir = std::env::temp_dir().join(format!("backroom-proxy-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("access.log");
        let rotated = dir.join("access.log.1");
        let log = AccessLog::start(&LogTarget::File(path.clone()), LogFormat::Json).expect("log");
        log.emit(record());
        // A subscriber proves nothing about the file, so wait on the file.
        wait_for_lines(&path, 1);
        std::fs::rename(&path, &rotated).expect("rotate");
        log.reopen();
        log.emit(record());
        wait_for_lines(&path, 1);
        assert_eq!(
            std::fs::read_to_string(&rotated)
                .expect("old")
                .lines()
                .count(),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Polls a file written by another thread, for at most ten seconds.
    fn wait_for_lines(path: &std::path::Path, lines: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seen = std::fs::read_to_string(path)
                .map(|s| s.lines().count())
                .unwrap_or(0);
            if seen >= lines {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} has {seen} lines",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
