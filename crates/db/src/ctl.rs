//! Cancelling a job that may be queued, running, or done, without ever
//! interrupting the wrong statement.
//!
//! A worker thread owns a [`Slot`]: its connection's interrupt handle and the
//! id of the job it runs. A job's [`Ctl`] is claimed by the worker that takes
//! it. Cancelling marks the job, and interrupts SQLite only while that very
//! job is the one running, so a late cancel cannot hit the next job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use rusqlite::InterruptHandle;

static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A worker's connection, as cancellers see it.
pub struct Slot {
    running: Mutex<Option<u64>>,
    interrupt: InterruptHandle,
}

impl Slot {
    pub fn new(interrupt: InterruptHandle) -> Arc<Slot> {
        Arc::new(Slot {
            running: Mutex::new(None),
            interrupt,
        })
    }

    /// Marks the job done; a cancel arriving later finds nothing to stop.
    pub fn finish(&self) {
        *self.running.lock() = None;
    }
}

#[derive(Default)]
struct State {
    cancelled: bool,
    worker: Option<Arc<Slot>>,
}

/// One job's cancellation handle.
pub struct Ctl {
    id: u64,
    state: Mutex<State>,
}

impl Ctl {
    pub fn new() -> Arc<Ctl> {
        Arc::new(Ctl {
            id: NEXT_JOB.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(State::default()),
        })
    }

    /// Claims the job for `slot`'s worker. False when it was cancelled before
    /// it started: the worker then skips it.
    pub fn start(&self, slot: &Arc<Slot>) -> bool {
        let mut state = self.state.lock();
        if state.cancelled {
            return false;
        }
        *slot.running.lock() = Some(self.id);
        state.worker = Some(slot.clone());
        true
    }

    /// Cancels the job. Returns whether it had started, in which case its
    /// worker will still answer (soon, since its statement is interrupted).
    pub fn cancel(&self) -> bool {
        let mut state = self.state.lock();
        state.cancelled = true;
        let Some(slot) = &state.worker else {
            return false;
        };
        let running = slot.running.lock();
        if *running == Some(self.id) {
            slot.interrupt.interrupt();
        }
        true
    }
}

/// Cancels its job when dropped before [`CancelOnDrop::disarm`]: the request
/// future was dropped because the client cancelled or went away.
pub struct CancelOnDrop(Option<Arc<Ctl>>);

impl CancelOnDrop {
    pub fn new(ctl: Arc<Ctl>) -> CancelOnDrop {
        CancelOnDrop(Some(ctl))
    }

    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(ctl) = self.0.take() {
            ctl.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_cancelled_before_it_starts_is_skipped() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let slot = Slot::new(conn.get_interrupt_handle());
        let ctl = Ctl::new();
        assert!(!ctl.cancel(), "not started yet");
        assert!(!ctl.start(&slot));
    }

    #[test]
    fn a_late_cancel_leaves_the_next_job_alone() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let slot = Slot::new(conn.get_interrupt_handle());
        let first = Ctl::new();
        assert!(first.start(&slot));
        slot.finish();
        let second = Ctl::new();
        assert!(second.start(&slot));
        assert!(first.cancel(), "it had started");
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
                 SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )
            .expect("the second job runs to its end");
        assert_eq!(n, 100_000);
    }

    #[test]
    fn cancelling_a_running_job_interrupts_its_statement() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let slot = Slot::new(conn.get_interrupt_handle());
        let ctl = Ctl::new();
        assert!(ctl.start(&slot));
        let (done_tx, done) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let endless = conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                 SELECT count(*) FROM c",
                [],
                |r| r.get::<_, i64>(0),
            );
            let _ = done_tx.send(endless.is_err());
        });
        // An interrupt before the statement starts is a no-op, so repeat it
        // until the statement has seen one.
        let interrupted = loop {
            ctl.cancel();
            match done.recv_timeout(std::time::Duration::from_millis(10)) {
                Ok(failed) => break failed,
                Err(_) => continue,
            }
        };
        assert!(interrupted);
        worker.join().expect("worker");
    }
}
