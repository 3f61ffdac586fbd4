//! Where a daemon's tracing output goes: stderr, or a file that can be
//! reopened after logrotate has moved it away.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tracing_subscriber::fmt::MakeWriter;

/// The daemon's log output; the default is stderr. Clones share it, so the clone that SIGHUP
/// reopens is the one tracing writes to.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// `None` means stderr.
    file: Option<Arc<LogFile>>,
}

#[derive(Debug)]
struct LogFile {
    path: PathBuf,
    // A standard mutex: it is held for one write of one formatted event, and
    // it keeps lines from different threads whole.
    file: Mutex<File>,
}

impl Logs {
    /// Appends to `path`, creating it if needed.
    pub fn file(path: &Path) -> io::Result<Logs> {
        let file = open_append(path)?;
        Ok(Logs {
            file: Some(Arc::new(LogFile {
                path: path.to_owned(),
                file: Mutex::new(file),
            })),
        })
    }

    /// The log file, if output goes to one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|log| log.path.as_path())
    }

    /// Opens the log file's path afresh, so that output goes to a new file
    /// once the old one was renamed. With stderr there is nothing to do. On
    /// failure the old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let Some(log) = &self.file else {
            return Ok(());
        };
        let file = open_append(&log.path)?;
        *log.file.lock() = file;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// One write to the log output.
pub enum LogWriter<'a> {
    Stderr(io::Stderr),
    File(MutexGuard<'a, File>),
}

impl Write for LogWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LogWriter::Stderr(out) => out.write(buf),
            LogWriter::File(file) => file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            LogWriter::Stderr(out) => out.write_all(buf),
            LogWriter::File(file) => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LogWriter::Stderr(out) => out.flush(),
            LogWriter::File(file) => file.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter<'a>;

    fn make_writer(&'a self) -> LogWriter<'a> {
        match &self.file {
            None => LogWriter::Stderr(io::stderr()),
            Some(log) => LogWriter::File(log.file.lock()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_line(logs: &Logs, line: &str) {
        writeln!(logs.make_writer(), "{line}").expect("write");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read log")
    }

    #[test]
    fn after_a_rename_reopen_writes_to_a_new_file_at_the_path() {
        let dir = std::env::temp_dir().join(format!("backroom-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("daemon.log");
        let rotated = dir.join("daemon.log.1");
        let logs = Logs::file(&path).expect("open");
        write_line(&logs, "before");
        std::fs::rename(&path, &rotated).expect("rotate");
        write_line(&logs, "still the old file");
        logs.reopen().expect("reopen");
        write_line(&logs, "after");
        assert_eq!(read(&rotated), "before\nstill the old file\n");
        assert_eq!(read(&path), "after\n");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn stderr_has_nothing_to_reopen() {
        let logs = Logs::default();
        assert_eq!(logs.path(), None);
        logs.reopen().expect("nothing to do");
    }
}
