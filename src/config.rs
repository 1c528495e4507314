//! The TOML configuration: its model, and validation whose messages name
//! the key and the line at fault. Unknown keys are refused.

use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

use crate::route::hash::KetamaHash;
use crate::tls::{DownstreamTls, UpstreamTls};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    proxy: RawProxy,
    #[serde(default)]
    clusters: Vec<RawCluster>,
    routes: Option<RawRoutes>,
    admin: Option<RawAdmin>,
    log: Option<RawLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    latency_dir: Option<String>,
    token: Option<Spanned<RawSecret>>,
}

/// A secret given by where to read it, never in the file itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: Option<String>,
    env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    listen: Spanned<String>,
    cores: Option<Spanned<RawCores>>,
    op_timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    drain_timeout: Option<Spanned<String>>,
    hashtags: Option<bool>,
    max_multibulk_len: Option<Spanned<i64>>,
    max_bulk_len: Option<Spanned<i64>>,
    max_pending_per_client: Option<Spanned<i64>>,
    client_output_soft_limit: Option<Spanned<String>>,
    client_output_hard_limit: Option<Spanned<String>>,
    max_output_memory: Option<Spanned<String>>,
    pubsub_output_hard_limit: Option<Spanned<String>>,
    pubsub_output_soft_limit: Option<Spanned<String>>,
    pubsub_output_soft_window: Option<Spanned<String>>,
    spin_before_park: Option<Spanned<String>>,
    tcp_keepalive: Option<Spanned<String>>,
    client_idle_timeout: Option<Spanned<String>>,
    max_clients: Option<Spanned<i64>>,
    protected_mode: Option<bool>,
    password: Option<String>,
    username: Option<String>,
    auth_failure_limit: Option<Spanned<i64>>,
    connection_rate_limit: Option<Spanned<i64>>,
    mirror_queue_limit: Option<Spanned<i64>>,
    allow_flush: Option<bool>,
    databases: Option<Spanned<i64>>,
    keys_limit: Option<Spanned<i64>>,
    tls: Option<Spanned<RawProxyTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxyTls {
    cert_file: String,
    key_file: String,
    ca_file: Option<String>,
    /// A second listener for TLS; without it `proxy.listen` speaks TLS.
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTls {
    On(bool),
    Table(RawTlsTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsTable {
    ca_file: Option<String>,
    server_name: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
    insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawCores {
    Word(String),
    Count(i64),
    List(Vec<i64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Spanned<String>,
    lb_policy: Spanned<String>,
    endpoints: Option<Spanned<Vec<RawEndpoint>>>,
    shards: Option<Spanned<Vec<RawShard>>>,
    read_policy: Option<Spanned<String>>,
    username: Option<String>,
    password: Option<String>,
    connections_per_endpoint: Option<Spanned<i64>>,
    hash: Option<Spanned<String>>,
    min_ring_size: Option<Spanned<i64>>,
    max_ring_size: Option<Spanned<i64>>,
    table_size: Option<Spanned<i64>>,
    cluster_refresh_rate: Option<Spanned<String>>,
    tls: Option<Spanned<RawTls>>,
    health_check: Option<Spanned<RawHealthCheck>>,
    failure_limit: Option<Spanned<i64>>,
    auto_eject: Option<bool>,
    retry_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    interval: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    unhealthy_threshold: Option<Spanned<i64>>,
    healthy_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawEndpoint {
    Address(String),
    Table(RawEndpointTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpointTable {
    address: String,
    weight: Option<i64>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    catch_all: Option<Spanned<String>>,
    catch_all_mirror: Option<Vec<RawMirror>>,
    prefix: Option<Vec<RawPrefix>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShard {
    primary: String,
    #[serde(default)]
    replicas: Vec<String>,
    weight: Option<i64>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefix {
    prefix: Spanned<String>,
    cluster: Spanned<String>,
    remove_prefix: Option<bool>,
    case_insensitive: Option<bool>,
    mirror: Option<Vec<RawMirror>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMirror {
    cluster: Spanned<String>,
    exclude_read_commands: Option<bool>,
    fraction: Option<Spanned<f64>>,
}

/// Where a cluster's read commands go; writes always go to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPolicy {
    Primary,
    PreferPrimary,
    Replica,
    PreferReplica,
    Any,
}

/// A copy of matching requests sent to another cluster, fire-and-forget.
#[derive(Debug, Clone)]
pub struct MirrorPolicy {
    pub cluster: usize,
    pub exclude_read_commands: bool,
    /// Share of requests mirrored, 0.0 to 1.0.
    pub fraction: f64,
}

#[derive(Debug, Clone)]
pub struct PrefixRoute {
    pub prefix: Vec<u8>,
    pub case_insensitive: bool,
    pub remove_prefix: bool,
    pub cluster: usize,
    pub mirrors: Vec<MirrorPolicy>,
}

/// A shard as written: primary, replicas, weight, ketama name.
type RawShardSpec = (String, Vec<String>, Option<i64>, Option<String>);

/// Which CPUs get a core (executor) of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cores {
    All,
    Count(usize),
    List(Vec<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RingHash,
    Maglev,
    Ketama,
    /// Redis Cluster: endpoints are seeds, slots are discovered.
    RedisCluster,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// As written in the configuration.
    pub address: String,
    pub addr: SocketAddr,
    pub weight: u32,
    /// What ketama hashes (twemproxy's server name): the optional `name`,
    /// else the address as written.
    pub ketama_name: String,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub lb_policy: LbPolicy,
    /// One endpoint per shard: the shard's primary (what the ring is over).
    pub endpoints: Vec<Endpoint>,
    /// The replicas of each shard, parallel to `endpoints`.
    pub replicas: Vec<Vec<Endpoint>>,
    pub read_policy: ReadPolicy,
    /// Credentials keyway sends (AUTH) on every connection to this cluster.
    pub username: Option<String>,
    pub password: Option<String>,
    pub connections_per_endpoint: usize,
    pub hash: KetamaHash,
    pub min_ring_size: u64,
    pub max_ring_size: u64,
    pub table_size: u64,
    /// redis_cluster: how often the slot map is fetched again.
    pub refresh_rate: Duration,
    /// TLS on every connection to this cluster's nodes.
    pub tls: Option<UpstreamTlsConfig>,
    /// Active PING checks of every endpoint (None: passive detection only).
    pub health_check: Option<HealthCheck>,
    /// Consecutive failures on live traffic (connects, timeouts, lost
    /// connections) that make an endpoint unhealthy (twemproxy's
    /// `server_failure_limit`).
    pub failure_limit: u32,
    /// An unhealthy primary leaves the ring and its keys go to the next
    /// endpoint, as with twemproxy's `auto_eject_hosts`.
    pub auto_eject: bool,
    /// How long an ejected endpoint stays out at least; it rejoins once it
    /// answers after that (twemproxy's `server_retry_timeout`).
    pub retry_timeout: Duration,
}

/// Envoy's redis health checker: PING every `interval`, an answer within
/// `timeout` is a success.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub interval: Duration,
    pub timeout: Duration,
    /// Failed checks in a row that make an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that make it healthy again.
    pub healthy_threshold: u32,
}

/// A cluster's TLS settings and the rustls configuration built from them.
#[derive(Debug, Clone)]
pub struct UpstreamTlsConfig {
    pub settings: UpstreamTls,
    pub client: Arc<rustls::ClientConfig>,
    /// The CA and client certificate files' digest (see `tls::files_digest`).
    pub files: [u8; 32],
}

/// `[proxy] tls`: where TLS clients connect and the server configuration.
#[derive(Debug, Clone)]
pub struct DownstreamTlsConfig {
    /// A separate TLS listener; None: `listen` itself is TLS.
    pub listen: Option<SocketAddr>,
    pub settings: DownstreamTls,
    pub server: Arc<rustls::ServerConfig>,
    /// The certificate, key and CA files' digest (see `tls::files_digest`).
    pub files: [u8; 32],
}

/// A client password as keyway keeps it: its SHA-256 digest, as Redis
/// keeps ACL passwords. Comparing digests in constant time tells an
/// attacker neither where a guess differs nor how long the password is.
#[derive(Clone)]
pub struct PasswordDigest([u8; 32]);

impl PasswordDigest {
    pub fn of(password: &[u8]) -> PasswordDigest {
        let d = ring::digest::digest(&ring::digest::SHA256, password);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        PasswordDigest(out)
    }

    /// Whether `candidate` is this password; the time taken does not
    /// depend on the candidate's bytes or length beyond hashing it.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let other = PasswordDigest::of(candidate);
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl std::fmt::Debug for PasswordDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordDigest(..)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub cores: Cores,
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
    /// On SIGTERM, how long clients get to receive the replies they are
    /// owed before their connections are cut.
    pub drain_timeout: Duration,
    pub hashtags: bool,
    pub max_multibulk_len: usize,
    pub max_bulk_len: usize,
    pub max_pending_per_client: usize,
    /// Reply bytes one client may have buffered or (by estimate) in flight
    /// before keyway stops reading its requests.
    pub client_output_soft_limit: usize,
    /// Reply bytes buffered for one client past which it is closed
    /// (Redis's client-output-buffer-limit; 0: never).
    pub client_output_hard_limit: usize,
    /// Reply bytes waiting to be sent, all clients together; past it each
    /// client is read one request at a time.
    pub max_output_memory: usize,
    /// A subscriber's messages waiting to be sent: past the hard limit, or
    /// past the soft one for the soft window, it is closed (Redis's
    /// `client-output-buffer-limit pubsub 32mb 8mb 60`; 0: no limit).
    pub pubsub_output_hard_limit: usize,
    pub pubsub_output_soft_limit: usize,
    pub pubsub_output_soft_window: Duration,
    /// How long an idle core busy-polls its ring before waiting in the
    /// kernel (0: never).
    pub spin_before_park: Duration,
    pub clusters: Vec<Cluster>,
    /// Index into `clusters` of the catch-all route.
    pub catch_all: Option<usize>,
    pub catch_all_mirrors: Vec<MirrorPolicy>,
    /// Prefix routes, longest prefix first.
    pub prefix_routes: Vec<PrefixRoute>,
    /// TCP keepalive on client and upstream sockets: idle time before the
    /// first probe (Redis's `tcp-keepalive`; zero: off).
    pub tcp_keepalive: Duration,
    /// A client that sent nothing for this long is closed (Redis's
    /// `timeout`; zero: never). Subscribers and blocked clients stay.
    pub client_idle_timeout: Duration,
    /// Client connections across all cores (None: derived from
    /// RLIMIT_NOFILE at start-up, see `runtime::limits`).
    pub max_clients: Option<usize>,
    /// Without a password, refuse clients not on loopback (Redis's
    /// protected mode).
    pub protected_mode: bool,
    /// Clients must AUTH with these before anything else. Only the
    /// password's digest is kept.
    pub password: Option<PasswordDigest>,
    pub username: Option<String>,
    /// Failed AUTH attempts after which a client connection is closed
    /// (0: never).
    pub auth_failure_limit: u32,
    /// New client connections per second across the proxy.
    pub connection_rate_limit: Option<u64>,
    /// Mirrored requests waiting on one upstream connection before more are dropped.
    pub mirror_queue_limit: usize,
    /// FLUSHALL / FLUSHDB reach every backend (true), or are refused.
    pub allow_flush: bool,
    /// Databases a client may SELECT (the backends' `databases`).
    pub databases: u16,
    /// The most keys one KEYS may return (all backends together).
    pub keys_limit: usize,
    /// Admin HTTP endpoint (none: no admin endpoint).
    pub admin_listen: Option<SocketAddr>,
    /// `[admin] token`: requests must carry `Authorization: Bearer <it>`
    /// (all but /ready). Only its digest is kept.
    pub admin_token: Option<PasswordDigest>,
    /// Where latency dumps go (SIGUSR2, admin call, shutdown). None: no
    /// dump at shutdown, asked-for dumps under $TMPDIR (see `dump_dir`).
    pub latency_dir: Option<PathBuf>,
    pub tls: Option<DownstreamTlsConfig>,
    /// `[log] level`: what is written to the log.
    pub log_level: crate::log::Level,
}

impl Config {
    /// What an operator should know before exposing this configuration
    /// (printed at start-up and by `keyway check`).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.listen.ip().is_loopback() && self.password.is_none() {
            w.push(format!(
                "proxy.listen {} accepts clients from other hosts and proxy.password is not set: {}",
                self.listen,
                if self.protected_mode {
                    "protected_mode refuses every client not on loopback until a password is set"
                } else {
                    "anyone who reaches it can use the backends (set a password, or protected_mode = true)"
                }
            ));
        }
        w
    }

    /// Where an asked-for latency dump goes: `[admin] latency_dir`, else a
    /// directory of this process under $TMPDIR (never the working
    /// directory: a service started from `/` would write there).
    pub fn dump_dir(&self) -> PathBuf {
        self.latency_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("keyway-latency-{}", std::process::id()))
        })
    }
}

/// A configuration error, already worded for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, key: &str, msg: impl std::fmt::Display) -> ConfigError {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        ConfigError(format!("{}:{}: `{}`: {}", self.file, line, key, msg))
    }
}

/// What twemproxy hashes for a server written `address` (its alias wins;
/// port 11211 hashes the host alone), so ketama places keys as nutcracker.
fn ketama_name(address: &str, alias: Option<&str>) -> String {
    match address
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
    {
        Some((host, port)) => crate::route::ketama::twemproxy_server_name(host, port, alias),
        None => alias.unwrap_or(address).to_string(),
    }
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    // Positive and at most a year: anything longer is a typo, and huge
    // values would not fit a Duration.
    if !secs.is_finite() || secs <= 0.0 || secs > 366.0 * 24.0 * 3600.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// A size in bytes: a number with an optional unit, case-insensitive, as
/// Redis reads them: k, m, g are powers of 1000, kb, mb, gb of 1024.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn positive(
    ctx: &Ctx,
    v: &Option<Spanned<i64>>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) if *s.get_ref() >= 1 && (*s.get_ref() as u64) <= max => Ok(*s.get_ref() as u64),
        Some(s) => Err(ctx.err(s.span(), key, format!("must be between 1 and {max}"))),
    }
}

