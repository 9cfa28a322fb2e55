#!/usr/bin/env bash
# tests/docs/run-docs.sh PAGE.md - compile every ```c block of a page, and
# run the complete programs among them (CTest docs.<page>, label docs).
#
# The blocks are extracted when the test runs (extract.awk), so a block
# added to a page is tested without reconfiguring. For each block:
#   - with a main(): a complete program. It is compiled with the project's
#     warnings (-Werror) against the static library, and run with REDIS_URL
#     set to the test server (a program must read it: getenv("REDIS_URL"));
#     it must exit 0 within DOCS_RUN_TIMEOUT seconds (30).
#   - without: a fragment. fragment.awk keeps its `static`/`typedef`/`#`
#     items at file scope and puts the rest in a function body; fragment.h
#     declares the names fragments use freely (loop, c, client, ud, r, p,
#     st, s, url, key, val, vlen), and a "<!-- doc-test ... -->" comment
#     right before the block adds declarations of its own. It is compiled
#     (-fsyntax-only), not run.
#   - opened with ```c hiredis: a hiredis program (the "before" of a
#     migration). It is compiled and linked with hiredis (pkg-config) and
#     run with REDIS_HOST and REDIS_PORT set to the test server; skipped
#     with a note when libhiredis-dev is not installed.
# Diagnostics point at the page's own lines (#line).
#
# Environment (set by tests/CMakeLists.txt): DOCS_CC, DOCS_CFLAGS (include
# paths, sanitizer flags), DOCS_LIBS (the static library and its private
# dependencies), DOCS_WORK (scratch directory), AREDIS_TEST_STATE (the
# server's state file).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
page=$1
name=$(basename "$page" .md)
work=$DOCS_WORK/$name
rm -rf "$work"
mkdir -p "$work"
read -r -a cflags <<<"$DOCS_CFLAGS"
read -r -a libs <<<"$DOCS_LIBS"
port=$(sed -n 's/^port=//p' "$AREDIS_TEST_STATE")
export REDIS_URL=redis://127.0.0.1:$port/2
export REDIS_HOST=127.0.0.1 REDIS_PORT=$port

awk -v out="$work" -f "$here/extract.awk" "$page"
# Programs: the project's warnings, except for unused parameters, which
# callbacks in examples routinely have.
prog_warn=(-Wall -Wextra -Wno-unused-parameter -Wstrict-prototypes
           -Wwrite-strings -Wshadow -Wformat=2 -Werror)
# Fragments are pieces: what they declare may stay unused, and they may
# re-declare a name fragment.h has.
frag_warn=(-Wall -Wextra -Werror -Wno-unused-parameter -Wno-unused-variable
           -Wno-unused-function -Wno-unused-but-set-variable
           -Wno-unused-value)

n=0 failed=0 programs=0
for block in "$work"/block-*.c; do
  [ -e "$block" ] || break
  n=$((n + 1))
  base=${block%.c}
  first=$(cat "$base.line")
  where="$page:$first"
  extra=()
  if [ -e "$base.hiredis" ]; then
    if ! pkg-config --exists hiredis 2>/dev/null; then
      echo "skip $where: a hiredis program (libhiredis-dev is not installed)"
      continue
    fi
    read -r -a extra <<<"$(pkg-config --cflags --libs hiredis)"
  fi
  if grep -Eq '(^|[^A-Za-z0-9_])main[[:space:]]*\(' "$block"; then
    programs=$((programs + 1))
    { echo "#line $first \"$page\""; cat "$block"; } >"$base.prog.c"
    if ! "$DOCS_CC" -std=c11 "${prog_warn[@]}" "${cflags[@]}" \
        -o "$base.prog" "$base.prog.c" "${libs[@]}" ${extra[@]+"${extra[@]}"} \
        2>"$base.log"; then
      echo "FAIL $where: the program does not compile:"; cat "$base.log"
      failed=$((failed + 1)); continue
    fi
    rc=0
    (cd "$work" && timeout "${DOCS_RUN_TIMEOUT:-30}" "$base.prog") \
      >"$base.out" 2>&1 || rc=$?
    if [ $rc != 0 ]; then
      echo "FAIL $where: the program exited with status $rc" \
           "$([ $rc = 124 ] && echo "(timed out: it never returned)")"
      cat "$base.out"
      failed=$((failed + 1)); continue
    fi
    echo "ok   $where: program (ran, exit 0)"
  else
    {
      echo '#include "fragment.h"'
      if [ -e "$base.ctx" ]; then
        echo "#line $((first - 1)) \"$page\""
        cat "$base.ctx"
      fi
      awk -v page="$page" -v first="$first" -f "$here/fragment.awk" "$block"
    } >"$base.frag.c"
    if ! "$DOCS_CC" -std=c11 -fsyntax-only "${frag_warn[@]}" "${cflags[@]}" \
        -I"$here" "$base.frag.c" 2>"$base.log"; then
      echo "FAIL $where: the fragment does not compile" \
           "(as $base.frag.c):"
      cat "$base.log"
      failed=$((failed + 1)); continue
    fi
    echo "ok   $where: fragment (compiles)"
  fi
done
echo "$page: $n C blocks ($programs programs), $failed failed"
[ $failed = 0 ]
