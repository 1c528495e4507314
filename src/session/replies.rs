//! A session's reply slots: one per request of the current batch, filled by
//! local answers or by upstream connections (in any order), written to the
//! client in request order. Split multi-key commands gather their parts
//! here and are merged back in key order.

use super::gather::{self, Gather};
use crate::command::Split;
use crate::net::task::KeptWaker;
use crate::resp::errors::ErrorReply;
use crate::resp::{reply, write};
use crate::upstream::waiter::ReplySlots;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

/// One part of a split command: the ordinals (positions among the
/// command's keys) of the keys it carried, and its reply once it came.
#[derive(Debug)]
pub struct Part {
    pub keys: Vec<u32>,
    reply: Option<(usize, usize)>,
}

impl Part {
    pub fn new(keys: Vec<u32>) -> Part {
        Part { keys, reply: None }
    }
}

#[derive(Debug)]
pub struct Multi {
    pub kind: Split,
    pub nkeys: usize,
    pub parts: Vec<Part>,
    pending: usize,
    /// Every part was added (a huge command adds them a slice at a time):
    /// until then its replies cannot complete it.
    sealed: bool,
    /// A huge command's: its session waits on its parts one by one (each
    /// answer wakes it), and a huge MGET's reply is merged as its slices
    /// are answered (`Replies::fold`).
    huge: bool,
    /// The merged reply for keys `..folded_keys`, made of parts
    /// `..folded_parts`.
    merged: Vec<u8>,
    folded_parts: usize,
    folded_keys: usize,
    /// A part answered an error or something unexpected: merged whole, as
    /// any other (the error is the reply).
    unfoldable: bool,
}

/// What `Replies::fold` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fold {
    /// Merged, or nothing to merge ahead of time.
    Done,
    /// A part of the range has no reply yet.
    Waiting,
}

impl Multi {
    pub fn new(kind: Split, nkeys: usize, parts: Vec<Part>) -> Multi {
        let pending = parts.len();
        Multi {
            kind,
            nkeys,
            parts,
            pending,
            sealed: true,
            huge: false,
            merged: Vec::new(),
            folded_parts: 0,
            folded_keys: 0,
            unfoldable: false,
        }
    }

    /// A command whose parts are added as it is routed (`add_part`),
    /// then sealed (`seal`).
    pub fn open(kind: Split, nkeys: usize) -> Multi {
        Multi {
            sealed: false,
            ..Multi::new(kind, nkeys, Vec::new())
        }
    }

    /// A huge command's open reply: its session is woken by each part's
    /// answer (see `huge`).
    pub fn open_huge(kind: Split, nkeys: usize) -> Multi {
        Multi {
            huge: true,
            ..Multi::open(kind, nkeys)
        }
    }
}

#[derive(Debug)]
enum Slot {
    Waiting,
    /// The reply, as a range of the arena.
    Done(usize, usize),
    Multi(Box<Multi>),
    Gather(Box<Gather>),
}

/// Buffers above this are freed after their batch instead of kept.
const KEEP_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
pub struct Replies {
    /// Reply bytes in arrival order; slots point into it.
    arena: Vec<u8>,
    slots: Vec<Slot>,
    outstanding: usize,
    waker: KeptWaker,
    scratch: Vec<(usize, usize)>,
    /// Slots whose replies are dropped (CLIENT REPLY OFF/SKIP), in order.
    muted: Vec<usize>,
    /// What a reply of this client may take (bytes): the largest of its
    /// recent replies, decaying slowly; 0 until its first batch.
    estimate: usize,
    /// The largest reply of the current batch.
    batch_max: usize,
    /// Requests in the previous batch: a batch may be at most twice as
    /// long (slow start), so a few small replies cannot open the window
    /// to a thousand big ones.
    last_batch: usize,
    /// Arena bytes past which replies are dropped and the client is to be
    /// closed (`client_output_hard_limit`; 0: none).
    hard_limit: usize,
    overflowed: bool,
    /// When the requests being dispatched now reached keyway, not counting
    /// the time their client took to read earlier replies: a request held
    /// back behind replies from a backend that then timed out is failed at
    /// once instead of waiting a whole op_timeout more (see
    /// `Conn::gave_up_on`). None: dispatched as they arrive.
    arrived: Option<Instant>,
}

/// Requests of a client's first batch in flight at once, before its
/// reply sizes are known: a client that pipelines a thousand GETs of 1 MB
/// values must not pull a gigabyte through the shared upstream connection
/// ahead of everyone else's requests.
const FIRST_WINDOW: usize = 16;

