//! From a keyed request to the upstream requests that serve it: each key
//! is routed (prefix route or catch-all, prefix stripped if asked), hashed
//! onto its cluster's ring, and given an endpoint by the read policy; keys
//! are grouped per endpoint; mirror policies add fire-and-forget copies.
//! The client's reply only ever comes from the route's own cluster.

use super::replies::{Multi, Part, Waiter};
use super::{Client, CoreContext};
use crate::command::{CommandSpec, Split};
use crate::resp::request::Arg;
use crate::resp::write::{self, quoted};
use crate::stats::{CoreStats, ErrorKind};

/// Where one key of a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    /// 0: the client's reply; c + 1: a mirrored copy to cluster c.
    sink: u32,
    endpoint: u32,
    /// Position of the key among the command's keys.
    ordinal: u32,
    /// Leading bytes removed from the key (remove_prefix).
    strip: u32,
}

/// Routes and sends a keyed request (`kind` is Some for split commands).
/// `keys` holds the argument indices of its keys.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    ctx: &CoreContext,
    client: &mut Client,
    frame: &[u8],
    args: &[Arg],
    spec: &CommandSpec,
    kind: Option<Split>,
    keys: &[usize],
    targets: &mut Vec<Target>,
) {
    let arg = |i: usize| &frame[args[i].start..args[i].end];
    let topo = &ctx.topo;
    let is_read = !spec.write;
    targets.clear();
    // At most one draw per request, so all keys of a request are mirrored
    // or none; requests on routes without mirrors draw nothing.
    let mut draw = None;
    let turn = ctx.upstreams.next_turn();
    for (ordinal, &k) in keys.iter().enumerate() {
        let key = arg(k);
        let Some(route) = topo.resolve(key) else {
            client.error(&format!("ERR no route for key '{}'", quoted(key, 128)));
            return;
        };
        let stripped = &key[route.strip..];
        let shard = topo.shard(route.cluster, stripped);
        let endpoint = ctx.upstreams.choose(
            shard,
            topo.clusters[route.cluster].read_policy,
            is_read,
            turn,
        );
        let t = |sink: usize, endpoint: usize| Target {
            sink: sink as u32,
            endpoint: endpoint as u32,
            ordinal: ordinal as u32,
            strip: route.strip as u32,
        };
        targets.push(t(0, endpoint));
        for m in route.mirrors {
            if m.exclude_read_commands && is_read {
                continue;
            }
            if *draw.get_or_insert_with(|| client.next_fraction()) >= m.fraction {
                continue;
            }
            let shard = topo.shard(m.cluster, stripped);
            let ep =
                ctx.upstreams
                    .choose(shard, topo.clusters[m.cluster].read_policy, is_read, turn);
            targets.push(t(m.cluster + 1, ep));
        }
    }
    targets.sort_unstable();
    let split_at = targets.partition_point(|t| t.sink == 0);
    let (primary, mirrors) = targets.split_at(split_at);
    if kind.is_none() && primary.iter().any(|t| t.endpoint != primary[0].endpoint) {
        client.fail(
            ErrorKind::CrossSlot,
            "CROSSSLOT Keys in request don't hash to the same slot",
        );
        return;
    }
    let enc = Encoder {
        frame,
        args,
        keys,
        kind,
    };
    // The client's reply.
    let groups = primary.chunk_by(|a, b| a.endpoint == b.endpoint);
    if groups.clone().count() == 1 {
        let slot = client.replies.borrow_mut().push_waiting();
        let conn = ctx
            .upstreams
            .conn(primary[0].endpoint as usize, client.proto);
        conn.send(
            |buf| enc.whole(buf, primary),
            Waiter::new(&client.replies, slot, 0),
        );
    } else if let Some(kind) = kind {
        let parts = groups
            .clone()
            .map(|g| Part::new(g.iter().map(|t| t.ordinal).collect()))
            .collect();
        let slot = client
            .replies
            .borrow_mut()
            .push_multi(Multi::new(kind, keys.len(), parts));
        for (pi, g) in groups.enumerate() {
            let conn = ctx.upstreams.conn(g[0].endpoint as usize, client.proto);
            conn.send(
                |buf| enc.part(buf, g),
                Waiter::new(&client.replies, slot, pi),
            );
        }
    }
    // Mirrored copies: replies are read and dropped, never awaited.
    for copy in mirrors.chunk_by(|a, b| a.sink == b.sink) {
        let cluster = copy[0].sink as usize - 1;
        let stats = &ctx.stats.mirrors[cluster];
        let by_endpoint = copy.chunk_by(|a, b| a.endpoint == b.endpoint);
        if kind.is_none() && by_endpoint.clone().count() > 1 {
            // Keys together in the primary cluster, apart in the mirror.
            CoreStats::add(&stats.failed, 1);
            continue;
        }
        for g in by_endpoint {
            let conn = ctx.upstreams.conn(g[0].endpoint as usize, client.proto);
            if conn.pending() >= ctx.topo.config.mirror_queue_limit {
                CoreStats::add(&stats.dropped, 1);
                continue;
            }
            CoreStats::add(&stats.sent, 1);
            let waiter = Waiter::mirror(&ctx.stats, cluster);
            if g.len() == keys.len() {
                conn.send(|buf| enc.whole(buf, g), waiter);
            } else {
                conn.send(|buf| enc.part(buf, g), waiter);
            }
        }
    }
}

/// Writes the upstream requests of a plan.
struct Encoder<'a> {
    frame: &'a [u8],
    args: &'a [Arg],
    keys: &'a [usize],
    kind: Option<Split>,
}

impl Encoder<'_> {
    fn arg(&self, i: usize) -> &[u8] {
        &self.frame[self.args[i].start..self.args[i].end]
    }

    /// The whole command, to one endpoint: as it came when no key is
    /// rewritten, else re-encoded with the stripped keys.
    fn whole(&self, buf: &mut Vec<u8>, targets: &[Target]) {
        if targets.iter().all(|t| t.strip == 0) {
            buf.extend_from_slice(self.frame);
            return;
        }
        write::array_header(buf, self.args.len());
        let mut next_key = 0;
        for i in 0..self.args.len() {
            let a = self.arg(i);
            if next_key < self.keys.len() && self.keys[next_key] == i {
                let strip = targets
                    .iter()
                    .find(|t| t.ordinal as usize == next_key)
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
