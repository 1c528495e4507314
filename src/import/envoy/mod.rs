//! Envoy: the redis_proxy listener of `static_resources` becomes keyway's
//! `[proxy]`, its prefix routes keyway's `[routes]`, and the clusters they
//! name keyway clusters. RING_HASH and MAGLEV rings are built over the
//! same `ip:port` members, weights and sizes (see `topology`: members are
//! named by the resolved address, as Envoy names hosts), so keys stay on
//! the Redis they were on; envoy.clusters.redis becomes redis_cluster.
//!
//! This file walks the document: the listener to import, its filter
//! chains, then the filter (`proxy`), its routes (`routes`) and the
//! clusters they name (`cluster`, with `placement`, `endpoints`, `health`
//! and `upstream_tls`); `values` reads the small values they share.

mod cluster;
mod endpoints;
mod health;
mod placement;
mod proxy;
mod routes;
mod upstream_tls;
mod values;

use super::model::{ImportError, ImportProblem, Imported, Options, Unmatched};
use super::toml_out::{Doc, Section};
use super::yaml::{self, Node};
use cluster::cluster;
use proxy::{connect_timeout, is_redis_proxy, proxy_filter, Ctx, REDIS_PROXY};
use routes::routes;
use values::{items_of, listen_address};

/// A redis_proxy filter: its listener's index, its chain's, and itself.
type Found<'a> = (usize, usize, Node<'a>);

/// One redis_proxy listener of an Envoy bootstrap (the first, or the one
/// `--listener` names), its routes and the clusters they name, as keyway TOML.
pub fn import(text: &str, file: &str, opts: &Options) -> Result<Imported, ImportError> {
    let y = yaml::load(text, file)?;
    let root = Node::root(&y, file);
    let mut doc = Doc::default();
    let mut notes = Vec::new();
    let sr = static_resources(&root, &mut doc)?;
    let listeners = sr.require("listeners")?.items()?;
    let found = redis_proxies(&listeners)?;
    let (li, ci, filter) = choose(&found, &listeners, &sr, file, opts)?;
    let listener = &listeners[li];
    let lname = name_of(listener)?;
    other_listeners(&listeners, li, &found, &mut doc, &mut notes)?;
    header(&mut doc, file, &lname, listener);
    let mut proxy = listener_section(listener, ci, &filter, &lname, opts)?;

    let rp = filter.require("typed_config")?;
    let mut ctx = Ctx::default();
    proxy_filter(&rp, &mut proxy, &mut ctx)?;
    let mut referenced: Vec<(String, Node)> = Vec::new();
    let pr = rp.require("prefix_routes")?;
    routes(&pr, &mut doc, &mut referenced)?;
    clusters(&sr, &referenced, &lname, &mut doc, &mut ctx)?;
    connect_timeout(&ctx, &mut proxy);
    doc.proxy = proxy;
    notes.insert(
        0,
        format!("imported listener `{lname}` ({})", listener.at()),
    );
    Ok(Imported {
        toml: doc.render(),
        notes,
    })
}

/// `static_resources`, what is imported from; the file's other settings
/// are said in the trailer.
fn static_resources<'a>(root: &Node<'a>, doc: &mut Doc) -> Result<Node<'a>, ImportError> {
    let sr = root
        .get("static_resources")?
        .ok_or_else(|| {
            root.err("no `static_resources`: keyway imports listeners and clusters written in the file, not ones from xDS")
        })?
        // Paths as an operator names them: `clusters[1].lb_policy`.
        .rebased("");
    for (_, n) in root.others(&["static_resources"])? {
        doc.trailer
            .comment(n.not_imported("Envoy's own setting, not the proxy's"));
    }
    for (_, n) in sr.others(&["listeners", "clusters"])? {
        doc.trailer.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(sr)
}

