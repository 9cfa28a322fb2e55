#!/usr/bin/env bash
# Instructions per operation (one command encoded, one reply read...),
# aredis against hiredis, counted by callgrind.
#
#   bench/callgrind.sh <bench-binary> [workload...]
#
# Works with any benchmark program that takes --impl aredis|hiredis,
# --workload NAME, --iters N and --list (bench_writer, bench_reader). With
# no workload named it runs every one the program lists.
#
# Each (workload, impl) pair runs twice under callgrind, with N1 and N2
# iterations; start-up, set-up and warm-up cost the same in both runs, so
# (Ir(N2) - Ir(N1)) / (N2 - N1) is the cost of one operation alone.
# N1 and N2 can be changed through the environment (defaults 1000, 11000).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 <bench-binary> [workload...]" >&2
    exit 2
fi
bin=$1
shift
if [ ! -x "$bin" ]; then
    echo "$0: $bin is not an executable" >&2
    exit 2
fi
command -v valgrind >/dev/null || { echo "$0: valgrind not found" >&2; exit 2; }

n1=${N1:-1000}
n2=${N2:-11000}
if [ "$n2" -le "$n1" ]; then
    echo "$0: N2 must be larger than N1" >&2
    exit 2
fi

if [ $# -gt 0 ]; then
    workloads=("$@")
else
    mapfile -t workloads < <("$bin" --list)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Total instructions of one run, from the "summary:" line callgrind writes.
count() {
    local impl=$1 workload=$2 iters=$3 out="$tmp/callgrind.out"
    if ! valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$bin" --impl "$impl" --workload "$workload" --iters "$iters" \
            >"$tmp/stdout" 2>"$tmp/stderr"; then
        echo "$0: $bin failed for $impl/$workload:" >&2
        cat "$tmp/stderr" >&2
        exit 1
    fi
    awk '/^summary:/ { print $2; found = 1 } END { if (!found) exit 1 }' "$out"
}

per_command() {
    local impl=$1 workload=$2 a b
    a=$(count "$impl" "$workload" "$n1")
    b=$(count "$impl" "$workload" "$n2")
    awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" \
        'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }'
}

printf '%-14s %14s %14s %8s\n' workload aredis_Ir/op hiredis_Ir/op ratio
for w in "${workloads[@]}"; do
    a=$(per_command aredis "$w")
    h=$(per_command hiredis "$w")
    r=$(awk -v a="$a" -v h="$h" 'BEGIN { if (h > 0) printf "%.3f", a / h; else print "-" }')
    printf '%-14s %14s %14s %8s\n' "$w" "$a" "$h" "$r"
done
