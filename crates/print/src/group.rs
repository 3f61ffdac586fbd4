//! The process groups of `command:` printers.
//!
//! Each command runs in a process group of its own, so that everything it
//! starts (a shell's children, a pipeline) can be killed at once. The group
//! is killed when its attempt is cancelled, times out, or is dropped at
//! shutdown. While it runs, it is recorded in the spool, so that the next
//! start after a crash kills what the dead server left running before it
//! prints the interrupted job again.
//!
//! `unsafe` is forbidden in the workspace, so the child cannot ask for
//! `PR_SET_PDEATHSIG` between fork and exec; the record is the safe way to
//! find the group again.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use tokio::process::{Child, ChildStdin, Command};

/// How long a start waits for a killed group's processes to be gone.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How often it looks while it waits.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A command running as the leader of its own process group.
pub struct Group {
    child: Child,
    pgid: Pid,
    record: Option<PathBuf>,
    /// Whether the group is killed on drop: until the leader is reaped, its
    /// pid cannot be reused, so killing the group can hit nothing else.
    armed: bool,
}

impl Group {
    /// Spawns `command` as the leader of a new process group, and records
    /// the group at `record` if given.
    pub fn spawn(command: &mut Command, record: Option<&Path>) -> io::Result<Group> {
        let child = command.process_group(0).kill_on_drop(true).spawn()?;
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
            .filter(|pid| *pid != Pid::INIT)
            .ok_or_else(|| io::Error::other("the command has no process id"))?;
        let mut group = Group {
            child,
            pgid,
            record: None,
            armed: true,
        };
        if let Some(path) = record {
            write_record(path, pgid)?;
            group.record = Some(path.to_owned());
        }
        Ok(group)
    }

    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for the leader to exit. Dropped before that, the group is
    /// killed.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        self.armed = false;
        status
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = kill_process_group(self.pgid, Signal::KILL) {
                tracing::warn!(pgid = self.pgid.as_raw_nonzero().get(), error = %e, "cannot kill a command's process group");
            }
        }
        if let Some(record) = self.record.take() {
            if let Err(e) = std::fs::remove_file(&record) {
                tracing::warn!(record = %record.display(), error = %e, "cannot remove a process group record");
            }
        }
    }
}

/// What identifies a running group: its id, its leader's start time (in
/// clock ticks since boot) and the boot it runs in.
#[derive(Debug, PartialEq, Eq)]
struct Record {
    pgid: i32,
    start: u64,
    boot: String,
}

impl Record {
    fn parse(text: &str) -> Option<Record> {
        let mut fields = text.split_whitespace();
        let record = Record {
            pgid: fields.next()?.parse().ok()?,
            start: fields.next()?.parse().ok()?,
            boot: fields.next()?.to_owned(),
        };
        fields.next().is_none().then_some(record)
    }
}

fn write_record(path: &Path, pgid: Pid) -> io::Result<()> {
    let raw = pgid.as_raw_nonzero().get();
    let stat = read_stat(raw)?.ok_or_else(|| io::Error::other("the command is gone already"))?;
    let text = format!("{raw} {} {}\n", stat.start, boot_id()?);
    // Written beside and renamed, so a crash never leaves half a record.
    let mut partial = path.as_os_str().to_owned();
    partial.push(".part");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// The fields of `/proc/PID/stat` this module needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub pgrp: i32,
    pub start: u64,
}

/// Reads `/proc/PID/stat`; `None` if there is no such process.
pub fn read_stat(pid: i32) -> io::Result<Option<Stat>> {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name, in parentheses, may hold spaces and parentheses:
    // the fields that matter follow its last `)`.
    let parsed = text.rsplit_once(')').and_then(|(_, rest)| {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(Stat {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start: fields.get(19)?.parse().ok()?,
        })
    });
    parsed
        .map(Some)
        .ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

/// Whether any process of group `pgid` is still alive (a zombie is not).
pub fn group_alive(pgid: i32) -> io::Result<bool> {
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read.
        if let Ok(Some(stat)) = read_stat(pid) {
            if stat.pgrp == pgid && stat.state != 'Z' {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Kills the groups that a previous run recorded in `dir` and that still
/// run, waits until they are gone, and removes the records. Blocking; it
/// runs at start, before any printer prints.
pub fn kill_leftovers(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let boot = boot_id()?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let record = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| Record::parse(&text));
        if let Some(record) = record.filter(|r| r.boot == boot) {
            kill_recorded(&record)?;
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

fn kill_recorded(record: &Record) -> io::Result<()> {
    let Some(pgid) = Pid::from_raw(record.pgid).filter(|pid| *pid != Pid::INIT) else {
        return Ok(());
    };
    // A leader with another start time is another process that got the id:
    // leave it alone. With no leader at all, what is left in the group can
    // only be the recorded command's (the id stays taken while they live).
    if let Some(leader) = read_stat(record.pgid)? {
        if leader.start != record.start {
            return Ok(());
        }
    }
    if !group_alive(record.pgid)? {
        return Ok(());
    }
    tracing::warn!(
        pgid = record.pgid,
        "killing the command a previous run left printing"
    );
    match kill_process_group(pgid, Signal::KILL) {
        Ok(()) => {}
        Err(rustix::io::Errno::SRCH) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if !wait_until_gone(record.pgid, EXIT_WAIT)? {
        return Err(io::Error::other(format!(
            "process group {} is still alive after SIGKILL",
            record.pgid
        )));
    }
    Ok(())
}

/// Waits up to `limit` for every process of group `pgid` to end (a signal
/// is delivered at once, but a process dies when it is next scheduled);
/// false if some still live then. Blocking.
pub fn wait_until_gone(pgid: i32, limit: Duration) -> io::Result<bool> {
    let waited = std::time::Instant::now();
    while group_alive(pgid)? {
        if waited.elapsed() > limit {
            return Ok(false);
        }
        std::thread::sleep(EXIT_POLL);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_garbage_is_ignored() {
        assert_eq!(
            Record::parse("123 456 abc-def\n"),
            Some(Record {
                pgid: 123,
                start: 456,
                boot: "abc-def".into()
            })
        );
        for bad in ["", "123", "x 1 b", "1 2 b extra"] {
            assert_eq!(Record::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn this_process_stat_is_read() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let stat = read_stat(me).expect("read").expect("alive");
        assert_ne!(stat.state, 'Z');
        assert!(stat.start > 0);
        assert_eq!(read_stat(i32::MAX).expect("read"), None);
    }
}
