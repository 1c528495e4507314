//! Envoy's RING_HASH load balancer (`RingHashLoadBalancer::Ring`), as its
//! redis_proxy uses it, so a key lands on the endpoint Envoy would pick.
//!
//! Building: weights are normalized (`weight / sum`), the ring is scaled so
//! the least-weighted endpoint gets a whole number of points,
//! `scale = min(ceil(min_w * min_ring_size) / min_w, max_ring_size)`, and
//! endpoints are walked in the order given, each adding points while a
//! running count of points stays below a running target (`+= scale * w`),
//! so fractional shares carry over to the next endpoint exactly as in
//! Envoy. Point `i` of an endpoint is the hash of `"<name>_<i>"` (XXH64
//! seed 0 by default, or murmur2 with `hash_function: MURMUR_HASH_2`).
//! The points are sorted by hash.
//!
//! Lookup: a key's hash is `envoy_murmur2(key)` (what redis_proxy
//! computes); the owner is the first point whose hash is >= it, wrapping
//! to the first point past the end. Envoy spells this as a signed-index
//! bisection ported from libketama, which returns exactly that point
//! (ties included: the first of equal hashes); the Envoy vectors in the
//! tests pin the edges (0, u64::MAX, a point's own hash, one past it).

use super::continuum::Continuum;
use super::hash::{envoy_murmur2, xxhash64};
use super::RingMember;
use crate::resp::write::push_decimal;

/// Envoy's `minimum_ring_size` default.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's `maximum_ring_size` default.
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

/// How ring points are hashed: Envoy's `RingHash.hash_function`. Keys are
/// hashed with murmur2 either way (by redis_proxy, not by the ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PointHash {
    /// `XX_HASH`, Envoy's default.
    #[default]
    XxHash,
    /// `MURMUR_HASH_2`: `MurmurHash::murmurHash2(key, STD_HASH_SEED)`.
    MurmurHash2,
}

#[derive(Debug)]
pub struct RingHash {
    /// The points (each host's name and number hashed), ascending.
    points: Continuum<u64>,
}

impl RingHash {
    /// Envoy's ring with its default point hash (XXH64). A member's `name`
    /// must be what Envoy hashes for the host: its address as Envoy prints
    /// it, `"ip:port"` (`"[v6]:port"` for IPv6), unless the cluster uses
    /// `use_hostname_for_hashing` or an `envoy.lb` `hash_key`.
    ///
    /// Envoy rejects weight 0 and requires `min_ring_size <= max_ring_size`;
    /// here members of weight 0 are left off the ring (as if absent).
    pub fn build(members: &[RingMember], min_ring_size: u64, max_ring_size: u64) -> RingHash {
        RingHash::build_with(members, min_ring_size, max_ring_size, PointHash::XxHash)
    }

    pub fn build_with(
        members: &[RingMember],
        min_ring_size: u64,
        max_ring_size: u64,
        point_hash: PointHash,
    ) -> RingHash {
        // Envoy sums weights as integers and divides once per host
        // (`weight * 1.0 / sum`): the same doubles as here.
        let sum: u64 = members.iter().map(|m| m.weight as u64).sum();
        if sum == 0 {
            return RingHash {
                points: Continuum::new(Vec::new()),
            };
        }
        let normalized = |m: &RingMember| m.weight as f64 / sum as f64;
        let min_w = members
            .iter()
            .filter(|m| m.weight > 0)
            .map(normalized)
            .fold(1.0f64, f64::min);
        let scale = ((min_w * min_ring_size as f64).ceil() / min_w).min(max_ring_size as f64);

        let mut points: Vec<(u64, u32)> = Vec::with_capacity(scale.ceil() as usize);
        let mut key = Vec::with_capacity(64);
        let (mut current, mut target) = (0.0f64, 0.0f64);
        for (idx, m) in members.iter().enumerate() {
            if m.weight == 0 {
                continue;
            }
            key.clear();
            key.extend_from_slice(m.name.as_bytes());
            key.push(b'_');
            let prefix = key.len();
            target += scale * normalized(m);
            let mut i: u64 = 0;
            while current < target {
                key.truncate(prefix);
                push_decimal(&mut key, i);
                let h = match point_hash {
                    PointHash::XxHash => xxhash64(&key, 0),
                    PointHash::MurmurHash2 => envoy_murmur2(&key),
                };
                points.push((h, idx as u32));
                i += 1;
                current += 1.0;
            }
        }
        // Equal hashes (a 64-bit collision) are unordered in Envoy's
        // std::sort; a stable sort keeps them in member order.
        points.sort_by_key(|p| p.0);
        RingHash {
            points: Continuum::new(points),
        }
    }

