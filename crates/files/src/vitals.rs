//! The file server's vital signs: bytes in and out per second, transfers
//! running and the root's free disk, from counters that the transfer paths
//! of both faces (frame and HTTP) bump.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backroom_api::files::vital;
use backroom_daemon::rate::Rate;
use backroom_frame::server::{Vital, unit};
use cap_std::fs::Dir;

/// The seconds over which the byte rates are taken.
const RATE_SECS: u64 = 5;
/// How long a reading of the free disk serves before it is taken again.
const DISK_FRESH: Duration = Duration::from_secs(1);
/// Free disk below this many bytes is an alert.
const LOW_DISK_BYTES: u64 = 1 << 30;
/// Free disk below this share of the disk, in percent, is an alert.
const LOW_DISK_PERCENT: u64 = 5;

/// What the transfer paths count.
pub struct Meter {
    /// Bytes received by uploads.
    pub bytes_in: Rate,
    /// Bytes sent by downloads.
    pub bytes_out: Rate,
    transfers: AtomicU64,
    disk: Disk,
}

/// The root's last free-disk reading, and when it was taken.
struct Disk {
    /// The root, opened again: readings are taken on the blocking pool.
    root: Option<Dir>,
    started: Instant,
    free: AtomicU64,
    total: AtomicU64,
    /// Milliseconds from `started` to the last reading.
    read_ms: AtomicU64,
    /// A reading is under way on the blocking pool.
    reading: AtomicBool,
}

/// Counts one transfer for as long as it lives.
pub struct Transfer(Arc<Meter>);

impl Drop for Transfer {
    fn drop(&mut self) {
        self.0.transfers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Meter {
    /// A meter whose first disk reading is taken now, so that `info` has
    /// one from the start.
    pub fn new(root: &Dir) -> Meter {
        let root = root
            .try_clone()
            .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the root's free disk"))
            .ok();
        let meter = Meter {
            bytes_in: Rate::default(),
            bytes_out: Rate::default(),
            transfers: AtomicU64::new(0),
            disk: Disk {
                root,
                started: Instant::now(),
                free: AtomicU64::new(0),
                total: AtomicU64::new(0),
                read_ms: AtomicU64::new(0),
                reading: AtomicBool::new(false),
            },
        };
        meter.disk.read();
        meter
    }

    /// Counts a transfer until the returned guard is dropped.
    pub fn transfer(self: &Arc<Meter>) -> Transfer {
        self.transfers.fetch_add(1, Ordering::Relaxed);
        Transfer(self.clone())
    }

    /// The vital signs. A free-disk reading older than a second is renewed
    /// on the blocking pool for the next call: this one never waits.
    pub fn vitals(self: &Arc<Meter>) -> Vec<Vital> {
        self.disk.renew(self);
        let (free, total) = (
            self.disk.free.load(Ordering::Relaxed),
            self.disk.total.load(Ordering::Relaxed),
        );
        let low = free < LOW_DISK_BYTES || free.saturating_mul(100) < total * LOW_DISK_PERCENT;
        vec![
            Vital::new(
                vital::IN,
                self.bytes_in.per_sec(RATE_SECS),
                unit::BYTES_PER_SEC,
            ),
            Vital::new(
                vital::OUT,
                self.bytes_out.per_sec(RATE_SECS),
                unit::BYTES_PER_SEC,
            ),
            Vital::count(vital::TRANSFERS, self.transfers.load(Ordering::Relaxed)),
            Vital::new(vital::FREE, free as f64, unit::BYTES).alert_if(low),
        ]
    }
}

impl Disk {
    fn age_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn read(&self) {
        let Some(root) = &self.root else { return };
        match rustix::fs::fstatvfs(root) {
            Ok(stat) => {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                let total = stat.f_blocks.saturating_mul(stat.f_frsize);
                self.free.store(free, Ordering::Relaxed);
                self.total.store(total, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the root's free disk"),
        }
        self.read_ms.store(self.age_ms(), Ordering::Relaxed);
    }

    fn renew(&self, meter: &Arc<Meter>) {
        let stale = self
            .age_ms()
            .saturating_sub(self.read_ms.load(Ordering::Relaxed))
            >= DISK_FRESH.as_millis() as u64;
        if !stale || self.reading.swap(true, Ordering::AcqRel) {
            return;
        }
        let meter = meter.clone();
        // A statvfs is quick on a local disk, but not on a network mount
        // that hangs: off the connection's reader either way.
        tokio::task::spawn_blocking(move || {
            meter.disk.read();
            meter.disk.reading.store(false, Ordering::Release);
        });
    }
}
