//! A split command with more keys than one go should route (`HUGE`): its
//! keys routed, then sent, a slice at a time, the core's other clients
//! served in between.

use super::replies::Multi;
use super::targets::{kind_of, send, send_mirrors, send_parts, together, Encoder, Routing, Target};
use super::{Client, CoreContext};
use crate::command::{CommandSpec, Split};
use crate::resp::request::Request;
use crate::upstream::waiter::Waiter;

/// Keys a split command routes and sends in one go (about a millisecond
/// of work). One with more is `Huge`.
pub const HUGE: usize = 4096;

/// Keys a `Huge` command routes or sends at a time, its session letting
/// the core's other tasks run in between. Each step of another client's
/// request (read, sent upstream, answered, written) may wait for one
/// slice, so a slice is kept to a fraction of a millisecond.
pub const SLICE: usize = 1024;

/// A split command with more than `HUGE` keys, on its way (see `step`).
/// Its bytes stay in its session's read buffer meanwhile.
pub struct Huge {
    /// The argument indices of its keys.
    keys: Vec<usize>,
    kind: Split,
    routing: Routing,
    /// Every key's targets in key order, as routing goes.
    targets: Vec<Target>,
    /// Keys routed so far; once routed, targets sent so far.
    next: usize,
    /// Its reply: an open multi-part reply, made when it was dispatched
    /// (so CLIENT REPLY OFF mutes it like any other).
    slot: usize,
    /// Routing is done and sending began.
    sending: bool,
    /// Every key on one endpoint and slot: sent whole, in one request, as
    /// atomic there as the command is.
    whole: bool,
    /// Parts the last slice sent.
    last_parts: usize,
    /// Where each slice sent ends: (parts, keys) so far. A huge MGET's
    /// reply is merged a slice at a time (`Replies::fold`).
    slices: Vec<(usize, usize)>,
}

impl Huge {
    /// Takes a split command with more than `HUGE` keys (`keys`, their
    /// argument indices); its reply slot is made now, its slices sent by
    /// `step`.
    pub fn new(
        ctx: &CoreContext,
        client: &Client,
        spec: &CommandSpec,
        kind: Split,
        keys: Vec<usize>,
    ) -> Huge {
        let slot = client
            .replies
            .borrow_mut()
            .push_multi(Multi::open_huge(kind, keys.len()));
        Huge {
            targets: Vec::with_capacity(keys.len()),
            keys,
            kind,
            routing: Routing::new(ctx, spec, false),
            next: 0,
            slot,
            sending: false,
            whole: false,
            last_parts: 0,
            slices: Vec::new(),
        }
    }

    /// Its reply's slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// How many of its parts may be unanswered before the next slice is
    /// sent: those of the slice just sent. The backends then work through
    /// at most two slices ahead of other clients' requests on the same
    /// connections, instead of the whole command.
    pub fn in_flight(&self) -> usize {
        self.last_parts
    }

    /// Where each slice sent ends: (parts, keys) so far.
    pub fn slices(&self) -> &[(usize, usize)] {
        &self.slices
    }

    /// Routes or sends one slice of the command (`frame`, `args`); true
    /// once it is on its way (or was answered with an error before
    /// anything of it was sent).
    pub fn step(&mut self, ctx: &CoreContext, client: &mut Client, req: Request<'_>) -> bool {
        let enc = Encoder {
            req,
            keys: &self.keys,
            kind: Some(self.kind),
        };
        let slot = self.slot;
        if !self.sending {
            if self.next < self.keys.len() {
                // Every key is routed before anything is sent: a key that
                // cannot be served refuses the whole command.
                let end = (self.next + SLICE).min(self.keys.len());
                let keys = &self.keys[self.next..end];
                let routed =
                    self.routing
                        .route(ctx, client, req, keys, self.next, &mut self.targets);
                if let Err(why) = routed {
                    let mut replies = client.replies.borrow_mut();
                    let part = replies.add_part(slot, Vec::new());
                    drop(replies);
                    client.stats.error(kind_of(&why));
                    Waiter::new(&client.replies, slot, part).fail(&why.to_string());
                    client.replies.borrow_mut().seal(slot);
                    return true;
                }
                self.next = end;
                return false;
            }
            let mut primary = self.targets.iter().filter(|t| t.sink == 0);
            let first = primary.next().copied();
            self.whole = primary.all(|t| first.is_some_and(|f| together(t, &f)));
            if self.whole {
                let all: Vec<Target> = self
                    .targets
                    .iter()
                    .filter(|t| t.sink == 0)
                    .copied()
                    .collect();
                let part = client
                    .replies
                    .borrow_mut()
                    .add_part(slot, (0..all.len() as u32).collect());
                send(
                    ctx,
                    &all,
                    client,
                    |buf| enc.whole(buf, &all),
                    Waiter::new(&client.replies, slot, part),
                );
            }
            self.sending = true;
            self.next = 0;
            return false;
        }
        let end = (self.next + SLICE).min(self.targets.len());
        let slice = &mut self.targets[self.next..end];
        slice.sort_unstable();
        let split_at = slice.partition_point(|t| t.sink == 0);
        let (primary, mirrors) = slice.split_at(split_at);
        if !self.whole {
            let before = client.replies.borrow().unanswered(slot);
            send_parts(ctx, client, &enc, primary, slot);
            self.last_parts = client.replies.borrow().unanswered(slot) - before;
            // Targets are in key order, each key's primary before its
            // mirrors: a slice's primaries carry the keys after the last's.
            let (parts, keys) = self.slices.last().copied().unwrap_or((0, 0));
            let keys = primary
                .iter()
                .map(|t| t.ordinal as usize + 1)
                .max()
                .unwrap_or(keys);
            self.slices.push((parts + self.last_parts, keys));
        }
        send_mirrors(ctx, client, &enc, mirrors);
        self.next = end;
        if self.next < self.targets.len() {
            return false;
        }
        client.replies.borrow_mut().seal(slot);
        true
    }
}

/// A huge split command (see `Huge`) and where it lies.
pub struct HugeCommand {
    pub plan: Huge,
    pub at: HugeAt,
}

/// Where a huge split command lies while it is sent: at the start of the
/// carried input (its length), or re-encoded by the scanner from an inline
/// request (the length it took in the input).
#[derive(Clone, Copy)]
pub enum HugeAt {
    Carried(usize),
    Inline(usize),
}

impl HugeAt {
    /// Input bytes it took.
    pub fn consumed(self) -> usize {
        match self {
            HugeAt::Carried(n) | HugeAt::Inline(n) => n,
        }
    }
}
