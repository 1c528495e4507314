//! Logs: one line per event on stderr, `2026-11-26T23:29:44.123Z WARN
//! [core 0] [127.0.0.1:7001] message`: an RFC 3339 UTC timestamp, the
//! level, the core (on a core's thread) and the endpoint where there is one.
//! `[log] level` or `--log-level` chooses what is written. A repeated
//! identical warning or error (a dead backend, every retry) is written once
//! per `REPEAT_WINDOW`; how many were held back is written with the next
//! one, or by `flush_repeats` (each core's and thread's housekeeping) once
//! the window has passed, so a failure that stops still shows its count.
//!
//! Lines are written whole with one `write` so threads do not interleave;
//! the repeat table is per thread, so cores share nothing to log.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
/// `--log-level` was given: the configuration's level does not apply.
static FIXED: AtomicBool = AtomicBool::new(false);

/// The level from the command line: it wins over `[log] level`, reloads
/// included.
pub fn fix_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    FIXED.store(true, Ordering::Relaxed);
}

/// The configuration's `[log] level` (at start-up and on every reload).
pub fn configure(level: Level) {
    if !FIXED.load(Ordering::Relaxed) {
        LEVEL.store(level as u8, Ordering::Relaxed);
    }
}

#[inline]
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Identical warnings and errors within this long are counted, not written.
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

struct Repeat {
    written_at: Instant,
    held_back: u64,
    /// The line's parts, to write the count when no identical line comes.
    level: Level,
    endpoint: Option<Box<str>>,
    msg: Box<str>,
}

/// A count of identical lines held back, due to be written.
#[derive(Debug, PartialEq)]
struct HeldBack {
    level: Level,
    endpoint: Option<Box<str>>,
    msg: Box<str>,
    count: u64,
    over: Duration,
}

thread_local! {
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
    static REPEATS: RefCell<HashMap<u64, Repeat>> = RefCell::new(HashMap::new());
}

/// Lines written on this thread name core `index`.
pub fn set_core(index: usize) {
    CORE.with(|c| c.set(Some(index)));
}

/// Whether a warning or error seen at `now` is written: None while an
/// identical one was written less than `REPEAT_WINDOW` ago (it is counted),
/// else Some(how many were held back since the last one written).
fn repeat(
    table: &mut HashMap<u64, Repeat>,
    key: u64,
    now: Instant,
    line: (Level, Option<&str>, &str),
) -> Option<u64> {
    match table.get_mut(&key) {
        Some(v) if now.duration_since(v.written_at) < REPEAT_WINDOW => {
            v.held_back += 1;
            None
        }
        Some(v) => {
            v.written_at = now;
            Some(std::mem::take(&mut v.held_back))
        }
        None => {
            let (level, endpoint, msg) = line;
            table.insert(
                key,
                Repeat {
                    written_at: now,
                    held_back: 0,
                    level,
                    endpoint: endpoint.map(Box::from),
                    msg: Box::from(msg),
                },
            );
            Some(0)
        }
    }
}

/// The counts whose window has passed at `now` with no identical line to
/// carry them; those lines start a new window. Entries with nothing held
/// back leave the table once their window has passed.
fn due(table: &mut HashMap<u64, Repeat>, now: Instant) -> Vec<HeldBack> {
    let mut due = Vec::new();
    table.retain(|_, v| {
        let over = now.duration_since(v.written_at);
        if over < REPEAT_WINDOW {
            return true;
        }
        if v.held_back == 0 {
            return false;
        }
        due.push(HeldBack {
            level: v.level,
            endpoint: v.endpoint.clone(),
            msg: v.msg.clone(),
            count: std::mem::take(&mut v.held_back),
            over,
        });
        v.written_at = now;
        true
    });
    due
}

