//! Keys of a ring cluster being resharded (see `topology::migration`).
//! In the hold phase a request that touches a moving key waits for the
//! next phase; in the migrate phase each of its moving keys is moved
//! first — MIGRATE on its old owner, to its new one: atomic there, NOKEY
//! when the key is not (or no longer) there — and the request then runs
//! where its keys live now, whatever way it executes. Each core remembers
//! the keys it moved (a bounded set), so a hot key is moved once.

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use super::transaction;
use super::{Client, CoreContext};
use crate::command::{key_indices, CommandSpec, Exec};
use crate::resp::errors::ErrorReply;
use crate::resp::request::Request;
use crate::resp::write::{quoted, Protocol};
use crate::topology::migration;
use crate::topology::router::Router;
use crate::topology::Phase;
use crate::upstream::conn::Conn;
use crate::upstream::migrate::{moved_by, Migrate};
use crate::upstream::waiter::Waiter;

/// Moved keys a core remembers at most; past it, it forgets them all (a
/// key moved again costs one MIGRATE answered NOKEY).
const REMEMBERED: usize = 100_000;

/// How long a request waits out a hold at most (the switch itself takes
/// milliseconds, or is called off within a second).
pub const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// A key to move before the request that touches it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub cluster: usize,
    pub from: usize,
    pub to: usize,
    /// As the backends store it (its route's prefix stripped).
    pub key: Vec<u8>,
}

/// What a client's next request waits for before it runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Pending {
    /// The hold phase: the next placement.
    Hold,
    /// Its moving keys to be moved.
    Moves(Vec<Move>),
    /// Moving failed: the request is answered this error and not run.
    Failed(String),
}

/// What `check` found.
pub enum Check {
    /// Run it now.
    Run,
    /// It waits (`client.reshard` says for what): nothing of it ran.
    Wait,
    /// Its keys could not be moved: it was answered that, and not run.
    Answered,
}

/// The keys this core moved, for the migrations it serves, and the
/// connections it moves them on.
#[derive(Default)]
pub struct Moved {
    keys: HashSet<(usize, u16, Vec<u8>)>,
    /// One connection per old owner and database, of its own: a MIGRATE
    /// (a big key takes a while) holds up no client's requests queued
    /// behind it on a shared connection.
    conns: Vec<((std::net::SocketAddr, u16), Rc<Conn>)>,
    /// The placement each key was moved away from (by cluster), and the
    /// round: a new migration or round forgets the last one's keys, and
    /// its hold waits for the MIGRATEs sent in the last.
    from: migration::Stage,
}

impl Moved {
    fn contains(&self, cluster: usize, db: u16, key: &[u8]) -> bool {
        // The set is keyed by owned keys; a moving key is rare enough that
        // the lookup's copy does not matter.
        self.keys.contains(&(cluster, db, key.to_vec()))
    }

    /// Whether this core still serves the migrations `ctx` (a session's,
    /// maybe a generation behind) moves keys for.
    fn serves(&self, ctx: &CoreContext) -> bool {
        self.from == migration::stage(&ctx.topo)
    }

    fn insert(&mut self, cluster: usize, db: u16, key: Vec<u8>) {
        if self.keys.len() >= REMEMBERED {
            self.keys.clear();
        }
        self.keys.insert((cluster, db, key));
    }

    /// Forgets what was moved for migrations `ctx` no longer serves, and
    /// gives up the connections it moved them on: the caller closes them
    /// once what was sent on them is answered (an abort's hold waits for
    /// that: a key may not move back while a MIGRATE forward is out).
    pub fn follow(&mut self, ctx: &CoreContext) -> crate::upstream::Retired {
        let now = migration::stage(&ctx.topo);
        if now == self.from {
            return Vec::new();
        }
        self.keys.clear();
        self.from = now;
        self.conns.drain(..).map(|(_, c)| c).collect()
    }

    /// This core's connection to old owner `from` in database `db` for
    /// MIGRATE, made on first use (and again once one was lost).
    fn conn(&mut self, ctx: &CoreContext, from: usize, db: u16) -> Rc<Conn> {
        let at = (ctx.topo.endpoints[from].addr, db);
        self.conns.retain(|(_, c)| !c.is_shut());
        if let Some((_, c)) = self.conns.iter().find(|(k, _)| *k == at) {
            return c.clone();
        }
        let c = ctx.upstreams.dedicated(from, Protocol::Resp2, db);
        self.conns.push((at, c.clone()));
        c
    }
}

/// Before `req` runs: Wait when a key it touches is moving and not moved
/// yet (or held), with `client.reshard` saying what for; a request whose
/// keys could not be moved is answered so here.
pub fn check(
    ctx: &CoreContext,
    client: &mut Client,
    req: Request<'_>,
    spec: &CommandSpec,
) -> Check {
    if let Some(pending) = client.reshard.take() {
        match *pending {
            Pending::Failed(msg) => {
                client.error(&msg);
                transaction::doom(client);
                return Check::Answered;
            }
            other => client.reshard = Some(Box::new(other)),
        }
        return Check::Wait;
    }
    let mut keys = std::mem::take(&mut client.keys);
    let mut needs = Needs::default();
    if key_indices(spec, req.argc(), |i| req.arg(i), &mut keys).is_ok() {
        needs.add(ctx, client.db, req, &keys);
    }
    // EXEC runs what was queued where its keys live now: they move first
    // (queued before the reshard, they were not moved as they queued).
    if spec.exec == Exec::Transaction && req.arg(0).eq_ignore_ascii_case(b"exec") {
        transaction::each_queued(ctx, client, |queued, spec| {
            if key_indices(spec, queued.argc(), |i| queued.arg(i), &mut keys).is_ok() {
                needs.add(ctx, client.db, queued, &keys);
            }
        });
    }
    client.keys = keys;
    match needs.pending() {
        None => Check::Run,
        Some(pending) => {
            client.reshard = Some(Box::new(pending));
            Check::Wait
        }
    }
}

