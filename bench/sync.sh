#!/usr/bin/env bash
# bench/sync.sh - the blocking-client recipe: aredis_sync_command() against
# hiredis's redisCommand(), N sequential SETs each, on a throwaway
# redis-server over loopback. Prints, per implementation, the wall time
# and the allocations per command (bench_sync counts them at the C
# library), then the system calls per command in the steady state:
# (calls(N=2*STRACE_N) - calls(N=STRACE_N)) / STRACE_N under strace -c -f.
#
#   bench/sync.sh [N]          (build-bench/ is built if needed)
#
# Environment: BUILD_DIR [build-bench], STRACE_N [20000].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-100000}
sn=${STRACE_N:-20000}
build=${BUILD_DIR:-build-bench}
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAREDIS_BUILD_TESTS=OFF \
    -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
fi
cmake --build "$build" -j2 --target bench_sync >/dev/null
bin=$build/bench/bench_sync
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
echo "# $n sequential SETs (16-byte value), server on 127.0.0.1:$port"
for impl in aredis hiredis; do
  "$bin" --impl "$impl" --n "$n" --port "$port"
done
if command -v strace >/dev/null; then
  echo "# system calls per command, steady state (strace -c -f, N=$sn and $((2 * sn)))"
  for impl in aredis hiredis; do
    for k in 1 2; do
      strace -c -f -o "$dir/strace.$k" "$bin" --impl "$impl" --n $((k * sn)) \
        --port "$port" >/dev/null
    done
    awk -v d="$sn" -v impl="$impl" '
      FNR == 1 { file++ }
      /^-/ || /^%/ || NF < 5 { next }
      { c[file, $NF] = $4; names[$NF] = 1 }
      END {
        line = ""
        for (s in names) {
          v = (c[2, s] - c[1, s]) / d
          if (s == "total") tot = v
          else if (v >= 0.005) line = line sprintf(" %s=%.3f", s, v)
        }
        printf "impl=%s syscalls_per_op=%.3f%s\n", impl, tot, line
      }' "$dir/strace.1" "$dir/strace.2"
  done
fi
