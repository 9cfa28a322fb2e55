#!/usr/bin/env bash
# scripts/debs.sh - build the Debian packages and use them as a user would.
#
#   scripts/debs.sh [--quick] [--out DIR]
#
#   1. copies the source tree (tracked and new files, not ignored ones) into
#      a temporary directory and runs `dpkg-buildpackage -us -uc -b` there,
#      so the repository stays clean: libaredis0, libaredis-dev,
#      aredis-tools (debian/);
#   2. lintian on the result: any error (E:) fails; skipped by --quick;
#   3. unpacks the packages into a scratch root (dpkg -x, no root needed)
#      and checks what each one holds (SONAME link, symbols and shlibs,
#      headers, static library, pkg-config file, CMake package, the tool);
#   4. compiles examples/getting_started.c against the unpacked packages
#      through pkg-config, shared and --static, and runs both, and the
#      packaged aredis-benchmark, against a throwaway redis-server on a
#      free loopback port (stopped on exit).
# --out DIR keeps the .deb files there. Everything else is removed on exit.
# scripts/test.sh runs this as its own step; it takes about a minute.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=0
out=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "debs.sh: $*" >&2; exit 1; }
for tool in dpkg-buildpackage dh dpkg-deb pkg-config redis-server cc; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/deps.sh test)"
done
[ $quick = 1 ] || command -v lintian >/dev/null ||
  die "lintian not found (scripts/deps.sh test), or use --quick"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/aredis-debs.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- 1. build out of tree -------------------------------------------------
version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
src=$tmp/build/aredis-$version
mkdir -p "$src"
(cd "$root" && git ls-files -co --exclude-standard -z |
  xargs -0 tar -cf - --no-recursion 2>/dev/null) | tar -xf - -C "$src"
echo "debs.sh: dpkg-buildpackage -us -uc -b in $src"
log=$tmp/build/build.log
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2} nocheck" \
        dpkg-buildpackage -us -uc -b >"$log" 2>&1); then
  tail -n 40 "$log"
  die "dpkg-buildpackage failed"
fi
# dpkg-gensymbols warns when the library's symbols differ from the file.
if grep -q 'dpkg-gensymbols: warning' "$log"; then
  echo "debs.sh: note: debian/libaredis0.symbols is not up to date:"
  sed -n '/dpkg-gensymbols: warning/,/^ dh_/p' "$log" | grep '^[+-] ' | head -n 20
