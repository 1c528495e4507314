//! A ring cluster being resharded (`reshard = "migrate"`): a reload that
//! changed its placement keeps the placement it had beside the new one,
//! until every key the old ring placed elsewhere has moved. A key is
//! *moving* when its old owner differs from its new one; the router says
//! so (`Router::moving`), and the session moves it first. Endpoints the
//! new configuration dropped stay in the topology (after the configured
//! ones, in no shard of the new placement) until their keys have moved.
//!
//! The switch is two-phase (`control::reload`): every core first holds
//! requests touching moving keys and answers what it sent to their old
//! owners (`Phase::Hold`); only when all have does any move a key
//! (`Phase::Migrate`, `session::reshard`).

use std::sync::Arc;

use super::{EndpointInfo, Shard, Topology};
use crate::config::{Cluster, LbPolicy};
use crate::route::ring::Ring;

/// The placement a resharded cluster had, in the new topology's endpoint
/// numbers.
#[derive(Debug, Clone)]
pub struct Previous {
    pub ring: Arc<Ring>,
    pub shards: Vec<Shard>,
    /// The shard of each ring member.
    pub members: Vec<usize>,
    /// The cluster's configuration that placed keys so (what an abort
    /// goes back to).
    pub placed: Arc<Cluster>,
}

/// Where the switch to the new placement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Requests touching moving keys wait: the old placement is no longer
    /// used anywhere before any key moves.
    Hold,
    /// A moving key is moved from its old owner before anything touches it.
    Migrate,
}

/// Which of a reshard's moves run now. MIGRATE blocks the old owner
/// until the new one has restored the key: two servers migrating to each
/// other at once would each wait on the other until a timeout. So keys
/// move in two rounds, each one way: first those whose new owner's
/// address is above the old one's, then the others; nothing ever waits
/// in a circle, in one keyway or across a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Keys moving to a higher address move; those moving to a lower one
    /// are still served where they were (they wait for the next round).
    Rising,
    /// Keys moving to a lower address move; the others have moved (the
    /// rising round's pass moved every one).
    Falling,
}

/// Where a key whose old owner differs from its new one is, in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    /// It moves in this round: moved before it is touched.
    Moves,
    /// Its round is later: served by its old owner.
    AtOld,
    /// Its round is over: served by its new owner.
    AtNew,
}

