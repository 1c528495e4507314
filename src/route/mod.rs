//! Where a key goes: hashtag → hash → ring → endpoint.
pub mod hash;
pub mod hashtag;
pub mod ketama;
pub mod maglev;
pub mod ring;
pub mod ring_hash;

/// What a ring is built from: the name each policy hashes for an endpoint
/// (`"host:port"`, as Envoy and twemproxy write it) and its weight.
#[derive(Debug, Clone)]
pub struct RingMember {
    pub name: String,
    pub weight: u32,
}
