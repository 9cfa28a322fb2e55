#!/usr/bin/env bash
# scripts/demo.sh - THE main-job command: build aredis and run its demo.
#
#   1. deps: scripts/deps.sh run (installs only what is missing);
#   2. a release build in build/ of the library and the demo program;
#   3. a throwaway redis-server on a free 127.0.0.1 port, unless REDIS_URL
#      is set (redis://host:port), in which case that server is used;
#   4. build/examples/$demo against it; the server is stopped on exit,
#      whatever happens (trap).
# The demo is examples/getting_started.c: the asynchronous client on the
# built-in loop running FLUSHDB, SET, EXISTS, INCRBY, GET, EXPIRE, TTL, a
# sleep and EXISTS, printing each step. It FLUSHES the database in the URL:
# point REDIS_URL at a scratch database (redis://host:port/15).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The demo program (an examples/ target); it takes the server URL as argv[1].
demo=getting_started

bash scripts/deps.sh run

echo "demo: building (release) in build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DAREDIS_BUILD_TESTS=OFF -DAREDIS_BUILD_BENCH=OFF -DAREDIS_BUILD_EXAMPLES=ON >/dev/null
# Just the demo and what it links (the library): the test command builds
# everything else.
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target "$demo" >/dev/null

url=${REDIS_URL:-}
if [ -z "$url" ]; then
  # Our own server, owned by this script: tests/support/redis-server.sh
  # also stops it if this script dies without running the trap.
  export AREDIS_TEST_STATE_DIR=$PWD/build/demo-server
  stop_server() { bash tests/support/redis-server.sh stop demo 2>/dev/null || true; }
  trap stop_server EXIT
  if ! out=$(AREDIS_TEST_OWNER_PID=$$ bash tests/support/redis-server.sh start demo 2>&1); then
    echo "$out" >&2
    echo "demo: could not start redis-server (set REDIS_URL to use another server)" >&2
    exit 1
  fi
  port=$(sed -n 's/^port=//p' "$AREDIS_TEST_STATE_DIR/demo.state")
  url="redis://127.0.0.1:$port"
  echo "demo: started a throwaway redis-server at $url"
else
  echo "demo: using REDIS_URL=$url"
fi

"./build/examples/$demo" "$url"
