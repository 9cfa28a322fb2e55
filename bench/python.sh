#!/usr/bin/env bash
# The Python benchmark: the aredis package (python/) against redis-py's
# asyncio client (Debian's python3-redis, with python3-hiredis), and our C
# client's sequential figure, on one throwaway redis-server over loopback.
#
#   bench/python.sh            (from the repository root or anywhere)
#
# Workloads (bench/python_bench.py; every reply checked), N commands each,
# half SET then half GET of 16-byte values over 10000 keys:
#   seq   one coroutine awaiting each command in turn, one connection;
#   conc  100 coroutines sharing one client;
#   pipe  pipelines of 100 commands (transaction=False).
# Each on the default asyncio loop and on uvloop. The C figure is
# bench_client --mode pipe --impl aredis --w 1 (the same commands, one in
# flight: sequential).
#
# The server is pinned to CPU 0 and every client to CPU 1. Each cell is the
# median of REPEAT runs; a round runs every implementation in turn, so a
# slow phase of a noisy machine hits all of them alike. Always Debian's
# /usr/bin/python3 (or $AREDIS_PYTHON), whatever python3 is first on PATH.
# Environment: N [100000], REPEAT [3], BUILD_DIR [build-bench], DB [9].
# A program, not a test: it prints figures and asserts nothing about them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
N=${N:-100000}
REPEAT=${REPEAT:-3}
DB=${DB:-9}
py=${AREDIS_PYTHON:-/usr/bin/python3}
SERVER_CPU=0
CLIENT_CPU=1

die() {
    echo "python.sh: $*" >&2
    exit 1
}

for tool in redis-server redis-cli taskset cmake "$py"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[ "$(nproc)" -ge 2 ] || die "needs at least 2 CPUs"
"$py" -c 'import redis.asyncio, uvloop' 2>/dev/null ||
    die "needs python3-redis, python3-hiredis and python3-uvloop"

# ---- build: bench_client and the extension, both Release -----------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target bench_client -j "$(nproc)" >/dev/null
bin=$build/bench/bench_client
[ -x "$bin" ] || die "$bin was not built (libhiredis-dev, libevent-dev?)"
(cd "$root/python" && AREDIS_BUILD_DIR="$build" "$py" setup.py -q build \
    --build-base "$build/python/build" --build-lib "$build/python/lib" \
    >/dev/null)
export PYTHONPATH=$build/python/lib

# ---- the server ---------------------------------------------------------------
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

start_server() {
    local tries port i
    for tries in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 20000))
        port_free "$port" || continue
        taskset -c "$SERVER_CPU" redis-server --port "$port" \
            --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
            --logfile "$tmp/redis.log" --daemonize no &
        server_pid=$!
        for i in $(seq 50); do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
                PORT=$port
                return 0
            fi
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    done
    die "could not start redis-server"
}

start_server
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') on 127.0.0.1:$PORT (CPU $SERVER_CPU), clients on CPU $CLIENT_CPU"
echo "$(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$py" --version), redis-py $("$py" -c 'import redis; print(redis.__version__)'), uvloop $("$py" -c 'import uvloop; print(uvloop.__version__)')"
echo "N=$N, REPEAT=$REPEAT, aredis $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')"

field() {
    local f
    for f in $2; do
        case "$f" in "$1="*) echo "${f#*=}"; return 0 ;; esac
    done
    return 1
}

median() {
    tr ' ' '\n' | sed '/^$/d' | sort -g |
        awk '{ v[NR] = $1 } END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A times
IMPLS="aredis:asyncio aredis:uvloop redispy:asyncio redispy:uvloop"
MODES="seq conc pipe"

for round in $(seq "$REPEAT"); do
    for mode in $MODES; do
        for il in $IMPLS; do
            line=$(taskset -c "$CLIENT_CPU" "$py" "$root/bench/python_bench.py" \
                --impl "${il%%:*}" --loop "${il##*:}" --mode "$mode" \
                --n "$N" --port "$PORT" --db "$DB") || die "$il $mode failed"
            times[$mode/$il]+=" $(field seconds "$line")"
        done
    done
    line=$(taskset -c "$CLIENT_CPU" "$bin" --mode pipe --impl aredis \
        --n $((N / 2)) --w 1 --port "$PORT" --db "$DB") || die "bench_client failed"
    times[c]+=" $(field wall_s "$line")"
    echo "round $round done" >&2
done

c_med=$(echo "${times[c]}" | median)
printf '\n%-6s %-16s %10s %12s %14s %10s\n' mode client "median s" "ops/s" "x redis-py" "x C seq"
for mode in $MODES; do
    base=$(echo "${times[$mode/redispy:asyncio]}" | median)
    for il in $IMPLS; do
        m=$(echo "${times[$mode/$il]}" | median)
        awk -v mode="$mode" -v il="$il" -v m="$m" -v b="$base" -v n="$N" \
            -v c="$c_med" 'BEGIN {
                cs = (mode == "seq") ? sprintf("%.2f", m / c) : "";
                printf "%-6s %-16s %10.3f %12.0f %13.2fx %10s\n",
                       mode, il, m, n / m, b / m, cs }'
    done
done
awk -v c="$c_med" -v n="$N" 'BEGIN {
    printf "%-6s %-16s %10.3f %12.0f %14s %10s\n", "seq", "C aredis (w=1)", c, n / c, "", "1.00" }'
echo
echo "x redis-py: redis-py asyncio's median time / this one's (higher is faster)."
echo "x C seq: this one's time / the C client's sequential time (lower is better)."
