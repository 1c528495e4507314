//! What the admin endpoint serves as JSON: /stats, /clusters and /latency
//! (Prometheus text for /metrics is `metrics`).

use crate::command::COMMANDS;
use crate::control::discovery::{ClusterStatus, Directory};
use crate::control::health::EndpointHealth;
use crate::control::reload::ReloadStatus;
use crate::stats::{
    CoreCounter, CoreSnapshot, EndpointCounter, MirrorCounter, RedirectCounter, RingCounter, Row,
    ERROR_KINDS, GROUPS,
};
use crate::topology::Topology;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

pub(super) fn is_mirror_target(topo: &Topology, ring: &crate::topology::ClusterRing) -> bool {
    let idx = topo.clusters.iter().position(|c| std::ptr::eq(c, ring));
    topo.mirror_policies().any(|m| Some(m.cluster) == idx)
}

pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn percentiles_json(h: &Histogram<u64>) -> String {
    let [n, p50, p90, p99, p999, max] = crate::stats::latency::percentiles(h);
    format!(
        "{{\"count\":{n},\"p50_us\":{p50},\"p90_us\":{p90},\"p99_us\":{p99},\"p999_us\":{p999},\"max_us\":{max}}}"
    )
}

/// `"key":value` for each row of a counter family.
fn counters_json<Id>(rows: &[Row<Id>], values: &[u64]) -> String {
    let fields: Vec<String> = rows
        .iter()
        .zip(values)
        .map(|(r, v)| format!("\"{}\":{v}", r.json))
        .collect();
    fields.join(",")
}

/// Per cluster, for the clusters `shown` keeps: its name and counters.
fn per_cluster_json<Id>(
    topo: &Topology,
    rows: &[Row<Id>],
    values: &[[u64; 3]],
    shown: impl Fn(&crate::topology::ClusterRing) -> bool,
) -> String {
    let clusters: Vec<String> = topo
        .clusters
        .iter()
        .zip(values)
        .filter(|(ring, _)| shown(ring))
        .map(|(ring, v)| {
            format!(
                "{{\"cluster\":{},{}}}",
                json_str(&ring.name),
                counters_json(rows, v)
            )
        })
        .collect();
    clusters.join(",")
}

fn core_json(topo: &Topology, dir: &Directory, c: &CoreSnapshot) -> String {
    let mut o = String::from("{");
    if c.core != usize::MAX {
        let _ = write!(o, "\"core\":{},", c.core);
    }
    o.push_str(&counters_json(CoreCounter::ROWS, &c.counts));
    o.push_str(",\"commands\":{");
    let cmds: Vec<String> = COMMANDS
        .iter()
        .zip(&c.commands)
        .filter(|(_, &n)| n > 0)
        .map(|(s, n)| format!("{}:{n}", json_str(s.name)))
        .chain((c.unknown_commands > 0).then(|| format!("\"(unknown)\":{}", c.unknown_commands)))
        .collect();
    o.push_str(&cmds.join(","));
    o.push_str("},\"errors\":{");
    let errs: Vec<String> = ERROR_KINDS
        .iter()
        .zip(&c.errors)
        .map(|((_, n), v)| format!("\"{n}\":{v}"))
        .collect();
    o.push_str(&errs.join(","));
    o.push_str("},\"endpoints\":[");
    let eps: Vec<String> = dir
        .endpoints
        .iter()
        .zip(&c.endpoints)
        .map(|(e, s)| {
            format!(
                "{{\"cluster\":{},\"endpoint\":{},{},\"state\":\"{}\",\"rtt\":{}}}",
                json_str(cluster_name(topo, e.cluster)),
                json_str(&e.label),
                counters_json(EndpointCounter::ROWS, &s.counts),
                s.state.as_str(),
                percentiles_json(&s.rtt)
            )
        })
        .collect();
    o.push_str(&eps.join(","));
    let _ = write!(
        o,
        "],\"mirrors\":[{}],\"redirects\":[{}],",
        per_cluster_json(topo, MirrorCounter::ROWS, &c.mirrors, |ring| {
            is_mirror_target(topo, ring)
        }),
        per_cluster_json(topo, RedirectCounter::ROWS, &c.redirects, |ring| {
            ring.ring.is_none()
        }),
    );
    let _ = write!(
        o,
        "\"ring\":{{\"mode\":\"{}\",{}}},",
        c.ring.mode,
        counters_json(RingCounter::ROWS, &c.ring.counts)
    );
    o.push_str("\"latency\":{");
    let lat: Vec<String> = GROUPS
        .iter()
        .zip(&c.latency)
        .map(|(g, h)| format!("\"{g}\":{}", percentiles_json(h)))
        .collect();
    o.push_str(&lat.join(","));
    o.push_str("}}");
    o
}