/// Every redis_proxy filter of the listeners, in the file's order.
fn redis_proxies<'a>(listeners: &[Node<'a>]) -> Result<Vec<Found<'a>>, ImportError> {
    let mut found = Vec::new();
    for (li, l) in listeners.iter().enumerate() {
        for (ci, chain) in items_of(l, "filter_chains")?.iter().enumerate() {
            for f in items_of(chain, "filters")? {
                if is_redis_proxy(&f)? {
                    found.push((li, ci, f));
                }
            }
        }
    }
    Ok(found)
}

/// A listener's name, else its path (`listeners[2]`).
fn name_of(l: &Node) -> Result<String, ImportError> {
    Ok(match l.get("name")? {
        Some(n) => n.scalar()?,
        None => l.path().to_string(),
    })
}

/// The filter to import: the first, or that of the listener `--listener`
/// names.
fn choose<'a>(
    found: &[Found<'a>],
    listeners: &[Node<'a>],
    sr: &Node,
    file: &str,
    opts: &Options,
) -> Result<Found<'a>, ImportError> {
    let chosen = match &opts.select {
        None => found.first(),
        Some(want) => {
            let mut hit = None;
            for f in found {
                if &name_of(&listeners[f.0])? == want {
                    hit = Some(f);
                    break;
                }
            }
            hit
        }
    };
    let Some(chosen) = chosen.cloned() else {
        return Err(match &opts.select {
            Some(want) => ImportError::in_file(
                file,
                ImportProblem::NoneNamed(Box::new(Unmatched {
                    what: "redis_proxy listener",
                    want: want.clone(),
                    known: Vec::new(),
                })),
            ),
            None => sr.err(format!(
                "no listener has a {REDIS_PROXY} filter: nothing to import"
            )),
        });
    };
    Ok(chosen)
}

/// The listeners not imported (keyway has one), said in the trailer; the
/// other redis_proxy ones also in the notes, with how to import them.
fn other_listeners(
    listeners: &[Node],
    li: usize,
    found: &[Found],
    doc: &mut Doc,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    for (i, l) in listeners.iter().enumerate() {
        if i == li {
            continue;
        }
        let n = name_of(l)?;
        if found.iter().any(|f| f.0 == i) {
            doc.trailer.comment(format!(
                "not imported: listener `{n}` ({}), also a redis_proxy — keyway has one listener; `keyway import envoy --listener {n}` imports it.",
                l.at()
            ));
            notes.push(format!(
                "redis_proxy listener `{n}` ({}) not imported (one listener per keyway); use --listener {n} for it",
                l.at()
            ));
        } else {
            doc.trailer.comment(format!(
                "not imported: listener `{n}` ({}) — not a redis_proxy listener.",
                l.at()
            ));
        }
    }
    Ok(())
}

/// The comment at the top of the output: where it came from, how to
/// read and check it.
fn header(doc: &mut Doc, file: &str, lname: &str, listener: &Node) {
    doc.header.comment(format!(
        "keyway configuration imported from Envoy's {file}, listener `{lname}` (line {}),",
        listener.line()
    ));
    doc.header.comment(
        "by `keyway import envoy`. Keys are placed as Envoy's redis_proxy placed them: the same",
    );
    doc.header.comment(
        "endpoints (hashed as ip:port), weights, ring or table sizes and hashtag setting.",
    );
    doc.header.comment(
        "`not imported:` lines are Envoy settings keyway has no equivalent for. Check the",
    );
    doc.header
        .comment("result with `keyway check --config FILE` before starting keyway on it.");
}

/// `[proxy]` as far as the listener gives it: its address (or --listen),
/// and what else it holds as comments.
fn listener_section(
    listener: &Node,
    ci: usize,
    filter: &Node,
    lname: &str,
    opts: &Options,
) -> Result<Section, ImportError> {
    let mut proxy = Section::default();
    proxy.comment(format!("From listener `{lname}` ({}).", listener.at()));
    let listen = listen_address(&listener.require("address")?)?;
    match &opts.listen {
        Some(l) => {
            proxy.comment(format!(
                "Envoy listened on {listen}; --listen moved keyway to {l}."
            ));
            proxy.set_str("listen", l);
        }
        None => proxy.set_str("listen", &listen),
    }
    for (_, n) in listener.others(&["name", "address", "filter_chains"])? {
        proxy.comment(n.not_imported("no keyway equivalent"));
    }
    filter_chains(listener, ci, filter, &mut proxy)?;
    Ok(proxy)
}

