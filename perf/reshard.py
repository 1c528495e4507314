#!/usr/bin/env python3
"""Online resharding under load (issue 20): what a reshard costs.

    perf/reshard.py target/release/keyway [--keys 1000000] [--holds 20]

Six redis-servers and redis-benchmark on CPU 0, keyway (one core) on CPU 1,
a ketama cluster of five with reshard = "migrate". It loads --keys keys,
then, side by side in one run:

- before: redis-benchmark GET over those keys (50 clients, no pipelining):
  requests/s, p99, and keyway's CPU per request (/proc/PID/stat);
- during: the same while a sixth endpoint is added and every key whose owner
  changed moves (the mover at work, clients moving what they touch);
- keys that stay: the same, before, during and after, over keys of one
  hashtag whose owner the reshard does not change (their cost should be
  normal operation's);
- the mover's keys/s (moved / seconds, from GET /reshard);
- the hold: --holds reshards of a small cluster (grow, then shrink) under
  pipelined load, each hold's duration from keyway's log (p50, p99, max).
"""
import argparse, json, os, re, socket, subprocess, tempfile, time, urllib.request

from run import free_port, wait_port, cpu_ticks, redis_servers  # the harness's helpers (perf/run.py)

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--keys", type=int, default=1_000_000)
ap.add_argument("--holds", type=int, default=20)
a = ap.parse_args()
TICK = os.sysconf("SC_CLK_TCK")


procs = []
dir = tempfile.mkdtemp(prefix="keyway-reshard-")
redis = redis_servers(6, 0)


def cluster(ports):
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in ports)
    return f'[[clusters]]\nname = "main"\nlb_policy = "ketama"\nreshard = "migrate"\nendpoints = [{eps}]\n\n[routes]\ncatch_all = "main"\n'


kport, admin = free_port(), free_port()
conf = os.path.join(dir, "keyway.toml")


def write_conf(ports):
    with open(conf, "w") as f:
        f.write(f'[proxy]\nlisten = "127.0.0.1:{kport}"\ncores = [1]\n\n{cluster(ports)}\n[admin]\nlisten = "127.0.0.1:{admin}"\n')


def post(path):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method="POST")
    return urllib.request.urlopen(req).read().decode()


def get(path):
    return urllib.request.urlopen(f"http://127.0.0.1:{admin}{path}").read().decode()


def generation():
    return json.loads(get("/stats"))["config"]["generation"]


def bench(n, staying=None):
    """GET over the loaded keys, or (`staying`: a hashtag whose owner the
    reshard does not change) over keys of that tag only; (requests/s, p99
    ms, keyway µs CPU/request)."""
    what = ["-t", "get"] if staying is None else ["GET", staying + ":__rand_int__"]
    before = cpu_ticks(kp.pid)
    out = subprocess.run(["taskset", "-c", "0", "redis-benchmark", "-p", str(kport), "-n", str(n), "-r", str(a.keys), "-c", "50", "--csv"] + what, capture_output=True, text=True).stdout
    ticks = cpu_ticks(kp.pid) - before
    row = [l for l in out.splitlines() if l.startswith('"GET')][0]
    cols = [c.strip('"') for c in row.split(",")]
    return float(cols[1]), float(cols[6]), ticks / TICK * 1e6 / n


def staying_tag():
    """A hashtag `keyway route` places on the same endpoint before and
    after the sixth endpoint joins."""
    tags = [f"{{s{i}}}" for i in range(200)]
    def place(ports):
        write_conf(ports)
        out = subprocess.run([a.bin, "route", "--config", conf] + tags, capture_output=True, text=True, check=True).stdout
        return [l.split("\t")[2] for l in out.splitlines()]
    old, new = place(redis[:5]), place(redis)
    return next(t for t, o, n in zip(tags, old, new) if o == n)


