//! Per-core counters and HDR latency histograms. Each core owns its
//! `CoreStats` (plain `Cell`s, no atomics, nothing shared); the control
//! thread gets copies (`CoreSnapshot`) over a channel and merges them.
pub mod counters;
pub mod hot;
pub mod latency;
pub mod plot;

pub use counters::{
    CoreCounter, EndpointCounter, Kind, MirrorCounter, RedirectCounter, RingCounter, Row,
};

use crate::command::{CommandSpec, COMMANDS};
use counters::{add_into, add_to, Cells};
use hdrhistogram::Histogram;
use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// Kinds of error replies keyway itself produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Protocol,
    UnknownCommand,
    Unsupported,
    WrongArity,
    CrossSlot,
    Auth,
    UpstreamTimeout,
    UpstreamUnavailable,
    Other,
}

pub const ERROR_KINDS: [(ErrorKind, &str); 9] = [
    (ErrorKind::Protocol, "protocol"),
    (ErrorKind::UnknownCommand, "unknown_command"),
    (ErrorKind::Unsupported, "unsupported"),
    (ErrorKind::WrongArity, "wrong_arity"),
    (ErrorKind::CrossSlot, "crossslot"),
    (ErrorKind::Auth, "auth"),
    (ErrorKind::UpstreamTimeout, "upstream_timeout"),
    (ErrorKind::UpstreamUnavailable, "upstream_unavailable"),
    (ErrorKind::Other, "other"),
];

/// Latency groups of client requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Read = 0,
    Write = 1,
    Multi = 2,
    Other = 3,
}

pub const GROUPS: [&str; 5] = ["read", "write", "multi", "other", "all"];

/// When this process started serving (INFO's uptime).
pub fn started_at() -> std::time::Instant {
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(std::time::Instant::now)
}

/// Latencies are recorded in microseconds, up to an hour.
/// Entry `i` of a per-cluster table, made when missing.
fn entry<T: Default>(v: &RefCell<Vec<T>>, i: usize) -> Ref<'_, T> {
    if v.borrow().len() <= i {
        v.borrow_mut().resize_with(i + 1, T::default);
    }
    Ref::map(v.borrow(), |v| &v[i])
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

#[inline]
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// A cluster's counters as a mirror target, and as a redis_cluster cluster.
type MirrorStats = Cells<{ MirrorCounter::N }>;
type RedirectStats = Cells<{ RedirectCounter::N }>;

#[derive(Default)]
pub struct EndpointStats {
    counts: Cells<{ EndpointCounter::N }>,
    pub rtt: RefCell<Option<Histogram<u64>>>,
}

impl EndpointStats {
    fn new() -> Rc<EndpointStats> {
        Rc::new(EndpointStats {
            rtt: RefCell::new(Some(new_histogram())),
            ..Default::default()
        })
    }

    #[inline]
    pub fn count(&self, counter: EndpointCounter) {
        self.counts.add(counter as usize, 1);
    }

    pub fn get(&self, counter: EndpointCounter) -> u64 {
        self.counts.get(counter as usize)
    }

    /// Records `n` round trips of `rtt` each.
    #[inline]
    pub fn rtt(&self, rtt: Duration, n: u64) {
        if let Some(h) = self.rtt.borrow_mut().as_mut() {
            h.saturating_record_n(micros(rtt), n);
        }
    }
}

pub struct CoreStats {
    pub core: usize,
    counts: Cells<{ CoreCounter::N }>,
    commands: Vec<Cell<u64>>,
    unknown_commands: Cell<u64>,
    errors: Cells<{ ERROR_KINDS.len() }>,
    /// Per cluster, as a mirror target (see `mirror`).
    mirrors: RefCell<Vec<MirrorStats>>,
    /// Per cluster (redis_cluster ones count; see `redirect`).
    redirects: RefCell<Vec<RedirectStats>>,
    /// Per endpoint; grows when a Redis Cluster reveals new nodes. Each
    /// connection holds its endpoint's entry.
    endpoints: RefCell<Vec<Rc<EndpointStats>>>,
    /// Request latency per group (read, write, multi, other). The fifth
    /// group of a snapshot, all requests, is their sum, made when the
    /// snapshot is taken rather than recorded twice per batch.
    latency: RefCell<[Histogram<u64>; 4]>,
    /// The keys this core's requests touch most (sampled).
    pub hot: hot::HotKeys,
}

