#!/usr/bin/env python3
"""bench/compare.py RAW_DIR IMG_DIR: the tables and plots of bench/compare.sh.

RAW_DIR holds one file per run, named PLACEMENT.IMPL.wW.rREP.{json,txt,cpu}
(pipelined SET+GET runs) and keys.PLACEMENT.IMPL.rREP.* (the sequential
KEYS * runs): JSON from aredis-benchmark, hiredis_bench and ioredis_bench;
redis-benchmark's own text output with the process CPU time beside it.
Every cell is the median over the repetitions. Prints Markdown tables and
writes IMG_DIR/compare-ops.png, compare-cdf.png and compare-cpu.png with
gnuplot.
"""
import collections
import json
import os
import re
import statistics
import subprocess
import sys

raw, img = sys.argv[1], sys.argv[2]
IMPLS = ["aredis", "aredis-sync", "hiredis", "redis-benchmark", "ioredis"]
LABEL = {"aredis": "aredis", "aredis-sync": "aredis (blocking)",
         "hiredis": "hiredis async (libevent)",
         "redis-benchmark": "redis-benchmark", "ioredis": "ioredis"}
PLACE = {"separate": "separate CPUs", "same": "same CPU"}


def parse_rb(path):
    """redis-benchmark's text: per test, ops/s, percentiles and its CDF."""
    text = open(path).read().replace("\r", "\n")
    tests = []
    for block in re.split(r"^====== ", text, flags=re.M)[1:]:
        name = block.split(" ======", 1)[0].strip().split()[0]
        n = int(re.search(r"(\d+) requests completed", block).group(1))
        ops = float(re.search(r"throughput summary: ([\d.]+)", block).group(1))
        dist = block.split("Latency by percentile distribution:")[1]
        dist = dist.split("Cumulative distribution")[0]
        pts = [(float(m.group(1)), int(m.group(2))) for m in re.finditer(
            r"<= ([\d.]+) milliseconds \(cumulative count (\d+)\)", dist)]
        # With -P, redis-benchmark completes a few more requests than its
        # histogram counts: the histogram's own total is the denominator.
        cdf = [(lat, c / pts[-1][1]) for lat, c in pts]

        def q(x):
            return next(lat for lat, f in cdf if f >= x)
        tests.append({"test": name, "requests": n, "ops_per_sec": ops,
                      "latency_ms": {"p50": q(0.5), "p99": q(0.99),
                                     "p999": q(0.999), "max": cdf[-1][0]},
                      "cdf": cdf, "cpu_s": None})
    cpu = float(open(path[:-4] + ".cpu").read())
    total = sum(t["requests"] for t in tests)
    for t in tests:  # one process ran them all: share its CPU by requests
        t["cpu_s"] = cpu * t["requests"] / total
    return tests


def load(path):
    if path.endswith(".txt"):
        return parse_rb(path)
    return json.load(open(path))["tests"]


runs = collections.defaultdict(list)  # (kind, placement, impl, w) -> [tests]
for f in sorted(os.listdir(raw)):
    if not (f.endswith(".json") or f.endswith(".txt")):
        continue
    parts = f.split(".")
    if parts[0] == "keys":
        key = ("keys", parts[1], parts[2], 1)
    else:
        key = ("pipe", parts[0], parts[1], int(parts[2][1:]))
    try:
        runs[key].append({t["test"]: t for t in load(os.path.join(raw, f))})
    except (ValueError, KeyError, StopIteration, IndexError) as e:
        print(f"compare.py: skipping {f}: {e}", file=sys.stderr)


def med(key, test, fn):
    vals = [fn(r[test]) for r in runs.get(key, []) if test in r]
    return statistics.median(vals) if vals else None


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


placements = [p for p in PLACE if any(k[1] == p for k in runs)]
ws = sorted({k[3] for k in runs if k[0] == "pipe"})
impls = [i for i in IMPLS if any(k[2] == i for k in runs)]


def cpu_us(t):
    return t["cpu_s"] * 1e6 / t["requests"]


