#!/usr/bin/env bash
# scripts/check-style.sh - the style checks that scripts/test.sh runs.
#
#   1. clang-format (--dry-run -Werror, .clang-format) on every .c/.h file in
#      include/ src/ tests/ fuzz/ bench/ examples/ tools/ and the top directory;
#   2. a grep for banned C functions in src/ (unbounded or error-blind ones);
#   3. clang-tidy (.clang-tidy) on src/**/*.c with the compile commands of
#      build-test/ (override with BUILD_DIR=...); the build dir is configured
#      first if it has no compile_commands.json yet.
#
# Every check runs even when an earlier one fails; the failing files are
# listed and the exit status is non-zero. Fix formatting with:
#   clang-format -i <file>
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build_dir=${BUILD_DIR:-build-test}
failed=()

# The files: everything tracked-looking, never a build directory.
mapfile -t files < <(
  { find include src tests fuzz bench examples tools -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null
    find . -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' \); } |
    sed 's|^\./||' | LC_ALL=C sort)

# ---- 1. clang-format
echo "check-style: clang-format on ${#files[@]} files"
bad_format=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    bad_format+=("$f")
  fi
done
if [ ${#bad_format[@]} -gt 0 ]; then
  echo "check-style: FAIL: not clang-formatted (run clang-format -i on them):"
  printf '  %s\n' "${bad_format[@]}"
  # Show the first few differences, so a CI log explains itself.
  for f in "${bad_format[@]:0:3}"; do
    clang-format --dry-run "$f" 2>&1 | head -n 12 || true
  done
  failed+=(clang-format)
fi

# ---- 2. banned functions in the library
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\('
echo "check-style: banned functions in src/"
hits=$(grep -rnE --include='*.c' --include='*.h' "$banned" src || true)
if [ -n "$hits" ]; then
  echo "check-style: FAIL: banned functions (use snprintf, memcpy with a length, strtol...):"
  echo "$hits" | sed 's/^/  /'
  failed+=(banned-functions)
fi

# ---- 3. clang-tidy on the library sources
if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "check-style: configuring $build_dir for its compile_commands.json"
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Debug >/dev/null
fi
mapfile -t tidy_files < <(find src -type f -name '*.c' | LC_ALL=C sort)
echo "check-style: clang-tidy on ${#tidy_files[@]} files in src/"
tidy_log=$(mktemp)
trap 'rm -f "$tidy_log"' EXIT
# Two at a time (the machine has 2 cores); each file's output stays together.
# The compile commands come from gcc: a gcc-only warning flag must not count
# as a finding.
if ! printf '%s\n' "${tidy_files[@]}" |
  xargs -P 2 -I{} sh -c 'out=$(clang-tidy --quiet --extra-arg=-Wno-unknown-warning-option -p "$1" "$2" 2>&1) || { printf "%s\n" "$out"; exit 1; }' \
    sh "$build_dir" {} >"$tidy_log"; then
  echo "check-style: FAIL: clang-tidy:"
  grep -v '^[0-9]* warnings\? generated\.$' "$tidy_log" | sed 's/^/  /' | head -n 200
  failed+=(clang-tidy)
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "check-style: FAILED: ${failed[*]}"
  exit 1
fi
echo "check-style: all checks passed"
