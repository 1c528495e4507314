"""Client libraries at their default settings through keyway (issue 11):
the commands they send on connect (INFO, SELECT), transactions, scripts,
SCAN/KEYS/DBSIZE/FLUSH and the redis-cli tools, over three real backends.
Node clients (ioredis, node-redis) come from tests/clients/node, installed
by scripts/setup.sh.
"""
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
import valkey

from test_clients import eventually, start_keyway, start_server, valkey_server_binary

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keyway-compat")
    procs = []
    try:
        binaries = ["redis-server", "redis-server", valkey_server_binary() or "redis-server"]
        backends = [start_server(procs, tmp, binary=b) for b in binaries]
        port = start_keyway(procs, tmp, backends)
        yield {"port": port, "backends": backends}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def backend_of(proxy, key, db=0):
    """The backend port that holds `key` (read directly, not through keyway)."""
    held = [p for p in proxy["backends"] if redis.Redis(port=p, db=db).exists(key)]
    assert len(held) == 1, (key, held)
    return held[0]


@pytest.mark.parametrize("protocol", [3, 2])
def test_info_is_answered_for_ready_checks(proxy, protocol):
    r = redis.Redis(port=proxy["port"], protocol=protocol)
    r.set("info:k", "1")
    info = r.info()
    lowest = min(
        (tuple(int(x) for x in redis.Redis(port=p).info("server")["redis_version"].split("."))
         for p in proxy["backends"]))
    assert tuple(int(x) for x in info["redis_version"].split(".")) == lowest
    assert info["loading"] == 0 and info["role"] == "master"
    assert info["redis_mode"] == "standalone"
    direct = sum(redis.Redis(port=p).dbsize() for p in proxy["backends"])
    assert info["db0"]["keys"] == direct
    assert set(r.info("replication")) >= {"role"}
    assert "db0" not in r.info("replication")
    assert r.execute_command("ROLE")[0] in ("master", b"master")
    # HELLO reports the same version (learned from the backends, then kept).
    for _ in range(2):
        hello = r.execute_command("HELLO", protocol)
        if isinstance(hello, list):
            hello = dict(zip(hello[::2], hello[1::2]))
        hello = {as_text(k): v for k, v in hello.items()}
        assert as_text(hello["version"]) == info["redis_version"]


def as_text(v):
    return v.decode() if isinstance(v, bytes) else v


def raw(port, *args):
    """One command's reply without redis-py's reply parsing."""
    conn = redis.Redis(port=port, protocol=2).connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        conn.disconnect()


def test_command_table_is_the_backends_without_what_keyway_refuses(proxy):
    port = proxy["port"]
    names = {as_text(n) for n in raw(port, "COMMAND", "LIST")}
    theirs = {as_text(n) for n in raw(proxy["backends"][0], "COMMAND", "LIST")}
    assert names < theirs and len(names) > 200, (len(names), len(theirs))
    assert {"get", "blpop", "subscribe", "eval", "multi"} <= names
    assert not names & {"monitor", "swapdb", "shutdown", "debug"}
    r = redis.Redis(port=port, protocol=2)
    assert r.command_count() == len(names)
    assert set(r.command()) == names
    got, refused = raw(port, "COMMAND", "INFO", "get", "monitor")
    assert as_text(got[0]) == "get" and got[1] == 2 and refused is None
    assert [as_text(k) for k in r.command_getkeys("MSET", "a", "1", "b", "2")] == ["a", "b"]


