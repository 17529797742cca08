#!/usr/bin/env bash
# User-space instructions per GET /health request, for message-service and
# may_minihttp 0.1.11 (bench/peers/minihttp-hello), counted by callgrind: a
# figure that repeats run after run on a noisy machine, where requests/s do
# not. Each server runs under valgrind with one worker; the count is the
# difference between 6000 and 1000 requests on one keep-alive connection,
# divided by 5000 (start-up cancels out). Kernel work is not counted.
# Needs valgrind and python3. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
cargo build --release --quiet
(cd bench/peers/minihttp-hello && cargo build --release --quiet)
out=$(mktemp -d /tmp/ms-callgrind.XXXXXX)
trap 'rm -rf "$out"' EXIT

run() { # who port requests
  rm -f "$out"/cg.*
  local pid
  if [ "$1" = message-service ]; then
    HOST=127.0.0.1 PORT=$2 WORKERS=1 LOG_LEVEL=error DB_MIN_CONNS=0 \
      DATABASE_URL='postgres://postgres@127.0.0.1:1/none?sslmode=disable' \
      valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" ./target/release/message-service >/dev/null 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
      bench/peers/minihttp-hello/target/release/minihttp-hello "127.0.0.1:$2" 1 >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $2)).close()" 2>/dev/null && break
    sleep 0.2
  done
  python3 bench/keepalive_client.py "$2" "$3"
  kill -TERM "$pid"; sleep 1; kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  grep -h "^summary:\|^totals:" "$out"/cg.* | awk '{s += $2} END {print s}'
}

for who in message-service may_minihttp; do
  a=$(run "$who" 3601 1000)
  b=$(run "$who" 3602 6000)
  echo "$who: $(( (b - a) / 5000 )) instructions per request"
done