/// What a request's keys wait for.
#[derive(Default)]
struct Needs {
    hold: bool,
    moves: Vec<Move>,
}

impl Needs {
    /// Adds what the keys at `keys` of `req` wait for.
    fn add(&mut self, ctx: &CoreContext, db: u16, req: Request<'_>, keys: &[usize]) {
        let router = Router::new(&ctx.topo, &[]);
        let moved = ctx.moved.borrow();
        for &i in keys {
            let key = req.arg(i);
            let Ok(route) = router.route(key, "key") else {
                continue;
            };
            let stripped = &key[route.strip..];
            let Ok(home) = router.locate(route.cluster, stripped) else {
                continue;
            };
            let Some(m) = home.moving else {
                continue;
            };
            if m.phase == Phase::Hold {
                self.hold = true;
            } else if !moved.contains(route.cluster, db, stripped) {
                self.moves.push(Move {
                    cluster: route.cluster,
                    from: m.from,
                    to: m.to,
                    key: stripped.to_vec(),
                });
            }
        }
    }

    fn pending(self) -> Option<Pending> {
        if self.hold {
            return Some(Pending::Hold);
        }
        (!self.moves.is_empty()).then_some(Pending::Moves(self.moves))
    }
}

/// What moving a request's keys came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Moving {
    /// Every key is on its new owner (or on none).
    Done,
    /// The error reply for the request (it does not run).
    Failed(String),
    /// The core moved on to another migration (an abort) before all were
    /// moved: the request is looked at again under it.
    Overtaken,
}

/// Moves `moves` (keys of database `db`): one MIGRATE per old and new
/// owner, retried once (REPLACE makes a retry safe: an IOERR may leave the
/// key on both). No MIGRATE goes out, and no key is remembered as moved,
/// once the core serves another migration: an abort's hold waits only for
/// the MIGRATEs sent before it.
pub async fn move_keys(ctx: &CoreContext, db: u16, moves: &[Move]) -> Moving {
    let mut groups: Vec<(usize, usize, Vec<&[u8]>)> = Vec::new();
    for m in moves {
        match groups
            .iter_mut()
            .find(|(f, t, _)| (*f, *t) == (m.from, m.to))
        {
            Some((_, _, keys)) => keys.push(&m.key),
            None => groups.push((m.from, m.to, vec![&m.key])),
        }
    }
    let overtaken = || !ctx.moved.borrow().serves(ctx);
    for (from, to, keys) in &groups {
        let mut answer = Err(String::new());
        for _ in 0..2 {
            if overtaken() {
                return Moving::Overtaken;
            }
            answer = migrate(ctx, db, *from, *to, keys).await;
            if answer.is_ok() {
                break;
            }
        }
        if let Err(why) = answer {
            let key = quoted(keys[0], 128);
            return Moving::Failed(
                ErrorReply::MoveFailed {
                    key: &key,
                    why: &why,
                }
                .to_string(),
            );
        }
    }
    if overtaken() {
        return Moving::Overtaken;
    }
    let mut moved = ctx.moved.borrow_mut();
    for m in moves {
        moved.insert(m.cluster, db, m.key.clone());
    }
    Moving::Done
}

/// A MIGRATE's outcome, and the task waiting for it.
#[derive(Default)]
struct Answer {
    outcome: Option<Result<(), String>>,
    waker: Option<Waker>,
}

/// One MIGRATE of `keys` from endpoint `from` to `to`; Err: the error (its
/// text without the leading `-`).
async fn migrate(
    ctx: &CoreContext,
    db: u16,
    from: usize,
    to: usize,
    keys: &[&[u8]],
) -> Result<(), String> {
    let topo = &ctx.topo;
    let target = &topo.endpoints[to];
    let cluster = &topo.config.clusters[target.cluster];
    let answer: Rc<RefCell<Answer>> = Rc::default();
    let then = {
        let answer = answer.clone();
        Waiter::Then(Box::new(move |reply| {
            let mut a = answer.borrow_mut();
            a.outcome = Some(moved_by(reply));
            if let Some(w) = a.waker.take() {
                w.wake();
            }
        }))
    };
    let order = Migrate {
        to: target.addr,
        db,
        timeout: ctx.upstreams.op_timeout(),
        username: cluster.username.as_deref(),
        password: cluster.password.as_deref(),
    };
    let conn = ctx.moved.borrow_mut().conn(ctx, from, db);
    conn.send(|b| order.encode(b, keys), then);
    poll_fn(|cx| {
        let mut a = answer.borrow_mut();
        match a.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                a.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}
