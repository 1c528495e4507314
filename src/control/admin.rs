//! The admin HTTP endpoint (loopback by default): /stats, /metrics,
//! /clusters, /latency, /latency/dump, /ready. It runs off the data path:
//! an accepting thread and a thread per connection (at most
//! `MAX_CONNECTIONS`), each with a deadline for its whole request, so no
//! client, idle or trickling, delays anyone's `/ready`. It asks every core
//! for a snapshot over its channel. A browser page of another site cannot
//! use it (Host, Origin and Sec-Fetch-Site are checked), and with
//! `[admin] token` every request but `/ready` needs the bearer token.

use super::render;
use crate::config::PasswordDigest;
use crate::control::cores::Cores;
use crate::control::discovery::Directory;
use crate::control::reload::{Intent, Outcome, Reloader};
use crate::stats::latency;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 32;
/// The whole request head must arrive within this (slowloris).
const HEAD_DEADLINE: Duration = Duration::from_secs(2);

const TEXT: &str = "text/plain; charset=utf-8";

const UNAUTHORIZED: &str = "401 Unauthorized";

fn respond(stream: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    // A 401 says how to authenticate (RFC 9110).
    let challenge = if status == UNAUTHORIZED {
        "WWW-Authenticate: Bearer realm=\"keyway\"\r\n"
    } else {
        ""
    };
    let header = format!(
        "HTTP/1.1 {status}\r\n{challenge}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Whether a request's Host may reach the admin endpoint: `localhost` or an
/// IP address, with this endpoint's port or none. A DNS rebinding attack
/// comes with a name of its own, which is refused.
fn host_allowed(host: &str, local: SocketAddr) -> bool {
    // "name", "name:port", "[v6]", "[v6]:port".
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, tail)) => (v6, tail.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        },
    };
    if port.is_some_and(|p| p != local.port().to_string()) {
        return false;
    }
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// The request headers the admin endpoint decides on.
#[derive(Default)]
struct Head<'a> {
    hosts: Vec<&'a str>,
    origin: Option<&'a str>,
    fetch_site: Option<&'a str>,
    authorization: Option<&'a str>,
}

impl<'a> Head<'a> {
    fn parse(head: &'a str) -> Head<'a> {
        let mut h = Head::default();
        for line in head.split("\r\n").skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("host") {
                h.hosts.push(value);
            } else if name.eq_ignore_ascii_case("origin") {
                h.origin = Some(value);
            } else if name.eq_ignore_ascii_case("sec-fetch-site") {
                h.fetch_site = Some(value);
            } else if name.eq_ignore_ascii_case("authorization") {
                h.authorization = Some(value);
            }
        }
        h
    }

    /// Why the request is refused, if it is: a Host that is not this
    /// endpoint's (DNS rebinding), two Hosts (which one a proxy in front
    /// checked is unknown), a page of another site (a browser says so in
    /// `Origin` and `Sec-Fetch-Site`: any page open on the host could
    /// otherwise reload keyway), or a missing or wrong token.
    fn refusal(
        &self,
        local: SocketAddr,
        token: Option<&PasswordDigest>,
        path: &str,
    ) -> Option<(&'static str, &'static str)> {
        if self.hosts.len() > 1 {
            return Some(("400 Bad Request", "more than one Host header\n"));
        }
        let host = self.hosts.first().copied();
        if !host.is_none_or(|h| host_allowed(h, local)) {
            return Some(("421 Misdirected Request", "unknown host\n"));
        }
        if let Some(origin) = self.origin {
            if !origin_is_own(origin, host, local) {
                return Some(("403 Forbidden", "cross-origin requests are refused\n"));
            }
        }
        if self.fetch_site.is_some_and(|s| {
            !s.eq_ignore_ascii_case("same-origin") && !s.eq_ignore_ascii_case("none")
        }) {
            return Some(("403 Forbidden", "cross-site requests are refused\n"));
        }
        // Load balancers' readiness probes carry no token.
        if let Some(token) = token.filter(|_| path != "/ready") {
            let given = self
                .authorization
                .and_then(|a| a.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, t)| t.trim());
            // Compared as digests: the time taken says nothing of the token.
            if !given.is_some_and(|t| token.matches(t.as_bytes())) {
                return Some((
                    UNAUTHORIZED,
                    "admin.token is set: send Authorization: Bearer <token>\n",
                ));
            }
        }
        None
    }
}

