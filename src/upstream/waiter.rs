//! Where an upstream reply goes: the completion interface between a
//! connection and whoever sent on it. Defined here, below the session, so
//! that a connection completes a request without knowing who asked: a
//! session's reply slots come in through `ReplySlots`, a Redis Cluster
//! request that may be redirected through `Redirectable`.

use crate::resp::errors::ErrorReply;
use crate::resp::reply;
use crate::stats::{CoreStats, MirrorCounter};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

/// A session's reply slots, as a connection sees them.
pub trait ReplySlots {
    /// `part` of the request in `slot` got its reply.
    fn fill(&self, slot: usize, part: usize, reply: &[u8]);
    /// `part` of the request in `slot` failed; `msg` starts with its code.
    fn fail(&self, slot: usize, part: usize, msg: &str);
    /// When the requests being dispatched now reached keyway (see
    /// `Conn::gave_up_on`); None: as they arrive.
    fn arrived(&self) -> Option<Instant>;
}

/// A request whose reply may first send it elsewhere (a MOVED, ASK or
/// TRYAGAIN from a Redis Cluster node): see `upstream::redirect`.
pub trait Redirectable {
    fn complete(self: Box<Self>, reply: &[u8]);
    fn fail(self: Box<Self>, msg: &str);
    /// Whether the waiter it finally completes is a mirror's.
    fn is_mirror(&self) -> bool;
}

/// Where an upstream reply goes: a slot (and part) of one session's batch,
/// or nowhere but the mirror counters for a mirrored copy.
pub enum Waiter {
    Client {
        replies: Rc<dyn ReplySlots>,
        slot: u32,
        part: u32,
    },
    Mirror {
        stats: Rc<CoreStats>,
        cluster: u32,
    },
    /// A request to a Redis Cluster node: follows MOVED/ASK/TRYAGAIN
    /// before its inner waiter gets the reply. Made inside `upstream` only.
    Redirectable(Box<dyn Redirectable>),
    /// A reply nobody needs (ASKING before a redirected request).
    Ignore,
    /// A blocking command keyway may unblock on its backend (a reload moved
    /// its key): its error reply is then keyway's word for that.
    Unblockable {
        waiter: Box<Waiter>,
        unblocked: Rc<Cell<bool>>,
    },
    /// A reply keyway reads itself (a connection's CLIENT ID, the result
    /// of a CLIENT UNBLOCK); Err: the request failed with that error.
    Then(Box<dyn FnOnce(Answer)>),
}

/// What `Waiter::Then` is called with: the reply, or the request's error.
pub type Answer<'a> = Result<&'a [u8], &'a str>;

impl Waiter {
    pub fn new<R: ReplySlots + 'static>(replies: &Rc<R>, slot: usize, part: usize) -> Waiter {
        Waiter::Client {
            replies: replies.clone(),
            slot: slot as u32,
            part: part as u32,
        }
    }

    pub fn mirror(stats: &Rc<CoreStats>, cluster: usize) -> Waiter {
        Waiter::Mirror {
            stats: stats.clone(),
            cluster: cluster as u32,
        }
    }

    /// When the request reached keyway (see `ReplySlots::arrived`). None
    /// for requests keyway makes itself, and for redirections, which keep
    /// a deadline of their own.
    pub fn arrived(&self) -> Option<Instant> {
        match self {
            Waiter::Client { replies, .. } => replies.arrived(),
            Waiter::Mirror { .. }
            | Waiter::Redirectable(_)
            | Waiter::Ignore
            | Waiter::Unblockable { .. }
            | Waiter::Then(_) => None,
        }
    }

    /// No client waits on it (its errors are not the client's errors).
    pub fn is_mirror(&self) -> bool {
        match self {
            Waiter::Client { .. } => false,
            Waiter::Redirectable(r) => r.is_mirror(),
            Waiter::Unblockable { waiter, .. } => waiter.is_mirror(),
            Waiter::Mirror { .. } | Waiter::Ignore | Waiter::Then(_) => true,
        }
    }

    pub fn complete(self, reply: &[u8]) {
        match self {
            Waiter::Client {
                replies,
                slot,
                part,
            } => replies.fill(slot as usize, part as usize, reply),
            Waiter::Mirror { stats, cluster } => {
                if reply::is_error(reply) {
                    stats.mirror(cluster as usize, MirrorCounter::Failed);
                }
            }
            Waiter::Redirectable(r) => r.complete(reply),
            Waiter::Ignore => {}
            Waiter::Unblockable { waiter, unblocked } => {
                if unblocked.get() && reply::is_error(reply) {
                    waiter.fail(&ErrorReply::UnblockedByReload.to_string())
                } else {
                    waiter.complete(reply)
                }
            }
            Waiter::Then(then) => then(Ok(reply)),
        }
    }

    /// Completes with an error reply; `msg` starts with its code.
    pub fn fail(self, msg: &str) {
        match self {
            Waiter::Client {
                replies,
                slot,
                part,
            } => replies.fail(slot as usize, part as usize, msg),
            Waiter::Mirror { stats, cluster } => {
                stats.mirror(cluster as usize, MirrorCounter::Failed)
            }
            Waiter::Redirectable(r) => r.fail(msg),
            Waiter::Ignore => {}
            Waiter::Unblockable { waiter, .. } => waiter.fail(msg),
            Waiter::Then(then) => then(Err(msg)),
        }
    }
}
