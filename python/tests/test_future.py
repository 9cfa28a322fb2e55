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
    done, pending = await asyncio.wait({asyncio.create_task(r.ping()),
                                        asyncio.create_task(r.ping())})
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


async def test_gather_of_command_futures_can_be_cancelled(r):
    # asyncio.gather() asks a cancelled child for _make_cancelled_error()
    # and _cancel_message: without them its outer future never completes
    # (wait_for() around it would hang instead of timing out).
    blocked = r.blpop("never-pushed", timeout=1)
    ping = r.ping()
    outer = asyncio.gather(blocked, ping)
    assert await ping is True
    outer.cancel()
    done, _ = await asyncio.wait({outer}, timeout=10)
    assert outer in done
    with pytest.raises(asyncio.CancelledError):
        outer.result()
    assert blocked.cancelled()

    # return_exceptions=True: a cancelled child is a CancelledError in the
    # results, with its cancel() message.
    blocked = r.blpop("never-pushed", timeout=1)
    outer = asyncio.gather(blocked, r.ping(), return_exceptions=True)
    blocked.cancel("not needed")
    res = await asyncio.wait_for(outer, 10)
    assert isinstance(res[0], asyncio.CancelledError)
    assert res[0].args == ("not needed",) and res[1] is True
    assert blocked._cancel_message == "not needed"
    assert isinstance(blocked._make_cancelled_error(),
                      asyncio.CancelledError)


async def test_contextvars_of_coroutines_resumed_together(r):
    # Two coroutines whose replies are read in one go resume from the same
    # loop callback, each in its own task's context: what one sets is not
    # seen by the other, nor by the loop callback's context.
    var = contextvars.ContextVar("var", default="unset")
    seen = {}

    async def setter():
        await r.ping()
        var.set("setter")
        await r.ping()
        seen["setter"] = var.get()

    async def reader():
        await r.ping()
        await r.ping()
        seen["reader"] = var.get()

    for _ in range(20):
        await asyncio.gather(setter(), reader(), setter(), reader())
        assert seen == {"setter": "setter", "reader": "unset"}
        assert var.get() == "unset"


def _run_on(kind, coro_fn):
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    # A loop that does not stop by itself fails the test, not hangs it.
    stopped = []
    guard = loop.call_later(10, lambda: (stopped.append(1), loop.stop()))
    try:
        return loop, loop.run_until_complete(coro_fn(loop))
    finally:
        guard.cancel()
        assert not stopped, "the loop ran on"


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_from_a_resumed_coroutine_stops_the_loop(
        port, kind, exc):
    # As with asyncio's futures: KeyboardInterrupt or SystemExit raised by
    # a coroutine resumed by our future leaves run_until_complete(). The
    # coroutines that were to resume after it in the same loop callback
    # still do (from the loop's next turn), and the loop stays usable.
    resumed = []
    box = {}

    async def main(loop):
        r = box["r"] = aredis.StrictRedis(host="127.0.0.1", port=port)
        await r.ping()
        shared = r.echo("shared")

        async def other(i):
            await shared
            resumed.append(i)

        box["others"] = [asyncio.ensure_future(other(i)) for i in range(40)]
        # First in the future's callbacks, before the 40 others.
        await shared
        raise exc("from the coroutine")

    with pytest.raises(exc, match="from the coroutine"):
        _run_on(kind, main)
    r = box["r"]
    loop = r._loop
    try:
        _, pending = loop.run_until_complete(
            asyncio.wait(box["others"], timeout=10))
        assert not pending
        # (Those beyond the batch's 32 were handed to call_soon before
        # the interrupt, so they come first.)
        assert sorted(resumed) == list(range(40))
        assert loop.run_until_complete(r.echo("after")) == b"after"
    finally:
        r.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


async def test_create_task_takes_a_command_as_it_took_the_originals_coroutines(r):
    # The original library's command methods were coroutines, and programs
    # hand them to create_task(); a command's future is one too.
    await r.set("ct", "v")
    task = asyncio.create_task(r.get("ct"))
    assert await task == b"v"
    tasks = [asyncio.create_task(r.echo(str(i))) for i in range(5)]
    assert [t.result() for t in (await asyncio.wait(tasks))[0]
            if t] and await asyncio.gather(*tasks) == \
        [str(i).encode() for i in range(5)]
    # An error reply fails the task with it.
    failing = asyncio.create_task(r.incr("ct"))
    with pytest.raises(aredis.ResponseError):
        await failing
    # Cancelling the task cancels the command's future.
    fut = r.blpop("never-pushed", timeout=1)
    task = asyncio.create_task(fut)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fut.cancelled()
    # A None result (not a StopIteration without a value by mistake).
    assert await asyncio.create_task(r.get("absent-key")) is None
    assert await r.ping() is True
