//! The control side's handle on every core: their channels. Used by the
//! control thread (signals, shutdown, reloads), discovery and the admin
//! endpoint, and what they say to a core (`CoreMsg`).

use crate::net::doorbell::RingingSender;
use crate::stats::CoreSnapshot;
use crate::topology::slots::SlotMap;
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
    /// A new slot map of a redis_cluster cluster.
    SlotMap(Arc<SlotMap>),
    /// Why a redis_cluster cluster without a slot map still has none.
    DiscoveryFailed(usize, Arc<str>),
    /// A reloaded configuration: swap to it between requests.
    Reload(Box<Reload>),
}

/// A new configuration generation for a core, with what discovery found
/// for it (its endpoint numbers are the new topology's).
#[derive(Debug)]
pub struct Reload {
    pub topo: Arc<Topology>,
    pub generation: u64,
    pub slot_maps: Vec<Option<Arc<SlotMap>>>,
    pub discovery_errors: Vec<Option<Arc<str>>>,
    /// Told the core's index once it serves the new generation.
    pub done: Sender<usize>,
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

    /// A new slot map for every core (sent in order; a core applies it
    /// between requests).
    pub fn slot_map(&self, map: Arc<SlotMap>) {
        for s in &self.senders {
            let _ = s.send(CoreMsg::SlotMap(map.clone()));
        }
    }

    /// Why `cluster` has no slot map: what its clients are told.
    pub fn discovery_failed(&self, cluster: usize, why: Arc<str>) {
        for s in &self.senders {
            let _ = s.send(CoreMsg::DiscoveryFailed(cluster, why.clone()));
        }
    }

    /// Generation `generation` for every core; returns how many serve it
    /// (a core answers between two turns of its control loop).
    pub fn reload(
        &self,
        topo: Arc<Topology>,
        generation: u64,
        slot_maps: Vec<Option<Arc<SlotMap>>>,
        discovery_errors: Vec<Option<Arc<str>>>,
    ) -> usize {
        let (done, served) = unbounded();
        let asked = self
            .senders
            .iter()
            .filter(|s| {
                let r = Reload {
                    topo: topo.clone(),
                    generation,
                    slot_maps: slot_maps.clone(),
                    discovery_errors: discovery_errors.clone(),
                    done: done.clone(),
                };
                s.send(CoreMsg::Reload(Box::new(r))).is_ok()
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
