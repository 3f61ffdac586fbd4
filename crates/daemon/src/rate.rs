//! Rolling per-second counts, for the rates among the servers' vital signs
//! (bytes per second, statements per second, requests per second).
//!
//! A ring of one counter per second over the last minute, behind a std
//! mutex held for a few instructions and never across any IO, so that a
//! hot path may bump it on every chunk or statement and `info` may read it
//! from a connection's reader.

use std::time::Instant;

use parking_lot::{Mutex, MutexGuard};

/// The seconds of history a [`Rate`] keeps: the longest window it answers.
pub const WINDOW_SECS: u64 = 60;

/// Events (or bytes) counted per second over the last [`WINDOW_SECS`].
pub struct Rate {
    started: Instant,
    ring: Mutex<Ring>,
}

struct Ring {
    /// The count of each second, indexed by the second modulo the size.
    counts: [u64; WINDOW_SECS as usize],
    /// The second (since `started`) that `counts` was last advanced to.
    current: u64,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            started: Instant::now(),
            ring: Mutex::new(Ring {
                counts: [0; WINDOW_SECS as usize],
                current: 0,
            }),
        }
    }
}

impl Rate {
    /// Counts `n` more in the current second.
    pub fn add(&self, n: u64) {
        let now = self.now();
        self.ring().add_at(now, n);
    }

    /// The count of the last `secs` seconds, the current one included;
    /// `secs` is at most [`WINDOW_SECS`].
    pub fn sum(&self, secs: u64) -> u64 {
        let now = self.now();
        self.ring().sum_at(now, secs)
    }

    /// The mean per second over the last `secs` seconds, the current one
    /// included, so a burst shows at once and fades over `secs`.
    pub fn per_sec(&self, secs: u64) -> f64 {
        let secs = secs.clamp(1, WINDOW_SECS);
        self.sum(secs) as f64 / secs as f64
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn ring(&self) -> MutexGuard<'_, Ring> {
        // Every update leaves the ring whole, so a poisoned lock is still
        // good to use.
        self.ring.lock()
    }
}

impl Ring {
    /// Moves to second `now`, zeroing the seconds that passed unseen.
    fn advance(&mut self, now: u64) {
        let gap = now.saturating_sub(self.current).min(WINDOW_SECS);
        for step in 1..=gap {
            self.counts[slot(self.current + step)] = 0;
        }
        self.current = self.current.max(now);
    }

    fn add_at(&mut self, now: u64, n: u64) {
        self.advance(now);
        let count = &mut self.counts[slot(now)];
        *count = count.saturating_add(n);
    }

    fn sum_at(&mut self, now: u64, secs: u64) -> u64 {
        self.advance(now);
        (0..secs.min(WINDOW_SECS))
            .map(|back| self.counts[slot(self.current + WINDOW_SECS - back)])
            .sum()
    }
}

fn slot(second: u64) -> usize {
    (second % WINDOW_SECS) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Ring {
        Ring {
            counts: [0; WINDOW_SECS as usize],
            current: 0,
        }
    }

    #[test]
    fn a_count_shows_at_once_and_slides_out_of_the_window() {
        let mut ring = ring();
        ring.add_at(0, 5);
        ring.add_at(3, 2);
        assert_eq!(ring.sum_at(3, 1), 2);
        assert_eq!(ring.sum_at(3, 10), 7);
        assert_eq!(ring.sum_at(9, 10), 7);
        assert_eq!(ring.sum_at(10, 10), 2);
        assert_eq!(ring.sum_at(200, WINDOW_SECS), 0);
    }

    #[test]
    fn a_fresh_rate_counts_what_was_just_added() {
        let rate = Rate::default();
        rate.add(30);
        assert_eq!(rate.sum(1), 30);
        assert!((rate.per_sec(10) - 3.0).abs() < 1e-9);
    }
}
