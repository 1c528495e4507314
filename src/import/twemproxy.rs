//! twemproxy (nutcracker.yml): one pool becomes keyway's listener, one
//! ketama cluster over the same servers and the catch-all route. ketama
//! hashes a server's name (`host:port:weight name`), else `host:port`
//! as written, and keyway's endpoint `name` keeps that (see
//! `config::clusters::ketama_name`), so keys stay where nutcracker put them.

use super::model::{duration_text, ImportError, ImportProblem, Imported, Options, Unmatched};
use super::toml_out::{array, inline, string, Doc, Section};
use super::yaml::{self, Node};
use crate::route::hash::KetamaHash;
use std::time::Duration;

/// The keys twemproxy 0.5 reads in a pool; any other is commented.
const KNOWN: &[&str] = &[
    "listen",
    "hash",
    "hash_tag",
    "distribution",
    "servers",
    "redis",
    "redis_auth",
    "redis_db",
    "timeout",
    "auto_eject_hosts",
    "server_retry_timeout",
    "server_failure_limit",
    "preconnect",
    "server_connections",
    "backlog",
    "client_connections",
    "tcpkeepalive",
];

/// One pool of a nutcracker.yml (the first, or the one `--pool` names) as
/// keyway TOML.
pub fn import(text: &str, file: &str, opts: &Options) -> Result<Imported, ImportError> {
    let y = yaml::load(text, file)?;
    let root = Node::root(&y, file);
    let pools = root.entries()?;
    let chosen = choose(&root, &pools, file, opts)?;
    let (name, pool) = &pools[chosen];
    let mut doc = Doc::default();
    let mut notes = Vec::new();
    header(&mut doc, file, name, pool);
    redis_pool(pool)?;
    let (proxy, redis_auth) = proxy_section(name, pool, opts)?;
    doc.proxy = proxy;
    doc.clusters
        .push(cluster_section(name, pool, redis_auth.as_deref())?);
    doc.routes
        .comment(format!("Every key goes to pool `{name}`."));
    doc.routes.set_str("catch_all", name);
    other_pools(&pools, chosen, &mut doc, &mut notes)?;
    notes.insert(0, format!("imported pool `{name}` ({})", pool.at()));
    Ok(Imported {
        toml: doc.render(),
        notes,
    })
}

/// The index of the pool to import: the first, or the one --pool names.
fn choose(
    root: &Node,
    pools: &[(String, Node)],
    file: &str,
    opts: &Options,
) -> Result<usize, ImportError> {
    let names: Vec<&str> = pools.iter().map(|(n, _)| n.as_str()).collect();
    Ok(match &opts.select {
        None if pools.is_empty() => return Err(root.err("no pool is configured")),
        None => 0,
        Some(want) => names.iter().position(|n| n == want).ok_or_else(|| {
            let problem = ImportProblem::NoneNamed(Box::new(Unmatched {
                what: "pool",
                want: want.clone(),
                known: names.iter().map(|n| n.to_string()).collect(),
            }));
            ImportError::in_file(file, problem)
        })?,
    })
}

/// The comment at the top of the output: where it came from, how to
/// read and check it.
fn header(doc: &mut Doc, file: &str, name: &str, pool: &Node) {
    doc.header.comment(format!(
        "keyway configuration imported from twemproxy's {file}, pool `{name}` (line {}),",
        pool.line()
    ));
    doc.header.comment(
        "by `keyway import twemproxy`. Keys are placed as nutcracker placed them: ketama over",
    );
    doc.header
        .comment("the same server names and weights, with the same hash and hash_tag.");
    doc.header.comment(
        "`not imported:` lines are twemproxy settings keyway has no equivalent for. Check the",
    );
    doc.header
        .comment("result with `keyway check --config FILE` before starting keyway on it.");
}

/// Refuses a memcached pool (twemproxy's default): keyway serves Redis.
fn redis_pool(pool: &Node) -> Result<(), ImportError> {
    match pool.get("redis")? {
        Some(r) if r.bool()? => Ok(()),
        Some(r) => Err(r.err("false: a memcached pool; keyway serves Redis and Valkey only")),
        None => Err(pool.err(
            "`redis: true` is missing: twemproxy's default is a memcached pool, which keyway does not serve",
        )),
    }
}