fn duration(
    ctx: &Ctx,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s.get_ref()).ok_or_else(|| {
            ctx.err(
                s.span(),
                key,
                format!(
                    "`{}` is not a duration such as \"250ms\" or \"5s\"",
                    s.get_ref()
                ),
            )
        }),
    }
}

/// The secret a `{ file = ... }` or `{ env = ... }` table names, trimmed;
/// Err says what is wrong without showing it.
fn read_secret(raw: &RawSecret) -> Result<String, String> {
    let secret = match (&raw.file, &raw.env) {
        (Some(path), None) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the file `{path}`: {e}"))?,
        (None, Some(name)) => std::env::var(name)
            .map_err(|_| format!("the environment variable `{name}` is not set"))?,
        _ => return Err("give exactly one of `file` or `env`".into()),
    };
    let secret = secret.trim();
    if secret.is_empty() {
        return Err("is empty".into());
    }
    Ok(secret.to_string())
}

/// An address as it may be shown: `user:password@` left out.
fn without_credentials(text: &str) -> String {
    match text.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.find("://").map_or("", |i| &before[..i + 3]);
            format!("{scheme}***@{host}")
        }
        None => text.to_string(),
    }
}

/// A TOML error about a line holding a secret keeps the secret out: every
/// `quoted` value of the message is hidden.
fn without_secret_values(message: &str, line: &str) -> String {
    let key = line.split('=').next().unwrap_or("").to_ascii_lowercase();
    if !key.contains("password") && !key.contains("username") {
        return message.to_string();
    }
    let mut out = String::new();
    for (i, piece) in message.split('`').enumerate() {
        out.push_str(if i % 2 == 1 { "`(hidden)`" } else { piece });
    }
    out
}

