#!/usr/bin/env bash
# bench/compare.sh - aredis-benchmark against other clients doing the same
# work on the same throwaway server, in one run, with tables and plots.
#
#   bench/compare.sh            (from anywhere; takes a few minutes)
#
# Clients: aredis-benchmark (async on the built-in loop; --sync at W = 1),
# bench/hiredis_bench (Debian's hiredis, async on libevent, same options,
# commands and histogram: tools/bm/), redis-benchmark, and ioredis
# (bench/ioredis_bench.js) when npm can install it into a scratch folder
# (skipped with a note otherwise).
#
# The work: one connection, W commands in flight (redis-benchmark -P W
# sends batches of W instead of a sliding window), N SET then N GET of
# 16-byte values over 10,000 random keys; and N_KEYS sequential awaited
# `KEYS *` on an empty database, connect included (the seed library's
# table). The server runs on CPU 0 (taskset); each client runs on CPU 1
# ("separate") and on CPU 0 ("same"). Runs are interleaved -- every round
# goes through all clients in turn -- and each cell is the median of REPEAT
# rounds. bench/compare.py prints the Markdown tables and draws
# docs/img/compare-{ops,cpu,cdf}.png with gnuplot (gnuplot-nox).
#
# Environment (defaults in brackets):
#   W_LIST ["1 16 128"]  N_W1 [10000] (N at W = 1)  N_PIPE [50000] (W > 1)
#   N_KEYS [2000]  REPEAT [3]  PLACEMENTS ["separate same"]
#   IMPLS ["aredis aredis-sync hiredis redis-benchmark ioredis"]
#   BUILD_DIR [build-compare] (Release)  IMG_DIR [docs/img]
#   OUT_DIR [a temporary directory, removed]  NICE [10]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$root/build-compare}
W_LIST=${W_LIST:-"1 16 128"}
N_W1=${N_W1:-10000}
N_PIPE=${N_PIPE:-50000}
N_KEYS=${N_KEYS:-2000}
REPEAT=${REPEAT:-3}
PLACEMENTS=${PLACEMENTS:-"separate same"}
IMPLS=${IMPLS:-"aredis aredis-sync hiredis redis-benchmark ioredis"}
IMG_DIR=${IMG_DIR:-$root/docs/img}
NICE=${NICE:-10}
DATASIZE=16
KEYSPACE=10000
SERVER_CPU=0

die() { echo "compare.sh: $*" >&2; exit 1; }
for tool in redis-server redis-cli redis-benchmark taskset cmake python3 gnuplot; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh test)"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs for the separate placement"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aredis-compare.XXXXXX")
out=${OUT_DIR:-$tmp/out}
raw=$out/raw
mkdir -p "$raw"
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

# ---- build (Release) --------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
nice -n "$NICE" cmake --build "$build" -j2 --target aredis-benchmark hiredis_bench >/dev/null
aredis_bin=$build/tools/aredis-benchmark
hiredis_bin=$build/bench/hiredis_bench
[ -x "$aredis_bin" ] && [ -x "$hiredis_bin" ] ||
  die "the benchmark programs were not built (libhiredis-dev, libevent-dev?)"

