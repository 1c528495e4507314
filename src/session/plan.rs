//! From a keyed request to the upstream requests that serve it: each key
//! is routed (prefix route or catch-all, prefix stripped if asked), hashed
//! onto its cluster's ring, and given an endpoint by the read policy; keys
//! are grouped per endpoint; mirror policies add fire-and-forget copies.
//! The client's reply only ever comes from the route's own cluster.

use super::replies::Multi;
use super::{Client, CoreContext};
use crate::command::{key_indices, CommandSpec, KeyError, KeySpec, Split};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write::{self, Protocol};
use crate::stats::{ErrorKind, MirrorCounter};
use crate::topology::router::{self, Home, Route, Router};
use crate::upstream;
use crate::upstream::conn::Conn;
use crate::upstream::waiter::Waiter;
use std::rc::Rc;

pub use crate::topology::router::RouteError;

/// A router over this core's view of the generation it serves (its slot
/// maps are borrowed for the router's life).
macro_rules! router_of {
    ($ctx:expr, $router:ident) => {
        let $router = $ctx.upstreams.slot_maps();
        let $router = Router::new(&$ctx.topo, &$router);
    };
}
pub(crate) use router_of;

/// What a routing error counts as in the stats.
fn kind_of(e: &RouteError) -> ErrorKind {
    match e {
        RouteError::CrossSlot => ErrorKind::CrossSlot,
        _ => ErrorKind::Other,
    }
}

/// A routing error as the client gets it: discovery is asked for a slot
/// map that is missing or stale, and a missing one says why.
pub fn explained(ctx: &CoreContext, mut e: RouteError) -> RouteError {
    if let Some(cluster) = e.stale_slot_map() {
        ctx.upstreams.ask_refresh(cluster);
    }
    if let RouteError::NoSlotMap { cluster, why, .. } = &mut e {
        *why = ctx
            .upstreams
            .discovery_error(*cluster)
            .map(|w| w.to_string());
    }
    e
}

/// Where one key of a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// 0: the client's reply; c + 1: a mirrored copy to cluster c.
    sink: u32,
    endpoint: u32,
    /// Redis Cluster slot of the key (0 for ring clusters): keys of one
    /// upstream request must share it.
    slot: u32,
    /// Position of the key among the command's keys.
    ordinal: u32,
    /// Leading bytes removed from the key (remove_prefix).
    strip: u32,
    cluster: u32,
}

/// Routes and sends a keyed request (`kind` is Some for split commands).
/// `keys` holds the argument indices of its keys.
fn place_and_send(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
    kind: Option<Split>,
    keys: &[usize],
    targets: &mut Vec<Target>,
) {
    let routing = Routing::new(ctx, spec, false);
    route_and_send(ctx, client, req, routing, kind, keys, targets)
}

/// Sends only the mirrored copies of a write that already ran on its
/// primary another way (a transaction's commands, at EXEC): nothing is
/// answered to the client.
pub fn mirror_copies(ctx: &CoreContext, client: &mut Client, req: Request<'_>, spec: &CommandSpec) {
    let mut keys = std::mem::take(&mut client.keys);
    let mut targets = std::mem::take(&mut client.targets);
    if keys_of(spec, req, &mut keys).is_ok() && !keys.is_empty() {
        let kind = match spec.exec {
            crate::command::Exec::Split(kind) => Some(kind),
            _ => None,
        };
        let routing = Routing::new(ctx, spec, true);
        route_and_send(ctx, client, req, routing, kind, &keys, &mut targets);
    }
    client.keys = keys;
    client.targets = targets;
}