def test_slowlog_and_latency_merge_every_backend_naming_it(proxy):
    r = redis.Redis(port=proxy["port"])
    direct = [redis.Redis(port=p) for p in proxy["backends"]]
    names = {f"127.0.0.1:{p}" for p in proxy["backends"]}
    try:
        for d in direct:
            d.config_set("slowlog-log-slower-than", 0)
            d.config_set("latency-monitor-threshold", 1)
        assert r.slowlog_reset()
        keys = [f"slow:{i}" for i in range(30)]
        for k in keys:
            r.set(k, "v")
        entries = r.slowlog_get(-1)
        # redis-py reads each entry's client name: the backend it ran on.
        assert {as_text(e["client_name"]) for e in entries} == names
        held = {k: f"127.0.0.1:{backend_of(proxy, k)}" for k in keys}
        for e in entries:
            if e["command"].startswith(b"SET slow:"):
                key = e["command"].split()[1].decode()
                assert as_text(e["client_name"]) == held[key]
        times = [e["start_time"] for e in entries]
        assert times == sorted(times, reverse=True)
        assert len(r.slowlog_get()) == 10
        # (Connecting directly logs a CLIENT SETINFO or two more.)
        through = r.slowlog_len()
        assert len(entries) <= through <= sum(d.slowlog_len() for d in direct)
        assert r.slowlog_reset() and all(d.slowlog_len() <= 1 for d in direct)
        # A slow script on one backend shows as that backend's event.
        busy = "local i=0 while i<3000000 do i=i+1 end return i"
        r.eval(busy, 1, "slow:0")
        latest = r.execute_command("LATENCY", "LATEST")
        assert [as_text(e[0]) for e in latest] == [held["slow:0"] + "/command"]
        doctor = as_text(r.execute_command("LATENCY", "DOCTOR"))
        assert all(f"backend {n}:" in doctor for n in names)
        assert r.execute_command("LATENCY", "RESET") >= 1
        assert r.execute_command("LATENCY", "LATEST") == []
    finally:
        for d in direct:
            d.config_set("slowlog-log-slower-than", 10000)
            d.config_set("latency-monitor-threshold", 0)


