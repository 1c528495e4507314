#!/usr/bin/env python3
"""keyway's side-by-side benchmark.

Starts two redis-server backends, then nutcracker (ketama), Envoy
(redis_proxy, RING_HASH, --concurrency 1) and keyway (ring_hash, one core,
or all cores with --mode all) in front of the same backends; with
--baseline BIN, an earlier keyway build too (before/after in one run).
Proxies are pinned to one CPU, redis-benchmark and the backends to the
other. For each pipeline depth (-P 1, -P 16) and test (SET, GET, MSET of 10
keys, MGET of 10 keys) it runs redis-benchmark against direct redis and each proxy, one after
another in the same run, and records requests/s, p50/p99 and the proxy's CPU
time per request (utime+stime from /proc/PID/stat). Then, per proxy: system
calls per request (SET at -P 1 and -P 16, counted by `perf stat -e
raw_syscalls:sys_enter`, else strace -c), GET with 1000 clients, and the RSS
growth for 10,000 idle client connections. The tables, with date, commit,
machine and keyway's io_uring mode, are appended to perf/RESULTS.md; ratios
against the targets follow.
"""
import argparse
import atexit
import datetime
import os
import re
import resource
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYWAY = ROOT / "target" / "release" / "keyway"
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
PROCS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def start(cmd, cpu=None, **kw):
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    PROCS.append(p)
    return p


def redis_servers(n, cpu, **kw):
    """`n` redis-servers on CPU `cpu` (no persistence), answering: their ports."""
    ports = []
    for _ in range(n):
        port = free_port()
        start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
              cpu=cpu, **kw)
        ports.append(port)
    for p in ports:
        wait_port(p)
    return ports


def keyway_config(port, cores, backends, proxy_extra="", tail=""):
    """keyway on `port` with `cores`, a ring_hash cluster over `backends`
    (ports) as the catch-all; `proxy_extra` lines end [proxy], `tail`
    follows the routes."""
    endpoints = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
    return f"""[proxy]
listen = "127.0.0.1:{port}"
cores = {cores}
{proxy_extra}[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = [{endpoints}]
[routes]
catch_all = "main"
{tail}"""

def envoy_config(port, backends):
    """Envoy's redis_proxy on `port`, RING_HASH over `backends` (ports)."""
    eps = "".join(
        f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {p} }} }} }}\n"
        for p in backends)
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
          settings: {{ op_timeout: 5s, enable_hashtagging: true }}
          prefix_routes: {{ catch_all_route: {{ cluster: backends }} }}
  clusters:
  - name: backends
    connect_timeout: 1s
    type: STATIC
    lb_policy: RING_HASH
    load_assignment:
      cluster_name: backends
      endpoints:
      - lb_endpoints:
{eps}"""


def nutcracker_config(port, backends):
    """nutcracker on `port`: ketama, fnv1a_64, {hashtags}, over `backends`."""
    servers = "".join(f"   - 127.0.0.1:{p}:1\n" for p in backends)
    return (f"pool:\n  listen: 127.0.0.1:{port}\n  hash: fnv1a_64\n  hash_tag: \"{{}}\"\n  distribution: ketama\n"
            f"  redis: true\n  auto_eject_hosts: false\n  timeout: 5000\n  servers:\n{servers}")


@atexit.register
def cleanup():
    for p in PROCS:
        p.kill()
        p.wait()


def cpu_ticks(pid):
    if pid is None:
        return 0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_nofile():
    """10,000 idle connections need descriptors: raise the soft limit (the
    proxies started from here inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def count_syscalls(pid, run):
    """System calls made by every thread of `pid` while `run()` runs."""
    if shutil.which("perf"):
        out = tempfile.NamedTemporaryFile(suffix=".perf", delete=False).name
        mon = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", str(pid),
                                "-o", out], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        run()
        mon.send_signal(signal.SIGINT)
        mon.wait(timeout=30)
        text = Path(out).read_text()
        os.unlink(out)
        for line in text.splitlines():
            f = line.split(",")
            if len(f) > 2 and "raw_syscalls:sys_enter" in line and f[0].strip().isdigit():
                return int(f[0])
        return None
    if shutil.which("strace"):
        out = tempfile.NamedTemporaryFile(suffix=".strace", delete=False).name
        mon = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        run()
        mon.send_signal(signal.SIGINT)
        mon.wait(timeout=30)
        m = re.search(r"^\S+\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$", Path(out).read_text(), re.M)
        os.unlink(out)
        return int(m.group(1)) if m else None
    return None


