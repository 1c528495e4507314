//! The hash functions placement depends on, bit-exact with the proxies
//! keyway replaces: Envoy's `MurmurHash::murmurHash2` (keys) and xxHash64
//! (ring points, maglev permutations); twemproxy's key hashes for ketama,
//! with their C quirks kept (bytes are C `char`: sign-extended when >= 0x80,
//! and the 64-bit FNV constants truncated to 32 bits in fnv1a_64).

/// Envoy's `MurmurHash::murmurHash2(key)`: libstdc++'s 64-bit `_Hash_bytes`
/// with seed 0xc70f6907, which Envoy's redis_proxy applies to every key.
#[inline]
pub fn envoy_murmur2(key: &[u8]) -> u64 {
    murmur2_64_seed(key, 0xc70f_6907)
}

#[inline]
fn shift_mix(v: u64) -> u64 {
    v ^ (v >> 47)
}

pub fn murmur2_64_seed(key: &[u8], seed: u64) -> u64 {
    const MUL: u64 = 0xc6a4_a793_5bd1_e995;
    let len = key.len() as u64;
    let mut hash = seed ^ len.wrapping_mul(MUL);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let data = shift_mix(u64::from_le_bytes(word).wrapping_mul(MUL)).wrapping_mul(MUL);
        hash ^= data;
        hash = hash.wrapping_mul(MUL);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // The tail is loaded as a little-endian integer of its bytes.
        let data = tail
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64);
        hash ^= data;
        hash = hash.wrapping_mul(MUL);
    }
    hash = shift_mix(hash).wrapping_mul(MUL);
    shift_mix(hash)
}

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