print("#### SET and GET, one connection, W commands in flight\n")
print("| placement | W | client | SET ops/s | GET ops/s | GET p50 ms "
      "| GET p99 ms | GET p99.9 ms | client CPU µs/cmd |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for p in placements:
    for w in ws:
        for i in impls:
            k = ("pipe", p, i, w)
            if k not in runs:
                continue
            cpu = [med(k, t, cpu_us) for t in ("SET", "GET")]
            cpu = None if None in cpu else sum(cpu) / 2
            print(f"| {PLACE[p]} | {w} | {LABEL[i]} "
                  f"| {fmt(med(k, 'SET', lambda t: t['ops_per_sec']), ',.0f')} "
                  f"| {fmt(med(k, 'GET', lambda t: t['ops_per_sec']), ',.0f')} "
                  f"| {fmt(med(k, 'GET', lambda t: t['latency_ms']['p50']), '.3f')} "
                  f"| {fmt(med(k, 'GET', lambda t: t['latency_ms']['p99']), '.3f')} "
                  f"| {fmt(med(k, 'GET', lambda t: t['latency_ms']['p999']), '.3f')} "
                  f"| {fmt(cpu, '.2f')} |")

if any(k[0] == "keys" for k in runs):
    print("\n#### Sequential awaited `KEYS *` on an empty database, "
          "µs per command, connect included\n")
    print("| placement | " + " | ".join(LABEL[i] for i in impls) + " |")
    print("|---|" + "---:|" * len(impls))
    for p in placements:
        cells = []
        for i in impls:
            k = ("keys", p, i, 1)
            test = next((t for r in runs.get(k, []) for t in r), "KEYS")
            v = med(k, test, lambda t: t["seconds"] * 1e6 / t["requests"]
                    if "seconds" in t else 1e6 / t["ops_per_sec"])
            cells.append(fmt(v, ".1f"))
        print(f"| {PLACE[p]} | " + " | ".join(cells) + " |")

# ---- plots ------------------------------------------------------------------
data = os.path.join(raw, "plot")
os.makedirs(data, exist_ok=True)
os.makedirs(img, exist_ok=True)
pipe_impls = [i for i in impls if any(k[0] == "pipe" and k[2] == i
                                      for k in runs)]
for p in placements:
    for i in pipe_impls:
        with open(f"{data}/ops.{p}.{i}.dat", "w") as f:
            for w in ws:
                k = ("pipe", p, i, w)
                ops = med(k, "GET", lambda t: t["ops_per_sec"])
                cpu = med(k, "GET", cpu_us)
                if ops is not None:
                    f.write(f"{w} {ops} {cpu}\n")
cdf_w = 16 if 16 in ws else ws[len(ws) // 2]
cdf_p = "separate" if "separate" in placements else placements[0]
for i in pipe_impls:
    rs = runs.get(("pipe", cdf_p, i, cdf_w), [])
    if not rs:
        continue
    # The run with the median GET throughput, drawn whole.
    rs = sorted((r for r in rs if "GET" in r),
                key=lambda r: r["GET"]["ops_per_sec"])
    if not rs:
        continue
    with open(f"{data}/cdf.{i}.dat", "w") as f:
        for lat, frac in rs[len(rs) // 2]["GET"]["cdf"]:
            f.write(f"{max(lat, 1e-4)} {frac}\n")


def plot_list(pattern, using, title_fn, impls_):
    items = []
    for n, i in enumerate(impls_):
        path = pattern.format(i=i)
        if os.path.exists(path) and os.path.getsize(path):
            items.append(f"'{path}' using {using} with linespoints "
                         f"ls {IMPLS.index(i) + 1} title '{title_fn(i)}'")
    return ", \\\n  ".join(items) or "NaN notitle"


styles = "\n".join(
    f"set style line {n + 1} lw 2 pt {n + 5} ps 1.2 lc rgb '{c}'"
    for n, c in enumerate(["#1f77b4", "#17becf", "#d62728", "#7f7f7f",
                           "#2ca02c"]))
gp = [f"""set terminal pngcairo size 1000,420 font 'DejaVu Sans,10'
{styles}
set grid
set key top left
set logscale x 2
set output '{img}/compare-ops.png'
set multiplot layout 1,{len(placements)} title 'GET ops/s against commands in flight (one connection, 16-byte values)'
set xlabel 'W (commands in flight)'
set ylabel 'ops/s'
set format y '%.0s%c'
"""]
for p in placements:
    gp.append(f"set title 'client and server on {PLACE[p]}'\nplot "
              + plot_list(f"{data}/ops.{p}.{{i}}.dat", "1:2",
                          lambda i: LABEL[i], pipe_impls) + "\n")
gp.append("unset multiplot\n")
gp.append(f"""set output '{img}/compare-cpu.png'
set multiplot layout 1,{len(placements)} title 'Client CPU per GET against commands in flight'
set ylabel 'client CPU µs per command'
set logscale y
set format y '%g'
set key bottom left
""")
for p in placements:
    gp.append(f"set title 'client and server on {PLACE[p]}'\nplot "
              + plot_list(f"{data}/ops.{p}.{{i}}.dat", "1:3",
                          lambda i: LABEL[i], pipe_impls) + "\n")
gp.append("unset multiplot\n")
gp.append(f"""set terminal pngcairo size 700,450 font 'DejaVu Sans,10'
set output '{img}/compare-cdf.png'
unset logscale
set logscale x 10
set format x '%g'
set format y '%g'
set title 'GET latency CDF, W = {cdf_w}, {PLACE[cdf_p]} (median run)'
set xlabel 'latency (ms)'
set ylabel 'fraction of commands at or below'
set yrange [0:1.02]
set key bottom right
plot """ + plot_list(f"{data}/cdf.{{i}}.dat", "1:2",
                     lambda i: LABEL[i], pipe_impls).replace(
                         "linespoints", "steps") + "\n")
script = os.path.join(data, "plots.gp")
open(script, "w").write("".join(gp))
subprocess.run(["gnuplot", script], check=True)
print(f"\nplots: {img}/compare-ops.png, {img}/compare-cpu.png, "
      f"{img}/compare-cdf.png")
