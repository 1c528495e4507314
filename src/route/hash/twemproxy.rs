//! twemproxy 0.5.0's key hashes (its `hash:` setting, [`KetamaHash`]),
//! which ketama applies to every key.

use super::bytes::le32;
use super::crc16::CRC16_TABLE;
use super::md5::md5;

/// twemproxy's key hashes (its `hash:` setting), each bit-exact with
/// twemproxy 0.5.0's `src/hashkit` on x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KetamaHash {
    /// twemproxy's default. Not FNV-1a 64: the 64-bit offset basis and
    /// prime are truncated to 32 bits, and so is every step.
    Fnv1a64,
    /// FNV-1 64, truncated to its low 32 bits at the end.
    Fnv1_64,
    Fnv1a32,
    Fnv1_32,
    /// The first four digest bytes, little-endian.
    Md5,
    /// libmemcached's crc32: bits 16..30 of the standard CRC-32.
    Crc32,
    /// The standard CRC-32 (IEEE, as zlib's crc32).
    Crc32a,
    /// CRC-16/XMODEM in the low 16 bits, plus the bits its unmasked 32-bit
    /// accumulator shifted above them (0.5.0's implementation).
    Crc16,
    /// MurmurHash2 (32-bit) seeded with 0xdeadbeef * len.
    Murmur,
    /// Bob Jenkins' lookup3 `hashlittle` with initval 13.
    Jenkins,
    OneAtATime,
    /// Paul Hsieh's SuperFastHash.
    Hsieh,
}

impl KetamaHash {
    pub const ALL: [KetamaHash; 12] = [
        KetamaHash::Fnv1a64,
        KetamaHash::Fnv1_64,
        KetamaHash::Fnv1a32,
        KetamaHash::Fnv1_32,
        KetamaHash::Md5,
        KetamaHash::Crc32,
        KetamaHash::Crc32a,
        KetamaHash::Crc16,
        KetamaHash::Murmur,
        KetamaHash::Jenkins,
        KetamaHash::OneAtATime,
        KetamaHash::Hsieh,
    ];

    /// The name twemproxy's `hash:` setting uses (matched exactly, as
    /// twemproxy does: case-sensitive).
    pub fn name(self) -> &'static str {
        match self {
            KetamaHash::Fnv1a64 => "fnv1a_64",
            KetamaHash::Fnv1_64 => "fnv1_64",
            KetamaHash::Fnv1a32 => "fnv1a_32",
            KetamaHash::Fnv1_32 => "fnv1_32",
            KetamaHash::Md5 => "md5",
            KetamaHash::Crc32 => "crc32",
            KetamaHash::Crc32a => "crc32a",
            KetamaHash::Crc16 => "crc16",
            KetamaHash::Murmur => "murmur",
            KetamaHash::Jenkins => "jenkins",
            KetamaHash::OneAtATime => "one_at_a_time",
            KetamaHash::Hsieh => "hsieh",
        }
    }

    pub fn parse(name: &str) -> Option<KetamaHash> {
        KetamaHash::ALL.into_iter().find(|h| h.name() == name)
    }

    /// The 32-bit hash twemproxy computes for `key`. Note twemproxy itself
    /// never hashes an empty key (it uses 0): see `Ketama::pick`.
    pub fn hash(self, key: &[u8]) -> u32 {
        match self {
            KetamaHash::Fnv1a64 => fnv1a_64_truncated(key),
            KetamaHash::Fnv1_64 => fnv1_64(key),
            KetamaHash::Fnv1a32 => key.iter().fold(FNV32_BASIS, |h, &b| {
                (h ^ c_char(b)).wrapping_mul(FNV32_PRIME)
            }),
            KetamaHash::Fnv1_32 => key
                .iter()
                .fold(FNV32_BASIS, |h, &b| h.wrapping_mul(FNV32_PRIME) ^ c_char(b)),
            KetamaHash::Md5 => {
                let d = md5(key);
                u32::from_le_bytes([d[0], d[1], d[2], d[3]])
            }
            KetamaHash::Crc32 => (!crc32_state(key) >> 16) & 0x7fff,
            KetamaHash::Crc32a => !crc32_state(key),
            KetamaHash::Crc16 => crc16_unmasked(key),
            KetamaHash::Murmur => murmur2_32_twemproxy(key),
            KetamaHash::Jenkins => lookup3_hashlittle(key, 13),
            KetamaHash::OneAtATime => one_at_a_time(key),
            KetamaHash::Hsieh => hsieh(key),
        }
    }
}