/// A connection fills the session's slots through this (`upstream::waiter`).
impl ReplySlots for RefCell<Replies> {
    fn fill(&self, slot: usize, part: usize, reply: &[u8]) {
        self.borrow_mut()
            .fill(slot, part, reply.len(), |a| a.extend_from_slice(reply))
    }

    fn fail(&self, slot: usize, part: usize, msg: &str) {
        self.borrow_mut()
            .fill(slot, part, msg.len() + 3, |a| write::error(a, msg))
    }

    fn arrived(&self) -> Option<Instant> {
        self.try_borrow().ok()?.arrived
    }
}

impl Replies {
    pub fn new() -> Rc<RefCell<Replies>> {
        Rc::new(RefCell::new(Replies::default()))
    }

    /// See `set_hard_limit`.
    pub fn with_hard_limit(limit: usize) -> Rc<RefCell<Replies>> {
        let r = Replies::new();
        r.borrow_mut().hard_limit = limit;
        r
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// The requests dispatched from now on arrived at `at`.
    pub fn set_arrived(&mut self, at: Instant) {
        self.arrived = Some(at);
    }

    /// The client took from `from` to `to` to accept its replies: the requests still
    /// waiting to be dispatched do not count that time as waiting.
    pub fn client_took(&mut self, from: Instant, to: Instant) {
        if let Some(a) = self.arrived.as_mut() {
            *a += to.saturating_duration_since(from);
        }
    }

    /// When the requests dispatched now arrived (see `set_arrived`).
    pub fn arrived(&self) -> Option<Instant> {
        self.arrived
    }

    /// A reply was dropped at the hard limit: the client must be closed.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Whether this batch is as long as this client may have in flight:
    /// twice its previous batch (at least FIRST_WINDOW), and no more
    /// requests than `window` bytes of its largest recent reply. The first
    /// request of a batch always goes.
    #[inline]
    pub fn window_full(&self, window: usize) -> bool {
        let n = self.slots.len();
        n > 0
            && (n >= FIRST_WINDOW.max(self.last_batch.saturating_mul(2))
                || n.saturating_mul(self.estimate) >= window)
    }

    pub fn set_waker(&mut self, waker: &Waker) {
        self.waker.wait(waker);
    }

    /// A reply known at once (local commands, client errors).
    pub fn push_local(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.arena.len();
        encode(&mut self.arena);
        self.slots.push(Slot::Done(start, self.arena.len()));
    }

    pub fn push_error(&mut self, msg: &str) {
        self.push_local(|a| write::error(a, msg));
    }

    /// Drops the replies of the slots from `from` on (they still wait for
    /// their upstream replies, which must be read).
    pub fn mute_from(&mut self, from: usize) {
        let from = self.muted.last().map_or(from, |&m| from.max(m + 1));
        self.muted.extend(from..self.slots.len());
    }

    /// A slot an upstream reply will fill; returns its index.
    pub fn push_waiting(&mut self) -> usize {
        self.outstanding += 1;
        self.slots.push(Slot::Waiting);
        self.slots.len() - 1
    }

    pub fn push_multi(&mut self, multi: Multi) -> usize {
        self.outstanding += 1;
        self.slots.push(Slot::Multi(Box::new(multi)));
        self.slots.len() - 1
    }

    /// Adds a part carrying the keys `ordinals` to the open multi-part
    /// reply in `slot`; returns the part's index.
    pub fn add_part(&mut self, slot: usize, ordinals: Vec<u32>) -> usize {
        match self.slots.get_mut(slot) {
            Some(Slot::Multi(m)) if !m.sealed => {
                m.parts.push(Part::new(ordinals));
                m.pending += 1;
                m.parts.len() - 1
            }
            _ => unreachable!("parts are added to an open multi-part reply"),
        }
    }

    /// Parts of the multi-part reply in `slot` added and not answered yet.
    pub fn unanswered(&self, slot: usize) -> usize {
        match self.slots.get(slot) {
            Some(Slot::Multi(m)) => m.pending,
            _ => 0,
        }
    }

    /// Merges the replies of parts `folded_parts..parts_end` of the huge
    /// MGET in `slot`, which carried keys `folded_keys..keys_end`, into its
    /// reply: the merging is spread over the command's life instead of
    /// stalling the core at its end. Other commands merge at the end.
    pub fn fold(&mut self, slot: usize, parts_end: usize, keys_end: usize) -> Fold {
        let Some(Slot::Multi(m)) = self.slots.get_mut(slot) else {
            return Fold::Done;
        };
        if m.kind != Split::Mget || m.unfoldable || m.folded_parts >= parts_end {
            return Fold::Done;
        }
        let parts = &m.parts[m.folded_parts..parts_end.min(m.parts.len())];
        if parts.iter().any(|p| p.reply.is_none()) {
            return Fold::Waiting;
        }
        if m.folded_keys == 0 {
            write::array_header(&mut m.merged, m.nkeys);
        }
        let keys = m.folded_keys..keys_end;
        if !values_in_key_order(&self.arena, parts, keys, &mut self.scratch, &mut m.merged) {
            m.unfoldable = true;
            return Fold::Done;
        }
        m.folded_parts = parts_end;
        m.folded_keys = keys_end;
        Fold::Done
    }

    /// Every part of the multi-part reply in `slot` was added.
    pub fn seal(&mut self, slot: usize) {
        let done = match self.slots.get_mut(slot) {
            Some(Slot::Multi(m)) if !m.sealed => {
                m.sealed = true;
                m.pending == 0
            }
            _ => false,
        };
        if done {
            self.one_done();
        }
    }

    /// A slot every part of `g` fills (one per backend); returns its index.
    pub fn push_gather(&mut self, g: Gather) -> usize {
        self.outstanding += 1;
        self.slots.push(Slot::Gather(Box::new(g)));
        self.slots.len() - 1
    }

    fn fill(&mut self, slot: usize, part: usize, len: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.arena.len();
        self.batch_max = self.batch_max.max(len);
        if self.hard_limit > 0 && start + len > self.hard_limit {
            // Past the hard limit the reply is dropped, not stored: the
            // session closes the client (its slot stays empty).
            self.overflowed = true;
        } else {
            encode(&mut self.arena);
        }
        let end = self.arena.len();
        let done = match self.slots.get_mut(slot) {
            Some(s @ Slot::Waiting) => {
                *s = Slot::Done(start, end);
                true
            }
            Some(Slot::Multi(m)) => match m.parts.get_mut(part) {
                Some(p) if p.reply.is_none() => {
                    p.reply = Some((start, end));
                    m.pending -= 1;
                    if m.huge {
                        // A huge command waits for its earlier slices'
                        // replies before sending more (`unanswered`), and
                        // merges them as they come (`fold`).
                        self.waker.wake();
                    }
                    m.pending == 0 && m.sealed
                }
                _ => false,
            },
            Some(Slot::Gather(g)) => match g.parts.get_mut(part) {
                Some(p @ None) => {
                    *p = Some((start, end));
                    g.pending -= 1;
                    g.pending == 0
                }
                _ => false,
            },
            _ => false,
        };
        if done {
            self.one_done();
        }
    }

    /// A slot is complete.
    fn one_done(&mut self) {
        self.outstanding -= 1;
        if self.outstanding == 0 {
            self.waker.wake();
        }
    }

    /// Moves every reply, in request order, into `out` and empties the
    /// batch. Call only when nothing is outstanding.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        debug_assert_eq!(self.outstanding, 0);
        out.clear();
        // Learn the reply size: up at once to the batch's largest, down by
        // an eighth per batch (small replies reopen the window slowly).
        if !self.slots.is_empty() {
            let biggest = std::mem::take(&mut self.batch_max).max(1);
            self.estimate = if biggest >= self.estimate {
                biggest
            } else {
                (self.estimate - self.estimate / 8).max(biggest)
            };
            self.last_batch = self.slots.len();
        }
        if self.muted.is_empty() && self.in_arena_order() {
            std::mem::swap(out, &mut self.arena);
        } else {
            let mut slots = std::mem::take(&mut self.slots);
            let muted = std::mem::take(&mut self.muted);
            let mut muted_next = muted.iter().peekable();
            // Drained, so each slot is dropped where its variant is known
            // instead of in a second pass over them all.
            for (i, s) in slots.drain(..).enumerate() {
                if muted_next.next_if_eq(&&i).is_some() {
                    continue;
                }
                match s {
                    Slot::Done(a, b) => out.extend_from_slice(&self.arena[a..b]),
                    Slot::Multi(mut m) => self.merge(&mut m, out),
                    Slot::Gather(g) => gather::merge(&g, &self.arena, out),
                    Slot::Waiting => ErrorReply::ReplyMissing.encode(out),
                }
            }
            self.slots = slots;
            self.muted = muted;
        }
        self.slots.clear();
        self.muted.clear();
        self.arena.clear();
        // One huge batch must not pin its memory for the connection's life.
        if self.arena.capacity() > KEEP_BYTES {
            self.arena = Vec::new();
        }
        if self.slots.capacity() > 4096 {
            self.slots = Vec::new();
        }
    }

