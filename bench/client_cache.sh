#!/usr/bin/env bash
# bench/client_cache.sh - the client-side caching benchmark recipe (C1 hits
# against plain GETs, C3 invalidation latency with a writer process, C5
# memory over many distinct keys), on one throwaway redis-server over
# loopback.
#
#   bench/client_cache.sh          (from the repository root or anywhere)
#
# It builds bench_client_cache in $BUILD_DIR (Release) if needed, starts
# redis-server on a free loopback port (no persistence, its own temporary
# directory, stopped on exit; pinned to CPU 0 and the client to CPU 1 when
# the machine has two), and runs bench_client_cache at nice 10 for RUNS
# rounds, on RESP3 and then (C3 only) on RESP2 REDIRECT.
#
# Environment (defaults in brackets):
#   N [1000000]  RUNS [3]  REPS [200]  KEYS [1000000]  BUILD_DIR [build-bench]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}

die() {
    echo "cache.sh: $*" >&2
    exit 1
}
for tool in redis-server redis-cli cmake; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target bench_client_cache -j "$(nproc)" >/dev/null
bin=$build/bench/bench_client_cache
[ -x "$bin" ] || die "$bin was not built"

server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
fi

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

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 20000))
    port_free "$port" || continue
    nice -n 10 "${server_cpu[@]}" redis-server --port "$port" \
        --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
        --logfile "$tmp/redis.log" --daemonize no &
    server_pid=$!
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break 2
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
done
[ -n "$server_pid" ] || die "could not start redis-server"

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on" \
    "127.0.0.1:$port; $(nproc) CPUs${server_cpu:+, server on CPU 0, client on CPU 1}"
nice -n 10 "${client_cpu[@]}" "$bin" --port "$port" --n "${N:-1000000}" \
    --runs "${RUNS:-3}" --reps "${REPS:-200}" --keys "${KEYS:-1000000}"
nice -n 10 "${client_cpu[@]}" "$bin" --port "$port" --protocol 2 --n 0 \
    --runs "${RUNS:-3}" --reps "${REPS:-200}" --keys 0
