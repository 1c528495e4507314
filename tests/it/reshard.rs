//! Online resharding of ring clusters (`reshard = "migrate"`, issue 20):
//! a reload that adds, removes or reweighs endpoints moves each key to its
//! new owner before anything touches it, under load, across cores, and no
//! acknowledged write is lost.

use crate::acked::{tag, Load, COUNTERS};
use crate::common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Two cores; a generous op_timeout: this machine is shared, and a test
/// run on many backends at once must not read a slow reply as a failure.
const PROXY: &str = "cores = 2\nop_timeout = \"10s\"";
const KEYS: usize = 3000;

fn ketama(backends: &[&Redis], weights: &[(usize, u32)]) -> String {
    ketama_with(backends, weights, "migrate")
}

fn ketama_with(backends: &[&Redis], weights: &[(usize, u32)], reshard: &str) -> String {
    ring_toml("ketama", backends, weights, reshard)
}

fn ring_toml(policy: &str, backends: &[&Redis], weights: &[(usize, u32)], reshard: &str) -> String {
    let eps: Vec<String> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| match weights.iter().find(|(w, _)| *w == i) {
            Some((_, w)) => format!("{{ address = \"{}\", weight = {w} }}", b.addr()),
            None => format!("\"{}\"", b.addr()),
        })
        .collect();
    format!(
        "[[clusters]]\nname = \"main\"\nlb_policy = \"{policy}\"\nreshard = \"{reshard}\"\nendpoints = [{}]\n\n[routes]\ncatch_all = \"main\"\n",
        eps.join(", ")
    )
}

/// The keyway config file with `clusters` in place of its clusters.
fn rewrite(k: &Keyway, clusters: &str) {
    let text = std::fs::read_to_string(&k.config).expect("config");
    let start = text.find("[[clusters]]").expect("clusters");
    let end = text.find("[admin]").expect("admin");
    let next = format!("{}{clusters}\n\n{}", &text[..start], &text[end..]);
    std::fs::write(&k.config, next).expect("write config");
}

/// Sets `k:0` .. `k:{keys-1}` to `value(i)` through `k`, pipelined.
fn load_keys(k: &Keyway, keys: usize, value: impl Fn(usize) -> String) {
    let mut c = k.client();
    let mut pipeline = Vec::new();
    for i in 0..keys {
        pipeline.extend(encode(&[
            b"SET",
            format!("k:{i}").as_bytes(),
            value(i).as_bytes(),
        ]));
    }
    c.send_raw(&pipeline);
    for _ in 0..keys {
        assert_eq!(c.read_reply().expect("reply"), b"+OK\r\n");
    }
}

/// `k:{i}` reads `v{i}` through `c`, for every `step`-th `i` below `keys`
/// (what `load_keys` wrote).
fn assert_loaded(c: &mut Client, keys: usize, step: usize) {
    for i in (0..keys).step_by(step) {
        assert_eq!(
            c.cmd(&["GET", &format!("k:{i}")]),
            bulk(&format!("v{i}")),
            "k:{i}"
        );
    }
}

