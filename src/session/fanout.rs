//! Commands no single backend can answer for the whole keyspace: INFO,
//! DBSIZE, KEYS, SCAN, RANDOMKEY, FLUSHALL/FLUSHDB, SCRIPT, FUNCTION, TIME,
//! LASTSAVE, CONFIG GET, SLOWLOG, LATENCY, COMMAND. They go to the backends — the primaries of every cluster a
//! route leads to, in a fixed order (cluster, then shard) — and `gather`
//! merges the parts into one reply. Writes (FLUSH*, SCRIPT LOAD/FLUSH,
//! FUNCTION LOAD/DELETE/FLUSH) also
//! go to the routes' mirror clusters; as for every mirrored write, those
//! replies never reach the client.

use super::gather::{self, split_cursor, Gather, HelloParts, Merge, Table};
use super::targets::{self, router_of, RouteError};
use super::{info, Client, CoreContext};
use crate::command::Fan;
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write::{self, quoted};
use crate::stats::MirrorCounter;
use crate::topology::router::{Backends, Router};
use crate::upstream::waiter::Waiter;

/// Where a fanned-out command goes (see `Router::fanout`).
fn backends(ctx: &CoreContext) -> Result<Backends, RouteError> {
    router_of!(ctx, router);
    router.fanout().map_err(|e| targets::explained(ctx, e))
}

/// The primaries of every routed cluster, in the fixed fan-out order.
pub fn primaries(ctx: &CoreContext) -> Result<Vec<usize>, RouteError> {
    backends(ctx).map(|b| b.primaries)
}

/// Runs a fanned-out command.
pub fn execute(ctx: &CoreContext, client: &mut Client, req: Request<'_>, fan: Fan) {
    let frame = req.frame;
    let arg = |i: usize| req.arg(i);
    if fan == Fan::Info {
        return info_cmd(ctx, client, req);
    }
    let all = match backends(ctx) {
        Ok(b) if b.primaries.is_empty() => return client.refuse(ErrorReply::NoBackendToAsk),
        Ok(b) => b,
        Err(e) => return targets::refuse(client, &e),
    };
    let n = all.primaries.len();
    match fan {
        Fan::Info => {}
        Fan::Dbsize => gather(ctx, client, &all, Merge::SumInt, frame, false),
        Fan::Flush => {
            if !ctx.topo.config.allow_flush {
                return client.refuse(ErrorReply::FlushDisabled(
                    &quoted(arg(0), 32).to_uppercase(),
                ));
            }
            gather(ctx, client, &all, Merge::AllOk, frame, true)
        }
        Fan::Keys => {
            let cap = ctx.topo.config.keys_limit;
            gather(ctx, client, &all, Merge::Concat { cap }, frame, false)
        }
        Fan::RandomKey => {
            let start = (client.next_fraction() * n as f64) as usize % n;
            gather(ctx, client, &all, Merge::AnyNonNull { start }, frame, false)
        }
        Fan::FirstBackend => ask(ctx, client, &[all.primaries[0]], Merge::First, frame),
        Fan::Config => {
            if arg(1).eq_ignore_ascii_case(b"get") {
                ask(ctx, client, &[all.primaries[0]], Merge::ConfigGet, frame)
            } else {
                client.refuse(ErrorReply::ConfigSubcommand(
                    &quoted(arg(1), 32).to_uppercase(),
                ))
            }
        }
        Fan::Script => script(ctx, client, req, &all),
        Fan::Function => function(ctx, client, req, &all),
        Fan::PubSubInfo => pubsub_info(ctx, client, req, &all),
        Fan::Scan => scan(ctx, client, req, &all.primaries),
        Fan::Wait => super::blocking::wait_for_replicas(ctx, client, req, &all.primaries),
        Fan::Slowlog => slowlog(ctx, client, req, &all),
        Fan::Latency => latency(ctx, client, req, &all),
    }
}

/// SCRIPT LOAD and FLUSH reach every backend (a script must be there
/// wherever EVALSHA lands); EXISTS is true where all have it.
fn script(ctx: &CoreContext, client: &mut Client, req: Request<'_>, all: &Backends) {
    let (frame, args) = (req.frame, req.args);
    let arg = |i: usize| req.arg(i);

    let sub = arg(1);
    if sub.eq_ignore_ascii_case(b"load") && args.len() == 3 {
        gather(ctx, client, all, Merge::Same, frame, true)
    } else if sub.eq_ignore_ascii_case(b"exists") && args.len() >= 3 {
        gather(ctx, client, all, Merge::AndInts, frame, false)
    } else if sub.eq_ignore_ascii_case(b"flush") && args.len() <= 3 {
        gather(ctx, client, all, Merge::AllOk, frame, true)
    } else if [&b"load"[..], b"exists", b"flush"]
        .iter()
        .any(|s| sub.eq_ignore_ascii_case(s))
    {
        client.refuse(ErrorReply::SubcommandArity {
            command: "script",
            sub: &quoted(sub, 32).to_lowercase(),
        })
    } else {
        client.refuse(ErrorReply::UnsupportedSubcommand {
            command: "SCRIPT",
            sub: &quoted(sub, 32).to_uppercase(),
        })
    }
}

