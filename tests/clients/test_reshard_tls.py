"""Online resharding (issue 20) against TLS-only servers with an ACL user,
ElastiCache style: keyway sends MIGRATE ... AUTH2 user password to the old
owner, which connects to the new owner over TLS itself (`tls-cluster yes`,
as MIGRATE's outgoing connections need on TLS-only servers). A fourth
server joins a ring_hash cluster of three through a reload; every key
written before, and during, ends on the one server the new ring names."""
import json
import shutil
import tempfile
import threading
import time
import urllib.request

import redis

from cluster import Keyway, Procs, Tls, free_port, wait_port

USER, PASSWORD = "keyway", "reshard-secret"


def start_server(procs, tls, port):
    d = procs.tmp / f"tls-{port}"
    d.mkdir(exist_ok=True)
    args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(d), "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(tls.server[0]), "--tls-key-file", str(tls.server[1]),
            "--tls-ca-cert-file", str(tls.ca[0]), "--tls-cluster", "yes",
            "--tls-auth-clients", "no",
            "--user", "default", "off",
            "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    procs.start(args, f"tls-{port}")
    wait_port(port)


def direct(tls, port):
    return redis.Redis(host="127.0.0.1", port=port, username=USER, password=PASSWORD,
                       ssl=True, ssl_ca_certs=str(tls.ca[0]), socket_timeout=5,
                       decode_responses=True)


def config(tls, ports):
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    return f"""
[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = 2

[admin]
listen = "127.0.0.1:{{ADMIN}}"

[[clusters]]
name = "main"
lb_policy = "ring_hash"
reshard = "migrate"
endpoints = [{eps}]
username = "{USER}"
password = "{PASSWORD}"
tls = {{ ca_file = "{tls.ca[0]}" }}

[routes]
catch_all = "main"
"""


def test_a_tls_ring_with_acl_auth_grows_online_and_loses_nothing():
    tmp = tempfile.mkdtemp(prefix="keyway-reshard-tls-")
    procs = Procs(tmp)
    try:
        tls = Tls(tmp)
        ports = [free_port() for _ in range(4)]
        for p in ports:
            start_server(procs, tls, p)
        k = Keyway(procs, config(tls, ports[:3]), cores=2)
        r = k.client()
        pipe = r.pipeline(transaction=False)
        for i in range(5000):
            pipe.set(f"k:{i}", f"v{i}")
        assert all(pipe.execute())
        counts, errors, stop = {}, [], threading.Event()

        def load():
            c = k.client()
            n = 0
            while not stop.is_set():
                key = f"c:{n % 200}"
                try:
                    counts[key] = c.incr(key)
                except redis.RedisError as e:
                    errors.append(f"INCR {key}: {e}")
                n += 1

        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.3)
        text = config(tls, ports).replace("{PORT}", str(k.port)).replace("{ADMIN}", str(k.admin))
        k.cfg.write_text(text)
        req = urllib.request.Request(f"http://127.0.0.1:{k.admin}/reload", method="POST")
        assert b"reloaded" in urllib.request.urlopen(req, timeout=30).read()
        deadline = time.time() + 30
        while True:
            p = k.admin_get("/reshard")
            if p and (p["state"], p["round"]) == ("done", "falling") and \
                    not k.cfg.with_name(k.cfg.name + ".reshard").exists():
                break
            assert time.time() < deadline, (p, k.log())
            time.sleep(0.1)
        stop.set()
        t.join()
        assert not errors, errors[:5]
        assert sum(o["moved"] for o in p["old_owners"]) > 0, p
        assert all(o["errors"] == 0 for o in p["old_owners"]), p
        # Every key on exactly one server, the fourth holding its share.
        per = [set(direct(tls, port).keys("*")) for port in ports]
        seen = [key for keys in per for key in keys]
        assert len(seen) == len(set(seen)) == 5000 + len(counts), (len(seen), len(set(seen)))
        assert len(per[3]) > 500, [len(s) for s in per]
        for i in range(0, 5000, 7):
            assert r.get(f"k:{i}") == f"v{i}"
        for key, n in counts.items():
            assert int(r.get(key)) == n, key
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)