fi
debs=("$tmp"/build/*.deb)
changes=("$tmp"/build/*.changes)
for p in libaredis0 libaredis-dev aredis-tools; do
  [ -e "$tmp/build/${p}_${version}_$(dpkg --print-architecture).deb" ] ||
    die "no $p package was built"
done
echo "debs.sh: built $(cd "$tmp/build" && ls -- *.deb | tr '\n' ' ')"
if [ -n "$out" ]; then
  mkdir -p "$out"
  cp "${debs[@]}" "$out"/
fi

# ---- 2. lintian -------------------------------------------------------------
if [ $quick = 0 ]; then
  lint=$tmp/lintian.txt
  lintian --allow-root "${changes[0]}" >"$lint" 2>&1 || true
  if grep -q '^E: ' "$lint"; then
    cat "$lint"
    die "lintian reports errors"
  fi
  echo "debs.sh: lintian: no errors ($(grep -c '^W: ' "$lint" || true) warnings)"
  grep '^W: ' "$lint" | sed 's/^/  /' || true
fi

# ---- 3. unpack and look -------------------------------------------------------
sysroot=$tmp/root
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg --print-architecture)
for p in libaredis0 libaredis-dev aredis-tools; do
  dpkg -x "$tmp/build/${p}_${version}_$arch.deb" "$sysroot"
done
want=(
  "usr/lib/$ma/libaredis.so.0"
  "usr/lib/$ma/libaredis.so"
  "usr/lib/$ma/libaredis.a"
  "usr/lib/$ma/pkgconfig/aredis.pc"
  "usr/lib/$ma/cmake/aredis/aredisConfig.cmake"
  "usr/lib/$ma/cmake/aredis/aredisTargets.cmake"
  "usr/include/aredis/aredis.h"
  "usr/include/aredis/adapters/libuv.h"
  "usr/bin/aredis-benchmark"
  "usr/share/man/man1/aredis-benchmark.1.gz"
)
for f in "${want[@]}"; do
  [ -e "$sysroot/$f" ] || die "$f is in no package"
done
ctl=$tmp/ctl
dpkg-deb -e "$tmp/build/libaredis0_${version}_$arch.deb" "$ctl"
grep -q '^libaredis.so.0 libaredis0 #MINVER#' "$ctl/symbols" || die "no symbols file"
grep -q '^\* Build-Depends-Package: libaredis-dev' "$ctl/symbols" ||
  die "the symbols file is not debian/libaredis0.symbols"
grep -q '^libaredis 0 libaredis0 (>= ' "$ctl/shlibs" || die "no shlibs entry"
tool_deps=$(dpkg-deb -f "$tmp/build/aredis-tools_${version}_$arch.deb" Depends)
[[ $tool_deps == *libaredis0* ]] || die "aredis-tools does not depend on libaredis0"
echo "debs.sh: the packages hold what they should; shlibs: $(cat "$ctl/shlibs")"

# ---- 4. build and run against them ------------------------------------------
export PKG_CONFIG_PATH=$sysroot/usr/lib/$ma/pkgconfig
pc=(pkg-config --define-variable=prefix="$sysroot/usr")
app=$tmp/app
mkdir -p "$app"
# shellcheck disable=SC2046
cc -o "$app/shared" "$root/examples/getting_started.c" \
  $("${pc[@]}" --cflags --libs aredis)
# shellcheck disable=SC2046
cc -static-libgcc -o "$app/static" "$root/examples/getting_started.c" \
  $("${pc[@]}" --cflags aredis) "$sysroot/usr/lib/$ma/libaredis.a" \
  $("${pc[@]}" --static --libs-only-other --libs-only-l aredis | sed 's/-laredis//')
export LD_LIBRARY_PATH=$sysroot/usr/lib/$ma
# Capture, then match: under pipefail, grep -q quitting early could fail
# the pipeline by chance (SIGPIPE in ldd).
deps=$(ldd "$app/shared")
[[ $deps == *"$sysroot/usr/lib/$ma/libaredis.so.0"* ]] ||
  die "the program does not load the packaged libaredis.so.0"
deps=$(ldd "$app/static")
[[ $deps != *libaredis* ]] || die "the static build still loads libaredis.so"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
mkdir -p "$tmp/redis"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$((20000 + RANDOM % 20000))
  port_free "$port" || continue
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp/redis" --logfile "$tmp/redis/log" &
  server_pid=$!
  for _ in $(seq 50); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break 2
    sleep 0.1
  done
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
done
[ -n "$server_pid" ] || die "could not start redis-server"

"$app/shared" "redis://127.0.0.1:$port/1" >"$app/shared.out" ||
  { cat "$app/shared.out"; die "the shared build failed"; }
"$app/static" "redis://127.0.0.1:$port/2" >"$app/static.out" ||
  { cat "$app/static.out"; die "the static build failed"; }
"$sysroot/usr/bin/aredis-benchmark" -p "$port" -n 2000 -c 2 -P 8 -t set,get \
  --csv >"$app/bench.csv" || die "the packaged aredis-benchmark failed"
[ "$(grep -c ',2000,0,' "$app/bench.csv")" = 2 ] ||
  { cat "$app/bench.csv"; die "aredis-benchmark: unexpected results"; }
echo "debs.sh: examples/getting_started (shared and static) and" \
  "aredis-benchmark ran against the packages: ok"
