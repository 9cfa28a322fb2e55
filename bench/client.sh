#!/usr/bin/env bash
# The client benchmark recipe: aredis against hiredis, a raw socket and
# redis-benchmark, on one throwaway redis-server over loopback.
#
#   bench/client.sh            (from the repository root or anywhere)
#
# It builds bench_client in build-bench/ (Release) if needed, starts
# redis-server on a free loopback port pinned to CPU 0 (no persistence, its
# own temporary directory, stopped on exit), and for each placement of the
# client -- "separate" (CPU 1) and "same" (CPU 0, sharing the server's CPU)
# -- prints:
#   table 1  us per sequential KEYS * (wall time including the connect);
#   table 2  ops/s and client CPU per million ops (user+sys, and user
#            alone), N SET + N GET with W in
#            flight, with redis-benchmark -P W as the pipelined reference
#            (as is, one key; and with -r over as many keys as ours);
# then system calls per command at W = 1 (strace -c -f) and instructions per
# command at W = 128 (callgrind, two N values, difference / (2 dN)).
#
# Every cell is the median of REPEAT runs; the runs of one round go through
# the implementations in turn, so slow phases of a noisy machine hit all of
# them alike. Every raw result line is kept in $OUT_DIR/raw.txt.
#
# Environment (defaults in brackets):
#   N_LIST ["100 1000 10000 100000"]   table 1 sizes
#   W_LIST ["1 16 128 1024"]           table 2 windows
#   PIPE_N [1000000]                   table 2 N (SETs; as many GETs)
#   REPEAT [3]                         runs per cell (median)
#   PLACEMENTS ["separate same"]
#   PARTS ["seq pipe strace callgrind"]
#   STRACE_N [20000]  CG_N1 [10000]  CG_N2 [60000]  CG_W [128]
#   BUILD_DIR [build-bench]  OUT_DIR [a temporary directory, removed]
#   DB [9]                             the database bench_client empties
#   RB_KEYS [10000]                    table 2 also runs redis-benchmark -r
#                                      RB_KEYS (bench_client's key count);
#                                      0 leaves that column out
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
N_LIST=${N_LIST:-"100 1000 10000 100000"}
W_LIST=${W_LIST:-"1 16 128 1024"}
PIPE_N=${PIPE_N:-1000000}
REPEAT=${REPEAT:-3}
PLACEMENTS=${PLACEMENTS:-"separate same"}
PARTS=${PARTS:-"seq pipe strace callgrind"}
STRACE_N=${STRACE_N:-20000}
CG_N1=${CG_N1:-10000}
CG_N2=${CG_N2:-60000}
CG_W=${CG_W:-128}
DB=${DB:-9}
RB_KEYS=${RB_KEYS:-10000}
SERVER_CPU=0

SEQ_IMPLS="raw aredis aredis-uv aredis-sync hiredis hiredis-libevent"
PIPE_IMPLS="aredis hiredis-libevent"

die() {
    echo "client.sh: $*" >&2
    exit 1
}
has_part() {
    case " $PARTS " in *" $1 "*) return 0 ;; esac
    return 1
}

for tool in redis-server redis-cli redis-benchmark taskset cmake; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
if [ "$(nproc)" -lt 2 ]; then
    die "needs at least 2 CPUs for the separate placement"
fi
if has_part strace && ! command -v strace >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y strace >/dev/null
    else
        die "strace not found (apt-get install strace), or drop it from PARTS"
    fi
fi
if has_part callgrind && ! command -v valgrind >/dev/null; then
    die "valgrind not found (apt-get install valgrind), or drop it from PARTS"
fi

# ---- build ---------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" --target bench_client -j "$(nproc)" >/dev/null
bin=$build/bench/bench_client
[ -x "$bin" ] || die "$bin was not built (libhiredis-dev, libevent-dev, libuv1-dev?)"

# ---- scratch space and the server -----------------------------------------
tmp=$(mktemp -d)
out=${OUT_DIR:-$tmp}
mkdir -p "$out"
raw="$out/raw.txt"
: >"$raw"
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
        mkdir -p "$tmp/redis"
        taskset -c "$SERVER_CPU" redis-server --port "$port" \
            --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" \
            --logfile "$tmp/redis/redis.log" --daemonize no &
        server_pid=$!
        for i in $(seq 50); do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ]; then
                PORT=$port
                # The threads it started inherit the mask; say so anyway.
                taskset -a -p -c "$SERVER_CPU" "$server_pid" >/dev/null
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
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')," \
    "pid $server_pid on 127.0.0.1:$PORT, $(taskset -p "$server_pid" | sed 's/.*: /affinity mask /')"
