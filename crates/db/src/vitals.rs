//! The database server's vital signs: statements per second, open
//! transactions, the shared writers' queue and the sessions with a
//! connection of their own, over both faces, from counters that the engine
//! and the writers keep.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use backroom_api::db::vital;
use backroom_daemon::rate::Rate;
use backroom_frame::server::{Vital, unit};

/// The seconds over which the statement rate is taken.
const RATE_SECS: u64 = 10;

/// The counters, shared by every database of the server.
#[derive(Default)]
pub struct Gauges {
    /// Statements run (a cursor counts as one).
    pub statements: Rate,
    queue: AtomicU64,
    transactions: AtomicU64,
    sessions: AtomicU64,
}

impl fmt::Debug for Gauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauges").finish_non_exhaustive()
    }
}

/// What a [`Counted`] counts.
#[derive(Debug, Clone, Copy)]
pub enum Gauge {
    /// Autocommit statements sent to a shared writer and not yet answered:
    /// the group-commit waiters, the one running included.
    Queue,
    /// Transactions open.
    Transactions,
    /// Sessions with a connection of their own.
    Sessions,
}

/// Counts one of a [`Gauge`] for as long as it lives.
pub struct Counted {
    gauges: Arc<Gauges>,
    gauge: Gauge,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.gauges
            .gauge(self.gauge)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gauges {
    fn gauge(&self, gauge: Gauge) -> &AtomicU64 {
        match gauge {
            Gauge::Queue => &self.queue,
            Gauge::Transactions => &self.transactions,
            Gauge::Sessions => &self.sessions,
        }
    }

    /// Counts one more of `gauge` until the guard is dropped.
    pub fn count(self: &Arc<Gauges>, gauge: Gauge) -> Counted {
        self.gauge(gauge).fetch_add(1, Ordering::Relaxed);
        Counted {
            gauges: self.clone(),
            gauge,
        }
    }

    pub fn vitals(&self) -> Vec<Vital> {
        let load = |gauge| self.gauge(gauge).load(Ordering::Relaxed);
        vec![
            Vital::new(
                vital::STATEMENTS,
                self.statements.per_sec(RATE_SECS),
                unit::PER_SEC,
            ),
            Vital::count(vital::TRANSACTIONS, load(Gauge::Transactions)),
            Vital::count(vital::QUEUE, load(Gauge::Queue)),
            Vital::count(vital::SESSIONS, load(Gauge::Sessions)),
        ]
    }
}
