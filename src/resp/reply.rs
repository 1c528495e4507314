//! Reply scanner: finds where each upstream reply ends (every RESP2 and
//! RESP3 type, nested to any depth) so replies can be matched to requests
//! in order and handed on as slices of the read buffer. Resumable, so a
//! large aggregate reply arriving in many reads is scanned once.

use super::{find_cr, parse_int, plain_count};

/// A reply that breaks the protocol: the backend (or something between)
/// is not speaking RESP, and the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    LineNotEnded,
    InvalidLength,
    BulkNotEnded,
    /// A first byte no RESP2 or RESP3 type has.
    UnknownType(u8),
    AggregateTooLarge,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ReplyError::LineNotEnded => f.write_str("line not ended by CRLF"),
            ReplyError::InvalidLength => f.write_str("invalid length"),
            ReplyError::BulkNotEnded => f.write_str("bulk not ended by CRLF"),
            ReplyError::UnknownType(b) => write!(f, "unexpected reply type byte 0x{b:02x}"),
            ReplyError::AggregateTooLarge => f.write_str("aggregate too large"),
        }
    }
}

const MAX_COUNT: i64 = u32::MAX as i64;

/// Scans one reply; keeps its place between calls while the reply is
/// incomplete. The buffer passed must always start at the reply's start.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    pos: usize,
    /// Values still to read before the reply is complete (0 = not started).
    remaining: u64,
}

impl ReplyScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The length of the complete reply at the start of `buf`, or None.
    #[inline]
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ReplyError> {
        if self.remaining == 0 {
            if let Some(len) = plain_reply(buf) {
                return Ok(Some(len));
            }
            self.pos = 0;
            self.remaining = 1;
        }
        self.walk(buf)
    }

    /// Reads values from `pos` until the reply is complete or `buf` ends.
    #[inline(never)]
    fn walk(&mut self, buf: &[u8]) -> Result<Option<usize>, ReplyError> {
        while self.remaining > 0 {
            let pos = self.pos;
            let Some(&kind) = buf.get(pos) else {
                return Ok(None);
            };
            let rest = &buf[pos + 1..];
            let Some(r) = super::find_cr(rest) else {
                return Ok(None);
            };
            match rest.get(r + 1) {
                None => return Ok(None),
                Some(b'\n') => {}
                Some(_) => return Err(ReplyError::LineNotEnded),
            }
            let line = &rest[..r];
            let next = pos + 1 + r + 2;
            // No real reply comes near 2^32 elements or bytes; bigger counts
            // could only overflow the bookkeeping and misalign replies.
            let count = |line: &[u8]| match parse_int(line) {
                Some(n) if n <= MAX_COUNT => Ok(n),
                _ => Err(ReplyError::InvalidLength),
            };
            let (end, more) = match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => (next, 0),
                b'$' | b'!' | b'=' => {
                    let n = count(line)?;
                    if n < 0 {
                        (next, 0)
                    } else {
                        let end = next + n as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        if &buf[end - 2..end] != b"\r\n" {
                            return Err(ReplyError::BulkNotEnded);
                        }
                        (end, 0)
                    }
                }
                b'*' | b'~' | b'>' => (next, count(line)?.max(0) as u64),
                b'%' => (next, 2 * count(line)?.max(0) as u64),
                // An attribute map is followed by the value it describes.
                b'|' => (next, 2 * count(line)?.max(0) as u64 + 1),
                other => return Err(ReplyError::UnknownType(other)),
            };
            self.pos = end;
            self.remaining = (self.remaining - 1)
                .checked_add(more)
                .ok_or(ReplyError::AggregateTooLarge)?;
        }
        Ok(Some(self.pos))
    }
}

