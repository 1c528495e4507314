#!/usr/bin/env bash
# Installs what the tests need, then runs them all: formatting and lints,
# unit tests, integration tests against real redis-server / nutcracker
# processes, and real client libraries and tools through keyway.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo build
cargo test
KEYWAY_BIN="$PWD/target/debug/keyway" python3 -m pytest -q tests/clients
