//! XXH64, as Envoy's `HashUtil::xxHash64`: ring_hash's points and
//! maglev's permutations.

use super::bytes::{le32, le64};

const XP1: u64 = 0x9E37_79B1_85EB_CA87;
const XP2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const XP3: u64 = 0x1656_67B1_9E37_79F9;
const XP4: u64 = 0x85EB_CA77_C2B2_AE63;
const XP5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline]
fn xx_round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(XP2))
        .rotate_left(31)
        .wrapping_mul(XP1)
}

#[inline]
fn xx_merge(acc: u64, lane: u64) -> u64 {
    (acc ^ xx_round(0, lane))
        .wrapping_mul(XP1)
        .wrapping_add(XP4)
}

/// XXH64 (the reference algorithm), as Envoy's `HashUtil::xxHash64(input,
/// seed)`, seed 0 by default there.
pub fn xxhash64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [
            seed.wrapping_add(XP1).wrapping_add(XP2),
            seed.wrapping_add(XP2),
            seed,
            seed.wrapping_sub(XP1),
        ];
        let mut stripes = data.chunks_exact(32);
        for s in &mut stripes {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = xx_round(*acc, le64(&s[i * 8..]));
            }
        }
        rest = stripes.remainder();
        let h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        v.iter().fold(h, |h, &lane| xx_merge(h, lane))
    } else {
        seed.wrapping_add(XP5)
    };
    h = h.wrapping_add(data.len() as u64);
    let mut words = rest.chunks_exact(8);
    for w in &mut words {
        h ^= xx_round(0, le64(w));
        h = h.rotate_left(27).wrapping_mul(XP1).wrapping_add(XP4);
    }
    rest = words.remainder();
    if rest.len() >= 4 {
        h ^= (le32(rest) as u64).wrapping_mul(XP1);
        h = h.rotate_left(23).wrapping_mul(XP2).wrapping_add(XP3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= (b as u64).wrapping_mul(XP5);
        h = h.rotate_left(11).wrapping_mul(XP1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(XP2);
    h ^= h >> 29;
    h = h.wrapping_mul(XP3);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::super::pattern;
    use super::*;

    // Envoy test/common/common/hash_test.cc, TEST(Hash, xxHash).
    #[test]
    fn envoy_xxhash_vectors() {
        assert_eq!(xxhash64(b"foo", 0), 3728699739546630719);
        assert_eq!(xxhash64(b"bar", 0), 5234164152756840025);
        assert_eq!(xxhash64(b"foo\nbar", 0), 8917841378505826757);
        assert_eq!(xxhash64(b"lyft", 0), 4400747396090729504);
        assert_eq!(xxhash64(b"", 0), 17241709254077376921);
    }

    // Reference XXH64 (Debian's libxxhash 0.8): the two seeds maglev uses,
    // a third, and lengths that reach every path (32-byte stripes, 8-, 4-
    // and 1-byte tails).
    #[test]
    fn xxhash_matches_libxxhash() {
        let strings: [(&[u8], u64, u64); 5] = [
            (b"a", 0xd24e_c4f1_a98c_6e5b, 0xdec2_bc81_c3cd_46c6),
            (b"abc", 0x44bc_2cf5_ad77_0999, 0xbea9_ca81_9932_8908),
            (
                b"Nobody inspects the spammish repetition",
                0xfbce_a83c_8a37_8bf1,
                0x43f4_2544_8d95_4db6,
            ),
            (
                b"127.0.0.1:90",
                0xb6e9_805b_f489_0ed5,
                0x151e_aa9a_12eb_fff5,
            ),
            (
                b"127.0.0.1:90_0",
                0xdfab_f374_78da_ad19,
                0xd83a_8b61_008b_fef4,
            ),
        ];
        for (s, seed0, seed1) in strings {
            assert_eq!(xxhash64(s, 0), seed0);
            assert_eq!(xxhash64(s, 1), seed1);
        }
        const SEED: u64 = 0x9e37_79b9_7f4a_7c15;
        let lens: [(usize, [u64; 3]); 14] = [
            (
                1,
                [0xf592c0c7639c4cb6, 0x653ce83baffa4f91, 0x3f7ebbd0a20f83cc],
            ),
            (
                3,
                [0x22c08528601d4f27, 0x5ebfda8c9072a30d, 0xb829b5fbba7f12fb],
            ),
            (
                4,
                [0xfb1e5cf2f1ae4d95, 0x76c235e6330f623d, 0x4d32e4c842c6371e],
            ),
            (
                7,
                [0x5613ac510496c04e, 0xe75581b7bfa15ec7, 0x566314bf1bda8aab],
            ),
            (
                8,
                [0x57cb2b7521f3e21a, 0xfbbee60ba1ff4594, 0x696e1fe0e0df37f4],
            ),
            (
                12,
                [0x2f53b00266039e64, 0xb44303e489e27e15, 0x2d0207f88149b069],
            ),
            (
                31,
                [0xe4a0e629e519a4ae, 0x30c494e3d8ea5c92, 0xa348b910bc65b7bd],
            ),
            (
                32,
                [0xcc6b8aaada790b2d, 0xe73accc75e541b60, 0x41c2eada450d18f0],
            ),
            (
                33,
                [0x35ec49850475a832, 0x0fd4b34807971da4, 0xb6f8c0b76af8f9da],
            ),
            (
                63,
                [0xbf9f0ba3cf95b28a, 0x09abc95b9a7fa569, 0xdcfe31720304f52b],
            ),
            (
                64,
                [0x155ccce4bf32befc, 0x166dfdfdb0c6703e, 0x4779d2a26a5085a9],
            ),
            (
                65,
                [0xda5ee441a595cfb8, 0xba4c674ad6c934a1, 0x07952988b7909c15],
            ),
            (
                100,
                [0x4826e367566ea023, 0xc55e58ff8694359c, 0xe38491a6daeb0e8a],
            ),
            (
                255,
                [0x178ea4a7d2319abe, 0x6c102d1fbdaed12f, 0x0d398c42f75093db],
            ),
        ];
        for (len, [h0, h1, hs]) in lens {
            let data = pattern(len);
            assert_eq!(xxhash64(&data, 0), h0, "len {len}");
            assert_eq!(xxhash64(&data, 1), h1, "len {len}");
            assert_eq!(xxhash64(&data, SEED), hs, "len {len}");
        }
    }
}