/// The length of the reply at the start of `buf` when it is whole and in
/// the form nearly every reply takes: a status or integer line, or a bulk
/// string whose length is written plainly. None for anything else
/// (incomplete, an error, an aggregate, RESP3, malformed), which `walk`
/// then reads and judges.
#[inline(always)]
fn plain_reply(buf: &[u8]) -> Option<usize> {
    match *buf.first()? {
        b'+' | b':' => {
            let r = find_cr(&buf[1..])?;
            (buf.get(r + 2) == Some(&b'\n')).then_some(r + 3)
        }
        b'$' => {
            let (n, next) = plain_count(buf, 1)?;
            let end = next.checked_add(n)?.checked_add(2)?;
            (n as u64 <= MAX_COUNT as u64 && buf.get(end - 2..end)? == b"\r\n").then_some(end)
        }
        _ => None,
    }
}

/// The code of an error reply, its first word (`WRONGPASS`, `ERR`, ...):
/// what kind of error it is, as clients tell them apart.
pub fn error_code(reply: &[u8]) -> &[u8] {
    let body = reply.get(1..).unwrap_or_default();
    let end = body
        .iter()
        .position(|&c| c == b' ' || c == b'\r')
        .unwrap_or(body.len());
    &body[..end]
}

/// One-shot scan of a complete reply (no resumption needed).
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    ReplyScanner::new().scan(buf)
}

/// The value of an integer reply (`:N\r\n`).
pub fn integer(reply: &[u8]) -> Option<i64> {
    if reply.first() != Some(&b':') || reply.len() < 4 {
        return None;
    }
    parse_int(&reply[1..reply.len() - 2])
}

/// Whether a reply is an error (`-...` or RESP3 blob error `!...`).
#[inline]
pub fn is_error(reply: &[u8]) -> bool {
    matches!(reply.first(), Some(b'-') | Some(b'!'))
}

/// The elements of an aggregate reply (`*`, `~`, `>`), as byte ranges into
/// `reply`; None when it is not an aggregate of `expect` elements.
pub fn elements(reply: &[u8], expect: usize, out: &mut Vec<(usize, usize)>) -> Option<()> {
    if !matches!(reply.first(), Some(b'*') | Some(b'~')) {
        return None;
    }
    let r = memchr::memchr(b'\r', reply)?;
    let n = parse_int(&reply[1..r])?;
    if n < 0 || n as usize != expect {
        return None;
    }
    elements_from(reply, r + 2, expect, out)
}

/// How many elements an array or set reply (`*`, `~`) holds, from its
/// header alone: the reply was framed whole, so they are all there.
pub fn array_len(reply: &[u8]) -> Option<usize> {
    if !matches!(reply.first(), Some(b'*') | Some(b'~')) {
        return None;
    }
    let r = memchr::memchr(b'\r', reply)?;
    usize::try_from(parse_int(&reply[1..r])?).ok()
}

/// The elements of an aggregate reply of any length (`*`, `~`); None when
/// it is not one (a null array `*-1` has none).
pub fn aggregate(reply: &[u8], out: &mut Vec<(usize, usize)>) -> Option<()> {
    if !matches!(reply.first(), Some(b'*') | Some(b'~')) {
        return None;
    }
    let r = memchr::memchr(b'\r', reply)?;
    let n = parse_int(&reply[1..r])?.max(0) as usize;
    elements(reply, n, out).or_else(|| (n == 0).then_some(()))
}

/// Like `aggregate`, RESP3 pushes (`>`) included.
pub fn aggregate_any(reply: &[u8], out: &mut Vec<(usize, usize)>) -> Option<()> {
    if reply.first() == Some(&b'>') {
        let r = memchr::memchr(b'\r', reply)?;
        let n = parse_int(&reply[1..r])?.max(0) as usize;
        return elements_from(reply, r + 2, n, out);
    }
    aggregate(reply, out)
}

/// The keys and values of a map reply, flattened (`%n`: 2n elements), or
/// the elements of an array (RESP2 writes maps as flat arrays).
pub fn map_entries(reply: &[u8], out: &mut Vec<(usize, usize)>) -> Option<()> {
    if reply.first() == Some(&b'%') {
        let r = memchr::memchr(b'\r', reply)?;
        let n = parse_int(&reply[1..r])?.max(0) as usize;
        return elements_from(reply, r + 2, 2 * n, out);
    }
    aggregate(reply, out)
}

