#!/usr/bin/env bash
# The cluster benchmark recipe: aredis on a Redis Cluster against the Node.js
# cluster clients and redis-benchmark --cluster, with faults.
#
#   bench/cluster.sh            (from the repository root or anywhere)
#
# It builds bench_cluster in build-bench/ (Release) if needed, starts its own
# cluster of 3 primaries + 3 replicas with tests/support/redis-cluster.sh
# (servers pinned to CPU 0, the clients to CPU 1, every node stopped on exit)
# and prints, as markdown tables:
#   seq       sequential awaited GET over all slots: ops/s, client CPU-us/op
#   set       SET with W in flight over all slots: ops/s and client CPU-s per
#             million SETs, for each W of W_LIST; redis-benchmark --cluster
#             -c 3 -P 128 as the pipelined reference
#   callgrind instructions per SET at W = 128 (two runs under callgrind,
#             difference / dN), the same program on one plain redis-server
#             and the ratio; allocations per SET (aredis's allocator hooks)
#   faults    a window-16 SET stream with a 5 s deadline per command (aredis,
#             ioredis and glide: FAULT_IMPLS) under kill -9 of a primary,
#             CLUSTER FAILOVER, and a live migration of one slot (ASK; moved
#             as redis-cli --cluster reshard moves it, MIGRATE_BATCH keys
#             per MIGRATE): failed completions by error code, lost and
#             duplicated ones, the longest gap between successes on the
#             affected slots and on the others (kill/failover: the window
#             is shared, so while commands for the affected slots wait,
#             fewer go to the others; migrate: half the window each), for
#             kill/failover the first success on an affected slot relative
#             to the promotion, and (aredis) the part of the affected gap
#             the other slots did not share, and the longest the client's
#             loop ran late (a busy machine stalls every slot alike)
#   mapwatch  after a CLUSTER FAILOVER with no traffic, sent right after
#             the client's periodic map refresh (the worst moment), the
#             time until the client's slot map names the new primary
# Each fault run gets a fresh cluster.
#
# Every cell is the median of REPEAT runs; within one round the clients run
# in turn, so slow phases of a shared machine hit all of them alike. The
# peers (ioredis with and without enableAutoPipelining, @valkey/valkey-glide)
# are installed with npm into a scratch folder; a peer that does not install
# or run is reported and left out. Raw result lines go to $OUT_DIR/raw.txt.
#
# Environment (defaults in brackets):
#   PARTS ["seq set callgrind faults mapwatch"]
#   PEERS ["ioredis ioredis-auto glide redis-benchmark"]  (empty: aredis alone)
#   REPEAT [3]   SEQ_N [100000]   SET_N [100000]   SET_N1 [20000] (W = 1)
#   W_LIST ["1 16 128 1024"]   CG_N1 [5000]  CG_N2 [25000]  CG_WARM [16384]
#   FAULT_AFTER_MS [6000]      how long the stream runs after a fault
#   FAULT_IMPLS ["aredis ioredis glide"]   the clients of the fault runs
#   FAULT_KINDS ["kill failover migrate"]  the faults injected
#   MIGRATE_BATCH [10]         keys per MIGRATE (redis-cli's --cluster-pipeline)
#   MAPWATCH_MS [20000]        how long mapwatch waits for the map
#   BUILD_DIR [build-bench]  OUT_DIR [a temporary directory, removed]
set -euo pipefail

PARTS=${PARTS:-"seq set callgrind faults mapwatch"}
PEERS=${PEERS-"ioredis ioredis-auto glide redis-benchmark"}
REPEAT=${REPEAT:-3}
SEQ_N=${SEQ_N:-100000}
SET_N=${SET_N:-100000}
SET_N1=${SET_N1:-20000}
W_LIST=${W_LIST:-"1 16 128 1024"}
CG_N1=${CG_N1:-5000}
CG_N2=${CG_N2:-25000}
CG_WARM=${CG_WARM:-16384}
FAULT_AFTER_MS=${FAULT_AFTER_MS:-6000}
MAPWATCH_MS=${MAPWATCH_MS:-20000}
FAULT_IMPLS=${FAULT_IMPLS-"aredis ioredis glide"}
FAULT_KINDS=${FAULT_KINDS:-"kill failover migrate"}
MIGRATE_BATCH=${MIGRATE_BATCH:-10}

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init cluster.sh
has() {
    case " $2 " in *" $1 "*) return 0 ;; esac
    return 1
}
note() { echo "cluster.sh: $*" >&2; }
command -v taskset >/dev/null || bench_die "taskset not found"
[ "$(nproc)" -ge 2 ] || bench_die "needs at least 2 CPUs (servers and client apart)"
if has callgrind "$PARTS" && ! command -v valgrind >/dev/null; then
    bench_die "valgrind not found (apt-get install valgrind), or drop callgrind from PARTS"
