//! This core's pool: its connections to every endpoint, which one serves
//! a request (read policy, health), and its copy of each Redis Cluster's
//! slot map.

use super::conn::{Conn, ConnSettings};
use super::reports::Reports;
use crate::config::{LbPolicy, ReadPolicy};
use crate::net::Ring;
use crate::resp::write::Protocol;
use crate::stats::{ConnState, CoreStats};
use crate::tls;
use crate::topology::slots::{Discovered, SlotMap};
use crate::topology::Shard;
use crate::topology::Topology;
use crossbeam_channel::Sender;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection to a database other than 0: (database, protocol) and it.
type DbConn = ((u16, Protocol), Rc<Conn>);

/// One endpoint's connections. A reload hands them to the next
/// generation's `Upstreams` (cloned: both share the connections) when the
/// endpoint and how keyway connects to it are unchanged.
#[derive(Clone)]
struct EndpointConns {
    resp2: Vec<Rc<Conn>>,
    resp3: Vec<Rc<Conn>>,
    next: Cell<usize>,
    /// Connections to databases other than 0 (clients' SELECT), one per
    /// (database, protocol), opened on first use.
    other_dbs: Rc<RefCell<Vec<DbConn>>>,
    addr: SocketAddr,
    label: String,
    settings: ConnSettings,
    /// What must match for a reload to keep these connections.
    key: EndpointKey,
}

impl EndpointConns {
    fn all(&self) -> Vec<Rc<Conn>> {
        let mut all: Vec<Rc<Conn>> = self.resp2.iter().chain(&self.resp3).cloned().collect();
        all.extend(self.other_dbs.borrow().iter().map(|(_, c)| c.clone()));
        all
    }
}

/// An endpoint as a reload compares it: its cluster's name, its address
/// as written and resolved, and everything about how keyway connects
/// (credentials, TLS, pool size, timeouts): any change means new
/// connections.
#[derive(Clone, PartialEq, Eq)]
struct EndpointKey {
    cluster: String,
    addr: SocketAddr,
    label: String,
    connection: String,
}

/// What a reload leaves behind on a core: connections of endpoints the new
/// configuration dropped (or connects to differently). They are closed once
/// the requests they carry are answered.
pub type Retired = Vec<Rc<Conn>>;

/// This core's connections to every endpoint of the topology, and its
/// copy of each redis_cluster cluster's slot map.
pub struct Upstreams {
    ring: Rc<Ring>,
    topo: Arc<Topology>,
    stats: Rc<CoreStats>,
    /// Indexed by global endpoint number; grows when a Redis Cluster shows
    /// a node this core has not met (None: a node of another cluster this
    /// core has not been told of yet).
    endpoints: RefCell<Vec<Option<EndpointConns>>>,
    /// Per cluster: the slot map (redis_cluster only; None until known).
    slot_maps: RefCell<Vec<Option<Arc<SlotMap>>>>,
    /// Per cluster without a slot map: why discovery has not succeeded.
    discovery_errors: RefCell<Vec<Option<Arc<str>>>>,
    /// Asks the control side to fetch a cluster's slots again.
    refresh: Sender<usize>,
    /// When this core last asked, per cluster (asks are rate-limited).
    asked: Vec<Cell<Option<Instant>>>,
    /// Replica round robin, advanced once per request.
    turn: Cell<usize>,
    /// Where connections report failures and recoveries.
    reports: Reports,
    /// During `reloaded` only: the previous generation's endpoints, for
    /// `add_endpoint` to take over.
    previous: RefCell<Vec<EndpointConns>>,
}

/// How often one core may ask for a refresh of one cluster.
const REFRESH_ASK_INTERVAL: Duration = Duration::from_millis(100);

impl Upstreams {
    /// A core's first connections (none open yet), with what discovery
    /// found for its generation.
    pub fn new(
        topo: &Arc<Topology>,
        stats: &Rc<CoreStats>,
        discovered: Discovered,
        refresh: Sender<usize>,
        ring: &Rc<Ring>,
        reports: Reports,
    ) -> Upstreams {
        let up = Self::build(
            topo,
            stats,
            discovered.slot_maps,
            refresh,
            ring,
            reports,
            Vec::new(),
        )
        .0;
        up.explain_missing_maps(discovered.errors);
        up
    }

    /// Why the clusters without a slot map have none: what their
    /// clients are told.
    fn explain_missing_maps(&self, errors: Vec<Option<Arc<str>>>) {
        for (cluster, why) in errors.into_iter().enumerate() {
            if let Some(why) = why {
                self.discovery_failed(cluster, why);
            }
        }
    }

