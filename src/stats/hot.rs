//! Hot keys, per core: one request in `every` is sampled (a countdown,
//! one branch per request otherwise), and its first key counted in a
//! Space-Saving table of `SLOTS` keys (Metwally et al.): a key already
//! there counts one more; a new one takes the place of the least counted,
//! inheriting its count as its possible overcount (`error`). The heavy
//! hitters of the sampled stream stay, with counts at most `error` too
//! high. Counts are kept for the current window and the last one, so a
//! key's rate is over the last 10 to 20 seconds and a key that cooled
//! down leaves. No allocation: a slot holds its key's first `KEY_BYTES`.
//!
//! A sampled request touches little of the table: a byte per slot (its
//! hash's top byte) finds a held key, and a bitmask of the least counted
//! slots names the one a newcomer takes, found again by one pass over the
//! counts only when every slot it named was taken.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

/// Keys a core's table holds (at most 64: one bit each in `Table::least`).
pub const SLOTS: usize = 64;
const _: () = assert!(SLOTS <= 64);
/// Bytes of a key kept (longer ones are shown cut, and counted together
/// with other keys of the same first bytes).
pub const KEY_BYTES: usize = 96;
/// A rate is over the current window and the last one.
const WINDOW: Duration = Duration::from_secs(10);

/// A hot key as a core saw it, for `/hotkeys`.
#[derive(Debug, Clone, PartialEq)]
pub struct HotKey {
    pub key: Vec<u8>,
    /// The key was longer than `KEY_BYTES`.
    pub cut: bool,
    pub db: u16,
    /// Estimated requests per second, and how much of that may be
    /// overcount.
    pub ops_per_sec: f64,
    pub error_per_sec: f64,
    /// Sampled requests that read it and that wrote it, and their bytes.
    pub reads: u64,
    pub writes: u64,
    pub bytes: u64,
    /// Where it was routed last: cluster and endpoint (this core's
    /// numbers) and its slot (Redis Cluster).
    pub cluster: u32,
    pub endpoint: u32,
    pub slot: u16,
}

/// What one sampled request adds.
pub struct Sample<'a> {
    pub key: &'a [u8],
    pub db: u16,
    pub write: bool,
    pub bytes: usize,
    pub cluster: u32,
    pub endpoint: u32,
    pub slot: u16,
}

#[derive(Clone)]
struct Slot {
    /// Of the key kept and the database: compared before the bytes are.
    hash: u64,
    key: [u8; KEY_BYTES],
    len: u8,
    cut: bool,
    db: u16,
    /// Sampled requests this window, and the last.
    now: u64,
    last: u64,
    /// Of `now + last`, what it may have inherited.
    error: u64,
    reads: u64,
    writes: u64,
    bytes: u64,
    cluster: u32,
    endpoint: u32,
    slot: u16,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            hash: 0,
            key: [0; KEY_BYTES],
            len: 0,
            cut: false,
            db: 0,
            now: 0,
            last: 0,
            error: 0,
            reads: 0,
            writes: 0,
            bytes: 0,
            cluster: 0,
            endpoint: 0,
            slot: 0,
        }
    }

    fn weight(&self) -> u64 {
        self.now + self.last
    }

    fn holds(&self, hash: u64, key: &[u8], db: u16) -> bool {
        self.hash == hash
            && self.weight() > 0
            && self.db == db
            && &self.key[..self.len as usize] == key
    }
}

struct Table {
    slots: Vec<Slot>,
    /// Each slot's hash's top byte: the slots worth comparing.
    tags: [u8; SLOTS],
    /// The slots of the least count (a bit each); 0: not known, found
    /// again when a newcomer needs one.
    least: u64,
    window_start: Instant,
    /// How long the last window lasted (zero before the first ends).
    last_span: Duration,
}

/// A core's hot keys.
pub struct HotKeys {
    /// Sample one request in `every` (0: off).
    every: Cell<u32>,
    countdown: Cell<u32>,
    table: RefCell<Table>,
}

impl HotKeys {
    pub fn new(every: u32) -> HotKeys {
        HotKeys {
            every: Cell::new(every),
            countdown: Cell::new(every),
            table: RefCell::new(Table {
                slots: vec![Slot::empty(); SLOTS],
                tags: [0; SLOTS],
                least: 0,
                window_start: Instant::now(),
                last_span: Duration::ZERO,
            }),
        }
    }

    /// Samples one request in `every` from now on (0: none).
    pub fn set_every(&self, every: u32) {
        if self.every.get() != every {
            self.every.set(every);
            self.countdown.set(every);
        }
    }

