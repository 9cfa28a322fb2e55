"""The futures commands return (aredis._core.Future): asyncio's future
protocol, as its Task and helpers use it, and the one difference from
asyncio.Future: the coroutine awaiting a reply resumes in the loop
iteration that read the reply."""
import asyncio
import contextvars
import gc
import traceback
import weakref

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


VAR = contextvars.ContextVar("VAR", default="loop")


def _failing_callback_report(loop, fut):
    """What the loop's exception handler is given when a done callback of
    `fut` (run in a context of its own) raises, and the VAR it sees."""
    reported = []
    ctx = contextvars.copy_context()
    ctx.run(VAR.set, "callback")

    def bad(f):
        assert VAR.get() == "callback"
        raise RuntimeError("callback failed")

    loop.set_exception_handler(
        lambda _loop, c: reported.append((dict(c), VAR.get())))
    fut.add_done_callback(bad, context=ctx)
    return bad, reported


async def test_a_failing_callback_goes_to_the_exception_handler(r):
    # As asyncio's Handle._run reports it: the message names the callback
    # and its argument, the context has the exception and a handle, and
    # the handler runs in the loop's context, not in the callback's.
    loop = asyncio.get_running_loop()
    try:
        fut = r.ping()
        bad, reported = _failing_callback_report(loop, fut)
        assert await fut is True
        await asyncio.sleep(0)
        if type(loop).__module__.startswith("asyncio"):
            # The same with one of asyncio's futures on this loop.
            theirs = loop.create_future()
            _, reported_theirs = _failing_callback_report(loop, theirs)
            theirs.set_result(True)
            await asyncio.sleep(0)
            assert len(reported_theirs) == 1
            assert sorted(reported_theirs[0][0]) == sorted(reported[0][0])
            assert reported_theirs[0][1] == reported[0][1]
    finally:
        loop.set_exception_handler(None)
    assert len(reported) == 1
    context, seen = reported[0]
    assert sorted(context) == ["exception", "handle", "message"]
    assert isinstance(context["exception"], RuntimeError)
    assert context["message"].startswith(
        f"Exception in callback {bad.__qualname__}(<aredis Fut")
    assert __file__ in context["message"]
    assert isinstance(context["handle"], asyncio.Handle)
    assert seen == "loop"


async def test_an_exception_nobody_retrieved_is_reported_when_the_future_goes(r):
    # As asyncio.Future: a future destroyed with an exception that neither
    # result(), exception() nor await took tells the loop's exception
    # handler; one whose exception was retrieved, or that succeeded, or
    # was cancelled, does not.
    loop = asyncio.get_running_loop()
    reported = []
    loop.set_exception_handler(lambda _loop, c: reported.append(c))
    await r.set("s", "text")

    async def settled(fut):
        done = asyncio.Event()
        fut.add_done_callback(lambda _: done.set())
        await done.wait()
        return fut

    try:
        fut = await settled(r.incr("s"))
        assert fut._log_traceback
        ref = weakref.ref(fut)
        del fut
        gc.collect()
        assert len(reported) == 1
        context = reported[0]
        assert sorted(context) == ["exception", "future", "message"]
        assert context["message"] == "Future exception was never retrieved"
        assert isinstance(context["exception"], aredis.ResponseError)
        # The handler keeps the future: it is alive again, and reported
        # once only.
        assert context["future"] is ref()
        assert context["future"].exception() is context["exception"]
        reported.clear()
        del context
        gc.collect()
        assert ref() is None and reported == []

        for retrieve in (lambda f: f.exception(), lambda f: f.result(),
                         lambda f: asyncio.create_task(f)):
            fut = await settled(r.incr("s"))
            task = None
            try:
                task = retrieve(fut)
                if task is not None and asyncio.isfuture(task):
                    await asyncio.wait([task])
                    assert isinstance(task.exception(), aredis.ResponseError)
            except aredis.ResponseError:
                pass
            assert not fut._log_traceback
            del fut, task
            gc.collect()
        fut = await settled(r.incr("s"))
        fut._log_traceback = False
        with pytest.raises(ValueError):
            fut._log_traceback = True
        del fut
        await settled(r.ping())
        cancelled = r.ping()
        cancelled.cancel()
        del cancelled
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_futures_can_be_weakly_referenced(r):
    # asyncio keeps futures in WeakSets (and so do programs).
    fut = r.ping()
    futures = weakref.WeakSet([fut])
    ref = weakref.ref(fut)
    assert ref() is fut and fut in futures
    assert await fut is True
    del fut
    # (Until the step of the task it resumed ends, the future is held by
    # what runs the step, as asyncio's Handle holds its arguments.)
    await asyncio.sleep(0)
    gc.collect()
    assert ref() is None and len(futures) == 0


async def test_raising_the_exception_again_does_not_grow_its_traceback(r):
    # As asyncio.Future: each result() or await raises the exception with
    # the traceback it had when it was set, plus the raising frames only.
    await r.set("s", "text")

    def failing(reply, **options):
        raise ValueError("from the response callback")

    def depth(exc):
        return len(traceback.extract_tb(exc.__traceback__))

    async def raised(fut, how):
        try:
            if how == "await":
                await fut
            else:
                fut.result()
        except Exception as exc:
            return exc
        raise AssertionError("did not raise")

    r.set_response_callback("ECHO", failing)
    for fut in (r.incr("s"), r.echo("x")):
        first = await raised(fut, "await")
        depths = {depth(await raised(fut, how))
                  for how in ("await", "result") * 5}
        assert depths == {depth(first)}
    # The response callback's frame stays in the traceback.
    assert "failing" in [fr.name for fr in traceback.extract_tb(
        first.__traceback__)]


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


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
@pytest.mark.parametrize("where", ["callback", "exception handler"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_in_a_batch_runs_the_other_callbacks_once(
        port, kind, where, exc):
    # KeyboardInterrupt or SystemExit from a done callback run in a batch,
    # or from the loop's exception handler told of another callback's
    # error (asyncio's call_exception_handler lets those through), leaves
    # run_until_complete(); every other callback of the batch runs, once,
    # in order (those after it from the loop's next turn).
    calls, reported, box = [], [], {}

    def handler(_loop, context):
        reported.append(context)
        if where == "exception handler":
            raise exc("from the exception handler")

    def good(i):
        return lambda f: calls.append(i)

    def bad(f):
        calls.append("bad")
        if where == "callback":
            raise exc("from the callback")
        raise RuntimeError("to the exception handler")

    async def main(loop):
        loop.set_exception_handler(handler)
        box["main"] = asyncio.current_task()
        r = box["r"] = aredis.StrictRedis(host="127.0.0.1", port=port)
        await r.ping()
        fut = r.ping()
        for cb in (good(0), good(1), bad, good(2), good(3)):
            fut.add_done_callback(cb)
        return await fut

    with pytest.raises(exc, match=f"from the {where}"):
        _run_on(kind, main)
    r = box["r"]
    loop = r._loop
    try:
        assert calls[:3] == [0, 1, "bad"]
        # The interrupted coroutine resumes (it awaited the future too).
        assert loop.run_until_complete(box["main"]) is True
        assert calls == [0, 1, "bad", 2, 3]
        assert len(reported) == (where == "exception handler")
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
