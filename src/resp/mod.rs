//! RESP wire format: a zero-copy scanner for requests and replies, and the
//! few encoders keyway needs for the replies it writes itself; `errors`
//! holds the text of every error reply keyway writes.
pub mod errors;
#[cfg(any(test, feature = "fuzzing"))]
pub mod reference;
pub mod reply;
pub mod request;
pub mod value;
pub mod write;

/// Redis's protocol limits (`proto-max-bulk-len`, multibulk count, inline size).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_multibulk_len: usize,
    pub max_inline_len: usize,
    /// Whether these are the limits for a client that has not
    /// authenticated: Redis names them in its errors ("unauthenticated
    /// multibulk length") so the client learns why, not just that.
    pub unauthenticated: bool,
}

impl Limits {
    /// Redis 7's limits for clients that have not authenticated yet (when
    /// a password is required): at most 10 arguments of at most 16 KB.
    pub const UNAUTHENTICATED: Limits = Limits {
        max_bulk_len: 16 * 1024,
        max_multibulk_len: 10,
        max_inline_len: 64 * 1024,
        unauthenticated: true,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            unauthenticated: false,
        }
    }
}

/// Parses the decimal integer of a RESP header line, as strictly as Redis's
/// `string2ll`: optional `-`, digits only, no leading zeros or `+`, no overflow.
#[inline]
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    if neg {
        if v == 0 {
            return None;
        }
        Some(-v)
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn strict_integers() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"-0"), None);
        assert_eq!(parse_int(b"01"), None);
        assert_eq!(parse_int(b"+1"), None);
        assert_eq!(parse_int(b"1a"), None);
        assert_eq!(parse_int(b" 1"), None);
    }
}
