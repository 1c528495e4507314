//! Envoy: the redis_proxy listener of `static_resources` becomes keyway's
//! `[proxy]`, its prefix routes keyway's `[routes]`, and the clusters they
//! name keyway clusters. RING_HASH and MAGLEV rings are built over the
//! same `ip:port` members, weights and sizes (see `topology`: members are
//! named by the resolved address, as Envoy names hosts), so keys stay on
//! the Redis they were on; envoy.clusters.redis becomes redis_cluster.

use super::model::{duration_text, host_port, ImportError, Imported, Options};
use super::toml_out::{array, float, inline, string, Doc, Section};
use super::yaml::{self, Node};
use std::time::Duration;

const REDIS_PROXY: &str = "envoy.filters.network.redis_proxy";
const PLACEMENT: &str = "keyway places keys with RING_HASH, MAGLEV or redis cluster";

/// What the listener's settings tell the clusters, and what the clusters
/// tell `[proxy]` (keyway has one connect_timeout, Envoy one per cluster).
#[derive(Default)]
struct Ctx {
    op_timeout: Option<Duration>,
    /// keyway's read_policy and the line it came from.
    read_policy: Option<(String, String)>,
    connect_timeouts: Vec<(Duration, String)>,
}

pub fn import(text: &str, file: &str, opts: &Options) -> Result<Imported, ImportError> {
    let y = yaml::load(text, file)?;
    let root = Node::root(&y, file);
    let mut doc = Doc::default();
    let mut notes = Vec::new();
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

    // Every redis_proxy filter: (listener index, chain index, filter).
    let listeners = sr.require("listeners")?.items()?;
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
    let name_of = |l: &Node| -> Result<String, ImportError> {
        Ok(match l.get("name")? {
            Some(n) => n.scalar()?,
            None => l.path().to_string(),
        })
    };
    let chosen = match &opts.select {
        None => found.first(),
        Some(want) => {
            let mut hit = None;
            for f in &found {
                if &name_of(&listeners[f.0])? == want {
                    hit = Some(f);
                    break;
                }
            }
            hit
        }
    };
    let Some((li, ci, filter)) = chosen.cloned() else {
        return Err(match &opts.select {
            Some(want) => ImportError(format!("{file}: no redis_proxy listener named `{want}`")),
            None => sr.err(format!(
                "no listener has a {REDIS_PROXY} filter: nothing to import"
            )),
        });
    };
    let listener = &listeners[li];
    let lname = name_of(listener)?;
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

    let rp = filter.require("typed_config")?;
    let mut ctx = Ctx::default();
    proxy_filter(&rp, &mut proxy, &mut ctx)?;
    let mut referenced: Vec<(String, Node)> = Vec::new();
    let pr = rp.require("prefix_routes")?;
    routes(&pr, &mut doc, &mut referenced)?;

    // The clusters the routes name, in the file's order.
    let clusters = match sr.get("clusters")? {
        Some(c) => c.items()?,
        None => Vec::new(),
    };
    let mut names = Vec::new();
    for c in &clusters {
        names.push(c.require("name")?.scalar()?);
    }
    for (want, at) in &referenced {
        if !names.contains(want) {
            return Err(at.err(format!(
                "no cluster named `{want}` in static_resources.clusters"
            )));
        }
    }
    for (c, name) in clusters.iter().zip(&names) {
        if referenced.iter().any(|(n, _)| n == name) {
            doc.clusters.push(cluster(c, name, &mut ctx)?);
        } else {
            doc.trailer.comment(format!(
                "not imported: cluster `{name}` ({}) — no route of listener `{lname}` names it.",
                c.at()
            ));
        }
    }
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

/// keyway has one connect_timeout: the longest the clusters set, so no
/// cluster gets less time than Envoy gave it, within op_timeout (keyway
/// refuses a longer one).
fn connect_timeout(ctx: &Ctx, proxy: &mut Section) {
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

fn items_of<'a>(n: &Node<'a>, key: &str) -> Result<Vec<Node<'a>>, ImportError> {
    match n.get(key)? {
        Some(v) => v.items(),
        None => Ok(Vec::new()),
    }
}

