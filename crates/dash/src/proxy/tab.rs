//! The Proxy tab's state: the live access log (follow, pause, filter) and
//! the proxy's statistics with a history of its request rate.

use std::collections::VecDeque;

use backroom_api::proxy::{AccessRecord, Stats};

use crate::filter::Filter;
use crate::keymap::Action;
use crate::update::Level;

/// How many access-log records the tab keeps; older ones fall off.
pub const LOG_CAPACITY: usize = 2000;

/// How many request-rate samples the sparkline keeps.
pub const RATE_CAPACITY: usize = 240;

/// News from the proxy task.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Subscribed: the latest records, oldest first.
    Recent(Vec<AccessRecord>),
    /// One record, as it is written.
    Record(AccessRecord),
    Stats(Stats),
    /// The connection broke; the task reconnects.
    Lost(String),
}

/// The Proxy tab's state.
#[derive(Debug, Clone, Default)]
pub struct ProxyTab {
    pub connected: bool,
    /// Oldest first.
    pub records: VecDeque<AccessRecord>,
    /// Records that arrived while paused, shown on resume.
    pub held: Vec<AccessRecord>,
    pub paused: bool,
    /// How many matching records, from the newest, are scrolled past;
    /// following means 0.
    pub scroll: usize,
    pub filter: Filter,
    pub stats: Option<Stats>,
    /// Tenths of requests per second over ten seconds at each stats poll,
    /// oldest first.
    pub rates: VecDeque<u64>,
    /// Requests logged, and how many of them failed with a 5xx, since the
    /// last stats poll: the Overview's summary of the traffic.
    since_stats: (u64, u64),
}

impl ProxyTab {
    /// What a message from the proxy task puts in the Overview's events:
    /// at each stats poll, the requests logged since the last one.
    pub fn news(&self, msg: &Msg) -> Option<(Level, String)> {
        let Msg::Stats(stats) = msg else {
            return None;
        };
        let (requests, failed) = self.since_stats;
        if requests == 0 {
            return None;
        }
        let rate = stats.rate_10s;
        if failed == 0 {
            return Some((Level::Info, format!("{requests} requests ({rate:.1}/s)")));
        }
        let text = format!("{requests} requests ({rate:.1}/s), {failed} failed with 5xx");
        Some((Level::Warn, text))
    }

    fn count(&mut self, record: &AccessRecord) {
        self.since_stats.0 += 1;
        if record.status >= 500 {
            self.since_stats.1 += 1;
        }
    }

    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Recent(records) => {
                self.connected = true;
                self.records.clear();
                self.held.clear();
                self.scroll = 0;
                for record in records {
                    self.push(record);
                }
            }
            Msg::Record(record) if self.paused => {
                self.count(&record);
                self.held.push(record);
            }
            Msg::Record(record) => {
                self.count(&record);
                // Someone reading older records keeps their place.
                if self.scroll > 0 && self.filter.matches(&searchable(&record)) {
                    self.scroll += 1;
                }
                self.push(record);
            }
            Msg::Stats(stats) => {
                self.since_stats = (0, 0);
                if self.rates.len() == RATE_CAPACITY {
                    self.rates.pop_front();
                }
                // In tenths, so that less than one request a second still
                // draws a bar.
                self.rates.push_back((stats.rate_10s * 10.0).round() as u64);
                self.stats = Some(stats);
            }
            Msg::Lost(_) => self.connected = false,
        }
    }

    fn push(&mut self, record: AccessRecord) {
        if self.records.len() == LOG_CAPACITY {
            self.records.pop_front();
        }
        self.records.push_back(record);
    }

    /// Whether the view sticks to the newest record.
    pub fn following(&self) -> bool {
        self.scroll == 0 && !self.paused
    }

    /// The records that pass the filter, newest first.
    pub fn visible(&self) -> impl Iterator<Item = &AccessRecord> + '_ {
        let active = self.filter.is_active();
        self.records
            .iter()
            .rev()
            .filter(move |r| !active || self.filter.matches(&searchable(r)))
    }

    pub fn perform(&mut self, action: Action) {
        match action {
            Action::Filter => self.filter.start(),
            // The newest record is at the top, so down goes back in time,
            // as on the Overview.
            Action::Down => {
                let last = self.visible().count().saturating_sub(1);
                self.scroll = (self.scroll + 1).min(last);
            }
            Action::Up => self.scroll = self.scroll.saturating_sub(1),
            Action::Follow => {
                self.scroll = 0;
                self.resume();
            }
            Action::PauseLog if self.paused => self.resume(),
            Action::PauseLog => self.paused = true,
            _ => {}
        }
    }

    fn resume(&mut self) {
        self.paused = false;
        for record in std::mem::take(&mut self.held) {
            self.push(record);
        }
    }
}