/// FUNCTION: libraries load everywhere, so FCALL finds them on any backend.
fn function(ctx: &CoreContext, client: &mut Client, req: Request<'_>, all: &Backends) {
    let frame = req.frame;
    let arg = |i: usize| req.arg(i);

    // Libraries load everywhere, so FCALL finds them on any backend.
    let sub = arg(1);
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    if is(b"load") || is(b"delete") {
        let merge = if is(b"load") {
            Merge::Same
        } else {
            Merge::AllOk
        };
        gather(ctx, client, all, merge, frame, true)
    } else if is(b"flush") {
        gather(ctx, client, all, Merge::AllOk, frame, true)
    } else if is(b"list") {
        ask(ctx, client, &[all.primaries[0]], Merge::First, frame)
    } else {
        client.refuse(ErrorReply::UnsupportedSubcommand {
            command: "FUNCTION",
            sub: &quoted(sub, 32).to_uppercase(),
        })
    }
}

/// PUBSUB CHANNELS / NUMSUB / NUMPAT, merged over the backends.
fn pubsub_info(ctx: &CoreContext, client: &mut Client, req: Request<'_>, all: &Backends) {
    let frame = req.frame;
    let arg = |i: usize| req.arg(i);

    let sub = arg(1);
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    if is(b"channels") || is(b"shardchannels") {
        let cap = usize::MAX;
        gather(ctx, client, all, Merge::Concat { cap }, frame, false)
    } else if is(b"numsub") || is(b"shardnumsub") {
        gather(ctx, client, all, Merge::SumPairs, frame, false)
    } else if is(b"numpat") {
        // Every primary holds every pattern keyway subscribed.
        ask(ctx, client, &[all.primaries[0]], Merge::First, frame)
    } else {
        client.refuse(ErrorReply::UnsupportedSubcommand {
            command: "PUBSUB",
            sub: &quoted(sub, 32).to_uppercase(),
        })
    }
}