    /// The next generation's connections after a reload: unchanged
    /// endpoints keep their connections (and counters), new ones connect
    /// lazily; what is left over is returned to be retired.
    pub fn reloaded(&self, topo: &Arc<Topology>, discovered: Discovered) -> (Upstreams, Retired) {
        let previous: Vec<EndpointConns> =
            self.endpoints.borrow().iter().flatten().cloned().collect();
        // Counters follow the connections that are carried over.
        let old_clusters = &self.topo.clusters;
        let clusters: Vec<Option<usize>> = topo
            .clusters
            .iter()
            .map(|c| old_clusters.iter().position(|o| o.name == c.name))
            .collect();
        self.stats.reindex(&[], &clusters);
        let (up, left) = Self::build(
            topo,
            &self.stats,
            discovered.slot_maps,
            self.refresh.clone(),
            &self.ring,
            self.reports.clone(),
            previous,
        );
        up.explain_missing_maps(discovered.errors);
        (up, left.iter().flat_map(EndpointConns::all).collect())
    }

    fn build(
        topo: &Arc<Topology>,
        stats: &Rc<CoreStats>,
        slot_maps: Vec<Option<Arc<SlotMap>>>,
        refresh: Sender<usize>,
        ring: &Rc<Ring>,
        reports: Reports,
        previous: Vec<EndpointConns>,
    ) -> (Upstreams, Vec<EndpointConns>) {
        let up = Upstreams {
            ring: ring.clone(),
            topo: topo.clone(),
            stats: stats.clone(),
            endpoints: RefCell::new(Vec::new()),
            slot_maps: RefCell::new(vec![None; topo.clusters.len()]),
            discovery_errors: RefCell::new(vec![None; topo.clusters.len()]),
            refresh,
            asked: (0..topo.clusters.len()).map(|_| Cell::new(None)).collect(),
            turn: Cell::new(0),
            reports,
            previous: RefCell::new(previous),
        };
        for (i, e) in topo.endpoints.iter().enumerate() {
            up.add_endpoint(i, e.cluster, e.addr, &e.label, &e.tls_name);
        }
        for map in slot_maps.into_iter().flatten() {
            up.set_slot_map(map);
        }
        let left = up.previous.take();
        (up, left)
    }

    /// The endpoint of this generation that is `endpoint` of `older` (a
    /// client's written-to set survives a reload through it).
    pub fn same_as(&self, older: &Upstreams, endpoint: usize) -> Option<usize> {
        let old = older.endpoints.borrow();
        let key = &old.get(endpoint)?.as_ref()?.key;
        self.endpoints
            .borrow()
            .iter()
            .position(|e| e.as_ref().is_some_and(|e| &e.key == key))
    }

    fn add_endpoint(
        &self,
        index: usize,
        cluster: usize,
        addr: SocketAddr,
        label: &str,
        tls_name: &str,
    ) {
        let topo = &self.topo;
        let c = &topo.config.clusters[cluster];
        let settings = ConnSettings {
            op_timeout: topo.config.op_timeout,
            connect_timeout: topo.config.connect_timeout,
            auth: c.password.clone().map(|p| (c.username.clone(), p)),
            tls: c.tls.as_ref().map(|t| {
                let name = tls::server_name(t.settings.server_name.as_deref(), tls_name)
                    .or_else(|| tls::server_name(None, &addr.ip().to_string()))
                    .expect("an IP address is a valid server name");
                (t.client.clone(), name)
            }),
            readonly: c.lb_policy == LbPolicy::RedisCluster,
            db: 0,
            keepalive: topo.config.tcp_keepalive,
            reports: Some(self.reports.clone()),
        };
        let key = EndpointKey {
            cluster: c.name.clone(),
            addr,
            label: label.to_string(),
            connection: format!(
                "{:?} {:?} {:?} {} {:?} {:?} {}",
                c.username,
                c.password,
                c.tls.as_ref().map(|t| (&t.settings, t.files)),
                c.connections_per_endpoint,
                settings.connect_timeout,
                settings.keepalive,
                settings.readonly
            ),
        };
        let carried = {
            let mut previous = self.previous.borrow_mut();
            let at = previous.iter().position(|e| e.key == key);
            at.map(|i| previous.swap_remove(i))
        };
        if let Some(conns) = carried {
            // Same endpoint, same way of connecting: its connections (and
            // the requests on them) carry on; only op_timeout may differ.
            let all = conns.all();
            if let Some(first) = all.first() {
                self.stats.set_endpoint(index, first.endpoint_stats());
            }
            for conn in &all {
                conn.set_op_timeout(settings.op_timeout);
            }
            let mut eps = self.endpoints.borrow_mut();
            if eps.len() <= index {
                eps.resize_with(index + 1, || None);
            }
            eps[index] = Some(EndpointConns { settings, ..conns });
            return;
        }
        let make = |proto| {
            (0..c.connections_per_endpoint)
                .map(|_| {
                    Rc::new(Conn::new(
                        index,
                        addr,
                        label.to_string(),
                        proto,
                        settings.clone(),
                        self.stats.clone(),
                        self.ring.clone(),
                    ))
                })
                .collect()
        };
        let conns = EndpointConns {
            resp2: make(Protocol::Resp2),
            resp3: make(Protocol::Resp3),
            next: Cell::new(0),
            other_dbs: Rc::new(RefCell::new(Vec::new())),
            addr,
            label: label.to_string(),
            settings,
            key,
        };
        let mut eps = self.endpoints.borrow_mut();
        if eps.len() <= index {
            eps.resize_with(index + 1, || None);
        }
        eps[index] = Some(conns);
    }

