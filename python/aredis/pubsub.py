"""PubSub: subscriptions with handlers, get_message(timeout), listen(),
run_in_thread(), over the C library's pubsub (which resubscribes after a
reconnection by itself)."""
import asyncio
import threading

from . import _core
from .exceptions import PubSubError

_CONFIRMATIONS = {"subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                  "ssubscribe", "sunsubscribe"}


class _Listener:
    """What PubSub.listen() returns: an async iterator, and an awaitable
    of the messages available now."""

    __slots__ = ("_pubsub",)

    def __init__(self, pubsub):
        self._pubsub = pubsub

    def __aiter__(self):
        return self

    async def __anext__(self):
        msg = await self._pubsub._next_message(-1)
        if msg is None:
            raise StopAsyncIteration
        return msg

    def __await__(self):
        return self._batch().__await__()

    async def _batch(self):
        ps = self._pubsub
        msg = await ps._next_message(-1)
        out = []
        while msg is not None:
            out.append(msg)
            msg = await ps._next_message(0)
        return out


class PubSub:
    def __init__(self, client, ignore_subscribe_messages=False, **kwargs):
        self.client = client
        self.ignore_subscribe_messages = ignore_subscribe_messages
        self._pcore = None
        self.channels = {}
        self.patterns = {}
        # Confirmations asked for and not read yet: get_message() with no
        # timeout waits for these instead of returning None at once.
        self._expected = 0

    @property
    def _core(self):
        # Made on first use, so that a pubsub created outside the loop (at
        # import time) binds its client to the loop that runs it; made
        # again after close() (its own or the client's) once it holds no
        # subscription.
        pc = self._pcore
        if pc is None or (pc.closed and not self.subscribed):
            pc = self._pcore = _core.PubSub(self.client.core,
                                            self.ignore_subscribe_messages)
        return pc

    @property
    def subscribed(self):
        return bool(self.channels or self.patterns)

    def _names(self, args, kwargs):
        items = []
        for a in args:
            if isinstance(a, (list, tuple, set)):
                items += [(x, None) for x in a]
            else:
                items.append((a, None))
        items += list(kwargs.items())
        return items

    async def subscribe(self, *args, **kwargs):
        for name, handler in self._names(args, kwargs):
            self._core.subscribe(name)
            self.channels[name] = handler
            self._expected += 1

    async def psubscribe(self, *args, **kwargs):
        for name, handler in self._names(args, kwargs):
            self._core.psubscribe(name)
            self.patterns[name] = handler
            self._expected += 1

    async def unsubscribe(self, *args):
        if not args:
            self._expected += len(self.channels)
            self.channels = {}
            self._core.unsubscribe(None)
        for name, _ in self._names(args, {}):
            self._core.unsubscribe(name)
            self.channels.pop(name, None)
            self._expected += 1

    async def punsubscribe(self, *args):
        if not args:
            self._expected += len(self.patterns)
            self.patterns = {}
            self._core.punsubscribe(None)
        for name, _ in self._names(args, {}):
            self._core.punsubscribe(name)
            self.patterns.pop(name, None)
            self._expected += 1

    async def get_message(self, ignore_subscribe_messages=False, timeout=0):
        """The next message not taken by a handler, or None after timeout
        seconds. timeout <= 0 returns at once when nothing is queued --
        except while subscribe/unsubscribe confirmations are still on their
        way, which it waits for (up to a second)."""
        if timeout and timeout > 0:
            ms = int(timeout * 1000)
        elif self._expected > 0 and not self.ignore_subscribe_messages:
            ms = 1000
        else:
            ms = 10
        msg = await self._core.get_message(ms)
        if msg is None:
            return None
        return self._handle(msg, ignore_subscribe_messages)

    async def _next_message(self, ms):
        """The next message not taken by a handler, waiting up to ms
        milliseconds for each read (< 0: no limit); None when nothing is
        subscribed or awaited any more, or (ms >= 0) none came in time."""
        while self.subscribed or self._expected:
            msg = await self._core.get_message(ms)
            if msg is None:
                if ms >= 0:
                    return None
                continue
            msg = self._handle(msg)
            if msg is not None:
                return msg
        return None

    def _handle(self, msg, ignore_subscribe_messages=False):
        """What get_message() returns for a message read: confirmations
        unless ignored, and messages whose channel or pattern has no
        handler; a handler's messages go to the handler (None)."""
        kind = msg["type"]
        if kind in _CONFIRMATIONS:
            self._expected = max(0, self._expected - 1)
            if ignore_subscribe_messages or self.ignore_subscribe_messages:
                return None
            return msg
        if kind == "pmessage":
            handler = self.patterns.get(self._key(msg["pattern"]))
        else:
            handler = self.channels.get(self._key(msg["channel"]))
        if handler is not None:
            handler(msg)
            return None
        return msg

    def _key(self, name):
        # Subscriptions are remembered under the name the program gave.
        if name in self.channels or name in self.patterns:
            return name
        if isinstance(name, bytes):
            return name.decode(self.client._encoding, "replace")
        return name.encode(self.client._encoding)

    def listen(self):
        """The messages not taken by a handler, while subscribed, two ways:
        `async for message in p.listen()` reads them one by one as they
        come; `for message in await p.listen()` (the form of the older
        aredis) waits until one is available and gives a list of it and
        of those already received with it (an empty list when nothing is
        subscribed)."""
        return _Listener(self)

    def run_in_thread(self, daemon=False, sleep_time=0.001):
        """A thread that keeps reading messages for the handlers, with the
        loop of the main thread (asyncio.run_coroutine_threadsafe): the
        handlers run on that loop's thread."""
        for name, handler in list(self.channels.items()) + \
                list(self.patterns.items()):
            if handler is None:
                raise PubSubError(f"Channel or pattern {name!r} has no "
                                  "handler registered")
        thread = PubSubWorkerThread(self, self.client._loop, daemon,
                                    sleep_time)
        thread.start()
        return thread

    def close(self):
        if self._pcore is not None:
            self._pcore.close()
        self.channels = {}
        self.patterns = {}
        self._expected = 0

    reset = close

    async def execute_command(self, *args):
        name = str(args[0]).upper()
        fn = getattr(self, name.lower(), None)
        if name not in ("SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE",
                        "PUNSUBSCRIBE") or fn is None:
            raise PubSubError(f"{name} is not a pub/sub command")
        await fn(*args[1:])


class PubSubWorkerThread(threading.Thread):
    def __init__(self, pubsub, loop, daemon=False, sleep_time=0.001):
        super().__init__(daemon=daemon)
        self.pubsub = pubsub
        self.loop = loop
        self.sleep_time = sleep_time
        self._running = threading.Event()

    def run(self):
        self._running.set()
        while self._running.is_set():
            fut = asyncio.run_coroutine_threadsafe(
                self.pubsub.get_message(ignore_subscribe_messages=True,
                                        timeout=self.sleep_time), self.loop)
            try:
                fut.result(timeout=max(1.0, self.sleep_time * 10))
            except Exception:
                # A closed pubsub (or client) fails at once, every time:
                # nothing more to read.
                pc = self.pubsub._pcore
                if not self.loop.is_running() or (pc is not None and
                                                  pc.closed):
                    break

    def stop(self):
        self._running.clear()
