//! MULTI ... EXEC through a sharding proxy. keyway queues a transaction's
//! commands itself, answering `+QUEUED` (or the error Redis would give at
//! queue time), and checks that all their keys live on one backend (one
//! slot of a Redis Cluster). At EXEC it writes MULTI, the commands and EXEC
//! to that backend's connection in one piece — nothing else can come
//! between them on the connection — so the backend runs them atomically,
//! and only EXEC's reply reaches the client. If the connection drops before
//! EXEC arrives, the backend discards the transaction: it runs whole or
//! not at all.
//!
//! A command whose key lives elsewhere, or one keyway cannot run inside a
//! transaction, gets an error and the transaction is aborted: EXEC answers
//! `EXECABORT` and **nothing** of it is sent.
//!
//! WATCH needs the backend to see the watching connection: the client gets
//! a connection of its own to the watched keys' backend, which carries the
//! WATCH and later the transaction, and is closed (unwatching everything)
//! after EXEC, DISCARD or UNWATCH, or when the client leaves.

use super::plan;
use super::replies::Waiter;
use super::{Client, CoreContext};
use crate::command::{CommandSpec, Exec, Local};
use crate::resp::request::{Arg, RequestScanner, Scanned};
use crate::resp::write::quoted;
use crate::stats::ErrorKind;
use crate::upstream::conn::Conn;
use std::rc::Rc;

/// A transaction being queued.
#[derive(Default)]
pub struct Transaction {
    /// The queued commands, encoded as the backend gets them.
    queued: Vec<u8>,
    /// Where each queued command ends in `queued`.
    ends: Vec<usize>,
    /// The endpoint and slot of its keys, once a keyed command came.
    place: Option<(usize, u16)>,
    /// An error was answered while queueing: EXEC must fail.
    aborted: bool,
    /// The queued writes as the client sent them, for the mirror clusters
    /// (kept only when some route mirrors): copied at EXEC like any
    /// mirrored write, one by one.
    mirrored: Vec<u8>,
}

impl Transaction {
    /// How many commands are queued.
    pub fn queued(&self) -> usize {
        self.ends.len()
    }
}

const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// A client's WATCH: its own connection to the watched keys' backend.
pub struct Watch {
    conn: Rc<Conn>,
    place: (usize, u16),
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
pub fn control(
    ctx: &CoreContext,
    client: &mut Client,
    frame: &[u8],
    args: &[Arg],
    spec: &CommandSpec,
) {
    let name = &frame[args[0].start..args[0].end];
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"multi") {
        if client.tx.is_some() {
            return client.error("ERR MULTI calls can not be nested");
        }
        client.tx = Some(Box::new(Transaction {
            place: client.watch.as_ref().map(|w| w.place),
            ..Default::default()
        }));
        client.reply(|o| o.extend_from_slice(b"+OK\r\n"));
    } else if is(b"discard") {
        match client.tx.take() {
            Some(_) => {
                unwatch(client);
                client.reply(|o| o.extend_from_slice(b"+OK\r\n"))
            }
            None => client.error("ERR DISCARD without MULTI"),
        }
    } else if is(b"exec") {
        match client.tx.take() {
            Some(tx) => exec(ctx, client, *tx),
            None => client.error("ERR EXEC without MULTI"),
        }
    } else if is(b"watch") {
        if client.tx.is_some() {
            abort(client, "ERR WATCH inside MULTI is not allowed");
        } else {
            watch(ctx, client, frame, args, spec);
        }
    } else {
        unwatch(client);
        client.reply(|o| o.extend_from_slice(b"+OK\r\n"));
    }
}

/// WATCH key [key ...]: on the client's own connection to their backend.
fn watch(ctx: &CoreContext, client: &mut Client, frame: &[u8], args: &[Arg], spec: &CommandSpec) {
    let mut request = Vec::with_capacity(frame.len());
    let place = match plan::place_whole(ctx, client, frame, args, spec, &mut request) {
        Ok(Some(p)) => p,
        Ok(None) => return client.error("ERR wrong number of arguments for 'watch' command"),
        Err(e) => return plan::refuse_placement(client, &e),
    };
    if let Some(w) = &client.watch {
        if w.place != place {
            return client.fail(
                ErrorKind::CrossSlot,
                "CROSSSLOT Keys in request don't hash to the same slot (keyway watches keys of one backend per client)",
            );
        }
    }
    let proto = client.proto;
    let db = client.db;
    let w = client.watch.get_or_insert_with(|| Watch {
        conn: ctx.upstreams.dedicated(place.0, proto, db),
        place,
    });
    let conn = w.conn.clone();
    let slot = client.replies.borrow_mut().push_waiting();
    conn.send(
        |b| b.extend_from_slice(&request),
        Waiter::new(&client.replies, slot, 0),
    );
}

/// Forgets the client's WATCH: its connection closes once this batch is
/// answered (closing a connection unwatches everything on the backend).
pub fn unwatch(client: &mut Client) {
    if let Some(w) = client.watch.take() {
        client.blocked.push(w.conn);
    }
}

/// Answers an error while queueing and dooms the transaction.
fn abort(client: &mut Client, msg: &str) {
    doom(client);
    client.error(msg);
}

