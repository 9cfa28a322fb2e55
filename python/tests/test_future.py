"""The futures commands return (aredis._core.Future): asyncio's future
protocol, as its Task and helpers use it, and the one difference from
asyncio.Future: the coroutine awaiting a reply resumes in the loop
iteration that read the reply."""
import asyncio
import contextvars

import pytest

import aredis
from aredis import _core


async def test_a_command_returns_an_asyncio_compatible_future(r):
    fut = r.ping()
    assert isinstance(fut, _core.Future)
    assert asyncio.isfuture(fut)
    assert fut.get_loop() is asyncio.get_running_loop()
    assert not fut.done() and not fut.cancelled()
    with pytest.raises(asyncio.InvalidStateError):
        fut.result()
    with pytest.raises(asyncio.InvalidStateError):
        fut.exception()
    assert await fut is True
    assert fut.done() and fut.result() is True and fut.exception() is None
    # Awaited again, it gives the same result at once.
    assert await fut is True
    assert "finished" in repr(fut)


async def test_awaiting_resumes_in_the_iteration_that_read_the_reply(r):
    # A response callback runs while the reply is being read; what it
    # hands to call_soon runs in the loop's next iteration. The awaiting
    # coroutine resumes before that: in the same iteration (with an
    # asyncio.Future it would resume after it).
    loop = asyncio.get_running_loop()
    events = []

    def callback(reply, **options):
        loop.call_soon(events.append, "next iteration")
        return reply

    r.set_response_callback("ECHO", callback)
    assert await r.echo("x") == b"x"
    events.append("resumed")
    await asyncio.sleep(0)
    assert events == ["resumed", "next iteration"]


async def test_an_error_reply_raises_and_is_the_exception(r):
    await r.set("s", "text")
    fut = r.incr("s")
    with pytest.raises(aredis.ResponseError):
        await fut
    assert isinstance(fut.exception(), aredis.ResponseError)
    with pytest.raises(aredis.ResponseError):
        fut.result()


async def test_gather_wait_and_shield(r):
    assert await asyncio.gather(r.set("a", 1), r.get("a"), r.incr("a")) == \
        [True, b"1", 2]
    done, pending = await asyncio.wait({r.ping(), r.ping()})
    assert len(done) == 2 and not pending
    assert all(f.result() is True for f in done)
    assert await asyncio.shield(r.echo("s")) == b"s"
    # gather with return_exceptions collects a failed command's error.
    res = await asyncio.gather(r.incr("nope", "x"), r.ping(),
                               return_exceptions=True)
    assert isinstance(res[0], aredis.RedisError) and res[1] is True


async def test_wait_for_cancels_a_command_that_takes_too_long(r):
    fut = r.execute_command("DEBUG", "SLEEP", "0.3")
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(fut, 0.05)
    assert fut.cancelled()
    with pytest.raises(asyncio.CancelledError):
        fut.result()
    # The reply that arrives later is dropped; the client goes on.
    assert await r.echo("after") == b"after"


async def test_cancelling_the_awaiting_task(r):
    started = asyncio.Event()

    async def waiter():
        fut = r.blpop("never-pushed", timeout=1)
        started.set()
        return await fut

    task = asyncio.create_task(waiter())
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel("enough")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert await r.ping() is True


async def test_done_callbacks_contexts_and_removal(r):
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "theirs")
    fut = r.ping()

    def cb(f):
        seen.append(("cb", var.get(), f.result()))

    def dropped(f):
        seen.append("dropped")

    fut.add_done_callback(cb, context=ctx)
    fut.add_done_callback(dropped)
    fut.add_done_callback(dropped)
    assert fut.remove_done_callback(dropped) == 2
    assert fut.remove_done_callback(dropped) == 0
    await fut
    await asyncio.sleep(0)
    assert seen == [("cb", "theirs", True)]
    # A callback added to a done future runs from the loop, not inline.
    fut.add_done_callback(cb)
    assert len(seen) == 1
    await asyncio.sleep(0)
    assert seen[1] == ("cb", "unset", True)


async def test_cancel_and_its_message(r):
    fut = r.execute_command("DEBUG", "SLEEP", "0.1")
    assert fut.cancel(msg="no longer needed") is True
    assert fut.cancel() is False
    assert fut.done() and fut.cancelled()
    with pytest.raises(asyncio.CancelledError, match="no longer needed"):
        fut.result()
    with pytest.raises(asyncio.CancelledError):
        fut.exception()
    with pytest.raises(ValueError):
        fut._asyncio_future_blocking = True
    assert await r.ping() is True


async def test_a_failing_callback_goes_to_the_exception_handler(r):
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        fut = r.ping()

        def bad(f):
            raise RuntimeError("callback failed")

        fut.add_done_callback(bad)
        assert await fut is True
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], RuntimeError)


async def test_many_awaiting_coroutines_resume_in_order(r):
    # More completions in one read than the batch holds: the first ones
    # resume in the reading iteration, the rest in the next, in order.
    order = []

    async def one(i):
        await r.echo(str(i))
        order.append(i)

    await asyncio.gather(*[one(i) for i in range(200)])
    assert order == list(range(200))


def test_run_until_complete_takes_a_command_future(port):
    loop = asyncio.new_event_loop()
    try:
        client = aredis.StrictRedis(host="127.0.0.1", port=port, loop=loop)
        assert loop.run_until_complete(client.echo("ruc")) == b"ruc"
        client.close()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