    /// The member owning `key` (already reduced to its hashtag). An empty
    /// ring (no member with a weight) answers 0.
    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(envoy_murmur2(key))
    }

    /// The member owning hash `h`: the first point >= `h`, else the first.
    #[inline]
    pub fn pick_hash(&self, h: u64) -> usize {
        self.points.owner_of(h)
    }

    /// Number of points: Envoy's `ring_hash_lb.size`.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// (point hash, member index), ascending by hash.
    pub fn points(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.points.points()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::route::test_members as hosts;

    fn named(names: &[&str]) -> Vec<RingMember> {
        names
            .iter()
            .map(|n| RingMember {
                name: n.to_string(),
                weight: 1,
            })
            .collect()
    }

    /// Points per member (Envoy's min/max_hashes_per_host come from these).
    fn counts(r: &RingHash, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for (_, o) in r.points() {
            c[o] += 1;
        }
        c
    }

    /// Envoy's tests sweep `i * (u64::MAX / n)` and count hits per host.
    fn sweep(r: &RingHash, n: u64, members: usize) -> Vec<u32> {
        let mut c = vec![0; members];
        for i in 0..n {
            c[r.pick_hash(i * (u64::MAX / n))] += 1;
        }
        c
    }

    const PORTS_90_95: [u16; 6] = [90, 91, 92, 93, 94, 95];

    // ring_hash_lb_test.cc: TEST_P(RingHashLoadBalancerTest, Basic) (the
    // same ring as BasicWithRetryHostPredicate).
    #[test]
    fn envoy_basic() {
        let r = RingHash::build(&hosts(&PORTS_90_95, &[]), 12, DEFAULT_MAX_RING_SIZE);
        let want: [(u64, usize); 12] = [
            (833437586790550860, 4),
            (928266305478181108, 2),
            (1033482794131418490, 0),
            (3551244743356806947, 5),
            (3851675632748031481, 3),
            (5583722120771150861, 1),
            (6311230543546372928, 1),
            (7700377290971790572, 3),
            (13144177310400110813, 5),
            (13444792449719432967, 2),
            (15516499411664133160, 4),
            (16117243373044804889, 0),
        ];
        assert_eq!(r.points().collect::<Vec<_>>(), want);
        assert_eq!(counts(&r, 6), [2; 6]);
        assert_eq!(r.pick_hash(0), 4);
        assert_eq!(r.pick_hash(u64::MAX), 4);
        assert_eq!(r.pick_hash(3551244743356806947), 5);
        assert_eq!(r.pick_hash(3551244743356806948), 3);
        assert_eq!(r.pick_hash(16117243373044804880), 0);
        // Edges around a point: its own hash is its, one past is the next.
        assert_eq!(r.pick_hash(833437586790550860), 4);
        assert_eq!(r.pick_hash(833437586790550861), 2);
        assert_eq!(r.pick_hash(16117243373044804889), 0);
        assert_eq!(r.pick_hash(16117243373044804890), 4);
    }

    // TEST_P(RingHashLoadBalancerTest, BasicWithMurmur2).
    #[test]
    fn envoy_basic_with_murmur2() {
        let ports = [80, 81, 82, 83, 84, 85];
        let r = RingHash::build_with(
            &hosts(&ports, &[]),
            12,
            DEFAULT_MAX_RING_SIZE,
            PointHash::MurmurHash2,
        );
        let want: [(u64, usize); 12] = [
            (1358027074129602068, 5),
            (4361834613929391114, 3),
            (7224494972555149682, 4),
            (7701421856454313576, 1),
            (8649315368077433379, 2),
            (8739448859063030639, 4),
            (9887544217113020895, 1),
            (10150910876324007731, 2),
            (15168472011420622455, 3),
            (15427156902705414897, 0),
            (16375050414328759093, 5),
            (17613279263364193813, 0),
        ];
        assert_eq!(r.points().collect::<Vec<_>>(), want);
        assert_eq!(r.pick_hash(0), 5);
        assert_eq!(r.pick_hash(u64::MAX), 5);
        assert_eq!(r.pick_hash(1358027074129602068), 5);
        assert_eq!(r.pick_hash(1358027074129602069), 3);
        assert_eq!(r.pick_hash(10150910876324007730), 2);
    }

    // TEST_P(RingHashLoadBalancerTest, BasicWithHostname) (also the ring of
    // BasicWithMetadataHashKey and BasicWithDoundedLoad): hosts hashed by
    // hostname "90".."95".
    #[test]
    fn envoy_basic_with_hostname() {
        let r = RingHash::build(
            &named(&["90", "91", "92", "93", "94", "95"]),
            12,
            DEFAULT_MAX_RING_SIZE,
        );
        let want: [(u64, usize); 12] = [
            (1975508444536362413, 5),
            (2376063919839173711, 5),
            (2386806903309390596, 3),
            (6749904478991551885, 4),
            (6803900775736438537, 3),
            (7225015537174310577, 2),
            (8787465352164086522, 0),
            (11282020843382717940, 2),
            (13723418369486627818, 1),
            (13776502110861797421, 0),
            (14338313586354474791, 1),
            (15364271037087512980, 4),
        ];
        assert_eq!(r.points().collect::<Vec<_>>(), want);
        assert_eq!(r.pick_hash(0), 5);
        assert_eq!(r.pick_hash(u64::MAX), 5);
        assert_eq!(r.pick_hash(7225015537174310577), 2);
        assert_eq!(r.pick_hash(6803900775736438537), 3);
    }

    // TEST_P(RingHashLoadBalancerTest, UnevenHosts): min ring 3 -> 4 points.
    #[test]
    fn envoy_uneven_hosts() {
        let r = RingHash::build(&hosts(&[80, 81], &[]), 3, DEFAULT_MAX_RING_SIZE);
        let want: [(u64, usize); 4] = [
            (5454692015285649509, 0),
            (7859399908942313493, 1),
            (13838424394637650569, 0),
            (16064866803292627174, 1),
        ];
        assert_eq!(r.points().collect::<Vec<_>>(), want);
        assert_eq!(r.pick_hash(0), 0);
        let r = RingHash::build(&hosts(&[81, 82], &[]), 3, DEFAULT_MAX_RING_SIZE);
        let want: [(u64, usize); 4] = [
            (7859399908942313493, 0),
            (8241336090459785962, 1),
            (12882406409176325258, 1),
            (16064866803292627174, 0),
        ];
        assert_eq!(r.points().collect::<Vec<_>>(), want);
        assert_eq!(r.pick_hash(0), 0);
    }

    // TEST_P(RingHashLoadBalancerTest, HostWeightedTinyRing).
    #[test]
    fn envoy_host_weighted_tiny_ring() {
        let r = RingHash::build(&hosts(&[90, 91, 92], &[1, 2, 3]), 6, 6);
        assert_eq!(r.len(), 6);
        assert_eq!(counts(&r, 3), [1, 2, 3]);
        for (h, want) in [
            (928266305478181108, 2),
            (4443673547860492590, 2),
            (5583722120771150861, 1),
            (6311230543546372928, 1),
            (13444792449719432967, 2),
            (16117243373044804889, 0),
        ] {
            assert_eq!(r.pick_hash(h), want, "hash {h}");
        }
    }

    // TEST_P(RingHashLoadBalancerTest, HostWeightedLargeRing).
    #[test]
    fn envoy_host_weighted_large_ring() {
        let r = RingHash::build(
            &hosts(&[90, 91, 92], &[1, 2, 3]),
            6144,
            DEFAULT_MAX_RING_SIZE,
        );
        assert_eq!(r.len(), 6144);
        assert_eq!(counts(&r, 3), [1024, 2048, 3072]);
        assert_eq!(sweep(&r, 6000, 3), [987, 1932, 3081]);
    }

    // TEST_P(RingHashLoadBalancerTest, HostAndLocalityWeightedTinyRing):
    // hosts 1:2 within localities 1:2 normalize to 1/9, 2/9, 2/9, 4/9,
    // bit for bit the doubles host weights 1, 2, 2, 4 give.
    #[test]
    fn envoy_host_and_locality_weighted_tiny_ring() {
        let r = RingHash::build(&hosts(&[90, 91, 92, 93], &[1, 2, 2, 4]), 9, 9);
        assert_eq!(r.len(), 9);
        assert_eq!(counts(&r, 4), [1, 2, 2, 4]);
        for (h, want) in [
            (928266305478181108, 2),
            (3851675632748031481, 3),
            (5583722120771150861, 1),
            (6311230543546372928, 1),
            (7700377290971790572, 3),
            (12559126875973811811, 3),
            (13444792449719432967, 2),
            (13784988426630141778, 3),
            (16117243373044804889, 0),
        ] {
            assert_eq!(r.pick_hash(h), want, "hash {h}");
        }
    }

    // TEST_P(RingHashLoadBalancerTest, HostAndLocalityWeightedLargeRing).
    #[test]
    fn envoy_host_and_locality_weighted_large_ring() {
        let r = RingHash::build(
            &hosts(&[90, 91, 92, 93], &[1, 2, 2, 4]),
            9216,
            DEFAULT_MAX_RING_SIZE,
        );
        assert_eq!(r.len(), 9216);
        assert_eq!(counts(&r, 4), [1024, 2048, 2048, 4096]);
        assert_eq!(sweep(&r, 9000, 4), [924, 2009, 2053, 4014]);
    }

    // TEST_P(RingHashLoadBalancerTest, SmallFractionalScale): 4 hosts on a
    // ring of 2, two hosts get no point.
    #[test]
    fn envoy_small_fractional_scale() {
        let r = RingHash::build(&hosts(&[90, 91, 92, 93], &[]), 2, 2);
        assert_eq!(r.len(), 2);
        let c = counts(&r, 4);
        assert_eq!((c.iter().min(), c.iter().max()), (Some(&0), Some(&1)));
        let hits = sweep(&r, 1024, 4);
        assert_eq!(hits.iter().filter(|&&h| h == 0).count(), 2);
        assert_eq!(hits.iter().sum::<u32>(), 1024);
    }

    // TEST_P(RingHashLoadBalancerTest, LargeFractionalScale).
    #[test]
    fn envoy_large_fractional_scale() {
        let r = RingHash::build(&hosts(&[90, 91], &[]), 1023, 1023);
        assert_eq!(r.len(), 1023);
        let c = counts(&r, 2);
        assert_eq!((c.iter().min(), c.iter().max()), (Some(&511), Some(&512)));
        assert_eq!(sweep(&r, 1023, 2), [526, 497]);
    }

    // TEST_P(RingHashLoadBalancerTest, LopsidedWeightSmallScale). Envoy
    // gets its weights from localities 127:1 (host :0 alone in the first,
    // :1..:1023 in the second); host weights 127*1023 and 1 give the very
    // same doubles (127/128 exactly, and 1/(128*1023) correctly rounded).
    #[test]
    fn envoy_lopsided_weight_small_scale() {
        let members: Vec<RingMember> = (0..1024u32)
            .map(|i| RingMember {
                name: format!("127.0.0.1:{i}"),
                weight: if i == 0 { 127 * 1023 } else { 1 },
            })
            .collect();
        let r = RingHash::build(&members, 1024, 1024);
        assert_eq!(r.len(), 1024);
        let c = counts(&r, 1024);
        assert_eq!(c[0], 1016);
        assert_eq!(c.iter().min(), Some(&0));
        for (h, want) in [
            (11664790346325243808, 1),
            (15894554872961148518, 128),
            (13958138884277627155, 256),
            (15803774069438192949, 384),
            (3829253010855396576, 512),
            (17918147347826565154, 640),
            (6442769608292299103, 768),
            (5881074926069334434, 896),
        ] {
            assert_eq!(r.pick_hash(h), want, "hash {h}");
        }
    }

    #[test]
    fn default_min_ring_size_bounds_the_ring() {
        let r = RingHash::build(&hosts(&[1, 2, 3], &[1, 3, 1]), 1024, DEFAULT_MAX_RING_SIZE);
        // The 1/5 share gets ceil(1024 / 5) = 205 points; scale 1025.
        assert_eq!(counts(&r, 3), [205, 615, 205]);
        // max_ring_size caps it.
        let r = RingHash::build(&hosts(&[1, 2, 3], &[1, 3, 1]), 1024, 100);
        assert_eq!(r.len(), 100);
    }

    #[test]
    fn zero_weight_members_and_empty_rings() {
        let r = RingHash::build(&hosts(&[90, 91], &[0, 1]), 12, DEFAULT_MAX_RING_SIZE);
        assert_eq!(counts(&r, 2), [0, 12]);
        assert_eq!(r.pick(b"anything"), 1);
        let empty = RingHash::build(&[], 12, DEFAULT_MAX_RING_SIZE);
        assert!(empty.is_empty());
        assert_eq!(empty.pick(b"k"), 0);
    }

    #[test]
    fn pick_hashes_the_key_with_envoy_murmur2() {
        let r = RingHash::build(&hosts(&PORTS_90_95, &[]), 12, DEFAULT_MAX_RING_SIZE);
        for k in [&b"foo"[..], b"bar", b"", b"{user1000}"] {
            assert_eq!(r.pick(k), r.pick_hash(envoy_murmur2(k)));
        }
        // murmur2("foo") = 9631199822919835226 lies between :93's point
        // 7700377290971790572 and :95's 13144177310400110813 -> :95.
        assert_eq!(r.pick(b"foo"), 5);
    }

    #[test]
    fn decimal_suffixes() {
        for n in [0u64, 7, 10, 99, 1000, u64::MAX] {
            let mut v = b"x_".to_vec();
            push_decimal(&mut v, n);
            assert_eq!(v, format!("x_{n}").into_bytes());
        }
    }
}
