//! The TOML configuration: its model, and validation whose messages name
//! the key and the line at fault. Unknown keys are refused.
//!
//! Read in one pass, a section per file: `raw` (the file as TOML gives it)
//! → `validation` (one value: durations, sizes, addresses) → `clusters`
//! (with `health` and `tls`) → `routes` → `admin` → `proxy`, which makes
//! the `Config` of `model`.

mod admin;
mod clusters;
mod error;
mod health;
mod model;
mod proxy;
mod raw;
mod routes;
mod secret;
mod tls;
mod validation;

use std::path::Path;

pub use error::{ConfigError, Problem, SecretError};
pub use model::{
    Cluster, Config, Cores, DownstreamTlsConfig, Endpoint, HealthCheck, LbPolicy, MirrorPolicy,
    PrefixRoute, ReadPolicy, Reshard, UpstreamTlsConfig,
};
pub use secret::PasswordDigest;

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|why| ConfigError::Unreadable {
            path: path.to_path_buf(),
            why,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let raw = raw::read(text, file)?;
        let ctx = validation::Ctx { file, text };
        let clusters = clusters::read_all(&ctx, &raw.clusters)?;
        let routes = routes::read(&ctx, raw.routes.as_ref(), &clusters)?;
        let sections = proxy::Sections {
            routes,
            clusters,
            admin: admin::read(&ctx, raw.admin.as_ref())?,
            log_level: admin::log_level(&ctx, raw.log.as_ref())?,
        };
        proxy::read(&ctx, &raw.proxy, sections)
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

    use super::clusters::ketama_name;
    use super::validation::{parse_duration, parse_size};
    use super::*;
    use std::time::Duration;

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
        let e =
            Config::parse(&cfg("password = 987654321", "127.0.0.1:7001"), "t.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { line: 3, .. }), "{e:?}");
        let e = e.to_string();
        assert!(!e.contains("987654321"), "{e}");
        assert!(e.starts_with("t.toml:3: invalid type"), "{e}");
        let e = Config::parse(&cfg("", "redis://app:S3cr3t@host:x"), "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("S3cr3t") && e.contains("redis://***@host:x"),
            "{e}"
        );
        // Other errors keep their values: they are what to fix.
        let e = Config::parse(&cfg("", "nohost:x"), "t.toml").unwrap_err();
        assert!(
            matches!(&e, ConfigError::Value { key, problem: Problem::Address { shown, .. }, .. }
                if key == "clusters[0].endpoints[0]" && shown == "nohost:x"),
            "{e:?}"
        );
        assert!(e.to_string().contains("`nohost:x`"), "{e}");
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
        Config::parse(text, "t.toml").unwrap_err().to_string()
    }

    #[test]
    fn reshard_migrates_ring_clusters_only() {
        let with = |line: &str| GOOD.replace("weight = 2 }]", &format!("weight = 2 }}]\n{line}"));
        assert_eq!(
            Config::parse(GOOD, "t.toml").unwrap().clusters[0].reshard,
            Reshard::Off
        );
        let c = Config::parse(&with("reshard = \"migrate\""), "t.toml").unwrap();
        assert_eq!(c.clusters[0].reshard, Reshard::Migrate);
        let off = Config::parse(&with("reshard = \"off\""), "t.toml").unwrap();
        assert_eq!(off.clusters[0].reshard, Reshard::Off);
        let e = err(&with("reshard = \"move\""));
        assert!(
            e.contains("`clusters[0].reshard`: `move` is not off, migrate or coordinated"),
            "{e}"
        );
        let e = err(&with("reshard = \"migrate\"\nauto_eject = true"));
        assert!(e.contains("does not go with auto_eject"), "{e}");
        let e = err(&with("reshard = \"migrate\"").replace("\"ring_hash\"", "\"redis_cluster\""));
        assert!(e.contains("moves its own slots"), "{e}");
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
