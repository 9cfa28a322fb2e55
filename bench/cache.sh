#!/usr/bin/env bash
# bench/cache.sh - the cache benchmark recipe: cached get/set (and herd
# reads) against plain GET/SET on the same aredis connection, on one
# throwaway redis-server over loopback.
#
#   bench/cache.sh          (from the repository root or anywhere)
#
# It builds bench_cache in $BUILD_DIR (Release) if needed, starts
# redis-server on a free loopback port (no persistence, its own temporary
# directory, stopped on exit; pinned to CPU 0 and the client to CPU 1 when
# the machine has two), and runs bench_cache at nice 10, which interleaves
# the modes for RUNS rounds and prints the medians and the ratios.
#
# Environment (defaults in brackets):
#   N [20000]  RUNS [5]  SIZE [100]  BUILD_DIR [build-bench]
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init cache.sh
bench_build bench_cache
bench_pin
bench_server
bench_banner
nice -n 10 "${client_cpu[@]}" "$bin" --port "$port" --n "${N:-20000}" \
    --runs "${RUNS:-5}" --size "${SIZE:-100}"
