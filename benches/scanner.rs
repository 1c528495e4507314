//! RESP scanner throughput on a realistic pipelined stream: what redis-benchmark
//! -P 16 sends (SET/GET with 3-byte values, MSET of 10 keys), plus replies.
//! `cargo bench --bench scanner`
use keyway::resp::reply::ReplyScanner;
use keyway::resp::request::{RequestScanner, Scanned};
use keyway::resp::Limits;
use std::hint::black_box;
use std::time::Instant;

fn stream() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..10_000 {
        let key = format!("key:{:012}", i);
        s.extend(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n$3\r\nxxx\r\n",
                key.len(),
                key
            )
            .as_bytes(),
        );
        s.extend(format!("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", key.len(), key).as_bytes());
        if i % 16 == 0 {
            s.extend(b"*21\r\n$4\r\nMSET\r\n");
            for j in 0..10 {
                let k = format!("key:{:012}", i + j);
                s.extend(format!("${}\r\n{}\r\n$3\r\nxxx\r\n", k.len(), k).as_bytes());
            }
        }
    }
    s
}

fn replies() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..10_000 {
        s.extend(b"+OK\r\n$3\r\nxxx\r\n");
        if i % 16 == 0 {
            s.extend(b"*3\r\n$3\r\nabc\r\n$-1\r\n:42\r\n");
        }
    }
    s
}

fn main() {
    let buf = stream();
    let mut scanner = RequestScanner::new(Limits::default());
    let rounds = 200;
    let t = Instant::now();
    let mut frames = 0usize;
    for _ in 0..rounds {
        let mut pos = 0;
        while pos < buf.len() {
            match scanner.scan(&buf[pos..]) {
                Ok(Scanned::Frame { len }) => {
                    black_box(scanner.args());
                    pos += len;
                    frames += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "request scanner: {:.0} MB/s, {:.1} ns/request ({} requests)",
        (buf.len() * rounds) as f64 / secs / 1e6,
        secs * 1e9 / frames as f64,
        frames
    );

    let buf = replies();
    let mut rs = ReplyScanner::new();
    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        let mut pos = 0;
        while pos < buf.len() {
            let len = rs.scan(&buf[pos..]).unwrap().unwrap();
            pos += len;
            n += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "reply scanner:   {:.0} MB/s, {:.1} ns/reply ({} replies)",
        (buf.len() * rounds) as f64 / secs / 1e6,
        secs * 1e9 / n as f64,
        n
    );
}