/// Whether a browser's `Origin` is this endpoint itself: `http://` and the
/// request's Host (already checked), or without a Host, a name this
/// endpoint answers to.
fn origin_is_own(origin: &str, host: Option<&str>, local: SocketAddr) -> bool {
    let Some(authority) = origin.strip_prefix("http://") else {
        return false;
    };
    match host {
        Some(h) => authority.eq_ignore_ascii_case(h),
        None => host_allowed(authority, local),
    }
}

/// What a reshard's operator and a fleet's `keyway reshard` POST (see
/// `Admin::reshard`).
const RESHARD_POSTS: [&str; 7] = [
    "/reshard/pause",
    "/reshard/resume",
    "/reshard/hold",
    "/reshard/abort",
    "/reshard/fall",
    "/reshard/migrate",
    "/reshard/release",
];

/// The admin page: one self-contained HTML page (inline SVG and a little
/// JavaScript, nothing fetched from elsewhere) polling `/stats` and
/// `/hotkeys` every second.
const INDEX: &str = include_str!("page.html");

pub struct Admin {
    /// The configuration served, its generation, and reloads.
    pub reloader: Arc<Reloader>,
    /// Every endpoint's health (checks, ejections).
    pub health: crate::control::health::HealthTable,
    /// Every endpoint (discovered ones too) and each Redis Cluster's state.
    pub directory: Arc<Mutex<Directory>>,
    pub cores: Cores,
    pub stopping: Arc<AtomicBool>,
    /// The last look at `/top` (its rates are since then).
    pub top: Mutex<super::top::Look>,
}

impl Admin {
    /// Serves until the process ends (the threads are detached).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let admin = Arc::new(self);
        let busy = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("keyway-admin".into())
            .spawn(move || {
                for mut stream in listener.incoming().flatten() {
                    if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                        busy.fetch_sub(1, Ordering::AcqRel);
                        let _ = respond(&mut stream, "503 Service Unavailable", TEXT, "busy\n");
                        continue;
                    }
                    let (admin, done) = (admin.clone(), busy.clone());
                    let spawned = std::thread::Builder::new()
                        .name("keyway-admin-conn".into())
                        .spawn(move || {
                            let _ = admin.handle(stream, local);
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                    if spawned.is_err() {
                        busy.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            })?;
        Ok(())
    }

    fn handle(&self, mut stream: TcpStream, local: SocketAddr) -> std::io::Result<()> {
        let deadline = Instant::now() + HEAD_DEADLINE;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            // Whatever the pace of its bytes, the head is due by the deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return respond(&mut stream, "408 Request Timeout", TEXT, "too slow\n");
            }
            stream.set_read_timeout(Some(left))?;
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return respond(&mut stream, "408 Request Timeout", TEXT, "too slow\n");
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf);
        let mut parts = head.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let token = self.reloader.topology().config.admin_token.clone();
        match Head::parse(&head).refusal(local, token.as_ref(), path) {
            Some((status, body)) => respond(&mut stream, status, TEXT, body),
            None => {
                let (status, ctype, body) = self.route(method, path);
                respond(&mut stream, status, ctype, &body)
            }
        }
    }

    fn directory(&self) -> Directory {
        crate::control::lock(&self.directory).clone()
    }

