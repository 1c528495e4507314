//! One client connection: read what is available, scan every complete
//! request and dispatch it where it lies (to upstreams or answered
//! locally), wait for the replies, and write them back in request order in
//! one write. A `Connection` owns the stream, the carried input, the
//! scanner, the client's state and the output buffer; its verbs are the
//! steps of that walk: `read_batch`, `dispatch_carried`, `write_replies`.

use super::replies::{self, Fold};
use super::{
    blocking, clients, dispatch, follow_reload, huge, pubsub, reshard, Client, CoreContext,
};
use super::{Replies, ReplyMode};
use crate::net::notify::{race, Either};
use crate::net::{Input, Stream};
use crate::resp::errors::ErrorReply;
use crate::resp::request::{Request, RequestScanner, Scanned};
use crate::resp::write::Protocol;
use crate::resp::Limits;
use crate::stats::{CoreCounter, ErrorKind};
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a session closed by a drain waits for its client to close,
/// discarding what it still sends: closing with unread bytes would reset
/// the connection, and a reset can destroy replies the client has not
/// read yet.
const LINGER: Duration = Duration::from_secs(2);

/// Serves one client connection, registered as `me` (how CLIENT LIST/KILL
/// and a drain reach it).
pub async fn serve(stream: Stream, ctx: Rc<CoreContext>, me: clients::Registered) {
    let mut conn = Connection::new(stream, ctx, me);
    // Whether replies handed to the socket are still owed when the loop
    // ends: not when it ended over a limit or on a failed send.
    let owed = loop {
        // A huge command read last goes before anything after it.
        if conn.client.huge.is_some() {
            Box::pin(conn.send_huge()).await;
        }
        // A request whose keys are moving waits until they moved.
        if conn.client.reshard.is_some() {
            Box::pin(conn.reshard_wait()).await;
        }
        // Requests held back at the pending limit go first.
        if conn.dispatch_carried() {
            continue;
        }
        if !conn.write_replies().await {
            break false;
        }
        if conn.client.close {
            break true;
        }
        if conn.reader.held_back {
            continue;
        }
        let more = if conn.client.pubsub.is_some() {
            // Boxed: the rare modes must not grow every session's future
            // (an idle connection is mostly this future).
            Box::pin(conn.pubsub_turn()).await
        } else {
            let received = conn.read_batch().await;
            conn.batch_read(received)
        };
        if !more {
            // A subscriber's messages were sent before its turn ended.
            break conn.client.pubsub.is_none();
        }
    };
    if owed {
        // They leave before the socket closes; a client that stopped
        // reading them gets `LINGER`. Boxed, as below.
        Box::pin(race(conn.stream.flush(), crate::net::sleep(LINGER))).await;
    }
    // Boxed, and the connection taken apart first: a future holding a
    // second copy of the connection would double every session's size.
    let (stream, ctx, fd, ended_here) = conn.leave();
    if ended_here || ctx.clients.draining() {
        Box::pin(close(stream, ctx, fd, ended_here)).await;
    }
}

/// A client connection and everything its session owns.
struct Connection {
    stream: Stream,
    /// The generation this session serves; a reload moves it on (see
    /// `follow_reload`).
    ctx: Rc<CoreContext>,
    client: Client,
    reader: Reader,
    /// Bytes of a request cut at the end of what arrived.
    input: Input,
    /// Replies on their way to the client.
    out: Vec<u8>,
    /// When the batch being answered was read (its latency's start).
    read_at: Instant,
}

impl Connection {
    fn new(stream: Stream, ctx: Rc<CoreContext>, me: clients::Registered) -> Connection {
        let id = me.entry.id;
        let client = Client {
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
            reshard: None,
        };
        Connection {
            stream,
            reader: Reader {
                scanner: RequestScanner::new(ctx.limits),
                need: 1,
                held_back: false,
            },
            ctx,
            client,
            input: Input::new(),
            out: Vec::new(),
            read_at: crate::net::now(),
        }
    }

