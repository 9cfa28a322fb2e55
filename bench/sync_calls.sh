#!/usr/bin/env bash
# bench/sync_calls.sh - what one blocking call costs: allocations per call
# (counting allocator hooks) and system calls per call (strace -c -f, the
# run with N calls minus the run with none), for each kind of call of the
# blocking API, against a server you name.
#
#   bench/sync_calls.sh redis://127.0.0.1:6379/0 [BIN]
#
# BIN is bench_sync_calls (default: build/bench/bench_sync_calls). N [2000].
set -euo pipefail
url=${1:?usage: sync_calls.sh URL [BIN]}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${2:-$root/build/bench/bench_sync_calls}
N=${N:-2000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Total system calls of one run (strace -c's summary line).
calls() {
    strace -f -c -o "$tmp/trace" "$bin" "$url" "$1" "$2" >"$tmp/out"
    awk '$NF == "total" { print $4 }' "$tmp/trace"
}

printf '%-14s %12s %14s\n' mode allocs/call syscalls/call
for mode in command command_opts pipelined pipeline10 multi10 transaction \
            script get_message; do
    base=$(calls "$mode" 0)
    full=$(calls "$mode" "$N")
    allocs=$(sed -n 's/.*: \([0-9.]*\) allocations per call/\1/p' "$tmp/out")
    printf '%-14s %12s %14s\n' "$mode" "$allocs" \
        "$(awk -v a="$full" -v b="$base" -v n="$N" \
            'BEGIN { printf "%.2f", (a - b) / n }')"
done
