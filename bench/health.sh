#!/usr/bin/env bash
# Benchmark: message-service's HTTP core against may_minihttp 0.1.11 on
# GET /health, in the same run, alternating A B A B so that drift on the
# machine hits both alike. Prints requests/s and p99 latency for each.
# Needs wrk (apt-get install wrk). Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${WORKERS:-2}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
OURS_PORT=${OURS_PORT:-3201}
PEER_PORT=${PEER_PORT:-3202}

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
(cd bench/peers/minihttp-hello && cargo build --release --quiet)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

HOST=127.0.0.1 PORT=$OURS_PORT WORKERS=$WORKERS LOG_LEVEL=error ./target/release/message-service &
pids+=($!)
bench/peers/minihttp-hello/target/release/minihttp-hello "127.0.0.1:$PEER_PORT" "$WORKERS" &
pids+=($!)

for port in $OURS_PORT $PEER_PORT; do
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

run() { # name port connections
  local out rps p99
  out=$(wrk -t2 -c"$3" -d"$DURATION" --latency "http://127.0.0.1:$2/health")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%-16s c=%-4s %12s req/s   p99 %s\n' "$1" "$3" "$rps" "$p99"
}

for c in 64 256; do
  for r in $(seq "$ROUNDS"); do
    run message-service $OURS_PORT "$c"
    run may_minihttp $PEER_PORT "$c"
  done
done
