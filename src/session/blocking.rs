//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN/MAX,
//! BLMPOP, BZMPOP, XREAD/XREADGROUP with BLOCK). Each goes over a new
//! connection of its own to the primary owning its keys, so no other
//! client's requests wait behind it on the shared connection, and it may
//! wait as long as its client asked (plus `op_timeout`), not `op_timeout`.
//! The session shuts that connection down once the reply came, or as soon
//! as the client leaves: the backend then never pops an element for a
//! client that is gone. WAIT waits the same way, on every primary the
//! client wrote to.

use super::gather::{Gather, Merge};
use super::replies::Replies;
use super::{plan, targets};
use super::{Client, CoreContext, Latest, ReloadWatch};
use crate::command::{Block, CommandSpec};
use crate::net::notify::{race, Either};
use crate::net::{Input, Stream};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write;
use crate::stats::CoreCounter;
use crate::upstream::conn::Conn;
use crate::upstream::waiter::Waiter;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// What a client that sends more while blocked may have carried before
/// keyway stops reading it (its requests run after the blocking one).
const CARRY_LIMIT: usize = 1024 * 1024;

/// "Block forever" (a timeout of 0): longer than any process lives.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// How long a blocking command may block: None when it does not block
/// (XREAD without BLOCK) or its timeout is not one (the backend answers
/// the error at once); Some(ZERO) for forever.
pub fn how_long<'a>(
    block: Block,
    arg: impl Fn(usize) -> Option<&'a [u8]>,
    argc: usize,
) -> Option<Duration> {
    let seconds = |a: &[u8]| {
        let s: f64 = std::str::from_utf8(a).ok()?.trim().parse().ok()?;
        (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(FOREVER.as_secs_f64())))
    };
    match block {
        Block::LastSeconds => seconds(arg(argc - 1)?),
        Block::FirstSeconds => seconds(arg(1)?),
        Block::BlockOption => {
            let mut i = 1;
            while i < argc {
                let a = arg(i)?;
                if a.eq_ignore_ascii_case(b"streams") {
                    return None;
                }
                if a.eq_ignore_ascii_case(b"block") {
                    let ms: u64 = std::str::from_utf8(arg(i + 1)?).ok()?.parse().ok()?;
                    return Some(Duration::from_millis(ms));
                }
                i += 1;
            }
            None
        }
    }
}

/// Sends a blocking command over a connection of its own; the connection
/// joins `client.blocked` until the batch's replies are written.
pub fn execute(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
    block: Block,
) {
    let (frame, args) = (req.frame, req.args);
    let arg = |i: usize| req.get(i);
    let Some(timeout) = how_long(block, arg, args.len()) else {
        // Not blocking: an ordinary request on the shared connection.
        return plan::execute(ctx, client, req, spec, None);
    };
    let mut request = Vec::with_capacity(frame.len());
    let endpoint = match plan::place_whole(ctx, client, req, spec, &mut request) {
        Ok(Some((endpoint, _))) => endpoint,
        Ok(None) => return client.refuse(ErrorReply::BlockingWithoutKeys(spec.name)),
        Err(e) => return targets::refuse(client, &e),
    };
    if spec.write {
        client.wrote_to(endpoint);
    }
    let conn = own_conn(ctx, client, endpoint, timeout);
    // The backend's name for this connection, in case a reload moves the
    // key while the command blocks (see `follow`).
    let id = Rc::new(Cell::new(None));
    let learn = id.clone();
    conn.send(
        |b| b.extend_from_slice(CLIENT_ID),
        Waiter::Then(Box::new(move |reply| {
            learn.set(Some(reply.ok().and_then(crate::resp::reply::integer)));
        })),
    );
    let unblocked = Rc::new(Cell::new(false));
    let slot = client.replies.borrow_mut().push_waiting();
    conn.send(
        |b| b.extend_from_slice(&request),
        Waiter::Unblockable {
            waiter: Box::new(Waiter::new(&client.replies, slot, 0)),
            unblocked: unblocked.clone(),
        },
    );
    client.blocked.push(conn.clone());
    client.blocking.push(Blocked {
        endpoint,
        frame: frame.to_vec(),
        conn,
        id,
        unblocked,
        unblock_via: None,
    });
}

const CLIENT_ID: &[u8] = b"*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n";

/// A keyed blocking command of the current batch, as a reload sees it.
pub struct Blocked {
    /// Its backend, in the session's configuration.
    endpoint: usize,
    /// The command as the client sent it: its keys are placed again when
    /// the configuration changes.
    frame: Vec<u8>,
    conn: Rc<Conn>,
    /// The backend's id of `conn` (CLIENT ID, sent before the command):
    /// None until answered, Some(None) when the backend did not say.
    id: Rc<Cell<Option<Option<i64>>>>,
    /// Set when keyway unblocks it: its error reply is then keyway's.
    unblocked: Rc<Cell<bool>>,
    /// Its key moved: the connection CLIENT UNBLOCK goes over, once the
    /// id is known (None: not moved, or already unblocked).
    unblock_via: Option<Rc<Conn>>,
}