/// `[proxy]` from the pool, and its redis_auth (which the cluster sends
/// upstream too).
fn proxy_section(
    name: &str,
    pool: &Node,
    opts: &Options,
) -> Result<(Section, Option<String>), ImportError> {
    let mut proxy = Section::default();
    proxy.comment(format!("From pool `{name}` ({}).", pool.at()));
    listen(pool, opts, &mut proxy)?;
    hash_tag(pool, &mut proxy)?;
    timeout(pool, &mut proxy)?;
    // twemproxy made clients AUTH with it too, and sent it upstream.
    let redis_auth = match pool.get("redis_auth")? {
        Some(a) => Some(a.scalar()?),
        None => None,
    };
    if let Some(password) = &redis_auth {
        proxy.comment("redis_auth: clients must AUTH with it, as with twemproxy.");
        proxy.set_str("password", password);
    }
    client_connections(pool, &mut proxy)?;
    for (key, why) in [
        (
            "tcpkeepalive",
            "keyway's tcp_keepalive (default \"300s\") is on for client and server sockets",
        ),
        ("backlog", "keyway's listen backlog has no setting"),
        ("preconnect", "keyway has no setting for it"),
    ] {
        if let Some(n) = pool.get(key)? {
            proxy.comment(n.not_imported(why));
        }
    }
    Ok((proxy, redis_auth))
}

/// The pool's `listen` (TCP only), or where --listen moves keyway.
fn listen(pool: &Node, opts: &Options, proxy: &mut Section) -> Result<(), ImportError> {
    let listen = pool.require("listen")?;
    let listen_text = listen.scalar()?;
    if listen_text.starts_with('/') {
        return Err(listen.err(format!(
            "`{listen_text}`: a unix socket; keyway listens on TCP only (give --listen host:port)"
        )));
    }
    match &opts.listen {
        Some(l) => {
            proxy.comment(format!(
                "twemproxy listened on {listen_text} ({}); --listen moved keyway to {l}.",
                listen.at()
            ));
            proxy.set_str("listen", l);
        }
        None => proxy.set_str("listen", &listen_text),
    }
    Ok(())
}

/// `hash_tag` as keyway's `hashtags`: `{}` or none, else keys would move.
fn hash_tag(pool: &Node, proxy: &mut Section) -> Result<(), ImportError> {
    // keyway hashes {tags} unless told not to; twemproxy only with hash_tag.
    match pool.get("hash_tag")? {
        None => {
            proxy.comment("No hash_tag: twemproxy hashed whole keys, and so does keyway here.");
            proxy.set("hashtags", "false");
        }
        Some(t) if t.is_mapping() => {
            return Err(t.err("write the hash tag quoted, as `hash_tag: \"{}\"`"));
        }
        Some(t) => {
            let tag = t.scalar()?;
            if tag != "{}" {
                return Err(t.err(format!(
                    "`{tag}`: keyway's hash tags are `{{...}}` only (Redis's rule), so keys holding `{tag}` would move"
                )));
            }
            proxy.comment("hash_tag \"{}\": only the {tag} of a key is hashed, as with twemproxy.");
            proxy.set("hashtags", "true");
        }
    }
    Ok(())
}

/// twemproxy's one `timeout` (milliseconds) as op_timeout and
/// connect_timeout.
fn timeout(pool: &Node, proxy: &mut Section) -> Result<(), ImportError> {
    match pool.get("timeout")? {
        Some(t) => {
            let ms = t.u64()?;
            if ms == 0 {
                proxy.comment(format!(
                    "not imported: timeout: 0 ({}) — keyway needs a positive op_timeout (default 5s).",
                    t.at()
                ));
            } else {
                // twemproxy's one timeout covers connecting too.
                let d = duration_text(Duration::from_millis(ms));
                proxy.comment(format!(
                    "twemproxy timeout: {ms} (ms), for requests and connecting."
                ));
                proxy.set("op_timeout", string(&d));
                proxy.set("connect_timeout", string(&d));
            }
        }
        None => proxy.comment(
            "twemproxy had no timeout (it waits for servers forever); keyway answers -ERR upstream timeout after op_timeout (default 5s).",
        ),
    }
    Ok(())
}

/// `client_connections` as keyway's max_clients (0: unlimited).
fn client_connections(pool: &Node, proxy: &mut Section) -> Result<(), ImportError> {
    if let Some(c) = pool.get("client_connections")? {
        match c.u64()? {
            0 => proxy.comment(format!(
                "twemproxy client_connections: 0 (unlimited, {}); keyway's max_clients follows RLIMIT_NOFILE.",
                c.at()
            )),
            n if n <= 1 << 24 => {
                proxy.comment("twemproxy client_connections.");
                proxy.set("max_clients", n.to_string());
            }
            n => return Err(c.err(format!("{n}: keyway's max_clients is at most 16777216"))),
        }
    }
    Ok(())
}

