//! The router: where a key, a channel or a fanned-out command goes. It is
//! a view of one generation, the topology (prefix routes, rings, health)
//! with the slot maps its core has learned, and pure: a function of those
//! and its arguments, so every placement rule is unit-tested here without
//! a socket. The session asks it; nothing else places keys.

use std::sync::Arc;

use super::migration::{Migration, Whereabouts};
use super::slots::{key_slot, SlotMap};
use super::{Phase, Shard, Topology};
use crate::command::KeyError;
use crate::config::{MirrorPolicy, ReadPolicy};
use crate::resp::errors::ErrorReply;
use crate::resp::write::quoted;
use crate::route::hashtag::hashtag;

/// The slot maps of a core's redis_cluster clusters (None: not discovered).
pub type SlotMaps = [Option<Arc<SlotMap>>];

/// A route: which cluster a key goes to, how many leading bytes to strip
/// (remove_prefix), and the route's mirrors.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub cluster: usize,
    pub strip: usize,
    pub mirrors: &'a [MirrorPolicy],
}

/// Where a key lives: its shard and, in a redis_cluster cluster, its slot
/// (0 in a ring cluster).
#[derive(Debug, Clone, Copy)]
pub struct Home<'a> {
    pub shard: &'a Shard,
    pub slot: u16,
    /// The key is moving (its cluster is being resharded, its old owner
    /// is another primary, and it moves in this round): it moves first.
    pub moving: Option<Move>,
}

/// A key whose cluster is being resharded and whose old owner is not its
/// new one: `from` must give it up (MIGRATE) before `to` serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub from: usize,
    pub to: usize,
    pub phase: Phase,
}

/// Why a key of a Redis Cluster has no node yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlocated {
    /// The slot map has no node for its slot.
    SlotNotServed,
    /// No node has answered CLUSTER SLOTS yet.
    NoSlotMap,
}

/// Why a request (or a channel) cannot be placed: the client's error (its
/// text is `reply`'s, from `resp::errors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No prefix route matches and there is no catch-all (`name` quoted).
    NoRoute { what: &'static str, name: String },
    /// A Redis Cluster slot no node serves.
    ClusterDown { cluster: usize },
    /// A Redis Cluster not discovered yet, and what discovery last said.
    NoSlotMap {
        cluster: usize,
        name: String,
        why: Option<String>,
    },
    /// Placing a whole command's key (or a channel) failed.
    NotYet {
        cluster: usize,
        what: &'static str,
        name: String,
        why: Unlocated,
    },
    /// The keys of a command that runs whole live apart.
    CrossSlot,
    /// Its arguments do not say where its keys are.
    Keys(KeyError),
    /// A transaction's key lives on another backend than its earlier ones.
    TransactionApart { key: String },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.reply().fmt(f)
    }
}

impl RouteError {
    /// What the client is answered.
    pub fn reply(&self) -> ErrorReply<'_> {
        match self {
            RouteError::NoRoute { what, name } => ErrorReply::NoRoute { what, name },
            RouteError::ClusterDown { .. } => ErrorReply::ClusterDown,
            RouteError::NoSlotMap { name, why, .. } => ErrorReply::NoSlotMapYet {
                cluster: name,
                why: why.as_deref(),
            },
            RouteError::NotYet {
                what, name, why, ..
            } => ErrorReply::CannotPlaceYet {
                what,
                name,
                slot_unserved: matches!(why, Unlocated::SlotNotServed),
            },
            RouteError::CrossSlot => ErrorReply::CrossSlot,
            RouteError::Keys(e) => e.reply(),
            RouteError::TransactionApart { key } => ErrorReply::TransactionKeyElsewhere(key),
        }
    }

    #[cold]
    fn no_route(what: &'static str, name: &[u8]) -> RouteError {
        RouteError::NoRoute {
            what,
            name: quoted(name, 128),
        }
    }

    /// The redis_cluster cluster whose slot map is missing or stale, so
    /// that discovery is asked to fetch it again.
    pub fn stale_slot_map(&self) -> Option<usize> {
        match self {
            RouteError::ClusterDown { cluster }
            | RouteError::NoSlotMap { cluster, .. }
            | RouteError::NotYet { cluster, .. } => Some(*cluster),
            _ => None,
        }
    }
}