fn resolve(
    ctx: &Ctx,
    text: &str,
    span: Range<usize>,
    key: &str,
) -> Result<SocketAddr, ConfigError> {
    let invalid = |why: &str| {
        ctx.err(
            span.clone(),
            key,
            format!(
                "`{}` is not a usable host:port ({why})",
                without_credentials(text)
            ),
        )
    };
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| invalid("no address")),
        Err(e) => Err(invalid(&e.to_string())),
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            let source = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
            let message = without_secret_values(e.message(), source);
            ConfigError(format!("{file}:{line}: {message}"))
        })?;
        let ctx = Ctx { file, text };
        let p = &raw.proxy;
        let listen = resolve(&ctx, p.listen.get_ref(), p.listen.span(), "proxy.listen")?;
        let cores = match &p.cores {
            None => Cores::All,
            Some(c) => match c.get_ref() {
                RawCores::Word(w) if w == "all" => Cores::All,
                RawCores::Count(n) if *n >= 1 && *n <= 4096 => Cores::Count(*n as usize),
                RawCores::List(l) if !l.is_empty() && l.iter().all(|&c| (0..4096).contains(&c)) => {
                    let mut ids: Vec<usize> = l.iter().map(|&c| c as usize).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Cores::List(ids)
                }
                _ => {
                    return Err(ctx.err(
                        c.span(),
                        "proxy.cores",
                        "must be \"all\", a count, or a list of CPU ids",
                    ))
                }
            },
        };
        let op_timeout = duration(
            &ctx,
            &p.op_timeout,
            "proxy.op_timeout",
            Duration::from_secs(5),
        )?;
        let connect_timeout = duration(
            &ctx,
            &p.connect_timeout,
            "proxy.connect_timeout",
            op_timeout.min(Duration::from_secs(1)),
        )?;
        if connect_timeout > op_timeout {
            let span = p.connect_timeout.as_ref().map(|s| s.span()).unwrap_or(0..0);
            return Err(ctx.err(
                span,
                "proxy.connect_timeout",
                "must not be longer than proxy.op_timeout",
            ));
        }
        let drain_timeout = duration(
            &ctx,
            &p.drain_timeout,
            "proxy.drain_timeout",
            Duration::from_secs(30),
        )?;
        // "0" turns these off (as in Redis for keepalive and timeout).
        let off_or = |v: &Option<Spanned<String>>, key: &str, default: Duration| match v {
            Some(s) if s.get_ref().trim() == "0" => Ok(Duration::ZERO),
            other => duration(&ctx, other, key, default),
        };
        let spin_before_park = off_or(
            &p.spin_before_park,
            "proxy.spin_before_park",
            Duration::ZERO,
        )?;
        let tcp_keepalive = off_or(
            &p.tcp_keepalive,
            "proxy.tcp_keepalive",
            Duration::from_secs(300),
        )?;
        let client_idle_timeout = off_or(
            &p.client_idle_timeout,
            "proxy.client_idle_timeout",
            Duration::ZERO,
        )?;
        let max_clients = match &p.max_clients {
            None => None,
            some => Some(positive(&ctx, some, "proxy.max_clients", 0, 1 << 24)? as usize),
        };
        let max_multibulk_len = positive(
            &ctx,
            &p.max_multibulk_len,
            "proxy.max_multibulk_len",
            1024 * 1024,
            i32::MAX as u64,
        )? as usize;
        let max_bulk_len = positive(
            &ctx,
            &p.max_bulk_len,
            "proxy.max_bulk_len",
            512 * 1024 * 1024,
            512 * 1024 * 1024,
        )? as usize;
        let size = |v: &Option<Spanned<String>>, key: &str, default: usize| {
            match v {
            None => Ok(default),
            Some(s) => parse_size(s.get_ref()).ok_or_else(|| {
                ctx.err(
                    s.span(),
                    key,
                    format!(
                        "`{}` is not a size (bytes, or with a unit: \"512kb\", \"8mb\", \"1gb\"; \"0\")",
                        s.get_ref()
                    ),
                )
            }),
        }
        };
        // "0" is no limit, as in Redis.
        let unlimited = |n: usize| if n == 0 { usize::MAX } else { n };
        let client_output_soft_limit = unlimited(size(
            &p.client_output_soft_limit,
            "proxy.client_output_soft_limit",
            8 << 20,
        )?);
        let client_output_hard_limit = size(
            &p.client_output_hard_limit,
            "proxy.client_output_hard_limit",
            0,
        )?;
        let max_output_memory = unlimited(size(
            &p.max_output_memory,
            "proxy.max_output_memory",
            1 << 30,
        )?);
        let pubsub_output_hard_limit = size(
            &p.pubsub_output_hard_limit,
            "proxy.pubsub_output_hard_limit",
            32 << 20,
        )?;
        let pubsub_output_soft_limit = size(
            &p.pubsub_output_soft_limit,
            "proxy.pubsub_output_soft_limit",
            8 << 20,
        )?;
        let pubsub_output_soft_window = duration(
            &ctx,
            &p.pubsub_output_soft_window,
            "proxy.pubsub_output_soft_window",
            Duration::from_secs(60),
        )?;
        let max_pending_per_client = positive(
            &ctx,
            &p.max_pending_per_client,
            "proxy.max_pending_per_client",
            1024,
            1 << 20,
        )? as usize;

        let mut clusters: Vec<Cluster> = Vec::new();
        for (i, c) in raw.clusters.iter().enumerate() {
            let key = |k: &str| format!("clusters[{i}].{k}");
            let name = c.name.get_ref().clone();
            if name.is_empty() {
                return Err(ctx.err(c.name.span(), &key("name"), "must not be empty"));
            }
            if clusters.iter().any(|o| o.name == name) {
                return Err(ctx.err(
                    c.name.span(),
                    &key("name"),
                    format!("duplicate cluster name `{name}`"),
                ));
            }
            let lb_policy = match c.lb_policy.get_ref().as_str() {
                "ring_hash" => LbPolicy::RingHash,
                "maglev" => LbPolicy::Maglev,
                "ketama" => LbPolicy::Ketama,
                "redis_cluster" => LbPolicy::RedisCluster,
                other => {
                    return Err(ctx.err(
                        c.lb_policy.span(),
                        &key("lb_policy"),
                        format!(
                            "unknown lb_policy `{other}` (ring_hash, maglev, ketama, redis_cluster)"
                        ),
                    ))
                }
            };
            if lb_policy == LbPolicy::RedisCluster {
                if let Some(sh) = &c.shards {
                    return Err(ctx.err(
                        sh.span(),
                        &key("shards"),
                        "redis_cluster discovers its shards: list seed nodes as endpoints",
                    ));
                }
            }
            if c.cluster_refresh_rate.is_some() && lb_policy != LbPolicy::RedisCluster {
                let sp = c
                    .cluster_refresh_rate
                    .as_ref()
                    .map(|r| r.span())
                    .unwrap_or(0..0);
                return Err(ctx.err(
                    sp,
                    &key("cluster_refresh_rate"),
                    "only applies to lb_policy = \"redis_cluster\"",
                ));
            }
            let refresh_rate = duration(
                &ctx,
                &c.cluster_refresh_rate,
                &key("cluster_refresh_rate"),
                Duration::from_secs(5),
            )?;
            if refresh_rate < Duration::from_millis(100) {
                let sp = c
                    .cluster_refresh_rate
                    .as_ref()
                    .map(|r| r.span())
                    .unwrap_or(0..0);
                return Err(ctx.err(sp, &key("cluster_refresh_rate"), "must be at least 100ms"));
            }
            let tls = match &c.tls {
                Some(t) if !matches!(t.get_ref(), RawTls::On(false)) => {
                    let settings = match t.get_ref() {
                        RawTls::On(_) => UpstreamTls::default(),
                        RawTls::Table(tt) => UpstreamTls {
                            ca_file: tt.ca_file.as_ref().map(PathBuf::from),
                            server_name: tt.server_name.clone(),
                            client_cert: tt.client_cert.as_ref().map(PathBuf::from),
                            client_key: tt.client_key.as_ref().map(PathBuf::from),
                            insecure_skip_verify: tt.insecure_skip_verify.unwrap_or(false),
                        },
                    };
                    let client = crate::tls::client_config(&settings)
                        .map_err(|e| ctx.err(t.span(), &key("tls"), e))?;
                    let files = crate::tls::files_digest(&[
                        settings.ca_file.as_deref(),
                        settings.client_cert.as_deref(),
                        settings.client_key.as_deref(),
                    ]);
                    Some(UpstreamTlsConfig {
                        settings,
                        client,
                        files,
                    })
                }
                _ => None,
            };
            // A cluster lists `endpoints` (one primary per shard) or
            // `shards` (a primary and its replicas each).
            let mut raw_shards: Vec<RawShardSpec> = Vec::new();
            let span = match (&c.endpoints, &c.shards) {
                (Some(e), None) => {
                    for ep in e.get_ref() {
                        raw_shards.push(match ep {
                            RawEndpoint::Address(a) => (a.clone(), Vec::new(), None, None),
                            RawEndpoint::Table(t) => {
                                (t.address.clone(), Vec::new(), t.weight, t.name.clone())
                            }
                        });
                    }
                    e.span()
                }
                (None, Some(sh)) => {
                    for s in sh.get_ref() {
                        raw_shards.push((
                            s.primary.clone(),
                            s.replicas.clone(),
                            s.weight,
                            s.name.clone(),
                        ));
                    }
                    sh.span()
                }
                (Some(e), Some(_)) => {
                    return Err(ctx.err(
                        e.span(),
                        &key("endpoints"),
                        "give either endpoints or shards, not both",
                    ))
                }
                (None, None) => {
                    return Err(ctx.err(
                        c.name.span(),
                        &key("endpoints"),
                        "a cluster needs endpoints (or shards)",
                    ))
                }
            };
            if raw_shards.is_empty() {
                return Err(ctx.err(span, &key("endpoints"), "must list at least one endpoint"));
            }
            let mut endpoints: Vec<Endpoint> = Vec::new();
            let mut replicas: Vec<Vec<Endpoint>> = Vec::new();
            let mut seen: Vec<SocketAddr> = Vec::new();
            for (j, (address, reps, weight, name)) in raw_shards.iter().enumerate() {
                let ekey = key(&format!("endpoints[{j}]"));
                // Serde cannot keep spans inside untagged enums: errors
                // point at the `endpoints`/`shards` line and name the element.
                let mut one = |address: &String, ekey: &str| -> Result<SocketAddr, ConfigError> {
                    let addr = resolve(&ctx, address, span.clone(), ekey)?;
                    if seen.contains(&addr) {
                        return Err(ctx.err(
                            span.clone(),
                            ekey,
                            format!("duplicate endpoint `{address}`"),
                        ));
                    }
                    seen.push(addr);
                    Ok(addr)
                };
                let addr = one(address, &ekey)?;
                let weight = match weight {
                    None => 1,
                    Some(w) if (1..=10_000).contains(w) => *w as u32,
                    Some(_) => {
                        return Err(ctx.err(
                            span.clone(),
                            &format!("{ekey}.weight"),
                            "must be between 1 and 10000",
                        ))
                    }
                };
                let mut shard_replicas = Vec::new();
                for (r, rep) in reps.iter().enumerate() {
                    let raddr = one(rep, &format!("{ekey}.replicas[{r}]"))?;
                    shard_replicas.push(Endpoint {
                        address: rep.clone(),
                        addr: raddr,
                        weight: 1,
                        ketama_name: rep.clone(),
                    });
                }
                replicas.push(shard_replicas);
                endpoints.push(Endpoint {
                    address: address.clone(),
                    addr,
                    weight,
                    ketama_name: ketama_name(address, name.as_deref()),
                });
            }
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
                            &key("read_policy"),
                            format!("unknown read_policy `{other}` (primary, prefer_primary, replica, prefer_replica, any)"),
                        ))
                    }
                },
            };
            if read_policy == ReadPolicy::Replica
                && lb_policy != LbPolicy::RedisCluster
                && replicas.iter().any(|r| r.is_empty())
            {
                let sp = c.read_policy.as_ref().map(|r| r.span()).unwrap_or(0..0);
                return Err(ctx.err(
                    sp,
                    &key("read_policy"),
                    "\"replica\" needs replicas in every shard",
                ));
            }
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
                let h = c.hash.as_ref().map(|h| h.span()).unwrap_or(0..0);
                return Err(ctx.err(h, &key("hash"), "only applies to lb_policy = \"ketama\""));
            }
            let min_ring_size = positive(
                &ctx,
                &c.min_ring_size,
                &key("min_ring_size"),
                1024,
                8 * 1024 * 1024,
            )?;
            let max_ring_size = positive(
                &ctx,
                &c.max_ring_size,
                &key("max_ring_size"),
                8 * 1024 * 1024,
                8 * 1024 * 1024,
            )?;
            let table_size_raw =
                positive(&ctx, &c.table_size, &key("table_size"), 65537, 5_000_011)?;
            if !crate::route::maglev::is_prime(table_size_raw) {
                let sp = c.table_size.as_ref().map(|t| t.span()).unwrap_or(0..0);
                return Err(ctx.err(
                    sp,
                    &key("table_size"),
                    "must be a prime number, as in Envoy (e.g. 65537)",
                ));
            }
            let table_size = table_size_raw;
            let health_check = match &c.health_check {
                None => None,
                Some(h) => {
                    let h = h.get_ref();
                    let k = |f: &str| key(&format!("health_check.{f}"));
                    Some(HealthCheck {
                        interval: duration(
                            &ctx,
                            &h.interval,
                            &k("interval"),
                            Duration::from_secs(1),
                        )?,
                        timeout: duration(
                            &ctx,
                            &h.timeout,
                            &k("timeout"),
                            Duration::from_millis(500),
                        )?,
                        unhealthy_threshold: positive(
                            &ctx,
                            &h.unhealthy_threshold,
                            &k("unhealthy_threshold"),
                            3,
                            1000,
                        )? as u32,
                        healthy_threshold: positive(
                            &ctx,
                            &h.healthy_threshold,
                            &k("healthy_threshold"),
                            2,
                            1000,
                        )? as u32,
                    })
                }
            };
            let auto_eject = c.auto_eject.unwrap_or(false);
            if auto_eject && lb_policy == LbPolicy::RedisCluster {
                return Err(ctx.err(
                    c.lb_policy.span(),
                    &key("auto_eject"),
                    "does not apply to a redis_cluster (the cluster fails over itself)",
                ));
            }
            clusters.push(Cluster {
                health_check,
                failure_limit: positive(&ctx, &c.failure_limit, &key("failure_limit"), 2, 1000)?
                    as u32,
                auto_eject,
                retry_timeout: duration(
                    &ctx,
                    &c.retry_timeout,
                    &key("retry_timeout"),
                    Duration::from_secs(30),
                )?,
                name,
                lb_policy,
                endpoints,
                replicas,
                read_policy,
                username: c.username.clone(),
                password: c.password.clone(),
                connections_per_endpoint: positive(
                    &ctx,
                    &c.connections_per_endpoint,
                    &key("connections_per_endpoint"),
                    1,
                    64,
                )? as usize,
                hash,
                min_ring_size,
                max_ring_size,
                table_size,
                refresh_rate,
                tls,
            });
        }
        let cluster_index = |name: &Spanned<String>, key: &str| {
            clusters
                .iter()
                .position(|k| &k.name == name.get_ref())
                .ok_or_else(|| {
                    ctx.err(
                        name.span(),
                        key,
                        format!("no cluster named `{}`", name.get_ref()),
                    )
                })
        };
        let mirrors = |raw: Option<&Vec<RawMirror>>, primary: Option<usize>, key: &str| {
            let mut out = Vec::new();
            for (i, m) in raw.into_iter().flatten().enumerate() {
                let k = format!("{key}[{i}]");
                let cluster = cluster_index(&m.cluster, &format!("{k}.cluster"))?;
                if Some(cluster) == primary {
                    return Err(ctx.err(
                        m.cluster.span(),
                        &format!("{k}.cluster"),
                        "a route cannot mirror to its own cluster",
                    ));
                }
                let fraction = match &m.fraction {
                    None => 1.0,
                    Some(f) if (0.0..=1.0).contains(f.get_ref()) => *f.get_ref(),
                    Some(f) => {
                        return Err(ctx.err(
                            f.span(),
                            &format!("{k}.fraction"),
                            "must be between 0.0 and 1.0",
                        ))
                    }
                };
                out.push(MirrorPolicy {
                    cluster,
                    exclude_read_commands: m.exclude_read_commands.unwrap_or(false),
                    fraction,
                });
            }
            Ok::<_, ConfigError>(out)
        };
        let routes = raw.routes.as_ref();
        let catch_all = match routes.and_then(|r| r.catch_all.as_ref()) {
            None => None,
            Some(c) => Some(cluster_index(c, "routes.catch_all")?),
        };
        let catch_all_mirrors = mirrors(
            routes.and_then(|r| r.catch_all_mirror.as_ref()),
            catch_all,
            "routes.catch_all_mirror",
        )?;
        if catch_all.is_none() && !catch_all_mirrors.is_empty() {
            return Err(ConfigError(format!(
                "{file}: `routes.catch_all_mirror` needs `routes.catch_all`"
            )));
        }
        let mut prefix_routes: Vec<PrefixRoute> = Vec::new();
        for (i, r) in routes
            .and_then(|r| r.prefix.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            let k = format!("routes.prefix[{i}]");
            let prefix = r.prefix.get_ref().as_bytes().to_vec();
            if prefix.is_empty() {
                return Err(ctx.err(
                    r.prefix.span(),
                    &format!("{k}.prefix"),
                    "must not be empty (use routes.catch_all)",
                ));
            }
            let case_insensitive = r.case_insensitive.unwrap_or(false);
            let prefix = if case_insensitive {
                prefix.to_ascii_lowercase()
            } else {
                prefix
            };
            if prefix_routes.iter().any(|o| o.prefix == prefix) {
                return Err(ctx.err(
                    r.prefix.span(),
                    &format!("{k}.prefix"),
                    format!("duplicate prefix `{}`", r.prefix.get_ref()),
                ));
            }
            let cluster = cluster_index(&r.cluster, &format!("{k}.cluster"))?;
            prefix_routes.push(PrefixRoute {
                prefix,
                case_insensitive,
                remove_prefix: r.remove_prefix.unwrap_or(false),
                cluster,
                mirrors: mirrors(r.mirror.as_ref(), Some(cluster), &format!("{k}.mirror"))?,
            });
        }
        // Longest prefix first: the first match is the longest.
        prefix_routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        if catch_all.is_none() && prefix_routes.is_empty() {
            return Err(ConfigError(format!(
                "{file}: `routes` needs `catch_all` or at least one `[[routes.prefix]]`"
            )));
        }
        let connection_rate_limit = match &p.connection_rate_limit {
            None => None,
            Some(v) => Some(positive(
                &ctx,
                &Some(v.clone()),
                "proxy.connection_rate_limit",
                0,
                10_000_000,
            )?),
        };
        let mirror_queue_limit = positive(
            &ctx,
            &p.mirror_queue_limit,
            "proxy.mirror_queue_limit",
            10_000,
            10_000_000,
        )? as usize;
        let databases = positive(&ctx, &p.databases, "proxy.databases", 16, 65_535)? as u16;
        let keys_limit = positive(
            &ctx,
            &p.keys_limit,
            "proxy.keys_limit",
            1_000_000,
            u32::MAX as u64,
        )? as usize;
        let auth_failure_limit = match &p.auth_failure_limit {
            None => 10,
            Some(n) if (0..=1_000_000).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => {
                return Err(ctx.err(
                    n.span(),
                    "proxy.auth_failure_limit",
                    "must be between 0 (never close) and 1000000",
                ))
            }
        };
        if p.username.is_some() && p.password.is_none() {
            return Err(ConfigError(format!(
                "{file}: `proxy.username` needs `proxy.password`"
            )));
        }
        let log_level = match raw.log.as_ref().and_then(|l| l.level.as_ref()) {
            None => crate::log::Level::Info,
            Some(l) => crate::log::Level::parse(l.get_ref()).ok_or_else(|| {
                ctx.err(
                    l.span(),
                    "log.level",
                    "must be one of error, warn, info, debug",
                )
            })?,
        };
        let admin_listen = match raw.admin.as_ref().and_then(|a| a.listen.as_ref()) {
            Some(l) => Some(resolve(&ctx, l.get_ref(), l.span(), "admin.listen")?),
            None => None,
        };
        let admin_token = match raw.admin.as_ref().and_then(|a| a.token.as_ref()) {
            None => None,
            Some(t) => Some(PasswordDigest::of(
                read_secret(t.get_ref())
                    .map_err(|why| ctx.err(t.span(), "admin.token", why))?
                    .as_bytes(),
            )),
        };
        if let (Some(addr), None) = (admin_listen, &admin_token) {
            if !addr.ip().is_loopback() {
                let span = raw
                    .admin
                    .as_ref()
                    .and_then(|a| a.listen.as_ref())
                    .map_or(0..0, |l| l.span());
                return Err(ctx.err(
                    span,
                    "admin.listen",
                    format!("{addr} is reachable from other hosts: set admin.token = {{ file = \"...\" }} or {{ env = \"...\" }} so that only holders of the token can use it"),
                ));
            }
        }
        let latency_dir = raw
            .admin
            .as_ref()
            .and_then(|a| a.latency_dir.clone())
            .map(PathBuf::from);
        let tls = match &p.tls {
            None => None,
            Some(t) => {
                let raw = t.get_ref();
                let settings = DownstreamTls {
                    cert_file: PathBuf::from(&raw.cert_file),
                    key_file: PathBuf::from(&raw.key_file),
                    ca_file: raw.ca_file.as_ref().map(PathBuf::from),
                };
                let server = crate::tls::server_config(&settings)
                    .map_err(|e| ctx.err(t.span(), "proxy.tls", e))?;
                let tls_listen = match &raw.listen {
                    Some(l) => {
                        let addr = resolve(&ctx, l, t.span(), "proxy.tls.listen")?;
                        if addr == listen {
                            return Err(ctx.err(
                                t.span(),
                                "proxy.tls.listen",
                                "must differ from proxy.listen (leave it out to make proxy.listen TLS)",
                            ));
                        }
                        Some(addr)
                    }
                    None => None,
                };
                let files = crate::tls::files_digest(&[
                    Some(settings.cert_file.as_path()),
                    Some(settings.key_file.as_path()),
                    settings.ca_file.as_deref(),
                ]);
                Some(DownstreamTlsConfig {
                    listen: tls_listen,
                    settings,
                    server,
                    files,
                })
            }
        };
        Ok(Config {
            tls,
            catch_all_mirrors,
            prefix_routes,
            tcp_keepalive,
            client_idle_timeout,
            max_clients,
            client_output_soft_limit,
            client_output_hard_limit,
            max_output_memory,
            pubsub_output_hard_limit,
            pubsub_output_soft_limit,
            pubsub_output_soft_window,
            protected_mode: p.protected_mode.unwrap_or(false),
            password: p
                .password
                .as_deref()
                .map(|p| PasswordDigest::of(p.as_bytes())),
            username: p.username.clone(),
            connection_rate_limit,
            mirror_queue_limit,
            allow_flush: p.allow_flush.unwrap_or(true),
            databases,
            keys_limit,
            auth_failure_limit,
            admin_listen,
            admin_token,
            latency_dir,
            log_level,
            listen,
            cores,
            op_timeout,
            connect_timeout,
            drain_timeout,
            hashtags: p.hashtags.unwrap_or(true),
            max_multibulk_len,
            max_bulk_len,
            max_pending_per_client,
            spin_before_park,
            clusters,
            catch_all,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_redis_reads_them() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64kb"), Some(64 << 10));
        assert_eq!(parse_size("8MB"), Some(8 << 20));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("1g"), Some(1_000_000_000));
        assert_eq!(parse_size("2k"), Some(2000));
        assert_eq!(parse_size("1.5mb"), None);
        assert_eq!(parse_size("mb"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("99999999999999999999gb"), None);
    }

    #[test]
    fn passwords_are_kept_as_digests_and_compared_whole() {
        let d = PasswordDigest::of(b"s3cret");
        assert!(d.matches(b"s3cret"));
        assert!(!d.matches(b"s3creT"));
        assert!(!d.matches(b"s3cret!"));
        assert!(!d.matches(b""));
        assert!(PasswordDigest::of(b"").matches(b""));
        // The digest is SHA-256 (what Redis keeps for ACL passwords).
        let hex: String = d.0.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"
        );
        assert_eq!(format!("{d:?}"), "PasswordDigest(..)");
    }

    use super::*;

    const GOOD: &str = r#"
