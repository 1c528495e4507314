//! What the admin endpoint serves at /metrics: Prometheus text exposition
//! format 0.0.4, one family per counter row (see `stats::counters`), per
//! core where the counter is a core's.

use super::discovery::{ClusterStatus, Directory};
use super::health::EndpointHealth;
use super::reload::ReloadStatus;
use super::render::{cluster_name, is_mirror_target};
use crate::command::COMMANDS;
use crate::stats::{
    CoreCounter, CoreSnapshot, EndpointCounter, MirrorCounter, RedirectCounter, RingCounter, Row,
    ERROR_KINDS, GROUPS,
};
use crate::topology::Topology;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

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

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/metrics`: Prometheus text exposition format 0.0.4.
pub fn render(
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    reloads: &ReloadStatus,
    health: &BTreeMap<SocketAddr, EndpointHealth>,
) -> String {
    let mut o = String::new();
    config_metrics(&mut o, reloads);
    if let Some(p) = &reloads.reshard {
        reshard_metrics(&mut o, p);
    }
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

/// A reshard's mover, per old owner.
fn reshard_metrics(o: &mut String, p: &crate::control::mover::Progress) {
    use std::sync::atomic::Ordering::Relaxed;
    header(
        o,
        "keyway_reshard_moving",
        "gauge",
        "1 while a reshard's keys are being moved, 0 once every old owner was scanned.",
    );
    let _ = writeln!(
        o,
        "keyway_reshard_moving {}",
        u8::from(!p.done.load(Relaxed))
    );
    type Of = fn(&crate::control::mover::OwnerProgress) -> u64;
    let families: [(&str, &str, &str, Of); 5] = [
        (
            "keyway_reshard_keys_at_start",
            "gauge",
            "Keys an old owner held when the mover's pass over it began.",
            |p| p.keys_at_start.load(Relaxed),
        ),
        (
            "keyway_reshard_keys_remaining",
            "gauge",
            "Keys left to scan on an old owner, about (keys at start less scanned).",
            |p| p.remaining(),
        ),
        (
            "keyway_reshard_keys_scanned_total",
            "counter",
            "Keys the mover scanned on an old owner.",
            |p| p.scanned.load(Relaxed),
        ),
        (
            "keyway_reshard_keys_moved_total",
            "counter",
            "Keys the mover sent from an old owner to their new one.",
            |p| p.moved.load(Relaxed),
        ),
        (
            "keyway_reshard_errors_total",
            "counter",
            "Passes over an old owner that failed and started again.",
            |p| p.errors.load(Relaxed),
        ),
    ];
    for (name, kind, help, of) in families {
        header(o, name, kind, help);
        for owner in &p.owners {
            let _ = writeln!(
                o,
                "{name}{{cluster=\"{}\",endpoint=\"{}\"}} {}",
                label(&owner.cluster),
                label(&owner.endpoint),
                of(owner)
            );
        }
    }
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
    use crate::control::render::tests::fixture;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn prometheus_text_declares_every_family_once_and_sums_per_core_samples() {
        let (topo, dir, cores, reloads) = fixture();
        let text = render(&topo, &dir, &cores, &reloads, &BTreeMap::new());
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
