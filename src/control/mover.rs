//! A reshard's background mover (`reshard = "migrate"`): on a thread of
//! its own, it SCANs every old owner of a resharding cluster, each
//! database with keys, a COUNT batch at a time at a bounded rate, and
//! moves the keys whose owner changed with one MIGRATE per batch and new
//! owner. A full SCAN pass of every old owner ends the migration: SCAN
//! returns every key present for the whole pass, and in the migrate phase
//! nothing writes a moving key to its old owner, so none is left behind.
//! Sessions move the keys clients touch meanwhile (`session::reshard`);
//! a key both try to move is moved once (MIGRATE is atomic on the old
//! owner, and the second finds nothing: `+NOKEY`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::resp::value::Value;
use crate::topology::migration::Round;
use crate::topology::router::Router;
use crate::topology::{host_of, Topology};
use crate::upstream::migrate::Migrate;
use crate::upstream::probe::{Probe, ProbeError};

/// Keys asked for per SCAN (and so at most per MIGRATE).
const BATCH: usize = 200;
/// Keys scanned per second at most, over the whole mover: the old owners
/// serve clients meanwhile.
const KEYS_PER_SECOND: u64 = 50_000;
/// How long a failing old owner is left alone before the mover tries it
/// again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// What the mover's MIGRATE allows the new owner at least (MIGRATE's
/// timeout, per transfer step): a big key takes a while to restore, and a
/// timeout would only move it again. Sessions' MIGRATEs keep op_timeout
/// (a client waits on them); a key too big for that is moved here.
const MIGRATE_AT_LEAST: Duration = Duration::from_secs(10);

/// The timeout of the mover's MIGRATEs in `topo`.
fn migrate_timeout(topo: &Topology) -> Duration {
    topo.config.op_timeout.max(MIGRATE_AT_LEAST)
}

/// How long the mover may wait on an old owner's answer: its MIGRATE
/// answers after the new owner does.
pub fn answered_within(topo: &Topology) -> Duration {
    migrate_timeout(topo) * 2 + Duration::from_secs(1)
}

/// What the mover did so far, shown in `/stats`.
#[derive(Debug)]
pub struct Progress {
    pub started: Instant,
    pub owners: Vec<OwnerProgress>,
    /// Every old owner's pass is complete.
    pub done: AtomicBool,
    /// Told to stop (keyway stops, or another generation took over).
    pub stop: AtomicBool,
    /// Paused by the operator (`POST /reshard/pause`): clients still move
    /// the keys they touch.
    pub paused: AtomicBool,
    /// Its thread has returned: nothing it sent is unanswered.
    pub exited: AtomicBool,
    /// The round whose keys it moves.
    pub round: Round,
    /// Its reshard is a fleet's (`coordinated`): the next round starts on
    /// the fleet's word, not when this mover is done.
    pub fleet: bool,
    /// Its reshard (see `migration::migrations`).
    identity: Vec<Option<usize>>,
    /// How long it ran, in milliseconds, once its thread returned.
    ran_for_ms: AtomicU64,
}

impl Progress {
    /// Seconds it has run (ran, once stopped or done).
    pub fn seconds(&self) -> f64 {
        if self.exited.load(Ordering::Acquire) {
            return self.ran_for_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        }
        self.started.elapsed().as_secs_f64()
    }

    /// Keys scanned per second, over its run.
    pub fn keys_per_second(&self) -> f64 {
        let scanned: u64 = (self.owners.iter())
            .map(|o| o.scanned.load(Ordering::Relaxed))
            .sum();
        scanned as f64 / self.seconds().max(0.001)
    }

    /// Tells the mover to stop and waits (`within` at most) until it has.
    /// False: it has not yet (a MIGRATE it sent is not answered).
    pub fn stop_and_wait(&self, within: Duration) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + within;
        while !self.exited.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Every old owner's pass is complete.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// `moving`, `paused` or `done`, as shown.
    pub fn state(&self) -> &'static str {
        if self.is_done() {
            "done"
        } else if self.paused.load(Ordering::Relaxed) {
            "paused"
        } else {
            "moving"
        }
    }
}

/// One old owner's part.
#[derive(Debug)]
pub struct OwnerProgress {
    pub cluster: String,
    pub endpoint: String,
    /// Keys it held when its pass began (all databases).
    pub keys_at_start: AtomicU64,
    pub scanned: AtomicU64,
    /// Keys sent to their new owner (MIGRATE answered OK or NOKEY), over
    /// the reshard's rounds.
    pub moved: AtomicU64,
    pub errors: AtomicU64,
    pub passed: AtomicBool,
}

impl OwnerProgress {
    /// Keys left to scan, about (keys written meanwhile are not counted;
    /// 0 once its pass is complete).
    pub fn remaining(&self) -> u64 {
        if self.passed.load(Ordering::Relaxed) {
            return 0;
        }
        let at_start = self.keys_at_start.load(Ordering::Relaxed);
        at_start.saturating_sub(self.scanned.load(Ordering::Relaxed))
    }
}

/// An old owner and what it is moving keys for.
struct Owner {
    cluster: usize,
    endpoint: usize,
}

