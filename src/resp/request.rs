//! Request scanner: finds where each client request ends and where its
//! arguments are, without copying them. A request that is not complete yet
//! is resumed where the last scan stopped, so a huge pipeline or value that
//! arrives in many reads is scanned once, not once per read.

use super::{parse_int, plain_count, Limits};

/// One argument: a byte range relative to the start of its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    pub start: usize,
    pub end: usize,
}

/// A scanned request: its RESP encoding and where its arguments are in it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub frame: &'a [u8],
    pub args: &'a [Arg],
}

impl<'a> Request<'a> {
    pub fn new(frame: &'a [u8], args: &'a [Arg]) -> Request<'a> {
        Request { frame, args }
    }

    /// Argument `i` (0: the command name). Panics past `argc`, as slices do.
    pub fn arg(&self, i: usize) -> &'a [u8] {
        let a = self.args[i];
        &self.frame[a.start..a.end]
    }

    /// Argument `i`, or None past the last.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.args.get(i).map(|a| &self.frame[a.start..a.end])
    }

    pub fn argc(&self) -> usize {
        self.args.len()
    }
}

/// What the scanner found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned {
    /// A multibulk request of `len` bytes; its arguments are in `args()`.
    Frame { len: usize },
    /// An inline request of `len` bytes; it was re-encoded as a multibulk
    /// into `inline_frame()`, which `args()` index into.
    Inline { len: usize },
    /// `len` bytes holding no command (empty line, `*0`): drop them.
    Empty { len: usize },
    /// The request is not complete: nothing new can be found before the
    /// buffer holds at least `need` bytes.
    Incomplete { need: usize },
}

/// A violation of the protocol by a client, as Redis names it (its text,
/// Redis's to the letter, is in `errors`); the connection then closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A `*` count line longer than any count.
    MultibulkCountTooLong,
    /// A `*` count over the unauthenticated client's limit.
    UnauthenticatedMultibulk,
    InvalidMultibulk,
    /// An argument that does not start with `$`: the byte found.
    ExpectedBulk(u8),
    BulkCountTooLong,
    UnauthenticatedBulk,
    InvalidBulk,
    /// Bulk data not followed by CRLF.
    BulkNotEnded,
    InlineTooBig,
    UnbalancedQuotes,
}

/// Where an incomplete multibulk stopped: arguments still to read and the
/// offset of the next one.
#[derive(Debug, Clone, Copy)]
struct Partial {
    remaining: usize,
    pos: usize,
}

#[derive(Debug)]
pub struct RequestScanner {
    limits: Limits,
    args: Vec<Arg>,
    inline: Vec<u8>,
    partial: Option<Partial>,
}

