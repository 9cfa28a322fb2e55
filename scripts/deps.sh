#!/usr/bin/env bash
# scripts/deps.sh - install the Debian 12 packages aredis needs, if missing.
#
#   scripts/deps.sh run     what the demo needs: compiler, CMake, OpenSSL,
#                           event-library and compression (zlib, zstd, lz4)
#                           headers, redis-server, redis-tools
#   scripts/deps.sh test    everything: also clang + libFuzzer, Criterion,
#                           hiredis (benchmarks), sentinel, valgrind, tidy,
#                           debhelper + lintian (packages), gnuplot-nox,
#                           the Python package's build and tests (python3-dev,
#                           setuptools, pytest, pytest-asyncio, uvloop) and
#                           its benchmark peer (python3-redis, -hiredis)...
#   scripts/deps.sh bench   the test profile plus Node.js and npm, with which
#                           bench/compare.sh and bench/cluster.sh install
#                           their Node.js peers (npm is left out when an npm
#                           command exists already: some nodejs builds ship
#                           their own, and Debian's npm conflicts with them)
#
# Packages are checked with dpkg-query first; when all are present, apt is not
# touched at all. Missing ones are installed with apt-get (noninteractive), as
# root directly or through sudo. Without either, the missing packages are
# listed and the script fails. AREDIS_SKIP_DEPS=1 skips the whole step.
#
# Installing redis-server must not leave a system redis running on port 6379
# (the tests never use it, and it would outlive us), so while apt runs a
# policy-rc.d that forbids service starts is put in place if none exists.
set -euo pipefail

profile=${1:-test}

run_pkgs=(build-essential cmake pkg-config libssl-dev libuv1-dev
          libevent-dev libev-dev zlib1g-dev libzstd-dev liblz4-dev
          redis-server redis-tools)
test_pkgs=("${run_pkgs[@]}" clang libclang-rt-14-dev libcriterion-dev
           libhiredis-dev redis-sentinel valgrind clang-format clang-tidy
           openssl ca-certificates debhelper lintian gnuplot-nox python3
           python3-dev python3-setuptools python3-pip python3-venv
           python3-pytest python3-pytest-asyncio python3-uvloop
           python3-redis python3-hiredis)

bench_pkgs=("${test_pkgs[@]}" nodejs)
command -v npm >/dev/null 2>&1 || bench_pkgs+=(npm)

case $profile in
  run) wanted=("${run_pkgs[@]}") ;;
  test) wanted=("${test_pkgs[@]}") ;;
  bench) wanted=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

if [ "${AREDIS_SKIP_DEPS:-0}" = 1 ]; then
  echo "deps: skipped (AREDIS_SKIP_DEPS=1)"
  exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  # Not Debian: we cannot check, so say what is needed and let the build try.
  echo "deps: dpkg-query not found (not a Debian system); make sure these" \
       "(or your system's equivalents) are installed:" >&2
  echo "  ${wanted[*]}" >&2
  exit 0
fi

missing=()
for p in "${wanted[@]}"; do
  # Capture rather than pipe into grep: under pipefail an early grep exit
  # would make the pipeline fail at random.
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#wanted[@]} packages of the '$profile' profile are installed"
  exit 0
fi

echo "deps: missing: ${missing[*]}"

# Run a command as root: directly, or through sudo when we are not root.
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "deps: not root and sudo is not available. Install them as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
as_root() { "${sudo_cmd[@]}" "$@"; }

# Forbid service starts while apt runs (see the header), unless the machine
# already has its own policy; remove ours again however we exit.
policy=/usr/sbin/policy-rc.d
our_policy=0
cleanup_policy() {
  if [ $our_policy = 1 ]; then as_root rm -f "$policy"; fi
}
trap cleanup_policy EXIT
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# Temporary, from aredis scripts/deps.sh.\nexit 101\n' |
    as_root tee "$policy" >/dev/null
  as_root chmod 755 "$policy"
  our_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}"

echo "deps: installed ${missing[*]}"
