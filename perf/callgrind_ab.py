#!/usr/bin/env python3
"""Instructions per request of two keyway binaries, side by side (issue 22's
A/B method: callgrind's counts are stable where CPU time on this shared
machine is not).

    perf/callgrind_ab.py BEFORE AFTER [--runs 2] [--lb ketama] [--tests set:16:40000,get:1:10000]

Two redis-servers and redis-benchmark on CPU 0, keyway (one core, a ring of
the two servers) on CPU 1 under `valgrind --tool=callgrind`. Each run: a
warm-up (`-t set,get -n 4000 -P 16`), counters zeroed (`callgrind_control
-z`), one workload (50 clients, 100,000 random keys), `callgrind_control
-d`, and the dump's total instructions divided by the requests. Runs
alternate before, after, before, after, so drift falls on both alike.
"""
import argparse, glob, os, statistics, subprocess, tempfile, time

from run import free_port, wait_port, redis_servers  # the harness's helpers (perf/run.py)

ap = argparse.ArgumentParser()
ap.add_argument("before")
ap.add_argument("after")
ap.add_argument("--runs", type=int, default=2)
ap.add_argument("--lb", default="ketama", help="ketama, ring_hash, maglev, random")
ap.add_argument("--tests", default="set:16:40000,get:1:10000",
                help="comma-separated test:pipeline:requests")
a = ap.parse_args()


def instructions(dump):
    """The total instructions of a callgrind dump."""
    for line in open(dump):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {dump}")


def measure(binary, conf, kport, test, pipeline, n, out_file):
    """One run: instructions per request of `test` at -P `pipeline`."""
    kp = subprocess.Popen(["taskset", "-c", "1", "valgrind", "--tool=callgrind",
                           f"--callgrind-out-file={out_file}.%p", binary, "--config", conf],
                          stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait_port(kport, timeout=60)
        bench = ["taskset", "-c", "0", "redis-benchmark", "-p", str(kport), "-r", "100000",
                 "-c", "50", "-d", "16"]
        subprocess.run(bench + ["-t", "set,get", "-n", "4000", "-P", "16"], capture_output=True)
        subprocess.run(["callgrind_control", "-z", str(kp.pid)], capture_output=True)
        subprocess.run(bench + ["-t", test, "-n", str(n), "-P", str(pipeline)], capture_output=True)
        subprocess.run(["callgrind_control", "-d", str(kp.pid)], capture_output=True)
        time.sleep(1)
        dumps = sorted(glob.glob(f"{out_file}.{kp.pid}*"), key=os.path.getmtime)
        return instructions(dumps[-1]) / n
    finally:
        kp.terminate()
        kp.wait()


def main():
    dir = tempfile.mkdtemp(prefix="keyway-callgrind-ab-")
    redis = redis_servers(2, 0)  # stopped at exit (perf/run.py's cleanup)
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in redis)
    tests = [(t, int(p), int(n)) for t, p, n in (x.split(":") for x in a.tests.split(","))]
    got = {(t, p, which): [] for t, p, _ in tests for which in ("before", "after")}
    for run in range(a.runs):
        for test, pipeline, n in tests:
            for which, binary in (("before", a.before), ("after", a.after)):
                kport = free_port()
                conf = os.path.join(dir, f"{which}.toml")
                with open(conf, "w") as f:
                    f.write(f'[proxy]\nlisten = "127.0.0.1:{kport}"\ncores = [1]\n\n'
                            f'[[clusters]]\nname = "main"\nlb_policy = "{a.lb}"\n'
                            f'endpoints = [{eps}]\n\n[routes]\ncatch_all = "main"\n')
                out = os.path.join(dir, f"cg.{which}.{test}.{pipeline}.{run}")
                per = measure(binary, conf, kport, test, pipeline, n, out)
                got[(test, pipeline, which)].append(per)
                print(f"run {run} {test} -P {pipeline} {which}: {per:,.0f} instructions/request",
                      flush=True)
    print(f"\n{a.lb}; before {a.before}, after {a.after}; {a.runs} runs each, alternated\n")
    print("| workload (redis-benchmark, CPU 1) | before (per request, each run) | after | after/before (medians) |")
    print("|---|---|---|---:|")
    med = statistics.median
    for test, pipeline, n in tests:
        b, f = got[(test, pipeline, "before")], got[(test, pipeline, "after")]
        show = lambda xs: " / ".join(f"{x:,.0f}" for x in xs)
        print(f"| `-t {test} -P {pipeline} -n {n}` | {show(b)} | {show(f)} | {med(f) / med(b) - 1:+.1%} |")


main()
