"""StrictRedis, its pipeline and the cluster client.

A client binds to an asyncio loop on its first command (the loop given with
``loop=``, else the running one): from then on the C core runs on that loop
through its add_reader/add_writer/call_soon/call_later, and a command is a
call into C that returns an asyncio-compatible future (aredis._core.Future,
python/src/future.h), also usable as a coroutine. Commands from every coroutine
share one pipelined connection; WATCH, blocking commands and pub/sub on
RESP2 take pooled connections of their own (see the C library's guide).
"""
import asyncio
import ssl as _ssl
from urllib.parse import parse_qs, unquote, urlparse

from . import _core
from .commands import RESPONSE_CALLBACKS, CommandsMixin, _mapping
from .exceptions import ClusterDownError, RedisError, WatchError

# Options of redis-py URLs that are Python-side settings, not the C
# library's URL options.
_PY_URL_OPTIONS = {"decode_responses", "encoding", "socket_timeout",
                   "stream_timeout", "socket_connect_timeout",
                   "connect_timeout", "max_connections", "retry_on_timeout",
                   "socket_keepalive", "max_idle_time", "ssl_cert_reqs"}


_DEFAULT = object()
_NODES_PRIMARIES = 1        # aredis_client_nodes(): AREDIS_NODES_PRIMARIES


def _ms(seconds):
    return None if seconds is None else int(float(seconds) * 1000)


def _truthy(v):
    return str(v).lower() in ("1", "true", "yes", "on")


