//! Health checking and ejection, on the control side.
//!
//! Two sources say whether an endpoint answers: active checks (a thread
//! per endpoint PINGs it every `interval`, as Envoy's redis health checker
//! does) and live traffic (the cores' connections report connect failures,
//! timeouts and resets, and each connection that comes up: twemproxy's
//! `server_failure_limit`). The monitor thread turns them into a set of
//! endpoints that are down. When that set changes it makes a new topology
//! (`Reloader::set_health`): read policies skip what is down, and clusters
//! with `auto_eject` leave ejected primaries out of their rings, placing
//! keys as twemproxy does after it ejected the same hosts. An ejected
//! endpoint rejoins once `retry_timeout` has passed and it answers again.

use crate::config::{Cluster, LbPolicy};
use crate::control::lock;
use crate::control::reload::Reloader;
use crate::topology::{host_of, Health, Topology};
use crate::upstream::probe::{Probe, ProbeError};
use crate::upstream::reports::{Observed, Reports, Seen};
use crossbeam_channel::{Receiver, Sender};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `/clusters` and `/metrics` show of one endpoint's health.
#[derive(Debug, Clone, Default)]
pub struct EndpointHealth {
    /// Down in the topology the cores serve (set once they have it).
    pub down: bool,
    /// Out of its cluster's ring (auto_eject) in that topology.
    pub ejected: bool,
    /// The monitor's verdict, before the cores have it.
    failing: bool,
    pub ejections: u64,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// How long the last passed check took.
    pub last_check: Option<Duration>,
    /// Failures in a row on live traffic and in checks.
    traffic_failures: u32,
    check_failures: u32,
    /// Checks passed in a row.
    check_passes: u32,
    /// Since it went down: it answered the monitor's PING.
    answered: bool,
    down_since: Option<Instant>,
    /// When the monitor last PINGed it (down, without active checks).
    probed_at: Option<Instant>,
}

/// Every endpoint's health, by address; shared with the admin endpoint.
pub type HealthTable = Arc<Mutex<BTreeMap<SocketAddr, EndpointHealth>>>;

/// What one observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// It just went down (ejected, with `auto_eject`).
    Down,
    /// It is back.
    Back,
}

impl EndpointHealth {
    /// Folds one observation in, under cluster `c`'s rules.
    fn observe(&mut self, c: &Cluster, seen: Seen) -> Option<Change> {
        match seen {
            // A reply on a connection: failures in a row end. It does not
            // bring a down endpoint back: a core's reconnect while checks
            // still fail must not make it flap (see `may_rejoin`).
            Seen::Answered => self.traffic_failures = 0,
            Seen::Failed => self.traffic_failures = self.traffic_failures.saturating_add(1),
            Seen::CheckPassed(took) => {
                self.checks_passed += 1;
                self.last_check = Some(took);
                self.check_failures = 0;
                self.check_passes = self.check_passes.saturating_add(1);
            }
            Seen::CheckFailed => {
                self.checks_failed += 1;
                self.check_passes = 0;
                self.check_failures = self.check_failures.saturating_add(1);
            }
        }
        if self.failing {
            return self.may_rejoin(c).then_some(Change::Back);
        }
        let failing = self.traffic_failures >= c.failure_limit
            || c.health_check
                .as_ref()
                .is_some_and(|hc| self.check_failures >= hc.unhealthy_threshold);
        if !failing {
            return None;
        }
        self.failing = true;
        self.answered = false;
        self.check_passes = 0;
        self.down_since = Some(Instant::now());
        if c.auto_eject {
            self.ejections += 1;
        }
        Some(Change::Down)
    }

    /// Whether a down endpoint is back (and then marks it so): it answered
    /// (enough checks passed, or the monitor's PING), and an ejected one
    /// served its `retry_timeout`.
    fn may_rejoin(&mut self, c: &Cluster) -> bool {
        let served = !c.auto_eject
            || self
                .down_since
                .is_none_or(|t| t.elapsed() >= c.retry_timeout);
        let checks_say = c
            .health_check
            .as_ref()
            .is_some_and(|hc| self.check_passes >= hc.healthy_threshold);
        if !served || !(self.answered || checks_say) {
            return false;
        }
        self.failing = false;
        self.answered = false;
        self.traffic_failures = 0;
        self.check_failures = 0;
        self.down_since = None;
        self.probed_at = None;
        true
    }
}