/// A key byte as twemproxy widens it through (signed) `char` on x86:
/// 0x80..=0xff become 0xffffff80..=0xffffffff.
#[inline]
fn c_char(b: u8) -> u32 {
    b as i8 as u32
}

const FNV32_BASIS: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;
const FNV64_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a_64_truncated(key: &[u8]) -> u32 {
    // (uint32_t) of the 64-bit constants: 0x84222325 and 0x1b3.
    key.iter().fold(FNV64_BASIS as u32, |h, &b| {
        (h ^ c_char(b)).wrapping_mul(FNV64_PRIME as u32)
    })
}

fn fnv1_64(key: &[u8]) -> u32 {
    // The byte is sign-extended all the way to 64 bits before the xor.
    key.iter().fold(FNV64_BASIS, |h, &b| {
        h.wrapping_mul(FNV64_PRIME) ^ (b as i8 as u64)
    }) as u32
}

fn one_at_a_time(key: &[u8]) -> u32 {
    let mut v = key.iter().fold(0u32, |v, &b| {
        let v = v.wrapping_add(c_char(b));
        let v = v.wrapping_add(v << 10);
        v ^ (v >> 6)
    });
    v = v.wrapping_add(v << 3);
    v ^= v >> 11;
    v.wrapping_add(v << 15)
}

/// The reflected CRC-32 table (polynomial 0xEDB88320).
const CRC32_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// CRC-32's running register (initial all ones, not yet inverted). Only
/// the low 8 bits of a byte reach the table, so sign extension is moot.
fn crc32_state(key: &[u8]) -> u32 {
    key.iter().fold(u32::MAX, |crc, &b| {
        (crc >> 8) ^ CRC32_TABLE[((crc ^ b as u32) & 0xff) as usize]
    })
}

/// twemproxy 0.5.0's crc16: XMODEM's table walk, but the accumulator is a
/// `uint32_t` shifted left by 8 each byte and never masked to 16 bits, so
/// the returned value carries earlier bytes' state in its upper half.
fn crc16_unmasked(key: &[u8]) -> u32 {
    key.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[(((crc >> 8) ^ c_char(b)) & 0xff) as usize] as u32
    })
}

/// twemproxy's `murmur`: 32-bit MurmurHash2, seed 0xdeadbeef * len,
/// unsigned bytes, little-endian words.
fn murmur2_32_twemproxy(key: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len() as u32;
    let mut h = 0xdead_beef_u32.wrapping_mul(len) ^ len;
    let mut words = key.chunks_exact(4);
    for w in &mut words {
        let mut k = le32(w).wrapping_mul(M);
        k ^= k >> 24;
        h = h.wrapping_mul(M) ^ k.wrapping_mul(M);
    }
    let t = words.remainder();
    if !t.is_empty() {
        let tail = t.iter().rev().fold(0u32, |acc, &b| (acc << 8) | b as u32);
        h = (h ^ tail).wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// lookup3's `hashlittle`. twemproxy reads the key through three paths
/// chosen by pointer alignment; on little-endian x86 all three equal this
/// byte-wise form (unsigned bytes, zero-padded last block).
pub fn lookup3_hashlittle(key: &[u8], initval: u32) -> u32 {
    let init = 0xdead_beef_u32
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    if key.is_empty() {
        return c;
    }
    let mut rest = key;
    while rest.len() > 12 {
        a = a.wrapping_add(le32(rest));
        b = b.wrapping_add(le32(&rest[4..]));
        c = c.wrapping_add(le32(&rest[8..]));
        lookup3_mix(&mut a, &mut b, &mut c);
        rest = &rest[12..];
    }
    let mut last = [0u8; 12];
    last[..rest.len()].copy_from_slice(rest);
    a = a.wrapping_add(le32(&last));
    b = b.wrapping_add(le32(&last[4..]));
    c = c.wrapping_add(le32(&last[8..]));
    lookup3_final(&mut a, &mut b, &mut c);
    c
}
#[inline]
fn lookup3_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c) ^ c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c) ^ c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a) ^ a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b) ^ b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

