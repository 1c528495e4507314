//! Envoy routing parity through the real binary against real redis-servers:
//! prefix routes, mirroring (dual/triple write), replica reads, connection
//! rate limiting, AUTH on both sides.
use crate::common::*;
use std::time::{Duration, Instant};

fn cluster(name: &str, backends: &[&Redis], extra: &str) -> String {
    let eps: Vec<String> = backends
        .iter()
        .map(|b| format!("\"{}\"", b.addr()))
        .collect();
    format!(
        "[[clusters]]\nname = \"{name}\"\nlb_policy = \"ring_hash\"\nendpoints = [{}]\n{extra}\n",
        eps.join(", ")
    )
}

fn get_on(r: &Redis, key: &str) -> String {
    r.client().cmd(&["GET", key])
}

#[test]
fn prefix_routes_longest_match_remove_prefix_and_case() {
    let (users, vips, rest) = (Redis::start(), Redis::start(), Redis::start());
    let config = format!(
        "{}{}{}\n[routes]\ncatch_all = \"rest\"\n\n[[routes.prefix]]\nprefix = \"user:\"\ncluster = \"users\"\nremove_prefix = true\n\n[[routes.prefix]]\nprefix = \"user:vip:\"\ncluster = \"vips\"\n\n[[routes.prefix]]\nprefix = \"Sess:\"\ncluster = \"vips\"\ncase_insensitive = true\n",
        cluster("users", &[&users], ""),
        cluster("vips", &[&vips], ""),
        cluster("rest", &[&rest], ""),
    );
    let k = Keyway::start("", &config);
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "user:1", "a"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "user:vip:7", "b"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "SESS:x", "c"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "other", "d"]), "+OK\r\n");
    // remove_prefix: stored without it; longest prefix wins; case-insensitive.
    assert_eq!(get_on(&users, "1"), bulk("a"));
    assert_eq!(get_on(&users, "user:1"), "$-1\r\n");
    assert_eq!(get_on(&vips, "user:vip:7"), bulk("b"));
    assert_eq!(get_on(&vips, "SESS:x"), bulk("c"));
    assert_eq!(get_on(&rest, "other"), bulk("d"));
    // Reads come back through the same routes, also split across clusters.
    assert_eq!(cl.cmd(&["GET", "user:1"]), bulk("a"));
    assert_eq!(
        cl.cmd(&[
            "MGET",
            "user:1",
            "user:vip:7",
            "SESS:x",
            "other",
            "user:none"
        ]),
        format!(
            "*5\r\n{}{}{}{}$-1\r\n",
            bulk("a"),
            bulk("b"),
            bulk("c"),
            bulk("d")
        )
    );
    assert_eq!(cl.cmd(&["MSET", "user:2", "e", "other2", "f"]), "+OK\r\n");
    assert_eq!(get_on(&users, "2"), bulk("e"));
    assert_eq!(get_on(&rest, "other2"), bulk("f"));
    assert_eq!(
        cl.cmd(&["EXISTS", "user:1", "user:2", "user:vip:7", "other"]),
        ":4\r\n"
    );
    // A command whose keys need one endpoint, with a stripped key.
    assert_eq!(cl.cmd(&["APPEND", "user:1", "z"]), ":2\r\n");
    assert_eq!(get_on(&users, "1"), bulk("az"));
    assert_eq!(
        cl.cmd(&["DEL", "user:1", "user:2", "other", "user:vip:7", "SESS:x"]),
        ":5\r\n"
    );
    // The prefix matches in any case; the key itself stays case-sensitive.
    assert_eq!(cl.cmd(&["SET", "sEsS:y", "1"]), "+OK\r\n");
    assert_eq!(get_on(&vips, "sEsS:y"), bulk("1"));
}

#[test]
fn a_key_without_route_gets_a_clear_error() {
    let a = Redis::start();
    let config = format!(
        "{}\n[[routes.prefix]]\nprefix = \"app:\"\ncluster = \"a\"\n",
        cluster("a", &[&a], "")
    );
    let k = Keyway::start("", &config);
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "app:1", "x"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["GET", "zzz"]), "-ERR no route for key 'zzz'\r\n");
    assert_eq!(cl.cmd(&["PING"]), "+PONG\r\n");
}