def idle_connections(port, pid, n):
    """Opens `n` client connections (each sends one PING and reads PONG,
    then idles) and returns the proxy's RSS growth in kB."""
    before = rss_kb(pid)
    socks = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            socks.append(s)
        for s in socks:
            if s.recv(16) != b"+PONG\r\n":
                raise SystemExit(f"idle connection to {port} did not get PONG")
        time.sleep(1)
        return rss_kb(pid) - before
    finally:
        for s in socks:
            s.close()


def bench(port, test, pipeline, requests, clients, cpu):
    keys10 = [f"key:__rand_int__{i}" for i in range(10)]
    if test == "MGET":
        args = ["MGET"] + keys10
    elif test == "MSET":
        args = ["-t", "mset"]
    else:
        args = ["-t", test.lower()]
    cmd = ["taskset", "-c", str(cpu), "redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
           "-P", str(pipeline), "-r", "100000", "-d", "16", "--csv"] + args
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    rows = [l for l in res.stdout.splitlines() if l.startswith('"') and not l.startswith('"test"')]
    if res.returncode != 0 or not rows:
        raise SystemExit(f"redis-benchmark failed: {' '.join(cmd)}\n{res.stdout}\n{res.stderr}")
    cols = [c.strip('"') for c in rows[-1].split(",")]
    return float(cols[1]), float(cols[4]), float(cols[6])  # rps, p50 ms, p99 ms


