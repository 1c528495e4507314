//! Plain reference decoders of RESP, written to be obviously right rather
//! than fast (recursive, no resumption, no buffers kept), and the checks
//! that hold the scanners to them: the request scanner and the reply
//! scanner must find the same frames, arguments and errors as these, fed
//! whole or in pieces. Run by a seeded test in `cargo test` and by the
//! cargo-fuzz targets in `fuzz/` (feature `fuzzing`).

use super::reply::{reply_len, ReplyScanner};
use super::request::{RequestScanner, Scanned};
use super::Limits;

/// A multibulk request at the start of a buffer, as the reference reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Frame {
        len: usize,
        args: Vec<Vec<u8>>,
    },
    /// `*0` or a negative count: no command.
    Empty {
        len: usize,
    },
    Incomplete,
    Invalid,
}

/// A decimal as Redis's `string2ll` takes it: `-` allowed, no `+`, no
/// leading zero, no `-0`, within i64.
fn int(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

/// The line starting at `from` up to its CR, and where the next starts.
/// None: not all here; Some(Err): a CR not followed by LF; lines longer
/// than `max` are invalid.
fn line(buf: &[u8], from: usize, max: usize) -> Option<Result<(&[u8], usize), ()>> {
    let rest = buf.get(from..)?;
    let Some(cr) = rest.iter().position(|&c| c == b'\r') else {
        return (rest.len() > max).then_some(Err(()));
    };
    if cr > max {
        return Some(Err(()));
    }
    match rest.get(cr + 1) {
        None => None,
        Some(b'\n') => Some(Ok((&rest[..cr], from + cr + 2))),
        Some(_) => Some(Err(())),
    }
}

/// The request at the start of `buf` if it is a multibulk one (inline
/// requests are not modelled here).
pub fn request(buf: &[u8], limits: &Limits) -> Option<Request> {
    if buf.first() != Some(&b'*') {
        return None;
    }
    let max_line = limits.max_inline_len;
    let (count, mut pos) = match line(buf, 1, max_line) {
        None => return Some(Request::Incomplete),
        Some(Err(())) => return Some(Request::Invalid),
        Some(Ok((l, next))) => match int(l) {
            Some(n) if n <= limits.max_multibulk_len as i64 => (n, next),
            _ => return Some(Request::Invalid),
        },
    };
    if count <= 0 {
        return Some(Request::Empty { len: pos });
    }
    let mut args = Vec::new();
    for _ in 0..count {
        match buf.get(pos) {
            None => return Some(Request::Incomplete),
            Some(b'$') => {}
            Some(_) => return Some(Request::Invalid),
        }
        let (len, next) = match line(buf, pos + 1, max_line) {
            None => return Some(Request::Incomplete),
            Some(Err(())) => return Some(Request::Invalid),
            Some(Ok((l, next))) => match int(l) {
                Some(n) if n >= 0 && n as u64 <= limits.max_bulk_len as u64 => (n as usize, next),
                _ => return Some(Request::Invalid),
            },
        };
        if buf.len() < next + len + 2 {
            return Some(Request::Incomplete);
        }
        if &buf[next + len..next + len + 2] != b"\r\n" {
            return Some(Request::Invalid);
        }
        args.push(buf[next..next + len].to_vec());
        pos = next + len + 2;
    }
    Some(Request::Frame { len: pos, args })
}

/// Nesting the reference follows; deeper replies are not judged (the
/// recursion would run out of stack).
const MAX_DEPTH: usize = 256;

/// Where the value at `pos` ends: Ok(None) when it is not all here,
/// Err(Some) when it is not RESP, Err(None) when it is nested too deep to
/// judge.
fn value(buf: &[u8], pos: usize, depth: usize) -> Result<Option<usize>, Option<()>> {
    if depth > MAX_DEPTH {
        return Err(None);
    }
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let (l, next) = match line(buf, pos + 1, usize::MAX) {
        None => return Ok(None),
        Some(Err(())) => return Err(Some(())),
        Some(Ok(found)) => found,
    };
    let count = || match int(l) {
        Some(n) if n <= u32::MAX as i64 => Ok(n),
        _ => Err(Some(())),
    };
    let elements = match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => return Ok(Some(next)),
        b'$' | b'!' | b'=' => {
            let n = count()?;
            if n < 0 {
                return Ok(Some(next));
            }
            let end = next + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(Some(()));
            }
            return Ok(Some(end));
        }
        b'*' | b'~' | b'>' => count()?.max(0) as u64,
        b'%' => 2 * count()?.max(0) as u64,
        // Attributes, then the value they describe.
        b'|' => 2 * count()?.max(0) as u64 + 1,
        _ => return Err(Some(())),
    };
    let mut at = next;
    for _ in 0..elements {
        match value(buf, at, depth + 1)? {
            Some(end) => at = end,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The reply at the start of `buf`: Ok(Some(len)), Ok(None) when not all
/// here, Err(()) when not RESP; None when nested too deep to judge.
pub fn reply(buf: &[u8]) -> Option<Result<Option<usize>, ()>> {
    match value(buf, 0, 0) {
        Ok(found) => Some(Ok(found)),
        Err(Some(())) => Some(Err(())),
        Err(None) => None,
    }
}

/// What a scan of a request stream found: frames (inline or not) with
/// their lengths and arguments, then how it stopped.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    frames: Vec<(usize, Vec<Vec<u8>>)>,
    error: bool,
}

/// Scans `stream` whole, checking each multibulk request against the
/// reference.
fn requests_whole(stream: &[u8], limits: Limits) -> Found {
    let mut scanner = RequestScanner::new(limits);
    let mut found = Found {
        frames: Vec::new(),
        error: false,
    };
    let mut pos = 0;
    loop {
        let rest = &stream[pos..];
        let want = request(rest, &limits);
        let got = scanner.scan(rest);
        let args = |s: &RequestScanner, frame: &[u8]| -> Vec<Vec<u8>> {
            s.args()
                .iter()
                .map(|a| frame[a.start..a.end].to_vec())
                .collect()
        };
        match (want, got) {
            (Some(Request::Frame { len, args: a }), Ok(Scanned::Frame { len: l })) => {
                assert_eq!(
                    (len, &a),
                    (l, &args(&scanner, rest)),
                    "at {pos} of {stream:?}"
                );
                found.frames.push((len, a));
                pos += len;
            }
            (Some(Request::Empty { len }), Ok(Scanned::Empty { len: l })) => {
                assert_eq!(len, l, "at {pos} of {stream:?}");
                pos += len;
            }
            (None, Ok(Scanned::Inline { len })) => {
                found
                    .frames
                    .push((len, args(&scanner, scanner.inline_frame())));
                pos += len;
            }
            (None, Ok(Scanned::Empty { len })) => pos += len,
            (Some(Request::Incomplete) | None, Ok(Scanned::Incomplete { need })) => {
                assert!(need > rest.len(), "need {need} at {pos} of {stream:?}");
                return found;
            }
            (Some(Request::Invalid) | None, Err(_)) => {
                found.error = true;
                return found;
            }
            (want, got) => panic!("reference {want:?}, scanner {got:?} at {pos} of {stream:?}"),
        }
    }
}

/// Scans `stream` arriving in pieces of the sizes `cuts` gives, as a
/// session does: what a scan leaves is carried and scanned again with the
/// next piece.
fn requests_in_pieces(stream: &[u8], limits: Limits, cuts: &[u8]) -> Found {
    let mut scanner = RequestScanner::new(limits);
    let mut found = Found {
        frames: Vec::new(),
        error: false,
    };
    let (mut start, mut end, mut cut) = (0, 0, 0);
    while end < stream.len() {
        let piece = cuts.get(cut).map_or(7, |&c| c as usize % 16 + 1);
        cut += 1;
        end = (end + piece).min(stream.len());
        loop {
            let rest = &stream[start..end];
            match scanner.scan(rest) {
                Ok(Scanned::Frame { len }) => {
                    let args = scanner.args().iter().map(|a| rest[a.start..a.end].to_vec());
                    found.frames.push((len, args.collect()));
                    start += len;
                }
                Ok(Scanned::Inline { len }) => {
                    let frame = scanner.inline_frame();
                    let args = scanner
                        .args()
                        .iter()
                        .map(|a| frame[a.start..a.end].to_vec());
                    found.frames.push((len, args.collect()));
                    start += len;
                }
                Ok(Scanned::Empty { len }) => start += len,
                Ok(Scanned::Incomplete { .. }) => break,
                Err(_) => {
                    found.error = true;
                    return found;
                }
            }
        }
    }
    found
}

/// Checks the request scanner on `data`: its first byte picks Redis's
/// limits or tight ones (so the limits are reached), the next eight the
/// pieces the stream arrives in, the rest is the stream.
pub fn check_requests(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let limits = if pick % 2 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: 16,
            max_multibulk_len: 8,
            max_inline_len: 64,
            unauthenticated: pick % 4 == 3,
        }
    };
    let (cuts, stream) = rest.split_at(rest.len().min(8));
    let whole = requests_whole(stream, limits);
    let pieces = requests_in_pieces(stream, limits, cuts);
    assert_eq!(whole, pieces, "whole and in pieces differ on {stream:?}");
}

