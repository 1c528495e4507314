//! The hash functions placement depends on, bit-exact with the proxies
//! keyway stands in for, one file per family:
//!
//! * `envoy`: Envoy's `MurmurHash::murmurHash2` (libstdc++'s 64-bit
//!   `_Hash_bytes`), which redis_proxy applies to every key: ring_hash and
//!   maglev look keys up by it (and ring_hash can place points by it).
//! * `xxhash`: XXH64, which places ring_hash's points and maglev's
//!   permutations.
//! * `md5`: MD5, which places ketama's points.
//! * `twemproxy`: twemproxy 0.5.0's twelve key hashes of its `hash:`
//!   setting ([`KetamaHash`]), which ketama applies to every key, with the
//!   C behaviour they depend on kept: on x86 `char` is signed, so wherever
//!   twemproxy widens a key byte through `char`, a byte >= 0x80 is
//!   sign-extended (fnv*, one_at_a_time, one byte of hsieh); `fnv1a_64`
//!   truncates its 64-bit constants to 32 bits; `crc16` keeps a 32-bit
//!   accumulator it never masks.
//! * `crc16`: CRC-16/XMODEM, Redis Cluster's key slots; its table also
//!   serves twemproxy's `crc16`.
//!
//! `bytes` holds the little-endian readers the families share. MD5 and
//! XXH64 are implemented here (no crates for them); the unit tests pin
//! them to published vectors.

mod bytes;
mod crc16;
mod envoy;
mod md5;
mod twemproxy;
mod xxhash;

pub use crc16::crc16;
pub use envoy::{envoy_murmur2, murmur2_64_seed, ENVOY_STD_HASH_SEED};
pub use md5::md5;
pub use twemproxy::{lookup3_hashlittle, KetamaHash};
pub use xxhash::xxhash64;

/// Bytes `i * 37 + 11` (mod 256): binary input for the long vectors.
#[cfg(test)]
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 37 + 11) as u8).collect()
}
