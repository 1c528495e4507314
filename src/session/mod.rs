//! One client connection: read what is available, scan every complete
//! request, dispatch them all (to upstreams or answered locally), wait for
//! their replies, and write them back in request order in one write.
pub mod blocking;
pub mod clients;
pub mod dispatch;
pub mod fanout;
pub mod gather;
pub mod info;
pub mod local;
pub mod plan;
pub mod pubsub;
pub mod replies;
pub mod transaction;

use crate::net::notify::{race, Either};
use crate::net::{Input, Stream};
use crate::resp::errors::ErrorReply;
use crate::resp::request::{Request, RequestScanner, Scanned};
use crate::resp::write::Protocol;
use crate::resp::Limits;
use crate::stats::{CoreCounter, CoreStats, ErrorKind};
use crate::topology::Topology;
use crate::upstream::Upstreams;
use replies::{Fold, Replies};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

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
#[inline]
fn follow_reload(ctx: &mut Rc<CoreContext>, client: &mut Client) {
    if ctx.version == ctx.latest.version() {
        return;
    }
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
    targets: Vec<plan::Target>,
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
    huge: Option<Box<plan::HugeCommand>>,
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
    #[inline]
    pub fn wrote_to(&mut self, endpoint: usize) {
        let (word, bit) = (endpoint / 64, endpoint % 64);
        if word >= self.written.len() {
            self.written.resize(word + 1, 0);
        }
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

/// How long a session closed by a drain waits for its client to close,
/// discarding what it still sends: closing with unread bytes would reset
/// the connection, and a reset can destroy replies the client has not
/// read yet.
const LINGER: Duration = Duration::from_secs(2);

/// The end of a session during a drain: every reply it owed was sent; the
/// client reads them, then end-of-stream.
async fn close_after_drain(stream: &Stream, ctx: &CoreContext, fd: i32) {
    ctx.stats.count(CoreCounter::DrainClosed, 1);
    stream.linger_close(fd, LINGER).await;
}

/// Serves one client connection, registered as `me` (how CLIENT LIST/KILL
/// and a drain reach it).
pub async fn serve(stream: Stream, mut ctx: Rc<CoreContext>, me: clients::Registered) {
    let id = me.entry.id;
    let mut reader = Reader {
        scanner: RequestScanner::new(ctx.limits),
        need: 1,
        held_back: false,
    };
    let mut client = Client {
        id,
        proto: Protocol::Resp2,
        db: 0,
        me,
        written: Vec::new(),
        reply_mode: ReplyMode::On,
        reply_mode_set: false,
        close: false,
        authenticated: ctx.topo.config.password.is_none(),
        auth_failures: 0,
        replies: Replies::with_hard_limit(ctx.output.hard),
        keys: Vec::new(),
        targets: Vec::new(),
        rng: id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        stats: ctx.stats.clone(),
        groups: [0; 4],
        tx: None,
        blocked: Vec::new(),
        blocking: Vec::new(),
        reload_watch: None,
        huge: None,
        watch: None,
        pubsub: None,
    };
    let mut read_at = crate::net::now();
    let mut input = Input::new();
    let mut out: Vec<u8> = Vec::new();
    'session: loop {
        // A huge command read last goes before anything after it.
        if client.huge.is_some() {
            Box::pin(send_huge(&ctx, &mut client, &mut reader, &mut input)).await;
        }
        // Requests held back at the pending limit go first.
        if reader.held_back || (input.carried() >= reader.need && input.carried() > 0) {
            input.rescan(|bytes| reader.absorb(&mut ctx, &mut client, bytes));
            if client.huge.is_some() {
                continue;
            }
        }
        if !client.replies.borrow().is_empty() {
            client.me.entry.waiting.set(true);
            let stayed = if client.blocked.is_empty() {
                replies::wait_for_replies(&client.replies).await;
                true
            } else {
                let stayed =
                    Box::pin(wait_blocked(&stream, &mut input, &mut ctx, &mut client)).await;
                // What the client sent meanwhile waited on its own blocking
                // command, not on an unanswering backend.
                client.replies.borrow_mut().set_arrived(crate::net::now());
                stayed
            };
            client.me.entry.waiting.set(false);
            if !client.blocked.is_empty() {
                for conn in client.blocked.drain(..) {
                    conn.shut_down();
                }
                client.blocking.clear();
                client.me.entry.blocked.set(false);
            }
            if !stayed {
                break 'session;
            }
            if client.replies.borrow().overflowed() {
                close_over_limit(&ctx);
                break 'session;
            }
            client.replies.borrow_mut().take_output(&mut out);
            let len = out.len();
            let held = &ctx.output.held;
            held.add(len);
            let sending = crate::net::now();
            let sent = stream.send(&mut out).await;
            held.sub(len);
            if sent.is_err() {
                break 'session;
            }
            // Requests still carried were not waiting on a backend meanwhile.
            let took = crate::net::now().saturating_duration_since(sending);
            client.replies.borrow_mut().client_took(took);
            // Taking replies is activity too (client_idle_timeout).
            client.me.entry.touch(crate::net::now());
            ctx.stats.count(CoreCounter::BytesOut, len as u64);
            let took = crate::net::now().saturating_duration_since(read_at);
            ctx.stats.record_batch(&client.groups, took);
            client.groups = [0; 4];
            // Scratch space grown by a huge request goes back too.
            reader.scanner.trim();
            if client.keys.capacity() > 4096 {
                client.keys = Vec::new();
            }
            if client.targets.capacity() > 4096 {
                client.targets = Vec::new();
            }
        }
        if client.close {
            break 'session;
        }
        if reader.held_back {
            continue;
        }
        if let Some(feed) = client.pubsub.as_ref().map(|p| p.feed.clone()) {
            // Boxed: the rare modes must not grow every session's future
            // (an idle connection is mostly this future).
            let turn = pubsub_turn(
                &stream,
                &mut ctx,
                &mut client,
                &mut reader,
                &mut input,
                feed,
            );
            match Box::pin(turn).await {
                Some(true) => {
                    read_at = crate::net::now();
                    client.me.entry.touch(read_at);
                }
                Some(false) => {}
                None => break 'session,
            }
            continue;
        }
        // Requests are scanned and dispatched where they arrived; only a
        // request cut at the end of what arrived is carried in `input`.
        let received = stream
            .recv(|piece| {
                ctx.stats.count(CoreCounter::BytesIn, piece.len() as u64);
                client.replies.borrow_mut().set_arrived(crate::net::now());
                input.feed(piece, |bytes| reader.absorb(&mut ctx, &mut client, bytes));
            })
            .await;
        match received {
            Ok(true) => {
                read_at = crate::net::now();
                client.me.entry.touch(read_at);
            }
            Ok(false) | Err(_) => break 'session,
        }
    }
    // The client's state (its registry entry included) goes first.
    let fd = client.me.entry.fd();
    let ended_here = client.close;
    drop(client);
    if ctx.clients.draining() {
        Box::pin(close_after_drain(&stream, &ctx, fd)).await;
    } else if ended_here {
        // QUIT, CLIENT KILL of itself, a protocol error, too many failed
        // AUTHs: the client reads its last replies, then end-of-stream
        // (closing on what it still sends would reset the connection).
        Box::pin(stream.linger_close(fd, LINGER)).await;
    }
}

/// Sends the huge split command the reader just read (see `plan::Huge`) a
/// slice at a time, letting the core's other tasks run between slices; its
/// bytes stay where they were read until then, and are consumed after.
async fn send_huge(ctx: &CoreContext, client: &mut Client, reader: &mut Reader, input: &mut Input) {
    let Some(command) = client.huge.take() else {
        return;
    };
    let plan::HugeCommand { plan: mut huge, at } = *command;
    let frame = match at {
        plan::HugeAt::Carried(len) => &input.carried_bytes()[..len],
        plan::HugeAt::Inline(_) => reader.scanner.inline_frame(),
    };
    let req = Request::new(frame, reader.scanner.args());
    let slot = huge.slot();
    while !huge.step(ctx, client, req) {
        let limit = huge.in_flight();
        replies::replies_until(&client.replies, |r| r.unanswered(slot) <= limit).await;
        futures_lite::future::yield_now().await;
    }
    // A huge MGET's reply is merged a slice at a time as they are answered
    // (not all at once when the last one is).
    for &(parts, keys) in huge.slices() {
        replies::replies_until(&client.replies, |r| r.fold(slot, parts, keys) == Fold::Done).await;
        futures_lite::future::yield_now().await;
    }
    input.consume(at.consumed());
}

/// Waits for a batch with blocking commands (see `blocking::wait`),
/// following reloads meanwhile: a command whose key moved is unblocked.
/// False when the client left first.
async fn wait_blocked(
    stream: &Stream,
    input: &mut Input,
    ctx: &mut Rc<CoreContext>,
    client: &mut Client,
) -> bool {
    let latest = ctx.latest.clone();
    let watch = client
        .reload_watch
        .get_or_insert_with(|| latest.watch())
        .clone();
    let mut recheck = false;
    loop {
        let reloads = (&*latest, &*watch, ctx.version);
        match blocking::wait(stream, input, &client.replies, reloads, recheck).await {
            blocking::Waited::Answered => return true,
            blocking::Waited::Left => return false,
            blocking::Waited::Reloaded => {
                follow_reload(ctx, client);
                recheck = blocking::unblock(client);
            }
        }
    }
}

/// A client past its output limit (client_output_hard_limit, or a
/// subscriber's pub/sub limits) is closed, as Redis closes one over its
/// client-output-buffer-limit, and counted.
fn close_over_limit(ctx: &CoreContext) {
    ctx.stats.count(CoreCounter::OutputLimitClosed, 1);
}

/// One turn of a subscribed client: its commands as they come, messages
/// and confirmations as they come. Some(true): the client sent something;
/// Some(false): the feed had something; None: the session ends.
async fn pubsub_turn(
    stream: &Stream,
    ctx: &mut Rc<CoreContext>,
    client: &mut Client,
    reader: &mut Reader,
    input: &mut Input,
    feed: Rc<RefCell<pubsub::Feed>>,
) -> Option<bool> {
    let latest = ctx.latest.clone();
    let watch = client
        .reload_watch
        .get_or_insert_with(|| latest.watch())
        .clone();
    let version = ctx.version;
    let from_client = stream.recv(|piece| {
        ctx.stats.count(CoreCounter::BytesIn, piece.len() as u64);
        client.replies.borrow_mut().set_arrived(crate::net::now());
        input.feed(piece, |bytes| reader.absorb(ctx, client, bytes));
    });
    let fed = race(pubsub::ready(&feed), latest.changed(&watch, version));
    let read = match race(from_client, fed).await {
        Either::Left(Ok(true)) => true,
        Either::Left(Ok(false) | Err(_)) => return None,
        Either::Right(Either::Left(())) => false,
        Either::Right(Either::Right(())) => {
            follow_reload(ctx, client);
            false
        }
    };
    if client.pubsub.as_ref().is_some_and(|p| p.moved) {
        // Its channels live elsewhere now: it subscribes again there.
        ctx.stats.count(CoreCounter::ReloadMoved, 1);
        crate::info!("a subscriber was closed: a reload moved what it listens to (it subscribes again when it reconnects)");
        return None;
    }
    let (mut pushed, lost, ended, overflowed) = {
        let mut f = feed.borrow_mut();
        (f.take_out(), f.lost, f.ended, f.overflowed)
    };
    if overflowed {
        close_over_limit(ctx);
        return None;
    }
    if !pushed.is_empty() {
        // Replies to commands read in the same turn go first.
        if !client.replies.borrow().is_empty() {
            replies::wait_for_replies(&client.replies).await;
            if client.replies.borrow().overflowed() {
                close_over_limit(ctx);
                return None;
            }
            let mut out = Vec::new();
            client.replies.borrow_mut().take_output(&mut out);
            stream.send(&mut out).await.ok()?;
        }
        let len = pushed.len();
        ctx.stats.count(CoreCounter::BytesOut, len as u64);
        // A client that does not read sits in this send: what comes for it
        // meanwhile is held to its limits, and passing them ends the wait.
        match race(stream.send(&mut pushed), pubsub::overflowed(&feed)).await {
            Either::Left(sent) => sent.ok()?,
            Either::Right(()) => {
                close_over_limit(ctx);
                // Closed in the middle of a send it never read: what the
                // kernel still holds for it goes too, not trickle out.
                crate::net::reset_on_close(client.me.entry.fd());
                return None;
            }
        }
        feed.borrow_mut().sent(len);
    }
    if lost {
        return None;
    }
    if ended {
        if let Some(ps) = client.pubsub.take() {
            ps.close();
        }
    }
    // Confirmations change what CLIENT LIST shows.
    client.show_state();
    Some(read)
}

/// The request side of a session: the scanner and where it stopped.
struct Reader {
    scanner: RequestScanner,
    /// Bytes needed from the start of the carried input before scanning
    /// again is worth it.
    need: usize,
    /// The client has `max_pending` replies outstanding: requests wait.
    held_back: bool,
}

impl Reader {
    /// Dispatches every complete request at the start of `bytes`; returns
    /// how many bytes they took.
    fn absorb(&mut self, ctx: &mut Rc<CoreContext>, client: &mut Client, bytes: &[u8]) -> usize {
        if client.huge.is_some() {
            // A huge command lies at the start of the carried bytes, and
            // the scanner holds its arguments: nothing more is read until
            // it is sent (more may arrive in the same receive).
            return 0;
        }
        let mut pos = 0;
        self.held_back = false;
        while bytes.len() - pos >= self.need && !client.close {
            // Each request is routed by the configuration served when it
            // is read, even within one pipeline.
            follow_reload(ctx, client);
            let ctx: &CoreContext = ctx;
            {
                let r = client.replies.borrow();
                let over_budget = ctx.output.held.get() >= ctx.output.budget && !r.is_empty();
                if r.len() >= ctx.max_pending || r.window_full(ctx.output.soft) || over_budget {
                    self.held_back = true;
                    break;
                }
            }
            // Until a client authenticates, Redis's tighter limits apply.
            self.scanner.set_limits(if client.authenticated {
                ctx.limits
            } else {
                Limits::UNAUTHENTICATED
            });
            match self.scanner.scan(&bytes[pos..]) {
                Ok(Scanned::Frame { len }) => {
                    let req = Request::new(&bytes[pos..pos + len], self.scanner.args());
                    if !dispatch::dispatch(ctx, client, req) {
                        self.held_back = true;
                        break;
                    }
                    if let Some(huge) = &mut client.huge {
                        // Sent a slice at a time from where it lies (see
                        // `send_huge`); what follows waits for it.
                        huge.at = plan::HugeAt::Carried(len);
                        self.held_back = true;
                        self.need = 1;
                        break;
                    }
                    pos += len;
                    self.need = 1;
                }
                Ok(Scanned::Inline { len }) => {
                    let frame = self.scanner.inline_frame();
                    if !dispatch::dispatch(ctx, client, Request::new(frame, self.scanner.args())) {
                        self.held_back = true;
                        break;
                    }
                    if let Some(huge) = &mut client.huge {
                        huge.at = plan::HugeAt::Inline(len);
                        self.held_back = true;
                        self.need = 1;
                        break;
                    }
                    pos += len;
                    self.need = 1;
                }
                Ok(Scanned::Empty { len }) => {
                    pos += len;
                    self.need = 1;
                }
                Ok(Scanned::Incomplete { need }) => {
                    self.need = need;
                    break;
                }
                Err(e) => {
                    client.refuse_as(ErrorKind::Protocol, ErrorReply::Protocol(&e.0));
                    client.close = true;
                }
            }
        }
        client.show_state();
        pos
    }
}