    /// Whether this request is sampled: one in `every`.
    #[inline]
    pub fn sampled(&self) -> bool {
        let left = self.countdown.get();
        if left > 1 {
            self.countdown.set(left - 1);
            return false;
        }
        self.countdown.set(self.every.get());
        left == 1
    }

    /// Counts a sampled request.
    pub fn record(&self, s: Sample<'_>, now: Instant) {
        let mut t = self.table.borrow_mut();
        t.roll(now);
        let kept = &s.key[..s.key.len().min(KEY_BYTES)];
        let hash = hash_of(kept, s.db);
        let held = t.find(hash, kept, s.db);
        let at = match held {
            // Its count grows by one: it is not among the least any more.
            Some(at) => {
                t.least &= !(1 << at);
                at
            }
            None => {
                // The first of the least counted gives its place (and its
                // count, as the newcomer's possible overcount).
                let (at, least) = t.take_least();
                t.tags[at] = tag_of(hash);
                let slot = &mut t.slots[at];
                *slot = Slot::empty();
                slot.hash = hash;
                slot.key[..kept.len()].copy_from_slice(kept);
                slot.len = kept.len() as u8;
                slot.cut = kept.len() < s.key.len();
                slot.db = s.db;
                slot.now = least;
                slot.error = least;
                at
            }
        };
        let slot = &mut t.slots[at];
        slot.now += 1;
        if s.write {
            slot.writes += 1;
        } else {
            slot.reads += 1;
        }
        slot.bytes += s.bytes as u64;
        (slot.cluster, slot.endpoint, slot.slot) = (s.cluster, s.endpoint, s.slot);
    }

    /// The keys held, hottest first, with rates scaled up by the sampling.
    pub fn top(&self, now: Instant) -> Vec<HotKey> {
        let mut t = self.table.borrow_mut();
        t.roll(now);
        let span = (now - t.window_start + t.last_span)
            .as_secs_f64()
            .max(0.001);
        let scale = f64::from(self.every.get().max(1)) / span;
        let mut hot: Vec<HotKey> = (t.slots.iter())
            .filter(|s| s.weight() > 0)
            .map(|s| HotKey {
                key: s.key[..s.len as usize].to_vec(),
                cut: s.cut,
                db: s.db,
                ops_per_sec: s.weight() as f64 * scale,
                error_per_sec: s.error.min(s.weight()) as f64 * scale,
                reads: s.reads,
                writes: s.writes,
                bytes: s.bytes,
                cluster: s.cluster,
                endpoint: s.endpoint,
                slot: s.slot,
            })
            .collect();
        hot.sort_by(|a, b| b.ops_per_sec.total_cmp(&a.ops_per_sec));
        hot
    }

    /// Endpoint numbers after a reload (`map[new]`: the old number of the
    /// new endpoint `new`, if it had one); a key whose endpoint went is
    /// forgotten.
    pub fn reindex(&self, map: &[Option<usize>]) {
        let mut t = self.table.borrow_mut();
        // Forgotten keys count 0: the least are found again.
        t.least = 0;
        for s in t.slots.iter_mut() {
            let old = Some(s.endpoint as usize);
            match map.iter().position(|&o| o == old) {
                Some(e) => s.endpoint = e as u32,
                None => *s = Slot::empty(),
            }
        }
    }
}

impl Table {
    /// The slot holding `key` of `db`, if one does.
    fn find(&self, hash: u64, key: &[u8], db: u16) -> Option<usize> {
        let mut maybe = tagged(&self.tags, tag_of(hash));
        while maybe != 0 {
            let at = maybe.trailing_zeros() as usize;
            if self.slots[at].holds(hash, key, db) {
                return Some(at);
            }
            maybe &= maybe - 1;
        }
        None
    }

    /// The first of the least counted slots and its count; it leaves the
    /// least (its taker counts one more).
    fn take_least(&mut self) -> (usize, u64) {
        if self.least == 0 {
            let least = self.slots.iter().map(Slot::weight).min().unwrap_or(0);
            self.least = (self.slots.iter().enumerate())
                .filter(|(_, s)| s.weight() == least)
                .fold(0, |m, (i, _)| m | 1 << i);
        }
        let at = self.least.trailing_zeros() as usize;
        self.least &= !(1 << at);
        (at, self.slots[at].weight())
    }

