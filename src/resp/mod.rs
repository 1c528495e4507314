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

/// Bytes of a line looked at one by one before `find_cr` calls memchr.
const SHORT_LINE: usize = 16;

/// The offset of the first CR in `s`. A header line (`$3`, `*2`, `+OK`,
/// `:1`) is a few bytes, shorter than memchr's vector set-up pays off for
/// (about 40 instructions a call), so its first bytes are read one by one.
#[inline(always)]
pub fn find_cr(s: &[u8]) -> Option<usize> {
    let head = s.len().min(SHORT_LINE);
    match s[..head].iter().position(|&c| c == b'\r') {
        Some(i) => Some(i),
        None => memchr::memchr(b'\r', &s[head..]).map(|i| i + head),
    }
}

/// The count of the header line starting at `from` when it is what every
/// client and server sends, 1 to 18 digits without a leading zero and a
/// CRLF: the count and the offset after the CRLF, read in one pass. None
/// for anything else (incomplete, signed, too long, malformed), which the
/// caller's general path (`parse_int` on the whole line) then judges.
#[inline(always)]
pub fn plain_count(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let line = buf.get(from..)?;
    // One or two digits, nearly every count sent: no loop.
    match *line {
        [d, b'\r', b'\n', ..] if d.is_ascii_digit() => {
            return Some(((d - b'0') as usize, from + 3))
        }
        [t @ b'1'..=b'9', u, b'\r', b'\n', ..] if u.is_ascii_digit() => {
            return Some(((t - b'0') as usize * 10 + (u - b'0') as usize, from + 4))
        }
        _ => {}
    }
    let mut n = 0usize;
    for (i, &c) in line.iter().enumerate().take(19) {
        match c {
            b'0'..=b'9' if i < 18 => n = n * 10 + (c - b'0') as usize,
            b'\r' if i == 1 || (i > 1 && line[0] != b'0') => {
                return (line.get(i + 1) == Some(&b'\n')).then_some((n, from + i + 2));
            }
            _ => return None,
        }
    }
    None
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
    use super::{find_cr, parse_int};

    #[test]
    fn find_cr_finds_the_first_cr_in_short_and_long_lines() {
        for len in 0..64 {
            for at in 0..=len {
                let mut line = vec![b'x'; len];
                if at < len {
                    line[at] = b'\r';
                    line.extend_from_slice(b"\r\r");
                }
                let want = (at < len).then_some(at);
                assert_eq!(find_cr(&line), want, "len {len}, CR at {at}");
            }
        }
    }

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