fn command_index(spec: &CommandSpec) -> usize {
    (spec as *const CommandSpec as usize - COMMANDS.as_ptr() as usize)
        / std::mem::size_of::<CommandSpec>()
}

impl CoreStats {
    pub fn new(core: usize, endpoints: usize, clusters: usize) -> CoreStats {
        CoreStats {
            core,
            counts: Cells::default(),
            commands: (0..COMMANDS.len()).map(|_| Cell::new(0)).collect(),
            unknown_commands: Cell::new(0),
            errors: Default::default(),
            mirrors: RefCell::new((0..clusters).map(|_| MirrorStats::default()).collect()),
            redirects: RefCell::new((0..clusters).map(|_| RedirectStats::default()).collect()),
            endpoints: RefCell::new((0..endpoints).map(|_| EndpointStats::new()).collect()),
            latency: RefCell::new(std::array::from_fn(|_| new_histogram())),
            hot: hot::HotKeys::new(0),
        }
    }

    /// Adds `n` to one of the core's own counters.
    #[inline]
    pub fn count(&self, counter: CoreCounter, n: u64) {
        self.counts.add(counter as usize, n);
    }

    /// Takes `n` off a gauge (client connections).
    #[inline]
    pub fn uncount(&self, counter: CoreCounter, n: u64) {
        self.counts.sub(counter as usize, n);
    }

    pub fn get(&self, counter: CoreCounter) -> u64 {
        self.counts.get(counter as usize)
    }

    #[inline]
    pub fn command(&self, spec: Option<&CommandSpec>) {
        match spec {
            Some(s) => add_to(&self.commands[command_index(s)], 1),
            None => add_to(&self.unknown_commands, 1),
        }
    }

    /// Commands counted so far (known and unknown).
    pub fn commands_total(&self) -> u64 {
        self.commands.iter().map(Cell::get).sum::<u64>() + self.unknown_commands.get()
    }

    /// Error replies keyway produced so far.
    pub fn errors_total(&self) -> u64 {
        self.errors.values().iter().sum()
    }

    #[inline]
    pub fn error(&self, kind: ErrorKind) {
        self.errors.add(kind as usize, 1);
    }

    /// Every request of a batch completed at once: `counts` per group.
    pub fn record_batch(&self, counts: &[u64; 4], latency: Duration) {
        let us = micros(latency);
        let mut h = self.latency.borrow_mut();
        for (h, &n) in h.iter_mut().zip(counts) {
            if n > 0 {
                h.saturating_record_n(us, n);
            }
        }
    }

    /// Counts one on a mirror counter of `cluster`. A reply of a request
    /// sent before a reload may name a cluster number the new
    /// configuration lacks: the entry is made rather than the core stopped.
    #[inline]
    pub fn mirror(&self, cluster: usize, counter: MirrorCounter) {
        entry(&self.mirrors, cluster).add(counter as usize, 1);
    }

    /// Counts one on a redirection counter of `cluster` (see `mirror`).
    #[inline]
    pub fn redirect(&self, cluster: usize, counter: RedirectCounter) {
        entry(&self.redirects, cluster).add(counter as usize, 1);
    }

    /// After a reload: endpoint `i` of the new configuration keeps the
    /// counters of old endpoint `endpoints[i]` (None: a new endpoint), and
    /// so do clusters. Counters of what was removed are dropped.
    pub fn reindex(&self, endpoints: &[Option<usize>], clusters: &[Option<usize>]) {
        let mut eps = self.endpoints.borrow_mut();
        let old = std::mem::take(&mut *eps);
        *eps = endpoints
            .iter()
            .map(|o| {
                o.and_then(|o| old.get(o).cloned())
                    .unwrap_or_else(EndpointStats::new)
            })
            .collect();
        fn move_over<T: Default>(v: &RefCell<Vec<T>>, map: &[Option<usize>]) {
            let mut old: Vec<Option<T>> = v.take().into_iter().map(Some).collect();
            *v.borrow_mut() = map
                .iter()
                .map(|o| o.and_then(|o| old.get_mut(o)?.take()).unwrap_or_default())
                .collect();
        }
        move_over(&self.mirrors, clusters);
        move_over(&self.redirects, clusters);
        self.hot.reindex(endpoints);
    }