#[inline]
fn lookup3_final(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(14));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(11));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(25));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(16));
    *a = (*a ^ *c).wrapping_sub(c.rotate_left(4));
    *b = (*b ^ *a).wrapping_sub(a.rotate_left(14));
    *c = (*c ^ *b).wrapping_sub(b.rotate_left(24));
}

#[inline]
fn le16(b: &[u8]) -> u32 {
    b[0] as u32 | (b[1] as u32) << 8
}

/// SuperFastHash as twemproxy has it: 16-bit little-endian reads of
/// unsigned bytes, except the third byte of a 3-byte tail, which goes
/// through signed `char` (sign-extended, then shifted left 18).
fn hsieh(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let mut h: u32 = 0;
    let mut words = key.chunks_exact(4);
    for w in &mut words {
        h = h.wrapping_add(le16(w));
        let tmp = (le16(&w[2..]) << 11) ^ h;
        h = (h << 16) ^ tmp;
        h = h.wrapping_add(h >> 11);
    }
    let t = words.remainder();
    match t.len() {
        3 => {
            h = h.wrapping_add(le16(t));
            h ^= h << 16;
            h ^= c_char(t[2]) << 18;
            h = h.wrapping_add(h >> 11);
        }
        2 => {
            h = h.wrapping_add(le16(t));
            h ^= h << 11;
            h = h.wrapping_add(h >> 17);
        }
        1 => {
            h = h.wrapping_add(t[0] as u32);
            h ^= h << 10;
            h = h.wrapping_add(h >> 1);
        }
        _ => {}
    }
    h ^= h << 3;
    h = h.wrapping_add(h >> 5);
    h ^= h << 4;
    h = h.wrapping_add(h >> 17);
    h ^= h << 25;
    h.wrapping_add(h >> 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published vectors for the standard algorithms behind twemproxy's names.
    #[test]
    fn published_vectors_for_the_standard_hashes() {
        // CRC-32 check value; libmemcached's crc32 is its bits 16..30.
        assert_eq!(KetamaHash::Crc32a.hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(KetamaHash::Crc32.hash(b"123456789"), 0x4bf4);
        // CRC-16/XMODEM check value 0x31c3 in the low half.
        assert_eq!(KetamaHash::Crc16.hash(b"123456789") & 0xffff, 0x31c3);
        // FNV (Noll's reference values for "a").
        assert_eq!(KetamaHash::Fnv1_32.hash(b"a"), 0x050c_5d7e);
        assert_eq!(KetamaHash::Fnv1a32.hash(b"a"), 0xe40c_292c);
        assert_eq!(KetamaHash::Fnv1_64.hash(b"a"), 0x8601_b7be); // af63bd4c8601b7be
        assert_eq!(KetamaHash::Fnv1_64.hash(b"foobar"), 0xa4dd_a9c2); // 340d8765a4dda9c2
                                                                      // Jenkins' one-at-a-time (Wikipedia's examples).
        assert_eq!(KetamaHash::OneAtATime.hash(b"a"), 0xca2e_9442);
        assert_eq!(
            KetamaHash::OneAtATime.hash(b"The quick brown fox jumps over the lazy dog"),
            0x519e_91f5
        );
        // lookup3.c's driver5 values for hashlittle.
        assert_eq!(lookup3_hashlittle(b"", 0), 0xdead_beef);
        assert_eq!(lookup3_hashlittle(b"", 0xdead_beef), 0xbd5b_7dde);
        assert_eq!(
            lookup3_hashlittle(b"Four score and seven years ago", 0),
            0x1777_0551
        );
        assert_eq!(
            lookup3_hashlittle(b"Four score and seven years ago", 1),
            0xcd62_8161
        );
        // md5's first four digest bytes, little-endian.
        assert_eq!(KetamaHash::Md5.hash(b"a"), 0xb975_c10c);
    }

    /// twemproxy 0.5.0's own src/hashkit/*.c (Debian's 0.5.0+dfsg source,
    /// gcc -O2, x86-64) run over these keys (hex), one column per hash in
    /// `KetamaHash::ALL` order. The keys cover empty input, every tail
    /// length, bytes >= 0x80 (signed `char`), and long inputs.
    const TWEMPROXY_VECTORS: &[(&str, [u32; 12])] = &[
        (
            "",
            [
                0x84222325,
                0x84222325,
                0x811c9dc5,
                0x811c9dc5,
                0xd98c1dd4,
                0x00000000,
                0x00000000,
                0x00000000,
                0x00000000,
                0xdeadbefc,
                0x00000000,
                0x00000000,
            ],
        ),
        (
            "61",
            [
                0x8601ec8c,
                0x8601b7be,
                0xe40c292c,
                0x050c5d7e,
                0xb975c10c,
                0x000068b7,
                0xe8b7be43,
                0x00007c87,
                0x4b41757c,
                0xe0a38690,
                0xca2e9442,
                0x93642e87,
            ],
        ),
        (
            "6162",
            [
                0xb545986a,
                0xb4eb37b8,
                0x4d2505ca,
                0x70772d38,
                0x43f47e18,
                0x00001e83,
                0x9e83486d,
                0x007c74ff,
                0xe3b54dfb,
                0xc1b5695b,
                0x45e61e58,
                0x5b8c0ec3,
            ],
        ),
        (
            "616263",
            [
                0x0541574b,
                0x6bafadcb,
                0x1a47e90b,
                0x439c2f4b,
                0x98500190,
                0x00003524,
                0x352441c2,
                0x7c749dd6,
                0x7b0cc428,
                0x8f415600,
                0xed131f5b,
                0xe5186b3a,
            ],
        ),
        (
            "61626364",
            [
                0xee0724dd,
                0xfb844f95,
                0xce3479bd,
                0xb9de7375,
                0x4c71fce2,
                0x00006d82,
                0xed82cd11,
                0x749da836,
                0xef6a86af,
                0xd512151a,
                0xcd8b6206,
                0x3ab452d8,
            ],
        ),
        (
            "313233343536373839",
            [
                0x23c6cdfc,
                0x2bf916d6,
                0xbb86b11c,
                0x24148816,
                0x94e7f925,
                0x00004bf4,
                0xcbf43926,
                0x869031c3,
                0xb7760690,
                0x19777af6,
                0xc66b58c5,
                0xe4fc1670,
            ],
        ),
        (
            "6b65793a31",
            [
                0x962f5ac9,
                0xfdc93305,
                0x58140fa9,
                0x8964f7a5,
                0x3cb0c47a,
                0x00000b6f,
                0x0b6f3bec,
                0x70129a01,
                0xdc094157,
                0x82bc75da,
                0xa2b61284,
                0x80bc54d9,
            ],
        ),
        (
            "666f6f626172",
            [
                0xf73967e8,
                0xa4dda9c2,
                0xbf9cf968,
                0x31f0b262,
                0x22f65838,
                0x00001ef6,
                0x9ef61f95,
                0x9effb025,
                0xabecff17,
                0x0fdd8b60,
                0xf952fde7,
                0x07a5862c,
            ],
        ),
        (
            "3132372e302e302e313a36333739",
            [
                0xef2a8f8b,
                0x141e4843,
                0xe89db66b,
                0x576b06e3,
                0x5df94252,
                0x0000144b,
                0x144b9529,
                0x6389d6db,
                0x38d28a86,
                0x8402335b,
                0x5542f1ee,
                0x99a35c80,
            ],
        ),
        (
            "e9",
            [
                0x79fe2ea4,
                0x79fe4836,
                0xebf38b44,
                0xfaf3a2f6,
                0x76870634,
                0x00000bd4,
                0x0bd4b551,
                0x00006c07,
                0xdd27d4d8,
                0x0731c9e4,
                0x409848ff,
                0x3c20d7ba,
            ],
        ),
        (
            "6162e9",
            [
                0xfabde399,
                0x94505241,
                0xb1b7c519,
                0xbc63d0c1,
                0x8c72c1c8,
                0x00003849,
                0x38492bfc,
                0x7c74ad14,
                0x6baf059f,
                0x8927b2b4,
                0x7c6c3def,
                0x125794e5,
            ],
        ),
        (
            "80ff007f",
            [
                0xc83c46ed,
                0x6d9b831d,
                0xa9f464cd,
                0x5d0db47d,
                0x1d79697a,
                0x0000323f,
                0xb23f3167,
                0x05389d23,
                0xe3026a60,
                0x49604f99,
                0x1c6b90ad,
                0x9f558e22,
            ],
        ),
        (
            "62696e3a80ff07",
            [
                0x7058f592,
                0x1725f05c,
                0x62cd9b32,
                0xce93e5dc,
                0xba97a3cf,
                0x00007b5f,
                0xfb5f7e98,
                0x0c991e77,
                0xae15c5eb,
                0x345f0e98,
                0xb381ef1d,
                0xbd4beb9f,
            ],
        ),
        (
            "466f75722073636f726520616e6420736576656e2079656172732061676f",
            [
                0x1987984c,
                0xce2804c6,
                0xdc02398c,
                0xadc7c266,
                0x8482c88b,
                0x00003cfe,
                0x3cfe93b8,
                0xbe60a5ef,
                0x666caeaf,
                0x1ab867b2,
                0x5554a59f,
                0x0c5fc188,
            ],
        ),
        (
            "c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9c3a9",
            [
                0xa5df3af5,
                0xab543665,
                0x47b98a95,
                0xee1b1805,
                0x804f5d6d,
                0x00007bb0,
                0xfbb03b4e,
                0x64e0d4ed,
                0x23f9a993,
                0x1bb60a71,
                0xc18a7f5a,
                0x6f7416b3,
            ],
        ),
        (
            "00254a6f94b9de03284d7297bce1062b50759abfe4092e53789dc2e70c31567ba0c5ea0f34597ea3c8ed12375c81a6cbf0153a5f84a9cef3183d6287acd1f61b40658aafd4f91e43688db2d7fc21466b90b5daff24496e93b8dd02274c7196bbe0052a4f",
            [
                0xe8df4a59,
                0x5382ee39,
                0xfeab9ab9,
                0x04aadf99,
                0x45a54383,
                0x00001ccf,
                0x9ccfbceb,
                0xfcca7a2d,
                0x277cbcf9,
                0x667a0ac0,
                0xfae78d6e,
                0x3cffb1d3,
            ],
        ),
    ];

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    #[test]
    fn matches_twemproxy_hashkit() {
        for (key, want) in TWEMPROXY_VECTORS {
            let key_bytes = unhex(key);
            for (h, w) in KetamaHash::ALL.iter().zip(want) {
                assert_eq!(h.hash(&key_bytes), *w, "{} of {key}", h.name());
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for h in KetamaHash::ALL {
            assert_eq!(KetamaHash::parse(h.name()), Some(h));
        }
        assert_eq!(KetamaHash::parse("FNV1A_64"), None);
        assert_eq!(KetamaHash::parse("sha1"), None);
        assert_eq!(KetamaHash::parse("rcrc32"), None);
    }

    #[test]
    fn c_char_sign_extension() {
        assert_eq!(c_char(0x7f), 0x7f);
        assert_eq!(c_char(0x80), 0xffff_ff80);
        assert_eq!(c_char(0xff), 0xffff_ffff);
    }
}
