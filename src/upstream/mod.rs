//! Upstream connections, per core and per endpoint: pipelined, FIFO-matched,
//! shared by every session on the core so their requests coalesce.
pub mod conn;

use crate::resp::write::Protocol;
use crate::session::replies::Waiter;
use crate::stats::CoreStats;
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
}

impl Upstreams {
    pub fn new(topo: &Topology, stats: &Rc<CoreStats>) -> Upstreams {
        let settings = ConnSettings {
            op_timeout: topo.config.op_timeout,
            connect_timeout: topo.config.connect_timeout,
        };
        let endpoints = topo
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let make = |proto| {
                    (0..e.connections)
                        .map(|_| {
                            Rc::new(Conn::new(
                                i,
                                e.addr,
                                e.label.clone(),
                                proto,
                                settings,
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
        Upstreams { endpoints }
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
