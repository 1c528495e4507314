//! Envoy's MAGLEV load balancer: a lookup table of a prime size filled by
//! each host's permutation (offset and skip from xxHash64 of "host:port"
//! with seeds 0 and 1), hosts taken in sorted order and as often as their
//! weight allows; a key's murmur2 hash modulo the size picks the entry.

use super::hash::{envoy_murmur2, xxhash64};
use super::RingMember;

pub const DEFAULT_TABLE_SIZE: u64 = 65537;

#[derive(Debug)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    pub fn build(members: &[RingMember], table_size: u64) -> Maglev {
        let total: f64 = members.iter().map(|m| m.weight as f64).sum();
        if members.is_empty() || total <= 0.0 || table_size < 2 {
            return Maglev {
                table: vec![0; table_size.max(1) as usize],
            };
        }
        // Envoy sorts hosts by the string it hashes, so the table does not
        // depend on the order endpoints are listed in.
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| members[a].name.cmp(&members[b].name));
        struct Entry {
            member: u32,
            offset: u64,
            skip: u64,
            weight: f64,
            target: f64,
            next: u64,
        }
        let mut entries: Vec<Entry> = order
            .iter()
            .map(|&i| {
                let name = members[i].name.as_bytes();
                Entry {
                    member: i as u32,
                    offset: xxhash64(name, 0) % table_size,
                    skip: xxhash64(name, 1) % (table_size - 1) + 1,
                    weight: members[i].weight as f64 / total,
                    target: 0.0,
                    next: 0,
                }
            })
            .collect();
        let max_w = entries.iter().map(|e| e.weight).fold(0.0, f64::max);
        const EMPTY: u32 = u32::MAX;
        let mut table = vec![EMPTY; table_size as usize];
        let mut filled: u64 = 0;
        let mut iteration: u32 = 1;
        while filled < table_size {
            for e in entries.iter_mut() {
                if filled >= table_size {
                    break;
                }
                if (iteration as f64) * e.weight < e.target {
                    continue;
                }
                e.target += max_w;
                let mut c = (e.offset + e.skip * e.next) % table_size;
                while table[c as usize] != EMPTY {
                    e.next += 1;
                    c = (e.offset + e.skip * e.next) % table_size;
                }
                table[c as usize] = e.member;
                e.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Maglev { table }
    }

    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(envoy_murmur2(key))
    }

    #[inline]
    pub fn pick_hash(&self, h: u64) -> usize {
        self.table[(h % self.table.len() as u64) as usize] as usize
    }

    pub fn table(&self) -> &[u32] {
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u16) -> Vec<RingMember> {
        (0..n)
            .map(|p| RingMember {
                name: format!("127.0.0.1:{}", 90 + p),
                weight: 1,
            })
            .collect()
    }

    #[test]
    fn table_is_full_and_balanced() {
        let t = Maglev::build(&members(6), DEFAULT_TABLE_SIZE);
        let mut counts = [0usize; 6];
        for &m in t.table() {
            counts[m as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 65537);
        for c in counts {
            assert!((10922..=10923).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn listing_order_does_not_matter() {
        let m = members(5);
        let mut rev = m.clone();
        rev.reverse();
        let (a, b) = (Maglev::build(&m, 65537), Maglev::build(&rev, 65537));
        for h in (0..100_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
            assert_eq!(m[a.pick_hash(h)].name, rev[b.pick_hash(h)].name);
        }
    }

    #[test]
    fn weights_share_the_table() {
        let mut m = members(2);
        m[0].weight = 3;
        let t = Maglev::build(&m, 65537);
        let first = t.table().iter().filter(|&&x| x == 0).count();
        assert!((49000..=49300).contains(&first), "{first}");
    }
}
