//! Slot discovery, on the control side: for every redis_cluster cluster,
//! ask a node `CLUSTER SLOTS` (TLS and AUTH as the cluster is configured)
//! at start-up, every `cluster_refresh_rate`, and when a core asks (MOVED,
//! a failed node, a key without a map; at most one refresh in flight per
//! cluster, and not more often than `MIN_INTERVAL`). A changed layout
//! becomes a new immutable `SlotMap` that goes to every core over its
//! channel. Blocking I/O on its own thread: the cores never wait for it.
//!
//! A `Discovery` serves one configuration generation. A reload makes the
//! next one on the control side (`reload`), which discovers the new
//! clusters, hands the cores the generation, then hands this thread its
//! `Discovery`. Until then the old one may still publish: its maps carry
//! its generation (cores serving another drop them), and the `Directory`
//! (where endpoint numbers are given out) takes writes only from the
//! generation that claimed it.

use crate::config::LbPolicy;
use crate::control::cores::Cores;
use crate::control::lock;
use crate::resp::value::Value;
use crate::topology::slots::{Discovered, Node, SlotMap};
use crate::topology::{EndpointInfo, Shard, Topology};
use crate::upstream::probe::{Probe, ProbeError};
use crossbeam_channel::Receiver;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Refreshes a core asks for come no closer together than this.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// While a cluster has no map yet, seeds are tried again this often.
const RETRY_UNKNOWN: Duration = Duration::from_millis(500);

/// What the admin endpoint shows of a redis_cluster cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus {
    pub map: Option<Arc<SlotMap>>,
    pub refreshes: u64,
    pub refresh_failures: u64,
    pub last_refresh: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// Every endpoint keyway knows (configured and discovered) and the state of
/// each redis_cluster cluster. Shared with the admin thread and the
/// reloader.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The generation whose discovery writes here (see the module's doc).
    pub generation: u64,
    pub endpoints: Vec<EndpointInfo>,
    pub clusters: Vec<ClusterStatus>,
}

pub struct Discovery {
    generation: u64,
    topo: Arc<Topology>,
    dir: Arc<Mutex<Directory>>,
    /// Endpoint numbers given out so far: stable for the process's life.
    known: HashMap<(usize, SocketAddr), usize>,
    /// The last map of each cluster (None: none yet, or not redis_cluster).
    maps: Vec<Option<Arc<SlotMap>>>,
}

/// One range of CLUSTER SLOTS: its nodes, primary first.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRange {
    pub first: u16,
    pub last: u16,
    /// (host as reported, port, hostname metadata)
    pub nodes: Vec<(String, u16, Option<String>)>,
}

impl Discovery {
    /// Discovery for the first generation.
    pub fn new(topo: Arc<Topology>) -> Discovery {
        Self::claiming(topo, 1, Arc::new(Mutex::new(Directory::default())))
    }

