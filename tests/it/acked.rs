//! Clients that write while a reshard happens, and the model they keep of
//! what keyway acknowledged: a reshard must lose none of it. A client whose
//! keyway is killed does not know whether its command in flight ran, so
//! that command's effect is kept as possible, not certain, and the client
//! connects again and goes on.

use crate::common::*;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const COUNTERS: usize = 300;
const INCRBY_SCRIPT: &str = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

/// A hashtag per `i`, the tags unlike each other: twemproxy's fnv1a_64
/// (ketama's default hash, placed as nutcracker places it) puts t0..t99
/// nearly all on one node.
pub fn tag(i: usize) -> String {
    format!(
        "{{{:x}}}",
        (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

/// What keyway acknowledged, and what it may have run without saying so
/// (a command in flight when the connection broke).
#[derive(Default)]
struct Model {
    /// Counters (INCR, INCRBY by script, INCR in MULTI) and lists
    /// (LPUSH): acknowledged increments, and possible ones.
    counts: HashMap<String, (i64, i64)>,
    /// Hash fields set (HSET, alone or in MULTI).
    fields: Vec<(String, String)>,
    /// Counters given a TTL (EXPIRE acknowledged).
    expiring: Vec<String>,
    /// Per string key (SET, MSET; each client writes its own): the last
    /// value acknowledged, and a later one that may have been written.
    values: HashMap<String, (Option<usize>, Option<usize>)>,
    /// Replies that were not the acknowledgement (the first few).
    errors: Vec<String>,
}

impl Model {
    fn count(&mut self, key: &str, by: i64, sure: bool) {
        let c = self.counts.entry(key.to_string()).or_insert((0, 0));
        if sure {
            c.0 += by;
        } else {
            c.1 += by;
        }
    }

    fn set(&mut self, key: &str, n: usize, sure: bool) {
        let v = self.values.entry(key.to_string()).or_insert((None, None));
        *v = if sure {
            (Some(n), None)
        } else {
            (v.0, Some(n))
        };
    }

    /// A string key's value as the client last knew it: what was
    /// acknowledged, or possibly a later write.
    fn value_may_be(&self, key: &str, got: Option<usize>) -> bool {
        let (sure, maybe) = self.values.get(key).copied().unwrap_or((None, None));
        got == sure || (maybe.is_some() && got == maybe)
    }

    fn failed(&mut self, what: String) {
        if self.errors.len() < 20 {
            self.errors.push(what);
        }
    }
}

/// One client's connection: a command's reply, or None when the connection
/// broke (its keyway killed) and the client connected again.
struct Conn {
    port: u16,
    client: Client,
}

impl Conn {
    fn cmd(&mut self, args: &[&str]) -> Option<String> {
        let frame = encode(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
        if self.client.stream.write_all(&frame).is_err() {
            self.reconnect();
            return None;
        }
        match self.client.try_read_reply() {
            Ok(Some(reply)) => Some(String::from_utf8_lossy(&reply).into_owned()),
            _ => {
                self.reconnect();
                None
            }
        }
    }

    /// Connects again, for up to 20 s (the time a keyway takes to restart).
    fn reconnect(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                self.client = Client::from_stream(s);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "keyway on {} never came back",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `expected` (an acknowledged reply) from `reply`: Some(true) yes,
/// Some(false) another reply, None unknown (the connection broke).
fn acked(reply: &Option<String>, expected: impl Fn(&str) -> bool) -> Option<bool> {
    reply.as_deref().map(expected)
}

/// One client's round of writes (`n`-th of client `id`), each remembered.
fn round(c: &mut Conn, m: &Mutex<Model>, id: usize, n: usize) {
    let counter = format!("c:{}", (n * 7 + id * 13) % COUNTERS);
    let r = c.cmd(&["INCR", &counter]);
    let incremented = acked(&r, |r| r.starts_with(':'));
    record_count(m, &counter, 1, incremented, &r);
    let list = format!("l:{}", n % 31);
    let r = c.cmd(&["LPUSH", &list, "x"]);
    record_count(m, &list, 1, acked(&r, |r| r.starts_with(':')), &r);
    // Only a counter known to exist: an INCR lost with a killed keyway
    // may leave none, and EXPIRE then rightly answers 0.
    if n.is_multiple_of(10) && incremented == Some(true) {
        let r = c.cmd(&["EXPIRE", &counter, "600"]);
        match acked(&r, |r| r == ":1\r\n") {
            Some(true) => m.lock().unwrap().expiring.push(counter.clone()),
            Some(false) => m.lock().unwrap().failed(format!("EXPIRE {counter}: {r:?}")),
            None => {}
        }
    }
    let hash = format!("h:{}", n % 97);
    let field = format!("f{id}:{n}");
    let r = c.cmd(&["HSET", &hash, &field, "1"]);
    match acked(&r, |r| r == ":1\r\n") {
        Some(true) => m.lock().unwrap().fields.push((hash, field)),
        Some(false) => m
            .lock()
            .unwrap()
            .failed(format!("HSET {hash} {field}: {r:?}")),
        None => {}
    }
    let set = format!("s:{id}:{}", n % 50);
    let r = c.cmd(&["SET", &set, &n.to_string()]);
    record_set(m, &[&set], n, acked(&r, |r| r == "+OK\r\n"), &r);
    if n.is_multiple_of(4) {
        // Two keys of this client's, likely on two endpoints.
        let (a, b) = (
            format!("m:{id}:{}", n % 20),
            format!("m:{id}:{}", (n + 7) % 20),
        );
        let v = n.to_string();
        let r = c.cmd(&["MSET", &a, &v, &b, &v]);
        record_set(m, &[&a, &b], n, acked(&r, |r| r == "+OK\r\n"), &r);
        let r = c.cmd(&["MGET", &set, &a]);
        if let Some(r) = r {
            let got = mget_values(&r);
            let model = m.lock().unwrap();
            let fine = got.len() == 2
                && model.value_may_be(&set, got[0])
                && model.value_may_be(&a, got[1]);
            drop(model);
            if !fine {
                m.lock().unwrap().failed(format!("MGET {set} {a}: {r}"));
            }
        }
        let script = format!("e:{}", n % 20);
        let r = c.cmd(&["EVAL", INCRBY_SCRIPT, "1", &script, "2"]);
        record_count(m, &script, 2, acked(&r, |r| r.starts_with(':')), &r);
    }
    if n.is_multiple_of(3) {
        transaction(c, m, id, n);
    }
}

/// MULTI, INCR and HSET of one hashtag, EXEC.
fn transaction(c: &mut Conn, m: &Mutex<Model>, id: usize, n: usize) {
    let tag = tag(n % 40);
    let (counter, hash) = (format!("{tag}:a"), format!("{tag}:h"));
    let field = format!("m{id}:{n}");
    let mut queued = Vec::new();
    for args in [
        &["MULTI"][..],
        &["INCR", &counter],
        &["HSET", &hash, &field, "1"],
    ] {
        match c.cmd(args) {
            Some(reply) => queued.push(reply),
            // Broken before EXEC: a MULTI never executed runs nothing. The
            // rest is not sent, for on the new connection it would run
            // outside any MULTI.
            None => return,
        }
    }
    let done = c.cmd(&["EXEC"]);
    let ok = (queued.iter().map(String::as_str)).eq(["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n"])
        && done
            .as_deref()
            .is_some_and(|d| d.starts_with("*2\r\n:") && d.ends_with("\r\n:1\r\n"));
    let mut model = m.lock().unwrap();
    match done {
        Some(_) if ok => {
            model.count(&counter, 1, true);
            model.fields.push((hash, field));
        }
        Some(d) => model.failed(format!("MULTI on {tag}: {queued:?} {d}")),
        // EXEC in flight: the transaction may have run (its field is
        // then not required).
        None => model.count(&counter, 1, false),
    }
}

fn record_count(m: &Mutex<Model>, key: &str, by: i64, acked: Option<bool>, r: &Option<String>) {
    let mut model = m.lock().unwrap();
    match acked {
        Some(true) => model.count(key, by, true),
        Some(false) => model.failed(format!("{key}: {r:?}")),
        None => model.count(key, by, false),
    }
}

fn record_set(m: &Mutex<Model>, keys: &[&str], n: usize, acked: Option<bool>, r: &Option<String>) {
    let mut model = m.lock().unwrap();
    for key in keys {
        match acked {
            Some(true) => model.set(key, n, true),
            Some(false) => model.failed(format!("{key}: {r:?}")),
            None => model.set(key, n, false),
        }
    }
}

/// MGET's values as numbers (None for a key never written).
fn mget_values(reply: &str) -> Vec<Option<usize>> {
    let lines: Vec<&str> = reply.split("\r\n").collect();
    let mut out = Vec::new();
    let mut i = 1;
    while i < lines.len() && !lines[i].is_empty() {
        if lines[i] == "$-1" {
            out.push(None);
            i += 1;
        } else {
            out.push(lines.get(i + 1).and_then(|v| v.parse().ok()));
            i += 2;
        }
    }
    out
}

/// Clients writing while the reshard happens: SETs, MSETs (and MGETs of
/// what they wrote), INCRs of counters (some given a TTL), INCRBYs by
/// script, HSETs of fields, LPUSHes, and transactions on hashtags, each
/// remembered once acknowledged.
pub struct Load {
    stop: Arc<AtomicBool>,
    model: Arc<Mutex<Model>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    /// `clients` clients, spread over the keyways listening on `ports`,
    /// writing the same keys.
    pub fn start(ports: &[u16], clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let model = Arc::new(Mutex::new(Model::default()));
        let threads = (0..clients)
            .map(|id| {
                let (stop, model) = (stop.clone(), model.clone());
                let port = ports[id % ports.len()];
                std::thread::spawn(move || {
                    let mut c = Conn {
                        port,
                        client: Client::connect(port),
                    };
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        round(&mut c, &model, id, n);
                    }
                })
            })
            .collect();
        Load {
            stop,
            model,
            threads,
        }
    }

    /// Stops the clients; every acknowledged write must read back through
    /// `k`.
    pub fn finish(self, k: &Keyway) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client");
        }
        let model = self.model.lock().unwrap();
        assert!(model.errors.is_empty(), "{:?}\n{}", model.errors, k.log());
        let mut c = k.client();
        let certain: i64 = model.counts.values().map(|(sure, _)| sure).sum();
        assert!(certain > 200, "too little load");
        for (key, (sure, maybe)) in model.counts.iter() {
            let r = if key.starts_with("l:") {
                c.cmd(&["LLEN", key])
            } else {
                c.cmd(&["GET", key])
            };
            let got: i64 = r
                .trim_start_matches([':', '$'])
                .lines()
                .last()
                .and_then(|v| v.parse::<i64>().ok())
                .map_or(0, |n| n.max(0));
            assert!(
                (*sure..=sure + maybe).contains(&got),
                "{key}: {got}, acknowledged {sure} (+{maybe} unknown)"
            );
        }
        for (hash, field) in model.fields.iter() {
            assert_eq!(c.cmd(&["HEXISTS", hash, field]), ":1\r\n", "{hash} {field}");
        }
        for counter in model.expiring.iter() {
            let ttl: i64 = c.cmd(&["TTL", counter])[1..].trim().parse().expect("ttl");
            assert!((500..=600).contains(&ttl), "{counter}: TTL {ttl}");
        }
        for key in model.values.keys() {
            let r = c.cmd(&["GET", key]);
            let got = mget_values(&format!("*1\r\n{r}"));
            assert!(model.value_may_be(key, got[0]), "{key}: {r}");
        }
    }
}

#[test]
fn mget_values_reads_numbers_and_nils() {
    assert_eq!(
        mget_values("*3\r\n$2\r\n12\r\n$-1\r\n$1\r\n7\r\n"),
        [Some(12), None, Some(7)]
    );
}