    /// Receives what the client sent and dispatches every complete request
    /// where it arrived; only a request cut at the end of what arrived is
    /// carried in `input`. Ok(false): the client closed. (Not an async fn:
    /// the session awaits the receive itself, one state machine less per
    /// request; see `batch_read`.)
    #[inline(always)]
    fn read_batch(&mut self) -> impl Future<Output = std::io::Result<bool>> + '_ {
        let Connection {
            stream,
            ctx,
            client,
            reader,
            input,
            ..
        } = self;
        stream.recv(move |piece| {
            ctx.stats.count(CoreCounter::BytesIn, piece.len() as u64);
            client.replies.borrow_mut().set_arrived(crate::net::now());
            input.feed(piece, |bytes| reader.absorb(ctx, client, bytes));
        })
    }

    /// After `read_batch`: the batch's time starts. False: the client left.
    #[inline(always)]
    fn batch_read(&mut self, received: std::io::Result<bool>) -> bool {
        match received {
            Ok(true) => {
                self.read_at = crate::net::now();
                self.client.me.entry.touch(self.read_at);
                true
            }
            Ok(false) | Err(_) => false,
        }
    }

    /// Dispatches requests carried from an earlier read (held back at the
    /// pending limit, or completed by it). True: a huge command is now on
    /// its way and goes first.
    fn dispatch_carried(&mut self) -> bool {
        let carried = self.input.carried();
        if !(self.reader.held_back || (carried >= self.reader.need && carried > 0)) {
            return false;
        }
        let Connection {
            ctx,
            client,
            reader,
            input,
            ..
        } = self;
        input.rescan(|bytes| reader.absorb(ctx, client, bytes));
        self.client.huge.is_some()
    }

    /// Waits for the replies of the batch dispatched and writes them in
    /// one send. False: the session ends (the client left, or passed its
    /// output limit).
    async fn write_replies(&mut self) -> bool {
        if self.client.replies.borrow().is_empty() {
            return true;
        }
        if !self.wait_replies().await {
            return false;
        }
        let client = &mut self.client;
        if client.replies.borrow().overflowed() {
            close_over_limit(&self.ctx);
            return false;
        }
        client.replies.borrow_mut().take_output(&mut self.out);
        let len = self.out.len();
        let held = &self.ctx.output.held;
        held.add(len);
        let sending = crate::net::now();
        // Handed over, not awaited: the session is not woken again for a
        // send that completes, and its next batch is read meanwhile. A
        // client that stops reading holds it here, at its next replies.
        if self.stream.hand_over(&mut self.out, held).await.is_err() {
            return false;
        }
        let done = crate::net::now();
        // Requests still carried were not waiting on a backend meanwhile.
        client.replies.borrow_mut().client_took(sending, done);
        // Taking replies is activity too (client_idle_timeout).
        client.me.entry.touch(done);
        let stats = &self.ctx.stats;
        stats.count(CoreCounter::BytesOut, len as u64);
        let took = done.saturating_duration_since(self.read_at);
        stats.record_batch(&client.groups, took);
        client.groups = [0; 4];
        // Scratch space grown by a huge request goes back too.
        self.reader.scanner.trim();
        if client.keys.capacity() > 4096 {
            client.keys = Vec::new();
        }
        if client.targets.capacity() > 4096 {
            client.targets = Vec::new();
        }
        true
    }

    /// Waits until every reply of the batch is in; a batch with blocking
    /// commands follows reloads meanwhile. False: the client left first.
    async fn wait_replies(&mut self) -> bool {
        let client = &mut self.client;
        client.me.entry.waiting.set(true);
        let stayed = if client.blocked.is_empty() {
            replies::wait_for_replies(&client.replies).await;
            true
        } else {
            let stayed = Box::pin(self.wait_blocked()).await;
            // What the client sent meanwhile waited on its own blocking
            // command, not on an unanswering backend.
            self.client
                .replies
                .borrow_mut()
                .set_arrived(crate::net::now());
            stayed
        };
        let client = &mut self.client;
        client.me.entry.waiting.set(false);
        if !client.blocked.is_empty() {
            for conn in client.blocked.drain(..) {
                conn.shut_down();
            }
            client.blocking.clear();
            client.me.entry.blocked.set(false);
        }
        stayed
    }

    /// The core's newest context and this session's place among those a
    /// new one wakes (registered on first use).
    fn reload_watch(&mut self) -> (Rc<super::Latest>, Rc<super::ReloadWatch>) {
        let latest = self.ctx.latest.clone();
        let watch = (self.client.reload_watch)
            .get_or_insert_with(|| latest.watch())
            .clone();
        (latest, watch)
    }

    /// Waits for a batch with blocking commands (see `blocking::wait`),
    /// following reloads meanwhile: a command whose key moved is unblocked.
    /// False when the client left first.
    async fn wait_blocked(&mut self) -> bool {
        let (latest, watch) = self.reload_watch();
        let mut recheck = false;
        loop {
            let reloads = (&*latest, &*watch, self.ctx.version);
            let replies = &self.client.replies;
            match blocking::wait(&self.stream, &mut self.input, replies, reloads, recheck).await {
                blocking::Waited::Answered => return true,
                blocking::Waited::Left => return false,
                blocking::Waited::Reloaded => {
                    follow_reload(&mut self.ctx, &mut self.client);
                    recheck = blocking::unblock(&mut self.client);
                }
            }
        }
    }

    /// Moves the keys the next request touches, or waits out a hold (see
    /// `reshard`); the request is dispatched again after.
    async fn reshard_wait(&mut self) {
        let Some(pending) = self.client.reshard.take() else {
            return;
        };
        let next = match *pending {
            reshard::Pending::Hold => {
                let (latest, watch) = self.reload_watch();
                let changed = latest.changed(&watch, self.ctx.version);
                match race(changed, crate::net::sleep(reshard::HOLD_AT_MOST)).await {
                    Either::Left(()) => None,
                    Either::Right(()) => Some(reshard::Pending::Failed(
                        ErrorReply::ReshardHeld.to_string(),
                    )),
                }
            }
            reshard::Pending::Moves(moves) => {
                match reshard::move_keys(&self.ctx, self.client.db, &moves).await {
                    reshard::Moving::Failed(why) => Some(reshard::Pending::Failed(why)),
                    reshard::Moving::Done | reshard::Moving::Overtaken => None,
                }
            }
            failed @ reshard::Pending::Failed(_) => Some(failed),
        };
        self.client.reshard = next.map(Box::new);
        follow_reload(&mut self.ctx, &mut self.client);
    }

    /// Sends the huge split command the reader just read (see `huge::Huge`)
    /// a slice at a time, letting the core's other tasks run between
    /// slices; its bytes stay where they were read until then, and are
    /// consumed after.
    async fn send_huge(&mut self) {
        let Some(command) = self.client.huge.take() else {
            return;
        };
        let huge::HugeCommand { plan: mut huge, at } = *command;
        let (ctx, client, reader) = (&*self.ctx, &mut self.client, &self.reader);
        let frame = match at {
            huge::HugeAt::Carried(len) => &self.input.carried_bytes()[..len],
            huge::HugeAt::Inline(_) => reader.scanner.inline_frame(),
        };
        let req = Request::new(frame, reader.scanner.args());
        let slot = huge.slot();
        while !huge.step(ctx, client, req) {
            let limit = huge.in_flight();
            replies::replies_until(&client.replies, |r| r.unanswered(slot) <= limit).await;
            futures_lite::future::yield_now().await;
        }
        // A huge MGET's reply is merged a slice at a time as they are
        // answered (not all at once when the last one is).
        for &(parts, keys) in huge.slices() {
            let merged = |r: &mut Replies| r.fold(slot, parts, keys) == Fold::Done;
            replies::replies_until(&client.replies, merged).await;
            futures_lite::future::yield_now().await;
        }
        self.input.consume(at.consumed());
    }

    /// One turn of a subscribed client: its commands as they come (see
    /// `read_batch`), messages and confirmations as they come, written
    /// after the replies they follow. False: the session ends.
    async fn pubsub_turn(&mut self) -> bool {
        let Some(feed) = self.client.pubsub.as_ref().map(|p| p.feed.clone()) else {
            return true;
        };
        self.pubsub_exchange(feed).await.is_some()
    }

    /// `pubsub_turn`'s work; None: the session ends.
    async fn pubsub_exchange(&mut self, feed: Rc<RefCell<pubsub::Feed>>) -> Option<()> {
        let (latest, watch) = self.reload_watch();
        let version = self.ctx.version;
        let fed = race(pubsub::ready(&feed), latest.changed(&watch, version));
        match race(self.read_batch(), fed).await {
            Either::Left(received) => {
                if !self.batch_read(received) {
                    return None;
                }
            }
            Either::Right(Either::Left(())) => {}
            Either::Right(Either::Right(())) => follow_reload(&mut self.ctx, &mut self.client),
        }
        if self.client.pubsub.as_ref().is_some_and(|p| p.moved) {
            // Its channels live elsewhere now: it subscribes again there.
            self.ctx.stats.count(CoreCounter::ReloadMoved, 1);
            crate::info!("a subscriber was closed: a reload moved what it listens to (it subscribes again when it reconnects)");
            return None;
        }
        let ended = self.push_messages(&feed).await?;
        let client = &mut self.client;
        if ended {
            if let Some(ps) = client.pubsub.take() {
                ps.close();
            }
        }
        // Confirmations change what CLIENT LIST shows.
        client.show_state();
        Some(())
    }

    /// Writes what the feed holds for the subscriber, after the replies to
    /// commands read in the same turn. Some(true): the feed has ended (the
    /// last confirmations are out); None: the session ends (its limits
    /// passed, or the feed lost).
    async fn push_messages(&mut self, feed: &Rc<RefCell<pubsub::Feed>>) -> Option<bool> {
        let (mut pushed, lost, ended, overflowed) = {
            let mut f = feed.borrow_mut();
            (f.take_out(), f.lost, f.ended, f.overflowed)
        };
        let ctx = &*self.ctx;
        if overflowed {
            close_over_limit(ctx);
            return None;
        }
        if !pushed.is_empty() {
            let replies = &self.client.replies;
            if !replies.borrow().is_empty() {
                replies::wait_for_replies(replies).await;
                if replies.borrow().overflowed() {
                    close_over_limit(ctx);
                    return None;
                }
                let mut out = Vec::new();
                replies.borrow_mut().take_output(&mut out);
                self.stream.send(&mut out).await.ok()?;
            }
            let len = pushed.len();
            ctx.stats.count(CoreCounter::BytesOut, len as u64);
            // A client that does not read sits in this send: what comes for
            // it meanwhile is held to its limits, and passing them ends the
            // wait.
            match race(self.stream.send(&mut pushed), pubsub::overflowed(feed)).await {
                Either::Left(sent) => sent.ok()?,
                Either::Right(()) => {
                    close_over_limit(ctx);
                    // Closed in the middle of a send it never read: what the
                    // kernel still holds for it goes too, not trickle out.
                    crate::net::reset_on_close(self.client.me.entry.fd());
                    return None;
                }
            }
            feed.borrow_mut().sent(len);
        }
        (!lost).then_some(ended)
    }

    /// Ends the client's part: its state (its registry entry included)
    /// goes first; what closing the socket needs is left (its descriptor,
    /// and whether the session itself ended it).
    fn leave(self) -> (Stream, Rc<CoreContext>, i32, bool) {
        let fd = self.client.me.entry.fd();
        let ended_here = self.client.close;
        drop(self.client);
        (self.stream, self.ctx, fd, ended_here)
    }
}