    /// Endpoint `endpoint`'s counters are `stats` (connections carried over
    /// a reload keep theirs).
    pub fn set_endpoint(&self, endpoint: usize, stats: Rc<EndpointStats>) {
        let mut eps = self.endpoints.borrow_mut();
        while eps.len() <= endpoint {
            eps.push(EndpointStats::new());
        }
        eps[endpoint] = stats;
    }

    /// The stats of `endpoint`, made if it is new to this core.
    pub fn endpoint(&self, endpoint: usize) -> Rc<EndpointStats> {
        let mut eps = self.endpoints.borrow_mut();
        while eps.len() <= endpoint {
            eps.push(EndpointStats::new());
        }
        eps[endpoint].clone()
    }

    pub fn snapshot(&self, endpoint_states: Vec<ConnState>) -> CoreSnapshot {
        let e = |c: &Cell<u64>| c.get();
        let states = endpoint_states
            .into_iter()
            .chain(std::iter::repeat(ConnState::Idle));
        CoreSnapshot {
            core: self.core,
            counts: self.counts.values(),
            commands: self.commands.iter().map(e).collect(),
            unknown_commands: self.unknown_commands.get(),
            errors: self.errors.values(),
            mirrors: self.mirrors.borrow().iter().map(Cells::values).collect(),
            redirects: self.redirects.borrow().iter().map(Cells::values).collect(),
            endpoints: self
                .endpoints
                .borrow()
                .iter()
                .zip(states)
                .map(|(s, state)| EndpointSnapshot {
                    counts: s.counts.values(),
                    state,
                    rtt: s.rtt.borrow().clone().unwrap_or_else(new_histogram),
                })
                .collect(),
            latency: {
                let groups = self.latency.borrow();
                let mut all = new_histogram();
                for g in groups.iter() {
                    let _ = all.add(g);
                }
                let [read, write, multi, other] = groups.clone();
                [read, write, multi, other, all]
            },
            ring: RingSnapshot::default(),
            hot: self.hot.top(std::time::Instant::now()),
        }
    }
}

/// An upstream connection's state, worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConnState {
    /// Waiting before connecting again after a failure.
    Backoff,
    /// No connection and none wanted yet.
    Idle,
    Connecting,
    Up,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Backoff => "backoff",
            ConnState::Idle => "idle",
            ConnState::Connecting => "connecting",
            ConnState::Up => "up",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EndpointSnapshot {
    /// Indexed by `EndpointCounter`.
    pub counts: [u64; EndpointCounter::N],
    /// Connection state on this core.
    pub state: ConnState,
    pub rtt: Histogram<u64>,
}

impl EndpointSnapshot {
    pub fn get(&self, counter: EndpointCounter) -> u64 {
        self.counts[counter as usize]
    }
}

/// The core's io_uring: how it is set up and how much work it did.
#[derive(Debug, Clone, Default)]
pub struct RingSnapshot {
    /// `defer_taskrun` or `coop_taskrun` (see net::ring::Mode).
    pub mode: &'static str,
    /// Indexed by `RingCounter`.
    pub counts: [u64; RingCounter::N],
}

/// A copy of one core's stats, made on that core and sent to the control thread.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub core: usize,
    /// Indexed by `CoreCounter`.
    pub counts: [u64; CoreCounter::N],
    pub commands: Vec<u64>,
    pub unknown_commands: u64,
    /// Indexed by `ErrorKind`.
    pub errors: [u64; ERROR_KINDS.len()],
    /// Per cluster as a mirror target, indexed by `MirrorCounter`.
    pub mirrors: Vec<[u64; MirrorCounter::N]>,
    /// Per cluster, indexed by `RedirectCounter`.
    pub redirects: Vec<[u64; RedirectCounter::N]>,
    pub endpoints: Vec<EndpointSnapshot>,
    pub latency: [Histogram<u64>; 5],
    /// Filled in by the core (the ring is not the stats' to know).
    pub ring: RingSnapshot,
    /// Its hot keys, hottest first (endpoints in this core's numbers).
    pub hot: Vec<hot::HotKey>,
}

