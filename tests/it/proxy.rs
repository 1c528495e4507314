//! keyway's data path through the real binary, against real redis-servers.
use crate::common::*;
use keyway::config::Config;
use keyway::topology::router::Router;
use keyway::topology::Topology;
use std::io::Write;
use std::time::{Duration, Instant};

fn three() -> (Redis, Redis, Redis) {
    (Redis::start(), Redis::start(), Redis::start())
}

fn topology_of(k: &Keyway) -> Topology {
    Topology::build(Config::load(&k.config).expect("config"))
}

/// The index of the backend holding `key`.
fn holder(backends: &[&Redis], key: &str) -> Vec<usize> {
    backends
        .iter()
        .enumerate()
        .filter(|(_, b)| b.client().cmd(&["EXISTS", key]) == ":1\r\n")
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn single_key_commands_use_their_real_key_position() {
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "s", "v"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["GETEX", "s", "EX", "100"]), bulk("v"));
    assert_eq!(cl.cmd(&["SETEX", "sx", "100", "v"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["HSET", "h", "f1", "v1", "f2", "v2"]), ":2\r\n");
    assert_eq!(cl.cmd(&["ZADD", "z", "1", "m"]), ":1\r\n");
    assert_eq!(cl.cmd(&["incr", "n"]), ":1\r\n");
    assert_eq!(cl.cmd(&["RPUSH", "l", "x", "y"]), ":2\r\n");
    assert_eq!(
        cl.cmd(&["LRANGE", "l", "0", "-1"]),
        "*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    );
    let topo = topology_of(&k);
    let backends = [&a, &b, &c];
    for key in ["s", "sx", "h", "z", "n", "l"] {
        let ep = Router::new(&topo, &[]).primary(key.as_bytes()).unwrap();
        assert_eq!(
            holder(&backends, key),
            vec![ep],
            "key {key} not where the ring puts it"
        );
    }
}

#[test]
fn multi_key_commands_split_per_backend_and_merge_in_key_order() {
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    let keys: Vec<String> = (0..30).map(|i| format!("mk:{i}")).collect();
    let topo = topology_of(&k);
    let used: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| Router::new(&topo, &[]).primary(k.as_bytes()).unwrap())
        .collect();
    assert_eq!(used.len(), 3, "the keys should span every backend");
    let mut mset = vec!["MSET"];
    let vals: Vec<String> = (0..30).map(|i| format!("v{i}")).collect();
    for (k, v) in keys.iter().zip(&vals) {
        mset.push(k);
        mset.push(v);
    }
    assert_eq!(cl.cmd(&mset), "+OK\r\n");
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(|s| s.as_str()));
    mget.insert(5, "missing");
    let mut expect = String::from("*31\r\n");
    for (i, v) in vals.iter().enumerate() {
        if i == 4 {
            expect.push_str("$-1\r\n");
        }
        expect.push_str(&bulk(v));
    }
    assert_eq!(cl.cmd(&mget), expect);
    let mut exists = vec!["EXISTS"];
    exists.extend(keys.iter().map(|s| s.as_str()));
    exists.push("nope");
    exists.push("mk:0");
    assert_eq!(cl.cmd(&exists), ":31\r\n");
    let mut touch = vec!["TOUCH"];
    touch.extend(keys.iter().take(10).map(|s| s.as_str()));
    assert_eq!(cl.cmd(&touch), ":10\r\n");
    let mut unlink = vec!["UNLINK"];
    unlink.extend(keys.iter().take(10).map(|s| s.as_str()));
    assert_eq!(cl.cmd(&unlink), ":10\r\n");
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(|s| s.as_str()));
    assert_eq!(cl.cmd(&del), ":20\r\n");
    assert_eq!(dbsizes(&[&a, &b, &c]), vec![0, 0, 0]);
    assert_eq!(
        cl.cmd(&["MSET", "a", "1", "b"]),
        "-ERR wrong number of arguments for 'mset' command\r\n"
    );
}

