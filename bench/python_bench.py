"""One run of the Python client benchmark (bench/python.sh runs the matrix).

    python_bench.py --impl aredis|redispy --loop asyncio|uvloop
                    --mode seq|conc|pipe --n N --port P [--db D]

The workload mirrors bench_client --mode pipe: N/2 SET then N/2 GET (of
the same keys, in the same order) of 16-byte values on keys cycling over
10000 names, every reply checked.
  seq   one coroutine awaiting each command in turn (one connection);
  conc  100 coroutines sharing one client, each awaiting its commands;
  pipe  pipelines of 100 commands (transaction=False), awaited in turn.
The client connects (one PING) before the clock starts. Prints one line of
key=value pairs. A program, not a test: it asserts replies, never timing.
"""
import argparse
import asyncio
import sys
import time

KEYS = [f"bench:{i:05d}".encode() for i in range(10000)]
VAL = b"v" * 16


def make_client(impl, port, db):
    if impl == "aredis":
        import aredis
        return aredis.StrictRedis(host="127.0.0.1", port=port, db=db)
    import redis.asyncio
    return redis.asyncio.Redis(host="127.0.0.1", port=port, db=db)


async def ops(c, lo, hi, half):
    for i in range(lo, hi):
        k = KEYS[(i if i < half else i - half) % 10000]
        if i < half:
            if await c.set(k, VAL) is not True:
                raise SystemExit("bad SET reply")
        elif await c.get(k) != VAL:
            raise SystemExit("bad GET reply")


async def run(impl, mode, n, port, db):
    c = make_client(impl, port, db)
    await c.ping()
    half = n // 2
    t0 = time.perf_counter()
    if mode == "seq":
        await ops(c, 0, half, half)
        await ops(c, half, n, half)
    elif mode == "conc":
        w = 100
        for lo_, hi_ in ((0, half), (half, n)):
            step = (hi_ - lo_) // w
            await asyncio.gather(*[
                ops(c, lo_ + j * step, lo_ + (j + 1) * step, half)
                for j in range(w)])
    else:
        for start in range(0, n, 100):
            p = c.pipeline(transaction=False)
            for i in range(start, min(n, start + 100)):
                k = KEYS[(i if i < half else i - half) % 10000]
                if i < half:
                    p.set(k, VAL)
                else:
                    p.get(k)
            res = await p.execute()
            for i, r in zip(range(start, n), res):
                if r != (True if i < half else VAL):
                    raise SystemExit(f"bad pipeline reply {r!r}")
    dt = time.perf_counter() - t0
    if impl == "redispy":
        await c.close()
    return dt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", required=True, choices=["aredis", "redispy"])
    ap.add_argument("--loop", default="asyncio", choices=["asyncio",
                                                          "uvloop"])
    ap.add_argument("--mode", required=True, choices=["seq", "conc", "pipe"])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db", type=int, default=9)
    a = ap.parse_args()
    if a.loop == "uvloop":
        import uvloop
        uvloop.install()
    dt = asyncio.run(run(a.impl, a.mode, a.n, a.port, a.db))
    extra = ""
    if a.impl == "redispy":
        import redis.utils
        extra = f" hiredis={int(redis.utils.HIREDIS_AVAILABLE)}"
    print(f"impl={a.impl} loop={a.loop} mode={a.mode} n={a.n} "
          f"seconds={dt:.4f} ops_per_s={a.n / dt:.0f}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
