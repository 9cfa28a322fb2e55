#!/usr/bin/env bash
# bench/client_cache.sh - the client-side caching benchmark recipe (C1 hits
# against plain GETs, C3 invalidation latency with a writer process, C5
# memory over many distinct keys), on one throwaway redis-server over
# loopback.
#
#   bench/client_cache.sh          (from the repository root or anywhere)
#
# It builds bench_client_cache in $BUILD_DIR (Release) if needed, starts
# redis-server on a free loopback port (no persistence, its own temporary
# directory, stopped on exit; pinned to CPU 0 and the client to CPU 1 when
# the machine has two), and runs bench_client_cache at nice 10 for RUNS
# rounds, on RESP3 and then (C3 only) on RESP2 REDIRECT.
#
# Environment (defaults in brackets):
#   N [1000000]  RUNS [3]  REPS [200]  KEYS [1000000]  BUILD_DIR [build-bench]
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init client_cache.sh
bench_build bench_client_cache
bench_pin
bench_server
bench_banner
nice -n 10 "${client_cpu[@]}" "$bin" --port "$port" --n "${N:-1000000}" \
    --runs "${RUNS:-3}" --reps "${REPS:-200}" --keys "${KEYS:-1000000}"
nice -n 10 "${client_cpu[@]}" "$bin" --port "$port" --protocol 2 --n 0 \
    --runs "${RUNS:-3}" --reps "${REPS:-200}" --keys 0
