//! Redis's hashtag rule: if the key holds a `{`, and a later `}` with at least
//! one byte between them, only the bytes between the first `{` and the first
//! `}` after it are hashed. Envoy's redis_proxy and twemproxy (`hash_tag: "{}"`)
//! apply the same rule, which is what keeps placement compatible.

/// The part of `key` that is hashed.
#[inline]
pub fn hashtag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::hashtag;

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
