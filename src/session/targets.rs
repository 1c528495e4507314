//! Where each key of a request goes (`Target`: cluster, endpoint, slot,
//! prefix stripped) as the router places it, and the upstream requests
//! that carry a request's keys there: whole, in parts per endpoint and
//! slot, or as mirrored copies. `plan` and `huge` decide which.

use super::{Client, CoreContext};
use crate::command::{CommandSpec, Split};
use crate::resp::request::Request;
use crate::resp::write::{self, Protocol};
use crate::stats::{ErrorKind, MirrorCounter};
use crate::topology::router::{self, Route, Router};
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
pub(super) fn kind_of(e: &RouteError) -> ErrorKind {
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

/// Answers a request that cannot be placed.
pub fn refuse(client: &Client, error: &RouteError) {
    client.refuse_as(kind_of(error), error.reply());
}

/// The primary a pub/sub channel lives on (see `Router::channel_home`).
pub fn channel_home(ctx: &CoreContext, channel: &[u8]) -> Result<usize, RouteError> {
    router_of!(ctx, router);
    router.channel_home(channel).map_err(|e| explained(ctx, e))
}

/// Where one key of a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// 0: the client's reply; c + 1: a mirrored copy to cluster c.
    pub(super) sink: u32,
    pub(super) endpoint: u32,
    /// Redis Cluster slot of the key (0 for ring clusters): keys of one
    /// upstream request must share it.
    pub(super) slot: u32,
    /// Position of the key among the command's keys.
    pub(super) ordinal: u32,
    /// Leading bytes removed from the key (remove_prefix).
    pub(super) strip: u32,
    pub(super) cluster: u32,
}

impl Target {
    /// The endpoint and slot: a transaction's commands must share them.
    pub fn place(&self) -> (usize, u16) {
        (self.endpoint as usize, self.slot as u16)
    }
}

/// Keys of one upstream request: one endpoint, one slot.
pub(super) fn together(a: &Target, b: &Target) -> bool {
    a.endpoint == b.endpoint && a.slot == b.slot
}

/// What routing the keys of one request shares from key to key.
pub(super) struct Routing {
    is_read: bool,
    /// Only the mirrored copies (the primary's ran another way).
    pub(super) mirrors_only: bool,
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
    pub(super) fn new(ctx: &CoreContext, spec: &CommandSpec, mirrors_only: bool) -> Routing {
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
    pub(super) fn route(
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
    pub(super) fn primary(
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

/// Sends the whole command to the one endpoint and slot of `primary` (its
/// keys' targets), for the client's reply.
pub(super) fn send_whole(ctx: &CoreContext, client: &Client, enc: &Encoder, primary: &[Target]) {
    let slot = client.replies.borrow_mut().push_waiting();
    send(
        ctx,
        primary,
        client,
        |buf| enc.whole(buf, primary),
        Waiter::new(&client.replies, slot, 0),
    );
}

/// Sends one part of the open multi-part reply in `slot` for each group of
/// `primary` (sorted) keys sharing an endpoint and slot.
pub(super) fn send_parts(
    ctx: &CoreContext,
    client: &Client,
    enc: &Encoder,
    primary: &[Target],
    slot: usize,
) {
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
pub(super) fn send_mirrors(ctx: &CoreContext, client: &Client, enc: &Encoder, mirrors: &[Target]) {
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

/// Sends one upstream request for the keys of `group` (one endpoint, one slot).
pub(super) fn send(
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
pub(super) struct Encoder<'a> {
    pub(super) req: Request<'a>,
    pub(super) keys: &'a [usize],
    pub(super) kind: Option<Split>,
}

impl Encoder<'_> {
    fn arg(&self, i: usize) -> &[u8] {
        self.req.arg(i)
    }

    /// The whole command, to one endpoint: as it came when no key is
    /// rewritten, else re-encoded with the stripped keys.
    pub(super) fn whole(&self, buf: &mut Vec<u8>, targets: &[Target]) {
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
    pub(super) fn part(&self, buf: &mut Vec<u8>, targets: &[Target]) {
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
