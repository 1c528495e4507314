//! The command line: check, route, and start-up failures worded for operators.
use crate::common::*;
use std::process::Command;

fn keyway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyway"))
}

#[test]
fn check_accepts_the_shipped_config_and_rejects_bad_ones_with_the_line() {
    let ok = keyway()
        .args(["check", "--config", "config.toml"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dir = scratch_dir("cli");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[proxy]\nlisten = \"127.0.0.1:6380\"\n\n[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nendpoints = [\"127.0.0.1:7001\"]\ncolour = \"blue\"\n\n[routes]\ncatch_all = \"main\"\n",
    )
    .unwrap();
    let out = keyway()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:8:") && err.contains("colour"),
        "{err}"
    );
    let missing = keyway()
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_example_configurations_are_valid() {
    for f in ["examples/dual-write.toml", "examples/triple-write.toml"] {
        let out = keyway().args(["check", "--config", f]).output().unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn route_prints_cluster_and_endpoint_per_key() {
    let out = keyway()
        .args([
            "route",
            "--config",
            "config.toml",
            "a",
            "user:{avgo}:1",
            "user:{avgo}:2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0][0], "a");
    assert!(lines
        .iter()
        .all(|l| l[1] == "main" && l[2].starts_with("127.0.0.1:700")));
    assert_eq!(lines[1][2], lines[2][2], "one hashtag, one endpoint");
}

#[test]
fn a_busy_listen_address_is_a_clear_error_not_a_panic() {
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let dir = scratch_dir("cli");
    let cfg = dir.join("busy.toml");
    std::fs::write(
        &cfg,
        format!("[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\n\n[routes]\ncatch_all = \"m\"\n"),
    )
    .unwrap();
    let out = keyway().arg("--config").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_second_keyway_on_the_same_port_refuses_to_start() {
    // Found by issue 12: SO_REUSEPORT let a second instance join the port
    // and take 18 of 40 new connections.
    let backend = Redis::start();
    let first = Keyway::over(&[&backend], "");
    let dir = scratch_dir("cli");
    let cfg = dir.join("second.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{}\"\ncores = 1\n\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"{}\"]\n\n[routes]\ncatch_all = \"m\"\n",
            first.port,
            backend.addr()
        ),
    )
    .unwrap();
    // Waited for with a deadline: a second keyway that did start would
    // otherwise hang the suite instead of failing this test.
    let mut second = keyway()
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = second.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "the second keyway did not refuse to start: {err}"
    );
    assert!(err.contains("address already in use"), "{err}");
    // Every new connection still reaches the first one.
    let accepted = |k: &Keyway| total(k, "accepted_connections");
    let before = accepted(&first);
    for _ in 0..40 {
        assert_eq!(first.client().cmd(&["PING"]), "+PONG\r\n");
    }
    assert_eq!(accepted(&first) - before, 40);
}

/// keyway under strace, with io_uring_setup failing as `inject` says (the
/// way an older or locked-down kernel answers).
fn keyway_with_failing_io_uring(cfg: &std::path::Path, inject: &str) -> Command {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is needed (scripts/setup.sh installs it)"
    );
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=io_uring_setup"])
        .arg("-e")
        .arg(format!("inject=io_uring_setup:{inject}"))
        .arg(env!("CARGO_BIN_EXE_keyway"))
        .arg("--config")
        .arg(cfg);
    c
}

#[test]
fn a_kernel_without_io_uring_is_a_clear_start_up_error() {
    let dir = scratch_dir("cli");
    let cfg = dir.join("k.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!("[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"127.0.0.1:1\"]\n\n[routes]\ncatch_all = \"m\"\n"),
    )
    .unwrap();
    let out = keyway_with_failing_io_uring(&cfg, "error=ENOSYS")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("io_uring is not available"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn the_coop_taskrun_fallback_serves_like_defer_taskrun() {
    // The mode keyway falls back to on Linux 5.19-6.0 (the probe's choice
    // itself is a unit test in net::tests), forced here on a newer kernel.
    let a = Redis::start();
    let dir = scratch_dir("cli");
    let cfg = dir.join("k.toml");
    let port = free_port();
    let admin = free_port();
    std::fs::write(
        &cfg,
        format!(
            "[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n{}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n",
            cluster_toml("main", "ring_hash", &[&a])
        ),
    )
    .unwrap();
    let log = dir.join("log");
    let mut child = keyway()
        .arg("--config")
        .arg(&cfg)
        .env("KEYWAY_IO_URING_MODE", "coop_taskrun")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let up = wait_for_port(port, std::time::Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result = std::panic::catch_unwind(|| {
        assert!(up, "keyway did not start: {text}");
        assert!(
            text.contains("io_uring coop_taskrun (COOP_TASKRUN|TASKRUN_FLAG)"),
            "{text}"
        );
        let mut c = Client::connect(port);
        assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
        let mut pipeline = Vec::new();
        for i in 0..500 {
            pipeline.extend(encode(&[b"SET", format!("k{i}").as_bytes(), b"v"]));
        }
        c.send_raw(&pipeline);
        for _ in 0..500 {
            assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
        }
        let stats = admin_get(admin, "/stats");
        assert!(stats.contains("\"mode\":\"coop_taskrun\""), "{stats}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn check_warns_about_exposure_and_refuses_an_open_admin_endpoint() {
    let dir = scratch_dir("cli");
    let cfg = dir.join("open.toml");
    let token = dir.join("admin.token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let check = |listen: &str, extra: &str, admin: &str| {
        std::fs::write(
            &cfg,
            format!("[proxy]\nlisten = \"{listen}\"\n{extra}\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"127.0.0.1:7001\"]\n\n[routes]\ncatch_all = \"m\"\n\n[admin]\nlisten = \"0.0.0.0:9901\"\n{admin}"),
        )
        .unwrap();
        let out = keyway()
            .arg("check")
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let with_token = format!("token = {{ file = \"{}\" }}\n", token.display());
    let (ok, open) = check("0.0.0.0:6380", "", &with_token);
    assert!(ok, "{open}");
    assert!(open.contains("WARN proxy.listen 0.0.0.0:6380 accepts clients from other hosts and proxy.password is not set"), "{open}");
    let (ok, guarded) = check("0.0.0.0:6380", "password = \"s3cret\"\n", &with_token);
    assert!(ok, "{guarded}");
    assert!(!guarded.contains("proxy.listen"), "{guarded}");
    // Issue 23: an admin endpoint beyond loopback needs a token.
    let (ok, err) = check("127.0.0.1:6380", "", "");
    assert!(!ok);
    assert!(
        err.contains("admin.listen") && err.contains("set admin.token"),
        "{err}"
    );
    let (ok, err) = check(
        "127.0.0.1:6380",
        "",
        "token = { env = \"KEYWAY_TEST_UNSET_TOKEN\" }\n",
    );
    assert!(!ok);
    assert!(err.contains("KEYWAY_TEST_UNSET_TOKEN` is not set"), "{err}");
    assert!(!err.contains("t0ken"), "{err}");
}

#[test]
fn without_latency_dir_nothing_is_written_where_keyway_runs() {
    // Found by issue 12: every shutdown wrote keyway-latency/ into the
    // working directory (a service started from / wrote into /).
    let backend = Redis::start();
    let dir = scratch_dir("cli");
    let port = free_port();
    let cfg = dir.join("k.toml");
    std::fs::write(
        &cfg,
        format!("[proxy]\nlisten = \"127.0.0.1:{port}\"\ncores = 1\n\n[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"{}\"]\n\n[routes]\ncatch_all = \"m\"\n", backend.addr()),
    )
    .unwrap();
    let child = keyway()
        .arg("--config")
        .arg(&cfg)
        .current_dir(&dir.0)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_for_port(port, std::time::Duration::from_secs(10)));
    assert_eq!(Client::connect(port).cmd(&["PING"]), "+PONG\r\n");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("set [admin] latency_dir to keep the histograms"),
        "{log}"
    );
    let written: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(written, vec![std::ffi::OsString::from("k.toml")]);
}

/// What an XML parser (Python's) finds in an SVG chart: per panel, its
/// title and its lines' labels (`*` after a dashed one); and the x labels.
fn svg_outline(file: &std::path::Path) -> (Vec<(String, Vec<String>)>, Vec<String>) {
    let script = r#"
import sys, xml.etree.ElementTree as E
ns = {"s": "http://www.w3.org/2000/svg"}
root = E.parse(sys.argv[1]).getroot()
for g in root.findall("s:g[@class='panel']", ns):
    title = g.find("s:text[@class='panel-title']", ns).text
    lines = [p.get("data-label") + ("*" if p.get("stroke-dasharray") else "") for p in g.findall("s:polyline[@class='series']", ns)]
    print("panel\t" + title + "\t" + "\t".join(lines))
print("x\t" + "\t".join(sorted({t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "x-label"})))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "not valid XML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut panels = Vec::new();
    let mut x = Vec::new();
    for line in text.lines() {
        let mut cols = line.split('\t');
        match cols.next() {
            Some("panel") => {
                let title = cols.next().unwrap_or_default().to_string();
                panels.push((title, cols.map(str::to_string).collect()));
            }
            Some("x") => x = cols.map(str::to_string).collect(),
            _ => {}
        }
    }
    (panels, x)
}

/// A dump (POST /latency/dump) writes the chart beside its `.hgrm` files,
/// and `keyway latency DIR --plot` draws it again: HdrHistogram's
/// percentile chart, a panel per command group used, a line per core and
/// the merged one; two dumps overlay (the second dashed).
#[test]
fn latency_dumps_are_charted_per_core_and_per_group() {
    let backend = Redis::start();
    let k = Keyway::start(
        "cores = 2",
        &format!(
            "[[clusters]]\nname = \"m\"\nlb_policy = \"maglev\"\nendpoints = [\"{}\"]\n\n[routes]\ncatch_all = \"m\"\n",
            backend.addr()
        ),
    );
    // Enough connections that both cores serve some.
    let mut clients: Vec<Client> = (0..16).map(|_| k.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for j in 0..50 {
            assert_eq!(c.cmd(&["SET", &format!("k{i}:{j}"), "v"]), "+OK\r\n");
            assert_eq!(c.cmd(&["GET", &format!("k{i}:{j}")]), bulk("v"));
        }
    }
    let (status, body) = admin_request(k.admin_port, "POST", "/latency/dump");
    assert_eq!(status, 200, "{body}");
    let dir = k.config.with_file_name("latency");
    for file in [
        "latency.svg",
        "all.hgrm",
        "core0.hgrm",
        "core1.hgrm",
        "read.hgrm",
        "write.hgrm",
    ] {
        assert!(
            dir.join(file).exists(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let (panels, x) = svg_outline(&dir.join("latency.svg"));
    let titles: Vec<&str> = panels.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(titles, ["all", "read", "write"], "{panels:?}");
    // A line per core that served the group (the kernel spreads the
    // connections over the cores' listeners: usually both), then all.
    let served: Vec<String> = (0..2)
        .filter(|c| {
            let text = std::fs::read_to_string(dir.join(format!("core{c}.hgrm"))).unwrap();
            !text.contains("Total count    =            0]")
        })
        .map(|c| format!("core{c}"))
        .collect();
    assert!(!served.is_empty());
    for (_, lines) in &panels {
        let (all, cores) = lines.split_last().expect("lines");
        assert_eq!(all, "all cores");
        assert!(cores.iter().all(|c| served.contains(c)), "{lines:?}");
    }
    assert_eq!(panels[0].1[..panels[0].1.len() - 1], served[..]);
    for label in ["0%", "90%", "99%", "99.9%"] {
        assert!(x.iter().any(|l| l == label), "{x:?}");
    }
    // Drawn again from the files, and compared with itself.
    let plot = dir.join("again.svg");
    let draw = |dirs: &[&std::path::Path]| {
        let out = keyway()
            .arg("latency")
            .args(dirs)
            .arg("--plot")
            .arg(&plot)
            .output()
            .expect("keyway latency");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
    };
    draw(&[&dir]);
    assert_eq!(svg_outline(&plot).0, panels);
    draw(&[&dir, &dir]);
    let name = dir.display().to_string();
    for (_, lines) in svg_outline(&plot).0 {
        assert_eq!(lines, [name.clone(), format!("{name}*")]);
    }
    // Not a dump: said so, nothing written.
    let out = keyway()
        .args(["latency", "/nonexistent", "--plot"])
        .arg(dir.join("none.svg"))
        .output()
        .expect("keyway latency");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no latency dump here"));
    assert!(!dir.join("none.svg").exists());
}