impl RequestScanner {
    /// Frees argument storage grown by one huge request, unless a request
    /// is part-scanned: its arguments so far are kept.
    pub fn trim(&mut self) {
        if self.partial.is_some() {
            return;
        }
        if self.args.capacity() > 4096 {
            self.args = Vec::with_capacity(16);
        }
        if self.inline.capacity() > 64 * 1024 {
            self.inline = Vec::new();
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn new(limits: Limits) -> Self {
        RequestScanner {
            limits,
            // Grows with the first request: an idle connection holds none.
            args: Vec::new(),
            inline: Vec::new(),
            partial: None,
        }
    }

    /// The arguments of the last `Frame` or `Inline` found.
    #[inline]
    pub fn args(&self) -> &[Arg] {
        &self.args
    }

    /// The multibulk encoding of the last `Inline` request.
    pub fn inline_frame(&self) -> &[u8] {
        &self.inline
    }

    /// Scans the request at the start of `buf`. After `Incomplete`, call
    /// again with the same bytes at the start of `buf` plus whatever arrived.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Scanned, ProtocolError> {
        let result = match buf.first() {
            None => Ok(Scanned::Incomplete { need: 1 }),
            Some(b'*') => self.scan_multibulk(buf),
            Some(_) => self.scan_inline(buf),
        };
        if !matches!(result, Ok(Scanned::Incomplete { .. })) {
            self.partial = None;
        }
        result
    }

    fn scan_multibulk(&mut self, buf: &[u8]) -> Result<Scanned, ProtocolError> {
        let mut st = match self.partial {
            Some(p) => p,
            None => {
                let (count, next) = match plain_count(buf, 1) {
                    Some((n, next)) if n <= self.limits.max_multibulk_len => (n as i64, next),
                    _ => match self.multibulk_count(buf)? {
                        Some(found) => found,
                        None => {
                            return Ok(Scanned::Incomplete {
                                need: buf.len() + 1,
                            })
                        }
                    },
                };
                if count <= 0 {
                    return Ok(Scanned::Empty { len: next });
                }
                self.args.clear();
                self.args.reserve((count as usize).min(1024));
                Partial {
                    remaining: count as usize,
                    pos: next,
                }
            }
        };
        while st.remaining > 0 {
            let pos = st.pos;
            let Some(&first) = buf.get(pos) else {
                self.partial = Some(st);
                return Ok(Scanned::Incomplete { need: pos + 1 });
            };
            if first != b'$' {
                return Err(ProtocolError::ExpectedBulk(first));
            }
            let (len, next) = match plain_count(buf, pos + 1) {
                Some((n, next)) if n <= self.limits.max_bulk_len => (n, next),
                _ => match self.bulk_len(buf, pos + 1)? {
                    Some(found) => found,
                    None => {
                        self.partial = Some(st);
                        return Ok(Scanned::Incomplete {
                            need: buf.len() + 1,
                        });
                    }
                },
            };
            let end = next + len;
            if buf.len() < end + 2 {
                self.partial = Some(st);
                return Ok(Scanned::Incomplete { need: end + 2 });
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ProtocolError::BulkNotEnded);
            }
            self.args.push(Arg { start: next, end });
            st.pos = end + 2;
            st.remaining -= 1;
        }
        Ok(Scanned::Frame { len: st.pos })
    }

    /// The `*` count line at the start of `buf`, any form: the count and
    /// the offset after the line, None while incomplete.
    #[cold]
    fn multibulk_count(&self, buf: &[u8]) -> Result<Option<(i64, usize)>, ProtocolError> {
        let (line, next) = match header_line(buf, 1, self.limits.max_inline_len) {
            Line::Found(line, next) => (line, next),
            Line::Incomplete => return Ok(None),
            Line::TooLong => return Err(ProtocolError::MultibulkCountTooLong),
        };
        match parse_int(line) {
            Some(n) if n <= self.limits.max_multibulk_len as i64 => Ok(Some((n, next))),
            Some(n) if self.limits.unauthenticated && n <= i32::MAX as i64 => {
                Err(ProtocolError::UnauthenticatedMultibulk)
            }
            _ => Err(ProtocolError::InvalidMultibulk),
        }
    }

    /// The `$` length line starting at `from`, any form: the length and
    /// the offset after the line, None while incomplete.
    #[cold]
    fn bulk_len(&self, buf: &[u8], from: usize) -> Result<Option<(usize, usize)>, ProtocolError> {
        let (line, next) = match header_line(buf, from, self.limits.max_inline_len) {
            Line::Found(line, next) => (line, next),
            Line::Incomplete => return Ok(None),
            Line::TooLong => return Err(ProtocolError::BulkCountTooLong),
        };
        match parse_int(line) {
            Some(n) if n >= 0 && n as usize <= self.limits.max_bulk_len => {
                Ok(Some((n as usize, next)))
            }
            Some(n) if self.limits.unauthenticated && (0..=512 * 1024 * 1024).contains(&n) => {
                Err(ProtocolError::UnauthenticatedBulk)
            }
            _ => Err(ProtocolError::InvalidBulk),
        }
    }