    /// Takes a slot map from the control side: connections to its new nodes
    /// are made (lazily, like all), and it replaces this core's copy.
    pub fn set_slot_map(&self, map: Arc<SlotMap>) {
        for n in &map.nodes {
            let known = matches!(self.endpoints.borrow().get(n.endpoint), Some(Some(_)));
            if !known {
                self.add_endpoint(n.endpoint, map.cluster, n.addr, &n.label, &n.tls_name);
            }
        }
        let cluster = map.cluster;
        self.slot_maps.borrow_mut()[cluster] = Some(map);
    }

    pub fn discovery_failed(&self, cluster: usize, why: Arc<str>) {
        self.discovery_errors.borrow_mut()[cluster] = Some(why);
    }

    /// Why `cluster` has no slot map yet, if discovery said.
    /// The slot maps and discovery errors this core has, to carry into a
    /// generation with the same endpoints (a health change).
    pub fn discovered(&self) -> Discovered {
        let slot_maps = self.slot_maps().clone();
        let errors = (0..slot_maps.len())
            .map(|c| self.discovery_error(c))
            .collect();
        Discovered { slot_maps, errors }
    }

    pub fn discovery_error(&self, cluster: usize) -> Option<Arc<str>> {
        self.discovery_errors.borrow()[cluster].clone()
    }