/// The listener's filter chains: all but the imported filter, and the
/// chain's other settings, are comments.
fn filter_chains(
    listener: &Node,
    ci: usize,
    filter: &Node,
    proxy: &mut Section,
) -> Result<(), ImportError> {
    for (i, chain) in items_of(listener, "filter_chains")?.iter().enumerate() {
        if i != ci {
            proxy.comment(chain.not_imported("keyway has one filter chain"));
            continue;
        }
        for (k, n) in chain.others(&["filters"])? {
            let why = if k == "transport_socket" {
                "downstream TLS: keyway's [proxy] tls takes cert_file and key_file; clients connect in plain text here"
            } else {
                "no keyway equivalent"
            };
            proxy.comment(n.not_imported(why));
        }
        for f in items_of(chain, "filters")? {
            if f.path() != filter.path() {
                proxy.comment(f.not_imported("keyway runs no other network filter"));
            }
        }
    }
    Ok(())
}

/// The clusters the routes name, in the file's order; the others are said
/// in the trailer.
fn clusters(
    sr: &Node,
    referenced: &[(String, Node)],
    lname: &str,
    doc: &mut Doc,
    ctx: &mut Ctx,
) -> Result<(), ImportError> {
    let clusters = match sr.get("clusters")? {
        Some(c) => c.items()?,
        None => Vec::new(),
    };
    let mut names = Vec::new();
    for c in &clusters {
        names.push(c.require("name")?.scalar()?);
    }
    for (want, at) in referenced {
        if !names.contains(want) {
            return Err(at.err(format!(
                "no cluster named `{want}` in static_resources.clusters"
            )));
        }
    }
    for (c, name) in clusters.iter().zip(&names) {
        if referenced.iter().any(|(n, _)| n == name) {
            doc.clusters.push(cluster(c, name, ctx)?);
        } else {
            doc.trailer.comment(format!(
                "not imported: cluster `{name}` ({}) — no route of listener `{lname}` names it.",
                c.at()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LbPolicy, ReadPolicy};
    use std::time::Duration;

    /// The five-line shape of tests/it/placement_compat.rs's envoy.yaml.
    const BASE: &str = r#"static_resources:
  listeners:
  - name: redis
    address: { socket_address: { address: 127.0.0.1, port_value: 6379 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: { op_timeout: 0.25s, enable_hashtagging: true }
          prefix_routes: { catch_all_route: { cluster: backends } }
  clusters:
  - name: backends
    connect_timeout: 1s
    type: STATIC
    lb_policy: RING_HASH
    ring_hash_lb_config: { minimum_ring_size: 2048 }
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7001 } } }
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7002 } } }
          load_balancing_weight: 3
