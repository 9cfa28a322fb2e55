#!/usr/bin/env bash
# bench/pubsub.sh - the pub/sub benchmark recipe: a throwaway redis-server
# on a free loopback port, then bench_pubsub for aredis (RESP3 and RESP2)
# and hiredis async on libevent, 1M messages of 16 bytes by default.
#
#   bench/pubsub.sh [N]        (build-bench/ is built if needed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-1000000}
build=${BUILD_DIR:-build-bench}
if [ ! -x "$build/bench/bench_pubsub" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAREDIS_BUILD_TESTS=OFF \
    -DAREDIS_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j2 --target bench_pubsub >/dev/null
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
       shuf -i 20000-60000 -n 1)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$dir" --logfile "$dir/redis.log" \
  --client-output-buffer-limit "pubsub 0 0 0" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 200); do
  [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
echo "# $n messages of 16 bytes, one subscriber, server on 127.0.0.1:$port"
"$build"/bench/bench_pubsub --port "$port" --n "$n" --protocol 3
"$build"/bench/bench_pubsub --port "$port" --n "$n" --protocol 2 --impl aredis
