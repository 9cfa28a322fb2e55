"""Memory: commands, their futures and the coroutines they resume leave
nothing behind (sys.getallocatedblocks() counts the interpreter's blocks,
the resident set size the C library's memory too). Not timed."""
import asyncio
import gc
import os
import sys

import aredis
from aredis import _core


def rss_kib():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4


def live_futures():
    return sum(1 for o in gc.get_objects() if type(o) is _core.Future)


async def test_a_loop_of_commands_does_not_grow_memory(r):
    await r.set("m", "v")
    await r.set("text", "not a number")
    p = r.pubsub()
    await p.subscribe("m-chan")
    await p.get_message(timeout=1)

    async def mix(n):
        for i in range(n):
            assert await r.get("m") == b"v"
            if i % 100 == 0:
                try:
                    await r.incr("text")
                except aredis.ResponseError:
                    pass
                for j in range(5):
                    r.echo(f"dropped {j}").cancel()
                assert await asyncio.gather(r.echo("a"), r.echo("b")) == \
                    [b"a", b"b"]
                pipe = r.pipeline(transaction=i % 200 == 0)
                pipe.get("m")
                assert await pipe.execute() == [b"v"]
                assert await p.get_message(timeout=0.0001) is None
        await r.ping()  # the cancelled commands' replies are in by then

    await mix(20000)
    gc.collect()
    blocks, rss, futs = sys.getallocatedblocks(), rss_kib(), live_futures()
    await mix(200000)
    gc.collect()
    grown_blocks = sys.getallocatedblocks() - blocks
    grown_rss = rss_kib() - rss
    # A leak of one object per command would be 200,000 blocks.
    assert grown_blocks < 2000, grown_blocks
    assert live_futures() <= futs
    if "asan" not in os.environ.get("LD_PRELOAD", ""):
        # (AddressSanitizer keeps freed memory in quarantine.)
        assert grown_rss < 8 * 1024, grown_rss
    p.close()
