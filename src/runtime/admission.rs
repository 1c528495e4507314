//! Who may connect: the connection rate limit (per core), `max_clients`
//! (process-wide), protected mode, and how a refused client is told.

use crate::net::{Socket, Stream};
use crate::resp::errors::ErrorReply;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The connection rate limit's share of one core: a token bucket refilled
/// at rate/cores per second, holding at most one second's worth.
pub struct Admission {
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Admission {
    pub fn new(limit: Option<u64>, cores: usize) -> Option<Admission> {
        let per_sec = limit? as f64 / cores.max(1) as f64;
        Some(Admission {
            per_sec,
            tokens: per_sec.max(1.0),
            last: Instant::now(),
        })
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let cap = self.per_sec.max(1.0);
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec).min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub trait Admit {
    fn admit(&mut self) -> bool;
}

impl Admit for Option<Admission> {
    fn admit(&mut self) -> bool {
        self.as_mut().is_none_or(|a| a.take())
    }
}

/// Client connections open across all cores, against `max_clients`. A
/// limit on connections is process-wide by nature: one atomic add when a
/// client connects and one when it leaves, never per request.
pub struct ClientSeats {
    open: AtomicUsize,
    max: usize,
}

/// One client's place under `max_clients`, given back on drop.
pub struct Seat(Arc<ClientSeats>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ClientSeats {
    pub fn new(max: usize) -> Arc<ClientSeats> {
        Arc::new(ClientSeats {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A seat, unless `max_clients` are connected already.
    pub fn take(self: &Arc<Self>) -> Option<Seat> {
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        if before >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Seat(self.clone()))
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// Descriptors kept for everything that is not a client: upstream
/// connections (two pools, RESP2 and RESP3, per core and endpoint), the
/// rings, listeners, admin, logs (Redis keeps 32 for its own files).
pub fn reserved_descriptors(cores: usize, upstream_per_core: usize) -> usize {
    64 + 2 * cores * upstream_per_core
}

/// `max_clients` as configured, or derived as Redis derives `maxclients`:
/// 10,000, lowered to what RLIMIT_NOFILE (already raised to its hard
/// limit) leaves after the reserve. A warning says when it was lowered.
pub fn client_limit(
    configured: Option<usize>,
    nofile: u64,
    reserved: usize,
) -> (usize, Option<String>) {
    let room = (nofile as usize).saturating_sub(reserved).max(1);
    let want = configured.unwrap_or(10_000);
    if want <= room {
        return (want, None);
    }
    let why = format!(
        "max_clients {want} needs {} file descriptors but RLIMIT_NOFILE is {nofile}: max_clients is {room} (raise LimitNOFILE / ulimit -n)",
        want + reserved
    );
    (room, Some(why))
}

/// Whether protected mode lets a client from `peer` in: only loopback
/// clients while no password is set (Redis's protected mode).
pub fn protected_mode_admits(peer: Option<SocketAddr>) -> bool {
    match peer.map(|p| p.ip()) {
        Some(IpAddr::V4(ip)) => ip.is_loopback(),
        Some(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

/// How long a refused client may take to read its error before the close.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refused clients a core lets linger at once; past it (a flood) the
/// error is written if the socket takes it at once, and the socket closed.
pub const MAX_LINGERING_REFUSALS: usize = 64;

/// Tells a refused client why, then closes without a reset (see
/// `Stream::linger_close`).
pub async fn refuse(socket: Socket, why: ErrorReply<'static>) {
    let fd = socket.handle().fd();
    let stream = Stream::Plain(socket);
    let mut out = why.frame();
    if stream.send(&mut out).await.is_ok() {
        stream.linger_close(fd, REFUSAL_LINGER).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_stop_at_the_limit_and_come_back() {
        let seats = ClientSeats::new(2);
        let a = seats.take().unwrap();
        let _b = seats.take().unwrap();
        assert!(seats.take().is_none());
        drop(a);
        assert!(seats.take().is_some());
    }

    #[test]
    fn the_limit_fits_the_descriptors() {
        assert_eq!(client_limit(None, 1_048_576, 100), (10_000, None));
        let (n, why) = client_limit(None, 1024, 100);
        assert_eq!(n, 924);
        assert!(why.unwrap().contains("RLIMIT_NOFILE is 1024"));
        assert_eq!(client_limit(Some(50), 1024, 100), (50, None));
    }

    #[test]
    fn protected_mode_admits_loopback_only() {
        let at = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
        assert!(protected_mode_admits(at("127.0.0.1:5000")));
        assert!(protected_mode_admits(at("127.8.0.1:5000")));
        assert!(protected_mode_admits(at("[::1]:5000")));
        assert!(protected_mode_admits(at("[::ffff:127.0.0.1]:5000")));
        assert!(!protected_mode_admits(at("10.1.2.3:5000")));
        assert!(!protected_mode_admits(at("[::ffff:10.1.2.3]:5000")));
        assert!(!protected_mode_admits(None));
    }
}