/// Writes the held-back counts of this thread whose window has passed.
/// Cheap when nothing is held back; call it about once a second.
pub fn flush_repeats() {
    let now = Instant::now();
    let due = REPEATS.with(|r| {
        let mut table = r.borrow_mut();
        if table.is_empty() {
            Vec::new()
        } else {
            due(&mut table, now)
        }
    });
    for d in due {
        let line = format_line(
            d.level,
            d.endpoint.as_deref(),
            &d.msg,
            &held_back_note(d.count, d.over),
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

fn held_back_note(count: u64, over: Duration) -> String {
    format!(
        " ({count} more like this held back over {}s)",
        over.as_secs()
    )
}
/// Writes one line (see the macros `error!`, `warn!`, `info!`, `debug!`).
pub fn write(level: Level, endpoint: Option<&str>, args: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let msg = args.to_string();
    let mut repeats = String::new();
    if level <= Level::Warn {
        let mut h = ahash::AHasher::default();
        (level, endpoint, &msg).hash(&mut h);
        let key = h.finish();
        let now = Instant::now();
        if REPEATS.with(|r| r.borrow().len() > 1024) {
            // A flood of distinct lines: write what is due and let the rest
            // of the table go, rather than keep growing it.
            flush_repeats();
        }
        let held = REPEATS.with(|r| {
            let mut table = r.borrow_mut();
            let line = (level, endpoint, msg.as_str());
            let since = table.get(&key).map(|v| now.duration_since(v.written_at));
            repeat(&mut table, key, now, line).map(|n| (n, since))
        });
        match held {
            None => return,
            Some((0, _)) => {}
            Some((n, since)) => repeats = held_back_note(n, since.unwrap_or(REPEAT_WINDOW)),
        }
    }
    let line = format_line(level, endpoint, &msg, &repeats);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One whole line: timestamp, level, core, endpoint, message, suffix.
fn format_line(level: Level, endpoint: Option<&str>, msg: &str, suffix: &str) -> String {
    let mut line = rfc3339(SystemTime::now());
    line.push(' ');
    line.push_str(level.word());
    if let Some(core) = CORE.with(|c| c.get()) {
        line.push_str(&format!(" [core {core}]"));
    }
    if let Some(e) = endpoint {
        line.push_str(&format!(" [{e}]"));
    }
    line.push(' ');
    line.push_str(msg);
    line.push_str(suffix);
    line.push('\n');
    line
}

/// `error!("...")` or `error!(endpoint: label, "...")`.
#[macro_export]
macro_rules! error {
    (endpoint: $e:expr, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Error, Some($e), format_args!($($arg)+))
    };
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Error, None, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! warn {
    (endpoint: $e:expr, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Warn, Some($e), format_args!($($arg)+))
    };
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Warn, None, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! info {
    (endpoint: $e:expr, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Info, Some($e), format_args!($($arg)+))
    };
    ($($arg:tt)+) => {
        $crate::log::write($crate::log::Level::Info, None, format_args!($($arg)+))
    };
}

#[macro_export]
macro_rules! debug {
    (endpoint: $e:expr, $($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, Some($e), format_args!($($arg)+))
        }
    };
    ($($arg:tt)+) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, None, format_args!($($arg)+))
        }
    };
}

/// `t` as RFC 3339 in UTC with milliseconds (`2026-11-26T23:29:44.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// days-to-civil algorithm: eras of 400 years of 146,097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn repeats_are_held_back_then_counted() {
        let mut t = HashMap::new();
        let t0 = Instant::now();
        let line = (Level::Warn, Some("127.0.0.1:1"), "down");
        assert_eq!(repeat(&mut t, 1, t0, line), Some(0));
        for i in 1..=5 {
            assert_eq!(repeat(&mut t, 1, t0 + Duration::from_secs(i), line), None);
        }
        // Another message is not held back by the first.
        assert_eq!(
            repeat(&mut t, 2, t0 + Duration::from_secs(1), line),
            Some(0)
        );
        assert_eq!(repeat(&mut t, 1, t0 + REPEAT_WINDOW, line), Some(5));
        assert_eq!(repeat(&mut t, 1, t0 + REPEAT_WINDOW * 3, line), Some(0));
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert!(Level::Debug > Level::Info && Level::parse("loud").is_none());
    }

    #[test]
    fn a_count_is_written_when_the_failure_stops() {
        // Found in issue 13: a dead backend's 50 errors showed one line,
        // and when the errors stopped the count of the other 49 was lost.
        let mut t = HashMap::new();
        let t0 = Instant::now();
        let line = (Level::Error, Some("127.0.0.1:7001"), "auth failed");
        let quiet = (Level::Warn, None, "once");
        assert_eq!(repeat(&mut t, 1, t0, line), Some(0));
        assert_eq!(repeat(&mut t, 2, t0, quiet), Some(0));
        for i in 1..50 {
            assert_eq!(repeat(&mut t, 1, t0 + Duration::from_millis(i), line), None);
        }
        assert!(due(&mut t, t0 + REPEAT_WINDOW / 2).is_empty());
        let later = t0 + REPEAT_WINDOW + Duration::from_secs(1);
        assert_eq!(
            due(&mut t, later),
            vec![HeldBack {
                level: Level::Error,
                endpoint: Some("127.0.0.1:7001".into()),
                msg: "auth failed".into(),
                count: 49,
                over: REPEAT_WINDOW + Duration::from_secs(1),
            }]
        );
        // The flushed line starts a window: the next identical one within it
        // is held back; the line that was never repeated has left the table.
        assert_eq!(t.len(), 1);
        assert_eq!(
            repeat(&mut t, 1, later + Duration::from_secs(1), line),
            None
        );
        assert!(due(&mut t, later + REPEAT_WINDOW).len() == 1);
        assert!(due(&mut t, later + REPEAT_WINDOW * 3).is_empty() && t.is_empty());
        assert_eq!(
            held_back_note(49, Duration::from_secs(11)),
            " (49 more like this held back over 11s)"
        );
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        let at = |s: u64, ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(s * 1000 + ms));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_735_784, 123), "2026-11-26T23:29:44.123Z");
        assert_eq!(at(4_107_542_399, 999), "2100-02-28T23:59:59.999Z");
    }
}