fn route_and_send(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    mut routing: Routing,
    kind: Option<Split>,
    keys: &[usize],
    targets: &mut Vec<Target>,
) {
    let mirrors_only = routing.mirrors_only;
    targets.clear();
    if let Err(why) = routing.route(ctx, client, req, keys, 0, targets) {
        if !mirrors_only {
            refuse(client, &why);
        }
        return;
    }
    targets.sort_unstable();
    let split_at = targets.partition_point(|t| t.sink == 0);
    let (primary, mirrors) = targets.split_at(split_at);
    if kind.is_none() && primary.iter().any(|t| !together(t, &primary[0])) {
        refuse(client, &RouteError::CrossSlot);
        return;
    }
    let enc = Encoder { req, keys, kind };
    // The client's reply.
    let groups = primary.chunk_by(together);
    if mirrors_only {
        // The primary's reply comes another way.
    } else if groups.clone().count() == 1 {
        send_whole(ctx, client, &enc, primary);
    } else if let Some(kind) = kind {
        let slot = client
            .replies
            .borrow_mut()
            .push_multi(Multi::open(kind, keys.len()));
        send_parts(ctx, client, &enc, primary, slot);
        client.replies.borrow_mut().seal(slot);
    }
    if !mirrors.is_empty() {
        send_mirrors(ctx, client, &enc, mirrors);
    }
}

/// Sends the whole command to the one endpoint and slot of `primary` (its
/// keys' targets), for the client's reply.
fn send_whole(ctx: &CoreContext, client: &Client, enc: &Encoder, primary: &[Target]) {
    let slot = client.replies.borrow_mut().push_waiting();
    send(
        ctx,
        primary,
        client,
        |buf| enc.whole(buf, primary),
        Waiter::new(&client.replies, slot, 0),
    );
}

/// Keys of one upstream request: one endpoint, one slot.
fn together(a: &Target, b: &Target) -> bool {
    a.endpoint == b.endpoint && a.slot == b.slot
}

/// What routing the keys of one request shares from key to key.
struct Routing {
    is_read: bool,
    /// Only the mirrored copies (the primary's ran another way).
    mirrors_only: bool,
    /// At most one draw per request, so all keys of a request are
    /// mirrored or none; requests on routes without mirrors draw nothing.
    draw: Option<f64>,
    turn: usize,
    /// Whether the hot keys count this request's keys: drawn once, at its
    /// first key, so a sampled request counts every key it touches.
    sampled: Option<bool>,
}

impl Routing {
    /// For a request of `spec`: all its copies, or (`mirrors_only`) only
    /// the mirrored ones.
    fn new(ctx: &CoreContext, spec: &CommandSpec, mirrors_only: bool) -> Routing {
        Routing {
            is_read: !spec.write,
            mirrors_only,
            draw: None,
            turn: ctx.upstreams.next_turn(),
            sampled: None,
        }
    }

    /// Appends the targets of `keys` (argument indices; the first is key
    /// number `first` of the command) to `targets`, in key order. Err: a
    /// key cannot be served; the client's error.
    fn route(
        &mut self,
        ctx: &CoreContext,
        client: &mut Client,
        req: Request<'_>,
        keys: &[usize],
        first: usize,
        targets: &mut Vec<Target>,
    ) -> Result<(), RouteError> {
        router_of!(ctx, router);
        let is_read = self.is_read;
        for (i, &k) in keys.iter().enumerate() {
            let ordinal = first + i;
            let key = req.arg(k);
            let route = router.route(key, "key").map_err(|e| explained(ctx, e))?;
            let stripped = &key[route.strip..];
            let t = |sink: usize, cluster: usize, endpoint: usize, slot: u16| Target {
                sink: sink as u32,
                endpoint: endpoint as u32,
                slot: slot as u32,
                ordinal: ordinal as u32,
                strip: route.strip as u32,
                cluster: cluster as u32,
            };
            // The primary's copy (the client's reply), unless it ran another way.
            if !self.mirrors_only {
                let (endpoint, slot) =
                    self.primary(ctx, &router, client, req, (key, &route), keys.len())?;
                targets.push(t(0, route.cluster, endpoint, slot));
            }
            for m in route.mirrors {
                let draw = *self.draw.get_or_insert_with(|| client.next_fraction());
                if !router::mirrored(m, is_read, draw) {
                    continue;
                }
                let Ok(home) = router.locate(m.cluster, stripped) else {
                    // The mirror cluster cannot take it yet: counted, not sent.
                    ctx.upstreams.ask_refresh(m.cluster);
                    ctx.stats.mirror(m.cluster, MirrorCounter::Failed);
                    continue;
                };
                let policy = router.read_policy(m.cluster);
                let ep = ctx.upstreams.choose(home.shard, policy, is_read, self.turn);
                targets.push(t(m.cluster + 1, m.cluster, ep, home.slot));
            }
        }
        Ok(())
    }