/// Logs that the endpoint at `addr` answers again.
fn back(r: &Rules, addr: SocketAddr) {
    crate::info!(
        endpoint: &r.label,
        "endpoint ({addr}) of cluster {} answers again{}",
        r.cluster.name,
        if r.cluster.auto_eject {
            "; back in the ring"
        } else {
            ""
        }
    );
}

/// The rules that apply to an endpoint: those of the first cluster that
/// has it.
#[derive(Debug, Clone)]
struct Rules {
    cluster: Cluster,
    /// `host:port` as configured (TLS name, logs).
    label: String,
}

fn rules(topo: &Topology) -> BTreeMap<SocketAddr, Rules> {
    let mut out = BTreeMap::new();
    for (ci, c) in topo.config.clusters.iter().enumerate() {
        if c.lb_policy == LbPolicy::RedisCluster {
            continue;
        }
        for e in topo.endpoints.iter().filter(|e| e.cluster == ci) {
            out.entry(e.addr).or_insert_with(|| Rules {
                cluster: c.clone(),
                label: e.label.clone(),
            });
        }
    }
    out
}

/// How often the monitor looks at its rules even without reports.
const TICK: Duration = Duration::from_millis(100);
/// A down endpoint without active checks is PINGed this often...
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// ... and has this long to answer.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Monitor {
    reloader: Arc<Reloader>,
    reports: Receiver<Observed>,
    /// Checker threads send here too.
    checks: Sender<Observed>,
    table: HealthTable,
}

impl Monitor {
    pub fn new(
        reloader: Arc<Reloader>,
        reports: Reports,
        from_cores: Receiver<Observed>,
    ) -> Monitor {
        Monitor {
            reloader,
            reports: from_cores,
            checks: reports.sender(),
            table: Arc::default(),
        }
    }

    pub fn table(&self) -> HealthTable {
        self.table.clone()
    }

    pub fn spawn(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("keyway-health".into())
            .spawn(move || self.judge_endpoints())?;
        Ok(())
    }

