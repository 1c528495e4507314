#!/usr/bin/env python3
"""Memory kept after connection churn (issue 12 item 9).

    perf/churn.py BIN [--preload LIB] [--rounds 3] [--conns 10000] [--idle-wait 12]

Starts two redis-servers and BIN (keyway, one core on CPU 1), then runs
rounds of N client connections (each a SET of 1 KB and a GET, all open at
once) that all close, and prints keyway's RSS at start, at the peak and
with nothing connected afterwards. --preload runs the same binary over
another allocator (LD_PRELOAD), e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2.
"""
import argparse, os, resource, socket, subprocess, tempfile, time

from run import free_port, wait_port  # the harness's helpers (perf/run.py)

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("--preload", default="")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--conns", type=int, default=10000)
ap.add_argument("--idle-wait", type=float, default=12.0)
a = ap.parse_args()

hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


tmp = tempfile.mkdtemp(prefix="keyway-churn-")
procs = []
try:
    backends = [free_port(), free_port()]
    for p in backends:
        procs.append(subprocess.Popen(["taskset", "-c", "0", "redis-server", "--port", str(p), "--save", "",
                                       "--appendonly", "no"], cwd=tmp, stdout=subprocess.DEVNULL))
        wait_port(p)
    port = free_port()
    cfg = os.path.join(tmp, "keyway.toml")
    eps = ", ".join(f'"127.0.0.1:{p}"' for p in backends)
    open(cfg, "w").write(f'[proxy]\nlisten = "127.0.0.1:{port}"\ncores = [1]\nmax_clients = {a.conns + 100}\n'
                         f'[[clusters]]\nname = "main"\nlb_policy = "ring_hash"\nendpoints = [{eps}]\n'
                         f'[routes]\ncatch_all = "main"\n')
    env = dict(os.environ)
    if a.preload:
        env["LD_PRELOAD"] = a.preload
    kw = subprocess.Popen(["taskset", "-c", "1", a.bin, "--config", cfg], stderr=subprocess.DEVNULL, env=env)
    procs.append(kw)
    wait_port(port)
    time.sleep(0.5)

    def rss_mb():
        return int(open(f"/proc/{kw.pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024

    start, peak = rss_mb(), 0.0
    val = b"x" * 1024
    want = len(b"+OK\r\n$1024\r\n") + 1024 + 2
    for _ in range(a.rounds):
        conns = []
        for i in range(a.conns):
            s = socket.create_connection(("127.0.0.1", port))
            k = b"k%d" % i
            s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1024\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
                      % (len(k), k, val, len(k), k))
            conns.append(s)
        for s in conns:
            got = b""
            while len(got) < want:
                d = s.recv(65536)
                if not d:
                    raise SystemExit("a connection closed early")
                got += d
        peak = max(peak, rss_mb())
        for s in conns:
            s.close()
        time.sleep(1.0)
    time.sleep(a.idle_wait)
    alloc = os.path.basename(a.preload) or "glibc"
    print(f"{os.path.basename(a.bin)} ({alloc}): RSS start {start:.1f} MB, peak {peak:.1f} MB, "
          f"after {a.rounds} rounds of {a.conns} connections with nothing connected {rss_mb():.1f} MB")
finally:
    for p in procs:
        p.terminate()
        p.wait()