    /// The client's copy of `key` (on `route`, one of the request's
    /// `nkeys` keys): its endpoint and slot. The key is counted for the hot
    /// keys when the request is sampled, and a write's endpoint is noted.
    #[inline(always)]
    fn primary(
        &mut self,
        ctx: &CoreContext,
        router: &Router,
        client: &mut Client,
        req: Request<'_>,
        (key, route): (&[u8], &Route),
        nkeys: usize,
    ) -> Result<(usize, u16), RouteError> {
        let home = router
            .locate_for_reply(route.cluster, &key[route.strip..])
            .map_err(|e| explained(ctx, e))?;
        let policy = router.read_policy(route.cluster);
        let endpoint = ctx
            .upstreams
            .choose(home.shard, policy, self.is_read, self.turn);
        // Every key of one request in `every`, each with its share of the
        // request's bytes.
        let hot = &ctx.stats.hot;
        if *self.sampled.get_or_insert_with(|| hot.sampled()) {
            let sample = crate::stats::hot::Sample {
                key,
                db: client.db,
                write: !self.is_read,
                bytes: req.frame.len() / nkeys,
                cluster: route.cluster as u32,
                endpoint: endpoint as u32,
                slot: home.slot,
            };
            hot.record(sample, std::time::Instant::now());
        }
        if !self.is_read {
            client.wrote_to(endpoint);
        }
        Ok((endpoint, home.slot))
    }
}

/// Sends one part of the open multi-part reply in `slot` for each group of
/// `primary` (sorted) keys sharing an endpoint and slot.
fn send_parts(ctx: &CoreContext, client: &Client, enc: &Encoder, primary: &[Target], slot: usize) {
    for g in primary.chunk_by(together) {
        let part = client
            .replies
            .borrow_mut()
            .add_part(slot, g.iter().map(|t| t.ordinal).collect());
        send(
            ctx,
            g,
            client,
            |buf| enc.part(buf, g),
            Waiter::new(&client.replies, slot, part),
        );
    }
}

/// Mirrored copies of `mirrors` (sorted): replies are read and dropped,
/// never awaited.
fn send_mirrors(ctx: &CoreContext, client: &Client, enc: &Encoder, mirrors: &[Target]) {
    for copy in mirrors.chunk_by(|a, b| a.sink == b.sink) {
        let cluster = copy[0].sink as usize - 1;
        let by_endpoint = copy.chunk_by(together);
        if enc.kind.is_none() && by_endpoint.clone().count() > 1 {
            // Keys together in the primary cluster, apart in the mirror.
            ctx.stats.mirror(cluster, MirrorCounter::Failed);
            continue;
        }
        for g in by_endpoint {
            let conn = ctx
                .upstreams
                .conn_in(g[0].endpoint as usize, client.proto, client.db);
            if conn.pending() >= ctx.topo.config.mirror_queue_limit {
                ctx.stats.mirror(cluster, MirrorCounter::Dropped);
                continue;
            }
            ctx.stats.mirror(cluster, MirrorCounter::Sent);
            let waiter = Waiter::mirror(&ctx.stats, cluster);
            if g.len() == enc.keys.len() {
                send_on(ctx, &conn, g, client.proto, |buf| enc.whole(buf, g), waiter);
            } else {
                send_on(ctx, &conn, g, client.proto, |buf| enc.part(buf, g), waiter);
            }
        }
    }
}

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

/// Where a command that runs whole on one primary goes (a transaction's,
/// a blocking one, a WATCH): the endpoint and slot owning every key of it,
/// with the command encoded for them (keys stripped as routed) appended to
/// `buf`; Ok(None), nothing appended, when it has no keys. Err is the
/// client's error, and `buf` is left as it was.
pub fn place_whole(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
    buf: &mut Vec<u8>,
) -> Result<Option<(usize, u16)>, RouteError> {
    let mut keys = std::mem::take(&mut client.keys);
    let mut targets = std::mem::take(&mut client.targets);
    let start = buf.len();
    let placed = keys_of(spec, req, &mut keys)
        .map_err(RouteError::Keys)
        .and_then(|()| {
            if keys.is_empty() {
                return Ok(None);
            }
            single_target(ctx, req, &keys, &mut targets, buf).map(|()| Some(targets[0].place()))
        });
    if placed.is_err() {
        buf.truncate(start);
    }
    client.keys = keys;
    client.targets = targets;
    placed
}

