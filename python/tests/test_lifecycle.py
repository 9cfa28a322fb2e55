"""Lifetimes: clients dropped with commands in flight, freed from inside
the core's callbacks, closed; every command completes exactly once."""
import asyncio
import gc
import os
import signal

import pytest

import aredis
from aredis import _core


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


async def test_server_gone_fails_every_command_once(private_server):
    # A server of our own, killed with commands in flight.
    c = aredis.StrictRedis(unix_socket_path=private_server["unixsocket"],
                           _core_options={"reconnect_max_attempts": -2})
    assert await c.ping() is True
    futs = [asyncio.ensure_future(c.blpop(f"never{i}", 5))
            for i in range(10)] + [c.get("x")]
    await asyncio.sleep(0.1)
    os.kill(int(private_server["pid"]), signal.SIGKILL)
    results = await asyncio.wait_for(
        asyncio.gather(*futs, return_exceptions=True), 10)
    assert len(results) == 11
    assert all(isinstance(r, aredis.ConnectionError)
               for r in results[:10]), results


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


async def test_a_pipeline_made_before_close_works_after_it(port):
    # close() frees the C pipelines of the client first (the C client
    # frees itself once idle, and a pipeline keeps a pointer to it); the
    # Python pipeline makes a new one on the client's next binding.
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    pipe = r.pipeline(transaction=False)
    pipe.set("pl-close", 1)
    assert await pipe.execute() == [True]
    r.close()
    for _ in range(5):
        await asyncio.sleep(0)  # the C client frees itself meanwhile
    pipe.set("pl-close", 2)
    pipe.get("pl-close")
    assert await pipe.execute() == [True, b"2"]
    assert await r.get("pl-close") == b"2"
    r.close()


async def test_a_watching_pipeline_refuses_after_close_until_reset(port):
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    await r.delete("pl-watch")
    pipe = r.pipeline()
    await pipe.watch("pl-watch")
    assert await pipe.get("pl-watch") is None
    r.close()
    for _ in range(5):
        await asyncio.sleep(0)
    with pytest.raises(aredis.RedisError, match="client is closed"):
        await pipe.get("pl-watch")
    await pipe.reset()
    pipe.set("pl-watch", 1)
    assert await pipe.execute() == [True]
    r.close()


async def test_a_pubsub_after_close(port):
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    p = r.pubsub()
    await p.subscribe("ps-close")
    assert (await p.get_message(timeout=1))["type"] == "subscribe"
    r.close()
    # Its subscriptions went with the client: it says so, until closed.
    with pytest.raises(aredis.RedisError, match="client is closed"):
        await p.get_message(timeout=0.01)
    p.close()
    await p.subscribe("ps-close")
    assert (await p.get_message(timeout=1))["channel"] == b"ps-close"
    p.close()
    r.close()


