//! The listener's redis_proxy filter as keyway's `[proxy]`: its settings
//! (op_timeout, hashtags, read_policy), client AUTH, and the one
//! connect_timeout keyway keeps of the clusters' own.

use super::values::{data_source, duration, items_of};
use crate::import::model::{duration_text, ImportError};
use crate::import::toml_out::{string, Section};
use crate::import::yaml::Node;
use std::time::Duration;

/// The redis_proxy network filter's name (also the key of its protocol
/// options on a cluster).
pub(super) const REDIS_PROXY: &str = "envoy.filters.network.redis_proxy";

/// What the listener's settings tell the clusters, and what the clusters
/// tell `[proxy]` (keyway has one connect_timeout, Envoy one per cluster).
#[derive(Default)]
pub(super) struct Ctx {
    pub(super) op_timeout: Option<Duration>,
    /// keyway's read_policy and the line it came from.
    pub(super) read_policy: Option<(String, String)>,
    pub(super) connect_timeouts: Vec<(Duration, String)>,
}

/// Whether a network filter is the redis_proxy: by its name, else by its
/// typed_config's `@type`.
pub(super) fn is_redis_proxy(f: &Node) -> Result<bool, ImportError> {
    if let Some(n) = f.get("name")? {
        if n.scalar()? == REDIS_PROXY {
            return Ok(true);
        }
    }
    if let Some(tc) = f.get("typed_config")? {
        if let Some(t) = tc.get("@type")? {
            return Ok(t.scalar()?.ends_with(".redis_proxy.v3.RedisProxy"));
        }
    }
    Ok(false)
}

/// The RedisProxy filter's own settings: timeouts, hashtags, client AUTH.
pub(super) fn proxy_filter(
    rp: &Node,
    proxy: &mut Section,
    ctx: &mut Ctx,
) -> Result<(), ImportError> {
    if let Some(x) = rp.get("external_auth_provider")? {
        return Err(x.err(
            "clients are checked by an external service; keyway checks AUTH against proxy.password only",
        ));
    }
    let hashtags = match rp.get("settings")? {
        Some(s) => settings(&s, proxy, ctx)?,
        None => false,
    };
    proxy.comment(if hashtags {
        "settings.enable_hashtagging: true: only the {tag} of a key is hashed."
    } else {
        "settings.enable_hashtagging is off (Envoy's default): whole keys are hashed."
    });
    proxy.set("hashtags", hashtags.to_string());

    client_auth(rp, proxy)?;
    let known = [
        "@type",
        "settings",
        "prefix_routes",
        "downstream_auth_username",
        "downstream_auth_password",
        "downstream_auth_passwords",
    ];
    for (k, n) in rp.others(&known)? {
        let why = match k.as_str() {
            "stat_prefix" => "keyway's /stats and /metrics have no prefix",
            _ => "no keyway equivalent",
        };
        proxy.comment(n.not_imported(why));
    }
    Ok(())
}

/// The filter's `settings`: op_timeout, and read_policy for the clusters;
/// the others are comments. Whether it turns hashtagging on.
fn settings(s: &Node, proxy: &mut Section, ctx: &mut Ctx) -> Result<bool, ImportError> {
    let mut hashtags = false;
    if let Some(t) = s.get("op_timeout")? {
        let d = duration(&t)?;
        if d.is_zero() {
            proxy.comment(t.not_imported("keyway needs a positive op_timeout (default 5s)"));
        } else {
            proxy.comment(format!("settings.op_timeout ({}).", t.at()));
            proxy.set("op_timeout", string(&duration_text(d)));
            ctx.op_timeout = Some(d);
        }
    }
    if let Some(h) = s.get("enable_hashtagging")? {
        hashtags = h.bool()?;
    }
    if let Some(r) = s.get("read_policy")? {
        let keyway = match r.scalar()?.as_str() {
            "MASTER" => "primary",
            "PREFER_MASTER" => "prefer_primary",
            "REPLICA" => "replica",
            "PREFER_REPLICA" => "prefer_replica",
            "ANY" => "any",
            other => return Err(r.err(format!("unknown read_policy `{other}`"))),
        };
        ctx.read_policy = Some((keyway.to_string(), r.at()));
    }
    let known = ["op_timeout", "enable_hashtagging", "read_policy"];
    for (k, n) in s.others(&known)? {
        let why = match k.as_str() {
            "enable_redirection" => "keyway follows MOVED and ASK on lb_policy = \"redis_cluster\" clusters, always",
            "max_buffer_size_before_flush" | "buffer_flush_timeout" => {
                "keyway sends what a core has for a server at once, with no flush setting"
            }
            "connection_rate_limit" => {
                "Envoy limits reconnections to each Redis server; keyway's proxy.connection_rate_limit limits client connections, another thing"
            }
            _ => "no keyway equivalent",
        };
        proxy.comment(n.not_imported(why));
    }
    Ok(hashtags)
}

/// Client AUTH: downstream_auth_username, and the first password (keyway
/// has one; the others are comments).
fn client_auth(rp: &Node, proxy: &mut Section) -> Result<(), ImportError> {
    if let Some(u) = rp.get("downstream_auth_username")? {
        proxy.comment("downstream_auth_username.");
        proxy.set_str("username", &data_source(&u)?);
    }
    let mut passwords = Vec::new();
    if let Some(p) = rp.get("downstream_auth_password")? {
        passwords.push(p);
    }
    passwords.extend(items_of(rp, "downstream_auth_passwords")?);
    for (i, p) in passwords.iter().enumerate() {
        if i == 0 {
            proxy.comment(format!("Clients must AUTH with {} ({}).", p.path(), p.at()));
            proxy.set_str("password", &data_source(p)?);
        } else {
            data_source(p)?;
            proxy.comment(format!(
                "not imported: {} ({}) — keyway has one client password: clients using this one get WRONGPASS.",
                p.path(),
                p.at()
            ));
        }
    }
    Ok(())
}

/// keyway has one connect_timeout: the longest the clusters set, so no
/// cluster gets less time than Envoy gave it, within op_timeout (keyway
/// refuses a longer one).
pub(super) fn connect_timeout(ctx: &Ctx, proxy: &mut Section) {
    let Some((longest, _)) = ctx.connect_timeouts.iter().max_by_key(|(d, _)| *d) else {
        proxy.comment("No cluster sets connect_timeout (Envoy's default: 5s); keyway's default is the smaller of op_timeout and 1s.");
        return;
    };
    let all: Vec<String> = ctx
        .connect_timeouts
        .iter()
        .map(|(d, c)| format!("{c}: {}", duration_text(*d)))
        .collect();
    let op = ctx.op_timeout.unwrap_or(Duration::from_secs(5));
    let mut d = *longest;
    if d > op {
        d = op;
        proxy.comment(format!(
            "connect_timeout of the clusters ({}), at most op_timeout in keyway.",
            all.join(", ")
        ));
    } else {
        proxy.comment(format!(
            "connect_timeout of the clusters ({}), the longest.",
            all.join(", ")
        ));
    }
    proxy.set("connect_timeout", string(&duration_text(d)));
}