/// The pool as one ketama `[[clusters]]`: its servers, AUTH, connections
/// and ejection.
fn cluster_section(
    name: &str,
    pool: &Node,
    redis_auth: Option<&str>,
) -> Result<Section, ImportError> {
    let mut cluster = Section::default();
    cluster.comment(format!("Pool `{name}` ({}).", pool.at()));
    cluster.set_str("name", name);
    ketama(pool, &mut cluster)?;
    servers(pool, &mut cluster)?;
    if let Some(password) = redis_auth {
        cluster.comment("redis_auth: sent to every server.");
        cluster.set_str("password", password);
    }
    server_connections(pool, &mut cluster)?;
    redis_db(pool)?;
    ejection(pool, &mut cluster)?;
    for (_, n) in pool.others(KNOWN)? {
        cluster.comment(n.not_imported("not a twemproxy 0.5 setting"));
    }
    Ok(cluster)
}

/// `distribution` (ketama only) and `hash` as keyway's ketama placement.
fn ketama(pool: &Node, cluster: &mut Section) -> Result<(), ImportError> {
    if let Some(d) = pool.get("distribution")? {
        let dist = d.scalar()?;
        if dist != "ketama" {
            return Err(d.err(format!(
                "{dist} has no keyway equivalent (keyway places keys with ketama, twemproxy's `distribution: ketama`)"
            )));
        }
    }
    cluster.set_str("lb_policy", "ketama");
    let hash = match pool.get("hash")? {
        None => KetamaHash::Fnv1a64,
        Some(h) => {
            let text = h.scalar()?;
            KetamaHash::parse(&text).ok_or_else(|| {
                let all: Vec<&str> = KetamaHash::ALL.iter().map(|h| h.name()).collect();
                h.err(format!(
                    "`{text}` is not a twemproxy hash ({})",
                    all.join(", ")
                ))
            })?
        }
    };
    cluster.set_str("hash", hash.name());
    Ok(())
}

/// `servers` as keyway endpoints, named as ketama hashes them.
fn servers(pool: &Node, cluster: &mut Section) -> Result<(), ImportError> {
    let servers = pool.require("servers")?;
    let mut endpoints = Vec::new();
    for s in servers.items()? {
        endpoints.push(server(&s)?);
    }
    if endpoints.is_empty() {
        return Err(servers.err("no servers"));
    }
    cluster.comment("`name` is what ketama hashes, as twemproxy's `host:port:weight name`.");
    cluster.set("endpoints", array(&endpoints));
    Ok(())
}

/// `server_connections` as keyway's connections_per_endpoint.
fn server_connections(pool: &Node, cluster: &mut Section) -> Result<(), ImportError> {
    if let Some(n) = pool.get("server_connections")? {
        match n.u64()? {
            1 => {}
            c @ 2..=64 => {
                cluster.comment(format!(
                    "twemproxy server_connections: {c} per server; keyway opens this many per server on each core."
                ));
                cluster.set("connections_per_endpoint", c.to_string());
            }
            c => {
                return Err(n.err(format!(
                    "{c}: keyway's connections_per_endpoint is between 1 and 64 (per core)"
                )))
            }
        }
    }
    Ok(())
}

/// Refuses a `redis_db` other than 0: keys would be read from database 0.
fn redis_db(pool: &Node) -> Result<(), ImportError> {
    if let Some(db) = pool.get("redis_db")? {
        let n = db.u64()?;
        if n != 0 {
            return Err(db.err(format!(
                "{n}: keyway's clients start in database 0 (they may SELECT {n}); keyway has no setting to start them elsewhere, so keys would be read from database 0"
            )));
        }
    }
    Ok(())
}

/// auto_eject_hosts, server_retry_timeout and server_failure_limit as
/// keyway's auto_eject, retry_timeout and failure_limit.
fn ejection(pool: &Node, cluster: &mut Section) -> Result<(), ImportError> {
    // Ejection maps one to one; the defaults are twemproxy's too (off,
    // 30 s, 2 failures), so only what the pool sets is written.
    if let Some(n) = pool.get("auto_eject_hosts")? {
        let on = n.bool()?;
        cluster.comment(format!(
            "twemproxy auto_eject_hosts: {on} ({}): a failing server leaves the ring and its keys go where nutcracker sends them.",
            n.at()
        ));
        cluster.set("auto_eject", on.to_string());
    }
    if let Some(n) = pool.get("server_retry_timeout")? {
        let ms = n.u64()?;
        if ms == 0 {
            return Err(n.err("0: keyway's retry_timeout must be positive"));
        }
        cluster.comment("twemproxy server_retry_timeout (milliseconds).");
        cluster.set_str("retry_timeout", &duration_text(Duration::from_millis(ms)));
    }
    if let Some(n) = pool.get("server_failure_limit")? {
        match n.u64()? {
            f @ 1..=1000 => {
                cluster.comment("twemproxy server_failure_limit.");
                cluster.set("failure_limit", f.to_string());
            }
            f => return Err(n.err(format!("{f}: keyway's failure_limit is between 1 and 1000"))),
        }
    }
    Ok(())
}

