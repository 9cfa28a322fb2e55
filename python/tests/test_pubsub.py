"""PubSub: confirmations, messages, handlers, get_message(timeout),
listen(), run_in_thread()."""
import asyncio
import threading
import time

import pytest

import aredis


async def test_documented_session(r):
    p = r.pubsub()
    await p.subscribe("my-first-channel", "my-second-channel")
    await p.psubscribe("my-*")
    got = [await p.get_message() for _ in range(3)]
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("subscribe", b"my-first-channel", 1),
        ("subscribe", b"my-second-channel", 2),
        ("psubscribe", b"my-*", 3)]
    assert all(m["pattern"] is None for m in got)
    assert await r.publish("my-first-channel", "some data") == 2
    m1, m2 = await p.get_message(), await p.get_message()
    assert m1 == {"channel": b"my-first-channel", "data": b"some data",
                  "pattern": None, "type": "message"}
    assert m2 == {"channel": b"my-first-channel", "data": b"some data",
                  "pattern": b"my-*", "type": "pmessage"}
    await p.unsubscribe()
    await p.punsubscribe("my-*")
    types = [(await p.get_message())["type"] for _ in range(3)]
    assert sorted(types) == ["punsubscribe", "unsubscribe", "unsubscribe"]
    assert await p.get_message() is None
    p.close()


async def test_handler_and_ignore(r):
    seen = []
    p = r.pubsub(ignore_subscribe_messages=True)
    await p.subscribe(**{"hc": seen.append})
    await p.subscribe("plain")
    assert await p.get_message() is None
    await asyncio.sleep(0.05)
    assert await r.publish("hc", "awesome data") == 1
    assert await r.publish("plain", "my data") == 1
    # The handler runs when the message is read, and get_message() then
    # returns None (as documented).
    assert await p.get_message(timeout=1) is None
    assert [m["data"] for m in seen] == [b"awesome data"]
    msg = await p.get_message(timeout=1)
    assert msg == {"channel": b"plain", "data": b"my data", "pattern": None,
                   "type": "message"}
    p.close()


async def test_get_message_timeout(r):
    p = r.pubsub(ignore_subscribe_messages=True)
    await p.subscribe("quiet")
    t = time.monotonic()
    assert await p.get_message(timeout=0.2) is None
    assert 0.15 <= time.monotonic() - t < 1.0
    p.close()


async def test_listen(rd):
    p = rd.pubsub()
    await p.subscribe("l")
    got = []

    async def reader():
        async for m in p.listen():
            got.append(m)
            if m["type"] == "message":
                return

    task = asyncio.ensure_future(reader())
    await asyncio.sleep(0.05)
    await rd.publish("l", "hi")
    await asyncio.wait_for(task, 2)
    assert [m["type"] for m in got] == ["subscribe", "message"]
    assert got[1]["data"] == "hi"
    p.close()


async def test_awaiting_listen_gives_the_messages_available(rd):
    # The older aredis's form, in its documentation:
    # `for message in await p.listen()`.
    p = rd.pubsub()
    assert await p.listen() == []  # nothing subscribed: nothing to wait for
    await p.subscribe("la")
    got = await asyncio.wait_for(p.listen(), 2)
    assert [(m["type"], m["channel"]) for m in got] == [("subscribe", "la")]
    for data in ("one", "two", "three"):
        assert await rd.publish("la", data) == 1
    got = []
    while len(got) < 3:
        got += [m["data"] for m in await asyncio.wait_for(p.listen(), 2)]
    assert got == ["one", "two", "three"]
    # It waits for a message: none yet, so it is still waiting.
    waiting = asyncio.ensure_future(p.listen())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await rd.publish("la", "four")
    assert [m["data"] for m in await asyncio.wait_for(waiting, 2)] == ["four"]
    p.close()


async def test_handlers_take_their_messages_from_listen(rd):
    seen = []
    p = rd.pubsub(ignore_subscribe_messages=True)
    await p.subscribe(**{"h": seen.append})
    await p.subscribe("plain")
    await rd.publish("h", "to the handler")
    await rd.publish("plain", "to the caller")
    got = await asyncio.wait_for(p.listen(), 2)
    assert [m["data"] for m in got] == ["to the caller"]
    assert [m["data"] for m in seen] == ["to the handler"]
    p.close()


async def test_run_in_thread(r):
    seen = []
    p = r.pubsub()
    await p.subscribe("plain")
    with pytest.raises(aredis.PubSubError):
        p.run_in_thread()
    await p.unsubscribe("plain")
    await p.subscribe(**{"t": seen.append})
    thread = p.run_in_thread(sleep_time=0.01)
    await asyncio.sleep(0.05)
    await r.publish("t", "x")
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    thread.stop()
    for _ in range(200):
        if not thread.is_alive():
            break
        await asyncio.sleep(0.01)
    assert not thread.is_alive()
    assert [m["data"] for m in seen] == [b"x"]
    p.close()


async def test_pubsub_introspection(r):
    p = r.pubsub()
    await p.subscribe("foo", "bar")
    await p.psubscribe("x*")
    for _ in range(3):
        await p.get_message()
    assert sorted(await r.pubsub_channels()) == [b"bar", b"foo"]
    assert await r.pubsub_numsub("foo", "baz") == [(b"foo", 1), (b"baz", 0)]
    assert await r.pubsub_numpat() == 1
    p.close()
    _ = threading


async def test_run_in_thread_ends_when_the_client_closes(port):
    # Its get_message() fails at once from then on: the thread must end,
    # not spin on the failure.
    c = aredis.StrictRedis(host="127.0.0.1", port=port, db=3)
    p = c.pubsub()
    await p.subscribe(**{"closing": lambda m: None})
    await p.get_message(timeout=1)
    thread = p.run_in_thread(sleep_time=0.01)
    await asyncio.sleep(0.05)
    c.close()
    for _ in range(500):
        if not thread.is_alive():
            break
        await asyncio.sleep(0.01)
    alive = thread.is_alive()
    thread.stop()
    for _ in range(500):
        if not thread.is_alive():
            break
        await asyncio.sleep(0.01)
    assert not alive