echo "$(nproc) CPUs, $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), aredis $(git -C "$root" describe --always --dirty 2>/dev/null || echo '(not a git checkout)')"
echo "bench_client: $bin"

# ---- helpers ----------------------------------------------------------------

# field NAME LINE: the value of NAME=... in a result line.
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

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a != "-") printf "%.2f", a / b; else print "-" }'
}

# client CPU ARGS...: one bench_client run pinned to CPU, its line on stdout.
client() {
    local cpu=$1 line
    shift
    line=$(taskset -c "$cpu" "$bin" --port "$PORT" --db "$DB" "$@") ||
        die "bench_client $* failed"
    echo "cpu=$cpu $line" >>"$raw"
    echo "$line"
}

# The requests per second redis-benchmark prints for one test.
rb_rps() {
    tr '\r' '\n' | sed -n "s/^$1: \([0-9.]*\) requests per second.*/\1/p" | tail -1
}

# rb CPU ARGS...: redis-benchmark's output. It sometimes gives up at once
# with "All clients disconnected... aborting." (exit status 1, no result);
# such a run is retried, at most 3 times, and the retry noted in raw.txt.
rb() {
    local cpu=$1 try out
    shift
    for try in 1 2 3; do
        if out=$(taskset -c "$cpu" redis-benchmark -h 127.0.0.1 -p "$PORT" \
                --dbnum "$DB" "$@" 2>&1) &&
            echo "$out" | tr '\r' '\n' | grep -q 'requests per second'; then
            echo "$out"
            return 0
        fi
        echo "redis-benchmark $* failed (try $try): $(echo "$out" | tr '\r' '\n' | grep -v rps= | grep . | tail -1)" >>"$raw"
    done
    die "redis-benchmark $* failed 3 times (see $raw)"
}

flushdb() {
    redis-cli -p "$PORT" -n "$DB" flushdb >/dev/null
}

# Where the target checks collect their numbers: summary[key]=value.
declare -A summary

