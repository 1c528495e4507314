//! From a keyed request to the upstream requests that serve it: each key
//! is routed (prefix route or catch-all, prefix stripped if asked), hashed
//! onto its cluster's ring, and given an endpoint by the read policy; keys
//! are grouped per endpoint; mirror policies add fire-and-forget copies.
//! The client's reply only ever comes from the route's own cluster.
//! The targets and the requests that carry them are `targets`; a split
//! command too big for one go is `huge`.

use super::huge::{Huge, HugeAt, HugeCommand, HUGE};
use super::replies::Multi;
use super::targets::{
    explained, refuse, router_of, send_mirrors, send_parts, send_whole, together, Encoder,
    RouteError, Routing, Target,
};
use super::{Client, CoreContext};
use crate::command::{key_indices, CommandSpec, KeyError, KeySpec, Split};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::topology::router::{Home, Route, Router};

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
    execute_listed(ctx, client, req, spec, kind)
}

/// `execute` with the request's keys and targets listed: any number of
/// keys, prefixes stripped, mirrors. Apart, so the short walk of one key
/// does not pay for its frame.
#[inline(never)]
fn execute_listed(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
    kind: Option<Split>,
) {
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