[proxy]
listen = "127.0.0.1:6380"
cores = 1
op_timeout = "250ms"

[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:7001", { address = "127.0.0.1:7002", weight = 2 }]

[routes]
catch_all = "main"
"#;

    #[test]
    fn errors_never_show_secrets() {
        // Found by issue 12: a mistyped password and URL credentials were
        // echoed whole by `keyway check`.
        let cfg = |proxy: &str, endpoint: &str| {
            format!("[proxy]\nlisten = \"127.0.0.1:6380\"\n{proxy}\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"{endpoint}\"]\n[routes]\ncatch_all = \"m\"\n")
        };
        let e = Config::parse(&cfg("password = 987654321", "127.0.0.1:7001"), "t.toml")
            .unwrap_err()
            .0;
        assert!(!e.contains("987654321"), "{e}");
        assert!(e.starts_with("t.toml:3: invalid type"), "{e}");
        let e = Config::parse(&cfg("", "redis://app:S3cr3t@host:x"), "t.toml")
            .unwrap_err()
            .0;
        assert!(
            !e.contains("S3cr3t") && e.contains("redis://***@host:x"),
            "{e}"
        );
        // Other errors keep their values: they are what to fix.
        let e = Config::parse(&cfg("", "nohost:x"), "t.toml").unwrap_err().0;
        assert!(e.contains("`nohost:x`"), "{e}");
    }

    #[test]
    fn parses_the_model() {
        let c = Config::parse(GOOD, "t.toml").unwrap();
        assert_eq!(c.cores, Cores::Count(1));
        assert_eq!(c.op_timeout, Duration::from_millis(250));
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert_eq!(c.clusters[0].endpoints[1].weight, 2);
        assert_eq!(c.catch_all, Some(0));
        assert!(c.hashtags);
    }

    fn err(text: &str) -> String {
        Config::parse(text, "t.toml").unwrap_err().0
    }

    #[test]
    fn health_checks_and_ejection() {
        let hc = GOOD.replace(
            "weight = 2 }]",
            "weight = 2 }]\nauto_eject = true\nretry_timeout = \"10s\"\nfailure_limit = 5\nhealth_check = { interval = \"2s\" }",
        );
        let c = Config::parse(&hc, "t.toml").unwrap();
        let m = &c.clusters[0];
        assert!(m.auto_eject);
        assert_eq!(
            (m.failure_limit, m.retry_timeout),
            (5, Duration::from_secs(10))
        );
        let h = m.health_check.as_ref().unwrap();
        assert_eq!(
            (h.interval, h.timeout),
            (Duration::from_secs(2), Duration::from_millis(500))
        );
        assert_eq!((h.unhealthy_threshold, h.healthy_threshold), (3, 2));
        // twemproxy's defaults without the keys: failure limit 2, retry 30 s.
        let d = Config::parse(GOOD, "t.toml").unwrap();
        assert_eq!(
            (d.clusters[0].failure_limit, d.clusters[0].auto_eject),
            (2, false)
        );
        let e = err(&hc.replace("\"2s\" }", "\"soon\" }"));
        assert!(e.contains("clusters[0].health_check.interval"), "{e}");
        let e = err(&hc.replace("failure_limit = 5", "failure_limit = 0"));
        assert!(
            e.contains("failure_limit") && e.contains("between 1"),
            "{e}"
        );
        let e = err(&hc.replace("\"ring_hash\"", "\"redis_cluster\""));
        assert!(
            e.contains("auto_eject") && e.contains("redis_cluster"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_key_and_line() {
        let e = err(&GOOD.replace("cores = 1", "cores = 1\nbogus = 2"));
        assert!(e.starts_with("t.toml:5:") && e.contains("bogus"), "{e}");
        let e = err(&GOOD.replace("catch_all = \"main\"", "catch_all = \"nope\""));
        assert!(
            e.starts_with("t.toml:13:") && e.contains("routes.catch_all") && e.contains("nope"),
            "{e}"
        );
        let e = err(&GOOD.replace("\"250ms\"", "\"soon\""));
        assert!(
            e.starts_with("t.toml:5:") && e.contains("proxy.op_timeout"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "endpoints = [\"127.0.0.1:7001\", { address = \"127.0.0.1:7002\", weight = 2 }]",
            "endpoints = []",
        ));
        assert!(
            e.starts_with("t.toml:10:") && e.contains("clusters[0].endpoints"),
            "{e}"
        );
        let e = err(&GOOD.replace("ring_hash", "round_robin"));
        assert!(e.contains("t.toml:9:") && e.contains("round_robin"), "{e}");
        let dup = format!("{GOOD}\n[[clusters]]\nname = \"main\"\nlb_policy = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\n");
        let dup = dup.replacen("[routes]\ncatch_all = \"main\"\n", "", 1)
            + "[routes]\ncatch_all = \"main\"\n";
        let e = err(&dup);
        assert!(e.contains("duplicate cluster name"), "{e}");
        let e = err(&GOOD.replace("127.0.0.1:7001", "127.0.0.1"));
        assert!(e.contains("t.toml:10:") && e.contains("host:port"), "{e}");
    }

    #[test]
    fn ketama_names_and_maglev_table_size_follow_the_peers() {
        assert_eq!(ketama_name("10.0.0.1:6379", None), "10.0.0.1:6379");
        assert_eq!(ketama_name("10.0.0.1:11211", None), "10.0.0.1");
        assert_eq!(ketama_name("10.0.0.1:6379", Some("server1")), "server1");
        let e = err(&GOOD.replace(
            "lb_policy = \"ring_hash\"",
            "lb_policy = \"maglev\"\ntable_size = 65536",
        ));
        assert!(
            e.contains("clusters[0].table_size") && e.contains("prime"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("s"), None);
        // Found in review: these panicked in Duration::from_secs_f64.
        assert_eq!(parse_duration("100000000000000000000s"), None);
        assert_eq!(parse_duration("6000000000000000h"), None);
        let e = err(&GOOD.replace("\"250ms\"", "\"100000000000000000000s\""));
        assert!(
            e.starts_with("t.toml:5:") && e.contains("proxy.op_timeout"),
            "{e}"
        );
    }

    #[test]
    fn redis_cluster_and_tls_settings() {
        let rc = GOOD.replace(
            "\"ring_hash\"",
            "\"redis_cluster\"\ncluster_refresh_rate = \"2s\"",
        );
        let c = Config::parse(&rc, "t.toml").unwrap();
        assert_eq!(c.clusters[0].lb_policy, LbPolicy::RedisCluster);
        assert_eq!(c.clusters[0].refresh_rate, Duration::from_secs(2));
        assert!(c.clusters[0].tls.is_none());
        let e = err(&GOOD.replace(
            "lb_policy = \"ring_hash\"",
            "lb_policy = \"ring_hash\"\ncluster_refresh_rate = \"1s\"",
        ));
        assert!(
            e.contains("cluster_refresh_rate") && e.contains("only applies"),
            "{e}"
        );
        let e = err(&rc.replace("2s", "10ms"));
        assert!(e.contains("at least 100ms"), "{e}");
        let e = err(&rc.replace(
            "endpoints = [\"127.0.0.1:7001\", { address = \"127.0.0.1:7002\", weight = 2 }]",
            "shards = [{ primary = \"127.0.0.1:7001\" }]",
        ));
        assert!(e.contains("discovers its shards"), "{e}");
        let e = err(&format!("{rc}\n").replace(
            "cluster_refresh_rate = \"2s\"",
            "tls = { ca_file = \"/nonexistent/ca.pem\" }",
        ));
        assert!(
            e.starts_with("t.toml:")
                && e.contains("clusters[0].tls")
                && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "op_timeout = \"250ms\"",
            "tls = { cert_file = \"/nonexistent/c.pem\", key_file = \"/nonexistent/k.pem\" }",
        ));
        assert!(
            e.contains("proxy.tls") && e.contains("/nonexistent/c.pem"),
            "{e}"
        );
        let off = rc.replace("cluster_refresh_rate = \"2s\"", "tls = false");
        assert!(Config::parse(&off, "t.toml").unwrap().clusters[0]
            .tls
            .is_none());
    }
}
