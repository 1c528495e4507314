//! The immutable picture every core shares: configuration, one precomputed
//! ring per cluster, and a flat list of endpoints (a core's upstream
//! connections are indexed by the same numbers). Built once on the control
//! thread; routing a key is a pure function of it (`router`). A Redis Cluster's
//! placement is its slot map (`slots`), which changes between reloads.
pub mod migration;
pub mod router;
pub mod shard;
pub mod slots;

pub use migration::{Migration, Phase};
pub use shard::Shard;

use crate::config::{Config, LbPolicy, MirrorPolicy, ReadPolicy};
use crate::route::ketama::Ketama;
use crate::route::maglev::Maglev;
use crate::route::ring::{Ring, RingMember};
use crate::route::ring_hash::RingHash;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct EndpointInfo {
    pub cluster: usize,
    pub addr: SocketAddr,
    /// `host:port` as configured (or as a Redis Cluster reports it), used in
    /// errors and stats.
    pub label: String,
    /// The name a TLS connection to it presents and verifies.
    pub tls_name: String,
    pub connections: usize,
    pub replica: bool,
    /// False while health checking finds it down: read policies skip it.
    pub healthy: bool,
}

/// Which endpoints health checking found down, by address. Part of the
/// topology: a change makes a new one (rings without ejected primaries).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Sorted.
    pub down: Vec<SocketAddr>,
}

impl Health {
    pub fn is_down(&self, addr: &SocketAddr) -> bool {
        self.down.binary_search(addr).is_ok()
    }
}

#[derive(Debug, Clone)]
pub struct ClusterRing {
    pub name: String,
    /// None for redis_cluster: its slot map is discovered (`topology::slots`).
    /// Shared with the next generation when it keeps this placement as
    /// the one keys move from (`migration`).
    pub ring: Option<Arc<Ring>>,
    pub shards: Vec<Shard>,
    /// The shard of each ring member: all shards, less those ejected
    /// (`auto_eject` with the primary down).
    pub members: Vec<usize>,
    pub read_policy: ReadPolicy,
    /// Being resharded: the placement keys move from (`reshard = "migrate"`).
    pub migration: Option<Migration>,
}

#[derive(Debug, Clone)]
pub struct Topology {
    pub config: Config,
    pub clusters: Vec<ClusterRing>,
    pub endpoints: Vec<EndpointInfo>,
    pub health: Health,
}

impl Topology {
    pub fn build(config: Config) -> Topology {
        Self::with_health(config, Health::default())
    }

    /// The topology of `config` with `health`'s endpoints down: skipped by
    /// read policies, and out of the rings of clusters with `auto_eject`
    /// (placed as twemproxy places keys once it ejected them). A cluster
    /// whose primaries are all down keeps its whole ring: its keys fail
    /// fast on their own endpoints rather than all moving to none.
    pub fn with_health(config: Config, health: Health) -> Topology {
        let mut clusters = Vec::with_capacity(config.clusters.len());
        let mut endpoints = Vec::new();
        for (ci, c) in config.clusters.iter().enumerate() {
            let mut live: Vec<usize> = (0..c.endpoints.len())
                .filter(|&i| !(c.auto_eject && health.is_down(&c.endpoints[i].addr)))
                .collect();
            if live.is_empty() {
                live = (0..c.endpoints.len()).collect();
            }
            let members: Vec<RingMember> = live
                .iter()
                .map(|&i| &c.endpoints[i])
                .map(|e| RingMember {
                    // Envoy hashes the resolved address as it prints it
                    // (`ip:port`); twemproxy hashes the name in its config.
                    name: match c.lb_policy {
                        LbPolicy::Ketama => e.ketama_name.clone(),
                        _ => e.addr.to_string(),
                    },
                    weight: e.weight,
                })
                .collect();
            let ring = match c.lb_policy {
                LbPolicy::RingHash => Some(Ring::RingHash(RingHash::build(
                    &members,
                    c.min_ring_size,
                    c.max_ring_size,
                ))),
                LbPolicy::Maglev => Some(Ring::Maglev(Maglev::build(&members, c.table_size))),
                LbPolicy::Ketama => Some(Ring::Ketama(Ketama::build(&members, c.hash))),
                LbPolicy::RedisCluster => None,
            }
            .map(Arc::new);
            let mut shards = Vec::with_capacity(c.endpoints.len());
            for (e, reps) in c.endpoints.iter().zip(&c.replicas) {
                let mut add = |e: &crate::config::Endpoint, replica: bool| {
                    endpoints.push(EndpointInfo {
                        cluster: ci,
                        addr: e.addr,
                        label: e.address.clone(),
                        tls_name: host_of(&e.address).to_string(),
                        connections: c.connections_per_endpoint,
                        replica,
                        healthy: !health.is_down(&e.addr),
                    });
                    endpoints.len() - 1
                };
                let primary = add(e, false);
                let replicas = reps.iter().map(|r| add(r, true)).collect();
                shards.push(Shard { primary, replicas });
            }
            clusters.push(ClusterRing {
                name: c.name.clone(),
                ring,
                shards,
                members: live,
                read_policy: c.read_policy,
                migration: None,
            });
        }
        Topology {
            config,
            clusters,
            endpoints,
            health,
        }
    }

