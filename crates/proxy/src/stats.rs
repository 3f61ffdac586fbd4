//! Counters for the admin port's `stats` and `info`'s vital signs: totals,
//! status classes, bytes, gauges, request rates over a sliding minute, the
//! share of 5xx answers, and the busiest hosts.

use std::collections::HashMap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use backroom_api::proxy::{HostCount, Stats as Snapshot, StatusClasses, vital};
use backroom_daemon::rate::Rate;
use backroom_frame::server::{Vital, unit};
use parking_lot::{Mutex, MutexGuard};

/// Distinct hosts tracked before the least busy are forgotten.
const HOST_LIMIT: usize = 4096;
/// Hosts listed in a snapshot.
const TOP_HOSTS: usize = 10;
/// The seconds over which the vital signs' rates are taken.
const VITAL_SECS: u64 = 10;

pub struct Stats {
    started: Instant,
    requests: AtomicU64,
    classes: [AtomicU64; 5],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub active_connections: AtomicU64,
    pub active_tunnels: AtomicU64,
    /// Requests finished per second.
    rate: Rate,
    /// Requests answered with a 5xx status, per second.
    server_errors: Rate,
    /// Requests per host. Touched once per finished request, briefly, so a
    /// std mutex serves.
    hosts: Mutex<HashMap<String, u64>>,
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
            rate: Rate::default(),
            server_errors: Rate::default(),
            hosts: Mutex::new(HashMap::new()),
        }
    }
}

impl Stats {
    fn hosts(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // Every update leaves the map consistent, so a poisoned lock is
        // still good to use.
        self.hosts.lock()
    }

    /// Counts one finished request or tunnel.
    pub fn record(&self, status: u16, bytes_in: u64, bytes_out: u64, host: Option<&str>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = (status / 100).checked_sub(1).filter(|c| *c < 5) {
            self.classes[usize::from(class)].fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        self.rate.add(1);
        if status / 100 == 5 {
            self.server_errors.add(1);
        }
        let Some(host) = host else { return };
        let mut hosts = self.hosts();
        // A host seen before, the usual case, costs no allocation.
        if let Some(count) = hosts.get_mut(host) {
            *count += 1;
            return;
        }
        if hosts.len() >= HOST_LIMIT {
            forget_quiet_hosts(&mut hosts);
        }
        hosts.insert(host.to_owned(), 1);
    }

    pub fn snapshot(&self) -> Snapshot {
        let class = |i: usize| self.classes[i].load(Ordering::Relaxed);
        let mut top: Vec<HostCount> = self
            .hosts()
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
            rate_1s: self.rate.per_sec(1),
            rate_10s: self.rate.per_sec(10),
            rate_60s: self.rate.per_sec(60),
            top_hosts: top,
        }
    }

    /// The vital signs of the admin port's `info`: counters only, no wait.
    pub fn vitals(&self) -> Vec<Vital> {
        let requests = self.rate.sum(VITAL_SECS);
        let errors = self.server_errors.sum(VITAL_SECS);
        let share = if requests == 0 {
            0.0
        } else {
            errors as f64 * 100.0 / requests as f64
        };
        let per_sec = requests as f64 / VITAL_SECS as f64;
        vec![
            Vital::new(vital::REQUESTS, per_sec, unit::PER_SEC),
            Vital::count(vital::TUNNELS, self.active_tunnels.load(Ordering::Relaxed)),
            Vital::new(vital::SERVER_ERRORS, share, unit::PERCENT)
                .alert_if(share > vital::SERVER_ERRORS_ALERT_PERCENT),
            Vital::count(
                vital::CONNECTIONS,
                self.active_connections.load(Ordering::Relaxed),
            ),
        ]
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
    fn the_5xx_share_is_of_the_last_ten_seconds_requests() {
        let stats = Stats::default();
        stats.record(200, 0, 0, None);
        stats.record(502, 0, 0, None);
        let vitals = stats.vitals();
        let share = vitals
            .iter()
            .find(|v| v.name == vital::SERVER_ERRORS)
            .expect("5xx");
        assert!((share.value - 50.0).abs() < 1e-9, "{}", share.value);
        assert!(share.alert);
    }

    #[test]
    fn the_host_map_stays_bounded() {
        let mut hosts: HashMap<String, u64> = (0..10).map(|i| (format!("h{i}"), i)).collect();
        forget_quiet_hosts(&mut hosts);
        assert_eq!(hosts.len(), 4);
        assert!(hosts.contains_key("h9"));
    }
}