/// Closes a session's socket as the way it ended asks.
async fn close(stream: Stream, ctx: Rc<CoreContext>, fd: i32, ended_here: bool) {
    if ctx.clients.draining() {
        // Every reply it owed was sent; the client reads them, then
        // end-of-stream.
        ctx.stats.count(CoreCounter::DrainClosed, 1);
        stream.linger_close(fd, LINGER).await;
    } else if ended_here {
        // QUIT, CLIENT KILL of itself, a protocol error, too many failed
        // AUTHs: the client reads its last replies, then end-of-stream
        // (closing on what it still sends would reset the connection).
        stream.linger_close(fd, LINGER).await;
    }
}

/// A client past its output limit (client_output_hard_limit, or a
/// subscriber's pub/sub limits) is closed, as Redis closes one over its
/// client-output-buffer-limit, and counted.
fn close_over_limit(ctx: &CoreContext) {
    ctx.stats.count(CoreCounter::OutputLimitClosed, 1);
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
                    // A huge one is sent a slice at a time from where it
                    // lies (see `send_huge`).
                    self.need = 1;
                    if !dispatch_one(ctx, client, req, huge::HugeAt::Carried(len)) {
                        self.held_back = true;
                        break;
                    }
                    pos += len;
                }
                Ok(Scanned::Inline { len }) => {
                    let req = Request::new(self.scanner.inline_frame(), self.scanner.args());
                    self.need = 1;
                    if !dispatch_one(ctx, client, req, huge::HugeAt::Inline(len)) {
                        self.held_back = true;
                        break;
                    }
                    pos += len;
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
                    client.refuse_as(ErrorKind::Protocol, ErrorReply::Protocol(e));
                    client.close = true;
                }
            }
        }
        client.show_state();
        pos
    }
}

/// Dispatches one request lying `at`. False: what follows waits (the client
/// is at its pending limit, or a huge command goes first).
fn dispatch_one(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    at: huge::HugeAt,
) -> bool {
    if !dispatch::dispatch(ctx, client, req) {
        return false;
    }
    match &mut client.huge {
        Some(huge) => {
            huge.at = at;
            false
        }
        None => true,
    }
}
