//! Running keyway in production (issue 13): configuration reloads under
//! load, with real redis-servers and the real binary.

use crate::common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pipelining writer: batches of SETs (half of them under the `p:`
/// prefix) on one connection until `stop`. Every reply must be +OK; the
/// keys acknowledged are kept to look for afterwards.
fn writer(
    port: u16,
    id: usize,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    acked: Arc<Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = Client::connect(port);
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let keys: Vec<String> = (0..32)
                .map(|i| {
                    let prefix = if i % 2 == 0 { "p:" } else { "k:" };
                    format!("{prefix}{id}:{}", n + i)
                })
                .collect();
            n += 32;
            let mut batch = Vec::new();
            for k in &keys {
                batch.extend(encode(&[b"SET", k.as_bytes(), k.as_bytes()]));
            }
            c.send_raw(&batch);
            for k in keys {
                match c.read_reply() {
                    Some(r) if r == b"+OK\r\n" => acked.lock().unwrap().push(k),
                    Some(r) => {
                        eprintln!("writer {id}: {k}: {}", String::from_utf8_lossy(&r));
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        eprintln!("writer {id}: connection closed");
                        errors.fetch_add(1_000_000, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }
    })
}

fn generation(k: &Keyway) -> i64 {
    json_number(
        &admin_get(k.admin_port, "/stats"),
        "\"config\"",
        "generation",
    )
}

fn wait_generation(k: &Keyway, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while generation(k) != want {
        assert!(
            Instant::now() < deadline,
            "generation {want} never came: {}",
            k.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// connections this redis-server has accepted so far.
fn accepted(r: &Redis) -> i64 {
    let info = r.client().cmd(&["INFO", "stats"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("total_connections_received:"))
        .expect("INFO stats");
    line["total_connections_received:".len()..]
        .trim()
        .parse::<i64>()
        .unwrap()
}

fn connected(r: &Redis) -> i64 {
    let info = r.client().cmd(&["INFO", "clients"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("connected_clients:"))
        .expect("INFO clients");
    // Less the connection asking.
    line["connected_clients:".len()..]
        .trim()
        .parse::<i64>()
        .unwrap()
        - 1
}

fn config(port: u16, admin: u16, listen_extra: &str, body: &str) -> String {
    format!(
        "[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n{listen_extra}\n\n{body}\n\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    )
}

/// Issue 13's acceptance for reloads: under pipelined writes, SIGHUP adds
/// an endpoint, moves a prefix route and adds a mirror; POST /reload then
/// removes an endpoint. No client sees an error or loses its connection,
/// every acknowledged write is on a backend, unchanged endpoints keep
/// their connections, removed ones are closed, and what cannot be applied
/// (a bad file, a new listen address) leaves the running one serving.
#[test]
fn reloads_under_pipelined_load_drop_nothing() {
    let (a1, a2, a3, p1, m1) = (
        Redis::start(),
        Redis::start(),
        Redis::start(),
        Redis::start(),
        Redis::start(),
    );
    let cluster = |name: &str, rs: &[&Redis]| {
        let eps: Vec<String> = rs.iter().map(|r| format!("\"{}\"", r.addr())).collect();
        format!(
            "[[clusters]]\nname = \"{name}\"\nlb_policy = \"ring_hash\"\nendpoints = [{}]\n",
            eps.join(", ")
        )
    };
    let gen1 = format!(
        "{}\n[routes]\ncatch_all = \"main\"\n",
        cluster("main", &[&a1, &a2])
    );
    let k = Keyway::start("", &gen1);
    let write = |body: &str, extra: &str| {
        std::fs::write(&k.config, config(k.port, k.admin_port, extra, body)).unwrap();
    };
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..3)
        .map(|id| writer(k.port, id, stop.clone(), errors.clone(), acked.clone()))
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let a1_accepted = accepted(&a1);

    // Generation 2 by SIGHUP: a3 joins main, `p:` goes to its own cluster,
    // and everything main gets is mirrored to m1.
    let gen2 = format!(
        "{}{}{}\n[routes]\ncatch_all = \"main\"\ncatch_all_mirror = [{{ cluster = \"shadow\" }}]\n\n[[routes.prefix]]\nprefix = \"p:\"\ncluster = \"prefixed\"\n",
        cluster("main", &[&a1, &a2, &a3]),
        cluster("prefixed", &[&p1]),
        cluster("shadow", &[&m1])
    );
    write(&gen2, "");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &k.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_generation(&k, 2);
    std::thread::sleep(Duration::from_millis(700));

    // A broken file and a listen change are refused; generation 2 serves.
    write("[[clusters]]\nname = \"main\"\nlb_policy = \"nope\"\n", "");
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("still serving generation 2"), "{body}");
    assert!(body.contains("lb_policy"), "{body}");
    std::fs::write(&k.config, config(free_port(), k.admin_port, "", &gen2)).unwrap();
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("proxy.listen cannot change"), "{body}");
    assert_eq!(generation(&k), 2);

    // Generation 3 by POST /reload: a2 leaves main.
    let gen3 = gen2.replace(&format!("\"{}\", ", a2.addr()), "");
    assert_ne!(gen3, gen2);
    write(&gen3, "");
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("generation 3"), "{body}");
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(errors.load(Ordering::Relaxed), 0, "{}", k.log());

    // a1 kept its connections through both reloads; a2's were closed.
    // (Less the connection that asks again.)
    assert_eq!(
        accepted(&a1) - 1,
        a1_accepted,
        "a1 was reconnected: {}",
        a1.client().cmd(&["CLIENT", "LIST"])
    );
    // Every acknowledged write is on a backend.
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 1000, "only {} writes", acked.len());
    let mut found = vec![false; acked.len()];
    for r in [&a1, &a2, &a3, &p1] {
        let mut c = r.client();
        for (chunk, found) in acked.chunks(1000).zip(found.chunks_mut(1000)) {
            let mut batch = Vec::new();
            for key in chunk {
                batch.extend(encode(&[b"EXISTS", key.as_bytes()]));
            }
            c.send_raw(&batch);
            for f in found.iter_mut() {
                *f |= c.read_reply().expect("EXISTS") == b":1\r\n";
            }
        }
    }
    let missing = found.iter().filter(|f| !**f).count();
    assert_eq!(missing, 0, "acknowledged keys missing");
    // The new parts of the configuration took traffic.
    let dbsize = |r: &Redis| r.client().cmd(&["DBSIZE"]);
    for (name, r) in [("a3", &a3), ("prefixed", &p1), ("mirror", &m1)] {
        assert_ne!(dbsize(r), ":0\r\n", "{name} got nothing");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connected(&a2) > 0 {
        assert!(Instant::now() < deadline, "a2's connections stay open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = admin_get(k.admin_port, "/metrics");
    assert!(metrics.contains("keyway_config_generation 3"), "{metrics}");
    assert!(
        metrics.contains("keyway_config_reloads_total{result=\"failed\"} 2"),
        "{metrics}"
    );
    let stats = admin_get(k.admin_port, "/stats");
    assert!(stats.contains("\"last_reload\":\"20"), "{stats}");
    let log = k.log();
    assert!(
        log.contains("configuration reloaded (SIGHUP): generation 2"),
        "{log}"
    );
}

/// SETs `keys` through `port` in pipelined chunks; the replies.
fn set_all(port: u16, keys: &[String]) -> Vec<Vec<u8>> {
    let mut c = Client::connect(port);
    let mut out = Vec::new();
    for chunk in keys.chunks(500) {
        let mut batch = Vec::new();
        for k in chunk {
            batch.extend(encode(&[b"SET", k.as_bytes(), k.as_bytes()]));
        }
        c.send_raw(&batch);
        for _ in chunk {
            out.push(c.read_reply().expect("reply"));
        }
    }
    out
}

/// GETs `keys` through `port`; how many came back with their own name.
fn found_all(port: u16, keys: &[String]) -> usize {
    let mut c = Client::connect(port);
    let mut found = 0;
    for chunk in keys.chunks(500) {
        let mut batch = Vec::new();
        for k in chunk {
            batch.extend(encode(&[b"GET", k.as_bytes()]));
        }
        c.send_raw(&batch);
        for k in chunk {
            found += usize::from(c.read_reply().expect("reply") == bulk(k).as_bytes());
        }
    }
    found
}

fn endpoint_health(k: &Keyway, addr: &str) -> String {
    let clusters = admin_get(k.admin_port, "/clusters");
    let at = clusters
        .find(&format!("\"address\":\"{addr}\""))
        .unwrap_or_else(|| panic!("{addr} not in {clusters}"));
    let rest = &clusters[at..];
    let h = rest.find("\"health\":\"").expect("health") + 10;
    rest[h..].split('"').next().unwrap_or("").to_string()
}

fn wait_health(k: &Keyway, addr: &str, want: &str, within: Duration) -> Duration {
    let started = Instant::now();
    while endpoint_health(k, addr) != want {
        assert!(
            started.elapsed() < within,
            "{addr} is {} after {within:?}, not {want}: {}",
            endpoint_health(k, addr),
            k.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

/// Issue 13's acceptance for ejection: five ketama backends (weights and
/// server names) behind keyway with `auto_eject` and behind the real
/// nutcracker 0.5.0 with `auto_eject_hosts: true`. One backend is killed
/// under load: keyway's errors stop within unhealthy_threshold × interval,
/// then 10,000 keys written through nutcracker (which ejected the same
/// host) are all found through keyway. Restarted, the backend rejoins
/// after retry_timeout and takes keys again.
#[test]
fn auto_eject_places_keys_as_nutcracker_does() {
    let mut backends: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let weights = [1, 2, 1, 1, 1];
    let names = ["alpha", "bravo", "charlie", "delta", "echo"];
    let dir = scratch_dir("eject");
    let nc_port = free_port();
    let servers: String = backends
        .iter()
        .zip(weights)
        .zip(names)
        .map(|((b, w), n)| format!("   - {}:{w} {n}\n", b.addr()))
        .collect();
    let conf = dir.join("nutcracker.yml");
    std::fs::write(
        &conf,
        format!(
            "pool:\n  listen: 127.0.0.1:{nc_port}\n  hash: fnv1a_64\n  hash_tag: \"{{}}\"\n  distribution: ketama\n  redis: true\n  auto_eject_hosts: true\n  server_retry_timeout: 60000\n  server_failure_limit: 1\n  timeout: 1000\n  servers:\n{servers}"
        ),
    )
    .unwrap();
    let _nc = start_nutcracker(&conf, nc_port);
    let endpoints: Vec<String> = backends
        .iter()
        .zip(weights)
        .zip(names)
        .map(|((b, w), n)| {
            format!(
                "{{ address = \"{}\", weight = {w}, name = \"{n}\" }}",
                b.addr()
            )
        })
        .collect();
    let k = Keyway::start(
        "",
        &format!(
            "[[clusters]]\nname = \"main\"\nlb_policy = \"ketama\"\nhash = \"fnv1a_64\"\nendpoints = [{}]\nauto_eject = true\nretry_timeout = \"3s\"\nfailure_limit = 3\nhealth_check = {{ interval = \"200ms\", timeout = \"200ms\", unhealthy_threshold = 2, healthy_threshold = 1 }}\n\n[routes]\ncatch_all = \"main\"\n",
            endpoints.join(", ")
        ),
    );
    let victim = backends[1].addr();
    assert_eq!(endpoint_health(&k, &victim), "healthy");

    // Load through keyway; the time of every error.
    let stop = Arc::new(AtomicBool::new(false));
    let error_times = Arc::new(Mutex::new(Vec::new()));
    let load = {
        let (stop, times, port) = (stop.clone(), error_times.clone(), k.port);
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let keys: Vec<String> = (0..20).map(|i| format!("load:{}", n + i)).collect();
                n += 20;
                let mut batch = Vec::new();
                for key in &keys {
                    batch.extend(encode(&[b"SET", key.as_bytes(), b"v"]));
                }
                c.send_raw(&batch);
                for _ in &keys {
                    if c.read_reply().expect("keyway answers") != b"+OK\r\n" {
                        times.lock().unwrap().push(Instant::now());
                    }
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = Instant::now();
    backends[1].kill();
    let took = wait_health(&k, &victim, "ejected", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let errors = error_times.lock().unwrap().clone();
    let window = errors
        .last()
        .map_or(Duration::ZERO, |t| t.duration_since(killed_at));
    eprintln!(
        "ejected {took:?} after the kill; {} errors, the last {window:?} after the kill",
        errors.len()
    );
    // unhealthy_threshold × interval = 400 ms, plus slack for a shared machine.
    assert!(
        window < Duration::from_millis(2400),
        "errors for {window:?}"
    );

    // nutcracker ejects the host after its first failure (server_failure_limit 1).
    let probe: Vec<String> = (0..200).map(|i| format!("probe:{i}")).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while set_all(nc_port, &probe).iter().any(|r| r != b"+OK\r\n") {
        assert!(
            Instant::now() < deadline,
            "nutcracker never ejected {victim}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let keys: Vec<String> = (0..10_000)
        .map(|i| {
            if i % 10 == 0 {
                format!("{{tag{}}}:{i}", i % 7)
            } else {
                format!("eject:{i}")
            }
        })
        .collect();
    assert!(set_all(nc_port, &keys).iter().all(|r| r == b"+OK\r\n"));
    assert_eq!(
        found_all(k.port, &keys),
        keys.len(),
        "keys placed differently"
    );

    // Back: it rejoins after retry_timeout (3 s) and takes its keys again.
    backends[1].restart();
    let took = wait_health(&k, &victim, "healthy", Duration::from_secs(10));
    assert!(
        killed_at.elapsed() >= Duration::from_secs(3),
        "rejoined before retry_timeout"
    );
    eprintln!("rejoined {took:?} after the restart");
    let again: Vec<String> = (0..2000u64)
        .map(|i| format!("{}:again:{i}", i.wrapping_mul(2_654_435_761) % 1_000_003))
        .collect();
    assert!(set_all(k.port, &again).iter().all(|r| r == b"+OK\r\n"));
    assert_ne!(backends[1].client().cmd(&["DBSIZE"]), ":0\r\n");
    let metrics = admin_get(k.admin_port, "/metrics");
    assert!(
        metrics.contains(&format!(
            "keyway_endpoint_ejections_total{{cluster=\"main\",endpoint=\"{victim}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(k.log().contains("is down"), "{}", k.log());
}

/// Without `auto_eject` a dead endpoint's keys fail fast (they have nowhere
/// else to go), reads with `prefer_replica` leave its replica as soon as
/// checks find it down, and recovery is seen by the checker with no client
/// request.
#[test]
fn health_checks_without_ejection_fail_fast_and_see_recovery() {
    let (mut primary, mut replica) = (Redis::start(), Redis::start());
    assert_eq!(
        replica
            .client()
            .cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]),
        "+OK\r\n"
    );
    let k = Keyway::start(
        "op_timeout = \"2s\"",
        &format!(
            "[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nread_policy = \"prefer_replica\"\nshards = [{{ primary = \"{}\", replicas = [\"{}\"] }}]\nhealth_check = {{ interval = \"200ms\", timeout = \"200ms\", unhealthy_threshold = 2, healthy_threshold = 2 }}\n\n[routes]\ncatch_all = \"main\"\n",
            primary.addr(),
            replica.addr()
        ),
    );
    let mut c = k.client();
    assert_eq!(c.cmd(&["SET", "hk", "v"]), "+OK\r\n");
    // The replica goes: reads go to the primary, none fails.
    replica.kill();
    wait_health(&k, &replica.addr(), "down", Duration::from_secs(5));
    for _ in 0..50 {
        assert_eq!(c.cmd(&["GET", "hk"]), bulk("v"));
    }
    // The primary goes: its keys fail, fast.
    primary.kill();
    wait_health(&k, &primary.addr(), "down", Duration::from_secs(5));
    let started = Instant::now();
    for _ in 0..20 {
        let r = c.cmd(&["SET", "hk", "w"]);
        assert!(r.starts_with("-ERR upstream"), "{r}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Back, with no client request: the checker sees it within a few intervals.
    primary.restart();
    let took = wait_health(&k, &primary.addr(), "healthy", Duration::from_secs(3));
    eprintln!("recovery seen {took:?} after the restart");
    assert_eq!(c.cmd(&["SET", "hk", "w"]), "+OK\r\n");
    let metrics = admin_get(k.admin_port, "/metrics");
    assert!(
        metrics.contains("keyway_health_checks_failed_total{cluster=\"main\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyway_endpoint_ejections_total{cluster=\"main\",endpoint=\""),
        "{metrics}"
    );
}

/// Issue 13's logs: levelled, timestamped lines naming core and endpoint,
/// repeats held back; and no configured secret anywhere keyway writes or
/// answers: log (at debug), error replies, CONFIG GET, INFO, CLIENT LIST,
/// /stats, /clusters, /metrics, a failed reload, `keyway check`.
#[test]
fn logs_are_levelled_and_never_show_secrets() {
    const CLIENT_PW: &str = "ClientPw-7f3a9";
    const BACKEND_PW: &str = "BackendPw-91c2e";
    const WRONG_PW: &str = "WrongPw-5d8e0";
    let (good, bad) = (Redis::start(), Redis::start());
    for r in [&good, &bad] {
        assert_eq!(
            r.client()
                .cmd(&["CONFIG", "SET", "requirepass", BACKEND_PW]),
            "+OK\r\n"
        );
    }
    let body = format!(
        "[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nendpoints = [\"{}\"]\npassword = \"{BACKEND_PW}\"\n\n[[clusters]]\nname = \"bad\"\nlb_policy = \"ring_hash\"\nendpoints = [\"{}\"]\npassword = \"{WRONG_PW}\"\n\n[routes]\ncatch_all = \"main\"\n\n[[routes.prefix]]\nprefix = \"bad:\"\ncluster = \"bad\"\n\n[log]\nlevel = \"debug\"\n",
        good.addr(),
        bad.addr()
    );
    let k = Keyway::start(&format!("password = \"{CLIENT_PW}\""), &body);
    let mut seen = String::new();
    let mut c = k.client();
    for args in [
        vec!["GET", "k"],
        vec!["AUTH", "guess"],
        vec!["HELLO", "3", "AUTH", "default", "guess"],
        vec!["AUTH", CLIENT_PW],
        vec!["SET", "k", "v"],
        vec!["CONFIG", "GET", "requirepass"],
        vec!["CONFIG", "GET", "*"],
        vec!["INFO"],
        vec!["CLIENT", "LIST"],
        vec!["SLOWLOG", "GET"],
    ] {
        seen.push_str(&c.cmd(&args));
    }
    assert!(seen.contains("(redacted by keyway)"), "{seen}");
    for _ in 0..50 {
        let r = c.cmd(&["GET", "bad:k"]);
        assert!(r.starts_with("-ERR upstream authentication failed"), "{r}");
        seen.push_str(&r);
    }
    // A reload of a file broken next to a password.
    std::fs::write(
        &k.config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{}\"\ncores = 1\npassword = \"{CLIENT_PW}\"\nbogus = 1\n\n{body}\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
            k.port, k.admin_port
        ),
    )
    .unwrap();
    let (status, reply) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 422, "{reply}");
    seen.push_str(&reply);
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["check", "--config"])
        .arg(&k.config)
        .output()
        .unwrap();
    assert!(!check.status.success());
    seen.push_str(&String::from_utf8_lossy(&check.stdout));
    seen.push_str(&String::from_utf8_lossy(&check.stderr));
    for path in ["/stats", "/clusters", "/metrics"] {
        seen.push_str(&admin_get(k.admin_port, path));
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = k.log();
    for secret in [CLIENT_PW, BACKEND_PW, WRONG_PW] {
        assert!(!seen.contains(secret), "{secret} in a reply or page");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    // Every line: RFC 3339 UTC timestamp, then a level.
    let stamped = |l: &str| {
        let b = l.as_bytes();
        l.len() > 25
            && b[4] == b'-'
            && b[10] == b'T'
            && b[23] == b'Z'
            && ["ERROR ", "WARN ", "INFO ", "DEBUG "]
                .iter()
                .any(|w| l[25..].starts_with(w))
    };
    let bad_lines: Vec<&str> = log.lines().filter(|l| !stamped(l)).collect();
    assert!(
        bad_lines.is_empty(),
        "unstamped lines: {bad_lines:?}\n{log}"
    );
    // The bad backend's failure names core and endpoint, once: 50
    // identical failures in a row are held back.
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{log}");
    assert!(
        failures[0].contains(&format!("WARN [core 0] [{}]", bad.addr())),
        "{log}"
    );
    assert!(log.contains("INFO listening on"), "{log}");
    // The failures stopped: the count held back is still written, once
    // the 10 s window has passed (it was lost before).
    let deadline = Instant::now() + Duration::from_secs(15);
    let counted = loop {
        let log = k.log();
        let counted = log
            .lines()
            .find(|l| l.contains("authentication failed") && l.contains("more like this"))
            .map(str::to_string);
        if counted.is_some() || Instant::now() > deadline {
            break counted.ok_or(log);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let counted = counted.unwrap_or_else(|log| panic!("no held-back count:\n{log}"));
    assert!(
        counted.contains(&format!("WARN [core 0] [{}]", bad.addr()))
            && counted.contains("more like this held back over 1"),
        "{counted}"
    );
}

/// `scripts/keyway.service`, its commands run as systemd would run them:
/// ExecStartPre (`keyway check`) passes a good file and stops a broken
/// one, ExecReload reloads, KillSignal drains and exits 0 within
/// TimeoutStopSec; and `systemd-analyze verify` accepts the unit.
#[test]
fn service_unit_checks_reloads_and_drains() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/keyway.service"
    ))
    .expect("scripts/keyway.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
            .to_string()
    };
    assert_eq!(value("LimitMEMLOCK"), "infinity");
    assert_eq!(value("Restart"), "on-failure");
    assert!(value("LimitNOFILE").parse::<u64>().unwrap() >= 65536);
    assert_eq!(value("KillSignal"), "SIGTERM");
    let r = Redis::start();
    let dir = scratch_dir("service");
    let config = dir.join("keyway.toml");
    let (port, admin) = (free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n{}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n",
            cluster_toml("main", "ring_hash", &[&r])
        ),
    )
    .unwrap();
    let local = unit
        .replace("/usr/local/bin/keyway", env!("CARGO_BIN_EXE_keyway"))
        .replace("/etc/keyway/keyway.toml", &config.display().to_string());
    let local_unit = dir.join("keyway.service");
    std::fs::write(&local_unit, &local).unwrap();
    if let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&local_unit)
        .output()
    {
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.trim().is_empty(), "{said}");
    }
    let run = |line: &str, pid: Option<u32>| {
        let line = line.replace("$MAINPID", &pid.unwrap_or(0).to_string());
        let mut words = line.split_whitespace();
        std::process::Command::new(words.next().unwrap())
            .args(words)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    };
    let value = |key: &str| {
        local
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
            .to_string()
    };
    assert!(run(&value("ExecStartPre"), None).success());
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("ring_hash", "round_robin")).unwrap();
    assert!(
        !run(&value("ExecStartPre"), None).success(),
        "check passed a broken file"
    );
    std::fs::write(&config, &good).unwrap();
    let start = value("ExecStart");
    let mut words = start.split_whitespace();
    let child = std::process::Command::new(words.next().unwrap())
        .args(words)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("keyway.log")).unwrap())
        .spawn()
        .unwrap();
    let mut child = Proc(child);
    assert!(wait_for_port(port, Duration::from_secs(10)));
    let mut c = Client::connect(port);
    assert_eq!(c.cmd(&["SET", "svc", "1"]), "+OK\r\n");
    assert!(run(&value("ExecReload"), Some(child.0.id())).success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while json_number(&admin_get(admin, "/stats"), "\"config\"", "generation") != 2 {
        assert!(Instant::now() < deadline, "ExecReload did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd(&["GET", "svc"]), bulk("1"));
    drop(c);
    let stop = std::process::Command::new("kill")
        .args(["-s", &value("KillSignal"), &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let limit = Duration::from_secs(value("TimeoutStopSec").parse().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not stopped within TimeoutStopSec"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// Found in review: with passive detection only (what `keyway import
/// twemproxy` writes), an ejected backend that came back before
/// `retry_timeout` was never let back in: its connections sat idle and
/// nothing asked it again.
#[test]
fn passive_ejection_rejoins_after_retry_timeout() {
    let mut backends: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let eps: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    let k = Keyway::start(
        "",
        &format!(
            "[[clusters]]\nname = \"main\"\nlb_policy = \"ketama\"\nendpoints = [{}]\nauto_eject = true\nretry_timeout = \"2s\"\nfailure_limit = 1\n\n[routes]\ncatch_all = \"main\"\n",
            eps.join(", ")
        ),
    );
    let victim = backends[0].addr();
    // Keys spread over the whole continuum (short keys that differ only in
    // their last bytes hash close together under fnv1a_64's low bits).
    let keys: Vec<String> = (0..1000u64)
        .map(|i| format!("{}:passive:{i}", i.wrapping_mul(2_654_435_761) % 1_000_003))
        .collect();
    assert!(set_all(k.port, &keys).iter().all(|r| r == b"+OK\r\n"));
    assert_ne!(backends[0].client().cmd(&["DBSIZE"]), ":0\r\n");
    backends[0].kill();
    // Live traffic finds it down.
    let deadline = Instant::now() + Duration::from_secs(10);
    while endpoint_health(&k, &victim) != "ejected" {
        assert!(
            Instant::now() < deadline,
            "never ejected ({}): {:?} {}",
            endpoint_health(&k, &victim),
            set_all(k.port, &keys[..5]),
            k.log()
        );
        set_all(k.port, &keys);
        std::thread::sleep(Duration::from_millis(50));
    }
    let ejected_at = Instant::now();
    backends[0].restart();
    let took = wait_health(&k, &victim, "healthy", Duration::from_secs(8));
    assert!(
        ejected_at.elapsed() >= Duration::from_millis(1900),
        "back after {took:?}, before retry_timeout"
    );
    assert!(set_all(k.port, &keys).iter().all(|r| r == b"+OK\r\n"));
    assert_ne!(backends[0].client().cmd(&["DBSIZE"]), ":0\r\n");
}

/// Two keys that `keyway route` places on `addr` under the configuration
/// `path`.
fn two_keys_on(path: &std::path::Path, addr: &str) -> (String, String) {
    let keys: Vec<String> = (0..64).map(|i| format!("tx{i}")).collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["route", "--config"])
        .arg(path)
        .args(&keys)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut on: Vec<String> = text
        .lines()
        .filter(|l| l.split('\t').nth(2).map(str::trim) == Some(addr))
        .map(|l| l.split('\t').next().unwrap().trim().to_string())
        .collect();
    assert!(on.len() >= 2, "{text}");
    (on.remove(0), on.remove(0))
}

/// Issue 23 (2), found by a reliability run: `MULTI; SET k v`, a reload
/// that moves `k` to another endpoint, then `EXEC`: +OK, the value written
/// on the old endpoint, and `GET k` through keyway nil. With WATCH the same;
/// with the endpoint removed, WATCH wrote to it and EXEC without WATCH
/// failed though it was up. Now a transaction runs where its keys live at
/// EXEC (nothing of it ran before), and a WATCH whose backend is no longer
/// its keys' makes EXEC answer nil, as a watched key that changed does:
/// never an OK that a later GET through keyway cannot see.
#[test]
fn a_transaction_across_a_reload_runs_where_its_keys_live_or_not_at_all() {
    let a = Redis::start();
    let b = Redis::start();
    let k = Keyway::over(&[&a], "");
    let mut c = k.client();
    let dir = k.config.parent().unwrap().to_path_buf();
    let file = |name: &str, backends: &[&Redis]| {
        let path = dir.join(name);
        let text = config(
            k.port,
            k.admin_port,
            "",
            &cluster_toml("main", "ring_hash", backends),
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let only_a = file("a.toml", &[&a]);
    let a_and_b = file("ab.toml", &[&a, &b]);
    let only_b = file("b.toml", &[&b]);
    let reload_to = |path: &std::path::Path| {
        std::fs::copy(path, &k.config).unwrap();
        let (status, body) = admin_request(k.admin_port, "POST", "/reload");
        assert_eq!(status, 200, "{body}");
    };
    // Keys on a until b joins, then on b; and keys on a with both.
    let (k1, k2) = two_keys_on(&a_and_b, &b.addr());
    let (k3, k4) = two_keys_on(&a_and_b, &a.addr());
    let on = |r: &Redis, key: &str| r.client().cmd(&["GET", key]);

    // Moved, no WATCH: runs on the key's new endpoint.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k1, "v1"]), "+QUEUED\r\n");
    reload_to(&a_and_b);
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
    assert_eq!(c.cmd(&["GET", &k1]), bulk("v1"));
    assert_eq!(on(&b, &k1), bulk("v1"));
    assert_eq!(on(&a, &k1), "$-1\r\n");

    // Moved, with WATCH: nil, and nothing written anywhere.
    reload_to(&only_a);
    assert_eq!(c.cmd(&["WATCH", &k2]), "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k2, "v2"]), "+QUEUED\r\n");
    reload_to(&a_and_b);
    assert_eq!(c.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(c.cmd(&["GET", &k2]), "$-1\r\n");
    assert_eq!(on(&a, &k2), "$-1\r\n");
    assert_eq!(on(&b, &k2), "$-1\r\n");

    // Endpoint removed, no WATCH: runs where the key lives now.
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k3, "v3"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["INCR", &format!("{{{k3}}}:n")]), "+QUEUED\r\n");
    reload_to(&only_b);
    assert_eq!(c.cmd(&["EXEC"]), "*2\r\n+OK\r\n:1\r\n");
    assert_eq!(c.cmd(&["GET", &k3]), bulk("v3"));
    assert_eq!(on(&a, &k3), "$-1\r\n");

    // Endpoint removed, with WATCH: nil; the removed (still running)
    // endpoint got nothing.
    reload_to(&a_and_b);
    assert_eq!(c.cmd(&["WATCH", &k4]), "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k4, "v4"]), "+QUEUED\r\n");
    reload_to(&only_b);
    assert_eq!(c.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(c.cmd(&["GET", &k4]), "$-1\r\n");
    assert_eq!(on(&a, &k4), "$-1\r\n");

    // Unchanged by a reload: a WATCH still guards its transaction.
    assert_eq!(c.cmd(&["WATCH", &k4]), "+OK\r\n");
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k4, "v4"]), "+QUEUED\r\n");
    reload_to(&only_b);
    assert_eq!(c.cmd(&["EXEC"]), "*1\r\n+OK\r\n");
    assert_eq!(on(&b, &k4), bulk("v4"));
    assert_eq!(c.cmd(&["WATCH", &k4]), "+OK\r\n");
    b.client().cmd(&["SET", &k4, "changed"]);
    assert_eq!(c.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd(&["SET", &k4, "v5"]), "+QUEUED\r\n");
    assert_eq!(c.cmd(&["EXEC"]), "*-1\r\n");
    assert_eq!(c.cmd(&["GET", &k4]), bulk("changed"));
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
}

/// Issue 23 (5), found by a reliability run: `POST /reload` with
/// `Origin: http://evil.example` was obeyed (any page open in a browser on
/// the host could reload keyway or write dumps), and a request with two
/// Host headers was served. Both are refused now, a local POST still
/// works, and `[admin] token` makes every request but /ready need it.
#[test]
fn the_admin_endpoint_refuses_other_sites_and_can_require_a_token() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let port = k.admin_port;
    let host = format!("Host: 127.0.0.1:{port}\r\n");
    let post = |extra: &str| {
        admin_raw(
            port,
            &format!("POST /reload HTTP/1.1\r\n{host}{extra}Content-Length: 0\r\n\r\n"),
        )
    };
    for cross in [
        "Origin: http://evil.example\r\n",
        "Sec-Fetch-Site: cross-site\r\n",
    ] {
        let (status, body) = post(cross);
        assert_eq!(status, 403, "{cross}: {body}");
    }
    let (status, body) = post("Host: evil.example\r\n");
    assert_eq!(status, 400, "{body}");
    assert_eq!(generation(&k), 1, "a refused request reloaded keyway");
    let (status, body) = post(&format!("Origin: http://127.0.0.1:{port}\r\n"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(generation(&k), 2);

    // A token, read from a file; reloads read it again.
    let token_file = k.config.with_file_name("admin.token");
    std::fs::write(&token_file, "tok-3f9a\n").unwrap();
    let cluster = cluster_toml("main", "ring_hash", &[&a]);
    let with_token = |t: &std::path::Path| {
        format!(
            "{}\ntoken = {{ file = \"{}\" }}\n",
            config(k.port, port, "", &cluster),
            t.display()
        )
    };
    std::fs::write(&k.config, with_token(&token_file)).unwrap();
    assert_eq!(post("").0, 200);
    let get = |auth: &str, path: &str| {
        admin_raw(port, &format!("GET {path} HTTP/1.1\r\n{host}{auth}\r\n"))
    };
    assert_eq!(get("", "/stats").0, 401);
    assert_eq!(get("Authorization: Bearer wrong\r\n", "/stats").0, 401);
    let (status, stats) = get("Authorization: Bearer tok-3f9a\r\n", "/stats");
    assert_eq!(status, 200);
    assert!(stats.contains("\"generation\":3"), "{stats}");
    assert_eq!(get("", "/ready").0, 200, "probes need no token");
    assert_eq!(post("").0, 401, "a reload without the token");
    // The data path does not care.
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
}

/// Issue 23 (2), the same rule for blocking commands and subscriptions: a
/// reload that moves the key a BLPOP waits on (or the channel a
/// subscriber listens to) would leave it waiting where no write through
/// keyway arrives any more. The BLPOP is unblocked on its backend (CLIENT
/// UNBLOCK, so nothing it took is lost) and answered with an error that
/// says so; the subscriber is closed, to subscribe again where the channel
/// lives. What did not move goes on as if nothing happened.
#[test]
fn blocked_commands_and_subscribers_whose_keys_move_in_a_reload_are_not_left_behind() {
    let a = Redis::start();
    let b = Redis::start();
    let k = Keyway::over(&[&a], "");
    let dir = k.config.parent().unwrap().to_path_buf();
    let file = |name: &str, backends: &[&Redis]| {
        let path = dir.join(name);
        let cluster = cluster_toml("main", "ring_hash", backends);
        std::fs::write(&path, config(k.port, k.admin_port, "", &cluster)).unwrap();
        path
    };
    let a_and_b = file("ab.toml", &[&a, &b]);
    let reload_to = |path: &std::path::Path| {
        std::fs::copy(path, &k.config).unwrap();
        let (status, body) = admin_request(k.admin_port, "POST", "/reload");
        assert_eq!(status, 200, "{body}");
    };
    let (moving, moving2) = two_keys_on(&a_and_b, &b.addr());
    let (staying, staying2) = two_keys_on(&a_and_b, &a.addr());

    let mut blocked_moving = k.client();
    blocked_moving.send(&["BLPOP", &moving, "0"]);
    let mut blocked_staying = k.client();
    blocked_staying.send(&["BLPOP", &staying, "0"]);
    let mut sub_moving = k.client();
    sub_moving.send(&["SUBSCRIBE", &moving2]);
    assert!(sub_moving.read_reply().is_some());
    let mut sub_staying = k.client();
    sub_staying.send(&["SUBSCRIBE", &staying2]);
    assert!(sub_staying.read_reply().is_some());
    // Both BLPOPs are blocked on a.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a
        .client()
        .cmd(&["INFO", "clients"])
        .contains("blocked_clients:2")
    {
        assert!(Instant::now() < deadline, "the BLPOPs never blocked");
        std::thread::sleep(Duration::from_millis(20));
    }

    reload_to(&a_and_b);
    let started = Instant::now();
    let r = String::from_utf8(blocked_moving.read_reply().unwrap()).unwrap();
    assert!(
        r.starts_with("-ERR keyway's configuration was reloaded"),
        "{r}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(blocked_moving.cmd(&["PING"]), "+PONG\r\n");
    // Sent again, it waits where the key lives now.
    blocked_moving.send(&["BLPOP", &moving, "0"]);
    let mut c = k.client();
    assert_eq!(c.cmd(&["RPUSH", &moving, "job"]), ":1\r\n");
    let popped = format!("*2\r\n{}{}", bulk(&moving), bulk("job"));
    assert_eq!(
        String::from_utf8(blocked_moving.read_reply().unwrap()).unwrap(),
        popped
    );
    assert_eq!(b.client().cmd(&["LLEN", &moving]), ":0\r\n");
    // The one whose key stayed still waits, and gets its element.
    assert_eq!(c.cmd(&["RPUSH", &staying, "job"]), ":1\r\n");
    let popped = format!("*2\r\n{}{}", bulk(&staying), bulk("job"));
    assert_eq!(
        String::from_utf8(blocked_staying.read_reply().unwrap()).unwrap(),
        popped
    );

    // The subscriber whose channel moved is closed; the other still hears.
    assert!(
        sub_moving.closed(),
        "a subscriber stayed where its channel no longer lives"
    );
    assert_eq!(c.cmd(&["PUBLISH", &staying2, "hi"]), ":1\r\n");
    let msg = format!("*3\r\n$7\r\nmessage\r\n{}{}", bulk(&staying2), bulk("hi"));
    assert_eq!(
        String::from_utf8(sub_staying.read_reply().unwrap()).unwrap(),
        msg
    );
    // Subscribing again, it hears what is published through keyway.
    let mut again = k.client();
    again.send(&["SUBSCRIBE", &moving2]);
    assert!(again.read_reply().is_some());
    assert_eq!(c.cmd(&["PUBLISH", &moving2, "hi"]), ":1\r\n");
    let msg = format!("*3\r\n$7\r\nmessage\r\n{}{}", bulk(&moving2), bulk("hi"));
    assert_eq!(String::from_utf8(again.read_reply().unwrap()).unwrap(), msg);
    let moved = json_number(
        &admin_get(k.admin_port, "/stats"),
        "\"total\"",
        "reload_moved",
    );
    assert_eq!(moved, 2);
}

#[test]
fn an_idle_core_sleeps_until_it_is_told_something() {
    // Found by issue 19 (item 7): each core looked at its control channel
    // every 20 ms, waking about 50 times a second with nothing to do.
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let parks = || metric(&k, "keyway_ring_parks_total");
    let before = parks();
    std::thread::sleep(Duration::from_secs(3));
    let woke = parks() - before;
    // Its own chores (the idle-client sweep, once a second) and the
    // /metrics request itself remain.
    assert!(woke <= 15, "an idle core woke {woke} times in 3 s");
    // A message still reaches it: CLIENT LIST asks every core, a reload
    // has every core confirm the new configuration.
    let mut c = k.client();
    assert!(c.cmd(&["CLIENT", "LIST"]).contains("cmd=client"));
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
}
