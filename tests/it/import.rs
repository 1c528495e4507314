//! `keyway import`: a configuration running the real Envoy or the real
//! nutcracker is imported, keyway is started on the result, and every key
//! written through the old proxy is read back through keyway (so each is
//! where keyway looks for it). Bad inputs exit 1 with a line number.
use crate::common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const KEYS: usize = 10_000;

/// Plain keys and, one in four, keys sharing one of 50 {hashtags}.
fn key(i: usize) -> String {
    if i.is_multiple_of(4) {
        format!("{{tag{}}}:item:{i}", i % 50)
    } else {
        format!("key:{i}")
    }
}

/// SET every key (its own name as value) through the proxy on `port`.
fn write_keys(port: u16) {
    let mut c = Client::connect(port);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let mut p = Vec::new();
        for &i in chunk {
            let k = key(i);
            p.extend(encode(&[b"SET", k.as_bytes(), k.as_bytes()]));
        }
        c.send_raw(&p);
        for &i in chunk {
            assert_eq!(c.read_reply().unwrap(), b"+OK\r\n", "SET {}", key(i));
        }
    }
}

/// How many keys GET finds, with their value, through the proxy on `port`.
fn found_keys(port: u16) -> usize {
    let mut c = Client::connect(port);
    let mut found = 0;
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
        let mut p = Vec::new();
        for &i in chunk {
            p.extend(encode(&[b"GET", key(i).as_bytes()]));
        }
        c.send_raw(&p);
        for &i in chunk {
            if c.read_reply().unwrap() == bulk(&key(i)).as_bytes() {
                found += 1;
            }
        }
    }
    found
}

fn keyway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(args)
        .output()
        .expect("run keyway")
}

/// `keyway import`, its output written to `out`; returns stderr.
fn import(what: &str, file: &Path, extra: &[&str], out: &Path) -> String {
    let mut args = vec!["import", what, file.to_str().unwrap()];
    args.extend(extra);
    let o = keyway(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "keyway import {what}: {stderr}");
    std::fs::write(out, &o.stdout).unwrap();
    let check = keyway(&["check", "--config", out.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "keyway check: {}\n{}",
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    stderr
}

/// keyway running `config`, listening on `port`.
fn start_keyway(config: &Path, port: u16, log: &Path) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_keyway"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start keyway");
    let p = Proc(child);
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "keyway did not start: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    p
}

