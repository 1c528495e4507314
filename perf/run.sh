#!/usr/bin/env bash
# Side-by-side benchmark: direct redis, nutcracker (twemproxy), Envoy and
# keyway in one run, proxies pinned to the same CPU; appends a table to
# perf/RESULTS.md.  perf/run.sh [--mode one|all] [--requests N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
exec python3 perf/run.py "$@"
