//! Hot keys (issue 21): each core samples the keys its requests touch;
//! `/hotkeys` merges the cores and says where each key lives.

use crate::common::*;
use std::collections::HashMap;

/// A Zipf-like stream of key numbers over `n` keys (weight about 1/(k+1)),
/// from a fixed seed.
pub(crate) fn zipf(n: u64, count: usize) -> Vec<u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x % 1_000_000) as f64 / 1_000_000.0;
            ((n as f64).powf(u) as u64).saturating_sub(1)
        })
        .collect()
}

/// The `"key"` values of `/hotkeys`'s list, in order, with their rates.
fn listed(body: &str) -> Vec<(String, f64, String)> {
    let keys = &body[..body.find("\"endpoints\":[").expect("endpoints")];
    keys.split("{\"key\":\"")
        .skip(1)
        .map(|entry| {
            let key = entry[..entry.find('"').expect("end")].to_string();
            let ops = entry.split("\"ops_per_sec\":").nth(1).expect("ops");
            let ops = ops[..ops.find(',').expect(",")].parse().expect("rate");
            let ep = entry.split("\"endpoint\":\"").nth(1).expect("endpoint");
            (key, ops, ep[..ep.find('"').expect("end")].to_string())
        })
        .collect()
}

/// A ketama cluster "main" over `backends`, the catch-all.
pub(crate) fn ring(backends: &[&Redis]) -> String {
    cluster_toml("main", "ketama", backends)
}

/// A skewed workload over two cores: the ten hottest keys are found (the
/// default sampling, one request in 32), their rates in proportion within
/// a stated error, each with the endpoint `keyway route` names.
#[test]
fn a_zipf_workload_shows_its_hottest_keys_and_where_they_live() {
    let rs: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start("cores = 2", &ring(&backends));
    let stream = zipf(1000, 200_000);
    let mut truth: HashMap<u64, u64> = HashMap::new();
    for n in &stream {
        *truth.entry(*n).or_default() += 1;
    }
    // Four connections (both cores serve some), pipelined GETs and SETs.
    let mut clients: Vec<Client> = (0..4).map(|_| k.client()).collect();
    for (c, chunk) in stream.chunks(1000).enumerate() {
        let client = &mut clients[c % 4];
        let mut out = Vec::new();
        for (i, n) in chunk.iter().enumerate() {
            let key = format!("{{h{n}}}:{n}");
            if i % 4 == 0 {
                out.extend(encode(&[b"SET", key.as_bytes(), b"v"]));
            } else {
                out.extend(encode(&[b"GET", key.as_bytes()]));
            }
        }
        client.send_raw(&out);
        for _ in chunk {
            client.read_reply().expect("reply");
        }
    }
    let body = admin_get(k.admin_port, "/hotkeys");
    assert!(
        body.contains("\"enabled\":true,\"sample_every\":32"),
        "{body}"
    );
    let shown = listed(&body);
    let mut want: Vec<(u64, u64)> = truth.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let name = |n: u64| format!("{{h{n}}}:{n}");
    let top: Vec<&str> = shown.iter().take(15).map(|(k, _, _)| k.as_str()).collect();
    for (n, _) in want.iter().take(10) {
        assert!(
            top.contains(&name(*n).as_str()),
            "{} not in {top:?}",
            name(*n)
        );
    }
    // Rates in proportion to the hottest: within 30% for the next four.
    let rate = |n: u64| {
        shown
            .iter()
            .find(|(k, _, _)| *k == name(n))
            .map(|s| s.1)
            .expect("shown")
    };
    let (hottest, its) = want[0];
    for &(n, count) in &want[1..5] {
        let (est, truth) = (rate(n) / rate(hottest), count as f64 / its as f64);
        assert!(
            (est - truth).abs() <= 0.3 * truth,
            "{}: {est:.3} vs {truth:.3}",
            name(n)
        );
    }
    // Where each lives: as `keyway route` says.
    let keys: Vec<String> = shown.iter().map(|(k, _, _)| k.clone()).collect();
    for ((key, _, endpoint), at) in shown.iter().zip(routed(&k, &keys)) {
        assert_eq!(at, ("main".to_string(), endpoint.clone()), "{key}");
    }
    // Per endpoint, the hot keys' share.
    assert!(body.contains("\"hot_ops_per_sec\":"), "{body}");
    // HOTKEYS GET through the proxy: the same keys, in Valkey's shape.
    let mut c = k.client();
    let reply = c.cmd(&["HOTKEYS", "GET"]);
    let first = format!(
        "*14\r\n$3\r\nkey\r\n${}\r\n{}\r\n$2\r\ndb\r\n:0\r\n$3\r\nqps\r\n:",
        shown[0].0.len(),
        shown[0].0
    );
    assert!(
        reply.starts_with("*16\r\n") || reply.starts_with(&format!("*{}\r\n", shown.len().min(16))),
        "{reply}"
    );
    assert!(
        reply[reply.find("\r\n").unwrap() + 2..].starts_with(&first),
        "{reply}"
    );
    assert!(reply.contains(&format!(
        "$8\r\nendpoint\r\n${}\r\n{}\r\n",
        shown[0].2.len(),
        shown[0].2
    )));
    let refused = c.cmd(&["HOTKEYS", "START", "METRICS", "1", "CPU"]);
    assert!(
        refused.starts_with("-ERR keyway tracks hot keys all the time"),
        "{refused}"
    );
    assert!(c
        .cmd(&["HOTKEYS", "NOPE"])
        .starts_with("-ERR unknown subcommand"));
    // Key names never reach the metrics.
    let metrics = admin_get(k.admin_port, "/metrics");
    assert!(!metrics.contains(&name(want[0].0)));
}