    fn in_arena_order(&self) -> bool {
        let mut pos = 0;
        for s in &self.slots {
            match s {
                Slot::Done(a, b) if *a == pos => pos = *b,
                _ => return false,
            }
        }
        pos == self.arena.len()
    }

    fn merge(&mut self, m: &mut Multi, out: &mut Vec<u8>) {
        let part_reply = |p: &Part| p.reply.unwrap_or((0, 0));
        // The first error any part met is the command's reply.
        for p in &m.parts {
            let (a, b) = part_reply(p);
            if a == b || reply::is_error(&self.arena[a..b]) {
                if a == b {
                    ErrorReply::PartReplyMissing.encode(out);
                } else {
                    out.extend_from_slice(&self.arena[a..b]);
                }
                return;
            }
        }
        match m.kind {
            Split::Mget if m.folded_keys == m.nkeys && m.nkeys > 0 => {
                // Merged as it came (`fold`).
                if out.is_empty() {
                    std::mem::swap(out, &mut m.merged);
                } else {
                    out.extend_from_slice(&m.merged);
                }
            }
            Split::Mget if m.parts.len() == 1 && in_key_order(&m.parts[0].keys) => {
                // Every key in one part, in order: its reply is the reply.
                let (a, b) = part_reply(&m.parts[0]);
                if reply::array_len(&self.arena[a..b]) != Some(m.nkeys) {
                    ErrorReply::UnexpectedMgetReply.encode(out);
                    return;
                }
                out.extend_from_slice(&self.arena[a..b]);
            }
            Split::Mget => {
                let mark = out.len();
                write::array_header(out, m.nkeys);
                let keys = 0..m.nkeys;
                if !values_in_key_order(&self.arena, &m.parts, keys, &mut self.scratch, out) {
                    out.truncate(mark);
                    ErrorReply::UnexpectedMgetReply.encode(out);
                }
            }
            Split::Mset => {
                for p in &m.parts {
                    let (a, b) = part_reply(p);
                    if &self.arena[a..b] != write::OK {
                        out.extend_from_slice(&self.arena[a..b]);
                        return;
                    }
                }
                write::simple(out, "OK");
            }
            Split::SumInt => {
                let mut sum: i64 = 0;
                for p in &m.parts {
                    let (a, b) = part_reply(p);
                    match reply::integer(&self.arena[a..b]) {
                        Some(v) => sum = sum.saturating_add(v),
                        None => {
                            ErrorReply::UnexpectedReply("an integer").encode(out);
                            return;
                        }
                    }
                }
                write::integer(out, sum);
            }
        }
    }
}

