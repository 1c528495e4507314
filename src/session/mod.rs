//! The session layer: one client connection (`connection`) and the ways a
//! command executes once it is read (see `dispatch`). This file holds what
//! they share: the core's context a session serves under, and the
//! per-client state (`Client`) the ways work on.
pub mod blocking;
pub mod clients;
pub mod connection;
pub mod dispatch;
pub mod fanout;
pub mod gather;
pub mod hot_keys;
pub mod huge;
pub mod info;
pub mod local;
pub mod plan;
pub mod pubsub;
pub mod replies;
pub mod reshard;
pub mod targets;
pub mod transaction;

pub use connection::serve;

use crate::resp::errors::ErrorReply;
use crate::resp::write::Protocol;
use crate::resp::Limits;
use crate::stats::{CoreStats, ErrorKind};
use crate::topology::Topology;
use crate::upstream::Upstreams;
use replies::Replies;
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

/// What a core gives each of its sessions.
pub struct CoreContext {
    pub topo: Arc<Topology>,
    pub upstreams: Rc<Upstreams>,
    pub limits: Limits,
    pub max_pending: usize,
    /// Replies bounded in bytes (issue 12): per client, and for the core.
    pub output: OutputLimits,
    pub stats: Rc<CoreStats>,
    /// The backends' version HELLO and INFO report.
    pub backend_version: Rc<info::BackendVersion>,
    /// This core's clients (CLIENT LIST/KILL) and every core's inbox.
    pub clients: Rc<clients::Registry>,
    /// The configuration generation this context serves (1 at start-up,
    /// one more per reload).
    pub generation: u64,
    /// One more per context the core made (reloads, health changes).
    pub version: u64,
    /// The core's newest context: sessions move to it between requests.
    pub latest: Rc<Latest>,
    /// A cluster of this generation is being resharded (`reshard`).
    pub resharding: bool,
    /// The keys this core moved for the migrations it serves.
    pub moved: Rc<RefCell<reshard::Moved>>,
}

/// A core's newest `CoreContext`. A reload makes a new context (topology,
/// connections, limits); each session moves to it before its next request,
/// while its requests in flight finish on the connections they went to.
#[derive(Default)]
pub struct Latest {
    ctx: RefCell<Option<Rc<CoreContext>>>,
    version: Cell<u64>,
    /// Sessions waiting on a blocking command or subscribed, which look at
    /// a new context at once (see `changed`); gone with their sessions.
    watchers: RefCell<Vec<std::rc::Weak<ReloadWatch>>>,
}

/// A session's place among those a new context wakes (see `Latest::watch`).
#[derive(Default)]
pub struct ReloadWatch(Cell<Option<std::task::Waker>>);

impl Latest {
    pub fn set(&self, ctx: Rc<CoreContext>) {
        self.version.set(ctx.version);
        *self.ctx.borrow_mut() = Some(ctx);
        self.watchers.borrow_mut().retain(|w| match w.upgrade() {
            Some(w) => {
                if let Some(waker) = w.0.take() {
                    waker.wake();
                }
                true
            }
            None => false,
        });
    }

    /// A registration for `changed`, kept by the session that waits.
    pub fn watch(&self) -> Rc<ReloadWatch> {
        let me = Rc::new(ReloadWatch::default());
        let mut watchers = self.watchers.borrow_mut();
        // Sessions come and go between reloads: forget the gone ones
        // whenever the list doubled.
        if watchers.len() >= 64 && watchers.len().is_power_of_two() {
            watchers.retain(|w| w.strong_count() > 0);
        }
        watchers.push(Rc::downgrade(&me));
        me
    }

