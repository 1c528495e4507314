//! `[[clusters]]`: each cluster's placement policy, its shards (a primary
//! and its replicas each), read policy, ring settings, TLS and health.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::model::{Cluster, Endpoint, LbPolicy, ReadPolicy, Reshard};
use super::raw::{RawCluster, RawEndpoint};
use super::validation::{duration, positive, resolve, span_of, Ctx};
use super::{health, tls, ConfigError, Problem};
use crate::route::hash::KetamaHash;

/// Every cluster, in the order written; names are unique.
pub(super) fn read_all(ctx: &Ctx, raw: &[RawCluster]) -> Result<Vec<Cluster>, ConfigError> {
    let mut clusters: Vec<Cluster> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        if clusters.iter().any(|o| &o.name == c.name.get_ref()) {
            return Err(ctx.err(
                c.name.span(),
                &format!("clusters[{i}].name"),
                format!("duplicate cluster name `{}`", c.name.get_ref()),
            ));
        }
        clusters.push(read(ctx, c, &format!("clusters[{i}]"))?);
    }
    Ok(clusters)
}

fn read(ctx: &Ctx, c: &RawCluster, prefix: &str) -> Result<Cluster, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let name = c.name.get_ref().clone();
    if name.is_empty() {
        return Err(ctx.err(c.name.span(), &key("name"), "must not be empty"));
    }
    let lb_policy = lb_policy(ctx, c, prefix)?;
    let refresh_rate = refresh_rate(ctx, c, lb_policy, prefix)?;
    let tls = tls::upstream(ctx, &c.tls, &key("tls"))?;
    let (endpoints, replicas) = shards(ctx, c, prefix)?;
    let read_policy = read_policy(ctx, c, lb_policy, &replicas, prefix)?;
    let ring = ring(ctx, c, lb_policy, prefix)?;
    let health_check = health::check(ctx, &c.health_check, &key("health_check"))?;
    let ejection = health::ejection(ctx, c, lb_policy, prefix)?;
    let reshard = reshard(ctx, c, lb_policy, ejection.auto_eject, prefix)?;
    Ok(Cluster {
        reshard,
        health_check,
        failure_limit: ejection.failure_limit,
        auto_eject: ejection.auto_eject,
        retry_timeout: ejection.retry_timeout,
        name,
        lb_policy,
        endpoints,
        replicas,
        read_policy,
        username: c.username.clone(),
        password: c.password.clone(),
        connections_per_endpoint: positive(
            ctx,
            &c.connections_per_endpoint,
            &key("connections_per_endpoint"),
            1,
            64,
        )? as usize,
        hash: ring.hash,
        min_ring_size: ring.min_size,
        max_ring_size: ring.max_size,
        table_size: ring.table_size,
        refresh_rate,
        tls,
    })
}

fn lb_policy(ctx: &Ctx, c: &RawCluster, prefix: &str) -> Result<LbPolicy, ConfigError> {
    let lb_policy = match c.lb_policy.get_ref().as_str() {
        "ring_hash" => LbPolicy::RingHash,
        "maglev" => LbPolicy::Maglev,
        "ketama" => LbPolicy::Ketama,
        "redis_cluster" => LbPolicy::RedisCluster,
        other => {
            return Err(ctx.err(
                c.lb_policy.span(),
                &format!("{prefix}.lb_policy"),
                format!("unknown lb_policy `{other}` (ring_hash, maglev, ketama, redis_cluster)"),
            ))
        }
    };
    if let (LbPolicy::RedisCluster, Some(sh)) = (lb_policy, &c.shards) {
        return Err(ctx.err(
            sh.span(),
            &format!("{prefix}.shards"),
            "redis_cluster discovers its shards: list seed nodes as endpoints",
        ));
    }
    Ok(lb_policy)
}

