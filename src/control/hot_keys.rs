//! `/hotkeys`: every core's hot keys (`stats::hot`) merged. A key hot on
//! several cores (clients on each) adds up; the top keys are shown with
//! their estimated requests per second (and how much of that may be
//! overcount), the read/write split and bytes of the sampled requests,
//! and where they live; then per endpoint, the hot keys' share of it
//! ("why is this shard hot"). Key names are shown as Redis shows them,
//! and only here (the admin endpoint), never in logs or metrics.

use std::collections::HashMap;

use super::discovery::Directory;
use super::render::{cluster_name, json_str};
use crate::stats::hot::{escaped, HotKey};
use crate::stats::CoreSnapshot;
use crate::topology::Topology;

/// Keys `/hotkeys` lists.
const SHOWN: usize = 20;
/// Keys listed per endpoint.
const PER_ENDPOINT: usize = 5;

/// A key's numbers over every core.
struct Merged<'a> {
    first: &'a HotKey,
    ops: f64,
    error: f64,
    reads: u64,
    writes: u64,
    bytes: u64,
}

/// Every core's hot keys, one entry per key and database, hottest first.
fn merged(cores: &[CoreSnapshot]) -> Vec<Merged<'_>> {
    let mut by_key: HashMap<(u16, &[u8]), Merged<'_>> = HashMap::new();
    for h in cores.iter().flat_map(|c| &c.hot) {
        let m = by_key.entry((h.db, &h.key)).or_insert(Merged {
            first: h,
            ops: 0.0,
            error: 0.0,
            reads: 0,
            writes: 0,
            bytes: 0,
        });
        if h.ops_per_sec > m.first.ops_per_sec {
            m.first = h;
        }
        m.ops += h.ops_per_sec;
        m.error += h.error_per_sec;
        m.reads += h.reads;
        m.writes += h.writes;
        m.bytes += h.bytes;
    }
    let mut all: Vec<Merged<'_>> = by_key.into_values().collect();
    all.sort_by(|a, b| b.ops.total_cmp(&a.ops));
    all
}

/// Where a key lives: its cluster's name and endpoint's label.
fn place<'a>(topo: &'a Topology, dir: &'a Directory, h: &HotKey) -> (&'a str, &'a str) {
    let endpoint = dir.endpoints.get(h.endpoint as usize);
    let cluster = endpoint.map_or(h.cluster as usize, |e| e.cluster);
    (
        cluster_name(topo, cluster),
        endpoint.map_or("", |e| e.label.as_str()),
    )
}

/// `/hotkeys` as JSON; `every`: the sampling (one request in it; 0: off).
pub fn json(topo: &Topology, dir: &Directory, cores: &[CoreSnapshot], every: u32) -> String {
    let all = merged(cores);
    let keys: Vec<String> = (all.iter().take(SHOWN))
        .map(|m| {
            let (cluster, endpoint) = place(topo, dir, m.first);
            format!(
                "{{\"key\":{},\"cut\":{},\"db\":{},\"ops_per_sec\":{:.1},\"error_per_sec\":{:.1},\"reads\":{},\"writes\":{},\"bytes\":{},\"cluster\":{},\"endpoint\":{},\"slot\":{}}}",
                json_str(&escaped(&m.first.key)),
                m.first.cut,
                m.first.db,
                m.ops,
                m.error,
                m.reads,
                m.writes,
                m.bytes,
                json_str(cluster),
                json_str(endpoint),
                m.first.slot
            )
        })
        .collect();
    // Per endpoint: its hot keys' requests/s and the hottest of them.
    let mut endpoints: Vec<((&str, &str), f64, Vec<&Merged<'_>>)> = Vec::new();
    for m in &all {
        let at = place(topo, dir, m.first);
        match endpoints.iter_mut().find(|(p, _, _)| *p == at) {
            Some((_, ops, keys)) => {
                *ops += m.ops;
                keys.push(m);
            }
            None => endpoints.push((at, m.ops, vec![m])),
        }
    }
    endpoints.sort_by(|a, b| b.1.total_cmp(&a.1));
    let endpoints: Vec<String> = (endpoints.iter())
        .map(|((cluster, endpoint), ops, keys)| {
            let names: Vec<String> = (keys.iter().take(PER_ENDPOINT))
                .map(|m| json_str(&escaped(&m.first.key)))
                .collect();
            format!(
                "{{\"cluster\":{},\"endpoint\":{},\"hot_ops_per_sec\":{ops:.1},\"keys\":[{}]}}",
                json_str(cluster),
                json_str(endpoint),
                names.join(",")
            )
        })
        .collect();
    format!(
        "{{\"enabled\":{},\"sample_every\":{every},\"keys\":[{}],\"endpoints\":[{}]}}\n",
        every > 0,
        keys.join(","),
        endpoints.join(",")
    )
}