/// Appends to `out` the values MGET replies (in `arena`) of `parts` hold
/// for the keys `keys` they carried, in key order. False when a reply is
/// not the array of its keys' values (what was appended is then to be
/// dropped).
fn values_in_key_order(
    arena: &[u8],
    parts: &[Part],
    keys: std::ops::Range<usize>,
    scratch: &mut Vec<(usize, usize)>,
    out: &mut Vec<u8>,
) -> bool {
    let mut by_key = vec![(0, 0); keys.len()];
    for p in parts {
        let (a, b) = p.reply.unwrap_or((0, 0));
        scratch.clear();
        let fits = reply::elements(&arena[a..b], p.keys.len(), scratch).is_some()
            && p.keys.iter().all(|&k| keys.contains(&(k as usize)));
        if !fits {
            return false;
        }
        for (&k, &(ea, eb)) in p.keys.iter().zip(scratch.iter()) {
            by_key[k as usize - keys.start] = (a + ea, a + eb);
        }
    }
    for &(a, b) in &by_key {
        out.extend_from_slice(&arena[a..b]);
    }
    true
}

/// Ordinals 0, 1, 2, ...
fn in_key_order(keys: &[u32]) -> bool {
    keys.iter().enumerate().all(|(i, &k)| k as usize == i)
}

/// Resolves once every reply of the batch is in.
pub async fn wait_for_replies(replies: &Rc<RefCell<Replies>>) {
    replies_until(replies, |r| r.outstanding() == 0).await
}

