//! Redis's hashtag rule: if the key holds a `{`, and a later `}` with at least
//! one byte between them, only the bytes between the first `{` and the first
//! `}` after it are hashed. Envoy's redis_proxy and twemproxy (`hash_tag: "{}"`)
//! apply the same rule, which is what keeps placement compatible.

/// The part of `key` that is hashed.
#[inline(always)]
pub fn hashtag(key: &[u8]) -> &[u8] {
    if (8..=64).contains(&key.len()) && !holds_open_brace(key) {
        return key;
    }
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Whether `key` (8 to 64 bytes) holds a `{`, read eight bytes at a time
/// (the last eight overlapping): most keys are that short and hold none,
/// and memchr's set-up costs more than the whole search.
#[inline(always)]
fn holds_open_brace(key: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let has = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&key[at..at + 8]);
        // A byte of `v` is zero where `w` holds `{`; the test is exact.
        let v = u64::from_le_bytes(w) ^ (ONES * b'{' as u64);
        v.wrapping_sub(ONES) & !v & (ONES << 7) != 0
    };
    let last = key.len() - 8;
    if last <= 8 {
        return has(0) || has(last);
    }
    (0..last).step_by(8).any(has) || has(last)
}

#[cfg(test)]
mod tests {
    use super::hashtag;

    /// The word-at-a-time search finds a `{` wherever it is, in keys of
    /// every length it serves, bytes next to `{` included.
    #[test]
    fn open_brace_found_at_every_place() {
        for len in 8..=64 {
            assert!(!super::holds_open_brace(&vec![b'z'; len]), "{len}");
            for at in 0..len {
                for other in [b'z', b'{' - 1, b'{' + 1, b'{' ^ 0x80, 0] {
                    let mut key = vec![other; len];
                    assert!(!super::holds_open_brace(&key), "{len} {other}");
                    key[at] = b'{';
                    assert!(super::holds_open_brace(&key), "{len} at {at}");
                    assert_eq!(hashtag(&key), key.as_slice());
                }
            }
        }
    }

    /// Keys of every length up to 80 made of `{`, `}` and letters hash the
    /// part Redis's rule names.
    #[test]
    fn agrees_with_the_rule_written_plainly() {
        let plain = |key: &[u8]| -> Vec<u8> {
            let Some(open) = key.iter().position(|&b| b == b'{') else {
                return key.to_vec();
            };
            match key[open + 1..].iter().position(|&b| b == b'}') {
                Some(len) if len > 0 => key[open + 1..open + 1 + len].to_vec(),
                _ => key.to_vec(),
            }
        };
        let mut rng = crate::testing::Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..100_000 {
            let x = rng.number();
            let len = (x % 81) as usize;
            let sparse = (x >> 8).is_multiple_of(4);
            let key: Vec<u8> = (0..len)
                .map(
                    |i| match (x >> (16 + i % 40)) % if sparse { 40 } else { 4 } {
                        0 => b'{',
                        1 => b'}',
                        _ => b'a' + (i % 26) as u8,
                    },
                )
                .collect();
            assert_eq!(hashtag(&key), plain(&key).as_slice(), "{:?}", key);
        }
    }

    #[test]
    fn redis_cluster_spec_examples() {
        assert_eq!(hashtag(b"{user1000}.following"), b"user1000");
        assert_eq!(hashtag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hashtag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hashtag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hashtag(b"nobraces"), b"nobraces");
        assert_eq!(hashtag(b"open{only"), b"open{only");
        assert_eq!(hashtag(b"close}only{"), b"close}only{");
        assert_eq!(hashtag(b"user:{avgo}:42"), b"avgo");
    }
}
