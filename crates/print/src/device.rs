//! Print devices: where a printer sends a job's bytes.
//!
//! Every device reads the spooled document in chunks, so no document is ever
//! held whole in memory, and stops at once when the job is cancelled.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::group::Group;
use crate::queue::Progress;

/// A page of a `sim:` printer ends at a form feed or after this many bytes.
pub const SIM_PAGE_BYTES: u64 = 4096;
/// How long a `socket:` printer may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CHUNK: usize = 64 * 1024;

/// A device, as configured by `KIND:ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    File(PathBuf),
    Socket(String),
    Command(String),
    Sim { pages_per_minute: u32 },
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<DeviceSpec, String> {
        let (kind, arg) = spec
            .split_once(':')
            .ok_or_else(|| format!("device {spec:?} is not KIND:ARG"))?;
        if arg.is_empty() {
            return Err(format!("device {spec:?} has an empty argument"));
        }
        match kind {
            "file" => Ok(DeviceSpec::File(PathBuf::from(arg))),
            "socket" => {
                let port_ok = arg
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !port_ok {
                    return Err(format!("socket device {arg:?} is not HOST:PORT"));
                }
                Ok(DeviceSpec::Socket(arg.to_owned()))
            }
            "command" => Ok(DeviceSpec::Command(arg.to_owned())),
            "sim" => match arg.parse::<u32>() {
                Ok(ppm) if ppm > 0 => Ok(DeviceSpec::Sim {
                    pages_per_minute: ppm,
                }),
                _ => Err(format!(
                    "sim device needs pages per minute above 0, not {arg:?}"
                )),
            },
            _ => Err(format!(
                "unknown device kind {kind:?}: use file, socket, command or sim"
            )),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::File(dir) => write!(f, "file:{}", dir.display()),
            DeviceSpec::Socket(addr) => write!(f, "socket:{addr}"),
            DeviceSpec::Command(cmd) => write!(f, "command:{cmd}"),
            DeviceSpec::Sim { pages_per_minute } => write!(f, "sim:{pages_per_minute}"),
        }
    }
}

/// One job as a device needs it.
#[derive(Debug, Clone)]
pub struct Work {
    pub id: u64,
    pub name: String,
    pub copies: u32,
    pub document: PathBuf,
}

/// A ready device.
#[derive(Debug)]
pub struct Device {
    spec: DeviceSpec,
    /// The `file:` printer's next sequence number.
    seq: AtomicU64,
    /// How long an attempt may go without the device taking a byte or
    /// finishing; `None` waits for ever.
    timeout: Option<Duration>,
    /// Where a `command:` printer records its running process group.
    record: Option<PathBuf>,
}

/// Why an attempt ended early.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    Device(String),
}

impl Device {
    /// Prepares a device; a `file:` printer continues its sequence numbers
    /// from the files already in its folder.
    pub fn open(spec: DeviceSpec) -> std::io::Result<Device> {
        let mut next = 1;
        if let DeviceSpec::File(dir) = &spec {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let partial = name
                    .to_str()
                    .is_some_and(|n| n.starts_with('.') && n.ends_with(".part"));
                if partial {
                    // Left by a crash mid-job; the job prints again whole.
                    std::fs::remove_file(entry.path())?;
                    continue;
                }
                let seq = name
                    .to_str()
                    .and_then(|n| n.split('_').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(seq) = seq {
                    next = next.max(seq + 1);
                }
            }
        }
        Ok(Device {
            spec,
            seq: AtomicU64::new(next),
            timeout: None,
            record: None,
        })
    }

