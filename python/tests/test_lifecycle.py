"""Lifetimes: clients dropped with commands in flight, freed from inside
the core's callbacks, closed; every command completes exactly once."""
import asyncio
import gc

import pytest

import aredis


async def test_temporary_client_freed_by_its_last_reply(port):
    # The last reference to the client goes with the reply of its only
    # command, i.e. from inside the C core's read callback: the client must
    # be released on a later loop turn, not under the core's feet.
    for i in range(200):
        assert await aredis.StrictRedis(port=port, db=3).ping() is True
        if i % 50 == 0:
            gc.collect()
    await asyncio.sleep(0.01)
    gc.collect()


async def test_dropped_client_completes_its_commands(port):
    c = aredis.StrictRedis(port=port, db=3)
    futs = [c.set(f"d{i}", i) for i in range(100)]
    del c
    gc.collect()
    assert await asyncio.gather(*futs) == [True] * 100


async def test_close_lets_commands_in_flight_complete(port):
    c = aredis.StrictRedis(port=port, db=3)
    futs = [c.incr("closing") for _ in range(50)]
    c.close()
    res = await asyncio.gather(*futs)
    assert sorted(res) == sorted(set(res)) and len(res) == 50
    # A closed client binds anew on its next command.
    assert await c.ping() is True
    c.close()


async def test_server_gone_fails_every_command_once(server):
    # A server of our own, killed with commands in flight.
    import os
    import signal
    import subprocess
    import tempfile
    import time
    d = tempfile.mkdtemp()
    sock = os.path.join(d, "s.sock")
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket",
                             sock, "--save", "", "--dir", d],
                            stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        c = aredis.StrictRedis(unix_socket_path=sock,
                               _core_options={"reconnect_max_attempts": -2})
        assert await c.ping() is True
        futs = [asyncio.ensure_future(c.blpop(f"never{i}", 5))
                for i in range(10)] + [c.get("x")]
        await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        results = await asyncio.wait_for(
            asyncio.gather(*futs, return_exceptions=True), 10)
        assert len(results) == 11
        assert all(isinstance(r, aredis.ConnectionError)
                   for r in results[:10]), results
    finally:
        proc.kill()
        proc.wait()


def test_objects_made_before_the_loop_bind_to_the_loop_that_runs_them(port):
    # As at the top of a module: client, pipeline and pubsub made before
    # asyncio.run(); they bind to its loop on first use.
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    pipe = r.pipeline(transaction=False)
    p = r.pubsub()

    async def main():
        pipe.set("made-before", 1)
        pipe.get("made-before")
        assert await pipe.execute() == [True, b"1"]
        await p.subscribe("made-before-chan")
        msg = await p.get_message(timeout=1)
        assert msg["type"] == "subscribe"
        p.close()
        r.close()

    asyncio.run(main())


def test_a_client_used_from_a_second_loop_says_so_and_moves_after_close(port):
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)

    async def ping():
        return await r.ping()

    assert asyncio.run(ping()) is True
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(ping())
    r.close()
    assert asyncio.run(ping()) is True
    r.close()
