#!/usr/bin/env bash
# Memory per idle connection, aredis against hiredis async, on one
# throwaway redis-server over loopback.
#
#   bench/conn_memory.sh
#
# For each N in CLIENTS it runs bench_conn_memory once per implementation
# (its own process each) and prints heap, private resident and code bytes
# per connection after N clients connected, answered one PING and stayed
# idle IDLE_MS (bench/bench_conn_memory.c says why code pages are apart);
# then, with COMMANDS > 0, CPU time per command while every client runs
# COMMANDS PINGs one after the other (all clients at once).
#
# Environment (defaults in brackets):
#   CLIENTS ["100 500"]   IDLE_MS [0]   COMMANDS [200]
#   BUILD_DIR [build-bench]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
CLIENTS=${CLIENTS:-"100 500"}
IDLE_MS=${IDLE_MS:-0}
COMMANDS=${COMMANDS:-200}

die() {
    echo "conn_memory.sh: $*" >&2
    exit 1
}

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target bench_conn_memory -j "$(nproc)" >/dev/null
bin=$build/bench/bench_conn_memory
[ -x "$bin" ] || die "$bin was not built (libhiredis-dev, libevent-dev?)"

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for tries in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 20000))
    port_free "$port" || continue
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp" --logfile "$tmp/redis.log" --maxclients 2000 \
        --daemonize no &
    server_pid=$!
    for i in $(seq 50); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break 2
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
done
[ -n "$server_pid" ] || die "could not start redis-server"

echo "aredis $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), idle ${IDLE_MS} ms"
for n in $CLIENTS; do
    for impl in aredis hiredis; do
        "$bin" --port "$port" --impl "$impl" --clients "$n" --idle-ms "$IDLE_MS" \
            --commands "$COMMANDS"
    done
done
