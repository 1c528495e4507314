#!/usr/bin/env bash
# keyway's main job, end to end on this machine: five local redis-servers
# (127.0.0.1:7001-7005), keyway in front of them with config.toml, 60,000
# hashes written through keyway, the share each backend got, then 6,000
# hashes with a {avgo} hashtag that must all land on one backend.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
KEYWAY=target/release/keyway
PORTS=(7001 7002 7003 7004 7005)
LISTEN_PORT=6380
WORK=$(mktemp -d /tmp/keyway-demo.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

port_busy() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 200); do port_busy "$1" && return 0; sleep 0.05; done
  echo "demo: nothing listening on $1" >&2; return 1
}

for p in "${PORTS[@]}" $LISTEN_PORT; do
  if port_busy "$p"; then echo "demo: port $p is already in use; stop what uses it first" >&2; exit 1; fi
done

$KEYWAY check --config config.toml
for p in "${PORTS[@]}"; do
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis-$p.log" &
  PIDS+=($!)
done
for p in "${PORTS[@]}"; do wait_port "$p"; done
$KEYWAY --config config.toml 2>"$WORK/keyway.log" &
KEYWAY_PID=$!
PIDS+=($KEYWAY_PID)
wait_port $LISTEN_PORT
echo "keyway is listening on 127.0.0.1:$LISTEN_PORT in front of ${PORTS[*]}"

counts() {
  local total=0 n
  for p in "${PORTS[@]}"; do total=$((total + $(redis-cli -p "$p" dbsize))); done
  for p in "${PORTS[@]}"; do
    n=$(redis-cli -p "$p" dbsize)
    awk -v p="$p" -v n="$n" -v t="$total" 'BEGIN { printf "  127.0.0.1:%s  %6d keys  %5.1f%%\n", p, n, (t ? 100*n/t : 0) }'
  done
  echo "  total            $total keys"
}

python3 scripts/load.py --port $LISTEN_PORT --count 60000 --pattern 'user:{i}'
echo "keys per backend:"
counts
python3 scripts/load.py --port $LISTEN_PORT --count 6000 --pattern 'user:{avgo}:{i}'
echo "keys per backend after 6,000 keys tagged {avgo}:"
counts
echo "keyway route agrees with where the keys are:"
for key in user:1 user:2 user:3 'user:{avgo}:1' 'user:{avgo}:5999'; do
  line=$($KEYWAY route --config config.toml "$key")
  port=${line##*:}
  echo "  $line  -> EXISTS on $port: $(redis-cli -p "$port" exists "$key")"
done

kill -TERM $KEYWAY_PID
wait $KEYWAY_PID && echo "keyway stopped cleanly"
echo "per-core latency of this run (dumped at shutdown, HdrHistogram .hgrm files beside it):"
$KEYWAY latency /tmp/keyway-latency