#[inline]
fn xx_round(acc: u64, lane: u64) -> u64 {
    acc.wrapping_add(lane.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline]
fn xx_merge(acc: u64, v: u64) -> u64 {
    (acc ^ xx_round(0, v)).wrapping_mul(P1).wrapping_add(P4)
}

fn le64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

fn le32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

/// XXH64, as Envoy's `HashUtil::xxHash64(key, seed)`.
pub fn xxhash64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            for (i, acc) in v.iter_mut().enumerate() {
                *acc = xx_round(*acc, le64(&rest[i * 8..]));
            }
            rest = &rest[32..];
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = xx_merge(h, lane);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h ^= xx_round(0, le64(rest));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= (le32(rest) as u64).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= (b as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// MD5's per-round constants: floor(|sin(i + 1)| * 2^32).
const MD5_K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];
const MD5_S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

fn md5_block(st: &mut [u32; 4], block: &[u8]) {
    let m: [u32; 16] = std::array::from_fn(|i| le32(&block[i * 4..]));
    let [mut a, mut b, mut c, mut d] = *st;
    for i in 0..64 {
        let (f, g) = match i / 16 {
            0 => ((b & c) | (!b & d), i),
            1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
            2 => (b ^ c ^ d, (3 * i + 5) % 16),
            _ => (c ^ (b | !d), (7 * i) % 16),
        };
        let f = f.wrapping_add(a).wrapping_add(MD5_K[i]).wrapping_add(m[g]);
        a = d;
        d = c;
        c = b;
        b = b.wrapping_add(f.rotate_left(MD5_S[i]));
    }
    st[0] = st[0].wrapping_add(a);
    st[1] = st[1].wrapping_add(b);
    st[2] = st[2].wrapping_add(c);
    st[3] = st[3].wrapping_add(d);
}

/// MD5 (RFC 1321), for ketama's points and twemproxy's `md5` key hash.
/// No allocation: whole blocks are hashed in place, the padded tail on
/// the stack.
pub fn md5(data: &[u8]) -> [u8; 16] {
    let mut st: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut blocks = data.chunks_exact(64);
    for block in &mut blocks {
        md5_block(&mut st, block);
    }
    let rest = blocks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let len = if rest.len() < 56 { 64 } else { 128 };
    tail[len - 8..len].copy_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in tail[..len].chunks_exact(64) {
        md5_block(&mut st, block);
    }
    let mut out = [0u8; 16];
    for (i, w) in st.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// twemproxy's key hashes (its `hash:` setting) usable with ketama.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KetamaHash {
    Fnv1a64,
    Fnv1_64,
    Fnv1a32,
    Fnv1_32,
    Md5,
    Murmur,
    OneAtATime,
}

/// A C `char` byte widened as C widens it on x86: sign-extended.
#[inline]
fn c_char(b: u8) -> u32 {
    b as i8 as i32 as u32
}

impl KetamaHash {
    pub fn parse(name: &str) -> Option<KetamaHash> {
        Some(match name {
            "fnv1a_64" => KetamaHash::Fnv1a64,
            "fnv1_64" => KetamaHash::Fnv1_64,
            "fnv1a_32" => KetamaHash::Fnv1a32,
            "fnv1_32" => KetamaHash::Fnv1_32,
            "md5" => KetamaHash::Md5,
            "murmur" => KetamaHash::Murmur,
            "one_at_a_time" => KetamaHash::OneAtATime,
            _ => return None,
        })
    }

    pub fn hash(&self, key: &[u8]) -> u32 {
        const FNV64_INIT: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV64_PRIME: u64 = 0x100_0000_01b3;
        const FNV32_INIT: u32 = 2_166_136_261;
        const FNV32_PRIME: u32 = 16_777_619;
        match self {
            KetamaHash::Fnv1a64 => key.iter().fold(FNV64_INIT as u32, |h, &b| {
                (h ^ c_char(b)).wrapping_mul(FNV64_PRIME as u32)
            }),
            KetamaHash::Fnv1_64 => key.iter().fold(FNV64_INIT, |h, &b| {
                h.wrapping_mul(FNV64_PRIME) ^ (b as i8 as i64 as u64)
            }) as u32,
            KetamaHash::Fnv1a32 => key.iter().fold(FNV32_INIT, |h, &b| {
                (h ^ c_char(b)).wrapping_mul(FNV32_PRIME)
            }),
            KetamaHash::Fnv1_32 => key
                .iter()
                .fold(FNV32_INIT, |h, &b| h.wrapping_mul(FNV32_PRIME) ^ c_char(b)),
            KetamaHash::Md5 => {
                let d = md5(key);
                u32::from_le_bytes([d[0], d[1], d[2], d[3]])
            }
            KetamaHash::Murmur => murmur2_32_twemproxy(key),
            KetamaHash::OneAtATime => {
                let mut v: u32 = 0;
                for &b in key {
                    v = v.wrapping_add(c_char(b));
                    v = v.wrapping_add(v << 10);
                    v ^= v >> 6;
                }
                v = v.wrapping_add(v << 3);
                v ^= v >> 11;
                v.wrapping_add(v << 15)
            }
        }
    }
}

/// twemproxy's `murmur`: 32-bit MurmurHash2 seeded with 0xdeadbeef * len.
fn murmur2_32_twemproxy(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len() as u32;
    let mut h = 0xdead_beefu32.wrapping_mul(len) ^ len;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        let mut k = le32(c);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let t = chunks.remainder();
    if t.len() >= 3 {
        h ^= (t[2] as u32) << 16;
    }
    if t.len() >= 2 {
        h ^= (t[1] as u32) << 8;
    }
    if !t.is_empty() {
        h ^= t[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Envoy's test/common/common/hash_test.cc, TEST(Hash, murmurHash2).
    #[test]
    fn envoy_murmur_vectors() {
        assert_eq!(envoy_murmur2(b"foo"), 9631199822919835226);
        assert_eq!(envoy_murmur2(b"bar"), 11474628671133349555);
        assert_eq!(envoy_murmur2(b"foo\nbar"), 16306510975912980159);
        assert_eq!(envoy_murmur2(b"lyft"), 12847078931730529320);
        assert_eq!(envoy_murmur2(b""), 6142509188972423790);
    }

    // Envoy's TEST(Hash, xxHash), plus longer inputs (the 32-byte stripes)
    // checked against the reference XXH64.
    #[test]
    fn xxhash_vectors() {
        assert_eq!(xxhash64(b"foo", 0), 3728699739546630719);
        assert_eq!(xxhash64(b"bar", 0), 5234164152756840025);
        assert_eq!(xxhash64(b"foo\nbar", 0), 8917841378505826757);
        assert_eq!(xxhash64(b"lyft", 0), 4400747396090729504);
        assert_eq!(xxhash64(b"", 0), 17241709254077376921);
        assert_eq!(xxhash64(b"", 0), 0xEF46_DB37_51D8_E999);
    }

    #[test]
    fn md5_rfc1321_vectors() {
        let hex = |d: [u8; 16]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(md5(b"a")), "0cc175b9c0f1b6a831c399e269772661");
        assert_eq!(hex(md5(b"abc")), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(md5(b"message digest")),
            "f96b697d7cb7938d525a2f31aaf161d0"
        );
        assert_eq!(
            hex(md5(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        // Padding boundaries: tails of 55..65 bytes and two-block tails.
        assert_eq!(hex(md5(&[b'a'; 55])), "ef1772b6dff9a122358552954ad0df65");
        assert_eq!(hex(md5(&[b'a'; 56])), "3b0c8ac703f828b04c6c197006d17218");
        assert_eq!(hex(md5(&[b'a'; 63])), "b06521f39153d618550606be297466d5");
        assert_eq!(hex(md5(&[b'a'; 64])), "014842d480b571495a4a0363793f7367");
        assert_eq!(hex(md5(&[b'a'; 65])), "c743a45e0d2e6a95cb859adae0248435");
        assert_eq!(hex(md5(&[b'a'; 119])), "8a7bd0732ed6a28ce75f6dabc90e1613");
        assert_eq!(hex(md5(&[b'a'; 120])), "5f61c0ccad4cac44c75ff505e1f1e537");
    }

    #[test]
    fn fnv_and_c_char_sign_extension() {
        // Standard FNV-1a 32 for ASCII ("a" = 0xe40c292c).
        assert_eq!(KetamaHash::Fnv1a32.hash(b"a"), 0xe40c_292c);
        // A byte >= 0x80 is a negative C char: all high bits set when widened.
        assert_eq!(c_char(0xff), 0xffff_ffff);
        assert_ne!(
            KetamaHash::Fnv1a64.hash(&[0xff]),
            KetamaHash::Fnv1a64.hash(&[0x7f])
        );
        assert_eq!(KetamaHash::parse("fnv1a_64"), Some(KetamaHash::Fnv1a64));
        assert_eq!(KetamaHash::parse("sha1"), None);
    }
}