fi
bench_build bench_cluster
bench_pin

# ---- scratch space, the cluster ----------------------------------------------------
out=${OUT_DIR:-$tmp}
mkdir -p "$out"
raw=$out/raw.txt
: >"$raw"
export AREDIS_TEST_STATE_DIR=$tmp/servers AREDIS_TEST_OWNER_PID=$$
cluster_script=$root/tests/support/redis-cluster.sh
cleanup() {
    bash "$cluster_script" stop bench >/dev/null 2>&1 || true
    bench_cleanup
}
trap cleanup EXIT

state() { sed -n "s/^$2=//p" "$AREDIS_TEST_STATE_DIR/$1.state"; }
# addr_of I: host:port of the cluster's node I (0-2 primaries, 3-5 replicas).
addr_of() { echo "127.0.0.1:$(state "bench-node$1" port)"; }

# A fresh cluster (every node on the servers' CPU); sets SEEDS and URL.
start_cluster() {
    bash "$cluster_script" stop bench >/dev/null 2>&1 || true
    "${server_cpu[@]}" bash "$cluster_script" start bench >/dev/null 2>&1 ||
        bench_die "the cluster did not start"
    SEEDS="$(addr_of 0),$(addr_of 1),$(addr_of 2)"
    URL="redis+cluster://$SEEDS"
}

pin() { "${client_cpu[@]}" "$@"; }
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
# fmt PRINTF-FORMAT VALUE: VALUE formatted, or "-" when it is not a number.
fmt() {
    case $2 in
        '' | -) echo - ;;
        *) printf "$1" "$2" ;;
    esac
}
# med_of "v1 v2 ...": their median ("-" when none)
med_of() { tr ' ' '\n' <<<"$1" | grep . | median; }
# median of the numbers on stdin ("-" when none)
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

start_cluster
echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), cluster of 3 primaries + 3 replicas (CPU 0), clients on CPU 1"
echo "$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(uname -sr), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), aredis $(git -C "$root" describe --always --dirty 2>/dev/null || echo '(not a git checkout)')"

