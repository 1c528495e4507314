#!/usr/bin/env python3
"""A big key moved by a reshard (issue 20): how long other traffic stalls.

    perf/reshard_bigkey.py target/release/keyway [--mb 100] [--touch]

Three redis-servers on CPU 0, keyway (one core) on CPU 1, a ketama cluster
of two with reshard = "migrate". A hash of --mb megabytes (1 KB values) is
written on the endpoint that owns it, a third endpoint is added, and the
hash's owner changes. Meanwhile three clients GET, each in a loop, a key
whose owner does not change, on:

- `other`: the endpoint the reshard does not touch;
- `source`: the hash's old owner (busy while it serializes the hash);
- `target`: the new owner (busy while it restores it).

It prints, per client, the worst and the 99th percentile latency while
keys move and before, how long the move took, and checks the hash arrived
whole (HLEN) and left its old owner. With --touch a client also asks for
the hash (HLEN through keyway) as soon as the reshard starts, so a session
moves it rather than the background mover.
"""
import argparse, json, os, socket, subprocess, tempfile, threading, time, urllib.request

from run import free_port, wait_port, redis_servers  # the harness's helpers (perf/run.py)

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--mb", type=int, default=100)
ap.add_argument("--touch", action="store_true")
a = ap.parse_args()


class Conn:
    """A minimal RESP client: one command, one reply."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for x in args:
            x = x if isinstance(x, bytes) else str(x).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(x), x))
        self.s.sendall(b"".join(out))

    def reply(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            return "ERR:" + rest.decode()
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise SystemExit(f"bad reply {line!r}")

    def cmd(self, *args):
        self.send(*args)
        return self.reply()


procs = []
dir = tempfile.mkdtemp(prefix="keyway-bigkey-")
redis = redis_servers(3, 0)
kport, admin = free_port(), free_port()


def config(ports):
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    return f'[proxy]\nlisten = "127.0.0.1:{kport}"\ncores = [1]\n\n[[clusters]]\nname = "main"\nlb_policy = "ketama"\nreshard = "migrate"\nendpoints = [{eps}]\n\n[routes]\ncatch_all = "main"\n\n[admin]\nlisten = "127.0.0.1:{admin}"\n'


before, after = os.path.join(dir, "before.toml"), os.path.join(dir, "after.toml")
open(before, "w").write(config(redis[:2]))
open(after, "w").write(config(redis))


def owners(conf, keys):
    out = subprocess.run([a.bin, "route", "--config", conf, *keys], capture_output=True, text=True, check=True).stdout
    return [int(line.split("\t")[2].rsplit(":", 1)[1]) for line in out.splitlines()]


# Names unlike each other: ketama's default fnv1a_64 puts k:0..k:399
# nearly all on one endpoint.
names = [f"k:{(i + 1) * 0x9E3779B97F4A7C15 % 2**64:x}" for i in range(400)]
was, now = owners(before, names), owners(after, names)
big = next(n for n, w, v in zip(names, was, now) if v == redis[2])
source = was[names.index(big)]
other_port = next(p for p in redis[:2] if p != source)
stay = lambda port: next(n for n, w, v in zip(names, was, now) if w == v == port and n != big)
probes = {"other": stay(other_port), "source": stay(source)}
# The target holds nothing before: its probe is a key that moves there
# from the endpoint the hash does not leave.
probes["target"] = next(n for n, w, v in zip(names, was, now) if w == other_port and v == redis[2])

conf = os.path.join(dir, "keyway.toml")
open(conf, "w").write(open(before).read())
log = open(os.path.join(dir, "keyway.log"), "w")
procs.append(subprocess.Popen(["taskset", "-c", "1", a.bin, "--config", conf], stdout=log, stderr=log))
wait_port(kport)

# The hash, written on its owner directly (pipelined, 1,000 fields a command).
c = Conn(source)
fields = a.mb * 1024
value = b"v" * 1024
sent = 0
while sent < fields:
    args = ["HSET", big]
    for f in range(sent, min(sent + 1000, fields)):
        args += [f"f{f}", value]
    c.send(*args)
    sent += 1000
for _ in range((fields + 999) // 1000):
    c.reply()
k = Conn(kport)
for name in probes.values():
    assert k.cmd("SET", name, "x") == "OK"

samples = {name: [] for name in probes}
stop = threading.Event()


def probe(name, key):
    conn = Conn(kport)
    while not stop.is_set():
        t = time.perf_counter()
        r = conn.cmd("GET", key)
        samples[name].append((t, time.perf_counter() - t, r))


threads = [threading.Thread(target=probe, args=p) for p in probes.items()]
for t in threads:
    t.start()
time.sleep(2)


def admin_get(path):
    return urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}").read().decode()


open(conf, "w").write(open(after).read())
started = time.perf_counter()
urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{admin}/reload", method="POST")).read()
touched = None
if a.touch:
    t = time.perf_counter()
    r = Conn(kport).cmd("HLEN", big)
    touched = (r, time.perf_counter() - t)
# Done once the falling round's pass is (the rising one's comes first).
while (lambda p: (p["state"], p["round"]))(json.loads(admin_get("/reshard"))) != ("done", "falling"):
    time.sleep(0.05)
ended = time.perf_counter()
time.sleep(1)
stop.set()
for t in threads:
    t.join()

print(f"hash {big}: {a.mb} MB ({fields} fields of 1 KB), 127.0.0.1:{source} -> 127.0.0.1:{redis[2]}")
if touched:
    print(f"HLEN through keyway as the reshard started: {touched[0]} in {touched[1] * 1000:.0f} ms (a session moved it)")
print(f"reshard: {ended - started:.2f} s from reload to done")
for name, rows in samples.items():
    errors = [r for (_, _, r) in rows if r != b"x"]
    during = sorted(d for (t, d, _) in rows if started <= t <= ended)
    calm = sorted(d for (t, d, _) in rows if t < started)
    pct = lambda xs, q: xs[min(len(xs) - 1, int(len(xs) * q))] * 1000 if xs else 0
    print(f"{name:>6} ({probes[name]}): during move max {during[-1] * 1000 if during else 0:.0f} ms, p99 {pct(during, 0.99):.1f} ms, {len(during)} GETs; before: max {calm[-1] * 1000:.1f} ms, p99 {pct(calm, 0.99):.2f} ms; errors {len(errors)} {errors[:3]}")
dest = Conn(redis[2])
print(f"HLEN on the new owner: {dest.cmd('HLEN', big)} (want {fields}); on the old: {Conn(source).cmd('EXISTS', big)} (want 0)")
for p in procs:
    p.kill()
