"""Run one example of the documentation against the test servers.

    run_doc_example.py [--context] FILE

The example runs as written, in a fresh namespace, with one adaptation
that is not in its text: the documentation's server addresses are mapped
onto the servers of the test run (AREDIS_EXAMPLE_PORT for 127.0.0.1:6379 /
localhost:6379 and the StrictRedis() default, AREDIS_EXAMPLE_CLUSTER
"host:port" for 172.17.0.2:7001, AREDIS_EXAMPLE_SENTINEL "host:port" for
localhost:26379). A file with top-level await (a REPL session of the
documentation) runs in asyncio.run(). Examples that only define
`example()` get it called afterwards (with a client when it takes one), and
the streams example gets its three functions called (HARNESS below).

With --context, the example runs in the documentation's context instead
of an empty namespace: the names its examples use without defining them,
as a reader of the whole page has them (CONTEXT below: the package and its
classes, redis-py's module name `redis` for the package (in the
namespace and to `import`), a client `r` and
a pubsub `p` of it).

Prints the example's output, then "RESULT ok" or "RESULT <Exception>:
<message>"; exits 0 either way (the test compares the result).
"""
import ast
import asyncio
import importlib
import inspect
import os
import sys
import traceback

import aredis
import aredis.sentinel

HARNESS = {
    "streams.py": ["append_msg_to_stream(client, entry)",
                   "fetch_entries(client, 'example_stream')",
                   "consuming_process(client)"],
}


def context():
    """The names the documentation's examples take for granted."""
    ns = {"asyncio": asyncio, "aredis": aredis, "redis": aredis}
    for name in ("StrictRedis", "StrictRedisCluster", "WatchError",
                 "LockError", "ClusterLock", "IdentityGenerator", "Cache",
                 "HerdCache", "Sentinel"):
        ns[name] = getattr(aredis, name)
    # `import redis` and `from redis.sentinel import ...` too.
    sys.modules["redis"] = aredis
    for mod in ("cache", "client", "exceptions", "lock", "pubsub",
                "scripting", "sentinel"):
        sys.modules["redis." + mod] = importlib.import_module("aredis." + mod)
    ns["r"] = aredis.StrictRedis()
    ns["p"] = ns["r"].pubsub()
    return ns


def remap():
    port = int(os.environ.get("AREDIS_EXAMPLE_PORT", "6379"))
    cluster = os.environ.get("AREDIS_EXAMPLE_CLUSTER")
    sentinel = os.environ.get("AREDIS_EXAMPLE_SENTINEL")

    init = aredis.StrictRedis.__init__

    unix = os.environ.get("AREDIS_EXAMPLE_UNIX")

    def strict_init(self, host="localhost", port_=6379, *a, **kw):
        if "port" in kw:
            port_ = kw.pop("port")
        if host in ("localhost", "127.0.0.1") and port_ == 6379:
            host, port_ = "127.0.0.1", port
        elif isinstance(host, str) and \
                host not in ("127.0.0.1", "::1", "localhost"):
            # Never reach out to the documentation's other addresses.
            raise RuntimeError(f"not a test server: {host}")
        if kw.get("unix_socket_path") == "/tmp/redis.sock" and unix:
            kw["unix_socket_path"] = unix
        init(self, host, port_, *a, **kw)

    aredis.StrictRedis.__init__ = strict_init

    cinit = aredis.StrictRedisCluster.__init__
    chost, _, cport = (cluster or "").rpartition(":")

    def cluster_init(self, host=None, port_=None, *a, **kw):
        if "port" in kw:
            port_ = kw.pop("port")
        if (host, port_) == ("172.17.0.2", 7001):
            if not cluster:
                # Never reach out to the documentation's address.
                raise RuntimeError("no test cluster for this example")
            host, port_ = chost, int(cport)
        cinit(self, host, port_, *a, **kw)

    aredis.StrictRedisCluster.__init__ = cluster_init

    if sentinel:
        sinit = aredis.sentinel.Sentinel.__init__
        shost, sport = sentinel.rsplit(":", 1)

        def sentinel_init(self, sentinels, *a, **kw):
            sentinels = [(shost, int(sport)) if p == 26379 else (h, p)
                         for h, p in sentinels]
            sinit(self, sentinels, *a, **kw)

        aredis.sentinel.Sentinel.__init__ = sentinel_init


def remap_redis_py():
    """As written, the Sentinel example imports redis-py's own Sentinel:
    it too is pointed at the test sentinel, never at whatever listens on
    port 26379 of this machine."""
    sentinel = os.environ.get("AREDIS_EXAMPLE_SENTINEL")
    try:
        import redis.sentinel
    except ImportError:
        return
    shost, sport = (sentinel or "127.0.0.1:1").rsplit(":", 1)
    init = redis.sentinel.Sentinel.__init__

    def sentinel_init(self, sentinels, *a, **kw):
        if not sentinel:
            raise RuntimeError("no test sentinel for this example")
        sentinels = [(shost, int(sport)) if p == 26379 else (h, p)
                     for h, p in sentinels]
        init(self, sentinels, *a, **kw)

    redis.sentinel.Sentinel.__init__ = sentinel_init


async def call_example(ns, name):
    fn = ns[name]
    args = []
    for p in inspect.signature(fn).parameters:
        args.append(aredis.StrictRedis())
        del p
    await fn(*args)


def main(args):
    in_context = args[0] == "--context"
    path = args[-1]
    remap()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    name = os.path.basename(path)
    ns = {"__name__": "__main__"}
    try:
        if in_context:
            ns.update(context())
        elif "redis.sentinel" in source:
            remap_redis_py()
        code = compile(source, path, "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            async def session():
                await eval(code, ns)
                if "example" in ns and "example(" not in \
                        source.replace("def example(", ""):
                    await call_example(ns, "example")
            asyncio.run(session())
        else:
            exec(code, ns)
            calls = HARNESS.get(name)
            if calls:
                async def harness():
                    ns["client"] = aredis.StrictRedis()
                    for c in calls:
                        await eval(c, ns)
                asyncio.run(harness())
            elif inspect.iscoroutinefunction(ns.get("example")) and \
                    "example(" not in source.replace("def example(", ""):
                asyncio.run(call_example(ns, "example"))
    except BaseException as e:  # noqa: B902 - reported, not hidden
        traceback.print_exc()
        print(f"RESULT {type(e).__name__}: {e}")
        return 0
    print("RESULT ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