/// Marks the transaction aborted (an error was already answered).
pub fn doom(client: &mut Client) {
    if let Some(tx) = client.tx.as_mut() {
        tx.aborted = true;
    }
}

/// Queues one command of an open transaction.
pub fn queue(
    ctx: &CoreContext,
    client: &mut Client,
    frame: &[u8],
    args: &[Arg],
    spec: &CommandSpec,
) {
    match spec.exec {
        // Inside MULTI, Redis runs blocking commands without blocking.
        Exec::Forward
        | Exec::Split(_)
        | Exec::Blocking(_)
        | Exec::Local(Local::Ping | Local::Echo) => {}
        Exec::Unsupported => {
            return abort(
                client,
                &format!(
                    "ERR unsupported command '{}'",
                    quoted(spec.name.as_bytes(), 64)
                ),
            );
        }
        _ => {
            return abort(
                client,
                &format!(
                    "ERR '{}' inside MULTI is not supported by keyway",
                    spec.name.to_uppercase()
                ),
            );
        }
    }
    let tx = client.tx.as_mut().expect("queue runs inside MULTI");
    let mut queued = std::mem::take(&mut tx.queued);
    let start = queued.len();
    let result = plan::place_whole(ctx, client, frame, args, spec, &mut queued);
    if let Ok(None) = result {
        // Keyless (PING, ECHO): runs wherever the transaction does.
        queued.extend_from_slice(frame);
    }
    let tx = client.tx.as_mut().expect("queue runs inside MULTI");
    tx.queued = queued;
    let first_key = client
        .keys
        .first()
        .map(|&k| &frame[args[k].start..args[k].end]);
    let outcome = result.and_then(|placed| {
        let tx = client.tx.as_mut().expect("queue runs inside MULTI");
        if let Some(place) = placed {
            match tx.place {
                None => tx.place = Some(place),
                Some(p) if p == place => {}
                Some(_) => {
                    tx.queued.truncate(start);
                    return Err(format!(
                        "ERR key '{}' lives on another backend than this transaction's earlier keys: keyway runs a transaction on one backend, so it is aborted and nothing of it will run",
                        quoted(first_key.unwrap_or_default(), 128)
                    ));
                }
            }
        }
        tx.ends.push(tx.queued.len());
        if spec.write && ctx.topo.has_mirrors() {
            tx.mirrored.extend_from_slice(frame);
        }
        Ok(())
    });
    match outcome {
        Ok(()) => client.reply(|o| o.extend_from_slice(b"+QUEUED\r\n")),
        Err(e) => abort(client, &e),
    }
}

fn exec(ctx: &CoreContext, client: &mut Client, tx: Transaction) {
    // EXEC unwatches, whatever happens to the transaction.
    let watched = client.watch.take();
    if tx.aborted {
        if let Some(w) = watched {
            client.blocked.push(w.conn);
        }
        return client.fail(ErrorKind::Other, EXECABORT);
    }
    if tx.ends.is_empty() && watched.is_none() {
        return client.reply(|o| o.extend_from_slice(b"*0\r\n"));
    }
    // Keyless transactions (PING, ECHO) run on any backend: the first.
    let endpoint = tx.place.map_or(0, |(e, _)| e);
    if tx.place.is_some() {
        client.wrote_to(endpoint);
    }
    let conn = match watched {
        Some(w) => {
            client.blocked.push(w.conn.clone());
            w.conn
        }
        None => ctx.upstreams.conn_in(endpoint, client.proto, client.db),
    };
    let exec = |conn: &Rc<Conn>| {
        let slot = client.replies.borrow_mut().push_waiting();
        conn.send(
            |b| b.extend_from_slice(b"*1\r\n$4\r\nEXEC\r\n"),
            Waiter::new(&client.replies, slot, 0),
        );
    };
    let arrived = client.replies.borrow().arrived();
    if arrived.is_some_and(|a| conn.gave_up_on(a)) {
        // The connection gave up on its backend after EXEC arrived: EXEC
        // fails at once (see `Conn::gave_up_on`), and MULTI must not go
        // alone before it.
        return exec(&conn);
    }
    // One piece on the connection: these sends are appended back to back
    // before anything else runs on this core.
    conn.send(
        |b| b.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n"),
        Waiter::Ignore,
    );
    let mut start = 0;
    for &end in &tx.ends {
        conn.send(
            |b| b.extend_from_slice(&tx.queued[start..end]),
            Waiter::Ignore,
        );
        start = end;
    }
    exec(&conn);
    mirror(ctx, client, &tx.mirrored);
}

/// Sends the mirror clusters their copies of a transaction's writes.
fn mirror(ctx: &CoreContext, client: &mut Client, frames: &[u8]) {
    let mut scanner = RequestScanner::new(ctx.limits);
    let mut pos = 0;
    while pos < frames.len() {
        // Frames keyway itself scanned once: they scan again.
        let Ok(Scanned::Frame { len }) = scanner.scan(&frames[pos..]) else {
            return;
        };
        let frame = &frames[pos..pos + len];
        let name = &frame[scanner.args()[0].start..scanner.args()[0].end];
        if let Some(spec) = crate::command::lookup(name) {
            plan::mirror_copies(ctx, client, frame, scanner.args(), spec);
        }
        pos += len;
    }
}
