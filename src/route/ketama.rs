//! twemproxy's ketama continuum (nutcracker 0.5.0, `nc_ketama.c`), so a key
//! lands on the server twemproxy would pick.
//!
//! Building: with `n` servers and total weight `W`, a server of weight `w`
//! gets `floor(w / W * 160 / 4 * n + 1e-10) * 4` points, computed as C does
//! it: single-precision products, the 1e-10 added in double precision, the
//! sum rounded back to float before `floorf`. Its points come four at a
//! time from `md5("<name>-<i>")` for i = 0, 1, ..., each digest read as
//! four little-endian u32s. The points are sorted by value; glibc's qsort
//! (a merge sort for arrays this size) keeps equal values in insertion
//! order, and so does the stable sort here.
//!
//! Lookup: the key's `hash:` value picks the first point >= it, wrapping
//! to the first point past the end.
//!
//! # Server names
//!
//! A member's `name` must be the name twemproxy hashes for the server, as
//! `conf_add_server` derives it from the `servers:` entry
//! `"<host>:<port>:<weight> [name]"`:
//!
//! * the name after the weight when there is one (`127.0.0.1:7001:1 redis-a`
//!   hashes `redis-a`);
//! * else `"<host>:<port>"` exactly as written (not resolved: `localhost:6379`
//!   hashes `localhost:6379`);
//! * but only `"<host>"` when the port is 11211 (libmemcached's rule);
//! * for a unix socket `"/path:<weight>"`, the path and the colon after it,
//!   `"/path:"`.
//!
//! [`twemproxy_server_name`] applies these rules.

use super::continuum::Continuum;
use super::hash::{md5, KetamaHash};
use super::RingMember;

/// `KETAMA_POINTS_PER_SERVER`.
const POINTS_PER_SERVER: u32 = 160;
const POINTS_PER_HASH: u32 = 4;
/// `KETAMA_MAX_HOSTLEN`: twemproxy formats `"<name>-<i>"` into a buffer of
/// this size and hashes at most `MAX_HOSTLEN - 1` bytes of it.
const MAX_HOSTLEN: usize = 273;

#[derive(Debug)]
pub struct Ketama {
    hash: KetamaHash,
    /// The points (md5 words of each server's names), ascending.
    points: Continuum<u32>,
}

impl Ketama {
    /// The continuum twemproxy builds for these servers, in their config
    /// order, all live (keyway does not eject: `auto_eject_hosts: false`).
    /// See the module doc for what `name` must hold. twemproxy refuses
    /// weight 0; here such a server simply gets no point.
    pub fn build(members: &[RingMember], hash: KetamaHash) -> Ketama {
        // C sums the weights in a uint32_t.
        let total = members.iter().fold(0u32, |t, m| t.wrapping_add(m.weight));
        let live = members.len() as f32;
        let mut points: Vec<(u32, u32)> = Vec::new();
        let mut host = Vec::with_capacity(64);
        for (idx, m) in members.iter().enumerate() {
            let count = points_for(m.weight, total, live);
            for i in 0..count / POINTS_PER_HASH {
                host.clear();
                host.extend_from_slice(m.name.as_bytes());
                host.push(b'-');
                host.extend_from_slice(i.to_string().as_bytes());
                host.truncate(MAX_HOSTLEN - 1);
                let digest = md5(&host);
                for word in digest.chunks_exact(4) {
                    let v = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    points.push((v, idx as u32));
                }
            }
        }
        points.sort_by_key(|p| p.0);
        Ketama {
            hash,
            points: Continuum::new(points),
        }
    }

    /// The member owning `key` (already reduced to its hashtag, as
    /// twemproxy's `hash_tag` does). Like twemproxy, an empty key hashes to
    /// 0 rather than through the hash function. An empty continuum answers
    /// 0.
    #[inline]
    pub fn pick(&self, key: &[u8]) -> usize {
        let h = if key.is_empty() {
            0
        } else {
            self.hash.hash(key)
        };
        self.pick_hash(h)
    }

    /// `ketama_dispatch`: the first point >= `h`, else the first point.
    #[inline]
    pub fn pick_hash(&self, h: u32) -> usize {
        self.points.owner_of(h)
    }

    pub fn hash(&self) -> KetamaHash {
        self.hash
    }

    /// Number of points (twemproxy's `ncontinuum`).
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// (point value, member index), ascending by value.
    pub fn points(&self) -> impl Iterator<Item = (u32, usize)> + '_ {
        self.points.points()
    }
}