/// Checks the reply scanner on `data`: each reply as the reference finds
/// it, whole and arriving a few bytes at a time (the first byte picks the
/// piece size).
pub fn check_replies(data: &[u8]) {
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = step as usize % 8 + 1;
    let mut pos = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let got = reply_len(rest).map_err(|_| ());
        if let Some(want) = reply(rest) {
            assert_eq!(want, got, "at {pos} of {stream:?}");
        }
        let mut scanner = ReplyScanner::new();
        let mut end = 0;
        let in_pieces = loop {
            end = (end + step).min(rest.len());
            match scanner.scan(&rest[..end]) {
                Ok(None) if end < rest.len() => continue,
                other => break other.map_err(|_| ()),
            }
        };
        assert_eq!(
            got, in_pieces,
            "whole and in pieces differ at {pos} of {stream:?}"
        );
        match got {
            Ok(Some(len)) => pos += len,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: the same streams every run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Pieces the streams are made of, valid and not.
    const REQUEST_BITS: &[&[u8]] = &[
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"PING\r\n",
        b"set k \"a b\"\n",
        b"\r\n",
        b"*1\r\n$20\r\n01234567890123456789\r\n",
        b"*9\r\n",
        b"$5\r\n",
        b"*1\r\n$-1\r\n",
        b"*01\r\n",
        b"*1\r\r",
    ];

    const REPLY_BITS: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR x\r\n",
        b":12\r\n",
        b"$3\r\nabc\r\n",
        b"$-1\r\n",
        b"*2\r\n",
        b"*-1\r\n",
        b"%1\r\n",
        b"|1\r\n",
        b">2\r\n",
        b"~1\r\n",
        b"_\r\n",
        b",1.5\r\n",
        b"#t\r\n",
        b"=5\r\ntxt:a\r\n",
        b"!3\r\nERR\r\n",
        b"(1\r\n",
        b"$4\r\nab\r\n",
        b"*4294967296\r\n",
    ];

    /// A stream of random pieces, some bytes then changed.
    fn stream(rng: &mut Rng, bits: &[&[u8]]) -> Vec<u8> {
        let mut s: Vec<u8> = (0..8).map(|_| rng.below(256) as u8).collect();
        for _ in 0..1 + rng.below(6) {
            s.extend_from_slice(bits[rng.below(bits.len())]);
        }
        for _ in 0..rng.below(3) {
            let at = 8 + rng.below(s.len() - 8);
            let swaps = b"*$:+-\r\n0123456789 \"x";
            s[at] = swaps[rng.below(swaps.len())];
        }
        s
    }

    #[test]
    fn request_scanner_agrees_with_the_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mut s = stream(&mut rng, REQUEST_BITS);
            s.insert(0, rng.below(256) as u8);
            check_requests(&s);
        }
    }

    #[test]
    fn reply_scanner_agrees_with_the_reference() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            check_replies(&stream(&mut rng, REPLY_BITS)[7..]);
        }
    }

    #[test]
    fn the_reference_reads_redis_integers() {
        assert_eq!(int(b"0"), Some(0));
        assert_eq!(int(b"-12"), Some(-12));
        for bad in [
            &b"+1"[..],
            b"01",
            b"-0",
            b"",
            b"-",
            b"1 ",
            b"9223372036854775808",
        ] {
            assert_eq!(int(bad), None, "{bad:?}");
        }
    }
}
