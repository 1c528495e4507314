//! Redis Cluster's key space: 16384 slots, a key's slot is CRC16/XMODEM of
//! its hashtag (Redis's rule) modulo 16384; and the slot map, the
//! immutable picture of which shard (primary and replicas) serves each
//! slot. The control side builds a map from CLUSTER SLOTS and hands every
//! core its own `Arc`; a core patches its copy on MOVED until the next one.

use super::shard::Shard;
use crate::route::hash::crc16;
use crate::route::hashtag::hashtag;
use std::net::SocketAddr;
use std::time::SystemTime;

pub const SLOTS: usize = 16384;
/// A slot no shard serves.
pub const UNSERVED: u16 = u16::MAX;

/// The slot of `key`, hashtag rule included.
#[inline]
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hashtag(key)) & (SLOTS as u16 - 1)
}

/// One node of a cluster as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Global endpoint index (stable for the life of the process).
    pub endpoint: usize,
    /// `host:port` as the cluster reports it (hostname kept if given).
    pub label: String,
    pub addr: SocketAddr,
    /// The name a TLS connection presents (SNI) and verifies.
    pub tls_name: String,
}

#[derive(Debug, Clone)]
pub struct SlotMap {
    pub cluster: usize,
    /// The configuration generation whose endpoint numbers it uses: a core
    /// serving another one leaves it alone.
    pub generation: u64,
    /// Grows with every change the control side publishes.
    pub version: u64,
    /// Per slot, an index into `shards` or UNSERVED.
    pub slots: Vec<u16>,
    pub shards: Vec<Shard>,
    pub nodes: Vec<Node>,
    pub refreshed: SystemTime,
}

/// The slot maps a generation starts with, and why the clusters without
/// one have none.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub slot_maps: Vec<Option<std::sync::Arc<SlotMap>>>,
    pub errors: Vec<Option<std::sync::Arc<str>>>,
}

impl SlotMap {
    pub fn empty(cluster: usize) -> SlotMap {
        SlotMap {
            cluster,
            generation: 0,
            version: 0,
            slots: vec![UNSERVED; SLOTS],
            shards: Vec::new(),
            nodes: Vec::new(),
            refreshed: SystemTime::now(),
        }
    }

    #[inline]
    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        self.shards.get(*self.slots.get(slot as usize)? as usize)
    }

    /// The endpoint of the node a redirection names (`host:port`, as the
    /// cluster wrote it, or the address it resolves to).
    pub fn endpoint_of(&self, target: &str) -> Option<usize> {
        let addr: Option<SocketAddr> = target.parse().ok();
        self.nodes
            .iter()
            .find(|n| n.label == target || Some(n.addr) == addr)
            .map(|n| n.endpoint)
    }

    /// After `MOVED slot target`: `endpoint` now serves `slot` as primary.
    pub fn moved(&mut self, slot: u16, endpoint: usize) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        let shard = match self.shards.iter().position(|s| s.primary == endpoint) {
            Some(i) => i,
            None => {
                self.shards.push(Shard {
                    primary: endpoint,
                    replicas: Vec::new(),
                });
                self.shards.len() - 1
            }
        };
        *entry = shard as u16;
    }

    /// Contiguous runs of slots served by one shard: (first, last, shard).
    pub fn ranges(&self) -> Vec<(u16, u16, u16)> {
        let mut out: Vec<(u16, u16, u16)> = Vec::new();
        for (slot, &shard) in self.slots.iter().enumerate() {
            match out.last_mut() {
                Some(r) if r.2 == shard && r.1 as usize + 1 == slot => r.1 = slot as u16,
                _ => out.push((slot as u16, slot as u16, shard)),
            }
        }
        out.retain(|r| r.2 != UNSERVED);
        out
    }

    /// Same slots, shards and nodes (what a refresh compares).
    pub fn same_layout(&self, other: &SlotMap) -> bool {
        self.slots == other.slots && self.shards == other.shards && self.nodes == other.nodes
    }

    /// Slots no shard serves.
    pub fn unserved(&self) -> usize {
        self.slots.iter().filter(|&&s| s == UNSERVED).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_xmodem_check_value_and_redis_slots() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Values from `CLUSTER KEYSLOT` on a real server.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"a"), 15495);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
    }

    #[test]
    fn moved_patches_one_slot_and_ranges_follow() {
        let mut m = SlotMap::empty(0);
        m.shards = vec![
            Shard {
                primary: 1,
                replicas: vec![2],
            },
            Shard {
                primary: 3,
                replicas: vec![],
            },
        ];
        for s in 0..SLOTS {
            m.slots[s] = if s < 8192 { 0 } else { 1 };
        }
        m.moved(100, 3);
        assert_eq!(m.shard(100).unwrap().primary, 3);
        assert_eq!(m.shard(101).unwrap().primary, 1);
        m.moved(5, 9);
        assert_eq!(m.shard(5).unwrap().primary, 9);
        assert_eq!(
            m.ranges(),
            vec![
                (0, 4, 0),
                (5, 5, 2),
                (6, 99, 0),
                (100, 100, 1),
                (101, 8191, 0),
                (8192, 16383, 1)
            ]
        );
    }
}
