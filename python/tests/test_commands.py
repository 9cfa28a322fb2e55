"""Command methods and their documented Python return types."""
import asyncio
import datetime

import pytest

import aredis
from aredis import commands


async def test_getting_started_types(r):
    assert await r.set("foo", 1) is True
    assert await r.exists("foo") is True
    assert await r.incr("foo", 100) == 101
    assert await r.get("foo") == b"101"
    assert await r.expire("foo", 10) is True
    assert 0 < await r.ttl("foo") <= 10
    assert await r.persist("foo") is True
    assert await r.ttl("foo") == -1       # ints, as the documented client
    assert await r.pttl("foo") == -1
    assert await r.delete("foo") == 1
    assert await r.exists("foo") is False
    assert await r.get("foo") is None
    assert await r.ttl("foo") == -2
    assert await r.pttl("foo") == -2


async def test_decode_responses(rd):
    await rd.set("k", "välue")
    assert await rd.get("k") == "välue"
    await rd.hset("h", mapping={"a": 1, "b": "x"})
    assert await rd.hgetall("h") == {"a": "1", "b": "x"}


async def test_encoding(port):
    r = aredis.StrictRedis(port=port, db=3, encoding="latin-1",
                           decode_responses=True)
    await r.set("lat", "é")
    assert await r.get("lat") == "é"
    raw = aredis.StrictRedis(port=port, db=3)
    assert await raw.get("lat") == b"\xe9"


async def test_argument_types(r):
    await r.set("f", 1.5)
    assert await r.get("f") == b"1.5"
    await r.set("b", b"\x00\xffbin")
    assert await r.get("b") == b"\x00\xffbin"
    await r.set("big", 2 ** 70)
    assert await r.get("big") == str(2 ** 70).encode()
    await r.set("mv", memoryview(b"view"))
    assert await r.get("mv") == b"view"
    assert await r.incrbyfloat("f", 1) == 2.5


async def test_strings_and_keys(r):
    assert await r.mset({"a": 1, "b": 2}) is True
    assert await r.mget("a", "b", "c") == [b"1", b"2", None]
    assert await r.mget(["a", "b"]) == [b"1", b"2"]
    assert await r.setnx("a", 3) is False
    assert await r.set("a", 5, nx=True) is None
    assert await r.set("n", 5, ex=100, nx=True) is True
    assert await r.getset("a", 9) == b"1"
    assert await r.append("a", "x") == 2
    assert await r.strlen("a") == 2
    assert await r.decr("cnt") == -1
    assert sorted(await r.keys("*")) == [b"a", b"b", b"cnt", b"n"]
    assert await r.rename("b", "b2") is True
    assert await r.type("b2") == b"string"
    assert await r.dbsize() == 4
    assert await r.ping() is True
    t = await r.time()
    assert isinstance(t, tuple) and t[0] > 1_600_000_000


async def test_lists_sets_hashes(r):
    assert await r.rpush("l", 1, 2, 3) == 3
    assert await r.lrange("l", 0, -1) == [b"1", b"2", b"3"]
    assert await r.lpop("l") == b"1"
    assert await r.blpop("l", 1) == (b"l", b"2")
    assert await r.blpop(["nothing"], timeout=1) is None
    assert await r.sadd("s", "a", "b") == 2
    assert await r.smembers("s") == {b"a", b"b"}
    assert await r.sismember("s", "a") is True
    assert await r.hset("h", "f", "v") == 1
    assert await r.hget("h", "f") == b"v"
    assert await r.hgetall("h") == {b"f": b"v"}
    assert await r.hexists("h", "g") is False
    assert await r.hincrbyfloat("h", "n", 0.5) == 0.5
    assert await r.hmget("h", "f", "zz") == [b"v", None]


