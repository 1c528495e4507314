//! Envoy's RING_HASH load balancer, as its redis_proxy uses it: each host
//! gets points `xxHash64("host:port_i")` in proportion to its weight (the
//! least-weighted host gets ceil(weight share * min_ring_size) points), the
//! ring is sorted, and a key's murmur2 hash picks the first point at or
//! after it, wrapping around.

use super::hash::{envoy_murmur2, xxhash64};
use super::RingMember;

pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct RingHash {
    /// (point, member index), sorted by point.
    ring: Vec<(u64, u32)>,
}

impl RingHash {
    pub fn build(members: &[RingMember], min_ring_size: u64, max_ring_size: u64) -> RingHash {
        let total: f64 = members.iter().map(|m| m.weight as f64).sum();
        if members.is_empty() || total <= 0.0 {
            return RingHash { ring: Vec::new() };
        }
        let weights: Vec<f64> = members.iter().map(|m| m.weight as f64 / total).collect();
        let min_w = weights.iter().cloned().fold(f64::INFINITY, f64::min);
        let scale = ((min_w * min_ring_size as f64).ceil() / min_w).min(max_ring_size as f64);
        let mut ring = Vec::with_capacity(scale.ceil() as usize);
        // Running sums, so fractional shares add up across hosts as in Envoy.
        let (mut current, mut target) = (0.0f64, 0.0f64);
        let mut key = Vec::with_capacity(64);
        for (idx, (m, w)) in members.iter().zip(&weights).enumerate() {
            target += scale * w;
            let mut i: u64 = 0;
            while current < target {
                key.clear();
                key.extend_from_slice(m.name.as_bytes());
                key.push(b'_');
                key.extend_from_slice(i.to_string().as_bytes());
                ring.push((xxhash64(&key, 0), idx as u32));
                i += 1;
                current += 1.0;
            }
        }
        ring.sort_by_key(|e| e.0);
        RingHash { ring }
    }

    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(envoy_murmur2(key))
    }

    /// The member for hash `h`: ketama's binary search as Envoy ports it
    /// (signed bounds; falls back to the first point).
    pub fn pick_hash(&self, h: u64) -> usize {
        let n = self.ring.len() as i64;
        if n == 0 {
            return 0;
        }
        let (mut low, mut high) = (0i64, n);
        let mid = loop {
            let mid = (low + high) / 2;
            if mid == n {
                break 0;
            }
            let midval = self.ring[mid as usize].0;
            let before = if mid == 0 {
                0
            } else {
                self.ring[mid as usize - 1].0
            };
            if h <= midval && h > before {
                break mid;
            }
            if midval < h {
                low = mid + 1;
            } else {
                high = mid - 1;
            }
            if low > high {
                break 0;
            }
        };
        self.ring[mid as usize].1 as usize
    }

    pub fn points(&self) -> &[(u64, u32)] {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ports: std::ops::RangeInclusive<u16>) -> Vec<RingMember> {
        ports
            .map(|p| RingMember {
                name: format!("127.0.0.1:{p}"),
                weight: 1,
            })
            .collect()
    }

    // Envoy's ring_hash_lb_test.cc, "Basic" ring (hosts :90-:95, min ring 12).
    #[test]
    fn envoy_basic_ring() {
        let r = RingHash::build(&members(90..=95), 12, DEFAULT_MAX_RING_SIZE);
        let expect: [(u64, u16); 12] = [
            (833437586790550860, 94),
            (928266305478181108, 92),
            (1033482794131418490, 90),
            (3551244743356806947, 95),
            (3851675632748031481, 93),
            (5583722120771150861, 91),
            (6311230543546372928, 91),
            (7700377290971790572, 93),
            (13144177310400110813, 95),
            (13444792449719432967, 92),
            (15516499411664133160, 94),
            (16117243373044804889, 90),
        ];
        let got: Vec<(u64, u16)> = r
            .points()
            .iter()
            .map(|&(h, i)| (h, 90 + i as u16))
            .collect();
        assert_eq!(got, expect.to_vec());
        // Hash 0 and u64::MAX wrap to the first point (:94).
        assert_eq!(r.pick_hash(0), 4);
        assert_eq!(r.pick_hash(u64::MAX), 4);
        assert_eq!(r.pick_hash(833437586790550860), 4);
        assert_eq!(r.pick_hash(833437586790550861), 2);
        assert_eq!(r.pick_hash(16117243373044804889), 0);
    }

    #[test]
    fn weights_scale_points() {
        let mut m = members(1..=3);
        m[1].weight = 3;
        let r = RingHash::build(&m, 1024, DEFAULT_MAX_RING_SIZE);
        let count = |i| r.points().iter().filter(|p| p.1 == i).count();
        // min_ring_size bounds the whole ring: 1024 points at least, split 1:3:1.
        assert_eq!((count(0), count(1), count(2)), (205, 615, 205));
    }
}