# ---- peers from npm ------------------------------------------------------------------
keys=$tmp/keys.txt
"$bin" --keys "$keys"
impls="aredis"
want_npm=()
has ioredis "$PEERS" && want_npm+=(ioredis)
has ioredis-auto "$PEERS" && want_npm+=(ioredis)
has glide "$PEERS" && want_npm+=(@valkey/valkey-glide)
if [ ${#want_npm[@]} -gt 0 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        note "node or npm not found (scripts/deps.sh bench installs them): Node.js peers left out"
    else
        mkdir -p "$tmp/node"
        for pkg in $(printf '%s\n' "${want_npm[@]}" | sort -u); do
            if ! (cd "$tmp/node" && timeout 300 npm install --no-audit --no-fund \
                    --silent "$pkg" >"$tmp/npm.log" 2>&1); then
                note "npm install $pkg failed: $(tail -1 "$tmp/npm.log")"
            fi
        done
        export NODE_PATH=$tmp/node/node_modules
        # A peer stays in only if it completes a short run here.
        for p in ioredis ioredis-auto glide; do
            has "$p" "$PEERS" || continue
            if pin node "$root/bench/node_cluster_bench.js" --client "$p" \
                --seeds "$SEEDS" --keys "$keys" --mode set -n 1000 -w 16 \
                >/dev/null 2>"$tmp/peer.err"; then
                impls+=" $p"
            else
                note "$p left out: $(tail -1 "$tmp/peer.err")"
            fi
        done
        [ -d "$NODE_PATH/ioredis" ] &&
            echo "ioredis $(node -p 'require("ioredis/package.json").version') from npm"
        [ -d "$NODE_PATH/@valkey/valkey-glide" ] &&
            echo "valkey-glide $(node -p 'require(process.env.NODE_PATH + "/@valkey/valkey-glide/package.json").version') from npm"
    fi
fi

# run IMPL MODE N W: one result line (also kept in raw.txt).
run() {
    local impl=$1 mode=$2 n=$3 w=$4 line
    if [ "$impl" = aredis ]; then
        line=$(pin "$bin" --url "$URL" --mode "$mode" -n "$n" -w "$w") || return 1
    else
        line=$(pin node "$root/bench/node_cluster_bench.js" --client "$impl" \
            --seeds "$SEEDS" --keys "$keys" --mode "$mode" -n "$n" -w "$w") || return 1
    fi
    echo "impl=$impl $line" >>"$raw"
    echo "$line"
}

# ---- seq ---------------------------------------------------------------------------
if has seq "$PARTS"; then
    declare -A seq_ops seq_cpu
    for ((r = 1; r <= REPEAT; r++)); do
        for impl in $impls; do
            if line=$(run "$impl" seq "$SEQ_N" 1 2>"$tmp/err"); then
                seq_ops[$impl]+="$(field ops_per_sec "$line") "
                seq_cpu[$impl]+="$(field cpu_us_per_op "$line") "
            else
                note "$impl seq failed: $(tail -1 "$tmp/err")"
            fi
        done
    done
    echo
    echo "Sequential awaited GET over all slots, N = $SEQ_N (median of $REPEAT)"
    echo
    echo "| client | ops/s | client CPU-us/op |"
    echo "| --- | ---: | ---: |"
    for impl in $impls; do
        printf '| %s | %s | %s |\n' "$impl" \
            "$(fmt %.0f "$(med_of "${seq_ops[$impl]-}")")" \
            "$(fmt %.1f "$(med_of "${seq_cpu[$impl]-}")")"
    done
fi

# ---- set ----------------------------------------------------------------------------
if has set "$PARTS"; then
    declare -A set_ops set_cpu
    rb_ops="" rb_cpu=""
    for ((r = 1; r <= REPEAT; r++)); do
        for w in $W_LIST; do
            n=$SET_N
            [ "$w" -eq 1 ] && n=$SET_N1
            for impl in $impls; do
                if line=$(run "$impl" set "$n" "$w" 2>"$tmp/err"); then
                    set_ops[$impl/$w]+="$(field ops_per_sec "$line") "
                    set_cpu[$impl/$w]+="$(field cpu_s_per_million "$line") "
                else
                    note "$impl set W=$w failed: $(tail -1 "$tmp/err")"
                fi
            done
        done
        if has redis-benchmark "$PEERS" && command -v redis-benchmark >/dev/null; then
            # Its CPU from the shell's own accounting of the child.
            times_before=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
            pin redis-benchmark --cluster -h 127.0.0.1 -p "$(state bench-node0 port)" \
                -c 3 -P 128 -n "$SET_N" -t set -d 16 -r 1000000 -q \
                >"$tmp/rb.txt" 2>&1 || true
            times_after=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
            echo "impl=redis-benchmark $(tr '\r' '\n' <"$tmp/rb.txt" | grep -E '^SET' | tail -1)" >>"$raw"
            rb=$(tr '\r' '\n' <"$tmp/rb.txt" | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
            if [ -n "$rb" ]; then
                rb_ops+="$rb "
                rb_cpu+="$(awk -v a="$times_before" -v b="$times_after" -v n="$SET_N" \
                    -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / n }') "
            else
                note "redis-benchmark --cluster gave no SET result: $(tail -c 200 "$tmp/rb.txt")"
            fi
        fi
    done
    echo
    echo "SET with W in flight over all slots, N = $SET_N ($SET_N1 at W = 1), median of $REPEAT: ops/s (client CPU-s per million SETs)"
    echo
    hdr="| client |"
    sep="| --- |"
    for w in $W_LIST; do
        hdr+=" W=$w |"
        sep+=" ---: |"
    done
    echo "$hdr"
    echo "$sep"
    for impl in $impls; do
        row="| $impl |"
        for w in $W_LIST; do
            o=$(fmt %.0f "$(med_of "${set_ops[$impl/$w]-}")")
            c=$(fmt %.2f "$(med_of "${set_cpu[$impl/$w]-}")")
            row+=" $o ($c) |"
        done
        echo "$row"
    done
    if [ -n "$rb_ops" ]; then
        o=$(fmt %.0f "$(med_of "$rb_ops")")
        c=$(fmt %.2f "$(med_of "$rb_cpu")")
        echo "| redis-benchmark --cluster -c 3 -P 128 | $o ($c) at 384 in flight |"
    fi
fi

# ---- callgrind -------------------------------------------------------------------
if has callgrind "$PARTS"; then
    bench_server
    single="redis://127.0.0.1:$port"
    # Ir URL N: the instructions of one run of N SETs at W = 128.
    ir() {
        local f=$tmp/cg.out
        pin valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" \
            --url "$1" --mode set -w 128 -n "$2" --warm "$CG_WARM" \
            >"$tmp/cg.stdout" 2>"$tmp/cg.stderr" ||
            bench_die "callgrind run failed: $(tail -3 "$tmp/cg.stderr")"
        awk '/^summary:/ { print $2 }' "$f"
    }
    per_cmd() {
        local a b
        a=$(ir "$1" "$CG_N1")
        b=$(ir "$1" "$CG_N2")
        echo "callgrind url=$1 n1=$CG_N1 ir1=$a n2=$CG_N2 ir2=$b" >>"$raw"
        awk -v a="$a" -v b="$b" -v n1="$CG_N1" -v n2="$CG_N2" \
            'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }'
    }
    ir_cl=$(per_cmd "$URL")
    ir_one=$(per_cmd "$single")
    al_cl=$(field allocs_per_op "$(pin "$bin" --url "$URL" --mode set -w 128 -n "$SET_N")")
    al_one=$(field allocs_per_op "$(pin "$bin" --url "$single" --mode set -w 128 -n "$SET_N")")
    echo
    echo "Instructions per SET at W = 128 (callgrind, (Ir(N2) - Ir(N1)) / (N2 - N1), N = $CG_N1 and $CG_N2), allocations per SET"
    echo
    echo "| aredis on | instructions/SET | allocations/SET |"
    echo "| --- | ---: | ---: |"
    echo "| the cluster (3 primaries) | $ir_cl | $al_cl |"
    echo "| one redis-server | $ir_one | $al_one |"
    echo "| ratio cluster / one node | $(awk -v a="$ir_cl" -v b="$ir_one" 'BEGIN { printf "%.2f", a / b }') | |"
fi

# ---- faults -------------------------------------------------------------------------
# fault IMPL KIND: one run on a fresh cluster; prints the program's line.
fault() {
    local impl=$1 kind=$2 args=() line
    start_cluster
    case $kind in
        kill) args=(--pid "$(state bench-node0 pid)" --replica "$(addr_of 3)" --affected 0-5460) ;;
        failover) args=(--replica "$(addr_of 3)" --affected 0-5460) ;;
        migrate) args=(--slot 100 --src "$(addr_of 0)" --dst "$(addr_of 1)" --batch "$MIGRATE_BATCH") ;;
    esac
    if [ "$impl" = aredis ]; then
        line=$(pin "$bin" --url "$URL" --mode fault --fault "$kind" -w 16 \
            --after-ms "$FAULT_AFTER_MS" "${args[@]}") || return 1
    else
        line=$(pin node "$root/bench/node_cluster_bench.js" --client "$impl" \
            --seeds "$SEEDS" --keys "$keys" --mode fault --fault "$kind" -w 16 \
            --after-ms "$FAULT_AFTER_MS" "${args[@]}") || return 1
    fi
    echo "impl=$impl $line" >>"$raw"
    echo "$line"
}
fault_row() {
    local impl=$1 kind=$2 lines=$3 f cells=""
    med() { while IFS= read -r l; do field "$1" "$l"; done <<<"$lines" | median; }
    for f in sent failed lost duplicated failed_other gap_affected_ms gap_other_ms \
        gap_affected_only_ms gap_affected_only_before_ms loop_stall_ms \
        t_promoted_ms first_ok_minus_promotion_ms t_migration_done_ms; do
        cells+=" $(med "$f") |"
    done
    local codes
    codes=$(while IFS= read -r l; do field failures "$l"; done <<<"$lines" | paste -sd'/' -)
    echo "| $kind | $impl |$cells $codes |"
}
if has faults "$PARTS"; then
    declare -A fl
    fault_impls=""
    for impl in $impls; do
        has "$impl" "$FAULT_IMPLS" && fault_impls+=" $impl"
    done
    for ((r = 1; r <= REPEAT; r++)); do
        for kind in $FAULT_KINDS; do
            for impl in $fault_impls; do
                if line=$(fault "$impl" "$kind" 2>"$tmp/err"); then
                    fl[$impl/$kind]+="$line"$'\n'
                else
                    note "$impl fault $kind failed: $(tail -1 "$tmp/err")"
                fi
            done
        done
    done
    echo
    echo "Faults under a window-16 SET stream, deadline 5 s per command, stream kept $FAULT_AFTER_MS ms past the fault (median of $REPEAT; times in ms from the fault)"
    echo
    echo "| fault | client | sent | failed | lost | duplicated | failed on other slots | longest gap, affected slots | longest gap, other slots | affected-only gap during the fault | the same before the fault | client loop stall | promotion | first success on affected slots - promotion | migration done | failures by code (of which on affected slots), per run |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for kind in $FAULT_KINDS; do
        for impl in $fault_impls; do
            [ -n "${fl[$impl/$kind]-}" ] || continue
            fault_row "$impl" "$kind" "$(grep . <<<"${fl[$impl/$kind]}")"
        done
    done
    echo
    echo "kill: kill -9 of the primary of slots 0-5460; failover: CLUSTER FAILOVER on its replica;"
    echo "migrate: slot 100 moved to another primary as redis-cli --cluster reshard does ($MIGRATE_BATCH keys per MIGRATE, ASK on the way), half the window on that slot."
    echo "affected-only gap: of the gaps on the affected slots from the fault to 200 ms past its end (migration done, promotion),"
    echo "the longest less the longest gap of the other slots inside it; before the fault: the same over the second before it (no fault: the noise);"
    echo "client loop stall: the longest the client's loop ran late on a 10 ms timer (a whole-stream gap of the machine, not of the fault)."
    echo "-1 = did not happen within the run; - = not measured for this client."
