"""scan_iter family, streams, locks, caches."""
import asyncio

import pytest

import aredis
from aredis import ClusterLock, IdentityGenerator


async def test_scan_iter_family(r):
    for i in range(30):
        await r.set(f"k{i}", i)
    await r.sadd("s", *range(40))
    await r.hset("h", mapping={f"f{i}": i for i in range(40)})
    await r.zadd("z", {f"m{i}": i for i in range(40)})
    keys = [k async for k in r.scan_iter(match="k*", count=5)]
    assert sorted(keys) == sorted(f"k{i}".encode() for i in range(30))
    assert len({m async for m in r.sscan_iter("s", count=5)}) == 40
    h = {k: v async for k, v in r.hscan_iter("h", count=5)}
    assert h[b"f7"] == b"7" and len(h) == 40
    z = [x async for x in r.zscan_iter("z", count=5)]
    assert (b"m3", 3.0) in z and len(z) == 40
    cursor, page = await r.scan(0, match="k*", count=1000)
    assert cursor == 0 and len(page) == 30


async def test_streams(r):
    sid = await r.xadd("st", dict(event=1, user="usr1"), max_len=10)
    assert isinstance(sid, bytes) and b"-" in sid
    for idx in range(1, 20):
        await r.xadd("test_stream", {"k1": "v1", "k2": 1}, stream_id=idx)
    assert await r.xlen("test_stream") == 19
    entries = await r.xrange("test_stream", start="1-0", end="10-0",
                             count=3)
    assert entries == [(b"1-0", {b"k1": b"v1", b"k2": b"1"}),
                       (b"2-0", {b"k1": b"v1", b"k2": b"1"}),
                       (b"3-0", {b"k1": b"v1", b"k2": b"1"})]
    rev = await r.xrevrange("test_stream", start="10-0", end="1-0", count=2)
    assert [e[0] for e in rev] == [b"10-0", b"9-0"]
    assert await r.xgroup_create("test_stream", "test_group", "0") is True
    got = await r.xreadgroup("test_group", "consumer1", count=5,
                             test_stream=">")
    assert [e[0] for e in got[b"test_stream"]] == \
        [b"1-0", b"2-0", b"3-0", b"4-0", b"5-0"]
    assert await r.xack("test_stream", "test_group", "1-0", "2-0") == 2
    pend = await r.xpending("test_stream", "test_group")
    assert pend["pending"] == 3
    read = await r.xread(count=1, test_stream="18-0")
    assert read == {b"test_stream": [(b"19-0", {b"k1": b"v1", b"k2": b"1"})]}
    assert await r.xread(block=50, test_stream="$") == {}


async def test_lock_documented_sequence(r):
    lock = r.lock("lalala")
    assert await lock.acquire() is True
    assert await lock.acquire(blocking=False) is False
    assert await lock.release() is None
    assert await lock.acquire() is True
    await lock.release()
    with pytest.raises(aredis.LockError):
        await lock.release()


async def test_lock_expiry_and_not_owned(r, port):
    lock = r.lock("exp", timeout=0.1)
    assert await lock.acquire()
    await asyncio.sleep(0.2)
    other = aredis.StrictRedis(port=port, db=3).lock("exp", timeout=5)
    assert await other.acquire(blocking=False)
    with pytest.raises(aredis.LockNotOwnedError):
        await lock.extend(1)
    with pytest.raises(aredis.LockNotOwnedError):
        await lock.release()
    assert await r.get("exp") is not None, "the new owner keeps its lock"
    with pytest.raises(aredis.LockError):
        await lock.extend(1)  # this handle has let go
    assert await other.extend(1) is True
    await other.release()


async def test_lock_blocking_timeout_and_mutual_exclusion(r):
    holder = r.lock("m", timeout=5)
    await holder.acquire()
    waiter = r.lock("m", timeout=5, sleep=0.02)
    t = asyncio.get_running_loop().time()
    assert await waiter.acquire(blocking_timeout=0.2) is False
    # Gave up at blocking_timeout, not when the holder's 5 s ran out (the
    # margin is for a loaded machine).
    assert 0.18 <= asyncio.get_running_loop().time() - t < 3.0
    await holder.release()
    await r.set("count", 0)

    async def worker():
        for _ in range(10):
            async with r.lock("m2", timeout=5, sleep=0.001):
                v = int(await r.get("count"))
                await asyncio.sleep(0)
                await r.set("count", v + 1)

    await asyncio.gather(*[worker() for _ in range(5)])
    assert await r.get("count") == b"50"


async def test_cluster_lock_on_a_single_node(r):
    lock = r.lock("lalala", lock_class=ClusterLock, timeout=1)
    assert await lock.acquire() is True
    assert await lock.acquire(blocking=False) is False
    assert await lock.release() is None
    assert await lock.acquire() is True


async def test_documented_cache(r):
    class CustomIdentityGenerator(IdentityGenerator):
        def generate(self, key, content):
            return key

    def expensive_work(data):
        return data

    cache = r.cache("example_cache",
                    identity_generator_class=CustomIdentityGenerator)
    data = {1: 1}
    await cache.set("example_key", expensive_work(data), data)
    res = await cache.get("example_key", data)
    assert res == expensive_work(data)
    assert await r.exists("example_key")


async def test_cache_api(r):
    cache = r.cache("app")
    await cache.set("k", {"x": [1, 2, 3] * 10}, param={"page": 2},
                    expire_time=100)
    assert await cache.get("k", {"page": 2}) == {"x": [1, 2, 3] * 10}
    assert await cache.get("k", {"page": 3}) is None
    assert await cache.exist("k", {"page": 2})
    assert 0 < await cache.ttl("k", {"page": 2}) <= 100
    await cache.set_many({"a": 1, "b": 2}, param=1)
    assert await cache.get("a", 1) == 1
    assert await cache.delete_many(["a", "b"], [1, 1]) == 2
    await r.set("app:bad", b"\x07junk")
    with pytest.raises(aredis.CacheError):
        await cache.get("app:bad")
    # Helpers set to None are left out: the value is stored as given,
    # under the key as given.
    raw = r.cache("raw", identity_generator_class=None,
                  compressor_class=None, serializer_class=None)
    await raw.set("plain", b"bytes", param={"ignored": 1})
    assert await r.get("plain") == b"bytes"


async def test_herd_cache_one_recomputes(r):
    herd = r.cache("h", cache_class=aredis.HerdCache,
                   default_herd_timeout=5, extend_herd_timeout=5)
    await herd.set("v", "old", expire_time=0.2)
    await asyncio.sleep(0.3)
    # The key is still there (TTL = expiry + herd timeout) ...
    assert await r.exists("v")
    results = await asyncio.gather(*[herd.get("v") for _ in range(50)])
    # ... and exactly one of 50 readers is told to recompute.
    assert results.count(None) == 1
    assert results.count("old") == 49
