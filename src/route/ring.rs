//! One immutable, precomputed ring per cluster, whatever its lb policy.
//! Built once on the control thread, shared by every core through
//! `Arc<Topology>`, looked up with a pure function of the (hashtagged) key.

pub use super::RingMember;
use super::{ketama::Ketama, maglev::Maglev, ring_hash::RingHash};

#[derive(Debug)]
pub enum Ring {
    RingHash(RingHash),
    Maglev(Maglev),
    Ketama(Ketama),
}

impl Ring {
    /// Index into the cluster's endpoint list of the endpoint owning `key`.
    /// `key` is already reduced to its hashtag when hashtags are enabled.
    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        match self {
            Ring::RingHash(r) => r.pick(key),
            Ring::Maglev(m) => m.pick(key),
            Ring::Ketama(k) => k.pick(key),
        }
    }
}
