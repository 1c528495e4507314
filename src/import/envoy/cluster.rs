//! One Envoy cluster as a keyway `[[clusters]]`: its placement, endpoints,
//! read policy, health check, TLS and the AUTH it sends, in that order
//! (see `placement`, `endpoints`, `health` and `upstream_tls`).

use super::endpoints::endpoints;
use super::health::health_checks;
use super::placement::{placement_of, set_placement, Placement};
use super::proxy::{Ctx, REDIS_PROXY};
use super::upstream_tls::upstream_tls;
use super::values::{data_source, duration};
use crate::import::model::ImportError;
use crate::import::toml_out::Section;
use crate::import::yaml::Node;

/// One Envoy cluster as a keyway `[[clusters]]`.
pub(super) fn cluster(c: &Node, name: &str, ctx: &mut Ctx) -> Result<Section, ImportError> {
    let mut sec = Section::default();
    sec.comment(format!("From cluster `{name}` ({}).", c.at()));
    sec.set_str("name", name);
    let mut known = vec!["name", "connect_timeout", "load_assignment"];
    let (placement, redis_config) = placement_of(c, &mut sec, &mut known)?;
    set_placement(&placement, redis_config.as_ref(), &mut sec)?;
    let redis_cluster = matches!(placement, Placement::RedisCluster);
    endpoints(c, redis_cluster, &mut sec)?;
    read_policy(ctx, redis_cluster, &mut sec);
    if let Some(t) = c.get("connect_timeout")? {
        ctx.connect_timeouts.push((duration(&t)?, name.to_string()));
    }
    if let Some(hcs) = c.get("health_checks")? {
        known.push("health_checks");
        health_checks(&hcs, &mut sec)?;
    }
    if let Some(ts) = c.get("transport_socket")? {
        known.push("transport_socket");
        upstream_tls(&ts, &mut sec)?;
    }
    if let Some(opts) = c.get("typed_extension_protocol_options")? {
        known.push("typed_extension_protocol_options");
        protocol_options(&opts, &mut sec)?;
    }
    for (_, n) in c.others(&known)? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(sec)
}

/// The filter's settings.read_policy: a redis cluster's own; said where
/// Envoy ignored it (its reads went to the endpoints anyway).
fn read_policy(ctx: &Ctx, redis_cluster: bool, sec: &mut Section) {
    match &ctx.read_policy {
        Some((policy, at)) if redis_cluster => {
            sec.comment(format!("settings.read_policy ({at})."));
            sec.set_str("read_policy", policy);
        }
        Some((policy, at)) if policy != "primary" => sec.comment(format!(
            "not imported: settings.read_policy ({at}) — Envoy applies it to redis clusters only; this cluster's reads go to its endpoints."
        )),
        _ => {}
    }
}

/// `typed_extension_protocol_options`: the redis_proxy's
/// RedisProtocolOptions give the AUTH sent to every endpoint.
fn protocol_options(opts: &Node, sec: &mut Section) -> Result<(), ImportError> {
    for (k, o) in opts.entries()? {
        let ty = match o.get("@type")? {
            Some(t) => t.scalar()?,
            None => String::new(),
        };
        if k == REDIS_PROXY || ty.ends_with(".RedisProtocolOptions") {
            if let Some(u) = o.get("auth_username")? {
                sec.comment(
                    "RedisProtocolOptions auth_username: sent with AUTH to every endpoint.",
                );
                sec.set_str("username", &data_source(&u)?);
            }
            if let Some(p) = o.get("auth_password")? {
                sec.comment(
                    "RedisProtocolOptions auth_password: sent with AUTH to every endpoint.",
                );
                sec.set_str("password", &data_source(&p)?);
            }
            for (_, n) in o.others(&["@type", "auth_username", "auth_password"])? {
                sec.comment(n.not_imported("no keyway equivalent"));
            }
        } else {
            sec.comment(o.not_imported("no keyway equivalent"));
        }
    }
    Ok(())
}
