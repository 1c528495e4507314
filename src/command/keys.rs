//! Which arguments of a request are keys.

use super::table::{CommandSpec, KeySpec};
use crate::resp::errors::ErrorReply;
use crate::resp::parse_int;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// numkeys is not an integer.
    NotInteger,
    Negative,
    TooMany,
    /// SORT BY/GET patterns read keys the proxy cannot route.
    SortPattern(&'static str),
    Syntax,
    /// XREAD's STREAMS without as many IDs as keys.
    Streams,
}

impl KeyError {
    /// What the client is answered.
    pub fn reply(&self) -> ErrorReply<'static> {
        match self {
            KeyError::NotInteger => ErrorReply::NotInteger,
            KeyError::Negative => ErrorReply::NumKeysNegative,
            KeyError::TooMany => ErrorReply::NumKeysTooMany,
            KeyError::SortPattern("BY") => ErrorReply::SortPattern("BY"),
            KeyError::SortPattern(_) => ErrorReply::SortPattern("GET"),
            KeyError::Syntax => ErrorReply::Syntax,
            KeyError::Streams => ErrorReply::XreadUnbalanced,
        }
    }
}

/// Fills `out` with the argument indices of the keys of a request of
/// `argc` arguments. `arg(i)` gives argument i (used for numkeys).
pub fn key_indices<'a>(
    spec: &CommandSpec,
    argc: usize,
    arg: impl Fn(usize) -> &'a [u8],
    out: &mut Vec<usize>,
) -> Result<(), KeyError> {
    out.clear();
    match spec.keys {
        KeySpec::None => {}
        KeySpec::Range { first, last, step } => {
            let first = first as usize;
            let last = if last < 0 {
                argc as isize + last as isize
            } else {
                last as isize
            };
            let mut i = first as isize;
            while i <= last && (i as usize) < argc {
                out.push(i as usize);
                i += step as isize;
            }
        }
        KeySpec::NumKeys { at } => {
            let at = at as usize;
            let n = numkeys(arg(at), argc - at - 1)?;
            out.extend(at + 1..at + 1 + n);
        }
        KeySpec::Sort => {
            // SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dst]
            out.push(1);
            let mut i = 2;
            while i < argc {
                let a = arg(i);
                let takes = |n: usize| {
                    if i + n < argc {
                        Ok(n)
                    } else {
                        Err(KeyError::Syntax)
                    }
                };
                i += 1 + if a.eq_ignore_ascii_case(b"store") {
                    out.push(i + takes(1)?);
                    1
                } else if a.eq_ignore_ascii_case(b"by") {
                    takes(1)?;
                    // As Redis Cluster: only BY patterns that read no key.
                    if !arg(i + 1).eq_ignore_ascii_case(b"nosort") && arg(i + 1).contains(&b'*') {
                        return Err(KeyError::SortPattern("BY"));
                    }
                    1
                } else if a.eq_ignore_ascii_case(b"get") {
                    takes(1)?;
                    if arg(i + 1) != b"#" {
                        return Err(KeyError::SortPattern("GET"));
                    }
                    1
                } else if a.eq_ignore_ascii_case(b"limit") {
                    takes(2)?
                } else {
                    0
                };
            }
        }
        KeySpec::GeoRadius { options } => {
            out.push(1);
            let mut i = options as usize;
            while i < argc {
                let a = arg(i);
                if a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist") {
                    if i + 1 >= argc {
                        return Err(KeyError::Syntax);
                    }
                    out.push(i + 1);
                    i += 2;
                } else if a.eq_ignore_ascii_case(b"count") {
                    i += 2;
                } else {
                    i += 1;
                }
            }
        }
        KeySpec::Streams => {
            // XREAD[GROUP] ... STREAMS key [key ...] id [id ...]: the keys
            // are the first half of what follows STREAMS.
            let Some(at) = (1..argc).find(|&i| arg(i).eq_ignore_ascii_case(b"streams")) else {
                return Err(KeyError::Syntax);
            };
            let rest = argc - at - 1;
            if rest == 0 || !rest.is_multiple_of(2) {
                return Err(KeyError::Streams);
            }
            out.extend(at + 1..at + 1 + rest / 2);
        }
        KeySpec::StoreNumKeys => {
            out.push(1);
            let n = numkeys(arg(2), argc - 3)?;
            out.extend(3..3 + n);
        }
    }
    Ok(())
}