    /// Resolves once the newest context is not `version` any more.
    pub async fn changed(&self, me: &ReloadWatch, version: u64) {
        poll_fn(|cx| {
            if self.version.get() != version {
                return Poll::Ready(());
            }
            me.0.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }

    /// The newest context (set before any session starts).
    pub fn get(&self) -> Rc<CoreContext> {
        self.ctx
            .borrow()
            .clone()
            .expect("a core sets its context before it accepts")
    }

    /// The newest context's `version`.
    pub fn version(&self) -> u64 {
        self.version.get()
    }
}

/// Moves a session to its core's newest context, if a reload made one: what
/// it reads next is routed by the new configuration. An open transaction
/// or WATCH moves with it (see `transaction`: EXEC places its keys again).
#[inline(always)]
fn follow_reload(ctx: &mut Rc<CoreContext>, client: &mut Client) {
    if ctx.version != ctx.latest.version() {
        move_to_latest(ctx, client);
    }
}

/// The reload's side of `follow_reload`, out of the per-request path.
#[cold]
fn move_to_latest(ctx: &mut Rc<CoreContext>, client: &mut Client) {
    let next = ctx.latest.get();
    transaction::follow(client, &ctx.upstreams, &next.upstreams);
    if !client.blocking.is_empty() {
        blocking::follow(ctx, &next, client);
    }
    pubsub::follow(ctx, &next, client);
    // WAIT waits on the primaries this client wrote to: keep those the new
    // configuration still has.
    let written = client.written();
    client.written.clear();
    for e in written {
        if let Some(n) = next.upstreams.same_as(&ctx.upstreams, e) {
            client.wrote_to(n);
        }
    }
    *ctx = next;
}

/// How many reply bytes clients may make keyway hold.
pub struct OutputLimits {
    /// A client whose replies (buffered, or expected for the requests in
    /// flight) reach this stops being read until they are sent.
    pub soft: usize,
    /// A client whose buffered replies would pass this is closed (0: never).
    pub hard: usize,
    /// This core's share of `max_output_memory`: past it, every client is
    /// read one request at a time, so heavy non-readers cannot add more,
    /// and subscribers behind on their messages are not read for.
    pub budget: usize,
    /// Reply bytes of this core's clients waiting to be sent.
    pub held: Rc<Held>,
    /// What a subscriber's messages waiting to be sent may reach.
    pub pubsub: pubsub::Limits,
}

/// Reply and message bytes a core's clients have waiting to be sent, and
/// the subscriber connections waiting for that to fall under the budget.
#[derive(Default)]
pub struct Held {
    bytes: Cell<usize>,
    paused: RefCell<Vec<std::task::Waker>>,
}

impl Held {
    pub fn get(&self) -> usize {
        self.bytes.get()
    }

    pub fn add(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n);
    }

    /// `n` bytes were sent (or dropped): paused subscriber connections
    /// look again.
    pub fn sub(&self, n: usize) {
        self.bytes.set(self.bytes.get().saturating_sub(n));
        if !self.paused.borrow().is_empty() {
            for w in self.paused.take() {
                w.wake();
            }
        }
    }

    /// Wakes `waker` at the next `sub`.
    pub fn wake_at_next_sub(&self, waker: &std::task::Waker) {
        self.paused.borrow_mut().push(waker.clone());
    }
}

/// Replies handed to a client's socket are held until they leave it.
impl crate::net::Outflow for Held {
    fn gone(&self, bytes: usize) {
        self.sub(bytes);
    }
}

/// Per-client state the dispatcher works on (everything but the read buffer,
/// whose slices the requests are).
pub struct Client {
    pub id: u64,
    pub proto: Protocol,
    /// The database SELECT chose: its requests go over connections that
    /// selected it.
    pub db: u16,
    /// What CLIENT LIST shows of this client (its name lives there).
    me: clients::Registered,
    /// The primaries this client sent writes to, as a bitset of endpoint
    /// numbers (WAIT waits on them).
    written: Vec<u64>,
    /// CLIENT REPLY: whether replies are written.
    reply_mode: ReplyMode,
    /// The command just run was CLIENT REPLY.
    reply_mode_set: bool,
    pub close: bool,
    /// False until AUTH succeeds when the proxy has a password.
    pub authenticated: bool,
    /// AUTH attempts with wrong credentials on this connection.
    auth_failures: u32,
    replies: Rc<RefCell<Replies>>,
    keys: Vec<usize>,
    targets: Vec<targets::Target>,
    /// xorshift state for mirror fractions.
    rng: u64,
    stats: Rc<CoreStats>,
    /// Requests of the current batch per latency group.
    groups: [u64; 4],
    /// An open MULTI: its commands are queued here until EXEC.
    tx: Option<Box<transaction::Transaction>>,
    /// Connections of this batch's blocking commands: shut down once the
    /// batch is answered or the client leaves.
    blocked: Vec<Rc<crate::upstream::conn::Conn>>,
    /// This batch's keyed blocking commands (a reload may move their keys).
    blocking: Vec<blocking::Blocked>,
    /// Blocked or subscribed, the session hears of reloads at once.
    reload_watch: Option<Rc<ReloadWatch>>,
    /// A WATCH's connection, until EXEC, DISCARD or UNWATCH.
    watch: Option<transaction::Watch>,
    /// Subscribed to channels or patterns (pub/sub mode).
    pubsub: Option<pubsub::PubSub>,
    /// A split command too big to send at once, on its way a slice at a
    /// time: nothing after it is dispatched until it is sent.
    huge: Option<Box<huge::HugeCommand>>,
    /// What the next request waits for: its moving keys (see `reshard`).
    reshard: Option<Box<reshard::Pending>>,
}

/// CLIENT REPLY ON|OFF|SKIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped.
    Skip,
}