/// Resolves once `ready` holds, asked again whenever a reply comes.
pub async fn replies_until(
    replies: &Rc<RefCell<Replies>>,
    mut ready: impl FnMut(&mut Replies) -> bool,
) {
    poll_fn(|cx| {
        let mut r = replies.borrow_mut();
        if ready(&mut r) {
            Poll::Ready(())
        } else {
            r.set_waker(cx.waker());
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::waiter::Waiter;

    /// Dispatches requests until the window is full; each reply `size`
    /// bytes. Returns how many went out.
    fn batch(r: &Rc<RefCell<Replies>>, window: usize, size: usize) -> usize {
        let mut slots = Vec::new();
        while !r.borrow().window_full(window) && slots.len() < 10_000 {
            slots.push(r.borrow_mut().push_waiting());
        }
        let reply = vec![b'x'; size];
        for s in &slots {
            Waiter::new(r, *s, 0).complete(&reply);
        }
        r.borrow_mut().take_output(&mut Vec::new());
        slots.len()
    }

    #[test]
    fn requests_in_flight_follow_the_reply_size() {
        const MB: usize = 1 << 20;
        let r = Replies::new();
        // Unknown client: 16 at first, then twice the last batch.
        assert_eq!(batch(&r, 8 * MB, 10), 16);
        assert_eq!(batch(&r, 8 * MB, 10), 32);
        assert_eq!(batch(&r, 8 * MB, 10), 64);
        // Big replies: the window counts them.
        assert_eq!(batch(&r, 8 * MB, MB), 128);
        assert_eq!(batch(&r, 8 * MB, MB), 8);
        // Found in review: one small reply set the estimate to 7 bytes and
        // the next batch could be a thousand GETs of 1 MB. Now the largest
        // recent reply counts, and a batch at most doubles.
        let r = Replies::new();
        assert_eq!(batch(&r, 8 * MB, 7), 16);
        assert_eq!(batch(&r, 8 * MB, 7), 32);
        assert_eq!(batch(&r, 8 * MB, MB), 64);
        assert_eq!(batch(&r, 8 * MB, 7), 8);
        assert_eq!(batch(&r, 8 * MB, 7), 10);
    }

    #[test]
    fn out_of_order_replies_are_written_in_request_order() {
        let r = Replies::new();
        let s0 = r.borrow_mut().push_waiting();
        r.borrow_mut()
            .push_local(|a| a.extend_from_slice(b"+PONG\r\n"));
        let s2 = r.borrow_mut().push_waiting();
        Waiter::new(&r, s2, 0).complete(b":2\r\n");
        Waiter::new(&r, s0, 0).fail("ERR upstream timeout");
        assert_eq!(r.borrow().outstanding(), 0);
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(out, b"-ERR upstream timeout\r\n+PONG\r\n:2\r\n".to_vec());
        assert!(r.borrow().is_empty());
    }

    #[test]
    fn a_huge_batch_does_not_pin_its_memory() {
        // Found in review: the arena kept the capacity of the largest batch.
        let r = Replies::new();
        for _ in 0..2 {
            let s = r.borrow_mut().push_waiting();
            Waiter::new(&r, s, 0).complete(&vec![b'x'; 3 * 1024 * 1024]);
        }
        let s = r
            .borrow_mut()
            .push_multi(Multi::new(Split::SumInt, 1, vec![Part::new(vec![0])]));
        Waiter::new(&r, s, 0).complete(b":1\r\n");
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert!(r.borrow().arena.capacity() <= KEEP_BYTES);
    }

    #[test]
    fn mget_parts_merge_in_key_order() {
        let r = Replies::new();
        let parts = vec![Part::new(vec![0, 2]), Part::new(vec![1])];
        let s = r.borrow_mut().push_multi(Multi::new(Split::Mget, 3, parts));
        Waiter::new(&r, s, 1).complete(b"*1\r\n$1\r\nb\r\n");
        assert_eq!(r.borrow().outstanding(), 1);
        Waiter::new(&r, s, 0).complete(b"*2\r\n$1\r\na\r\n$-1\r\n");
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(out, b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n".to_vec());
    }

    /// A huge MGET of 4 keys in two slices of 2: parts added as sent.
    fn huge_mget(r: &Rc<RefCell<Replies>>) -> usize {
        let s = r.borrow_mut().push_multi(Multi::open_huge(Split::Mget, 4));
        r.borrow_mut().add_part(s, vec![1]);
        r.borrow_mut().add_part(s, vec![0]);
        r.borrow_mut().add_part(s, vec![3, 2]);
        r.borrow_mut().seal(s);
        s
    }

    #[test]
    fn a_huge_mget_merges_slice_by_slice_as_they_are_answered() {
        let r = Replies::new();
        let s = huge_mget(&r);
        Waiter::new(&r, s, 0).complete(b"*1\r\n$1\r\nb\r\n");
        assert_eq!(r.borrow().unanswered(s), 2);
        // The first slice (parts 0..2, keys 0..2) is not all here yet.
        assert_eq!(r.borrow_mut().fold(s, 2, 2), Fold::Waiting);
        Waiter::new(&r, s, 1).complete(b"*1\r\n$1\r\na\r\n");
        assert_eq!(r.borrow_mut().fold(s, 2, 2), Fold::Done);
        Waiter::new(&r, s, 2).complete(b"*2\r\n$1\r\nd\r\n$-1\r\n");
        assert_eq!(r.borrow_mut().fold(s, 3, 4), Fold::Done);
        assert_eq!(r.borrow().outstanding(), 0);
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(
            out,
            b"*4\r\n$1\r\na\r\n$1\r\nb\r\n$-1\r\n$1\r\nd\r\n".to_vec()
        );
    }

    #[test]
    fn a_huge_mget_with_a_failed_part_answers_the_error() {
        let r = Replies::new();
        let s = huge_mget(&r);
        Waiter::new(&r, s, 0).complete(b"*1\r\n$1\r\nb\r\n");
        Waiter::new(&r, s, 1).complete(b"*1\r\n$1\r\na\r\n");
        assert_eq!(r.borrow_mut().fold(s, 2, 2), Fold::Done);
        Waiter::new(&r, s, 2).fail("ERR upstream timeout");
        assert_eq!(r.borrow_mut().fold(s, 3, 4), Fold::Done);
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(out, b"-ERR upstream timeout\r\n".to_vec());
    }

    #[test]
    fn an_open_multi_is_not_complete_until_sealed() {
        let r = Replies::new();
        let s = r.borrow_mut().push_multi(Multi::open(Split::SumInt, 2));
        r.borrow_mut().add_part(s, vec![0]);
        Waiter::new(&r, s, 0).complete(b":1\r\n");
        // Answered so far, but more parts may come.
        assert_eq!(r.borrow().outstanding(), 1);
        r.borrow_mut().add_part(s, vec![1]);
        r.borrow_mut().seal(s);
        assert_eq!(r.borrow().outstanding(), 1);
        Waiter::new(&r, s, 1).complete(b":1\r\n");
        assert_eq!(r.borrow().outstanding(), 0);
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(out, b":2\r\n".to_vec());
    }

    #[test]
    fn an_mget_in_one_part_in_key_order_is_its_reply() {
        let r = Replies::new();
        let s = r
            .borrow_mut()
            .push_multi(Multi::new(Split::Mget, 2, vec![Part::new(vec![0, 1])]));
        Waiter::new(&r, s, 0).complete(b"*2\r\n$1\r\na\r\n$-1\r\n");
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(out, b"*2\r\n$1\r\na\r\n$-1\r\n".to_vec());
        // A reply of the wrong length is not passed on.
        let s = r
            .borrow_mut()
            .push_multi(Multi::new(Split::Mget, 2, vec![Part::new(vec![0, 1])]));
        Waiter::new(&r, s, 0).complete(b"*1\r\n$1\r\na\r\n");
        r.borrow_mut().take_output(&mut out);
        assert_eq!(
            out,
            b"-ERR upstream sent an unexpected reply to MGET\r\n".to_vec()
        );
    }

    #[test]
    fn sums_and_errors() {
        let r = Replies::new();
        let s = r.borrow_mut().push_multi(Multi::new(
            Split::SumInt,
            3,
            vec![Part::new(vec![0]), Part::new(vec![1, 2])],
        ));
        Waiter::new(&r, s, 0).complete(b":1\r\n");
        Waiter::new(&r, s, 1).complete(b":2\r\n");
        let s = r.borrow_mut().push_multi(Multi::new(
            Split::Mset,
            2,
            vec![Part::new(vec![0]), Part::new(vec![1])],
        ));
        Waiter::new(&r, s, 0).complete(b"+OK\r\n");
        Waiter::new(&r, s, 1).fail("ERR upstream unavailable (127.0.0.1:1)");
        let mut out = Vec::new();
        r.borrow_mut().take_output(&mut out);
        assert_eq!(
            out,
            b":3\r\n-ERR upstream unavailable (127.0.0.1:1)\r\n".to_vec()
        );
    }
}
