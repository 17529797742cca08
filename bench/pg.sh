#!/usr/bin/env bash
# Benchmark: SELECT by primary key through message-service's pool from 64
# coroutines, beside `pgbench -M prepared` running the same statement with
# 64 clients, on the same throwaway cluster, alternating A B A B.
# Needs PostgreSQL server binaries and pgbench. Traffic goes to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${SECONDS_EACH:-10}
CLIENTS=${CLIENTS:-64}
MAX_CONNS=${MAX_CONNS:-20}
SCALE=${SCALE:-10}
ROUNDS=${ROUNDS:-2}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[ -n "$bin" ] || bin=$(dirname "$(command -v initdb)")

dir=$(mktemp -d /tmp/ms-pgbench.XXXXXX)
run_as=()
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; run_as=(runuser -u postgres --); fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
cat >> "$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
CONF
"${run_as[@]}" "$bin/postgres" -D "$dir/data" >"$dir/server.log" 2>&1 &
pg_pid=$!
# runuser does not pass signals on: stop the postmaster by its own PID.
cleanup() {
  local pm
  pm=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
  [ -n "$pm" ] && kill -INT "$pm" 2>/dev/null || true
  wait "$pg_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do "$bin/pg_isready" -q -h "$dir" -p "$port" && break; sleep 0.1; done

"$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
rows=$((SCALE * 100000))
script="$dir/select.sql"
printf '\\set aid random(1, %s)\nSELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n' "$rows" > "$script"

cargo bench --quiet --bench pg_pool --no-run >/dev/null 2>&1 || cargo bench --bench pg_pool --no-run
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
for r in $(seq "$ROUNDS"); do
  cargo bench --quiet --bench pg_pool -- "$url" "$SECONDS_EACH" "$CLIENTS" "$MAX_CONNS" "$rows"
  tps=$("$bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c "$CLIENTS" -j 2 \
        -T "$SECONDS_EACH" -f "$script" postgres 2>/dev/null | awk '/^tps/ {print $3; exit}')
  printf 'pgbench -M prepared: %s clients: %s tps\n' "$CLIENTS" "$tps"
done
