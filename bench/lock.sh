#!/usr/bin/env bash
# bench/lock.sh - the lock benchmark recipe (bench_lock, docs/guide/locks.md):
# a throwaway redis-server on a free loopback port, then
#   L3  acquire+release cycles/s against hiredis doing 2 PINGs per cycle, in
#       the same run, W locks (or PING chains) in flight, W in $W_LIST;
#       rounds interleave the implementations; the median of $REPEAT rounds
#       and the ratio of the medians are printed;
#   L2  hand-off latency (release call to the waiter's callback), $REPEAT
#       runs of 30; and 4 processes x $CONTEND_N increments under the lock,
#       not fair and fair: count, longest wait, finish spread.
#
#   bench/lock.sh              (build-bench/ is built if needed)
#
# Environment: N [100000] cycles per run, W_LIST ["1 16"], REPEAT [3],
# CONTEND_N [1000], NICE [10], BUILD_DIR [build-bench].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${N:-100000}
w_list=${W_LIST:-"1 16"}
repeat=${REPEAT:-3}
contend_n=${CONTEND_N:-1000}
nice_n=${NICE:-10}
build=${BUILD_DIR:-build-bench}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAREDIS_BUILD_TESTS=OFF \
  -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_lock >/dev/null
bin=$build/bench/bench_lock

dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       shuf -i 20000-60000 -n 1)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
run() { nice -n "$nice_n" "$bin" --port "$port" "$@"; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
field() { sed -n "s|.*$1=\([0-9.]*\).*|\1|p"; }

echo "# L3: acquire+release cycles/s vs 2 PINGs per cycle (hiredis), n=$n, median of $repeat"
for w in $w_list; do
  : >"$dir/a" && : >"$dir/h"
  for _ in $(seq "$repeat"); do
    run --mode cycles --impl aredis --n "$n" --w "$w" | field 'cycles/s' >>"$dir/a"
    run --mode cycles --impl hiredis --n "$n" --w "$w" | field 'cycles/s' >>"$dir/h"
  done
  a=$(median <"$dir/a") h=$(median <"$dir/h")
  echo "W=$w  aredis lock $a/s  hiredis 2xPING $h/s  ratio $(awk "BEGIN {printf \"%.2f\", $a / $h}")  (runs: $(tr '\n' ' ' <"$dir/a")| $(tr '\n' ' ' <"$dir/h"))"
done

echo "# L2: hand-off by notification, 30 repetitions per run"
for _ in $(seq "$repeat"); do run --mode handoff --n 30; done
echo "# L2/L5: 4 processes x $contend_n increments under the lock (fencing on)"
for fair in 0 1; do
  for _ in $(seq "$repeat"); do run --mode contend --n "$contend_n" --procs 4 --fair "$fair"; done
done