fn is_redis_proxy(f: &Node) -> Result<bool, ImportError> {
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

/// `address: { socket_address: { address, port_value } }` as `host:port`.
fn socket_address(a: &Node) -> Result<String, ImportError> {
    if let Some(p) = a.get("pipe")? {
        return Err(p.err("a unix socket; keyway speaks TCP only"));
    }
    let sa = a.require("socket_address")?;
    if let Some(np) = sa.get("named_port")? {
        return Err(np.err("a named port; give port_value"));
    }
    let host = sa.require("address")?.scalar()?;
    let port_node = sa.require("port_value")?;
    let port = port_node.u64()?;
    if port == 0 || port > 65535 {
        return Err(port_node.err(format!("{port} is not a TCP port")));
    }
    Ok(host_port(&host, port))
}

fn listen_address(a: &Node) -> Result<String, ImportError> {
    socket_address(a)
}

/// The RedisProxy filter's own settings: timeouts, hashtags, client AUTH.
fn proxy_filter(rp: &Node, proxy: &mut Section, ctx: &mut Ctx) -> Result<(), ImportError> {
    if let Some(x) = rp.get("external_auth_provider")? {
        return Err(x.err(
            "clients are checked by an external service; keyway checks AUTH against proxy.password only",
        ));
    }
    let settings = rp.get("settings")?;
    let mut hashtags = false;
    if let Some(s) = &settings {
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
    }
    proxy.comment(if hashtags {
        "settings.enable_hashtagging: true: only the {tag} of a key is hashed."
    } else {
        "settings.enable_hashtagging is off (Envoy's default): whole keys are hashed."
    });
    proxy.set("hashtags", hashtags.to_string());

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

/// A secret written inline. A file or environment variable is refused:
/// importing without it would let clients in without AUTH, or lock
/// keyway out of its servers.
fn data_source(n: &Node) -> Result<String, ImportError> {
    if let Some(s) = n.get("inline_string")? {
        return s.scalar();
    }
    Err(n.err(
        "keyway takes credentials written in its configuration: give them as inline_string here, or set them in the imported file",
    ))
}

/// An Envoy duration ("5s", "0.25s") exactly.
fn duration(n: &Node) -> Result<Duration, ImportError> {
    let text = n.scalar()?;
    let bad = || {
        n.err(format!(
            "`{text}` is not an Envoy duration such as \"5s\" or \"0.25s\""
        ))
    };
    let secs = text.trim().strip_suffix('s').ok_or_else(bad)?;
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.is_empty() && frac.is_empty()
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    Ok(Duration::new(whole, nanos))
}

/// `prefix_routes` as `[routes]` and `[[routes.prefix]]`; `referenced`
/// gets every cluster a route or mirror names, with where.
fn routes<'a>(
    pr: &Node<'a>,
    doc: &mut Doc,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<(), ImportError> {
    let case_insensitive = match pr.get("case_insensitive")? {
        Some(c) => c.bool()?,
        None => false,
    };
    let routes = items_of(pr, "routes")?;
    for r in &routes {
        let mut sec = Section::default();
        sec.comment(format!("From {} ({}).", r.path(), r.at()));
        let p = r.require("prefix")?;
        let prefix = p.scalar()?;
        if prefix.is_empty() {
            return Err(p.err("an empty prefix: write it as catch_all_route"));
        }
        let cluster = route_target(r, referenced)?;
        sec.set_str("prefix", &prefix);
        sec.set_str("cluster", &cluster);
        if let Some(rm) = r.get("remove_prefix")? {
            if rm.bool()? {
                sec.set("remove_prefix", "true");
            }
        }
        if case_insensitive {
            sec.set("case_insensitive", "true");
        }
        let mirrors = mirrors(r, &cluster, &mut sec, referenced)?;
        if !mirrors.is_empty() {
            sec.set("mirror", array(&mirrors));
        }
        for (_, n) in r.others(&[
            "prefix",
            "cluster",
            "remove_prefix",
            "request_mirror_policy",
            "key_formatter",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
        doc.prefixes.push(sec);
    }
    let catch_all = pr.get("catch_all_route")?;
    match (&catch_all, pr.get("catch_all_cluster")?) {
        (Some(c), _) => {
            doc.routes
                .comment(format!("From prefix_routes.catch_all_route ({}).", c.at()));
            let cluster = route_target(c, referenced)?;
            doc.routes.set_str("catch_all", &cluster);
            let mirrors = mirrors(c, &cluster, &mut doc.routes, referenced)?;
            if !mirrors.is_empty() {
                doc.routes.set("catch_all_mirror", array(&mirrors));
            }
            for (_, n) in c.others(&[
                "cluster",
                "request_mirror_policy",
                "key_formatter",
                "remove_prefix",
                "prefix",
            ])? {
                doc.routes.comment(n.not_imported("no keyway equivalent"));
            }
        }
        (None, Some(c)) => {
            let cluster = c.scalar()?;
            doc.routes.comment(format!(
                "From prefix_routes.catch_all_cluster ({}).",
                c.at()
            ));
            referenced.push((cluster.clone(), c.clone()));
            doc.routes.set_str("catch_all", &cluster);
        }
        (None, None) if routes.is_empty() => {
            return Err(pr.err("no route: neither routes nor catch_all_route"));
        }
        (None, None) => doc
            .routes
            .comment("No catch_all_route: keys no prefix matches get -ERR no route."),
    }
    for (_, n) in pr.others(&[
        "case_insensitive",
        "routes",
        "catch_all_route",
        "catch_all_cluster",
    ])? {
        doc.routes.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(())
}

/// A route's cluster; refuses what would send its keys elsewhere.
fn route_target<'a>(
    r: &Node<'a>,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<String, ImportError> {
    if let Some(k) = r.get("key_formatter")? {
        let f = k.scalar()?;
        if !f.is_empty() && f != "%KEY%" {
            return Err(k.err(format!(
                "`{f}`: Envoy rewrites keys before hashing them; keyway has no key formatter, so keys would be stored and placed differently"
            )));
        }
    }
    if let Some(p) = r.get("read_command_policy")? {
        return Err(p.err(
            "Envoy sends this route's reads to another cluster; keyway sends a route's reads and writes to one cluster, so reads would see other data",
        ));
    }
    let c = r.require("cluster")?;
    let name = c.scalar()?;
    referenced.push((name.clone(), c));
    Ok(name)
}

/// A route's `request_mirror_policy` as keyway `mirror` entries.
fn mirrors<'a>(
    r: &Node<'a>,
    own: &str,
    sec: &mut Section,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<Vec<String>, ImportError> {
    let mut out = Vec::new();
    for m in items_of(r, "request_mirror_policy")? {
        let c = m.require("cluster")?;
        let cluster = c.scalar()?;
        if cluster == own {
            sec.comment(m.not_imported(
                "a mirror to the route's own cluster (keyway refuses it; it only doubled writes)",
            ));
            continue;
        }
        referenced.push((cluster.clone(), c));
        let mut pairs = vec![("cluster", string(&cluster))];
        if let Some(e) = m.get("exclude_read_commands")? {
            if e.bool()? {
                pairs.push(("exclude_read_commands", "true".to_string()));
            }
        }
        if let Some(rf) = m.get("runtime_fraction")? {
            let (num, den) = match rf.get("default_value")? {
                Some(dv) => {
                    let num = match dv.get("numerator")? {
                        Some(n) => n.u64()?,
                        None => 0,
                    };
                    let den = match dv.get("denominator")? {
                        None => 100,
                        Some(d) => match d.scalar()?.as_str() {
                            "HUNDRED" | "0" => 100,
                            "TEN_THOUSAND" | "1" => 10_000,
                            "MILLION" | "2" => 1_000_000,
                            other => {
                                return Err(d.err(format!(
                                    "unknown denominator `{other}` (HUNDRED, TEN_THOUSAND, MILLION)"
                                )))
                            }
                        },
                    };
                    (num, den)
                }
                None => (0, 100),
            };
            pairs.push(("fraction", float((num as f64 / den as f64).min(1.0))));
            if let Some(k) = rf.get("runtime_key")? {
                sec.comment(
                    k.not_imported("keyway has no runtime: the default fraction is imported"),
                );
            }
        }
        for (_, n) in m.others(&["cluster", "exclude_read_commands", "runtime_fraction"])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
        out.push(inline(&pairs));
    }
    Ok(out)
}

/// How a cluster places keys.
enum Placement {
    RingHash { min: u64, max: u64 },
    Maglev { table_size: u64 },
    RedisCluster,
}

/// Envoy's redis health checker (PING) becomes keyway's `health_check`
/// with the same interval, timeout and thresholds; other checkers (TCP,
/// HTTP) and further checks are comments.
fn health_checks(hcs: &Node, sec: &mut Section) -> Result<(), ImportError> {
    let mut imported = false;
    for hc in hcs.items()? {
        let redis = match hc.get("custom_health_check")? {
            Some(ch) => ch.require("name")?.scalar()? == "envoy.health_checkers.redis",
            None => false,
        };
        if !redis || imported {
            sec.comment(hc.not_imported(if imported {
                "keyway runs one health check per cluster"
            } else {
                "keyway's health check is Envoy's redis health checker (PING)"
            }));
            continue;
        }
        let mut fields = Vec::new();
        for key in ["interval", "timeout"] {
            if let Some(d) = hc.get(key)? {
                fields.push((key, string(&duration_text(duration(&d)?))));
            }
        }
        for key in ["unhealthy_threshold", "healthy_threshold"] {
            if let Some(n) = hc.get(key)? {
                match n.u64()? {
                    v @ 1..=1000 => fields.push((key, v.to_string())),
                    v => return Err(n.err(format!("{v}: keyway's {key} is between 1 and 1000"))),
                }
            }
        }
        sec.comment(format!(
            "health_checks: Envoy's redis health checker ({}).",
            hc.at()
        ));
        sec.set("health_check", inline(&fields));
        imported = true;
        for (_, n) in hc.others(&[
            "interval",
            "timeout",
            "unhealthy_threshold",
            "healthy_threshold",
            "custom_health_check",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    Ok(())
}

/// One Envoy cluster as a keyway `[[clusters]]`.
fn cluster(c: &Node, name: &str, ctx: &mut Ctx) -> Result<Section, ImportError> {
    let mut sec = Section::default();
    sec.comment(format!("From cluster `{name}` ({}).", c.at()));
    sec.set_str("name", name);
    let mut known = vec!["name", "connect_timeout", "load_assignment"];
    let mut redis_config = None;
    let placement = match c.get("cluster_type")? {
        Some(ct) => {
            known.extend(["cluster_type", "lb_policy"]);
            let kind = ct.require("name")?.scalar()?;
            if kind != "envoy.clusters.redis" {
                return Err(ct.err(format!(
                    "`{kind}`: keyway knows clusters with their endpoints listed and envoy.clusters.redis only"
                )));
            }
            redis_config = ct.get("typed_config")?;
            Placement::RedisCluster
        }
        None => {
            known.extend([
                "type",
                "lb_policy",
                "ring_hash_lb_config",
                "maglev_lb_config",
                "load_balancing_policy",
                "common_lb_config",
            ]);
            if let Some(t) = c.get("type")? {
                match t.scalar()?.as_str() {
                    "STATIC" | "STRICT_DNS" | "LOGICAL_DNS" => {}
                    other => {
                        return Err(t.err(format!(
                            "{other}: keyway needs the endpoints listed in load_assignment (STATIC, STRICT_DNS or LOGICAL_DNS)"
                        )))
                    }
                }
            }
            if let Some(cl) = c.get("common_lb_config")? {
                hashing_options(&cl)?;
                for (_, n) in cl.others(&[
                    "consistent_hashing_lb_config",
                    "locality_weighted_lb_config",
                ])? {
                    sec.comment(n.not_imported("no keyway equivalent"));
                }
            }
            placement(c, &mut sec)?
        }
    };
    match &placement {
        Placement::RingHash { min, max } => {
            sec.set_str("lb_policy", "ring_hash");
            sec.set("min_ring_size", min.to_string());
            sec.set("max_ring_size", max.to_string());
        }
        Placement::Maglev { table_size } => {
            sec.set_str("lb_policy", "maglev");
            sec.set("table_size", table_size.to_string());
        }
        Placement::RedisCluster => {
            sec.set_str("lb_policy", "redis_cluster");
            if let Some(tc) = &redis_config {
                redis_cluster_config(tc, &mut sec)?;
            }
        }
    }
    let redis_cluster = matches!(placement, Placement::RedisCluster);
    endpoints(c, redis_cluster, &mut sec)?;
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
    }
    for (_, n) in c.others(&known)? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(sec)
}

/// `lb_policy` with its config, or the newer `load_balancing_policy`
/// (which Envoy reads instead when present).
fn placement(c: &Node, sec: &mut Section) -> Result<Placement, ImportError> {
    if let Some(lbp) = c.get("load_balancing_policy")? {
        let policies = items_of(&lbp, "policies")?;
        let Some(first) = policies.first() else {
            return Err(lbp.err("no policies"));
        };
        for p in policies.iter().skip(1) {
            sec.comment(
                p.not_imported("Envoy's fallback policy, unused while the first one loads"),
            );
        }
        let ext = first.require("typed_extension_config")?;
        let tc = ext.require("typed_config")?;
        let ty = tc.require("@type")?;
        let ty_text = ty.scalar()?;
        hashing_options(&tc)?;
        return if ty_text.ends_with(".ring_hash.v3.RingHash") {
            ring_hash(Some(&tc))
        } else if ty_text.ends_with(".maglev.v3.Maglev") {
            maglev(Some(&tc))
        } else {
            Err(ty.err(format!(
                "`{ty_text}` has no keyway equivalent ({PLACEMENT})"
            )))
        };
    }
    let Some(lp) = c.get("lb_policy")? else {
        return Err(c.err(format!(
            "no lb_policy: Envoy's default, ROUND_ROBIN, has no keyway equivalent ({PLACEMENT})"
        )));
    };
    match lp.scalar()?.as_str() {
        "RING_HASH" => ring_hash(c.get("ring_hash_lb_config")?.as_ref()),
        "MAGLEV" => maglev(c.get("maglev_lb_config")?.as_ref()),
        other => Err(lp.err(format!("{other} has no keyway equivalent ({PLACEMENT})"))),
    }
}

/// Refuses hashing options that place keys by something keyway lacks.
fn hashing_options(n: &Node) -> Result<(), ImportError> {
    let mut checks = vec![n.clone()];
    checks.extend(n.get("consistent_hashing_lb_config")?);
    for c in checks {
        if let Some(h) = c.get("use_hostname_for_hashing")? {
            if h.bool()? {
                return Err(h.err(
                    "Envoy hashes the endpoints' hostnames; keyway hashes their ip:port only",
                ));
            }
        }
        if let Some(f) = c.get("hash_balance_factor")? {
            return Err(f.err(
                "bounded loads move keys off busy endpoints; keyway's placement depends on the key only",
            ));
        }
    }
    if let Some(l) = n.get("locality_weighted_lb_config")? {
        return Err(l.err(
            "locality weights change Envoy's ring; keyway weighs endpoints only (remove it if there is one locality)",
        ));
    }
    Ok(())
}

fn ring_hash(cfg: Option<&Node>) -> Result<Placement, ImportError> {
    const LIMIT: u64 = 8 * 1024 * 1024;
    let mut min = 1024;
    let mut max = LIMIT;
    if let Some(cfg) = cfg {
        if let Some(n) = cfg.get("minimum_ring_size")? {
            min = n.u64()?;
            if !(1..=LIMIT).contains(&min) {
                return Err(n.err(format!("{min}: must be between 1 and {LIMIT}")));
            }
        }
        if let Some(n) = cfg.get("maximum_ring_size")? {
            max = n.u64()?;
            if !(1..=LIMIT).contains(&max) {
                return Err(n.err(format!("{max}: must be between 1 and {LIMIT}")));
            }
        }
        if let Some(h) = cfg.get("hash_function")? {
            match h.scalar()?.as_str() {
                "XX_HASH" | "DEFAULT_HASH" => {}
                other => {
                    return Err(h.err(format!(
                        "{other}: keyway's ring_hash places ring points with XX_HASH, Envoy's default, only"
                    )))
                }
            }
        }
    }
    Ok(Placement::RingHash { min, max })
}

fn maglev(cfg: Option<&Node>) -> Result<Placement, ImportError> {
    let mut table_size = 65537;
    if let Some(n) = cfg.map(|c| c.get("table_size")).transpose()?.flatten() {
        table_size = n.u64()?;
        if table_size > 5_000_011 || !crate::route::maglev::is_prime(table_size) {
            return Err(n.err(format!(
                "{table_size}: must be a prime number up to 5000011"
            )));
        }
    }
    Ok(Placement::Maglev { table_size })
}

/// `cluster_type.typed_config` (RedisClusterConfig), also in the
/// `google.protobuf.Struct` wrapping Envoy's own examples use.
fn redis_cluster_config(tc: &Node, sec: &mut Section) -> Result<(), ImportError> {
    if let Some(t) = tc.get("@type")? {
        if t.scalar()?.ends_with("google.protobuf.Struct") {
            if let Some(v) = tc.get("value")? {
                return redis_cluster_config(&v, sec);
            }
        }
    }
    if let Some(r) = tc.get("cluster_refresh_rate")? {
        let d = duration(&r)?;
        if d < Duration::from_millis(100) {
            return Err(r.err("keyway refreshes a cluster's slots at most every 100ms"));
        }
        sec.set("cluster_refresh_rate", string(&duration_text(d)));
    }
    for (_, n) in tc.others(&["@type", "cluster_refresh_rate"])? {
        sec.comment(n.not_imported(
            "keyway also refreshes at once after MOVED or a failed node, with no setting",
        ));
    }
    Ok(())
}

/// `load_assignment` as keyway endpoints: priority 0 only (the ring Envoy
/// hashed over while those were healthy), weights kept.
fn endpoints(c: &Node, redis_cluster: bool, sec: &mut Section) -> Result<(), ImportError> {
    let la = c
        .get("load_assignment")?
        .ok_or_else(|| c.err("no load_assignment: keyway needs the endpoints listed"))?;
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut failover = Vec::new();
    let groups = items_of(&la, "endpoints")?;
    let strict_dns = !redis_cluster
        && match c.get("type")? {
            Some(t) => t.scalar()? == "STRICT_DNS",
            None => false,
        };
    for g in &groups {
        let priority = match g.get("priority")? {
            Some(p) => p.u64()?,
            None => 0,
        };
        for e in items_of(g, "lb_endpoints")? {
            if priority > 0 {
                failover.push((priority, e));
                continue;
            }
            let ep = e.require("endpoint")?;
            let address = ep.require("address")?;
            let addr = socket_address(&address)?;
            if strict_dns && !is_ip_port(&addr) {
                sec.comment(format!(
                    "{addr} ({}): STRICT_DNS made one Envoy host per address it resolves to, keyway connects to the first: list each address if it has several.",
                    address.at()
                ));
            }
            let weight = match e.get("load_balancing_weight")? {
                Some(w) => {
                    let v = w.u64()?;
                    if !(1..=10_000).contains(&v) {
                        return Err(w.err(format!("{v}: keyway's weights are between 1 and 10000")));
                    }
                    v
                }
                None => 1,
            };
            if let Some(h) = e.get("health_status")? {
                let s = h.scalar()?;
                if s != "UNKNOWN" && s != "HEALTHY" {
                    return Err(h.err(format!(
                        "{s}: Envoy leaves this endpoint off its ring; keyway would put it on (remove the endpoint or its health_status)"
                    )));
                }
            }
            if let Some(m) = e.get("metadata")? {
                if let Some(fm) = m.get("filter_metadata")? {
                    if let Some(lb) = fm.get("envoy.lb")? {
                        if let Some(k) = lb.get("hash_key")? {
                            return Err(k.err(
                                "Envoy hashes this hash_key instead of the endpoint's ip:port; keyway cannot",
                            ));
                        }
                    }
                }
            }
            for (_, n) in ep.others(&["address"])? {
                sec.comment(n.not_imported("no keyway equivalent"));
            }
            for (_, n) in e.others(&[
                "endpoint",
                "load_balancing_weight",
                "health_status",
                "metadata",
            ])? {
                sec.comment(n.not_imported("no keyway equivalent"));
            }
            out.push((addr, weight));
        }
        for (_, n) in g.others(&[
            "lb_endpoints",
            "priority",
            "locality",
            "load_balancing_weight",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    if out.is_empty() {
        return Err(la.err("no endpoint of priority 0"));
    }
    let weighted = out.iter().any(|(_, w)| *w != 1);
    let items: Vec<String> = out
        .iter()
        .map(|(a, w)| {
            if weighted && !redis_cluster {
                inline(&[("address", string(a)), ("weight", w.to_string())])
            } else {
                string(a)
            }
        })
        .collect();
    if redis_cluster {
        sec.comment("Seed nodes: the slot map is discovered from them.");
    }
    sec.set("endpoints", array(&items));
    for (priority, e) in failover {
        sec.comment(format!(
            "not imported: {} ({}), priority {priority} — keyway has no failover priorities; Envoy sent it no keys while priority 0 was healthy.",
            e.path(),
            e.at()
        ));
    }
    for (_, n) in la.others(&["endpoints", "cluster_name"])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(())
}

/// `transport_socket` of a cluster: TLS (UpstreamTlsContext) as keyway's
/// `tls`, with file names only (keyway reads certificates from files).
fn upstream_tls(ts: &Node, sec: &mut Section) -> Result<(), ImportError> {
    let name = match ts.get("name")? {
        Some(n) => n.scalar()?,
        None => String::new(),
    };
    let tc = ts.get("typed_config")?;
    let ty = match tc.as_ref().map(|t| t.get("@type")).transpose()?.flatten() {
        Some(t) => t.scalar()?,
        None => String::new(),
    };
    if name == "envoy.transport_sockets.raw_buffer" || ty.ends_with(".RawBuffer") {
        return Ok(());
    }
    if name != "envoy.transport_sockets.tls" && !ty.ends_with(".UpstreamTlsContext") {
        return Err(ts.err(format!(
            "`{name}{ty}`: keyway connects to Redis over TCP or TLS only"
        )));
    }
    let Some(tc) = tc else {
        return Err(ts.err("TLS without typed_config (UpstreamTlsContext)"));
    };
    let mut pairs = Vec::new();
    if let Some(sni) = tc.get("sni")? {
        pairs.push(("server_name", string(&sni.scalar()?)));
    }
    let mut verified = false;
    if let Some(ctc) = tc.get("common_tls_context")? {
        if let Some(s) = ctc.get("tls_certificate_sds_secret_configs")? {
            return Err(s.err("certificates from SDS: keyway reads them from files"));
        }
        if let Some(s) = ctc.get("validation_context_sds_secret_config")? {
            return Err(s.err("a CA from SDS: keyway reads it from a file"));
        }
        let certs = items_of(&ctc, "tls_certificates")?;
        if let Some(cert) = certs.first() {
            pairs.push((
                "client_cert",
                string(&file_name(&cert.require("certificate_chain")?)?),
            ));
            pairs.push((
                "client_key",
                string(&file_name(&cert.require("private_key")?)?),
            ));
            for (_, n) in cert.others(&["certificate_chain", "private_key"])? {
                sec.comment(n.not_imported("no keyway equivalent"));
            }
        }
        for extra in certs.iter().skip(1) {
            sec.comment(extra.not_imported("keyway presents one client certificate"));
        }
        if let Some(vc) = ctc.get("validation_context")? {
            if let Some(ca) = vc.get("trusted_ca")? {
                pairs.push(("ca_file", string(&file_name(&ca)?)));
                verified = true;
            }
            for (_, n) in vc.others(&["trusted_ca"])? {
                sec.comment(n.not_imported("keyway verifies the certificate against server_name (else the endpoint's host)",
                ));
            }
        }
        for (_, n) in ctc.others(&["tls_certificates", "validation_context"])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    if !verified {
        // As Envoy did: without a validation_context it checks nothing.
        sec.comment("Envoy did not verify the servers' certificates (no validation_context), nor does keyway here: give ca_file to verify them.");
        pairs.push(("insecure_skip_verify", "true".to_string()));
    }
    for (_, n) in tc.others(&["@type", "sni", "common_tls_context"])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    sec.comment(format!("TLS from transport_socket ({}).", ts.at()));
    sec.set("tls", inline(&pairs));
    Ok(())
}

fn is_ip_port(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok()
}

/// A certificate or key given as `filename`.
fn file_name(n: &Node) -> Result<String, ImportError> {
    match n.get("filename")? {
        Some(f) => f.scalar(),
        None => Err(n.err(
            "keyway reads certificates and keys from files: give filename (write inline ones to a file)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LbPolicy, ReadPolicy};

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
        run(text, &Options::default()).unwrap_err().0
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
        .0;
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
