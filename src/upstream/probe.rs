//! A blocking connection to one endpoint, for the control side (slot
//! discovery, health checks): TLS and AUTH as its cluster is configured,
//! one command at a time, timeouts on the socket. Never on a core.

use crate::config::Cluster;
use crate::resp::reply::ReplyScanner;
use crate::resp::value::Value;
use crate::resp::write;
use crate::tls;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub struct Probe {
    stream: Box<dyn ReadWrite + Send>,
}

impl Probe {
    /// Connects to `addr` (`host` names it for TLS) and authenticates as
    /// `cluster` says; every read and write then waits at most `io`.
    pub fn connect(
        cluster: &Cluster,
        addr: SocketAddr,
        host: &str,
        connect: Duration,
        io: Duration,
    ) -> Result<Probe, String> {
        let tcp = TcpStream::connect_timeout(&addr, connect)
            .map_err(|e| format!("connect failed: {e}"))?;
        let _ = tcp.set_read_timeout(Some(io));
        let _ = tcp.set_write_timeout(Some(io));
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn ReadWrite + Send> = match &cluster.tls {
            None => Box::new(tcp),
            Some(t) => {
                let name = tls::server_name(t.settings.server_name.as_deref(), host)
                    .or_else(|| tls::server_name(None, &addr.ip().to_string()))
                    .ok_or("no usable TLS server name")?;
                let conn = rustls::ClientConnection::new(t.client.clone(), name)
                    .map_err(|e| format!("TLS: {e}"))?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(|e| format!("TLS handshake failed: {e}"))?;
                }
                Box::new(tls)
            }
        };
        let mut probe = Probe { stream };
        if let Some(pass) = &cluster.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(u) = &cluster.username {
                args.push(u.as_bytes());
            }
            args.push(pass.as_bytes());
            if let Value::Error(e) = probe.command(&args)? {
                return Err(format!("authentication failed: {e}"));
            }
        }
        Ok(probe)
    }

    /// One request and its reply.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        let mut req = Vec::new();
        write::array_header(&mut req, args.len());
        for a in args {
            write::bulk(&mut req, a);
        }
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => e.to_string(),
        };
        self.stream.write_all(&req).map_err(io_err)?;
        self.stream.flush().map_err(io_err)?;
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut scanner = ReplyScanner::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(len) = scanner.scan(&buf).map_err(|e| e.0)? {
                return Value::parse(&buf[..len])
                    .map(|(v, _)| v)
                    .ok_or_else(|| "malformed reply".to_string());
            }
            if buf.len() > 64 * 1024 * 1024 {
                return Err("reply too large".into());
            }
            let n = self.stream.read(&mut chunk).map_err(io_err)?;
            if n == 0 {
                return Err("connection closed".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}
