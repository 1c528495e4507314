//! The configuration file as TOML gives it: one struct per table, unknown
//! keys refused, spans kept so that errors can name the line.

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) proxy: RawProxy,
    #[serde(default)]
    pub(super) clusters: Vec<RawCluster>,
    pub(super) routes: Option<RawRoutes>,
    pub(super) admin: Option<RawAdmin>,
    pub(super) log: Option<RawLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) latency_dir: Option<String>,
    pub(super) token: Option<Spanned<RawSecret>>,
    pub(super) hot_keys: Option<bool>,
    pub(super) hot_keys_sample: Option<Spanned<i64>>,
}

/// A secret given by where to read it, never in the file itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) file: Option<String>,
    pub(super) env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) listen: Spanned<String>,
    pub(super) cores: Option<Spanned<RawCores>>,
    pub(super) op_timeout: Option<Spanned<String>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) drain_timeout: Option<Spanned<String>>,
    pub(super) hashtags: Option<bool>,
    pub(super) max_multibulk_len: Option<Spanned<i64>>,
    pub(super) max_bulk_len: Option<Spanned<i64>>,
    pub(super) max_pending_per_client: Option<Spanned<i64>>,
    pub(super) client_output_soft_limit: Option<Spanned<String>>,
    pub(super) client_output_hard_limit: Option<Spanned<String>>,
    pub(super) max_output_memory: Option<Spanned<String>>,
    pub(super) pubsub_output_hard_limit: Option<Spanned<String>>,
    pub(super) pubsub_output_soft_limit: Option<Spanned<String>>,
    pub(super) pubsub_output_soft_window: Option<Spanned<String>>,
    pub(super) spin_before_park: Option<Spanned<String>>,
    pub(super) tcp_keepalive: Option<Spanned<String>>,
    pub(super) client_idle_timeout: Option<Spanned<String>>,
    pub(super) max_clients: Option<Spanned<i64>>,
    pub(super) protected_mode: Option<bool>,
    pub(super) password: Option<String>,
    pub(super) username: Option<String>,
    pub(super) auth_failure_limit: Option<Spanned<i64>>,
    pub(super) connection_rate_limit: Option<Spanned<i64>>,
    pub(super) mirror_queue_limit: Option<Spanned<i64>>,
    pub(super) allow_flush: Option<bool>,
    pub(super) databases: Option<Spanned<i64>>,
    pub(super) keys_limit: Option<Spanned<i64>>,
    pub(super) tls: Option<Spanned<RawProxyTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyTls {
    pub(super) cert_file: String,
    pub(super) key_file: String,
    pub(super) ca_file: Option<String>,
    /// A second listener for TLS; without it `proxy.listen` speaks TLS.
    pub(super) listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawTls {
    On(bool),
    Table(RawTlsTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTlsTable {
    pub(super) ca_file: Option<String>,
    pub(super) server_name: Option<String>,
    pub(super) client_cert: Option<String>,
    pub(super) client_key: Option<String>,
    pub(super) insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawCores {
    Word(String),
    Count(i64),
    List(Vec<i64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) name: Spanned<String>,
    pub(super) lb_policy: Spanned<String>,
    pub(super) endpoints: Option<Spanned<Vec<RawEndpoint>>>,
    pub(super) shards: Option<Spanned<Vec<RawShard>>>,
    pub(super) read_policy: Option<Spanned<String>>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) connections_per_endpoint: Option<Spanned<i64>>,
    pub(super) hash: Option<Spanned<String>>,
    pub(super) min_ring_size: Option<Spanned<i64>>,
    pub(super) max_ring_size: Option<Spanned<i64>>,
    pub(super) table_size: Option<Spanned<i64>>,
    pub(super) cluster_refresh_rate: Option<Spanned<String>>,
    pub(super) tls: Option<Spanned<RawTls>>,
    pub(super) health_check: Option<Spanned<RawHealthCheck>>,
    pub(super) failure_limit: Option<Spanned<i64>>,
    pub(super) auto_eject: Option<bool>,
    pub(super) retry_timeout: Option<Spanned<String>>,
    pub(super) reshard: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealthCheck {
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) unhealthy_threshold: Option<Spanned<i64>>,
    pub(super) healthy_threshold: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawEndpoint {
    Address(String),
    Table(RawEndpointTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpointTable {
    pub(super) address: String,
    pub(super) weight: Option<i64>,
    pub(super) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoutes {
    pub(super) catch_all: Option<Spanned<String>>,
    pub(super) catch_all_mirror: Option<Vec<RawMirror>>,
    pub(super) prefix: Option<Vec<RawPrefix>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShard {
    pub(super) primary: String,
    #[serde(default)]
    pub(super) replicas: Vec<String>,
    pub(super) weight: Option<i64>,
    pub(super) name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrefix {
    pub(super) prefix: Spanned<String>,
    pub(super) cluster: Spanned<String>,
    pub(super) remove_prefix: Option<bool>,
    pub(super) case_insensitive: Option<bool>,
    pub(super) mirror: Option<Vec<RawMirror>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirror {
    pub(super) cluster: Spanned<String>,
    pub(super) exclude_read_commands: Option<bool>,
    pub(super) fraction: Option<Spanned<f64>>,
}

/// The file parsed into the raw model. A TOML error names the file and
/// line; on a line holding a secret its values are hidden.
pub(super) fn read(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        let source = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        let message = without_secret_values(e.message(), source);
        ConfigError::Syntax {
            file: file.to_string(),
            line,
            message,
        }
    })
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
