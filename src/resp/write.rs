//! Encoders for what keyway writes itself: local replies, errors and the
//! sub-requests of split multi-key commands. They append to a buffer and
//! never allocate beyond its growth.

/// The RESP version a client speaks (chosen with HELLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// `+OK`, whole: what a command that succeeded answers.
pub const OK: &[u8] = b"+OK\r\n";
/// `+QUEUED`, whole: a command queued inside MULTI.
pub const QUEUED: &[u8] = b"+QUEUED\r\n";

/// Appends `n` in decimal without allocating.
#[inline]
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[inline]
fn push_int(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_decimal(out, v.unsigned_abs());
}

fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

pub fn array_header(out: &mut Vec<u8>, n: usize) {
    header(out, b'*', n as i64);
}

pub fn bulk_header(out: &mut Vec<u8>, n: usize) {
    header(out, b'$', n as i64);
}

pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    bulk_header(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub fn integer(out: &mut Vec<u8>, v: i64) {
    header(out, b':', v);
}

pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// An error reply; `msg` starts with its code (`ERR ...`, `NOAUTH ...`).
/// CR and LF would break the framing, so they become spaces, as Redis does.
pub fn error(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

pub fn null(out: &mut Vec<u8>, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"$-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// A null array: `*-1` in RESP2 (COMMAND INFO's unknown name), `_` in RESP3.
pub fn null_array(out: &mut Vec<u8>, proto: Protocol) {
    out.extend_from_slice(match proto {
        Protocol::Resp2 => b"*-1\r\n",
        Protocol::Resp3 => b"_\r\n",
    });
}

/// A text reply (INFO): a bulk string, or in RESP3 the verbatim string
/// Redis sends (`=len\r\ntxt:...`).
pub fn verbatim(out: &mut Vec<u8>, text: &str, proto: Protocol) {
    match proto {
        Protocol::Resp2 => bulk(out, text.as_bytes()),
        Protocol::Resp3 => {
            header(out, b'=', text.len() as i64 + 4);
            out.extend_from_slice(b"txt:");
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A map header: RESP3 `%n`, or a flat array of 2n elements in RESP2.
pub fn map_header(out: &mut Vec<u8>, n: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => header(out, b'*', 2 * n as i64),
        Protocol::Resp3 => header(out, b'%', n as i64),
    }
}

/// A set header: RESP3 `~n`, or an array in RESP2.
pub fn set_header(out: &mut Vec<u8>, n: usize, proto: Protocol) {
    match proto {
        Protocol::Resp2 => header(out, b'*', n as i64),
        Protocol::Resp3 => header(out, b'~', n as i64),
    }
}

/// Shows at most `max` bytes of client input inside an error message.
pub fn quoted(arg: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let mut o = Vec::new();
        integer(&mut o, -120);
        integer(&mut o, 0);
        bulk(&mut o, b"hi");
        error(&mut o, "ERR bad\r\nthing");
        null(&mut o, Protocol::Resp2);
        null(&mut o, Protocol::Resp3);
        map_header(&mut o, 2, Protocol::Resp2);
        map_header(&mut o, 2, Protocol::Resp3);
        assert_eq!(
            o,
            b":-120\r\n:0\r\n$2\r\nhi\r\n-ERR bad  thing\r\n$-1\r\n_\r\n*4\r\n%2\r\n".to_vec()
        );
        let mut m = Vec::new();
        integer(&mut m, i64::MIN);
        assert_eq!(m, b":-9223372036854775808\r\n".to_vec());
    }
}