    /// `/reshard...`: a reshard's progress, its mover's pause, and a
    /// fleet's phases.
    fn reshard(&self, path: &str) -> (&'static str, &'static str, String) {
        const JSON: &str = "application/json";
        match path {
            // A reshard's mover: its progress, and the operator's pause.
            "/reshard" => match self.reloader.reshard_progress() {
                Some(p) => ("200 OK", JSON, format!("{}\n", render::reshard_json(&p))),
                None => ("200 OK", JSON, "null\n".into()),
            },
            // A fleet's reshard, one phase at a time (`keyway reshard
            // start|abort`); an abort holds as a start does.
            "/reshard/hold" | "/reshard/abort" | "/reshard/fall" | "/reshard/migrate"
            | "/reshard/release" => {
                let done = match path {
                    "/reshard/hold" => self.reloader.hold(Intent::Start),
                    "/reshard/abort" => self.reloader.hold(Intent::Abort),
                    "/reshard/fall" => self.reloader.hold_falling(),
                    "/reshard/migrate" => self.reloader.migrate(),
                    _ => self.reloader.release(),
                };
                let phase = &path["/reshard/".len()..];
                match done {
                    Ok(generation) => {
                        let config = &self.reloader.topology().config;
                        let digest = crate::control::reshard_file::placement_digest(config);
                        let body = format!(
                            "reshard {phase}: generation {generation}, placement {digest}\n"
                        );
                        ("200 OK", TEXT, body)
                    }
                    Err(why) => (
                        "409 Conflict",
                        TEXT,
                        format!("reshard {phase} refused: {why}\n"),
                    ),
                }
            }
            "/reshard/pause" | "/reshard/resume" => {
                let pause = path == "/reshard/pause";
                match self.reloader.reshard_progress() {
                    Some(p) if !p.is_done() => {
                        p.paused.store(pause, Ordering::Relaxed);
                        let now = p.state();
                        ("200 OK", TEXT, format!("reshard {now}\n"))
                    }
                    _ => ("409 Conflict", TEXT, "no reshard is moving keys\n".into()),
                }
            }
            _ => ("404 Not Found", TEXT, "not found\n".into()),
        }
    }

    /// `/top`: the picture as text, rates since the last look.
    fn top(&self) -> String {
        let topo = self.reloader.topology();
        let cores = self.cores.snapshots();
        let mut last = crate::control::lock(&self.top);
        let status = self.reloader.status();
        let (screen, look) = super::top::screen(&topo, &self.directory(), &cores, &status, &last);
        *last = look;
        screen
    }

    /// `/hotkeys`: every core's hot keys, merged.
    fn hot_keys(&self) -> String {
        let topo = self.reloader.topology();
        let every = topo.config.hot_keys_every;
        let cores = self.cores.snapshots();
        super::hot_keys::json(&topo, &self.directory(), &cores, every)
    }