/// Points for a server of `weight` out of `total` among `live` servers,
/// with twemproxy's exact arithmetic:
/// `(uint32_t)(floorf((float)(pct * 160 / 4 * (float)live + 0.0000000001)) * 4)`
/// where `pct = (float)weight / (float)total`. Every product is a float
/// product; the literal is a double, so the addition is done in double.
fn points_for(weight: u32, total: u32, live: f32) -> u32 {
    if total == 0 {
        return 0;
    }
    let pct = weight as f32 / total as f32;
    let scaled = pct * POINTS_PER_SERVER as f32 / POINTS_PER_HASH as f32 * live;
    let nudged = (scaled as f64 + 0.000_000_000_1f64) as f32;
    (nudged.floor() * POINTS_PER_HASH as f32) as u32
}

/// The name twemproxy 0.5.0 hashes for a `servers:` entry, from its parts:
/// `alias` (the optional name after the weight) wins; otherwise `"host"`
/// for port 11211 and `"host:port"` for any other, `host` as written in
/// the config. (A unix socket `"/path:weight"` hashes `"/path:"`.)
pub fn twemproxy_server_name(host: &str, port: u16, alias: Option<&str>) -> String {
    match alias {
        Some(a) => a.to_string(),
        None if port == 11211 => host.to_string(),
        None => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str], weights: &[u32]) -> Vec<RingMember> {
        names
            .iter()
            .zip(weights)
            .map(|(n, &w)| RingMember {
                name: n.to_string(),
                weight: w,
            })
            .collect()
    }

    fn counts(k: &Ketama, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for (_, o) in k.points() {
            c[o] += 1;
        }
        c
    }

    const FOUR: [&str; 4] = [
        "127.0.0.1:7001",
        "127.0.0.1:7002",
        "127.0.0.1:7003",
        "127.0.0.1:7004",
    ];

    #[test]
    fn points_follow_weights_with_c_float_arithmetic() {
        let k = Ketama::build(&members(&FOUR, &[1, 1, 2, 1]), KetamaHash::Fnv1a64);
        assert_eq!(counts(&k, 4), [128, 128, 256, 128]);
        let k = Ketama::build(&members(&FOUR[..3], &[1, 1, 1]), KetamaHash::Fnv1a64);
        assert_eq!(k.len(), 480);
        // Counts from twemproxy 0.5.0's ketama_update compiled as is.
        for (weights, want) in [
            (
                &[1u32, 1, 1, 1, 1, 1, 1][..],
                &[160usize, 160, 160, 160, 160, 160, 160][..],
            ),
            (&[3, 5, 7], &[96, 160, 224]),
            (&[1, 2, 3, 4, 5, 6], &[44, 88, 136, 180, 228, 272]),
            (&[100, 1], &[316, 0]),
            (&[5, 3, 1], &[264, 160, 52]),
            (&[1000, 999, 1], &[240, 236, 0]),
            (&[33, 33, 34], &[156, 156, 160]),
            (
                &[7, 3, 3, 3, 3, 3, 3, 3, 3, 3],
                &[328, 140, 140, 140, 140, 140, 140, 140, 140, 140],
            ),
        ] {
            let names: Vec<String> = (0..weights.len()).map(|i| format!("s{i}")).collect();
            let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            let k = Ketama::build(&members(&refs, weights), KetamaHash::Md5);
            assert_eq!(counts(&k, weights.len()), want, "weights {weights:?}");
        }
    }

    // Where single precision decides: a real-number formula gives 464 here,
    // C's float arithmetic 460 (checked against the C expression for every
    // weight <= total <= 300 and 1..=40 servers: 1,806,000 cases, 5,048 of
    // them differing from the real-number result).
    #[test]
    fn float_rounding_cases() {
        assert_eq!(points_for(29, 30, 3.0), 460);
        assert_eq!(points_for(29, 60, 3.0), 228);
        assert_eq!(points_for(58, 60, 3.0), 460);
        assert_eq!(points_for(1, 1, 1.0), 160);
        assert_eq!(points_for(1, 0, 1.0), 0);
    }

    #[test]
    fn points_are_md5_words_of_name_dash_index() {
        let k = Ketama::build(&members(&FOUR[..1], &[1]), KetamaHash::Md5);
        assert_eq!(k.len(), 160);
        for i in [0, 1, 39] {
            let d = md5(format!("127.0.0.1:7001-{i}").as_bytes());
            for w in d.chunks_exact(4) {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                assert!(k.points().any(|p| p.0 == v), "point {i}");
            }
        }
        // md5("127.0.0.1:7001-40") is not a point: 40 digests of 4.
        let d = md5(b"127.0.0.1:7001-40");
        let v = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        assert!(!k.points().any(|p| p.0 == v));
    }

    #[test]
    fn dispatch_is_first_point_at_or_after_with_wrap() {
        let k = Ketama::build(&members(&FOUR, &[1, 1, 2, 1]), KetamaHash::Fnv1a64);
        let pts: Vec<(u32, usize)> = k.points().collect();
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        assert_eq!(k.pick_hash(0), first.1);
        assert_eq!(k.pick_hash(first.0), first.1);
        assert_eq!(k.pick_hash(last.0), last.1);
        if last.0 < u32::MAX {
            assert_eq!(k.pick_hash(last.0 + 1), first.1);
        }
        for w in pts.windows(2) {
            if w[0].0 < w[1].0 {
                assert_eq!(k.pick_hash(w[0].0 + 1), w[1].1);
            }
        }
    }

    // The continuum of twemproxy 0.5.0's own ketama_update and
    // ketama_dispatch (nc_ketama.c compiled with stub pool structures) for
    // servers 127.0.0.1:7001..7004 weighted 1,1,2,1: a few points, and the
    // server some hashes go to.
    #[test]
    fn matches_twemproxy_continuum() {
        let k = Ketama::build(&members(&FOUR, &[1, 1, 2, 1]), KetamaHash::Fnv1a64);
        assert_eq!(k.len(), 640);
        let pts: Vec<(u32, usize)> = k.points().collect();
        for (i, want) in TWEMPROXY_POINTS {
            assert_eq!(pts[*i], *want, "point {i}");
        }
        for (h, want) in TWEMPROXY_DISPATCH {
            assert_eq!(k.pick_hash(*h), *want, "hash {h}");
        }
    }

    const TWEMPROXY_POINTS: &[(usize, (u32, usize))] = &[
        (0, (1433822, 2)),
        (1, (8318147, 2)),
        (100, (566794980, 0)),
        (320, (2165490499, 2)),
        (639, (4292855630, 2)),
    ];
    const TWEMPROXY_DISPATCH: &[(u32, usize)] = &[
        (0, 2),
        (1, 2),
        (123456789, 0),
        (566794979, 0),
        (566794980, 0),
        (566794981, 2),
        (2147483648, 1),
        (3000000000, 2),
        (u32::MAX, 2),
    ];

    #[test]
    fn empty_key_hashes_to_zero_like_twemproxy() {
        let k = Ketama::build(&members(&FOUR, &[1, 1, 1, 1]), KetamaHash::Fnv1a64);
        assert_eq!(k.pick(b""), k.pick_hash(0));
        assert_eq!(
            k.pick(b"foo"),
            k.pick_hash(KetamaHash::Fnv1a64.hash(b"foo"))
        );
    }

    #[test]
    fn long_names_are_cut_like_twemproxy() {
        // "<name>-<i>" longer than 272 bytes is hashed cut to 272 bytes, so
        // all of this server's digests coincide (as in twemproxy).
        let long = "h".repeat(300);
        let k = Ketama::build(&members(&[&long], &[1]), KetamaHash::Md5);
        let d = md5(&long.as_bytes()[..272]);
        let v = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(k.points().filter(|p| p.0 == v).count(), 40);
    }

    #[test]
    fn server_names() {
        assert_eq!(
            twemproxy_server_name("127.0.0.1", 6379, None),
            "127.0.0.1:6379"
        );
        assert_eq!(twemproxy_server_name("localhost", 11211, None), "localhost");
        assert_eq!(twemproxy_server_name("127.0.0.1", 6379, Some("a")), "a");
    }

    #[test]
    fn empty_and_zero_weight() {
        let k = Ketama::build(&[], KetamaHash::Fnv1a64);
        assert!(k.is_empty());
        assert_eq!(k.pick(b"x"), 0);
        let k = Ketama::build(&members(&FOUR[..2], &[0, 1]), KetamaHash::Fnv1a64);
        assert_eq!(counts(&k, 2), [0, 320]);
    }
}