/// `n` elements of `reply` from `pos` on, as ranges.
fn elements_from(
    reply: &[u8],
    mut pos: usize,
    n: usize,
    out: &mut Vec<(usize, usize)>,
) -> Option<()> {
    for _ in 0..n {
        let len = reply_len(reply.get(pos..)?).ok()??;
        out.push((pos, pos + len));
        pos += len;
    }
    Some(())
}

/// The payload of a bulk (`$`), simple (`+`) or RESP3 verbatim (`=`,
/// its `txt:` format prefix dropped) string reply; None for anything else
/// (null included).
pub fn string(reply: &[u8]) -> Option<&[u8]> {
    match reply.first()? {
        b'+' | b'$' | b'=' if reply.len() >= 3 => {
            let r = memchr::memchr(b'\r', reply)?;
            if reply[0] == b'+' {
                return Some(&reply[1..r]);
            }
            let n = usize::try_from(parse_int(&reply[1..r])?).ok()?;
            let payload = reply.get(r + 2..r + 2 + n)?;
            if reply[0] == b'=' {
                return payload.get(4..);
            }
            Some(payload)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_and_strings_of_any_length() {
        let mut out = Vec::new();
        assert!(aggregate(b"*0\r\n", &mut out).is_some() && out.is_empty());
        assert!(aggregate(b"*-1\r\n", &mut out).is_some() && out.is_empty());
        let r = b"*2\r\n$1\r\na\r\n:5\r\n";
        assert!(aggregate(r, &mut out).is_some());
        assert_eq!(out, vec![(4, 11), (11, 15)]);
        assert!(aggregate(b":1\r\n", &mut out).is_none());
        assert_eq!(string(b"$3\r\nabc\r\n"), Some(&b"abc"[..]));
        assert_eq!(string(b"+OK\r\n"), Some(&b"OK"[..]));
        assert_eq!(string(b"$-1\r\n"), None);
        assert_eq!(string(b"$9\r\nab\r\n"), None);
        assert_eq!(string(b"=7\r\ntxt:abc\r\n"), Some(&b"abc"[..]));
    }

    #[test]
    fn every_resp2_and_resp3_type() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR bad\r\n",
            b":42\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n",
            b"_\r\n",
            b",3.14\r\n",
            b"#t\r\n",
            b"(3492890328409238509324850943850943825024385\r\n",
            b"!21\r\nSYNTAX invalid syntax\r\n",
            b"=15\r\ntxt:Some string\r\n",
            b"%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n_\r\n",
            b"~2\r\n+a\r\n+b\r\n",
            b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n",
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:7\r\n",
        ];
        for c in cases {
            let mut with_more = c.to_vec();
            with_more.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(
                reply_len(&with_more),
                Ok(Some(c.len())),
                "{:?}",
                String::from_utf8_lossy(c)
            );
            for i in 0..c.len() {
                assert_eq!(
                    reply_len(&c[..i]),
                    Ok(None),
                    "prefix {i} of {:?}",
                    String::from_utf8_lossy(c)
                );
            }
        }
    }

    #[test]
    fn resumes_across_reads() {
        let full = b"*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n:2\r\n+x\r\n";
        let mut s = ReplyScanner::new();
        for i in 0..full.len() {
            assert_eq!(s.scan(&full[..i]), Ok(None));
        }
        assert_eq!(s.scan(full), Ok(Some(full.len())));
        // The scanner is ready for the next reply.
        assert_eq!(s.scan(b":1\r\n"), Ok(Some(4)));
    }

    #[test]
    fn huge_counts_are_errors_not_overflows() {
        // Found in review: the pending count overflowed, so a backend could
        // end a reply early and misalign replies across clients.
        let evil =
            b"*3\r\n*9223372036854775807\r\n*9223372036854775807\r\n*9223372036854775807\r\n";
        assert!(reply_len(evil).is_err());
        assert!(reply_len(b"$9223372036854775807\r\n").is_err());
        assert!(reply_len(b"%4294967296\r\n").is_err());
        let mut s = ReplyScanner::new();
        let mut deep = Vec::new();
        for _ in 0..3 {
            deep.extend_from_slice(b"*4294967295\r\n");
        }
        assert!(s.scan(&deep).is_err() || s.scan(&deep) == Ok(None));
    }

    /// The plain path answers as the walk does wherever it answers: every
    /// prefix of common replies, and each with one byte changed.
    #[test]
    fn plain_replies_agree_with_the_walk() {
        let walked = |buf: &[u8]| {
            let mut s = ReplyScanner {
                pos: 0,
                remaining: 1,
            };
            s.walk(buf)
        };
        let replies: &[&[u8]] = &[
            b"+OK\r\n",
            b"+a much longer status line than sixteen bytes\r\n",
            b":12345\r\n",
            b"$16\r\nxxxxxxxxxxxxxxxx\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"$120\r\n",
        ];
        let mut checked = 0;
        for r in replies {
            let mut r = r.to_vec();
            if r.starts_with(b"$120") {
                r.extend_from_slice(&[b'v'; 120]);
                r.extend_from_slice(b"\r\n");
            }
            for at in 0..=r.len() {
                for flip in [
                    None,
                    Some(b'\r'),
                    Some(b'\n'),
                    Some(b'0'),
                    Some(b'-'),
                    Some(b'x'),
                ] {
                    let mut b = r.clone();
                    if let Some(c) = flip {
                        if at == b.len() {
                            continue;
                        }
                        b[at] = c;
                    }
                    for end in 0..=b.len() {
                        if let Some(len) = plain_reply(&b[..end]) {
                            assert_eq!(Ok(Some(len)), walked(&b[..end]), "{:?}", &b[..end]);
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn rejects_garbage() {
        assert!(reply_len(b"?what\r\n").is_err());
        assert!(reply_len(b"$3\r\nabcde\r\n").is_err());
        assert!(reply_len(b"*x\r\n").is_err());
    }

    #[test]
    fn integers_errors_and_elements() {
        assert_eq!(integer(b":17\r\n"), Some(17));
        assert_eq!(integer(b":-3\r\n"), Some(-3));
        assert_eq!(integer(b"+OK\r\n"), None);
        assert!(is_error(b"-ERR x\r\n"));
        assert!(!is_error(b"+OK\r\n"));
        let r = b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n";
        let mut out = Vec::new();
        assert_eq!(elements(r, 3, &mut out), Some(()));
        assert_eq!(out, vec![(4, 11), (11, 16), (16, 19)]);
        out.clear();
        assert_eq!(elements(r, 2, &mut out), None);
    }
}

#[cfg(test)]
mod random_tests {
    use super::*;

    #[test]
    fn mutated_replies_never_panic_and_resume_like_whole() {
        let base: &[&[u8]] = &[
            b"*3\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n%1\r\n+k\r\n~2\r\n#t\r\n,1.5\r\n",
            b"|1\r\n+a\r\n:1\r\n>2\r\n+x\r\n=5\r\ntxt:y\r\n",
            b"!3\r\nERR\r\n_\r\n(12345\r\n-ERR x\r\n",
        ];
        let mut rng = crate::testing::Rng(0x1234_5678_9abc_def1);
        let mut next = |n: usize| rng.below(n);
        for _ in 0..20000 {
            let mut s = base[next(base.len())].to_vec();
            for _ in 0..next(4) {
                let at = next(s.len());
                s[at] = b"*$%|>\r\n-0123456789"[next(18)];
            }
            let whole = reply_len(&s);
            let mut sc = ReplyScanner::new();
            let mut end = 0;
            let mut got = Ok(None);
            while end < s.len() {
                end = (end + 1 + next(5)).min(s.len());
                got = sc.scan(&s[..end]);
                if !matches!(got, Ok(None)) {
                    break;
                }
            }
            if let (Ok(Some(a)), Ok(Some(b))) = (&got, &whole) {
                assert!(a <= b || *a == *b);
            }
        }
    }
}
