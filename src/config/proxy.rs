//! `[proxy]`: where keyway listens, on which CPUs, its timeouts, the limits
//! it holds clients to and how they authenticate. The proxy section makes
//! the `Config`; the other sections come in already read.

use std::time::Duration;
use toml::Spanned;

use super::admin::Admin;
use super::model::{Cluster, Config, Cores};
use super::raw::{RawCores, RawProxy};
use super::routes::Routes;
use super::secret::PasswordDigest;
use super::validation::{duration, duration_or_off, positive, resolve, size, span_of, Ctx};
use super::{tls, ConfigError};

/// The sections read before `[proxy]`.
pub(super) struct Sections {
    pub(super) clusters: Vec<Cluster>,
    pub(super) routes: Routes,
    pub(super) admin: Admin,
    pub(super) log_level: crate::log::Level,
}

pub(super) fn read(ctx: &Ctx, p: &RawProxy, sections: Sections) -> Result<Config, ConfigError> {
    let listen = resolve(ctx, p.listen.get_ref(), p.listen.span(), "proxy.listen")?;
    let cores = cores(ctx, &p.cores)?;
    let times = timeouts(ctx, p)?;
    let limits = limits(ctx, p)?;
    if p.username.is_some() && p.password.is_none() {
        return Err(ctx.whole("`proxy.username` needs `proxy.password`"));
    }
    let tls = tls::downstream(ctx, &p.tls, listen)?;
    let Sections {
        clusters,
        routes,
        admin,
        log_level,
    } = sections;
    Ok(Config {
        listen,
        cores,
        op_timeout: times.op,
        connect_timeout: times.connect,
        drain_timeout: times.drain,
        spin_before_park: times.spin_before_park,
        tcp_keepalive: times.tcp_keepalive,
        client_idle_timeout: times.client_idle,
        pubsub_output_soft_window: times.pubsub_output_soft_window,
        hashtags: p.hashtags.unwrap_or(true),
        max_multibulk_len: limits.max_multibulk_len,
        max_bulk_len: limits.max_bulk_len,
        max_pending_per_client: limits.max_pending_per_client,
        client_output_soft_limit: limits.client_output_soft_limit,
        client_output_hard_limit: limits.client_output_hard_limit,
        max_output_memory: limits.max_output_memory,
        pubsub_output_hard_limit: limits.pubsub_output_hard_limit,
        pubsub_output_soft_limit: limits.pubsub_output_soft_limit,
        max_clients: limits.max_clients,
        connection_rate_limit: limits.connection_rate_limit,
        mirror_queue_limit: limits.mirror_queue_limit,
        databases: limits.databases,
        keys_limit: limits.keys_limit,
        auth_failure_limit: limits.auth_failure_limit,
        protected_mode: p.protected_mode.unwrap_or(false),
        password: p
            .password
            .as_deref()
            .map(|p| PasswordDigest::of(p.as_bytes())),
        username: p.username.clone(),
        allow_flush: p.allow_flush.unwrap_or(true),
        tls,
        clusters,
        catch_all: routes.catch_all,
        catch_all_mirrors: routes.catch_all_mirrors,
        prefix_routes: routes.prefix_routes,
        admin_listen: admin.listen,
        admin_token: admin.token,
        latency_dir: admin.latency_dir,
        hot_keys_every: admin.hot_keys_every,
        log_level,
    })
}

fn cores(ctx: &Ctx, cores: &Option<Spanned<RawCores>>) -> Result<Cores, ConfigError> {
    let Some(c) = cores else {
        return Ok(Cores::All);
    };
    match c.get_ref() {
        RawCores::Word(w) if w == "all" => Ok(Cores::All),
        RawCores::Count(n) if *n >= 1 && *n <= 4096 => Ok(Cores::Count(*n as usize)),
        RawCores::List(l) if !l.is_empty() && l.iter().all(|&c| (0..4096).contains(&c)) => {
            let mut ids: Vec<usize> = l.iter().map(|&c| c as usize).collect();
            ids.sort_unstable();
            ids.dedup();
            Ok(Cores::List(ids))
        }
        _ => Err(ctx.err(
            c.span(),
            "proxy.cores",
            "must be \"all\", a count, or a list of CPU ids",
        )),
    }
}

struct Timeouts {
    op: Duration,
    connect: Duration,
    drain: Duration,
    spin_before_park: Duration,
    tcp_keepalive: Duration,
    client_idle: Duration,
    pubsub_output_soft_window: Duration,
}