    /// Discovery for generation `generation` of `topo`, which claims `dir`
    /// (the admin endpoint's copy survives reloads): from now on only it
    /// writes there.
    pub fn claiming(topo: Arc<Topology>, generation: u64, dir: Arc<Mutex<Directory>>) -> Discovery {
        *lock(&dir) = Directory {
            generation,
            endpoints: topo.endpoints.clone(),
            clusters: vec![ClusterStatus::default(); topo.clusters.len()],
        };
        let known = topo
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.cluster, e.addr), i))
            .collect();
        Discovery {
            generation,
            maps: vec![None; topo.clusters.len()],
            topo,
            dir,
            known,
        }
    }

    pub fn directory(&self) -> Arc<Mutex<Directory>> {
        self.dir.clone()
    }

    fn cluster_mode(&self) -> Vec<usize> {
        (0..self.topo.clusters.len())
            .filter(|&c| self.topo.config.clusters[c].lb_policy == LbPolicy::RedisCluster)
            .collect()
    }

    /// The first discovery of every redis_cluster cluster, before the cores
    /// start, so that their first requests find a map. A cluster no seed
    /// answers for is logged and retried later; keyway starts regardless.
    pub fn initial(&mut self) -> Vec<Option<Arc<SlotMap>>> {
        for c in self.cluster_mode() {
            self.refresh(c);
        }
        self.maps.clone()
    }

    /// Runs refreshes on a thread of its own until `requests` closes; the
    /// discovery of each later generation comes through `next`.
    pub fn spawn(
        mut self,
        cores: Cores,
        requests: Receiver<usize>,
        next: Receiver<Discovery>,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("keyway-discovery".into())
            .spawn(move || self.refresh_until_closed(cores, requests, next))?;
        Ok(())
    }

    /// What the cores of this generation start with: the slot maps found
    /// so far, and why the clusters without one have none.
    pub fn found(&self) -> Discovered {
        Discovered {
            slot_maps: self.maps.clone(),
            errors: self.errors(),
        }
    }

    fn refresh_until_closed(
        &mut self,
        cores: Cores,
        requests: Receiver<usize>,
        next: Receiver<Discovery>,
    ) {
        let mut due: HashMap<usize, Instant> = HashMap::new();
        let mut last: HashMap<usize, Instant> = HashMap::new();
        let schedule = |me: &Discovery,
                        due: &mut HashMap<usize, Instant>,
                        last: &mut HashMap<usize, Instant>| {
            let now = Instant::now();
            let clusters = me.cluster_mode();
            *due = clusters.iter().map(|&c| (c, now + me.period(c))).collect();
            *last = clusters.iter().map(|&c| (c, now)).collect();
        };
        schedule(self, &mut due, &mut last);
        loop {
            crate::log::flush_repeats();
            let clusters = self.cluster_mode();
            let wake_at = due
                .values()
                .min()
                .copied()
                .unwrap_or(Instant::now() + Duration::from_secs(1));
            let timeout = wake_at.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(requests) -> c => match c {
                    Ok(c) => {
                        if let (Some(d), Some(l)) = (due.get_mut(&c), last.get(&c)) {
                            *d = (*d).min((*l + MIN_INTERVAL).max(Instant::now()));
                        }
                    }
                    Err(_) => return,
                },
                recv(next) -> d => match d {
                    Ok(d) => {
                        *self = d;
                        schedule(self, &mut due, &mut last);
                        continue;
                    }
                    Err(_) => return,
                },
                default(timeout) => {}
            }
            let now = Instant::now();
            for &c in &clusters {
                let Some(&when) = due.get(&c) else { continue };
                if when > now {
                    continue;
                }
                let before = self.last_error(c);
                if let Some(map) = self.refresh(c) {
                    cores.slot_map(map);
                } else if self.maps[c].is_none() {
                    if let Some(why) = self.last_error(c).filter(|w| Some(w) != before.as_ref()) {
                        cores.discovery_failed(self.generation, c, Arc::from(why.as_str()));
                    }
                }
                let done = Instant::now();
                last.insert(c, done);
                due.insert(c, done + self.period(c));
            }
        }
    }

    fn last_error(&self, cluster: usize) -> Option<String> {
        self.dir()?.clusters.get(cluster)?.last_error.clone()
    }

    /// The directory, while this generation holds it (None once a later
    /// one claimed it: nothing of this one is published any more).
    fn dir(&self) -> Option<std::sync::MutexGuard<'_, Directory>> {
        let dir = lock(&self.dir);
        (dir.generation == self.generation).then_some(dir)
    }

    /// Why each cluster without a map has none (after `initial`), for the
    /// cores to start with.
    pub fn errors(&self) -> Vec<Option<Arc<str>>> {
        (0..self.maps.len())
            .map(|c| {
                self.maps[c]
                    .is_none()
                    .then(|| self.last_error(c))
                    .flatten()
                    .map(|e| Arc::from(e.as_str()))
            })
            .collect()
    }

    fn period(&self, cluster: usize) -> Duration {
        let rate = self.topo.config.clusters[cluster].refresh_rate;
        if self.maps[cluster].is_some() {
            rate
        } else {
            rate.min(RETRY_UNKNOWN)
        }
    }

    /// Fetches `cluster`'s slots from the first node that answers; returns
    /// the new map when the layout changed.
    pub fn refresh(&mut self, cluster: usize) -> Option<Arc<SlotMap>> {
        let mut candidates: Vec<(SocketAddr, String)> = Vec::new();
        if let Some(map) = &self.maps[cluster] {
            let primaries: Vec<usize> = map.shards.iter().map(|s| s.primary).collect();
            let mut nodes: Vec<&Node> = map.nodes.iter().collect();
            nodes.sort_by_key(|n| !primaries.contains(&n.endpoint));
            candidates.extend(nodes.iter().map(|n| (n.addr, n.tls_name.clone())));
        }
        for e in self.topo.endpoints.iter().filter(|e| e.cluster == cluster) {
            if !candidates.iter().any(|(a, _)| *a == e.addr) {
                candidates.push((e.addr, e.tls_name.clone()));
            }
        }
        let mut errors = Vec::new();
        let mut fetched = None;
        for (addr, name) in &candidates {
            match self.fetch(cluster, *addr, name) {
                Ok(ranges) if ranges.is_empty() => {
                    errors.push(format!("{addr}: no slots assigned"));
                }
                Ok(ranges) => {
                    fetched = Some((ranges, *addr));
                    break;
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        let topo = self.topo.clone();
        let name = &topo.clusters[cluster].name;
        let Some((ranges, from)) = fetched else {
            let msg = errors.join("; ");
            let mut dir = self.dir()?;
            let st = &mut dir.clusters[cluster];
            st.refresh_failures += 1;
            if st.last_error.as_deref() != Some(msg.as_str()) {
                crate::warn!("cluster '{name}': cannot fetch CLUSTER SLOTS: {msg}");
            }
            st.last_error = Some(msg);
            return None;
        };
        let map = self.build(cluster, &ranges, from)?;
        let changed = match &self.maps[cluster] {
            Some(old) => !old.same_layout(&map),
            None => true,
        };
        let map = if changed {
            let version = self.maps[cluster].as_ref().map_or(1, |m| m.version + 1);
            let map = Arc::new(SlotMap {
                version,
                generation: self.generation,
                ..map
            });
            if map.unserved() > 0 {
                crate::warn!(
                    "cluster '{name}': {} of 16384 slots are not served",
                    map.unserved()
                );
            }
            self.maps[cluster] = Some(map.clone());
            Some(map)
        } else {
            None
        };
        let mut dir = self.dir()?;
        let st = &mut dir.clusters[cluster];
        st.refreshes += 1;
        st.last_refresh = Some(SystemTime::now());
        st.last_error = None;
        st.map = self.maps[cluster].clone();
        map
    }

    /// The slot map of `ranges`, numbering nodes never seen before; None
    /// once a later generation claimed the directory (where numbers are
    /// given out).
    fn build(&mut self, cluster: usize, ranges: &[SlotRange], from: SocketAddr) -> Option<SlotMap> {
        let dir = self.dir.clone();
        let mut dir = lock(&dir);
        if dir.generation != self.generation {
            return None;
        }
        let mut map = SlotMap::empty(cluster);
        let mut sorted = ranges.to_vec();
        sorted.sort_by_key(|r| r.first);
        for r in &sorted {
            let mut endpoints = Vec::with_capacity(r.nodes.len());
            for (i, (host, port, hostname)) in r.nodes.iter().enumerate() {
                // An empty host means "the node you asked".
                let host = if host.is_empty() || host == "?" {
                    from.ip().to_string()
                } else {
                    host.clone()
                };
                let Some(addr) = resolve(&host, *port) else {
                    crate::warn!(
                        "cluster '{}': cannot resolve node {host}:{port}",
                        self.topo.clusters[cluster].name
                    );
                    continue;
                };
                let label = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let tls_name = hostname.clone().unwrap_or_else(|| host.clone());
                let node = NewNode {
                    addr,
                    label: &label,
                    tls_name: &tls_name,
                    replica: i > 0,
                };
                let endpoint = self.endpoint(&mut dir, cluster, node);
                if !map.nodes.iter().any(|n| n.endpoint == endpoint) {
                    map.nodes.push(Node {
                        endpoint,
                        label,
                        addr,
                        tls_name,
                    });
                }
                endpoints.push(endpoint);
            }
            let Some((&primary, replicas)) = endpoints.split_first() else {
                continue;
            };
            let shard = match map.shards.iter().position(|s| s.primary == primary) {
                Some(i) => i,
                None => {
                    map.shards.push(Shard {
                        primary,
                        replicas: Vec::new(),
                    });
                    map.shards.len() - 1
                }
            };
            for r in replicas {
                if !map.shards[shard].replicas.contains(r) {
                    map.shards[shard].replicas.push(*r);
                }
            }
            for s in r.first..=r.last.min(16383) {
                map.slots[s as usize] = shard as u16;
            }
        }
        Some(map)
    }

    /// The endpoint number of a node of `cluster`: its own if known, else
    /// the next one of `dir`.
    fn endpoint(&mut self, dir: &mut Directory, cluster: usize, node: NewNode) -> usize {
        if let Some(&i) = self.known.get(&(cluster, node.addr)) {
            if let Some(e) = dir.endpoints.get_mut(i) {
                e.replica = node.replica;
            }
            return i;
        }
        let i = dir.endpoints.len();
        dir.endpoints.push(EndpointInfo {
            cluster,
            addr: node.addr,
            label: node.label.to_string(),
            tls_name: node.tls_name.to_string(),
            connections: self.topo.config.clusters[cluster].connections_per_endpoint,
            replica: node.replica,
            healthy: true,
        });
        self.known.insert((cluster, node.addr), i);
        i
    }

    /// CLUSTER SLOTS from one node, over TLS and after AUTH as configured.
    fn fetch(
        &self,
        cluster: usize,
        addr: SocketAddr,
        host: &str,
    ) -> Result<Vec<SlotRange>, ProbeError> {
        let cfg = &self.topo.config;
        let c = &cfg.clusters[cluster];
        let mut conn = Probe::connect(c, addr, host, cfg.connect_timeout, cfg.op_timeout)?;
        let command = "CLUSTER SLOTS";
        let slots = conn.call(command, &[b"CLUSTER", b"SLOTS"])?;
        parse_slots(&slots).ok_or(ProbeError::Unexpected(command))
    }
}

/// A node a CLUSTER SLOTS reply named.
struct NewNode<'a> {
    addr: SocketAddr,
    label: &'a str,
    tls_name: &'a str,
    replica: bool,
}

/// Marks the endpoints of `topo` healthy or not in `dir`, if `dir` is
/// still `generation`'s (a health change keeps the generation).
pub fn show_health(dir: &Mutex<Directory>, generation: u64, topo: &Topology) {
    let mut dir = lock(dir);
    if dir.generation != generation {
        return;
    }
    for (shown, e) in dir.endpoints.iter_mut().zip(&topo.endpoints) {
        shown.healthy = e.healthy;
    }
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs().ok()?.collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs.first().copied()
}

/// The ranges of a CLUSTER SLOTS reply: `[first, last, node, node...]`
/// with a node `[host, port, id, metadata...]`.
pub fn parse_slots(v: &Value) -> Option<Vec<SlotRange>> {
    let mut out = Vec::new();
    for range in v.as_array()? {
        let r = range.as_array()?;
        let first = u16::try_from(r.first()?.as_int()?).ok()?;
        let last = u16::try_from(r.get(1)?.as_int()?).ok()?;
        if first > last || last > 16383 {
            return None;
        }
        let mut nodes = Vec::new();
        for n in &r[2..] {
            let n = n.as_array()?;
            let host = match n.first()? {
                Value::Null => String::new(),
                h => h.as_str()?.to_string(),
            };
            let port = u16::try_from(n.get(1)?.as_int()?).ok()?;
            let mut hostname = None;
            if let Some(meta) = n.get(3).and_then(Value::as_array) {
                for kv in meta.chunks(2) {
                    if kv.len() == 2 && kv[0].as_str() == Some("hostname") {
                        hostname = kv[1].as_str().filter(|h| !h.is_empty()).map(String::from);
                    }
                }
            }
            nodes.push((host, port, hostname));
        }
        out.push(SlotRange { first, last, nodes });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_slots_replies_become_ranges() {
        let r = b"*2\r\n*4\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*2\r\n$8\r\nhostname\r\n$6\r\nnode-a\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nie\r\n*3\r\n:8192\r\n:16383\r\n*3\r\n$0\r\n\r\n:7002\r\n$2\r\nif\r\n";
        let (v, _) = Value::parse(r).unwrap();
        let ranges = parse_slots(&v).unwrap();
        assert_eq!(
            ranges,
            vec![
                SlotRange {
                    first: 0,
                    last: 8191,
                    nodes: vec![
                        ("127.0.0.1".into(), 7000, Some("node-a".into())),
                        ("127.0.0.1".into(), 7001, None)
                    ]
                },
                SlotRange {
                    first: 8192,
                    last: 16383,
                    nodes: vec![(String::new(), 7002, None)]
                }
            ]
        );
        assert!(parse_slots(&Value::parse(b"*1\r\n*2\r\n:5\r\n:1\r\n").unwrap().0).is_none());
        assert!(parse_slots(&Value::parse(b"*1\r\n*2\r\n:0\r\n:16384\r\n").unwrap().0).is_none());
    }

    #[test]
    fn maps_number_nodes_once_and_group_ranges_by_primary() {
        let cfg = crate::config::Config::parse(
            "[proxy]\nlisten = \"127.0.0.1:0\"\n[[clusters]]\nname = \"c\"\nlb_policy = \"redis_cluster\"\nendpoints = [\"127.0.0.1:7000\"]\n[routes]\ncatch_all = \"c\"\n",
            "t.toml",
        )
        .unwrap();
        let mut d = Discovery::new(Arc::new(Topology::build(cfg)));
        let node = |port: u16| ("127.0.0.1".to_string(), port, None);
        let ranges = vec![
            SlotRange {
                first: 8192,
                last: 16383,
                nodes: vec![node(7002), node(7003)],
            },
            SlotRange {
                first: 0,
                last: 100,
                nodes: vec![node(7000), node(7001)],
            },
            SlotRange {
                first: 101,
                last: 8191,
                nodes: vec![node(7000), node(7001)],
            },
        ];
        let from = "127.0.0.1:7000".parse().unwrap();
        let map = d.build(0, &ranges, from).unwrap();
        assert_eq!(
            map.generation, 0,
            "the version and generation are set on publishing"
        );
        // The seed keeps number 0; new nodes follow in order met.
        assert_eq!(map.shard(0).unwrap().primary, 0);
        assert_eq!(
            map.shard(8191).unwrap(),
            &Shard {
                primary: 0,
                replicas: vec![1]
            }
        );
        assert_eq!(
            map.shard(16383).unwrap(),
            &Shard {
                primary: 2,
                replicas: vec![3]
            }
        );
        assert_eq!(map.shards.len(), 2);
        assert_eq!(map.unserved(), 0);
        let again = d.build(0, &ranges, from).unwrap();
        assert!(again.same_layout(&map));
        assert_eq!(lock(&d.dir).endpoints.len(), 4);
        assert_eq!(map.endpoint_of("127.0.0.1:7003"), Some(3));
        // A reload's discovery claims the directory: the old generation's
        // numbers nothing there any more (its maps would name endpoints the
        // new generation gives other numbers), nor reports errors there.
        let next = Discovery::claiming(d.topo.clone(), 2, d.dir.clone());
        assert!(d.build(0, &ranges, from).is_none());
        assert!(d.dir().is_none() && next.dir().is_some());
        assert_eq!(
            lock(&d.dir).endpoints.len(),
            1,
            "the new generation's seed only"
        );
        assert_eq!(d.last_error(0), None);
    }
}
