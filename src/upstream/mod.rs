//! Upstream connections, per core and per endpoint: pipelined, FIFO-matched,
//! shared by every session on the core so their requests coalesce. A
//! request goes in with a `Waiter` and comes back as one reply or one
//! error: Redis Cluster redirections are followed in here (`redirect`), so
//! the session never sees one.
//!
//! Bottom-up: `waiter` (the completion interface) → `handshake` (a
//! connection's first requests) → `conn` (one connection) → `pool` (this
//! core's connections, slot maps, read policy) → `redirect`
//! (MOVED/ASK/TRYAGAIN). `probe` and `reports` serve the
//! control side's checks; `migrate` is the MIGRATE a reshard sends.
pub mod conn;
mod handshake;
pub mod migrate;
pub mod pool;
pub mod probe;
pub mod redirect;
pub mod reports;
pub mod waiter;

pub use pool::{Retired, Upstreams};

use conn::Conn;
use std::rc::Rc;

/// Sends one request for `slot` of `cluster` on `conn` (taken from
/// `upstreams`); `waiter` gets its reply, after any redirections.
pub fn send(
    upstreams: &Rc<Upstreams>,
    conn: &Rc<Conn>,
    (cluster, slot): (usize, u16),
    proto: crate::resp::write::Protocol,
    encode: impl FnOnce(&mut Vec<u8>),
    waiter: waiter::Waiter,
) {
    if upstreams.is_redis_cluster(cluster) {
        redirect::send(upstreams, conn, (cluster, slot), proto, encode, waiter);
    } else {
        conn.send(encode, waiter);
    }
}
