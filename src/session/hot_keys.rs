//! `HOTKEYS GET` through the proxy: the hot keys every core sampled (see
//! `stats::hot`), merged, in the reply shape Valkey 9.2 gave its own
//! HOTKEYS GET (an array of entries, hottest first; each entry its fields
//! and values: `key`, `db`, `qps`), with keyway's additions after them:
//! `reads`, `writes` (sampled requests), `cluster` and `endpoint` (where
//! the key lives). A client reaches it only once authenticated, like any
//! command; key names never go to the log.

use std::time::Instant;

use super::clients::{answers, Ask};
use super::{Client, CoreContext};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write;
use crate::stats::hot::{merge, HotKey};
use crate::upstream::waiter::Waiter;

/// Entries HOTKEYS GET returns at most (Valkey's `hotkeys-top-k` default).
const TOP_K: usize = 16;

/// HOTKEYS GET; the other subcommands are refused (keyway tracks always).
pub fn hotkeys(ctx: &CoreContext, client: &mut Client, req: Request<'_>) {
    let sub = req.arg(1);
    if sub.eq_ignore_ascii_case(b"get") && req.argc() == 2 {
        return get(ctx, client);
    }
    let known = [&b"start"[..], b"stop", b"reset"];
    if known.iter().any(|k| sub.eq_ignore_ascii_case(k)) {
        return client.refuse(ErrorReply::HotKeysAlwaysOn);
    }
    let sub = crate::resp::write::quoted(sub, 64);
    client.refuse(ErrorReply::UnknownSubcommandOrArity {
        sub: &sub,
        command: "HOTKEYS",
    })
}

/// This core's hot keys at once, the other cores' as their control loops
/// answer (within a second; one that does not is left out), merged.
fn get(ctx: &CoreContext, client: &mut Client) {
    let own = ctx.stats.hot.top(Instant::now());
    let labels: Vec<(String, String)> = (ctx.topo.endpoints.iter())
        .map(|e| {
            let cluster = ctx.topo.clusters.get(e.cluster);
            (
                cluster.map_or("", |c| c.name.as_str()).to_string(),
                e.label.clone(),
            )
        })
        .collect();
    let (tx, rx) = crossbeam_channel::unbounded();
    let asked = if ctx.clients.cores() > 1 {
        ctx.clients.ask_others(|| Ask::HotKeys(tx.clone()))
    } else {
        0
    };
    let slot = client.replies.borrow_mut().push_waiting();
    let replies = client.replies.clone();
    crate::net::spawn(async move {
        let mut lists = vec![own];
        answers(rx, asked, |list| lists.push(list)).await;
        let merged = merge(lists.iter().flatten());
        let mut out = Vec::new();
        encode(&mut out, &merged[..merged.len().min(TOP_K)], &labels);
        Waiter::new(&replies, slot, 0).complete(&out);
    })
    .detach();
}

/// The entries, as Valkey's HOTKEYS GET shapes them, keyway's fields after.
fn encode(out: &mut Vec<u8>, keys: &[HotKey], labels: &[(String, String)]) {
    write::array_header(out, keys.len());
    for h in keys {
        let (cluster, endpoint) = labels
            .get(h.endpoint as usize)
            .map_or(("", ""), |(c, e)| (c.as_str(), e.as_str()));
        write::array_header(out, 14);
        write::bulk(out, b"key");
        write::bulk(out, &h.key);
        write::bulk(out, b"db");
        write::integer(out, i64::from(h.db));
        write::bulk(out, b"qps");
        write::integer(out, h.ops_per_sec.round() as i64);
        write::bulk(out, b"reads");
        write::integer(out, h.reads as i64);
        write::bulk(out, b"writes");
        write::integer(out, h.writes as i64);
        write::bulk(out, b"cluster");
        write::bulk(out, cluster.as_bytes());
        write::bulk(out, b"endpoint");
        write::bulk(out, endpoint.as_bytes());
    }
}
