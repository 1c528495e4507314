//! What the admin endpoint serves: JSON for /stats, /clusters and /latency,
//! Prometheus text exposition for /metrics.

use super::{CoreSnapshot, ERROR_KINDS, GROUPS};
use crate::command::COMMANDS;
use crate::topology::Topology;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

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
    let q = |x| h.value_at_quantile(x);
    format!(
        "{{\"count\":{},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        h.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        h.max()
    )
}

fn core_json(topo: &Topology, c: &CoreSnapshot) -> String {
    let mut o = String::from("{");
    if c.core != usize::MAX {
        let _ = write!(o, "\"core\":{},", c.core);
    }
    let _ = write!(
        o,
        "\"client_connections\":{},\"accepted_connections\":{},\"rejected_connections\":{},\"bytes_in\":{},\"bytes_out\":{},",
        c.connections, c.accepted, c.rejected_connections, c.bytes_in, c.bytes_out
    );
    o.push_str("\"commands\":{");
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
    let eps: Vec<String> = topo
        .endpoints
        .iter()
        .zip(&c.endpoints)
        .map(|(e, s)| {
            format!(
                "{{\"cluster\":{},\"endpoint\":{},\"requests\":{},\"errors\":{},\"timeouts\":{},\"reconnects\":{},\"connect_failures\":{},\"state\":\"{}\",\"rtt\":{}}}",
                json_str(&topo.clusters[e.cluster].name),
                json_str(&e.label),
                s.requests,
                s.errors,
                s.timeouts,
                s.reconnects,
                s.connect_failures,
                s.state,
                percentiles_json(&s.rtt)
            )
        })
        .collect();
    o.push_str(&eps.join(","));
    o.push_str("],\"mirrors\":[");
    let mirrors: Vec<String> = topo
        .clusters
        .iter()
        .zip(&c.mirrors)
        .filter(|(ring, _)| is_mirror_target(topo, ring))
        .map(|(ring, [sent, failed, dropped])| {
            format!(
                "{{\"cluster\":{},\"sent\":{sent},\"failed\":{failed},\"dropped\":{dropped}}}",
                json_str(&ring.name)
            )
        })
        .collect();
    o.push_str(&mirrors.join(","));
    o.push_str("],\"latency\":{");
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
pub fn stats_json(topo: &Topology, cores: &[CoreSnapshot]) -> String {
    let per: Vec<String> = cores.iter().map(|c| core_json(topo, c)).collect();
    let total = CoreSnapshot::total(cores)
        .map(|t| core_json(topo, &t))
        .unwrap_or_else(|| "{}".into());
    format!("{{\"cores\":[{}],\"total\":{}}}\n", per.join(","), total)
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
pub fn clusters_json(topo: &Topology, cores: &[CoreSnapshot]) -> String {
    let clusters: Vec<String> = topo
        .config
        .clusters
        .iter()
        .enumerate()
        .map(|(ci, c)| {
            let endpoint = |i: usize, weight: u32| {
                let e = &topo.endpoints[i];
                let states: Vec<String> = cores.iter().map(|s| format!("\"{}\"", s.endpoints[i].state)).collect();
                format!(
                    "{{\"address\":{},\"resolved\":\"{}\",\"role\":\"{}\",\"weight\":{},\"state_per_core\":[{}]}}",
                    json_str(&e.label),
                    e.addr,
                    if e.replica { "replica" } else { "primary" },
                    weight,
                    states.join(",")
                )
            };
            let shards: Vec<String> = topo.clusters[ci]
                .shards
                .iter()
                .zip(&c.endpoints)
                .map(|(sh, e)| {
                    let reps: Vec<String> = sh.replicas.iter().map(|&r| endpoint(r, 1)).collect();
                    format!("{{\"primary\":{},\"replicas\":[{}]}}", endpoint(sh.primary, e.weight), reps.join(","))
                })
                .collect();
            format!(
                "{{\"name\":{},\"lb_policy\":\"{:?}\",\"read_policy\":\"{:?}\",\"shards\":[{}]}}",
                json_str(&c.name),
                c.lb_policy,
                c.read_policy,
                shards.join(",")
            )
        })
        .collect();
    format!("{{\"clusters\":[{}]}}\n", clusters.join(","))
}

type EndpointCounter = fn(&super::EndpointSnapshot) -> u64;

/// A metric family with one value per core.
fn per_core(
    o: &mut String,
    cores: &[CoreSnapshot],
    name: &str,
    kind: &str,
    help: &str,
    get: fn(&CoreSnapshot) -> u64,
) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for c in cores {
        let _ = writeln!(o, "{name}{{core=\"{}\"}} {}", c.core, get(c));
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `/metrics`: Prometheus text exposition format 0.0.4.
pub fn prometheus(topo: &Topology, cores: &[CoreSnapshot]) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    per_core(
        &mut o,
        cores,
        "keyway_client_connections",
        "gauge",
        "Client connections open.",
        |c| c.connections,
    );
    per_core(
        &mut o,
        cores,
        "keyway_client_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        |c| c.accepted,
    );
    per_core(
        &mut o,
        cores,
        "keyway_client_connections_rejected_total",
        "counter",
        "Client connections closed at once by the connection rate limit.",
        |c| c.rejected_connections,
    );
    let mirror_families = [
        (
            "keyway_mirror_requests_total",
            "Requests mirrored to a cluster.",
        ),
        (
            "keyway_mirror_failures_total",
            "Mirrored requests that failed or got an error reply.",
        ),
        (
            "keyway_mirror_dropped_total",
            "Mirrored requests dropped because the mirror queue was full.",
        ),
    ];
    for (i, (name, help)) in mirror_families.iter().enumerate() {
        family(&mut o, name, "counter", help);
        for c in cores {
            for (ring, m) in topo.clusters.iter().zip(&c.mirrors) {
                if is_mirror_target(topo, ring) {
                    let _ = writeln!(
                        o,
                        "{name}{{core=\"{}\",cluster=\"{}\"}} {}",
                        c.core,
                        label(&ring.name),
                        m[i]
                    );
                }
            }
        }
    }
    family(
        &mut o,
        "keyway_commands_total",
        "counter",
        "Client commands received, by command.",
    );
    for c in cores {
        for (s, n) in COMMANDS.iter().zip(&c.commands).filter(|(_, &n)| n > 0) {
            let _ = writeln!(
                o,
                "keyway_commands_total{{core=\"{}\",command=\"{}\"}} {n}",
                c.core, s.name
            );
        }
        if c.unknown_commands > 0 {
            let _ = writeln!(
                o,
                "keyway_commands_total{{core=\"{}\",command=\"(unknown)\"}} {}",
                c.core, c.unknown_commands
            );
        }
    }
    family(
        &mut o,
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
    per_core(
        &mut o,
        cores,
        "keyway_client_bytes_received_total",
        "counter",
        "Bytes read from clients.",
        |c| c.bytes_in,
    );
    per_core(
        &mut o,
        cores,
        "keyway_client_bytes_sent_total",
        "counter",
        "Bytes written to clients.",
        |c| c.bytes_out,
    );
    let ep_counters: [(&str, &str, EndpointCounter); 5] = [
        (
            "keyway_upstream_requests_total",
            "Requests sent to an endpoint.",
            |e| e.requests,
        ),
        (
            "keyway_upstream_errors_total",
            "Requests to an endpoint that failed.",
            |e| e.errors,
        ),
        (
            "keyway_upstream_timeouts_total",
            "Requests to an endpoint that timed out.",
            |e| e.timeouts,
        ),
        (
            "keyway_upstream_reconnects_total",
            "Connections made to an endpoint.",
            |e| e.reconnects,
        ),
        (
            "keyway_upstream_connect_failures_total",
            "Failed connection attempts to an endpoint.",
            |e| e.connect_failures,
        ),
    ];
    for (name, help, get) in ep_counters {
        family(&mut o, name, "counter", help);
        for c in cores {
            for (e, s) in topo.endpoints.iter().zip(&c.endpoints) {
                let _ = writeln!(
                    o,
                    "{name}{{core=\"{}\",cluster=\"{}\",endpoint=\"{}\"}} {}",
                    c.core,
                    label(&topo.clusters[e.cluster].name),
                    label(&e.label),
                    get(s)
                );
            }
        }
    }
    let quantiles = [0.5, 0.9, 0.99, 0.999];
    family(
        &mut o,
        "keyway_request_latency_seconds",
        "summary",
        "Client request latency, frame complete to reply written.",
    );
    for c in cores {
        for (g, h) in GROUPS.iter().zip(&c.latency) {
            let l = format!("core=\"{}\",group=\"{g}\"", c.core);
            summary_lines(&mut o, "keyway_request_latency_seconds", &l, h, &quantiles);
        }
    }
    family(
        &mut o,
        "keyway_upstream_rtt_seconds",
        "summary",
        "Round trip of requests to an endpoint.",
    );
    for c in cores {
        for (e, s) in topo.endpoints.iter().zip(&c.endpoints) {
            let l = format!("core=\"{}\",endpoint=\"{}\"", c.core, label(&e.label));
            summary_lines(
                &mut o,
                "keyway_upstream_rtt_seconds",
                &l,
                &s.rtt,
                &quantiles,
            );
        }
    }
    o
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
