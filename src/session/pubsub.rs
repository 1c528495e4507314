//! Pub/sub through keyway. A channel lives on the primary its name hashes
//! to (routed like a key, nothing stripped), so PUBLISH goes there and a
//! SUBSCRIBE is sent there; a pattern can match channels anywhere, so
//! PSUBSCRIBE goes to every primary. A subscribed client gets one
//! subscriber connection of its own per backend it listens to; their
//! frames flow into the client's `Feed`, which rewrites the subscription
//! counts to the client's own totals (each backend only knows its part),
//! passes on a pattern's confirmation once (every backend confirms it),
//! and hands messages on as they come. A subscriber connection that is
//! lost closes the client's connection: its subscriptions are gone, and
//! clients subscribe again when they reconnect.

use super::Held;
use super::{fanout, plan, Client, CoreContext};
use crate::resp::reply;
use crate::resp::request::Request;
use crate::resp::write::{self, Protocol};
use crate::upstream::conn::{Conn, Subscriber};
use crate::upstream::waiter::Waiter;
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A subscribed client's state.
pub struct PubSub {
    pub feed: Rc<RefCell<Feed>>,
    /// Its subscriber connection per endpoint.
    conns: Vec<(usize, Rc<Conn>)>,
    /// A reload moved a channel it listens to, or changed the primaries
    /// its patterns listen on: the client is to be closed (see `follow`).
    pub moved: bool,
}

impl PubSub {
    /// (channels, patterns) subscribed, as CLIENT LIST counts them.
    pub fn counts(&self) -> (usize, usize) {
        let f = self.feed.borrow();
        (f.channels.len() + f.shard.len(), f.patterns.len())
    }

    /// Closes the subscriber connections (unsubscribing everything).
    pub fn close(self) {
        for (_, c) in self.conns {
            c.shut_down();
        }
    }
}

/// What a subscriber's messages waiting to be sent may reach before it is
/// closed, as Redis's `client-output-buffer-limit pubsub` class.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Past this at once (0: no limit).
    pub hard: usize,
    /// Past this for `soft_window` (0: no limit).
    pub soft: usize,
    pub soft_window: Duration,
}

/// What the subscriber connections deliver, ready for the client.
#[derive(Default)]
pub struct Feed {
    pub out: Vec<u8>,
    /// A subscriber connection was lost.
    pub lost: bool,
    /// The last subscription ended: the client leaves pub/sub mode.
    pub ended: bool,
    /// Past a limit: the client is to be closed, and nothing more is kept.
    pub overflowed: bool,
    /// Bytes handed to the client's socket and not sent yet.
    sending: usize,
    /// Since when `backlog` has been past the soft limit.
    soft_since: Option<Instant>,
    limits: Limits,
    /// The core's bytes waiting to be sent (`out` and `sending` count
    /// there), and the core's budget for them.
    held: Rc<Held>,
    budget: usize,
    waker: Option<Waker>,
    proto: Protocol,
    channels: HashSet<Vec<u8>>,
    patterns: HashSet<Vec<u8>>,
    shard: HashSet<Vec<u8>>,
    /// Subscribe confirmations still to come.
    pending: usize,
}

impl Feed {
    fn new(proto: Protocol, limits: Limits, held: Rc<Held>, budget: usize) -> Feed {
        let mut feed = Feed::default();
        feed.proto = proto;
        feed.limits = limits;
        feed.held = held;
        feed.budget = budget;
        feed
    }

    fn push(&mut self, frame: Option<&[u8]>) {
        match frame {
            None => self.lost = true,
            Some(_) if self.overflowed => {}
            Some(f) => {
                let before = self.out.len();
                self.take(f);
                self.grew(before);
            }
        }
        self.wake();
    }

    /// A confirmation keyway answers itself (nothing to ask a backend).
    fn confirm_here(&mut self, kind: &str, name: Option<&[u8]>) {
        let count = self.count(kind.as_bytes());
        let before = self.out.len();
        confirmation(&mut self.out, self.proto, kind.as_bytes(), name, count);
        self.grew(before);
        self.wake();
    }

    /// What the client has not been sent yet: waiting here, or handed to
    /// its socket.
    fn backlog(&self) -> usize {
        self.out.len() + self.sending
    }

