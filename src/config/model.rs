//! What a configuration says once validated: the types the rest of
//! keyway reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::secret::PasswordDigest;
use crate::route::hash::KetamaHash;
use crate::tls::{DownstreamTls, UpstreamTls};

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
    /// What a reload that changes the ring does with the keys it moves.
    pub reshard: Reshard,
}

/// `reshard` of a ring cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reshard {
    /// The new ring serves at once, as twemproxy and Envoy do: keys it
    /// places elsewhere are not found where they now belong.
    #[default]
    Off,
    /// Keys move to their new owner (MIGRATE) before anything touches
    /// them, and in the background until none is left behind.
    Migrate,
    /// As Migrate, started only by `keyway reshard start` over every keyway
    /// of a fleet (a reload that would start one is refused): one instance
    /// on the old placement while another moves keys would split them.
    Coordinated,
}

impl Reshard {
    /// Whether a reload that changes the placement moves keys.
    pub fn moves_keys(self) -> bool {
        self != Reshard::Off
    }
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
    /// `[admin] hot_keys` and `hot_keys_sample`: each core samples one
    /// request in this many for `/hotkeys` (0: off).
    pub hot_keys_every: u32,
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