# top_functions OUT1 OUT2: the per-command self cost of each function, from
# the difference of two callgrind runs, so that start-up does not count.
top_functions() {
    local a b
    a=$(callgrind_annotate --inclusive=no --auto=no --threshold=100 "$1" 2>/dev/null)
    b=$(callgrind_annotate --inclusive=no --auto=no --threshold=100 "$2" 2>/dev/null)
    awk -v d="$((2 * (CG_N2 - CG_N1)))" '
        function grab(line, arr,   n, name) {
            if (line !~ /^ *[0-9,]+ +\(/) return
            n = line; sub(/^ */, "", n); sub(/ .*/, "", n); gsub(/,/, "", n)
            name = line; sub(/^ *[0-9,]+ +\([^)]*\) +/, "", name)
            sub(/ \[.*$/, "", name); sub(/^.*:/, "", name)
            if (name != "PROGRAM TOTALS") arr[name] += n
        }
        FNR == 1 { file++ }
        file == 1 { grab($0, first); next }
        { grab($0, second) }
        END {
            for (f in second) { v = (second[f] - first[f]) / d; if (v > 0) { tot += v; per[f] = v } }
            for (f in per) printf "%10.1f %5.1f%%  %s\n", per[f], 100 * per[f] / tot, f
            printf "%10.1f %5.1f%%  (all functions that grew)\n", tot, 100
        }' <(echo "$a") <(echo "$b") | sort -k1,1 -g -r | head -16
}

# ---- table 1: sequential KEYS * -------------------------------------------
seq_table() {
    local place=$1 cpu=$2 n rep impl line v
    echo
    echo "Table 1 ($place: server CPU $SERVER_CPU, client CPU $cpu):" \
        "us per sequential KEYS *, connect included, median of $REPEAT"
    printf '%8s %8s %8s %8s %9s %9s %8s %8s | %7s %7s %7s %7s %7s %7s\n' \
        N raw r-bench aredis aredis-uv ar-sync hiredis hi-levt \
        a/raw a/hi-le a/hi a/rb uv/hile syn/hi
    for n in $N_LIST; do
        declare -A vals=()
        for rep in $(seq "$REPEAT"); do
            for impl in $SEQ_IMPLS; do
                line=$(client "$cpu" --mode seq --impl "$impl" --n "$n")
                vals[$impl]+=" $(field us_per_op "$line")"
            done
            flushdb
            v=$(rb "$cpu" -c 1 -n "$n" -q KEYS '*' | rb_rps 'KEYS \*')
            [ -n "$v" ] || die "redis-benchmark KEYS printed no result"
            echo "cpu=$cpu mode=seq impl=redis-benchmark n=$n rps=$v" >>"$raw"
            vals[rb]+=" $(awk -v r="$v" 'BEGIN { printf "%.3f", 1e6 / r }')"
        done
        local m_raw m_rb m_a m_uv m_s m_h m_hl
        m_raw=$(echo "${vals[raw]}" | median)
        m_rb=$(echo "${vals[rb]}" | median)
        m_a=$(echo "${vals[aredis]}" | median)
        m_uv=$(echo "${vals[aredis-uv]}" | median)
        m_s=$(echo "${vals[aredis-sync]}" | median)
        m_h=$(echo "${vals[hiredis]}" | median)
        m_hl=$(echo "${vals[hiredis-libevent]}" | median)
        printf '%8s %8.2f %8.2f %8.2f %9.2f %9.2f %8.2f %8.2f | %7s %7s %7s %7s %7s %7s\n' \
            "$n" "$m_raw" "$m_rb" "$m_a" "$m_uv" "$m_s" "$m_h" "$m_hl" \
            "$(ratio "$m_a" "$m_raw")" "$(ratio "$m_a" "$m_hl")" \
            "$(ratio "$m_a" "$m_h")" "$(ratio "$m_a" "$m_rb")" \
            "$(ratio "$m_uv" "$m_hl")" "$(ratio "$m_s" "$m_h")"
        summary[seq.$place.$n]="$m_raw $m_rb $m_a $m_uv $m_s $m_h $m_hl"
        unset vals
    done
}

# ---- table 2: pipelined SET/GET -------------------------------------------
pipe_table() {
    local place=$1 cpu=$2 w rep impl line out_rb s g
    echo
    echo "Table 2 ($place): $PIPE_N SET + $PIPE_N GET, 16-byte values," \
        "W in flight, median of $REPEAT"
    printf '%6s %11s %11s %11s %11s %8s %8s %8s %8s | %6s %6s %6s %7s %7s\n' \
        W aredis_op/s hiredis_op/s rbench_op/s rb-r_op/s ar_cpu/M hi_cpu/M \
        ar_usr/M hi_usr/M a/hi a/rb a/rb-r cpu_a/h usr_a/h
    for w in $W_LIST; do
        declare -A ops=() cpu_m=() usr_m=()
        for rep in $(seq "$REPEAT"); do
            for impl in $PIPE_IMPLS; do
                line=$(client "$cpu" --mode pipe --impl "$impl" --n "$PIPE_N" --w "$w")
                ops[$impl]+=" $(field ops_s "$line")"
                cpu_m[$impl]+=" $(field cpu_s_per_M "$line")"
                usr_m[$impl]+=" $(awk -v u="$(field user_s "$line")" \
                    -v n="$(field ops "$line")" 'BEGIN { printf "%.4f", u * 1e6 / n }')"
            done
            out_rb=$(rb "$cpu" -c 1 -P "$w" -n "$PIPE_N" -t set,get -d 16 -q)
            s=$(echo "$out_rb" | rb_rps SET)
            g=$(echo "$out_rb" | rb_rps GET)
            [ -n "$s" ] && [ -n "$g" ] || die "redis-benchmark -P $w printed no result"
            echo "cpu=$cpu mode=pipe impl=redis-benchmark n=$PIPE_N w=$w set_rps=$s get_rps=$g" >>"$raw"
            # The same 2N operations at those two rates.
            ops[rb]+=" $(awk -v s="$s" -v g="$g" 'BEGIN { printf "%.0f", 2 / (1 / s + 1 / g) }')"
            # Without -r every redis-benchmark command uses one key; with
            # -r it spreads them over as many keys as bench_client uses.
            if [ "$RB_KEYS" -gt 0 ]; then
                out_rb=$(rb "$cpu" -c 1 -P "$w" -n "$PIPE_N" -t set,get -d 16 -r "$RB_KEYS" -q)
                s=$(echo "$out_rb" | rb_rps SET)
                g=$(echo "$out_rb" | rb_rps GET)
                [ -n "$s" ] && [ -n "$g" ] || die "redis-benchmark -r printed no result"
                echo "cpu=$cpu mode=pipe impl=redis-benchmark-r n=$PIPE_N w=$w set_rps=$s get_rps=$g" >>"$raw"
                ops[rbr]+=" $(awk -v s="$s" -v g="$g" 'BEGIN { printf "%.0f", 2 / (1 / s + 1 / g) }')"
            fi
        done
        local oa oh orb orr ca ch ua uh
        oa=$(echo "${ops[aredis]}" | median)
        oh=$(echo "${ops[hiredis-libevent]}" | median)
        orb=$(echo "${ops[rb]}" | median)
        orr=$(echo "${ops[rbr]:-}" | median)
        ca=$(echo "${cpu_m[aredis]}" | median)
        ch=$(echo "${cpu_m[hiredis-libevent]}" | median)
        ua=$(echo "${usr_m[aredis]}" | median)
        uh=$(echo "${usr_m[hiredis-libevent]}" | median)
        printf '%6s %11.0f %11.0f %11.0f %11s %8.3f %8.3f %8.3f %8.3f | %6s %6s %6s %7s %7s\n' \
            "$w" "$oa" "$oh" "$orb" "$orr" "$ca" "$ch" "$ua" "$uh" \
            "$(ratio "$oa" "$oh")" "$(ratio "$oa" "$orb")" \
            "$(ratio "$oa" "$orr")" "$(ratio "$ca" "$ch")" "$(ratio "$ua" "$uh")"
        summary[pipe.$place.$w]="$oa $oh $orb $ca $ch"
        unset ops cpu_m usr_m
    done
}

for place in $PLACEMENTS; do
    case $place in
    separate) cpu=1 ;;
    same) cpu=$SERVER_CPU ;;
    *) die "unknown placement $place (separate, same)" ;;
    esac
    if has_part seq; then seq_table "$place" "$cpu"; fi
    if has_part pipe; then pipe_table "$place" "$cpu"; fi
