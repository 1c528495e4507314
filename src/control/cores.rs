//! The control side's handle on every core: their channels. Used by the
//! control thread (signals, shutdown, reloads), discovery and the admin
//! endpoint, and what they say to a core (`CoreMsg`).

use crate::net::doorbell::RingingSender;
use crate::stats::CoreSnapshot;
use crate::topology::slots::{Discovered, SlotMap};
use crate::topology::Topology;
use crossbeam_channel::{unbounded, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a reload waits for the cores to confirm the new generation (a
/// core that does not has it still, and takes it when it next looks).
pub const RELOAD_CONFIRM_WITHIN: Duration = Duration::from_secs(10);

/// What the control thread tells a core.
#[derive(Debug)]
pub enum CoreMsg {
    /// Send a copy of this core's stats and histograms.
    Snapshot(Sender<CoreSnapshot>),
    /// Drain: stop accepting, close each client connection once the
    /// replies it is owed are sent (up to `drain_timeout`), then stop.
    Stop,
    /// A new slot map of a redis_cluster cluster (for the generation it
    /// names).
    SlotMap(Arc<SlotMap>),
    /// Why a redis_cluster cluster (`cluster` of `generation`) without a
    /// slot map still has none.
    DiscoveryFailed {
        generation: u64,
        cluster: usize,
        why: Arc<str>,
    },
    /// A new generation: swap to it between requests, then tell `done`
    /// the core's index.
    Reload(Box<Generation>, Sender<usize>),
}

/// One configuration generation as the cores serve it: the topology and
/// the slot maps discovered for it (numbered by its endpoints).
#[derive(Debug, Clone)]
pub struct Generation {
    /// 1 at start, one more per reload; a health change keeps it.
    pub number: u64,
    pub topo: Arc<Topology>,
    /// None: the same configuration with other endpoints down (a health
    /// change), whose slot maps each core keeps.
    pub discovered: Option<Discovered>,
}

/// The control side's handle on every core: their channels.
#[derive(Clone)]
pub struct Cores {
    senders: Vec<RingingSender<CoreMsg>>,
}

impl Cores {
    pub fn new(senders: Vec<RingingSender<CoreMsg>>) -> Cores {
        Cores { senders }
    }

    /// How many cores there are.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }

    /// A new slot map for every core (sent in order; a core applies it
    /// between requests).
    pub fn slot_map(&self, map: Arc<SlotMap>) {
        for s in &self.senders {
            let _ = s.send(CoreMsg::SlotMap(map.clone()));
        }
    }

    /// Why `cluster` of `generation` has no slot map: what its clients
    /// are told.
    pub fn discovery_failed(&self, generation: u64, cluster: usize, why: Arc<str>) {
        for s in &self.senders {
            let why = why.clone();
            let _ = s.send(CoreMsg::DiscoveryFailed {
                generation,
                cluster,
                why,
            });
        }
    }

    /// `generation` for every core; returns how many serve it (a core
    /// answers between two turns of its control loop).
    pub fn reload(&self, generation: Generation) -> usize {
        let (done, served) = unbounded();
        let asked = self
            .senders
            .iter()
            .filter(|s| {
                let g = Box::new(generation.clone());
                s.send(CoreMsg::Reload(g, done.clone())).is_ok()
            })
            .count();
        let deadline = Instant::now() + RELOAD_CONFIRM_WITHIN;
        (0..asked)
            .take_while(|_| served.recv_deadline(deadline).is_ok())
            .count()
    }

    /// A snapshot from every core that answers within a second.
    pub fn snapshots(&self) -> Vec<CoreSnapshot> {
        let (tx, rx) = unbounded();
        let asked = self
            .senders
            .iter()
            .filter(|s| s.send(CoreMsg::Snapshot(tx.clone())).is_ok())
            .count();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut out = Vec::with_capacity(asked);
        while out.len() < asked {
            match rx.recv_deadline(deadline) {
                Ok(s) => out.push(s),
                Err(_) => break,
            }
        }
        out.sort_by_key(|s| s.core);
        out
    }
}
