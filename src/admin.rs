//! The admin HTTP endpoint (loopback by default): /stats, /metrics,
//! /clusters, /latency, /latency/dump, /ready. It runs on its own thread
//! off the data path and asks every core for a snapshot over its channel.

use crate::cluster::discovery::Directory;
use crate::runtime::control::Cores;
use crate::stats::{latency, render};
use crate::topology::Topology;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const INDEX: &str = "<!doctype html><html><head><title>keyway admin</title></head><body>\
<h1>keyway</h1><ul>\
<li><a href=\"/stats\">/stats</a>: per-core and total counters (JSON)</li>\
<li><a href=\"/metrics\">/metrics</a>: Prometheus metrics</li>\
<li><a href=\"/clusters\">/clusters</a>: clusters, endpoints and connection state (JSON)</li>\
<li><a href=\"/latency\">/latency</a>: current per-core latency percentiles (JSON)</li>\
<li>POST /latency/dump: write .hgrm latency dumps to the latency directory</li>\
<li><a href=\"/ready\">/ready</a>: 200 while serving</li></ul></body></html>\n";

pub struct Admin {
    pub topo: Arc<Topology>,
    /// Every endpoint (discovered ones too) and each Redis Cluster's state.
    pub directory: Arc<Mutex<Directory>>,
    pub cores: Cores,
    pub stopping: Arc<AtomicBool>,
}

impl Admin {
    /// Serves until the process ends (the thread is detached).
    pub fn spawn(self, listener: TcpListener) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("keyway-admin".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let _ = self.handle(stream);
                }
            })?;
        Ok(())
    }

    fn handle(&self, mut stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf);
        let mut parts = head.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let (status, ctype, body) = self.route(method, path);
        let header = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(header.as_bytes())?;
        stream.write_all(body.as_bytes())
    }

    fn directory(&self) -> Directory {
        self.directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn route(&self, method: &str, path: &str) -> (&'static str, &'static str, String) {
        const JSON: &str = "application/json";
        const TEXT: &str = "text/plain; charset=utf-8";
        if method != "GET" && method != "POST" {
            return ("405 Method Not Allowed", TEXT, "GET or POST\n".into());
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
                render::stats_json(&self.topo, &self.directory(), &self.cores.snapshots()),
            ),
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render::prometheus(&self.topo, &self.directory(), &self.cores.snapshots()),
            ),
            "/clusters" => (
                "200 OK",
                JSON,
                render::clusters_json(&self.topo, &self.directory(), &self.cores.snapshots()),
            ),
            "/latency" => (
                "200 OK",
                JSON,
                render::latency_json(&self.cores.snapshots()),
            ),
            "/latency/dump" => {
                let dir = &self.topo.config.latency_dir;
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