class StrictRedis(CommandsMixin):
    """The asyncio client of the documentation, on the C core."""

    RESPONSE_CALLBACKS = RESPONSE_CALLBACKS
    # The documentation's name for the class-level overrides: a subclass
    # may set either; REDIS_CALLBACKS entries win.
    REDIS_CALLBACKS = {}

    def __init__(self, host="localhost", port=6379, db=0, password=None,
                 stream_timeout=None, connect_timeout=None,
                 connection_pool=None, unix_socket_path=None,
                 encoding="utf-8", decode_responses=False, ssl=False,
                 ssl_context=None, ssl_keyfile=None, ssl_certfile=None,
                 ssl_cert_reqs=None, ssl_ca_certs=None, max_connections=None,
                 retry_on_timeout=False, max_idle_time=0,
                 idle_check_interval=1, client_name=None, username=None,
                 loop=None, url=None, socket_keepalive=None,
                 socket_keepalive_options=None, socket_timeout=None,
                 **kwargs):
        opts = {"db": int(db) if db is not None else 0,
                "password": password, "username": username,
                "client_name": client_name}
        if url is not None:
            opts["url"] = url
            if db is None:
                del opts["db"]
        elif unix_socket_path is not None:
            opts["path"] = unix_socket_path
        else:
            opts["host"] = host
            opts["port"] = int(port)
        stream_timeout = stream_timeout if stream_timeout is not None \
            else socket_timeout
        if stream_timeout is not None:
            opts["command_timeout_ms"] = max(1, _ms(stream_timeout))
        if connect_timeout is not None:
            opts["connect_timeout_ms"] = max(1, _ms(connect_timeout))
        if max_connections:
            opts["pool_max"] = int(max_connections)
        if max_idle_time:
            opts["pool_idle_ms"] = _ms(max_idle_time)
        if retry_on_timeout:
            opts["retry_read_only"] = 1
        if socket_keepalive:
            ko = socket_keepalive_options or {}
            import socket
            opts["keepalive_idle_s"] = int(ko.get(
                getattr(socket, "TCP_KEEPIDLE", -1), 60))
            if getattr(socket, "TCP_KEEPINTVL", -1) in ko:
                opts["keepalive_interval_s"] = int(ko[socket.TCP_KEEPINTVL])
            if getattr(socket, "TCP_KEEPCNT", -1) in ko:
                opts["keepalive_count"] = int(ko[socket.TCP_KEEPCNT])
        tls_url = url is not None and url.lower().startswith("rediss")
        if ssl or ssl_context is not None or tls_url:
            if not tls_url:
                opts["tls"] = 1
            opts["tls_ca_file"] = ssl_ca_certs
            opts["tls_cert_file"] = ssl_certfile
            opts["tls_key_file"] = ssl_keyfile
            reqs = ssl_cert_reqs
            if ssl_context is not None:
                # Only what the C library can honour is taken from the
                # context: whether to verify. Certificates go by file.
                reqs = ssl_context.verify_mode
                if not ssl_context.check_hostname and \
                        reqs == _ssl.CERT_NONE:
                    reqs = "none"
            if reqs is not None and (reqs == _ssl.CERT_NONE or str(
                    reqs).lower() in ("none", "cert_none")):
                opts["tls_insecure"] = 1
        opts.update(kwargs.pop("_core_options", {}))
        if kwargs:
            # Accepted for compatibility (connection_class, parser_class,
            # ...): the C core has its own connection and parser.
            pass
        self._options = {k: v for k, v in opts.items() if v is not None}
        self._decode = bool(decode_responses)
        self._encoding = encoding or "utf-8"
        self._loop = loop
        self._loop_given = loop is not None
        self._core = None
        self.response_callbacks = dict(self.RESPONSE_CALLBACKS)
        self.response_callbacks.update(self.REDIS_CALLBACKS)

    @classmethod
    def from_url(cls, url, db=None, **kwargs):
        """redis://[[user]:password@]host[:port][/db][?options],
        rediss://..., unix:///path?db=N, redis+cluster://h1:p1,h2:p2,
        redis+sentinel://s1:p1,s2:p2/service (the C library's URLs)."""
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        rest = []
        for k, vals in query.items():
            if k in _PY_URL_OPTIONS:
                v = vals[0]
                if k == "decode_responses":
                    kwargs.setdefault(k, _truthy(v))
                elif k in ("socket_timeout", "stream_timeout"):
                    kwargs.setdefault("stream_timeout", float(v))
                elif k in ("socket_connect_timeout", "connect_timeout"):
                    kwargs.setdefault("connect_timeout", float(v))
                elif k == "max_connections":
                    kwargs.setdefault(k, int(v))
                elif k == "encoding":
                    kwargs.setdefault(k, unquote(v))
                elif k == "ssl_cert_reqs":
                    kwargs.setdefault(k, v)
                elif k in ("socket_keepalive", "retry_on_timeout"):
                    kwargs.setdefault(k, _truthy(v))
                elif k == "max_idle_time":
                    kwargs.setdefault(k, float(v))
            else:
                rest += [f"{k}={v}" for v in vals]
        # Only the query changes: urlunparse() would turn unix:///path
        # into unix:/path (it drops an empty netloc).
        c_url = url.partition("?")[0] + ("?" + "&".join(rest) if rest else "")
        if db is not None:
            kwargs.setdefault("_core_options", {})["db"] = int(db)
        return cls(url=c_url, db=None, **kwargs)

    # ---- binding to the loop ---------------------------------------------

    def _bind(self):
        loop = self._loop
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = asyncio.get_event_loop()
            self._loop = loop
        self._core = _core.Client(loop, self._options,
                                  self.response_callbacks, self._decode,
                                  self._encoding)
        if type(self).execute_command is StrictRedis.execute_command:
            # The hot path: the generated methods call straight into C.
            self.execute_command = self._core.execute_command
        return self._core

    @property
    def core(self):
        return self._core or self._bind()

    def execute_command(self, *args, **options):
        """Send a command; an awaitable of its reply, converted by the
        response callback of args[0] when there is one."""
        return self.core.execute_command(*args, **options)

    def set_response_callback(self, command, callback):
        """Set a custom response callback for this client only."""
        self.response_callbacks[command] = callback

    def _key_node_command(self, key, *args):
        """A command for the server holding ``key``, even one a cluster
        client refuses to route (WAIT)."""
        return self.execute_command(*args)

    def close(self):
        """Let the commands in flight complete, then free the connection."""
        if self._core is not None:
            self._core.close()
            self._core = None
            self.__dict__.pop("execute_command", None)
            if not self._loop_given:
                # The next command binds to the loop running it then.
                self._loop = None

    def __repr__(self):
        return f"{type(self).__name__}<{self._options}>"

    # ---- extras -------------------------------------------------------

    def pipeline(self, transaction=True, shard_hint=None, watches=None):
        """A pipeline; usable as is or awaited (``await r.pipeline()``)."""
        return Pipeline(self, transaction, watches)

    async def transaction(self, func, *watches, **kwargs):
        """Run func(pipe) in a WATCH/MULTI/EXEC transaction, retrying while
        a watched key changes. func may be a coroutine function."""
        value_from_callable = kwargs.pop("value_from_callable", False)
        watch_delay = kwargs.pop("watch_delay", None)
        async with self.pipeline(True) as pipe:
            while True:
                try:
                    if watches:
                        await pipe.watch(*watches)
                    func_value = func(pipe)
                    if asyncio.iscoroutine(func_value) or \
                            asyncio.isfuture(func_value):
                        func_value = await func_value
                    exec_value = await pipe.execute()
                    return func_value if value_from_callable else exec_value
                except WatchError:
                    if watch_delay is not None and watch_delay > 0:
                        await asyncio.sleep(watch_delay)
                    continue

    def register_script(self, script):
        from .scripting import Script
        return Script(self, script)

    def pubsub(self, **kwargs):
        from .pubsub import PubSub
        return PubSub(self, **kwargs)

    def lock(self, name, timeout=None, sleep=0.1, blocking_timeout=None,
             lock_class=None, thread_local=True):
        from .lock import Lock
        lock_class = lock_class or Lock
        return lock_class(self, name, timeout=timeout, sleep=sleep,
                          blocking_timeout=blocking_timeout,
                          thread_local=thread_local)

    def cache(self, name, cache_class=None,
              identity_generator_class=_DEFAULT, compressor_class=_DEFAULT,
              serializer_class=_DEFAULT, *args, **kwargs):
        """A Cache (or cache_class, e.g. HerdCache) named `name`. Each of
        the three helper classes may be replaced, or set to None to go
        without it."""
        from . import cache as _cache

        def pick(given, default):
            return default if given is _DEFAULT else given

        return (cache_class or _cache.Cache)(
            self, name,
            pick(identity_generator_class, _cache.IdentityGenerator),
            pick(compressor_class, _cache.Compressor),
            pick(serializer_class, _cache.Serializer), *args, **kwargs)

    def select(self, db):
        raise RedisError("SELECT is not supported: use one client per "
                         "database (db=)")