impl CoreSnapshot {
    pub fn get(&self, counter: CoreCounter) -> u64 {
        self.counts[counter as usize]
    }

    /// Sum of several cores (counters added, histograms merged).
    pub fn total(cores: &[CoreSnapshot]) -> Option<CoreSnapshot> {
        let mut it = cores.iter();
        let mut t = it.next()?.clone();
        t.core = usize::MAX;
        for c in it {
            add_into(&mut t.counts, &c.counts);
            for (a, b) in t.commands.iter_mut().zip(&c.commands) {
                *a += b;
            }
            t.unknown_commands += c.unknown_commands;
            add_into(&mut t.errors, &c.errors);
            for (a, b) in t.mirrors.iter_mut().zip(&c.mirrors) {
                add_into(a, b);
            }
            for (a, b) in t.redirects.iter_mut().zip(&c.redirects) {
                add_into(a, b);
            }
            add_into(&mut t.ring.counts, &c.ring.counts);
            // Cores learn of new cluster nodes at slightly different times.
            if t.endpoints.len() < c.endpoints.len() {
                let more = c.endpoints[t.endpoints.len()..]
                    .iter()
                    .map(|e| EndpointSnapshot {
                        counts: [0; EndpointCounter::N],
                        state: ConnState::Idle,
                        rtt: Histogram::new_from(&e.rtt),
                    });
                t.endpoints.extend(more.collect::<Vec<_>>());
            }
            for (a, b) in t.endpoints.iter_mut().zip(&c.endpoints) {
                add_into(&mut a.counts, &b.counts);
                let _ = a.rtt.add(&b.rtt);
                if b.state == ConnState::Up {
                    a.state = ConnState::Up;
                }
            }
            for (a, b) in t.latency.iter_mut().zip(&c.latency) {
                let _ = a.add(b);
            }
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup;

    #[test]
    fn counts_and_merges() {
        let a = CoreStats::new(0, 1, 1);
        let b = CoreStats::new(1, 1, 1);
        a.command(lookup(b"GET"));
        a.command(lookup(b"get"));
        b.command(lookup(b"set"));
        b.command(None);
        a.error(ErrorKind::Unsupported);
        a.record_batch(&[2, 0, 0, 1], Duration::from_micros(100));
        b.record_batch(&[0, 5, 0, 0], Duration::from_micros(300));
        let t = CoreSnapshot::total(&[
            a.snapshot(vec![ConnState::Up]),
            b.snapshot(vec![ConnState::Idle]),
        ])
        .unwrap();
        let get = COMMANDS.iter().position(|c| c.name == "get").unwrap();
        let set = COMMANDS.iter().position(|c| c.name == "set").unwrap();
        assert_eq!(
            (t.commands[get], t.commands[set], t.unknown_commands),
            (2, 1, 1)
        );
        assert_eq!(t.errors[ErrorKind::Unsupported as usize], 1);
        assert_eq!(t.latency[4].len(), 8);
        assert_eq!(t.latency[Group::Write as usize].len(), 5);
        assert_eq!(t.endpoints[0].state, ConnState::Up);
    }

    #[test]
    fn cores_that_met_more_cluster_nodes_merge_whole() {
        // A core that has learned of a new Redis Cluster node reports one
        // endpoint more than a core that has not yet: nothing is cut off.
        let a = CoreStats::new(0, 1, 1);
        let b = CoreStats::new(1, 1, 1);
        b.endpoint(2)
            .counts
            .add(EndpointCounter::Requests as usize, 7);
        a.endpoint(0).count(EndpointCounter::Requests);
        let t = CoreSnapshot::total(&[
            a.snapshot(vec![ConnState::Up]),
            b.snapshot(vec![ConnState::Idle]),
        ])
        .unwrap();
        assert_eq!(t.endpoints.len(), 3);
        assert_eq!(t.endpoints[2].get(EndpointCounter::Requests), 7);
        assert_eq!(t.endpoints[0].get(EndpointCounter::Requests), 1);
        let t = CoreSnapshot::total(&[b.snapshot(vec![]), a.snapshot(vec![])]).unwrap();
        assert_eq!(
            (
                t.endpoints.len(),
                t.endpoints[2].get(EndpointCounter::Requests)
            ),
            (3, 7)
        );
    }
}