/// `reshard`: off (the default) or migrate, for ring clusters without
/// auto_eject.
fn reshard(
    ctx: &Ctx,
    c: &RawCluster,
    lb_policy: LbPolicy,
    auto_eject: bool,
    prefix: &str,
) -> Result<Reshard, ConfigError> {
    let Some(r) = &c.reshard else {
        return Ok(Reshard::Off);
    };
    let key = format!("{prefix}.reshard");
    let reshard = match r.get_ref().as_str() {
        "off" => Reshard::Off,
        "migrate" => Reshard::Migrate,
        "coordinated" => Reshard::Coordinated,
        other => {
            return Err(ctx.err(
                r.span(),
                &key,
                format!("`{other}` is not off, migrate or coordinated"),
            ))
        }
    };
    if reshard.moves_keys() && lb_policy == LbPolicy::RedisCluster {
        let why = "a redis_cluster moves its own slots (keyway follows MOVED and ASK)";
        return Err(ctx.err(r.span(), &key, why));
    }
    if reshard.moves_keys() && auto_eject {
        let why = "does not go with auto_eject, which places keys elsewhere while an endpoint is down: choose one";
        return Err(ctx.err(r.span(), &key, why));
    }
    Ok(reshard)
}

/// redis_cluster: how often the slot map is fetched again.
fn refresh_rate(
    ctx: &Ctx,
    c: &RawCluster,
    lb_policy: LbPolicy,
    prefix: &str,
) -> Result<Duration, ConfigError> {
    let key = format!("{prefix}.cluster_refresh_rate");
    let span = span_of(&c.cluster_refresh_rate);
    if c.cluster_refresh_rate.is_some() && lb_policy != LbPolicy::RedisCluster {
        return Err(ctx.err(span, &key, "only applies to lb_policy = \"redis_cluster\""));
    }
    let rate = duration(ctx, &c.cluster_refresh_rate, &key, Duration::from_secs(5))?;
    if rate < Duration::from_millis(100) {
        return Err(ctx.err(span, &key, "must be at least 100ms"));
    }
    Ok(rate)
}

/// A shard as written: primary, replicas, weight, ketama name.
struct WrittenShard<'a> {
    primary: &'a String,
    replicas: &'a [String],
    weight: Option<i64>,
    name: Option<&'a str>,
}

/// `endpoints` (one primary per shard) or `shards` (a primary and its
/// replicas each), and the span of the list for errors.
fn written_shards<'a>(
    ctx: &Ctx,
    c: &'a RawCluster,
    prefix: &str,
) -> Result<(Vec<WrittenShard<'a>>, Range<usize>), ConfigError> {
    let key = format!("{prefix}.endpoints");
    let (shards, span) = match (&c.endpoints, &c.shards) {
        (Some(e), None) => {
            let shards = e.get_ref().iter().map(|ep| match ep {
                RawEndpoint::Address(a) => WrittenShard {
                    primary: a,
                    replicas: &[],
                    weight: None,
                    name: None,
                },
                RawEndpoint::Table(t) => WrittenShard {
                    primary: &t.address,
                    replicas: &[],
                    weight: t.weight,
                    name: t.name.as_deref(),
                },
            });
            (shards.collect::<Vec<_>>(), e.span())
        }
        (None, Some(sh)) => {
            let shards = sh.get_ref().iter().map(|s| WrittenShard {
                primary: &s.primary,
                replicas: &s.replicas,
                weight: s.weight,
                name: s.name.as_deref(),
            });
            (shards.collect(), sh.span())
        }
        (Some(e), Some(_)) => {
            return Err(ctx.err(e.span(), &key, "give either endpoints or shards, not both"))
        }
        (None, None) => {
            return Err(ctx.err(c.name.span(), &key, "a cluster needs endpoints (or shards)"))
        }
    };
    if shards.is_empty() {
        return Err(ctx.err(span, &key, "must list at least one endpoint"));
    }
    Ok((shards, span))
}

