//! Requests to a Redis Cluster carry what they need to be sent again:
//! `-MOVED slot host:port` → this core's slot map is fixed at once, a
//! refresh is asked for, and the request goes to the named node;
//! `-ASK slot host:port` → `ASKING` then the request on that node, once;
//! `-TRYAGAIN` / `-CLUSTERDOWN` → sent again after a short pause. All
//! within op_timeout and a few redirections; then the last reply stands.

use super::conn::Conn;
use super::pool::Upstreams;
use super::waiter::{Redirectable, Waiter};
use crate::resp::errors::ErrorReply;
use crate::resp::write::Protocol;
use crate::stats::RedirectCounter;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// MOVED/ASK hops one request may take.
const MAX_REDIRECTS: u8 = 5;
const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";

/// Sends a request for `slot` of Redis Cluster `cluster` on `conn`,
/// keeping a copy of it so that a redirection can send it again; `waiter`
/// gets the reply that ends it, within op_timeout.
pub fn send(
    upstreams: &Rc<Upstreams>,
    conn: &Rc<Conn>,
    (cluster, slot): (usize, u16),
    proto: Protocol,
    encode: impl FnOnce(&mut Vec<u8>),
    waiter: Waiter,
) {
    let mut bytes = Vec::new();
    encode(&mut bytes);
    let request: Rc<[u8]> = Rc::from(bytes);
    let redirect = Redirect {
        waiter,
        request: request.clone(),
        cluster: cluster as u32,
        slot,
        proto,
        hops: 0,
        tries: 0,
        deadline: Instant::now() + upstreams.op_timeout(),
        upstreams: upstreams.clone(),
    };
    conn.send(
        |buf| buf.extend_from_slice(&request),
        Waiter::Redirectable(Box::new(redirect)),
    );
}

struct Redirect {
    /// Who gets the final reply: a client slot or a mirror's counters.
    waiter: Waiter,
    /// The request exactly as sent.
    request: Rc<[u8]>,
    cluster: u32,
    slot: u16,
    proto: Protocol,
    hops: u8,
    /// TRYAGAIN / CLUSTERDOWN answers met (for the pause before the next).
    tries: u8,
    deadline: Instant,
    upstreams: Rc<Upstreams>,
}

enum Answer<'a> {
    Moved(u16, &'a str),
    Ask(&'a str),
    Retry,
    Final,
}

fn classify(reply: &[u8]) -> Answer<'_> {
    if reply.first() != Some(&b'-') {
        return Answer::Final;
    }
    let line = reply[1..].strip_suffix(b"\r\n").unwrap_or(&reply[1..]);
    let Ok(line) = std::str::from_utf8(line) else {
        return Answer::Final;
    };
    let words: Vec<&str> = line.splitn(4, ' ').collect();
    let target = || {
        let slot = words.get(1)?.parse::<u16>().ok().filter(|s| *s < 16384)?;
        Some((slot, *words.get(2)?))
    };
    match words.first().copied() {
        Some("MOVED") => target().map_or(Answer::Final, |(s, t)| Answer::Moved(s, t)),
        Some("ASK") => target().map_or(Answer::Final, |(_, t)| Answer::Ask(t)),
        Some("TRYAGAIN") | Some("CLUSTERDOWN") => Answer::Retry,
        _ => Answer::Final,
    }
}