/// The endpoints a fanned-out command reaches.
#[derive(Debug, PartialEq, Eq)]
pub struct Backends {
    /// Primaries of the routed clusters: the client's reply is theirs.
    pub primaries: Vec<usize>,
    /// (endpoint, cluster) of mirror-only clusters' primaries.
    pub mirrors: Vec<(usize, usize)>,
}

pub struct Router<'a> {
    topo: &'a Topology,
    maps: &'a SlotMaps,
}

impl<'a> Router<'a> {
    pub fn new(topo: &'a Topology, maps: &'a SlotMaps) -> Router<'a> {
        Router { topo, maps }
    }

    /// The route of `key`: the longest matching prefix route, else the
    /// catch-all; Err names it (as a `what`: key or channel).
    #[inline]
    pub fn route(&self, key: &[u8], what: &'static str) -> Result<Route<'a>, RouteError> {
        match self.route_of(key) {
            Some(route) => Ok(route),
            None => Err(RouteError::no_route(what, key)),
        }
    }

    #[inline]
    fn route_of(&self, key: &[u8]) -> Option<Route<'a>> {
        let config = &self.topo.config;
        for r in &config.prefix_routes {
            let n = r.prefix.len();
            let hit = key.len() >= n
                && if r.case_insensitive {
                    key[..n].eq_ignore_ascii_case(&r.prefix)
                } else {
                    key[..n] == r.prefix[..]
                };
            if hit {
                return Some(Route {
                    cluster: r.cluster,
                    strip: if r.remove_prefix { n } else { 0 },
                    mirrors: &r.mirrors,
                });
            }
        }
        config.catch_all.map(|cluster| Route {
            cluster,
            strip: 0,
            mirrors: &config.catch_all_mirrors,
        })
    }

    /// The home of `key` (already stripped of its route's prefix) in
    /// `cluster`: its ring's shard (hashtags honoured), or its slot's.
    #[inline]
    pub fn locate(&self, cluster: usize, key: &[u8]) -> Result<Home<'a>, Unlocated> {
        let c = &self.topo.clusters[cluster];
        if let Some(ring) = &c.ring {
            let hashed = if self.topo.config.hashtags {
                hashtag(key)
            } else {
                key
            };
            let shard = &c.shards[c.members[ring.pick(hashed)]];
            let home = Home {
                shard,
                slot: 0,
                moving: None,
            };
            // One branch for a cluster that is not being resharded.
            return Ok(match &c.migration {
                None => home,
                Some(m) => self.while_moving(m, hashed, home),
            });
        }
        let slot = key_slot(key);
        match self.maps.get(cluster) {
            Some(Some(map)) => map
                .shard(slot)
                .map(|shard| Home {
                    shard,
                    slot,
                    moving: None,
                })
                .ok_or(Unlocated::SlotNotServed),
            _ => Err(Unlocated::NoSlotMap),
        }
    }

    /// `home` (the new placement's) of a key (`hashed`) of a cluster that
    /// migration `m` reshards: the same if its old owner is its new one;
    /// else where its round says it is, moving if it moves in this round.
    fn while_moving(&self, m: &'a Migration, hashed: &[u8], home: Home<'a>) -> Home<'a> {
        let before = &m.previous;
        let old = &before.shards[before.members[before.ring.pick(hashed)]];
        let (from, to) = (old.primary, home.shard.primary);
        if from == to {
            return home;
        }
        match self.whereabouts(m, from, to) {
            Whereabouts::AtNew => home,
            Whereabouts::AtOld => Home { shard: old, ..home },
            Whereabouts::Moves => Home {
                moving: Some(Move {
                    from,
                    to,
                    phase: m.phase,
                }),
                ..home
            },
        }
    }

    /// Where a key moving from endpoint `from` to `to` is in `m`'s round.
    fn whereabouts(&self, m: &Migration, from: usize, to: usize) -> Whereabouts {
        let addr = |e: usize| self.topo.endpoints[e].addr;
        m.round.whereabouts(addr(from), addr(to))
    }

    /// The home of a key of a request the client is answered for: why it
    /// has none is the client's error.
    pub fn locate_for_reply(&self, cluster: usize, key: &[u8]) -> Result<Home<'a>, RouteError> {
        self.locate(cluster, key).map_err(|why| match why {
            Unlocated::SlotNotServed => RouteError::ClusterDown { cluster },
            Unlocated::NoSlotMap => RouteError::NoSlotMap {
                cluster,
                name: self.topo.clusters[cluster].name.clone(),
                why: None,
            },
        })
    }

    /// Route and home of a key (or a channel: `what`) that must be served
    /// whole: Err names it.
    pub fn place(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<(Route<'a>, Home<'a>), RouteError> {
        let route = self.route(key, what)?;
        let home = self.home_whole(&route, &key[route.strip..], what, key)?;
        Ok((route, home))
    }

    /// The home in `route`'s cluster of `hashed` (what the cluster hashes
    /// of `name`): Err names it as a key or channel served whole.
    fn home_whole(
        &self,
        route: &Route<'a>,
        hashed: &[u8],
        what: &'static str,
        name: &[u8],
    ) -> Result<Home<'a>, RouteError> {
        self.locate(route.cluster, hashed)
            .map_err(|why| RouteError::NotYet {
                cluster: route.cluster,
                what,
                name: quoted(name, 128),
                why,
            })
    }

    /// The primary owning every key of a command that runs whole, and
    /// their slot; `each` is given every key's route and home in order.
    /// Err: a key has no home, or they live apart (CROSSSLOT).
    pub fn place_together<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        mut each: impl FnMut(Route<'a>, Home<'a>),
    ) -> Result<Option<(usize, u16)>, RouteError> {
        let mut together: Option<(usize, u16)> = None;
        for key in keys {
            let (route, home) = self.place(key, "key")?;
            each(route, home);
            let here = (home.shard.primary, home.slot);
            if *together.get_or_insert(here) != here {
                return Err(RouteError::CrossSlot);
            }
        }
        Ok(together)
    }

    /// The primary a pub/sub channel lives on: routed by its whole name (a
    /// prefix route picks the cluster, nothing is stripped: messages carry
    /// the channel as the client named it), hashed like a key.
    pub fn channel_home(&self, channel: &[u8]) -> Result<usize, RouteError> {
        let route = self.route(channel, "channel")?;
        let home = self.home_whole(&route, channel, "channel", channel)?;
        Ok(home.shard.primary)
    }

    /// The primary endpoint owning `key` after routing, for `keyway route`
    /// and tests; None without a route or in a redis_cluster cluster not
    /// yet discovered.
    pub fn primary(&self, key: &[u8]) -> Option<usize> {
        self.place(key, "key").ok().map(|(_, h)| h.shard.primary)
    }

    /// Every primary of `cluster` (a redis_cluster's, once discovered).
    fn primaries(&self, cluster: usize) -> Result<Vec<usize>, RouteError> {
        let c = &self.topo.clusters[cluster];
        if c.ring.is_some() {
            // While resharding, keys are on the old primaries too.
            let before = c.migration.iter().flat_map(|m| &m.previous.shards);
            let mut eps: Vec<usize> = c.shards.iter().chain(before).map(|s| s.primary).collect();
            eps.sort_unstable();
            eps.dedup();
            return Ok(eps);
        }
        match self.maps.get(cluster) {
            Some(Some(map)) => {
                let mut eps: Vec<usize> = map.shards.iter().map(|s| s.primary).collect();
                eps.sort_unstable();
                eps.dedup();
                Ok(eps)
            }
            _ => Err(RouteError::NoSlotMap {
                cluster,
                name: c.name.clone(),
                why: None,
            }),
        }
    }

    /// Where a command sent to every backend goes: each primary of every
    /// routed cluster, and of mirror-only clusters (their reply dropped;
    /// a mirror not discovered yet is skipped, as for any write).
    pub fn fanout(&self) -> Result<Backends, RouteError> {
        let config = &self.topo.config;
        let mut routed: Vec<usize> = config
            .catch_all
            .into_iter()
            .chain(config.prefix_routes.iter().map(|r| r.cluster))
            .collect();
        routed.sort_unstable();
        routed.dedup();
        let mut mirrored: Vec<usize> = (self.topo.mirror_policies())
            .map(|m| m.cluster)
            .filter(|c| !routed.contains(c))
            .collect();
        mirrored.sort_unstable();
        mirrored.dedup();
        let mut primaries = Vec::new();
        for &c in &routed {
            primaries.extend(self.primaries(c)?);
        }
        let mut mirrors = Vec::new();
        for &c in &mirrored {
            if let Ok(eps) = self.primaries(c) {
                mirrors.extend(eps.into_iter().map(|e| (e, c)));
            }
        }
        Ok(Backends { primaries, mirrors })
    }

    /// A cluster's read policy.
    pub fn read_policy(&self, cluster: usize) -> ReadPolicy {
        self.topo.clusters[cluster].read_policy
    }
}

