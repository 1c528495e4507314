//! A consistent-hash ring's points in ascending order, and the lookup both
//! ring_hash and ketama make: a hash belongs to the first point at or
//! above it, wrapping to the first point. A binary search over a few
//! thousand points costs a dozen unpredictable branches per request, so
//! the points are also indexed by each hash's top bits (one to two buckets
//! per point, built once with the ring): a lookup reads its bucket's bounds
//! and searches the few points inside. Most buckets answer alone: when every
//! hash in a bucket belongs to one member, the bucket names it, and the
//! lookup is one load. The answer is exactly the binary search's, so
//! placement does not change.

/// A point's hash: 32 bits (ketama) or 64 (ring_hash).
pub trait Point: Copy + Ord {
    /// The top `bits` bits (at most 31), as a bucket number.
    fn top(self, bits: u32) -> usize;
}

impl Point for u32 {
    #[inline]
    fn top(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
}

impl Point for u64 {
    #[inline]
    fn top(self, bits: u32) -> usize {
        (self >> (64 - bits)) as usize
    }
}

/// The most index bits: 2^20 buckets (8 MiB) for rings of over half a
/// million points.
const MAX_BITS: u32 = 20;

/// A bucket whose hashes belong to more than one member.
const MIXED: u32 = u32::MAX;

/// One bucket of the index: where its points start, and its member when it
/// has only one (side by side, so the common lookup touches one line).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// The first point of this bucket or of a later one.
    start: u32,
    /// The member owning every hash of the bucket, or `MIXED`.
    sole: u32,
}

#[derive(Debug)]
pub struct Continuum<H> {
    /// Point hashes, ascending.
    hashes: Vec<H>,
    /// `owners[i]`: the member index owning `hashes[i]`.
    owners: Vec<u32>,
    /// Index bits: bucket `b` holds the hashes whose top `bits` bits are b.
    bits: u32,
    /// 2^bits buckets and one more, whose `start` is the number of points.
    buckets: Vec<Bucket>,
}

impl<H: Point> Continuum<H> {
    /// The ring of `points` (hash, member index), already sorted by hash
    /// (equal hashes in the order the policy breaks ties).
    pub fn new(points: Vec<(H, u32)>) -> Continuum<H> {
        debug_assert!(points.windows(2).all(|w| w[0].0 <= w[1].0));
        let n = points.len();
        // One to two buckets per point.
        let bits = (usize::BITS - n.leading_zeros()).clamp(1, MAX_BITS);
        let count = 1usize << bits;
        let mut starts = Vec::with_capacity(count + 1);
        let mut i = 0;
        for b in 0..count {
            while i < n && points[i].0.top(bits) < b {
                i += 1;
            }
            starts.push(i);
        }
        starts.push(n);
        let owners: Vec<u32> = points.iter().map(|p| p.1).collect();
        // A hash of bucket b belongs to one of its points or, above them
        // all, to the next point after them.
        let buckets = starts
            .windows(2)
            .map(|w| {
                let first = owner_at(&owners, w[0]);
                let one = (w[0]..=w[1]).all(|i| owner_at(&owners, i) == first);
                Bucket {
                    start: w[0] as u32,
                    sole: if one { first as u32 } else { MIXED },
                }
            })
            .chain([Bucket {
                start: n as u32,
                sole: MIXED,
            }])
            .collect();
        Continuum {
            hashes: points.iter().map(|p| p.0).collect(),
            owners,
            bits,
            buckets,
        }
    }

    /// The member owning hash `h`: the first point >= `h`, else the first
    /// point. An empty ring answers 0.
    #[inline]
    pub fn owner_of(&self, h: H) -> usize {
        let b = h.top(self.bits);
        let Some(&bucket) = self.buckets.get(b) else {
            return 0;
        };
        if bucket.sole != MIXED {
            return bucket.sole as usize;
        }
        // Points of earlier buckets are below `h`, of later ones above: the
        // first point >= h is in this bucket or is the next bucket's first.
        // (A bucket is searched, not scanned: points bunched in one bucket
        // cost a binary search over the bunch, never a walk.)
        let lo = bucket.start as usize;
        let hi = self
            .buckets
            .get(b + 1)
            .map_or(self.hashes.len(), |n| n.start as usize);
        let inside = self.hashes.get(lo..hi).unwrap_or_default();
        owner_at(&self.owners, lo + inside.partition_point(|&p| p < h))
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// (point hash, member index), ascending by hash.
    pub fn points(&self) -> impl Iterator<Item = (H, usize)> + '_ {
        self.hashes
            .iter()
            .zip(&self.owners)
            .map(|(&h, &o)| (h, o as usize))
    }
}

