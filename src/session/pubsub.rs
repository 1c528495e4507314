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
use super::{fanout, targets, Client, CoreContext};
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

/// Which of a subscriber's sets a (un)subscription is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Channels,
    Patterns,
    /// Shard channels (SSUBSCRIBE), counted apart as Redis counts them.
    Shard,
}

/// A subscription command, and the kind word of its confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verb {
    set: Set,
    subscribe: bool,
}

impl Verb {
    const ALL: [(Verb, &'static str); 6] = [
        (Verb::new(Set::Channels, true), "subscribe"),
        (Verb::new(Set::Patterns, true), "psubscribe"),
        (Verb::new(Set::Shard, true), "ssubscribe"),
        (Verb::new(Set::Channels, false), "unsubscribe"),
        (Verb::new(Set::Patterns, false), "punsubscribe"),
        (Verb::new(Set::Shard, false), "sunsubscribe"),
    ];

    const fn new(set: Set, subscribe: bool) -> Verb {
        Verb { set, subscribe }
    }

    /// The verb a command name or a confirmation's kind word names, in
    /// any case.
    fn parse(word: &[u8]) -> Option<Verb> {
        Verb::ALL
            .iter()
            .find(|(_, w)| w.as_bytes().eq_ignore_ascii_case(word))
            .map(|&(v, _)| v)
    }

    /// The word on the wire (lowercase, as Redis confirms).
    fn word(self) -> &'static [u8] {
        let (_, w) = Verb::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .expect("every verb is listed");
        w.as_bytes()
    }
}

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
    fn confirm_here(&mut self, verb: Verb, name: Option<&[u8]>) {
        let count = self.count(verb.set);
        let before = self.out.len();
        confirmation(&mut self.out, self.proto, verb, name, count);
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

    /// Subscriptions counted as Redis counts them in a confirmation about
    /// `set`.
    fn count(&self, set: Set) -> usize {
        match set {
            Set::Shard => self.shard.len(),
            Set::Channels | Set::Patterns => self.channels.len() + self.patterns.len(),
        }
    }

    fn set(&self, set: Set) -> &HashSet<Vec<u8>> {
        match set {
            Set::Channels => &self.channels,
            Set::Patterns => &self.patterns,
            Set::Shard => &self.shard,
        }
    }

    fn total(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard.len()
    }

    /// One frame from a backend: confirmations rewritten, the rest as is.
    fn take(&mut self, f: &[u8]) {
        let mut el = Vec::new();
        let verb = (matches!(f.first(), Some(b'*' | b'>')))
            .then(|| reply::aggregate_any(f, &mut el))
            .flatten()
            .and_then(|()| el.first().and_then(|&(a, b)| reply::string(&f[a..b])))
            .and_then(Verb::parse);
        let Some(verb) = verb.filter(|_| el.len() == 3) else {
            self.out.extend_from_slice(f);
            return;
        };
        let (a, b) = el[1];
        let Some(name) = reply::string(&f[a..b]).map(<[u8]>::to_vec) else {
            // "Nothing was subscribed" from one backend: keyway answers
            // that itself when it is true for the client.
            return;
        };
        let subscribing = verb.subscribe;
        let set = match verb.set {
            Set::Patterns => &mut self.patterns,
            Set::Shard => &mut self.shard,
            Set::Channels => &mut self.channels,
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
        if verb.set == Set::Patterns && !changed {
            return;
        }
        let count = self.count(verb.set);
        confirmation(&mut self.out, self.proto, verb, Some(&name), count);
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

/// `[kind, name, count]`, as a RESP3 push or a RESP2 array.
fn confirmation(out: &mut Vec<u8>, proto: Protocol, verb: Verb, name: Option<&[u8]>, n: usize) {
    match proto {
        Protocol::Resp2 => write::array_header(out, 3),
        Protocol::Resp3 => out.extend_from_slice(b">3\r\n"),
    }
    write::bulk(out, verb.word());
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
    Verb::parse(name.as_bytes()).is_some() || matches!(name, "ping" | "quit" | "reset")
}

/// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their UN- forms, PUBLISH, SPUBLISH.
pub fn execute(ctx: &CoreContext, client: &mut Client, req: Request<'_>, name: &str) {
    let Some(verb) = Verb::parse(name.as_bytes()) else {
        return publish(ctx, client, req);
    };
    let names: Vec<&[u8]> = (1..req.argc()).map(|i| req.arg(i)).collect();
    if !verb.subscribe {
        return unsubscribe(ctx, client, verb, &names);
    }
    if verb.set == Set::Patterns {
        // A pattern can match channels anywhere: every primary listens.
        let eps = match fanout::primaries(ctx) {
            Ok(e) => e,
            Err(e) => return targets::refuse(client, &e),
        };
        enter(ctx, client);
        for ep in eps {
            send(ctx, client, ep, verb, &names, names.len());
        }
        return;
    }
    let mut by_home: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    for ch in &names {
        match targets::channel_home(ctx, ch) {
            Ok(h) => add_to(&mut by_home, h, ch),
            Err(e) => return targets::refuse(client, &e),
        }
    }
    enter(ctx, client);
    for (ep, chs) in by_home {
        send(ctx, client, ep, verb, &chs, chs.len());
    }
}

/// PUBLISH, SPUBLISH: to the primary the channel lives on.
fn publish(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let home = match targets::channel_home(ctx, req.arg(1)) {
        Ok(h) => h,
        Err(e) => return targets::refuse(client, &e),
    };
    let slot = client.replies.borrow_mut().push_waiting();
    ctx.upstreams.conn_in(home, client.proto, client.db).send(
        |b| b.extend_from_slice(req.frame),
        Waiter::new(&client.replies, slot, 0),
    );
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
            match (
                targets::channel_home(old, ch),
                targets::channel_home(new, ch),
            ) {
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

/// Sends `verb names...` on the client's subscriber connection to `ep`,
/// made on first use; `confirmations` subscribe confirmations will come.
fn send(
    ctx: &CoreContext,
    client: &mut Client,
    ep: usize,
    verb: Verb,
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
    if verb.subscribe {
        ps.feed.borrow_mut().pending += confirmations;
    }
    conn.send_push(|b| {
        write::array_header(b, 1 + names.len());
        write::bulk(b, verb.word());
        for n in names {
            write::bulk(b, n);
        }
    });
}

fn unsubscribe(ctx: &CoreContext, client: &mut Client, verb: Verb, names: &[&[u8]]) {
    let proto = client.proto;
    let Some(ps) = client.pubsub.as_ref() else {
        // Not subscribed: Redis confirms with nothing, or each name, at 0.
        let mut out = Vec::new();
        if names.is_empty() {
            confirmation(&mut out, proto, verb, None, 0);
        }
        for n in names {
            confirmation(&mut out, proto, verb, Some(n), 0);
        }
        return client.reply(|o| o.extend_from_slice(&out));
    };
    let feed = ps.feed.clone();
    let eps: Vec<usize> = ps.conns.iter().map(|(e, _)| *e).collect();
    let held = |f: &Feed, n: &[u8]| f.set(verb.set).contains(n);
    if names.is_empty() {
        let none = feed.borrow().set(verb.set).is_empty();
        if none {
            feed.borrow_mut().confirm_here(verb, None);
            return;
        }
        for ep in eps {
            send(ctx, client, ep, verb, &[], 0);
        }
        return;
    }
    // Names not subscribed are confirmed here; the others where they live.
    let mut by_home: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    for n in names {
        if !held(&feed.borrow(), n) {
            feed.borrow_mut().confirm_here(verb, Some(n));
            continue;
        }
        let homes = if verb.set == Set::Patterns {
            eps.clone()
        } else {
            targets::channel_home(ctx, n)
                .map(|h| vec![h])
                .unwrap_or_default()
        };
        for h in homes {
            add_to(&mut by_home, h, n);
        }
    }
    for (ep, ns) in by_home {
        send(ctx, client, ep, verb, &ns, 0);
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
    fn each_verb_reads_and_writes_its_own_word() {
        for (verb, word) in Verb::ALL {
            assert_eq!(Verb::parse(word.as_bytes()), Some(verb));
            assert_eq!(Verb::parse(word.to_uppercase().as_bytes()), Some(verb));
            assert_eq!(verb.word(), word.as_bytes());
        }
        assert_eq!(Verb::parse(b"publish"), None);
        assert_eq!(Verb::parse(b"subscribes"), None);
        assert!(allowed_when_subscribed("punsubscribe") && allowed_when_subscribed("ping"));
        assert!(!allowed_when_subscribed("publish"));
    }

    #[test]
    fn shard_channels_are_counted_apart() {
        let mut feed = Feed::default();
        feed.pending = 3;
        feed.take(&frame("subscribe", "a", 1));
        feed.take(&frame("SSUBSCRIBE", "s", 1));
        feed.take(&frame("ssubscribe", "t", 2));
        assert_eq!(counts(&std::mem::take(&mut feed.out)), vec![1, 1, 2]);
        feed.take(&frame("sunsubscribe", "s", 1));
        assert_eq!(counts(&std::mem::take(&mut feed.out)), vec![1]);
        assert!(!feed.ended, "still subscribed to a and t");
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
