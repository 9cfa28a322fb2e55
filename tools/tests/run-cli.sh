#!/usr/bin/env bash
# tools/tests/run-cli.sh BENCHMARK - the aredis-benchmark program as a user
# runs it (CTest tools.cli, label tools), against the standalone test
# server of $AREDIS_TEST_STATE:
#   - bad command lines exit 2 with a message naming the problem, and
#     nothing on standard output; --help exits 0;
#   - --csv and --json are well formed (Python's csv and json modules, and
#     jq when installed) and their numbers are sane: every test completed
#     exactly -n requests, ops/s > 0, p50 <= p99 <= p99.9 <= max, CPU > 0;
#   - the server saw the work: -n LPUSHes make a list of -n elements, -n
#     LPOPs take -n off it, SETs over -r sequential names make -r keys;
#   - --sync and --duration runs, and a refused connection (exit 1);
#   - nothing is drawn on standard error when it is not a terminal.
# Keys carry a prefix of this run and are deleted at the end (database 4).
set -euo pipefail
bin=$1
port=$(sed -n 's/^port=//p' "$AREDIS_TEST_STATE")
db=4
prefix="tools-cli:$$:"
work=$(mktemp -d "${TMPDIR:-/tmp}/aredis-tools-cli.XXXXXX")
cli() { redis-cli -p "$port" -n "$db" "$@"; }
cleanup() {
  cli --scan --pattern "$prefix*" | while read -r k; do cli DEL "$k" >/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok   $*"; }
bm() { "$bin" -p "$port" --dbnum "$db" --prefix "$prefix" "$@"; }

# ---- bad command lines ---------------------------------------------------
bad() {
  local want=$1
  shift
  local rc=0
  "$bin" "$@" >"$work/out" 2>"$work/err" || rc=$?
  if [ $rc != 2 ]; then
    fail "'$*' exited $rc, wanted 2"
  elif ! grep -qF -- "$want" "$work/err"; then
    fail "'$*': wanted '$want' in: $(cat "$work/err")"
  elif [ -s "$work/out" ]; then
    fail "'$*' wrote to standard output"
  else
    ok "'$*' -> exit 2: $(head -n 1 "$work/err")"
  fi
}
bad "-c 0 is out of range" -c 0
bad "unknown option '--frobnicate'" --frobnicate
bad "unknown test 'sett'" -t sett
bad "-n wants a whole number, not '1e'" -n 1e
bad "--csv and --json exclude each other" --csv --json
bad "-P must be 1" --sync -P 2
bad "-p needs a value" -p

if "$bin" --help >"$work/out" 2>&1 && grep -q '^Usage: ' "$work/out"; then
  ok "--help -> exit 0 and the usage"
else
  fail "--help"
fi

# ---- machine output ------------------------------------------------------
# check.py FORMAT N FILE: well formed, and the numbers add up.
cat >"$work/check.py" <<'EOF'
import csv, json, sys
fmt, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = []
if fmt == "csv":
    with open(path, newline="") as f:
        r = list(csv.reader(f))
    head = r[0]
    assert head[:3] == ["client", "test", "connections"], head
    for line in r[1:]:
        assert len(line) == len(head), ("ragged row", line)
        d = dict(zip(head, line))
        rows.append({"test": d["test"], "requests": int(d["requests"]),
                     "errors": int(d["errors"]),
                     "ops": float(d["ops_per_sec"]),
                     "lat": [float(d[k]) for k in
                             ("p50_ms", "p99_ms", "p999_ms", "max_ms")],
                     "cpu": float(d["cpu_s"])})
else:
    with open(path) as f:
        doc = json.load(f)
    assert doc["tool"] == "aredis-benchmark", doc["tool"]
    for t in doc["tests"]:
        l = t["latency_ms"]
        cdf = t["cdf"]
        assert cdf and abs(cdf[-1][1] - 1.0) < 1e-9, "the CDF ends at 1"
        assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(cdf, cdf[1:]))
        rows.append({"test": t["test"], "requests": t["requests"],
                     "errors": t["errors"], "ops": t["ops_per_sec"],
                     "lat": [l["p50"], l["p99"], l["p999"], l["max"]],
                     "cpu": t["cpu_s"]})