/// The session moves from `old`'s configuration to `new`'s. A blocking
/// command whose key now lives elsewhere (moved, or its backend removed)
/// would wait where no write through keyway arrives any more: it is
/// unblocked on its backend with CLIENT UNBLOCK ... ERROR, which the
/// backend runs atomically (the command returns what it already took, or
/// an error having taken nothing), and its client gets an error that says
/// so (see `unblock`).
pub fn follow(old: &CoreContext, new: &CoreContext, client: &mut Client) {
    let mut blocking = std::mem::take(&mut client.blocking);
    for b in &mut blocking {
        if b.unblocked.get() || b.unblock_via.is_some() {
            continue;
        }
        let here = new.upstreams.same_as(&old.upstreams, b.endpoint);
        let mut scanner = crate::resp::request::RequestScanner::new(new.limits);
        let lives = match scanner.scan(&b.frame) {
            Ok(crate::resp::request::Scanned::Frame { .. }) => {
                let args = scanner.args().to_vec();
                let req = Request::new(&b.frame, &args);
                crate::command::lookup(req.arg(0)).and_then(|spec| {
                    let mut scratch = Vec::new();
                    plan::place_whole(new, client, req, spec, &mut scratch)
                        .ok()
                        .flatten()
                })
            }
            _ => None,
        };
        match (here, lives) {
            (Some(e), Some((at, _))) if e == at => b.endpoint = e,
            _ => b.unblock_via = Some(old.upstreams.dedicated(b.endpoint, client.proto, 0)),
        }
    }
    client.blocking = blocking;
}

/// Sends CLIENT UNBLOCK for every moved command whose connection id is
/// known. Returns whether one still waits for its id.
pub fn unblock(client: &mut Client) -> bool {
    let mut waiting = false;
    for b in &mut client.blocking {
        let Some(via) = b.unblock_via.as_ref() else {
            continue;
        };
        let id = match b.id.get() {
            Some(Some(id)) => id,
            Some(None) => {
                // No id (a user without CLIENT permission): closing the
                // connection is the only way to end the command.
                b.unblock_via = None;
                b.conn.shut_down();
                continue;
            }
            None => {
                // CLIENT ID goes first on the connection: its reply comes
                // as soon as the connection is up; until then the command
                // has not blocked.
                waiting = !b.conn.is_shut();
                continue;
            }
        };
        let via = via.clone();
        b.unblock_via = None;
        b.unblocked.set(true);
        client.stats.count(CoreCounter::ReloadMoved, 1);
        let mut digits = Vec::new();
        write::push_decimal(&mut digits, id.unsigned_abs());
        let conn = b.conn.clone();
        via.send(
            |out| {
                write::array_header(out, 4);
                write::bulk(out, b"CLIENT");
                write::bulk(out, b"UNBLOCK");
                write::bulk(out, &digits);
                write::bulk(out, b"ERROR");
            },
            // A backend that refuses (no CLIENT permission) leaves the
            // command blocked where its key no longer lives: closing its
            // connection ends it.
            Waiter::Then(Box::new(move |reply| {
                if !matches!(reply, Ok(r) if crate::resp::reply::integer(r).is_some()) {
                    conn.shut_down();
                }
            })),
        );
        client.blocked.push(via);
    }
    waiting
}

/// A connection of the client's own to `endpoint` whose requests may take
/// `timeout` (zero: forever) plus `op_timeout`.
fn own_conn(ctx: &CoreContext, client: &Client, endpoint: usize, timeout: Duration) -> Rc<Conn> {
    let conn = ctx.upstreams.dedicated(endpoint, client.proto, client.db);
    let op = ctx.topo.config.op_timeout;
    conn.set_op_timeout(if timeout.is_zero() {
        FOREVER
    } else {
        timeout.saturating_add(op)
    });
    conn
}

/// The channel of the PUBLISH that gives a WAIT's connection its place in
/// the replication stream (nobody subscribes to it).
const WAIT_CHANNEL: &[u8] = b"__keyway__:wait";

