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
# The server is pinned to CPU 0; every client runs on CPU 1 ("separate"),
# then on CPU 0 with the server ("same"), then wherever the scheduler puts
# it ("free", as the documentation's own table was made): PLACEMENTS.
# Apart, a sequential client mostly waits for the cross-CPU wake-ups of a
# round trip, the same for every client; together, the round trip is the
# CPU time of client and server, and what a client costs shows. Each cell is the
# median of REPEAT runs; a round runs every implementation in turn, so a
# slow phase of a noisy machine hits all of them alike. Always Debian's
# /usr/bin/python3 (or $AREDIS_PYTHON), whatever python3 is first on PATH.
# Environment: N [100000], REPEAT [3], BUILD_DIR [build-bench], DB [9],
# PLACEMENTS ["separate same free"].
# A program, not a test: it prints figures and asserts nothing about them.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init python.sh
N=${N:-100000}
REPEAT=${REPEAT:-3}
PLACEMENTS=${PLACEMENTS:-"separate same free"}
DB=${DB:-9}
py=${AREDIS_PYTHON:-/usr/bin/python3}

[ -x "$py" ] || bench_die "$py not found"
"$py" -c 'import redis.asyncio, uvloop' 2>/dev/null ||
    bench_die "needs python3-redis, python3-hiredis and python3-uvloop"

# ---- build: bench_client and the extension, both Release -----------------
bench_build bench_client "libhiredis-dev, libevent-dev?"
(cd "$root/python" && AREDIS_BUILD_DIR="$build" "$py" setup.py -q build \
    --build-base "$build/python/build" --build-lib "$build/python/lib" \
    >/dev/null 2>&1) || bench_die "the Python extension did not build"
export PYTHONPATH=$build/python/lib

bench_pin
bench_server
bench_banner
echo "load average $(cut -d' ' -f1-3 /proc/loadavg); $("$py" --version), redis-py $("$py" -c 'import redis; print(redis.__version__)'), uvloop $("$py" -c 'import uvloop; print(uvloop.__version__)')"
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

# place_cpu PLACEMENT: the client's taskset prefix for that placement.
place_cpu() {
    case $1 in
    separate) echo "${client_cpu[*]}" ;;
    same) echo "${server_cpu[*]}" ;;
    free) echo "" ;;
    *) bench_die "unknown placement $1 (separate, same, free)" ;;
    esac
}

for round in $(seq "$REPEAT"); do
    for place in $PLACEMENTS; do
        read -r -a cpu <<<"$(place_cpu "$place")"
        for mode in $MODES; do
            for il in $IMPLS; do
                line=$("${cpu[@]}" "$py" "$root/bench/python_bench.py" \
                    --impl "${il%%:*}" --loop "${il##*:}" --mode "$mode" \
                    --n "$N" --port "$port" --db "$DB") ||
                    bench_die "$il $mode failed"
                times[$place/$mode/$il]+=" $(field seconds "$line")"
            done
        done
        line=$("${cpu[@]}" "$bin" --mode pipe --impl aredis \
            --n $((N / 2)) --w 1 --port "$port" --db "$DB") ||
            bench_die "bench_client failed"
        times[$place/c]+=" $(field wall_s "$line")"
    done
    echo "round $round done" >&2
done

for place in $PLACEMENTS; do
    c_med=$(echo "${times[$place/c]}" | median)
    case $place in
    same) printf '\nclient and server on one CPU\n' ;;
    free) printf '\nthe client on any CPU (the scheduler places it), the server on CPU 0\n' ;;
    *) printf '\nclient and server on separate CPUs\n' ;;
    esac
    printf '%-6s %-16s %10s %12s %14s %10s\n' mode client "median s" "ops/s" "x redis-py" "x C seq"
    for mode in $MODES; do
        base=$(echo "${times[$place/$mode/redispy:asyncio]}" | median)
        for il in $IMPLS; do
            m=$(echo "${times[$place/$mode/$il]}" | median)
            awk -v mode="$mode" -v il="$il" -v m="$m" -v b="$base" -v n="$N" \
                -v c="$c_med" 'BEGIN {
                    cs = (mode == "seq") ? sprintf("%.2f", m / c) : "";
                    printf "%-6s %-16s %10.3f %12.0f %13.2fx %10s\n",
                           mode, il, m, n / m, b / m, cs }'
        done
    done
    awk -v c="$c_med" -v n="$N" 'BEGIN {
        printf "%-6s %-16s %10.3f %12.0f %14s %10s\n", "seq", "C aredis (w=1)", c, n / c, "", "1.00" }'
done
echo
echo "x redis-py: redis-py asyncio's median time / this one's (higher is faster)."
echo "x C seq: this one's time / the C client's sequential time (lower is better)."