/// Every key of `primary` holds the same value in each of `mirrors`.
/// Waits (up to 10 s: mirrored copies are fire-and-forget, and land after
/// the client's reply) until every mirror set holds what the primaries
/// hold; the number of keys.
fn assert_same_data(primary: &[&Redis], mirrors: &[&[&Redis]]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match same_data(primary, mirrors) {
            Ok(n) => return n,
            Err(why) if Instant::now() > deadline => panic!("{why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn same_data(primary: &[&Redis], mirrors: &[&[&Redis]]) -> Result<usize, String> {
    let mut keys = Vec::new();
    for p in primary {
        let mut c = p.client();
        let r = c.cmd(&["KEYS", "*"]);
        let mut it = r.split("\r\n").skip(1);
        while let (Some(_len), Some(k)) = (it.next(), it.next()) {
            if !k.is_empty() {
                keys.push(k.to_string());
            }
        }
    }
    for k in &keys {
        let dump = |set: &[&Redis]| -> Vec<String> {
            set.iter()
                .map(|r| {
                    let mut c = r.client();
                    let t = c.cmd(&["TYPE", k]);
                    let v = match t.as_str() {
                        "+string\r\n" => c.cmd(&["GET", k]),
                        "+hash\r\n" => c.cmd(&["HGETALL", k]),
                        "+list\r\n" => c.cmd(&["LRANGE", k, "0", "-1"]),
                        "+none\r\n" => String::new(),
                        other => panic!("unexpected type {other}"),
                    };
                    format!("{t}{v}")
                })
                .filter(|s| !s.starts_with("+none"))
                .collect()
        };
        let want = dump(primary);
        assert_eq!(want.len(), 1, "{k} on several primaries");
        for m in mirrors {
            let got = dump(m);
            if got != want {
                return Err(format!("key {k} differs in a mirror: {got:?} != {want:?}"));
            }
        }
    }
    Ok(keys.len())
}

#[test]
fn triple_write_mirrors_keep_every_cluster_identical() {
    let p: Vec<Redis> = (0..2).map(|_| Redis::start()).collect();
    let m1 = Redis::start();
    let m2: Vec<Redis> = (0..2).map(|_| Redis::start()).collect();
    let never = Redis::start();
    let pr: Vec<&Redis> = p.iter().collect();
    let m2r: Vec<&Redis> = m2.iter().collect();
    let config = format!(
        "{}{}{}{}\n[routes]\ncatch_all = \"old\"\ncatch_all_mirror = [{{ cluster = \"new1\", exclude_read_commands = true }}, {{ cluster = \"new2\", exclude_read_commands = true, fraction = 1.0 }}, {{ cluster = \"never\", fraction = 0.0 }}]\n",
        cluster("old", &pr, ""),
        cluster("new1", &[&m1], ""),
        cluster("new2", &m2r, ""),
        cluster("never", &[&never], ""),
    );
    let k = Keyway::start("", &config);
    let mut cl = k.client();
    // Pipelined writes of several kinds, reads between them.
    let mut batch = Vec::new();
    for i in 0..500 {
        let key = format!("k:{i}");
        batch.extend(encode(&[
            b"SET",
            key.as_bytes(),
            format!("v{i}").as_bytes(),
        ]));
        batch.extend(encode(&[
            b"HSET",
            format!("h:{{t{}}}:{i}", i % 7).as_bytes(),
            b"f",
            b"1",
        ]));
        batch.extend(encode(&[b"INCR", format!("n:{}", i % 13).as_bytes()]));
        batch.extend(encode(&[
            b"RPUSH",
            format!("l:{}", i % 5).as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(encode(&[b"GET", key.as_bytes()]));
    }
    batch.extend(encode(&[b"MSET", b"ma", b"1", b"mb", b"2", b"mc", b"3"]));
    batch.extend(encode(&[b"DEL", b"k:0", b"k:1"]));
    cl.send_raw(&batch);
    for _ in 0..(500 * 5 + 2) {
        let r = cl.read_reply().unwrap();
        assert!(!r.starts_with(b"-"), "{}", String::from_utf8_lossy(&r));
    }
    let n = assert_same_data(&pr, &[&[&m1], &m2r]);
    assert!(n > 500, "{n} keys");
    assert_eq!(never.client().cmd(&["DBSIZE"]), ":0\r\n");
    let stats = admin_get(k.admin_port, "/stats");
    let total = stats.find("\"total\"").unwrap();
    let t = &stats[total..];
    assert_eq!(
        json_number(t, "\"cluster\":\"new1\",\"sent\"", "dropped"),
        0
    );
    assert_eq!(json_number(t, "\"cluster\":\"new1\",\"sent\"", "failed"), 0);
    // Reads are excluded: 500 SET + 500 HSET + 500 INCR + 500 RPUSH + MSET + DEL.
    assert_eq!(
        json_number(t, "\"cluster\":\"new1\",\"sent\"", "sent"),
        2002
    );
    assert_eq!(json_number(t, "\"cluster\":\"never\",\"sent\"", "sent"), 0);
}

#[test]
fn transactions_that_run_are_mirrored_and_the_others_not() {
    // Found by issue 11's review: MULTI/EXEC ran on the primary cluster
    // only, so a migration's new cluster silently missed those writes.
    let p: Vec<Redis> = (0..2).map(|_| Redis::start()).collect();
    let m: Vec<Redis> = (0..3).map(|_| Redis::start()).collect();
    let pr: Vec<&Redis> = p.iter().collect();
    let mr: Vec<&Redis> = m.iter().collect();
    let config = format!(
        "{}{}\n[routes]\ncatch_all = \"old\"\ncatch_all_mirror = [{{ cluster = \"new\" }}]\n",
        cluster("old", &pr, ""),
        cluster("new", &mr, ""),
    );
    let k = Keyway::start("", &config);
    let mut cl = k.client();
    for i in 0..20 {
        let t = format!("{{t{i}}}");
        assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
        for c in [
            vec!["SET".to_string(), format!("{t}a"), "1".into()],
            vec!["INCR".into(), format!("{t}n")],
            vec![
                "MSET".into(),
                format!("{t}x"),
                "1".into(),
                format!("{t}y"),
                "2".into(),
            ],
            vec!["GET".into(), format!("{t}a")],
        ] {
            let c: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
            assert_eq!(cl.cmd(&c), "+QUEUED\r\n");
        }
        assert!(cl.cmd(&["EXEC"]).starts_with("*4\r\n+OK\r\n:1\r\n+OK\r\n"));
    }
    // Discarded and aborted transactions run nowhere, mirrors included.
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "{d}gone", "1"]), "+QUEUED\r\n");
    assert_eq!(cl.cmd(&["DISCARD"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["MULTI"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "{d}aborted", "1"]), "+QUEUED\r\n");
    assert!(cl.cmd(&["NOSUCH"]).starts_with("-ERR unknown command"));
    assert!(cl.cmd(&["EXEC"]).starts_with("-EXECABORT"));
    let n = assert_same_data(&pr, &[&mr]);
    assert_eq!(n, 20 * 4);
    for r in m.iter().chain(&p) {
        assert_eq!(
            r.client().cmd(&["EXISTS", "{d}gone", "{d}aborted"]),
            ":0\r\n"
        );
    }
}

#[test]
fn a_dead_mirror_never_fails_or_slows_the_client() {
    let p = Redis::start();
    let mut dead = Redis::start();
    let config = format!(
        "{}{}\n[routes]\ncatch_all = \"main\"\ncatch_all_mirror = [{{ cluster = \"dead\" }}]\n",
        cluster("main", &[&p], ""),
        cluster("dead", &[&dead], "")
    );
    let k = Keyway::start("op_timeout = \"1s\"", &config);
    dead.kill();
    let mut cl = k.client();
    let t = Instant::now();
    for i in 0..200 {
        assert_eq!(cl.cmd(&["SET", &format!("x{i}"), "1"]), "+OK\r\n");
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let stats = admin_get(k.admin_port, "/stats");
    let t = &stats[stats.find("\"total\"").unwrap()..];
    assert_eq!(
        json_number(t, "\"cluster\":\"dead\",\"sent\"", "sent")
            + json_number(t, "\"cluster\":\"dead\",\"sent\"", "dropped"),
        200
    );
    assert!(json_number(t, "\"cluster\":\"dead\",\"sent\"", "failed") >= 190);
}

#[test]
fn migration_under_redis_benchmark_load_loses_nothing() {
    let p: Vec<Redis> = (0..2).map(|_| Redis::start()).collect();
    let m: Vec<Redis> = (0..2).map(|_| Redis::start()).collect();
    let m2 = Redis::start();
    let pr: Vec<&Redis> = p.iter().collect();
    let mr: Vec<&Redis> = m.iter().collect();
    let config = format!(
        "{}{}{}\n[routes]\ncatch_all = \"old\"\ncatch_all_mirror = [{{ cluster = \"new\", exclude_read_commands = true }}, {{ cluster = \"newer\", exclude_read_commands = true }}]\n",
        cluster("old", &pr, ""),
        cluster("new", &mr, ""),
        cluster("newer", &[&m2], "")
    );
    let k = Keyway::start("", &config);
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-p",
            &k.port.to_string(),
            "-t",
            "set",
            "-r",
            "100000",
            "-P",
            "16",
            "-n",
            "50000",
            "-c",
            "20",
            "-q",
        ])
        .output()
        .expect("redis-benchmark");
    assert!(out.status.success());
    let n = assert_same_data(&pr, &[&mr, &[&m2]]);
    assert!(n > 10_000, "{n} keys");
    let stats = admin_get(k.admin_port, "/stats");
    let t = &stats[stats.find("\"total\"").unwrap()..];
    for c in ["new", "newer"] {
        let at = format!("\"cluster\":\"{c}\",\"sent\"");
        assert_eq!(json_number(t, &at, "dropped"), 0, "{c}");
        assert_eq!(json_number(t, &at, "failed"), 0, "{c}");
        assert_eq!(json_number(t, &at, "sent"), 50_000, "{c}");
    }
}

fn cmdstat_calls(r: &Redis, cmd: &str) -> i64 {
    let info = r.client().cmd(&["INFO", "commandstats"]);
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0)
}

fn wait_replicated(replica: &Redis, key: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_on(replica, key) != bulk(want) {
        assert!(
            Instant::now() < deadline,
            "replication of {key} did not happen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn with_replica() -> (Redis, Redis) {
    let primary = Redis::start();
    let replica = Redis::start_with(
        free_port(),
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
    );
    (primary, replica)
}

fn shard_cluster(primary: &Redis, replica: &Redis, policy: &str) -> String {
    format!(
        "[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nread_policy = \"{policy}\"\nshards = [{{ primary = \"{}\", replicas = [\"{}\"] }}]\n\n[routes]\ncatch_all = \"main\"\n",
        primary.addr(),
        replica.addr()
    )
}

#[test]
fn replica_reads_go_to_replicas_writes_to_the_primary() {
    let (primary, replica) = with_replica();
    let k = Keyway::start("", &shard_cluster(&primary, &replica, "replica"));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "r", "1"]), "+OK\r\n");
    wait_replicated(&replica, "r", "1");
    let (p0, r0) = (
        cmdstat_calls(&primary, "get"),
        cmdstat_calls(&replica, "get"),
    );
    for _ in 0..50 {
        assert_eq!(cl.cmd(&["GET", "r"]), bulk("1"));
    }
    // The test's own replication check ran GETs on the replica too.
    assert_eq!(cmdstat_calls(&primary, "get") - p0, 0);
    assert!(cmdstat_calls(&replica, "get") - r0 >= 50);
    assert_eq!(
        cmdstat_calls(&primary, "set"),
        1,
        "the write went to the primary"
    );
}

