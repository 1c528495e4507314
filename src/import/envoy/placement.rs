//! How a cluster places keys: envoy.clusters.redis (keyway's
//! redis_cluster, with its refresh rate) or a RING_HASH or MAGLEV ring
//! over listed endpoints, with the sizes Envoy gave it; hashing options
//! keyway cannot follow are refused.

use super::values::{duration, items_of};
use crate::import::model::{duration_text, ImportError};
use crate::import::toml_out::{string, Section};
use crate::import::yaml::Node;
use std::time::Duration;

const PLACEMENT: &str = "keyway places keys with RING_HASH, MAGLEV or redis cluster";

/// How a cluster places keys.
pub(super) enum Placement {
    RingHash { min: u64, max: u64 },
    Maglev { table_size: u64 },
    RedisCluster,
}

/// How cluster `c` places keys, with the `typed_config` of its
/// envoy.clusters.redis if it has one; `known` gets the keys read here.
pub(super) fn placement_of<'a>(
    c: &Node<'a>,
    sec: &mut Section,
    known: &mut Vec<&'static str>,
) -> Result<(Placement, Option<Node<'a>>), ImportError> {
    match c.get("cluster_type")? {
        Some(ct) => {
            known.extend(["cluster_type", "lb_policy"]);
            let kind = ct.require("name")?.scalar()?;
            if kind != "envoy.clusters.redis" {
                return Err(ct.err(format!(
                    "`{kind}`: keyway knows clusters with their endpoints listed and envoy.clusters.redis only"
                )));
            }
            Ok((Placement::RedisCluster, ct.get("typed_config")?))
        }
        None => {
            known.extend([
                "type",
                "lb_policy",
                "ring_hash_lb_config",
                "maglev_lb_config",
                "load_balancing_policy",
                "common_lb_config",
            ]);
            Ok((listed(c, sec)?, None))
        }
    }
}