/// `/stats`: per core and total.
pub fn stats_json(
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    reloads: &ReloadStatus,
) -> String {
    let per: Vec<String> = cores.iter().map(|c| core_json(topo, dir, c)).collect();
    let total = CoreSnapshot::total(cores)
        .map(|t| core_json(topo, dir, &t))
        .unwrap_or_else(|| "{}".into());
    let config = format!(
        "{{\"generation\":{},\"last_reload\":{},\"reloads_succeeded\":{},\"reloads_failed\":{},\"last_reload_error\":{}}}",
        reloads.generation,
        reloads
            .last_reload
            .map_or("null".into(), |t| json_str(&crate::log::rfc3339(t))),
        reloads.succeeded,
        reloads.failed,
        reloads.last_error.as_deref().map_or("null".into(), json_str),
    );
    let reshard = reloads
        .reshard
        .as_deref()
        .map_or("null".into(), reshard_json);
    format!(
        "{{\"config\":{config},\"reshard\":{reshard},\"cores\":[{}],\"total\":{}}}\n",
        per.join(","),
        total
    )
}

/// A reshard's mover: its rate and, per old owner, keys at the start of
/// its pass, scanned, left to scan (about), moved, errors, and whether its
/// pass is complete.
pub fn reshard_json(p: &crate::control::mover::Progress) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let owners: Vec<String> = (p.owners.iter())
        .map(|o| {
            format!(
                "{{\"cluster\":{},\"endpoint\":{},\"keys_at_start\":{},\"scanned\":{},\"remaining\":{},\"moved\":{},\"errors\":{},\"passed\":{}}}",
                json_str(&o.cluster),
                json_str(&o.endpoint),
                o.keys_at_start.load(Relaxed),
                o.scanned.load(Relaxed),
                o.remaining(),
                o.moved.load(Relaxed),
                o.errors.load(Relaxed),
                o.passed.load(Relaxed)
            )
        })
        .collect();
    let state = p.state();
    format!(
        "{{\"state\":\"{state}\",\"fleet\":{},\"round\":\"{}\",\"seconds\":{:.1},\"keys_per_second\":{:.0},\"old_owners\":[{}]}}",
        p.fleet,
        p.round.name(),
        p.seconds(),
        p.keys_per_second(),
        owners.join(",")
    )
}

/// `/latency`: current percentiles per core and merged, per group.
pub fn latency_json(cores: &[CoreSnapshot]) -> String {
    let one = |c: &CoreSnapshot| {
        let groups: Vec<String> = GROUPS
            .iter()
            .zip(&c.latency)
            .map(|(g, h)| format!("\"{g}\":{}", percentiles_json(h)))
            .collect();
        format!("{{{}}}", groups.join(","))
    };
    let per: Vec<String> = cores
        .iter()
        .map(|c| format!("{{\"core\":{},\"latency\":{}}}", c.core, one(c)))
        .collect();
    let total = CoreSnapshot::total(cores)
        .map(|t| one(&t))
        .unwrap_or_else(|| "{}".into());
    format!("{{\"cores\":[{}],\"total\":{}}}\n", per.join(","), total)
}

/// `/clusters`: clusters, their endpoints and connection state per core.
pub fn clusters_json(
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    health: &BTreeMap<SocketAddr, EndpointHealth>,
) -> String {
    let endpoint = |i: usize, weight: u32, role: &str| {
        let Some(e) = dir.endpoints.get(i) else {
            return "null".to_string();
        };
        let states: Vec<String> = cores
            .iter()
            .map(|s| {
                format!(
                    "\"{}\"",
                    s.endpoints.get(i).map_or("idle", |e| e.state.as_str())
                )
            })
            .collect();
        let h = health.get(&e.addr).cloned().unwrap_or_default();
        format!(
            "{{\"address\":{},\"resolved\":\"{}\",\"role\":\"{role}\",\"weight\":{},\"state_per_core\":[{}],\"health\":\"{}\",\"ejections\":{},\"checks_passed\":{},\"checks_failed\":{},\"last_check_ms\":{}}}",
            json_str(&e.label),
            e.addr,
            weight,
            states.join(","),
            health_word(&h),
            h.ejections,
            h.checks_passed,
            h.checks_failed,
            h.last_check
                .map_or("null".into(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0)),
        )
    };
    let clusters: Vec<String> = topo
        .config
        .clusters
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let head = format!(
                "\"name\":{},\"lb_policy\":\"{:?}\",\"read_policy\":\"{:?}\",\"tls\":{}",
                json_str(&c.name),
                c.lb_policy,
                c.read_policy,
                c.tls.is_some()
            );
            let (Some(ring), Some(status)) = (topo.clusters.get(ci), dir.clusters.get(ci)) else {
                return format!("{{{head}}}");
            };
            if ring.ring.is_none() {
                return format!("{{{head},{}}}", slot_map_json(status, &endpoint));
            }
            let shards: Vec<String> = ring
                .shards
                .iter()
                .zip(&c.endpoints)
                .map(|(sh, e)| {
                    let reps: Vec<String> = sh
                        .replicas
                        .iter()
                        .map(|&r| endpoint(r, 1, "replica"))
                        .collect();
                    format!(
                        "{{\"primary\":{},\"replicas\":[{}]}}",
                        endpoint(sh.primary, e.weight, "primary"),
                        reps.join(",")
                    )
                })
                .collect();
            format!("{{{head},\"shards\":[{}]}}", shards.join(","))
        })
        .collect();
    format!("{{\"clusters\":[{}]}}\n", clusters.join(","))
}