    /// This core's slot maps (borrowed for the length of one request's plan).
    #[inline]
    pub fn slot_maps(&self) -> std::cell::Ref<'_, Vec<Option<Arc<SlotMap>>>> {
        self.slot_maps.borrow()
    }

    /// After MOVED: this core sends `slot` of `cluster` to `endpoint` from now.
    pub fn moved(&self, cluster: usize, slot: u16, endpoint: usize) {
        if let Some(map) = self.slot_maps.borrow_mut()[cluster].as_mut() {
            Arc::make_mut(map).moved(slot, endpoint);
        }
    }

    /// The endpoint of the node a redirection names, if this core knows it.
    pub fn node(&self, cluster: usize, target: &str) -> Option<usize> {
        self.slot_maps.borrow()[cluster]
            .as_ref()?
            .endpoint_of(target)
    }

    /// Asks the control side for a fresh slot map of `cluster`, at most
    /// once per interval from this core.
    pub fn ask_refresh(&self, cluster: usize) {
        let now = Instant::now();
        let last = &self.asked[cluster];
        if last
            .get()
            .is_some_and(|t| now.duration_since(t) < REFRESH_ASK_INTERVAL)
        {
            return;
        }
        last.set(Some(now));
        let _ = self.refresh.try_send(cluster);
    }

    /// `host:port` of an endpoint, as errors and SLOWLOG name it.
    pub fn label(&self, endpoint: usize) -> String {
        self.endpoints.borrow()[endpoint]
            .as_ref()
            .map_or_else(|| format!("endpoint {endpoint}"), |e| e.label.clone())
    }

    pub fn op_timeout(&self) -> Duration {
        self.topo.config.op_timeout
    }

    /// Whether `cluster` is a Redis Cluster (its requests may be redirected).
    pub fn is_redis_cluster(&self, cluster: usize) -> bool {
        self.topo.is_redis_cluster(cluster)
    }

    pub fn stats(&self) -> &Rc<CoreStats> {
        &self.stats
    }

    /// A connection to `endpoint` speaking `proto` (round robin over the pool).
    /// RESP3 clients get connections switched to RESP3 with HELLO, so replies
    /// reach them in the types they asked for.
    #[inline]
    pub fn conn(&self, endpoint: usize, proto: Protocol) -> Rc<Conn> {
        let eps = self.endpoints.borrow();
        let e = eps[endpoint]
            .as_ref()
            .expect("slot maps only name endpoints this core has");
        let pool = match proto {
            Protocol::Resp2 => &e.resp2,
            Protocol::Resp3 => &e.resp3,
        };
        let i = e.next.get();
        e.next.set(if i + 1 >= pool.len() { 0 } else { i + 1 });
        pool[i.min(pool.len() - 1)].clone()
    }

    /// A connection to `endpoint` speaking `proto` with database `db`
    /// selected (SELECT n); database 0 is `conn`'s pool.
    #[inline]
    pub fn conn_in(&self, endpoint: usize, proto: Protocol, db: u16) -> Rc<Conn> {
        if db == 0 {
            return self.conn(endpoint, proto);
        }
        self.conn_in_other_db(endpoint, proto, db)
    }

    /// `conn_in` for a database other than 0: apart, so the common case
    /// does not set up its frame.
    #[inline(never)]
    fn conn_in_other_db(&self, endpoint: usize, proto: Protocol, db: u16) -> Rc<Conn> {
        let eps = self.endpoints.borrow();
        let e = eps[endpoint]
            .as_ref()
            .expect("slot maps only name endpoints this core has");
        let mut others = e.other_dbs.borrow_mut();
        if let Some((_, c)) = others.iter().find(|(k, _)| *k == (db, proto)) {
            return c.clone();
        }
        let conn = self.new_conn(endpoint, e, proto, db);
        others.push(((db, proto), conn.clone()));
        conn
    }

    /// A connection outside the pools, to `e` (endpoint `endpoint`).
    fn new_conn(&self, endpoint: usize, e: &EndpointConns, proto: Protocol, db: u16) -> Rc<Conn> {
        let settings = ConnSettings {
            db,
            ..e.settings.clone()
        };
        let (stats, ring) = (self.stats.clone(), self.ring.clone());
        Rc::new(Conn::new(
            endpoint,
            e.addr,
            e.label.clone(),
            proto,
            settings,
            stats,
            ring,
        ))
    }

    /// The pooled connections to `endpoint` (every protocol and database):
    /// a request sent on one of them is answered after every request sent
    /// on it before.
    pub fn pooled(&self, endpoint: usize) -> Vec<Rc<Conn>> {
        let eps = self.endpoints.borrow();
        let e = eps.get(endpoint).and_then(|e| e.as_ref());
        e.map(EndpointConns::all).unwrap_or_default()
    }

    /// A new connection to `endpoint` for one client alone (a blocking
    /// command): nobody else's requests queue behind it. The caller shuts
    /// it down when done.
    pub fn dedicated(&self, endpoint: usize, proto: Protocol, db: u16) -> Rc<Conn> {
        let eps = self.endpoints.borrow();
        let e = eps[endpoint]
            .as_ref()
            .expect("slot maps only name endpoints this core has");
        self.new_conn(endpoint, e, proto, db)
    }

    /// Whether read policies may use `endpoint`: health checking has not
    /// found it down, and this core's connections to it are not failing.
    fn healthy(&self, endpoint: usize) -> bool {
        if self
            .topo
            .endpoints
            .get(endpoint)
            .is_some_and(|e| !e.healthy)
        {
            return false;
        }
        match self.endpoints.borrow().get(endpoint) {
            Some(Some(e)) => e.resp2.iter().chain(&e.resp3).all(|c| c.healthy()),
            _ => false,
        }
    }

    /// A new turn of the replica round robin: taken once per request, so
    /// that every key of one shard in a request picks the same endpoint
    /// (multi-key reads must not be split over replicas).
    pub fn next_turn(&self) -> usize {
        let n = self.turn.get();
        self.turn.set(n.wrapping_add(1));
        n
    }

    /// The endpoint of `shard` that serves a request in round-robin `turn`
    /// (see `router::choose`), healthy as this core sees it.
    pub fn choose(&self, shard: &Shard, policy: ReadPolicy, is_read: bool, turn: usize) -> usize {
        crate::topology::router::choose(shard, policy, is_read, turn, |e| self.healthy(e))
    }

    /// Connection state per endpoint, for stats: the best of its connections.
    pub fn states(&self) -> Vec<ConnState> {
        self.endpoints
            .borrow()
            .iter()
            .map(|e| {
                let Some(e) = e else { return ConnState::Idle };
                e.resp2
                    .iter()
                    .chain(&e.resp3)
                    .map(|c| c.state())
                    .max()
                    .unwrap_or(ConnState::Idle)
            })
            .collect()
    }
}
