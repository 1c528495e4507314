//! A cluster's `load_assignment` as keyway's `endpoints`: the addresses
//! and weights Envoy hashed, and what would have put keys elsewhere
//! refused.

use super::values::{is_ip_port, items_of, socket_address};
use crate::import::model::ImportError;
use crate::import::toml_out::{array, inline, string, Section};
use crate::import::yaml::Node;

/// `load_assignment` as keyway endpoints: priority 0 only (the ring Envoy
/// hashed over while those were healthy), weights kept.
pub(super) fn endpoints(
    c: &Node,
    redis_cluster: bool,
    sec: &mut Section,
) -> Result<(), ImportError> {
    let la = c
        .get("load_assignment")?
        .ok_or_else(|| c.err("no load_assignment: keyway needs the endpoints listed"))?;
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut failover = Vec::new();
    let groups = items_of(&la, "endpoints")?;
    let strict_dns = !redis_cluster
        && match c.get("type")? {
            Some(t) => t.scalar()? == "STRICT_DNS",
            None => false,
        };
    for g in &groups {
        let priority = match g.get("priority")? {
            Some(p) => p.u64()?,
            None => 0,
        };
        for e in items_of(g, "lb_endpoints")? {
            if priority > 0 {
                failover.push((priority, e));
                continue;
            }
            out.push(endpoint(&e, strict_dns, sec)?);
        }
        for (_, n) in g.others(&[
            "lb_endpoints",
            "priority",
            "locality",
            "load_balancing_weight",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    if out.is_empty() {
        return Err(la.err("no endpoint of priority 0"));
    }
    set_endpoints(&out, redis_cluster, sec);
    for (priority, e) in failover {
        sec.comment(format!(
            "not imported: {} ({}), priority {priority} — keyway has no failover priorities; Envoy sent it no keys while priority 0 was healthy.",
            e.path(),
            e.at()
        ));
    }
    for (_, n) in la.others(&["endpoints", "cluster_name"])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(())
}

/// One `lb_endpoints` item of priority 0: its `ip:port` and weight.
fn endpoint(e: &Node, strict_dns: bool, sec: &mut Section) -> Result<(String, u64), ImportError> {
    let ep = e.require("endpoint")?;
    let address = ep.require("address")?;
    let addr = socket_address(&address)?;
    if strict_dns && !is_ip_port(&addr) {
        sec.comment(format!(
            "{addr} ({}): STRICT_DNS made one Envoy host per address it resolves to, keyway connects to the first: list each address if it has several.",
            address.at()
        ));
    }
    let weight = weight(e)?;
    on_the_ring(e)?;
    for (_, n) in ep.others(&["address"])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    for (_, n) in e.others(&[
        "endpoint",
        "load_balancing_weight",
        "health_status",
        "metadata",
    ])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok((addr, weight))
}

/// An endpoint's `load_balancing_weight` (1 when absent), within keyway's.
fn weight(e: &Node) -> Result<u64, ImportError> {
    Ok(match e.get("load_balancing_weight")? {
        Some(w) => {
            let v = w.u64()?;
            if !(1..=10_000).contains(&v) {
                return Err(w.err(format!("{v}: keyway's weights are between 1 and 10000")));
            }
            v
        }
        None => 1,
    })
}

/// Refuses an endpoint Envoy kept off its ring, or hashed by another name
/// than its `ip:port`: keyway would place keys on it differently.
fn on_the_ring(e: &Node) -> Result<(), ImportError> {
    if let Some(h) = e.get("health_status")? {
        let s = h.scalar()?;
        if s != "UNKNOWN" && s != "HEALTHY" {
            return Err(h.err(format!(
                "{s}: Envoy leaves this endpoint off its ring; keyway would put it on (remove the endpoint or its health_status)"
            )));
        }
    }
    if let Some(m) = e.get("metadata")? {
        if let Some(fm) = m.get("filter_metadata")? {
            if let Some(lb) = fm.get("envoy.lb")? {
                if let Some(k) = lb.get("hash_key")? {
                    return Err(k.err(
                        "Envoy hashes this hash_key instead of the endpoint's ip:port; keyway cannot",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `endpoints = [...]`: plain addresses, or with their weights when any
/// differs from 1 (a redis cluster's seeds carry none).
fn set_endpoints(out: &[(String, u64)], redis_cluster: bool, sec: &mut Section) {
    let weighted = out.iter().any(|(_, w)| *w != 1);
    let items: Vec<String> = out
        .iter()
        .map(|(a, w)| {
            if weighted && !redis_cluster {
                inline(&[("address", string(a)), ("weight", w.to_string())])
            } else {
                string(a)
            }
        })
        .collect();
    if redis_cluster {
        sec.comment("Seed nodes: the slot map is discovered from them.");
    }
    sec.set("endpoints", array(&items));
}