/// The owner of point `i`, where the point past the last is the first
/// (the ring wraps); an empty ring's is 0.
#[inline]
fn owner_at(owners: &[u32], i: usize) -> usize {
    let i = if i == owners.len() { 0 } else { i };
    owners.get(i).map_or(0, |&o| o as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup the index replaces.
    fn searched<H: Point>(c: &Continuum<H>, h: H) -> usize {
        let i = c.hashes.partition_point(|&p| p < h);
        let i = if i == c.hashes.len() { 0 } else { i };
        c.owners.get(i).map_or(0, |&o| o as usize)
    }

    /// A small xorshift: the same pseudo-random hashes every run.
    fn stream(seed: u64) -> impl FnMut() -> u64 {
        let mut rng = crate::testing::Rng(seed);
        move || rng.number()
    }

    fn ring<H: Point>(n: usize, members: u32, mut next: impl FnMut() -> H) -> Continuum<H> {
        let mut points: Vec<(H, u32)> = (0..n).map(|i| (next(), i as u32 % members)).collect();
        points.sort_by_key(|p| p.0);
        Continuum::new(points)
    }

    #[test]
    fn the_index_finds_the_point_the_binary_search_finds() {
        let mut next = stream(0x9E37_79B9_7F4A_7C15);
        // Two members leave most buckets to one of them (answered by the
        // bucket alone); seven leave more buckets mixed (searched).
        for (n, members) in [0, 1, 2, 3, 160, 800, 1024, 5000, 70_000]
            .into_iter()
            .flat_map(|n| [(n, 2), (n, 7)])
        {
            let r64 = ring(n, members, &mut next);
            let r32 = ring(n, members, || next() as u32);
            for _ in 0..20_000 {
                let h = next();
                assert_eq!(r64.owner_of(h), searched(&r64, h), "n={n} h={h}");
                let h = h as u32;
                assert_eq!(r32.owner_of(h), searched(&r32, h), "n={n} h={h}");
            }
            // The edges: each point itself, one off each side, the extremes.
            for (p, _) in r64.points().collect::<Vec<_>>() {
                for h in [p.wrapping_sub(1), p, p.wrapping_add(1), 0, u64::MAX] {
                    assert_eq!(r64.owner_of(h), searched(&r64, h), "n={n} h={h}");
                }
            }
            for (p, _) in r32.points().collect::<Vec<_>>() {
                for h in [p.wrapping_sub(1), p, p.wrapping_add(1), 0, u32::MAX] {
                    assert_eq!(r32.owner_of(h), searched(&r32, h), "n={n} h={h}");
                }
            }
        }
    }

    #[test]
    fn equal_hashes_keep_the_first_point_in_order() {
        let c = Continuum::new(vec![(5u32, 3), (5, 1), (9, 2)]);
        assert_eq!(c.owner_of(5), 3);
        assert_eq!(c.owner_of(4), 3);
        assert_eq!(c.owner_of(6), 2);
        assert_eq!(c.owner_of(10), 3);
    }

    #[test]
    fn the_index_has_one_to_two_buckets_per_point() {
        let c = ring(800, 7, stream(7));
        assert_eq!(c.bits, 10);
        assert_eq!(c.buckets.len(), 1025);
        // With two members, most buckets name their member.
        let c = ring(800, 2, stream(7));
        let sole = c.buckets.iter().filter(|b| b.sole != MIXED).count();
        assert!(sole > 1024 / 2, "{sole} of 1024 buckets");
        assert_eq!(Continuum::<u64>::new(Vec::new()).owner_of(42), 0);
    }
}
