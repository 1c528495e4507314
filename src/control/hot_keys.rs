//! `/hotkeys`: every core's hot keys (`stats::hot`) merged. A key hot on
//! several cores (clients on each) adds up; the top keys are shown with
//! their estimated requests per second (and how much of that may be
//! overcount), the read/write split and bytes of the sampled requests,
//! and where they live; then per endpoint, the hot keys' share of it
//! ("why is this shard hot"). Key names are shown as Redis shows them,
//! and only here (the admin endpoint), never in logs or metrics.

use super::discovery::Directory;
use super::render::{cluster_name, json_str};
use crate::stats::hot::{escaped, merge, HotKey};
use crate::stats::CoreSnapshot;
use crate::topology::Topology;

/// Keys `/hotkeys` lists.
const SHOWN: usize = 20;
/// Keys listed per endpoint.
const PER_ENDPOINT: usize = 5;

/// Where a key lives: its cluster's name and endpoint's label.
pub(super) fn place<'a>(topo: &'a Topology, dir: &'a Directory, h: &HotKey) -> (&'a str, &'a str) {
    let endpoint = dir.endpoints.get(h.endpoint as usize);
    let cluster = endpoint.map_or(h.cluster as usize, |e| e.cluster);
    (
        cluster_name(topo, cluster),
        endpoint.map_or("", |e| e.label.as_str()),
    )
}

/// `/hotkeys` as JSON; `every`: the sampling (one request in it; 0: off).
pub fn json(topo: &Topology, dir: &Directory, cores: &[CoreSnapshot], every: u32) -> String {
    let all = merge(cores.iter().flat_map(|c| &c.hot));
    let keys: Vec<String> = (all.iter().take(SHOWN))
        .map(|m| {
            let (cluster, endpoint) = place(topo, dir, m);
            format!(
                "{{\"key\":{},\"cut\":{},\"db\":{},\"ops_per_sec\":{:.1},\"error_per_sec\":{:.1},\"reads\":{},\"writes\":{},\"bytes\":{},\"cluster\":{},\"endpoint\":{},\"slot\":{}}}",
                json_str(&escaped(&m.key)),
                m.cut,
                m.db,
                m.ops_per_sec,
                m.error_per_sec,
                m.reads,
                m.writes,
                m.bytes,
                json_str(cluster),
                json_str(endpoint),
                m.slot
            )
        })
        .collect();
    // Per endpoint: its hot keys' requests/s and the hottest of them.
    let mut endpoints: Vec<((&str, &str), f64, Vec<&HotKey>)> = Vec::new();
    for m in &all {
        let at = place(topo, dir, m);
        match endpoints.iter_mut().find(|(p, _, _)| *p == at) {
            Some((_, ops, keys)) => {
                *ops += m.ops_per_sec;
                keys.push(m);
            }
            None => endpoints.push((at, m.ops_per_sec, vec![m])),
        }
    }
    endpoints.sort_by(|a, b| b.1.total_cmp(&a.1));
    let endpoints: Vec<String> = (endpoints.iter())
        .map(|((cluster, endpoint), ops, keys)| {
            let names: Vec<String> = (keys.iter().take(PER_ENDPOINT))
                .map(|m| json_str(&escaped(&m.key)))
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