fi

# ---- mapwatch -----------------------------------------------------------------------
if has mapwatch "$PARTS"; then
    mw=""
    for ((r = 1; r <= REPEAT; r++)); do
        start_cluster
        line=$(pin "$bin" --url "$URL" --mode mapwatch --replica "$(addr_of 4)" \
            --slot 6000 --watch-ms "$MAPWATCH_MS") || bench_die "mapwatch failed"
        [ "$(field supported "$line")" = 1 ] ||
            note "mapwatch: this client has no way to show its slot map"
        echo "impl=aredis $line" >>"$raw"
        mw+="$line"$'\n'
    done
    mw=$(grep . <<<"$mw")
    echo
    echo "CLUSTER FAILOVER with no traffic, sent right after the client's periodic map refresh: ms from the command (median of $REPEAT, and the largest; -1: not within $MAPWATCH_MS ms)"
    echo
    echo "| refresh period | replica promoted | client's map names it | map - promotion | map - the refresh before (target: period + 100) |"
    echo "| ---: | ---: | ---: | ---: | ---: |"
    mw_med() { while IFS= read -r l; do field "$1" "$l"; done <<<"$mw" | median; }
    mw_max() { while IFS= read -r l; do field "$1" "$l"; done <<<"$mw" | sort -g | tail -1; }
    printf '| %s | %s | %s | %s (max %s) | %s (max %s) |\n' \
        "$(mw_med refresh_period_ms)" "$(mw_med t_promoted_ms)" "$(mw_med t_map_ms)" \
        "$(mw_med map_minus_promotion_ms)" "$(mw_max map_minus_promotion_ms)" \
        "$(mw_med map_minus_refresh_ms)" "$(mw_max map_minus_refresh_ms)"
fi
echo
echo "raw results: $raw"