    fn scan_inline(&mut self, buf: &[u8]) -> Result<Scanned, ProtocolError> {
        let max = self.limits.max_inline_len;
        let nl = match memchr::memchr(b'\n', buf) {
            Some(nl) if nl <= max => nl,
            Some(_) => return Err(ProtocolError::InlineTooBig),
            None if buf.len() > max => return Err(ProtocolError::InlineTooBig),
            None => {
                return Ok(Scanned::Incomplete {
                    need: buf.len() + 1,
                })
            }
        };
        let mut line = &buf[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let words = split_args(line).ok_or(ProtocolError::UnbalancedQuotes)?;
        if words.is_empty() {
            return Ok(Scanned::Empty { len: nl + 1 });
        }
        self.args.clear();
        self.inline.clear();
        super::write::array_header(&mut self.inline, words.len());
        for w in &words {
            super::write::bulk_header(&mut self.inline, w.len());
            let start = self.inline.len();
            self.inline.extend_from_slice(w);
            self.args.push(Arg {
                start,
                end: start + w.len(),
            });
            self.inline.extend_from_slice(b"\r\n");
        }
        Ok(Scanned::Inline { len: nl + 1 })
    }
}

enum Line<'a> {
    Found(&'a [u8], usize),
    Incomplete,
    TooLong,
}

/// The header line starting at `from` (without its CRLF) and the offset
/// after its CRLF.
#[inline]
fn header_line(buf: &[u8], from: usize, max: usize) -> Line<'_> {
    let rest = buf.get(from..).unwrap_or(&[]);
    match super::find_cr(rest) {
        Some(r) if r > max => Line::TooLong,
        Some(r) => match rest.get(r + 1) {
            Some(b'\n') => Line::Found(&rest[..r], from + r + 2),
            // A lone CR makes the number invalid; let the parser say so.
            Some(_) => Line::Found(&rest[..r + 1], from + r + 2),
            None => Line::Incomplete,
        },
        None if rest.len() > max => Line::TooLong,
        None => Line::Incomplete,
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline command line into arguments with Redis's rules
/// (`sdssplitargs`): whitespace separated, "double quotes" with `\n`, `\xHH`
/// escapes, 'single quotes' with `\'`. None when quotes are unbalanced or a
/// closing quote is not followed by a space.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // A NUL is an ordinary byte of its word: cutting the line there (as a
    // C string would) ran the command's first half as if it were whole.
    let mut out = Vec::new();
    let mut p = 0;
    let n = line.len();
    loop {
        while p < n && is_space(line[p]) {
            p += 1;
        }
        if p >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            if dq {
                if p >= n {
                    return None;
                }
                let c = line[p];
                if c == b'\\' && p + 3 < n && line[p + 1] == b'x' {
                    if let (Some(h), Some(l)) = (hex(line[p + 2]), hex(line[p + 3])) {
                        cur.push(h * 16 + l);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' && p + 1 < n {
                    cur.push(match line[p + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    p += 2;
                } else if c == b'"' {
                    if p + 1 < n && !is_space(line[p + 1]) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else if sq {
                if p >= n {
                    return None;
                }
                let c = line[p];
                if c == b'\\' && p + 1 < n && line[p + 1] == b'\'' {
                    cur.push(b'\'');
                    p += 2;
                } else if c == b'\'' {
                    if p + 1 < n && !is_space(line[p + 1]) {
                        return None;
                    }
                    p += 1;
                    break;
                } else {
                    cur.push(c);
                    p += 1;
                }
            } else {
                if p >= n {
                    break;
                }
                match line[p] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => dq = true,
                    b'\'' => sq = true,
                    c => cur.push(c),
                }
                p += 1;
            }
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> RequestScanner {
        RequestScanner::new(Limits::default())
    }

    fn args_of<'a>(s: &RequestScanner, frame: &'a [u8]) -> Vec<&'a [u8]> {
        s.args().iter().map(|a| &frame[a.start..a.end]).collect()
    }

    #[test]
    fn multibulk_frame_and_args() {
        let mut s = scanner();
        let buf = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n*1\r\n$4\r\nPING\r\n";
        assert_eq!(s.scan(buf), Ok(Scanned::Frame { len: 22 }));
        assert_eq!(args_of(&s, buf), vec![&b"GET"[..], b"foo"]);
        assert_eq!(s.scan(&buf[22..]), Ok(Scanned::Frame { len: 14 }));
        assert_eq!(args_of(&s, &buf[22..]), vec![&b"PING"[..]]);
    }

    #[test]
    fn trimming_between_reads_keeps_a_part_scanned_request() {
        // Found in review: a session trims the scanner after each batch of
        // replies; with a big request half read behind a small one, its
        // arguments so far were dropped and the rest were taken for the
        // whole (MSET then MGET of 20,000 keys, pipelined: the MGET went
        // to the backends as "k6055 k6056 ...").
        let mut big: Vec<u8> = b"*20001\r\n$4\r\nMGET\r\n".to_vec();
        for i in 0..20000 {
            big.extend_from_slice(format!("$6\r\nk{i:05}\r\n").as_bytes());
        }
        let mut s = scanner();
        let half = big.len() / 2;
        assert!(matches!(
            s.scan(&big[..half]),
            Ok(Scanned::Incomplete { .. })
        ));
        s.trim();
        assert_eq!(s.scan(&big), Ok(Scanned::Frame { len: big.len() }));
        let args = args_of(&s, &big);
        assert_eq!(args.len(), 20001);
        assert_eq!(
            (args[0], args[1], args[20000]),
            (&b"MGET"[..], &b"k00000"[..], &b"k19999"[..])
        );
        // Between requests it frees what the big one grew.
        s.trim();
        assert!(s.args.capacity() <= 4096);
    }

    #[test]
    fn one_byte_at_a_time() {
        let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut s = scanner();
        for i in 1..full.len() {
            match s.scan(&full[..i]) {
                Ok(Scanned::Incomplete { need }) => assert!(need > i),
                other => panic!("at {i}: {other:?}"),
            }
        }
        assert_eq!(s.scan(full), Ok(Scanned::Frame { len: full.len() }));
        assert_eq!(args_of(&s, full), vec![&b"SET"[..], b"k", b"hello"]);
    }

    #[test]
    fn incomplete_bulk_says_how_much_is_needed() {
        let mut s = scanner();
        let buf = b"*2\r\n$3\r\nSET\r\n$10\r\nabc";
        assert_eq!(s.scan(buf), Ok(Scanned::Incomplete { need: 30 }));
    }

    #[test]
    fn empty_and_negative_multibulk_are_skipped() {
        let mut s = scanner();
        assert_eq!(s.scan(b"*0\r\n"), Ok(Scanned::Empty { len: 4 }));
        assert_eq!(s.scan(b"*-1\r\n"), Ok(Scanned::Empty { len: 5 }));
        assert_eq!(s.scan(b"\r\n"), Ok(Scanned::Empty { len: 2 }));
    }

    #[test]
    fn protocol_errors_as_redis_words_them() {
        let err = |b: &[u8]| scanner().scan(b).unwrap_err().to_string();
        assert_eq!(err(b"*x\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1048577\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\nfoo\r\n"), "expected '$', got 'f'");
        assert_eq!(err(b"*1\r\n$-1\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$536870913\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$3\r\nfooXY"), "expected CRLF after bulk data");
        assert_eq!(err(b"\"unbalanced\r\n"), "unbalanced quotes in request");
        let big = vec![b'a'; 64 * 1024 + 1];
        assert_eq!(err(&big), "too big inline request");
        let mut mb = b"*".to_vec();
        mb.extend(vec![b'1'; 64 * 1024 + 1]);
        assert_eq!(err(&mb), "too big mbulk count string");
        let mut bb = b"*1\r\n$".to_vec();
        bb.extend(vec![b'1'; 64 * 1024 + 1]);
        assert_eq!(err(&bb), "too big bulk count string");
    }

    #[test]
    fn plain_counts_agree_with_the_rule_for_every_short_line() {
        // The rule: 1 to 18 digits, no leading zero unless alone, then CRLF.
        let rule = |line: &[u8]| -> Option<(usize, usize)> {
            let digits = line.iter().take_while(|c| c.is_ascii_digit()).count();
            let plain = (1..=18).contains(&digits) && (digits == 1 || line[0] != b'0');
            let crlf = line.get(digits..digits + 2) == Some(&b"\r\n"[..]);
            let n = std::str::from_utf8(&line[..digits]).ok()?.parse().ok()?;
            (plain && crlf).then_some((n, digits + 2))
        };
        let alphabet = b"0179\r\nx";
        let mut lines = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = lines
                .iter()
                .flat_map(|l| alphabet.iter().map(move |&c| [&l[..], &[c]].concat()))
                .collect();
            lines.extend(longer);
        }
        lines.sort();
        lines.dedup();
        for line in &lines {
            assert_eq!(
                plain_count(line, 0),
                rule(line),
                "{:?}",
                line.escape_ascii().to_string()
            );
            let shifted = [&b"$"[..], line].concat();
            assert_eq!(
                plain_count(&shifted, 1),
                rule(line).map(|(n, next)| (n, next + 1))
            );
        }
    }

    #[test]
    fn counts_off_the_plain_path_are_judged_as_before() {
        let err = |b: &[u8]| scanner().scan(b).unwrap_err().to_string();
        // Leading zeros, signs, empty, a lone CR: the general path's errors.
        assert_eq!(err(b"*01\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*+1\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*\r\n"), "invalid multibulk length");
        assert_eq!(err(b"*1\rx"), "invalid multibulk length");
        assert_eq!(err(b"*1\r\n$03\r\nfoo\r\n"), "invalid bulk length");
        assert_eq!(err(b"*1\r\n$\r\n"), "invalid bulk length");
        // 18 and 19 digits: over the limits either way.
        assert_eq!(err(b"*1\r\n$999999999999999999\r\n"), "invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$9999999999999999999\r\n"),
            "invalid bulk length"
        );
        assert_eq!(
            err(b"*1\r\n$99999999999999999999\r\n"),
            "invalid bulk length"
        );
        // Zero, and a count cut before its LF, resumed.
        let mut s = scanner();
        assert_eq!(s.scan(b"*1\r\n$0\r\n\r\n"), Ok(Scanned::Frame { len: 10 }));
        assert_eq!(s.scan(b"*0\r\n"), Ok(Scanned::Empty { len: 4 }));
        assert_eq!(s.scan(b"*1\r"), Ok(Scanned::Incomplete { need: 4 }));
        assert_eq!(s.scan(b"*1\r\n$3\r"), Ok(Scanned::Incomplete { need: 8 }));
        assert_eq!(
            s.scan(b"*1\r\n$3\r\nfoo\r\n"),
            Ok(Scanned::Frame { len: 13 })
        );
    }

    #[test]
    fn limits_are_configurable() {
        let mut s = RequestScanner::new(Limits {
            max_multibulk_len: 2,
            max_bulk_len: 4,
            ..Limits::default()
        });
        assert!(s.scan(b"*3\r\n").is_err());
        assert!(s.scan(b"*1\r\n$5\r\n").is_err());
        assert_eq!(
            s.scan(b"*1\r\n$4\r\nabcd\r\n"),
            Ok(Scanned::Frame { len: 14 })
        );
    }

    #[test]
    fn inline_commands_become_multibulk() {
        let mut s = scanner();
        assert_eq!(
            s.scan(b"set k \"a b\\x41\\n\"\r\n"),
            Ok(Scanned::Inline { len: 19 })
        );
        let frame = s.inline_frame().to_vec();
        assert_eq!(frame, b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$5\r\na bA\n\r\n");
        assert_eq!(args_of(&s, &frame), vec![&b"set"[..], b"k", b"a bA\n"]);
        assert_eq!(s.scan(b"PING\n"), Ok(Scanned::Inline { len: 5 }));
        assert_eq!(s.scan(b"   \r\n"), Ok(Scanned::Empty { len: 5 }));
        assert_eq!(s.scan(b"PIN"), Ok(Scanned::Incomplete { need: 4 }));
    }

    #[test]
    fn inline_nul_is_part_of_its_word_and_never_loops() {
        // Found by the random test: "a\0b" made split_args push empty
        // arguments forever (NUL ended a word but was not skipped).
        // Issue 12: cutting the line at the NUL instead ran "SET k a" for
        // "SET k a\0b c"; the NUL now stays inside its word.
        assert_eq!(
            split_args(b"a\0b c").unwrap(),
            vec![b"a\0b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(split_args(b"\0").unwrap(), vec![b"\0".to_vec()]);
        assert_eq!(
            split_args(b"\"x\0\" '\0'").unwrap(),
            vec![b"x\0".to_vec(), b"\0".to_vec()]
        );
        let mut s = scanner();
        assert_eq!(s.scan(b"PING\0junk\r\n"), Ok(Scanned::Inline { len: 11 }));
        assert_eq!(s.inline_frame(), b"*1\r\n$9\r\nPING\0junk\r\n");
    }

    #[test]
    fn unauthenticated_limits_say_so_as_redis_does() {
        let mut s = RequestScanner::new(Limits::UNAUTHENTICATED);
        let err = |s: &mut RequestScanner, b: &[u8]| match s.scan(b) {
            Err(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(err(&mut s, b"*11\r\n"), "unauthenticated multibulk length");
        assert_eq!(err(&mut s, b"*3000000000\r\n"), "invalid multibulk length");
        assert_eq!(
            err(&mut s, b"*2\r\n$20000\r\n"),
            "unauthenticated bulk length"
        );
        assert_eq!(err(&mut s, b"*2\r\n$-1\r\n"), "invalid bulk length");
        assert_eq!(err(&mut s, b"*2\r\n$600000000\r\n"), "invalid bulk length");
        assert!(matches!(s.scan(b"*10\r\n"), Ok(Scanned::Incomplete { .. })));
    }

    #[test]
    fn multibulk_counts_up_to_int_max_are_accepted_when_configured() {
        let mut s = RequestScanner::new(Limits {
            max_multibulk_len: i32::MAX as usize,
            ..Limits::default()
        });
        assert!(matches!(
            s.scan(b"*2000000\r\n"),
            Ok(Scanned::Incomplete { .. })
        ));
        let mut s = RequestScanner::new(Limits {
            max_multibulk_len: i32::MAX as usize,
            ..Limits::default()
        });
        assert!(s.scan(b"*2147483648\r\n").is_err());
    }

    #[test]
    fn split_args_quotes() {
        assert_eq!(
            split_args(b"a 'b c' \"d\\\"e\" 'it\\'s'").unwrap(),
            vec![
                b"a".to_vec(),
                b"b c".to_vec(),
                b"d\"e".to_vec(),
                b"it's".to_vec()
            ]
        );
        assert!(split_args(b"\"abc\"def").is_none());
        assert!(split_args(b"'abc").is_none());
        assert_eq!(split_args(b"").unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn huge_pipeline_resumes_instead_of_rescanning() {
        let mut buf = b"*3\r\n".to_vec();
        let mut s = scanner();
        buf.extend_from_slice(b"$4\r\nMSET\r\n$1\r\na\r\n");
        assert!(matches!(s.scan(&buf), Ok(Scanned::Incomplete { .. })));
        // Corrupt an already scanned byte: a resumed scan does not look at it again.
        buf[5] = b'X';
        buf.extend_from_slice(b"$1\r\nb\r\n");
        assert!(matches!(s.scan(&buf), Ok(Scanned::Frame { .. })));
    }
}

#[cfg(test)]
mod random_tests {
    use super::*;
    use crate::testing::Rng;

    /// Frames found (kind, bytes, args) and the error that stopped the scan.
    type Scan = (Vec<(u8, usize, Vec<Vec<u8>>)>, Option<String>);

    /// Scans every complete request at the start of `buf` into `out`, as a
    /// session does after a read; returns the bytes consumed and the error
    /// that stopped the scan, if any.
    fn scan_all(
        s: &mut RequestScanner,
        buf: &[u8],
        out: &mut Vec<(u8, usize, Vec<Vec<u8>>)>,
    ) -> (usize, Option<String>) {
        let mut pos = 0;
        loop {
            let (kind, len) = match s.scan(&buf[pos..]) {
                Ok(Scanned::Frame { len }) => (b'f', len),
                Ok(Scanned::Inline { len }) => (b'i', len),
                Ok(Scanned::Empty { len }) => {
                    pos += len;
                    continue;
                }
                Ok(Scanned::Incomplete { .. }) => return (pos, None),
                Err(e) => return (pos, Some(e.to_string())),
            };
            let f = if kind == b'f' {
                buf[pos..pos + len].to_vec()
            } else {
                s.inline_frame().to_vec()
            };
            out.push((
                kind,
                len,
                s.args()
                    .iter()
                    .map(|a| f[a.start..a.end].to_vec())
                    .collect(),
            ));
            pos += len;
        }
    }

    /// Frames of a stream fed whole: (kind, bytes consumed, args) or the error.
    fn frames(s: &mut RequestScanner, stream: &[u8]) -> Scan {
        let mut out = Vec::new();
        let (_, err) = scan_all(s, stream, &mut out);
        (out, err)
    }

    /// The same stream arriving in random chunks, scanned as a session does.
    fn frames_chunked(rng: &mut Rng, stream: &[u8]) -> Scan {
        let mut s = RequestScanner::new(Limits::default());
        let mut out = Vec::new();
        let (mut start, mut end) = (0, 0);
        while end < stream.len() {
            end = (end + 1 + rng.below(7)).min(stream.len());
            let (used, err) = scan_all(&mut s, &stream[start..end], &mut out);
            start += used;
            if err.is_some() {
                return (out, err);
            }
        }
        (out, None)
    }

    fn valid_stream(rng: &mut Rng) -> Vec<u8> {
        let mut s = Vec::new();
        for _ in 0..rng.below(20) {
            if rng.below(5) == 0 {
                s.extend_from_slice(b"PING  x \"a b\"\r\n");
                continue;
            }
            let n = 1 + rng.below(5);
            s.extend(format!("*{n}\r\n").bytes());
            for _ in 0..n {
                let len = rng.below(12);
                s.extend(format!("${len}\r\n").bytes());
                s.extend((0..len).map(|_| rng.below(256) as u8));
                s.extend_from_slice(b"\r\n");
            }
        }
        s
    }

    #[test]
    fn chunked_input_scans_like_whole_input() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..3000 {
            let stream = valid_stream(&mut rng);
            let whole = frames(&mut RequestScanner::new(Limits::default()), &stream);
            assert_eq!(whole.1, None);
            assert_eq!(frames_chunked(&mut rng, &stream), whole);
        }
    }

    #[test]
    fn garbage_never_panics_and_errors_match_whole_input() {
        let mut rng = Rng(0xdead_beef_0bad_f00d);
        for _ in 0..20000 {
            let mut stream = valid_stream(&mut rng);
            // Mutate: flip, insert or cut bytes, sometimes protocol bytes.
            for _ in 0..1 + rng.below(4) {
                if stream.is_empty() {
                    break;
                }
                let at = rng.below(stream.len());
                match rng.below(3) {
                    0 => stream[at] = b"*$\r\n-0123456789x"[rng.below(16)],
                    1 => stream.insert(at, rng.below(256) as u8),
                    _ => {
                        stream.remove(at);
                    }
                }
            }
            let whole = frames(&mut RequestScanner::new(Limits::default()), &stream);
            let chunked = frames_chunked(&mut rng, &stream);
            // Chunked scanning may stop at an incomplete tail that the whole
            // stream shows as an error, never the other way round.
            assert!(whole.0.starts_with(&chunked.0) || chunked.0 == whole.0);
            if chunked.1.is_some() {
                assert_eq!(chunked, whole);
            }
        }
    }
}