# ---- ioredis, from npm into a scratch folder -------------------------------
want_ioredis=0
case " $IMPLS " in *" ioredis "*) want_ioredis=1 ;; esac
if [ $want_ioredis = 1 ]; then
  if command -v npm >/dev/null && command -v node >/dev/null &&
     (cd "$tmp" && mkdir -p node && cd node &&
      timeout 180 npm install --no-audit --no-fund --silent ioredis >/dev/null 2>&1); then
    export NODE_PATH=$tmp/node/node_modules
    echo "compare.sh: ioredis $(node -p 'require("ioredis/package.json").version') from npm"
  else
    echo "compare.sh: note: ioredis skipped (npm or node missing, or the install failed)"
    IMPLS=${IMPLS//ioredis/}
  fi
fi

# ---- the server -------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mkdir -p "$tmp/redis"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 20000))
  port_free "$port" || continue
  taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 \
    --save '' --appendonly no --dir "$tmp/redis" --logfile "$tmp/redis/log" &
  server_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break 2
    sleep 0.1
  done
  kill "$server_pid" 2>/dev/null || true
  server_pid=""
done
[ -n "$server_pid" ] || die "could not start redis-server"
server_version=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')

# ---- one run ------------------------------------------------------------------
# run_one FILE_BASE CPU IMPL ARGS...: the client pinned to CPU, its output
# in FILE_BASE.json (our programs) or .txt + .cpu (redis-benchmark).
cpu_of() { # FILE CMD...: run CMD, write its CPU seconds (user+sys) to FILE
  python3 -c 'import resource,subprocess,sys
rc = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%f\n" % (u.ru_utime + u.ru_stime))
sys.exit(rc)' "$@"
}
pin() { local cpu=$1; shift; nice -n "$NICE" taskset -c "$cpu" "$@"; }
run_one() {
  local base=$1 cpu=$2 impl=$3
  shift 3
  case $impl in
    aredis) pin "$cpu" "$aredis_bin" -p "$port" --json "$@" >"$base.json" ;;
    aredis-sync) pin "$cpu" "$aredis_bin" -p "$port" --sync --json "$@" >"$base.json" ;;
    hiredis) pin "$cpu" "$hiredis_bin" -p "$port" --json "$@" >"$base.json" ;;
    ioredis) pin "$cpu" node "$root/bench/ioredis_bench.js" -p "$port" "$@" >"$base.json" ;;
    redis-benchmark) cpu_of "$base.cpu" taskset -c "$cpu" nice -n "$NICE" \
        redis-benchmark -p "$port" "$@" >"$base.txt" 2>&1 ;;
  esac
}

n_of() { if [ "$1" = 1 ]; then echo "$N_W1"; else echo "$N_PIPE"; fi; }
cpu_for() { if [ "$1" = separate ]; then echo 1; else echo "$SERVER_CPU"; fi; }

t0=$(date +%s)
for rep in $(seq "$REPEAT"); do
  for place in $PLACEMENTS; do
    cpu=$(cpu_for "$place")
    for w in $W_LIST; do
      n=$(n_of "$w")
      for impl in $IMPLS; do
        base=$raw/$place.$impl.w$w.r$rep
        case $impl in
          aredis-sync) [ "$w" = 1 ] || continue
            run_one "$base" "$cpu" "$impl" -c 1 -n "$n" -d $DATASIZE -r $KEYSPACE -t set,get ;;
          redis-benchmark)
            run_one "$base" "$cpu" "$impl" -c 1 -n "$n" -P "$w" -d $DATASIZE -r $KEYSPACE -t set,get ;;
          *) run_one "$base" "$cpu" "$impl" -c 1 -P "$w" -n "$n" -d $DATASIZE -r $KEYSPACE -t set,get ;;
        esac
      done
    done
    # The KEYS * table: database 9 stays empty.
    for impl in $IMPLS; do
      base=$raw/keys.$place.$impl.r$rep
      case $impl in
        redis-benchmark) run_one "$base" "$cpu" "$impl" -c 1 -n "$N_KEYS" --dbnum 9 KEYS '*' ;;
        *) run_one "$base" "$cpu" "$impl" -c 1 -n "$N_KEYS" --dbnum 9 -t keys ;;
      esac
    done
  done
  echo "compare.sh: round $rep of $REPEAT done ($(($(date +%s) - t0)) s)"
done

# ---- tables and plots ------------------------------------------------------------
{
  echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))," \
    "$(. /etc/os-release && echo "$PRETTY_NAME"), redis-server $server_version;" \
    "server on CPU $SERVER_CPU; medians of $REPEAT rounds."
  echo
  python3 "$root/bench/compare.py" "$raw" "$IMG_DIR"
} | tee "$out/tables.md"
[ -n "${OUT_DIR:-}" ] && echo "compare.sh: raw results in $raw"
exit 0
