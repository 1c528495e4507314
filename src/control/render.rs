//! What the admin endpoint serves: JSON for /stats, /clusters and /latency,
//! Prometheus text exposition for /metrics.

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

fn is_mirror_target(topo: &Topology, ring: &crate::topology::ClusterRing) -> bool {
    let cfg = &topo.config;
    let idx = topo.clusters.iter().position(|c| std::ptr::eq(c, ring));
    cfg.catch_all_mirrors
        .iter()
        .chain(cfg.prefix_routes.iter().flat_map(|r| &r.mirrors))
        .any(|m| Some(m.cluster) == idx)
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
    format!(
        "{{\"config\":{config},\"cores\":[{}],\"total\":{}}}\n",
        per.join(","),
        total
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

/// A metric family's `# HELP` and `# TYPE` lines.
fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Each row of a family of per-core counters, one value per core.
fn per_core<Id: Copy>(
    o: &mut String,
    cores: &[CoreSnapshot],
    rows: &[Row<Id>],
    values: impl Fn(&CoreSnapshot) -> &[u64],
) {
    for (i, r) in rows.iter().enumerate() {
        header(o, r.metric, r.kind.as_str(), r.help);
        for c in cores {
            let _ = writeln!(o, "{}{{core=\"{}\"}} {}", r.metric, c.core, values(c)[i]);
        }
    }
}

/// Each row of a family of per-cluster counters, one value per core and
/// cluster `shown` keeps.
fn per_core_and_cluster<Id: Copy>(
    o: &mut String,
    topo: &Topology,
    cores: &[CoreSnapshot],
    rows: &[Row<Id>],
    values: impl Fn(&CoreSnapshot) -> &[[u64; 3]],
    shown: impl Fn(&crate::topology::ClusterRing) -> bool,
) {
    for (i, r) in rows.iter().enumerate() {
        header(o, r.metric, r.kind.as_str(), r.help);
        for c in cores {
            for (ring, v) in topo.clusters.iter().zip(values(c)) {
                if shown(ring) {
                    let _ = writeln!(
                        o,
                        "{}{{core=\"{}\",cluster=\"{}\"}} {}",
                        r.metric,
                        c.core,
                        label(&ring.name),
                        v[i]
                    );
                }
            }
        }
    }
}

/// A cluster's name; empty when a reload changed the clusters between the
/// reads of one admin request.
fn cluster_name(topo: &Topology, cluster: usize) -> &str {
    topo.clusters.get(cluster).map_or("", |c| c.name.as_str())
}

fn health_word(h: &EndpointHealth) -> &'static str {
    match (h.down, h.ejected) {
        (false, _) => "healthy",
        (true, false) => "down",
        (true, true) => "ejected",
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/metrics`: Prometheus text exposition format 0.0.4.
pub fn prometheus(
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    reloads: &ReloadStatus,
    health: &BTreeMap<SocketAddr, EndpointHealth>,
) -> String {
    let mut o = String::new();
    config_metrics(&mut o, reloads);
    per_core(&mut o, cores, CoreCounter::ROWS, |c| &c.counts);
    header(
        &mut o,
        "keyway_ring_mode",
        "gauge",
        "How each core's io_uring is set up (1 for the mode in use).",
    );
    for c in cores {
        let _ = writeln!(
            o,
            "keyway_ring_mode{{core=\"{}\",mode=\"{}\"}} 1",
            c.core, c.ring.mode
        );
    }
    per_core(&mut o, cores, RingCounter::ROWS, |c| &c.ring.counts);
    per_core_and_cluster(
        &mut o,
        topo,
        cores,
        MirrorCounter::ROWS,
        |c| &c.mirrors,
        |ring| is_mirror_target(topo, ring),
    );
    command_metrics(&mut o, cores);
    per_core_and_cluster(
        &mut o,
        topo,
        cores,
        RedirectCounter::ROWS,
        |c| &c.redirects,
        |ring| ring.ring.is_none(),
    );
    refresh_metrics(&mut o, topo, dir);
    endpoint_metrics(&mut o, topo, dir, cores);
    health_metrics(&mut o, topo, dir, health);
    latency_metrics(&mut o, dir, cores);
    o
}

fn config_metrics(o: &mut String, reloads: &ReloadStatus) {
    header(
        o,
        "keyway_config_generation",
        "gauge",
        "The configuration generation served: 1 at start, one more per reload.",
    );
    let _ = writeln!(o, "keyway_config_generation {}", reloads.generation);
    header(
        o,
        "keyway_config_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP, POST /reload) by result.",
    );
    let _ = writeln!(
        o,
        "keyway_config_reloads_total{{result=\"succeeded\"}} {}\nkeyway_config_reloads_total{{result=\"failed\"}} {}",
        reloads.succeeded, reloads.failed
    );
}

/// Commands received by name, and error replies keyway made by kind.
fn command_metrics(o: &mut String, cores: &[CoreSnapshot]) {
    header(
        o,
        "keyway_commands_total",
        "counter",
        "Client commands received, by command.",
    );
    for c in cores {
        let known = COMMANDS.iter().map(|s| s.name).zip(&c.commands);
        let unknown = std::iter::once(("(unknown)", &c.unknown_commands));
        for (name, n) in known.chain(unknown).filter(|(_, &n)| n > 0) {
            let _ = writeln!(
                o,
                "keyway_commands_total{{core=\"{}\",command=\"{name}\"}} {n}",
                c.core
            );
        }
    }
    header(
        o,
        "keyway_errors_total",
        "counter",
        "Error replies produced by keyway, by kind.",
    );
    for c in cores {
        for ((_, kind), n) in ERROR_KINDS.iter().zip(&c.errors) {
            let _ = writeln!(
                o,
                "keyway_errors_total{{core=\"{}\",kind=\"{kind}\"}} {n}",
                c.core
            );
        }
    }
}

/// Slot map fetches of each redis_cluster cluster.
fn refresh_metrics(o: &mut String, topo: &Topology, dir: &Directory) {
    type StatusCounter = fn(&ClusterStatus) -> u64;
    let families: [(&str, &str, StatusCounter); 2] = [
        (
            "keyway_cluster_refreshes_total",
            "Slot map fetches (CLUSTER SLOTS) that succeeded.",
            |s| s.refreshes,
        ),
        (
            "keyway_cluster_refresh_failures_total",
            "Slot map fetches that found no node answering.",
            |s| s.refresh_failures,
        ),
    ];
    for (name, help, get) in families {
        header(o, name, "counter", help);
        for (ring, st) in topo.clusters.iter().zip(&dir.clusters) {
            if ring.ring.is_none() {
                let _ = writeln!(o, "{name}{{cluster=\"{}\"}} {}", label(&ring.name), get(st));
            }
        }
    }
}

/// Each endpoint's counters per core.
fn endpoint_metrics(o: &mut String, topo: &Topology, dir: &Directory, cores: &[CoreSnapshot]) {
    for (i, r) in EndpointCounter::ROWS.iter().enumerate() {
        header(o, r.metric, r.kind.as_str(), r.help);
        for c in cores {
            for (e, s) in dir.endpoints.iter().zip(&c.endpoints) {
                let _ = writeln!(
                    o,
                    "{}{{core=\"{}\",cluster=\"{}\",endpoint=\"{}\"}} {}",
                    r.metric,
                    c.core,
                    label(cluster_name(topo, e.cluster)),
                    label(&e.label),
                    s.counts[i]
                );
            }
        }
    }
}

/// Request latency per core and group, round trips per endpoint.
fn latency_metrics(o: &mut String, dir: &Directory, cores: &[CoreSnapshot]) {
    let quantiles = [0.5, 0.9, 0.99, 0.999];
    header(
        o,
        "keyway_request_latency_seconds",
        "summary",
        "Client request latency, frame complete to reply written.",
    );
    for c in cores {
        for (g, h) in GROUPS.iter().zip(&c.latency) {
            let l = format!("core=\"{}\",group=\"{g}\"", c.core);
            summary_lines(o, "keyway_request_latency_seconds", &l, h, &quantiles);
        }
    }
    header(
        o,
        "keyway_upstream_rtt_seconds",
        "summary",
        "Round trip of requests to an endpoint.",
    );
    for c in cores {
        for (e, s) in dir.endpoints.iter().zip(&c.endpoints) {
            let l = format!("core=\"{}\",endpoint=\"{}\"", c.core, label(&e.label));
            summary_lines(o, "keyway_upstream_rtt_seconds", &l, &s.rtt, &quantiles);
        }
    }
}

fn summary_lines(o: &mut String, name: &str, labels: &str, h: &Histogram<u64>, quantiles: &[f64]) {
    for q in quantiles {
        let v = if !h.is_empty() {
            h.value_at_quantile(*q) as f64 / 1e6
        } else {
            0.0
        };
        let _ = writeln!(o, "{name}{{{labels},quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(o, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.len());
}

/// Health of every configured endpoint: state, ejections, active checks.
fn health_metrics(
    o: &mut String,
    topo: &Topology,
    dir: &Directory,
    health: &BTreeMap<SocketAddr, EndpointHealth>,
) {
    let rows: Vec<(String, EndpointHealth)> = dir
        .endpoints
        .iter()
        .filter(|e| {
            topo.clusters
                .get(e.cluster)
                .is_some_and(|c| c.ring.is_some())
        })
        .map(|e| {
            // Nothing seen of it yet: healthy.
            let h = health.get(&e.addr).cloned().unwrap_or_default();
            let l = format!(
                "cluster=\"{}\",endpoint=\"{}\"",
                label(cluster_name(topo, e.cluster)),
                label(&e.label)
            );
            (l, h)
        })
        .collect();
    let mut family =
        |name: &str, kind: &str, help: &str, value: &dyn Fn(&EndpointHealth) -> String| {
            header(o, name, kind, help);
            for (l, h) in &rows {
                let _ = writeln!(o, "{name}{{{l}}} {}", value(h));
            }
        };
    family(
        "keyway_endpoint_healthy",
        "gauge",
        "1 while an endpoint answers, 0 once health checking found it down.",
        &|h| u8::from(!h.down).to_string(),
    );
    family(
        "keyway_endpoint_ejected",
        "gauge",
        "1 while an endpoint is out of its cluster's ring (auto_eject).",
        &|h| u8::from(h.ejected).to_string(),
    );
    family(
        "keyway_endpoint_ejections_total",
        "counter",
        "Times an endpoint was ejected from its cluster's ring.",
        &|h| h.ejections.to_string(),
    );
    family(
        "keyway_health_checks_passed_total",
        "counter",
        "Active health checks (PING) an endpoint answered.",
        &|h| h.checks_passed.to_string(),
    );
    family(
        "keyway_health_checks_failed_total",
        "counter",
        "Active health checks (PING) an endpoint failed.",
        &|h| h.checks_failed.to_string(),
    );
    family(
        "keyway_health_check_seconds",
        "gauge",
        "How long the last passed health check took.",
        &|h| h.last_check.map_or(0.0, |d| d.as_secs_f64()).to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::stats::{ConnState, CoreStats};
    use std::collections::{BTreeSet, HashMap};

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
    fn fixture() -> (Topology, Directory, Vec<CoreSnapshot>, ReloadStatus) {
        let topo = Topology::build(Config::parse(CONFIG, "test.toml").expect("config"));
        let dir = Directory {
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

    #[test]
    fn prometheus_text_declares_every_family_once_and_sums_per_core_samples() {
        let (topo, dir, cores, reloads) = fixture();
        let text = prometheus(&topo, &dir, &cores, &reloads, &BTreeMap::new());
        let mut typed = BTreeSet::new();
        let mut sums: HashMap<String, f64> = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default().to_string();
                assert!(typed.insert(name.clone()), "{name} declared twice");
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample: series and value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
            let name = series.split('{').next().unwrap_or_default();
            let family = name
                .strip_suffix("_sum")
                .or_else(|| name.strip_suffix("_count"))
                .filter(|f| typed.contains(*f))
                .unwrap_or(name);
            assert!(typed.contains(family), "{name} has no # TYPE before it");
            assert_eq!(
                series.matches('"').count() % 2,
                0,
                "unbalanced label quotes: {line}"
            );
            *sums.entry(name.to_string()).or_default() += value;
        }
        assert_eq!(sums["keyway_client_connections_accepted_total"], 3.0);
        assert!(typed.len() > 20, "{typed:?}");
    }
}
