//! Running keyway in production (issue 13): configuration reloads under
//! load, with real redis-servers and the real binary.

mod common;

use common::*;
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
