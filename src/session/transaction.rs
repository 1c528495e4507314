//! MULTI ... EXEC through a sharding proxy. keyway queues a transaction's
//! commands itself, answering `+QUEUED` (or the error Redis would give at
//! queue time), and checks that all their keys live on one backend (one
//! slot of a Redis Cluster). At EXEC it places them again, under the
//! configuration the session serves then, and writes MULTI, the commands
//! and EXEC to that backend's connection in one piece — nothing else can
//! come between them on the connection — so the backend runs them
//! atomically, and only EXEC's reply reaches the client. If the connection
//! drops before EXEC arrives, the backend discards the transaction: it
//! runs whole or not at all.
//!
//! A command whose key lives elsewhere, or one keyway cannot run inside a
//! transaction, gets an error and the transaction is aborted: EXEC answers
//! `EXECABORT` and **nothing** of it is sent.
//!
//! WATCH needs the backend to see the watching connection: the client gets
//! a connection of its own to the watched keys' backend, which carries the
//! WATCH and later the transaction, and is closed (unwatching everything)
//! after EXEC, DISCARD or UNWATCH, or when the client leaves.
//!
//! A reload (or an ejection) between MULTI or WATCH and EXEC can move keys
//! or remove their backend. A transaction keeps the commands as the client
//! sent them, so EXEC places them where the keys live now: without WATCH
//! it runs there whole (nothing of it ran before EXEC), or, when the keys
//! now live apart, EXEC answers `EXECABORT`. With WATCH the backend that
//! watched them may no longer be theirs: EXEC then answers nil, as Redis
//! does when a watched key changed, and nothing runs. Never an OK for a
//! write that a later read through keyway would not find.

use super::plan;
use super::targets::{self, RouteError};
use super::{Client, CoreContext};
use crate::command::{CommandSpec, Exec, Local};
use crate::resp::errors::ErrorReply;
use crate::resp::request::{Arg, Request, RequestScanner, Scanned};
use crate::resp::write::{self, quoted};
use crate::stats::ErrorKind;
use crate::upstream::conn::Conn;
use crate::upstream::waiter::Waiter;
use crate::upstream::Upstreams;
use std::rc::Rc;

/// A transaction being queued.
#[derive(Default)]
pub struct Transaction {
    /// The queued commands as the client sent them, back to back: placed
    /// and encoded for their backend at EXEC.
    frames: Vec<u8>,
    /// Where each queued command ends in `frames`.
    ends: Vec<usize>,
    /// The endpoint and slot of its keys so far, in the session's
    /// configuration: a key elsewhere aborts it as it is queued.
    place: Option<(usize, u16)>,
    /// An error was answered while queueing: EXEC must fail.
    aborted: bool,
}

impl Transaction {
    /// How many commands are queued.
    pub fn queued(&self) -> usize {
        self.ends.len()
    }
}

/// A client's WATCH: its own connection to the watched keys' backend.
pub struct Watch {
    conn: Rc<Conn>,
    /// The watched keys' endpoint and slot in the session's configuration;
    /// None once a reload removed that endpoint.
    place: Option<(usize, u16)>,
    /// The WATCH commands as the client sent them: at EXEC their keys must
    /// still live where the connection watches them.
    frames: Vec<u8>,
}

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
pub fn execute(ctx: &CoreContext, client: &mut Client, req: Request<'_>, spec: &CommandSpec) {
    let name = req.arg(0);
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    if is(b"multi") {
        if client.tx.is_some() {
            return client.refuse(ErrorReply::MultiNested);
        }
        client.tx = Some(Box::new(Transaction {
            place: client.watch.as_ref().and_then(|w| w.place),
            ..Default::default()
        }));
        client.reply(|o| o.extend_from_slice(write::OK));
    } else if is(b"discard") {
        match client.tx.take() {
            Some(_) => {
                unwatch(client);
                client.reply(|o| o.extend_from_slice(write::OK))
            }
            None => client.refuse(ErrorReply::DiscardWithoutMulti),
        }
    } else if is(b"exec") {
        match client.tx.take() {
            Some(tx) => exec(ctx, client, *tx),
            None => client.refuse(ErrorReply::ExecWithoutMulti),
        }
    } else if is(b"watch") {
        if client.tx.is_some() {
            abort(client, &ErrorReply::WatchInMulti.to_string());
        } else {
            watch(ctx, client, req, spec);
        }
    } else {
        unwatch(client);
        client.reply(|o| o.extend_from_slice(write::OK));
    }
}