impl Redirectable for Redirect {
    /// The reply to a request sent to a cluster node.
    fn complete(mut self: Box<Self>, reply: &[u8]) {
        let answer = classify(reply);
        if matches!(answer, Answer::Final) {
            return self.waiter.complete(reply);
        }
        let up = self.upstreams.clone();
        let cluster = self.cluster as usize;
        let now = Instant::now();
        let redirect = matches!(answer, Answer::Moved(..) | Answer::Ask(..));
        if now >= self.deadline || (redirect && self.hops >= MAX_REDIRECTS) {
            return self.waiter.complete(reply);
        }
        if redirect {
            self.hops += 1;
        }
        match answer {
            Answer::Moved(slot, target) => {
                up.stats().redirect(cluster, RedirectCounter::Moved);
                up.ask_refresh(cluster);
                match up.node(cluster, target) {
                    Some(endpoint) => {
                        up.moved(cluster, slot, endpoint);
                        self.slot = slot;
                        self.send_to(endpoint, false);
                    }
                    None => self.after_refresh(target.to_string(), false, reply),
                }
            }
            Answer::Ask(target) => {
                up.stats().redirect(cluster, RedirectCounter::Ask);
                match up.node(cluster, target) {
                    Some(endpoint) => self.send_to(endpoint, true),
                    None => {
                        up.ask_refresh(cluster);
                        self.after_refresh(target.to_string(), true, reply)
                    }
                }
            }
            Answer::Retry => {
                up.stats().redirect(cluster, RedirectCounter::Retried);
                // Bounded by op_timeout alone: a CLUSTERDOWN may last a moment.
                let pause = Duration::from_millis(10 << self.tries.min(4));
                if now + pause >= self.deadline {
                    return self.waiter.complete(reply);
                }
                self.tries += 1;
                crate::net::spawn(async move {
                    crate::net::sleep(pause).await;
                    self.resend();
                })
                .detach();
            }
            Answer::Final => unreachable!("handled above"),
        }
    }

    /// A connection failure or timeout: the cluster may have changed.
    fn fail(self: Box<Self>, msg: &str) {
        self.upstreams.ask_refresh(self.cluster as usize);
        self.waiter.fail(msg);
    }

    fn is_mirror(&self) -> bool {
        self.waiter.is_mirror()
    }
}

impl Redirect {
    /// Sends again to whoever serves the slot now.
    fn resend(self: Box<Self>) {
        let owner = {
            let maps = self.upstreams.slot_maps();
            maps[self.cluster as usize]
                .as_ref()
                .and_then(|m| m.shard(self.slot))
                .map(|s| s.primary)
        };
        match owner {
            Some(endpoint) => self.send_to(endpoint, false),
            None => self.waiter.fail(&ErrorReply::ClusterDown.to_string()),
        }
    }

    fn send_to(self: Box<Self>, endpoint: usize, asking: bool) {
        let conn = self.upstreams.conn(endpoint, self.proto);
        if asking {
            conn.send(|buf| buf.extend_from_slice(ASKING), Waiter::Ignore);
        }
        let request = self.request.clone();
        conn.send(
            |buf| buf.extend_from_slice(&request),
            Waiter::Redirectable(self),
        );
    }

    /// The named node is new to this core: wait (within op_timeout) for the
    /// refreshed slot map that knows it, then go there.
    fn after_refresh(self: Box<Self>, target: String, asking: bool, reply: &[u8]) {
        let reply: Rc<[u8]> = Rc::from(reply);
        crate::net::spawn(async move {
            loop {
                if let Some(endpoint) = self.upstreams.node(self.cluster as usize, &target) {
                    return self.send_to(endpoint, asking);
                }
                if Instant::now() >= self.deadline {
                    return self.waiter.complete(&reply);
                }
                crate::net::sleep(Duration::from_millis(10)).await;
            }
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirections_are_recognised() {
        assert!(matches!(
            classify(b"-MOVED 3999 127.0.0.1:6381\r\n"),
            Answer::Moved(3999, "127.0.0.1:6381")
        ));
        assert!(matches!(
            classify(b"-ASK 1 node-a.example:7000\r\n"),
            Answer::Ask("node-a.example:7000")
        ));
        assert!(matches!(
            classify(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Answer::Retry
        ));
        assert!(matches!(
            classify(b"-CLUSTERDOWN The cluster is down\r\n"),
            Answer::Retry
        ));
        assert!(matches!(classify(b"-MOVED 99999 x:1\r\n"), Answer::Final));
        assert!(matches!(classify(b"-MOVED\r\n"), Answer::Final));
        assert!(matches!(classify(b"-ERR MOVED 1 x:1\r\n"), Answer::Final));
        assert!(matches!(classify(b"+OK\r\n"), Answer::Final));
    }
}
