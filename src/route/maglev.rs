//! Envoy's MAGLEV load balancer (`MaglevTable`), as its redis_proxy uses it.
//!
//! Building: every endpoint gets a permutation of the table's slots,
//! starting at `xxHash64(name, 0) % size` and stepping by
//! `xxHash64(name, 1) % (size - 1) + 1` (size is prime, so it visits every
//! slot). Endpoints take turns, in ascending byte order of their names
//! (Envoy >= 1.27 sorts them, so the table does not depend on the order
//! endpoints arrive in), each claiming the next free slot of its
//! permutation. Weights thin the turns: on round `r` (from 1) an endpoint
//! of normalized weight `w` plays only if `r * w >= target`, and each play
//! raises its `target` by the largest normalized weight, so the heaviest
//! endpoint plays every round and one of a third its weight every third.
//!
//! Lookup: `table[envoy_murmur2(key) % size]`.
//!
//! Envoy's two table layouts (the "original" one of host pointers and the
//! "compact" one of bit-packed host indices, picked by size) fill slots by
//! the very same loop, so they place every key alike; so does the
//! degenerate single-host table of recent versions.

use super::hash::{envoy_murmur2, xxhash64};
use super::RingMember;

/// Envoy's default `table_size` (a prime).
pub const DEFAULT_TABLE_SIZE: u64 = 65537;

#[derive(Debug)]
pub struct Maglev {
    /// Slot -> member index.
    table: Vec<u32>,
}

/// The order endpoints take turns in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// By name (Envoy 1.27 and later, envoyproxy/envoy#28055).
    ByName,
    /// As given (earlier Envoy: the cluster's host order).
    AsListed,
}

struct Builder {
    member: u32,
    offset: u64,
    skip: u64,
    weight: f64,
    target: f64,
    next: u64,
}

impl Maglev {
    /// Envoy's table (1.27 and later). A member's `name` must be what Envoy
    /// hashes for the host: `"ip:port"` as Envoy prints the address, unless
    /// `use_hostname_for_hashing` or an `envoy.lb` `hash_key` says otherwise.
    ///
    /// Envoy refuses a `table_size` that is not prime (check with
    /// [`is_prime`] when validating config); here one is rounded up to the
    /// next prime so that building always ends. Envoy also refuses weight
    /// 0; here such members get no slot (as if absent).
    pub fn build(members: &[RingMember], table_size: u64) -> Maglev {
        Maglev::build_in(members, table_size, Order::ByName)
    }

    /// The table as Envoy built it before 1.27, with endpoints taking turns
    /// in the order given rather than sorted by name. For compatibility
    /// with an older Envoy whose cluster lists hosts in this order.
    pub fn build_in_listed_order(members: &[RingMember], table_size: u64) -> Maglev {
        Maglev::build_in(members, table_size, Order::AsListed)
    }

    fn build_in(members: &[RingMember], table_size: u64, order: Order) -> Maglev {
        let size = next_prime(table_size);
        let sum: u64 = members.iter().map(|m| m.weight as u64).sum();
        if sum == 0 {
            return Maglev { table: Vec::new() };
        }
        let mut live: Vec<usize> = (0..members.len())
            .filter(|&i| members[i].weight > 0)
            .collect();
        if order == Order::ByName {
            // Stable: equal names (one address listed twice) keep their
            // order; Envoy would break that tie by pointer, arbitrarily.
            live.sort_by(|&a, &b| members[a].name.as_bytes().cmp(members[b].name.as_bytes()));
        }
        let mut entries: Vec<Builder> = live
            .iter()
            .map(|&i| {
                let name = members[i].name.as_bytes();
                Builder {
                    member: i as u32,
                    offset: xxhash64(name, 0) % size,
                    skip: xxhash64(name, 1) % (size - 1) + 1,
                    weight: members[i].weight as f64 / sum as f64,
                    target: 0.0,
                    next: 0,
                }
            })
            .collect();
        let max_weight = entries.iter().map(|e| e.weight).fold(0.0, f64::max);

        const FREE: u32 = u32::MAX;
        let mut table = vec![FREE; size as usize];
        let mut filled: u64 = 0;
        let mut round: u32 = 1;
        while filled < size {
            for e in entries.iter_mut() {
                if filled == size {
                    break;
                }
                if (round as f64) * e.weight < e.target {
                    continue;
                }
                e.target += max_weight;
                // offset, skip and next are all below size <= 2^32 or so,
                // so offset + skip * next cannot overflow a u64.
                let mut slot = (e.offset + e.skip * e.next) % size;
                while table[slot as usize] != FREE {
                    e.next += 1;
                    slot = (e.offset + e.skip * e.next) % size;
                }
                table[slot as usize] = e.member;
                e.next += 1;
                filled += 1;
            }
            round += 1;
        }
        Maglev { table }
    }