async def test_a_cancelled_pipeline_ends_cancelled(port):
    # Cancelled while its WATCH waits for a connection (the only one is
    # taken): `async with` resets the pipeline on the way out, which must
    # not replace the CancelledError with "cannot reset".
    r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3,
                           max_connections=1)
    await r.delete("pl-held")
    holder = r.pipeline()
    await holder.watch("pl-held")
    waiting = asyncio.Event()

    async def second():
        async with r.pipeline() as pipe:
            fut = pipe.watch("pl-other")
            waiting.set()
            await fut

    task = asyncio.ensure_future(second())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def incr(pipe):
        value = int(await pipe.get("pl-held") or 0)
        pipe.multi()
        pipe.set("pl-held", value + 1)

    # Same with the transaction helper; then the connection comes back
    # and both work.
    task = asyncio.ensure_future(r.transaction(incr, "pl-held"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await holder.reset()
    assert await r.transaction(incr, "pl-held") == [True]
    assert await r.get("pl-held") == b"1"
    r.close()


async def test_a_command_from_another_thread_while_the_loop_runs(r):
    # The client belongs to its loop's thread: from another thread (with
    # no loop of its own) a command would race with the loop.
    import threading
    out = []

    def other_thread():
        try:
            out.append(r.ping())
        except RuntimeError as e:
            out.append(e)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert isinstance(out[0], RuntimeError), out
    assert "another thread" in str(out[0])
    assert await r.ping() is True


def test_clients_of_their_own_in_threads_with_loops_of_their_own(port):
    # Each thread runs its loop and client; every coroutine resumes in its
    # own thread with its own replies (the threads take turns often: the
    # coroutines resumed by one thread's loop callback must be its own).
    import sys
    import threading
    results = {}
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)

    def run(i):
        async def main():
            r = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
            # Python code while the replies are read: a turn for another
            # thread in the middle of a loop callback.
            r.set_response_callback("ECHO", lambda v, **kw: v)
            me = threading.get_ident()
            ok = 0
            for j in range(2000):
                v = await r.echo(f"{i}-{j}")
                ok += v == f"{i}-{j}".encode() and \
                    threading.get_ident() == me
            vals = await asyncio.gather(
                *[r.echo(f"{i}:{j}") for j in range(100)])
            ok += sum(v == f"{i}:{j}".encode() for j, v in enumerate(vals))
            r.close()
            return ok
        try:
            results[i] = asyncio.run(asyncio.wait_for(main(), 30))
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert results == {i: 2100 for i in range(4)}


# The options dict the Python layer hands to the C client (StrictRedis,
# StrictRedisCluster and Sentinel arguments end up as these keys), by kind.
_STR_OPTIONS = ["url", "host", "path", "username", "password", "client_name",
                "tls_ca_file", "tls_ca_dir", "tls_cert_file", "tls_key_file",
                "tls_sni", "sentinel_addrs", "sentinel_service",
                "sentinel_password"]
_INT_OPTIONS = ["port", "db", "protocol", "keepalive_idle_s",
                "keepalive_interval_s", "keepalive_count",
                "reconnect_max_attempts", "retry_read_only", "pool_max", "tls",
                "tls_insecure", "sentinel_role", "sentinel_replica_fallback"]
_I64_OPTIONS = ["connect_timeout_ms", "command_timeout_ms", "pool_wait_ms",
                "pool_idle_ms", "sentinel_failover_wait_ms",
                "sentinel_timeout_ms"]


async def test_every_client_option_is_read_as_its_kind(port):
    loop = asyncio.get_running_loop()

    def refused(options):
        with pytest.raises((TypeError, ValueError, OverflowError)) as e:
            _core.Client(loop, options, {}, False, None)
        return str(e.value)

    for key in _STR_OPTIONS:
        assert refused({key: 1}) == f"{key} must be a str"
    for key in _INT_OPTIONS:
        assert refused({key: 2 ** 40}) == f"{key} is out of range"
    for key in _I64_OPTIONS:
        refused({key: "1"})
        refused({key: 2 ** 70})
    # None stands for "not given"; 64-bit ones take what an int cannot.
    c = _core.Client(loop, dict.fromkeys(_STR_OPTIONS + _INT_OPTIONS) |
                     dict.fromkeys(_I64_OPTIONS, 2 ** 40) | {"port": port},
                     {}, False, None)
    c.close()


async def test_client_options_reach_the_connection(port):
    c = aredis.StrictRedis(host="127.0.0.1", port=port, db=5,
                           client_name="opt-test",
                           _core_options={"protocol": 2})
    try:
        assert await c.execute_command("CLIENT GETNAME") == "opt-test"
        info = (await c.execute_command("CLIENT INFO")).split()
        assert b"db=5" in info and b"resp=2" in info
        assert c._core.protocol() == 2
    finally:
        c.close()


async def test_shutdown(private_server):
    # The documented shutdown(): None once the server has gone.
    c = aredis.StrictRedis(unix_socket_path=private_server["unixsocket"])
    assert await c.ping() is True
    assert await c.shutdown() is None
    with pytest.raises(aredis.ConnectionError):
        await c.ping()
    c.close()