#[test]
fn prefer_replica_falls_back_to_the_primary() {
    let (primary, mut replica) = with_replica();
    let k = Keyway::start("", &shard_cluster(&primary, &replica, "prefer_replica"));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "pr", "1"]), "+OK\r\n");
    wait_replicated(&replica, "pr", "1");
    assert_eq!(cl.cmd(&["GET", "pr"]), bulk("1"));
    replica.kill();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if cl.cmd(&["GET", "pr"]) == bulk("1") {
            break;
        }
        assert!(Instant::now() < deadline, "no fallback to the primary");
    }
    for _ in 0..20 {
        assert_eq!(cl.cmd(&["GET", "pr"]), bulk("1"));
    }
}

#[test]
fn a_dead_replica_costs_no_request_once_it_is_known_down() {
    // Found with the io_uring data path (slower requests made it show): a
    // failed endpoint looked healthy again as soon as its connect backoff
    // ended, so every backoff period one client read went to the dead
    // replica and failed. Reconnecting is now the connection's own job.
    let (primary, mut replica) = with_replica();
    let k = Keyway::start("", &shard_cluster(&primary, &replica, "prefer_replica"));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "dr", "1"]), "+OK\r\n");
    wait_replicated(&replica, "dr", "1");
    replica.kill();
    // The first read after the kill may meet the dead connection.
    let _ = cl.cmd(&["GET", "dr"]);
    for round in 0..4 {
        // Longer than the longest connect backoff (1 s).
        std::thread::sleep(Duration::from_millis(1200));
        for _ in 0..5 {
            assert_eq!(cl.cmd(&["GET", "dr"]), bulk("1"), "round {round}");
        }
    }
}

