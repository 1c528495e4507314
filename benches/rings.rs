//! Ring lookup cost per key for each lb policy (hashtag + hash + lookup),
//! over 16 weighted endpoints. `cargo bench --bench rings`
use keyway::route::hash::KetamaHash;
use keyway::route::hashtag::hashtag;
use keyway::route::ketama::Ketama;
use keyway::route::maglev::{Maglev, DEFAULT_TABLE_SIZE};
use keyway::route::ring::{Ring, RingMember};
use keyway::route::ring_hash::{RingHash, DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let members: Vec<RingMember> = (0..16)
        .map(|i| RingMember {
            name: format!("10.0.0.{}:6379", i + 1),
            weight: 1 + i % 3,
        })
        .collect();
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("user:{i}:profile").into_bytes())
        .collect();
    let rings = [
        (
            "ring_hash",
            Ring::RingHash(RingHash::build(
                &members,
                DEFAULT_MIN_RING_SIZE,
                DEFAULT_MAX_RING_SIZE,
            )),
        ),
        (
            "maglev",
            Ring::Maglev(Maglev::build(&members, DEFAULT_TABLE_SIZE)),
        ),
        (
            "ketama/fnv1a_64",
            Ring::Ketama(Ketama::build(&members, KetamaHash::Fnv1a64)),
        ),
        (
            "ketama/md5",
            Ring::Ketama(Ketama::build(&members, KetamaHash::Md5)),
        ),
    ];
    for (name, ring) in &rings {
        let rounds = 20;
        let t = Instant::now();
        let mut acc = 0usize;
        for _ in 0..rounds {
            for k in &keys {
                acc = acc.wrapping_add(ring.pick(hashtag(black_box(k))));
            }
        }
        black_box(acc);
        let ns = t.elapsed().as_secs_f64() * 1e9 / (rounds * keys.len()) as f64;
        println!("{name:>16}: {ns:6.1} ns/key");
    }
}