/// Adds `line` to keyway's `[admin]` section (it ends the file), then
/// reloads.
fn reload_with_admin(k: &Keyway, line: &str) {
    let text = std::fs::read_to_string(&k.config).expect("config");
    std::fs::write(&k.config, format!("{text}{line}\n")).expect("config");
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
}

/// A sampled request counts every key it touches, not only its first:
/// MGETs whose second key is always the same make that key the hottest,
/// and a multi-key write counts each key as written.
#[test]
fn every_key_of_a_multi_key_request_is_counted() {
    let rs: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start("", &ring(&backends));
    reload_with_admin(&k, "hot_keys_sample = 1");
    let mut c = k.client();
    for n in 0..200 {
        c.cmd(&[
            "MGET",
            &format!("cold:{n}"),
            "hot:second",
            &format!("cold:x{n}"),
        ]);
    }
    for n in 0..50 {
        c.cmd(&["MSET", &format!("w:{n}"), "v", "hot:written", "v"]);
    }
    let body = admin_get(k.admin_port, "/hotkeys");
    let keys = listed(&body);
    assert_eq!(keys[0].0, "hot:second", "{body}");
    assert_eq!(keys[1].0, "hot:written", "{body}");
    let entry = |key: &str| {
        let at = body.find(&format!("{{\"key\":\"{key}\"")).expect("listed");
        (
            json_number(&body[at..], "", "reads"),
            json_number(&body[at..], "", "writes"),
        )
    };
    assert_eq!(entry("hot:second"), (200, 0));
    assert_eq!(entry("hot:written"), (0, 50));
    // Each key's endpoint is its own, not its request's first key's.
    let (_, endpoint) = &routed(&k, &["hot:second".to_string()])[0];
    assert_eq!(&keys[0].2, endpoint);
}

/// `hot_keys = false` (a reload applies it): nothing sampled, `/hotkeys`
/// says so.
#[test]
fn hot_keys_can_be_turned_off() {
    let r = Redis::start();
    let k = Keyway::start("", &ring(&[&r]));
    reload_with_admin(&k, "hot_keys = false");
    let mut c = k.client();
    for _ in 0..100 {
        c.cmd(&["GET", "x"]);
    }
    let body = admin_get(k.admin_port, "/hotkeys");
    assert!(
        body.starts_with("{\"enabled\":false,\"sample_every\":0,\"keys\":[]"),
        "{body}"
    );
}

/// `keyway top` in a pseudo-terminal (tmux), under load: its screen shows
/// each core with its requests/s, the endpoint, and the hottest key.
#[test]
fn keyway_top_draws_the_picture_in_a_terminal() {
    let r = Redis::start();
    let k = Keyway::start("cores = 2", &ring(&[&r]));
    let load = Load::start(k.port, |n| {
        if n.is_multiple_of(2) {
            "hot:one".to_string()
        } else {
            format!("cold:{n}")
        }
    });
    let session = format!("keyway-top-{}", k.admin_port);
    let command = format!(
        "{} top --instance 127.0.0.1:{} --interval 0.5",
        env!("CARGO_BIN_EXE_keyway"),
        k.admin_port
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux must be installed (scripts/setup.sh installs it)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "50",
        &command,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let screen =
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned();
    tmux(&["kill-session", "-t", &session]);
    load.stop();
    assert!(screen.contains("keyway  generation 1"), "{screen}");
    for text in [
        "core0",
        "core1",
        "req/s",
        "hot key",
        "hot:one",
        r.addr().as_str(),
    ] {
        assert!(screen.contains(text), "{text} not on the screen:\n{screen}");
    }
    // The core serving the client shows a rate above zero.
    let busy = screen
        .lines()
        .filter(|l| l.starts_with("core"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    assert!(busy > 0, "{screen}");
}

/// GETs from one client in a loop until stopped: the `n`th of `key(n)`.
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(port: u16, key: impl Fn(u64) -> String + Send + 'static) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut c = Client::connect(port);
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0u64;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                c.cmd(&["GET", &key(n)]);
            }
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn stop(mut self) {
        assert!(self.halt(), "the load's client failed");
    }

    /// Stops the thread; false if it had panicked.
    fn halt(&mut self) -> bool {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().is_none_or(|t| t.join().is_ok())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}