#[test]
fn prefer_primary_falls_back_to_a_replica() {
    let (mut primary, replica) = with_replica();
    let k = Keyway::start("", &shard_cluster(&primary, &replica, "prefer_primary"));
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "pp", "1"]), "+OK\r\n");
    wait_replicated(&replica, "pp", "1");
    let r0 = cmdstat_calls(&replica, "get");
    assert_eq!(cl.cmd(&["GET", "pp"]), bulk("1"));
    assert_eq!(
        cmdstat_calls(&replica, "get"),
        r0,
        "prefer_primary reads the primary while it is up"
    );
    primary.kill();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if cl.cmd(&["GET", "pp"]) == bulk("1") {
            break;
        }
        assert!(Instant::now() < deadline, "no fallback to the replica");
    }
    // Writes still go to the (dead) primary: a clear error, not the replica.
    assert!(cl
        .cmd(&["SET", "pp", "2"])
        .starts_with("-ERR upstream unavailable"));
}

#[test]
fn connection_rate_limit_closes_excess_connections() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "connection_rate_limit = 5");
    let mut served = 0;
    for _ in 0..30 {
        let mut c = Client::connect(k.port);
        c.send(&["PING"]);
        c.stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
        let mut buf = [0u8; 16];
        use std::io::Read;
        if let Ok(n) = c.stream.read(&mut buf) {
            if &buf[..n] == b"+PONG\r\n" {
                served += 1;
            }
        }
    }
    // 5 tokens at start, one of them taken by the test harness readiness probe.
    assert!((4..=8).contains(&served), "served {served} of 30 at 5/s");
    let stats = admin_get(k.admin_port, "/stats");
    let t = &stats[stats.find("\"total\"").unwrap()..];
    assert_eq!(json_number(t, "", "rejected_connections"), 30 - served);
    // Tokens come back with time.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(k.client().cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn clients_must_authenticate_when_the_proxy_has_a_password() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "password = \"s3cret\"");
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        cl.cmd(&["GET", "x"]),
        "-NOAUTH Authentication required.\r\n"
    );
    assert!(cl
        .cmd(&["HELLO", "3"])
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    assert_eq!(
        cl.cmd(&["AUTH", "nope"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        cl.cmd(&["AUTH", "other", "s3cret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(cl.cmd(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(cl.cmd(&["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "x", "1"]), "+OK\r\n");
    let mut c3 = k.client();
    assert!(c3
        .cmd(&["HELLO", "3", "AUTH", "default", "s3cret"])
        .starts_with("%8\r\n"));
    assert_eq!(c3.cmd(&["GET", "x"]), bulk("1"));
    let mut q = k.client();
    assert_eq!(q.cmd(&["QUIT"]), "+OK\r\n");
}

#[test]
fn a_proxy_username_is_required_with_its_password() {
    let a = Redis::start();
    let k = Keyway::over(&[&a], "username = \"app\"\npassword = \"s3cret\"");
    let mut cl = k.client();
    assert_eq!(
        cl.cmd(&["AUTH", "s3cret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(cl.cmd(&["AUTH", "app", "s3cret"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["PING"]), "+PONG\r\n");
}

#[test]
fn upstream_auth_with_password_and_acl_user() {
    let pw = Redis::start_with(free_port(), &["--requirepass", "backendpw"]);
    let acl = Redis::start_with(
        free_port(),
        &["--user", "app", "on", ">apppw", "~*", "&*", "+@all"],
    );
    let config = format!(
        "{}{}\n[routes]\ncatch_all = \"pw\"\n\n[[routes.prefix]]\nprefix = \"acl:\"\ncluster = \"acl\"\n",
        cluster("pw", &[&pw], "password = \"backendpw\""),
        cluster("acl", &[&acl], "username = \"app\"\npassword = \"apppw\""),
    );
    let k = Keyway::start("", &config);
    let mut cl = k.client();
    assert_eq!(cl.cmd(&["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(cl.cmd(&["SET", "acl:k", "2"]), "+OK\r\n");
    assert_eq!(pw.client_auth("backendpw").cmd(&["GET", "k"]), bulk("1"));
    // RESP3 clients: their connections authenticate with HELLO 3 AUTH.
    let mut c3 = k.client();
    assert!(c3.cmd(&["HELLO", "3"]).starts_with('%'));
    assert_eq!(c3.cmd(&["GET", "k"]), bulk("1"));
    assert_eq!(c3.cmd(&["GET", "acl:k"]), bulk("2"));
}

#[test]
fn wrong_upstream_credentials_give_a_clear_error_without_a_reconnect_storm() {
    let pw = Redis::start_with(free_port(), &["--requirepass", "right"]);
    let k = Keyway::start(
        "",
        &format!(
            "{}\n[routes]\ncatch_all = \"pw\"\n",
            cluster("pw", &[&pw], "password = \"wrong\"")
        ),
    );
    let mut cl = k.client();
    let want = format!("-ERR upstream authentication failed ({})\r\n", pw.addr());
    for _ in 0..50 {
        assert_eq!(cl.cmd(&["GET", "k"]), want);
    }
    let log = k.log();
    assert_eq!(log.matches("authentication failed").count(), 1, "{log}");
    let stats = admin_get(k.admin_port, "/stats");
    let attempts = json_number(
        &stats[stats.find("\"total\"").unwrap()..],
        "",
        "connect_failures",
    );
    assert!(
        attempts <= 5,
        "{attempts} connection attempts for 50 requests"
    );
}

#[test]
fn multi_key_reads_on_one_shard_stay_on_one_replica() {
    // Found in review: the replica round robin advanced per key, so
    // SUNION {t}x {t}y could be sent half to each replica: -CROSSSLOT.
    let primary = Redis::start();
    let port = primary.port.to_string();
    let r1 = Redis::start_with(free_port(), &["--replicaof", "127.0.0.1", &port]);
    let r2 = Redis::start_with(free_port(), &["--replicaof", "127.0.0.1", &port]);
    for policy in ["replica", "any"] {
        let config = format!(
            "[[clusters]]\nname = \"main\"\nlb_policy = \"ring_hash\"\nread_policy = \"{policy}\"\nshards = [{{ primary = \"{}\", replicas = [\"{}\", \"{}\"] }}]\n\n[routes]\ncatch_all = \"main\"\n",
            primary.addr(),
            r1.addr(),
            r2.addr()
        );
        let k = Keyway::start("", &config);
        let mut cl = k.client();
        assert_eq!(cl.cmd(&["SADD", "{t}x", "a"]), ":1\r\n");
        assert_eq!(cl.cmd(&["SADD", "{t}y", "b"]), ":1\r\n");
        wait_replicated_cmd(&r1, &["SCARD", "{t}y"], ":1\r\n");
        wait_replicated_cmd(&r2, &["SCARD", "{t}y"], ":1\r\n");
        let before = cmdstat_calls(&r1, "sunion") + cmdstat_calls(&r2, "sunion");
        for _ in 0..20 {
            let r = cl.cmd(&["SUNION", "{t}x", "{t}y"]);
            assert!(r.starts_with("*2\r\n"), "{policy}: {r}");
        }
        if policy == "replica" {
            // Spread over both replicas across requests.
            assert!(cmdstat_calls(&r1, "sunion") > 0 && cmdstat_calls(&r2, "sunion") > 0);
            assert_eq!(
                cmdstat_calls(&r1, "sunion") + cmdstat_calls(&r2, "sunion") - before,
                20
            );
        }
        assert_eq!(cl.cmd(&["DEL", "{t}x", "{t}y"]), ":2\r\n");
    }
}

fn wait_replicated_cmd(replica: &Redis, cmd: &[&str], want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.client().cmd(cmd) != want {
        assert!(Instant::now() < deadline, "replication did not happen");
        std::thread::sleep(Duration::from_millis(20));
    }
}