/// Answers a request that cannot be placed.
pub fn refuse(client: &Client, error: &RouteError) {
    client.refuse_as(kind_of(error), error.reply());
}

/// The primary owning every key of a command (one endpoint, one slot), as
/// `targets`, and the command encoded for it appended to `buf`.
fn single_target(
    ctx: &CoreContext,
    req: Request<'_>,
    keys: &[usize],
    targets: &mut Vec<Target>,
    buf: &mut Vec<u8>,
) -> Result<(), RouteError> {
    router_of!(ctx, router);
    targets.clear();
    let keys_given = keys.iter().map(|&k| req.arg(k));
    let each = |route: Route, home: Home| {
        targets.push(Target {
            sink: 0,
            endpoint: home.shard.primary as u32,
            slot: home.slot as u32,
            ordinal: targets.len() as u32,
            strip: route.strip as u32,
            cluster: route.cluster as u32,
        })
    };
    router
        .place_together(keys_given, each)
        .map_err(|e| explained(ctx, e))?;
    let enc = Encoder {
        req,
        keys,
        kind: None,
    };
    enc.whole(buf, targets);
    Ok(())
}

/// The primary a pub/sub channel lives on (see `Router::channel_home`).
pub fn channel_home(ctx: &CoreContext, channel: &[u8]) -> Result<usize, RouteError> {
    router_of!(ctx, router);
    router.channel_home(channel).map_err(|e| explained(ctx, e))
}

impl Target {
    /// The endpoint and slot: a transaction's commands must share them.
    pub fn place(&self) -> (usize, u16) {
        (self.endpoint as usize, self.slot as u16)
    }
}

/// Sends one upstream request for the keys of `group` (one endpoint, one slot).
fn send(
    ctx: &CoreContext,
    group: &[Target],
    client: &Client,
    encode: impl FnOnce(&mut Vec<u8>),
    waiter: Waiter,
) {
    let conn = ctx
        .upstreams
        .conn_in(group[0].endpoint as usize, client.proto, client.db);
    send_on(ctx, &conn, group, client.proto, encode, waiter);
}

/// Sends on `conn` (a Redis Cluster's redirections are followed inside
/// `upstream`).
fn send_on(
    ctx: &CoreContext,
    conn: &Rc<Conn>,
    group: &[Target],
    proto: Protocol,
    encode: impl FnOnce(&mut Vec<u8>),
    waiter: Waiter,
) {
    let to = (group[0].cluster as usize, group[0].slot as u16);
    upstream::send(&ctx.upstreams, conn, to, proto, encode, waiter);
}

/// Writes the upstream requests of a plan.
struct Encoder<'a> {
    req: Request<'a>,
    keys: &'a [usize],
    kind: Option<Split>,
}

impl Encoder<'_> {
    fn arg(&self, i: usize) -> &[u8] {
        self.req.arg(i)
    }

    /// The whole command, to one endpoint: as it came when no key is
    /// rewritten, else re-encoded with the stripped keys.
    fn whole(&self, buf: &mut Vec<u8>, targets: &[Target]) {
        if targets.iter().all(|t| t.strip == 0) {
            buf.extend_from_slice(self.req.frame);
            return;
        }
        write::array_header(buf, self.req.argc());
        let mut next_key = 0;
        for i in 0..self.req.argc() {
            let a = self.arg(i);
            if next_key < self.keys.len() && self.keys[next_key] == i {
                // Targets of a whole command are in key order: the key's
                // own is found at once (a search for each was quadratic).
                let strip = targets
                    .get(next_key)
                    .filter(|t| t.ordinal as usize == next_key)
                    .or_else(|| targets.iter().find(|t| t.ordinal as usize == next_key))
                    .map_or(0, |t| t.strip);
                write::bulk(buf, &a[strip as usize..]);
                next_key += 1;
            } else {
                write::bulk(buf, a);
            }
        }
    }

    /// The part of a split command for one endpoint: the command name and
    /// its keys (with their values for MSET), keys stripped as routed.
    fn part(&self, buf: &mut Vec<u8>, targets: &[Target]) {
        let per_key = if self.kind == Some(Split::Mset) { 2 } else { 1 };
        write::array_header(buf, 1 + per_key * targets.len());
        write::bulk(buf, self.arg(0));
        for t in targets {
            let k = self.keys[t.ordinal as usize];
            write::bulk(buf, &self.arg(k)[t.strip as usize..]);
            if per_key == 2 {
                write::bulk(buf, self.arg(k + 1));
            }
        }
    }
}

