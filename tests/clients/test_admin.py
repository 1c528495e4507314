"""The admin endpoint and latency dumps, through the real keyway binary on two
cores in front of real redis-servers: /stats counters match the traffic sent,
/metrics parses as Prometheus text, and a latency dump after a redis-benchmark
run has one histogram per core whose counts add up to the requests sent."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import valkey
from prometheus_client.parser import text_string_to_metric_families

from test_clients import KEYWAY, eventually, free_port, start_server, wait_port


@pytest.fixture
def proxy():
    procs = []
    tmp = tempfile.mkdtemp(prefix="keyway-admin-")
    try:
        ports = []
        for _ in range(2):
            ports.append(start_server(procs, tmp))
        port, admin = free_port(), free_port()
        cfg = Path(tmp) / "keyway.toml"
        endpoints = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
        cfg.write_text(f"""
[proxy]
listen = "127.0.0.1:{port}"
cores = 2

[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = [{endpoints}]

[routes]
catch_all = "main"

[admin]
listen = "127.0.0.1:{admin}"
latency_dir = "{tmp}/latency"
""")
        kw = subprocess.Popen([KEYWAY, "--config", str(cfg)], stderr=open(Path(tmp) / "keyway.log", "w"))
        procs.append(kw)
        wait_port(port)
        wait_port(admin)
        yield {"port": port, "admin": admin, "dir": Path(tmp) / "latency", "pid": kw.pid}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        subprocess.run(["rm", "-rf", tmp])


def get(proxy, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{proxy['admin']}{path}", method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def test_stats_counters_match_the_traffic(proxy):
    r = valkey.Valkey(port=proxy["port"], protocol=2)
    for i in range(100):
        r.set(f"k{i}", i)
    for i in range(40):
        r.get(f"k{i}")
    for i in range(5):
        r.mget(["k1", "k2", "k3"])
    for _ in range(3):
        with pytest.raises(valkey.ResponseError):
            r.execute_command("SWAPDB", 0, 1)
    for _ in range(2):
        with pytest.raises(valkey.ResponseError):
            r.execute_command("NOSUCHCMD", "x")
    status, ctype, body = get(proxy, "/stats")
    assert status == 200 and ctype.startswith("application/json")
    stats = json.loads(body)
    assert len(stats["cores"]) == 2
    total = stats["total"]
    cmds = total["commands"]
    assert (cmds["set"], cmds["get"], cmds["mget"], cmds["swapdb"], cmds["(unknown)"]) == (100, 40, 5, 3, 2)
    assert total["errors"]["unsupported"] == 3 and total["errors"]["unknown_command"] == 2
    assert total["client_connections"] == 1 and total["accepted_connections"] >= 1
    assert total["bytes_in"] > 0 and total["bytes_out"] > 0
    # Every SET and GET went to an endpoint; each MGET of 3 keys to one or two.
    upstream = sum(e["requests"] for e in total["endpoints"])
    assert 140 + 5 <= upstream <= 140 + 10, upstream
    assert total["latency"]["write"]["count"] == 100
    assert total["latency"]["read"]["count"] == 40
    assert total["latency"]["multi"]["count"] == 5
    status, _, clusters = get(proxy, "/clusters")
    c = json.loads(clusters)["clusters"][0]
    assert c["name"] == "main" and c["read_policy"] == "Primary" and len(c["shards"]) == 2
    assert all(sh["primary"]["role"] == "primary" and sh["replicas"] == [] for sh in c["shards"])
    assert "up" in {s for sh in c["shards"] for s in sh["primary"]["state_per_core"]}
    assert get(proxy, "/ready")[0] == 200
    assert "/metrics" in get(proxy, "/")[2]


def test_metrics_parse_as_prometheus_text(proxy):
    r = valkey.Valkey(port=proxy["port"], protocol=2)
    for i in range(25):
        r.set(f"m{i}", i)

    # A command is counted when sent on, timed once its reply is written:
    # the last one may reach the client before it reaches the histogram.
    def timed_as_counted():
        fams = {f.name: f for f in text_string_to_metric_families(get(proxy, "/metrics")[2])}
        timed = sum(s.value for s in fams["keyway_request_latency_seconds"].samples
                    if s.name.endswith("_count") and s.labels["group"] == "all")
        return timed == sum(s.value for s in fams["keyway_commands"].samples if s.name.endswith("_total"))

    assert eventually(timed_as_counted, True)
    status, ctype, text = get(proxy, "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    # The parser strips _total from counter names.
    assert families["keyway_commands"].type == "counter"
    sets = sum(s.value for s in families["keyway_commands"].samples
               if s.labels.get("command") == "set" and s.name.endswith("_total"))
    assert sets == 25
    lat = families["keyway_request_latency_seconds"]
    assert lat.type == "summary"
    quantiles = {s.labels["quantile"] for s in lat.samples if "quantile" in s.labels}
    assert quantiles == {"0.5", "0.9", "0.99", "0.999"}
    count = sum(s.value for s in lat.samples if s.name.endswith("_count") and s.labels["group"] == "all")
    # Every command is timed once (valkey-py also sends CLIENT SETINFO twice).
    all_commands = sum(s.value for s in families["keyway_commands"].samples if s.name.endswith("_total"))
    assert count == all_commands >= 25
    assert families["keyway_upstream_requests"].type == "counter"
    assert families["keyway_client_connections"].type == "gauge"


def hgrm_total(path):
    m = re.search(r"Total count\s*=\s*(\d+)", path.read_text())
    return int(m.group(1))


def test_latency_dump_per_core_adds_up_to_requests_sent(proxy):
    n = 20000
    res = subprocess.run(["redis-benchmark", "-p", str(proxy["port"]), "-t", "set", "-n", str(n), "-c", "20",
                          "-P", "4", "-r", "1000", "-q"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    stats = json.loads(get(proxy, "/stats")[2])
    sent = sum(stats["total"]["commands"].values())
    assert stats["total"]["commands"]["set"] == n
    # redis-benchmark also sends CONFIG GET (answered by the first backend).
    assert sent - n == stats["total"]["commands"].get("config", 0)
    d = proxy["dir"]

    def dumped():
        # Timed once each reply is written, which may be just after the
        # client read it: dump again until the last ones are in.
        status, _, body = get(proxy, "/latency/dump", method="POST")
        assert status == 200, body
        return hgrm_total(d / "all.hgrm")

    assert eventually(dumped, sent) == sent
    # (core<N>-<group>.hgrm beside them hold each command group's part.)
    cores = sorted(p for p in d.glob("core*.hgrm") if "-" not in p.name)
    assert [p.name for p in cores] == ["core0.hgrm", "core1.hgrm"]
    assert (d / "latency.svg").exists() and (d / "write.hgrm").exists()
    per_core = [hgrm_total(p) for p in cores]
    assert sum(per_core) == sent == hgrm_total(d / "all.hgrm")
    assert all(c > 0 for c in per_core), "both cores should have served clients"
    out = subprocess.run([KEYWAY, "latency", str(d)], capture_output=True, text=True)
    assert out.returncode == 0
    assert f"all      count={sent} " in out.stdout
    # SIGUSR2 writes a fresh dump.
    (d / "summary.txt").unlink()
    os.kill(proxy["pid"], signal.SIGUSR2)
    deadline = time.time() + 5
    while not (d / "summary.txt").exists() and time.time() < deadline:
        time.sleep(0.05)
    assert (d / "summary.txt").exists()


def test_admin_answers_while_others_hold_connections(proxy):
    """Found by issue 12: ten silent connections delayed /ready by 20 s, and
    one sending a byte every 1.5 s blocked it for good."""
    import socket
    import threading
    idle = [socket.create_connection(("127.0.0.1", proxy["admin"])) for _ in range(10)]
    trickler = socket.create_connection(("127.0.0.1", proxy["admin"]))
    stop = threading.Event()

    def trickle():
        for b in b"GET /stats HTTP/1.1\r\n":
            if stop.wait(1.5):
                return
            try:
                trickler.send(bytes([b]))
            except OSError:
                return
    t = threading.Thread(target=trickle)
    t.start()
    try:
        for _ in range(5):
            start = time.time()
            status, _, body = get(proxy, "/ready")
            assert status == 200 and body == "ready\n"
            assert time.time() - start < 0.5
            time.sleep(0.2)
        # The trickler's whole request head was due within 2 s.
        trickler.settimeout(5)
        assert trickler.recv(100).startswith(b"HTTP/1.1 408")
    finally:
        stop.set()
        t.join()
        for s in idle + [trickler]:
            s.close()


def test_admin_refuses_what_it_must(proxy):
    # Only a POST writes a dump.
    with pytest.raises(urllib.error.HTTPError) as e:
        get(proxy, "/latency/dump")
    assert e.value.code == 405
    # A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
    req = urllib.request.Request(f"http://127.0.0.1:{proxy['admin']}/stats",
                                 headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 421
    assert get(proxy, "/stats")[0] == 200
