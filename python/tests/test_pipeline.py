"""Pipelines, transactions, WATCH, scripts."""
import asyncio

import pytest

import aredis


async def test_documented_pipeline(r):
    async with await r.pipeline(transaction=True) as pipe:
        pipe = await (await pipe.flushdb()).set("foo", "bar")
        await pipe.set("bar", "foo")
        await pipe.keys("*")
        res = await pipe.execute()
    assert res[:3] == [True, True, True]
    assert sorted(res[3]) == [b"bar", b"foo"]


async def test_non_transaction_pipeline_and_callbacks(r):
    p = r.pipeline(transaction=False)
    p.set("a", 1)
    p.exists("a")
    p.zadd("z", 1, "m")
    p.zrange("z", 0, -1, withscores=True)
    p.incr("a")
    assert len(p) == 5
    assert await p.execute() == [True, True, 1, [(b"m", 1.0)], 2]
    assert await p.execute() == []


async def test_pipeline_error_in_slot(r):
    await r.set("s", "x")
    p = r.pipeline(transaction=False)
    p.incr("s")
    p.get("s")
    with pytest.raises(aredis.ResponseError):
        await p.execute()
    p.incr("s")
    p.get("s")
    res = await p.execute(raise_on_error=False)
    assert isinstance(res[0], aredis.ResponseError)
    assert res[1] == b"x"


async def test_watch_and_watcherror(r, port):
    await r.set("seq", 1)
    other = aredis.StrictRedis(port=port, db=3)
    async with await r.pipeline() as pipe:
        await pipe.watch("seq")
        cur = await pipe.get("seq")
        assert cur == b"1"
        await other.set("seq", 100)
        pipe.multi()
        pipe.set("seq", int(cur) + 1)
        with pytest.raises(aredis.WatchError):
            await pipe.execute()
    assert await r.get("seq") == b"100"


async def test_documented_watch_loop(r):
    await r.set("OUR-SEQUENCE-KEY", 5)
    async with await r.pipeline() as pipe:
        while 1:
            try:
                await pipe.watch("OUR-SEQUENCE-KEY")
                current_value = await pipe.get("OUR-SEQUENCE-KEY")
                next_value = int(current_value) + 1
                pipe.multi()
                pipe.set("OUR-SEQUENCE-KEY", next_value)
                await pipe.execute()
                break
            except aredis.WatchError:
                continue
            finally:
                await pipe.reset()
    assert await r.get("OUR-SEQUENCE-KEY") == b"6"


async def test_transaction_helper_retries(r, port):
    await r.set("k", 0)
    other = aredis.StrictRedis(port=port, db=3)
    calls = []

    async def incr(pipe):
        v = int(await pipe.get("k"))
        calls.append(v)
        if len(calls) == 1:
            await other.set("k", 10)  # forces one WatchError
        pipe.multi()
        await pipe.set("k", v + 1)

    assert await r.transaction(incr, "k") == [True]
    assert calls == [0, 10]
    assert await r.get("k") == b"11"


async def test_concurrent_transactions_are_exact(r):
    await r.set("ctr", 0)

    async def incr(pipe):
        v = int(await pipe.get("ctr"))
        pipe.multi()
        pipe.set("ctr", v + 1)

    await asyncio.gather(*[r.transaction(incr, "ctr") for _ in range(20)])
    assert await r.get("ctr") == b"20"


async def test_script(r, port):
    lua = """
local value = redis.call('GET', KEYS[1])
value = tonumber(value)
return value * ARGV[1]"""
    multiply = r.register_script(lua)
    await r.script_flush()
    await r.set("foo", 2)
    assert await multiply.execute(keys=["foo"], args=[5]) == 10
    r2 = aredis.StrictRedis(port=port, db=4)
    await r2.set("foo", 3)
    assert await multiply.execute(keys=["foo"], args=[5], client=r2) == 15
    # The scripting section's name for it.
    assert await multiply.register(keys=["foo"], args=[2]) == 4
    await r.script_flush()
    pipe = await r.pipeline()
    await pipe.set("foo", 5)
    await multiply(keys=["foo"], args=[5], client=pipe)
    assert await pipe.execute() == [True, 25]