Redis = StrictRedis


class Pipeline(CommandsMixin):
    """Buffers commands and sends them together, wrapped in MULTI/EXEC by
    default. A buffered command returns the pipeline itself, which is
    awaitable (to itself), so both ``pipe.set(...)`` and ``await
    pipe.set(...)`` queue. After watch(), commands run at once and return
    their replies, until multi()."""

    def __init__(self, client, transaction=True, watches=None):
        self.client = client
        self.transaction = transaction
        self._pcore = None
        self.response_callbacks = client.response_callbacks
        self._stack = []
        self._scripts = []
        self.watching = False
        self.explicit_transaction = False
        self._watches = watches

    @property
    def _core(self):
        # Made on first use, so that a pipeline created outside the loop
        # (at import time) binds its client to the loop that runs it; made
        # again when the one it had is gone (the client was closed, or a
        # reset() found it busy) and nothing is queued or watched on it.
        pc = self._pcore
        if pc is None or (pc.closed and not self._stack and
                          not self.watching):
            pc = self._pcore = _core.Pipeline(self.client.core,
                                              self.transaction)
        return pc

    def __await__(self):
        if self._watches:
            watches, self._watches = self._watches, None
            yield from self.watch(*watches).__await__()
        return self

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc_value, traceback):
        await self.reset()

    def __len__(self):
        return len(self._stack)

    def __bool__(self):
        return True

    def execute_command(self, *args, **options):
        if self.watching and not self.explicit_transaction:
            return self._immediate(args, options)
        self._core.command(*args)
        self._stack.append((args[0], options))
        return self

    async def _immediate(self, args, options):
        res = await self._core.immediate(*args)
        cb = self.response_callbacks.get(args[0])
        return cb(res, **options) if cb is not None else res

    async def watch(self, *names):
        if self.explicit_transaction:
            raise RedisError("Cannot issue a WATCH after a MULTI")
        await self._core.watch(*names)
        self.watching = True
        return True

    async def unwatch(self):
        await self.reset()
        return True

    def multi(self):
        """Start buffering the transaction after watch()."""
        if self.explicit_transaction:
            raise RedisError("Cannot issue nested calls to MULTI")
        if self._stack:
            raise RedisError("Commands without an initial WATCH have "
                             "already been issued")
        if self._core.watching():
            self._core.multi()
        self.explicit_transaction = True

    async def reset(self):
        if self._pcore is not None:
            self._pcore.reset()
        self._stack = []
        self._scripts = []
        self.watching = False
        self.explicit_transaction = False

    async def execute(self, raise_on_error=True):
        stack, scripts = self._stack, self._scripts
        if scripts:
            await self._load_scripts(scripts)
        if not stack:
            await self.reset()
            return []
        try:
            fut = self._core.execute()
        except Exception:
            # Nothing was sent; the C pipeline kept its queue.
            await self.reset()
            raise
        try:
            replies = await fut
        finally:
            self._stack = []
            self._scripts = []
            self.watching = False
            self.explicit_transaction = False
        out = []
        for (command, options), r in zip(stack, replies):
            if isinstance(r, Exception):
                if raise_on_error:
                    raise r
                out.append(r)
                continue
            cb = self.response_callbacks.get(command)
            out.append(cb(r, **options) if cb is not None else r)
        return out

    async def _load_scripts(self, scripts):
        shas = [s.sha for s in scripts]
        exists = await self.client.script_exists(*shas)
        for s, ok in zip(scripts, exists):
            if not ok:
                s.sha = await self.client.script_load(s.script)