impl Drop for Client {
    /// A client that leaves closes the connections it had to itself: a
    /// blocking command's (so the backend pops nothing for it) and a
    /// WATCH's.
    fn drop(&mut self) {
        transaction::unwatch(self);
        if let Some(ps) = self.pubsub.take() {
            ps.close();
        }
        for conn in self.blocked.drain(..) {
            conn.shut_down();
        }
    }
}

impl Client {
    /// Notes that a write went to `endpoint`.
    #[inline(always)]
    pub fn wrote_to(&mut self, endpoint: usize) {
        let (word, bit) = (endpoint / 64, endpoint % 64);
        match self.written.get_mut(word) {
            Some(w) => *w |= 1 << bit,
            None => self.wrote_to_new_word(word, bit),
        }
    }

    /// `wrote_to` for an endpoint past the words noted so far.
    #[cold]
    fn wrote_to_new_word(&mut self, word: usize, bit: usize) {
        self.written.resize(word + 1, 0);
        self.written[word] |= 1 << bit;
    }

    /// The endpoints this client wrote to.
    pub fn written(&self) -> Vec<usize> {
        (0..self.written.len() * 64)
            .filter(|&e| self.written[e / 64] & (1 << (e % 64)) != 0)
            .collect()
    }

    pub fn set_db(&mut self, db: u16) {
        self.db = db;
        self.me.entry.db.set(db);
    }

    pub fn set_proto(&mut self, proto: Protocol) {
        self.proto = proto;
        self.me.entry.resp.set(proto);
    }

    /// Shows the client's transaction, blocking and pub/sub state in
    /// CLIENT LIST (once per batch read, not per request).
    fn show_state(&self) {
        self.me.entry.show(
            self.tx.as_ref().map(|t| t.queued()),
            !self.blocked.is_empty(),
            self.pubsub.as_ref().map_or((0, 0), |p| p.counts()),
        );
    }

    pub fn reply(&self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.replies.borrow_mut().push_local(encode);
    }

    /// Answers an error reply already worded (a backend's, or one of
    /// `ErrorReply` carried as text).
    pub fn error(&self, msg: &str) {
        self.fail(ErrorKind::Other, msg);
    }

    /// Answers `e`.
    pub fn refuse(&self, e: ErrorReply) {
        self.refuse_as(ErrorKind::Other, e);
    }

    /// Answers `e`, counted as `kind`.
    pub fn refuse_as(&self, kind: ErrorKind, e: ErrorReply) {
        self.fail(kind, &e.to_string());
    }

    /// A uniform draw in [0, 1) (xorshift64*), for mirror fractions.
    pub fn next_fraction(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn fail(&self, kind: ErrorKind, msg: &str) {
        self.stats.error(kind);
        self.replies.borrow_mut().push_error(msg);
    }
}