staying = staying_tag()
write_conf(redis[:5])
log = open(os.path.join(dir, "keyway.log"), "w")
kp = subprocess.Popen([a.bin, "--config", conf], stderr=log)
procs.append(kp)
wait_port(kport)
try:
    # redis-benchmark's -r keys are key:000000NNNNNN: load exactly those.
    payload = "".join(f"*3\r\n$3\r\nSET\r\n$16\r\nkey:{i:012d}\r\n$3\r\nval\r\n" for i in range(a.keys))
    subprocess.run(["redis-cli", "-p", str(kport), "--pipe"], input=payload, text=True, capture_output=True, check=True)
    print("loaded", flush=True)
    before = bench(200_000)
    print("before", before, flush=True)
    before_staying = bench(200_000, staying)
    print("before, keys that stay", before_staying, flush=True)
    write_conf(redis)
    post("/reload")
    started = time.time()
    ended = []

    def watch():
        # Done once the falling round's pass is (the rising one's is first).
        while (lambda p: (p["state"], p["round"]))(json.loads(get("/reshard"))) != ("done", "falling"):
            time.sleep(0.05)
        ended.append(time.time())

    import threading
    watcher = threading.Thread(target=watch)
    watcher.start()
    # Random keys (some moving) and keys that stay, in turn.
    runs, runs_staying = [], []
    while not ended:
        runs.append(bench(100_000))
        if not ended:
            runs_staying.append(bench(100_000, staying))
    watcher.join()
    took = ended[0] - started
    mean = lambda rs: (sum(r[0] for r in rs) / len(rs), max(r[1] for r in rs), sum(r[2] for r in rs) / len(rs))
    during = mean(runs)
    during_staying = mean(runs_staying) if runs_staying else (0.0, 0.0, 0.0)
    print("during", runs, "keys that stay", runs_staying, flush=True)
    prog = json.loads(get("/reshard"))
    # (Moved counts over both rounds; each round scans every old owner.)
    moved = sum(o["moved"] for o in prog["old_owners"])
    after = bench(200_000)
    print("after", after, flush=True)
    after_staying = bench(200_000, staying)
    print("after, keys that stay", after_staying, flush=True)
    # The hold, many times, over a small cluster's worth of keys.
    for p in redis:
        subprocess.run(["redis-cli", "-p", str(p), "FLUSHALL"], capture_output=True)
    payload = "".join(f"*3\r\n$3\r\nSET\r\n$16\r\nkey:{i:012d}\r\n$3\r\nval\r\n" for i in range(10_000))
    subprocess.run(["redis-cli", "-p", str(kport), "--pipe"], input=payload, text=True, capture_output=True, check=True)
    load = subprocess.Popen(["taskset", "-c", "0", "redis-benchmark", "-p", str(kport), "-t", "set", "-n", "100000000", "-r", "10000", "-c", "20", "-P", "16", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(a.holds):
        gen = generation()
        write_conf(redis if i % 2 else redis[:5])
        post("/reload")
        # Reloaded, falling round, finished: three generations.
        while generation() < gen + 3:
            time.sleep(0.05)
        print("hold", i, flush=True)
    load.terminate()
    load.wait()
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
log.close()
# Every reshard holds twice (its rising round, then its falling one).
holds = sorted(float(m.group(1)) * {"ns": 1e-3, "µs": 1, "us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
               for m in re.finditer(r"every core held within ([\d.]+)(ns|µs|us|ms|s)", open(os.path.join(dir, "keyway.log")).read()))
pct = lambda q: holds[min(len(holds) - 1, int(q * len(holds)))]
print(f"keys: {a.keys}; the reshard ended {took:.1f} s after the reload: the mover scanned every old owner twice (a rising and a falling round) and moved {moved:,} keys ({2 * a.keys / took:,.0f} keys scanned/s, {moved / took:,.0f} moved/s)")
print(f"during the migration: {len(runs)} runs of 100,000 GETs (averaged; p99 the worst run's)")
print("| phase | requests/s | p99 ms | keyway CPU µs/request |")
print("|---|---:|---:|---:|")
for name, (rps, p99, cpu) in [("before", before), ("during the migration", during), ("after", after),
                              (f"before, keys that stay ({staying}...)", before_staying),
                              (f"during, keys that stay ({len(runs_staying)} runs)", during_staying),
                              ("after, keys that stay", after_staying)]:
    print(f"| {name} | {rps:,.0f} | {p99:.3f} | {cpu:.2f} |")
print(f"keys that stay, CPU per request during / before: {during_staying[2] / before_staying[2]:.2f}x, during / after: {during_staying[2] / after_staying[2]:.2f}x")
print(f"holds ({len(holds)} holds of {len(holds) // 2} reshards of 10,000 keys, 1 core, under pipelined SET load): p50 {pct(0.5):.0f} µs, p99 {pct(0.99):.0f} µs, max {holds[-1]:.0f} µs")
