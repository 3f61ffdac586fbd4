//! The dispatch rule: which waiting job goes out next.
//!
//! A job's effective priority is its priority plus an aging boost that grows
//! linearly with the time it has waited, so that after `max_wait` every job
//! stands at the top priority:
//!
//! ```text
//! effective = min(100, priority + floor(99 * waited_ms / max_wait_ms))
//! ```
//!
//! Jobs go out promoted first (the most recent promotion at the very front),
//! then by effective priority, highest first, then in queue order (FIFO).
//! Kept pure, with the time passed in, so the rule is tested on its own.

use std::cmp::Reverse;

use backroom_api::print::MAX_PRIORITY;

/// How waiting raises a job's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aging {
    /// After waiting this long a job has the top priority; 0 turns aging off.
    pub max_wait_ms: u64,
}

impl Aging {
    /// The priority a job that has waited since `queued_ms` has at `now_ms`.
    pub fn effective(self, priority: u8, queued_ms: i64, now_ms: i64) -> u8 {
        if self.max_wait_ms == 0 {
            return priority;
        }
        let waited = u128::try_from(now_ms.saturating_sub(queued_ms)).unwrap_or(0);
        let range = u128::from(MAX_PRIORITY - 1);
        let boost = waited * range / u128::from(self.max_wait_ms);
        let raised = (u128::from(priority) + boost).min(u128::from(MAX_PRIORITY));
        u8::try_from(raised).unwrap_or(MAX_PRIORITY)
    }
}

/// What the rule looks at in one waiting job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// 0 when not promoted; otherwise larger for later promotions.
    pub front: u64,
    pub priority: u8,
    /// When the job last started waiting (submitted, released or restarted).
    pub queued_ms: i64,
    /// Queue order: grows with every submission and restart.
    pub seq: u64,
}

/// A sort key: smaller goes out first.
pub type Rank = (Reverse<u64>, Reverse<u8>, u64);

impl Place {
    pub fn rank(&self, aging: Aging, now_ms: i64) -> Rank {
        let effective = aging.effective(self.priority, self.queued_ms, now_ms);
        (Reverse(self.front), Reverse(effective), self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn without_aging_the_priority_is_the_effective_priority() {
        let off = Aging { max_wait_ms: 0 };
        assert_eq!(off.effective(7, 0, 1_000 * MINUTE), 7);
    }

    #[test]
    fn a_job_reaches_the_top_after_the_maximum_wait() {
        let aging = Aging {
            max_wait_ms: 10 * MINUTE as u64,
        };
        assert_eq!(aging.effective(1, 0, 0), 1);
        assert_eq!(aging.effective(1, 0, 5 * MINUTE), 50);
        assert_eq!(aging.effective(1, 0, 10 * MINUTE - 1), 99);
        assert_eq!(aging.effective(1, 0, 10 * MINUTE), 100);
        assert_eq!(aging.effective(90, 0, 1_000 * MINUTE), 100);
    }

    #[test]
    fn a_clock_that_went_back_gives_no_boost() {
        let aging = Aging { max_wait_ms: 1000 };
        assert_eq!(aging.effective(20, 5_000, 1_000), 20);
    }

    #[test]
    fn promotion_beats_priority_and_priority_beats_age() {
        let aging = Aging { max_wait_ms: 0 };
        let old_low = Place {
            front: 0,
            priority: 10,
            queued_ms: 0,
            seq: 1,
        };
        let new_high = Place {
            priority: 90,
            seq: 2,
            ..old_low
        };
        let promoted = Place {
            front: 1,
            seq: 3,
            ..old_low
        };
        let mut places = [new_high, promoted, old_low];
        places.sort_by_key(|p| p.rank(aging, 0));
        assert_eq!(places.map(|p| p.seq), [3, 2, 1]);
    }
}