def machine():
    model = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs, {model}, Linux {os.uname().release}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["one", "all"], default="one",
                    help="one: keyway on one core pinned like the peers; all: keyway on every core")
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--no-envoy", action="store_true")
    ap.add_argument("--baseline", help="an earlier keyway binary, measured in the same run as 'keyway (before)'")
    ap.add_argument("--idle", type=int, default=10000, help="idle client connections for the memory figure")
    ap.add_argument("--results", default=str(ROOT / "perf" / "RESULTS.md"))
    a = ap.parse_args()
    ncpu = os.cpu_count() or 1
    proxy_cpu = ncpu - 1
    client_cpu = 0
    tmp = Path(tempfile.mkdtemp(prefix="keyway-perf-"))
    atexit.register(shutil.rmtree, tmp, True)
    raise_nofile()

    # Backends share the load generator's CPU: the proxies' CPU is theirs
    # alone, as in the issue's measurements.
    backends = redis_servers(2, client_cpu, cwd=tmp)

    peers = {"redis (direct)": (backends[0], None)}

    nc_port = free_port()
    (tmp / "nutcracker.yml").write_text(nutcracker_config(nc_port, backends))
    nc = start(["nutcracker", "-c", str(tmp / "nutcracker.yml"), "-s", str(free_port()), "-o", str(tmp / "nc.log")],
               cpu=proxy_cpu)
    wait_port(nc_port)
    peers["nutcracker"] = (nc_port, nc.pid)

    if not a.no_envoy and shutil.which("envoy"):
        ev_port = free_port()
        (tmp / "envoy.yaml").write_text(envoy_config(ev_port, backends))
        ev = start(["envoy", "-c", str(tmp / "envoy.yaml"), "--concurrency", "1", "--disable-hot-restart",
                    "--log-level", "error"], cpu=proxy_cpu)
        wait_port(ev_port)
        peers["envoy"] = (ev_port, ev.pid)

    kw_port = free_port()
    endpoints = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
    cores = f"[{proxy_cpu}]" if a.mode == "one" else '"all"'
    # max_clients above the idle-connection count (its default is 10,000);
    # left out for a baseline build, which may not know the key.
    max_clients = f"max_clients = {a.idle + 2000}\n"
    (tmp / "keyway.toml").write_text(
        keyway_config(kw_port, cores, backends, max_clients, f'[admin]\nlatency_dir = "{tmp}/latency"\n'))
    kw = start([str(KEYWAY), "--config", str(tmp / "keyway.toml")], stderr=open(tmp / "keyway.log", "w"))
    wait_port(kw_port)
    kw_label = "keyway (1 core)" if a.mode == "one" else f"keyway ({ncpu} cores)"
    peers[kw_label] = (kw_port, kw.pid)
    ring_mode = next((l.split(" io_uring ", 1)[1] for l in (tmp / "keyway.log").read_text().splitlines()
                      if " INFO io_uring " in l), "not reported")
    before_label = None
    if a.baseline:
        base_port = free_port()
        (tmp / "keyway-before.toml").write_text(
            (tmp / "keyway.toml").read_text().replace(f":{kw_port}\"", f":{base_port}\"")
            .replace(max_clients, "")
            .replace("latency\"", "latency-before\""))
        base = start([a.baseline, "--config", str(tmp / "keyway-before.toml")],
                     stderr=open(tmp / "keyway-before.log", "w"))
        wait_port(base_port)
        before_label = kw_label.replace("keyway", "keyway before")
        peers[before_label] = (base_port, base.pid)

    # The same keyway with every write mirrored to one more cluster (issue 4's
    # migration setup): what dual write costs, measured in the same run.
    mirror_port = free_port()
    start(["redis-server", "--port", str(mirror_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
          cpu=client_cpu, cwd=tmp)
    wait_port(mirror_port)
    kwm_port = free_port()
    (tmp / "keyway-mirror.toml").write_text(f"""[proxy]
listen = "127.0.0.1:{kwm_port}"
cores = {cores}
[[clusters]]
name = "main"
lb_policy = "ring_hash"
endpoints = [{endpoints}]
[[clusters]]
name = "mirror"
lb_policy = "ring_hash"
endpoints = ["127.0.0.1:{mirror_port}"]
[routes]
catch_all = "main"
catch_all_mirror = [{{ cluster = "mirror", exclude_read_commands = true }}]
[admin]
latency_dir = "{tmp}/latency-mirror"
""")
    kwm = start([str(KEYWAY), "--config", str(tmp / "keyway-mirror.toml")],
                stderr=open(tmp / "keyway-mirror.log", "w"))
    wait_port(kwm_port)
    mirror_label = kw_label.replace("keyway", "keyway + mirror")
    peers[mirror_label] = (kwm_port, kwm.pid)

    results = []
    for pipeline in (1, 16):
        for test in ("SET", "GET", "MSET", "MGET"):
            n = a.requests if pipeline > 1 else a.requests // 2
            if test in ("MSET", "MGET"):
                n //= 4
            for name, (port, pid) in peers.items():
                before = cpu_ticks(pid)
                rps, p50, p99 = bench(port, test, pipeline, n, a.clients, client_cpu)
                used = cpu_ticks(pid) - before
                us = used * TICK_US / n if pid else None
                results.append((pipeline, test, name, rps, p50, p99, us))
                cpu = f"{us:.2f}" if us is not None else "-"
                print(f"-P {pipeline:<2} {test:<4} {name:<18} {rps:>11.0f} req/s  p50 {p50:.3f} ms  "
                      f"p99 {p99:.3f} ms  cpu {cpu} us/req", flush=True)

    proxies = {name: (port, pid) for name, (port, pid) in peers.items() if pid and "mirror" not in name}
    # System calls per request, SET, on a shorter run of its own per proxy.
    syscalls = {}
    for pipeline in (1, 16):
        n = a.requests // 4
        for name, (port, pid) in proxies.items():
            calls = count_syscalls(pid, lambda: bench(port, "SET", pipeline, n, a.clients, client_cpu))
            syscalls[(pipeline, name)] = calls / n if calls is not None else None
            print(f"syscalls -P {pipeline:<2} SET {name:<18} "
                  f"{'-' if calls is None else f'{calls / n:.3f}'} per request", flush=True)
    # Many clients: GET at -P 1 with 1000 connections.
    many = {}
    for name, (port, pid) in peers.items():
        if "mirror" in name:
            continue
        n = a.requests // 2
        before = cpu_ticks(pid)
        rps, p50, p99 = bench(port, "GET", 1, n, 1000, client_cpu)
        us = (cpu_ticks(pid) - before) * TICK_US / n if pid else None
        many[name] = (rps, p50, p99, us)
        print(f"-c 1000 GET {name:<18} {rps:>11.0f} req/s  p99 {p99:.3f} ms", flush=True)
    # Memory per idle client connection.
    idle = {}
    for name, (port, pid) in proxies.items():
        idle[name] = idle_connections(port, pid, a.idle)
        print(f"{a.idle} idle connections: {name} RSS +{idle[name] / 1024:.1f} MB", flush=True)

    def get(p, t, name):
        return next(r for r in results if r[0] == p and r[1] == t and r[2] == name)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}"
             f"{' (+uncommitted changes)' if dirty else ''}, mode {a.mode}",
             f"\nMachine: {machine()}. Proxies pinned to CPU {proxy_cpu}, redis-benchmark and backends to CPU {client_cpu}, "
             f"{a.clients} clients, 2 redis-server backends, values 16 bytes, random keys over 100k. "
             f"keyway's io_uring: {ring_mode}."
             + (f" `keyway before` is {a.baseline}." if a.baseline else "") + "\n",
             "| -P | test | target | requests/s | p50 ms | p99 ms | proxy CPU µs/req |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for p, t, name, rps, p50, p99, us in results:
        cpu = f"{us:.2f}" if us is not None else "—"
        lines.append(f"| {p} | {t} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu} |")
    lines.append("\nPer proxy: system calls per request (SET), GET with 1000 clients at -P 1, "
                 f"RSS growth for {a.idle:,} idle client connections.\n")
    lines.append("| target | syscalls/req -P 1 | syscalls/req -P 16 | -c 1000 GET req/s | -c 1000 p99 ms "
                 "| -c 1000 CPU µs/req | idle RSS MB | idle KiB/conn |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda v, f: "—" if v is None else format(v, f)
    for name in peers:
        if "mirror" in name:
            continue
        m = many[name]
        grow = idle.get(name)
        lines.append(f"| {name} | {fmt(syscalls.get((1, name)), '.3f')} | {fmt(syscalls.get((16, name)), '.3f')} "
                     f"| {m[0]:,.0f} | {m[2]:.3f} | {fmt(m[3], '.2f')} | {fmt(None if grow is None else grow / 1024, '.1f')} "
                     f"| {fmt(None if grow is None else grow / a.idle, '.2f')} |")
    ratios = []
    best_peer = lambda p, t: max((get(p, t, n) for n in ("nutcracker", "envoy") if n in peers), key=lambda r: r[3])
    for t in ("SET", "GET"):
        k1, n1, k16, n16 = get(1, t, kw_label), get(1, t, "nutcracker"), get(16, t, kw_label), get(16, t, "nutcracker")
        b1 = best_peer(1, t)
        ratios.append(f"- issue 10, {t}: -P 1 CPU µs/req keyway/nutcracker = {k1[6] / n1[6]:.2f} (target ≤ 0.6), "
                      f"throughput vs best of nutcracker/Envoy ({b1[2]}) = {k1[3] / b1[3]:.2f}× (target ≥ 1.05×); "
                      f"-P 16 throughput keyway/nutcracker = {k16[3] / n16[3]:.2f}× (target ≥ 2.2×), "
                      f"CPU = {k16[6] / n16[6]:.2f} (target ≤ 0.2)")
    for t in ("MSET", "MGET"):
        k16, n16 = get(16, t, kw_label), get(16, t, "nutcracker")
        ratios.append(f"- issue 10, {t}: -P 16 throughput keyway/nutcracker = {k16[3] / n16[3]:.2f}× (target ≥ 2×), "
                      f"CPU = {k16[6] / n16[6]:.2f} (target ≤ 0.2)")
    ratios.append(f"- issue 10, syscalls/request: keyway {fmt(syscalls.get((1, kw_label)), '.3f')} at -P 1 "
                  f"(target ≤ 0.5), {fmt(syscalls.get((16, kw_label)), '.3f')} at -P 16 (target ≤ 0.05); "
                  f"{a.idle:,} idle connections: +{idle[kw_label] / 1024:.1f} MB (target ≤ 40 MB)")
    if before_label:
        for p in (1, 16):
            for t in ("SET", "GET", "MSET", "MGET"):
                k, b = get(p, t, kw_label), get(p, t, before_label)
                ratios.append(f"- after/before, -P {p} {t}: throughput {k[3] / b[3]:.2f}×, CPU µs/req {k[6] / b[6]:.2f}")
    for t in ("SET", "GET"):
        k16, n16 = get(16, t, kw_label), get(16, t, "nutcracker")
        k1, n1, d1 = get(1, t, kw_label), get(1, t, "nutcracker"), get(1, t, "redis (direct)")
        ratios.append(f"- {t}: -P 16 throughput keyway/nutcracker = {k16[3] / n16[3]:.2f}× (target ≥ 2.5×); "
                      f"CPU µs/req keyway/nutcracker = {k1[6] / n1[6]:.2f} at -P 1, {k16[6] / n16[6]:.2f} at -P 16 "
                      f"(target ≤ 0.25); -P 1 throughput keyway/direct = {k1[3] / d1[3]:.2f}× (target ≥ 0.95×)")
        if "envoy" in peers:
            e16, e1 = get(16, t, "envoy"), get(1, t, "envoy")
            ratios.append(f"  - vs Envoy: -P 16 throughput {k16[3] / e16[3]:.2f}×, CPU µs/req "
                          f"{k1[6] / e1[6]:.2f} at -P 1, {k16[6] / e16[6]:.2f} at -P 16")
    for t in ("SET", "MSET"):
        km, k = get(16, t, mirror_label), get(16, t, kw_label)
        ratios.append(f"- {t} with writes mirrored to one more cluster: -P 16 throughput {km[3] / k[3]:.2f}× of "
                      f"keyway without mirroring (target ≥ 0.8×), CPU µs/req {km[6]:.2f} vs {k[6]:.2f}")
    lines.append("\nRatios (same run):\n")
    lines.extend(ratios)
    text = "\n".join(lines) + "\n"
    print(text)
    results_path = Path(a.results)
    if not results_path.exists():
        results_path.write_text("# keyway performance results\n\nAppended by `perf/run.sh`; every table is one run, "
                                "all targets measured side by side.\n")
    with results_path.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