/// Starts moving the keys of `topo`'s migrations; `finished` is called
/// (on the mover's thread) once every old owner's pass is complete.
pub fn spawn(
    topo: Arc<Topology>,
    last: Option<&Progress>,
    finished: impl FnOnce() + Send + 'static,
) -> std::io::Result<Arc<Progress>> {
    let identity = crate::topology::migration::migrations(&topo);
    // The same reshard's earlier mover (its other round, or one stopped):
    // what it moved and its errors count on.
    let before = last.filter(|l| l.identity == identity);
    let carried = |label: &str, of: fn(&OwnerProgress) -> &AtomicU64| {
        let earlier = before.and_then(|b| b.owners.iter().find(|o| o.endpoint == label));
        AtomicU64::new(earlier.map_or(0, |o| of(o).load(Ordering::Relaxed)))
    };
    let mut owners: Vec<Owner> = Vec::new();
    for (ci, c) in topo.clusters.iter().enumerate() {
        for s in c.migration.iter().flat_map(|m| &m.previous.shards) {
            if !owners.iter().any(|o| o.endpoint == s.primary) {
                owners.push(Owner {
                    cluster: ci,
                    endpoint: s.primary,
                });
            }
        }
    }
    let progress = Arc::new(Progress {
        started: Instant::now(),
        owners: (owners.iter())
            .map(|o| {
                let label = &topo.endpoints[o.endpoint].label;
                OwnerProgress {
                    cluster: topo.clusters[o.cluster].name.clone(),
                    endpoint: label.clone(),
                    keys_at_start: AtomicU64::new(0),
                    scanned: AtomicU64::new(0),
                    moved: carried(label, |o| &o.moved),
                    errors: carried(label, |o| &o.errors),
                    passed: AtomicBool::new(false),
                }
            })
            .collect(),
        done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        round: crate::topology::migration::round_of(&topo).unwrap_or(Round::Rising),
        fleet: crate::topology::migration::coordinated(&topo),
        identity,
        ran_for_ms: AtomicU64::new(0),
    });
    let shown = progress.clone();
    std::thread::Builder::new()
        .name("keyway-mover".into())
        .spawn(move || {
            let complete = move_all(&topo, &owners, &progress);
            let ran_for = progress.started.elapsed().as_millis() as u64;
            progress.ran_for_ms.store(ran_for, Ordering::Relaxed);
            progress.exited.store(true, Ordering::Release);
            if complete {
                finished();
            }
        })?;
    Ok(shown)
}