    /// `out` grew from `before` bytes: counted, and held to the limits.
    fn grew(&mut self, before: usize) {
        self.held.add(self.out.len() - before);
        let backlog = self.backlog();
        let Limits {
            hard,
            soft,
            soft_window,
        } = self.limits;
        let soft_since = if soft > 0 && backlog > soft {
            Some(*self.soft_since.get_or_insert_with(crate::net::now))
        } else {
            None
        };
        self.soft_since = soft_since;
        let too_long = soft_since.is_some_and(|t| t.elapsed() >= soft_window);
        if (hard > 0 && backlog > hard) || too_long {
            self.overflowed = true;
            self.held.sub(self.out.len());
            self.out = Vec::new();
        }
    }

    /// Takes what waits for the client, now being sent (see `sent`).
    pub fn take_out(&mut self) -> Vec<u8> {
        let out = std::mem::take(&mut self.out);
        self.sending += out.len();
        out
    }

    /// `n` bytes taken by `take_out` were sent.
    pub fn sent(&mut self, n: usize) {
        self.sending -= n;
        self.held.sub(n);
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Subscriptions counted as Redis counts them for `kind`'s reply.
    fn count(&self, kind: &[u8]) -> usize {
        if is_shard(kind) {
            self.shard.len()
        } else {
            self.channels.len() + self.patterns.len()
        }
    }

    fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }

    /// One frame from a backend: confirmations rewritten, the rest as is.
    fn take(&mut self, f: &[u8]) {
        let mut el = Vec::new();
        let kind = (matches!(f.first(), Some(b'*' | b'>')))
            .then(|| reply::aggregate_any(f, &mut el))
            .flatten()
            .and_then(|()| el.first().and_then(|&(a, b)| reply::string(&f[a..b])))
            .map(|k| k.to_ascii_lowercase());
        let Some(kind) = kind.filter(|k| is_confirmation(k) && el.len() == 3) else {
            self.out.extend_from_slice(f);
            return;
        };
        let (a, b) = el[1];
        let Some(name) = reply::string(&f[a..b]).map(<[u8]>::to_vec) else {
            // "Nothing was subscribed" from one backend: keyway answers
            // that itself when it is true for the client.
            return;
        };
        let subscribing = !is_unsubscribe(&kind);
        let set = if kind.starts_with(b"p") {
            &mut self.patterns
        } else if is_shard(&kind) {
            &mut self.shard
        } else {
            &mut self.channels
        };
        let changed = if subscribing {
            set.insert(name.clone())
        } else {
            set.remove(&name)
        };
        if subscribing {
            self.pending = self.pending.saturating_sub(1);
        }
        // Every backend confirms a pattern: pass on the one that changed
        // the client's set.
        if kind[0] == b'p' && !changed {
            return;
        }
        let count = self.count(&kind);
        confirmation(&mut self.out, self.proto, &kind, Some(&name), count);
        if !subscribing && self.total() == 0 && self.pending == 0 {
            self.ended = true;
        }
    }
}

impl Drop for Feed {
    /// The client left: what it was never sent no longer counts.
    fn drop(&mut self) {
        self.held.sub(self.backlog());
    }
}

/// What a subscriber that keeps up may have in flight to it: a few reads'
/// worth of messages.
const KEEPING_UP: usize = 256 * 1024;

/// A subscribed client as its subscriber connections see it.
struct FeedSink(Rc<RefCell<Feed>>);

impl Subscriber for FeedSink {
    fn push(&self, frame: Option<&[u8]>) {
        self.0.borrow_mut().push(frame);
    }

    /// Past the core's budget, a subscriber with more than `KEEPING_UP`
    /// still to send is not read for (the others are: they keep up); one
    /// closing is not read for at all.
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let f = self.0.borrow();
        if f.overflowed {
            return Poll::Pending;
        }
        if f.backlog() <= KEEPING_UP || f.held.get() < f.budget {
            return Poll::Ready(());
        }
        f.held.wake_at_next_sub(cx.waker());
        Poll::Pending
    }
}

/// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE.
fn is_unsubscribe(kind: &[u8]) -> bool {
    kind.windows(5).any(|w| w.eq_ignore_ascii_case(b"unsub"))
}

/// SSUBSCRIBE and SUNSUBSCRIBE (shard channels, counted apart).
fn is_shard(kind: &[u8]) -> bool {
    kind.starts_with(b"ss") || kind.starts_with(b"sun")
}

fn is_confirmation(kind: &[u8]) -> bool {
    matches!(
        kind,
        b"subscribe"
            | b"psubscribe"
            | b"ssubscribe"
            | b"unsubscribe"
            | b"punsubscribe"
            | b"sunsubscribe"
    )
}