fn numkeys(arg: &[u8], available: usize) -> Result<usize, KeyError> {
    let n = parse_int(arg).ok_or(KeyError::NotInteger)?;
    if n < 0 {
        return Err(KeyError::Negative);
    }
    if n as usize > available {
        return Err(KeyError::TooMany);
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::lookup;

    fn keys_of(args: &[&[u8]]) -> Result<Vec<usize>, KeyError> {
        let spec = lookup(args[0]).unwrap();
        let mut out = Vec::new();
        key_indices(spec, args.len(), |i| args[i], &mut out).map(|_| out)
    }

    #[test]
    fn key_positions() {
        assert_eq!(keys_of(&[b"GETEX", b"k", b"EX", b"10"]), Ok(vec![1]));
        assert_eq!(keys_of(&[b"hset", b"h", b"f", b"v"]), Ok(vec![1]));
        assert_eq!(keys_of(&[b"mset", b"a", b"1", b"b", b"2"]), Ok(vec![1, 3]));
        assert_eq!(keys_of(&[b"mget", b"a", b"b", b"c"]), Ok(vec![1, 2, 3]));
        assert_eq!(
            keys_of(&[b"bitop", b"and", b"d", b"a", b"b"]),
            Ok(vec![2, 3, 4])
        );
        assert_eq!(
            keys_of(&[b"eval", b"s", b"2", b"a", b"b", b"arg"]),
            Ok(vec![3, 4])
        );
        assert_eq!(keys_of(&[b"eval", b"s", b"0"]), Ok(vec![]));
        assert_eq!(
            keys_of(&[
                b"zunionstore",
                b"d",
                b"2",
                b"a",
                b"b",
                b"WEIGHTS",
                b"1",
                b"2"
            ]),
            Ok(vec![1, 3, 4])
        );
        assert_eq!(keys_of(&[b"object", b"encoding", b"k"]), Ok(vec![2]));
        // Found in review: STORE destinations were not keys (written to
        // the source's shard, unchecked and unstripped).
        assert_eq!(
            keys_of(&[b"SORT", b"l", b"LIMIT", b"0", b"5", b"ALPHA", b"STORE", b"d"]),
            Ok(vec![1, 7])
        );
        assert_eq!(
            keys_of(&[b"sort", b"l", b"by", b"nosort", b"get", b"#"]),
            Ok(vec![1])
        );
        assert_eq!(
            keys_of(&[b"sort", b"l", b"BY", b"w_*"]),
            Err(KeyError::SortPattern("BY"))
        );
        assert_eq!(
            keys_of(&[b"sort", b"l", b"GET", b"o_*"]),
            Err(KeyError::SortPattern("GET"))
        );
        assert_eq!(keys_of(&[b"sort", b"l", b"STORE"]), Err(KeyError::Syntax));
        assert_eq!(
            keys_of(&[
                b"GEORADIUS",
                b"g",
                b"0",
                b"0",
                b"5",
                b"km",
                b"COUNT",
                b"3",
                b"STORE",
                b"d",
                b"STOREDIST",
                b"e"
            ]),
            Ok(vec![1, 9, 11])
        );
        assert_eq!(
            keys_of(&[
                b"georadiusbymember",
                b"g",
                b"m",
                b"5",
                b"km",
                b"store",
                b"d"
            ]),
            Ok(vec![1, 6])
        );
        assert_eq!(keys_of(&[b"eval", b"s", b"x"]), Err(KeyError::NotInteger));
        assert_eq!(keys_of(&[b"eval", b"s", b"-1"]), Err(KeyError::Negative));
        assert_eq!(
            keys_of(&[b"eval", b"s", b"3", b"a"]),
            Err(KeyError::TooMany)
        );
    }
}