    /// Until stopped: folds what the cores and checkers saw into each
    /// endpoint's health and ejects or restores endpoints.
    fn judge_endpoints(self) {
        let mut generation = 0;
        let mut rules = BTreeMap::new();
        let mut checkers: Vec<Arc<AtomicBool>> = Vec::new();
        loop {
            let status = self.reloader.status();
            if status.generation != generation {
                // A reload: new rules, new checkers.
                generation = status.generation;
                let topo = self.reloader.topology();
                rules = self::rules(&topo);
                for stop in checkers.drain(..) {
                    stop.store(true, Ordering::Relaxed);
                }
                for (addr, r) in &rules {
                    if let Some(hc) = &r.cluster.health_check {
                        let stop = Arc::new(AtomicBool::new(false));
                        checkers.push(stop.clone());
                        let check = Checker {
                            addr: *addr,
                            rules: r.clone(),
                            interval: hc.interval,
                            timeout: hc.timeout,
                            out: self.checks.clone(),
                            stop,
                        };
                        let _ = std::thread::Builder::new()
                            .name("keyway-check".into())
                            .spawn(move || check.check_until_stopped());
                    }
                }
                lock(&self.table).retain(|a, _| rules.contains_key(a));
            }
            let mut changed = false;
            match self.reports.recv_timeout(TICK) {
                Ok(o) => {
                    changed |= self.observe(&rules, o);
                    while let Ok(o) = self.reports.try_recv() {
                        changed |= self.observe(&rules, o);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
            changed |= self.rejoin(&rules);
            crate::log::flush_repeats();
            if changed {
                let down: Vec<SocketAddr> = lock(&self.table)
                    .iter()
                    .filter(|(_, h)| h.failing)
                    .map(|(a, _)| *a)
                    .collect();
                let health = Health { down };
                let topo = self.reloader.set_health(health);
                self.published(&topo);
            }
        }
    }

    /// Takes one observation; true when the endpoint went down or up.
    fn observe(&self, rules: &BTreeMap<SocketAddr, Rules>, o: Observed) -> bool {
        let Some(r) = rules.get(&o.addr) else {
            return false;
        };
        let c = &r.cluster;
        let mut table = lock(&self.table);
        let h = table.entry(o.addr).or_default();
        match h.observe(c, o.seen) {
            None => false,
            Some(Change::Back) => {
                back(r, o.addr);
                true
            }
            Some(Change::Down) => {
                crate::warn!(
                    endpoint: &r.label,
                    "endpoint of cluster {} is down ({}){}",
                    c.name,
                    if h.traffic_failures >= c.failure_limit {
                        format!("{} failures in a row on live traffic", h.traffic_failures)
                    } else {
                        format!("{} health checks failed in a row", h.check_failures)
                    },
                    if c.auto_eject {
                        format!("; ejected from the ring for at least {:?}", c.retry_timeout)
                    } else {
                        String::new()
                    }
                );
                true
            }
        }
    }

    /// Down endpoints without active checks, once an ejected one served
    /// its `retry_timeout`: PINGed at most once per `PROBE_EVERY` (nothing
    /// else reaches an ejected endpoint; its connections sit idle).
    fn rejoin(&self, rules: &BTreeMap<SocketAddr, Rules>) -> bool {
        let due: Vec<SocketAddr> = lock(&self.table)
            .iter()
            .filter(|(a, h)| {
                h.failing
                    && h.probed_at.is_none_or(|t| t.elapsed() >= PROBE_EVERY)
                    && rules.get(a).is_some_and(|r| {
                        r.cluster.health_check.is_none()
                            && (!r.cluster.auto_eject
                                || h.down_since
                                    .is_none_or(|t| t.elapsed() >= r.cluster.retry_timeout))
                    })
            })
            .map(|(a, _)| *a)
            .collect();
        let mut changed = false;
        for addr in due {
            let Some(r) = rules.get(&addr) else { continue };
            let answered = ping(r, addr, PROBE_TIMEOUT).is_ok();
            let mut table = lock(&self.table);
            let h = table.entry(addr).or_default();
            h.probed_at = Some(Instant::now());
            if answered {
                h.answered = true;
                if h.may_rejoin(&r.cluster) {
                    back(r, addr);
                    changed = true;
                }
            }
        }
        changed
    }

    /// What the cores now serve: which endpoints are down, and which of
    /// them the topology left out of a ring (none when a whole cluster is
    /// down: see `Topology::with_health`).
    fn published(&self, topo: &Topology) {
        let mut table = lock(&self.table);
        for (addr, h) in table.iter_mut() {
            h.ejected = false;
            h.down = topo.health.is_down(addr);
        }
        for (ci, ring) in topo.clusters.iter().enumerate() {
            for (si, shard) in ring.shards.iter().enumerate() {
                if ring.members.contains(&si) {
                    continue;
                }
                if let Some(e) = topo.endpoints.get(shard.primary) {
                    if e.cluster == ci {
                        table.entry(e.addr).or_default().ejected = true;
                    }
                }
            }
        }
    }
}

/// PING over a fresh connection (TLS and AUTH as configured).
fn ping(r: &Rules, addr: SocketAddr, timeout: Duration) -> Result<Duration, ProbeError> {
    let started = Instant::now();
    let mut probe = Probe::connect(&r.cluster, addr, host_of(&r.label), timeout, timeout)?;
    answered_ping(&mut probe, started)
}

/// PING on `probe`: Ok, how long since `started`, when it answers without
/// an error.
fn answered_ping(probe: &mut Probe, started: Instant) -> Result<Duration, ProbeError> {
    probe.call("PING", &[b"PING"])?;
    Ok(started.elapsed())
}

/// Active checks of one endpoint, on a thread of its own (a check that
/// waits out its timeout delays no other endpoint's).
struct Checker {
    addr: SocketAddr,
    rules: Rules,
    interval: Duration,
    timeout: Duration,
    out: Sender<Observed>,
    stop: Arc<AtomicBool>,
}

impl Checker {
    fn check_until_stopped(self) {
        // One connection, kept between checks as Envoy keeps its own.
        let mut conn: Option<Probe> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = (|| {
                let probe = match &mut conn {
                    Some(probe) => probe,
                    None => conn.insert(Probe::connect(
                        &self.rules.cluster,
                        self.addr,
                        host_of(&self.rules.label),
                        self.timeout,
                        self.timeout,
                    )?),
                };
                answered_ping(probe, started)
            })();
            let seen = match result {
                Ok(took) => Seen::CheckPassed(took),
                Err(why) => {
                    crate::debug!(endpoint: &self.rules.label, "health check failed: {why}");
                    conn = None;
                    Seen::CheckFailed
                }
            };
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let _ = self.out.send(Observed {
                addr: self.addr,
                seen,
            });
            std::thread::sleep(self.interval.saturating_sub(started.elapsed()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A cluster's rules from TOML `extra` (under its endpoints).
    fn cluster(extra: &str) -> Cluster {
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:6380\"\n\n[[clusters]]\nname = \"main\"\nlb_policy = \"ketama\"\nendpoints = [\"127.0.0.1:7001\", \"127.0.0.1:7002\"]\n{extra}\n\n[routes]\ncatch_all = \"main\"\n"
        );
        let config = Config::parse(&text, "test.toml").expect("config");
        config.clusters[0].clone()
    }

    #[test]
    fn failures_in_a_row_on_live_traffic_take_an_endpoint_down_and_a_reply_resets_them() {
        let c = cluster("auto_eject = true\nfailure_limit = 3\nretry_timeout = \"1ms\"");
        let mut h = EndpointHealth::default();
        assert_eq!(h.observe(&c, Seen::Failed), None);
        assert_eq!(h.observe(&c, Seen::Failed), None);
        assert_eq!(h.observe(&c, Seen::Answered), None, "a reply ends the run");
        assert_eq!(h.observe(&c, Seen::Failed), None);
        assert_eq!(h.observe(&c, Seen::Failed), None);
        assert_eq!(h.observe(&c, Seen::Failed), Some(Change::Down));
        assert_eq!(h.ejections, 1);
        // A core's reconnect answering does not bring it back by itself:
        // the monitor's PING (or checks) must.
        assert_eq!(h.observe(&c, Seen::Answered), None);
        std::thread::sleep(Duration::from_millis(5));
        h.answered = true;
        assert!(h.may_rejoin(&c));
        assert!(!h.failing);
    }

    #[test]
    fn an_ejected_endpoint_serves_its_retry_timeout_before_it_rejoins() {
        let c = cluster("auto_eject = true\nfailure_limit = 1\nretry_timeout = \"1h\"");
        let mut h = EndpointHealth::default();
        assert_eq!(h.observe(&c, Seen::Failed), Some(Change::Down));
        h.answered = true;
        assert!(!h.may_rejoin(&c), "an hour has not passed");
        // Without auto_eject there is nothing to serve: an answer is enough.
        let c = cluster("failure_limit = 1\nretry_timeout = \"1h\"");
        let mut h = EndpointHealth::default();
        assert_eq!(h.observe(&c, Seen::Failed), Some(Change::Down));
        assert_eq!(h.ejections, 0, "not ejected without auto_eject");
        h.answered = true;
        assert!(h.may_rejoin(&c));
    }

    #[test]
    fn health_checks_decide_with_their_thresholds() {
        // Defaults: down after 3 failed checks, back after 2 passed.
        let c = cluster("failure_limit = 100\nhealth_check = { interval = \"1s\" }");
        let mut h = EndpointHealth::default();
        let passed = Seen::CheckPassed(Duration::from_millis(1));
        assert_eq!(h.observe(&c, Seen::CheckFailed), None);
        assert_eq!(h.observe(&c, Seen::CheckFailed), None);
        assert_eq!(h.observe(&c, passed), None, "a pass ends the run");
        for _ in 0..2 {
            assert_eq!(h.observe(&c, Seen::CheckFailed), None);
        }
        assert_eq!(h.observe(&c, Seen::CheckFailed), Some(Change::Down));
        assert_eq!(h.observe(&c, passed), None, "one pass is not enough");
        assert_eq!(
            h.observe(&c, Seen::CheckFailed),
            None,
            "and a failure starts over"
        );
        assert_eq!(h.observe(&c, passed), None);
        assert_eq!(h.observe(&c, passed), Some(Change::Back));
        assert_eq!((h.checks_passed, h.checks_failed), (4, 6));
        assert_eq!(h.last_check, Some(Duration::from_millis(1)));
    }
}