    /// Fails an attempt that goes `timeout` without the device taking a
    /// byte (or a page) or finishing.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Device {
        self.timeout = timeout;
        self
    }

    /// Records a `command:` printer's running process group at `path`, so
    /// that a start after a crash can kill it.
    pub fn recording_at(mut self, path: PathBuf) -> Device {
        self.record = Some(path);
        self
    }

    /// Prints `work`, calling `report` as bytes go out (and, for `sim:`, as
    /// pages come out). Dropped before it ends, a command's processes are
    /// killed.
    pub async fn print(
        &self,
        work: &Work,
        cancel: &CancellationToken,
        report: &(dyn Fn(Progress) + Sync),
    ) -> (Progress, Result<(), Failure>) {
        let mut progress = Progress::default();
        let last = Mutex::new(Instant::now());
        let watched = |p: Progress| {
            *last.lock() = Instant::now();
            report(p);
        };
        let outcome = {
            let run = self.run(work, &mut progress, &watched);
            tokio::select! {
                outcome = run => outcome,
                () = cancel.cancelled() => Err(Failure::Cancelled),
                failure = self.stalled(&last) => Err(failure),
            }
        };
        (progress, outcome)
    }

    /// Completes once the device has gone the timeout without progress
    /// since `last`; never without a timeout.
    async fn stalled(&self, last: &Mutex<Instant>) -> Failure {
        let Some(timeout) = self.timeout else {
            return std::future::pending().await;
        };
        loop {
            let deadline = *last.lock() + timeout;
            if Instant::now() >= deadline {
                return device(format!(
                    "the device took no data and did not finish for {} s (timeout_secs)",
                    timeout.as_secs_f64()
                ));
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    async fn run(
        &self,
        work: &Work,
        progress: &mut Progress,
        report: &(dyn Fn(Progress) + Sync),
    ) -> Result<(), Failure> {
        match &self.spec {
            DeviceSpec::File(dir) => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let name = format!("{seq:08}_{}_{}", work.id, safe_name(&work.name));
                print_file(dir, &name, work, progress, report).await
            }
            DeviceSpec::Socket(addr) => {
                let connect = tokio::net::TcpStream::connect(addr.as_str());
                let mut tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| device(format!("connecting to {addr} timed out")))?
                    .map_err(|e| device(format!("cannot connect to {addr}: {e}")))?;
                copy_document(work, &mut tcp, progress, report).await?;
                tcp.shutdown()
                    .await
                    .map_err(|e| device(format!("closing the connection to {addr}: {e}")))
            }
            DeviceSpec::Command(cmd) => {
                let record = self.record.as_deref();
                print_command(cmd, record, work, progress, report).await
            }
            DeviceSpec::Sim { pages_per_minute } => {
                let per_page = Duration::from_secs(60) / *pages_per_minute;
                simulate(work, per_page, progress, report).await
            }
        }
    }
}

fn device(message: String) -> Failure {
    Failure::Device(message)
}

/// A job name made safe as the end of a file name.
fn safe_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "job".to_owned()
    } else {
        trimmed.to_owned()
    }
}

async fn print_file(
    dir: &Path,
    name: &str,
    work: &Work,
    progress: &mut Progress,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<(), Failure> {
    // Written under a dot name and renamed, so a file under its final name
    // is always a whole document.
    let partial = dir.join(format!(".{name}.part"));
    let target = dir.join(name);
    let written = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|e| device(format!("cannot create {}: {e}", partial.display())))?;
        copy_document(work, &mut file, progress, report).await?;
        file.sync_all()
            .await
            .map_err(|e| device(format!("cannot sync {}: {e}", partial.display())))?;
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(|e| device(format!("cannot rename to {}: {e}", target.display())))
    };
    let result = written.await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    result
}

/// Runs the command in a process group of its own: dropping this future
/// (on cancel, timeout or shutdown) kills the whole group.
async fn print_command(
    cmd: &str,
    record: Option<&Path>,
    work: &Work,
    progress: &mut Progress,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<(), Failure> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .env("BACKROOM_JOB_ID", work.id.to_string())
        .env("BACKROOM_JOB_NAME", &work.name)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut group = Group::spawn(&mut command, record)
        .map_err(|e| device(format!("cannot run {cmd:?}: {e}")))?;
    let mut stdin = group
        .stdin()
        .ok_or_else(|| device("the command's stdin is missing".into()))?;
    copy_document(work, &mut stdin, progress, report).await?;
    drop(stdin);
    let status = group
        .wait()
        .await
        .map_err(|e| device(format!("waiting for {cmd:?}: {e}")))?;
    if !status.success() {
        return Err(device(format!("{cmd:?} failed: {status}")));
    }
    Ok(())
}

/// Sends the document, `copies` times, in chunks.
async fn copy_document(
    work: &Work,
    to: &mut (impl AsyncWrite + Unpin),
    progress: &mut Progress,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<(), Failure> {
    let mut buf = vec![0; CHUNK];
    for _ in 0..work.copies {
        let mut doc = open_document(work).await?;
        loop {
            let n = read(&mut doc, &mut buf, work).await?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])
                .await
                .map_err(|e| device(format!("the device stopped taking data: {e}")))?;
            progress.bytes += n as u64;
            report(*progress);
        }
    }
    to.flush()
        .await
        .map_err(|e| device(format!("the device stopped taking data: {e}")))
}

