//! Hot keys (issue 21): each core samples the keys its requests touch;
//! `/hotkeys` merges the cores and says where each key lives.

use crate::common::*;
use std::collections::HashMap;

/// A Zipf-like stream of key numbers over `n` keys (weight about 1/(k+1)),
/// from a fixed seed.
fn zipf(n: u64, count: usize) -> Vec<u64> {
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

fn ring(backends: &[&Redis]) -> String {
    let eps: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    format!(
        "[[clusters]]\nname = \"main\"\nlb_policy = \"ketama\"\nendpoints = [{}]\n\n[routes]\ncatch_all = \"main\"\n",
        eps.join(", ")
    )
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

/// `hot_keys = false` (a reload applies it): nothing sampled, `/hotkeys`
/// says so.
#[test]
fn hot_keys_can_be_turned_off() {
    let r = Redis::start();
    let k = Keyway::start("", &ring(&[&r]));
    // `[admin]` ends the file.
    let text = std::fs::read_to_string(&k.config).expect("config");
    std::fs::write(&k.config, format!("{text}hot_keys = false\n")).expect("config");
    let (status, body) = admin_request(k.admin_port, "POST", "/reload");
    assert_eq!(status, 200, "{body}");
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

/// The text of the element whose `id` is `id` in `dom`.
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let open = format!("id=\"{id}\">");
    let at = dom.find(&open).unwrap_or_else(|| panic!("no #{id}")) + open.len();
    &dom[at..at + dom[at..].find('<').expect("closed")]
}

/// The cells of the table rows carrying `attr="..."` in `dom`: per row,
/// the attribute's value and the cells' texts.
fn table_rows(dom: &str, attr: &str) -> Vec<(String, Vec<String>)> {
    let open = format!("<tr {attr}=\"");
    dom.split(&open)
        .skip(1)
        .map(|row| {
            let value = row[..row.find('"').expect("value")].to_string();
            let row = &row[..row.find("</tr>").expect("row end")];
            let cells = row
                .split("<td")
                .skip(1)
                .map(|c| {
                    let c = &c[c.find('>').expect("td") + 1..];
                    c[..c.find("</td>").expect("cell")].to_string()
                })
                .collect();
            (value, cells)
        })
        .collect()
}

/// The admin page in a real headless browser (chromium), after a skewed
/// workload on two cores: it polls and renders; the generation, each
/// core's clients and commands are those of /stats, and the hottest key
/// is shown with the endpoint it lives on. A screenshot is kept.
#[test]
fn the_admin_page_shows_what_stats_and_hotkeys_say() {
    let rs: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let backends: Vec<&Redis> = rs.iter().collect();
    let k = Keyway::start("cores = 2", &ring(&backends));
    let mut clients: Vec<Client> = (0..6).map(|_| k.client()).collect();
    let stream = zipf(500, 30_000);
    for (c, chunk) in stream.chunks(500).enumerate() {
        let client = &mut clients[c % 6];
        let mut out = Vec::new();
        for n in chunk {
            out.extend(encode(&[b"GET", format!("{{h{n}}}:{n}").as_bytes()]));
        }
        client.send_raw(&out);
        for _ in chunk {
            client.read_reply().expect("reply");
        }
    }
    let stats = admin_get(k.admin_port, "/stats");
    let url = format!("http://127.0.0.1:{}/", k.admin_port);
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-page");
    std::fs::create_dir_all(&out_dir).expect("output dir");
    let browser = |args: &[&str]| {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=3000",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium must be installed (scripts/setup.sh installs it)")
    };
    let dom = String::from_utf8_lossy(&browser(&["--dump-dom"]).stdout).into_owned();
    assert!(
        dom.contains("data-polls=\""),
        "the page never rendered: {dom}"
    );
    assert_eq!(by_id(&dom, "generation"), "1");
    // Per core: clients and commands as /stats says (no load since).
    let cores = table_rows(&dom, "data-core");
    let per_core: Vec<_> = cores.iter().filter(|(_, cells)| cells.len() == 7).collect();
    assert_eq!(per_core.len(), 2, "{dom}");
    let mut commands = 0;
    for (core, cells) in per_core {
        let at = stats
            .find(&format!("{{\"core\":{core},"))
            .expect("core in /stats");
        let part = &stats[at..];
        let clients = json_number(part, "", "client_connections");
        assert_eq!(cells[1], clients.to_string(), "core {core} clients");
        commands += cells[2].parse::<u64>().expect("commands");
    }
    assert_eq!(commands, 30_000, "every GET, counted on its core");
    let total: i64 = json_number(&stats, "\"total\"", "accepted_connections");
    assert!(total >= 6, "{total}");
    // Each endpoint with its role and health (from /clusters).
    let endpoints = table_rows(&dom, "data-endpoint");
    assert_eq!(endpoints.len(), 3, "{dom}");
    for (_, cells) in &endpoints {
        assert_eq!(
            (cells[2].as_str(), cells[3].as_str()),
            ("primary", "healthy")
        );
    }
    // The hottest key, with its endpoint.
    let hot = table_rows(&dom, "data-key");
    assert!(!hot.is_empty(), "{dom}");
    let hottest = admin_get(k.admin_port, "/hotkeys");
    let first = &hottest[hottest.find("{\"key\":\"").expect("a key") + 8..];
    let first = &first[..first.find('"').expect("end")];
    let (key, cells) = &hot[0];
    assert_eq!(key, first);
    let (_, endpoint) = &routed(&k, &[first.to_string()])[0];
    assert_eq!(endpoint, &cells[5], "{cells:?}");
    // In the per-endpoint view, its endpoint lists it among its hottest.
    let by_endpoint = table_rows(&dom, "data-hot-endpoint");
    let (_, cells) = (by_endpoint.iter())
        .find(|(endpoint, _)| *endpoint == hot[0].1[5])
        .expect("its endpoint in the per-endpoint view");
    assert!(cells[3].contains(first), "{cells:?}");
    // A screenshot, under the tests' output directory.
    let shot = out_dir.join("admin-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    browser(&[&arg, "--window-size=1280,1400"]);
    assert!(shot.exists(), "no screenshot at {}", shot.display());
}

/// `keyway top` in a pseudo-terminal (tmux), under load: its screen shows
/// each core with its requests/s, the endpoint, and the hottest key.
#[test]
fn keyway_top_draws_the_picture_in_a_terminal() {
    let r = Redis::start();
    let k = Keyway::start("cores = 2", &ring(&[&r]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, port) = (stop.clone(), k.port);
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = if n.is_multiple_of(2) {
                    "hot:one".to_string()
                } else {
                    format!("cold:{n}")
                };
                c.cmd(&["GET", &key]);
            }
        })
    };
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
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().expect("load");
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
