//! A blocking connection to one endpoint, for the control side (slot
//! discovery, health checks): TLS and AUTH as its cluster is configured,
//! one command at a time, timeouts on the socket. Never on a core.

use crate::config::Cluster;
use crate::resp::reply::{ReplyError, ReplyScanner};
use crate::resp::value::Value;
use crate::resp::write;
use crate::tls;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Why a probe's command got no usable reply.
#[derive(Debug)]
pub enum ProbeError {
    Connect(io::Error),
    /// Neither the configured name nor the address makes a TLS name.
    NoServerName,
    Tls(rustls::Error),
    Handshake(io::Error),
    /// The server's error reply to AUTH.
    Auth(String),
    /// The server's error reply to a command (named as sent).
    Refused {
        command: &'static str,
        reply: String,
    },
    /// A reply that is RESP but not the shape the command answers.
    Unexpected(&'static str),
    TimedOut,
    Io(io::Error),
    Protocol(ReplyError),
    Malformed,
    TooLarge,
    Closed,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Connect(e) => write!(f, "connect failed: {e}"),
            ProbeError::NoServerName => f.write_str("no usable TLS server name"),
            ProbeError::Tls(e) => write!(f, "TLS: {e}"),
            ProbeError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            ProbeError::Auth(e) => write!(f, "authentication failed: {e}"),
            ProbeError::Refused { command, reply } => write!(f, "{command}: {reply}"),
            ProbeError::Unexpected(command) => write!(f, "unexpected {command} reply"),
            ProbeError::TimedOut => f.write_str("timed out"),
            ProbeError::Io(e) => write!(f, "{e}"),
            ProbeError::Protocol(e) => write!(f, "{e}"),
            ProbeError::Malformed => f.write_str("malformed reply"),
            ProbeError::TooLarge => f.write_str("reply too large"),
            ProbeError::Closed => f.write_str("connection closed"),
        }
    }
}

/// `reply`, or the refusal it is (an error reply to `command`).
fn refused_as(command: &'static str, reply: Value) -> Result<Value, ProbeError> {
    match reply {
        Value::Error(reply) => Err(ProbeError::Refused { command, reply }),
        v => Ok(v),
    }
}

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
    ) -> Result<Probe, ProbeError> {
        let tcp = TcpStream::connect_timeout(&addr, connect).map_err(ProbeError::Connect)?;
        let _ = tcp.set_read_timeout(Some(io));
        let _ = tcp.set_write_timeout(Some(io));
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn ReadWrite + Send> = match &cluster.tls {
            None => Box::new(tcp),
            Some(t) => {
                let name = tls::server_name(t.settings.server_name.as_deref(), host)
                    .or_else(|| tls::server_name(None, &addr.ip().to_string()))
                    .ok_or(ProbeError::NoServerName)?;
                let conn = rustls::ClientConnection::new(t.client.clone(), name)
                    .map_err(ProbeError::Tls)?;
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                while tls.conn.is_handshaking() {
                    tls.conn
                        .complete_io(&mut tls.sock)
                        .map_err(ProbeError::Handshake)?;
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
                return Err(ProbeError::Auth(e));
            }
        }
        Ok(probe)
    }

    /// One request and its reply, an error reply included.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Value, ProbeError> {
        let mut req = Vec::new();
        write::array_header(&mut req, args.len());
        for a in args {
            write::bulk(&mut req, a);
        }
        self.raw(&req)
    }

    /// `command` (`args`, named so in errors) and its reply; an error reply
    /// is `ProbeError::Refused`.
    pub fn call(&mut self, command: &'static str, args: &[&[u8]]) -> Result<Value, ProbeError> {
        refused_as(command, self.command(args)?)
    }

    /// `call` for a request already encoded (`req`).
    pub fn call_raw(&mut self, command: &'static str, req: &[u8]) -> Result<Value, ProbeError> {
        refused_as(command, self.raw(req)?)
    }

    /// One request already encoded (`req`) and its reply.
    pub fn raw(&mut self, req: &[u8]) -> Result<Value, ProbeError> {
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProbeError::TimedOut,
            _ => ProbeError::Io(e),
        };
        self.stream.write_all(req).map_err(io_err)?;
        self.stream.flush().map_err(io_err)?;
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut scanner = ReplyScanner::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(len) = scanner.scan(&buf).map_err(ProbeError::Protocol)? {
                return Value::parse(&buf[..len])
                    .map(|(v, _)| v)
                    .ok_or(ProbeError::Malformed);
            }
            if buf.len() > 64 * 1024 * 1024 {
                return Err(ProbeError::TooLarge);
            }
            let n = self.stream.read(&mut chunk).map_err(io_err)?;
            if n == 0 {
                return Err(ProbeError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}