#[test]
fn envoy_ring_hash_import_finds_every_key() {
    let backends: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let refs: Vec<&Redis> = backends.iter().collect();
    let weights = [1, 3, 1, 2, 1];
    let port = free_port();
    let yaml = format!(
        "admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }}\n{}",
        free_port(),
        envoy_redis_yaml(
            port,
            ", enable_command_stats: true",
            "RING_HASH",
            "    ring_hash_lb_config: { minimum_ring_size: 1024 }",
            &refs,
            &weights,
        )
    );
    let dir = scratch_dir("import-envoy");
    let conf = dir.join("envoy.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let envoy = start_envoy(&conf, port);
    write_keys(port);
    let sizes = dbsizes(&refs);
    assert_eq!(sizes.iter().sum::<i64>(), KEYS as i64, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");

    let out = dir.join("keyway.toml");
    let notes = import("envoy", &conf, &[], &out);
    assert!(notes.contains("imported listener `redis`"), "{notes}");
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(
        toml.contains(&format!("listen = \"127.0.0.1:{port}\""))
            && toml.contains("hashtags = true"),
        "{toml}"
    );
    assert!(toml.contains("# not imported: admin:"), "{toml}");
    // The migration: Envoy stops, keyway takes its port.
    drop(envoy);
    let _keyway = start_keyway(&out, port, &dir.join("keyway.log"));
    let found = found_keys(port);
    println!(
        "envoy import: {KEYS} keys written through Envoy (per backend {sizes:?}), {found} found through keyway"
    );
    assert_eq!(found, KEYS);
}

#[test]
fn twemproxy_ketama_import_finds_every_key() {
    let backends: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let refs: Vec<&Redis> = backends.iter().collect();
    let weights = [1, 2, 1, 3, 1];
    // Some servers named: ketama hashes the name instead of host:port.
    let names = ["node-a", "", "node-c", "", "node-e"];
    let servers: String = backends
        .iter()
        .zip(weights)
        .zip(names)
        .map(|((b, w), n)| format!("   - {}:{w} {n}\n", b.addr()))
        .collect();
    let port = free_port();
    let other = free_port();
    let yaml = format!(
        "alpha:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  hash_tag: \"{{}}\"\n  distribution: ketama\n  redis: true\n  timeout: 2000\n  auto_eject_hosts: false\n  server_retry_timeout: 2000\n  server_failure_limit: 1\n  servers:\n{servers}beta:\n  listen: 127.0.0.1:{other}\n  hash: md5\n  distribution: ketama\n  redis: true\n  servers:\n   - {}:1\n",
        backends[0].addr()
    );
    let dir = scratch_dir("import-nutcracker");
    let conf = dir.join("nutcracker.yml");
    std::fs::write(&conf, yaml).unwrap();
    let _nc = start_nutcracker(&conf, port);
    write_keys(port);
    let sizes = dbsizes(&refs);
    assert_eq!(sizes.iter().sum::<i64>(), KEYS as i64, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");

    // keyway beside nutcracker, on a port of its own.
    let kport = free_port();
    let out = dir.join("keyway.toml");
    let listen = format!("127.0.0.1:{kport}");
    let notes = import("twemproxy", &conf, &["--listen", &listen], &out);
    assert!(
        notes.contains("imported pool `alpha`") && notes.contains("--pool beta"),
        "{notes}"
    );
    let toml = std::fs::read_to_string(&out).unwrap();
    assert!(
        toml.contains("name = \"node-c\"") && toml.contains("# not imported: pool `beta`"),
        "{toml}"
    );
    let _keyway = start_keyway(&out, kport, &dir.join("keyway.log"));
    let found = found_keys(kport);
    println!(
        "twemproxy import: {KEYS} keys written through nutcracker (per backend {sizes:?}), {found} found through keyway"
    );
    assert_eq!(found, KEYS);
}

#[test]
fn bad_inputs_exit_1_with_the_line() {
    let dir = scratch_dir("import-bad");
    let envoy = dir.join("envoy.yaml");
    std::fs::write(
        &envoy,
        "static_resources:\n  listeners:\n  - name: redis\n    address: { socket_address: { address: 127.0.0.1, port_value: 6379 } }\n    filter_chains:\n    - filters:\n      - name: envoy.filters.network.redis_proxy\n        typed_config: { stat_prefix: r, settings: { op_timeout: 1s }, prefix_routes: { catch_all_route: { cluster: c } } }\n  clusters:\n  - name: c\n    lb_policy: LEAST_REQUEST\n    load_assignment: { endpoints: [] }\n",
    )
    .unwrap();
    let nc = dir.join("nutcracker.yml");
    std::fs::write(
        &nc,
        "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  distribution: modula\n  servers:\n   - 127.0.0.1:6379:1\n",
    )
    .unwrap();
    let broken = dir.join("broken.yml");
    std::fs::write(&broken, "alpha:\n  servers: [\n").unwrap();
    let cases = [
        (
            "envoy",
            &envoy,
            format!(
                "keyway: {}:11: clusters[0].lb_policy: LEAST_REQUEST has no keyway equivalent",
                envoy.display()
            ),
        ),
        (
            "twemproxy",
            &nc,
            format!(
                "keyway: {}:4: alpha.distribution: modula has no keyway equivalent",
                nc.display()
            ),
        ),
        (
            "twemproxy",
            &broken,
            format!("keyway: {}:", broken.display()),
        ),
        (
            "envoy",
            &dir.join("missing.yaml"),
            "cannot read".to_string(),
        ),
    ];
    for (what, file, want) in cases {
        let o = keyway(&["import", what, file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{what} {}: {stderr}",
            file.display()
        );
        assert!(
            o.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert!(stderr.contains(&want), "want {want:?} in {stderr}");
    }
}