/// The text the filter looks at: method, target, status, client, user.
pub fn searchable(record: &AccessRecord) -> String {
    format!(
        "{} {} {} {} {}",
        record.method, record.target, record.status, record.client, record.user
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn record(target: &str, status: u16) -> AccessRecord {
        AccessRecord {
            time_ms: 0,
            client: "10.0.0.7:5100".into(),
            user: "-".into(),
            method: "GET".into(),
            target: target.into(),
            status,
            bytes_in: 0,
            bytes_out: 1200,
            duration_ms: 12,
            upstream: "-".into(),
            user_agent: String::new(),
            referer: String::new(),
        }
    }

    fn targets(tab: &ProxyTab) -> Vec<&str> {
        tab.visible().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn records_arrive_newest_first_and_pause_holds_them() {
        let mut tab = ProxyTab::default();
        tab.apply(Msg::Recent(vec![record("http://a/", 200)]));
        tab.apply(Msg::Record(record("http://b/", 404)));
        assert_eq!(targets(&tab), ["http://b/", "http://a/"]);
        tab.perform(Action::PauseLog);
        tab.apply(Msg::Record(record("http://c/", 200)));
        assert_eq!(targets(&tab).len(), 2, "paused: nothing new shows");
        assert!(!tab.following());
        tab.perform(Action::PauseLog);
        assert_eq!(targets(&tab)[0], "http://c/", "resuming shows what came");
        assert!(tab.following());
    }

    #[test]
    fn scrolling_back_keeps_the_place_and_follow_returns_to_the_newest() {
        let mut tab = ProxyTab::default();
        tab.apply(Msg::Recent(vec![
            record("http://a/", 200),
            record("http://b/", 200),
        ]));
        tab.perform(Action::Down);
        assert_eq!(tab.scroll, 1);
        tab.apply(Msg::Record(record("http://c/", 200)));
        assert_eq!(tab.scroll, 2, "the same record stays in view");
        tab.perform(Action::Follow);
        assert_eq!(tab.scroll, 0);
    }

    #[test]
    fn each_stats_poll_summarises_the_requests_since_the_last() {
        let mut tab = ProxyTab::default();
        let stats = Msg::Stats(Stats {
            rate_10s: 0.3,
            ..Stats::default()
        });
        assert_eq!(tab.news(&stats), None, "no traffic, no news");
        tab.apply(Msg::Record(record("http://a/", 200)));
        tab.apply(Msg::Record(record("http://b/", 502)));
        let (level, text) = tab.news(&stats).expect("a summary");
        assert_eq!(level, Level::Warn);
        assert_eq!(text, "2 requests (0.3/s), 1 failed with 5xx");
        tab.apply(stats.clone());
        assert_eq!(tab.news(&stats), None, "counted once");
    }

    #[test]
    fn the_filter_narrows_the_log() {
        let mut tab = ProxyTab::default();
        tab.apply(Msg::Recent(vec![
            record("http://a/", 200),
            record("http://b/", 502),
        ]));
        tab.filter.start();
        for c in "502".chars() {
            tab.filter.handle_key(crossterm::event::KeyEvent::new(
                crossterm::event::KeyCode::Char(c),
                crossterm::event::KeyModifiers::NONE,
            ));
        }
        assert_eq!(targets(&tab), ["http://b/"]);
    }

    #[test]
    fn stats_feed_the_rate_history_and_the_log_is_bounded() {
        let mut tab = ProxyTab::default();
        for rate in [0.14, 2.6] {
            tab.apply(Msg::Stats(Stats {
                rate_10s: rate,
                ..Stats::default()
            }));
        }
        assert_eq!(tab.rates, [1, 26], "in tenths, so light traffic shows");
        for i in 0..LOG_CAPACITY + 3 {
            tab.apply(Msg::Record(record(&format!("http://h/{i}"), 200)));
        }
        assert_eq!(tab.records.len(), LOG_CAPACITY);
    }
}
