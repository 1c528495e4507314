//! A cluster's health settings: active checks (Envoy's redis health
//! checker) and ejection on live-traffic failures (twemproxy's
//! `auto_eject_hosts`).

use std::time::Duration;
use toml::Spanned;

use super::model::{HealthCheck, LbPolicy};
use super::raw::{RawCluster, RawHealthCheck};
use super::validation::{duration, positive, Ctx};
use super::ConfigError;

/// `health_check = { ... }`; None: passive detection only.
pub(super) fn check(
    ctx: &Ctx,
    raw: &Option<Spanned<RawHealthCheck>>,
    key: &str,
) -> Result<Option<HealthCheck>, ConfigError> {
    let Some(h) = raw else { return Ok(None) };
    let h = h.get_ref();
    let k = |f: &str| format!("{key}.{f}");
    Ok(Some(HealthCheck {
        interval: duration(ctx, &h.interval, &k("interval"), Duration::from_secs(1))?,
        timeout: duration(ctx, &h.timeout, &k("timeout"), Duration::from_millis(500))?,
        unhealthy_threshold: positive(
            ctx,
            &h.unhealthy_threshold,
            &k("unhealthy_threshold"),
            3,
            1000,
        )? as u32,
        healthy_threshold: positive(ctx, &h.healthy_threshold, &k("healthy_threshold"), 2, 1000)?
            as u32,
    }))
}

/// How live-traffic failures eject an endpoint.
pub(super) struct Ejection {
    pub(super) failure_limit: u32,
    pub(super) auto_eject: bool,
    pub(super) retry_timeout: Duration,
}

pub(super) fn ejection(
    ctx: &Ctx,
    c: &RawCluster,
    lb_policy: LbPolicy,
    prefix: &str,
) -> Result<Ejection, ConfigError> {
    let key = |k: &str| format!("{prefix}.{k}");
    let auto_eject = c.auto_eject.unwrap_or(false);
    if auto_eject && lb_policy == LbPolicy::RedisCluster {
        return Err(ctx.err(
            c.lb_policy.span(),
            &key("auto_eject"),
            "does not apply to a redis_cluster (the cluster fails over itself)",
        ));
    }
    Ok(Ejection {
        failure_limit: positive(ctx, &c.failure_limit, &key("failure_limit"), 2, 1000)? as u32,
        auto_eject,
        retry_timeout: duration(
            ctx,
            &c.retry_timeout,
            &key("retry_timeout"),
            Duration::from_secs(30),
        )?,
    })
}
