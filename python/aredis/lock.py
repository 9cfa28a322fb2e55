"""Lock and ClusterLock (the documented API) with the guarantees of the C
library's locks: release and extend only by the token holder, atomically
(Lua), with distinct errors; ClusterLock acquires only when WAIT reports a
majority of the replicas, and deletes the key otherwise."""
import asyncio
import threading
import time
import uuid

from .exceptions import LockError, LockNotOwnedError

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

_EXTEND = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
local ttl = redis.call('pttl', KEYS[1])
if ttl < 0 then
    return 0
end
redis.call('pexpire', KEYS[1], ttl + tonumber(ARGV[2]))
return 1
"""


class Lock:
    """A lock named by a key, mimicking threading.Lock: at most one holder
    per Redis master while the key lives (no failover assumed). timeout is
    the lock's life in seconds (None: until released)."""

    def __init__(self, redis, name, timeout=None, sleep=0.1,
                 blocking=True, blocking_timeout=None, thread_local=True):
        if timeout is not None and blocking_timeout is not None and \
                sleep > blocking_timeout > 0:
            raise LockError("sleep is longer than blocking_timeout")
        self.redis = redis
        self.name = name
        self.timeout = timeout
        self.sleep = sleep
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        self.thread_local = bool(thread_local)
        self.local = threading.local() if self.thread_local else \
            type("dummy", (), {})()
        self.local.token = None
        self._release = redis.register_script(_RELEASE)
        self._extend = redis.register_script(_EXTEND)

    async def __aenter__(self):
        if await self.acquire():
            return self
        raise LockError("Unable to acquire lock within the time specified")

    async def __aexit__(self, exc_type, exc_value, traceback):
        await self.release()

    def _token(self):
        return getattr(self.local, "token", None)

    async def acquire(self, blocking=None, blocking_timeout=None):
        """True once acquired; False when not blocking, or when
        blocking_timeout seconds passed (one last attempt is made at the
        deadline)."""
        token = uuid.uuid1().hex.encode()
        blocking = self.blocking if blocking is None else blocking
        if blocking_timeout is None:
            blocking_timeout = self.blocking_timeout
        stop_at = None
        if blocking_timeout is not None:
            stop_at = time.monotonic() + blocking_timeout
        while True:
            if await self.do_acquire(token):
                self.local.token = token
                return True
            if not blocking:
                return False
            now = time.monotonic()
            if stop_at is not None:
                if now >= stop_at:
                    return False
                await asyncio.sleep(min(self.sleep, stop_at - now))
            else:
                await asyncio.sleep(self.sleep)

    async def do_acquire(self, token):
        px = int(self.timeout * 1000) if self.timeout else None
        return bool(await self.redis.set(self.name, token, nx=True, px=px))

    async def locked(self):
        return await self.redis.get(self.name) is not None

    async def owned(self):
        token = self._token()
        return token is not None and \
            await self.redis.get(self.name) in (token, token.decode())

    async def release(self):
        """Release the lock; LockError if this handle does not hold it,
        LockNotOwnedError if it expired and is someone else's now."""
        token = self._token()
        if token is None:
            raise LockError("Cannot release an unlocked lock")
        self.local.token = None
        if not await self._release.execute(keys=[self.name], args=[token]):
            raise LockNotOwnedError("Cannot release a lock that's no "
                                    "longer owned")

    async def extend(self, additional_time):
        """Add additional_time seconds to the lock's remaining life."""
        token = self._token()
        if token is None:
            raise LockError("Cannot extend an unlocked lock")
        if self.timeout is None:
            raise LockError("Cannot extend a lock with no timeout")
        if not await self._extend.execute(
                keys=[self.name], args=[token, int(additional_time * 1000)]):
            raise LockNotOwnedError("Cannot extend a lock that's no longer "
                                    "owned")
        return True


LuaLock = Lock


class ClusterLock(Lock):
    """A Lock whose acquire also waits for ⌊replicas/2⌋+1 replicas to
    acknowledge the key (WAIT), within the lock's timeout; with too few
    acknowledgements the key is deleted and the acquire fails. With no
    replica at all it behaves as Lock."""

    async def do_acquire(self, token):
        if not await super().do_acquire(token):
            return False
        # INFO and WAIT on the key's primary: WAIT counts the writes of
        # the connection the SET went on, that node's shared one.
        node = self.redis._key_node_command
        info = await node(self.name, "INFO", "replication")
        replicas = int(info.get("connected_slaves", 0))
        if replicas == 0:
            return True
        need = replicas // 2 + 1
        wait_ms = int((self.timeout or 1) * 1000 / 2)
        acks = await node(self.name, "WAIT", need, wait_ms)
        if acks >= need:
            return True
        await self._release.execute(keys=[self.name], args=[token])
        return False