/// Whether a request gets a copy under mirror policy `m`: `draw` is the
/// request's one draw in [0, 1), so all its keys are mirrored or none.
pub fn mirrored(m: &MirrorPolicy, is_read: bool, draw: f64) -> bool {
    !(m.exclude_read_commands && is_read) && draw < m.fraction
}

/// The endpoint of `shard` that serves a request in round-robin `turn`:
/// writes and the `primary` policy go to the primary; replica policies
/// spread reads and, for `prefer_*`, fall back when the preferred side is
/// not `healthy`.
pub fn choose(
    shard: &Shard,
    policy: ReadPolicy,
    is_read: bool,
    turn: usize,
    healthy: impl Fn(usize) -> bool,
) -> usize {
    if !is_read || policy == ReadPolicy::Primary || shard.replicas.is_empty() {
        return shard.primary;
    }
    let replica = |healthy_only: bool| {
        let len = shard.replicas.len();
        (0..len)
            .map(|i| shard.replicas[(turn + i) % len])
            .find(|&r| !healthy_only || healthy(r))
    };
    match policy {
        ReadPolicy::Primary => shard.primary,
        ReadPolicy::PreferPrimary if healthy(shard.primary) => shard.primary,
        ReadPolicy::PreferPrimary => replica(true).unwrap_or(shard.primary),
        ReadPolicy::Replica => replica(true)
            .or_else(|| replica(false))
            .unwrap_or(shard.primary),
        ReadPolicy::PreferReplica => replica(true).unwrap_or(shard.primary),
        ReadPolicy::Any => {
            let all = shard.replicas.len() + 1;
            (0..all)
                .map(|i| match (turn + i) % all {
                    0 => shard.primary,
                    r => shard.replicas[r - 1],
                })
                .find(|&e| healthy(e))
                .unwrap_or(shard.primary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const CONFIG: &str = r#"
[proxy]
listen = "127.0.0.1:6380"

[[clusters]]
name = "main"
lb_policy = "ketama"
endpoints = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]

[[clusters]]
name = "rc"
lb_policy = "redis_cluster"
endpoints = ["127.0.0.1:7100"]

[[clusters]]
name = "copy"
lb_policy = "maglev"
endpoints = ["127.0.0.1:7201", "127.0.0.1:7202"]

[[routes.prefix]]
prefix = "rc:"
cluster = "rc"
remove_prefix = true

[[routes.prefix]]
prefix = "rc:copy:"
cluster = "copy"

[[routes.prefix]]
prefix = "Tmp:"
cluster = "main"
case_insensitive = true
remove_prefix = true
mirror = [{ cluster = "copy", fraction = 0.25, exclude_read_commands = true }]

[routes]
catch_all = "main"
"#;

    fn topology(text: &str) -> Topology {
        Topology::build(Config::parse(text, "t.toml").expect("config"))
    }

    /// A slot map of cluster 1 whose slots below 8192 are served by one
    /// node (endpoint 9) and the rest by none.
    fn half_served() -> Vec<Option<Arc<SlotMap>>> {
        let mut map = SlotMap::empty(1);
        map.shards.push(Shard {
            primary: 9,
            replicas: vec![],
        });
        for s in 0..8192 {
            map.slots[s] = 0;
        }
        vec![None, Some(Arc::new(map)), None]
    }

    #[test]
    fn the_longest_matching_prefix_routes_and_may_be_stripped() {
        let topo = topology(CONFIG);
        let r = Router::new(&topo, &[]);
        let route = |k: &[u8]| r.route(k, "key").map(|r| (r.cluster, r.strip));
        assert_eq!(route(b"rc:a").unwrap(), (1, 3));
        assert_eq!(route(b"rc:copy:a").unwrap(), (2, 0));
        assert_eq!(route(b"tMP:a").unwrap(), (0, 4));
        assert_eq!(route(b"rc").unwrap(), (0, 0));
        assert_eq!(route(b"").unwrap(), (0, 0));
        // A stripped key lives where the bare key lives.
        for i in 0..200 {
            let bare = format!("user:{i}");
            assert_eq!(
                r.primary(format!("TMP:{bare}").as_bytes()),
                r.primary(bare.as_bytes())
            );
        }
    }

    #[test]
    fn without_a_catch_all_an_unrouted_key_is_refused_by_name() {
        let topo = topology(&CONFIG.replace("catch_all = \"main\"", ""));
        let r = Router::new(&topo, &[]);
        let e = r.place(b"nowhere", "key").unwrap_err();
        assert!(
            matches!(e, RouteError::NoRoute { what: "key", .. }),
            "{e:?}"
        );
        assert_eq!(e.stale_slot_map(), None);
        assert!(r.channel_home(b"news").is_err());
        assert!(r.place(b"TMP:x", "key").is_ok());
    }

    #[test]
    fn keys_sharing_a_hashtag_live_together_and_others_may_not() {
        let topo = topology(CONFIG);
        let r = Router::new(&topo, &[]);
        let tagged = (0..100).map(|i| format!("{i}:{{order:7}}"));
        let keys: Vec<String> = tagged.collect();
        let together = r
            .place_together(keys.iter().map(|k| k.as_bytes()), |_, _| {})
            .unwrap();
        assert_eq!(together.map(|t| t.0), r.primary(b"order:7"));
        // Two untagged keys on different primaries: CROSSSLOT. (Keys that
        // differ only in their last bytes hash close together under
        // ketama's FNV-1a, as in twemproxy: vary the first byte.)
        let apart = (1..100)
            .map(|i| format!("{i}:k"))
            .find(|k| r.primary(k.as_bytes()) != r.primary(b"0:k"))
            .unwrap();
        let e = r
            .place_together([&b"0:k"[..], apart.as_bytes()], |_, _| {})
            .unwrap_err();
        assert_eq!(e, RouteError::CrossSlot);
        assert_eq!(r.place_together([], |_, _| {}).unwrap(), None);
        // With hashtags off, the braces are part of the key.
        let off = topology(&CONFIG.replace("[proxy]", "[proxy]\nhashtags = false"));
        let r = Router::new(&off, &[]);
        let spread = keys.iter().map(|k| r.primary(k.as_bytes()));
        assert!(spread.collect::<std::collections::BTreeSet<_>>().len() > 1);
    }

    #[test]
    fn a_redis_cluster_places_by_slot_once_its_map_is_known() {
        let topo = topology(CONFIG);
        let none = Router::new(&topo, &[]);
        let e = none.place(b"rc:k", "key").unwrap_err();
        assert!(
            matches!(
                e,
                RouteError::NotYet {
                    cluster: 1,
                    why: Unlocated::NoSlotMap,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.stale_slot_map(), Some(1));
        assert!(matches!(
            none.locate_for_reply(1, b"k"),
            Err(RouteError::NoSlotMap { cluster: 1, .. })
        ));
        let maps = half_served();
        let r = Router::new(&topo, &maps);
        // The slot is the stripped key's: "rc:" is not part of it.
        let served = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| key_slot(k.as_bytes()) < 8192)
            .unwrap();
        let (route, home) = r.place(format!("rc:{served}").as_bytes(), "key").unwrap();
        assert_eq!((route.cluster, home.shard.primary), (1, 9));
        assert_eq!(home.slot, key_slot(served.as_bytes()));
        let unserved = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| key_slot(k.as_bytes()) >= 8192)
            .unwrap();
        assert!(matches!(
            r.locate_for_reply(1, unserved.as_bytes()),
            Err(RouteError::ClusterDown { cluster: 1 })
        ));
        // A channel is hashed whole, prefix and all.
        let channel = b"rc:news";
        match r.channel_home(channel) {
            Ok(ep) => assert!(key_slot(channel) < 8192 && ep == 9),
            Err(e) => assert!(key_slot(channel) >= 8192 && e.stale_slot_map() == Some(1)),
        }
    }

    #[test]
    fn a_fan_out_reaches_every_routed_primary_and_mirror_only_clusters() {
        let topo = topology(CONFIG);
        let e = Router::new(&topo, &[]).fanout().unwrap_err();
        assert!(
            matches!(e, RouteError::NoSlotMap { cluster: 1, .. }),
            "{e:?}"
        );
        let maps = half_served();
        let all = Router::new(&topo, &maps).fanout().unwrap();
        // main's three primaries, rc's node (endpoint 3 is its seed), copy's
        // two (routed too).
        assert_eq!(all.primaries, vec![0, 1, 2, 9, 4, 5]);
        assert!(all.mirrors.is_empty());
        // A cluster only mirrored to is reached, its replies dropped.
        let mirror_only = CONFIG.replace(
            "[[routes.prefix]]\nprefix = \"rc:copy:\"\ncluster = \"copy\"\n",
            "",
        );
        let topo = topology(&mirror_only);
        let all = Router::new(&topo, &maps).fanout().unwrap();
        assert_eq!(all.primaries, vec![0, 1, 2, 9]);
        assert_eq!(all.mirrors, vec![(4, 2), (5, 2)]);
    }

    #[test]
    fn mirrors_take_their_fraction_of_writes_and_reads_unless_excluded() {
        let topo = topology(CONFIG);
        let r = Router::new(&topo, &[]);
        let m = &r.route(b"tmp:k", "key").unwrap().mirrors[0];
        assert!(mirrored(m, false, 0.0) && mirrored(m, false, 0.2499));
        assert!(!mirrored(m, false, 0.25) && !mirrored(m, false, 0.99));
        assert!(!mirrored(m, true, 0.0), "reads excluded");
        let every = MirrorPolicy {
            cluster: 2,
            exclude_read_commands: false,
            fraction: 1.0,
        };
        assert!(mirrored(&every, true, 0.999_999));
    }

    #[test]
    fn read_policies_pick_by_turn_and_fall_back_on_health() {
        let shard = Shard {
            primary: 0,
            replicas: vec![1, 2],
        };
        let all_up = |_: usize| true;
        let only = |up: &'static [usize]| move |e: usize| up.contains(&e);
        let pick = |policy, is_read, turn, healthy: &dyn Fn(usize) -> bool| {
            choose(&shard, policy, is_read, turn, healthy)
        };
        use ReadPolicy::*;
        for turn in 0..4 {
            // Writes and `primary` never leave the primary.
            for p in [Primary, PreferPrimary, Replica, PreferReplica, Any] {
                assert_eq!(pick(p, false, turn, &all_up), 0);
            }
            assert_eq!(pick(Primary, true, turn, &only(&[])), 0);
        }
        // Replicas take turns; `any` includes the primary.
        let turns = |p, healthy: &dyn Fn(usize) -> bool| -> Vec<usize> {
            (0..6).map(|t| pick(p, true, t, healthy)).collect()
        };
        assert_eq!(turns(Replica, &all_up), vec![1, 2, 1, 2, 1, 2]);
        assert_eq!(turns(Any, &all_up), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(turns(PreferPrimary, &all_up), vec![0; 6]);
        // A failing side is skipped where the policy allows it.
        assert_eq!(turns(Replica, &only(&[0, 2])), vec![2; 6]);
        assert_eq!(turns(PreferPrimary, &only(&[1, 2])), vec![1, 2, 1, 2, 1, 2]);
        assert_eq!(turns(PreferReplica, &only(&[0])), vec![0; 6]);
        assert_eq!(turns(Any, &only(&[2])), vec![2; 6]);
        // `replica` with every replica failing still asks one, never the
        // primary; `any` with nothing healthy asks the primary.
        assert_eq!(turns(Replica, &only(&[0])), vec![1, 2, 1, 2, 1, 2]);
        assert_eq!(turns(Any, &only(&[])), vec![0; 6]);
        let bare = Shard {
            primary: 5,
            replicas: vec![],
        };
        assert_eq!(choose(&bare, Replica, true, 1, all_up), 5);
    }
}