    /// Starts a new window when the current one is over: its counts
    /// become the last window's.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return;
        }
        // Idle for two windows or more: nothing recent to keep.
        let keep = elapsed < WINDOW * 2;
        // Every count changes: the least are found again.
        self.least = 0;
        for s in &mut self.slots {
            s.last = if keep { s.now } else { 0 };
            s.now = 0;
            s.error = s.error.min(s.last);
            if s.last == 0 {
                *s = Slot::empty();
            }
        }
        self.last_span = if keep { elapsed } else { Duration::ZERO };
        self.window_start = now;
    }
}

/// Several cores' hot keys as one list, hottest first: a key hot on more
/// than one core (clients on each) adds up its rates and counts, and is
/// placed where its hottest core routed it.
pub fn merge<'a>(lists: impl IntoIterator<Item = &'a HotKey>) -> Vec<HotKey> {
    let mut by_key: std::collections::HashMap<(u16, &[u8]), (f64, HotKey)> =
        std::collections::HashMap::new();
    for h in lists {
        let (hottest, m) = by_key.entry((h.db, &h.key)).or_insert_with(|| {
            (
                h.ops_per_sec,
                HotKey {
                    ops_per_sec: 0.0,
                    error_per_sec: 0.0,
                    reads: 0,
                    writes: 0,
                    bytes: 0,
                    ..h.clone()
                },
            )
        });
        if h.ops_per_sec > *hottest {
            *hottest = h.ops_per_sec;
            (m.cluster, m.endpoint, m.slot) = (h.cluster, h.endpoint, h.slot);
        }
        m.ops_per_sec += h.ops_per_sec;
        m.error_per_sec += h.error_per_sec;
        m.reads += h.reads;
        m.writes += h.writes;
        m.bytes += h.bytes;
    }
    let mut all: Vec<HotKey> = by_key.into_values().map(|(_, m)| m).collect();
    all.sort_by(|a, b| b.ops_per_sec.total_cmp(&a.ops_per_sec));
    all
}

/// A slot's tag: the top byte of its key's hash.
fn tag_of(hash: u64) -> u8 {
    (hash >> 56) as u8
}