/// The pools not imported (keyway has one listener), in the trailer and
/// the notes, with how to import them.
fn other_pools(
    pools: &[(String, Node)],
    chosen: usize,
    doc: &mut Doc,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    for (i, (other, p)) in pools.iter().enumerate() {
        if i == chosen {
            continue;
        }
        let listen = p
            .get("listen")?
            .and_then(|l| l.scalar().ok())
            .unwrap_or_default();
        doc.trailer.comment(format!(
            "not imported: pool `{other}` ({}, listen {listen}) — keyway has one listener; `keyway import twemproxy --pool {other}` imports it.",
            p.at()
        ));
        notes.push(format!(
            "pool `{other}` ({}) not imported (one listener per keyway); use --pool {other} for it",
            p.at()
        ));
    }
    Ok(())
}

/// `host:port:weight [name]` as a keyway endpoint.
fn server(n: &Node) -> Result<String, ImportError> {
    let text = n.scalar()?;
    let bad = || n.err(format!("`{text}` is not `host:port:weight [name]`"));
    let (spec, name) = match text.trim().split_once(char::is_whitespace) {
        Some((spec, name)) => (spec, Some(name.trim())),
        None => (text.trim(), None),
    };
    if name.is_some_and(|n| n.contains(char::is_whitespace)) {
        return Err(bad());
    }
    if spec.starts_with('/') {
        return Err(n.err(format!(
            "`{text}`: a unix socket; keyway reaches servers over TCP only"
        )));
    }
    let (address, weight) = spec.rsplit_once(':').ok_or_else(bad)?;
    let (_, port) = address.rsplit_once(':').ok_or_else(bad)?;
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        return Err(bad());
    }
    let weight: u64 = weight.parse().map_err(|_| bad())?;
    if !(1..=10_000).contains(&weight) {
        // Weight 0 still counts in twemproxy's ketama (server count), so
        // leaving the server out would move keys.
        return Err(n.err(format!(
            "weight {weight}: keyway's weights are between 1 and 10000"
        )));
    }
    let mut pairs = vec![("address", string(address)), ("weight", weight.to_string())];
    if let Some(name) = name {
        pairs.push(("name", string(name)));
    }
    Ok(inline(&pairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LbPolicy};

    const BASE: &str = "alpha:
  listen: 127.0.0.1:22121
  hash: murmur
  hash_tag: \"{}\"
  distribution: ketama
  redis: true
  redis_auth: s3cret
  timeout: 400
  auto_eject_hosts: true
  server_retry_timeout: 30000
  server_failure_limit: 3
  server_connections: 2
  preconnect: true
  servers:
   - 127.0.0.1:7001:1
   - 127.0.0.1:7002:2 node-b
beta:
  listen: 127.0.0.1:22122
  redis: true
  servers:
   - 127.0.0.1:7003:1
";

    fn run(text: &str, opts: &Options) -> Result<Imported, ImportError> {
        import(text, "nutcracker.yml", opts)
    }

    /// Every import output must be a configuration keyway accepts.
    fn parsed(text: &str, opts: &Options) -> (Config, Imported) {
        let out = run(text, opts).unwrap_or_else(|e| panic!("{e}"));
        let c =
            Config::parse(&out.toml, "out.toml").unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
        (c, out)
    }

    fn refused(text: &str) -> String {
        run(text, &Options::default()).unwrap_err().to_string()
    }

    #[test]
    fn a_pool_becomes_proxy_cluster_and_route() {
        let (c, out) = parsed(BASE, &Options::default());
        assert_eq!(c.listen.to_string(), "127.0.0.1:22121");
        assert!(c.hashtags);
        assert_eq!(c.op_timeout, Duration::from_millis(400));
        assert_eq!(c.connect_timeout, Duration::from_millis(400));
        assert!(c.password.as_ref().unwrap().matches(b"s3cret"));
        let k = &c.clusters[0];
        assert_eq!(
            (k.name.as_str(), k.lb_policy, k.hash),
            ("alpha", LbPolicy::Ketama, KetamaHash::Murmur)
        );
        assert_eq!(k.password.as_deref(), Some("s3cret"));
        assert_eq!(k.connections_per_endpoint, 2);
        let eps: Vec<(&str, u32, &str)> = k
            .endpoints
            .iter()
            .map(|e| (e.address.as_str(), e.weight, e.ketama_name.as_str()))
            .collect();
        assert_eq!(
            eps,
            [
                ("127.0.0.1:7001", 1, "127.0.0.1:7001"),
                ("127.0.0.1:7002", 2, "node-b")
            ]
        );
        assert_eq!(c.catch_all, Some(0));
        let t = &out.toml;
        assert!(k.auto_eject, "{t}");
        assert_eq!(
            (k.retry_timeout, k.failure_limit),
            (Duration::from_secs(30), 3)
        );
        assert!(
            t.contains("# not imported: alpha.preconnect: true (nutcracker.yml:13)"),
            "{t}"
        );
        assert!(
            t.contains("# not imported: pool `beta` (nutcracker.yml:18, listen 127.0.0.1:22122)"),
            "{t}"
        );
        assert_eq!(out.notes.len(), 2);
        assert!(out.notes[1].contains("--pool beta"), "{:?}", out.notes);
    }

    #[test]
    fn pool_and_listen_options() {
        let opts = Options {
            select: Some("beta".into()),
            listen: Some("127.0.0.1:6400".into()),
        };
        let (c, out) = parsed(BASE, &opts);
        assert_eq!(c.listen.to_string(), "127.0.0.1:6400");
        // No hash_tag and no hash: whole keys, fnv1a_64, as twemproxy.
        assert!(!c.hashtags);
        assert_eq!(c.clusters[0].hash, KetamaHash::Fnv1a64);
        assert!(c.password.is_none());
        assert!(
            out.toml.contains("twemproxy listened on 127.0.0.1:22122"),
            "{}",
            out.toml
        );
        let e = run(
            BASE,
            &Options {
                select: Some("gamma".into()),
                listen: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "nutcracker.yml: no pool named `gamma` (pools: alpha, beta)"
        );
    }

    #[test]
    fn refusals_name_line_and_key() {
        assert_eq!(
            refused(&BASE.replace("ketama", "modula")),
            "nutcracker.yml:5: alpha.distribution: modula has no keyway equivalent (keyway places keys with ketama, twemproxy's `distribution: ketama`)"
        );
        let e = refused(&BASE.replace(
            "  redis: true\n  redis_auth",
            "  redis: false\n  redis_auth",
        ));
        assert!(
            e.starts_with("nutcracker.yml:6: alpha.redis: false: a memcached pool"),
            "{e}"
        );
        let e = refused(&BASE.replace("  redis: true\n  redis_auth", "  redis_auth"));
        assert!(
            e.starts_with("nutcracker.yml:2: alpha: `redis: true` is missing"),
            "{e}"
        );
        let e = refused(&BASE.replace("\"{}\"", "\"::\""));
        assert!(
            e.starts_with("nutcracker.yml:4: alpha.hash_tag: `::`"),
            "{e}"
        );
        let e = refused(&BASE.replace("\"{}\"", "{}"));
        assert!(e.contains("quoted"), "{e}");
        let e = refused(&BASE.replace("murmur", "sha1"));
        assert!(
            e.starts_with("nutcracker.yml:3: alpha.hash: `sha1` is not a twemproxy hash"),
            "{e}"
        );
        let e = refused(&BASE.replace("127.0.0.1:7002:2 node-b", "127.0.0.1:7002"));
        assert_eq!(e, "nutcracker.yml:16: alpha.servers[1]: `127.0.0.1:7002` is not `host:port:weight [name]`");
        let e = refused(&BASE.replace("127.0.0.1:7001:1", "127.0.0.1:7001:0"));
        assert!(
            e.starts_with("nutcracker.yml:15: alpha.servers[0]: weight 0"),
            "{e}"
        );
        let e = refused(&BASE.replace("  timeout: 400\n", "  timeout: 400\n  redis_db: 2\n"));
        assert!(
            e.starts_with(
                "nutcracker.yml:9: alpha.redis_db: 2: keyway's clients start in database 0"
            ),
            "{e}"
        );
        let e = refused(&BASE.replace("127.0.0.1:22121", "/tmp/nc.sock 0666"));
        assert!(e.contains("unix socket"), "{e}");
        let e = refused("alpha: [\n");
        assert!(
            e.starts_with("nutcracker.yml:") && e.contains("not valid YAML"),
            "{e}"
        );
        let e = refused("{}\n");
        assert!(e.contains("no pool"), "{e}");
    }
}
