//! What upstream connections tell the health monitor (`crate::control::health`):
//! a connection came up, or failed. Here, below both, so that the cores
//! depend on a channel and not on the monitor.

use crossbeam_channel::{bounded, Receiver, Sender};
use std::net::SocketAddr;
use std::time::Duration;

/// What was seen of an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    pub addr: SocketAddr,
    pub seen: Seen,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Seen {
    /// A connection of a core got its first reply that is not an error.
    Answered,
    /// A connection of a core failed: connect, handshake, timeout, reset.
    Failed,
    /// An active check answered PING in this long.
    CheckPassed(Duration),
    CheckFailed,
}

/// Where the cores' connections report what they see. Reports are rare
/// (a failure, a connection's first reply), never per request, and dropped
/// rather than waited for when the monitor is behind.
#[derive(Debug, Clone)]
pub struct Reports(Sender<Observed>);

impl Reports {
    pub fn channel() -> (Reports, Receiver<Observed>) {
        let (tx, rx) = bounded(4096);
        (Reports(tx), rx)
    }

    /// Where the monitor's own checkers send their results.
    pub fn sender(&self) -> Sender<Observed> {
        self.0.clone()
    }

    pub fn answered(&self, addr: SocketAddr) {
        let _ = self.0.try_send(Observed {
            addr,
            seen: Seen::Answered,
        });
    }

    pub fn failed(&self, addr: SocketAddr) {
        let _ = self.0.try_send(Observed {
            addr,
            seen: Seen::Failed,
        });
    }
}
