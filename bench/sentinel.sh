#!/usr/bin/env bash
# bench/sentinel.sh - the Sentinel benchmark recipe (bench_sentinel,
# docs/guide/sentinel.md): for each scenario, $REPEAT runs, each on a fresh
# throwaway set-up (1 master, 2 replicas, 3 sentinels on loopback, down-after
# $DOWN_AFTER ms) started and stopped by tests/support/redis-sentinel.sh:
#   s1  kill -9 of the master while writing 500 SET/s
#   s2  SENTINEL FAILOVER while writing 500 SET/s (acked-but-lost)
#   s3  SIGSTOP of the master while writing 500 SET/s
#   s4  first SET with sentinel 1 hung (SIGSTOP), then with it killed
#   s5  replica reads: the split over 2 replicas, kill -9 of one
# One line of figures per run. With PEERS=1, redis-py (Debian's python3-redis,
# bench/sentinel_redispy.py) runs s1, s2 and s4 the same way, on set-ups of
# its own.
#
#   bench/sentinel.sh [s1 s2 ...]      (build-bench/ is built if needed)
#
# Environment: REPEAT [3], DOWN_AFTER [1000], PEERS [0], BUILD_DIR [build-bench].
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repeat=${REPEAT:-3}
down_after=${DOWN_AFTER:-1000}
build=${BUILD_DIR:-build-bench}
peers=${PEERS:-0}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(s1 s2 s3 s4 s5)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAREDIS_BUILD_TESTS=OFF \
  -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j2 --target bench_sentinel >/dev/null
bin=$build/bench/bench_sentinel

export AREDIS_TEST_STATE_DIR
AREDIS_TEST_STATE_DIR=$(mktemp -d)
export AREDIS_TEST_OWNER_PID=$$
name=bench-sentinel-$$
setup() { bash tests/support/redis-sentinel.sh "$@" 2>/dev/null; }
trap 'setup stop "$name" || true; rm -rf "$AREDIS_TEST_STATE_DIR"' EXIT

echo "# Sentinel failover figures, $repeat runs each, down-after ${down_after} ms"
for s in "${scenarios[@]}"; do
  for run in $(seq "$repeat"); do
    setup start "$name" --replicas 2 --down-after "$down_after" >/dev/null
    printf 'run %d ' "$run"
    "$bin" "$s" "$AREDIS_TEST_STATE_DIR/$name.state"
    setup stop "$name" >/dev/null
  done
  if [ "$peers" = 1 ] && [[ $s == s[124] ]] &&
     /usr/bin/python3 -c 'import redis' 2>/dev/null; then
    for run in $(seq "$repeat"); do
      setup start "$name" --replicas 2 --down-after "$down_after" >/dev/null
      printf 'run %d ' "$run"
      /usr/bin/python3 bench/sentinel_redispy.py "$s" \
        "$AREDIS_TEST_STATE_DIR/$name.state"
      setup stop "$name" >/dev/null
    done
  fi
done