async fn open_document(work: &Work) -> Result<tokio::fs::File, Failure> {
    tokio::fs::File::open(&work.document)
        .await
        .map_err(|e| device(format!("cannot open the spooled document: {e}")))
}

async fn read(
    doc: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    work: &Work,
) -> Result<usize, Failure> {
    doc.read(buf).await.map_err(|e| {
        device(format!(
            "cannot read the spooled document of job {}: {e}",
            work.id
        ))
    })
}

/// A printer that takes `per_page` for each page.
async fn simulate(
    work: &Work,
    per_page: Duration,
    progress: &mut Progress,
    report: &(dyn Fn(Progress) + Sync),
) -> Result<(), Failure> {
    let mut buf = vec![0; CHUNK];
    for _ in 0..work.copies {
        let mut doc = open_document(work).await?;
        let mut on_page = 0u64;
        loop {
            let n = read(&mut doc, &mut buf, work).await?;
            if n == 0 {
                break;
            }
            for &byte in &buf[..n] {
                on_page += 1;
                progress.bytes += 1;
                if byte == b'\x0c' || on_page == SIM_PAGE_BYTES {
                    tokio::time::sleep(per_page).await;
                    on_page = 0;
                    progress.pages += 1;
                    report(*progress);
                }
            }
        }
        if on_page > 0 {
            tokio::time::sleep(per_page).await;
            progress.pages += 1;
            report(*progress);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(
            "file:/tmp/out".parse::<DeviceSpec>(),
            Ok(DeviceSpec::File("/tmp/out".into()))
        );
        assert_eq!(
            "socket:10.0.0.5:9100".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Socket("10.0.0.5:9100".into()))
        );
        assert_eq!(
            "command:lp -d office".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Command("lp -d office".into()))
        );
        assert_eq!(
            "sim:30".parse::<DeviceSpec>(),
            Ok(DeviceSpec::Sim {
                pages_per_minute: 30
            })
        );
        for bad in [
            "file",
            "file:",
            "socket:host",
            "socket:host:99999",
            "sim:0",
            "fax:1",
        ] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_cannot_escape_the_output_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_name("..."), "job");
        assert_eq!(safe_name("report 1.pdf"), "report_1.pdf");
    }

    fn work(dir: &Path, data: &[u8], copies: u32) -> Work {
        let document = dir.join("doc.prn");
        std::fs::write(&document, data).expect("write doc");
        Work {
            id: 7,
            name: "memo".into(),
            copies,
            document,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_sim_printer_takes_its_time_per_page() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Two form-fed pages, then a 4 KiB page and a short last page.
        let mut data = b"page one\x0cpage two\x0c".to_vec();
        data.extend(std::iter::repeat_n(b'x', 4096 + 10));
        let work = work(dir.path(), &data, 1);
        let sim = Device::open(DeviceSpec::Sim {
            pages_per_minute: 6,
        })
        .expect("open");
        let started = tokio::time::Instant::now();
        let pages = std::sync::Mutex::new(Vec::new());
        let report = |p: Progress| pages.lock().expect("lock").push(p.pages);
        let (progress, outcome) = sim.print(&work, &CancellationToken::new(), &report).await;
        assert!(outcome.is_ok());
        assert_eq!(progress.pages, 4);
        assert_eq!(progress.bytes, data.len() as u64);
        assert_eq!(*pages.lock().expect("lock"), vec![1, 2, 3, 4]);
        assert_eq!(started.elapsed(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_sim_job_stops_between_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let work = work(dir.path(), &[b'x'; 4096 * 10], 1);
        let sim = Device::open(DeviceSpec::Sim {
            pages_per_minute: 60,
        })
        .expect("open");
        let cancel = CancellationToken::new();
        let report = |p: Progress| {
            if p.pages == 3 {
                cancel.cancel();
            }
        };
        let (progress, outcome) = sim.print(&work, &cancel, &report).await;
        assert!(matches!(outcome, Err(Failure::Cancelled)));
        assert_eq!(progress.pages, 3);
    }

    #[tokio::test]
    async fn the_file_printer_numbers_files_in_print_order_across_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let work = work(dir.path(), b"hello", 2);
        let none = |_: Progress| {};
        std::fs::create_dir_all(&out).expect("out");
        std::fs::write(out.join(".00000009_1_crashed.part"), b"half").expect("partial");
        let printer = Device::open(DeviceSpec::File(out.clone())).expect("open");
        let (_, first) = printer.print(&work, &CancellationToken::new(), &none).await;
        assert!(first.is_ok());
        let again = Device::open(DeviceSpec::File(out.clone())).expect("reopen");
        let (_, second) = again.print(&work, &CancellationToken::new(), &none).await;
        assert!(second.is_ok());
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        assert_eq!(names, ["00000001_7_memo", "00000002_7_memo"]);
        let printed = std::fs::read(out.join(&names[0])).expect("read");
        assert_eq!(printed, b"hellohello", "two copies");
    }

    /// A command that writes its process group's id to `pid`, takes the
    /// whole document, then hangs in a child of its shell. The document is
    /// larger than a pipe's buffer, so once every byte is taken the id is
    /// written.
    fn hanging(dir: &Path) -> (Device, Work, PathBuf) {
        let pid = dir.join("pid");
        let cmd = format!("echo $$ > '{}'; cat > /dev/null; sleep 1000", pid.display());
        let work = work(dir, &[b'x'; 256 * 1024], 1);
        let device = Device::open(DeviceSpec::Command(cmd)).expect("open");
        (device, work, pid)
    }

    fn assert_group_killed(pid: &Path) {
        let pgid: i32 = std::fs::read_to_string(pid)
            .expect("the command wrote its id")
            .trim()
            .parse()
            .expect("a pid");
        let gone = crate::group::wait_until_gone(pgid, Duration::from_secs(10)).expect("proc");
        assert!(gone, "process group {pgid} outlived its attempt");
    }

    #[tokio::test]
    async fn a_command_that_takes_no_data_for_the_timeout_fails_and_its_group_dies() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (device, work, pid) = hanging(dir.path());
        let device = device.with_timeout(Some(Duration::from_millis(500)));
        let none = |_: Progress| {};
        let (progress, outcome) = device.print(&work, &CancellationToken::new(), &none).await;
        assert_eq!(progress.bytes, 256 * 1024);
        match outcome {
            Err(Failure::Device(message)) => {
                assert!(message.contains("timeout_secs"), "{message}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_group_killed(&pid);
    }

    #[tokio::test]
    async fn a_cancelled_command_is_killed_with_its_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (device, work, pid) = hanging(dir.path());
        let cancel = CancellationToken::new();
        let report = |p: Progress| {
            if p.bytes == 256 * 1024 {
                cancel.cancel();
            }
        };
        let (_, outcome) = device.print(&work, &cancel, &report).await;
        assert!(matches!(outcome, Err(Failure::Cancelled)), "{outcome:?}");
        assert_group_killed(&pid);
    }

    #[tokio::test]
    async fn a_command_dropped_at_shutdown_is_killed_with_its_whole_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (device, work, pid) = hanging(dir.path());
        let record = dir.path().join("lp.pgid");
        let device = device.recording_at(record.clone());
        let stop = CancellationToken::new();
        let report = |p: Progress| {
            if p.bytes == 256 * 1024 {
                stop.cancel();
            }
        };
        let never = CancellationToken::new();
        tokio::select! {
            _ = device.print(&work, &never, &report) => {
                panic!("the command cannot finish");
            }
            () = stop.cancelled() => {}
        }
        assert_group_killed(&pid);
        assert!(!record.exists(), "the record goes with the group");
    }

    #[tokio::test]
    async fn the_command_printer_feeds_stdin_and_reports_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sink = dir.path().join("sink");
        let work = work(dir.path(), b"to the command", 1);
        let none = |_: Progress| {};
        let cmd = format!("cat > '{}'", sink.display());
        let printer = Device::open(DeviceSpec::Command(cmd)).expect("open");
        let (_, outcome) = printer.print(&work, &CancellationToken::new(), &none).await;
        assert!(outcome.is_ok());
        assert_eq!(std::fs::read(&sink).expect("read"), b"to the command");

        let failing =
            Device::open(DeviceSpec::Command("cat > /dev/null; exit 3".into())).expect("open");
        let (_, outcome) = failing.print(&work, &CancellationToken::new(), &none).await;
        match outcome {
            Err(Failure::Device(message)) => assert!(message.contains("failed"), "{message}"),
            other => panic!("expected a device failure, got {other:?}"),
        }
    }
}