async def test_sorted_sets(r):
    assert await r.zadd("z", 1, "a", 2, "b") == 2
    assert await r.zadd("z", c=3) == 1
    assert await r.zadd("z", {"d": 4}) == 1
    assert await r.zrange("z", 0, 1) == [b"a", b"b"]
    assert await r.zrange("z", 0, 1, withscores=True) == \
        [(b"a", 1.0), (b"b", 2.0)]
    assert await r.zrange("z", 0, 0, desc=True) == [b"d"]
    assert await r.zrevrange("z", 0, 0, withscores=True) == [(b"d", 4.0)]
    assert await r.zrangebyscore("z", 2, 3, withscores=True,
                                 score_cast_func=int) == [(b"b", 2), (b"c", 3)]
    assert await r.zscore("z", "c") == 3.0
    assert await r.zscore("z", "nope") is None
    assert await r.zincrby("z", 1.5, "a") == 2.5
    assert await r.zcard("z") == 4


async def test_info_and_config(r):
    info = await r.info()
    assert info["redis_version"]
    assert isinstance(info["connected_clients"], int)
    cfg = await r.config_get("maxmemory")
    assert cfg == {"maxmemory": "0"}
    assert isinstance(await r.client_list(), list)
    assert await r.client_setname("pytest") is True
    assert await r.client_getname() == "pytest"


async def test_set_response_callback(r, port):
    await r.set("x", 7)
    r.set_response_callback("GET", lambda v: int(v) * 2)
    assert await r.get("x") == 14
    other = aredis.StrictRedis(port=port, db=3)
    assert await other.get("x") == b"7", "callbacks are per instance"

    class Sub(aredis.StrictRedis):
        RESPONSE_CALLBACKS = {**aredis.StrictRedis.RESPONSE_CALLBACKS,
                              "GET": lambda v: v.decode()[::-1]}
    await r.set("y", "abc")
    assert await Sub(port=port, db=3).get("y") == "cba"

    class Documented(aredis.StrictRedis):
        REDIS_CALLBACKS = {"GET": lambda v: v.upper()}
    assert await Documented(port=port, db=3).get("y") == b"ABC"


async def test_execute_command_and_subcommand_split(r):
    assert await r.execute_command("SET", "k", "v") is True
    assert await r.execute_command("CONFIG GET", "maxmemory") == \
        {"maxmemory": "0"}


async def test_errors(r):
    await r.set("s", "x")
    with pytest.raises(aredis.ResponseError) as e:
        await r.incr("s")
    assert "not an integer" in str(e.value)
    assert not str(e.value).startswith("ERR ")
    with pytest.raises(aredis.ResponseError, match="WRONGTYPE"):
        await r.lpush("s", 1)
    with pytest.raises(aredis.NoScriptError):
        await r.evalsha("0" * 40, 0)
    assert issubclass(aredis.NoScriptError, aredis.ResponseError)
    assert issubclass(aredis.TimeoutError, aredis.RedisError)
    assert issubclass(aredis.MasterNotFoundError, aredis.ConnectionError)


async def test_connection_refused():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = aredis.StrictRedis(port=port, connect_timeout=1)
    with pytest.raises(aredis.ConnectionError):
        await c.get("x")


async def test_stream_timeout(r, port):
    slow = aredis.StrictRedis(port=port, db=3, stream_timeout=0.2)
    with pytest.raises(aredis.TimeoutError):
        await slow.execute_command("DEBUG", "SLEEP", "0.6")
    await asyncio.sleep(0.5)


async def test_unix_socket(server):
    c = aredis.StrictRedis(unix_socket_path=server["unixsocket"], db=3)
    assert await c.ping() is True


async def test_from_url_unix(server):
    # The documented form has three slashes: unix:// and an absolute path.
    for url in (f"unix://{server['unixsocket']}?db=3",
                f"unix://{server['unixsocket']}"):
        c = aredis.StrictRedis.from_url(url)
        assert await c.ping() is True
        c.close()
    c = aredis.StrictRedis.from_url(
        f"unix://{server['unixsocket']}?db=3&decode_responses=yes")
    await c.set("unix", "x")
    assert await c.get("unix") == "x"
    assert (await c.client_list())[-1]["db"] == "3"
    c.close()


