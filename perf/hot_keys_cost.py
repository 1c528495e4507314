#!/usr/bin/env python3
"""What hot-key sampling costs (issue 21): keyway's CPU per request with
sampling on (the default, one request in 32) and off, side by side.

    perf/hot_keys_cost.py target/release/keyway [--runs 3] [-P 16] [--callgrind]

Two redis-servers and redis-benchmark on CPU 0, keyway (one core) on CPU 1,
a ketama cluster of the two. Each run starts keyway with one setting, runs
redis-benchmark SET (50 clients, -P pipelining, 100,000 random keys,
1,000,000 requests), and reads keyway's CPU time (/proc/PID/stat,
user + system); the settings alternate, so noise falls on both alike.
With --callgrind, keyway runs under valgrind's callgrind and each run
counts the instructions of the workload (after a warm-up, counters zeroed
with callgrind_control -z, then dumped): stable where CPU time on this
shared machine is not (-n defaults to 40,000 then).
"""
import argparse, glob, os, subprocess, tempfile, time

from run import free_port, wait_port, cpu_ticks, redis_servers  # the harness's helpers (perf/run.py)

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("-P", type=int, default=16)
ap.add_argument("-n", type=int)
ap.add_argument("--callgrind", action="store_true")
a = ap.parse_args()
a.n = a.n or (40_000 if a.callgrind else 1_000_000)


def instructions(dump):
    """The total instructions of a callgrind dump."""
    for line in open(dump):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")
TICK = os.sysconf("SC_CLK_TCK")

dir = tempfile.mkdtemp(prefix="keyway-hotcost-")
redis = []
procs = []
try:
    redis += redis_servers(2, 0)
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in redis)
    results = {"on": [], "off": []}
    for run in range(a.runs):
        for setting in ["on", "off"]:
            kport = free_port()
            conf = os.path.join(dir, f"{setting}.toml")
            admin = "" if setting == "on" else "\n[admin]\nhot_keys = false\n"
            with open(conf, "w") as f:
                f.write(f'[proxy]\nlisten = "127.0.0.1:{kport}"\ncores = [1]\n\n[[clusters]]\nname = "main"\nlb_policy = "ketama"\nendpoints = [{eps}]\n\n[routes]\ncatch_all = "main"\n{admin}')
            bench = ["taskset", "-c", "0", "redis-benchmark", "-p", str(kport), "-t", "set", "-r", "100000", "-c", "50", "-P", str(a.P), "--csv"]
            if a.callgrind:
                out_file = os.path.join(dir, f"cg.{setting}.{run}")
                kp = subprocess.Popen(["taskset", "-c", "1", "valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}.%p", a.bin, "--config", conf], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                wait_port(kport)
                subprocess.run(bench + ["-n", "4000"], capture_output=True)
                subprocess.run(["callgrind_control", "-z", str(kp.pid)], capture_output=True)
                subprocess.run(bench + ["-n", str(a.n)], capture_output=True)
                subprocess.run(["callgrind_control", "-d", str(kp.pid)], capture_output=True)
                time.sleep(1)
                dumps = sorted(glob.glob(f"{out_file}.{kp.pid}*"), key=os.path.getmtime)
                kp.terminate()
                kp.wait()
                per = instructions(dumps[-1]) / a.n
                results[setting].append((0.0, per))
                print(f"run {run} hot keys {setting}: {per:,.0f} instructions/request", flush=True)
                continue
            kp = subprocess.Popen([a.bin, "--config", conf], stderr=subprocess.DEVNULL)
            wait_port(kport)
            before = cpu_ticks(kp.pid)
            out = subprocess.run(bench + ["-n", str(a.n)], capture_output=True, text=True).stdout
            ticks = cpu_ticks(kp.pid) - before
            kp.terminate()
            kp.wait()
            row = [l for l in out.splitlines() if l.startswith('"SET"')][0]
            rps = float(row.split(",")[1].strip('"'))
            us = ticks / TICK * 1e6 / a.n
            results[setting].append((rps, us))
            print(f"run {run} hot keys {setting}: {rps:,.0f} req/s, {us:.3f} µs CPU/request", flush=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    if a.callgrind:
        on, off = med([u for _, u in results["on"]]), med([u for _, u in results["off"]])
        print(f"instructions per request (median of {a.runs}): on {on:,.0f}, off {off:,.0f}: on/off {on / off:.4f}")
        raise SystemExit(0)
    on_us, off_us = med([u for _, u in results["on"]]), med([u for _, u in results["off"]])
    on_rps, off_rps = med([r for r, _ in results["on"]]), med([r for r, _ in results["off"]])
    print(f"| hot keys | req/s (median) | keyway µs CPU/request (median) |")
    print(f"|---|---:|---:|")
    print(f"| on (1 in 16) | {on_rps:,.0f} | {on_us:.3f} |")
    print(f"| off | {off_rps:,.0f} | {off_us:.3f} |")
    print(f"on/off: CPU per request {on_us / off_us:.3f}×, requests/s {on_rps / off_rps:.3f}×")
finally:
    for p in procs:
        p.terminate()
