#!/usr/bin/env bash
# bench/pipeline.sh - the pipeline benchmark recipe: aredis pipelines (on
# the built-in loop and on libevent) against hiredis async on libevent
# sending the same commands, plain and in MULTI/EXEC, on one throwaway
# redis-server over loopback.
#
#   bench/pipeline.sh          (from the repository root or anywhere)
#
# It builds bench_pipeline in $BUILD_DIR (Release) if needed, starts
# redis-server on a free loopback port (no persistence, its own temporary
# directory, stopped on exit; pinned to CPU 0 and the client to CPU 1 when
# the machine has two), runs every implementation REPEAT times per mode in
# turn, and prints the medians: ops/s (SETs per second) and client CPU
# seconds (user + sys, getrusage) per million SETs, with the ratios
# aredis / hiredis.
#
# The cost part then prints, for plain aredis pipelines of COST_SIZES
# commands, the cost of one SET in the steady state: instructions
# (callgrind, two runs of COST_N1 and COST_N2 SETs, difference / dN), and
# the library's allocations and bytes allocated (bench_pipeline --count 1,
# every batch but the first two).
#
# Environment (defaults in brackets):
#   BATCHES [10000]  SIZE [100]  REPEAT [3]  BUILD_DIR [build-bench]
#   PARTS ["speed cost"]  COST_SIZES ["10 100 1000 10000"]
#   COST_N1 [20000]  COST_N2 [60000]
set -euo pipefail

BATCHES=${BATCHES:-10000}
SIZE=${SIZE:-100}
REPEAT=${REPEAT:-3}
PARTS=${PARTS:-"speed cost"}
COST_SIZES=${COST_SIZES:-"10 100 1000 10000"}
COST_N1=${COST_N1:-20000}
COST_N2=${COST_N2:-60000}
IMPLS="aredis aredis-libevent hiredis"

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init pipeline.sh
bench_build bench_pipeline "libhiredis-dev, libevent-dev?"
bench_pin
bench_server
bench_banner

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
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }'
}

speed() {
echo "$BATCHES batches of $SIZE SETs (16-byte values), one batch in flight," \
    "median of $REPEAT"
# Every round runs each mode and implementation in turn, so the slow
# phases of a busy machine hit all of them alike.
declare -A ops=() cpu=()
for _ in $(seq "$REPEAT"); do
    for tx in 0 1; do
        for impl in $IMPLS; do
            line=$("${client_cpu[@]}" "$bin" --impl "$impl" --tx "$tx" \
                --batches "$BATCHES" --size "$SIZE" --port "$port") ||
                bench_die "bench_pipeline --impl $impl --tx $tx failed"
            ops[$tx.$impl]+=" $(field ops_s "$line")"
            cpu[$tx.$impl]+=" $(field cpu_s_per_M "$line")"
        done
    done
done

printf '\n%-12s %11s %12s %12s %9s %10s %9s | %6s %6s %8s %10s\n' \
    transaction aredis_op/s ar-levt_op/s hiredis_op/s ar_cpu/M arle_cpu/M \
    hi_cpu/M a/hi ale/hi cpu_a/hi cpu_ale/hi
for tx in 0 1; do
    oa=$(echo "${ops[$tx.aredis]}" | median)
    ol=$(echo "${ops[$tx.aredis-libevent]}" | median)
    oh=$(echo "${ops[$tx.hiredis]}" | median)
    ca=$(echo "${cpu[$tx.aredis]}" | median)
    cl=$(echo "${cpu[$tx.aredis-libevent]}" | median)
    ch=$(echo "${cpu[$tx.hiredis]}" | median)
    printf '%-12s %11.0f %12.0f %12.0f %9.3f %10.3f %9.3f | %6s %6s %8s %10s\n' \
        "$([ "$tx" = 1 ] && echo "on (MULTI)" || echo off)" \
        "$oa" "$ol" "$oh" "$ca" "$cl" "$ch" \
        "$(ratio "$oa" "$oh")" "$(ratio "$ol" "$oh")" \
        "$(ratio "$ca" "$ch")" "$(ratio "$cl" "$ch")"
done
echo "ops = SETs; cpu/M = client user+sys CPU seconds per million SETs;" \
    "a = aredis (built-in loop), ale = aredis on libevent, hi = hiredis on libevent"
}

# Instructions of one run under callgrind (its "summary:" line).
instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        "$bin" --impl aredis --tx 0 --batches "$1" --size "$2" \
        --port "$port" >/dev/null 2>"$tmp/cg.err" ||
        bench_die "callgrind run failed: $(tail -3 "$tmp/cg.err")"
    awk '/^summary:/ { print $2 }' "$tmp/cg.out"
}

cost() {
    echo
    echo "cost per SET in the steady state, plain pipelines (aredis, built-in loop)"
    printf '%8s %14s %12s %12s\n' size instructions allocs bytes
    for size in $COST_SIZES; do
        local b1=$(((COST_N1 + size - 1) / size)) b2=$(((COST_N2 + size - 1) / size))
        local line ir=-
        line=$("$bin" --impl aredis --tx 0 --batches $((b1 > 4 ? b1 : 4)) \
            --size "$size" --port "$port" --count 1) ||
            bench_die "bench_pipeline --count 1 failed"
        if command -v valgrind >/dev/null; then
            local i1 i2
            i1=$(instructions "$b1" "$size")
            i2=$(instructions "$b2" "$size")
            ir=$(awk -v a="$i1" -v b="$i2" -v d=$(((b2 - b1) * size)) \
                'BEGIN { printf "%.0f", (b - a) / d }')
        fi
        printf '%8s %14s %12s %12s\n' "$size" "$ir" \
            "$(field allocs_per_op "$line")" "$(field bytes_per_op "$line")"
    done
}

for part in $PARTS; do
    case "$part" in
    speed) speed ;;
    cost) cost ;;
    *) die "unknown part $part" ;;
    esac
done
