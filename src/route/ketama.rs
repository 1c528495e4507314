//! twemproxy's ketama continuum (nutcracker 0.5.0): 160 points per server
//! scaled by weight with its single-precision arithmetic, four points per
//! MD5 of "name-N", sorted; a key's hash picks the first point at or after
//! it, wrapping around.
//!
//! The member name is what twemproxy hashes for a server: the name given
//! after its weight in the config ("127.0.0.1:7001:1 server1"), else
//! "host:port" as written.

use super::hash::{md5, KetamaHash};
use super::RingMember;

const POINTS_PER_SERVER: f32 = 160.0;
const POINTS_PER_HASH: u32 = 4;

#[derive(Debug)]
pub struct Ketama {
    hash: KetamaHash,
    /// (point, member index), sorted by point.
    continuum: Vec<(u32, u32)>,
}

impl Ketama {
    pub fn build(members: &[RingMember], hash: KetamaHash) -> Ketama {
        let total: u32 = members.iter().map(|m| m.weight).sum();
        let live = members.len() as f32;
        let mut continuum = Vec::new();
        for (idx, m) in members.iter().enumerate() {
            // Single precision on purpose: it decides how many points a
            // weighted server gets, exactly as twemproxy computes it.
            let pct = m.weight as f32 / total as f32;
            let points =
                ((pct * POINTS_PER_SERVER / 4.0 * live + 0.000_000_000_1f32).floor() * 4.0) as u32;
            for p in 0..points / POINTS_PER_HASH {
                let d = md5(format!("{}-{}", m.name, p).as_bytes());
                for x in 0..POINTS_PER_HASH as usize {
                    let v =
                        u32::from_le_bytes([d[x * 4], d[x * 4 + 1], d[x * 4 + 2], d[x * 4 + 3]]);
                    continuum.push((v, idx as u32));
                }
            }
        }
        continuum.sort_by_key(|e| e.0);
        Ketama { hash, continuum }
    }

    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        self.pick_hash(self.hash.hash(key))
    }

    pub fn pick_hash(&self, h: u32) -> usize {
        if self.continuum.is_empty() {
            return 0;
        }
        let i = self.continuum.partition_point(|e| e.0 < h);
        let i = if i == self.continuum.len() { 0 } else { i };
        self.continuum[i].1 as usize
    }

    pub fn points(&self) -> &[(u32, u32)] {
        &self.continuum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(weights: &[u32]) -> Vec<RingMember> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| RingMember {
                name: format!("127.0.0.1:{}", 7001 + i),
                weight: w,
            })
            .collect()
    }

    #[test]
    fn points_per_server_follow_weights() {
        let k = Ketama::build(&members(&[1, 1, 2, 1]), KetamaHash::Fnv1a64);
        let count = |i| k.points().iter().filter(|p| p.1 == i).count();
        // 160 * 4 servers * share, rounded down to a multiple of 4.
        assert_eq!(
            (count(0), count(1), count(2), count(3)),
            (128, 128, 256, 128)
        );
        let k = Ketama::build(&members(&[1, 1, 1]), KetamaHash::Fnv1a64);
        assert_eq!(k.points().len(), 480);
    }

    #[test]
    fn first_point_is_md5_of_name_dash_zero() {
        let k = Ketama::build(&members(&[1]), KetamaHash::Md5);
        let d = md5(b"127.0.0.1:7001-0");
        let v = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        assert!(k.points().iter().any(|p| p.0 == v));
        assert_eq!(k.pick_hash(v), 0);
    }
}
