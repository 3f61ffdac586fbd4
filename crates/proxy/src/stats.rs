//! Counters for the admin port's `stats`: totals, status classes, bytes,
//! gauges, request rates over a sliding minute, and the busiest hosts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use backroom_api::proxy::{HostCount, Stats as Snapshot, StatusClasses};

/// The seconds of history kept for the rates.
const WINDOW_SECS: usize = 60;
/// Distinct hosts tracked before the least busy are forgotten.
const HOST_LIMIT: usize = 4096;
/// Hosts listed in a snapshot.
const TOP_HOSTS: usize = 10;

/// Per-second request counts and per-host totals. Touched once per finished
/// request, briefly, so a std mutex serves.
struct Window {
    /// Requests finished in each second, indexed by second modulo the size.
    ring: [u64; WINDOW_SECS],
    /// The second (since start) that `ring` was last advanced to.
    current: u64,
    hosts: HashMap<String, u64>,
}

impl Window {
    fn advance(&mut self, now: u64) {
        let gap = now.saturating_sub(self.current).min(WINDOW_SECS as u64);
        for step in 1..=gap {
            self.ring[((self.current + step) % WINDOW_SECS as u64) as usize] = 0;
        }
        self.current = self.current.max(now);
    }

    fn rate(&self, secs: u64) -> f64 {
        let total: u64 = (0..secs)
            .map(|back| {
                self.ring
                    [((self.current + WINDOW_SECS as u64 - back) % WINDOW_SECS as u64) as usize]
            })
            .sum();
        total as f64 / secs as f64
    }
}

pub struct Stats {
    started: Instant,
    requests: AtomicU64,
    classes: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub active_connections: AtomicU64,
    pub active_tunnels: AtomicU64,
    window: Mutex<Window>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            started: Instant::now(),
            requests: AtomicU64::new(0),
            classes: Default::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            active_connections: AtomicU64::new(0),
            active_tunnels: AtomicU64::new(0),
            window: Mutex::new(Window {
                ring: [0; WINDOW_SECS],
                current: 0,
                hosts: HashMap::new(),
            }),
        }
    }
}

impl Stats {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        // Every update leaves the window consistent, so a poisoned lock is
        // still good to use.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one finished request or tunnel.
    pub fn record(&self, status: u16, bytes_in: u64, bytes_out: u64, host: Option<&str>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.classes[usize::from(class)].fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        let now = self.started.elapsed().as_secs();
        let mut window = self.window();
        window.advance(now);
        let slot = (now % WINDOW_SECS as u64) as usize;
        window.ring[slot] += 1;
        let Some(host) = host else { return };
        // A host seen before, the usual case, costs no allocation.
        if let Some(count) = window.hosts.get_mut(host) {
            *count += 1;
            return;
        }
        if window.hosts.len() >= HOST_LIMIT {
            forget_quiet_hosts(&mut window.hosts);
        }
        window.hosts.insert(host.to_owned(), 1);
    }

    pub fn snapshot(&self) -> Snapshot {
        let class = |i: usize| self.classes[i].load(Ordering::Relaxed);
        let mut window = self.window();
        window.advance(self.started.elapsed().as_secs());
        let mut top: Vec<HostCount> = window
            .hosts
            .iter()
            .map(|(host, requests)| HostCount {
                host: host.clone(),
                requests: *requests,
            })
            .collect();
        top.sort_by(|a, b| {
            b.requests
                .cmp(&a.requests)
                .then_with(|| a.host.cmp(&b.host))
        });
        top.truncate(TOP_HOSTS);
        Snapshot {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            requests: self.requests.load(Ordering::Relaxed),
            by_status: StatusClasses {
                informational: class(0),
                success: class(1),
                redirection: class(2),
                client_error: class(3),
                server_error: class(4),
            },
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            active_connections: self.active_connections.load(Ordering::Relaxed),
            active_tunnels: self.active_tunnels.load(Ordering::Relaxed),
            rate_1s: window.rate(1),
            rate_10s: window.rate(10),
            rate_60s: window.rate(60),
            top_hosts: top,
        }
    }
}

/// Keeps the busier half of the hosts, so the map stays bounded while the
/// hosts that matter stay counted.
fn forget_quiet_hosts(hosts: &mut HashMap<String, u64>) {
    let mut counts: Vec<u64> = hosts.values().copied().collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    hosts.retain(|_, n| *n > median);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_class_bytes_and_host() {
        let stats = Stats::default();
        stats.record(200, 10, 100, Some("a.test"));
        stats.record(204, 0, 0, Some("a.test"));
        stats.record(404, 1, 2, Some("b.test"));
        stats.record(502, 0, 0, None);
        let snap = stats.snapshot();
        assert_eq!(snap.requests, 4);
        assert_eq!(snap.by_status.success, 2);
        assert_eq!(snap.by_status.client_error, 1);
        assert_eq!(snap.by_status.server_error, 1);
        assert_eq!((snap.bytes_in, snap.bytes_out), (11, 102));
        assert_eq!(snap.top_hosts[0].host, "a.test");
        assert_eq!(snap.top_hosts[0].requests, 2);
        assert!(snap.rate_60s > 0.0);
        assert!(
            (snap.rate_60s * 60.0 - 4.0).abs() < 1e-9,
            "{}",
            snap.rate_60s
        );
    }

    #[test]
    fn the_window_forgets_seconds_that_slid_out() {
        let mut window = Window {
            ring: [0; WINDOW_SECS],
            current: 0,
            hosts: HashMap::new(),
        };
        window.ring[0] = 5;
        window.advance(3);
        window.ring[3] = 2;
        assert!((window.rate(1) - 2.0).abs() < 1e-9);
        assert!((window.rate(10) - 0.7).abs() < 1e-9);
        window.advance(200);
        assert_eq!(window.rate(60), 0.0);
    }

    #[test]
    fn the_host_map_stays_bounded() {
        let mut hosts: HashMap<String, u64> = (0..10).map(|i| (format!("h{i}"), i)).collect();
        forget_quiet_hosts(&mut hosts);
        assert_eq!(hosts.len(), 4);
        assert!(hosts.contains_key("h9"));
    }
}