"#;

    fn run(text: &str, opts: &Options) -> Result<Imported, ImportError> {
        import(text, "envoy.yaml", opts)
    }

    /// Every import output must be a configuration keyway accepts.
    fn parsed(text: &str, opts: &Options) -> (Config, String) {
        let out = run(text, opts).unwrap_or_else(|e| panic!("{e}"));
        let c =
            Config::parse(&out.toml, "out.toml").unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
        (c, out.toml)
    }

    fn config(text: &str) -> (Config, String) {
        parsed(text, &Options::default())
    }

    fn refused(text: &str) -> String {
        run(text, &Options::default()).unwrap_err().to_string()
    }

    #[test]
    fn ring_hash_listener_settings_and_weights() {
        let (c, toml) = config(BASE);
        assert_eq!(c.listen.to_string(), "127.0.0.1:6379");
        assert_eq!(c.op_timeout, Duration::from_millis(250));
        // 1s from the cluster, held to op_timeout.
        assert_eq!(c.connect_timeout, Duration::from_millis(250));
        assert!(c.hashtags);
        let k = &c.clusters[0];
        assert_eq!(
            (k.name.as_str(), k.lb_policy),
            ("backends", LbPolicy::RingHash)
        );
        assert_eq!((k.min_ring_size, k.max_ring_size), (2048, 8 * 1024 * 1024));
        let eps: Vec<(String, u32)> = k
            .endpoints
            .iter()
            .map(|e| (e.address.clone(), e.weight))
            .collect();
        assert_eq!(
            eps,
            [("127.0.0.1:7001".into(), 1), ("127.0.0.1:7002".into(), 3)]
        );
        assert_eq!(c.catch_all, Some(0));
        assert!(toml.contains("# not imported: listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: redis (envoy.yaml:10)"), "{toml}");
        assert!(toml.starts_with("# keyway configuration imported from Envoy's envoy.yaml, listener `redis` (line 3),"), "{toml}");
    }

    #[test]
    fn hashtagging_is_off_unless_envoy_had_it_on() {
        let (c, _) = config(&BASE.replace(", enable_hashtagging: true", ""));
        assert!(!c.hashtags);
        let (c, _) = config(
            &BASE
                .replace("0.25s", "2s")
                .replace("connect_timeout: 1s", "connect_timeout: 0.5s"),
        );
        assert_eq!(
            (c.op_timeout, c.connect_timeout),
            (Duration::from_secs(2), Duration::from_millis(500))
        );
    }

    #[test]
    fn prefix_routes_and_mirrors() {
        let routes = r#"prefix_routes:
            case_insensitive: true
            routes:
            - prefix: "user:"
              remove_prefix: true
              cluster: users
              request_mirror_policy:
              - cluster: backends
                exclude_read_commands: true
                runtime_fraction:
                  default_value: { numerator: 2500, denominator: TEN_THOUSAND }
                  runtime_key: mirror.users
            catch_all_route:
              cluster: backends
              request_mirror_policy: [{ cluster: users }]"#;
        let text = BASE
            .replace(
                "prefix_routes: { catch_all_route: { cluster: backends } }",
                routes,
            )
            .replace("  clusters:\n", "  clusters:\n  - name: users\n    lb_policy: MAGLEV\n    load_assignment: { endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7101 } } } } ] } ] }\n  - name: unused\n    lb_policy: MAGLEV\n    load_assignment: { endpoints: [] }\n");
        let (c, toml) = config(&text);
        assert_eq!(c.clusters.len(), 2, "{toml}");
        let users = c.clusters.iter().position(|k| k.name == "users").unwrap();
        let backends = c
            .clusters
            .iter()
            .position(|k| k.name == "backends")
            .unwrap();
        assert_eq!(c.clusters[users].lb_policy, LbPolicy::Maglev);
        assert_eq!(c.clusters[users].table_size, 65537);
        let r = &c.prefix_routes[0];
        assert_eq!(r.prefix, b"user:");
        assert!(r.remove_prefix && r.case_insensitive);
        assert_eq!(r.cluster, users);
        assert_eq!(r.mirrors[0].cluster, backends);
        assert!(r.mirrors[0].exclude_read_commands);
        assert_eq!(r.mirrors[0].fraction, 0.25);
        assert_eq!(c.catch_all, Some(backends));
        assert_eq!(c.catch_all_mirrors[0].cluster, users);
        assert_eq!(c.catch_all_mirrors[0].fraction, 1.0);
        assert!(toml.contains("runtime_key: mirror.users"), "{toml}");
        assert!(toml.contains("not imported: cluster `unused`"), "{toml}");
    }

    #[test]
    fn redis_cluster_with_read_policy_and_auth() {
        let text = BASE
            .replace(
                "settings: { op_timeout: 0.25s, enable_hashtagging: true }",
                "settings: { op_timeout: 1s, read_policy: PREFER_REPLICA, enable_redirection: true }\n          downstream_auth_username: { inline_string: app }\n          downstream_auth_passwords: [ { inline_string: first }, { inline_string: second } ]",
            )
            .replace(
                "    type: STATIC\n    lb_policy: RING_HASH\n    ring_hash_lb_config: { minimum_ring_size: 2048 }\n",
                "    cluster_type:\n      name: envoy.clusters.redis\n      typed_config: { \"@type\": type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig, cluster_refresh_rate: 2s, redirect_refresh_interval: 1s }\n    lb_policy: CLUSTER_PROVIDED\n    typed_extension_protocol_options:\n      envoy.filters.network.redis_proxy:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions\n        auth_username: { inline_string: default }\n        auth_password: { inline_string: token }\n",
            );
        let (c, toml) = config(&text);
        let k = &c.clusters[0];
        assert_eq!(k.lb_policy, LbPolicy::RedisCluster);
        assert_eq!(k.refresh_rate, Duration::from_secs(2));
        assert_eq!(k.read_policy, ReadPolicy::PreferReplica);
        assert_eq!(
            (k.username.as_deref(), k.password.as_deref()),
            (Some("default"), Some("token"))
        );
        assert_eq!(c.username.as_deref(), Some("app"));
        assert!(c.password.as_ref().unwrap().matches(b"first"));
        assert!(
            toml.contains("downstream_auth_passwords[1] (envoy.yaml:"),
            "{toml}"
        );
        assert!(!toml.contains("\"second\""), "{toml}");
        assert!(toml.contains("redirect_refresh_interval: 1s"), "{toml}");
        assert!(toml.contains("settings.enable_redirection: true"), "{toml}");
        assert!(!c.hashtags);
        // The google.protobuf.Struct form of Envoy's documentation.
        let wrapped = text.replace(
            "typed_config: { \"@type\": type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig, cluster_refresh_rate: 2s, redirect_refresh_interval: 1s }",
            "typed_config: { \"@type\": type.googleapis.com/google.protobuf.Struct, value: { cluster_refresh_rate: 3s } }",
        );
        assert_ne!(wrapped, text);
        let (c, _) = config(&wrapped);
        assert_eq!(c.clusters[0].refresh_rate, Duration::from_secs(3));
    }

    #[test]
    fn upstream_tls_follows_envoy_verification() {
        let tls = "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: redis.example\n";
        let text = BASE.replace(
            "    load_assignment:\n",
            &format!("{tls}    load_assignment:\n"),
        );
        let (c, toml) = config(&text);
        let t = c.clusters[0].tls.as_ref().unwrap();
        assert_eq!(t.settings.server_name.as_deref(), Some("redis.example"));
        assert!(t.settings.insecure_skip_verify, "{toml}");
        let verified = text.replace(
            "        sni: redis.example\n",
            "        common_tls_context:\n          validation_context: { trusted_ca: { filename: /etc/ca.pem } }\n          tls_certificates: [ { certificate_chain: { filename: /etc/c.pem }, private_key: { filename: /etc/k.pem } } ]\n",
        );
        let toml = run(&verified, &Options::default()).unwrap().toml;
        assert!(
            toml.contains("tls = { client_cert = \"/etc/c.pem\", client_key = \"/etc/k.pem\", ca_file = \"/etc/ca.pem\" }"),
            "{toml}"
        );
        let e = refused(&verified.replace("{ filename: /etc/ca.pem }", "{ inline_string: PEM }"));
        assert!(
            e.contains("validation_context.trusted_ca: keyway reads certificates"),
            "{e}"
        );
    }

    #[test]
    fn one_listener_is_imported_and_the_others_said() {
        let second = "  - name: cache\n    address: { socket_address: { address: 127.0.0.1, port_value: 6390 } }\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.redis_proxy\n        typed_config: { stat_prefix: c, settings: { op_timeout: 3s }, prefix_routes: { catch_all_route: { cluster: backends } } }\n  - name: web\n    address: { socket_address: { address: 127.0.0.1, port_value: 8080 } }\n    filter_chains: [ { filters: [ { name: envoy.filters.network.tcp_proxy } ] } ]\n  clusters:\n";
        let text = BASE.replace("  clusters:\n", second);
        let out = run(&text, &Options::default()).unwrap();
        assert!(
            out.notes[0].starts_with("imported listener `redis`"),
            "{:?}",
            out.notes
        );
        assert!(
            out.notes[1].contains("`cache` (envoy.yaml:13)")
                && out.notes[1].contains("--listener cache"),
            "{:?}",
            out.notes
        );
        assert!(
            out.toml.contains(
                "not imported: listener `web` (envoy.yaml:19) — not a redis_proxy listener."
            ),
            "{}",
            out.toml
        );
        let opts = Options {
            select: Some("cache".into()),
            listen: Some("127.0.0.1:7777".into()),
        };
        let (c, toml) = parsed(&text, &opts);
        assert_eq!(c.op_timeout, Duration::from_secs(3));
        assert_eq!(c.listen.to_string(), "127.0.0.1:7777");
        assert!(toml.contains("Envoy listened on 127.0.0.1:6390"), "{toml}");
        let e = run(
            &text,
            &Options {
                select: Some("nope".into()),
                listen: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "envoy.yaml: no redis_proxy listener named `nope`");
    }

    #[test]
    fn strict_dns_names_are_kept_with_a_word() {
        let text = BASE.replace("type: STATIC", "type: STRICT_DNS").replace(
            "address: 127.0.0.1, port_value: 7001",
            "address: localhost, port_value: 7001",
        );
        let (c, toml) = config(&text);
        assert_eq!(c.clusters[0].endpoints[0].address, "localhost:7001");
        assert!(
            toml.contains(
                "# localhost:7001 (envoy.yaml:23): STRICT_DNS made one Envoy host per address"
            ),
            "{toml}"
        );
        assert!(!toml.contains("127.0.0.1:7002 (envoy.yaml"), "{toml}");
    }

    #[test]
    fn failover_priorities_and_unknown_keys_are_comments() {
        let text = BASE.replace(
            "          load_balancing_weight: 3\n",
            "          load_balancing_weight: 3\n      - priority: 1\n        lb_endpoints:\n        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 7009 } } }\n    health_checks: [ { timeout: 1s } ]\n",
        );
        let (c, toml) = config(&text);
        assert_eq!(c.clusters[0].endpoints.len(), 2);
        assert!(
            toml.contains("priority 1 — keyway has no failover priorities"),
            "{toml}"
        );
        assert!(
            toml.contains("# not imported: clusters[0].health_checks[0]: {timeout: 1s} (envoy.yaml:29) — keyway's health check is Envoy's redis health checker"),
            "{toml}"
        );
        assert!(c.clusters[0].health_check.is_none());
    }

    #[test]
    fn redis_health_checks_become_health_check() {
        let text = BASE.replace(
            "          load_balancing_weight: 3\n",
            "          load_balancing_weight: 3\n    health_checks:\n    - timeout: 0.25s\n      interval: 2s\n      unhealthy_threshold: 4\n      healthy_threshold: 1\n      custom_health_check: { name: envoy.health_checkers.redis }\n",
        );
        let (c, toml) = config(&text);
        let h = c.clusters[0].health_check.as_ref().expect(&toml);
        assert_eq!(
            (
                h.interval,
                h.timeout,
                h.unhealthy_threshold,
                h.healthy_threshold
            ),
            (Duration::from_secs(2), Duration::from_millis(250), 4, 1)
        );
    }

    #[test]
    fn refusals_name_line_and_key() {
        assert_eq!(
            refused(&BASE.replace("RING_HASH", "LEAST_REQUEST")),
            "envoy.yaml:17: clusters[0].lb_policy: LEAST_REQUEST has no keyway equivalent (keyway places keys with RING_HASH, MAGLEV or redis cluster)"
        );
        let e = refused(&BASE.replace("    lb_policy: RING_HASH\n", ""));
        assert!(
            e.starts_with("envoy.yaml:14: clusters[0]: no lb_policy: Envoy's default, ROUND_ROBIN"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "{ minimum_ring_size: 2048 }",
            "{ hash_function: MURMUR_HASH_2 }",
        ));
        assert!(
            e.starts_with(
                "envoy.yaml:18: clusters[0].ring_hash_lb_config.hash_function: MURMUR_HASH_2"
            ),
            "{e}"
        );
        let e = refused(&BASE.replace("type: STATIC", "type: EDS"));
        assert!(e.starts_with("envoy.yaml:16: clusters[0].type: EDS"), "{e}");
        let e = refused(&BASE.replace(
            "    ring_hash_lb_config: { minimum_ring_size: 2048 }\n",
            "    common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } }\n",
        ));
        assert!(e.starts_with("envoy.yaml:18: clusters[0].common_lb_config.consistent_hashing_lb_config.use_hostname_for_hashing:"), "{e}");
        let e = refused(&BASE.replace(
            "          load_balancing_weight: 3\n",
            "          metadata: { filter_metadata: { envoy.lb: { hash_key: a } } }\n",
        ));
        assert!(
            e.starts_with("envoy.yaml:25:") && e.contains("hash_key"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "{ cluster: backends }",
            "{ cluster: backends, key_formatter: \"{%KEY%}\" }",
        ));
        assert!(
            e.starts_with("envoy.yaml:12:") && e.contains("key_formatter: `{%KEY%}`"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "{ cluster: backends }",
            "{ cluster: backends, read_command_policy: { cluster: ro } }",
        ));
        assert!(e.contains("catch_all_route.read_command_policy"), "{e}");
        let e = refused(&BASE.replace("{ cluster: backends }", "{ cluster: nowhere }"));
        assert_eq!(e, "envoy.yaml:12: listeners[0].filter_chains[0].filters[0].typed_config.prefix_routes.catch_all_route.cluster: no cluster named `nowhere` in static_resources.clusters");
        let e = refused(&BASE.replace(
            "stat_prefix: redis",
            "stat_prefix: redis\n          downstream_auth_passwords: [ { filename: /etc/pw } ]",
        ));
        assert!(
            e.starts_with("envoy.yaml:11:")
                && e.contains("downstream_auth_passwords[0]: keyway takes credentials"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "stat_prefix: redis",
            "stat_prefix: redis\n          external_auth_provider: { grpc_service: {} }",
        ));
        assert!(
            e.contains("external_auth_provider") && e.starts_with("envoy.yaml:11:"),
            "{e}"
        );
        let e = refused(&BASE.replace("0.25s", "250ms"));
        assert!(
            e.starts_with("envoy.yaml:11:") && e.contains("`250ms` is not an Envoy duration"),
            "{e}"
        );
        let e = refused(&BASE.replace("load_balancing_weight: 3", "load_balancing_weight: 0"));
        assert!(
            e.starts_with("envoy.yaml:25:") && e.contains("between 1 and 10000"),
            "{e}"
        );
        let e = refused(&BASE.replace(
            "RING_HASH",
            "MAGLEV\n    maglev_lb_config: { table_size: 65536 }",
        ));
        assert!(
            e.starts_with(
                "envoy.yaml:18: clusters[0].maglev_lb_config.table_size: 65536: must be a prime"
            ),
            "{e}"
        );
        let e = refused(&BASE.replace("envoy.filters.network.redis_proxy", "envoy.filters.network.tcp_proxy").replace("\"@type\": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy", "cluster: x"));
        assert!(
            e.contains("no listener has a envoy.filters.network.redis_proxy filter"),
            "{e}"
        );
        let e = refused("static_resources:\n  listeners: [\n");
        assert!(
            e.starts_with("envoy.yaml:") && e.contains("not valid YAML"),
            "{e}"
        );
        let e = refused("admin: {}\n");
        assert!(e.contains("no `static_resources`"), "{e}");
    }
}