async def test_from_url(port):
    c = aredis.StrictRedis.from_url(
        f"redis://127.0.0.1:{port}/3?decode_responses=True")
    await c.set("u", "v")
    assert await c.get("u") == "v"
    c2 = aredis.StrictRedis.from_url(f"redis://127.0.0.1:{port}", db=3)
    assert await c2.get("u") == b"v"


async def test_bad_url_raises_the_librarys_message(port):
    # A URL the C library refuses after it has made the client's loop: the
    # loop's Python side went with it, and the dead object's deallocation
    # read it (SystemError "returned NULL without setting an exception",
    # or a crash) instead of raising the library's message.
    for url, words in [(f"redis://127.0.0.1:{port}/x", "database 'x'"),
                       ("redis://127.0.0.1:99999", "port '99999'"),
                       (f"redis://127.0.0.1:{port}?foo=1", "option 'foo'")]:
        for _ in range(3):
            c = aredis.StrictRedis.from_url(url)
            with pytest.raises(aredis.DataError, match=words):
                await c.get("x")
    assert await aredis.StrictRedis(port=port).ping() is True


async def test_cancelled_await_leaves_client_usable(r):
    t = asyncio.ensure_future(r.blpop("never", timeout=5))
    await asyncio.sleep(0.05)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert await r.ping() is True


async def test_concurrent_coroutines_share_one_client(r):
    async def worker(i):
        for j in range(50):
            await r.set(f"c:{i}:{j}", j)
            assert await r.get(f"c:{i}:{j}") == str(j).encode()
    await asyncio.gather(*[worker(i) for i in range(20)])
    assert await r.dbsize() == 1000
    assert r.core.pending() == 0


async def test_client_on_given_loop(port, event_loop):
    c = aredis.StrictRedis(host="localhost", port=port, db=3,
                           loop=event_loop)
    assert await c.ping() is True


def test_methods_come_from_the_table():
    table = {m for m, _, _ in commands._parse_table(commands.COMMANDS)}
    assert len(table) > 150
    for m in table:
        assert callable(getattr(aredis.StrictRedis, m)), m
        assert callable(getattr(aredis.Pipeline, m)), m
    assert "delete" in table and "config_get" in table


async def test_username_and_password(r, port):
    await r.execute_command("ACL", "SETUSER", "pyuser", "on", ">pw", "~*",
                            "+@all")
    try:
        ok = aredis.StrictRedis(port=port, username="pyuser", password="pw")
        assert await ok.execute_command("ACL", "WHOAMI") == b"pyuser"
        bad = aredis.StrictRedis(port=port, username="pyuser",
                                 password="nope", connect_timeout=2)
        with pytest.raises(aredis.AuthenticationError):
            await bad.ping()
    finally:
        await r.execute_command("ACL", "DELUSER", "pyuser")