done

# ---- system calls per command at W = 1 -------------------------------------
# strace_run IMPL N: the strace -c summary file of one pipe run at W = 1.
strace_run() {
    local f="$tmp/strace.$1.$2"
    taskset -c 1 strace -c -f -o "$f" "$bin" --port "$PORT" --db "$DB" \
        --mode pipe --impl "$1" --n "$2" --w 1 >>"$raw" ||
        die "strace of $1 failed"
    echo "$f"
}

if has_part strace; then
    n2=$((2 * STRACE_N))
    echo
    echo "System calls per command, pipe mode, W = 1, client on CPU 1, strace -c -f:"
    echo "  per_cmd = total calls / (2N) at N = $STRACE_N (start-up included);"
    echo "  steady = (calls(N=$n2) - calls(N=$STRACE_N)) / (2 dN), also per system call"
    printf '%-18s %8s %8s %8s  %s\n' impl calls per_cmd steady "steady breakdown"
    for impl in $PIPE_IMPLS; do
        f1=$(strace_run "$impl" "$STRACE_N")
        f2=$(strace_run "$impl" "$n2")
        total=$(awk '$NF == "total" { print $4 }' "$f1")
        per=$(awk -v t="$total" -v n="$STRACE_N" 'BEGIN { printf "%.3f", t / (2 * n) }')
        # Per system call: calls in the big run minus calls in the small one.
        parts=$(awk -v d="$((2 * (n2 - STRACE_N)))" '
            FNR == 1 { file++ }
            /^-/ || /^%/ || NF < 5 { next }
            { c[file, $NF] = $4; names[$NF] = 1 }
            END {
                for (s in names) {
                    v = (c[2, s] - c[1, s]) / d
                    if (s == "total") tot = v
                    else if (v >= 0.005) printf "%s %.3f, ", s, v
                }
                printf "|%.3f", tot
            }' "$f1" "$f2")
        steady=${parts##*|}
        parts=${parts%|*}
        printf '%-18s %8s %8s %8s  %s\n' "$impl" "$total" "$per" "$steady" "${parts%, }"
        summary[strace.$impl]=$steady
    done
fi

# ---- instructions per command at W = CG_W ----------------------------------
if has_part callgrind; then
    echo
    echo "Instructions per command, pipe mode, W = $CG_W, callgrind," \
        "(Ir(N=$CG_N2) - Ir(N=$CG_N1)) / (2 dN)"
    declare -A ir=()
    for impl in $PIPE_IMPLS; do
        for n in "$CG_N1" "$CG_N2"; do
            f="$tmp/callgrind.$impl.$n"
            taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$f" \
                "$bin" --port "$PORT" --db "$DB" --mode pipe --impl "$impl" \
                --n "$n" --w "$CG_W" >>"$raw" 2>"$tmp/valgrind.log" ||
                { cat "$tmp/valgrind.log" >&2; die "callgrind of $impl failed"; }
            ir[$impl.$n]=$(awk '/^summary:/ { print $2 }' "$f")
        done
        ir[$impl]=$(awk -v a="${ir[$impl.$CG_N1]}" -v b="${ir[$impl.$CG_N2]}" \
            -v n1="$CG_N1" -v n2="$CG_N2" 'BEGIN { printf "%.1f", (b - a) / (2 * (n2 - n1)) }')
    done
    printf '%-18s %14s\n' impl Ir/command
    for impl in $PIPE_IMPLS; do
        printf '%-18s %14s\n' "$impl" "${ir[$impl]}"
    done
    echo "ratio aredis/hiredis-libevent: $(ratio "${ir[aredis]}" "${ir[hiredis-libevent]}")"
    summary[ir.aredis]=${ir[aredis]}
    summary[ir.hiredis]=${ir[hiredis-libevent]}
    if command -v callgrind_annotate >/dev/null; then
        for impl in $PIPE_IMPLS; do
            echo
            echo "Top functions of $impl by instructions per command (self cost," \
                "N=$CG_N2 run minus N=$CG_N1 run, / (2 dN)):"
            top_functions "$tmp/callgrind.$impl.$CG_N1" "$tmp/callgrind.$impl.$CG_N2"
        done
    fi
fi

# ---- the targets -------------------------------------------------------------
echo
echo "Targets (from the medians above):"
check() {
    # check TEXT VALUE OP LIMIT
    local verdict
    verdict=$(awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN {
        if (v == "-" || v == "") { print "n/a"; exit }
        ok = (op == "<=") ? (v <= l) : (v >= l); print ok ? "met" : "NOT met" }')
    printf '  %-62s %8s %s %-6s %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
for n in $N_LIST; do
    if [ -n "${summary[seq.same.$n]:-}" ]; then
        read -r s_raw s_rb s_a s_uv s_s s_h s_hl <<<"${summary[seq.same.$n]}"
        check "same CPU, N=$n: aredis / raw floor" "$(ratio "$s_a" "$s_raw")" "<=" 1.10
        check "same CPU, N=$n: aredis / hiredis-libevent" "$(ratio "$s_a" "$s_hl")" "<=" 1.00
    fi
    if [ -n "${summary[seq.separate.$n]:-}" ]; then
        read -r s_raw s_rb s_a s_uv s_s s_h s_hl <<<"${summary[seq.separate.$n]}"
        best=$(printf '%s\n' "$s_rb" "$s_h" "$s_hl" | sort -g | head -1)
        check "separate CPUs, N=$n: aredis / fastest library peer" "$(ratio "$s_a" "$best")" "<=" 1.00
    fi
done
for place in $PLACEMENTS; do
    for w in $W_LIST; do
        [ "$w" -ge 128 ] || continue
        [ -n "${summary[pipe.$place.$w]:-}" ] || continue
        read -r oa oh orb ca ch <<<"${summary[pipe.$place.$w]}"
        check "$place, W=$w: aredis ops/s / redis-benchmark -P W" "$(ratio "$oa" "$orb")" ">=" 1.00
        check "$place, W=$w: aredis CPU per op / hiredis's" "$(ratio "$ca" "$ch")" "<=" 0.50
    done
done
if [ -n "${summary[ir.aredis]:-}" ]; then
    check "W=$CG_W: aredis instructions per command / hiredis's" \
        "$(ratio "${summary[ir.aredis]}" "${summary[ir.hiredis]}")" "<=" 0.50
fi
if [ -n "${summary[strace.aredis]:-}" ]; then
    check "W=1: aredis system calls per command (steady)" "${summary[strace.aredis]}" "<=" 3
fi
echo
echo "raw results: $raw$([ -z "${OUT_DIR:-}" ] && echo ' (removed on exit; set OUT_DIR to keep)')"