/// WATCH key [key ...]: on the client's own connection to their backend.
fn watch(ctx: &CoreContext, client: &mut Client, req: Request<'_>, spec: &CommandSpec) {
    let frame = req.frame;
    let mut request = Vec::with_capacity(frame.len());
    let place = match plan::place_whole(ctx, client, req, spec, &mut request) {
        Ok(Some(p)) => p,
        Ok(None) => return client.refuse(ErrorReply::WrongArity("watch")),
        Err(e) => return targets::refuse(client, &e),
    };
    if let Some(w) = &client.watch {
        if w.place != Some(place) {
            return client.refuse_as(ErrorKind::CrossSlot, ErrorReply::WatchCrossSlot);
        }
    }
    let proto = client.proto;
    let db = client.db;
    let w = client.watch.get_or_insert_with(|| Watch {
        conn: ctx.upstreams.dedicated(place.0, proto, db),
        place: Some(place),
        frames: Vec::new(),
    });
    w.frames.extend_from_slice(frame);
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

/// The session moves from `old`'s configuration to `new`'s: the places its
/// WATCH and transaction keep are renumbered (the keys themselves are
/// placed again at EXEC).
pub fn follow(client: &mut Client, old: &Upstreams, new: &Upstreams) {
    if let Some(w) = client.watch.as_mut() {
        w.place = w
            .place
            .and_then(|(e, slot)| Some((new.same_as(old, e)?, slot)));
    }
    let watched = client.watch.as_ref().and_then(|w| w.place);
    if let Some(tx) = client.tx.as_mut() {
        tx.place = watched;
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

/// What a command sent inside MULTI does, decided by how it executes.
#[derive(Debug, PartialEq)]
enum Queueing {
    Queue,
    /// keyway runs it nowhere (as outside a transaction).
    Unsupported,
    /// keyway answers it itself or it changes the session: it cannot be
    /// part of what the backend runs atomically.
    NotInMulti,
}

fn queueing(exec: Exec) -> Queueing {
    match exec {
        // Inside MULTI, Redis runs blocking commands without blocking.
        Exec::Forward
        | Exec::Split(_)
        | Exec::Blocking(_)
        | Exec::Local(Local::Ping | Local::Echo) => Queueing::Queue,
        Exec::Unsupported => Queueing::Unsupported,
        _ => Queueing::NotInMulti,
    }
}

/// A queued command's keys live apart from the transaction's.
#[derive(Debug, PartialEq)]
struct Apart;

/// Joins a queued command's place (None: it has no keys) to the
/// transaction's: the first keyed command sets it, the others must match.
fn join(place: &mut Option<(usize, u16)>, placed: Option<(usize, u16)>) -> Result<(), Apart> {
    match (placed, *place) {
        (None, _) => Ok(()),
        (Some(p), None) => {
            *place = Some(p);
            Ok(())
        }
        (Some(p), Some(at)) if p == at => Ok(()),
        (Some(_), Some(_)) => Err(Apart),
    }
}

/// Queues one command of an open transaction.
pub fn queue(ctx: &CoreContext, client: &mut Client, req: Request<'_>, spec: &CommandSpec) {
    let frame = req.frame;
    match queueing(spec.exec) {
        Queueing::Queue => {}
        Queueing::Unsupported => {
            let name = quoted(spec.name.as_bytes(), 64);
            return abort(client, &ErrorReply::Unsupported(&name).to_string());
        }
        Queueing::NotInMulti => {
            let name = spec.name.to_uppercase();
            return abort(client, &ErrorReply::NotInMulti(&name).to_string());
        }
    }
    let mut encoded = Vec::new();
    let result = plan::place_whole(ctx, client, req, spec, &mut encoded);
    let first_key = client.keys.first().map(|&k| req.arg(k));
    let outcome = result.and_then(|placed| {
        let tx = client.tx.as_mut().expect("queue runs inside MULTI");
        join(&mut tx.place, placed).map_err(|Apart| RouteError::TransactionApart {
            key: quoted(first_key.unwrap_or_default(), 128),
        })?;
        tx.frames.extend_from_slice(frame);
        tx.ends.push(tx.frames.len());
        Ok(())
    });
    match outcome {
        Ok(()) => client.reply(|o| o.extend_from_slice(write::QUEUED)),
        Err(e) => abort(client, &e.to_string()),
    }
}

/// Why a transaction cannot run where its keys live now.
#[derive(Debug, PartialEq)]
enum Unplaced {
    /// Its keys (or its watched keys) live on more than one backend.
    Apart,
    /// A key cannot be placed at all (no route, no slot map): the client's
    /// error.
    Refused(RouteError),
    /// A queued command no longer scans or looks up (keyway's own bug).
    Lost,
}

/// Calls `each` with every command of `frames` (as the client sent them,
/// back to back) and its arguments.
fn each_command(
    ctx: &CoreContext,
    frames: &[u8],
    mut each: impl FnMut(&[u8], &[Arg], &'static CommandSpec) -> Result<(), Unplaced>,
) -> Result<(), Unplaced> {
    let mut scanner = RequestScanner::new(ctx.limits);
    let mut pos = 0;
    while pos < frames.len() {
        // Frames keyway itself scanned and looked up once: they do again.
        let Ok(Scanned::Frame { len }) = scanner.scan(&frames[pos..]) else {
            return Err(Unplaced::Lost);
        };
        let frame = &frames[pos..pos + len];
        let name = &frame[scanner.args()[0].start..scanner.args()[0].end];
        let Some(spec) = crate::command::lookup(name) else {
            return Err(Unplaced::Lost);
        };
        each(frame, scanner.args(), spec)?;
        pos += len;
    }
    Ok(())
}

/// Calls `each` with every command the open transaction queued (a
/// reshard moves their keys before EXEC runs them).
pub fn each_queued(
    ctx: &CoreContext,
    client: &Client,
    mut each: impl FnMut(Request<'_>, &'static CommandSpec),
) {
    if let Some(tx) = &client.tx {
        let _ = each_command(ctx, &tx.frames, |frame, args, spec| {
            each(Request::new(frame, args), spec);
            Ok(())
        });
    }
}

/// Commands encoded for their backend, back to back.
#[derive(Default)]
struct Encoded {
    bytes: Vec<u8>,
    /// Where each command ends in `bytes`.
    ends: Vec<usize>,
}

/// Places every command of `frames` under the session's configuration,
/// encoding each as its backend gets it into `out` (keyless ones as they
/// are). Ok: the one endpoint and slot of all their keys (None: no keys).
fn place_all(
    ctx: &CoreContext,
    client: &mut Client,
    frames: &[u8],
    out: &mut Encoded,
) -> Result<Option<(usize, u16)>, Unplaced> {
    let mut place = None;
    each_command(ctx, frames, |frame, args, spec| {
        match plan::place_whole(ctx, client, Request::new(frame, args), spec, &mut out.bytes) {
            Ok(None) => out.bytes.extend_from_slice(frame),
            Ok(Some(p)) if *place.get_or_insert(p) == p => {}
            Ok(Some(_)) => return Err(Unplaced::Apart),
            Err(e) => return Err(Unplaced::Refused(e)),
        }
        out.ends.push(out.bytes.len());
        Ok(())
    })?;
    Ok(place)
}

/// Whether the WATCH still watches its keys where they live: its
/// endpoint is still configured and every watched key lives there.
fn still_watching(ctx: &CoreContext, client: &mut Client, w: &Watch) -> bool {
    let Some(at) = w.place else {
        return false;
    };
    let mut scratch = Encoded::default();
    matches!(place_all(ctx, client, &w.frames, &mut scratch), Ok(Some(p)) if p == at)
}

/// What EXEC does, decided from where the transaction's keys live now.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Run it: on the WATCH's connection if there is one, else on a
    /// connection to `endpoint` (None: keyless, any backend).
    Run { endpoint: Option<usize> },
    /// The backend that watched its keys is no longer theirs: as Redis
    /// when a watched key changed, EXEC answers nil and nothing runs.
    Nil,
    /// EXECABORT, nothing runs.
    Abort(Unplaced),
}

/// The verdict on a transaction whose keys were `placed` now (its place,
/// or why it has none), with a WATCH placed `watching` (None: no WATCH;
/// Some(None): its endpoint was removed) that `still_watching` says
/// still watches them there.
fn verdict(
    placed: Result<Option<(usize, u16)>, Unplaced>,
    watching: Option<Option<(usize, u16)>>,
    still_watching: impl FnOnce() -> bool,
) -> Verdict {
    match (watching, placed) {
        (Some(at), Ok(p)) if (p.is_none() || p == at) && still_watching() => Verdict::Run {
            endpoint: at.map(|(e, _)| e),
        },
        (Some(_), _) => Verdict::Nil,
        (None, Ok(p)) => Verdict::Run {
            endpoint: p.map(|(e, _)| e),
        },
        (None, Err(why)) => Verdict::Abort(why),
    }
}

fn exec(ctx: &CoreContext, client: &mut Client, tx: Transaction) {
    // EXEC unwatches, whatever happens to the transaction.
    let watched = client.watch.take();
    if let Some(w) = &watched {
        // Closed once this batch is answered.
        client.blocked.push(w.conn.clone());
    }
    if tx.aborted {
        return client.refuse(ErrorReply::ExecAbort);
    }
    if tx.ends.is_empty() && watched.is_none() {
        return client.reply(|o| o.extend_from_slice(b"*0\r\n"));
    }
    // Placed now: a reload since MULTI or WATCH may have moved the keys.
    let mut commands = Encoded::default();
    let placed = place_all(ctx, client, &tx.frames, &mut commands);
    let watching = watched.as_ref().map(|w| w.place);
    let still = || {
        watched
            .as_ref()
            .is_some_and(|w| still_watching(ctx, client, w))
    };
    let (conn, endpoint) = match verdict(placed, watching, still) {
        Verdict::Run { endpoint } => {
            let conn = match watched {
                Some(w) => w.conn,
                // Keyless transactions (PING, ECHO) run on any backend: the first.
                None => ctx
                    .upstreams
                    .conn_in(endpoint.unwrap_or(0), client.proto, client.db),
            };
            (conn, endpoint)
        }
        Verdict::Nil => {
            let proto = client.proto;
            return client.reply(|o| write::null_array(o, proto));
        }
        Verdict::Abort(Unplaced::Apart) => return client.refuse(ErrorReply::ExecAbortMoved),
        Verdict::Abort(Unplaced::Refused(why)) => {
            let why = why.reply().to_string();
            return client.refuse(ErrorReply::ExecAbortBecause(&why));
        }
        Verdict::Abort(Unplaced::Lost) => {
            let why = ErrorReply::QueuedCommandLost.to_string();
            return client.refuse(ErrorReply::ExecAbortBecause(&why));
        }
    };
    if let Some(e) = endpoint {
        client.wrote_to(e);
    }
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
    for &end in &commands.ends {
        conn.send(
            |b| b.extend_from_slice(&commands.bytes[start..end]),
            Waiter::Ignore,
        );
        start = end;
    }
    exec(&conn);
    mirror(ctx, client, &tx.frames);
}

/// Sends the mirror clusters their copies of a transaction's writes.
fn mirror(ctx: &CoreContext, client: &mut Client, frames: &[u8]) {
    if !ctx.topo.has_mirrors() {
        return;
    }
    let _ = each_command(ctx, frames, |frame, args, spec| {
        if spec.write {
            plan::mirror_copies(ctx, client, Request::new(frame, args), spec);
        }
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_queued_only_when_the_backend_can_run_them_atomically() {
        let of = |name: &[u8]| queueing(crate::command::lookup(name).expect("known").exec);
        for queued in [
            &b"set"[..],
            b"get",
            b"mset",
            b"del",
            b"blpop",
            b"ping",
            b"echo",
        ] {
            assert_eq!(of(queued), Queueing::Queue, "{}", quoted(queued, 20));
        }
        assert_eq!(of(b"save"), Queueing::Unsupported);
        assert_eq!(of(b"shutdown"), Queueing::Unsupported);
        for refused in [&b"subscribe"[..], b"select", b"client", b"hello", b"keys"] {
            assert_eq!(of(refused), Queueing::NotInMulti, "{}", quoted(refused, 20));
        }
    }

    #[test]
    fn queued_keys_must_live_together() {
        let mut place = None;
        assert_eq!(join(&mut place, None), Ok(()));
        assert_eq!(place, None, "a keyless command places nothing");
        assert_eq!(join(&mut place, Some((1, 7))), Ok(()));
        assert_eq!(place, Some((1, 7)));
        assert_eq!(join(&mut place, None), Ok(()));
        assert_eq!(join(&mut place, Some((1, 7))), Ok(()));
        assert_eq!(join(&mut place, Some((1, 8))), Err(Apart), "another slot");
        assert_eq!(
            join(&mut place, Some((2, 7))),
            Err(Apart),
            "another endpoint"
        );
        assert_eq!(place, Some((1, 7)), "a refused command moves nothing");
    }

    #[test]
    fn without_watch_a_transaction_runs_where_its_keys_live_or_aborts() {
        let none = || panic!("no WATCH to ask");
        let run = |endpoint| Verdict::Run { endpoint };
        assert_eq!(verdict(Ok(Some((3, 0))), None, none), run(Some(3)));
        assert_eq!(verdict(Ok(None), None, none), run(None));
        assert_eq!(
            verdict(Err(Unplaced::Apart), None, none),
            Verdict::Abort(Unplaced::Apart)
        );
        let refused = Unplaced::Refused(RouteError::CrossSlot);
        assert_eq!(
            verdict(Err(Unplaced::Refused(RouteError::CrossSlot)), None, none),
            Verdict::Abort(refused)
        );
        assert_eq!(
            verdict(Err(Unplaced::Lost), None, none),
            Verdict::Abort(Unplaced::Lost)
        );
    }

    #[test]
    fn with_watch_it_runs_only_where_the_watch_still_watches() {
        let at = Some((2, 5));
        let yes = || true;
        let run = Verdict::Run { endpoint: Some(2) };
        assert_eq!(verdict(Ok(Some((2, 5))), Some(at), yes), run);
        // Keyless commands run where the WATCH is.
        assert_eq!(verdict(Ok(None), Some(at), yes), run);
        // Its keys moved, or the watched keys did, or the keys cannot be
        // placed: nil, never an abort that would hide the WATCH's outcome.
        assert_eq!(verdict(Ok(Some((3, 5))), Some(at), yes), Verdict::Nil);
        assert_eq!(verdict(Ok(Some((2, 6))), Some(at), yes), Verdict::Nil);
        assert_eq!(verdict(Ok(Some((2, 5))), Some(at), || false), Verdict::Nil);
        assert_eq!(verdict(Err(Unplaced::Apart), Some(at), yes), Verdict::Nil);
        // A reload removed the watched endpoint.
        assert_eq!(verdict(Ok(None), Some(None), || false), Verdict::Nil);
    }
}
