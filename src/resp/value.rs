//! A whole reply as a tree, for the control side (slot discovery), where
//! replies are few and allocation does not matter. Input is one complete
//! reply, as `ReplyScanner` delimits it.

use super::parse_int;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Null,
    /// Arrays, sets, pushes; maps flattened to key, value, key, value.
    Array(Vec<Value>),
}

impl Value {
    /// Parses the reply at the start of `buf`; None if it is not one
    /// complete, well-formed reply.
    pub fn parse(buf: &[u8]) -> Option<(Value, usize)> {
        parse_at(buf, 0, 0)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bulk(b) | Value::Simple(b) => parse_int(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bulk(b) | Value::Simple(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Option<(Value, usize)> {
    if depth > 32 {
        return None;
    }
    let kind = *buf.get(pos)?;
    let rest = &buf[pos + 1..];
    let r = memchr::memchr(b'\r', rest)?;
    let line = &rest[..r];
    let next = pos + 1 + r + 2;
    if next > buf.len() {
        return None;
    }
    Some(match kind {
        b'+' => (Value::Simple(line.to_vec()), next),
        b'-' => (
            Value::Error(String::from_utf8_lossy(line).into_owned()),
            next,
        ),
        b':' => (Value::Int(parse_int(line)?), next),
        b'_' => (Value::Null, next),
        b',' | b'#' | b'(' => (Value::Simple(line.to_vec()), next),
        b'$' | b'=' | b'!' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Some((Value::Null, next));
            }
            let end = next.checked_add(n as usize)?;
            if buf.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            (Value::Bulk(buf[next..end].to_vec()), end + 2)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(line)?;
            if n < 0 {
                return Some((Value::Null, next));
            }
            let n = if matches!(kind, b'%' | b'|') {
                (n as usize).checked_mul(2)?
            } else {
                n as usize
            };
            let mut items = Vec::with_capacity(n.min(1024));
            let mut at = next;
            for _ in 0..n {
                let (v, end) = parse_at(buf, at, depth + 1)?;
                items.push(v);
                at = end;
            }
            if kind == b'|' {
                // An attribute precedes the real reply.
                return parse_at(buf, at, depth + 1);
            }
            (Value::Array(items), at)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_slots_shape() {
        let r = b"*1\r\n*4\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:30001\r\n$3\r\nabc\r\n*2\r\n$8\r\nhostname\r\n$6\r\nnode-a\r\n*3\r\n$0\r\n\r\n:30004\r\n$3\r\ndef\r\n";
        let (v, n) = Value::parse(r).unwrap();
        assert_eq!(n, r.len());
        let range = &v.as_array().unwrap()[0];
        let a = range.as_array().unwrap();
        assert_eq!(a[1].as_int(), Some(5460));
        assert_eq!(a[2].as_array().unwrap()[0].as_str(), Some("127.0.0.1"));
        assert_eq!(a[3].as_array().unwrap()[0].as_str(), Some(""));
        assert!(Value::parse(&r[..r.len() - 1]).is_none());
        assert_eq!(
            Value::parse(b"-ERR x\r\n").unwrap().0,
            Value::Error("ERR x".into())
        );
        assert_eq!(
            Value::parse(b"%1\r\n+a\r\n:1\r\n")
                .unwrap()
                .0
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