/// Every key lives on exactly one backend; how many each holds. Only
/// once nothing moves: a key moved between two backends' KEYS is seen on
/// both.
fn each_key_once(backends: &[&Redis]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per = Vec::new();
    for keys in backends.iter().map(|b| keys_on(b)) {
        per.push(keys.len());
        for k in keys {
            *seen.entry(k).or_insert(0) += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "keys on two backends: {twice:?}");
    per
}

/// Waits until the mover has scanned every old owner in both rounds and
/// the new placement serves alone (the reshard's file is gone).
fn wait_reshard_done(k: &Keyway) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let kept = k.config.with_file_name("keyway.toml.reshard");
    loop {
        let stats = admin_get(k.admin_port, "/stats");
        let done = stats.contains("\"state\":\"done\"") && stats.contains("\"round\":\"falling\"");
        if done && !kept.exists() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no end: {stats}\n{}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `policy`'s cluster of the first five of `backends`, changed by `change`
/// under load.
fn reshard_under_load(
    policy: &str,
    change: impl FnOnce(&[&Redis]) -> String,
    backends: &[&Redis],
) -> Keyway {
    let first = &backends[..5];
    let k = Keyway::start(PROXY, &ring_toml(policy, first, &[], "migrate"));
    let mut c = k.client();
    for i in 0..KEYS {
        assert_eq!(
            c.cmd(&["SET", &format!("k:{i}"), &format!("v{i}")]),
            "+OK\r\n"
        );
    }
    c.cmd(&["SET", "ttl:k", "t", "EX", "600"]);
    let load = Load::start(&[k.port], 4);
    std::thread::sleep(Duration::from_millis(500));
    rewrite(&k, &change(backends));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}\n{}", k.log());
    assert!(k.log().contains("reshard started"), "{}", k.log());
    // The same file again: the reshard goes on.
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "the same file again keeps it going: {body}");
    std::thread::sleep(Duration::from_millis(800));
    load.finish(&k);
    // The mover moved what no client touched; the new placement then
    // serves alone.
    wait_reshard_done(&k);
    // What the mover did is in /stats and /metrics.
    let metrics = admin_get(k.admin_port, "/metrics");
    assert!(metrics.contains("keyway_reshard_moving 0"), "{metrics}");
    let moved: u64 = (metrics.lines())
        .filter(|l| l.starts_with("keyway_reshard_keys_moved_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(moved > 0, "{metrics}");
    let stats = admin_get(k.admin_port, "/stats");
    assert!(stats.contains("\"passed\":true"), "{stats}");
    let per = each_key_once(backends);
    assert!(per.iter().sum::<usize>() >= KEYS + COUNTERS, "{per:?}");
    assert_loaded(&mut c, KEYS, 1);
    let ttl: i64 = c
        .cmd(&["TTL", "ttl:k"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!((500..=600).contains(&ttl), "TTL {ttl}");
    k
}

#[test]
fn adding_an_endpoint_under_load_loses_no_write() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = reshard_under_load("ketama", |b| ketama(b, &[]), &backends);
    // The new endpoint took its share.
    let per = each_key_once(&backends);
    assert!(per[5] * 30 > per.iter().sum::<usize>(), "{per:?}");
    // Once done, the cluster can be resharded again: back to five.
    rewrite(&k, &ketama(&backends[..5], &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    wait_reshard_done(&k);
    assert_eq!(
        each_key_once(&backends)[5],
        0,
        "the sixth gave every key back"
    );
    let mut c = k.client();
    assert_loaded(&mut c, KEYS, 1);
}

/// The same with ring_hash (Envoy's placement): one endpoint removed and
/// another reweighed.
#[test]
fn removing_and_reweighing_endpoints_under_load_loses_no_write() {
    let rs: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let change =
        |b: &[&Redis]| ring_toml("ring_hash", &[b[0], b[1], b[3], b[4]], &[(0, 3)], "migrate");
    let _k = reshard_under_load("ring_hash", change, &backends);
    // The removed endpoint gave up every key.
    assert_eq!(each_key_once(&backends)[2], 0);
}

/// The same with maglev (Envoy's other consistent placement): a sixth
/// endpoint added.
#[test]
fn growing_a_maglev_cluster_under_load_loses_no_write() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let _k = reshard_under_load(
        "maglev",
        |b| ring_toml("maglev", b, &[], "migrate"),
        &backends,
    );
    assert!(each_key_once(&backends)[5] > 0, "the sixth took nothing");
}

/// A transaction queued before a reshard runs after it where its keys
/// live now, with their values: EXEC moves them first.
#[test]
fn a_transaction_queued_before_the_reshard_finds_its_keys() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start(PROXY, &ketama(&backends[..5], &[]));
    let tags = 100;
    let key = |i: usize| format!("{}:n", tag(i));
    let mut clients: Vec<Client> = (0..tags).map(|_| k.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.cmd(&["SET", &key(i), "10"]), "+OK\r\n");
        assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
        assert_eq!(c.cmd(&["INCR", &key(i)]), "+QUEUED\r\n");
    }
    rewrite(&k, &ketama(&backends, &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.cmd(&["EXEC"]), "*1\r\n:11\r\n", "{}", key(i));
    }
    wait_reshard_done(&k);
    for i in 0..tags {
        assert_eq!(k.client().cmd(&["GET", &key(i)]), bulk("11"));
    }
    // Some of the tags moved to the new endpoint (else this test shows
    // nothing).
    let per = each_key_once(&backends);
    assert!(per[5] > 0, "{per:?}\n{}", k.log());
}

/// keyway killed in the middle of a reshard resumes it when it starts
/// again: no key is lost, the reshard ends, and its file goes.
#[test]
fn a_reshard_interrupted_by_a_crash_resumes_and_loses_nothing() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let mut k = Keyway::start(PROXY, &ketama(&backends[..5], &[]));
    let keys = 20_000;
    load_keys(&k, keys, |i| format!("v{i}"));
    rewrite(&k, &ketama(&backends, &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let kept = k.config.with_file_name("keyway.toml.reshard");
    assert!(kept.exists(), "the reshard is not kept: {}", k.log());
    k.crash_and_restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !k.log().contains("resuming the reshard") {
        assert!(std::time::Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = k.client();
    assert_loaded(&mut c, keys, 7);
    wait_reshard_done(&k);
    assert!(!kept.exists(), "the reshard's file stayed");
    let per = each_key_once(&backends);
    assert_eq!(per.iter().sum::<usize>(), keys, "{per:?}");
    assert_loaded(&mut c, keys, 1);
}

fn keyway_reshard(action: &str, k: &Keyway) -> (bool, String) {
    keyway_reshard_over(action, &[format!("127.0.0.1:{}", k.admin_port)])
}

fn scanned(k: &Keyway) -> i64 {
    let text = admin_get(k.admin_port, "/reshard");
    text.match_indices("\"scanned\":")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse::<i64>().unwrap()
        })
        .sum()
}

/// `keyway reshard status|pause|resume` against a running reshard: a paused
/// mover scans nothing more, clients still move what they touch, and it
/// ends once resumed.
#[test]
fn the_mover_pauses_and_resumes_on_command() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start(PROXY, &ketama(&backends[..5], &[]));
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(!ok && out.contains("no reshard is moving keys"), "{out}");
    let keys = 30_000;
    load_keys(&k, keys, |_| "v".into());
    let mut c = k.client();
    rewrite(&k, &ketama(&backends, &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(ok && out.contains("reshard paused"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    let at_pause = scanned(&k);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(scanned(&k), at_pause, "the mover went on while paused");
    assert!(at_pause < keys as i64, "it finished before the pause");
    let (ok, out) = keyway_reshard("status", &k);
    assert!(ok && out.contains("\"state\":\"paused\""), "{out}");
    // Clients still find (and move) their keys meanwhile.
    assert_eq!(c.cmd(&["GET", "k:17"]), bulk("v"));
    let (ok, out) = keyway_reshard("resume", &k);
    assert!(ok && out.contains("reshard moving"), "{out}");
    wait_reshard_done(&k);
    let (_, out) = keyway_reshard("status", &k);
    assert!(out.contains("\"state\":\"done\""), "{out}");
    assert_eq!(each_key_once(&backends).iter().sum::<usize>(), keys);
}

/// `keyway reshard action` with `args`, after writing `config` where the
/// `--config` among them names (a copy of a keyway config with its
/// clusters replaced).
fn keyway_reshard_with(
    action: &str,
    admins: &[String],
    args: &[&str],
    clusters: &str,
) -> (bool, String) {
    let file = args[1];
    let text = format!("[proxy]\nlisten = \"127.0.0.1:1\"\n\n{clusters}\n");
    std::fs::write(file, text).expect("write --config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["reshard", action, "--instances", &admins.join(",")])
        .args(args)
        .output()
        .expect("keyway reshard");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn keyway_reshard_over(action: &str, admins: &[String]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["reshard", action, "--instances", &admins.join(",")])
        .output()
        .expect("keyway reshard");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Two keyways (two cores each) in front of `backends` placed as `before`,
/// clients writing the same keys through both, resharded to `after`:
/// `keyway reshard start` holds both before either moves a key, and no
/// acknowledged write is lost. A plain reload may not start a coordinated
/// reshard, and an instance that does not hold calls it off for all.
/// Returns the first keyway, its reshard done.
/// (`other`: another new placement, which an instance's file says by
/// mistake.)
fn fleet_reshard(backends: &[&Redis], before: &str, after: &str, other: &str) -> Keyway {
    let a = Keyway::start(PROXY, before);
    let b = Keyway::start(PROXY, before);
    load_keys(&a, KEYS, |i| format!("v{i}"));
    let load = Load::start(&[a.port, b.port], 6);
    std::thread::sleep(Duration::from_millis(500));
    rewrite(&a, after);
    rewrite(&b, after);
    let (status, body) = admin_request(a.admin_port, "POST", "/reload");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("keyway reshard start"), "{body}");
    // Instances whose files place keys differently, or unlike the file
    // the operator names: nobody moves a key.
    rewrite(&b, other);
    let (ok, out) = keyway_reshard_over("start", &admins(&[&a, &b]));
    assert!(!ok && out.contains("place keys differently"), "{out}");
    rewrite(&b, after);
    let (ok, out) = keyway_reshard_with(
        "start",
        &admins(&[&a, &b]),
        &[
            "--config",
            b.config.with_file_name("old.toml").to_str().unwrap(),
        ],
        before,
    );
    assert!(!ok && out.contains("place keys differently"), "{out}");
    assert_eq!(admin_get(a.admin_port, "/reshard").trim(), "null");
    // One instance that does not answer: nobody moves a key.
    let mut with_a_dead_one = admins(&[&a]);
    with_a_dead_one.push(format!("127.0.0.1:{}", free_port()));
    let (ok, out) = keyway_reshard_over("start", &with_a_dead_one);
    assert!(!ok && out.contains("did not hold"), "{out}");
    assert!(out.contains("reshard release: generation"), "{out}");
    assert_eq!(admin_get(a.admin_port, "/reshard").trim(), "null");
    // Both: held, then moving.
    let (ok, out) = keyway_reshard_over("start", &admins(&[&a, &b]));
    assert!(ok, "{out}\n{}\n{}", a.log(), b.log());
    // Both rounds, each held then migrated over both.
    assert_eq!(
        out.matches("reshard migrate: generation").count(),
        4,
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(800));
    let per = fleet_ends(load, &[&a, &b], backends, KEYS, 3);
    assert!(per.iter().sum::<usize>() >= KEYS, "{per:?}");
    a
}

/// The keys `b` holds.
fn keys_on(b: &Redis) -> Vec<String> {
    let reply = b.client().cmd(&["KEYS", "*"]);
    (reply.split("\r\n"))
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_string)
        .collect()
}

/// Where `keyway route` over `k`'s configuration file places each of `keys`
/// (`host:port`).
fn routes(k: &Keyway, keys: &[String]) -> Vec<String> {
    routed(k, keys).into_iter().map(|(_, at)| at).collect()
}

/// Every key on `backends` lives where the new ring places it: where
/// `keyway route` over `k`'s configuration says, and where the real peer
/// proxy listening on `peer_port` (configured with the new ring) finds it.
/// So no old owner holds a moved key.
fn placed_by_the_new_ring(k: &Keyway, backends: &[&Redis], peer_port: u16) {
    let mut peer = Client::connect(peer_port);
    let mut checked = 0;
    for b in backends {
        let keys = keys_on(b);
        for (key, at) in keys.iter().zip(routes(k, &keys)) {
            assert_eq!(at, b.addr(), "keyway route {key}");
        }
        for key in &keys {
            assert_eq!(
                peer.cmd(&["EXISTS", key]),
                ":1\r\n",
                "the peer places {key} elsewhere"
            );
            checked += 1;
        }
    }
    assert!(checked > KEYS, "{checked} keys");
}

/// Five servers in a ketama cluster and a sixth added, through two
/// keyways; every key then lives where the real nutcracker places it.
#[test]
fn a_fleet_adds_an_endpoint_and_loses_no_write() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let five = ketama_with(&backends[..5], &[], "coordinated");
    let six = ketama_with(&backends, &[], "coordinated");
    let other = ketama_with(&backends, &[(0, 2)], "coordinated");
    let a = fleet_reshard(&backends, &five, &six, &other);
    assert!(each_key_once(&backends)[5] > 0, "the sixth took nothing");
    let (_nutcracker, port) = nutcracker_over(&backends);
    placed_by_the_new_ring(&a, &backends, port);
}

/// The real nutcracker in front of `backends` as one ketama pool (placed
/// as keyway's ketama places them), and its port.
fn nutcracker_over(backends: &[&Redis]) -> (Proc, u16) {
    let dir = scratch_dir("reshard-nutcracker");
    let port = free_port();
    let servers: String = (backends.iter())
        .map(|b| format!("   - {}:1\n", b.addr()))
        .collect();
    let conf = dir.join("nutcracker.yml");
    std::fs::write(
        &conf,
        format!(
            "pool:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  hash_tag: \"{{}}\"\n  distribution: ketama\n  redis: true\n  auto_eject_hosts: false\n  timeout: 2000\n  servers:\n{servers}"
        ),
    )
    .expect("nutcracker config");
    (start_nutcracker(&conf, port), port)
}

/// Five servers in a ring_hash cluster, one removed and another
/// reweighed, through two keyways; every key then lives where the real
/// Envoy places it, and the removed one holds none.
#[test]
fn a_fleet_removes_and_reweighs_endpoints_and_loses_no_write() {
    let rs: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let five = ring_toml("ring_hash", &backends, &[], "coordinated");
    let kept = [backends[0], backends[1], backends[3], backends[4]];
    let four = ring_toml("ring_hash", &kept, &[(0, 3)], "coordinated");
    let other = ring_toml("ring_hash", &kept, &[(0, 2)], "coordinated");
    let a = fleet_reshard(&backends, &five, &four, &other);
    assert_eq!(each_key_once(&backends)[2], 0, "the removed one kept keys");
    let port = free_port();
    let lb = "    ring_hash_lb_config: { minimum_ring_size: 1024 }";
    let yaml = envoy_redis_yaml(port, "", "RING_HASH", lb, &kept, &[3, 1, 1, 1]);
    let dir = scratch_dir("reshard-envoy");
    let conf = dir.join("envoy.yaml");
    std::fs::write(&conf, yaml).expect("envoy config");
    let _envoy = start_envoy(&conf, port);
    placed_by_the_new_ring(&a, &kept, port);
}

/// A reshard aborted halfway, under load: the configuration file places
/// the cluster as before again and `keyway reshard abort` moves every key
/// back, those clients had moved and those the mover had, with nothing
/// lost; the abort survives a crash like a reshard does. `start` refuses
/// an abort and `abort` anything else.
#[test]
fn an_aborted_reshard_moves_every_key_back() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let mut k = Keyway::start(PROXY, &ketama(&backends[..5], &[]));
    let (ok, out) = keyway_reshard("abort", &k);
    assert!(!ok && out.contains("put its endpoints"), "{out}");
    let keys = 30_000;
    load_keys(&k, keys, |i| format!("v{i}"));
    let load = Load::start(&[k.port], 4);
    rewrite(&k, &ketama(&backends, &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(ok, "{out}");
    // Clients move what they touch; the mover moved some before its pause.
    std::thread::sleep(Duration::from_millis(700));
    // Clients still move keys: one moved between two backends' KEYS would
    // be seen on both, so only the sixth is read here.
    assert!(!keys_on(backends[5]).is_empty(), "nothing moved yet");
    rewrite(&k, &ketama(&backends[..5], &[]));
    let (status, body) = admin_request(k.admin_port, "POST", "/reshard/hold");
    assert!(status == 409 && body.contains("that aborts it"), "{body}");
    // The abort's phases as `keyway reshard abort` takes them (the command
    // waits for the end: here its mover is paused on the way).
    let (status, body) = admin_request(k.admin_port, "POST", "/reshard/abort");
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin_request(k.admin_port, "POST", "/reshard/migrate");
    assert!(status == 200 && body.contains("generation 3"), "{body}");
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(500));
    load.finish(&k);
    // Killed while moving keys back, it goes on moving them back.
    k.crash_and_restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !k.log().contains("resuming the reshard") {
        assert!(std::time::Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_reshard_done(&k);
    assert!(!k.config.with_file_name("keyway.toml.reshard").exists());
    let per = each_key_once(&backends);
    assert_eq!(per[5], 0, "the sixth gave every key back: {per:?}");
    let mut c = k.client();
    assert_loaded(&mut c, keys, 1);
}

/// The steps of `keyway reshard start` taken by hand: every one of `ks`
/// holds, then every one migrates.
/// The admin endpoints of `fleet`, as `keyway reshard --instances` takes them.
fn admins(fleet: &[&Keyway]) -> Vec<String> {
    fleet
        .iter()
        .map(|k| format!("127.0.0.1:{}", k.admin_port))
        .collect()
}

/// `keyway reshard <verb>` over `fleet`, which it takes to the end of its
/// reshard: it succeeds and says every instance is past the falling round.
fn reshard_ends_over(verb: &str, fleet: &[&Keyway]) {
    let (ok, out) = keyway_reshard_over(verb, &admins(fleet));
    let logs: Vec<String> = fleet.iter().map(|k| k.log()).collect();
    assert!(ok, "{out}\n{}", logs.join("\n"));
    assert!(
        out.contains("every instance has moved the keys of the falling round"),
        "{out}"
    );
}

/// The end of a fleet's reshard under `load`: the clients stop (every
/// acknowledged write reads back through the first keyway), each keyway
/// finishes both rounds and serves the `keys` values loaded (`step`'s).
/// Returns the keys each backend holds, each key on one.
fn fleet_ends(
    load: Load,
    fleet: &[&Keyway],
    backends: &[&Redis],
    keys: usize,
    step: usize,
) -> Vec<usize> {
    load.finish(fleet[0]);
    for k in fleet {
        wait_reshard_done(k);
    }
    let per = each_key_once(backends);
    for k in fleet {
        assert_loaded(&mut k.client(), keys, step);
    }
    per
}

/// Every keyway of `ks` enters reshard `phase` (`/reshard/hold`, ...).
fn enter_phase(ks: &[&Keyway], phase: &str) {
    for k in ks {
        let (status, body) = admin_request(k.admin_port, "POST", phase);
        assert_eq!(status, 200, "{body}");
    }
}

/// The steps of `keyway reshard start`: all hold, then all migrate.
fn hold_and_migrate(ks: &[&Keyway]) {
    enter_phase(ks, "/reshard/hold");
    enter_phase(ks, "/reshard/migrate");
}

fn wait_log(k: &Keyway, text: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !k.log().contains(text) {
        assert!(std::time::Instant::now() < deadline, "{}", k.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fleet's keyway killed in the hold phase holds again when it restarts
/// (it cannot know what the fleet decided), and the fleet then releases:
/// nothing moved. One killed while keys move carries on moving them. No
/// acknowledged write is lost either way (clients of both, those of the
/// killed one connecting again), and every key ends where the real
/// nutcracker places it.
#[test]
fn a_fleet_member_killed_in_hold_or_migrate_loses_nothing() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let five = ketama_with(&backends[..5], &[], "coordinated");
    let a = Keyway::start(PROXY, &five);
    let mut b = Keyway::start(PROXY, &five);
    let both = admins(&[&a, &b]);
    let keys = 20_000;
    load_keys(&a, keys, |i| format!("v{i}"));
    // Clients of both: those of the one killed connect again, and what it
    // may have run without answering counts as possible.
    let load = Load::start(&[a.port, b.port], 6);
    let six = ketama_with(&backends, &[], "coordinated");
    rewrite(&a, &six);
    rewrite(&b, &six);
    // The first phase of `keyway reshard start`, then b dies.
    enter_phase(&[&a, &b], "/reshard/hold");
    b.crash_and_restart();
    wait_log(&b, "holds again");
    let (ok, out) = keyway_reshard_over("release", &both);
    assert!(ok, "{out}\n{}", b.log());
    assert_eq!(each_key_once(&backends)[5], 0, "a key moved");
    // Now both hold and migrate (the steps of `keyway reshard start`), and
    // b dies while keys move; `start` again picks up where the fleet is.
    hold_and_migrate(&[&a, &b]);
    b.crash_and_restart();
    wait_log(&b, "resuming the reshard");
    // (The clients of `a` waited out most of the holds: give them time.)
    std::thread::sleep(Duration::from_millis(1000));
    reshard_ends_over("start", &[&a, &b]);
    let per = fleet_ends(load, &[&a, &b], &backends, keys, 5);
    assert!(per[5] > 0, "{per:?}");
    assert!(per.iter().sum::<usize>() >= keys, "{per:?}");
    let (_nutcracker, port) = nutcracker_over(&backends);
    placed_by_the_new_ring(&a, &backends, port);
}

/// A new owner slow to answer (a big key restoring; here DEBUG SLEEP):
/// a client touching a key that moves there gets an error within its op
/// timeout, and the mover, whose MIGRATE waits longer, moves every key
/// without an error.
#[test]
fn a_slow_new_owner_fails_clients_in_time_and_not_the_mover() {
    let mut rs: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    rs.push(Redis::start_with(
        free_port(),
        &["--enable-debug-command", "local"],
    ));
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start(
        "cores = 2\nop_timeout = \"300ms\"",
        &ketama(&backends[..5], &[]),
    );
    let keys = 3000;
    load_keys(&k, keys, |i| format!("v{i}"));
    rewrite(&k, &ketama(&backends, &[]));
    let sixth = rs[5].port;
    // A key that moves to the sixth.
    let names: Vec<String> = (0..keys).map(|i| format!("k:{i}")).collect();
    let to_sixth = (names.iter().zip(routes(&k, &names)))
        .find(|(_, at)| *at == rs[5].addr())
        .map(|(key, _)| key.clone())
        .expect("a key moving to the sixth");
    let sleeper = std::thread::spawn(move || {
        Client::connect(sixth).cmd(&["DEBUG", "SLEEP", "2"]);
    });
    std::thread::sleep(Duration::from_millis(100));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    // Its client hears in time (two MIGRATEs of 300 ms) that the key
    // could not move, and the command did not run.
    let asked = std::time::Instant::now();
    let reply = k.client().cmd(&["GET", &to_sixth]);
    let waited = asked.elapsed();
    sleeper.join().expect("sleeper");
    assert!(reply.contains("could not move"), "{reply}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    wait_reshard_done(&k);
    let stats = admin_get(k.admin_port, "/reshard");
    assert!(!stats.contains("\"errors\":1"), "{stats}");
    assert!(stats.matches("\"errors\":0").count() == 5, "{stats}");
    let per = each_key_once(&backends);
    assert_eq!(per.iter().sum::<usize>(), keys, "{per:?}");
    assert!(per[5] > 0, "{per:?}");
    let mut c = k.client();
    assert_loaded(&mut c, keys, 1);
}

/// An old owner that dies while keys move: the mover counts the error and
/// keeps trying it, the others' keys go on moving and being served, a
/// client whose key would move from it gets an error in time, and once it
/// is back (it persisted its keys) the reshard ends with nothing lost.
#[test]
fn an_old_owner_dying_mid_reshard_stalls_only_its_keys() {
    let mut rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    rs[0] = Redis::start_with(
        free_port(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let k = Keyway::start(
        "cores = 2\nop_timeout = \"500ms\"",
        &ketama(&rs.iter().take(5).collect::<Vec<_>>(), &[]),
    );
    let keys = 20_000;
    load_keys(&k, keys, |i| format!("v{i}"));
    let names: Vec<String> = (0..keys).map(|i| format!("k:{i}")).collect();
    let before = routes(&k, &names);
    rewrite(&k, &ketama(&rs.iter().collect::<Vec<_>>(), &[]));
    let after = routes(&k, &names);
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(ok, "{out}");
    let dead = rs[0].addr();
    rs[0].kill();
    let (ok, out) = keyway_reshard("resume", &k);
    assert!(ok, "{out}");
    // The mover counts the dead one's failure and goes on with the others.
    let errors_of_dead = || {
        let status = admin_get(k.admin_port, "/reshard");
        let mine = &status[status
            .find(&format!("\"endpoint\":\"{dead}\""))
            .expect("dead")..];
        let errors = &mine[mine.find("\"errors\":").expect("errors") + 9..];
        let end = errors.find(|c: char| !c.is_ascii_digit()).expect("end");
        errors[..end].parse::<u64>().expect("a number")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while errors_of_dead() == 0 {
        assert!(std::time::Instant::now() < deadline, "no error counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = admin_get(k.admin_port, "/reshard");
        if status.matches("\"passed\":true").count() == 4 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = k.client();
    // A key of another old owner, moving: served.
    let (i, _) = (0..keys)
        .map(|i| (i, (&before[i], &after[i])))
        .find(|(_, (b, a))| **b != dead && b != a)
        .expect("a key moving from another owner");
    assert_eq!(c.cmd(&["GET", &names[i]]), bulk(&format!("v{i}")));
    // A key moving from the dead one: an error, in time.
    let (i, _) = (0..keys)
        .map(|i| (i, (&before[i], &after[i])))
        .find(|(_, (b, a))| **b == dead && b != a)
        .expect("a key moving from the dead one");
    refused_in_time(&mut c, &["GET", &names[i]]);
    assert!(!admin_get(k.admin_port, "/reshard").contains("\"state\":\"done\""));
    back_and_whole(&k, &mut rs, 0, &names);
}

/// `args` through `c` is refused (-ERR) within 3 s: a key whose move
/// cannot be made, its command not run.
fn refused_in_time(c: &mut Client, args: &[&str]) {
    let asked = std::time::Instant::now();
    let reply = c.cmd(args);
    assert!(reply.starts_with("-ERR"), "{args:?}: {reply}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}

/// Server `dead` of `rs` back (it persisted its keys): the reshard ends,
/// every key lives on one server and `names` read back as `load_keys`
/// wrote them. Keys per server.
fn back_and_whole(k: &Keyway, rs: &mut [Redis], dead: usize, names: &[String]) -> Vec<usize> {
    rs[dead].restart();
    wait_reshard_done(k);
    let backends: Vec<&Redis> = rs.iter().collect();
    let per = each_key_once(&backends);
    assert_eq!(per.iter().sum::<usize>(), names.len(), "{per:?}");
    let mut c = k.client();
    for (i, key) in names.iter().enumerate() {
        assert_eq!(c.cmd(&["GET", key]), bulk(&format!("v{i}")), "{key}");
    }
    per
}

/// Keys moving both ways between two servers at once (ring_hash: one of
/// three removed, the other two each gain ring points, so keys move from
/// each to the other) while many clients touch them: a MIGRATE from A to
/// B and one from B to A at the same moment would each wait on the other
/// (both servers blocked) until a timeout. Moves run in rounds, one way
/// each, so no client sees an error.
#[test]
fn keys_moving_both_ways_never_wait_on_each_other() {
    let rs: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start(
        "cores = 2\nop_timeout = \"2s\"",
        &ring_toml("ring_hash", &backends, &[], "migrate"),
    );
    let keys = 4000;
    load_keys(&k, keys, |_| "0".into());
    let names: Vec<String> = (0..keys).map(|i| format!("k:{i}")).collect();
    let before = routes(&k, &names);
    rewrite(&k, &ring_toml("ring_hash", &backends[..2], &[], "migrate"));
    let after = routes(&k, &names);
    let (a, b) = (backends[0].addr(), backends[1].addr());
    let crossing: Vec<String> = (0..keys)
        .filter(|&i| (before[i] == a && after[i] == b) || (before[i] == b && after[i] == a))
        .map(|i| names[i].clone())
        .collect();
    let one_way = crossing
        .iter()
        .filter(|n| before[names.iter().position(|m| m == *n).unwrap()] == a)
        .count();
    assert!(
        one_way > 50 && crossing.len() - one_way > 50,
        "{one_way} of {}",
        crossing.len()
    );
    let crossing = Arc::new(crossing);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..16)
        .map(|id| {
            let (crossing, stop, port) = (crossing.clone(), stop.clone(), k.port);
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut bad = Vec::new();
                let mut n = id * 7919;
                while !stop.load(Ordering::Relaxed) {
                    n += 13;
                    let key = &crossing[n % crossing.len()];
                    let r = c.cmd(&["INCR", key]);
                    if !r.starts_with(':') {
                        bad.push(format!("INCR {key}: {r}"));
                    }
                }
                bad
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    wait_reshard_done(&k);
    stop.store(true, Ordering::Relaxed);
    let bad: Vec<String> = clients
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    assert!(
        bad.is_empty(),
        "{} errors: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert_eq!(each_key_once(&backends)[2], 0);
}

/// A fleet's instance left holding (its coordinator gone between hold and
/// migrate): a command on a moving key waits `HOLD_AT_MOST` (5 s), then
/// gets -TRYAGAIN and does not run; one on a key that does not move is
/// served at once; released, the moving key is served where it was.
#[test]
fn a_command_held_too_long_is_told_to_try_again() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start(PROXY, &ketama_with(&backends[..5], &[], "coordinated"));
    let keys = 2000;
    load_keys(&k, keys, |i| format!("v{i}"));
    let names: Vec<String> = (0..keys).map(|i| format!("k:{i}")).collect();
    let before = routes(&k, &names);
    rewrite(&k, &ketama_with(&backends, &[], "coordinated"));
    let after = routes(&k, &names);
    let moving = (0..keys).find(|&i| before[i] != after[i]).expect("moving");
    let staying = (0..keys).find(|&i| before[i] == after[i]).expect("staying");
    enter_phase(&[&k], "/reshard/hold");
    let mut c = k.client();
    let asked = std::time::Instant::now();
    assert_eq!(
        c.cmd(&["GET", &names[staying]]),
        bulk(&format!("v{staying}"))
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let asked = std::time::Instant::now();
    let reply = c.cmd(&["SET", &names[moving], "held"]);
    let waited = asked.elapsed();
    assert!(reply.starts_with("-TRYAGAIN"), "{reply}");
    assert!(
        (Duration::from_millis(4900)..Duration::from_secs(8)).contains(&waited),
        "{waited:?}"
    );
    let (ok, out) = keyway_reshard("release", &k);
    assert!(ok, "{out}");
    // Not written (the SET was refused), not moved (released).
    assert_eq!(c.cmd(&["GET", &names[moving]]), bulk(&format!("v{moving}")));
    assert_eq!(each_key_once(&backends)[5], 0, "a key moved");
}

/// A new owner that dies while keys move to it: clients whose keys would
/// move there get an error in time and their commands do not run, keys
/// moving to the other new owners go on moving (the mover skips the dead
/// one's for the rest of its pass) and being served, and once it is back
/// (it persisted its keys) the reshard ends with nothing lost.
#[test]
fn a_new_owner_dying_mid_reshard_stalls_only_its_keys() {
    let persisting = || {
        Redis::start_with(
            free_port(),
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
    };
    let mut rs: Vec<Redis> = (0..5).map(|_| persisting()).collect();
    // The lowest address is removed, so each of its keys moves up, in the
    // first (rising) round; the highest dies.
    let mut by_port: Vec<usize> = (0..5).collect();
    by_port.sort_by_key(|&i| rs[i].port);
    let (gone, dies) = (by_port[0], by_port[4]);
    let k = Keyway::start(
        "cores = 2\nop_timeout = \"500ms\"",
        &ring_toml("ring_hash", &rs.iter().collect::<Vec<_>>(), &[], "migrate"),
    );
    let keys = 20_000;
    load_keys(&k, keys, |i| format!("v{i}"));
    let names: Vec<String> = (0..keys).map(|i| format!("k:{i}")).collect();
    let before = routes(&k, &names);
    let kept: Vec<&Redis> = (0..5).filter(|&i| i != gone).map(|i| &rs[i]).collect();
    rewrite(&k, &ring_toml("ring_hash", &kept, &[], "migrate"));
    let after = routes(&k, &names);
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    let (ok, out) = keyway_reshard("pause", &k);
    assert!(ok, "{out}");
    let (removed, dead) = (rs[gone].addr(), rs[dies].addr());
    rs[dies].kill();
    let (ok, out) = keyway_reshard("resume", &k);
    assert!(ok, "{out}");
    // Every key moving to a live owner leaves the removed one.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let left = keys_on(&rs[gone]);
        let stuck = (left.iter())
            .filter(|key| {
                let i: usize = key[2..].parse().unwrap();
                after[i] != dead
            })
            .count();
        if stuck == 0 && !left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{stuck} keys for live owners still on {removed}: {}",
            admin_get(k.admin_port, "/reshard")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = admin_get(k.admin_port, "/reshard");
    assert!(!status.contains("\"state\":\"done\""), "{status}");
    assert!(
        k.log().contains(&format!("MIGRATE to {dead}")),
        "{}",
        k.log()
    );
    let mut c = k.client();
    // A key moving to a live owner: served. One moving to the dead one: an
    // error, in time, and the SET does not run.
    let to = |dest: bool| {
        (0..keys)
            .find(|&i| before[i] == removed && (after[i] == dead) == dest)
            .expect("such a key")
    };
    let live = to(false);
    assert_eq!(c.cmd(&["GET", &names[live]]), bulk(&format!("v{live}")));
    let stalled = to(true);
    refused_in_time(&mut c, &["SET", &names[stalled], "lost?"]);
    let per = back_and_whole(&k, &mut rs, dies, &names);
    assert_eq!(per[gone], 0, "{per:?}");
}

/// `keyway reshard abort` over a fleet whose reshard is halfway (clients
/// of both keyways writing): every instance's file places the cluster as
/// before again, the command holds and migrates both, waits until every
/// key has moved back and says so; nothing acknowledged is lost.
#[test]
fn keyway_reshard_abort_moves_a_fleet_back() {
    let rs: Vec<Redis> = (0..6).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let five = ketama_with(&backends[..5], &[], "coordinated");
    let six = ketama_with(&backends, &[], "coordinated");
    let a = Keyway::start(PROXY, &five);
    let b = Keyway::start(PROXY, &five);
    let both = admins(&[&a, &b]);
    let keys = 20_000;
    load_keys(&a, keys, |i| format!("v{i}"));
    let load = Load::start(&[a.port, b.port], 4);
    rewrite(&a, &six);
    rewrite(&b, &six);
    // `keyway reshard start`'s steps, its movers then paused halfway.
    hold_and_migrate(&[&a, &b]);
    let (ok, out) = keyway_reshard_over("pause", &both);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_millis(500));
    // Clients still move keys: one moved between two backends' KEYS would
    // be seen on both, so only the sixth is read here.
    assert!(!keys_on(backends[5]).is_empty(), "nothing moved yet");
    rewrite(&a, &five);
    rewrite(&b, &five);
    reshard_ends_over("abort", &[&a, &b]);
    let per = fleet_ends(load, &[&a, &b], &backends, keys, 7);
    assert_eq!(per[5], 0, "the sixth gave every key back: {per:?}");
}