assert rows, "no test in the output"
for r in rows:
    where = r["test"]
    if n > 0:
        assert r["requests"] == n, (where, "requests", r["requests"], n)
    else:
        assert r["requests"] > 0, (where, "no request in the duration")
    assert r["errors"] == 0, (where, "errors", r["errors"])
    assert r["ops"] > 0, (where, "ops/s", r["ops"])
    lat = r["lat"]
    assert 0 < lat[0] <= lat[1] <= lat[2] <= lat[3], (where, "latency", lat)
    assert r["cpu"] > 0, (where, "cpu", r["cpu"])
print(" ".join("%s=%d" % (r["test"], r["requests"]) for r in rows))
EOF
run_check() { # NAME FORMAT N ARGS...
  local name=$1 fmt=$2 n=$3 rc=0
  shift 3
  bm "$@" >"$work/out" 2>"$work/err" || rc=$?
  if [ $rc != 0 ]; then
    fail "$name: exit $rc: $(cat "$work/err")"
    return
  fi
  if [ -s "$work/err" ]; then
    fail "$name: wrote to standard error (not a terminal): $(cat "$work/err")"
    return
  fi
  if [ "$fmt" = json ]; then
    python3 -m json.tool "$work/out" >/dev/null || { fail "$name: json.tool"; return; }
    if command -v jq >/dev/null; then
      jq -e '.tests | length > 0' "$work/out" >/dev/null || { fail "$name: jq"; return; }
    fi
  fi
  local res
  if res=$(python3 "$work/check.py" "$fmt" "$n" "$work/out" 2>&1); then
    ok "$name: $res"
  else
    fail "$name: $res"
    cat "$work/out"
  fi
}
run_check "csv, async" csv 600 -n 600 -c 3 -P 4 -t ping,set,get,incr,hset,mset,mixed --csv
run_check "json, async" json 500 -n 500 -c 2 -P 16 -d 100 -r 1000 -t set,get,lpush,lpop --json
run_check "json, sync" json 300 -n 300 -c 3 --sync -t set,get,keys --json
run_check "csv, keys" csv 200 -n 200 -c 1 -t keys --csv
run_check "json, duration" json 0 --duration 0.3 -c 2 -P 2 -t ping --json

# The CPU figure covers the timed part only, as the seconds do: one PING
# over 200 connections must not be charged with their connects (the
# asynchronous driver is one thread, so its CPU cannot exceed the time).
res=
if bm -n 1 -c 200 -t ping --json >"$work/out" 2>"$work/err" &&
  res=$(python3 - "$work/out" 2>&1 <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["tests"][0]
assert t["cpu_s"] <= t["seconds"] + 0.003, (t["cpu_s"], t["seconds"])
print("cpu %.4f s over %.6f s" % (t["cpu_s"], t["seconds"]))
PY
  ); then
  ok "cpu of the timed part only: $res"
else
  fail "cpu of the timed part only: $(cat "$work/err") $res"
fi

# ---- the server saw the work -------------------------------------------------
list="${prefix}mylist:000000000000"
cli DEL "$list" >/dev/null
bm -q -n 700 -c 3 -P 5 -t lpush >/dev/null
len=$(cli LLEN "$list")
[ "$len" = 700 ] && ok "700 LPUSH -> LLEN $len" || fail "700 LPUSH -> LLEN $len"
bm -q -n 250 -c 2 --sync -t lpop >/dev/null
len=$(cli LLEN "$list")
[ "$len" = 450 ] && ok "250 LPOP (sync) -> LLEN $len" || fail "250 LPOP -> LLEN $len"
cli --scan --pattern "${prefix}key:*" | while read -r k; do cli DEL "$k" >/dev/null; done
bm -q -n 500 -c 2 -P 4 -r 37 --sequential -t set >/dev/null
keys=$(cli --scan --pattern "${prefix}key:*" | wc -l)
[ "$keys" = 37 ] && ok "500 SET over -r 37 --sequential -> $keys keys" ||
  fail "500 SET over -r 37 -> $keys keys"
v=$(cli GET "${prefix}key:000000000005")
[ ${#v} = 3 ] && ok "values are -d 3 bytes" || fail "value '$v'"

# ---- a refused connection --------------------------------------------------
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for mode in "" --sync; do
  rc=0
  "$bin" -p "$free_port" -n 10 -c 2 -t ping $mode >/dev/null 2>"$work/err" || rc=$?
  if [ $rc = 1 ] && grep -qi refused "$work/err"; then
    ok "refused connection ${mode:-async} -> exit 1: $(cat "$work/err")"
  else
    fail "refused connection ${mode:-async}: exit $rc: $(cat "$work/err")"
  fi
done

echo "$failures failure(s)"
[ $failures = 0 ]