/// A command served by the keys' endpoints.
pub fn execute(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
    kind: Option<Split>,
) {
    if kind.is_none() && one_key(spec, req) && send_one(ctx, client, req, spec) {
        return;
    }
    let mut keys = std::mem::take(&mut client.keys);
    let mut targets = std::mem::take(&mut client.targets);
    if find_keys(client, spec, req, &mut keys) {
        match kind {
            _ if keys.is_empty() => client.refuse(ErrorReply::KeylessNotRoutable(spec.name)),
            // Too many keys to route at once: a slice at a time, other
            // clients in between (a subscriber's turn cannot wait for it).
            Some(kind) if keys.len() > HUGE && client.pubsub.is_none() => {
                let plan = Huge::new(ctx, client, spec, kind, std::mem::take(&mut keys));
                // Where it lies is known to the reader (see `absorb`).
                let at = HugeAt::Carried(0);
                client.huge = Some(Box::new(HugeCommand { plan, at }));
            }
            _ => place_and_send(ctx, client, req, spec, kind, &keys, &mut targets),
        }
    }
    client.keys = keys;
    client.targets = targets;
}

/// Whether `req`'s one key is its first argument (GET, SET and most
/// commands).
fn one_key(spec: &CommandSpec, req: Request<'_>) -> bool {
    matches!(
        spec.keys,
        KeySpec::Range {
            first: 1,
            last: 1,
            ..
        }
    ) && req.argc() >= 2
}

/// Routes and sends a request whose one key is its first argument, without
/// the lists of keys and targets of the general path. False: the key's
/// route strips a prefix or mirrors it, which the general path
/// (`place_and_send`) does; nothing was done.
fn send_one(ctx: &CoreContext, client: &mut Client, req: Request<'_>, spec: &CommandSpec) -> bool {
    router_of!(ctx, router);
    let key = req.arg(1);
    let route = match router.route(key, "key") {
        Ok(route) => route,
        Err(e) => {
            refuse(client, &explained(ctx, e));
            return true;
        }
    };
    if route.strip != 0 || !route.mirrors.is_empty() {
        return false;
    }
    let mut routing = Routing::new(ctx, spec, false);
    match routing.primary(ctx, &router, client, req, (key, &route), 1) {
        Ok((endpoint, slot)) => {
            let target = Target {
                sink: 0,
                endpoint: endpoint as u32,
                slot: slot as u32,
                ordinal: 0,
                strip: 0,
                cluster: route.cluster as u32,
            };
            let enc = Encoder {
                req,
                keys: &[1],
                kind: None,
            };
            send_whole(ctx, client, &enc, std::slice::from_ref(&target));
        }
        Err(e) => refuse(client, &e),
    }
    true
}

/// Fills `keys` with the argument indices of the request's keys; on a bad
/// numkeys, answers the client and returns false.
fn find_keys(client: &Client, spec: &CommandSpec, req: Request<'_>, keys: &mut Vec<usize>) -> bool {
    match keys_of(spec, req, keys) {
        Ok(()) => true,
        Err(e) => {
            client.refuse(e.reply());
            false
        }
    }
}

/// Fills `keys` with the argument indices of the keys of `req`.
fn keys_of(spec: &CommandSpec, req: Request<'_>, keys: &mut Vec<usize>) -> Result<(), KeyError> {
    key_indices(spec, req.argc(), |i| req.arg(i), keys)
}

/// A huge split command (see `plan::Huge`) and where it lies.
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