/// `[kind, name, count]`, as a RESP3 push or a RESP2 array.
fn confirmation(out: &mut Vec<u8>, proto: Protocol, kind: &[u8], name: Option<&[u8]>, n: usize) {
    match proto {
        Protocol::Resp2 => write::array_header(out, 3),
        Protocol::Resp3 => out.extend_from_slice(b">3\r\n"),
    }
    write::bulk(out, kind);
    match name {
        Some(n) => write::bulk(out, n),
        None => write::null(out, proto),
    }
    write::integer(out, n as i64);
}

/// Waits until the feed has something for the client.
pub async fn ready(feed: &Rc<RefCell<Feed>>) {
    poll_fn(|cx| {
        let mut f = feed.borrow_mut();
        if !f.out.is_empty() || f.lost || f.ended || f.overflowed {
            Poll::Ready(())
        } else {
            f.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// Waits until the feed passed its limits (the client is to be closed).
pub async fn overflowed(feed: &Rc<RefCell<Feed>>) {
    poll_fn(|cx| {
        let mut f = feed.borrow_mut();
        if f.overflowed {
            Poll::Ready(())
        } else {
            f.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// What a subscribed RESP2 client may send, as Redis allows.
pub fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their UN- forms, PUBLISH, SPUBLISH.
pub fn execute(ctx: &CoreContext, client: &mut Client, req: Request<'_>, name: &str) {
    let (frame, args) = (req.frame, req.args);
    let arg = |i: usize| req.arg(i);
    let names: Vec<&[u8]> = (1..args.len()).map(arg).collect();
    match name {
        "publish" | "spublish" => {
            let home = match plan::channel_home(ctx, arg(1)) {
                Ok(h) => h,
                Err(e) => return plan::refuse(client, &e),
            };
            let slot = client.replies.borrow_mut().push_waiting();
            ctx.upstreams.conn_in(home, client.proto, client.db).send(
                |b| b.extend_from_slice(frame),
                Waiter::new(&client.replies, slot, 0),
            );
        }
        "subscribe" | "ssubscribe" => {
            let mut by_home: Vec<(usize, Vec<&[u8]>)> = Vec::new();
            for ch in &names {
                match plan::channel_home(ctx, ch) {
                    Ok(h) => add_to(&mut by_home, h, ch),
                    Err(e) => return plan::refuse(client, &e),
                }
            }
            enter(ctx, client);
            for (ep, chs) in by_home {
                send(ctx, client, ep, name.as_bytes(), &chs, chs.len());
            }
        }
        "psubscribe" => {
            let eps = match fanout::primaries(ctx) {
                Ok(e) => e,
                Err(e) => return plan::refuse(client, &e),
            };
            enter(ctx, client);
            for ep in eps {
                send(ctx, client, ep, b"psubscribe", &names, names.len());
            }
        }
        _ => unsubscribe(ctx, client, name, &names),
    }
}

/// Enters pub/sub mode (a no-op when already in it).
fn enter(ctx: &CoreContext, client: &mut Client) {
    let proto = client.proto;
    client.pubsub.get_or_insert_with(|| PubSub {
        feed: Rc::new(RefCell::new(Feed::new(
            proto,
            ctx.output.pubsub,
            ctx.output.held.clone(),
            ctx.output.budget,
        ))),
        conns: Vec::new(),
        moved: false,
    });
}

/// The session moves from `old`'s configuration to `new`'s. A channel whose
/// home is now another primary (its PUBLISHes go there), or patterns whose
/// primaries changed, would go on listening where nothing is published any
/// more: the client is closed instead (`moved`), as when a subscriber
/// connection is lost; client libraries subscribe again when they
/// reconnect, where the channels live now. Otherwise its connections are
/// renumbered for the new configuration.
pub fn follow(old: &CoreContext, new: &CoreContext, client: &mut Client) {
    let Some(ps) = client.pubsub.as_ref() else {
        return;
    };
    let in_new = |e: usize| new.upstreams.same_as(&old.upstreams, e);
    let moved = {
        let f = ps.feed.borrow();
        let channel_moved = f.channels.iter().chain(&f.shard).any(|ch| {
            match (plan::channel_home(old, ch), plan::channel_home(new, ch)) {
                (Ok(was), Ok(is)) => in_new(was) != Some(is),
                _ => true,
            }
        });
        let patterns_moved = !f.patterns.is_empty()
            && match (fanout::primaries(old), fanout::primaries(new)) {
                (Ok(was), Ok(mut is)) => {
                    let mut was: Vec<Option<usize>> = was.into_iter().map(in_new).collect();
                    was.sort_unstable();
                    is.sort_unstable();
                    was != is.into_iter().map(Some).collect::<Vec<_>>()
                }
                _ => true,
            };
        channel_moved || patterns_moved
    };
    let Some(ps) = client.pubsub.as_mut() else {
        return;
    };
    if moved {
        ps.moved = true;
        return;
    }
    for (e, _) in &mut ps.conns {
        // Not moved: every endpoint a subscription is on is still there.
        *e = in_new(*e).unwrap_or(usize::MAX);
    }
}

/// Sends `kind names...` on the client's subscriber connection to `ep`,
/// made on first use; `confirmations` subscribe confirmations will come.
fn send(
    ctx: &CoreContext,
    client: &mut Client,
    ep: usize,
    kind: &[u8],
    names: &[&[u8]],
    confirmations: usize,
) {
    let Some(ps) = client.pubsub.as_mut() else {
        return;
    };
    let conn = match ps.conns.iter().find(|(e, _)| *e == ep) {
        Some((_, c)) => c.clone(),
        None => {
            let c = ctx.upstreams.dedicated(ep, client.proto, 0);
            c.set_push(Rc::new(FeedSink(ps.feed.clone())));
            ps.conns.push((ep, c.clone()));
            c
        }
    };
    if !is_unsubscribe(kind) {
        ps.feed.borrow_mut().pending += confirmations;
    }
    conn.send_push(|b| {
        write::array_header(b, 1 + names.len());
        write::bulk(b, kind);
        for n in names {
            write::bulk(b, n);
        }
    });
}

fn unsubscribe(ctx: &CoreContext, client: &mut Client, kind: &str, names: &[&[u8]]) {
    let proto = client.proto;
    let Some(ps) = client.pubsub.as_ref() else {
        // Not subscribed: Redis confirms with nothing, or each name, at 0.
        let mut out = Vec::new();
        if names.is_empty() {
            confirmation(&mut out, proto, kind.as_bytes(), None, 0);
        }
        for n in names {
            confirmation(&mut out, proto, kind.as_bytes(), Some(n), 0);
        }
        return client.reply(|o| o.extend_from_slice(&out));
    };
    let feed = ps.feed.clone();
    let eps: Vec<usize> = ps.conns.iter().map(|(e, _)| *e).collect();
    let held = |f: &Feed, n: &[u8]| match kind {
        "punsubscribe" => f.patterns.contains(n),
        "sunsubscribe" => f.shard.contains(n),
        _ => f.channels.contains(n),
    };
    if names.is_empty() {
        let none = match kind {
            "punsubscribe" => feed.borrow().patterns.is_empty(),
            "sunsubscribe" => feed.borrow().shard.is_empty(),
            _ => feed.borrow().channels.is_empty(),
        };
        if none {
            feed.borrow_mut().confirm_here(kind, None);
            return;
        }
        for ep in eps {
            send(ctx, client, ep, kind.as_bytes(), &[], 0);
        }
        return;
    }
    // Names not subscribed are confirmed here; the others where they live.
    let mut by_home: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    for n in names {
        if !held(&feed.borrow(), n) {
            feed.borrow_mut().confirm_here(kind, Some(n));
            continue;
        }
        let homes = if kind == "punsubscribe" {
            eps.clone()
        } else {
            plan::channel_home(ctx, n)
                .map(|h| vec![h])
                .unwrap_or_default()
        };
        for h in homes {
            add_to(&mut by_home, h, n);
        }
    }
    for (ep, ns) in by_home {
        send(ctx, client, ep, kind.as_bytes(), &ns, 0);
    }
}

/// Adds `name` to the names bound for endpoint `ep`.
fn add_to<'a>(by_home: &mut Vec<(usize, Vec<&'a [u8]>)>, ep: usize, name: &'a [u8]) {
    match by_home.iter_mut().find(|(e, _)| *e == ep) {
        Some((_, v)) => v.push(name),
        None => by_home.push((ep, vec![name])),
    }
}

/// PING in pub/sub mode (RESP2): `["pong", message]`.
pub fn ping(client: &Client, message: Option<&[u8]>) {
    client.reply(|o| {
        write::array_header(o, 2);
        write::bulk(o, b"pong");
        write::bulk(o, message.unwrap_or(b""));
    });
}

/// The count in a confirmation frame (tests).
#[cfg(test)]
fn count_of(f: &[u8]) -> Option<i64> {
    let mut el = Vec::new();
    reply::aggregate_any(f, &mut el)?;
    let (a, b) = *el.get(2)?;
    reply::integer(&f[a..b])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: &str, name: &str, n: i64) -> Vec<u8> {
        let mut f = Vec::new();
        write::array_header(&mut f, 3);
        write::bulk(&mut f, kind.as_bytes());
        write::bulk(&mut f, name.as_bytes());
        write::integer(&mut f, n);
        f
    }

    /// The counts of the confirmations in `out`.
    fn counts(out: &[u8]) -> Vec<i64> {
        let mut counts = Vec::new();
        let mut rest = out;
        while !rest.is_empty() {
            let len = reply::reply_len(rest).unwrap().unwrap();
            counts.push(count_of(&rest[..len]).unwrap());
            rest = &rest[len..];
        }
        counts
    }

    #[test]
    fn counts_are_the_clients_and_patterns_confirmed_once() {
        let mut feed = Feed::default();
        feed.pending = 2 + 3;
        // Two channels on two backends: each backend counts 1.
        feed.take(&frame("subscribe", "a", 1));
        feed.take(&frame("subscribe", "b", 1));
        // One pattern, confirmed by three backends.
        for _ in 0..3 {
            feed.take(&frame("psubscribe", "p*", 2));
        }
        assert_eq!(counts(&std::mem::take(&mut feed.out)), vec![1, 2, 3]);
        // Messages pass as they are.
        let msg = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n";
        feed.take(msg);
        assert_eq!(std::mem::take(&mut feed.out), msg.to_vec());
        // A backend with nothing to unsubscribe says nil: dropped.
        feed.take(b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
        assert!(feed.out.is_empty());
        feed.take(&frame("unsubscribe", "a", 0));
        feed.take(&frame("unsubscribe", "b", 0));
        for _ in 0..3 {
            feed.take(&frame("punsubscribe", "p*", 0));
        }
        assert!(feed.ended);
        assert_eq!(counts(&feed.out), vec![2, 1, 0]);
    }

    fn message(len: usize) -> Vec<u8> {
        let mut m = Vec::new();
        write::array_header(&mut m, 3);
        write::bulk(&mut m, b"message");
        write::bulk(&mut m, b"ch");
        write::bulk(&mut m, &vec![b'x'; len]);
        m
    }

    #[test]
    fn a_subscriber_past_its_hard_limit_is_closed_and_its_bytes_released() {
        // Found by a reliability run: messages for a subscriber that never
        // read were kept without end (1.1 GB in 8 s).
        let held = Rc::new(Held::default());
        let m = message(10_000);
        let limits = Limits {
            hard: 10 * m.len(),
            soft: 0,
            soft_window: Duration::ZERO,
        };
        let mut feed = Feed::new(Protocol::Resp2, limits, held.clone(), usize::MAX);
        let out = {
            feed.push(Some(&m));
            feed.take_out()
        };
        assert_eq!(held.get(), m.len());
        for _ in 0..9 {
            feed.push(Some(&m));
        }
        assert!(!feed.overflowed, "at the limit is not past it");
        feed.push(Some(&m));
        assert!(feed.overflowed);
        assert!(feed.out.is_empty(), "messages kept past the limit");
        // What is being sent still counts until it is sent or dropped.
        assert_eq!(held.get(), m.len());
        feed.push(Some(&m));
        assert_eq!(held.get(), m.len());
        feed.sent(out.len());
        assert_eq!(held.get(), 0);
        let mut feed = Feed::new(Protocol::Resp2, limits, held.clone(), usize::MAX);
        feed.push(Some(&m));
        let _sending = feed.take_out();
        feed.push(Some(&m));
        drop(feed);
        assert_eq!(held.get(), 0, "a subscriber that left still counted");
    }

    #[test]
    fn a_subscriber_past_its_soft_limit_for_the_window_is_closed() {
        let held = Rc::new(Held::default());
        let limits = Limits {
            hard: 0,
            soft: 15_000,
            soft_window: Duration::from_millis(30),
        };
        let mut feed = Feed::new(Protocol::Resp2, limits, held.clone(), usize::MAX);
        let m = message(10_000);
        feed.push(Some(&m));
        feed.push(Some(&m));
        assert!(!feed.overflowed);
        // Back under the soft limit: the window starts again.
        let out = feed.take_out();
        feed.sent(out.len());
        std::thread::sleep(Duration::from_millis(40));
        feed.push(Some(&m));
        feed.push(Some(&m));
        assert!(!feed.overflowed, "the window counted time under the limit");
        std::thread::sleep(Duration::from_millis(40));
        feed.push(Some(&m));
        assert!(feed.overflowed);
    }
}