/// The shards' primaries and, parallel to them, their replicas; every
/// address resolved and none listed twice.
fn shards(
    ctx: &Ctx,
    c: &RawCluster,
    prefix: &str,
) -> Result<(Vec<Endpoint>, Vec<Vec<Endpoint>>), ConfigError> {
    let (written, span) = written_shards(ctx, c, prefix)?;
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut replicas: Vec<Vec<Endpoint>> = Vec::new();
    let mut seen: Vec<SocketAddr> = Vec::new();
    // Serde cannot keep spans inside untagged enums: errors point at the
    // `endpoints`/`shards` line and name the element.
    let mut resolve_once = |address: &String, key: &str| -> Result<SocketAddr, ConfigError> {
        let addr = resolve(ctx, address, span.clone(), key)?;
        if seen.contains(&addr) {
            return Err(ctx.err(span.clone(), key, format!("duplicate endpoint `{address}`")));
        }
        seen.push(addr);
        Ok(addr)
    };
    for (j, shard) in written.iter().enumerate() {
        let key = format!("{prefix}.endpoints[{j}]");
        let addr = resolve_once(shard.primary, &key)?;
        let weight = match shard.weight {
            None => 1,
            Some(w) if (1..=10_000).contains(&w) => w as u32,
            Some(_) => {
                return Err(ctx.err(
                    span.clone(),
                    &format!("{key}.weight"),
                    Problem::OutOfRange { max: 10_000 },
                ))
            }
        };
        let mut shard_replicas = Vec::new();
        for (r, rep) in shard.replicas.iter().enumerate() {
            let raddr = resolve_once(rep, &format!("{key}.replicas[{r}]"))?;
            shard_replicas.push(Endpoint {
                address: rep.clone(),
                addr: raddr,
                weight: 1,
                ketama_name: rep.clone(),
            });
        }
        replicas.push(shard_replicas);
        endpoints.push(Endpoint {
            address: shard.primary.clone(),
            addr,
            weight,
            ketama_name: ketama_name(shard.primary, shard.name),
        });
    }
    Ok((endpoints, replicas))
}

/// What twemproxy hashes for a server written `address` (its alias wins;
/// port 11211 hashes the host alone), so ketama places keys as nutcracker.
pub(super) fn ketama_name(address: &str, alias: Option<&str>) -> String {
    match address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    {
        Some((host, port)) => crate::route::ketama::twemproxy_server_name(host, port, alias),
        None => alias.unwrap_or(address).to_string(),
    }
}

fn read_policy(
    ctx: &Ctx,
    c: &RawCluster,
    lb_policy: LbPolicy,
    replicas: &[Vec<Endpoint>],
    prefix: &str,
) -> Result<ReadPolicy, ConfigError> {
    let key = format!("{prefix}.read_policy");
    let read_policy = match &c.read_policy {
        None => ReadPolicy::Primary,
        Some(rp) => match rp.get_ref().as_str() {
            "primary" => ReadPolicy::Primary,
            "prefer_primary" => ReadPolicy::PreferPrimary,
            "replica" => ReadPolicy::Replica,
            "prefer_replica" => ReadPolicy::PreferReplica,
            "any" => ReadPolicy::Any,
            other => {
                return Err(ctx.err(
                    rp.span(),
                    &key,
                    format!("unknown read_policy `{other}` (primary, prefer_primary, replica, prefer_replica, any)"),
                ))
            }
        },
    };
    if read_policy == ReadPolicy::Replica
        && lb_policy != LbPolicy::RedisCluster
        && replicas.iter().any(|r| r.is_empty())
    {
        return Err(ctx.err(
            span_of(&c.read_policy),
            &key,
            "\"replica\" needs replicas in every shard",
        ));
    }
    Ok(read_policy)
}

/// The ring's settings: ketama's hash, ring_hash's sizes, maglev's table.
struct Ring {
    hash: KetamaHash,
    min_size: u64,
    max_size: u64,
    table_size: u64,
}

fn ring(ctx: &Ctx, c: &RawCluster, lb_policy: LbPolicy, prefix: &str) -> Result<Ring, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let hash = match &c.hash {
        None => KetamaHash::Fnv1a64,
        Some(h) => KetamaHash::parse(h.get_ref()).ok_or_else(|| {
            ctx.err(
                h.span(),
                &key("hash"),
                format!("unknown hash `{}`", h.get_ref()),
            )
        })?,
    };
    if c.hash.is_some() && lb_policy != LbPolicy::Ketama {
        return Err(ctx.err(
            span_of(&c.hash),
            &key("hash"),
            "only applies to lb_policy = \"ketama\"",
        ));
    }
    const MAX_RING: u64 = 8 * 1024 * 1024;
    let min_size = positive(ctx, &c.min_ring_size, &key("min_ring_size"), 1024, MAX_RING)?;
    let max_size = positive(
        ctx,
        &c.max_ring_size,
        &key("max_ring_size"),
        MAX_RING,
        MAX_RING,
    )?;
    let table_size = positive(ctx, &c.table_size, &key("table_size"), 65537, 5_000_011)?;
    if !crate::route::maglev::is_prime(table_size) {
        return Err(ctx.err(
            span_of(&c.table_size),
            &key("table_size"),
            "must be a prime number, as in Envoy (e.g. 65537)",
        ));
    }
    Ok(Ring {
        hash,
        min_size,
        max_size,
        table_size,
    })
}