/// A bit per slot whose tag is `tag`, found eight tags at a time.
fn tagged(tags: &[u8; SLOTS], tag: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = u64::from(tag) * 0x0101_0101_0101_0101;
    let mut found = 0;
    for (i, eight) in tags.chunks_exact(8).enumerate() {
        // A zero byte where the tag is `tag`.
        let w = <[u8; 8]>::try_from(eight).map_or(0, u64::from_le_bytes) ^ pattern;
        // Each byte's top bit: set where that byte is zero (exact: no
        // carry crosses a byte).
        let zero = !(((w & LOW7) + LOW7) | w | LOW7);
        // Those eight bits, byte k's to bit 56 + k, then down.
        let bits = (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        found |= bits << (8 * i);
    }
    found
}

/// FNV-1a of `key` and `db`: a slot's quick check.
fn hash_of(key: &[u8], db: u16) -> u64 {
    let start = 0xcbf2_9ce4_8422_2325u64 ^ u64::from(db);
    (key.iter()).fold(start, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `key` as Redis shows a binary-safe string: printable ASCII as it is,
/// `\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b`, and `\xHH` for other bytes.
pub fn escaped(key: &[u8]) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &[u8], write: bool) -> Sample<'_> {
        Sample {
            key,
            db: 0,
            write,
            bytes: 10,
            cluster: 0,
            endpoint: 1,
            slot: 0,
        }
    }

    #[test]
    fn one_request_in_every_is_sampled_and_none_when_off() {
        let h = HotKeys::new(4);
        let hits = (0..400).filter(|_| h.sampled()).count();
        assert_eq!(hits, 100);
        h.set_every(0);
        assert!((0..100).all(|_| !h.sampled()));
    }

    /// Zipf-like traffic over many more keys than slots: the heaviest keys
    /// stay, in order, with counts at most their error too high.
    #[test]
    fn heavy_hitters_stay_among_many_keys() {
        let h = HotKeys::new(1);
        let t = Instant::now();
        let mut truth = std::collections::HashMap::new();
        let mut rng = crate::testing::Rng(1);
        for i in 0..200_000u64 {
            let x = rng.number();
            // Key k with weight about 1/(k+1): k = floor(N^u) - 1.
            let u = (x % 1_000_000) as f64 / 1_000_000.0;
            let k = (5000f64.powf(u) as u64).saturating_sub(1);
            let key = format!("key:{k}");
            *truth.entry(key.clone()).or_insert(0u64) += 1;
            h.record(sample(key.as_bytes(), i % 3 == 0), t);
        }
        let mut want: Vec<(String, u64)> = truth.into_iter().collect();
        want.sort_by_key(|w| std::cmp::Reverse(w.1));
        let top = h.top(t + Duration::from_secs(1));
        for (i, (key, n)) in want.iter().take(10).enumerate() {
            let got = &top[i];
            assert_eq!(String::from_utf8_lossy(&got.key), *key, "rank {i}");
            let (est, err) = (got.ops_per_sec, got.error_per_sec);
            // (Over one second, give or take the table's creation.)
            let n = *n as f64;
            assert!(
                est >= n * 0.999 && est - err <= n * 1.001,
                "{key}: {est} ± {err} vs {n}"
            );
        }
    }

    /// A key the full table does not hold takes the place of the first of
    /// the least counted, and their count as its possible overcount.
    #[test]
    fn a_new_key_replaces_the_first_least_counted() {
        let h = HotKeys::new(1);
        let t = Instant::now();
        for i in 0..SLOTS {
            let key = format!("k{i}");
            for _ in 0..(if i == 5 || i == 9 { 1 } else { 2 }) {
                h.record(sample(key.as_bytes(), false), t);
            }
        }
        h.record(sample(b"newcomer", false), t);
        let table = h.table.borrow();
        let slot = &table.slots[5];
        assert_eq!(&slot.key[..slot.len as usize], b"newcomer");
        assert_eq!((slot.now, slot.error), (2, 1));
        assert_eq!(&table.slots[9].key[..2], b"k9");
    }

    #[test]
    fn tagged_finds_every_slot_of_a_tag_and_no_other() {
        let mut tags = [0u8; SLOTS];
        let mut rng = crate::testing::Rng(3);
        for round in 0..2000 {
            for t in tags.iter_mut() {
                let x = rng.number();
                // Few distinct tags, so that most rounds find several.
                *t = [0, 1, 0x7f, 0x80, 0xff][(x % 5) as usize];
            }
            for tag in [0, 1, 2, 0x7f, 0x80, 0xfe, 0xff] {
                let want = (tags.iter().enumerate())
                    .fold(0u64, |m, (i, &t)| m | (u64::from(t == tag) << i));
                assert_eq!(tagged(&tags, tag), want, "round {round} tag {tag}");
            }
        }
    }

    /// The shortcuts name what a scan of the whole table would: after every
    /// sample, each held key's tag is its slot's, and the least counted
    /// slots, when known, are exactly those of the least count.
    #[test]
    fn tags_and_least_name_what_a_full_scan_finds() {
        let h = HotKeys::new(1);
        let t = Instant::now();
        let mut rng = crate::testing::Rng(7);
        for i in 0..20_000u64 {
            let x = rng.number();
            // A few hot keys among many cold ones.
            let k = if x.is_multiple_of(4) { x % 8 } else { x % 5000 };
            // Windows roll now and then.
            let at = t + WINDOW * (i / 7000) as u32;
            h.record(sample(format!("key:{k}").as_bytes(), false), at);
            let table = h.table.borrow();
            for (i, s) in table.slots.iter().enumerate() {
                if s.weight() > 0 {
                    assert_eq!(table.tags[i], tag_of(s.hash), "slot {i}");
                }
            }
            if table.least != 0 {
                let min = table.slots.iter().map(Slot::weight).min();
                for (i, s) in table.slots.iter().enumerate() {
                    let named = table.least & (1 << i) != 0;
                    assert_eq!(named, Some(s.weight()) == min, "slot {i}");
                }
            }
        }
    }

    #[test]
    fn a_window_later_the_counts_are_the_last_windows_and_two_later_gone() {
        let h = HotKeys::new(1);
        let t = Instant::now();
        for _ in 0..50 {
            h.record(sample(b"a", false), t);
        }
        let top = h.top(t + WINDOW + Duration::from_secs(5));
        assert_eq!(top.len(), 1);
        assert!((top[0].ops_per_sec - 50.0 / 15.0).abs() < 0.01, "{top:?}");
        assert_eq!((top[0].reads, top[0].writes, top[0].bytes), (50, 0, 500));
        assert!(h.top(t + WINDOW * 3).is_empty());
    }

    #[test]
    fn keys_are_shown_as_redis_shows_them() {
        assert_eq!(escaped(b"user:1"), "user:1");
        assert_eq!(escaped(b"a\"b\\c\n\x00\xff"), "a\\\"b\\\\c\\n\\x00\\xff");
        let h = HotKeys::new(1);
        let long = vec![b'k'; 200];
        h.record(sample(&long, true), Instant::now());
        let top = h.top(Instant::now());
        assert!(top[0].cut && top[0].key.len() == KEY_BYTES);
    }
}