/// A redis_cluster cluster: its shards with their slot ranges and roles,
/// and the state of discovery.
fn slot_map_json(st: &ClusterStatus, endpoint: &dyn Fn(usize, u32, &str) -> String) -> String {
    let secs = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or("null".to_string(), |d| format!("{:.3}", d.as_secs_f64()))
    };
    let mut o = format!(
        "\"last_refresh_unix\":{},\"refreshes\":{},\"refresh_failures\":{},\"last_error\":{},",
        secs(st.last_refresh),
        st.refreshes,
        st.refresh_failures,
        st.last_error
            .as_deref()
            .map_or("null".to_string(), json_str)
    );
    let Some(map) = &st.map else {
        o.push_str("\"slot_map\":null");
        return o;
    };
    let ranges = map.ranges();
    let shards: Vec<String> = map
        .shards
        .iter()
        .enumerate()
        .map(|(i, sh)| {
            let slots: Vec<String> = ranges
                .iter()
                .filter(|r| r.2 as usize == i)
                .map(|r| format!("[{},{}]", r.0, r.1))
                .collect();
            let reps: Vec<String> = sh
                .replicas
                .iter()
                .map(|&r| endpoint(r, 1, "replica"))
                .collect();
            format!(
                "{{\"slots\":[{}],\"primary\":{},\"replicas\":[{}]}}",
                slots.join(","),
                endpoint(sh.primary, 1, "primary"),
                reps.join(",")
            )
        })
        .collect();
    let _ = write!(
        o,
        "\"slot_map\":{{\"version\":{},\"unserved_slots\":{},\"shards\":[{}]}}",
        map.version,
        map.unserved(),
        shards.join(",")
    );
    o
}

/// A cluster's name; empty when a reload changed the clusters between the
/// reads of one admin request.
pub(super) fn cluster_name(topo: &Topology, cluster: usize) -> &str {
    topo.clusters.get(cluster).map_or("", |c| c.name.as_str())
}

fn health_word(h: &EndpointHealth) -> &'static str {
    match (h.down, h.ejected) {
        (false, _) => "healthy",
        (true, false) => "down",
        (true, true) => "ejected",
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stats::{ConnState, CoreStats};

    const CONFIG: &str = r#"
[proxy]
listen = "127.0.0.1:6380"

[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:7001", "127.0.0.1:7002"]

[routes]
catch_all = "main"
"#;

    /// Two cores' snapshots with known counts: core i accepted i + 1
    /// clients and sent endpoint 0 ten requests.
    pub(in crate::control) fn fixture() -> (Topology, Directory, Vec<CoreSnapshot>, ReloadStatus) {
        let topo = Topology::build(Config::parse(CONFIG, "test.toml").expect("config"));
        let dir = Directory {
            generation: 1,
            endpoints: topo.endpoints.clone(),
            clusters: Vec::new(),
        };
        let cores = (0..2)
            .map(|i| {
                let stats = CoreStats::new(i, topo.endpoints.len(), topo.clusters.len());
                stats.count(CoreCounter::AcceptedConnections, i as u64 + 1);
                (0..10).for_each(|_| stats.endpoint(0).count(EndpointCounter::Requests));
                stats.snapshot(vec![ConnState::Up, ConnState::Idle])
            })
            .collect();
        let reloads = ReloadStatus {
            generation: 3,
            last_reload: None,
            succeeded: 2,
            failed: 1,
            last_error: Some("bad \"quote\"\nand a newline".into()),
            reshard: None,
        };
        (topo, dir, cores, reloads)
    }

    #[test]
    fn stats_json_parses_back_with_totals_that_add_up() {
        let (topo, dir, cores, reloads) = fixture();
        let text = stats_json(&topo, &dir, &cores, &reloads);
        let v: serde_json::Value = serde_json::from_str(&text).expect("/stats is JSON");
        assert_eq!(v["cores"].as_array().map(Vec::len), Some(2));
        assert_eq!(v["cores"][1]["accepted_connections"], 2);
        assert_eq!(v["total"]["accepted_connections"], 3);
        assert_eq!(v["config"]["generation"], 3);
        assert_eq!(v["config"]["reloads_failed"], 1);
        assert_eq!(
            v["config"]["last_reload_error"],
            "bad \"quote\"\nand a newline"
        );
        let latency: serde_json::Value =
            serde_json::from_str(&latency_json(&cores)).expect("/latency is JSON");
        assert!(latency.is_object());
    }
}