    /// The member owning `key` (already reduced to its hashtag). An empty
    /// table (no member with a weight) answers 0.
    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(envoy_murmur2(key))
    }

    #[inline]
    pub fn pick_hash(&self, h: u64) -> usize {
        if self.table.is_empty() {
            return 0;
        }
        self.table[(h % self.table.len() as u64) as usize] as usize
    }

    /// Slot -> member index; its length is the (prime) table size.
    pub fn table(&self) -> &[u32] {
        &self.table
    }
}

/// Whether `n` is prime, as Envoy requires of `table_size`.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let mut d = 5u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

fn next_prime(n: u64) -> u64 {
    let mut p = n.max(2);
    while !is_prime(p) {
        p += 1;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::route::test_members as hosts;

    fn entries_per_member(t: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &m in t.table() {
            c[m as usize] += 1;
        }
        c
    }

    /// Envoy's tests look up hashes 0..3*size and expect `want[h % size]`.
    fn assert_assignments(t: &Maglev, want: &[usize]) {
        assert_eq!(t.table().len(), want.len());
        for h in 0..3 * want.len() as u64 {
            assert_eq!(t.pick_hash(h), want[h as usize % want.len()], "hash {h}");
        }
    }

    const PORTS_90_95: [u16; 6] = [90, 91, 92, 93, 94, 95];

    // maglev_lb_test.cc: TEST_F(MaglevLoadBalancerTest, Basic) (and the
    // table of BasicWithRetryHostPredicate: hash 10 -> slot 3 -> :91).
    #[test]
    fn envoy_basic() {
        let t = Maglev::build(&hosts(&PORTS_90_95, &[]), 7);
        assert_assignments(&t, &[2, 4, 0, 1, 5, 0, 3]);
        let c = entries_per_member(&t, 6);
        assert_eq!((c.iter().min(), c.iter().max()), (Some(&1), Some(&2)));
        assert_eq!(t.pick_hash(10), 1);
    }

    // TEST_F(MaglevLoadBalancerTest, BasicWithHostName) (also the table of
    // BasicWithMetadataHashKey and BasicWithBoundedLoad).
    #[test]
    fn envoy_basic_with_hostname() {
        let members: Vec<RingMember> = ["90", "91", "92", "93", "94", "95"]
            .iter()
            .map(|n| RingMember {
                name: n.to_string(),
                weight: 1,
            })
            .collect();
        let t = Maglev::build(&members, 7);
        assert_assignments(&t, &[2, 5, 0, 3, 4, 1, 0]);
    }

    // TEST_F(MaglevLoadBalancerTest, BasicStability): shuffled hosts, same
    // host per slot.
    #[test]
    fn envoy_basic_stability() {
        let m = hosts(&PORTS_90_95, &[]);
        let shuffled: Vec<RingMember> = [3, 0, 5, 1, 4, 2].iter().map(|&i| m[i].clone()).collect();
        let (a, b) = (Maglev::build(&m, 7), Maglev::build(&shuffled, 7));
        for h in 0..7 {
            assert_eq!(m[a.pick_hash(h)].name, shuffled[b.pick_hash(h)].name);
        }
        let big = (
            Maglev::build(&m, DEFAULT_TABLE_SIZE),
            Maglev::build(&shuffled, DEFAULT_TABLE_SIZE),
        );
        for h in 0..DEFAULT_TABLE_SIZE {
            assert_eq!(
                m[big.0.pick_hash(h)].name,
                shuffled[big.1.pick_hash(h)].name
            );
        }
    }

    // TEST_F(MaglevLoadBalancerTest, Weighted).
    #[test]
    fn envoy_weighted() {
        let t = Maglev::build(&hosts(&[90, 91], &[1, 2]), 17);
        assert_assignments(&t, &[1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]);
        assert_eq!(entries_per_member(&t, 2), [6, 11]);
    }

    // TEST_F(MaglevLoadBalancerTest, SingleHost) and WeightedSingleHost.
    #[test]
    fn envoy_single_host() {
        for (size, w) in [(7, 1), (17, 7)] {
            let t = Maglev::build(&hosts(&[90], &[w]), size);
            assert!((0..size).all(|h| t.pick_hash(h) == 0));
        }
    }

    // TEST_F(MaglevLoadBalancerTest, LocalityWeightedSameLocalityWeights)
    // and LocalityWeightedGlobalPanic: localities 1:1, one host each,
    // normalize to 0.5 and 0.5, as equal host weights do.
    #[test]
    fn envoy_locality_weighted_same_weights() {
        let t = Maglev::build(&hosts(&[90, 91], &[1, 1]), 17);
        assert_assignments(&t, &[1, 0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1]);
        assert_eq!(entries_per_member(&t, 2), [9, 8]);
    }

    // TEST_F(MaglevLoadBalancerTest, LocalityWeightedDifferentLocalityWeights):
    // localities 8:0:2 leave :90 at 0.8 and :91 at 0.2 (:92's locality
    // weighs 0): the doubles host weights 4:1 give.
    #[test]
    fn envoy_locality_weighted_different_weights() {
        let t = Maglev::build(&hosts(&[90, 91], &[4, 1]), 17);
        assert_assignments(&t, &[1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(entries_per_member(&t, 2), [13, 4]);
    }

    // TEST_F(MaglevLoadBalancerTest, LocalityWeightedLopsided): localities
    // 127:1, i.e. host weights 127*1023 and 1 (the same doubles).
    #[test]
    fn envoy_locality_weighted_lopsided() {
        let members: Vec<RingMember> = (0..1024u32)
            .map(|i| RingMember {
                name: format!("127.0.0.1:{i}"),
                weight: if i == 0 { 127 * 1023 } else { 1 },
            })
            .collect();
        let t = Maglev::build(&members, DEFAULT_TABLE_SIZE);
        let c = entries_per_member(&t, 1024);
        assert!(c[1..].iter().all(|&n| n == 1));
        assert_eq!(c[0], DEFAULT_TABLE_SIZE as usize - 1023);
    }

    #[test]
    fn listed_order_differs_only_in_turn_order() {
        let m = hosts(&PORTS_90_95, &[]);
        // Already sorted: both orders agree.
        let (a, b) = (Maglev::build(&m, 7), Maglev::build_in_listed_order(&m, 7));
        assert_eq!(a.table(), b.table());
        // Reversed: the listed-order table follows the new turn order, yet
        // stays full and balanced.
        let rev: Vec<RingMember> = m.iter().rev().cloned().collect();
        let t = Maglev::build_in_listed_order(&rev, DEFAULT_TABLE_SIZE);
        for n in entries_per_member(&t, 6) {
            assert!((10922..=10923).contains(&n), "{n}");
        }
    }

    #[test]
    fn default_table_is_full_and_balanced() {
        let t = Maglev::build(&hosts(&PORTS_90_95, &[]), DEFAULT_TABLE_SIZE);
        assert_eq!(t.table().len(), DEFAULT_TABLE_SIZE as usize);
        for n in entries_per_member(&t, 6) {
            assert!((10922..=10923).contains(&n), "{n}");
        }
    }

    #[test]
    fn primes_and_degenerate_inputs() {
        assert!(is_prime(2) && is_prime(7) && is_prime(65537) && is_prime(5_000_011));
        assert!(!is_prime(0) && !is_prime(1) && !is_prime(8) && !is_prime(65536));
        assert!(!is_prime(5_000_013 * 3));
        // A non-prime size is rounded up, so building ends.
        assert_eq!(Maglev::build(&hosts(&[90, 91], &[]), 8).table().len(), 11);
        let empty = Maglev::build(&[], 7);
        assert_eq!(empty.pick(b"k"), 0);
        let zero = Maglev::build(&hosts(&[90, 91], &[0, 3]), 7);
        assert!(zero.table().iter().all(|&m| m == 1));
    }

    #[test]
    fn pick_hashes_the_key_with_envoy_murmur2() {
        let t = Maglev::build(&hosts(&PORTS_90_95, &[]), 7);
        // murmur2("foo") = 9631199822919835226, % 7 = 3 -> :91.
        assert_eq!(envoy_murmur2(b"foo") % 7, 3);
        assert_eq!(t.pick(b"foo"), 1);
    }
}