/// The ring of a cluster whose endpoints are listed: its `type` must list
/// them and its `common_lb_config` hash as keyway does.
fn listed(c: &Node, sec: &mut Section) -> Result<Placement, ImportError> {
    if let Some(t) = c.get("type")? {
        match t.scalar()?.as_str() {
            "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" => {}
            other => {
                return Err(t.err(format!(
                    "{other}: keyway needs the endpoints listed in load_assignment (STATIC, STRICT_DNS or LOGICAL_DNS)"
                )))
            }
        }
    }
    if let Some(cl) = c.get("common_lb_config")? {
        hashing_options(&cl)?;
        for (_, n) in cl.others(&[
            "consistent_hashing_lb_config",
            "locality_weighted_lb_config",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    placement(c, sec)
}

/// `lb_policy` and the sizes of its ring or table, or a redis cluster's
/// settings from its `typed_config`.
pub(super) fn set_placement(
    placement: &Placement,
    redis_config: Option<&Node>,
    sec: &mut Section,
) -> Result<(), ImportError> {
    match placement {
        Placement::RingHash { min, max } => {
            sec.set_str("lb_policy", "ring_hash");
            sec.set("min_ring_size", min.to_string());
            sec.set("max_ring_size", max.to_string());
        }
        Placement::Maglev { table_size } => {
            sec.set_str("lb_policy", "maglev");
            sec.set("table_size", table_size.to_string());
        }
        Placement::RedisCluster => {
            sec.set_str("lb_policy", "redis_cluster");
            if let Some(tc) = redis_config {
                redis_cluster_config(tc, sec)?;
            }
        }
    }
    Ok(())
}

/// `lb_policy` with its config, or the newer `load_balancing_policy`
/// (which Envoy reads instead when present).
fn placement(c: &Node, sec: &mut Section) -> Result<Placement, ImportError> {
    if let Some(lbp) = c.get("load_balancing_policy")? {
        let policies = items_of(&lbp, "policies")?;
        let Some(first) = policies.first() else {
            return Err(lbp.err("no policies"));
        };
        for p in policies.iter().skip(1) {
            sec.comment(
                p.not_imported("Envoy's fallback policy, unused while the first one loads"),
            );
        }
        let ext = first.require("typed_extension_config")?;
        let tc = ext.require("typed_config")?;
        let ty = tc.require("@type")?;
        let ty_text = ty.scalar()?;
        hashing_options(&tc)?;
        return if ty_text.ends_with(".ring_hash.v3.RingHash") {
            ring_hash(Some(&tc))
        } else if ty_text.ends_with(".maglev.v3.Maglev") {
            maglev(Some(&tc))
        } else {
            Err(ty.err(format!(
                "`{ty_text}` has no keyway equivalent ({PLACEMENT})"
            )))
        };
    }
    let Some(lp) = c.get("lb_policy")? else {
        return Err(c.err(format!(
            "no lb_policy: Envoy's default, ROUND_ROBIN, has no keyway equivalent ({PLACEMENT})"
        )));
    };
    match lp.scalar()?.as_str() {
        "RING_HASH" => ring_hash(c.get("ring_hash_lb_config")?.as_ref()),
        "MAGLEV" => maglev(c.get("maglev_lb_config")?.as_ref()),
        other => Err(lp.err(format!("{other} has no keyway equivalent ({PLACEMENT})"))),
    }
}

/// Refuses hashing options that place keys by something keyway lacks.
fn hashing_options(n: &Node) -> Result<(), ImportError> {
    let mut checks = vec![n.clone()];
    checks.extend(n.get("consistent_hashing_lb_config")?);
    for c in checks {
        if let Some(h) = c.get("use_hostname_for_hashing")? {
            if h.bool()? {
                return Err(h.err(
                    "Envoy hashes the endpoints' hostnames; keyway hashes their ip:port only",
                ));
            }
        }
        if let Some(f) = c.get("hash_balance_factor")? {
            return Err(f.err(
                "bounded loads move keys off busy endpoints; keyway's placement depends on the key only",
            ));
        }
    }
    if let Some(l) = n.get("locality_weighted_lb_config")? {
        return Err(l.err(
            "locality weights change Envoy's ring; keyway weighs endpoints only (remove it if there is one locality)",
        ));
    }
    Ok(())
}

/// RING_HASH's ring sizes (Envoy's defaults: 1024 and 8M) and hash function.
fn ring_hash(cfg: Option<&Node>) -> Result<Placement, ImportError> {
    const LIMIT: u64 = 8 * 1024 * 1024;
    let mut min = 1024;
    let mut max = LIMIT;
    if let Some(cfg) = cfg {
        if let Some(n) = cfg.get("minimum_ring_size")? {
            min = n.u64()?;
            if !(1..=LIMIT).contains(&min) {
                return Err(n.err(format!("{min}: must be between 1 and {LIMIT}")));
            }
        }
        if let Some(n) = cfg.get("maximum_ring_size")? {
            max = n.u64()?;
            if !(1..=LIMIT).contains(&max) {
                return Err(n.err(format!("{max}: must be between 1 and {LIMIT}")));
            }
        }
        if let Some(h) = cfg.get("hash_function")? {
            match h.scalar()?.as_str() {
                "XX_HASH" | "DEFAULT_HASH" => {}
                other => {
                    return Err(h.err(format!(
                        "{other}: keyway's ring_hash places ring points with XX_HASH, Envoy's default, only"
                    )))
                }
            }
        }
    }
    Ok(Placement::RingHash { min, max })
}

/// MAGLEV's table size (Envoy's default: 65537), a prime.
fn maglev(cfg: Option<&Node>) -> Result<Placement, ImportError> {
    let mut table_size = 65537;
    if let Some(n) = cfg.map(|c| c.get("table_size")).transpose()?.flatten() {
        table_size = n.u64()?;
        if table_size > 5_000_011 || !crate::route::maglev::is_prime(table_size) {
            return Err(n.err(format!(
                "{table_size}: must be a prime number up to 5000011"
            )));
        }
    }
    Ok(Placement::Maglev { table_size })
}

/// `cluster_type.typed_config` (RedisClusterConfig), also in the
/// `google.protobuf.Struct` wrapping Envoy's own examples use.
fn redis_cluster_config(tc: &Node, sec: &mut Section) -> Result<(), ImportError> {
    if let Some(t) = tc.get("@type")? {
        if t.scalar()?.ends_with("google.protobuf.Struct") {
            if let Some(v) = tc.get("value")? {
                return redis_cluster_config(&v, sec);
            }
        }
    }
    if let Some(r) = tc.get("cluster_refresh_rate")? {
        let d = duration(&r)?;
        if d < Duration::from_millis(100) {
            return Err(r.err("keyway refreshes a cluster's slots at most every 100ms"));
        }
        sec.set("cluster_refresh_rate", string(&duration_text(d)));
    }
    for (_, n) in tc.others(&["@type", "cluster_refresh_rate"])? {
        sec.comment(n.not_imported(
            "keyway also refreshes at once after MOVED or a failed node, with no setting",
        ));
    }
    Ok(())
}
