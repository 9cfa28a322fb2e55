#!/usr/bin/env bash
# python/tests/run.sh - build and test the Python package, for CTest.
#
#   run.sh build OUT            build the extension into OUT/lib, against a
#                               libaredis built without sanitizers in
#                               OUT/libaredis (an ASan-built library would
#                               need libasan preloaded into the interpreter)
#   run.sh test OUT [ARGS...]   run pytest on python/tests with OUT/lib first
#                               on the path; ARGS go to pytest
#   run.sh pip OUT              `pip install --no-index .` of a copy of
#                               python/ into a fresh virtual environment
#                               (with the system's site-packages), then a
#                               PING through the installed package
#
# Always Debian's interpreter (/usr/bin/python3, or $AREDIS_PYTHON): its
# dist-packages hold python3-pytest-asyncio, python3-uvloop and
# python3-redis, whatever python3 comes first on PATH. The servers come from
# CTest fixtures through AREDIS_TEST_STATE_DIR (see python/tests/conftest.py).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${AREDIS_PYTHON:-/usr/bin/python3}
mode=${1:?usage: run.sh build|test|pip OUT [pytest args]}
out=${2:?usage: run.sh build|test|pip OUT [pytest args]}
shift 2
export PYTHONDONTWRITEBYTECODE=1

case $mode in
  build)
    cd "$here/.."
    AREDIS_WERROR=1 AREDIS_BUILD_DIR="$out/libaredis" "$py" setup.py -q build \
      --build-base "$out/build" --build-lib "$out/lib"
    ;;
  test)
    cd "$here"
    PYTHONPATH="$out/lib" exec "$py" -m pytest -q -p no:cacheprovider \
      -o faulthandler_timeout=120 "$@"
    ;;
  pip)
    root=$(cd "$here/../.." && pwd)
    work="$out/pip"
    rm -rf "$work"
    mkdir -p "$work"
    cp -r "$here/.." "$work/src"
    rm -rf "$work/src/build" "$work/src/aredis/"*.so
    "$py" -m venv --system-site-packages "$work/venv"
    AREDIS_SOURCE_DIR="$root" AREDIS_BUILD_DIR="$out/libaredis" \
      "$work/venv/bin/pip" install -q --no-index "$work/src"
    st=$AREDIS_TEST_STATE_DIR/python.state
    [ -f "$st" ] || st=$AREDIS_TEST_STATE_DIR/standalone.state
    port=$(sed -n 's/^port=//p' "$st")
    cd "$work"
    "$work/venv/bin/python" - "$port" <<'PYEOF'
import asyncio, sys
import aredis
assert "/venv/" in aredis.__file__, aredis.__file__
async def main():
    r = aredis.StrictRedis(host="127.0.0.1", port=int(sys.argv[1]))
    assert await r.ping() is True
asyncio.run(main())
print("installed and working:", aredis.__file__)
PYEOF
    ;;
  *)
    echo "usage: run.sh build|test|pip OUT [pytest args]" >&2
    exit 2
    ;;
esac