/// WAIT numreplicas timeout: how many replicas acknowledged this client's
/// writes, on every primary it wrote to (all of them when it wrote
/// nothing): the fewest. Redis counts from the last write of the
/// connection WAIT runs on; the client's writes went over shared
/// connections, so a connection of its own first sends a PUBLISH (which
/// Redis propagates to replicas) and then WAIT: the offset it waits for is
/// past every write the backend had answered, the client's included (they
/// were answered before WAIT was sent: see `own_connection`).
pub fn wait_for_replicas(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    primaries: &[usize],
) {
    let frame = req.frame;
    let arg = |i: usize| req.arg(i);
    if crate::resp::parse_int(arg(1)).is_none_or(|n| n < 0) {
        return client.refuse(ErrorReply::NotInteger);
    }
    let Some(ms) = crate::resp::parse_int(arg(2)) else {
        return client.refuse(ErrorReply::TimeoutNotInteger);
    };
    if ms < 0 {
        return client.refuse(ErrorReply::TimeoutNegative);
    }
    let mut eps = client.written();
    if eps.is_empty() {
        eps = primaries.to_vec();
    }
    let topo = &ctx.topo;
    // In a Redis Cluster PUBLISH travels the cluster bus, not the
    // replication stream: no offset to wait for.
    // (Endpoints past the configured ones are nodes a Redis Cluster showed.)
    let in_cluster = |e: usize| {
        topo.endpoints
            .get(e)
            .is_none_or(|info| topo.is_redis_cluster(info.cluster))
    };
    if eps.iter().any(|&e| in_cluster(e)) {
        return client.refuse(ErrorReply::WaitInRedisCluster);
    }
    let mut publish = Vec::with_capacity(48);
    write::array_header(&mut publish, 3);
    write::bulk(&mut publish, b"PUBLISH");
    write::bulk(&mut publish, WAIT_CHANNEL);
    write::bulk(&mut publish, b"");
    let g = Gather::new(Merge::Wait, client.proto, 2 * eps.len());
    let slot = client.replies.borrow_mut().push_gather(g);
    let timeout = Duration::from_millis(ms as u64);
    for (i, &ep) in eps.iter().enumerate() {
        let conn = own_conn(ctx, client, ep, timeout);
        conn.send(
            |b| b.extend_from_slice(&publish),
            Waiter::new(&client.replies, slot, 2 * i),
        );
        conn.send(
            |b| b.extend_from_slice(frame),
            Waiter::new(&client.replies, slot, 2 * i + 1),
        );
        client.blocked.push(conn);
    }
}

/// How a wait on a batch with a blocking command ended.
pub enum Waited {
    /// Every reply is in.
    Answered,
    /// The client left (or broke its connection) first.
    Left,
    /// The core serves a new configuration (or `recheck` passed).
    Reloaded,
}

/// Waits for the batch's replies while a blocking command is in it,
/// watching the client and the core's configuration meanwhile. What the
/// client sends meanwhile is carried in `input`, to be served after the
/// blocking command, as Redis does. With `recheck`, it also ends as
/// `Reloaded` after a moment (an unblock waits for a connection's id).
pub async fn wait(
    stream: &Stream,
    input: &mut Input,
    replies: &Rc<RefCell<Replies>>,
    reloads: (&Latest, &ReloadWatch, u64),
    recheck: bool,
) -> Waited {
    let (latest, me, version) = reloads;
    let reloaded = async {
        if recheck {
            crate::net::sleep(Duration::from_millis(5)).await
        } else {
            latest.changed(me, version).await
        }
    };
    let mut reloaded = std::pin::pin!(reloaded);
    loop {
        let answered = super::replies::wait_for_replies(replies);
        if input.carried() >= CARRY_LIMIT {
            return match race(answered, reloaded.as_mut()).await {
                Either::Left(()) => Waited::Answered,
                Either::Right(()) => Waited::Reloaded,
            };
        }
        let carry = stream.recv(|piece| input.feed(piece, |_| 0));
        match race(answered, race(carry, reloaded.as_mut())).await {
            Either::Left(()) => return Waited::Answered,
            Either::Right(Either::Left(Ok(true))) => continue,
            Either::Right(Either::Left(Ok(false) | Err(_))) => return Waited::Left,
            Either::Right(Either::Right(())) => return Waited::Reloaded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(block: Block, args: &[&str]) -> Option<Duration> {
        how_long(block, |i| args.get(i).map(|a| a.as_bytes()), args.len())
    }

    #[test]
    fn timeouts_as_each_command_gives_them() {
        let s = Duration::from_secs_f64;
        assert_eq!(
            parse(Block::LastSeconds, &["BLPOP", "a", "b", "1.5"]),
            Some(s(1.5))
        );
        assert_eq!(
            parse(Block::LastSeconds, &["BLPOP", "a", "0"]),
            Some(Duration::ZERO)
        );
        assert_eq!(parse(Block::LastSeconds, &["BLPOP", "a", "-1"]), None);
        assert_eq!(parse(Block::LastSeconds, &["BLPOP", "a", "x"]), None);
        assert_eq!(
            parse(Block::FirstSeconds, &["BLMPOP", "2", "1", "k", "LEFT"]),
            Some(s(2.0))
        );
        assert_eq!(
            parse(
                Block::BlockOption,
                &["XREAD", "COUNT", "2", "BLOCK", "250", "STREAMS", "s", "$"]
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse(Block::BlockOption, &["XREAD", "STREAMS", "block", "0"]),
            None
        );
    }
}
