#!/usr/bin/env python3
"""keyway vs Envoy in front of Redis Clusters (issue 6's benchmark).

Three local Redis Clusters in cluster mode, two primaries each. One keyway
core and Envoy (--concurrency 1, envoy.clusters.redis) are pinned to the
same CPU, redis-benchmark to the other. In one run:
  - both proxies in front of cluster1: -P 1 and -P 16, SET and GET;
  - both proxies in front of cluster1 with every write mirrored to cluster2
    and cluster3 (exclude_read_commands): -P 16 SET.
Records requests/s, p50/p99 and proxy CPU µs per request (/proc/PID/stat)
and appends the table and the target ratios to perf/RESULTS.md.
The clusters are built with the integration tests' helper
(tests/clients/cluster.py), so both use one definition of "a cluster".
"""
import argparse
import datetime
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "clients"))
sys.path.insert(0, str(ROOT / "perf"))

import redis  # noqa: E402

import cluster as C  # noqa: E402
from run import TICK_US, bench, cpu_ticks, machine  # noqa: E402

C.KEYWAY = str(ROOT / "target" / "release" / "keyway")


def keyway_toml(cpu, main, mirrors):
    cls = f"""[[clusters]]
name = "main"
lb_policy = "redis_cluster"
endpoints = [{main.seeds_toml()}]
"""
    for i, m in enumerate(mirrors):
        cls += f"""[[clusters]]
name = "m{i}"
lb_policy = "redis_cluster"
endpoints = [{m.seeds_toml()}]
"""
    mirror = ", ".join(f'{{ cluster = "m{i}", exclude_read_commands = true }}' for i in range(len(mirrors)))
    return f"""[proxy]
listen = "127.0.0.1:{{PORT}}"
cores = [{cpu}]
{cls}
[routes]
catch_all = "main"
{"catch_all_mirror = [" + mirror + "]" if mirrors else ""}
[admin]
latency_dir = "{{DIR}}/latency-{len(mirrors)}"
"""


def wait_serving(port):
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, protocol=2)
    deadline = time.time() + 30
    while True:
        try:
            r.set("probe", 1)
            return
        except redis.RedisError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--results", default=str(ROOT / "perf" / "RESULTS.md"))
    a = ap.parse_args()
    proxy_cpu, client_cpu = 1, 0
    tmp = tempfile.mkdtemp(prefix="keyway-perf-cluster-")
    procs = C.Procs(tmp)
    try:
        clusters = [C.Cluster(procs, f"c{i}", primaries=2, replicas=0) for i in range(3)]
        main_c, mirrors = clusters[0], clusters[1:]
        peers = {}
        for label, ms in (("", []), (" + 2 mirrors", mirrors)):
            port = C.free_port()
            conf = procs.tmp / f"envoy{len(ms)}.yaml"
            named = {"main": main_c, **{f"m{i}": m for i, m in enumerate(ms)}}
            conf.write_text(C.envoy_yaml(port, named, mirrors=[f"m{i}" for i in range(len(ms))],
                                         exclude_read_commands=True))
            ev = procs.start(["taskset", "-c", str(proxy_cpu), "envoy", "-c", str(conf), "--concurrency", "1",
                              "--disable-hot-restart", "--log-level", "error", "--base-id", str(port)],
                             f"envoy{len(ms)}")
            C.wait_port(port, timeout=30)
            wait_serving(port)
            peers["envoy" + label] = (port, ev.pid)
            kw = C.Keyway(procs, keyway_toml(proxy_cpu, main_c, ms), name=f"keyway{len(ms)}")
            wait_serving(kw.port)
            peers["keyway (1 core)" + label] = (kw.port, kw.proc.pid)
        results = []
        plan = [(1, "SET", False), (1, "GET", False), (16, "SET", False), (16, "GET", False), (16, "SET", True)]
        for pipeline, test, mirrored in plan:
            n = a.requests if pipeline > 1 else a.requests // 2
            for name, (port, pid) in peers.items():
                if ("mirrors" in name) != mirrored:
                    continue
                before = cpu_ticks(pid)
                rps, p50, p99 = bench(port, test, pipeline, n, a.clients, client_cpu)
                us = (cpu_ticks(pid) - before) * TICK_US / n
                results.append((pipeline, test, name, rps, p50, p99, us))
                print(f"-P {pipeline:<2} {test:<4} {name:<28} {rps:>11.0f} req/s  p50 {p50:.3f} ms  "
                      f"p99 {p99:.3f} ms  cpu {us:.2f} us/req", flush=True)
    finally:
        procs.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    def get(p, t, name):
        return next(r for r in results if r[0] == p and r[1] == t and r[2] == name)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip() or "unknown"
    lines = [f"\n## {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
             f"Redis Cluster upstreams (perf/run.sh cluster)",
             f"\nMachine: {machine()}. keyway (one core) and Envoy (--concurrency 1) pinned to CPU {proxy_cpu}, "
             f"redis-benchmark to CPU {client_cpu}, {a.clients} clients; three local Redis Clusters of two "
             f"primaries each; values 16 bytes, random keys over 100k.\n",
             "| -P | test | target | requests/s | p50 ms | p99 ms | proxy CPU µs/req |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for p, t, name, rps, p50, p99, us in results:
        lines.append(f"| {p} | {t} | {name} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {us:.2f} |")
    lines.append("\nTargets (issue 6):")
    for t in ("SET", "GET"):
        k, e = get(16, t, "keyway (1 core)"), get(16, t, "envoy")
        k1, e1 = get(1, t, "keyway (1 core)"), get(1, t, "envoy")
        lines.append(f"- {t}: -P 16 throughput keyway/Envoy = {k[3] / e[3]:.2f}× (target ≥ 2×); CPU µs/req "
                     f"keyway/Envoy = {k[6] / e[6]:.2f} at -P 16, {k1[6] / e1[6]:.2f} at -P 1 (target ≤ 0.33)")
    km, k = get(16, "SET", "keyway (1 core) + 2 mirrors"), get(16, "SET", "keyway (1 core)")
    em, e = get(16, "SET", "envoy + 2 mirrors"), get(16, "SET", "envoy")
    lines.append(f"- -P 16 SET with writes mirrored to two clusters / without: keyway {km[3] / k[3]:.2f}× "
                 f"(target ≥ 0.7×), Envoy {em[3] / e[3]:.2f}×; keyway with mirrors vs Envoy with mirrors "
                 f"{km[3] / em[3]:.2f}× throughput at {km[6] / em[6]:.2f} of its CPU µs/req")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(a.results, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