/// SLOWLOG over every backend, entries labelled by backend.
fn slowlog(ctx: &CoreContext, client: &mut Client, req: Request<'_>, all: &Backends) {
    let (frame, args) = (req.frame, req.args);
    let arg = |i: usize| req.arg(i);

    let sub = arg(1);
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    let backends = labels(ctx, &all.primaries);
    if is(b"get") && args.len() <= 3 {
        // Redis's default is 10 entries; a negative count is all.
        let count = match args.len() {
            3 => crate::resp::parse_int(arg(2))
                .map_or(10, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            _ => 10,
        };
        let merge = Merge::Slowlog { count, backends };
        gather(ctx, client, all, merge, frame, false)
    } else if is(b"len") && args.len() == 2 {
        gather(ctx, client, all, Merge::SumInt, frame, false)
    } else if is(b"reset") && args.len() == 2 {
        gather(ctx, client, all, Merge::AllOk, frame, false)
    } else if is(b"help") {
        ask(ctx, client, &[all.primaries[0]], Merge::First, frame)
    } else {
        unknown_subcommand(client, "SLOWLOG", sub)
    }
}

/// LATENCY over every backend, merged per shape of reply.
fn latency(ctx: &CoreContext, client: &mut Client, req: Request<'_>, all: &Backends) {
    let frame = req.frame;
    let arg = |i: usize| req.arg(i);

    use super::gather::Latency;
    let sub = arg(1);
    let is = |s: &[u8]| sub.eq_ignore_ascii_case(s);
    let shape = if is(b"latest") {
        Latency::Latest
    } else if is(b"history") {
        Latency::History
    } else if is(b"histogram") {
        Latency::Histogram
    } else if is(b"doctor") || is(b"graph") {
        Latency::Text
    } else if is(b"reset") {
        return gather(ctx, client, all, Merge::SumInt, frame, false);
    } else if is(b"help") {
        return ask(ctx, client, &[all.primaries[0]], Merge::First, frame);
    } else {
        return unknown_subcommand(client, "LATENCY", sub);
    };
    let backends = labels(ctx, &all.primaries);
    gather(
        ctx,
        client,
        all,
        Merge::Latency { shape, backends },
        frame,
        false,
    )
}

/// The `host:port` of each endpoint.
fn labels(ctx: &CoreContext, eps: &[usize]) -> Vec<String> {
    eps.iter().map(|&ep| ctx.upstreams.label(ep)).collect()
}

/// As Redis words it, so `HELP` is where clients look.
fn unknown_subcommand(client: &mut Client, cmd: &str, sub: &[u8]) {
    client.refuse(ErrorReply::UnknownSubcommandOrArity {
        sub: &quoted(sub, 128),
        command: cmd,
    })
}

/// Sends `frame` to every backend; the parts merge with `merge`. With
/// `mirrored`, the mirror clusters get it too.
fn gather(
    ctx: &CoreContext,
    client: &mut Client,
    all: &Backends,
    merge: Merge,
    frame: &[u8],
    mirrored: bool,
) {
    ask(ctx, client, &all.primaries, merge, frame);
    if mirrored {
        for &(ep, cluster) in &all.mirrors {
            ctx.stats.mirror(cluster, MirrorCounter::Sent);
            ctx.upstreams.conn_in(ep, client.proto, client.db).send(
                |b| b.extend_from_slice(frame),
                Waiter::mirror(&ctx.stats, cluster),
            );
        }
    }
}

/// Sends `request` to each of `eps`: their replies are the parts of one
/// reply slot, merged with `merge`.
/// With no endpoint, the merge of no parts is the reply at once (INFO and
/// HELLO answer without backends).
fn ask(ctx: &CoreContext, client: &mut Client, eps: &[usize], merge: Merge, request: &[u8]) {
    let g = Gather::new(merge, client.proto, eps.len());
    if eps.is_empty() {
        return client.reply(|o| gather::merge(&g, &[], o));
    }
    let slot = client.replies.borrow_mut().push_gather(g);
    for (part, &ep) in eps.iter().enumerate() {
        ctx.upstreams.conn_in(ep, client.proto, client.db).send(
            |b| b.extend_from_slice(request),
            Waiter::new(&client.replies, slot, part),
        );
    }
}

/// COMMAND and its DOCS, INFO, LIST, COUNT and GETKEYS subcommands from
/// the first backend's real table (what `redis-cli` shows for HELP), without
/// the commands keyway does not serve. False when there is no backend to
/// ask (the caller answers from keyway's own table).
pub fn command_table(ctx: &CoreContext, client: &mut Client, frame: &[u8], merge: Merge) -> bool {
    let first = match backends(ctx) {
        Ok(b) => match b.primaries.first() {
            Some(&ep) => ep,
            None => return false,
        },
        Err(e) => {
            targets::refuse(client, &e);
            return true;
        }
    };
    // COUNT is counted over the names the backend lists.
    let request = match merge {
        Merge::CommandTable(Table::Count) => &b"*2\r\n$7\r\nCOMMAND\r\n$4\r\nLIST\r\n"[..],
        _ => frame,
    };
    ask(ctx, client, &[first], merge, request);
    true
}

/// HELLO when this core has not seen the backends' version lately: the
/// reply waits for their `INFO server` (a backend that does not answer is
/// left out; with none, keyway's compatibility version is reported).
pub fn hello(ctx: &CoreContext, client: &mut Client) {
    let merge = Merge::Hello(Box::new(HelloParts {
        client_id: client.id,
        seen: ctx.backend_version.clone(),
    }));
    let eps = backends(ctx).map(|b| b.primaries).unwrap_or_default();
    ask(
        ctx,
        client,
        &eps,
        merge,
        b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n",
    );
}

/// INFO: keyway's sections, with the backends' version and keyspace when
/// those are asked for. A backend that does not answer is counted in
/// `keyway_backends_failed`, never a failed INFO: clients' ready checks
/// must pass while one backend is down.
fn info_cmd(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let args = req.args;
    let names: Vec<&[u8]> = (1..args.len()).map(|i| req.arg(i)).collect();
    let want = info::wanted(&names);
    let parts = info::render(ctx, client, &want);
    let eps = if info::needs_backends(&want) {
        backends(ctx).map(|b| b.primaries).unwrap_or_default()
    } else {
        Vec::new()
    };
    let merge = Merge::Info(Box::new(parts));
    ask(ctx, client, &eps, merge, b"*1\r\n$4\r\nINFO\r\n");
}

/// SCAN across backends: the client's cursor names a backend and that
/// backend's cursor (`gather::scan_cursor`); backends are walked in turn,
/// so every key present for the whole scan is returned, as Redis promises.
fn scan(ctx: &CoreContext, client: &mut Client, req: Request<'_>, eps: &[usize]) {
    let (frame, args) = (req.frame, req.args);
    let arg = |i: usize| req.arg(i);
    let cursor = std::str::from_utf8(arg(1))
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let Some(cursor) = cursor else {
        return client.refuse(ErrorReply::InvalidCursor);
    };
    let (backend, inner) = split_cursor(cursor, eps.len());
    let mut request = Vec::with_capacity(frame.len() + 8);
    write::array_header(&mut request, args.len());
    write::bulk(&mut request, arg(0));
    let mut digits = Vec::with_capacity(20);
    write::push_decimal(&mut digits, inner);
    write::bulk(&mut request, &digits);
    for i in 2..args.len() {
        write::bulk(&mut request, arg(i));
    }
    let merge = Merge::Scan {
        backend,
        backends: eps.len(),
    };
    ask(ctx, client, &[eps[backend]], merge, &request);
}
