//! The immutable picture every core shares: configuration, one precomputed
//! ring per cluster, and a flat list of endpoints (a core's upstream
//! connections are indexed by the same numbers). Built once on the control
//! thread; routing a key is a pure function of it.

use crate::config::{Config, LbPolicy};
use crate::route::hashtag::hashtag;
use crate::route::ketama::Ketama;
use crate::route::maglev::Maglev;
use crate::route::ring::{Ring, RingMember};
use crate::route::ring_hash::RingHash;
use std::net::SocketAddr;

#[derive(Debug)]
pub struct EndpointInfo {
    pub cluster: usize,
    pub addr: SocketAddr,
    /// `host:port` as configured, used in errors and stats.
    pub label: String,
    pub connections: usize,
}

#[derive(Debug)]
pub struct ClusterRing {
    pub name: String,
    pub ring: Ring,
    /// Global index of the cluster's first endpoint.
    pub first_endpoint: usize,
}

#[derive(Debug)]
pub struct Topology {
    pub config: Config,
    pub clusters: Vec<ClusterRing>,
    pub endpoints: Vec<EndpointInfo>,
}

impl Topology {
    pub fn build(config: Config) -> Topology {
        let mut clusters = Vec::with_capacity(config.clusters.len());
        let mut endpoints = Vec::new();
        for (ci, c) in config.clusters.iter().enumerate() {
            let members: Vec<RingMember> = c
                .endpoints
                .iter()
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
                LbPolicy::RingHash => {
                    Ring::RingHash(RingHash::build(&members, c.min_ring_size, c.max_ring_size))
                }
                LbPolicy::Maglev => Ring::Maglev(Maglev::build(&members, c.table_size)),
                LbPolicy::Ketama => Ring::Ketama(Ketama::build(&members, c.hash)),
            };
            clusters.push(ClusterRing {
                name: c.name.clone(),
                ring,
                first_endpoint: endpoints.len(),
            });
            for e in &c.endpoints {
                endpoints.push(EndpointInfo {
                    cluster: ci,
                    addr: e.addr,
                    label: e.address.clone(),
                    connections: c.connections_per_endpoint,
                });
            }
        }
        Topology {
            config,
            clusters,
            endpoints,
        }
    }

    /// The cluster that serves `key`.
    #[inline]
    pub fn cluster_of(&self, _key: &[u8]) -> usize {
        // Prefix routes come here; today every key takes the catch-all.
        self.config.catch_all.unwrap_or(0)
    }

    /// The global endpoint index that owns `key`.
    #[inline]
    pub fn route(&self, key: &[u8]) -> usize {
        let cluster = &self.clusters[self.cluster_of(key)];
        let hashed = if self.config.hashtags {
            hashtag(key)
        } else {
            key
        };
        cluster.first_endpoint + cluster.ring.pick(hashed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The demo's acceptance, as a pure function of the shipped config:
    /// 60,000 keys over five backends land 20% +- 3% each, and keys with one
    /// hashtag land together.
    #[test]
    fn shipped_config_spreads_keys_evenly() {
        let config =
            Config::parse(include_str!("../config.toml"), "config.toml").expect("config.toml");
        let topo = Topology::build(config);
        let mut counts = vec![0usize; topo.endpoints.len()];
        for i in 0..60_000 {
            counts[topo.route(format!("user:{i}").as_bytes())] += 1;
        }
        for c in &counts {
            let share = *c as f64 / 60_000.0;
            assert!((0.17..=0.23).contains(&share), "{counts:?}");
        }
        let tagged = topo.route(b"user:{avgo}:0");
        assert!((1..6000).all(|i| topo.route(format!("user:{{avgo}}:{i}").as_bytes()) == tagged));
    }
}
