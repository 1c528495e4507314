//! A shard: one primary endpoint and its replicas, the unit a ring or a
//! slot map places keys on.

/// A shard's endpoints, as global endpoint indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub primary: usize,
    pub replicas: Vec<usize>,
}
