//! `/top`: the admin page's picture as plain text, for `keyway top` on a
//! host without a browser. Rates are since the last look at `/top` (the
//! admin endpoint keeps that look's counts), so a terminal refreshing it
//! every second shows requests/s and errors/s per core and endpoint.

use std::fmt::Write as _;
use std::time::Instant;

use super::discovery::Directory;
use super::reload::ReloadStatus;
use super::render::cluster_name;
use crate::stats::counters::{CoreCounter, EndpointCounter};
use crate::stats::hot::{escaped, merge};
use crate::stats::CoreSnapshot;
use crate::topology::Topology;

/// Endpoints and hot keys shown (the busiest).
const ROWS: usize = 10;

/// The counts of one look, for the next one's rates.
#[derive(Default)]
pub struct Look {
    at: Option<Instant>,
    /// Per core: commands, errors.
    cores: Vec<(u64, u64)>,
    /// Per endpoint: requests (all cores).
    endpoints: Vec<u64>,
}

/// The screen, and this look (for the next).
pub fn screen(
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    reloads: &ReloadStatus,
    last: &Look,
) -> (String, Look) {
    let now = Instant::now();
    let dt = last.at.map(|t| (now - t).as_secs_f64().max(0.001));
    let rate = |now: u64, before: Option<u64>| match (dt, before) {
        (Some(dt), Some(b)) => format!("{:.0}", now.saturating_sub(b) as f64 / dt),
        _ => "-".into(),
    };
    let mut o = String::new();
    let clients: u64 = cores
        .iter()
        .map(|c| c.get(CoreCounter::ClientConnections))
        .sum();
    let _ = writeln!(
        o,
        "keyway  generation {}  reloads {} ok / {} failed  clients {clients}  up {}s",
        reloads.generation,
        reloads.succeeded,
        reloads.failed,
        crate::stats::started_at().elapsed().as_secs()
    );
    let _ = writeln!(
        o,
        "\n{:<6} {:>8} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "core", "clients", "req/s", "err/s", "p50 µs", "p99 µs", "p99.9 µs"
    );
    let mut look = Look {
        at: Some(now),
        ..Look::default()
    };
    for (i, c) in cores.iter().enumerate() {
        let commands: u64 = c.commands.iter().sum::<u64>() + c.unknown_commands;
        let errors: u64 = c.errors.iter().sum();
        let before = last.cores.get(i);
        let [_, p50, _, p99, p999, _] = crate::stats::latency::percentiles(&c.latency[4]);
        let _ = writeln!(
            o,
            "{:<6} {:>8} {:>10} {:>8} {p50:>9} {p99:>9} {p999:>9}",
            format!("core{}", c.core),
            c.get(CoreCounter::ClientConnections),
            rate(commands, before.map(|b| b.0)),
            rate(errors, before.map(|b| b.1)),
        );
        look.cores.push((commands, errors));
    }
    look.endpoints = endpoints(&mut o, topo, dir, cores, last, &rate);
    let hot = merge(cores.iter().flat_map(|c| &c.hot));
    let _ = writeln!(
        o,
        "\n{:<40} {:>10} {:>8} {:>8}  endpoint",
        "hot key", "ops/s", "reads", "writes"
    );
    for h in hot.iter().take(ROWS) {
        let mut key = escaped(&h.key);
        if key.len() > 40 {
            key.truncate(37);
            key.push_str("...");
        }
        let _ = writeln!(
            o,
            "{key:<40} {:>10.0} {:>8} {:>8}  {}",
            h.ops_per_sec,
            h.reads,
            h.writes,
            super::hot_keys::place(topo, dir, h).1
        );
    }
    if topo.config.hot_keys_every == 0 {
        o.push_str("(hot keys are off: [admin] hot_keys = false)\n");
    }
    (o, look)
}

/// The busiest endpoints, with requests/s (`rate`) since `last`; returns
/// every endpoint's requests, for the next look.
fn endpoints(
    o: &mut String,
    topo: &Topology,
    dir: &Directory,
    cores: &[CoreSnapshot],
    last: &Look,
    rate: &dyn Fn(u64, Option<u64>) -> String,
) -> Vec<u64> {
    let _ = writeln!(
        o,
        "\n{:<12} {:<24} {:<9} {:>10} {:>8} {:>10}",
        "cluster", "endpoint", "state", "req/s", "errors", "rtt p99 µs"
    );
    let total = CoreSnapshot::total(cores);
    let eps = total.as_ref().map_or(&[][..], |t| &t.endpoints[..]);
    let mut order: Vec<usize> = (0..eps.len().min(dir.endpoints.len())).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(eps[i].get(EndpointCounter::Requests)));
    for &i in order.iter().take(ROWS) {
        let (e, s) = (&dir.endpoints[i], &eps[i]);
        let requests = s.get(EndpointCounter::Requests);
        let _ = writeln!(
            o,
            "{:<12} {:<24} {:<9} {:>10} {:>8} {:>10}",
            cluster_name(topo, e.cluster),
            e.label,
            s.state.as_str(),
            rate(requests, last.endpoints.get(i).copied()),
            s.get(EndpointCounter::Errors),
            s.rtt.value_at_quantile(0.99)
        );
    }
    if order.len() > ROWS {
        let _ = writeln!(o, "... and {} more (GET /stats)", order.len() - ROWS);
    }
    eps.iter()
        .map(|e| e.get(EndpointCounter::Requests))
        .collect()
}