impl Round {
    /// As `/reshard` and the reshard's kept state name it.
    pub fn name(self) -> &'static str {
        match self {
            Round::Rising => "rising",
            Round::Falling => "falling",
        }
    }

    /// Where a key moving `from` → `to` is in this round.
    pub fn whereabouts(self, from: std::net::SocketAddr, to: std::net::SocketAddr) -> Whereabouts {
        match (self, from < to) {
            (Round::Rising, true) | (Round::Falling, false) => Whereabouts::Moves,
            (Round::Rising, false) => Whereabouts::AtOld,
            (Round::Falling, true) => Whereabouts::AtNew,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Migration {
    pub previous: Previous,
    pub phase: Phase,
    pub round: Round,
}

/// Why a reload cannot start a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationError {
    /// The cluster is still moving the keys of an earlier reshard.
    AlreadyMoving { cluster: String },
}

/// `next` (the topology a reload brings) keeping, for each of its
/// `reshard = "migrate"` ring clusters whose placement differs from
/// `running`'s, the placement `running` had, in `phase`. A migration
/// `running` has goes on unchanged, unless `next` places its cluster as
/// the migration's previous placement: that aborts it, keys moving back
/// (a migration of its own, from the placement served now). Any other
/// change of a migrating cluster's placement waits until it ends.
pub fn with_previous(
    mut next: Topology,
    running: &Topology,
    phase: Phase,
) -> Result<Topology, MigrationError> {
    for ci in 0..next.clusters.len() {
        let cluster = &next.config.clusters[ci];
        let Some(old) = running
            .config
            .clusters
            .iter()
            .position(|c| c.name == cluster.name)
        else {
            continue;
        };
        let before = &running.clusters[old];
        let same = same_placement(&running.config.clusters[old], cluster);
        if let Some(m) = &before.migration {
            let aborts = !same && same_placement(&m.previous.placed, cluster);
            if !cluster.reshard.moves_keys() || !(same || aborts) {
                let cluster = cluster.name.clone();
                return Err(MigrationError::AlreadyMoving { cluster });
            }
            if same {
                let previous = carried(&mut next, ci, &m.previous, running);
                next.clusters[ci].migration = Some(Migration {
                    previous,
                    phase: m.phase,
                    round: m.round,
                });
                continue;
            }
        } else if !cluster.reshard.moves_keys() || same {
            continue;
        }
        // An abort in the rising round has only falling moves to undo
        // (every key moved so far rose), and its rising keys are where it
        // puts them already; one in the falling round undoes both.
        let round = match &before.migration {
            Some(m) if m.round == Round::Rising => Round::Falling,
            _ => Round::Rising,
        };
        let Some(ring) = before.ring.clone() else {
            continue;
        };
        let placement = Previous {
            ring,
            shards: before.shards.clone(),
            members: before.members.clone(),
            placed: Arc::new(running.config.clusters[old].clone()),
        };
        let previous = carried(&mut next, ci, &placement, running);
        next.clusters[ci].migration = Some(Migration {
            previous,
            phase,
            round,
        });
    }
    Ok(next)
}

/// `next` (the same configuration as `running`, other health) keeping
/// `running`'s migrations as they are.
pub fn carry_over(mut next: Topology, running: &Topology) -> Topology {
    for (ci, before) in running.clusters.iter().enumerate() {
        if let Some(m) = &before.migration {
            let previous = carried(&mut next, ci, &m.previous, running);
            next.clusters[ci].migration = Some(Migration {
                previous,
                phase: m.phase,
                round: m.round,
            });
        }
    }
    next
}

/// `previous` (in `running`'s endpoint numbers) in `next`'s, as a
/// placement of `next`'s cluster `ci`.
fn carried(next: &mut Topology, ci: usize, previous: &Previous, running: &Topology) -> Previous {
    let mut number = |e: usize| endpoint_in(next, ci, &running.endpoints[e]);
    let shards = (previous.shards.iter())
        .map(|s| Shard {
            primary: number(s.primary),
            replicas: s.replicas.iter().map(|&r| number(r)).collect(),
        })
        .collect();
    Previous {
        ring: previous.ring.clone(),
        shards,
        members: previous.members.clone(),
        placed: previous.placed.clone(),
    }
}

/// A migration's identity: the placement keys move from, which every
/// generation of one reshard shares and no other has.
fn identity(m: &Migration) -> usize {
    Arc::as_ptr(&m.previous.ring) as usize
}

/// Which migration each cluster of `topo` is in (None: not resharding).
pub fn migrations(topo: &Topology) -> Vec<Option<usize>> {
    (topo.clusters.iter())
        .map(|c| c.migration.as_ref().map(identity))
        .collect()
}

/// Which migrations a topology serves, and in which round: what a core's
/// record of moved keys, and a mover's end, belong to.
pub type Stage = (Vec<Option<usize>>, Option<Round>);

/// `topo`'s stage.
pub fn stage(topo: &Topology) -> Stage {
    (migrations(topo), round_of(topo))
}

/// The clusters whose migration `next` starts (one `running` does not
/// have), each with whether it aborts a migration `running` has.
pub fn starting(next: &Topology, running: &Topology) -> Vec<(usize, bool)> {
    let mut found = Vec::new();
    for (ci, c) in next.clusters.iter().enumerate() {
        let Some(m) = &c.migration else { continue };
        let before = (running.clusters.iter())
            .find(|b| b.name == c.name)
            .and_then(|b| b.migration.as_ref());
        if before.map(identity) != Some(identity(m)) {
            found.push((ci, before.is_some()));
        }
    }
    found
}

/// `topo` with its migrations in `phase` (rings are shared, not built).
pub fn in_phase(topo: &Topology, phase: Phase) -> Topology {
    let mut next = topo.clone();
    for m in next
        .clusters
        .iter_mut()
        .filter_map(|c| c.migration.as_mut())
    {
        m.phase = phase;
    }
    next
}

/// `topo`'s migrations in the rising round held for the falling one (its
/// pass moved every rising key), or None if none is in the rising round.
pub fn falling(topo: &Topology) -> Option<Topology> {
    let mut next = topo.clone();
    let mut any = false;
    for m in (next.clusters.iter_mut()).filter_map(|c| c.migration.as_mut()) {
        if m.round == Round::Rising {
            m.round = Round::Falling;
            m.phase = Phase::Hold;
            any = true;
        }
    }
    any.then_some(next)
}

/// `topo` with its migrations in `round` (a restart's).
pub fn in_round(mut topo: Topology, round: Round) -> Topology {
    for m in (topo.clusters.iter_mut()).filter_map(|c| c.migration.as_mut()) {
        m.round = round;
    }
    topo
}

/// Whether a cluster `topo` reshards belongs to a fleet (`coordinated`):
/// its rounds start when `keyway reshard start` says.
pub fn coordinated(topo: &Topology) -> bool {
    (topo.clusters.iter().zip(&topo.config.clusters))
        .any(|(c, cfg)| c.migration.is_some() && cfg.reshard == crate::config::Reshard::Coordinated)
}

/// The round `topo`'s migrations are in (the first one's).
pub fn round_of(topo: &Topology) -> Option<Round> {
    (topo.clusters.iter()).find_map(|c| c.migration.as_ref().map(|m| m.round))
}

/// The number in `topo` of `ep` (an endpoint of the running topology) as
/// an endpoint of cluster `ci`: its own if the new configuration still
/// has it, else a new one after the others.
fn endpoint_in(topo: &mut Topology, ci: usize, ep: &EndpointInfo) -> usize {
    let found = topo
        .endpoints
        .iter()
        .position(|e| e.cluster == ci && e.addr == ep.addr);
    found.unwrap_or_else(|| {
        topo.endpoints.push(EndpointInfo {
            cluster: ci,
            healthy: !topo.health.is_down(&ep.addr),
            ..ep.clone()
        });
        topo.endpoints.len() - 1
    })
}

/// `cluster` (its credentials, timeouts and the rest) placing keys as
/// `placement` does: its policy, ring parameters and members.
pub fn placed_as(cluster: &Cluster, placement: &Cluster) -> Cluster {
    Cluster {
        lb_policy: placement.lb_policy,
        endpoints: placement.endpoints.clone(),
        // A placement kept beside the configuration has no replicas: each
        // primary keeps those it has in `cluster`.
        replicas: (placement.endpoints.iter().enumerate())
            .map(|(i, e)| match placement.replicas.get(i) {
                Some(r) if !r.is_empty() => r.clone(),
                _ => (cluster.endpoints.iter())
                    .position(|c| c.addr == e.addr)
                    .and_then(|at| cluster.replicas.get(at).cloned())
                    .unwrap_or_default(),
            })
            .collect(),
        hash: placement.hash,
        min_ring_size: placement.min_ring_size,
        max_ring_size: placement.max_ring_size,
        table_size: placement.table_size,
        ..cluster.clone()
    }
}

/// Whether two configurations of a cluster place every key alike: the
/// same policy, ring parameters, and members with their names and weights.
fn same_placement(a: &Cluster, b: &Cluster) -> bool {
    let members = |c: &Cluster| -> Vec<(String, std::net::SocketAddr, u32)> {
        (c.endpoints.iter())
            .map(|e| (e.ketama_name.clone(), e.addr, e.weight))
            .collect()
    };
    let params = |c: &Cluster| match c.lb_policy {
        LbPolicy::RingHash => (c.min_ring_size, c.max_ring_size, None),
        LbPolicy::Maglev => (c.table_size, 0, None),
        LbPolicy::Ketama => (0, 0, Some(c.hash)),
        LbPolicy::RedisCluster => (0, 0, None),
    };
    a.lb_policy == b.lb_policy && params(a) == params(b) && members(a) == members(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Reshard};
    use crate::topology::router::{Move, Router};

    fn config(policy: &str, reshard: &str, endpoints: &[&str]) -> Config {
        let eps: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
        let text = format!(
            "[proxy]\nlisten = \"127.0.0.1:1\"\n[[clusters]]\nname = \"c\"\nlb_policy = \"{policy}\"\nendpoints = [{}]\n[routes]\ncatch_all = \"c\"\n",
            eps.join(", ")
        );
        let mut config = Config::parse(&text, "t.toml").expect("config");
        if reshard == "migrate" {
            config.clusters[0].reshard = Reshard::Migrate;
        }
        config
    }

    const FIVE: [&str; 5] = [
        "127.0.0.1:7001",
        "127.0.0.1:7002",
        "127.0.0.1:7003",
        "127.0.0.1:7004",
        "127.0.0.1:7005",
    ];

    fn owner(t: &Topology, key: &str) -> String {
        let p = Router::new(t, &[]).primary(key.as_bytes()).expect("placed");
        t.endpoints[p].label.clone()
    }

    fn moving(t: &Topology, key: &str) -> Option<Move> {
        let router = Router::new(t, &[]);
        router.locate(0, key.as_bytes()).expect("home").moving
    }

    /// Keys move exactly when the old ring and the new place them apart,
    /// from the old owner to the new, for each ring policy: in the rising
    /// round those whose new owner's address is higher (the others served
    /// where they were), in the falling round the others (the risen ones
    /// served where they went).
    #[test]
    fn a_key_moves_when_its_owner_changed_and_only_then() {
        let six = [&FIVE[..], &["127.0.0.1:7006"]].concat();
        // An endpoint first in the list, with the lowest address: its keys
        // fall.
        let low = [&["127.0.0.1:7000"], &FIVE[..]].concat();
        for (policy, grown) in [("ketama", &six), ("ring_hash", &six), ("maglev", &low)] {
            let running = Topology::build(config(policy, "migrate", &FIVE));
            let plain = Topology::build(config(policy, "migrate", grown));
            let rising = with_previous(plain.clone(), &running, Phase::Migrate).expect("reshard");
            let falling = in_phase(&falling(&rising).expect("rising"), Phase::Migrate);
            let (mut rose, mut fell) = (0, 0);
            for i in 0..20_000 {
                let key = format!("k:{i}");
                let (was, now) = (owner(&running, &key), owner(&plain, &key));
                let up = was < now;
                let in_rising = if was != now && !up { &was } else { &now };
                assert_eq!(&owner(&rising, &key), in_rising, "{policy} {key}");
                assert_eq!(owner(&falling, &key), now, "{policy} {key}");
                for (t, round_up) in [(&rising, true), (&falling, false)] {
                    match moving(t, &key) {
                        None => assert!(was == now || up != round_up, "{policy} {key}"),
                        Some(m) => {
                            assert_eq!(up, round_up, "{policy} {key}");
                            if up {
                                rose += 1;
                            } else {
                                fell += 1;
                            }
                            assert_eq!(t.endpoints[m.from].label, was, "{policy} {key}");
                            assert_eq!(t.endpoints[m.to].label, now, "{policy} {key}");
                            assert_eq!(m.phase, Phase::Migrate);
                        }
                    }
                }
            }
            // One new endpoint of six takes about a sixth of the keys (a
            // ring_hash of 1,024 points is uneven: a quarter here).
            assert!(
                (2_600..5_500).contains(&(rose + fell)),
                "{policy}: {rose} + {fell} of 20000 moved"
            );
            if policy == "maglev" {
                assert!(fell > 2_000, "{policy}: {fell} fell");
            }
        }
    }

    /// A dropped endpoint stays, in no shard of the new ring, until its
    /// keys have moved; fan-outs reach it meanwhile.
    #[test]
    fn a_removed_endpoint_gives_up_its_keys() {
        let running = Topology::build(config("ketama", "migrate", &FIVE));
        let four = [FIVE[0], FIVE[1], FIVE[3], FIVE[4]];
        let plain = Topology::build(config("ketama", "migrate", &four));
        let next = with_previous(plain, &running, Phase::Hold).expect("reshard");
        assert_eq!(next.endpoints.len(), 5);
        let leaving = 4;
        assert_eq!(next.endpoints[leaving].label, "127.0.0.1:7003");
        assert!(next.clusters[0].shards.iter().all(|s| s.primary != leaving));
        let falling = falling(&next).expect("rising first");
        for i in 0..5_000 {
            let key = format!("k:{i}");
            let was = owner(&running, &key);
            let m = moving(&next, &key).or_else(|| moving(&falling, &key));
            assert_eq!(
                m.is_some(),
                was == "127.0.0.1:7003",
                "{key}: only its keys move"
            );
            if let Some(m) = m {
                assert_eq!((m.from, m.phase), (leaving, Phase::Hold));
            }
        }
        let fanout = Router::new(&next, &[]).fanout().expect("fanout");
        assert_eq!(fanout.primaries, vec![0, 1, 2, 3, 4]);
        let migrating = in_phase(&next, Phase::Migrate);
        assert_eq!(migrating.endpoints.len(), 5);
        let m = migrating.clusters[0]
            .migration
            .as_ref()
            .expect("still moving");
        assert_eq!(m.phase, Phase::Migrate);
    }

    /// Placing the cluster as before its reshard aborts it: every key the
    /// reshard moved (or would have) moves back, from its new owner to
    /// its old one; a dropped endpoint gives its keys back.
    #[test]
    fn placing_a_cluster_as_before_aborts_its_reshard() {
        let six = [&FIVE[..], &["127.0.0.1:7006"]].concat();
        for policy in ["ketama", "ring_hash", "maglev"] {
            let five = Topology::build(config(policy, "migrate", &FIVE));
            let growing = with_previous(
                Topology::build(config(policy, "migrate", &six)),
                &five,
                Phase::Migrate,
            )
            .expect("reshard");
            assert_eq!(starting(&growing, &five), vec![(0, false)]);
            let back = Topology::build(config(policy, "migrate", &FIVE));
            let aborting = with_previous(back, &growing, Phase::Hold).expect("abort");
            assert_eq!(starting(&aborting, &growing), vec![(0, true)]);
            assert_eq!(aborting.endpoints.len(), 6, "the sixth stays until empty");
            for i in 0..5_000 {
                let key = format!("k:{i}");
                assert_eq!(owner(&aborting, &key), owner(&five, &key), "{policy}");
                match moving(&aborting, &key) {
                    None => assert_eq!(owner(&growing, &key), owner(&five, &key)),
                    Some(m) => {
                        assert_eq!(aborting.endpoints[m.from].label, owner(&growing, &key));
                        assert_eq!(aborting.endpoints[m.to].label, owner(&five, &key));
                        assert_eq!(m.phase, Phase::Hold);
                    }
                }
            }
            // Carried on unchanged, it is the same abort, not a new one.
            let again = Topology::build(config(policy, "migrate", &FIVE));
            let carried = with_previous(again, &aborting, Phase::Hold).expect("carried");
            assert!(starting(&carried, &aborting).is_empty());
            // Any third placement waits for the abort to end.
            let other = Topology::build(config(policy, "migrate", &FIVE[..4]));
            assert!(with_previous(other, &aborting, Phase::Hold).is_err());
        }
    }

    #[test]
    fn only_a_changed_placement_with_reshard_migrate_moves_keys() {
        let running = Topology::build(config("ketama", "migrate", &FIVE));
        let same = with_previous(
            Topology::build(config("ketama", "migrate", &FIVE)),
            &running,
            Phase::Hold,
        );
        assert!(same.expect("same").clusters[0].migration.is_none());
        let off = Topology::build(config("ketama", "off", &FIVE[..4]));
        let off = with_previous(off, &running, Phase::Hold).expect("off");
        assert!(off.clusters[0].migration.is_none());
        let weighed = config("ketama", "migrate", &FIVE).clusters[0].clone();
        let mut reweighed = config("ketama", "migrate", &FIVE);
        reweighed.clusters[0].endpoints[2].weight = 3;
        assert!(!same_placement(&weighed, &reweighed.clusters[0]));
        let moving =
            with_previous(Topology::build(reweighed), &running, Phase::Hold).expect("moving");
        assert!(moving.clusters[0].migration.is_some());
        // A second reshard waits for the first to finish.
        let again = Topology::build(config("ketama", "migrate", &FIVE[..3]));
        assert_eq!(
            with_previous(again, &moving, Phase::Hold).unwrap_err(),
            MigrationError::AlreadyMoving {
                cluster: "c".into()
            }
        );
    }
}
