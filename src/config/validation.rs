//! Reading one value: durations, sizes, bounded counts and addresses,
//! each error naming the key and the line at fault.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

use super::{ConfigError, Problem};

/// The file being read, so that an error can say where.
pub(super) struct Ctx<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn err(
        &self,
        span: Range<usize>,
        key: &str,
        problem: impl Into<Problem>,
    ) -> ConfigError {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        ConfigError::Value {
            file: self.file.to_string(),
            line,
            key: key.to_string(),
            problem: problem.into(),
        }
    }

    /// An error about the whole file, not one line of it.
    pub(super) fn whole(&self, problem: impl Into<Problem>) -> ConfigError {
        ConfigError::File {
            file: self.file.to_string(),
            problem: problem.into(),
        }
    }
}

/// Where an optional value was written (the start of the file if it was not).
pub(super) fn span_of<T>(v: &Option<Spanned<T>>) -> Range<usize> {
    v.as_ref().map_or(0..0, |s| s.span())
}

pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    // Positive and at most a year: anything longer is a typo, and huge
    // values would not fit a Duration.
    if !secs.is_finite() || secs <= 0.0 || secs > 366.0 * 24.0 * 3600.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// A size in bytes: a number with an optional unit, case-insensitive, as
/// Redis reads them: k, m, g are powers of 1000, kb, mb, gb of 1024.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub(super) fn positive(
    ctx: &Ctx,
    v: &Option<Spanned<i64>>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) if *s.get_ref() >= 1 && (*s.get_ref() as u64) <= max => Ok(*s.get_ref() as u64),
        Some(s) => Err(ctx.err(s.span(), key, Problem::OutOfRange { max })),
    }
}

pub(super) fn duration(
    ctx: &Ctx,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let expected = "a duration such as \"250ms\" or \"5s\"";
    parsed(ctx, v, key, default, (parse_duration, expected))
}

/// A value read by `parse`, or `default` when it is not given; an error
/// says it is not what was `expected`.
fn parsed<T>(
    ctx: &Ctx,
    v: &Option<Spanned<String>>,
    key: &str,
    default: T,
    (parse, expected): (fn(&str) -> Option<T>, &'static str),
) -> Result<T, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse(s.get_ref()).ok_or_else(|| {
            let given = s.get_ref().clone();
            ctx.err(s.span(), key, Problem::NotA { given, expected })
        }),
    }
}

/// A duration where "0" turns the feature off (as Redis reads
/// `tcp-keepalive` and `timeout`).
pub(super) fn duration_or_off(
    ctx: &Ctx,
    v: &Option<Spanned<String>>,
    key: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match v {
        Some(s) if s.get_ref().trim() == "0" => Ok(Duration::ZERO),
        other => duration(ctx, other, key, default),
    }
}

/// A size in bytes (see `parse_size`).
pub(super) fn size(
    ctx: &Ctx,
    v: &Option<Spanned<String>>,
    key: &str,
    default: usize,
) -> Result<usize, ConfigError> {
    let expected = "a size (bytes, or with a unit: \"512kb\", \"8mb\", \"1gb\"; \"0\")";
    parsed(ctx, v, key, default, (parse_size, expected))
}

/// An address as it may be shown: `user:password@` left out.
fn without_credentials(text: &str) -> String {
    match text.rsplit_once('@') {
        Some((before, host)) => {
            let scheme = before.find("://").map_or("", |i| &before[..i + 3]);
            format!("{scheme}***@{host}")
        }
        None => text.to_string(),
    }
}

pub(super) fn resolve(
    ctx: &Ctx,
    text: &str,
    span: Range<usize>,
    key: &str,
) -> Result<SocketAddr, ConfigError> {
    let invalid = |why| {
        let shown = without_credentials(text);
        ctx.err(span.clone(), key, Problem::Address { shown, why })
    };
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| invalid(None)),
        Err(e) => Err(invalid(Some(e))),
    }
}