class Raw:
    """A plain socket client: no reconnects, replies as raw bytes."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, *args):
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def closed(self):
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def test_client_list_info_kill_and_reply_across_cores(tmp_path):
    procs = []
    try:
        backend = start_server(procs, tmp_path)
        port = start_keyway(procs, tmp_path, [backend], cores=2)
        raws = [Raw(port) for _ in range(16)]
        for i, r in enumerate(raws):
            r.send("CLIENT", "SETNAME", f"raw{i}")
            assert r.line() == b"+OK"
        me = redis.Redis(port=port, single_connection_client=True, client_name="me")
        listed = me.client_list()
        assert len(listed) == 17
        # SO_REUSEPORT spread the 16 over both cores; one LIST shows all.
        assert {c["keyway-core"] for c in listed} == {"0", "1"}
        assert {c["name"] for c in listed} == {"me"} | {f"raw{i}" for i in range(16)}
        mine = me.client_info()
        assert mine["id"] == me.client_id() and mine["name"] == "me"
        assert mine["lib-name"] == "redis-py" and mine["cmd"] == "client"
        on_other_core = next(c for c in listed if c["keyway-core"] != str(mine["keyway-core"]))
        by_name = {c["name"]: c for c in listed}
        # State shows: a MULTI with two queued commands, a subscriber.
        raws[0].send("MULTI")
        raws[0].send("INCR", "x")
        raws[0].send("INCR", "x")
        assert [raws[0].line() for _ in range(3)] == [b"+OK", b"+QUEUED", b"+QUEUED"]
        raws[1].send("SUBSCRIBE", "news")
        assert raws[1].line() == b"*3"
        shown = {c["name"]: c for c in me.client_list()}
        assert shown["raw0"]["flags"] == "x" and shown["raw0"]["multi"] == "2"
        assert shown["raw1"]["flags"] == "P" and shown["raw1"]["sub"] == "1"
        pubsub = me.client_list(_type="pubsub")
        assert [c["name"] for c in pubsub] == ["raw1"]
        # KILL by id closes that connection, on whichever core it is.
        victim = raws[int(on_other_core["name"][3:])]
        assert me.client_kill_filter(_id=on_other_core["id"]) == 1
        assert victim.closed()
        # The old form by address; an address nobody has is an error.
        addr = by_name["raw5"]["addr"] if on_other_core["name"] != "raw5" else by_name["raw6"]["addr"]
        assert me.client_kill(addr) is True
        with pytest.raises(redis.ResponseError, match="No such client"):
            me.client_kill("10.9.8.7:65000")
        # A killed session leaves the list once it has ended.
        assert eventually(lambda: len(me.client_list()), 15) == 15
        # CLIENT REPLY: OFF drops replies until ON; SKIP drops the next one.
        r = raws[2] if on_other_core["name"] != "raw2" else raws[3]
        r.send("CLIENT", "REPLY", "OFF")
        r.send("SET", "quiet", "1")
        r.send("CLIENT", "REPLY", "ON")
        assert r.line() == b"+OK"
        r.send("CLIENT", "REPLY", "SKIP")
        r.send("SET", "quiet", "2")
        r.send("GET", "quiet")
        assert r.line() == b"$1" and r.line() == b"2"
        assert me.execute_command("CLIENT", "NO-EVICT", "on") == b"OK"
        assert me.execute_command("CLIENT", "TRACKING", "off") == b"OK"
        with pytest.raises(redis.ResponseError, match="not available through keyway"):
            me.execute_command("CLIENT", "TRACKING", "on")
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_wait_counts_replicas_of_the_backends_the_client_wrote_to(tmp_path):
    procs = []
    try:
        a = start_server(procs, tmp_path, "--repl-diskless-sync-delay", "0")
        b = start_server(procs, tmp_path)
        replica_dir = tmp_path / "replica"
        replica_dir.mkdir()
        start_server(procs, replica_dir, "--replicaof", "127.0.0.1", str(a))
        replica = procs[-1]
        deadline = time.time() + 20
        while redis.Redis(port=a).info("replication").get("slave0", {}).get("state") != "online":
            assert time.time() < deadline, "replica did not sync"
            time.sleep(0.05)
        port = start_keyway(procs, tmp_path, [a, b])
        on = lambda backend: next(f"w:{i}" for i in range(1000) if backend_of_keys(port, a, b, f"w:{i}") == backend)
        key_a, key_b = on(a), on(b)
        r = redis.Redis(port=port, single_connection_client=True)
        # Only A was written to: its replica acknowledges at once.
        r.set(key_a, "1")
        t = time.time()
        assert r.wait(1, 5000) == 1
        assert time.time() - t < 2
        # SET and WAIT in one pipeline: WAIT counts that SET too.
        pipe = r.pipeline(transaction=False)
        pipe.set(key_a, "2")
        pipe.wait(1, 5000)
        assert pipe.execute() == [True, 1]
        # A replica that cannot acknowledge the new write: WAIT times out
        # with 0, it does not count the replica for older writes.
        replica.send_signal(signal.SIGSTOP)
        try:
            r.set(key_a, "3")
            t = time.time()
            assert r.wait(1, 300) == 0
            assert time.time() - t >= 0.25
        finally:
            replica.send_signal(signal.SIGCONT)
        # B has no replica: once the client wrote there, the fewest is 0.
        r.set(key_b, "1")
        assert r.wait(1, 200) == 0
        assert r.wait(0, 0) == 0
        # Bad arguments as Redis words them.
        with pytest.raises(redis.ResponseError, match="timeout is negative"):
            r.execute_command("WAIT", 1, -1)
        # A new client that wrote nothing waits on every primary.
        assert redis.Redis(port=port).wait(1, 100) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def backend_of_keys(port, a, b, key):
    """Which of backends a, b keyway places `key` on (by writing it)."""
    redis.Redis(port=port).set(key, "probe")
    held = [p for p in (a, b) if redis.Redis(port=p).exists(key)]
    redis.Redis(port=port).delete(key)
    return held[0]


def test_a_blocking_command_pipelined_after_a_write_sees_it(proxy):
    """BLPOP goes over a connection of its own; sent before the RPUSH
    ahead of it in the pipeline was answered, it could reach the backend
    first and wait for nothing."""
    r = redis.Redis(port=proxy["port"], single_connection_client=True)
    for i in range(50):
        pipe = r.pipeline(transaction=False)
        pipe.rpush(f"bl:{i}", "v")
        pipe.blpop(f"bl:{i}", 2)
        pipe.get("after")
        t = time.time()
        pushed, popped, after = pipe.execute()
        assert pushed == 1 and list(popped) == [f"bl:{i}".encode(), b"v"] and after is None
        assert time.time() - t < 1.5


def test_transactions_run_on_the_keys_backend(proxy):
    r = redis.Redis(port=proxy["port"])
    pipe = r.pipeline(transaction=True)
    for _ in range(5):
        pipe.incr("{tx}n")
    assert pipe.execute() == [1, 2, 3, 4, 5]
    assert r.get("{tx}n") == b"5"
    # The transaction really ran as one on a backend.
    assert redis.Redis(port=backend_of(proxy, "{tx}n")).get("{tx}n") == b"5"
    one = redis.Redis(port=proxy["port"], single_connection_client=True)
    assert one.execute_command("MULTI")
    with pytest.raises(redis.ResponseError, match="MULTI calls can not be nested"):
        one.execute_command("MULTI")
    assert one.execute_command("DISCARD")
    with pytest.raises(redis.ResponseError, match="EXEC without MULTI"):
        one.execute_command("EXEC")


def test_a_transaction_across_backends_runs_nothing(proxy):
    r = redis.Redis(port=proxy["port"])
    keys = [f"txx:{i}" for i in range(40)]
    for k in keys:
        r.set(k, 0)
    a = keys[0]
    b = next(k for k in keys if backend_of(proxy, k) != backend_of(proxy, a))
    pipe = r.pipeline(transaction=True)
    pipe.incr(a)
    pipe.incr(b)
    with pytest.raises(redis.exceptions.ResponseError):
        pipe.execute()
    # Nothing queued ran: not the first key's INCR either.
    assert r.get(a) == b"0" and r.get(b) == b"0"
    # The connection is usable after the aborted transaction.
    assert r.incr(a) == 1


def test_scripts_load_on_every_backend(proxy):
    r = redis.Redis(port=proxy["port"])
    r.script_flush()
    script = r.register_script("return redis.call('incrby', KEYS[1], ARGV[1])")
    assert script(keys=["script:x"], args=[3]) == 3
    assert script(keys=["script:y"], args=[4]) == 4
    sha = r.script_load("return 7")
    assert r.script_exists(sha, "0" * 40) == [True, False]
    for p in proxy["backends"]:
        assert redis.Redis(port=p).script_exists(sha) == [True]
    assert r.script_flush()
    assert r.script_exists(sha) == [False]
    # Functions load on every backend, so FCALL works whatever the key.
    lib = "#!lua name=kwlib\nredis.register_function('kwinc', function(k, a) return redis.call('incr', k[1]) end)"
    assert r.function_load(lib, replace=True) in (b"kwlib", "kwlib")
    assert [r.fcall("kwinc", 1, f"fn:{i}") for i in range(10)] == [1] * 10
    assert r.function_list()
    assert r.function_delete("kwlib")
    with pytest.raises(redis.ResponseError, match="Function not found"):
        r.fcall("kwinc", 1, "fn:0")


def test_scan_keys_dbsize_randomkey_cover_every_backend(proxy):
    r = valkey.Valkey(port=proxy["port"], protocol=2)
    want = {f"scan:{i}".encode() for i in range(500)}
    r.mset({k: b"v" for k in want})
    assert set(r.scan_iter(match="scan:*", count=40)) == want
    assert set(r.keys("scan:*")) == want
    assert r.dbsize() == sum(redis.Redis(port=p).dbsize() for p in proxy["backends"])
    assert r.randomkey() is not None
    assert isinstance(r.time()[0], int)
    assert r.lastsave()
    assert r.config_get("save") is not None
    with pytest.raises(valkey.exceptions.ResponseError, match="invalid cursor"):
        r.scan(cursor="nope")


def test_select_gives_each_client_its_database(proxy):
    r2 = redis.Redis(port=proxy["port"], db=2)
    r0 = redis.Redis(port=proxy["port"])
    r2.set("sel:k", "in2")
    assert r2.get("sel:k") == b"in2"
    assert r0.get("sel:k") is None
    port = next(p for p in proxy["backends"] if redis.Redis(port=p, db=2).exists("sel:k"))
    assert redis.Redis(port=port, db=2).get("sel:k") == b"in2"
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r0.select(99) if hasattr(r0, "select") else r0.execute_command("SELECT", 99)


@pytest.mark.parametrize("script", ["ioredis_check.js", "node_redis_check.js"])
def test_node_clients_with_default_options(proxy, script):
    res = subprocess.run(["node", script, str(proxy["port"])], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    if script == "node_redis_check.js":
        # `database: 1` really selected database 1 on the backends.
        assert sum(redis.Redis(port=p, db=1).dbsize() for p in proxy["backends"]) >= 302


def test_redis_cli_tools(proxy):
    port = str(proxy["port"])
    run = lambda *a: subprocess.run(["redis-cli", "-p", port, *a], capture_output=True,
                                    text=True, timeout=60)
    redis.Redis(port=proxy["port"]).mset({f"cli2:{i}": i for i in range(50)})
    assert "redis_version:" in run("info").stdout
    assert int(run("dbsize").stdout) >= 50
    scanned = run("--scan", "--pattern", "cli2:*").stdout.split()
    assert sorted(scanned) == sorted(f"cli2:{i}" for i in range(50))
    # HELP shows the backend's docs for what keyway serves.
    assert "key value" in run("help", "set").stdout.lower()
    big = run("--bigkeys")
    assert big.returncode == 0 and "strings" in big.stdout, big.stdout + big.stderr
    stat = subprocess.run(["timeout", "2", "stdbuf", "-oL", "redis-cli", "-p", port, "--stat", "-i", "0.2"],
                          capture_output=True, text=True)
    assert "keys" in stat.stdout and "requests" in stat.stdout, stat.stdout + stat.stderr
    assert "ERR" not in stat.stdout, stat.stdout


def test_redis_benchmark_default_suite_without_warnings(proxy):
    res = subprocess.run(["redis-benchmark", "-p", str(proxy["port"]), "-q", "-n", "2000"],
                         capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    bad = [l for l in out.replace("\r", "\n").splitlines() if "WARNING" in l or "ERR" in l]
    assert not bad, bad
    for test in ["PING_INLINE", "SET", "GET", "INCR", "LPUSH", "SADD", "HSET", "ZADD",
                 "LRANGE_100 (first 100 elements)", "MSET (10 keys)"]:
        assert f"{test}:" in out, out


def test_flushall_reaches_every_backend(proxy):
    r = redis.Redis(port=proxy["port"])
    r.mset({f"fl:{i}": i for i in range(30)})
    assert r.flushall()
    assert r.dbsize() == 0
    assert all(redis.Redis(port=p).dbsize() == 0 for p in proxy["backends"])


def test_blocking_commands_wait_on_their_own_connection(proxy):
    import socket
    import threading

    r = redis.Redis(port=proxy["port"])
    other = redis.Redis(port=proxy["port"])
    r.delete("bl:q", "bl:gone")
    # A BLPOP with no timeout does not hold up anyone else, even on its
    # backend: the shared connection never carries it.
    blocked = redis.Redis(port=proxy["port"])
    got = {}
    t = threading.Thread(target=lambda: got.update(v=blocked.blpop(["bl:q"], timeout=0)))
    t.start()
    time.sleep(0.3)
    for i in range(50):
        other.set(f"bl:{i}", i)
        assert other.get(f"bl:{i}") == str(i).encode()
    assert t.is_alive()
    other.rpush("bl:q", "x")
    t.join(5)
    assert got["v"] == (b"bl:q", b"x")
    # The client's timeout is honoured, not op_timeout (2 s here).
    start = time.time()
    assert r.blpop(["bl:q"], timeout=3) is None
    assert 2.9 <= time.time() - start < 5
    assert r.brpoplpush("bl:none", "bl:none", timeout=0.2) is None
    r.xadd("bl:s", {"f": "v"})
    assert r.xread({"bl:s": "0"}, block=100)[0][0] in (b"bl:s", "bl:s")
    assert r.xread({"bl:s": "$"}, block=200) in ([], {}, None)
    # A client that leaves while blocked takes nothing with it.
    s = socket.create_connection(("127.0.0.1", proxy["port"]))
    s.sendall(b"*3\r\n$5\r\nBLPOP\r\n$7\r\nbl:gone\r\n$1\r\n0\r\n")
    time.sleep(0.3)
    s.close()
    # keyway closes its backend connection; the backend notices the close.
    blocked = lambda: sum(redis.Redis(port=p).info("clients")["blocked_clients"] for p in proxy["backends"])
    assert eventually(blocked, 0) == 0
    other.rpush("bl:gone", "kept")
    time.sleep(0.2)
    assert other.lrange("bl:gone", 0, -1) == [b"kept"]
    # Keys on two backends cannot block together.
    keys = [f"blx:{i}" for i in range(40)]
    for k in keys:
        other.set(k, 1)
    b = next(k for k in keys if backend_of(proxy, k) != backend_of(proxy, keys[0]))
    other.delete(*keys)
    with pytest.raises(redis.ResponseError, match="hash to the same slot"):
        r.blpop([keys[0], b], timeout=1)


def test_watch_guards_a_transaction_on_its_backend(proxy):
    r = redis.Redis(port=proxy["port"])
    other = redis.Redis(port=proxy["port"])
    r.set("w:{a}", 1)

    def bump(pipe):
        v = int(pipe.get("w:{a}"))
        pipe.multi()
        pipe.set("w:{a}", v + 1)

    # redis-py's transaction helper: WATCH, GET, MULTI, SET, EXEC.
    r.transaction(bump, "w:{a}")
    assert r.get("w:{a}") == b"2"
    # A write by another client between WATCH and EXEC fails the EXEC.
    pipe = r.pipeline()
    pipe.watch("w:{a}")
    other.set("w:{a}", 100)
    pipe.multi()
    pipe.set("w:{a}", 5)
    with pytest.raises(redis.WatchError):
        pipe.execute()
    assert r.get("w:{a}") == b"100"
    # UNWATCH forgets it.
    pipe = r.pipeline()
    pipe.watch("w:{a}")
    pipe.unwatch()
    other.set("w:{a}", 7)
    pipe.multi()
    pipe.incr("w:{a}")
    assert pipe.execute() == [8]
    # Watched connections close when done: the backends hold no more
    # connections than before.
    before = sum(redis.Redis(port=p).info("clients")["connected_clients"] for p in proxy["backends"])
    for _ in range(10):
        r.transaction(bump, "w:{a}")
    # Closed after EXEC's reply: the backends see it a moment later.
    connected = lambda: sum(redis.Redis(port=p).info("clients")["connected_clients"] for p in proxy["backends"])
    assert eventually(lambda: connected() <= before, True), (connected(), before)


def test_valkey_glide_default_client(proxy):
    """glide sends INFO while connecting: with it refused, no client could
    be created."""
    import asyncio

    from glide import Batch, GlideClient, GlideClientConfiguration, NodeAddress, Script

    async def run():
        c = await GlideClient.create(
            GlideClientConfiguration([NodeAddress("127.0.0.1", proxy["port"])]))
        try:
            assert await c.set("glide:a", "1") == "OK"
            assert await c.get("glide:a") == b"1"
            script = Script("return redis.call('incrby', KEYS[1], ARGV[1])")
            assert await c.invoke_script(script, keys=["glide:n"], args=["2"]) == 2
            tx = Batch(is_atomic=True)
            tx.incr("{glide}x")
            tx.incr("{glide}x")
            assert await c.exec(tx, raise_on_error=True) == [1, 2]
            pipe = Batch(is_atomic=False)
            pipe.set("glide:1", "1")
            pipe.get("glide:1")
            assert await c.exec(pipe, raise_on_error=True) == ["OK", b"1"]
        finally:
            await c.close()

    asyncio.run(run())


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_channels_and_patterns_across_backends(proxy, protocol):
    r = redis.Redis(port=proxy["port"], protocol=protocol)
    p = r.pubsub()
    channels = [f"ps{protocol}:ch{i}" for i in range(8)]  # over every backend

    def drain(n, seconds=5):
        got, deadline = [], time.time() + seconds
        while time.time() < deadline and len(got) < n:
            m = p.get_message(timeout=0.1)
            if m:
                got.append((m["type"], m["channel"], m["data"]))
        return got

    p.subscribe(*channels)
    p.psubscribe(f"ps{protocol}:pat*")
    confirmations = drain(9)
    # Counts are the client's own totals, each pattern confirmed once.
    assert sorted(c[2] for c in confirmations) == list(range(1, 10)), confirmations
    # PUBSUB answers for every backend together.
    assert {c.decode() if isinstance(c, bytes) else c
            for c in r.pubsub_channels(f"ps{protocol}:*")} == set(channels)
    numsub = r.pubsub_numsub(channels[0], channels[1], "nobody")
    assert [(c.decode() if isinstance(c, bytes) else c, n) for c, n in numsub] == [
        (channels[0], 1), (channels[1], 1), ("nobody", 0)]
    assert r.pubsub_numpat() >= 1
    for i, ch in enumerate(channels):
        assert r.publish(ch, f"m{i}") == 1
    assert r.publish(f"ps{protocol}:pattern", "x") == 1
    got = drain(9)
    assert sorted((t, c.decode(), d.decode()) for t, c, d in got) == sorted(
        [("message", ch, f"m{i}") for i, ch in enumerate(channels)]
        + [("pmessage", f"ps{protocol}:pattern", "x")])
    if protocol == 2:
        # RESP2 subscribed clients may only (un)subscribe, ping, quit, reset.
        c = p.connection
        c.send_command("GET", "k")
        with pytest.raises(redis.ResponseError, match=r"only \(P\|S\)SUBSCRIBE"):
            c.read_response()
    p.unsubscribe()
    p.punsubscribe()
    left = drain(9)
    assert sorted(c[2] for c in left) == list(range(0, 9)), left
    assert r.publish(channels[0], "late") == 0
    p.close()


def test_a_subscriber_whose_backend_dies_is_disconnected(tmp_path):
    """Its subscriptions are gone with the backend: the client must know
    (it reconnects and subscribes again), not wait for messages forever."""
    procs = []
    try:
        backend = start_server(procs, tmp_path)
        port = start_keyway(procs, tmp_path, [backend])
        p = redis.Redis(port=port, protocol=2).pubsub()
        p.subscribe("c")
        assert p.get_message(timeout=2)["type"] == "subscribe"
        procs[0].kill()
        procs[0].wait()
        with pytest.raises(redis.ConnectionError):
            deadline = time.time() + 5
            while time.time() < deadline:
                p.get_message(timeout=0.2)
    finally:
        for p_ in procs:
            p_.kill()
            p_.wait()