/// Every old owner's pass. One that fails is left for later and the
/// others go on; the failed ones are tried again, a pass from the start,
/// every `RETRY_AFTER` until each completes. False: told to stop first.
fn move_all(topo: &Topology, owners: &[Owner], progress: &Progress) -> bool {
    let stopped = || progress.stop.load(Ordering::Relaxed);
    loop {
        let mut failed = false;
        for (owner, p) in owners.iter().zip(&progress.owners) {
            if p.passed.load(Ordering::Relaxed) {
                continue;
            }
            match pass(topo, owner, p, progress) {
                _ if stopped() => return false,
                Ok(()) => p.passed.store(true, Ordering::Relaxed),
                Err(why) => {
                    failed = true;
                    p.errors.fetch_add(1, Ordering::Relaxed);
                    crate::warn!(endpoint: &p.endpoint, "reshard mover: {why}; trying it again later");
                }
            }
        }
        if !failed {
            progress.done.store(true, Ordering::Relaxed);
            return true;
        }
        let again = Instant::now() + RETRY_AFTER;
        while Instant::now() < again {
            if stopped() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// One full SCAN pass of `owner`, every database with keys, moving what
/// moves. Err: the owner failed, or refused to move keys to some new owner
/// (the pass, which moved every other key, starts over).
fn pass(
    topo: &Topology,
    owner: &Owner,
    p: &OwnerProgress,
    progress: &Progress,
) -> Result<(), ProbeError> {
    let cfg = &topo.config;
    let cluster = &cfg.clusters[owner.cluster];
    let ep = &topo.endpoints[owner.endpoint];
    let mut conn = Probe::connect(
        cluster,
        ep.addr,
        host_of(&ep.label),
        cfg.connect_timeout,
        answered_within(topo),
    )?;
    let dbs = databases(&mut conn)?;
    p.keys_at_start
        .store(dbs.iter().map(|(_, n)| n).sum(), Ordering::Relaxed);
    let router = Router::new(topo, &[]);
    let migrate_timeout = migrate_timeout(topo);
    let mut budget = Budget::new();
    // New owners whose MIGRATE failed in this pass, with the first error.
    let mut unreachable: Vec<(usize, ProbeError)> = Vec::new();
    for &(db, _) in &dbs {
        conn.call("SELECT", &[b"SELECT", db.to_string().as_bytes()])?;
        let mut cursor = b"0".to_vec();
        loop {
            while progress.paused.load(Ordering::Relaxed) && !progress.stop.load(Ordering::Relaxed)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            if progress.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let count = BATCH.to_string();
            let reply = conn.call("SCAN", &[b"SCAN", &cursor, b"COUNT", count.as_bytes()])?;
            let (next, keys) = scanned(reply)?;
            p.scanned.fetch_add(keys.len() as u64, Ordering::Relaxed);
            let mut by_owner: Vec<(usize, Vec<&[u8]>)> = Vec::new();
            for key in &keys {
                let Ok(home) = router.locate(owner.cluster, key) else {
                    continue;
                };
                match home.moving {
                    Some(m) if m.from == owner.endpoint => {
                        match by_owner.iter_mut().find(|(to, _)| *to == m.to) {
                            Some((_, ks)) => ks.push(key),
                            None => by_owner.push((m.to, vec![key])),
                        }
                    }
                    _ => {}
                }
            }
            for (to, ks) in &by_owner {
                if unreachable.iter().any(|(t, _)| t == to) {
                    continue;
                }
                let order = Migrate {
                    to: topo.endpoints[*to].addr,
                    db,
                    timeout: migrate_timeout,
                    username: cluster.username.as_deref(),
                    password: cluster.password.as_deref(),
                };
                let mut frame = Vec::new();
                order.encode(&mut frame, ks);
                // +OK (moved) or +NOKEY (gone already): both done. An
                // error reply (IOERR: the new owner is down or slow) leaves
                // the keys where they were (REPLACE covers a copy it may
                // have restored): that owner's keys wait for the next pass,
                // the others' move on.
                match conn.call_raw("MIGRATE", &frame) {
                    Ok(Value::Simple(_)) => {
                        p.moved.fetch_add(ks.len() as u64, Ordering::Relaxed);
                    }
                    Ok(_) => return Err(ProbeError::Unexpected("MIGRATE")),
                    Err(refused @ ProbeError::Refused { .. }) => {
                        let label = &topo.endpoints[*to].label;
                        crate::warn!(endpoint: &p.endpoint, "reshard mover: MIGRATE to {label}: {refused}; its keys wait for the next pass");
                        unreachable.push((*to, refused));
                    }
                    Err(e) => return Err(e),
                }
            }
            budget.spend(keys.len() as u64);
            if next == b"0" {
                break;
            }
            cursor = next;
        }
    }
    match unreachable.into_iter().next() {
        Some((_, first)) => Err(first),
        None => Ok(()),
    }
}

/// The databases holding keys, from INFO keyspace (`db3:keys=10,...`).
fn databases(conn: &mut Probe) -> Result<Vec<(u16, u64)>, ProbeError> {
    let Value::Bulk(info) = conn.call("INFO", &[b"INFO", b"keyspace"])? else {
        return Err(ProbeError::Unexpected("INFO"));
    };
    let text = String::from_utf8_lossy(&info);
    Ok(keyspace(&text))
}

/// `dbN:keys=K,...` lines of INFO keyspace.
fn keyspace(text: &str) -> Vec<(u16, u64)> {
    text.lines()
        .filter_map(|l| {
            let (db, rest) = l.strip_prefix("db")?.split_once(':')?;
            let keys = rest.strip_prefix("keys=")?.split(',').next()?;
            Some((db.parse().ok()?, keys.parse().ok()?))
        })
        .collect()
}

/// SCAN's reply: the next cursor and the keys.
fn scanned(reply: Value) -> Result<(Vec<u8>, Vec<Vec<u8>>), ProbeError> {
    let Value::Array(mut parts) = reply else {
        return Err(ProbeError::Unexpected("SCAN"));
    };
    let keys = match parts.pop() {
        Some(Value::Array(keys)) => keys,
        _ => return Err(ProbeError::Unexpected("SCAN")),
    };
    let next = match parts.pop() {
        Some(Value::Bulk(c)) => c,
        _ => return Err(ProbeError::Unexpected("SCAN")),
    };
    let keys = (keys.into_iter())
        .filter_map(|k| match k {
            Value::Bulk(k) => Some(k),
            _ => None,
        })
        .collect();
    Ok((next, keys))
}

/// `KEYS_PER_SECOND`, kept by sleeping when ahead.
struct Budget {
    since: Instant,
    spent: u64,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            since: Instant::now(),
            spent: 0,
        }
    }

    fn spend(&mut self, keys: u64) {
        self.spent += keys;
        let due = Duration::from_secs_f64(self.spent as f64 / KEYS_PER_SECOND as f64);
        if let Some(ahead) = due.checked_sub(self.since.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_lists_the_databases_with_keys() {
        let info =
            "# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=5,expires=0,avg_ttl=0\r\n";
        assert_eq!(keyspace(info), vec![(0, 12), (3, 5)]);
        assert_eq!(keyspace("# Keyspace\r\n"), vec![]);
    }

    #[test]
    fn a_scan_reply_gives_its_cursor_and_keys() {
        let reply = Value::Array(vec![
            Value::Bulk(b"17".to_vec()),
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Bulk(b"b".to_vec())]),
        ]);
        let (next, keys) = scanned(reply).expect("scanned");
        assert_eq!(next, b"17");
        assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(scanned(Value::Error("ERR no".into())).is_err());
    }
}