#[test]
fn local_unsupported_unknown_and_arity() {
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(cl.cmd(&["ping", "hi"]), bulk("hi"));
    assert_eq!(cl.cmd(&["ECHO", "e"]), bulk("e"));
    assert_eq!(cl.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SELECT", "1"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SELECT", "0"]), "+OK\r\n");
    assert!(cl
        .cmd(&["SELECT", "16"])
        .starts_with("-ERR DB index is out of range"));
    assert!(cl.cmd(&["COMMAND", "COUNT"]).starts_with(':'));
    assert!(cl
        .cmd(&["COMMAND", "INFO", "get"])
        .starts_with("*1\r\n*10\r\n$3\r\nget\r\n:2\r\n"));
    assert_eq!(cl.cmd(&["CLIENT", "SETNAME", "app1"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["CLIENT", "GETNAME"]), bulk("app1"));
    assert_eq!(
        cl.cmd(&["CLIENT", "SETINFO", "lib-name", "redis-py"]),
        "+OK\r\n"
    );
    assert_eq!(
        cl.cmd(&["CLIENT", "SETINFO", "lib-ver", "8.0.0"]),
        "+OK\r\n"
    );
    assert_eq!(cl.cmd(&["CLIENT", "KILL", "x"]), "-ERR No such client\r\n");
    assert_eq!(
        cl.cmd(&["CLIENT", "PAUSE", "10"]),
        "-ERR unsupported command 'CLIENT PAUSE'\r\n"
    );
    for c in [&["SWAPDB", "0", "1"][..], &["MONITOR"]] {
        let r = cl.cmd(c);
        assert_eq!(r, format!("-ERR unsupported command '{}'\r\n", c[0]));
        // The connection stays usable.
        assert_eq!(cl.cmd(&["PING"]), "+PONG\r\n");
    }
    assert_eq!(
        cl.cmd(&["NOSUCH", "a", "b"]),
        "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"
    );
    assert_eq!(
        cl.cmd(&["GET"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(
        cl.cmd(&["get", "a", "b"]),
        "-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(cl.cmd(&["QUIT"]), "+OK\r\n");
    assert!(cl.closed());
}

#[test]
fn eval_is_routed_by_its_keys_or_refused_with_crossslot() {
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "{t}x", "1"]), "+OK\r\n");
    assert_eq!(
        cl.cmd(&[
            "EVAL",
            "return redis.call('get', KEYS[1]) .. ARGV[1]",
            "2",
            "{t}x",
            "{t}y",
            "!"
        ]),
        bulk("1!")
    );
    let topo = topology_of(&k);
    let (k1, k2) = (0..100)
        .map(|i| format!("e{i}"))
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| {
            Router::new(&topo, &[]).primary(w[0].as_bytes()).unwrap()
                != Router::new(&topo, &[]).primary(w[1].as_bytes()).unwrap()
        })
        .map(|w| (w[0].clone(), w[1].clone()))
        .expect("two keys on different backends");
    assert_eq!(
        cl.cmd(&["EVAL", "return 1", "2", &k1, &k2]),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        cl.cmd(&["EVAL", "return 1", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert!(cl
        .cmd(&["EVAL", "return 1", "0"])
        .starts_with("-ERR 'eval' without keys"));
    assert_eq!(
        cl.cmd(&["RENAME", &k1, &k2]),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
}

#[test]
fn pipelined_replies_stay_in_request_order_across_backends() {
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    let mut batch = Vec::new();
    let n = 3000;
    for i in 0..n {
        let key = format!("p:{i}");
        let val = format!("v{i}");
        batch.extend(encode(&[b"SET", key.as_bytes(), val.as_bytes()]));
        batch.extend(encode(&[b"GET", key.as_bytes()]));
        batch.extend(encode(&[b"INCR", format!("c:{}", i % 7).as_bytes()]));
        if i % 100 == 0 {
            batch.extend(encode(&[b"MGET", key.as_bytes(), b"p:0", b"nope"]));
            batch.extend(b"PING\r\n");
        }
    }
    cl.send_raw(&batch);
    let mut counters = [0i64; 7];
    for i in 0..n {
        assert_eq!(cl.read_reply().unwrap(), b"+OK\r\n");
        assert_eq!(
            String::from_utf8(cl.read_reply().unwrap()).unwrap(),
            bulk(&format!("v{i}"))
        );
        counters[i % 7] += 1;
        assert_eq!(
            String::from_utf8(cl.read_reply().unwrap()).unwrap(),
            format!(":{}\r\n", counters[i % 7])
        );
        if i % 100 == 0 {
            let expect = format!("*3\r\n{}{}$-1\r\n", bulk(&format!("v{i}")), bulk("v0"));
            assert_eq!(String::from_utf8(cl.read_reply().unwrap()).unwrap(), expect);
            assert_eq!(cl.read_reply().unwrap(), b"+PONG\r\n");
        }
    }
}

#[test]
fn requests_arriving_one_byte_at_a_time() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let mut cl = k.client();
    let mut req = encode(&[b"SET", b"slow", b"hello world"]);
    req.extend(encode(&[b"GET", b"slow"]));
    req.extend(b"PING\r\n");
    for byte in &req {
        cl.stream.write_all(&[*byte]).unwrap();
        cl.stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(cl.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(cl.read_reply().unwrap(), bulk("hello world").as_bytes());
    assert_eq!(cl.read_reply().unwrap(), b"+PONG\r\n");
}

#[test]
fn protocol_errors_are_answered_then_the_connection_closes() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "max_multibulk_len = 100\nmax_bulk_len = 1000");
    let cases: &[(&[u8], &str)] = &[
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*101\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n$1001\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n$3\r\nGET\r\n:1\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"SET \"abc\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (req, expect) in cases {
        let mut cl = k.client();
        // A valid request first: it is answered before the error.
        cl.send_raw(b"PING\r\n");
        cl.send_raw(req);
        assert_eq!(cl.read_reply().unwrap(), b"+PONG\r\n");
        assert_eq!(
            String::from_utf8(cl.read_reply().unwrap()).unwrap(),
            *expect
        );
        assert!(
            cl.closed(),
            "connection should close after a protocol error"
        );
    }
    let mut cl = k.client();
    cl.send_raw(&vec![b'a'; 70 * 1024]);
    assert_eq!(
        cl.read_reply().unwrap(),
        b"-ERR Protocol error: too big inline request\r\n"
    );
    // keyway itself is fine.
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_killed_backend_fails_fast_others_keep_working_and_it_recovers() {
    let (a, b, mut c) = three();
    let k = Keyway::over(&[&a, &b, &c], "op_timeout = \"2s\"");
    let topo = topology_of(&k);
    let key_on = |ep: usize| {
        (0..1000)
            .map(|i| format!("kill:{i}"))
            .find(|key| Router::new(&topo, &[]).primary(key.as_bytes()).unwrap() == ep)
            .unwrap()
    };
    let (on_a, on_c) = (key_on(0), key_on(2));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", &on_c, "1"]), "+OK\r\n");
    let c_port = c.port;
    c.kill();
    let t = Instant::now();
    let r = cl.cmd(&["GET", &on_c]);
    assert_eq!(
        r,
        format!("-ERR upstream unavailable (127.0.0.1:{c_port})\r\n")
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "error took {:?}",
        t.elapsed()
    );
    // Other backends are unaffected, also in a mixed pipeline and a split MGET.
    assert_eq!(cl.cmd(&["SET", &on_a, "a"]), "+OK\r\n");
    let mut p = encode(&[b"GET", on_a.as_bytes()]);
    p.extend(encode(&[b"GET", on_c.as_bytes()]));
    p.extend(encode(&[b"MGET", on_a.as_bytes(), on_c.as_bytes()]));
    cl.send_raw(&p);
    assert_eq!(
        String::from_utf8(cl.read_reply().unwrap()).unwrap(),
        bulk("a")
    );
    assert!(String::from_utf8(cl.read_reply().unwrap())
        .unwrap()
        .starts_with("-ERR upstream unavailable"));
    assert!(String::from_utf8(cl.read_reply().unwrap())
        .unwrap()
        .starts_with("-ERR upstream unavailable"));
    // It comes back: keyway reconnects.
    let _c2 = Redis::start_on(c_port);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = cl.cmd(&["SET", &on_c, "back"]);
        if r == "+OK\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(cl.cmd(&["GET", &on_c]), bulk("back"));
}

#[test]
fn a_hung_backend_times_out_within_op_timeout_and_recovers() {
    let (a, b) = (Redis::start(), Redis::start());
    let k = Keyway::over(&[&a, &b], "op_timeout = \"500ms\"");
    let topo = topology_of(&k);
    let key_on = |ep: usize| {
        (0..1000)
            .map(|i| format!("hang:{i}"))
            .find(|key| Router::new(&topo, &[]).primary(key.as_bytes()).unwrap() == ep)
            .unwrap()
    };
    let (on_a, on_b) = (key_on(0), key_on(1));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", &on_b, "1"]), "+OK\r\n");
    b.signal("-STOP");
    let t = Instant::now();
    assert_eq!(cl.cmd(&["GET", &on_b]), "-ERR upstream timeout\r\n");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "timeout after {took:?}"
    );
    let mut other = k.client();
    assert_eq!(other.cmd(&["SET", &on_a, "fine"]), "+OK\r\n");
    b.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cl.cmd(&["GET", &on_b]) != bulk("1") {
        assert!(Instant::now() < deadline, "no recovery after SIGCONT");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn resp3_clients_get_resp3_replies() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let mut cl = k.client();
    let hello = cl.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with("%8\r\n$6\r\nserver\r\n"), "{hello}");
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"));
    assert_eq!(cl.cmd(&["HSET", "h3", "f", "v"]), ":1\r\n");
    assert_eq!(cl.cmd(&["HGETALL", "h3"]), "%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(cl.cmd(&["GET", "missing"]), "_\r\n");
    assert_eq!(cl.cmd(&["CLIENT", "GETNAME"]), "_\r\n");
    assert_eq!(
        cl.cmd(&["HELLO", "4"]),
        "-NOPROTO unsupported protocol version\r\n"
    );
    // A RESP2 client on the same backend still gets RESP2.
    let mut c2 = k.client();
    assert_eq!(c2.cmd(&["HGETALL", "h3"]), "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    assert_eq!(c2.cmd(&["GET", "missing"]), "$-1\r\n");
    // HELLO 2 switches back.
    assert!(cl.cmd(&["HELLO", "2"]).starts_with("*16\r\n"));
    assert_eq!(cl.cmd(&["GET", "missing"]), "$-1\r\n");
}

#[test]
fn keys_spread_evenly_and_tags_stay_together() {
    let backends: Vec<Redis> = (0..5).map(|_| Redis::start()).collect();
    let refs: Vec<&Redis> = backends.iter().collect();
    let k = Keyway::over(&refs, "");
    let mut cl = k.client();
    let total = 60_000;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let mut p = Vec::new();
        for i in chunk {
            p.extend(encode(&[
                b"HSET",
                format!("user:{i}").as_bytes(),
                b"name",
                b"x",
            ]));
        }
        cl.send_raw(&p);
        for _ in chunk {
            assert_eq!(cl.read_reply().unwrap(), b":1\r\n");
        }
    }
    let sizes = dbsizes(&refs);
    assert_eq!(sizes.iter().sum::<i64>(), total as i64);
    // Each backend holds exactly what the ring predicts. (The 20% +- 3%
    // spread over the demo's fixed endpoints is a unit test in topology/mod.rs:
    // here ports are random, and so is the ring.)
    let topo = topology_of(&k);
    let mut predicted = vec![0i64; refs.len()];
    for i in 0..total {
        predicted[Router::new(&topo, &[])
            .primary(format!("user:{i}").as_bytes())
            .unwrap()] += 1;
    }
    assert_eq!(sizes, predicted);
    assert!(sizes.iter().all(|&s| s > total as i64 / 10), "{sizes:?}");
    let mut p = Vec::new();
    for i in 0..6000 {
        p.extend(encode(&[
            b"HSET",
            format!("user:{{avgo}}:{i}").as_bytes(),
            b"f",
            b"v",
        ]));
    }
    cl.send_raw(&p);
    for _ in 0..6000 {
        assert_eq!(cl.read_reply().unwrap(), b":1\r\n");
    }
    let after = dbsizes(&refs);
    let grew: Vec<i64> = after.iter().zip(&sizes).map(|(a, b)| a - b).collect();
    assert_eq!(
        grew.iter().filter(|&&g| g == 6000).count(),
        1,
        "tagged keys split: {grew:?}"
    );
    // `keyway route` agrees with where keys are.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyway"))
        .args(["route", "--config"])
        .arg(&k.config)
        .args(["user:1", "user:2", "user:{avgo}:5"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let idx = refs.iter().position(|b| b.addr() == cols[2]).unwrap();
        assert_eq!(holder(&refs, cols[0]), vec![idx], "{line}");
    }
}

#[test]
fn sigterm_stops_cleanly() {
    let a = Redis::start();
    let mut k = Keyway::over(&[&a], "");
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
    assert_eq!(k.stop(), Some(0));
}

#[test]
fn sigterm_drains_every_owed_reply_then_closes() {
    // Found by issue 12: connections were cut 2 s after SIGTERM with
    // requests in flight; 4 of 4 pipelining clients lost a batch.
    let a = Redis::start();
    let mut k = Keyway::over(&[&a], "drain_timeout = \"10s\"\n");
    let port = k.port;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut cl = Client::connect(port);
                let mut acked = 0u64;
                for batch in 0.. {
                    let mut p = Vec::new();
                    for i in 0..10 {
                        let key = format!("drain:{w}:{batch}:{i}");
                        p.extend(encode(&[b"SET", key.as_bytes(), b"1"]));
                    }
                    if cl.stream.write_all(&p).is_err() {
                        break;
                    }
                    for _ in 0..10 {
                        match cl.try_read_reply() {
                            Ok(Some(r)) => {
                                assert_eq!(r, b"+OK\r\n");
                                acked += 1;
                            }
                            // End of stream: the drain closed it.
                            Ok(None) => return acked,
                            Err(e) => panic!("writer {w}: {e} after {acked} replies"),
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let mut idle = k.client();
    assert_eq!(idle.cmd(&["PING"]), "+PONG\r\n");
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    assert_eq!(k.stop(), Some(0));
    // Nobody waited for drain_timeout: each closed once answered.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let acked: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(idle.closed());
    // Every SET that ran was answered: the backend holds exactly the
    // acknowledged keys.
    let held = a.client().cmd(&["DBSIZE"]);
    assert_eq!(held, format!(":{acked}\r\n"));
    assert!(acked > 0);
}

#[test]
fn an_inline_command_with_a_nul_byte_is_answered_and_keyway_lives_on() {
    // Before the first fix this looped forever in the inline splitter,
    // growing memory until the process was killed. Before the second
    // (issue 12) the line was cut at the NUL, so "SET k a\0b c" ran as
    // "SET k a": a command the client never sent.
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let mut cl = k.client();
    cl.send_raw(b"SET nulkey a\0b c\r\nECHO hi\0there\r\nPING\0\0 junk\r\n");
    let set = String::from_utf8_lossy(&cl.read_reply().unwrap()).into_owned();
    assert!(set.starts_with("-ERR syntax error"), "{set:?}");
    assert_eq!(cl.read_reply().unwrap(), b"$8\r\nhi\0there\r\n");
    let ping = String::from_utf8_lossy(&cl.read_reply().unwrap()).into_owned();
    assert!(ping.starts_with("-ERR unknown command"), "{ping:?}");
    assert_eq!(cl.cmd(&["GET", "nulkey"]), "$-1\r\n");
    assert_eq!(cl.cmd(&["SET", "after", "nul"]), "+OK\r\n");
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn multibulk_counts_beyond_a_million_pass_when_configured() {
    // Redis 7 accepts multibulk counts up to INT_MAX; keyway's default is
    // 1,048,576 and `max_multibulk_len` raises it.
    let a = Redis::start();
    let k = Keyway::over(&[&a], "max_multibulk_len = 2000000\n");
    let n = 1_100_000usize;
    let mut req = format!("*{}\r\n$5\r\nRPUSH\r\n$4\r\nbigl\r\n", n + 2).into_bytes();
    for _ in 0..n {
        req.extend_from_slice(b"$1\r\nx\r\n");
    }
    let mut cl = k.client();
    cl.send_raw(&req);
    assert_eq!(cl.read_reply().unwrap(), format!(":{n}\r\n").as_bytes());
    let k2 = Keyway::over(&[&a], "");
    let mut cl = k2.client();
    cl.send_raw(format!("*{}\r\n", n + 2).as_bytes());
    assert_eq!(
        cl.read_reply().unwrap(),
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
}

#[test]
fn announced_sizes_do_not_commit_memory() {
    // Found in review: "*1\r\n$536870912\r\n" made the session zero-fill a
    // 512 MB buffer at once; 20 such idle connections took ~10 GB.
    let a = Redis::start();
    let k = Keyway::over(&[&a], "");
    let before = rss_kb(k.pid());
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = k.client();
        c.send_raw(b"*1\r\n$536870912\r\n");
        idle.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kb(k.pid());
    assert!(
        after < before + 50 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // A real large value still works.
    let big = "x".repeat(3 * 1024 * 1024);
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "big", &big]), "+OK\r\n");
    assert_eq!(cl.cmd(&["STRLEN", "big"]), format!(":{}\r\n", big.len()));
}

#[test]
fn unauthenticated_clients_get_redis_tighter_protocol_limits() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "password = \"pw\"");
    let mut cl = k.client();
    // Issue 12: worded as Redis 7 words them (they said "invalid").
    cl.send_raw(b"*11\r\n");
    assert_eq!(
        cl.read_reply().unwrap(),
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    assert!(cl.closed());
    let mut cl = k.client();
    cl.send_raw(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n");
    assert_eq!(
        cl.read_reply().unwrap(),
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // Once authenticated, the configured limits apply.
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["AUTH", "pw"]), "+OK\r\n");
    let v = "y".repeat(100_000);
    let mut mset = vec!["MSET"];
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    for key in &keys {
        mset.push(key);
        mset.push(&v);
    }
    assert_eq!(cl.cmd(&mset), "+OK\r\n");
}

#[test]
fn sort_and_georadius_store_destinations_are_routed_keys() {
    // Found in review: the STORE destination was written on the source's
    // shard, where reads of it (routed by its own hash) never look.
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let topo = topology_of(&k);
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["RPUSH", "{s}src", "3", "1", "2"]), ":3\r\n");
    assert_eq!(cl.cmd(&["SORT", "{s}src", "STORE", "{s}dst"]), ":3\r\n");
    assert_eq!(
        cl.cmd(&["LRANGE", "{s}dst", "0", "-1"]),
        "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    );
    let other = (0..100)
        .map(|i| format!("dst{i}"))
        .find(|d| {
            Router::new(&topo, &[]).primary(d.as_bytes())
                != Router::new(&topo, &[]).primary(b"{s}src")
        })
        .unwrap();
    assert_eq!(
        cl.cmd(&["SORT", "{s}src", "STORE", &other]),
        "-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    );
    assert_eq!(
        cl.cmd(&["SORT", "{s}src", "BY", "w_*"]),
        "-ERR BY option of SORT denied in Cluster mode.\r\n"
    );
    assert_eq!(
        cl.cmd(&["GEOADD", "{g}pts", "13.361389", "38.115556", "Palermo"]),
        ":1\r\n"
    );
    assert_eq!(
        cl.cmd(&[
            "GEORADIUS",
            "{g}pts",
            "15",
            "37",
            "200",
            "km",
            "STORE",
            "{g}near"
        ]),
        ":1\r\n"
    );
    assert_eq!(cl.cmd(&["ZCARD", "{g}near"]), ":1\r\n");
    assert_eq!(
        cl.cmd(&[
            "GEORADIUS",
            "{g}pts",
            "15",
            "37",
            "200",
            "km",
            "STORE",
            &other
        ])
        .starts_with("-CROSSSLOT"),
        Router::new(&topo, &[]).primary(other.as_bytes())
            != Router::new(&topo, &[]).primary(b"{g}pts")
    );
}

#[test]
fn info_answers_while_a_backend_is_down_and_dbsize_says_it_is_partial() {
    // ioredis and glide send INFO before anything else: one dead backend
    // must not stop every client from connecting; DBSIZE, whose answer
    // would be silently partial, fails instead.
    let (a, b, mut c) = three();
    let k = Keyway::over(&[&a, &b, &c], "op_timeout = \"1s\"\n");
    let mut cl = k.client();
    for i in 0..30 {
        assert_eq!(cl.cmd(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    assert_eq!(cl.cmd(&["DBSIZE"]), ":30\r\n");
    let info = cl.cmd(&["INFO"]);
    assert!(info.contains("db0:keys=30,"), "{info}");
    assert!(info.contains("keyway_backends_failed:0"), "{info}");
    c.kill();
    let info = cl.cmd(&["INFO"]);
    assert!(info.contains("redis_version:"), "{info}");
    assert!(info.contains("loading:0"), "{info}");
    assert!(info.contains("keyway_backends_failed:1"), "{info}");
    assert!(cl.cmd(&["DBSIZE"]).starts_with("-ERR upstream"));
    assert!(cl.cmd(&["KEYS", "*"]).starts_with("-ERR upstream"));
    assert_eq!(cl.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_refused_transaction_executes_nothing() {
    // Found by issue 11: MULTI was refused but the commands after it ran,
    // so a client that retried applied its writes twice.
    let (a, b, c) = three();
    let k = Keyway::over(&[&a, &b, &c], "");
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["INCR", "{t}1"]), "+QUEUED\r\n");
    assert!(cl.cmd(&["NOSUCH"]).starts_with("-ERR unknown command"));
    assert_eq!(cl.cmd(&["INCR", "{t}1"]), "+QUEUED\r\n");
    assert_eq!(
        cl.cmd(&["EXEC"]),
        "-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    assert_eq!(cl.cmd(&["GET", "{t}1"]), "$-1\r\n");
    // Keys on two backends: aborted, and nothing of it ran.
    let keys: Vec<String> = (0..20).map(|i| format!("x{i}")).collect();
    let home = |key: &str| {
        [&a, &b, &c]
            .iter()
            .position(|r| r.client().cmd(&["EXISTS", key]) == ":1\r\n")
    };
    for key in &keys {
        cl.cmd(&["SET", key, "0"]);
    }
    let other = keys
        .iter()
        .find(|key| home(key) != home(&keys[0]))
        .expect("20 keys over 3 backends");
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["INCR", &keys[0]]), "+QUEUED\r\n");
    assert!(cl
        .cmd(&["INCR", other])
        .contains("lives on another backend"));
    assert!(cl.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    assert_eq!(cl.cmd(&["GET", &keys[0]]), bulk("0"));
    assert_eq!(cl.cmd(&["GET", other]), bulk("0"));
    // DISCARD drops what was queued; a good transaction runs whole.
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["INCR", &keys[0]]), "+QUEUED\r\n");
    assert_eq!(cl.cmd(&["DISCARD"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["GET", &keys[0]]), bulk("0"));
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["INCR", &keys[0]]), "+QUEUED\r\n");
    assert_eq!(cl.cmd(&["INCRBY", &keys[0], "5"]), "+QUEUED\r\n");
    assert_eq!(cl.cmd(&["EXEC"]), "*2\r\n:1\r\n:6\r\n");
}
