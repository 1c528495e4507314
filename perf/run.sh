#!/usr/bin/env bash
# Side-by-side benchmark: direct redis, nutcracker (twemproxy), Envoy and
# keyway in one run, proxies pinned to the same CPU; appends a table to
# perf/RESULTS.md.  perf/run.sh [--mode one|all] [--requests N]
# perf/run.sh cluster [--requests N]: keyway vs Envoy in front of Redis
# Clusters, with and without writes mirrored to two more clusters.
# perf/run.sh equal-cpu [--quota 35] [--quota-pipelined 20] [--predixy BIN]:
# every proxy (keyway, predixy, nutcracker, Envoy) held to the same CPU
# quota in its own cgroup;
# plus idle memory and keyway's cores = 2 vs 1 scaling (issue 22).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
if [ "${1:-}" = cluster ]; then
  shift
  exec python3 perf/cluster_bench.py "$@"
fi
if [ "${1:-}" = equal-cpu ]; then
  shift
  exec python3 perf/equal_cpu.py "$@"
fi
exec python3 perf/run.py "$@"
