//! Where a key goes: hashtag → hash → ring → endpoint.
pub mod continuum;
pub mod hash;
pub mod hashtag;
pub mod ketama;
pub mod maglev;
pub mod ring;
pub mod ring_hash;

/// Test members `127.0.0.1:<port>`, weights as given (1 past the end).
#[cfg(test)]
pub(crate) fn test_members(ports: &[u16], weights: &[u32]) -> Vec<RingMember> {
    ports
        .iter()
        .zip(weights.iter().chain(std::iter::repeat(&1)))
        .map(|(p, &w)| RingMember {
            name: format!("127.0.0.1:{p}"),
            weight: w,
        })
        .collect()
}

/// What a ring is built from: the name each policy hashes for an endpoint
/// (`"host:port"`, as Envoy and twemproxy write it) and its weight.
#[derive(Debug, Clone)]
pub struct RingMember {
    pub name: String,
    pub weight: u32,
}
