#!/usr/bin/env python3
"""What a command with hundreds of thousands of keys costs the core's other
clients (issue 23, item 6).

    perf/huge_commands.py BIN [BIN ...] [--keys 500000] [--rounds 2]

Starts four redis-servers and, for each BIN in turn (alternating, --rounds
times), keyway on CPU 0 with one core: three backends in cluster "main",
one in cluster "side" (prefix "side:"). While one client sends MSET, MGET
and DEL of --keys keys, two clients send GETs one at a time, as fast as
they are answered: one for a key on a backend the big command uses, one
for a key on "side". Prints each client's latency percentiles and keyway's
own (frame complete to reply written, from /latency). Backends and clients
run on CPU 1, the GET clients at real-time priority so that CPU's other
work does not stand in their way.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import free_port, wait_port  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("bins", nargs="+")
ap.add_argument("--keys", type=int, default=500_000)
ap.add_argument("--rounds", type=int, default=2)
a = ap.parse_args()


def encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for x in args:
        x = x if isinstance(x, bytes) else str(x).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(x), x))
    return b"".join(out)


PINGER = r"""
import socket, sys, time, json
port, key, stop = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
import os
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
took = []
while not os.path.exists(stop):
    t = time.perf_counter()
    s.sendall(req)
    s.recv(100)
    took.append(time.perf_counter() - t)
print(json.dumps(took))
"""


def percentiles(xs):
    xs = sorted(xs)
    at = lambda q: xs[min(len(xs) - 1, int(len(xs) * q))] * 1e3
    return f"{len(xs):6d} GETs  p50 {at(.5):6.2f}  p99 {at(.99):6.2f}  p99.9 {at(.999):6.2f}  max {xs[-1] * 1e3:7.2f} ms"


tmp = tempfile.mkdtemp(prefix="keyway-huge-")
procs = []
try:
    backends = [free_port() for _ in range(4)]
    for p in backends:
        procs.append(subprocess.Popen(["taskset", "-c", "1", "redis-server", "--port", str(p), "--save", "",
                                       "--appendonly", "no"], cwd=tmp, stdout=subprocess.DEVNULL))
        wait_port(p)
    port, admin = free_port(), free_port()
    conf = os.path.join(tmp, "keyway.toml")
    main = ", ".join(f'"127.0.0.1:{p}"' for p in backends[:3])
    with open(conf, "w") as f:
        f.write(f"""[proxy]
listen = "127.0.0.1:{port}"
cores = [0]
[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = [{main}]
[[clusters]]
name = "side"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:{backends[3]}"]
[[routes.prefix]]
prefix = "side:"
cluster = "side"
[routes]
catch_all = "main"
[admin]
listen = "127.0.0.1:{admin}"
""")
    n = a.keys
    keys = [f"key:{i}" for i in range(n)]
    mset = encode("MSET", *[x for i, k in enumerate(keys) for x in (k, f"v{i}")])
    mget = encode("MGET", *keys)
    dele = encode("DEL", *keys)
    mget_len = len(f"*{n}\r\n") + sum(len(f"${len(f'v{i}')}\r\nv{i}\r\n") for i in range(n))
    print(f"{n} keys: MSET {len(mset) >> 20} MB, MGET reply {mget_len >> 20} MB")
    for round_ in range(a.rounds):
        for bin_ in a.bins:
            kw = subprocess.Popen(["taskset", "-c", "0", bin_, "--config", conf], cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(port)
            stop = os.path.join(tmp, "stop")
            if os.path.exists(stop):
                os.unlink(stop)
            pingers = {key: subprocess.Popen(["chrt", "-f", "10", "taskset", "-c", "1", sys.executable, "-c", PINGER,
                                              str(port), key, stop], stdout=subprocess.PIPE)
                       for key in ("other", "side:other")}
            time.sleep(0.5)
            big = socket.create_connection(("127.0.0.1", port))
            timings = []
            for name, payload, want in (("MSET", mset, 5), ("MGET", mget, mget_len), ("DEL", dele, len(f":{n}\r\n"))):
                t = time.perf_counter()
                big.sendall(payload)
                got = 0
                while got < want:
                    got += len(big.recv(1 << 20))
                timings.append(f"{name} {time.perf_counter() - t:.2f}s")
                time.sleep(0.3)
            open(stop, "w").close()
            print(f"\n{bin_} (round {round_ + 1}): " + ", ".join(timings))
            for key, p in pingers.items():
                out, _ = p.communicate()
                where = "same backends" if key == "other" else "other cluster"
                print(f"  GET {where:13s} {percentiles(json.loads(out))}")
            lat = json.load(urllib.request.urlopen(f"http://127.0.0.1:{admin}/latency"))["total"]["read"]
            print(f"  keyway's own read latency: p99 {lat['p99_us'] / 1e3:.2f}  p99.9 {lat['p999_us'] / 1e3:.2f}  "
                  f"max {lat['max_us'] / 1e3:.2f} ms")
            kw.terminate()
            kw.wait()
            big.close()
finally:
    for p in procs:
        p.terminate()
