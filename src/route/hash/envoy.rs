//! Envoy's `MurmurHash::murmurHash2` (libstdc++'s 64-bit `_Hash_bytes`):
//! the hash redis_proxy gives every key, for ring_hash and maglev.

use super::bytes::le64;

/// Envoy's `MurmurHash::STD_HASH_SEED`.
pub const ENVOY_STD_HASH_SEED: u64 = 0xc70f_6907;

/// Envoy's `MurmurHash::murmurHash2(key)`: the hash redis_proxy gives a
/// (hashtagged) key before it asks the ring or the maglev table.
#[inline]
pub fn envoy_murmur2(key: &[u8]) -> u64 {
    murmur2_64_seed(key, ENVOY_STD_HASH_SEED)
}

#[inline]
fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

/// libstdc++'s 64-bit murmur2 (`_Hash_bytes`) with an explicit seed: 8-byte
/// little-endian words, then the 1..7 byte tail as one little-endian
/// integer of unsigned bytes.
pub fn murmur2_64_seed(key: &[u8], seed: u64) -> u64 {
    const MUL: u64 = 0xc6a4_a793_5bd1_e995;
    let mut hash = seed ^ (key.len() as u64).wrapping_mul(MUL);
    let mut words = key.chunks_exact(8);
    for w in &mut words {
        let data = shift_mix(le64(w).wrapping_mul(MUL)).wrapping_mul(MUL);
        hash = (hash ^ data).wrapping_mul(MUL);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let data = tail
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64);
        hash = (hash ^ data).wrapping_mul(MUL);
    }
    shift_mix(shift_mix(hash).wrapping_mul(MUL))
}

#[cfg(test)]
mod tests {
    use super::super::pattern;
    use super::*;

    // Envoy test/common/common/hash_test.cc, TEST(Hash, murmurHash2).
    #[test]
    fn envoy_murmur2_vectors() {
        assert_eq!(envoy_murmur2(b"foo"), 9631199822919835226);
        assert_eq!(envoy_murmur2(b"bar"), 11474628671133349555);
        assert_eq!(envoy_murmur2(b"foo\nbar"), 16306510975912980159);
        assert_eq!(envoy_murmur2(b"lyft"), 12847078931730529320);
        assert_eq!(envoy_murmur2(b""), 6142509188972423790);
    }

    // libstdc++'s std::_Hash_bytes (g++ 12, x86-64) over lengths that reach
    // every path: 8-byte words, 1..7-byte tails, bytes >= 0x80.
    #[test]
    fn murmur2_matches_libstdcxx() {
        let cases: [(usize, u64, u64); 9] = [
            (1, 0x5c80_a99b_56e3_dd25, 0x0d5d_347e_79e9_17ea),
            (7, 0xad5c_b946_bda9_c11e, 0x83d6_d69c_8462_799c),
            (8, 0x578b_f262_b7f6_3af1, 0x30d7_84eb_06d3_14df),
            (9, 0xce88_faec_7971_3950, 0x5c59_b94e_255f_adda),
            (15, 0x0f74_9172_26d3_65be, 0xd696_56f6_2c12_eb42),
            (16, 0x3253_e7c1_036d_3b29, 0x9f36_5ec0_adfe_3bc9),
            (17, 0xb478_d4b7_a37e_64e7, 0xeb75_eefb_9338_1ce5),
            (33, 0xfd3a_eb45_92e5_7049, 0x63b6_791e_db74_512f),
            (64, 0xcaaa_0369_b104_134c, 0x601f_78f9_e8c3_2bc6),
        ];
        for (len, std_seed, zero_seed) in cases {
            assert_eq!(envoy_murmur2(&pattern(len)), std_seed, "len {len}");
            assert_eq!(murmur2_64_seed(&pattern(len), 0), zero_seed, "len {len}");
        }
    }
}