fn timeouts(ctx: &Ctx, p: &RawProxy) -> Result<Timeouts, ConfigError> {
    let op = duration(
        ctx,
        &p.op_timeout,
        "proxy.op_timeout",
        Duration::from_secs(5),
    )?;
    let connect = duration(
        ctx,
        &p.connect_timeout,
        "proxy.connect_timeout",
        op.min(Duration::from_secs(1)),
    )?;
    if connect > op {
        return Err(ctx.err(
            span_of(&p.connect_timeout),
            "proxy.connect_timeout",
            "must not be longer than proxy.op_timeout",
        ));
    }
    Ok(Timeouts {
        op,
        connect,
        drain: duration(
            ctx,
            &p.drain_timeout,
            "proxy.drain_timeout",
            Duration::from_secs(30),
        )?,
        spin_before_park: duration_or_off(
            ctx,
            &p.spin_before_park,
            "proxy.spin_before_park",
            Duration::ZERO,
        )?,
        tcp_keepalive: duration_or_off(
            ctx,
            &p.tcp_keepalive,
            "proxy.tcp_keepalive",
            Duration::from_secs(300),
        )?,
        client_idle: duration_or_off(
            ctx,
            &p.client_idle_timeout,
            "proxy.client_idle_timeout",
            Duration::ZERO,
        )?,
        pubsub_output_soft_window: duration(
            ctx,
            &p.pubsub_output_soft_window,
            "proxy.pubsub_output_soft_window",
            Duration::from_secs(60),
        )?,
    })
}

struct Limits {
    max_multibulk_len: usize,
    max_bulk_len: usize,
    max_pending_per_client: usize,
    client_output_soft_limit: usize,
    client_output_hard_limit: usize,
    max_output_memory: usize,
    pubsub_output_hard_limit: usize,
    pubsub_output_soft_limit: usize,
    max_clients: Option<usize>,
    connection_rate_limit: Option<u64>,
    mirror_queue_limit: usize,
    databases: u16,
    keys_limit: usize,
    auth_failure_limit: u32,
}

fn limits(ctx: &Ctx, p: &RawProxy) -> Result<Limits, ConfigError> {
    // "0" is no limit, as in Redis.
    let unlimited = |n: usize| if n == 0 { usize::MAX } else { n };
    Ok(Limits {
        max_multibulk_len: positive(
            ctx,
            &p.max_multibulk_len,
            "proxy.max_multibulk_len",
            1024 * 1024,
            i32::MAX as u64,
        )? as usize,
        max_bulk_len: positive(
            ctx,
            &p.max_bulk_len,
            "proxy.max_bulk_len",
            512 * 1024 * 1024,
            512 * 1024 * 1024,
        )? as usize,
        max_pending_per_client: positive(
            ctx,
            &p.max_pending_per_client,
            "proxy.max_pending_per_client",
            1024,
            1 << 20,
        )? as usize,
        client_output_soft_limit: unlimited(size(
            ctx,
            &p.client_output_soft_limit,
            "proxy.client_output_soft_limit",
            8 << 20,
        )?),
        client_output_hard_limit: size(
            ctx,
            &p.client_output_hard_limit,
            "proxy.client_output_hard_limit",
            0,
        )?,
        max_output_memory: unlimited(size(
            ctx,
            &p.max_output_memory,
            "proxy.max_output_memory",
            1 << 30,
        )?),
        pubsub_output_hard_limit: size(
            ctx,
            &p.pubsub_output_hard_limit,
            "proxy.pubsub_output_hard_limit",
            32 << 20,
        )?,
        pubsub_output_soft_limit: size(
            ctx,
            &p.pubsub_output_soft_limit,
            "proxy.pubsub_output_soft_limit",
            8 << 20,
        )?,
        max_clients: optional(ctx, &p.max_clients, "proxy.max_clients", 1 << 24)?
            .map(|n| n as usize),
        connection_rate_limit: optional(
            ctx,
            &p.connection_rate_limit,
            "proxy.connection_rate_limit",
            10_000_000,
        )?,
        mirror_queue_limit: positive(
            ctx,
            &p.mirror_queue_limit,
            "proxy.mirror_queue_limit",
            10_000,
            10_000_000,
        )? as usize,
        databases: positive(ctx, &p.databases, "proxy.databases", 16, 65_535)? as u16,
        keys_limit: positive(
            ctx,
            &p.keys_limit,
            "proxy.keys_limit",
            1_000_000,
            u32::MAX as u64,
        )? as usize,
        auth_failure_limit: match &p.auth_failure_limit {
            None => 10,
            Some(n) if (0..=1_000_000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                return Err(ctx.err(
                    n.span(),
                    "proxy.auth_failure_limit",
                    "must be between 0 (never close) and 1000000",
                ))
            }
        },
    })
}

/// A count between 1 and `max` where leaving it out means "no limit".
fn optional(
    ctx: &Ctx,
    v: &Option<Spanned<i64>>,
    key: &str,
    max: u64,
) -> Result<Option<u64>, ConfigError> {
    match v {
        None => Ok(None),
        some => positive(ctx, some, key, 0, max).map(Some),
    }
}
