//! Upstream connections, per core and per endpoint: pipelined, FIFO-matched,
//! shared by every session on the core so their requests coalesce.
pub mod conn;

use crate::config::ReadPolicy;
use crate::resp::write::Protocol;
use crate::session::replies::Waiter;
use crate::stats::CoreStats;
use crate::topology::Shard;
use crate::topology::Topology;
use conn::{Conn, ConnSettings};
use std::cell::Cell;
use std::rc::Rc;

struct EndpointConns {
    resp2: Vec<Rc<Conn>>,
    resp3: Vec<Rc<Conn>>,
    next: Cell<usize>,
}

/// This core's connections to every endpoint of the topology.
pub struct Upstreams {
    endpoints: Vec<EndpointConns>,
    /// Replica round robin, advanced once per request.
    turn: Cell<usize>,
}

impl Upstreams {
    pub fn new(topo: &Topology, stats: &Rc<CoreStats>) -> Upstreams {
        let endpoints = topo
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let cluster = &topo.config.clusters[e.cluster];
                let settings = ConnSettings {
                    op_timeout: topo.config.op_timeout,
                    connect_timeout: topo.config.connect_timeout,
                    auth: cluster
                        .password
                        .clone()
                        .map(|p| (cluster.username.clone(), p)),
                };
                let make = |proto| {
                    (0..e.connections)
                        .map(|_| {
                            Rc::new(Conn::new(
                                i,
                                e.addr,
                                e.label.clone(),
                                proto,
                                settings.clone(),
                                stats.clone(),
                            ))
                        })
                        .collect()
                };
                EndpointConns {
                    resp2: make(Protocol::Resp2),
                    resp3: make(Protocol::Resp3),
                    next: Cell::new(0),
                }
            })
            .collect();
        Upstreams {
            endpoints,
            turn: Cell::new(0),
        }
    }

    /// A connection to `endpoint` speaking `proto` (round robin over the pool).
    /// RESP3 clients get connections switched to RESP3 with HELLO, so replies
    /// reach them in the types they asked for.
    #[inline]
    pub fn conn(&self, endpoint: usize, proto: Protocol) -> &Rc<Conn> {
        let e = &self.endpoints[endpoint];
        let pool = match proto {
            Protocol::Resp2 => &e.resp2,
            Protocol::Resp3 => &e.resp3,
        };
        let i = e.next.get();
        e.next.set(if i + 1 >= pool.len() { 0 } else { i + 1 });
        &pool[i.min(pool.len() - 1)]
    }

    fn healthy(&self, endpoint: usize) -> bool {
        let e = &self.endpoints[endpoint];
        e.resp2.iter().chain(&e.resp3).all(|c| c.healthy())
    }

    /// A new turn of the replica round robin: taken once per request, so
    /// that every key of one shard in a request picks the same endpoint
    /// (multi-key reads must not be split over replicas).
    pub fn next_turn(&self) -> usize {
        let n = self.turn.get();
        self.turn.set(n.wrapping_add(1));
        n
    }

    /// The endpoint of `shard` that serves a request in round-robin `turn`:
    /// writes and the `primary` policy go to the primary; replica policies
    /// spread reads and, for `prefer_*`, fall back when the preferred side
    /// is failing on this core. A pure function of its inputs and health.
    pub fn choose(&self, shard: &Shard, policy: ReadPolicy, is_read: bool, turn: usize) -> usize {
        if !is_read || policy == ReadPolicy::Primary || shard.replicas.is_empty() {
            return shard.primary;
        }
        let n = turn;
        let replica = |healthy_only: bool| {
            let len = shard.replicas.len();
            (0..len)
                .map(|i| shard.replicas[(n + i) % len])
                .find(|&r| !healthy_only || self.healthy(r))
        };
        match policy {
            ReadPolicy::Primary => shard.primary,
            ReadPolicy::PreferPrimary if self.healthy(shard.primary) => shard.primary,
            ReadPolicy::PreferPrimary => replica(true).unwrap_or(shard.primary),
            ReadPolicy::Replica => replica(true)
                .or_else(|| replica(false))
                .unwrap_or(shard.primary),
            ReadPolicy::PreferReplica => replica(true).unwrap_or(shard.primary),
            ReadPolicy::Any => {
                let all = shard.replicas.len() + 1;
                (0..all)
                    .map(|i| match (n + i) % all {
                        0 => shard.primary,
                        r => shard.replicas[r - 1],
                    })
                    .find(|&e| self.healthy(e))
                    .unwrap_or(shard.primary)
            }
        }
    }

    /// Connection state per endpoint, for stats: the best of its connections.
    pub fn states(&self) -> Vec<&'static str> {
        let rank = |s: &str| match s {
            "up" => 3,
            "connecting" => 2,
            "idle" => 1,
            _ => 0,
        };
        self.endpoints
            .iter()
            .map(|e| {
                e.resp2
                    .iter()
                    .chain(&e.resp3)
                    .map(|c| c.state_name())
                    .max_by_key(|s| rank(s))
                    .unwrap_or("idle")
            })
            .collect()
    }

    /// Sends one request (already RESP-encoded) to `endpoint`.
    #[inline]
    pub fn send(&self, endpoint: usize, proto: Protocol, request: &[u8], waiter: Waiter) {
        self.conn(endpoint, proto)
            .send(|buf| buf.extend_from_slice(request), waiter);
    }
}