    pub fn is_redis_cluster(&self, cluster: usize) -> bool {
        self.clusters[cluster].ring.is_none()
    }

    /// Whether any route mirrors writes to another cluster.
    pub fn has_mirrors(&self) -> bool {
        self.mirror_policies().next().is_some()
    }

    /// Every route's mirror policies: the catch-all's, then each prefix
    /// route's.
    pub fn mirror_policies(&self) -> impl Iterator<Item = &MirrorPolicy> {
        let routes = self.config.prefix_routes.iter();
        let catch_all = self.config.catch_all_mirrors.iter();
        catch_all.chain(routes.flat_map(|r| &r.mirrors))
    }

    /// Whether any cluster is a Redis Cluster (its rules then apply to
    /// clients: database 0 only).
    pub fn has_redis_cluster(&self) -> bool {
        self.clusters.iter().any(|c| c.ring.is_none())
    }
}

/// The host part of `host:port` (`[v6]:port` too).
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(topo: &Topology, key: &[u8]) -> Option<usize> {
        router::Router::new(topo, &[]).primary(key)
    }

    /// The demo's acceptance, as a pure function of the shipped config:
    /// 60,000 keys over five backends land 20% +- 3% each, and keys with one
    /// hashtag land together.
    #[test]
    fn shipped_config_spreads_keys_evenly() {
        let config =
            Config::parse(include_str!("../../config.toml"), "config.toml").expect("config.toml");
        let topo = Topology::build(config);
        let mut counts = vec![0usize; topo.endpoints.len()];
        for i in 0..60_000 {
            counts[route(&topo, format!("user:{i}").as_bytes()).unwrap()] += 1;
        }
        for c in &counts {
            let share = *c as f64 / 60_000.0;
            assert!((0.17..=0.23).contains(&share), "{counts:?}");
        }
        let tagged = route(&topo, b"user:{avgo}:0").unwrap();
        assert!((1..6000)
            .all(|i| route(&topo, format!("user:{{avgo}}:{i}").as_bytes()) == Some(tagged)));
    }

    fn ketama(extra: &str, endpoints: &[&str]) -> Config {
        let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:1\"\n[[clusters]]\nname = \"c\"\nlb_policy = \"ketama\"\n{extra}\nendpoints = [{}]\n[routes]\ncatch_all = \"c\"\n",
            eps.join(", ")
        );
        Config::parse(&text, "t.toml").expect("config")
    }

    /// An ejected primary's ring is the ring of the others, as twemproxy
    /// rebuilds its continuum over the live servers; without auto_eject,
    /// or with every primary down, placement does not change.
    #[test]
    fn ejection_rebuilds_the_ring_over_the_live_primaries() {
        let all = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
        let down = Health {
            down: vec!["127.0.0.1:7002".parse().unwrap()],
        };
        let ejected = Topology::with_health(ketama("auto_eject = true", &all), down.clone());
        let without = Topology::build(ketama("", &[all[0], all[2]]));
        let kept = Topology::with_health(ketama("", &all), down.clone());
        let whole = Topology::build(ketama("", &all));
        for i in 0..5000 {
            let key = format!("k:{i}");
            let label = |t: &Topology| t.endpoints[route(t, key.as_bytes()).unwrap()].label.clone();
            assert_eq!(label(&ejected), label(&without), "{key}");
            assert_eq!(label(&kept), label(&whole), "{key}");
        }
        assert!(!kept.endpoints[1].healthy && kept.endpoints[0].healthy);
        let every = Health {
            down: all.iter().map(|a| a.parse().unwrap()).collect(),
        };
        let none_left = Topology::with_health(ketama("auto_eject = true", &all), every);
        assert_eq!(none_left.clusters[0].members, vec![0, 1, 2]);
    }
}