    fn route(&self, method: &str, path: &str) -> (&'static str, &'static str, String) {
        const JSON: &str = "application/json";
        // Only a POST changes anything (a dump writes files).
        let writes = matches!(path, "/latency/dump" | "/reload") || RESHARD_POSTS.contains(&path);
        if writes && method != "POST" {
            return ("405 Method Not Allowed", TEXT, "POST only\n".into());
        }
        if !writes && method != "GET" {
            return ("405 Method Not Allowed", TEXT, "GET only\n".into());
        }
        match path {
            "/" => ("200 OK", "text/html; charset=utf-8", INDEX.into()),
            "/ready" if self.stopping.load(Ordering::Relaxed) => {
                ("503 Service Unavailable", TEXT, "draining\n".into())
            }
            "/ready" => ("200 OK", TEXT, "ready\n".into()),
            "/stats" => (
                "200 OK",
                JSON,
                render::stats_json(
                    &self.reloader.topology(),
                    &self.directory(),
                    &self.cores.snapshots(),
                    &self.reloader.status(),
                ),
            ),
            "/top" => ("200 OK", TEXT, self.top()),
            "/hotkeys" => ("200 OK", JSON, self.hot_keys()),
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                super::metrics::render(
                    &self.reloader.topology(),
                    &self.directory(),
                    &self.cores.snapshots(),
                    &self.reloader.status(),
                    &crate::control::lock(&self.health).clone(),
                ),
            ),
            "/clusters" => (
                "200 OK",
                JSON,
                render::clusters_json(
                    &self.reloader.topology(),
                    &self.directory(),
                    &self.cores.snapshots(),
                    &crate::control::lock(&self.health).clone(),
                ),
            ),
            // The file keyway started with, read again (as SIGHUP does).
            "/reload" => match self.reloader.reload("POST /reload") {
                done @ Outcome::Reloaded { .. } => ("200 OK", TEXT, format!("{done}\n")),
                refused @ Outcome::Refused { .. } => {
                    ("422 Unprocessable Entity", TEXT, format!("{refused}\n"))
                }
            },
            "/latency" => (
                "200 OK",
                JSON,
                render::latency_json(&self.cores.snapshots()),
            ),
            _ if path == "/reshard" || RESHARD_POSTS.contains(&path) => self.reshard(path),
            "/latency/dump" => {
                let dir = &self.reloader.topology().config.dump_dir();
                match latency::dump(dir, &self.cores.snapshots()) {
                    Ok(summary) => (
                        "200 OK",
                        TEXT,
                        format!("dumped to {}\n{summary}", dir.display()),
                    ),
                    Err(e) => (
                        "500 Internal Server Error",
                        TEXT,
                        format!("cannot write {}: {e}\n", dir.display()),
                    ),
                }
            }
            _ => ("404 Not Found", TEXT, "not found; see /\n".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_may_reach_the_admin_endpoint() {
        let local: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        for ok in [
            "localhost",
            "localhost:9901",
            "127.0.0.1:9901",
            "[::1]:9901",
            "[::1]",
            "10.0.0.5:9901",
        ] {
            assert!(host_allowed(ok, local), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:9901",
            "localhost:80",
            "[::1",
            "127.0.0.1:1",
        ] {
            assert!(!host_allowed(refused, local), "{refused}");
        }
    }

    fn refused(head: &str, token: Option<&str>, path: &str) -> Option<&'static str> {
        let local: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let token = token.map(|t| PasswordDigest::of(t.as_bytes()));
        let head = format!("POST {path} HTTP/1.1\r\n{head}\r\n");
        Head::parse(&head)
            .refusal(local, token.as_ref(), path)
            .map(|(status, _)| status)
    }

    #[test]
    fn pages_of_other_sites_and_ambiguous_requests_are_refused() {
        let own = "Host: 127.0.0.1:9901\r\n";
        assert_eq!(refused(own, None, "/reload"), None);
        // curl and keyway's own tools send no Origin.
        assert_eq!(
            refused(
                &format!("{own}Origin: http://127.0.0.1:9901\r\n"),
                None,
                "/reload"
            ),
            None
        );
        for cross in [
            "Origin: http://evil.example\r\n",
            "Origin: null\r\n",
            "Origin: https://127.0.0.1:9901\r\n",
            "Origin: http://localhost:9901\r\n",
            "Sec-Fetch-Site: cross-site\r\n",
            "Sec-Fetch-Site: same-site\r\n",
        ] {
            assert_eq!(
                refused(&format!("{own}{cross}"), None, "/reload"),
                Some("403 Forbidden"),
                "{cross}"
            );
        }
        assert_eq!(
            refused(&format!("{own}Host: evil.example\r\n"), None, "/reload"),
            Some("400 Bad Request")
        );
        assert_eq!(
            refused("Host: evil.example\r\n", None, "/stats"),
            Some("421 Misdirected Request")
        );
    }

    #[test]
    fn with_a_token_every_request_but_ready_carries_it() {
        let own = "Host: 127.0.0.1:9901\r\n";
        let t = Some("tok-123");
        assert_eq!(refused(own, t, "/stats"), Some(UNAUTHORIZED));
        assert_eq!(refused(own, t, "/ready"), None);
        let bearer = |v: &str| format!("{own}Authorization: {v}\r\n");
        assert_eq!(refused(&bearer("Bearer tok-123"), t, "/reload"), None);
        assert_eq!(refused(&bearer("bearer  tok-123 "), t, "/stats"), None);
        assert_eq!(
            refused(&bearer("Bearer tok-12"), t, "/stats"),
            Some(UNAUTHORIZED)
        );
        assert_eq!(
            refused(&bearer("Basic tok-123"), t, "/stats"),
            Some(UNAUTHORIZED)
        );
    }
}
