#!/usr/bin/env bash
# scripts/test.sh - THE test command: every test aredis has, from a fresh
# clone on a fresh Debian 12 machine.
#
#   1. deps: scripts/deps.sh test (installs only what is missing);
#   2. gcc, Debug, ASan+UBSan, -Werror in build-test/: build, then CTest
#      (-j2, output on failure): unit tests, corpus replays, and integration
#      tests against real redis-servers that CTest fixtures start and stop;
#   3. clang with libFuzzer, ASan+UBSan, -Werror in build-fuzz/: build
#      everything, then run each fuzz target for FUZZ_SECONDS (default 20) on
#      a temporary copy of its committed corpus (fuzz/corpus/<target>/ is
#      only read); any crash fails;
#   4. ThreadSanitizer in build-tsan/: the thread-safe submission scenario
#      (CTest label tsan) against a real server;
#   5. style: scripts/check-style.sh (clang-format, banned functions,
#      clang-tidy);
#   6. packages: scripts/debs.sh builds the Debian packages out of tree,
#      runs lintian, and builds and runs an example against them.
# Later steps run even if an earlier one failed, where that makes sense, and
# the summary at the end lists every step. Exit status 0 only if all passed.
#
# Environment: FUZZ_SECONDS (20), JOBS (2), AREDIS_SKIP_DEPS=1 (no deps step).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzz_seconds=${FUZZ_SECONDS:-20}
jobs=${JOBS:-2}
t_start=$(date +%s)

# Stop the sanitizers at the first problem, with a stack trace.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

results=() # "status|step|seconds|detail"
any_failed=0

# step NAME CMD...: run one step, record pass/fail and its duration.
step() {
  local name=$1 t0 rc=0
  shift
  echo
  echo "=== $name"
  t0=$(date +%s)
  "$@" || rc=$?
  local dt=$(($(date +%s) - t0))
  if [ $rc = 0 ]; then
    results+=("PASS|$name|$dt|")
  else
    results+=("FAIL|$name|$dt|exit $rc")
    any_failed=1
  fi
  return $rc
}
skip() { results+=("SKIP|$1|0|$2"); }

# ---------------------------------------------------------------- steps

gcc_configure() {
  CC=gcc cmake -S . -B build-test -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_BUILD_TYPE=Debug -DAREDIS_ASAN=ON -DAREDIS_UBSAN=ON \
    -DAREDIS_WERROR=ON
}

ctest_counts="" # "N passed, M failed" from CTest's own summary
run_ctest() {
  local log=build-test/ctest.log rc=0
  ctest --test-dir build-test --output-on-failure -j"$jobs" 2>&1 | tee "$log" || rc=$?
  # "100% tests passed, 0 tests failed out of 23"
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    ctest_counts="$((BASH_REMATCH[2] - BASH_REMATCH[1])) passed, ${BASH_REMATCH[1]} failed"
  fi
  # A run that ran nothing has not tested anything.
  if grep -q 'No tests were found' "$log"; then
    echo "test.sh: CTest found no tests" >&2
    return 1
  fi
  return $rc
}

clang_configure() {
  CC=clang cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAREDIS_BUILD_FUZZ=ON \
    -DAREDIS_ASAN=ON -DAREDIS_UBSAN=ON -DAREDIS_WERROR=ON
}

# fuzz_one TARGET: libFuzzer for fuzz_seconds. New inputs go to a temporary
# first corpus directory; the committed corpus is the second, read-only one.
# Crash artifacts land in build-fuzz/artifacts/.
fuzz_one() {
  local t=$1 bin=build-fuzz/fuzz/$1 seeds=fuzz/corpus/$1
  local work log=build-fuzz/$1.log rc=0
  [ -x "$bin" ] || { echo "test.sh: $bin was not built" >&2; return 1; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/aredis-fuzz-$t.XXXXXX")
  mkdir -p build-fuzz/artifacts
  local dirs=("$work")
  [ -d "$seeds" ] && dirs+=("$seeds")
  echo "fuzzing $t for ${fuzz_seconds}s (corpus: ${dirs[*]}, log: $log)"
  "$bin" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/"$t"- \
    "${dirs[@]}" >"$log" 2>&1 || rc=$?
  rm -rf "$work"
  if [ $rc != 0 ]; then
    echo "test.sh: $t failed (exit $rc); the end of $log:" >&2
    tail -n 60 "$log" >&2
    return $rc
  fi
  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|Done [0-9]+ runs)' "$log" | tail -n 2 || true
}

# Which fuzz targets: the list CMake has (AREDIS_FUZZ_TARGETS).
fuzz_targets() {
  sed -n 's/^set(AREDIS_FUZZ_TARGETS \(.*\))$/\1/p' CMakeLists.txt
}

# ---------------------------------------------------------------- run

step "deps (test profile)" bash scripts/deps.sh test || {
  echo "test.sh: cannot continue without the dependencies" >&2
  exit 1
}

if step "gcc ASan+UBSan: configure build-test" gcc_configure &&
   step "gcc ASan+UBSan: build" cmake --build build-test -j"$jobs"; then
  step "ctest (unit, integration, corpus replay)" run_ctest || true
else
  skip "ctest (unit, integration, corpus replay)" "build failed"
fi

if step "clang libFuzzer ASan+UBSan: configure build-fuzz" clang_configure &&
   step "clang libFuzzer ASan+UBSan: build" cmake --build build-fuzz -j"$jobs"; then
  for t in $(fuzz_targets); do
    step "fuzz $t (${fuzz_seconds}s)" fuzz_one "$t" || true
  done
else
  skip "fuzz" "build failed"
fi

# Criterion's runner cannot start under TSan, so this build only makes the
# plain TSan programs (label tsan) and the fixtures they need.
tsan_configure() {
  CC=gcc cmake -S . -B build-tsan -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_BUILD_TYPE=Debug -DAREDIS_TSAN=ON -DAREDIS_WERROR=ON \
    -DAREDIS_BUILD_BENCH=OFF -DAREDIS_BUILD_EXAMPLES=OFF
}
if step "gcc TSan: configure build-tsan" tsan_configure &&
   step "gcc TSan: build" cmake --build build-tsan -j"$jobs" --target tsan_threads; then
  step "ctest -L tsan (threads under ThreadSanitizer)" \
    ctest --test-dir build-tsan --output-on-failure -L tsan || true
else
  skip "ctest -L tsan" "build failed"
fi

step "style (clang-format, banned functions, clang-tidy)" bash scripts/check-style.sh || true

step "Debian packages (scripts/debs.sh: build, lintian, use)" bash scripts/debs.sh || true

# ---------------------------------------------------------------- summary
echo
echo "=== summary ($(($(date +%s) - t_start))s)"
n_pass=0 n_fail=0
for r in "${results[@]}"; do
  IFS='|' read -r st name dt detail <<<"$r"
  printf '  %-4s %-55s %4ss %s\n' "$st" "$name" "$dt" "$detail"
  case $st in
    PASS) n_pass=$((n_pass + 1)) ;;
    FAIL) n_fail=$((n_fail + 1)) ;;
  esac
done
[ -n "$ctest_counts" ] && echo "  ctest: $ctest_counts"
echo "steps: $n_pass passed, $n_fail failed"
exit $any_failed