StrictPipeline = Pipeline


def _is_node_map(response):
    return isinstance(response, dict) and \
        all(b":" in k if isinstance(k, bytes) else ":" in k
            for k in response)


def _per_node(callback, merge):
    def parse(response, **options):
        if not _is_node_map(response):
            # One node's reply (CONFIG GET's is a dict of settings).
            return callback(response, **options) if callback else response
        out = {(k.decode() if isinstance(k, bytes) else k):
               callback(v, **options) if callback else v
               for k, v in response.items()}
        return merge(out.values()) if merge else out
    return parse


class StrictRedisCluster(StrictRedis):
    """A Redis Cluster client: the C client's cluster topology, from one or
    more seed nodes (host/port, startup_nodes=[{'host':, 'port':}, ...])."""

    def __init__(self, host=None, port=None, startup_nodes=None,
                 max_connections=None, readonly=False, password=None,
                 username=None, **kwargs):
        nodes = list(startup_nodes or [])
        if host is not None:
            nodes.insert(0, {"host": host, "port": port or 6379})
        if not nodes:
            nodes = [{"host": "127.0.0.1", "port": 7000}]
        seeds = ",".join(
            f"[{n['host']}]:{n['port']}" if ":" in str(n["host"])
            else f"{n['host']}:{n['port']}" for n in nodes)
        scheme = "rediss+cluster" if kwargs.pop("ssl", False) \
            else "redis+cluster"
        # readonly: reads go to the slot's primary and replicas in turn, as
        # the documented client's read-only pool picked among them.
        query = "?read_from=any" if readonly else ""
        super().__init__(url=f"{scheme}://{seeds}{query}", db=None,
                         password=password, username=username,
                         max_connections=max_connections, **kwargs)
        for command in self.NODE_REPLY_COMMANDS:
            self.set_response_callback(
                command, self.response_callbacks.get(command))

    # Commands the C client sends to every node, whose reply is a map from
    # "host:port" to that node's reply: the command's callback applies to
    # each node's reply and the result is {"host:port": result}, as the
    # documented cluster client gave; PING is True when every node said so.
    NODE_REPLY_COMMANDS = {"INFO": None, "CONFIG GET": None, "TIME": None,
                           "LASTSAVE": None, "ROLE": None, "PING": all}

    def set_response_callback(self, command, callback):
        if command in self.NODE_REPLY_COMMANDS:
            callback = _per_node(callback, self.NODE_REPLY_COMMANDS[command])
        super().set_response_callback(command, callback)

    @classmethod
    def from_url(cls, url, db=None, **kwargs):
        p = urlparse(url)
        return cls(host=p.hostname, port=p.port or 6379,
                   password=p.password, **kwargs)

    def _key_node_command(self, key, *args):
        node = self.core.key_primary(key)
        if node is None:
            raise ClusterDownError(f"no node serves the slot of {key!r}")
        return self.core.node_command(node[0], node[1], *args)

    async def scan_iter(self, match=None, count=None):
        """Every key of the cluster: SCAN on each primary in turn."""
        if not self.core.nodes(_NODES_PRIMARIES):
            await self.ping()       # waits for the first slot map
        args = (["MATCH", match] if match is not None else []) + \
            (["COUNT", count] if count is not None else [])
        for host, port, _ in self.core.nodes(_NODES_PRIMARIES):
            cursor = None
            while cursor != 0:
                cursor, keys = await self.core.node_command(
                    host, port, "SCAN", cursor or 0, *args)
                for key in keys:
                    yield key

    def pipeline(self, transaction=False, shard_hint=None, watches=None):
        return Pipeline(self, transaction, watches)

    # Multi-key commands whose keys may live in different slots: done key
    # by key, as the documented cluster client does (not atomic).

    async def rpoplpush(self, src, dst):
        value = await self.rpop(src)
        if value is not None:
            await self.lpush(dst, value)
        return value

    async def mget(self, keys, *args):
        keys = list(keys) if isinstance(keys, (list, tuple)) else [keys]
        return list(await asyncio.gather(
            *[self.get(k) for k in keys + list(args)]))

    async def mset(self, *args, **kwargs):
        mapping = _mapping("MSET", args, kwargs)
        await asyncio.gather(*[self.set(k, v) for k, v in mapping.items()])
        return True

    async def delete(self, *names):
        counts = await asyncio.gather(
            *[self.execute_command("DEL", n) for n in names])
        return sum(counts)