async def test_documented_signatures_and_types(r):
    """The calls and return types of the documented client (its command
    mixins), where they differ from redis-py 3+."""
    await r.zadd("z", a=1, b=2, c=3)
    assert await r.zincrby("z", "a", 2) == 3.0      # (name, value, amount)
    assert await r.zincrby("z", "a") == 4.0
    assert await r.zincrby("z", 1, "b") == 3.0      # redis-py's order too
    await r.zadd("lex", a=0, b=0, c=0, d=0)
    assert await r.zrangebylex("lex", "-", "+", 1, 2) == [b"b", b"c"]
    assert await r.zrevrangebylex("lex", "+", "-", 0, 1) == [b"d"]
    with pytest.raises(aredis.DataError):
        r.zrangebylex("lex", "-", "+", 1)
    assert await r.mset(k1="1", k2="2") is True
    assert await r.mset({"k3": "3"}, k4="4") is True
    assert await r.msetnx(k1="x", k5="5") is False
    assert await r.mget("k1", "k2", "k3", "k4") == [b"1", b"2", b"3", b"4"]
    assert isinstance(await r.lastsave(), datetime.datetime)
    await r.set("dbg", "v")
    dbg = await r.debug_object("dbg")
    assert dbg["type"] == "Value" and isinstance(dbg["refcount"], int)
    await r.rpush("ids", 2, 1)
    await r.mset({"w_1": "a", "w_2": "b", "n_1": "x", "n_2": "y"})
    assert await r.sort("ids", get=["w_*", "n_*"], groups=True) == \
        [(b"a", b"x"), (b"b", b"y")]
    bf = r.bitfield("bf")
    assert await bf.set("i8", 0, 100).get("i8", 0).incrby("u2", 100, 1) \
        .overflow("SAT").exc() == [0, 100, 1]
    assert await r.bitfield("bf", ("GET", "i8", 0)) == [100]
    p = await r.pipeline(transaction=False)
    await p.mset(p1=1)
    await p.bitfield("bf").get("i8", 0).exc()
    assert await p.execute() == [True, [100]]
    assert await r.slaveof() is True        # SLAVEOF NO ONE
    # Integers, as the documented client (and redis-py) give them.
    assert await r.setbit("bits", 3, 1) == 0
    assert type(await r.setbit("bits", 3, 0)) is int
    assert type(await r.hsetnx("hn", "f", 1)) is int


async def test_times_as_timedelta_and_datetime(r):
    day = datetime.timedelta(days=1, seconds=5)
    assert await r.set("t", 1, ex=day) is True
    assert 86400 < await r.ttl("t") <= 86405
    assert await r.set("t", 1, px=datetime.timedelta(seconds=9)) is True
    assert 8000 < await r.pttl("t") <= 9000
    assert await r.expire("t", datetime.timedelta(seconds=50)) is True
    assert 40 < await r.ttl("t") <= 50
    assert await r.pexpire("t", datetime.timedelta(seconds=60)) is True
    assert 50000 < await r.pttl("t") <= 60000
    at = datetime.datetime.now() + datetime.timedelta(seconds=70)
    assert await r.expireat("t", at) is True
    assert 60 < await r.ttl("t") <= 70
    assert await r.pexpireat("t", at + day) is True
    assert 86400 < await r.ttl("t") <= 86475
    assert await r.setex("t", datetime.timedelta(seconds=30), 1) is True
    assert 20 < await r.ttl("t") <= 30
    assert await r.psetex("t", datetime.timedelta(seconds=40), 1) is True
    assert 30 < await r.ttl("t") <= 40


async def test_geo_radius_and_zaddoption(rd):
    await rd.geoadd("Sicily", 13.361389, 38.115556, "Palermo",
                    15.087269, 37.502669, "Catania")
    assert sorted(await rd.georadius("Sicily", 15, 37, 200, "km")) == \
        ["Catania", "Palermo"]
    near = await rd.georadius("Sicily", 15, 37, 200, "km", withdist=True,
                              withcoord=True, sort="ASC")
    assert [p[0] for p in near] == ["Catania", "Palermo"]
    assert 56 < near[0][1] < 57 and isinstance(near[0][2], tuple)
    assert await rd.georadiusbymember("Sicily", "Palermo", 100, "km") == \
        ["Palermo"]
    assert await rd.georadius("Sicily", 15, 37, 200, "km",
                              store_dist="dists") == 2
    assert await rd.zaddoption("z", "NX", 1, "a", b=2) == 2
    assert await rd.zaddoption("z", "XX CH", 5, "a", c=1) == 1
    assert await rd.zrange("z", 0, -1, withscores=True) == \
        [("b", 2.0), ("a", 5.0)]
    with pytest.raises(aredis.RedisError):
        rd.zaddoption("z", "NX XX", 1, "a")
